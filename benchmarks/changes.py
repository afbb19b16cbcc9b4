"""Change-engine figures: ``python -m benchmarks.changes --bench`` times diff and apply on two large polls."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tunneltop.changes.events import ChangeEvent, apply, diff
from tunneltop.model.records import Connector, Tunnel
from tunneltop.model.snapshot import Snapshot, TunnelState

# -- benchmark ----------------------------------------------------------------------------------------------------


def _bench_snapshots(connections: int, churn: float, seed: int) -> tuple[Snapshot, Snapshot]:
    """Two independently parsed polls of ``connections`` connections (10 connectors x 4 per tunnel), ``churn``
    of the connections changed: half went pending, half closed and replaced by a new one."""
    import random

    rng = random.Random(seed)
    per_tunnel = 40
    raw: list[dict[str, Any]] = []
    for t in range(max(1, connections // per_tunnel)):
        clients = []
        for c in range(per_tunnel // 4):
            conns = [
                {
                    "id": f"conn-{t}-{c}-{k}",
                    "uuid": f"conn-{t}-{c}-{k}",
                    "client_id": f"client-{t}-{c}",
                    "client_version": "2025.1.0",
                    "colo_name": ("DFW", "LAX")[k % 2],
                    "origin_ip": f"203.0.113.{c + 1}",
                    "opened_at": "2025-01-01T00:00:00.000000Z",
                    "is_pending_reconnect": False,
                }
                for k in range(4)
            ]
            clients.append(
                {
                    "id": f"client-{t}-{c}",
                    "arch": "linux_amd64",
                    "version": "2025.1.0",
                    "run_at": "2025-01-01T00:00:00.000000Z",
                    "config_version": 3,
                    "features": ["ha-origin", "serialized_headers"],
                    "conns": conns,
                }
            )
        raw.append({"tunnel": {"id": f"tunnel-{t}", "name": f"tunnel-{t}", "status": "healthy"}, "clients": clients})

    def build(data: list[dict[str, Any]], at: datetime) -> Snapshot:
        states = tuple(
            TunnelState(Tunnel.model_validate(d["tunnel"]), tuple(Connector.model_validate(c) for c in d["clients"]))
            for d in data
        )
        return Snapshot("bench", at, states)

    import copy

    changed = copy.deepcopy(raw)
    all_conns = [(client, i) for d in changed for client in d["clients"] for i in range(len(client["conns"]))]
    for n, (client, i) in enumerate(rng.sample(all_conns, int(len(all_conns) * churn))):
        if n % 2:
            client["conns"][i] = {**client["conns"][i], "is_pending_reconnect": True}
        else:
            client["conns"][i] = {**client["conns"][i], "id": f"new-{n}", "uuid": f"new-{n}"}
    return build(raw, datetime(2025, 1, 1, tzinfo=UTC)), build(changed, datetime(2025, 1, 1, 0, 0, 5, tzinfo=UTC))


def bench(connections: int = 10_000, churn: float = 0.01, rounds: int = 30) -> dict[str, float]:
    """Median milliseconds of ``diff`` and ``apply`` on two polls (a script figure, not a test assertion)."""
    import statistics
    import time

    old, new = _bench_snapshots(connections, churn, seed=1)
    timings: dict[str, list[float]] = {"diff_ms": [], "apply_ms": [], "unchanged_diff_ms": []}
    _, same = _bench_snapshots(connections, 0.0, seed=1)
    events: list[ChangeEvent] = []
    for _ in range(rounds):
        start = time.perf_counter()
        events = diff(old, new)
        timings["diff_ms"].append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        apply(old, events)
        timings["apply_ms"].append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        diff(old, same)
        timings["unchanged_diff_ms"].append((time.perf_counter() - start) * 1000)
    figures = {name: statistics.median(values) for name, values in timings.items()}
    figures["events"] = len(events)
    return figures


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.changes", description="change engine figures")
    parser.add_argument("--bench", action="store_true", help="time diff/apply on two 10,000-connection polls")
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--churn", type=float, default=0.01)
    options = parser.parse_args()
    if not options.bench:
        parser.error("nothing to do: pass --bench")
    result = bench(options.connections, options.churn)
    print(
        f"{options.connections} connections, {options.churn:.1%} churn -> {result['events']:.0f} events: "
        f"diff {result['diff_ms']:.2f} ms, apply {result['apply_ms']:.2f} ms, "
        f"diff of identical polls {result['unchanged_diff_ms']:.2f} ms (medians)"
    )
