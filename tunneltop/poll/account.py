"""Which account to poll: the one named, or the only one the credentials can see."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from tunneltop.api.client import CloudflareClient
from tunneltop.api.errors import NotFoundError
from tunneltop.model.records import Account


class AccountChoiceNeeded(Exception):
    """The credentials see several accounts and none was named."""

    def __init__(self, accounts: Sequence[Account]) -> None:
        super().__init__(f"these credentials see {len(accounts)} accounts; name one with --account ID")
        self.accounts = list(accounts)


def utc_now() -> datetime:
    return datetime.now(UTC)


async def resolve_account(client: CloudflareClient, account_id: str | None) -> Account:
    """The configured account, or the only one the credentials can see (``/accounts``, through the budget)."""
    if account_id:
        return Account(id=account_id)
    accounts, _ = await client.list_accounts()
    if len(accounts) == 1:
        return accounts[0]
    if not accounts:
        raise NotFoundError("these credentials see no account; name one with --account ID", status=404)
    raise AccountChoiceNeeded(accounts)
