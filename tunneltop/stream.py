"""The headless change stream (``tunneltop --watch --output jsonl``): one JSON object per change, as it happens.

For piping into alerting. Every line is a JSON object with a ``kind``:

- ``baseline``, once, after the first successful poll: a summary of what is being watched (counts and health),
  so a consumer knows the stream is live. It is the first line unless polls fail before any succeeds, in which
  case their ``poll_failed`` lines come first.
- then one line per change event (``tunneltop.changes.events.ChangeEvent.to_json``), in the order ``diff``
  gives them: a failover is one ``colo_moved`` line and schema drift one ``schema_drift`` line, their
  per-connection events in ``parts``; findings come as ``finding_raised``/``finding_cleared`` (the first poll's
  right after the baseline, each once); and ``poll_failed``/``poll_recovered`` by the engine's failure-streak rule (see
  ``tunneltop.poll.engine``): ``poll_failed`` when polls start failing, when the kind of error changes, and at
  least once a minute while they keep failing.

Polls run one at a time through the one ``PollEngine`` (or, with ``--attach URL``, any ``LiveSource``: a serve
server's, whose own events these lines then are): a poll, then a sleep until the next one (the interval,
stretched to what the request budget allows, at least ``Retry-After`` after a 429). A passing error never ends
the stream; an error no retry can fix (credentials, permission, a tunnel name that matches nothing, several
accounts) ends it with exit status 3 (64 for a bad name) and the reason on stderr. ``stop`` ends it at once, even
mid-poll. JSON is written with ``ensure_ascii`` so control and bidi characters in API text arrive escaped.
Textual is never imported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import traceback
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TextIO

from tunneltop.api.errors import ApiError, UsageError
from tunneltop.api.gate import BudgetStatus
from tunneltop.changes.events import rfc3339
from tunneltop.model.snapshot import Snapshot
from tunneltop.poll.account import AccountChoiceNeeded
from tunneltop.poll.engine import PollOutcome
from tunneltop.poll.pacing import Stopped, sleep_unless_stopped, unless_stopped
from tunneltop.poll.source import Closable, LiveSource, headless_engine
from tunneltop.poll.target import Target
from tunneltop.report import EXIT_OK, EXIT_UNKNOWN, EXIT_USAGE
from tunneltop.sanitize import clean

if TYPE_CHECKING:
    from tunneltop.record.store import Recorder

# A 429 block up to this long is sat out inside the poll (no failure to report); a longer one is reported as a
# failed poll and the next poll waits for it to end.
STREAM_MAX_RATE_LIMIT_WAIT = 30.0

class _ReaderGone(Exception):
    """Whoever read our output closed it (``| head``): nobody is listening any more."""


def baseline(
    snapshot: Snapshot, *, interval: float, demo: bool = False, budget: BudgetStatus | None = None
) -> dict[str, Any]:
    """The stream's first line: what is watched and how it stands."""
    connectors = [c for t in snapshot.tunnels for c in t.connectors or ()]
    document: dict[str, Any] = {
        "kind": "baseline",
        "at": rfc3339(snapshot.fetched_at),
        "account_id": snapshot.account_id,
        "account_name": snapshot.account_name,
        "interval": interval,
        "tunnels": len(snapshot.tunnels),
        "connectors": len(connectors),
        "connections": sum(len(c.conns) for c in connectors),
        "active": sum(t.active_count for t in snapshot.tunnels),
        "pending": snapshot.pending_count,
        "health": snapshot.health.value if snapshot.health else None,
        "tunnels_by_health": dict(sorted(Counter(t.health.value for t in snapshot.tunnels).items())),
    }
    if budget is not None:
        document["api"] = budget.to_json()
    if demo:
        document["demo"] = True
    return document


class _Stream:
    def __init__(
        self, target: Target, interval: float, out: TextIO, err: TextIO, recorder: Recorder | None = None
    ) -> None:
        self.target = target
        self.interval = interval
        self.out = out
        self.err = err
        self.started = False
        self.recorder = recorder

    async def record(self, outcome: PollOutcome) -> None:
        """``--record``: the poll into the recording, off the loop (a large account's full snapshot takes a while).
        A recording that fails (a full disk) says why once and the stream goes on without it."""
        recorder = self.recorder
        if recorder is not None and not await asyncio.to_thread(recorder.write_outcome, outcome):
            print(f"tunneltop: {clean(recorder.failure, 1000)}; the stream goes on without recording", file=self.err)
            self.recorder = None

    def write(self, documents: list[dict[str, Any]]) -> None:
        try:
            for document in documents:
                self.out.write(json.dumps(document, ensure_ascii=True) + "\n")
            self.out.flush()
        except BrokenPipeError:
            raise _ReaderGone from None

    def documents(self, source: LiveSource, outcome: PollOutcome) -> list[dict[str, Any]]:
        documents = [e.to_json() for e in outcome.events]
        if outcome.snapshot is not None and not self.started:
            self.started = True
            head = baseline(outcome.snapshot, interval=self.interval, demo=self.target.demo, budget=source.status)
            # The baseline comes first, after any poll_recovered of failures before it.
            at = 1 if documents and documents[0].get("kind") == "poll_recovered" else 0
            documents.insert(at, head)
        return documents

    def fatal(self, error: BaseException) -> int:
        """An error no retry can fix: say why on stderr, and the exit status."""
        if isinstance(error, AccountChoiceNeeded):
            print(f"tunneltop: {clean(str(error), 300)}:", file=self.err)
            for account in error.accounts:
                print(f"  {clean(account.id, 40)}  {clean(account.name, 80)}", file=self.err)
            return EXIT_UNKNOWN
        message = error.message if isinstance(error, ApiError) else str(error)
        print(f"tunneltop: {clean(message, 2000)}", file=self.err)
        return EXIT_USAGE if isinstance(error, UsageError) else EXIT_UNKNOWN

    async def run(self, stop: asyncio.Event, max_rate_limit_wait: float, source: LiveSource | None = None) -> int:
        """Poll ``source`` (by default the one poll engine on the Cloudflare API) until ``stop``."""
        if source is not None:
            try:
                return await self.follow(source, stop)
            finally:
                if isinstance(source, Closable):
                    await source.aclose()
        async with self.target.client(max_rate_limit_wait=max_rate_limit_wait) as client:
            engine = headless_engine(client, self.target, interval=self.interval)
            return await self.follow(engine, stop)

    async def follow(self, source: LiveSource, stop: asyncio.Event) -> int:
        while not stop.is_set():
            try:
                outcome = await unless_stopped(source.poll(), stop)
            except Stopped:
                break
            await self.record(outcome)
            if outcome.error is not None and outcome.permanent:
                with contextlib.suppress(_ReaderGone):
                    self.write([e.to_json() for e in outcome.events])
                return self.fatal(outcome.error)
            if source.usage_errors:
                return self.fatal(source.usage_errors[0])
            if outcome.error is not None and not isinstance(outcome.error, ApiError):
                traceback.print_exception(outcome.error, file=self.err)
            try:
                self.write(self.documents(source, outcome))
            except _ReaderGone:
                return EXIT_OK
            # The next poll when the interval is up and a request may go: the planner and the budget pace the
            # fetches (a tunnel is refreshed every ``effective_interval`` when all do not fit in one interval). An
            # attached source waits in its poll for the server's next one.
            wait = max(source.next_poll_delay(), outcome.retry_after or 0.0)
            if await sleep_unless_stopped(wait, stop):
                break
        return EXIT_OK


async def watch_stream(
    target: Target,
    interval: float,
    out: TextIO,
    *,
    stop: asyncio.Event,
    max_rate_limit_wait: float = STREAM_MAX_RATE_LIMIT_WAIT,
    err: TextIO | None = None,
    budget_per_minute: int | None = None,
    recorder: Recorder | None = None,
    source: LiveSource | None = None,
) -> int:
    """Poll ``target`` every ``interval`` seconds and write a JSON line per change to ``out`` until ``stop``; with
    an open ``recorder`` (``--record``), every poll into it too. ``source``: where the polls come from instead of
    the Cloudflare API through ``target`` (``--attach URL``: a serve server's; closed when the stream ends).

    Returns 0 when stopped (or when the reader closed ``out``); 3 on an error no retry can fix (bad credentials,
    a missing permission, several accounts and none named: the reason goes to ``err``, default stderr); 64 for a
    tunnel name that matches nothing. Passing API errors never end it.
    """
    if budget_per_minute is not None:
        target = replace(target, budget_per_minute=budget_per_minute)
    stream = _Stream(target, interval, out, err if err is not None else sys.stderr, recorder)
    return await stream.run(stop, max_rate_limit_wait, source)


def run_watch(
    target: Target,
    interval: float,
    out: TextIO | None = None,
    recorder: Recorder | None = None,
    source: LiveSource | None = None,
) -> int:
    """Run the stream to stdout until SIGINT or SIGTERM; either ends it cleanly with exit status 0."""
    stream = out if out is not None else sys.stdout

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # no loop signal handlers here (Windows, or not the main thread)
            installed.append(sig)
        try:
            return await watch_stream(target, interval, stream, stop=stop, recorder=recorder, source=source)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    try:
        status = asyncio.run(main())
    except KeyboardInterrupt:
        status = EXIT_OK
    try:
        stream.flush()
    except BrokenPipeError:
        # The reader left: point stdout at /dev/null so the interpreter's final flush stays quiet too.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
    return status
