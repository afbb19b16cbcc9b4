"""The live view's polling: a thin adapter between the app and its source of (snapshot, events).

A one-shot timer starts a poll in a worker; the worker posts one message per outcome (``ui/messages.py``); the app
applies it and only then re-arms the timer, so pause or interval changes are trivial. Polls never overlap (the
source's contract): a poll asked for while one is on its way (``r``, a resume, a late outcome's re-arm) goes right
after it rather than cancelling it, which would spend its requests for nothing. The source is any
``poll.source.LiveSource``: by default the one poll engine on the Cloudflare API, made on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from tunneltop.api.errors import ApiError, UsageError
from tunneltop.poll.account import AccountChoiceNeeded
from tunneltop.poll.engine import PollOutcome
from tunneltop.poll.source import Closable, LiveSource, badge
from tunneltop.record.source import RecordedSource
from tunneltop.ui.messages import AccountsToChoose, PollFailed, PollWaiting, SnapshotReady, UnknownTunnels

if TYPE_CHECKING:
    from textual.message import Message
    from textual.timer import Timer
    from textual.worker import Worker

    from tunneltop.ui.app import TunneltopApp


class PollDriver:
    """Polls ``source`` (or, when None, the one ``make_source`` makes on first use) for ``app``, and keeps the data
    side of each outcome: how many polls and failures, the last error, when the data shown was read."""

    def __init__(
        self,
        app: TunneltopApp,
        source: LiveSource | None,
        make_source: Callable[[], LiveSource],
        monotonic: Callable[[], float],
    ) -> None:
        self._app = app
        self.source = source
        self._make_source = make_source if source is None else None  # a source given is never replaced
        self._monotonic = monotonic
        self._timer: Timer | None = None
        self._worker: Worker[None] | None = None  # the last poll started
        self._unapplied = 0  # outcomes posted that the app has not applied yet
        self._again = False  # a poll was asked for while one was on its way: the next goes as soon as it may
        self.next_poll_at: float | None = None
        self.stopped_for: str | None = None  # an error no retry can fix: no automatic polls until r
        self.poll_count = 0
        self.failures = 0
        self.last_good_at: datetime | None = None
        self.last_error: str | None = None
        self.applied = 0  # outcomes the app has applied (snapshots, failures, waits for the budget, account lists)
        self._applied = asyncio.Event()
        self._closed = False
        self._said_recording = False

    # -- the source ---------------------------------------------------------------------------------------------

    def ensure_source(self) -> LiveSource:
        """The source, made on first use (and again after ``forget_source``)."""
        if self.source is None:
            assert self._make_source is not None
            self.source = self._make_source()
        return self.source

    @property
    def replaceable(self) -> bool:
        """True when the source is the app's own (an account switch makes a new one); False for one given."""
        return self._make_source is not None

    def forget_source(self) -> None:
        """A new account: the next poll makes a new source (on the same client and request budget). A poll of the
        old one still on its way is cancelled: its outcome belongs to the account left."""
        if self._make_source is not None:
            self.source = None
            if self._worker is not None:
                self._worker.cancel()
                self._worker = None

    @property
    def badge(self) -> str | None:
        return badge(self.source) if self.source is not None else None

    def recording_stopped(self) -> str | None:
        """Why ``--record``'s recording stopped (a full disk...), the first time it is asked after it did; the view
        goes on without it."""
        source = self.source
        if self._said_recording or not isinstance(source, RecordedSource) or source.failure is None:
            return None
        self._said_recording = True
        return source.failure

    async def aclose(self) -> None:
        self._closed = True
        self._applied.set()  # a waiter wakes up and finds the app gone
        if isinstance(self.source, Closable):
            await self.source.aclose()

    # -- the timer and the worker -------------------------------------------------------------------------------

    def schedule(self, delay: float) -> None:
        self.stop()
        delay = max(delay, 0.001)  # Textual's Timer cannot take 0
        self.next_poll_at = self._monotonic() + delay
        self._timer = self._app.set_timer(delay, self.start_poll, name="poll")

    def stop(self) -> None:
        """No poll armed (a poll in flight still ends and is applied)."""
        if self._timer is not None:
            self._timer.stop()
        self._timer = None
        self.next_poll_at = None
        self._again = False

    @property
    def armed(self) -> bool:
        return self._timer is not None

    def next_poll_in(self) -> float | None:
        return max(0.0, self.next_poll_at - self._monotonic()) if self.next_poll_at is not None else None

    @property
    def in_flight(self) -> bool:
        """A poll is on its way, or its outcome is, to be applied: that arms the next."""
        return self._unapplied > 0 or (self._worker is not None and not self._worker.is_finished)

    def start_poll(self) -> None:
        self._timer = None
        self.next_poll_at = None
        if self.in_flight:
            self._again = True
            return
        self._worker = self._app.run_worker(self._poll, name="poll", group="poll", exit_on_error=False)

    async def _poll(self) -> None:
        source = self.ensure_source()
        try:
            outcome = await source.poll()
        except Exception as exc:  # never let a poll take the app down; show it and keep the last data
            self._send(PollFailed(f"unexpected {type(exc).__name__} while polling: {exc}"))
            return
        if self.source is not source:  # the account changed while it was on its way
            return
        if outcome.snapshot is not None:
            # Its rows, marks, ghosts and colo counts are worked out on a worker thread while the screen goes on
            # (see Session.prepare). Only ahead of time: what it could not make, taking the poll makes (and a fault
            # in it then shows there), so the poll is never lost to it.
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._app.session.prepare, outcome.snapshot, outcome.events)
        self._post(outcome)

    def _post(self, outcome: PollOutcome) -> None:
        app = self._app
        source = self.source
        if source is not None and source.usage_errors:
            app.post_message(UnknownTunnels([e.message for e in source.usage_errors]))
            source.usage_errors = []  # said once; those names are not polled
        error = outcome.error
        message: Message
        if outcome.snapshot is not None:
            message = SnapshotReady(outcome.snapshot, outcome.events)
        elif outcome.holding is not None:
            message = PollWaiting(outcome.holding)
        elif isinstance(error, AccountChoiceNeeded):
            message = AccountsToChoose([(a.id, a.name) for a in error.accounts])
        elif error is not None:
            text = error.message if isinstance(error, ApiError) else str(error)
            # Only a usage error stops polling (a name that matches no tunnel will not start to): credentials
            # refused may be fixed in the dashboard while tunneltop runs, and it recovers by itself.
            message = PollFailed(text, outcome.retry_after, outcome.events, isinstance(error, UsageError))
        else:
            message = PollFailed("the source gave an empty outcome: no data and no error")
        self._send(message)

    def _send(self, outcome: Message) -> None:
        """Posts a poll's one outcome to the app, counted until it is applied (``in_flight``)."""
        self._unapplied += 1
        self._app.post_message(outcome)

    def rearm(self, paused: bool, interval: float) -> None:
        """After an outcome is applied: the next poll, when the source says (the planner and the budget pace what
        each poll fetches; a poll waits only for a token). One asked for while the last was on its way goes as
        soon as the source has room. Nothing while a poll is on its way (an outcome applied late): its own
        outcome re-arms."""
        if paused or self.stopped_for is not None or self.in_flight:
            return
        again, self._again = self._again, False
        if self.source is None:
            self.schedule(0 if again else interval)
        else:
            self.schedule(self.source.next_poll_in() if again else self.source.next_poll_delay())

    def refresh(self) -> float:
        """What is on screen goes to the front of the next poll, armed for when the source has room (a reorder,
        never a bypass); returns the wait."""
        self.stopped_for = None
        wait = 0.0
        if self.source is not None:
            self.source.refresh()
            wait = self.source.next_poll_in()
        self.schedule(wait)
        return wait

    def resume(self, interval: float, now: datetime) -> None:
        """Out of a pause: what is on screen first, as soon as the source has room, and not before the interval
        since the data shown was read has passed."""
        wait = 0.0
        if self.source is not None:
            self.source.refresh()
            wait = self.source.next_poll_in()
        if self.last_good_at is not None:
            wait = max(wait, interval - (now - self.last_good_at).total_seconds())
        self.schedule(wait)

    def set_interval(self, interval: float, paused: bool) -> None:
        if self.source is not None:
            self.source.interval = interval
        if not paused and self._timer is not None:
            self.rearm(paused, interval)

    # -- the data side of each outcome --------------------------------------------------------------------------

    def took_snapshot(self, fetched_at: datetime) -> bool:
        """A snapshot is applied; returns whether it ends a run of failures."""
        self.poll_count += 1
        self.last_good_at = fetched_at
        recovered = self.last_error is not None
        self.last_error = None
        return recovered

    def took_failure(self, text: str, permanent: bool) -> None:
        self.failures += 1
        self.last_error = text
        if permanent:  # a name that matches no tunnel: polling stops until the user asks again (r)
            self.stopped_for = text

    def outcome_applied(self) -> None:
        """The app has applied an outcome (then it arms the next poll, if any): wakes whoever waits in
        ``wait_until``."""
        self._unapplied = max(0, self._unapplied - 1)
        self.applied += 1
        self._applied.set()

    async def wait_until(self, done: Callable[[], bool]) -> None:
        """Until ``done()`` holds, checked after each outcome the app applies (a replay steps, a test waits). Not a
        deadline: it waits as long as the app runs, and raises once the app has ended (or crashed) without it."""
        while not done():
            if self._closed or not self._app.is_running:
                raise RuntimeError("the live view is not running: the condition can no longer come true")
            self._applied.clear()
            # Woken by the next outcome; at least once a second, to notice an app that ended without one.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._applied.wait(), 1.0)

    def budget_text(self, interval: float) -> str:
        """'API used/budget per min', and the stretched interval when the budget cannot keep the one asked."""
        source = self.source
        status = source.status if source is not None else None
        if source is None or status is None:
            return ""
        text = str(status)
        effective = source.effective_interval
        if source.named and effective > interval + 0.5:
            text = f"every {effective:.0f} s: budget {status.limit_per_minute}/min · " + text
        return text
