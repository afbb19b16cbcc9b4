"""Pilot tests of the account overview: the default screen when no tunnel is named.

The app polls through the real client and ``PollEngine``; the request budget (the client's ``RequestGate``) runs on
a fake monotonic clock the tests move by hand, and the tests wait for the app to have applied a poll's outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Static

from tests.support.clock import FakeClock
from tests.support.ui import FIXED_NOW, plain
from tunneltop.api import RequestGate
from tunneltop.demo.cfapi import FakeCloudflare, Fault
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID, DEMO_TUNNELS, SimulatedAccount
from tunneltop.demo.transport import DEMO_BASE_URL, DemoTransport
from tunneltop.model.health import HEALTH_ORDER, Health
from tunneltop.poll.target import Target
from tunneltop.poll.threaded import ThreadedSource
from tunneltop.ui.app import TunneltopApp
from tunneltop.ui.overview_table import OverviewTable
from tunneltop.views.overview import TunnelSummary

SIZE = (140, 36)
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
def overview_app(
    *, tunnels: int | None = None, budget_spent: bool = False
) -> tuple[TunneltopApp, FakeCloudflare, FakeClock]:
    """The app on the frozen demo account with no tunnel named (the overview), its budget on a fake clock.
    ``budget_spent``: the requests of the last minute (another tool's, say) used the whole budget at the start."""
    sim = SimulatedAccount(seed=7, start=FIXED_NOW, tunnels=tunnels, connectors_per_tunnel=1)
    sim.freeze()
    fake = FakeCloudflare(sim, require_auth=False, clock=lambda: FIXED_NOW)
    target = Target(DEMO_BASE_URL, None, DEMO_ACCOUNT_ID, [], demo=True, transport=DemoTransport(fake))
    ticks = FakeClock()
    gate = RequestGate(target.budget_per_minute, clock=ticks)
    if budget_spent:
        gate.budget.record(ticks.now, gate.limit_per_minute)
    app = TunneltopApp(
        target,
        clock=lambda: FIXED_NOW,
        monotonic=ticks,
        client_options={"sleep": ticks.sleep, "clock": ticks, "gate": gate},
        start_view=None,
    )
    return app, fake, ticks


async def until(pilot: Pilot, app: TunneltopApp, done: Callable[[], bool], polls: int = 3) -> None:
    """Until ``done()``, waiting for at most ``polls`` more poll outcomes the app applies (a snapshot, a failure,
    or a wait for the budget): each wait ends on the app's own signal, never on a deadline."""
    last = app.polling.applied + polls
    await app.polling.wait_until(lambda: done() or app.polling.applied >= last)
    await pilot.pause()
    assert done(), f"not after {polls} polls (polls={app.poll_count}, failures={app.failures})"


async def first_poll(pilot: Pilot, app: TunneltopApp) -> None:
    await until(pilot, app, lambda: app.polling.applied >= 1)


def overview(app) -> OverviewTable:
    return app.query_one(OverviewTable)


async def test_overview_is_home_and_lists_worst_health_first() -> None:
    app, fake, _ = overview_app()
    async with app.run_test(size=SIZE) as pilot:
        await first_poll(pilot, app)
        assert app.view == "overview" and isinstance(app.engine, ThreadedSource) and not app.engine.named
        table = overview(app)
        assert app.focused is table
        assert set(table.order) == set(fake.sim.tunnel_ids())
        ranks = [HEALTH_ORDER[table.summaries[k].health] for k in table.order]
        assert ranks == sorted(ranks)
        assert "API" in str(app.header.render()) and "/60 per min" in str(app.header.render())


async def test_enter_drills_into_a_tunnel_and_esc_returns() -> None:
    app, _, _ = overview_app()
    async with app.run_test(size=SIZE) as pilot:
        await first_poll(pilot, app)
        table = overview(app)
        web = DEMO_TUNNELS["web-prod"]
        table.move_cursor(row=table.order.index(web))
        await pilot.press("enter")
        assert app.view == "monitor" and app.drilled == web
        assert {r.tunnel.id for r in app.table.rows_by_key.values()} == {web}
        assert [n.data.tunnel_id for n in app.client_tree.root.children] == [web]
        colos = {r.conn.colo_name for r in app.table.rows_by_key.values()}
        strip = plain(app.query_one("#colo-strip", Static).content)
        assert {word for word in strip.split() if word.isalpha()} == colos, "the drilled tunnel's colos only"
        await pilot.press("escape")
        assert app.view == "overview" and app.drilled is None
        assert overview(app).cursor_key == web
        strip = plain(app.query_one("#colo-strip", Static).content)
        assert {word for word in strip.split() if word.isalpha()} > colos, "the whole account's again"


async def test_overview_sorts_and_filters() -> None:
    app, _, _ = overview_app()
    async with app.run_test(size=SIZE) as pilot:
        await first_poll(pilot, app)
        table = overview(app)
        await pilot.press("s")
        assert table.sort_column == "name"
        names = [(table.summaries[k].name or "").casefold() for k in table.order]
        assert names == sorted(names)
        await pilot.press("S")
        assert [(table.summaries[k].name or "").casefold() for k in table.order] == sorted(names, reverse=True)
        await pilot.press("slash", *"web", "enter")
        assert [table.summaries[k].name for k in table.order] == ["web-prod"]
        assert "filter: web  1 of 6 tunnels match" in app.header.render().plain


async def test_v_switches_to_every_connection_and_back() -> None:
    app, _, _ = overview_app()
    async with app.run_test(size=SIZE) as pilot:
        await first_poll(pilot, app)
        await pilot.press("v")
        assert app.view == "monitor" and app.drilled is None
        assert len({r.tunnel.id for r in app.table.rows_by_key.values()}) > 1
        await pilot.press("v")
        assert app.view == "overview"


async def test_the_overview_keeps_its_own_rows_and_forgets_a_tunnel_that_went() -> None:
    app, fake, ticks = overview_app()
    other, _, _ = overview_app()
    async with app.run_test(size=SIZE) as pilot:
        await first_poll(pilot, app)
        assert set(app.overview_rows._counted) == set(fake.sim.tunnel_ids())
        assert other.overview_rows is not app.overview_rows and other.overview_rows._counted == {}
        assert app._figures.of(app.snapshot) is app.snapshot.figures
        gone = DEMO_TUNNELS["home-lab"]
        assert gone in app.overview_rows._counted
        fake.sim.delete_tunnel(gone)
        ticks.advance(60)  # the list is due again, and a whole minute's budget has room for it and blast radius reads
        await pilot.press("r")
        await until(pilot, app, lambda: gone not in {s.tunnel.id for s in app.snapshot.tunnels})
        assert gone not in overview(app).summaries
        assert gone not in app.overview_rows._counted
        assert set(app.overview_rows._counted) == set(fake.sim.tunnel_ids())


async def test_empty_account_says_so() -> None:
    app, fake, _ = overview_app()
    for tid in fake.sim.tunnel_ids():
        fake.sim.delete_tunnel(tid)
    async with app.run_test(size=SIZE) as pilot:
        await first_poll(pilot, app)
        assert overview(app).row_count == 0
        notice = plain(app.query_one("#overview-notice").content)
        assert "no tunnels" in notice and "Cloudflare Tunnel Read" in notice


async def test_429_in_the_overview_holds_requests_and_counts_down() -> None:
    app, fake, ticks = overview_app()
    async with app.run_test(size=SIZE) as pilot:
        await first_poll(pilot, app)
        fake.inject(Fault.rate_limited(300), times=50)
        before = len(fake.requests)
        ticks.advance(app.engine.effective_interval)  # the list is due again: it meets the 429
        await pilot.press("r")
        await until(pilot, app, lambda: app.failures >= 1)
        assert len(fake.requests) == before + 1, "the 429 was the only request: the gate blocked the rest"
        sent = len(fake.requests)
        # Changed on purpose: r during the block is a reorder, not a bypass; the next poll waits for Retry-After.
        await pilot.press("r")
        assert "refreshing when the request budget allows (300 s)" in app.status.message
        # And a poll while the block runs (as the timer starts it) sends nothing.
        ticks.advance(10)
        failures = app.failures
        app.polling.start_poll()
        await until(pilot, app, lambda: app.failures > failures)
        assert len(fake.requests) == sent, "nothing is sent while Retry-After runs"
        header = str(app.header.render())
        assert "rate limited" in header and "next request in 290 s" in header
        assert app.header.stale


def test_first_sight_of_a_tunnels_connections_is_not_logged_as_a_recovery() -> None:
    from datetime import UTC, datetime

    from tunneltop.changes.events import EventKind
    from tunneltop.model.records import Connection, Connector, Tunnel
    from tunneltop.model.snapshot import Snapshot, TunnelState
    from tunneltop.views.session import Session

    at = datetime(2026, 11, 28, tzinfo=UTC)
    tunnel = Tunnel(id="t1", name="one", status="healthy")
    conns = (Connector(id="c1", conns=[Connection(id="x", is_pending_reconnect=True, colo_name="DFW")]),)
    unseen = Snapshot("a", at, (TunnelState(tunnel, None),))
    seen = Snapshot("a", at, (TunnelState(tunnel, conns),))
    failed = Snapshot("a", at, (TunnelState(tunnel, None, (), "HTTP 502"),))
    session = Session()
    session.on_snapshot(unseen, at)
    assert session.on_snapshot(seen, at) == []  # warm-up: first fetch, and the health it shows, are not news
    session.on_snapshot(failed, at)
    kinds = [e.kind for e in session.on_snapshot(seen, at)]
    assert EventKind.TUNNEL_FETCH_RECOVERED in kinds  # a real recovery still is


async def test_overview_of_a_thousand_tunnels() -> None:
    app, fake, _ = overview_app(tunnels=1000)
    async with app.run_test(size=SIZE) as pilot:
        await first_poll(pilot, app)
        table = overview(app)
        assert len(table.order) == 1000 == len(fake.sim.tunnel_ids())
        ranks = [HEALTH_ORDER[table.summaries[k].health] for k in table.order]
        assert ranks == sorted(ranks)
        # Within the budget: one list page and at most a startup burst of connection fetches.
        assert len(fake.requests) <= 16
        notice = plain(app.query_one("#overview-notice").content)
        assert "connection details for" in notice
        # The tunnels on screen are the ones the planner fetches first.
        assert set(app.engine.engine.in_view) <= set(table.order[: 3 * SIZE[1]])
        await pilot.press("G")
        last = table.order[-1]
        assert table.cursor_key == last
        await pilot.press("enter")
        assert app.view == "monitor" and app.drilled == last
        await pilot.press("escape")
        assert app.view == "overview" and table.cursor_key == last


# -- the table itself ------------------------------------------------------------------------------------------


def summary(n: int, health: Health = Health.HEALTHY, fetched_s: int = 0, active: int = 4) -> TunnelSummary:
    fetched = T0 - timedelta(seconds=fetched_s)
    return TunnelSummary(
        f"id-{n:02d}", f"tunnel-{n:02d}", health, health.value, 2, active, 0, "2xDFW, 2xLAX", "2025.1.0",
        T0 - timedelta(hours=n), None, fetched, T0 - fetched, None,
    )


class OverviewApp(App[None]):
    def compose(self) -> ComposeResult:
        yield OverviewTable(id="overview-table")


def drawn(table: OverviewTable, row: int) -> str:
    return "".join(segment.text for segment in table.render_line(row + 1))


async def test_the_overview_table_diffs_rows_and_draws_ages_against_the_clock() -> None:
    rows = [summary(n, fetched_s=n) for n in range(30)]
    async with OverviewApp().run_test(size=(140, 12)) as pilot:
        table = pilot.app.query_one(OverviewTable)
        table.show(rows, T0)
        table.move_cursor(row=table.order.index("id-05"))
        await pilot.pause()
        assert table.order[:3] == ["id-00", "id-01", "id-02"] and "1h00m ago" in drawn(table, 1)
        # Time passes and a tunnel goes down: it moves to the top, the others keep their places, ages move on,
        # and the cursor stays on its tunnel.
        later = [summary(n, Health.DOWN if n == 20 else Health.HEALTHY, fetched_s=n, active=0 if n == 20 else 4)
                 for n in range(30)]
        table.show(later, T0 + timedelta(minutes=2))
        await pilot.pause()
        assert table.order[0] == "id-20" and table.order[1:4] == ["id-00", "id-01", "id-02"]
        assert table.cursor_key == "id-05"
        assert "1h02m ago" in drawn(table, 2) and "2m01s" in drawn(table, 2)
        # Sorted by data age, oldest first (descending age): the sort needs no clock, so rows keep their places.
        table.set_sort("age", reverse=True)
        assert table.order[:2] == ["id-29", "id-28"]
        table.show(later, T0 + timedelta(minutes=5))
        assert table.order[:2] == ["id-29", "id-28"]
        fresher = [*later[:29], summary(29, fetched_s=0)]  # the oldest is fetched again
        table.show(fresher, T0 + timedelta(minutes=5))
        assert table.order[:2] == ["id-28", "id-27"] and table.order[-1] == "id-29"


async def test_no_room_in_the_budget_for_the_list_is_a_quiet_wait() -> None:
    # As at a start where the requests of the last minute used the whole budget: the list may not be read yet.
    app, fake, ticks = overview_app(budget_spent=True)
    async with app.run_test(size=SIZE) as pilot:
        await first_poll(pilot, app)
        assert "holding back to stay within tunneltop's request budget" in app.status.message
        assert not app.status.error and app.last_error is None and app.failures == 0 and app.poll_count == 0
        assert not any(e.kind.value == "poll_failed" for e in app.session.log)
        assert fake.requests == []
        # r asks for the next poll as soon as the budget allows: it says when, and sends nothing before.
        await pilot.press("r")
        assert "refreshing when the request budget allows (60 s)" in app.status.message
        assert fake.requests == []
        ticks.advance(61)  # the minute, and the gate's quarter second of slack (api/budget.py COUNTED)
        await pilot.press("r")
        await until(pilot, app, lambda: app.poll_count >= 1)
        assert overview(app).row_count == len(fake.sim.tunnel_ids())
        assert not any(e.kind.value in ("poll_failed", "poll_recovered") for e in app.session.log)
