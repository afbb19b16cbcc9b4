"""Pilot tests of the account overview: the default screen when no tunnel is named."""

from __future__ import annotations

from tests.ui_support import make_app, plain, wait_for_poll
from tunneltop.demo.cfapi import Fault
from tunneltop.demo.simulator import DEMO_TUNNELS
from tunneltop.model.health import HEALTH_ORDER
from tunneltop.ui.overview_table import OverviewTable
from tunneltop.watch.overview import AccountSource

SIZE = (140, 36)


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
        await pilot.press("escape")
        assert app.view == "overview" and app.drilled is None
        assert overview(app).cursor_key == web


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

    from tunneltop.model.records import Connection, Connector, Tunnel
    from tunneltop.model.snapshot import Snapshot, TunnelState
    from tunneltop.watch.changes import EventKind
    from tunneltop.watch.session import Session

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
