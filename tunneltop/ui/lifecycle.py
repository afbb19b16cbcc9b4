"""The live view's life around the screen: a terminal that goes away, signals, the collector, crash reports.

Over SSH the terminal can vanish under a running app: SIGHUP, or (not the session leader) only a hung-up stdin,
which Textual's input thread reads in a busy loop. SIGTERM (``kill``, a service manager) must restore the terminal
as ``q`` does: leave the alternate screen, turn mouse tracking off, show the cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import os
import select
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.app import App


class TerminalWatch:
    """Ends ``app`` cleanly when its terminal goes away (SIGHUP, stdin hung up or no longer a TTY) or on SIGTERM."""

    def __init__(self, app: App[int]) -> None:
        self.app = app

    def install(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGHUP, self.terminal_gone)
            # SIGTERM: a clean exit that restores the terminal, status 0 (kill's default must not leave a mess).
            loop.add_signal_handler(signal.SIGTERM, self.terminated)
        self.app.set_interval(1.0, self.check_terminal)
        # Without SIGHUP (tunneltop is not the session leader) a hung-up stdin only reads EOF, which Textual's input
        # thread does in a busy loop: a thread blocked in poll() for the hang-up notices at once and uses no CPU.
        threading.Thread(target=self._wait_for_hangup, name="tunneltop-hangup", daemon=True).start()

    def terminated(self) -> None:
        self.app.exit(0)

    def _wait_for_hangup(self) -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            poller = select.poll()
            poller.register(sys.__stdin__.fileno(), 0)  # no events asked for: only a hang-up or an error wakes it
            poller.poll()
        leave_soon()  # from this thread: the main one may be stuck already (see leave_soon)
        with contextlib.suppress(RuntimeError):  # the app already exited
            self.app.call_from_thread(self.terminal_gone)

    def check_terminal(self) -> None:
        try:
            if not os.isatty(sys.__stdin__.fileno()):
                self.terminal_gone()
                return
            os.tcgetpgrp(sys.__stdin__.fileno())
        except (OSError, ValueError, AttributeError):
            self.terminal_gone()

    def terminal_gone(self) -> None:
        leave_soon()
        self.app.exit(0)


def leave_soon() -> None:
    """Exit cleanly if Textual can, and at once if it can't within a second. On a hang-up the kernel sends SIGCONT
    with SIGHUP; Textual's SIGCONT handler then restarts its output on the dead terminal, and now and then (1 exit in
    30 here) its shutdown deadlocked for good on its writer threads. A terminal that is gone needs no restoring."""
    timer = threading.Timer(1.0, os._exit, args=(0,))
    timer.daemon = True
    timer.start()


def tune_gc() -> None:
    """Collect young objects after 10,000 allocations, not 700: an account-wide view keeps hundreds of thousands of
    objects, and the default makes the collector walk them several times a poll (~30 ms a poll at 10,000
    connections, measured by ``python -m benchmarks.bench``)."""
    gc.set_threshold(10_000, 10, 10)


class HeapFreezer:
    """Takes a large view's long-lived heap out of the cyclic collector's sight (``gc.freeze``) once it is built.

    At 100,000 connections the records, rows and caches are millions of objects, and a full collection walks every
    one of them: 0.3-0.8 s, holding the GIL (the screen's thread waits, whichever thread collects). Records and rows
    hold no reference cycles, so when they are replaced, reference counting frees them, frozen or not. What a
    freeze costs: a cycle that was alive when frozen and dies later (a widget or tree node removed since) is never
    collected. So it freezes only when the heap has grown to twice what it was at the last freeze (the first time at
    ``min_rows`` rows and tunnels, see after_poll): a few times in a session, each keeping at most that moment's
    removable widgets.

    The first freeze comes at 1,000 rows: at 10,000 connections the view is ~170,000 objects, and the one full
    collection its first steps set off (benchmarks.live, a few seconds in) took 50-120 ms on the screen's thread; at
    2,000, a filter typed stalled the screen 40-86 ms with the first freeze at 5,000 rows, 28-39 ms at 1,000 (the
    collections that walk the view's heap, its Textual widgets' among it, walk only what came since)."""

    def __init__(self, min_rows: int = 1_000) -> None:
        self.min_rows = min_rows
        self.frozen_at = 0  # the rows and tunnels held at the last freeze

    def after_poll(self, rows: int, tunnels: int = 0) -> bool:
        """Freeze if the view now holds ``rows`` connection rows and ``tunnels`` tunnels, counted alike (see the
        class); whether it did.

        Tunnels count: an account of many small tunnels is a large heap of tunnel records with few rows. With 1,302
        tunnels and ~450 rows after the first poll, nothing was frozen, and the frame that drew the first rows ran a
        middle collection (21-25 ms) over the poll's objects: a first-poll stall of 32-78 ms, 24-32 ms counting
        tunnels (benchmarks.live --shape many, 6 interleaved runs)."""
        held = rows + tunnels
        if held < max(self.min_rows, 2 * self.frozen_at):
            return False
        gc.freeze()
        self.frozen_at = held
        return True


class MemoryTrim:
    """Hands the C allocator's free memory back to the system (glibc's ``malloc_trim``), after a large view's redraw
    has replaced its tables: glibc keeps what was freed in its heaps, 16-40 MB at 100,000 connections. A few
    milliseconds, with the GIL let go; nothing where there is no glibc (musl, other systems)."""

    def __init__(self) -> None:
        self._trim = _malloc_trim()

    @property
    def available(self) -> bool:
        return self._trim is not None

    def __call__(self) -> None:
        if self._trim is not None:
            self._trim(0)


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own C library
    except (OSError, AttributeError):  # musl has none
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


def crash_report(app: App[int]) -> None:
    """Textual's crash report, without the local variables of every frame: a frame of the API client holds the
    request headers, and a crash report is what users paste into issues. Called, while the exception is being
    handled, in place of Textual's own (see textual_internals.report_crashes_with); ``App.panic`` ends the app and
    prints the report once the terminal is restored, as Textual's own does."""
    from rich.traceback import Traceback

    app.bell()
    app.panic(Traceback(show_locals=False, width=None))
