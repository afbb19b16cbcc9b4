"""What a Prometheus scrape of ``tunneltop serve`` costs at 100, 1,000 and 10,000 connections.

    .venv/bin/python -m benchmarks.serve

The snapshot is the simulator's scale scenario (2 connectors x 4 connections per tunnel, as benchmarks/bench.py
sizes it), its records validated as the client does; the scrape is the real ``/metrics`` handler over real HTTP
on 127.0.0.1. Printed per
size: the series and bytes of one scrape, the first scrape after a poll (the per-snapshot series are built then)
and the following ones (served from them), as wall-clock milliseconds, median of the runs.
"""

from __future__ import annotations

import asyncio
import io
import statistics
import time
from dataclasses import replace

import httpx

from benchmarks.bench import SIZES, START, tunnels_for
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID, SimulatedAccount
from tunneltop.model.parse import parse_connectors, parse_many
from tunneltop.model.records import Tunnel
from tunneltop.model.snapshot import Snapshot, TunnelState
from tunneltop.poll.target import Target
from tunneltop.serve.poller import Poller
from tunneltop.serve.server import ServeApp, start

RUNS = 15


def scale_snapshot(connections: int) -> Snapshot:
    sim = SimulatedAccount(seed=11, start=START, tunnels=tunnels_for(connections))
    sim.freeze()
    tunnels, _ = parse_many(Tunnel, [t for t in sim.list_tunnels() if t["deleted_at"] is None], "tunnel")
    states = tuple(TunnelState(t, tuple(parse_connectors(sim.clients(t.id))[0])) for t in tunnels)
    return Snapshot(DEMO_ACCOUNT_ID, START, states)


async def measure(connections: int) -> dict[str, float]:
    snapshot = scale_snapshot(connections)
    poller = Poller(Target("http://127.0.0.1:9/unused", None), 5.0, err=io.StringIO())
    runner, bound = await start(ServeApp(poller), "127.0.0.1", 0)
    first: list[float] = []
    cached: list[float] = []
    body = b""
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{bound[0][1]}") as http:
            for _ in range(RUNS):
                # A poll where every tunnel changed (new state objects): the next scrape builds their series again.
                tunnels = tuple(replace(state) for state in snapshot.tunnels)
                poller.snapshot = snapshot = Snapshot(snapshot.account_id, START, tunnels)
                for timings in (first, cached, cached):
                    started = time.perf_counter()
                    response = await http.get("/metrics")
                    timings.append((time.perf_counter() - started) * 1000)
                    body = response.content
    finally:
        await runner.cleanup()
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return {
        "connections": sum(len(c.conns) for t in snapshot.tunnels for c in t.connectors or ()),
        "tunnels": len(snapshot.tunnels),
        "series": series,
        "kib": len(body) / 1024,
        "first_ms": statistics.median(first),
        "cached_ms": statistics.median(cached),
    }


def main() -> None:
    print(f"{'connections':>11} {'tunnels':>7} {'series':>7} {'KiB':>7} {'first scrape ms':>15} {'next ms':>8}")
    for size in SIZES:
        row = asyncio.run(measure(size))
        print(
            f"{row['connections']:>11,} {row['tunnels']:>7,} {row['series']:>7,} {row['kib']:>7.0f} "
            f"{row['first_ms']:>15.1f} {row['cached_ms']:>8.1f}"
        )


if __name__ == "__main__":
    main()
