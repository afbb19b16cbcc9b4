"""The headless poll loop of ``tunneltop serve``: the one ``PollEngine``, paced as ``--watch`` paces it, keeping
what the HTTP side reads (the latest snapshot, the poller's own health and figures) and publishing each poll's
change events to the ``EventFeed``.

It never ends on a passing fault: a failed poll keeps the last good snapshot (the metrics and ``/healthz`` say how
old it is), refused credentials are tried again every interval (a token fixed in the dashboard is picked up), and
an exception of any kind inside one poll (a bug) is logged to stderr, scrubbed of the credential, and the next poll
goes on. Only what no retry can fix without a new configuration ends it: a tunnel name that matches nothing (exit
64), several accounts and none named, an account that does not exist (exit 3).
"""

from __future__ import annotations

import asyncio
import re
import time
import traceback
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from tunneltop.api.client import CloudflareClient
from tunneltop.api.errors import ApiError, AuthError, UsageError
from tunneltop.api.gate import BudgetStatus
from tunneltop.changes.events import EventKind, rfc3339
from tunneltop.model.snapshot import Snapshot
from tunneltop.poll.account import AccountChoiceNeeded, utc_now
from tunneltop.poll.engine import PollEngine, PollOutcome
from tunneltop.poll.pacing import Stopped, sleep_unless_stopped, unless_stopped
from tunneltop.poll.source import headless_engine
from tunneltop.poll.target import Target
from tunneltop.report import EXIT_OK, EXIT_UNKNOWN, EXIT_USAGE, render_json
from tunneltop.sanitize import clean
from tunneltop.serve.feed import EventFeed

if TYPE_CHECKING:
    from tunneltop.record.store import Recorder

# A 429 block up to this long is sat out inside the poll, as --watch does.
SERVE_MAX_RATE_LIMIT_WAIT = 30.0
# /healthz: the last success counts as recent for this long at least, or three refresh cycles when those are longer.
STALE_AFTER = 120.0


def error_kind(error: BaseException) -> str:
    """A short, bounded label for a failure: the API error's class (``rate_limited``, ``server``, ``network``,
    ``auth``...), or ``crash`` for anything else (a bug)."""
    if not isinstance(error, ApiError | AccountChoiceNeeded):
        return "crash"
    return kind_name(type(error).__name__)


def kind_name(class_name: str) -> str:
    """``RateLimitedError`` -> ``rate_limited``: an error class's name as a metric label."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name.removesuffix("Error")).lower()


class Poller:
    def __init__(
        self,
        target: Target,
        interval: float,
        *,
        err: TextIO,
        feed: EventFeed | None = None,
        clock: Callable[[], float] = time.monotonic,
        recorder: Recorder | None = None,
    ) -> None:
        self.target = target
        self.interval = interval
        self.err = err
        self.feed = feed if feed is not None else EventFeed()
        self.client: CloudflareClient | None = None
        self.engine: PollEngine | None = None
        self.snapshot: Snapshot | None = None  # the last good one
        self.not_fetched: list[str] = []
        self.budget: BudgetStatus | None = None  # as of the last poll
        self.polls = 0
        self.results: Counter[str] = Counter()  # ok, failed, holding, crashed
        self.errors: Counter[str] = Counter()  # failed and crashed polls by error_kind
        self.failing = False
        self.last_error: str | None = None
        self.last_success: datetime | None = None
        self.last_duration: float | None = None
        self.duration_total = 0.0
        self._clock = clock
        self._last_success_at: float | None = None
        self._json: tuple[Snapshot, str] | None = None
        # --record: each poll into an open recording, off the loop; None once it stopped (said once, and counted).
        self.recorder = recorder
        self.recording: bool | None = None if recorder is None else True
        self.recorded = 0

    # -- what the HTTP side reads ---------------------------------------------------------------------------------

    def stale_after(self) -> float:
        cycle = self.engine.effective_interval if self.engine is not None else self.interval
        return max(STALE_AFTER, 3 * cycle)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether the poller is healthy (the last success is recent), and why, for ``/healthz``."""
        since = None if self._last_success_at is None else self._clock() - self._last_success_at
        healthy = since is not None and since <= self.stale_after()
        status = "ok" if healthy else "starting" if since is None and not self.failing else "failing"
        return healthy, {
            "status": status,
            "polls": self.polls,
            "last_success": rfc3339(self.last_success) if self.last_success is not None else None,
            "seconds_since_success": None if since is None else round(since, 1),
            "stale_after": self.stale_after(),
            "failing": self.failing,
            "last_error": self.last_error,
        }

    async def snapshot_json(self) -> str | None:
        """The ``--once -o json`` document of the last good snapshot (rendered once per snapshot, off the loop: it
        is megabytes at 10,000 connections), or None before the first."""
        snapshot = self.snapshot
        if snapshot is None:
            return None
        cached = self._json
        if cached is not None and cached[0] is snapshot:
            return cached[1]
        text = await asyncio.to_thread(
            render_json, snapshot, demo=self.target.demo, not_fetched=self.not_fetched, budget=self.budget
        )
        if self.snapshot is snapshot:
            self._json = (snapshot, text)
        return text

    # -- the loop -------------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> int:
        """Poll until ``stop``; the exit status (0 when stopped)."""
        async with self.target.client(max_rate_limit_wait=SERVE_MAX_RATE_LIMIT_WAIT) as client:
            self.client = client
            engine = headless_engine(client, self.target, interval=self.interval)
            self.engine = engine
            while not stop.is_set():
                started = self._clock()
                try:
                    outcome = await unless_stopped(engine.poll(), stop)
                except Stopped:
                    break
                except Exception as exc:  # a bug in one poll: said, and the server goes on
                    self._crashed(exc, self._clock() - started)
                    wait = engine.next_poll_delay()
                else:
                    await self._record(outcome)
                    status = self._take(engine, outcome, self._clock() - started)
                    if status is not None:
                        return status
                    wait = max(engine.next_poll_delay(), outcome.retry_after or 0.0)
                if await sleep_unless_stopped(wait, stop):
                    break
        return EXIT_OK

    async def _record(self, outcome: PollOutcome) -> None:
        """``--record``: the poll into the recording, off the event loop (a large account's full snapshot takes a
        while). A recording that fails (a full disk) is said once on stderr and by ``tunneltop_recording``; the
        server goes on without it."""
        recorder = self.recorder
        if recorder is None:
            return
        if await asyncio.to_thread(recorder.write_outcome, outcome):
            self.recorded = recorder.polls_written
            return
        self.recorder, self.recording = None, False
        self._say(f"{recorder.failure}; serving goes on without recording")

    def _take(self, engine: PollEngine, outcome: PollOutcome, duration: float) -> int | None:
        """Keep one poll's outcome and publish it; an exit status when the server cannot go on."""
        self._timed(duration)
        self.budget = engine.status
        error = outcome.error
        if outcome.snapshot is not None:
            self.snapshot = outcome.snapshot
            self.not_fetched = engine.not_fetched(outcome.snapshot)
            self.last_success = outcome.snapshot.fetched_at
            self._last_success_at = self._clock()
            self.failing = False
            self.last_error = None
            self.results["ok"] += 1
        elif error is not None:
            self.failing = True
            self.last_error = clean(error.message if isinstance(error, ApiError) else str(error), 500)
            self.results["failed"] += 1
            self.errors[error_kind(error)] += 1
        else:
            self.results["holding"] += 1
        for event in outcome.events:
            self.feed.publish("change", event.to_json())
            if event.kind in (EventKind.POLL_FAILED, EventKind.POLL_RECOVERED):
                self._say(event.describe())
        self._publish_poll(outcome.holding)
        if error is not None and outcome.permanent and not isinstance(error, AuthError):
            return self._fatal(error)
        if engine.usage_errors:
            return self._fatal(engine.usage_errors[0])
        return None

    def _crashed(self, error: Exception, duration: float) -> None:
        self._timed(duration)
        self.failing = True
        self.last_error = f"internal error: {type(error).__name__}"
        self.results["crashed"] += 1
        self.errors["crash"] += 1
        text = "".join(traceback.format_exception(error))
        credentials = self.target.credentials
        if credentials is not None:
            text = credentials.scrub(text)
        self._say(f"a poll failed on an internal error (the next poll goes on):\n{text.rstrip()}", limit=None)
        self._publish_poll(None)

    def _timed(self, duration: float) -> None:
        self.polls += 1
        self.last_duration = duration
        self.duration_total += duration

    def _publish_poll(self, holding: str | None) -> None:
        """The poll's end on the event feed: what attached viewers re-read the snapshot on."""
        self.feed.publish(
            "poll",
            {
                "kind": "poll",
                "at": rfc3339(utc_now()),
                "poll": self.polls,
                "fetched_at": rfc3339(self.snapshot.fetched_at) if self.snapshot is not None else None,
                "ok": not self.failing and holding is None,
                "error": self.last_error if self.failing else None,
                "holding": clean(holding, 500) if holding is not None else None,
                "api": self.budget.to_json() if self.budget is not None else None,
                "effective_interval": self.engine.effective_interval if self.engine is not None else self.interval,
            },
        )

    def _fatal(self, error: BaseException) -> int:
        if isinstance(error, AccountChoiceNeeded):
            self._say(f"{error}:")
            for account in error.accounts:
                print(f"  {clean(account.id, 40)}  {clean(account.name, 80)}", file=self.err)
            return EXIT_UNKNOWN
        self._say(error.message if isinstance(error, ApiError) else str(error))
        return EXIT_USAGE if isinstance(error, UsageError) else EXIT_UNKNOWN

    def _say(self, message: str, *, limit: int | None = 2000) -> None:
        # A traceback keeps its lines; each is made printable like any other text.
        text = "\n".join(clean(line, None) for line in message.splitlines()) if limit is None else clean(message, limit)
        print(f"tunneltop serve: {text}", file=self.err, flush=True)
