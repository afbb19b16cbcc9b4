"""The headless change stream (``tunneltop --watch --output jsonl``): one JSON object per change, as it happens.

For piping into alerting. Every line is a JSON object with a ``kind``:

- ``baseline``, once, after the first successful poll: a summary of what is being watched (counts and health),
  so a consumer knows the stream is live. It is the first line unless polls fail before any succeeds, in which
  case their ``poll_failed`` lines come first.
- then one line per change event (``tunneltop.changes.events.ChangeEvent.to_json``), in the order ``diff``
  gives them, and ``poll_failed``/``poll_recovered`` when whole polls start or stop failing (again when the
  kind of error changes while failing).

Polls run one at a time: a poll, then a one-shot sleep of ``interval`` seconds (at least ``Retry-After`` after a
429), then the next. An error never ends the stream; ``stop`` does, at once, even mid-poll. JSON is written with
``ensure_ascii`` so control and bidi characters in API text arrive escaped. Textual is never imported here.
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
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO, TypeVar

from tunneltop.api.budget import DEFAULT_LIMIT_PER_MINUTE as DEFAULT_BUDGET
from tunneltop.api.errors import ApiError, RateLimitedError
from tunneltop.changes.events import ChangeEvent, diff, poll_failed, poll_recovered, rfc3339
from tunneltop.model.snapshot import Snapshot
from tunneltop.poll.source import AccountChoiceNeeded, TunnelSource, resolve_account, utc_now
from tunneltop.poll.target import Target
from tunneltop.report import EXIT_OK, EXIT_UNKNOWN
from tunneltop.sanitize import clean

# A 429 block up to this long is sat out inside the poll (no failure to report); a longer one is reported as a
# failed poll and the next poll waits for it to end.
STREAM_MAX_RATE_LIMIT_WAIT = 30.0

T = TypeVar("T")


class _Stopped(Exception):
    """``stop`` was set while waiting."""


class _ReaderGone(Exception):
    """Whoever read our output closed it (``| head``): nobody is listening any more."""


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T:
    """Await ``work``, but give up on it (cancelled) as soon as ``stop`` is set."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        stopper.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise _Stopped


async def _sleep_unless_stopped(seconds: float, stop: asyncio.Event) -> bool:
    """Sleep; True when ``stop`` was set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
    except TimeoutError:
        return False
    return True


def baseline(snapshot: Snapshot, *, interval: float, demo: bool = False) -> dict[str, Any]:
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
    if demo:
        document["demo"] = True
    return document


@dataclass
class _Failing:
    """A run of failed polls."""

    since: datetime
    error: type[BaseException]
    message: str
    polls: int = 1


class _Stream:
    def __init__(self, target: Target, interval: float, out: TextIO, err: TextIO, budget_per_minute: int) -> None:
        self.target = target
        self.interval = interval
        self.out = out
        self.err = err
        self.budget_per_minute = budget_per_minute
        self.source: TunnelSource | None = None
        self.previous: Snapshot | None = None
        self.failing: _Failing | None = None

    def write(self, documents: list[dict[str, Any]]) -> None:
        try:
            for document in documents:
                self.out.write(json.dumps(document, ensure_ascii=True) + "\n")
            self.out.flush()
        except BrokenPipeError:
            raise _ReaderGone from None

    def failed(self, exc: Exception) -> list[ChangeEvent]:
        """A poll failed: report the start of a run of failures, and each change of the kind of error in it."""
        failing = self.failing
        news = failing is None or failing.error is not type(exc)
        if isinstance(exc, ApiError):
            message = exc.message
        else:
            # A bug of ours must not silence alerting: report it as a failed poll, traceback to stderr, go on.
            message = f"internal error: {type(exc).__name__}: {exc}"
            if news:
                traceback.print_exception(exc, file=self.err)
        now = utc_now()
        if failing is None:
            self.failing = _Failing(now, type(exc), message)
        else:
            failing.polls += 1
            failing.error, failing.message = type(exc), message
        return [poll_failed(now, message)] if news else []

    def succeeded(self, snapshot: Snapshot) -> list[dict[str, Any]]:
        documents: list[dict[str, Any]] = []
        if self.failing is not None:
            failing, self.failing = self.failing, None
            event = poll_recovered(
                snapshot.fetched_at, last_error=failing.message, failed_polls=failing.polls, since=failing.since
            )
            documents.append(event.to_json())
        if self.previous is None:
            documents.append(baseline(snapshot, interval=self.interval, demo=self.target.demo))
        documents.extend(e.to_json() for e in diff(self.previous, snapshot))
        self.previous = snapshot
        return documents

    def account_choice(self, exc: AccountChoiceNeeded) -> None:
        print(f"tunneltop: {clean(str(exc), 300)}:", file=self.err)
        for account in exc.accounts:
            print(f"  {clean(account.id, 40)}  {clean(account.name, 80)}", file=self.err)

    async def run(self, stop: asyncio.Event, max_rate_limit_wait: float) -> int:
        async with self.target.client(max_rate_limit_wait=max_rate_limit_wait) as client:
            while not stop.is_set():
                wait = self.interval
                sent_before = client.stats.requests
                try:
                    if self.source is None:
                        account = await _unless_stopped(resolve_account(client, self.target.account_id), stop)
                        # One poll never takes more than a minute's budget (a large account gets list status only).
                        self.source = TunnelSource(
                            client, account, self.target.refs, max_fetches=self.budget_per_minute
                        )
                    snapshot = await _unless_stopped(self.source.poll(), stop)
                except _Stopped:
                    break
                except AccountChoiceNeeded as exc:
                    self.account_choice(exc)
                    return EXIT_UNKNOWN
                except Exception as exc:
                    if isinstance(exc, RateLimitedError):
                        wait = max(wait, exc.retry_after)
                    documents = [e.to_json() for e in self.failed(exc)]
                else:
                    documents = self.succeeded(snapshot)
                # Stretch the interval so that polling stays within the budget (requests per minute).
                wait = max(wait, (client.stats.requests - sent_before) * 60 / self.budget_per_minute)
                try:
                    self.write(documents)
                except _ReaderGone:
                    return EXIT_OK
                if await _sleep_unless_stopped(wait, stop):
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
    budget_per_minute: int = DEFAULT_BUDGET,
) -> int:
    """Poll ``target`` every ``interval`` seconds and write a JSON line per change to ``out`` until ``stop``.

    Returns 0 when stopped (or when the reader closed ``out``); 3 when the credentials see several accounts and
    none was named (the choice is printed to ``err``, default stderr). API errors never end it.
    """
    stream = _Stream(target, interval, out, err if err is not None else sys.stderr, budget_per_minute)
    return await stream.run(stop, max_rate_limit_wait)


def run_watch(
    target: Target, interval: float, out: TextIO | None = None, budget_per_minute: int = DEFAULT_BUDGET
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
            return await watch_stream(target, interval, stream, stop=stop, budget_per_minute=budget_per_minute)
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
