"""The messages the poll worker posts to the live view (one per poll outcome)."""

from __future__ import annotations

from textual.message import Message

from tunneltop.changes.events import ChangeEvent
from tunneltop.model.snapshot import Snapshot


class SnapshotReady(Message):
    def __init__(self, snapshot: Snapshot, events: list[ChangeEvent] | None = None) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.events = events


class PollFailed(Message):
    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        events: list[ChangeEvent] | None = None,
        permanent: bool = False,
    ) -> None:
        super().__init__()
        self.message = message
        self.retry_after = retry_after
        self.events = events or []
        self.permanent = permanent


class PollWaiting(Message):
    """No poll this time, and nothing wrong: the request budget has no room yet (see poll.engine.HoldingBack)."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message


class UnknownTunnels(Message):
    """Tunnels named that match none in the account: said once, and not polled."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__()
        self.messages = messages


class AccountsToChoose(Message):
    def __init__(self, accounts: list[tuple[str, str | None]]) -> None:
        super().__init__()
        self.accounts = accounts
