"""The benchmark runs and measures what it says, at tiny sizes.

No figure is asserted: benchmarks print, tests don't time.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from benchmarks import bench

pytestmark = pytest.mark.slow  # benchmarks at tiny sizes, real processes: pytest -m slow (CI runs them)


def test_workload_churn_closes_and_opens_the_asked_share_of_connections() -> None:
    work = bench.Workload(400)
    before = {c["id"] for cs in work.clients.values() for client in cs for c in client["conns"]}
    start = work.now
    work.step(0.05)
    after = {c["id"] for cs in work.clients.values() for client in cs for c in client["conns"]}
    assert work.now - start == timedelta(seconds=bench.POLL_SECONDS)
    assert len(before - after) == len(after - before) == round(len(before) * 0.05)
    work.step(0.0)
    assert {c["id"] for cs in work.clients.values() for client in cs for c in client["conns"]} == after


async def test_polls_go_through_the_source_and_reuse_unchanged_records() -> None:
    work = bench.Workload(200)
    first, _ = await work.snapshot()
    work.step(0.0)
    second, _ = await work.snapshot()
    assert sum(len(c.conns) for t in second.tunnels for c in t.connectors or ()) == work.connections
    assert all(a is b for a, b in zip(first.tunnels, second.tunnels, strict=True)), "unchanged tunnels are reused"
    work.step(0.02)
    third, _ = await work.snapshot()
    assert any(a is not b for a, b in zip(second.tunnels, third.tunnels, strict=True))


async def test_measure_size_fills_every_figure() -> None:
    figures = await bench.measure_size(60, polls=2, warmup=1, naive=True)
    summary = figures.summary()
    assert summary["connections"] > 0 and summary["rows_shown"] >= summary["connections"]
    measured = (figures.ui_churn_ms, figures.ui_still_ms, figures.naive_ms, figures.overview_ms)
    assert [len(m) for m in measured] == [2, 2, 2, 2]
    assert len(figures.change_ms) == 1 + 2 + 3 and len(figures.expiry_ms) == 2
    for name in ("parse_ms", "change_ms", "ui_still_ms", "ui_churn_ms", "overview_ms", "naive_ms", "rss_mb"):
        assert summary[name] >= 0, name
    assert summary["churn_bytes"] > 0, "a churn poll draws something"


def test_command_prints_a_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--sizes", "50", "--polls", "1", "--warmup", "0", "--no-processes", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (size,) = report["sizes"]
    assert size["connections"] > 0 and size["naive_ms"] > 0


def test_once_cold_runs_the_real_command_against_the_loopback_server() -> None:
    (seconds,) = bench.once_cold(runs=1)
    assert 0 < seconds < 30


def test_live_run_sees_the_first_data_row_in_a_pseudo_terminal() -> None:
    with bench._scale_server(100) as server:
        run = bench.live_run(server, idle_seconds=0.5, timeout=60)
    assert 0 < run.first_paint_s < 60
    assert run.rss_mb > 0 and run.idle_cpu_percent is not None


async def test_the_live_view_is_driven_through_every_workload_step() -> None:
    from benchmarks import live

    figures = await live.run(200, "huge")
    assert figures["connections"] == 200 and figures["tunnels"] == 1
    assert figures["failover_moved"] == 16
    steps = ("first_row", "unchanged_poll", "failover", "sort", "filter_typed", "filter_applied", "filter_cleared")
    for step in (*steps, "focus_moved", "events_shown", "events_poll", "help_shown", "help_closed", "colos_shown",
                 "colos_closed"):
        assert figures[f"{step}_s"] > 0 and figures[f"{step}_stall_ms"] >= 0, step


async def test_the_soak_drives_its_rounds_and_logs_the_collector() -> None:
    import gc

    from benchmarks import soak

    figures = await soak.run(200, 10)
    assert figures["connections"] == 200 and figures["rounds"] == 10
    assert figures["longest_stall_ms"] >= 0 and len(figures["rss_mb"]) == 1
    assert all(full["round"] < 10 and full["ms"] >= 0 for full in figures["full_collections"])
    assert soak.CollectorLog not in map(type, gc.callbacks), "its collector log is taken off after the run"


def test_once_and_its_floor_make_the_same_requests_and_both_write_json() -> None:
    from benchmarks import once

    figures = once.run(100, rounds=1)
    assert figures["requests"] >= 2 and figures["cpu_ratio"] > 0
    assert figures["output_bytes"]["floor"] > 0 and figures["output_bytes"]["tunneltop"] > 0
