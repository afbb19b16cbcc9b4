"""The failure-streak rule, one for every source of polls (the poll engine, an attached serve server).

The first failed poll of a streak gives a ``poll_failed`` event; while polls keep failing, another comes when the
kind of failure changes and at least every ``FAILED_REPEAT`` seconds, so a reader can tell "still failing" from
"nothing happened"; the first poll that succeeds gives ``poll_recovered`` with the streak's length.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from tunneltop.api.errors import ApiError

if TYPE_CHECKING:
    from tunneltop.changes.events import ChangeEvent

# While polls keep failing, a poll_failed event at least this often (seconds).
FAILED_REPEAT = 60.0


@dataclass
class _Run:
    """A run of failed polls."""

    since: datetime
    kind: type[BaseException]
    message: str
    reported_at: datetime
    polls: int = 1


class FailureStreak:
    """Tracks failed polls and says, by the rule above, which streak events each poll's end gives."""

    def __init__(self) -> None:
        self._run: _Run | None = None

    @property
    def failing(self) -> bool:
        return self._run is not None

    @property
    def kind(self) -> type[BaseException] | None:
        """The class of the streak's latest failure (None while polls succeed)."""
        return self._run.kind if self._run is not None else None

    def failed(self, now: datetime, error: BaseException) -> list[ChangeEvent]:
        """A poll failed with ``error`` at ``now``: the ``poll_failed`` event it gives, if any."""
        from tunneltop.changes.events import poll_failed

        message = error.message if isinstance(error, ApiError) else str(error)
        run = self._run
        if run is None:
            self._run = _Run(now, type(error), message, reported_at=now)
            return [poll_failed(now, message)]
        run.polls += 1
        news = run.kind is not type(error)
        due = (now - run.reported_at).total_seconds() >= FAILED_REPEAT
        run.kind, run.message = type(error), message
        if news or due:
            run.reported_at = now
            return [poll_failed(now, message, failed_polls=run.polls - 1, since=run.since)]
        return []

    def succeeded(self, at: datetime) -> list[ChangeEvent]:
        """A poll succeeded (its data read at ``at``): ``poll_recovered`` when it ends a streak."""
        run, self._run = self._run, None
        if run is None:
            return []
        from tunneltop.changes.events import poll_recovered

        return [poll_recovered(at, last_error=run.message, failed_polls=run.polls, since=run.since)]
