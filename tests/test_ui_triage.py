"""Pilot tests of incident triage in the live view: event log, ghost rows, new/changed marks, colos, export."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path

from textual.widgets import Static

from tests.support.ui import FIXED_NOW, WallClock, make_app, plain, tree_lines, wait_for_poll
from tunneltop.changes.events import EventKind
from tunneltop.demo.simulator import DEMO_TUNNELS
from tunneltop.ui.detail import DetailPane
from tunneltop.ui.event_log import EventLogView

SIZE = (130, 44)
WEB = DEMO_TUNNELS["web-prod"]


async def _poll(pilot, app, clock: WallClock, seconds: float = 5.0) -> None:
    clock.now += timedelta(seconds=seconds)
    done = app.poll_count + app.failures
    await pilot.press("r")
    await wait_for_poll(pilot, app, count=done + 1)


async def test_closed_connection_stays_as_a_ghost_then_goes(tmp_path: Path) -> None:
    clock = WallClock()
    app, fake = make_app(clock=clock, ghost_seconds=60)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        clients = fake.sim.clients(WEB)
        closed = clients[0]["conns"].pop()
        fake.sim.set_clients(WEB, clients)
        await _poll(pilot, app, clock)
        key = f"{WEB}/{clients[0]['id']}/{closed['id']}"
        assert key in app.table.rows_by_key, "a vanished connection stays visible"
        state = app.table.get_cell(key, "state")
        assert "gone" in state.plain and "strike" in str(app.table.get_cell(key, "origin").style)
        clock.now += timedelta(seconds=61)
        app._tick()  # the once-a-second tick expires it
        await pilot.pause()
        assert key not in app.table.rows_by_key


async def test_new_connection_is_marked_for_a_while() -> None:
    clock = WallClock()
    app, fake = make_app(clock=clock, mark_seconds=30)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        clients = fake.sim.clients(WEB)
        fresh = dict(clients[0]["conns"][0], id="0000aaaa-1111-2222-3333-444455556666", colo_name="SEA")
        clients[0]["conns"].append(fresh)
        fake.sim.set_clients(WEB, clients)
        await _poll(pilot, app, clock)
        key = f"{WEB}/{clients[0]['id']}/{fresh['id']}"
        assert app.table.get_cell(key, "state").plain.startswith("✚")
        clock.now += timedelta(seconds=31)
        app._tick()  # the once-a-second tick ends the mark
        await pilot.pause()
        assert not app.table.get_cell(key, "state").plain.startswith("✚")


async def test_changed_cells_are_marked() -> None:
    clock = WallClock()
    app, fake = make_app(clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        clients = fake.sim.clients(WEB)
        conn = clients[0]["conns"][0]
        conn["is_pending_reconnect"] = True
        fake.sim.set_clients(WEB, clients)
        await _poll(pilot, app, clock)
        key = f"{WEB}/{clients[0]['id']}/{conn['id']}"
        assert "reverse" in str(app.table.get_cell(key, "state").style)
        assert "reverse" not in str(app.table.get_cell(key, "colo").style)


async def test_event_log_toggles_lists_newest_first_follows_filter_and_selects() -> None:
    clock = WallClock()
    app, fake = make_app(clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        view = app.query_one(EventLogView)
        assert not view.display
        await pilot.press("e")
        assert view.display
        clients = fake.sim.clients(WEB)
        colo = clients[0]["conns"][0]["colo_name"]
        clients[0]["conns"][0]["is_pending_reconnect"] = True
        fake.sim.set_clients(WEB, clients)
        await _poll(pilot, app, clock)
        clients[1]["conns"].pop()
        fake.sim.set_clients(WEB, clients)
        await _poll(pilot, app, clock)
        kinds = [e.kind for e in view.events_shown]
        assert EventKind.CONN_CLOSED in kinds and EventKind.CONN_PENDING in kinds
        assert kinds.index(EventKind.CONN_CLOSED) < kinds.index(EventKind.CONN_PENDING), "newest first"
        assert [e.at for e in view.events_shown] == sorted((e.at for e in view.events_shown), reverse=True)
        # The log follows the filter.
        await pilot.press("slash", *f"colo:{colo}", "enter")
        assert view.events_shown and all(e.colo == colo for e in view.events_shown)
        await pilot.press("escape")
        # Selecting the pending event selects its row in the table.
        pending = next(i for i, e in enumerate(view.events_shown) if e.kind is EventKind.CONN_PENDING)
        view.focus()
        view.move_cursor(row=pending)
        await pilot.press("enter")
        event = view.events_shown[pending]
        assert app.table.cursor_key == f"{event.tunnel_id}/{event.connector_id}/{event.conn_id}"
        await pilot.press("e")
        assert not view.display


async def test_event_log_takes_a_polls_events_as_a_diff_with_no_layout_and_keeps_its_cursor() -> None:
    # It was a DataTable cleared and filled again with its (up to 500) rows on each poll that brought an event, and
    # each fill changed its scroll extent: a layout of the whole screen.
    clock = WallClock()
    app, fake = make_app(clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        view = app.query_one(EventLogView)
        await pilot.press("e")
        clients = fake.sim.clients(WEB)
        clients[1]["conns"].pop()
        fake.sim.set_clients(WEB, clients)
        await _poll(pilot, app, clock)
        await pilot.press("j")
        chosen = view.selected_event()
        assert view.cursor_row > 0 and chosen is view.events_shown[view.cursor_row]
        layouts: list[object] = []
        app.screen.screen_layout_refresh_signal.subscribe(app, layouts.append)
        before = list(view.events_shown)
        for n in range(2):
            clients[0]["conns"][n]["is_pending_reconnect"] = True
            fake.sim.set_clients(WEB, clients)
            await _poll(pilot, app, clock)
        arrived = view.events_shown[: len(view.events_shown) - len(before)]
        assert [e.kind for e in arrived].count(EventKind.CONN_PENDING) == 2  # and what they set off (health, findings)
        assert view.events_shown[len(arrived) :] == before
        assert view.selected_event() is chosen  # the cursor stays on the event it was on
        assert view.events_shown[view.cursor_row] is chosen
        heading = view.render_line(0).text
        assert "Time" in heading and "▲" not in heading and "▼" not in heading  # its order is the log's, no sort
        assert layouts == []


async def test_showing_and_hiding_the_event_log_draws_no_line_of_the_tree_again_and_lays_out_twice() -> None:
    # Tree forgets every line it has drawn on any resize: showing the log (the tree some rows shorter) and hiding it
    # drew the whole tree again, 10-25 ms at 10,000 connections. A line's look does not depend on the tree's height.
    # And the log's horizontal scrollbar came with its first wide event, after the first layout: a third one.
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        tree = app.client_tree
        await pilot.pause()
        shown = tree_lines(app)
        made = tree.drawing.made
        heights = [tree.size.height]
        layouts: list[object] = []
        app.screen.screen_layout_refresh_signal.subscribe(app, layouts.append)
        for _ in range(2):
            layouts.clear()
            await pilot.press("e")
            await pilot.pause()
            heights.append(tree.size.height)
            # One for the log shown or hidden; Textual's containers, resized, then ask for a second.
            assert len(layouts) <= 2
        assert heights[1] < heights[0] == heights[2]
        assert tree.drawing.made == made, "no line of the tree made again"
        assert tree_lines(app) == shown


async def test_poll_failure_and_recovery_are_logged_once_per_streak() -> None:
    from tunneltop.demo.cfapi import Fault

    clock = WallClock()
    # Changed on purpose: with several tunnels named, a poll whose budget reaches only some of them marks those
    # stale (keeping their last connections) rather than failing; one tunnel named, its fetch failing is every
    # named tunnel failing: a failed poll.
    app, fake = make_app(clock=clock, refs=["web-prod"])
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        fake.inject(Fault.error(503, 10001), times=100)
        await _poll(pilot, app, clock)
        await _poll(pilot, app, clock)
        assert app.failures == 2 and app.header.stale
        fake.clear_faults()
        await _poll(pilot, app, clock)
        kinds = [e.kind for e in app.session.log]
        assert kinds.count(EventKind.POLL_FAILED) == 1
        assert kinds[0] is EventKind.POLL_RECOVERED
        recovered = next(iter(app.session.log))
        assert recovered.after["failed_polls"] == 2
        assert not app.header.stale


async def test_colo_strip_shows_counts_and_change_since_start() -> None:
    clock = WallClock()
    app, fake = make_app(clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        strip = app.query_one("#colo-strip", Static)
        before = plain(strip.content)
        assert "DFW" in before and "+" not in before
        clients = fake.sim.clients(WEB)
        dfw = [c for c in clients[0]["conns"] if c["colo_name"] == "DFW"]
        clients[0]["conns"] = [c for c in clients[0]["conns"] if c["colo_name"] != "DFW"]
        fake.sim.set_clients(WEB, clients)
        await _poll(pilot, app, clock)
        assert f"-{len(dfw)}" in plain(strip.content)


async def test_health_worsening_notifies() -> None:
    clock = WallClock()
    app, fake = make_app(clock=clock, bell=True)
    rings: list[bool] = []
    app.bell = lambda: rings.append(True)  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        clients = fake.sim.clients(WEB)
        clients[0]["conns"][0]["is_pending_reconnect"] = True
        fake.sim.set_clients(WEB, clients)
        await _poll(pilot, app, clock)
        titles = [n.title for n in app._notifications]
        assert "Health worsened" in titles
        assert rings == [True]


async def test_tunnel_detail_shows_an_active_trend() -> None:
    clock = WallClock()
    app, fake = make_app(clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        clients = fake.sim.clients(WEB)
        clients[0]["conns"].pop()
        fake.sim.set_clients(WEB, clients)
        await _poll(pilot, app, clock)
        app.client_tree.focus()
        app.client_tree.select_ref(WEB)
        await pilot.pause()
        text = plain(app.query_one(DetailPane).shown)
        assert "active trend" in text and any(ch in text for ch in "▁▂▃▄▅▆▇█")


async def test_export_writes_json_and_csv_of_the_filtered_view(tmp_path: Path) -> None:
    app, _ = make_app(export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        await pilot.press("slash", *"colo:DFW", "enter", "x")
        await pilot.pause()
        files = sorted(p.name for p in tmp_path.iterdir())
        assert len(files) == 3, files
        document = json.loads(next(tmp_path.glob("*.json")).read_text())
        assert document["demo"] is True and document["filter"] == "colo:DFW"
        assert document["connections"] and {c["colo"] for c in document["connections"]} == {"DFW"}
        with next(tmp_path.glob("*-connections.csv")).open() as written:
            rows = list(csv.DictReader(written))
        assert len(rows) == len(document["connections"]) and rows[0]["colo"] == "DFW"
        assert "Export" in [n.title for n in app._notifications]
        await pilot.press("w")
        await pilot.pause()
        assert list(tmp_path.glob("*.svg"))


def test_csv_export_is_formula_safe_and_terminal_safe(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from tunneltop.export import export_view
    from tunneltop.model.records import Connection, Connector, Tunnel
    from tunneltop.views.rows import ConnRow

    row = ConnRow(
        "t/c/x",
        Tunnel(id="t", name="=HYPERLINK(\"evil\")"),
        Connector(id="c"),
        Connection(id="x", colo_name="DFW\x1b]0;pwned\x07", origin_ip="\u202e1.2.3.4"),
    )
    export_view(tmp_path, datetime(2026, 1, 1, tzinfo=UTC), [row], [])
    text = next(tmp_path.glob("*-connections.csv")).read_text()
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "'=HYPERLINK" in text


async def test_a_poll_where_nothing_changed_only_moves_the_clock_on() -> None:
    clock = WallClock()
    # A frozen account: every poll answers the same. Changed on purpose: a poll reads what the budget allows, and a
    # tunnel it did not read shows when it was read (a change); at a 30 s interval r's poll reads them all again.
    app, _ = make_app(clock=clock, interval=30.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        first = app.snapshot
        key = app.table.cursor_key
        age_before = app.table.get_cell(key, "opened").plain
        logged = list(app.session.log)  # the first poll's: the baseline, and the findings it raised
        renders: list[int] = []
        real = app.render_views
        app.render_views = lambda: (renders.append(1), real())[1]  # type: ignore[method-assign]
        await _poll(pilot, app, clock, seconds=120)
        assert app.snapshot is not first and app.snapshot.tunnels is first.tunnels, "the same tunnels, handed back"
        assert renders == [], "no view was rebuilt"
        assert app.table.get_cell(key, "opened").plain != age_before, "but the ages moved on"
        assert list(app.session.log) == logged, "nothing new in the event log"


async def test_event_log_shows_an_event_logged_twice_once() -> None:
    # Its rows are keyed by the event object; the log is fed fresh events by every source, but a repeat must not
    # make two rows with one key.
    from textual.app import App, ComposeResult

    from tunneltop.changes.events import poll_failed

    class LogApp(App[None]):
        def compose(self) -> ComposeResult:
            yield EventLogView(id="events")

    first, second = (poll_failed(FIXED_NOW + timedelta(seconds=n), f"failure {n}") for n in range(2))
    async with LogApp().run_test() as pilot:
        view = pilot.app.query_one(EventLogView)
        view.show_events([(2, first), (1, second), (0, first)], FIXED_NOW)
        await pilot.pause()
        assert view.events_shown == [first, second] and view.row_count == 2
