"""Pilot tests of the account overview: the default screen when no tunnel is named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from textual.app import App, ComposeResult
from textual.widgets import Static

from tests.ui_support import make_app, plain, wait_for_poll
from tunneltop.demo.cfapi import Fault
from tunneltop.demo.simulator import DEMO_TUNNELS
from tunneltop.model.health import HEALTH_ORDER, Health
from tunneltop.poll.account import AccountSource
from tunneltop.ui.overview_table import OverviewTable
from tunneltop.views.overview import TunnelSummary

SIZE = (140, 36)
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def overview(app) -> OverviewTable:
    return app.query_one(OverviewTable)


async def test_overview_is_home_and_lists_worst_health_first() -> None:
    app, fake = make_app(start_view=None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        assert app.view == "overview" and isinstance(app.source, AccountSource)
        table = overview(app)
        assert app.focused is table
        assert set(table.order) == set(fake.sim.tunnel_ids())
        ranks = [HEALTH_ORDER[table.summaries[k].health] for k in table.order]
        assert ranks == sorted(ranks)
        assert "API" in str(app.header.render()) and "/60 per min" in str(app.header.render())


async def test_enter_drills_into_a_tunnel_and_esc_returns() -> None:
    app, _ = make_app(start_view=None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        table = overview(app)
        web = DEMO_TUNNELS["web-prod"]
        table.move_cursor(row=table.order.index(web))
        await pilot.press("enter")
        assert app.view == "monitor" and app.drilled == web
        assert {r.tunnel.id for r in app.table.rows_by_key.values()} == {web}
        assert [n.data.tunnel_id for n in app.tree.root.children] == [web]
        colos = {r.conn.colo_name for r in app.table.rows_by_key.values()}
        strip = plain(app.query_one("#colo-strip", Static).content)
        assert {word for word in strip.split() if word.isalpha()} == colos, "the drilled tunnel's colos only"
        await pilot.press("escape")
        assert app.view == "overview" and app.drilled is None
        assert overview(app).cursor_key == web
        strip = plain(app.query_one("#colo-strip", Static).content)
        assert {word for word in strip.split() if word.isalpha()} > colos, "the whole account's again"


async def test_overview_sorts_and_filters() -> None:
    app, _ = make_app(start_view=None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        table = overview(app)
        await pilot.press("s")
        assert table.sort_column == "name"
        names = [(table.summaries[k].name or "").casefold() for k in table.order]
        assert names == sorted(names)
        await pilot.press("S")
        assert [(table.summaries[k].name or "").casefold() for k in table.order] == sorted(names, reverse=True)
        await pilot.press("slash", *"web", "enter")
        assert [table.summaries[k].name for k in table.order] == ["web-prod"]
        notice = plain(app.query_one("#overview-notice").content)
        assert "1 of" in notice and "match the filter" in notice


async def test_v_switches_to_every_connection_and_back() -> None:
    app, _ = make_app(start_view=None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        await pilot.press("v")
        assert app.view == "monitor" and app.drilled is None
        assert len({r.tunnel.id for r in app.table.rows_by_key.values()}) > 1
        await pilot.press("v")
        assert app.view == "overview"


async def test_the_overview_keeps_its_own_rows_and_forgets_a_tunnel_that_went() -> None:
    app, fake = make_app(start_view=None, interval=1.0)
    other, _ = make_app(start_view=None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        assert set(app._overview_rows._counted) == set(fake.sim.tunnel_ids())
        assert other._overview_rows is not app._overview_rows and other._overview_rows._counted == {}
        assert app._figures.of(app.snapshot) is app.snapshot.figures
        gone = DEMO_TUNNELS["home-lab"]
        assert gone in app._overview_rows._counted
        fake.sim.delete_tunnel(gone)
        for _ in range(5):  # a poll with nothing due sends nothing; go on until one brings the new list
            await pilot.pause(1.05)
            done = app.poll_count + app.failures
            await pilot.press("r")
            await wait_for_poll(pilot, app, count=done + 1)
            if gone not in {s.tunnel.id for s in app.snapshot.tunnels}:
                break
        assert gone not in overview(app).summaries
        assert gone not in app._overview_rows._counted
        assert set(app._overview_rows._counted) == set(fake.sim.tunnel_ids())


async def test_empty_account_says_so() -> None:
    app, fake = make_app(start_view=None)
    for tid in fake.sim.tunnel_ids():
        fake.sim.delete_tunnel(tid)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        assert overview(app).row_count == 0
        notice = plain(app.query_one("#overview-notice").content)
        assert "no tunnels" in notice and "Cloudflare Tunnel Read" in notice


async def test_429_in_the_overview_holds_requests_and_counts_down() -> None:
    app, fake = make_app(start_view=None, interval=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        fake.inject(Fault.rate_limited(300), times=50)
        for _ in range(5):  # a poll with nothing due sends nothing; go on until one meets the 429
            await pilot.pause(1.05)
            done = app.poll_count + app.failures
            await pilot.press("r")
            await wait_for_poll(pilot, app, count=done + 1)
            if app.failures:
                break
        assert app.failures >= 1
        sent = len(fake.requests)
        await pilot.press("r")
        await pilot.pause(1.2)
        assert len(fake.requests) == sent, "nothing is sent while Retry-After runs"
        header = str(app.header.render())
        assert "rate limited" in header and "next request in" in header
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
    app, fake = make_app(start_view=None, tunnels=1000)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app, limit=20)
        table = overview(app)
        assert len(table.order) == 1000 == len(fake.sim.tunnel_ids())
        ranks = [HEALTH_ORDER[table.summaries[k].health] for k in table.order]
        assert ranks == sorted(ranks)
        # Within the budget: one list page and at most a startup burst of connection fetches.
        assert len(fake.requests) <= 16
        notice = plain(app.query_one("#overview-notice").content)
        assert "connection details for" in notice
        # The tunnels on screen are the ones the planner fetches first.
        assert set(app.source.in_view) <= set(table.order[: 3 * SIZE[1]])
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
    app, fake = make_app(start_view=None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        source = app.source
        assert isinstance(source, AccountSource)
        # As at a start where the requests of the last minute used the whole budget: the list may not be read.
        source._list_at = None
        source.budget.record(source._clock(), source.budget.limit_per_minute)
        sent = len(fake.requests)
        app.action_refresh()
        for _ in range(100):
            await pilot.pause(0.02)
            if "holding back" in app.status.message:
                break
        assert "holding back to stay within tunneltop's request budget" in app.status.message
        assert not app.status.error and app.last_error is None and app.failures == 0
        assert not any(e.kind.value == "poll_failed" for e in app.session.log)
        assert len(fake.requests) == sent
