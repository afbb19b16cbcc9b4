"""The live view as a user feels it: the real app, its real poll (HTTP through the client, decode, validation,
change detection, rows, table, tree), driven by keys, with an event-loop lag monitor.

``python -m benchmarks.live --connections 10000 --shape huge`` prints one JSON document. Each run is its own
process (``benchmarks.bench`` starts one per workload), so memory figures and caches do not mix.

Shapes: ``huge`` is one tunnel holding every connection (cloudflared's 4 connections per connector, over a few
colos), ``many`` is the scale scenario's many small tunnels (2 connectors x 4 connections each), all named.

What is timed, each from the key (or the poll's start) until the app is idle again with the frame composed
(``Pilot.pause``; headless, so the frame's bytes are not written) and the change is on screen (a large view's
redraw is worked out on a thread and taken in after the poll is applied: until ``monitor.redrawing`` is over), in
wall seconds, and what the lag monitor saw
meanwhile (the longest time the event loop did not get to run a 10 ms timer: keys, the clock and ``q`` wait that
long):

- the first poll: app start until the first data row is in the table;
- an unchanged poll (``r``);
- a failover: 8% of the connections close and as many open at another colo (new ids), then ``r``;
- ``s``: the next sort column;
- ``/NRT`` typed (the filter applies as typed), ``enter`` (the box closes and the view has the keys again) and
  ``esc`` (the filter cleared), with a poll running meanwhile;
- ``shift+tab`` (the focus from the table to the tree), ``e`` (the event log shown, with the focus), and a poll
  with the log open that brings events (the same share of connections changes colo);
- ``?`` (the help shown over the view) and ``esc``, then ``c`` (the colo picker) and ``esc``.

``--server process`` (the default) polls the Cloudflare stand-in over real HTTP on 127.0.0.1, served by a process
of its own (``benchmarks/standin.py``): a user's Cloudflare is not in their process, and the stand-in's encoding of
a large answer must not hold the app's GIL. ``--server inprocess`` is the old way, the stand-in behind an in-process
transport (its work shows up as the app's stalls, and its account in ``rss_mb``). The failover changes the
stand-in's account, wherever it runs. ``*_requests``: how many requests the stand-in received during each step,
counted at its side.

``--engine plain`` runs the poll engine on the app's own event loop (as before issue 16), ``threaded`` (the
default, what the app does) on a thread of its own (``poll/threaded.py``). ``floor_ms``: what a bare client
(plain httpx, ``json.loads``) spends in this process just before on one poll's data, the tunnel's connections read
from the same stand-in the same way (median of three): stalls over it (``*_stall_x``) compare across loads and
machines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.standin import HUGE_NAME as HUGE_NAME  # benchmarks.once builds the same tunnel
from benchmarks.standin import SERVERS, StandIn, open_standin
from benchmarks.standin import huge_clients as huge_clients

TERMINAL = (200, 50)
FAILOVER_SHARE = 0.08
FAILOVER_AFTER_S = 30.0  # the new connections' opened_at, after the account's start


class LagMonitor:
    """A 10 ms timer on the app's event loop: how late it fires is how long the loop was blocked."""

    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.period)
            self.longest = max(self.longest, loop.time() - before - self.period)

    def take(self) -> float:
        """The longest stall since the last take, in ms."""
        longest, self.longest = self.longest, 0.0
        return longest * 1000

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def floor_ms(standin: StandIn) -> float:
    """One poll's data for a bare client: the tunnel's connections, read from the stand-in the way the app reads it
    and decoded (ms, median of three)."""
    import httpx

    path = f"accounts/{standin.account_id}/cfd_tunnel/{standin.tunnel_id}/connections"
    headers = standin.credentials.headers() if standin.credentials is not None else {}
    spent = []
    base_url = standin.base_url.rstrip("/") + "/"
    async with httpx.AsyncClient(transport=standin.transport, base_url=base_url, headers=headers) as http:
        for _ in range(3):
            started = time.perf_counter()
            answer = await http.get(path)
            answer.raise_for_status()
            json.loads(answer.content)
            spent.append((time.perf_counter() - started) * 1000)
            del answer
    # httpx's Response and its stream refer to each other: without a collection here, the floor's answers (33 MB
    # each at 100,000 connections) stayed in the app's RSS until a full collection happened to come.
    gc.collect()
    return sorted(spent)[1]


def rss_mb() -> float:
    """This process's resident set now, in MB (0 where /proc is not there)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def _until(pilot: Any, condition: Callable[[], bool], limit: float = 600.0) -> None:
    """Wait until ``condition`` holds, then until the screen shows it (a benchmark may wait; it gives up after
    ``limit`` seconds).

    Meanwhile the app runs as it would on a terminal: it draws on its screen's own timer. ``pilot.pause`` would
    post a callback to every widget and draw the screen each time, every 5 ms here, work no user's app does: at
    10,000 connections it added to the stalls measured (first row 20-38 ms against 16-30 ms without, 6 interleaved
    runs). One pause at the end waits for the widgets and draws the frame that shows the condition."""
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > limit:
            raise RuntimeError("the app did not get there in time")
        await asyncio.sleep(0.005)
    await pilot.pause()


async def run(
    connections: int, shape: str = "huge", engine: str = "threaded", server: str = "process"
) -> dict[str, Any]:
    standin = open_standin(server, connections, shape)
    try:
        return await _drive(standin, shape, engine)
    finally:
        standin.close()


async def _drive(standin: StandIn, shape: str, engine: str) -> dict[str, Any]:
    from tunneltop.poll.engine import STARTUP_BURST, PollEngine
    from tunneltop.poll.target import Target
    from tunneltop.ui.app import TunneltopApp
    from tunneltop.ui.screens import ColoPicker, HelpScreen

    refs = standin.refs
    target = Target(standin.base_url, standin.credentials, standin.account_id, refs, transport=standin.transport)
    floor = await floor_ms(standin)
    plain = None
    if engine == "plain":  # what api_source made before issue 16, given to the app as its source
        plain = PollEngine(target.client(), standin.account_id, refs, interval=3600.0, min_burst=STARTUP_BURST,
                           reach=True)
    app = TunneltopApp(target, source=plain, interval=3600.0, start_view="monitor")
    figures: dict[str, Any] = {
        "shape": shape,
        "engine": engine,
        "server": standin.kind,
        "connections": standin.connections,
        "tunnels": len(refs),
        "floor_ms": floor,
    }
    lag = LagMonitor()

    async def timed(name: str, action: Callable[[], Awaitable[None]], done: Callable[[], bool]) -> None:
        await pilot.pause()
        before = standin.requests()  # a round trip to the stand-in: before the lag monitor's window opens
        lag.take()
        started = time.perf_counter()
        await action()
        await _until(pilot, done)
        figures[f"{name}_s"] = time.perf_counter() - started
        figures[f"{name}_stall_ms"] = lag.take()
        figures[f"{name}_requests"] = standin.requests() - before

    try:
        before = standin.requests()
        started = time.perf_counter()
        async with app.run_test(size=TERMINAL, headless=True) as pilot:
            lag.start()
            # getattr: the same benchmark also measures the code before redraws went to a thread (no redrawing).
            await _until(pilot, lambda: app.table.row_count > 0 and not getattr(app.monitor, "redrawing", False))
            figures["first_row_s"] = time.perf_counter() - started
            figures["first_row_stall_ms"] = lag.take()
            figures["first_row_requests"] = standin.requests() - before
            figures["stale_after_first"] = app.is_stale()
            polls = app.poll_count

            async def refresh() -> None:
                nonlocal polls
                polls = app.poll_count
                await pilot.press("r")

            # Done when the poll is applied and the screen shows it: a large view's redraw is worked out on a
            # thread of its own (ui/monitor_view.py) and taken in after the poll is applied.
            shown_now = lambda: app.poll_count > polls and not getattr(app.monitor, "redrawing", False)  # noqa: E731
            await timed("unchanged_poll", refresh, shown_now)
            figures["failover_moved"] = standin.failover(FAILOVER_SHARE, FAILOVER_AFTER_S)
            await timed("failover", refresh, shown_now)
            shown = app.table.row_count
            sorted_by = app.table.sort_column

            async def cycle_sort() -> None:
                await pilot.press("s")

            await timed("sort", cycle_sort, lambda: app.table.sort_column != sorted_by and not getattr(
                app.monitor, "redrawing", False))

            async def type_filter() -> None:
                await pilot.press("slash", "N", "R", "T")

            await timed("filter_typed", type_filter, lambda: app.table.row_count < shown)

            async def apply_filter() -> None:
                await pilot.press("enter")

            # Done when the box has closed and the view has the keys again.
            await timed("filter_applied", apply_filter, lambda: not app.filter_bar.is_open and app.focused is not None
                        and app.focused in app.view_widgets())

            async def clear_during_poll() -> None:
                await refresh()
                await pilot.press("escape")

            back = lambda: app.table.row_count == shown and shown_now()  # noqa: E731
            await timed("filter_cleared", clear_during_poll, back)

            # Timed since 2026-12-02 (evening), and last, so the steps above run as they always did: the focus moved
            # back to the tree, the event log shown, and a poll with the log open that brings events (the same
            # connections move back to the colo they came from).
            async def focus_tree() -> None:
                await pilot.press("shift+tab")

            await timed("focus_moved", focus_tree, lambda: app.focused is app.client_tree)
            log = app.main_screen.query_one("#events")

            async def show_events() -> None:
                await pilot.press("e")

            await timed("events_shown", show_events, lambda: bool(log.display) and app.focused is log)
            figures["events_poll_moved"] = standin.failover(FAILOVER_SHARE, 2 * FAILOVER_AFTER_S)
            await timed("events_poll", refresh, shown_now)

            # Timed since 2026-12-03, last again: the two keys that put a screen over the view, each closed after.
            def press(key: str) -> Callable[[], Awaitable[None]]:
                async def action() -> None:
                    await pilot.press(key)

                return action

            await timed("help_shown", press("question_mark"), lambda: isinstance(app.screen, HelpScreen))
            await timed("help_closed", press("escape"), lambda: app.screen is app.main_screen)
            await timed("colos_shown", press("c"), lambda: isinstance(app.screen, ColoPicker))
            await timed("colos_closed", press("escape"), lambda: app.screen is app.main_screen)
            # At rest: what the app holds once the steps' work is done (a large redraw's memory is handed back to
            # the system by a worker after it is taken in: ui/lifecycle.MemoryTrim).
            await app.workers.wait_for_complete()
            await pilot.pause()
            figures["rss_mb"] = rss_mb()
            lag.stop()
    finally:
        if plain is not None:
            await plain.client.aclose()
    for name in [key for key in figures if key.endswith("_stall_ms")]:
        figures[name.removesuffix("_ms") + "_x"] = round(figures[name] / floor, 1)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.live", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--shape", choices=("huge", "many"), default="huge")
    parser.add_argument("--engine", choices=("threaded", "plain"), default="threaded")
    parser.add_argument(
        "--server", choices=SERVERS, default="process",
        help="the Cloudflare stand-in in a process of its own, polled over loopback HTTP (the default), or in the "
        "app's process behind an in-process transport (as before)",
    )
    args = parser.parse_args(argv)
    from tunneltop.ui.lifecycle import tune_gc

    tune_gc()  # as run_app() does for the real app
    print(json.dumps(asyncio.run(run(args.connections, args.shape, args.engine, args.server))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
