"""The request budget and the planner, on a simulated clock: no I/O, no sleeping."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.budget import max_in_window
from tunneltop.api.budget import CLOUDFLARE_PER_MINUTE, RequestBudget
from tunneltop.api.ratelimit import RateLimit
from tunneltop.poll.planner import Plan, Planner, list_pages


def drain(budget: RequestBudget, now: float) -> int:
    """Send everything the budget allows at ``now``; how many went out."""
    n = budget.available(now)
    budget.record(now, n)
    return n


# -- the budget ------------------------------------------------------------------------------------------------


def test_default_budget_is_a_quarter_of_cloudflares_limit() -> None:
    budget = RequestBudget()
    assert budget.limit_per_minute == 60 == CLOUDFLARE_PER_MINUTE / 4
    assert budget.share() == 0.25
    assert budget.share(RateLimit(quota=2400, window=300)) == 0.125  # a bigger quota: a smaller share of it
    assert RequestBudget(240).share() == 0.5  # never more than half of what is left


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "60"])
def test_a_budget_must_be_a_positive_whole_number(bad: object) -> None:
    with pytest.raises(ValueError, match="whole number"):
        RequestBudget(bad)  # type: ignore[arg-type]


def test_sliding_window_never_holds_more_than_the_limit() -> None:
    budget = RequestBudget(60, burst=60)
    assert drain(budget, 0.0) == 60
    assert budget.used_per_minute(0.0) == 60
    assert not budget.can_send(59.9)
    assert budget.wait_time(10.0) == pytest.approx(50.0)
    assert budget.used_per_minute(60.0) == 0
    assert budget.can_send(60.0)


def test_pacing_spreads_a_minute_over_the_minute() -> None:
    budget = RequestBudget()  # burst 5, refill one per second
    assert drain(budget, 0.0) == 5
    assert budget.available(0.0) == 0
    assert budget.wait_time(0.0) == pytest.approx(1.0)
    assert budget.available(1.0) == 1
    assert budget.available(3.5) == 3
    assert budget.available(100.0) == 5  # the bucket never holds more than its burst


def test_after_a_429_nothing_until_retry_after_and_a_countdown() -> None:
    budget = RequestBudget()
    budget.block(300, now=100.0)
    assert budget.blocked_for(100.0) == 300
    assert budget.blocked_for(250.0) == 150
    assert not budget.can_send(399.9)
    assert budget.wait_time(100.0) == 300
    assert budget.can_send(400.0)
    budget.block(10, now=120.0)  # a shorter block never shortens a longer one
    assert budget.blocked_until == 400.0


def test_no_quota_left_blocks_until_cloudflares_reset() -> None:
    budget = RequestBudget()
    budget.observe_ratelimit(RateLimit(remaining=0, reset=42), now=10.0)
    assert budget.blocked_for(10.0) == 42
    assert budget.available(51.9) == 0
    assert budget.available(52.0) > 0


def test_low_remaining_quota_slows_down_to_a_share_of_what_is_left() -> None:
    budget = RequestBudget()
    # The dashboard has used most of the window: 40 left for the next 200 s; tunneltop takes at most 25 % of it.
    budget.observe_ratelimit(RateLimit(remaining=40, reset=200, quota=1200, window=300), now=0.0)
    sent = [drain(budget, float(t)) for t in range(200)]
    assert sum(sent) <= 10
    assert sent[0] == 1 and max(sent) == 1  # spread out, one at a time
    # After Cloudflare's window resets, the usual budget applies again.
    assert sum(drain(budget, 200.0 + t) for t in range(60)) >= 55


def test_a_full_quota_costs_nothing() -> None:
    budget = RequestBudget()
    budget.observe_ratelimit(RateLimit(remaining=1199, reset=300, quota=1200, window=300), now=0.0)
    assert sum(drain(budget, float(t)) for t in range(300)) >= 295


def test_within_one_cloudflare_window_the_allowance_only_shrinks() -> None:
    budget = RequestBudget(burst=60)
    budget.observe_ratelimit(RateLimit(remaining=100, reset=100), now=0.0)  # allowance 25
    budget.observe_ratelimit(RateLimit(remaining=400, reset=99), now=1.0)  # same window: no more than before
    assert budget.available(100 - 1e-6) <= 25
    budget.observe_ratelimit(RateLimit(remaining=40, reset=98), now=2.0)  # others spent it: 10 now
    assert budget.available(60.0) <= 10
    budget.observe_ratelimit(RateLimit(remaining=1199, reset=300), now=101.0)  # a new window
    assert sum(drain(budget, 101.0 + t) for t in range(60)) >= 55


def test_the_number_of_requests_after_a_429_is_zero_whatever_the_clock_says() -> None:
    budget = RequestBudget(burst=60)
    budget.block(300, now=0.0)
    assert sum(drain(budget, t / 10) for t in range(2999)) == 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 30),  # time step
            st.sampled_from(["send", "observe", "block"]),
            st.integers(0, 1200),  # remaining
            st.floats(1, 300),  # reset / retry-after
        ),
        max_size=40,
    ),
    st.integers(1, 240),
)
def test_wait_time_is_exactly_when_sending_becomes_possible(steps: list, limit: int) -> None:
    budget = RequestBudget(limit)
    now = 0.0
    for step, action, remaining, seconds in steps:
        now += step
        if action == "send":
            drain(budget, now)
        elif action == "observe":
            budget.observe_ratelimit(RateLimit(remaining=remaining, reset=seconds, quota=1200, window=300), now)
        else:
            budget.block(seconds, now)
    wait = budget.wait_time(now)
    assert budget.can_send(now + wait + 1e-6)
    if wait > 1e-3:
        assert not budget.can_send(now + wait - 1e-3)


# -- the planner -----------------------------------------------------------------------------------------------


IDS = [f"t{i:04d}" for i in range(1000)]


def test_the_list_costs_one_request_per_thousand_tunnels() -> None:
    assert [list_pages(n) for n in (0, 1, 1000, 1001, 2500)] == [1, 1, 1, 2, 3]
    budget = RequestBudget(burst=60)
    plan = Planner(budget, 5).plan(0.0, [f"x{i}" for i in range(2500)])
    assert plan.list_pages == 3
    assert plan.calls[0].kind == "tunnel_list" and plan.calls[0].requests == 3


def test_first_poll_reads_the_list_then_spends_what_is_left_on_connections() -> None:
    planner = Planner(RequestBudget(), 5)
    first = planner.plan(0.0, [])
    assert (first.list_pages, first.connections) == (1, ())
    assert planner.plan(0.0, IDS, list_fetched_at=0.0).connections == tuple(IDS[:5])


def test_the_list_is_read_at_most_once_per_interval_and_never_takes_more_than_half_the_budget() -> None:
    budget = RequestBudget()
    planner = Planner(budget, 5)
    assert planner.plan(4.0, IDS, list_fetched_at=0.0).list_pages == 0
    assert planner.plan(5.0, IDS, list_fetched_at=0.0).list_pages == 1
    fast = Planner(RequestBudget(), 1)
    assert fast.list_period(1000) == 2.0  # 30 a minute at most, half of 60
    assert fast.plan(1.0, IDS, list_fetched_at=0.0).list_pages == 0
    assert fast.plan(2.0, IDS, list_fetched_at=0.0).list_pages == 1


def test_a_due_list_that_the_budget_cannot_pay_for_waits_and_nothing_else_goes() -> None:
    budget = RequestBudget(burst=60)
    budget.record(0.0, 59)
    planner = Planner(budget, 5)
    plan = planner.plan(1.0, [f"x{i}" for i in range(2500)])
    assert plan == Plan(1.0, 0, (), 0, 1)


def test_tunnels_in_view_come_first() -> None:
    planner = Planner(RequestBudget(), 5)
    view = {IDS[500], IDS[900], IDS[42]}
    plan = planner.plan(0.0, IDS, in_view=view, list_fetched_at=0.0)
    assert set(plan.connections[:3]) == view
    # Stalest in view first.
    fetched = {IDS[500]: -30.0, IDS[900]: -60.0, IDS[42]: -10.0}
    plan = planner.plan(0.0, IDS, in_view=view, fetched_at=fetched, list_fetched_at=0.0)
    assert plan.connections[:3] == (IDS[900], IDS[500], IDS[42])


def test_only_due_tunnels_are_fetched_and_never_run_ones_never() -> None:
    ids = IDS[:4]
    planner = Planner(RequestBudget(), 10)
    plan = planner.plan(100.0, ids, fetched_at={ids[0]: 95.0, ids[1]: 80.0}, skip={ids[2]}, list_fetched_at=100.0)
    assert plan.connections == (ids[3], ids[1])  # never fetched, then the stalest; ids[0] is fresh
    assert plan.due == 2


def test_rotation_is_stalest_first_and_stops_when_the_budget_is_spent() -> None:
    rng = random.Random(3)
    fetched = {tid: -rng.uniform(60, 3600) for tid in IDS}
    budget = RequestBudget(burst=30)
    plan = Planner(budget, 30).plan(0.0, IDS, fetched_at=fetched, list_fetched_at=0.0)
    assert plan.connections == tuple(sorted(IDS, key=fetched.__getitem__)[:30])
    assert plan.deferred == 970
    assert plan.requests == plan.available == 30


def test_a_few_priority_tunnels_go_at_once_but_a_crowd_gets_only_its_share() -> None:
    changed = set(IDS[:500])
    # The unchanged tunnels are the stalest, so every rotation slot goes to one of them.
    fetched = {tid: (-100.0 if tid in changed else -10_000.0) - i for i, tid in enumerate(IDS)}
    budget = RequestBudget()
    planner = Planner(budget, 30)  # 30 requests a poll
    picked: list[str] = []
    for cycle in range(20):
        now = cycle * 30.0
        plan = planner.plan(now, IDS, fetched_at=fetched, changed=changed, list_fetched_at=now)
        if cycle == 0:
            assert set(plan.connections) <= changed  # a burst of priority at once
        budget.record(now, plan.requests)
        for tid in plan.connections:
            fetched[tid] = now
        picked += plan.connections
    assert len(picked) == 20 * 30
    rotation = [t for t in picked if t not in changed]
    assert len(rotation) >= len(picked) // 2 - planner.priority_burst  # half the slots, but for one burst
    assert IDS[-1] in rotation


def test_a_planned_poll_never_asks_for_more_than_the_budget_allows() -> None:
    budget = RequestBudget()
    planner = Planner(budget, 5)
    for t in range(0, 600, 5):
        plan = planner.plan(float(t), IDS, list_fetched_at=None if t % 10 == 0 else t - 5.0)
        assert plan.requests <= budget.available(float(t))


# -- an hour of polling, planner and budget alone --------------------------------------------------------------


def simulate(
    interval: float,
    minutes: float,
    *,
    in_view: set[str] = frozenset(),  # type: ignore[assignment]
    change_rate: float = 0.0,
    inactive: int = 20,
    block_at: float | None = None,
) -> dict:
    """Poll every ``interval`` on a fake clock as the account source would; return what was sent and when."""
    rng = random.Random(11)
    budget = RequestBudget()
    planner = Planner(budget, interval)
    skip = set(IDS[-inactive:]) if inactive else set()
    fetched: dict[str, float] = {}
    changed: set[str] = set()
    list_at: float | None = None
    sent: list[float] = []
    max_age = 0.0
    view_age = 0.0
    active = [t for t in IDS if t not in skip]
    now = 0.0
    while now < minutes * 60:
        if block_at is not None and block_at <= now < block_at + interval:
            budget.block(300, now)
        for _ in range(int(change_rate * interval) + (rng.random() < (change_rate * interval) % 1)):
            changed.add(rng.choice(IDS))
        plan = planner.plan(now, IDS, in_view=in_view, fetched_at=fetched, changed=changed, skip=skip,
                            list_fetched_at=list_at)  # fmt: skip
        budget.record(now, plan.requests)
        sent += [now] * plan.requests
        if plan.list_pages:
            list_at = now
        for tid in plan.connections:
            # Ages count from the start for a tunnel not fetched yet: the first sweep is bounded too.
            age = now - fetched.get(tid, 0.0)
            max_age = max(max_age, age)
            if tid in in_view:
                view_age = max(view_age, age)
            fetched[tid] = now
            changed.discard(tid)
        now += interval
    max_age = max([max_age] + [now - fetched.get(t, 0.0) for t in active])
    view_age = max([view_age] + [now - fetched.get(t, 0.0) for t in in_view])
    return {"sent": sent, "max_age": max_age, "view_age": view_age, "planner": planner, "fetched": fetched}


@pytest.mark.parametrize("interval", [1.0, 5.0, 30.0])
def test_an_hour_of_1000_tunnels_never_exceeds_the_budget(interval: float) -> None:
    run = simulate(interval, 60)
    assert max_in_window(run["sent"]) <= 60
    assert len(run["sent"]) >= 60 * 60 * 0.95  # and it uses what it may


@pytest.mark.parametrize("interval", [5.0, 30.0])  # 1 s obeys the same formula; an hour of it is just slower
def test_every_tunnel_is_refreshed_within_the_stated_bound(interval: float) -> None:
    in_view = set(IDS[100:140])  # a screenful in view, refreshed as often as the budget lets them
    run = simulate(interval, 100, in_view=in_view, change_rate=0.5)
    planner: Planner = run["planner"]
    bound = planner.staleness_bound(980, 1000)
    assert run["max_age"] <= bound
    # Without priority pressure the rotation gets every slot: twice as fast.
    calm = simulate(interval, 100)
    assert calm["max_age"] <= planner.staleness_bound(980, 1000, typical=True)
    # The tunnels in view are far fresher than the rest.
    assert run["view_age"] <= run["max_age"] / 10


def test_staleness_bound_figures_for_1000_tunnels_at_the_default_budget() -> None:
    """The numbers the docs quote: minutes until every one of 980 running tunnels has fresh connections."""
    figures = {}
    for interval in (1.0, 5.0, 30.0):
        planner = Planner(RequestBudget(), interval)
        figures[interval] = (
            round(planner.staleness_bound(980, 1000, typical=True) / 60, 1),
            round(planner.staleness_bound(980, 1000) / 60, 1),
        )
    assert figures == {1.0: (32.7, 67.3), 5.0: (20.5, 42.2), 30.0: (17.4, 35.3)}


def test_after_a_429_nothing_is_planned_for_300_seconds() -> None:
    run = simulate(5.0, 15, block_at=300.0)
    assert not [t for t in run["sent"] if 300.0 <= t < 600.0]
    assert [t for t in run["sent"] if t >= 600.0]
