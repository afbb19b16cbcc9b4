"""--watch keeps to the request budget, measured at the stand-in: at a tiny interval polls come as often as a request
may go, each fetching only what the budget allows, and the busiest 60 seconds never exceed the budget.

Every test runs the real ``watch_stream`` loop on the simulated clock of ``tests/support/budget.py`` (the stand-in, the
client and its gate read one ``FakeClock``; the stream's sleep between polls advances it), so minutes pass in a
fraction of a second and nothing depends on how loaded the machine is.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest

from tests.support.budget import T0, Stand, assert_within, connection_times, max_in_window
from tests.support.budget import watch as watch_on_fake_clock
from tests.support.clock import FakeClock
from tunneltop.poll.engine import STARTUP_BURST

INTERVAL = 0.05


async def watch(
    stand: Stand, monkeypatch: pytest.MonkeyPatch, seconds: float, *, refs: Sequence[str] = (), budget: int = 60
) -> tuple[list[dict[str, Any]], list[float]]:
    """``watch_stream`` every 50 ms for ``seconds`` of fake time (see tests/support/budget.watch)."""
    return await watch_on_fake_clock(stand, monkeypatch, seconds, interval=INTERVAL, refs=refs, budget=budget)


def active_ids(stand: Stand) -> list[str]:
    return [t["id"] for t in stand.sim.iter_tunnels() if t["deleted_at"] is None and t["status"] != "inactive"]


def longest_gap(times: list[float], end: float) -> float:
    """The longest time without a fetch, from the start to ``end``."""
    return max(b - a for a, b in itertools.pairwise([T0, *times, end]))


async def test_a_tiny_interval_polls_as_the_budget_allows_and_never_over_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # One demo poll would be 1 list + 5 connection calls; at 50 ms that is far over 120 a minute. The polls come
    # as often as a request may go, each fetching what the budget allows, and every tunnel keeps being refreshed.
    stand = Stand(FakeClock(T0), freeze=True)
    lines, slept = await watch(stand, monkeypatch, 300.0, budget=120)
    assert lines[0]["kind"] == "baseline" and lines[0]["tunnels"] == 6
    assert lines[0]["api"]["limit_per_minute"] == 120
    got = assert_within(stand.times(), 120)
    stand.assert_no_side_door()
    assert min(slept) >= INTERVAL, "a poll came sooner than the interval"
    assert len(slept) >= 300, f"{len(slept)} polls in 300 s: the budget held them back more than it must"
    assert got.total >= 540, got  # and the budget is used
    # Half the budget goes to the list (once a second), half to the 5 tunnels that ran: each about every 5 s. The
    # list never takes every token: each keeps being refreshed.
    for tunnel_id in active_ids(stand):
        times = connection_times(stand, tunnel_id)
        assert len(times) >= 40 and longest_gap(times, stand.clock.now) <= 30.0, (tunnel_id, len(times))


async def test_a_large_account_gets_list_status_rather_than_a_burst_over_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stand = Stand(FakeClock(T0), tunnels=100, freeze=True)
    lines, _ = await watch(stand, monkeypatch, 300.0, budget=60)
    # 100 tunnels exceed a minute's budget of 60: the first poll reads the list (health first) and no more than a
    # screenful of connections, and the baseline says what it sent.
    times = stand.times()
    first = [t for t in times if t == T0]
    assert stand.cf.requests[0].path.endswith("/cfd_tunnel")
    assert len(first) <= STARTUP_BURST
    assert lines[0]["kind"] == "baseline" and lines[0]["tunnels"] == 100
    assert lines[0]["api"]["used_per_minute"] == len(first)
    assert_within(times, 60)
    stand.assert_no_side_door()
    # Never more than that screenful at once.
    assert max_in_window(times, 1.0) <= STARTUP_BURST
    # The rest comes round by round: within five minutes every tunnel that ran has had its connections read.
    never = [tid for tid in active_ids(stand) if not connection_times(stand, tid)]
    assert never == []


@pytest.mark.parametrize("refs", [[], ["web-prod"]], ids=["whole account", "one named tunnel"])
async def test_when_cloudflare_slows_the_budget_the_list_keeps_to_its_share(
    monkeypatch: pytest.MonkeyPatch, refs: list[str]
) -> None:
    """The dashboard has used half of Cloudflare's quota: tunneltop plans to use a quarter of what is left, half
    its budget's pace. The polls slow down, list and connections alike; the list does not take every token."""
    stand = Stand(FakeClock(T0), freeze=True)
    dashboard = 600
    for _ in range(dashboard):
        stand.cf.handle("GET", f"/client/v4/accounts/{stand.sim.account_id}/cfd_tunnel")
    lines, _ = await watch(stand, monkeypatch, 240.0, refs=refs, budget=60)
    ours = stand.cf.requests[dashboard:]
    assert lines[0]["kind"] == "baseline"
    assert_within([T0 + (r.time - ours[0].time).total_seconds() for r in ours], 60)
    lists = [r for r in ours if r.path.endswith("/cfd_tunnel")]
    assert len(lists) <= len(ours) / 2 + 1, f"{len(lists)} of {len(ours)} requests read the list"
    # Every tunnel watched that ran keeps being refreshed, if more slowly.
    watched = stand.ids_of(refs).values() if refs else active_ids(stand)
    for tunnel_id in watched:
        assert len([r for r in ours if r.path.endswith(f"/{tunnel_id}/connections")]) >= 4, tunnel_id
