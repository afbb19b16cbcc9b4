"""A recording as a source for the live view (``poll.source.LiveSource``): ``tunneltop replay FILE``.

Each ``poll()`` shows one recorded poll. Playing (the default) moves one recorded poll forward per ``interval``
seconds, to the end, where it stays; ``step``, ``jump_to``, ``jump_to_event`` and ``play``/``pause`` move it as
the user asks, and the next ``poll()`` (which the view may call at once: ``next_poll_in()`` is then 0) shows where
it went. Stepping forward by one poll gives the events that poll gave live: the change engine's own ``diff``
between the two recorded snapshots (the very function the engine ran), with the recorded failure-streak events; a
step back or a jump is a new baseline, with no events. A recorded failed poll comes back failed, with its message,
and the view keeps the last snapshot as it did live. Nothing here sends a request to anyone.

``RecordedSource`` is the other way round: a live source whose polls are also recorded (the live view's
``--record``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from tunneltop.api.errors import ApiError, UsageError
from tunneltop.api.gate import BudgetStatus
from tunneltop.changes.events import ChangeEvent, diff, poll_failed, poll_recovered, rfc3339, without_first_sight
from tunneltop.model.codec import parse_time
from tunneltop.model.snapshot import Snapshot
from tunneltop.poll.engine import PollOutcome
from tunneltop.poll.source import Closable, LiveSource, badge
from tunneltop.poll.target import Target
from tunneltop.record.reader import Recording
from tunneltop.record.schema import RecordingError
from tunneltop.record.store import Recorder

REPLAY_BASE_URL = "replay:"  # no scheme httpx sends to: a mistake can never reach a server
DEFAULT_STEP_SECONDS = 1.0


class ReplaySource:
    """The live view's source over a ``Recording``; see the module's doc."""

    def __init__(self, recording: Recording, *, start: int = 0, playing: bool = True) -> None:
        if not len(recording):
            raise RecordingError(f"{recording.path} holds no poll yet")
        self.recording = recording
        self.usage_errors: list[UsageError] = []
        self.playing = playing
        self.position: int | None = None  # the poll last shown
        self._interval = DEFAULT_STEP_SECONDS
        self._move: int | None = max(0, min(start, len(recording) - 1))
        self._shown: Snapshot | None = None  # the snapshot last shown (the last good one at ``position``)

    # -- what the view reads -------------------------------------------------------------------------------------

    @property
    def label(self) -> str:
        """The header's badge: the recording's time and position, e.g. "REPLAY 2026-12-01T03:12:00Z poll 12 of
        720 paused"."""
        index = self._here()
        state = "" if self.playing and not self.at_end else " paused"
        at = rfc3339(self.recording.polls[index].when.replace(microsecond=0))  # to the second: the header is short
        return f"REPLAY {at} poll {index + 1} of {len(self.recording)}{state}"

    def now(self) -> datetime:
        """The recording's time where it is (the live view's clock in a replay: ages, marks and ghosts then)."""
        return self.recording.polls[self._here()].when

    def _here(self) -> int:
        return self.position if self.position is not None else self._move or 0

    def target(self) -> Target:
        """What the view shows as the account: the recording's, with no credentials and nowhere to send."""
        first = self.recording.last_good(len(self.recording) - 1)
        account = self.recording.snapshot(first).account_id if first is not None else None
        return Target(REPLAY_BASE_URL, None, account, demo=self.recording.demo)

    @property
    def interval(self) -> float:
        return self._interval

    @interval.setter
    def interval(self, seconds: float) -> None:
        self._interval = seconds

    @property
    def effective_interval(self) -> float:
        return self._interval

    @property
    def named(self) -> bool:
        return False

    @property
    def status(self) -> BudgetStatus | None:
        return None

    @property
    def at_end(self) -> bool:
        return self.position is not None and self.position >= len(self.recording) - 1

    def next_poll_delay(self) -> float:
        return self.next_poll_in() if self._move is not None else self._interval

    def next_poll_in(self) -> float:
        return 0.0 if self._move is not None else self._interval

    def refresh(self, tunnel_ids: Iterable[str] = ()) -> None:
        """Nothing to fetch: the recording holds what it holds."""

    def set_in_view(self, tunnel_ids: Iterable[str]) -> None:
        """Every recorded tunnel is at hand: nothing to put first."""

    async def aclose(self) -> None:
        self.recording.close()

    # -- moving --------------------------------------------------------------------------------------------------

    def _heading(self) -> int:
        """Where the next poll goes: a move asked for and not shown yet counts (two quick steps are two)."""
        return self._move if self._move is not None else self.position if self.position is not None else 0

    def step(self, polls: int) -> None:
        """``polls`` recorded polls forward (negative: back), stopping at either end; pauses playing."""
        self.playing = False
        self._move = max(0, min(self._heading() + polls, len(self.recording) - 1))

    def jump_to(self, moment: datetime) -> None:
        """To the last poll at or before ``moment`` (RecordingError outside the recording); pauses playing."""
        self._move = self.recording.index_at(moment)
        self.playing = False

    def jump_to_event(self, severities: Collection[str], *, forward: bool = True) -> bool:
        """To the next (previous) poll with an event of one of these severities; False when there is none."""
        found = self.recording.event_poll(self._heading(), severities, forward=forward)
        if found is None:
            return False
        self._move = found
        self.playing = False
        return True

    def play(self) -> None:
        self.playing = True
        if self.at_end:
            self._move = 0

    def pause(self) -> None:
        self.playing = False

    # -- polling -------------------------------------------------------------------------------------------------

    async def poll(self) -> PollOutcome:
        move, self._move = self._move, None
        if move is None:
            here = self.position if self.position is not None else 0
            move = here + 1 if self.playing and not self.at_end else here
        try:
            return self._show(move)
        except RecordingError as exc:
            return PollOutcome(None, error=ApiError(str(exc)))

    def _show(self, index: int) -> PollOutcome:
        previous, self.position = self.position, index
        if previous == index and self._shown is not None:
            return PollOutcome(self._shown)  # the very same snapshot: nothing for the view to redo
        stepped = previous is not None and index == previous + 1
        row = self.recording.polls[index]
        recorded = self.recording.poll_events(index) if stepped else []
        streak = [_poll_event(doc) for doc in recorded if doc.get("kind") in ("poll_failed", "poll_recovered")]
        if not row.ok:
            if self._shown is None:
                good = self.recording.last_good(index)
                self._shown = self.recording.snapshot(good) if good is not None else None
            return PollOutcome(None, streak, ApiError(row.error or "the poll failed"))
        snapshot = self.recording.snapshot(index)
        events = streak + without_first_sight(diff(self._shown, snapshot)) if stepped else []
        self._shown = snapshot
        return PollOutcome(snapshot, events)


def _poll_event(doc: dict[str, Any]) -> ChangeEvent:
    """A recorded ``poll_failed``/``poll_recovered`` back as the event it was (their JSON holds all of it)."""
    at = parse_time(doc.get("at"), "the event's time")
    if doc.get("kind") == "poll_failed":
        streak = doc.get("before") or {}
        since = streak.get("since")
        return poll_failed(
            at,
            str(doc.get("after")),
            failed_polls=int(streak.get("failed_polls") or 0),
            since=parse_time(since, "since") if since else None,
        )
    after = doc.get("after") or {}
    since = after.get("since")
    return poll_recovered(
        at,
        last_error=doc.get("before"),
        failed_polls=int(after.get("failed_polls") or 0),
        since=parse_time(since, "since") if since else None,
    )


class RecordedSource:
    """Any live source (the API's poll engine, an attached serve server) with each poll also written to a
    ``Recorder``: ``--record`` for the live view. The write runs off the event loop; a recording that fails stops
    (``failure`` says why, for the view to show once) and the view goes on. Everything else is the inner source's."""

    def __init__(self, inner: LiveSource, recorder: Recorder) -> None:
        self.inner = inner
        self.recorder = recorder
        self.failure: str | None = None

    @property
    def label(self) -> str:
        """The inner source's badge (none for the API) and that this run records, or that its recording stopped."""
        recording = f"REC {self.recorder.path.name}" if self.failure is None else "REC stopped"
        inner = badge(self.inner)
        return f"{inner} · {recording}" if inner else recording

    async def poll(self) -> PollOutcome:
        outcome = await self.inner.poll()
        if self.failure is None and not await asyncio.to_thread(self.recorder.write_outcome, outcome):
            self.failure = self.recorder.failure
        return outcome

    @property
    def usage_errors(self) -> list[UsageError]:
        return self.inner.usage_errors

    @usage_errors.setter
    def usage_errors(self, errors: list[UsageError]) -> None:
        self.inner.usage_errors = errors

    @property
    def interval(self) -> float:
        return self.inner.interval

    @interval.setter
    def interval(self, seconds: float) -> None:
        self.inner.interval = seconds

    @property
    def effective_interval(self) -> float:
        return self.inner.effective_interval

    @property
    def named(self) -> bool:
        return self.inner.named

    @property
    def status(self) -> BudgetStatus | None:
        return self.inner.status

    def next_poll_delay(self) -> float:
        return self.inner.next_poll_delay()

    def next_poll_in(self) -> float:
        return self.inner.next_poll_in()

    def refresh(self, tunnel_ids: Iterable[str] = ()) -> None:
        self.inner.refresh(tunnel_ids)

    def set_in_view(self, tunnel_ids: Iterable[str]) -> None:
        self.inner.set_in_view(tunnel_ids)

    async def aclose(self) -> None:
        if isinstance(self.inner, Closable):
            await self.inner.aclose()
        self.recorder.close()
