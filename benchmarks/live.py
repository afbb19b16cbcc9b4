"""The live view as a user feels it: the real app, its real poll (HTTP through the client, decode, validation,
change detection, rows, table, tree), driven by keys, with an event-loop lag monitor.

``python -m benchmarks.live --connections 10000 --shape huge`` prints one JSON document. Each run is its own
process (``benchmarks.bench`` starts one per workload), so memory figures and caches do not mix.

Shapes: ``huge`` is one tunnel holding every connection (cloudflared's 4 connections per connector, over a few
colos), ``many`` is the scale scenario's many small tunnels (2 connectors x 4 connections each), all named.

What is timed, each from the key (or the poll's start) until the app is idle again with the frame composed
(``Pilot.pause``; headless, so the frame's bytes are not written), in wall seconds, and what the lag monitor saw
meanwhile (the longest time the event loop did not get to run a 10 ms timer: keys, the clock and ``q`` wait that
long):

- the first poll: app start until the first data row is in the table;
- an unchanged poll (``r``);
- a failover: 8% of the connections close and as many open at another colo (new ids), then ``r``;
- ``/NRT`` typed (the filter applies as typed) and ``esc`` (the filter cleared), with a poll running meanwhile.

``--engine plain`` runs the poll engine on the app's own event loop (as before issue 16), ``threaded`` (the
default, what the app does) on a thread of its own (``poll/threaded.py``). ``floor_ms``: what a bare client spends
on one poll's data in the same process just before, the tunnel's connections read through the same transport and
decoded by ``json.loads`` (median of three): stalls over it (``*_stall_x``) compare across loads and machines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID, SimulatedAccount, rfc3339
from tunneltop.demo.transport import DEMO_BASE_URL, DemoTransport

TERMINAL = (200, 50)
PER_CONNECTOR = 4
COLOS = (("DFW", "IAH"), ("ORD", "DFW"), ("NRT", "KIX"), ("AMS", "FRA"), ("LAX", "SJC"))
FAILOVER_SHARE = 0.08
HUGE_NAME = "prod-huge-00000"


def _conn(rng: Random, client: dict[str, Any], colo: str, opened: datetime) -> dict[str, Any]:
    conn_id = f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4000-8000-{rng.getrandbits(48):012x}"
    return {
        "colo_name": colo,
        "id": conn_id,
        "is_pending_reconnect": False,
        "origin_ip": client["_ip"],
        "opened_at": rfc3339(opened),
        "client_id": client["id"],
        "client_version": client["version"],
        "uuid": conn_id,
    }


def huge_clients(connections: int, start: datetime, seed: int = 5) -> list[dict[str, Any]]:
    """One tunnel's connectors for ``connections`` connections: 4 per connector, two colos each."""
    rng = Random(seed)
    clients = []
    for index in range((connections + PER_CONNECTOR - 1) // PER_CONNECTOR):
        client: dict[str, Any] = {
            "id": f"{index:08x}-c0de-4000-8000-{rng.getrandbits(48):012x}",
            "features": ["ha-origin", "serialized_headers"],
            "version": "2025.4.0",
            "arch": "linux_amd64",
            "config_version": 3,
            "run_at": rfc3339(start - timedelta(hours=2, seconds=index)),
            "conns": [],
            "_ip": f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}",
        }
        pair = COLOS[index % len(COLOS)]
        for n in range(min(PER_CONNECTOR, connections - index * PER_CONNECTOR)):
            client["conns"].append(_conn(rng, client, pair[n % 2], start - timedelta(hours=1)))
        clients.append(client)
    for client in clients:
        client.pop("_ip")
    return clients


def failover(sim: SimulatedAccount, tunnel_id: str, share: float, now: datetime, seed: int = 9) -> int:
    """``share`` of the tunnel's connections close and reopen at another colo with new ids (a colo failover)."""
    rng = Random(seed)
    clients = sim.live_clients(tunnel_id)
    slots = [(client, i) for client in clients for i in range(len(client["conns"]))]
    moved = rng.sample(slots, round(len(slots) * share))
    for client, i in moved:
        old = client["conns"][i]
        colo = "ORD" if old["colo_name"] != "ORD" else "DFW"
        client["_ip"] = old["origin_ip"]
        client["conns"][i] = _conn(rng, client, colo, now)
        client.pop("_ip")
    return len(moved)


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


async def floor_ms(transport: DemoTransport, account_id: str, tunnel_id: str) -> float:
    """One poll's data for a bare client: the tunnel's connections, read and decoded (ms, median of three)."""
    import httpx

    path = f"/accounts/{account_id}/cfd_tunnel/{tunnel_id}/connections"
    spent = []
    async with httpx.AsyncClient(transport=transport, base_url=DEMO_BASE_URL) as http:
        for _ in range(3):
            started = time.perf_counter()
            json.loads((await http.get(path.lstrip("/"))).content)
            spent.append((time.perf_counter() - started) * 1000)
    return sorted(spent)[1]


def _rss_mb() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def _until(pilot: Any, condition: Callable[[], bool], limit: float = 600.0) -> None:
    """Pause until ``condition`` holds (a benchmark may wait; it gives up after ``limit`` seconds)."""
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > limit:
            raise RuntimeError("the app did not get there in time")
        await pilot.pause(0.005)
    await pilot.pause()


async def run(connections: int, shape: str = "huge", engine: str = "threaded") -> dict[str, Any]:
    from tunneltop.poll.engine import STARTUP_BURST, PollEngine
    from tunneltop.poll.target import Target
    from tunneltop.ui.app import TunneltopApp

    start = datetime.now(UTC).replace(microsecond=0)
    if shape == "huge":
        sim = SimulatedAccount(seed=3, start=start, tunnels=0)
        tunnel_id = sim.add_tunnel(HUGE_NAME, clients=huge_clients(connections, start))["id"]
        refs = [HUGE_NAME]
    else:
        per_tunnel = 8
        sim = SimulatedAccount(seed=3, start=start, tunnels=max(1, round(connections / per_tunnel / 0.96)))
        tunnel_id = next(t for t in sim.tunnel_ids() if sim.live_clients(t))
        refs = list(sim.tunnel_ids())
    sim.freeze()
    fake = FakeCloudflare(sim, require_auth=False, rate_limit=10**9)
    target = Target(DEMO_BASE_URL, None, DEMO_ACCOUNT_ID, refs, transport=DemoTransport(fake))
    floor = await floor_ms(DemoTransport(fake), DEMO_ACCOUNT_ID, tunnel_id)
    fake.requests.clear()
    plain = None
    if engine == "plain":  # what api_source made before issue 16, given to the app as its source
        plain = PollEngine(target.client(), DEMO_ACCOUNT_ID, refs, interval=3600.0, min_burst=STARTUP_BURST, reach=True)
    app = TunneltopApp(target, source=plain, interval=3600.0, start_view="monitor")
    figures: dict[str, Any] = {
        "shape": shape,
        "engine": engine,
        "connections": sim.connection_count(),
        "tunnels": len(refs),
        "floor_ms": floor,
    }
    lag = LagMonitor()

    async def timed(name: str, action: Callable[[], Awaitable[None]], done: Callable[[], bool]) -> None:
        await pilot.pause()
        lag.take()
        started = time.perf_counter()
        await action()
        await _until(pilot, done)
        figures[f"{name}_s"] = time.perf_counter() - started
        figures[f"{name}_stall_ms"] = lag.take()

    started = time.perf_counter()
    async with app.run_test(size=TERMINAL, headless=True) as pilot:
        lag.start()
        await _until(pilot, lambda: app.table.row_count > 0)
        figures["first_row_s"] = time.perf_counter() - started
        figures["first_row_stall_ms"] = lag.take()
        figures["stale_after_first"] = app.is_stale()
        polls = app.poll_count

        async def refresh() -> None:
            nonlocal polls
            polls = app.poll_count
            await pilot.press("r")

        await timed("unchanged_poll", refresh, lambda: app.poll_count > polls)
        moved = failover(sim, tunnel_id, FAILOVER_SHARE, start + timedelta(seconds=30))
        figures["failover_moved"] = moved
        await timed("failover", refresh, lambda: app.poll_count > polls)
        shown = app.table.row_count

        async def type_filter() -> None:
            await pilot.press("slash", "N", "R", "T")

        await timed("filter_typed", type_filter, lambda: app.table.row_count < shown)
        await pilot.press("enter")

        async def clear_during_poll() -> None:
            await refresh()
            await pilot.press("escape")

        back = lambda: app.table.row_count == shown and app.poll_count > polls  # noqa: E731
        await timed("filter_cleared", clear_during_poll, back)
        figures["rss_mb"] = _rss_mb()
        lag.stop()
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
    args = parser.parse_args(argv)
    from tunneltop.ui.lifecycle import tune_gc

    tune_gc()  # as run_app() does for the real app
    print(json.dumps(asyncio.run(run(args.connections, args.shape, args.engine))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
