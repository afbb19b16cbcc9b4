"""The poll engine on a thread of its own, so that a poll never stalls the live view's event loop.

A poll's HTTP read is async, but what follows it is not: JSON decode, validation, the change diff and the findings
take tens of milliseconds at 10,000 connections and seconds at 100,000, and on the screen's event loop they freeze
keys, the clock and ``q`` for as long. ``ThreadedSource`` runs the engine, and its HTTP client, on an asyncio loop
in a daemon thread; the screen's loop only awaits each poll's outcome (Python's GIL still passes between the two
threads every few milliseconds, so the screen keeps its pace while the engine works).

What crosses between the threads, and how:

- ``poll()`` runs ``engine.poll()`` on the engine's loop and awaits its outcome; an exception the engine raises
  comes out of ``poll()`` as it would from the engine itself. Cancelling the caller cancels the poll there.
- ``refresh`` and ``set_in_view`` are called directly: each is one assignment of a frozenset made on the caller's
  thread (from the engine's names resolved, which it replaces whole), so the next poll sees it, as a poll in
  flight may (as it did on one loop, between two awaits).
- the interval is set directly too: the planner's interval is a float, and the burst it sizes is the gate's,
  behind the gate's lock (``api/gate.py``).
- readers (``status``, ``next_poll_delay``, ``next_poll_in``, ``effective_interval``, ``named``, ``failing``) ask
  the gate, behind its lock, and read values the engine replaces whole (its last plan, the tunnel order, the
  names resolved), never a container it changes in place.
- ``aclose()`` cancels a poll in flight, runs ``on_close`` on the engine's loop (the client is closed on the loop
  its connections were opened on), stops the loop and joins the thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

from tunneltop.api.errors import UsageError
from tunneltop.api.gate import BudgetStatus
from tunneltop.poll.engine import PollEngine, PollOutcome

T = TypeVar("T")

# How long closing waits for the engine's thread: it is cancelled at once, but a poll in the middle of decoding
# 100,000 connections returns to its loop only when that is done. Past this the thread (a daemon) is left to end
# by itself, and the view exits without it.
CLOSE_WAIT = 2.0


class EngineThread:
    """An asyncio loop running in a daemon thread of its own."""

    def __init__(self, name: str = "tunneltop-engine") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on this thread's loop; the future says how it ended."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        """Stop the loop once what it is running returns to it (tasks still pending are dropped)."""
        with contextlib.suppress(RuntimeError):  # already closed
            self.loop.call_soon_threadsafe(self.loop.stop)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


class ThreadedSource:
    """A ``LiveSource`` (``poll/source.py``) whose ``PollEngine`` lives on an ``EngineThread``.

    ``factory`` makes the engine, on the engine's thread; ``on_close`` runs there when the source is closed (the
    client's ``aclose``: its connections belong to that loop). ``thread``: one shared with the sources before
    this one on the same client (a keep-alive connection opened on one loop cannot be used on another); by default
    the source has its own, ended when the source is closed or dropped."""

    def __init__(
        self,
        factory: Callable[[], PollEngine],
        *,
        on_close: Callable[[], Awaitable[None]] | None = None,
        thread: EngineThread | None = None,
    ) -> None:
        own = thread is None
        self.thread = thread if thread is not None else EngineThread()
        self._on_close = on_close
        self._closed = False

        async def make() -> PollEngine:
            return factory()

        # A few microseconds on a thread that has nothing else to do: the view reads the engine from the start.
        try:
            self.engine = self.thread.submit(make()).result()
        except BaseException:
            self.thread.stop()
            raise
        if own:  # a source dropped without being closed ends its thread
            weakref.finalize(self, self.thread.stop)

    # -- one poll -------------------------------------------------------------------------------------------------

    async def poll(self) -> PollOutcome:
        if self._closed:
            raise RuntimeError("the poll engine's thread is closed")
        return await asyncio.wrap_future(self.thread.submit(self.engine.poll()))

    # -- mutators: one atomic assignment each (see the module's docstring) ------------------------------------------

    def refresh(self, tunnel_ids: Iterable[str] = ()) -> None:
        self.engine.refresh(tunnel_ids)

    def set_in_view(self, tunnel_ids: Iterable[str]) -> None:
        self.engine.set_in_view(tunnel_ids)

    @property
    def interval(self) -> float:
        return self.engine.interval

    @interval.setter
    def interval(self, seconds: float) -> None:
        self.engine.interval = seconds

    @property
    def usage_errors(self) -> list[UsageError]:
        """Set by the engine's poll, read and emptied by the view after it (polls never overlap that)."""
        return self.engine.usage_errors

    @usage_errors.setter
    def usage_errors(self, errors: list[UsageError]) -> None:
        self.engine.usage_errors = errors

    # -- readers ----------------------------------------------------------------------------------------------------

    @property
    def effective_interval(self) -> float:
        return self.engine.effective_interval

    @property
    def named(self) -> bool:
        return self.engine.named

    @property
    def failing(self) -> bool:
        return self.engine.failing

    @property
    def status(self) -> BudgetStatus:
        return self.engine.status

    def next_poll_delay(self) -> float:
        return self.engine.next_poll_delay()

    def next_poll_in(self) -> float:
        return self.engine.next_poll_in()

    # -- the end --------------------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Cancel a poll in flight, close what ``on_close`` closes on the engine's loop, end the thread."""
        if self._closed:
            return
        self._closed = True
        if not self.thread.alive:  # a thread shared with a source closed before this one
            return
        closing = asyncio.wrap_future(self.thread.submit(self._shutdown()))
        # Not wait_for: a wait that runs out must not cancel the shutdown, which then still closes the client.
        done, _ = await asyncio.wait({closing}, timeout=CLOSE_WAIT)
        self.thread.stop()  # when busy past the wait, the loop stops once its work returns to it
        if done:
            # The loop stops right after the shutdown returned: the join is a matter of microseconds.
            self.thread.join(CLOSE_WAIT)

    async def _shutdown(self) -> None:
        here = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not here]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._on_close is not None:
            await self._on_close()
