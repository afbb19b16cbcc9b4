"""Turning API calls into snapshots: which account, which tunnels, and one poll's worth of data.

Shared by the headless path and the live screen so both see exactly the same data the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tunneltop.api.client import CloudflareClient
from tunneltop.api.errors import ApiError, AuthError, NotFoundError, RateLimitedError, RequestFailedError
from tunneltop.model.parse import RecordCache, RecordProblem
from tunneltop.model.records import Account, Tunnel
from tunneltop.model.snapshot import Snapshot, TunnelState, same_objects

# A tunnel whose connections could not be refreshed keeps showing the last ones read, marked stale, for this
# long; after it they are unknown (a passing 5xx should not blank a tunnel, a lasting one should not look fine).
STALE_LIMIT = timedelta(minutes=5)

# Connections of several tunnels are fetched at once, but politely: the rate limit is shared with the user.
FETCH_CONCURRENCY = 4


class AccountChoiceNeeded(Exception):
    """The credentials see several accounts and none was named."""

    def __init__(self, accounts: Sequence[Account]) -> None:
        super().__init__(f"these credentials see {len(accounts)} accounts; name one with --account ID")
        self.accounts = list(accounts)


def utc_now() -> datetime:
    return datetime.now(UTC)


async def resolve_account(client: CloudflareClient, account_id: str | None) -> Account:
    """The configured account, or the only one the credentials can see."""
    if account_id:
        return Account(id=account_id)
    accounts, _ = await client.list_accounts()
    if len(accounts) == 1:
        return accounts[0]
    if not accounts:
        raise NotFoundError("these credentials see no account; name one with --account ID", status=404)
    raise AccountChoiceNeeded(accounts)


class TunnelSource:
    """Polls the tunnels of one account: the ones named, or every non-deleted tunnel when none is."""

    def __init__(
        self,
        client: CloudflareClient,
        account: Account,
        refs: Sequence[str] = (),
        *,
        now: Callable[[], datetime] = utc_now,
        max_fetches: int | None = None,
    ) -> None:
        self.client = client
        self.account = account
        self.refs = list(refs)
        # With no tunnel named, at most this many connection fetches in one poll: past it (a large account) the
        # poll shows the tunnel list's status only, rather than spend a quota the user's dashboard shares.
        self.max_fetches = max_fetches
        self._now = now
        self._named: list[Tunnel] | None = None
        self._transient: dict[str, ApiError] = {}  # this poll's passing per-tunnel failures, by tunnel id
        # Per tunnel, the records of its last poll: what the API sends unchanged is not validated again.
        self._records: dict[str, RecordCache] = {}
        self._tunnel_records: dict[str, tuple[dict[str, Any], Tunnel]] = {}  # the same for the tunnel list
        self._states: dict[str, TunnelState] = {}  # the last poll's, handed back when nothing in them changed
        self._last_tunnels: tuple[TunnelState, ...] = ()
        # Per tunnel, its last connections read without error and when: shown, stale, while a refresh fails.
        # (Plain assignments of objects that exist anyway: a poll of 1,300 tunnels makes no new ones for this.)
        self._good: dict[str, TunnelState] = {}
        self._good_at: dict[str, datetime] = {}
        self._polled_at = now()

    async def _tunnels(self) -> tuple[list[Tunnel], list[RecordProblem]]:
        if not self.refs:
            tunnels, problems = await self.client.list_tunnels(self.account.id, cache=self._tunnel_records)
            return tunnels, problems
        if self._named is None:
            # Names resolve once; later polls re-read each tunnel by id, so a rename doesn't lose it.
            self._named = [await self.client.resolve_tunnel(self.account.id, ref) for ref in self.refs]
        return list(self._named), []

    async def _state(self, tunnel: Tunnel) -> TunnelState:
        if tunnel.status == "inactive" and not self.refs:
            # Never run: it has no connections, and the request budget is better spent elsewhere.
            return TunnelState(tunnel, ())
        try:
            if self.refs:
                tunnel = await self.client.get_tunnel(self.account.id, tunnel.id)
            cache = self._records.setdefault(tunnel.id, RecordCache())
            connectors, problems = await self.client.list_connectors(self.account.id, tunnel.id, cache)
        except (AuthError, RateLimitedError):
            raise
        except NotFoundError:
            self._good.pop(tunnel.id, None)
            self._good_at.pop(tunnel.id, None)
            return TunnelState(
                tunnel, None, (), "tunnel not found: deleted, or no longer visible to these credentials"
            )
        except ApiError as exc:
            # success: false (on HTTP 200 too) passes like a 5xx: Cloudflare's "unknown error" is one.
            if exc.transient or isinstance(exc, RequestFailedError):
                self._transient[tunnel.id] = exc
            good, good_at = self._good.get(tunnel.id), self._good_at.get(tunnel.id)
            if good is not None and good_at is not None and self._polled_at - good_at <= STALE_LIMIT:
                return TunnelState(tunnel, good.connectors, good.problems, exc.message, fetched_at=good_at)
            return TunnelState(tunnel, None, (), exc.message)
        return TunnelState(tunnel, tuple(connectors), tuple(problems))

    def _unchanged(self, state: TunnelState) -> TunnelState:
        """The last poll's state of this tunnel when nothing in it changed (its records are then the same objects,
        see RecordCache): the change engine, rows and tree skip it by identity."""
        old = self._states.get(state.tunnel.id)
        if (
            old is None
            or old.error != state.error
            or old.problems != state.problems
            or not (old.tunnel is state.tunnel or old.tunnel == state.tunnel)
        ):
            return state
        if old.connectors is None or state.connectors is None:
            return old if old.connectors is state.connectors else state
        return old if same_objects(old.connectors, state.connectors) else state

    async def poll(self) -> Snapshot:
        """One complete poll. Account-wide failures (auth, rate limit, network on the list) raise ApiError."""
        self._polled_at = self._now()
        tunnels, problems = await self._tunnels()
        self._transient = {}
        need = [t for t in tunnels if t.status != "inactive"]
        if not self.refs and self.max_fetches is not None and len(need) > self.max_fetches:
            skipped = RecordProblem(
                "connections",
                f"not fetched: {len(need)} tunnels would take more requests than the budget of {self.max_fetches} "
                "per minute allows at once; health is the tunnel list's status (name tunnels, or raise --budget, "
                "for their connections)",
            )
            return Snapshot(
                account_id=self.account.id,
                account_name=self.account.name,
                fetched_at=self._now(),
                tunnels=tuple(TunnelState(t, () if t.status == "inactive" else None) for t in tunnels),
                problems=(*problems, skipped),
            )
        # A few workers share one queue of tunnels, rather than a task per tunnel: at 1,300 tunnels that is
        # thousands of short-lived tasks, contexts and handles fewer each poll for the collector to walk. In a
        # TaskGroup, not gather: an auth error or 429 in one fetch cancels the others instead of letting them keep
        # sending requests that are bound to fail the same way.
        fetched: list[TunnelState | None] = [None] * len(tunnels)
        queue = iter(enumerate(tunnels))

        async def worker() -> None:
            for index, tunnel in queue:  # shared: each tunnel is taken by one worker
                fetched[index] = await self._state(tunnel)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(FETCH_CONCURRENCY, len(tunnels))):
                    group.create_task(worker())
        except BaseExceptionGroup as group_error:
            raise group_error.exceptions[0] from None
        states = [self._unchanged(state) for state in fetched if state is not None]
        for state in states:
            if state.error is None and state.connectors is not None:
                self._good[state.tunnel.id] = state
                self._good_at[state.tunnel.id] = self._polled_at
        self._states = {state.tunnel.id: state for state in states}
        listed = {t.id for t in tunnels}
        for gone in self._records.keys() - listed:
            del self._records[gone]
        for gone in self._good.keys() - listed:
            del self._good[gone], self._good_at[gone]
        if self.refs and states and len(self._transient) == len(states):
            # Every named tunnel failed the same passing way (a 5xx, a timeout, success: false): a failed poll, so the
            # screen keeps the last good data marked stale instead of showing every tunnel as unknown.
            # The first tunnel's, not whichever failed first: a message that flapped would notify every poll.
            raise next(self._transient[t.id] for t in tunnels)
        if not same_objects(states, self._last_tunnels):
            self._last_tunnels = tuple(states)
        # A poll where nothing changed hands back the very tuple of the last one: every later stage (rows, tree,
        # colo counts, header) can then tell "nothing to do" in O(1) instead of a pass over every tunnel.
        return Snapshot(
            account_id=self.account.id,
            account_name=self.account.name,
            fetched_at=self._now(),
            tunnels=self._last_tunnels,
            problems=tuple(problems),
        )
