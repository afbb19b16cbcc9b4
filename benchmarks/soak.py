"""A live view kept busy for a while: what the five steps of ``benchmarks.live`` do not show.

``python -m benchmarks.soak --connections 10000 --rounds 150`` drives the real app (headless, 200x50) against the
Cloudflare stand-in in a process of its own: each round a failover (8% of the connections close, as many open at
another colo) and a poll, and every other round ``/NRT`` typed and cleared. It prints one JSON document:

- ``stalls_over_50ms``: the rounds whose longest event-loop stall (the lag monitor of ``benchmarks.live``) was over
  50 ms, with that stall, and ``longest_stall_ms`` over them all;
- ``full_collections``: each full (oldest generation) collection of the cyclic collector, on any thread: the round,
  how long it held the GIL (everything waits, the screen too), and how many objects it freed; and the longest
  collection of each generation;
- ``rss_mb``: the app's resident set every 10 rounds.

Five steps hide what builds up: cyclic garbage (Textual's strips cache themselves) and records replaced since the
heap was last frozen wait in the oldest generation for a full collection, which comes every so many rounds and
walks all of it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import threading
import time
from typing import Any

from benchmarks.live import FAILOVER_AFTER_S, FAILOVER_SHARE, TERMINAL, LagMonitor, _until, rss_mb
from benchmarks.standin import SERVERS, open_standin


class CollectorLog:
    """Every collection's length, by generation, on whichever thread it runs; the full ones one by one."""

    def __init__(self) -> None:
        self.round = -1
        self.longest = {0: 0.0, 1: 0.0, 2: 0.0}
        self.full: list[dict[str, Any]] = []
        self._started: dict[int, float] = {}

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        thread = threading.get_ident()
        if phase == "start":
            self._started[thread] = time.perf_counter()
            return
        started = self._started.pop(thread, None)
        if started is None:
            return
        spent = (time.perf_counter() - started) * 1000
        generation = info["generation"]
        self.longest[generation] = max(self.longest[generation], spent)
        if generation == 2:
            name = threading.current_thread().name
            self.full.append({"round": self.round, "ms": round(spent), "freed": info["collected"], "thread": name})


async def run(connections: int, rounds: int, server: str = "process") -> dict[str, Any]:
    from tunneltop.poll.target import Target
    from tunneltop.ui.app import TunneltopApp

    standin = open_standin(server, connections, "huge")
    refs = standin.refs
    target = Target(standin.base_url, standin.credentials, standin.account_id, refs, transport=standin.transport)
    app = TunneltopApp(target, interval=3600.0, start_view="monitor")
    log = CollectorLog()
    lag = LagMonitor()
    stalls: list[dict[str, Any]] = []
    rss: list[float] = []
    longest = 0.0
    gc.callbacks.append(log)
    try:
        async with app.run_test(size=TERMINAL, headless=True) as pilot:
            lag.start()
            await _until(pilot, lambda: app.table.row_count > 0 and not app.monitor.redrawing)
            lag.take()
            for index in range(rounds):
                log.round = index
                standin.failover(FAILOVER_SHARE, FAILOVER_AFTER_S + index)
                polls = app.poll_count
                await pilot.press("r")
                await _until(pilot, lambda polls=polls: app.poll_count > polls and not app.monitor.redrawing)
                if index % 2:
                    await pilot.press("slash", "N", "R", "T")
                    await pilot.pause()
                    await pilot.press("escape")
                    await _until(pilot, lambda: not app.monitor.redrawing)
                stall = lag.take()
                longest = max(longest, stall)
                if stall > 50:
                    stalls.append({"round": index, "ms": round(stall)})
                if index % 10 == 9:
                    rss.append(round(rss_mb()))
            lag.stop()
    finally:
        gc.callbacks.remove(log)
        standin.close()
    return {
        "connections": standin.connections,
        "rounds": rounds,
        "gc_thresholds": gc.get_threshold(),
        "longest_stall_ms": round(longest),
        "stalls_over_50ms": stalls,
        "full_collections": log.full,
        "longest_collection_ms": {generation: round(ms) for generation, ms in log.longest.items()},
        "rss_mb": rss,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--server", choices=SERVERS, default="process")
    args = parser.parse_args(argv)
    from tunneltop.ui.lifecycle import tune_gc

    tune_gc()  # as run_app() does for the real app
    print(json.dumps(asyncio.run(run(args.connections, args.rounds, args.server))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
