"""The request budget is kept in every mode, measured where Cloudflare would count it: at the stand-in's side.

The promise: in the busiest 60 seconds the stand-in (``FakeCloudflare``) never receives more requests than the
budget, and in the busiest 300 seconds never more than five budgets, whatever front end polls (named tunnels or
the whole account, ``--once``, ``--watch``, the live view under key mashing), whatever goes wrong (5xx storms,
429s), and however many tunneltop processes share one credential. Every test runs on a simulated clock: the
stand-in, the client, its gate and (where there is one) the shared ledger all read the same ``FakeClock``, so ten
minutes pass in a second or two of real time and nothing depends on how loaded the machine is.

Between the client and the stand-in sits a ``Doorman`` transport: a request the client's gate did not grant a
token for (no side door: every request takes one) is refused with a 599 and noted. It checks that requests arrived
never outnumber the tokens granted (the gates' ``sent``), and at the end that both are equal. The rig is
``tests/support/budget.py``.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.budget import (
    DEMO_NAMES,
    T0,
    Stand,
    assert_within,
    connection_times,
    drive,
    rig_target,
    watch,
)
from tests.support.clock import FakeClock, no_sleep
from tunneltop.api.errors import RateLimitedError
from tunneltop.api.gate import RequestGate
from tunneltop.api.ledger import SharedLedger
from tunneltop.cli import run_once
from tunneltop.demo.cfapi import Fault
from tunneltop.demo.simulator import DEMO_TUNNELS
from tunneltop.demo.transport import DEMO_BASE_URL
from tunneltop.poll.engine import PollEngine

# -- polling modes, ten simulated minutes each -------------------------------------------------------------------


async def test_named_six_tunnels_at_one_second_keep_the_budget_and_stay_fresh() -> None:
    clock = FakeClock(T0)
    stand = Stand(clock)  # the demo account, evolving: the view must keep seeing its changes
    engine = stand.engine(DEMO_NAMES, budget=60, interval=1.0)
    outcomes = await drive(engine, clock, 600.0)
    got = assert_within(stand.times(), 60)
    stand.assert_no_side_door()
    assert all(o.snapshot is not None for _, o in outcomes), [o.error for _, o in outcomes if o.error]
    # Seven requests a cycle (the list, six named) at 60 a minute: every 7 s, not every 1 s.
    stretched = engine.effective_interval
    assert stretched == pytest.approx(7.0)
    assert got.minute >= 50, f"the budget should be used, not wasted: {got}"
    inactive = DEMO_TUNNELS["office-router-new"]
    for name in DEMO_NAMES:
        tid = DEMO_TUNNELS[name]
        times = connection_times(stand, tid)
        if tid == inactive:
            assert times == []  # never ran: nothing to fetch
            continue
        # From the start (the first poll reads the list and resolves the names) to the end of the run.
        gaps = [b - a for a, b in itertools.pairwise([T0, *times, clock.now])]
        assert max(gaps) <= stretched + engine.interval, f"{name}: connections {max(gaps):.0f} s old"
    # And the view did see the account change (the demo's flapping tunnel drops connections).
    assert any(o.events for _, o in outcomes[1:])


async def test_overview_of_1000_tunnels_keeps_the_default_budget() -> None:
    clock = FakeClock(T0)
    stand = Stand(clock, tunnels=1000)
    engine = stand.engine()
    assert engine.gate.limit_per_minute == 60
    outcomes = await drive(engine, clock, 600.0)
    got = assert_within(stand.times(), 60)
    stand.assert_no_side_door()
    assert all(o.snapshot is not None for _, o in outcomes)
    assert got.total >= 500, got  # and uses what it may


async def test_100_named_tunnels_at_the_default_interval_keep_the_budget() -> None:
    """This used to send 1,203 requests in 46 s."""
    clock = FakeClock(T0)
    stand = Stand(clock, tunnels=100)
    names = stand.names()
    assert len(names) == 100
    engine = stand.engine(names)
    outcomes = await drive(engine, clock, 600.0)
    assert_within(stand.times(), 60)
    stand.assert_no_side_door()
    assert all(o.snapshot is not None for _, o in outcomes)
    assert engine.effective_interval >= 100  # 101 requests a cycle at 60 a minute
    inactive = {t["id"] for t in stand.sim.iter_tunnels() if t["status"] == "inactive"}
    for tid in stand.ids_of(names).values():
        assert bool(connection_times(stand, tid)) is (tid not in inactive), tid


async def test_one_named_tunnel_at_one_second_keeps_a_budget_of_10() -> None:
    clock = FakeClock(T0)
    stand = Stand(clock)
    engine = stand.engine(["web-prod"], budget=10, interval=1.0)
    outcomes = await drive(engine, clock, 600.0)
    got = assert_within(stand.times(), 10)
    stand.assert_no_side_door()
    assert all(o.snapshot is not None for _, o in outcomes)
    assert engine.effective_interval == pytest.approx(12.0)  # 2 requests a cycle at 10 a minute
    assert len(connection_times(stand, DEMO_TUNNELS["web-prod"])) >= 40, got


# -- no side door: every request that reaches the stand-in took a token ----------------------------------------


async def _named(stand: Stand, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    outcomes = await drive(stand.engine(DEMO_NAMES, interval=1.0), clock, 60.0)
    assert outcomes[-1][1].snapshot is not None


async def _overview(stand: Stand, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    outcomes = await drive(stand.engine(), clock, 60.0)
    assert outcomes[-1][1].snapshot is not None


async def _account_lookup(stand: Stand, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    engine = PollEngine(stand.client(stand.gate()), None, now=stand.wall)  # no account given: /accounts first
    assert (await engine.poll()).snapshot is not None
    assert stand.cf.requests[0].path.endswith("/accounts")


async def _once(stand: Stand, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    await run_once(rig_target(stand, DEMO_NAMES), "json")
    assert json.loads(capsys.readouterr().out)["tunnels"]


async def _mistyped_name(stand: Stand, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    engine = stand.engine(["web-prd"])
    outcome = await engine.poll()
    assert outcome.permanent and "web-prod" in str(outcome.error)  # did you mean


async def _5xx_storm(stand: Stand, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    stand.cf.inject(Fault.error(502), times=40)
    engine = stand.engine(DEMO_NAMES)
    await drive(engine, clock, 120.0)
    assert engine.client.stats.retries > 0
    assert (await engine.poll()).snapshot is not None  # and it recovered


async def _pages(stand: Stand, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    outcome = (await drive(stand.engine(), clock, 30.0))[0][1]
    assert outcome.snapshot is not None and len(outcome.snapshot.tunnels) == 2500
    pages = [dict(r.query)["page"] for r in stand.cf.requests if r.path.endswith("/cfd_tunnel")]
    assert pages[:3] == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("scenario", "tunnels"),
    [
        (_named, None),
        (_overview, None),
        (_account_lookup, None),
        (_once, None),
        (_mistyped_name, None),
        (_5xx_storm, None),
        (_pages, 2500),
    ],
    ids=["named", "overview", "account-lookup", "once", "mistyped-name", "5xx-storm", "pages"],
)
async def test_no_request_reaches_cloudflare_without_a_token(
    scenario: Callable[..., Any], tunnels: int | None, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeClock(T0)
    stand = Stand(clock, tunnels=tunnels, freeze=tunnels is not None)
    await scenario(stand, clock, capsys)
    assert stand.cf.requests, "the scenario sent nothing"
    stand.assert_no_side_door()
    assert_within(stand.times(), 60)


async def test_the_doorman_does_refuse_a_request_without_a_token() -> None:
    """The check above can fail: a request sent around the gate is caught."""
    clock = FakeClock(T0)
    stand = Stand(clock)
    client = stand.client(stand.gate())
    await client.get(f"accounts/{stand.sim.account_id}/cfd_tunnel")
    async with httpx.AsyncClient(transport=stand.doorman, base_url=DEMO_BASE_URL) as sneaky:
        assert (await sneaky.get(f"{DEMO_BASE_URL}/accounts")).status_code == 599
    assert len(stand.doorman.side_door) == 1 and len(stand.cf.requests) == 1
    await client.aclose()


# -- --once and --watch -----------------------------------------------------------------------------------------


async def test_once_with_100_names_sends_at_most_a_minutes_budget_and_lists_the_rest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = FakeClock(T0)
    stand = Stand(clock, tunnels=100, freeze=True)
    names = stand.names()
    await run_once(rig_target(stand, names), "json")
    document = json.loads(capsys.readouterr().out)
    print(f"--once, 100 names: {len(stand.cf.requests)} requests, {len(document['not_fetched'])} not fetched")
    assert len(stand.cf.requests) <= 60
    stand.assert_no_side_door()
    fetched = {r.path.split("/")[-2] for r in stand.cf.requests if r.path.endswith("/connections")}
    active = {t["id"] for t in stand.sim.iter_tunnels() if t["status"] != "inactive"}
    assert fetched and fetched <= active
    assert set(document["not_fetched"]) == active - fetched
    assert len(document["not_fetched"]) == len(set(document["not_fetched"]))
    assert document["api"]["used_per_minute"] == len(stand.cf.requests)


async def test_watch_with_six_names_keeps_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    stand = Stand(FakeClock(T0))
    lines, slept = await watch(stand, monkeypatch, 600.0, interval=1.0, refs=DEMO_NAMES, budget=60)
    assert lines[0]["kind"] == "baseline" and lines[0]["tunnels"] == 6
    # The interval between polls, or less only to wait for the token a poll found missing (next_poll_delay).
    assert len(slept) >= 60 and min(slept) > 0 and sum(1 for s in slept if s >= 1.0) >= 60
    got = assert_within(stand.times(), 60)
    stand.assert_no_side_door()
    assert got.total >= 400, got  # ten minutes of polling, every 7 s


# -- two processes, one credential ------------------------------------------------------------------------------


def _other_live_pid() -> int:
    parent = os.getppid()
    return parent if parent > 1 else 1  # the pytest parent, or init: alive either way


def _shared_gate(stand: Stand, path: Path, pid: int, budget: int = 60) -> RequestGate:
    ledger = SharedLedger(path, pid=pid, clock=stand.clock)
    return stand.gate(budget, ledger=ledger, wall=stand.clock)


async def test_two_processes_on_one_credential_share_one_budget(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    stand = Stand(clock, tunnels=200, freeze=True)
    path = tmp_path / "budget.json"
    gates = [_shared_gate(stand, path, os.getpid()), _shared_gate(stand, path, _other_live_pid())]
    engines = [stand.engine(gate=gate) for gate in gates]
    until = clock.now + 300.0
    turn = itertools.cycle(engines)
    while clock.now < until:
        await next(turn).poll()
        clock.advance(2.5)
    got = assert_within(stand.times(), 60)
    stand.assert_no_side_door()
    assert all(gate.sent > 30 for gate in gates), [gate.sent for gate in gates]  # both got their turn
    assert got.total >= 250, got  # and together they used the budget
    assert [engine.status.processes for engine in engines] == [2, 2]
    assert "shared by 2 tunneltop processes" in str(engines[0].status)


# -- the live view: key mashing on a clock that stands still -------------------------------------------------------


async def _until(pilot: Any, condition: Callable[[], bool]) -> None:
    """Wait for something the app does (no deadline: pytest-timeout is the hang guard)."""
    while not condition():
        await pilot.pause(0.01)


async def test_key_mashing_sends_no_more_than_the_budget() -> None:
    from tunneltop.ui.app import TunneltopApp

    clock = FakeClock(T0)  # never advanced: a whole minute of key mashing happens in no time at all
    stand = Stand(clock, freeze=True)
    # A 60 s interval lets a whole minute's budget go at once: the most a refresh may take.
    app = TunneltopApp(
        rig_target(stand, DEMO_NAMES, budget=60),
        interval=60.0,
        clock=stand.wall,
        monotonic=clock,
        client_options={"sleep": no_sleep},
        start_view="monitor",
    )
    async with app.run_test() as pilot:
        await _until(pilot, lambda: app.poll_count >= 1)  # the first poll
        engine = app.engine.engine  # the PollEngine the live view runs on its own thread
        assert engine is not None and engine.gate.now() == T0
        refreshed = 0
        for _ in range(60):
            polls = app.poll_count
            ready = engine.next_poll_in() == 0
            await pilot.press("r")
            if ready:  # a token is there: the refresh polls at once; wait for it to be applied
                await _until(pilot, lambda polls=polls: app.poll_count > polls)
                refreshed += 1
        await pilot.press("p")
        assert app.paused
        await pilot.press("p")
        assert not app.paused
        await pilot.pause()
        sent = len(stand.cf.requests)
    print(f"key mashing: {sent} requests, {refreshed} refresh polls, {app.poll_count} polls in all")
    assert clock.now == T0
    assert refreshed >= 5
    assert sent <= 60, f"{sent} requests reached Cloudflare in no time at a budget of 60"
    assert sent >= 50, f"only {sent}: the refreshes did not use the budget they had"
    stand.assert_no_side_door(exact=False)  # a refresh may cancel a poll between its token and its request


# -- storms -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path_contains", [None, "/connections"], ids=["every-request", "connections"])
async def test_a_5xx_storm_retries_only_with_tokens(path_contains: str | None) -> None:
    clock = FakeClock(T0)
    stand = Stand(clock, tunnels=200, freeze=True)
    engine = stand.engine()

    def storm(now: float) -> None:
        if now < T0 + 180:
            stand.cf.inject(Fault.error(502), path_contains=path_contains, times=1000)
        else:
            stand.cf.clear_faults()

    outcomes = await drive(engine, clock, 360.0, step=5.0, before=storm)
    got = assert_within(stand.times(), 60)
    stand.assert_no_side_door()
    assert engine.client.stats.retries > 10
    if path_contains is not None:  # four fetches at a time, each retrying: more than the budget wanted to go
        assert engine.gate.refused > 0  # and what had no token was not sent
    assert got.minute >= 50, got  # the storm ate the budget, and no more than it
    late = [o for at, o in outcomes if at >= T0 + 240]
    assert late and all(o.snapshot is not None for o in late)  # and polling recovered


@pytest.mark.parametrize(("retry_after", "max_wait"), [(300, 0.0), (20, 30.0)], ids=["block-300s", "sat-out-20s"])
async def test_after_a_429_nothing_reaches_cloudflare_until_retry_after(retry_after: int, max_wait: float) -> None:
    clock = FakeClock(T0)
    stand = Stand(clock, tunnels=200, freeze=True)
    engine = stand.engine(max_rate_limit_wait=max_wait)

    def hit(now: float) -> None:
        if now == T0 + 60:
            stand.cf.inject(Fault.rate_limited(retry_after))  # the next request, whichever it is

    await drive(engine, clock, 60.0 + retry_after + 120.0, step=5.0, before=hit)  # polls keep coming meanwhile
    times = stand.times()
    got = assert_within(times, 60)
    stand.assert_no_side_door()
    assert engine.client.stats.rate_limited == 1
    at = min(t for t in times if t >= T0 + 60)
    assert [t for t in times if at < t < at + retry_after] == []
    assert [t for t in times if t >= at + retry_after], "and then it resumes"
    assert got.total > 60


async def test_a_429_seen_by_one_process_blocks_the_other(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    stand = Stand(clock, tunnels=50, freeze=True)
    path = tmp_path / "budget.json"
    first, second = (
        stand.engine(gate=_shared_gate(stand, path, os.getpid())),
        stand.engine(gate=_shared_gate(stand, path, _other_live_pid())),
    )
    stand.cf.inject(Fault.rate_limited(300))
    outcome = await first.poll()
    assert isinstance(outcome.error, RateLimitedError) and len(stand.cf.requests) == 1
    assert second.status.blocked_for == pytest.approx(300)
    outcomes = await drive(second, clock, 420.0, step=5.0)
    times = stand.times()
    assert [t for t in times if T0 < t < T0 + 300] == []
    assert [t for t in times if t >= T0 + 300], "the other process resumes after Retry-After"
    blocked = [o for at, o in outcomes if at < T0 + 300]
    assert all(isinstance(o.error, RateLimitedError) for o in blocked)
    assert_within(times, 60)
    stand.assert_no_side_door()
