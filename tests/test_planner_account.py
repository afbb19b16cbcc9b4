"""The poll engine over a whole account end to end on a simulated clock: the real client and its request gate, the
scale simulator (1,000 tunnels) behind FakeCloudflare, and every request counted where Cloudflare would count it
(the fake's request log)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tests.support.budget import max_in_window
from tests.support.clock import FakeClock
from tunneltop.api import CloudflareClient, RateLimitedError, RequestGate
from tunneltop.demo.cfapi import FakeCloudflare, Fault
from tunneltop.demo.simulator import SimulatedAccount
from tunneltop.demo.transport import DEMO_BASE_URL, DemoTransport
from tunneltop.model import Snapshot
from tunneltop.poll.engine import PollEngine

START = datetime(2025, 3, 1, tzinfo=UTC)


class Rig:
    """A poll engine watching a whole simulated account, polling every ``interval`` seconds of fake time (or, with
    ``as_front_ends=True``, as the live view and --watch do: ``PollEngine.next_poll_delay`` after a poll ends,
    each poll taking a third of a second)."""

    def __init__(self, interval: float, *, tunnels: int = 1000, sim: SimulatedAccount | None = None) -> None:
        self.interval = interval
        self.clock = FakeClock(0.0, wall_start=START)
        self.sim = sim or SimulatedAccount(tunnels=tunnels, start=START)
        self.cf = FakeCloudflare(self.sim, require_auth=False, clock=self.wall)
        self.client = CloudflareClient(
            None,
            DEMO_BASE_URL,
            transport=DemoTransport(self.cf),
            clock=self.clock,
            sleep=self.clock.sleep,
            rng=random.Random(1),
            gate=RequestGate(60, clock=self.clock),
        )
        self.engine = PollEngine(self.client, self.sim.account_id, interval=interval, now=self.wall)
        self.failures: list[tuple[float, RateLimitedError]] = []
        self.snapshot: Snapshot | None = None

    def wall(self) -> datetime:
        return self.clock.wall()

    async def run(
        self, until: float, before_poll: Callable[[float], None] | None = None, *, as_front_ends: bool = False
    ) -> None:
        while self.clock.now < until:
            if before_poll is not None:
                before_poll(self.clock.now)
            outcome = await self.engine.poll()
            if outcome.snapshot is not None:
                self.snapshot = outcome.snapshot
            elif isinstance(outcome.error, RateLimitedError):
                self.failures.append((self.clock.now, outcome.error))
            else:
                assert outcome.error is None, outcome.error  # nothing else goes wrong here
            self.clock.advance(max(self.engine.next_poll_delay(), 0.1) + 0.3 if as_front_ends else self.interval)

    def times(self, path_contains: str = "") -> list[float]:
        return [(r.time - START).total_seconds() for r in self.cf.requests if path_contains in r.path]


@pytest.mark.parametrize(("interval", "until"), [(1.0, 390.0), (5.0, 480.0), (30.0, 600.0)])
async def test_1000_tunnels_stay_within_the_budget_and_a_429_stops_everything_for_retry_after(
    interval: float, until: float
) -> None:
    rig = Rig(interval)

    def inject(now: float) -> None:
        if now == 60.0:
            rig.cf.inject(Fault.rate_limited(300))  # the next request, whichever it is

    await rig.run(until, inject)
    times = rig.times()
    assert max_in_window(times) <= 60  # what Cloudflare saw from tunneltop in any 60 seconds
    assert len([t for t in times if t < 60]) >= 55  # and it uses what it may
    assert rig.client.stats.rate_limited == 1
    hit = min(t for t in times if t >= 60.0)
    assert not [t for t in times if hit < t < hit + 300]
    assert [t for t in times if t >= hit + 300]  # and then it resumes
    assert rig.cf.non_get_requests == []
    # While blocked, every poll said so, with a countdown, and sent nothing.
    waits = [round(exc.retry_after) for at, exc in rig.failures if at > hit]
    assert waits[0] >= 300 - interval and waits == sorted(waits, reverse=True)


async def test_the_header_figures_follow_the_budget_and_the_block() -> None:
    rig = Rig(5.0, tunnels=200)
    await rig.run(60.0)
    status = rig.engine.status
    assert status.limit_per_minute == 60
    assert 50 <= status.used_per_minute <= 60
    assert status.blocked_for == 0
    assert str(status) == f"API {status.used_per_minute}/60 per min"
    rig.cf.inject(Fault.rate_limited(300))
    await rig.run(70.0)
    assert rig.engine.blocked_for == pytest.approx(290, abs=5)
    assert "rate limited: next request in" in str(rig.engine.status)


async def test_tunnels_in_view_are_fetched_first_and_kept_fresh() -> None:
    rig = Rig(5.0, tunnels=300)
    await rig.run(5.0)  # the first poll: the list, and a first few connections
    assert rig.snapshot is not None
    healthy = [s.tunnel.id for s in rig.snapshot.tunnels if s.tunnel.status == "healthy"]
    view = set(healthy[-10:])  # the end of the list: never fetched by the rotation yet
    rig.engine.set_in_view(view)
    seen = len(rig.cf.requests)
    await rig.run(20.0)
    fetched = [r.path.split("/")[-2] for r in rig.cf.requests[seen:] if r.path.endswith("/connections")]
    assert set(fetched[:10]) == view  # before any other tunnel
    await rig.run(180.0)
    ages = {}
    for tid in view:
        times = [t for t, r in zip(rig.times(), rig.cf.requests, strict=True) if tid in r.path]
        ages[tid] = max(b - a for a, b in itertools.pairwise(times))
    # Ten in view take at most half of the ~48 connection fetches a minute: each one every 25 s, give or take.
    assert max(ages.values()) <= 40


async def test_a_dashboard_that_used_most_of_the_quota_slows_tunneltop_down() -> None:
    rig = Rig(30.0)
    for _ in range(1000):  # the user's dashboard and scripts, in the same 5-minute window
        rig.cf.handle("GET", "/client/v4/user/tokens/verify")
    others = len(rig.cf.requests)
    await rig.run(420.0, as_front_ends=True)
    ours = [(r.time - START).total_seconds() for r in rig.cf.requests[others:]]
    in_window = [t for t in ours if t < 300]
    # 199 left when tunneltop first looked: it takes at most a quarter, spread over the window, and never a 429.
    assert 30 <= len(in_window) <= 50
    assert rig.client.stats.rate_limited == 0
    assert max_in_window(in_window) <= 20
    # Once Cloudflare's window resets, the usual budget again.
    assert len([t for t in ours if 300 <= t < 420]) >= 85


async def test_retries_of_failing_connections_take_their_tokens_from_the_budget_too() -> None:
    """Changed on purpose: every retry takes its own token from the client's gate, so failing fetches and their
    retries never take tunneltop past its budget (it could overshoot by up to 4 x 3 requests before)."""
    rig = Rig(5.0, tunnels=200)

    def flaky(now: float) -> None:
        if now % 60 == 0:
            rig.cf.inject(Fault.error(502), path_contains="/connections", times=8)

    await rig.run(180.0, flaky)
    assert rig.client.stats.retries > 0
    # The fake logs times to the microsecond (the retries' jitter is not): two sends 60.000000000000014 s apart
    # may be logged exactly 60 s apart, so the window is a microsecond or two short of a minute.
    assert max_in_window(rig.times(), window=60 - 2e-6) <= 60
    assert rig.client.gate.sent == len(rig.cf.requests)


async def test_no_room_for_the_first_list_is_holding_back_not_a_failure() -> None:
    rig = Rig(5.0, tunnels=20)
    gate = rig.client.gate
    gate.budget.record(rig.clock.now, gate.limit_per_minute)  # the minute's budget, all used
    outcome = await rig.engine.poll()
    assert outcome.snapshot is None and outcome.error is None and outcome.events == []
    assert outcome.holding is not None and "holding back" in outcome.holding
    assert rig.engine.next_poll_in() > 0 and rig.cf.requests == [], "it says how long, and sends nothing"
    assert not rig.engine.failing, "not a failure: no poll_failed now, no poll_recovered later"
    rig.clock.advance(61)
    outcome = await rig.engine.poll()
    assert outcome.snapshot is not None and outcome.snapshot.tunnels
    assert all(e.kind.value != "poll_recovered" for e in outcome.events)
