"""Defects of the live view a user hits in the first minutes (issue 12), each driven through the real app."""

from __future__ import annotations

from datetime import timedelta

import pytest
from textual.geometry import Size
from textual.pilot import Pilot
from textual.widgets import OptionList, Static
from textual.widgets.tree import TreeNode

from tests.support.ui import WallClock, make_app, plain, tree_lines, wait_for_poll
from tunneltop.changes.events import EventKind
from tunneltop.demo.simulator import DEMO_TUNNELS
from tunneltop.ui.app import TunneltopApp
from tunneltop.ui.client_tree import NodeRef
from tunneltop.ui.detail import DetailPane
from tunneltop.ui.event_log import EventLogView
from tunneltop.ui.screens import ColoPicker

LAYOUT = ("#header", "#monitor", "#tree", "#right", "#colo-strip", "#table", "#detail", "#status")


def layout(app: TunneltopApp) -> dict[str, Size]:
    screen = app.main_screen
    return {selector: screen.query_one(selector).size for selector in LAYOUT}


async def settle(pilot: Pilot, app: TunneltopApp, size: tuple[int, int]) -> None:
    """Until the main screen has been laid out at ``size`` (the app resizes on a timer after the event): a condition,
    not a count of turns a loaded machine may need more of (pytest's timeout guards a hang)."""
    while not (app.main_screen.size == Size(*size) and app.main_screen.query_one("#monitor").size.width == size[0]):
        await pilot.pause()
    await pilot.pause()


async def fresh_layout(size: tuple[int, int]) -> tuple[dict[str, Size], list[str]]:
    app, _ = make_app()
    async with app.run_test(size=size) as pilot:
        await wait_for_poll(pilot, app)
        return layout(app), tree_lines(app)


# -- 1. a resize lays out for the new size --------------------------------------------------------------------


@pytest.mark.parametrize(("start", "end"), [((140, 40), (80, 24)), ((80, 24), (140, 40))])
async def test_a_resize_gives_the_layout_of_a_fresh_start_at_the_new_size(
    start: tuple[int, int], end: tuple[int, int]
) -> None:
    expected = await fresh_layout(end)
    app, _ = make_app()
    async with app.run_test(size=start) as pilot:
        await wait_for_poll(pilot, app)
        await pilot.resize_terminal(*end)
        await settle(pilot, app, end)
        assert (layout(app), tree_lines(app)) == expected


async def test_a_resize_under_a_modal_lays_out_the_main_screen_too() -> None:
    expected = await fresh_layout((80, 24))
    app, _ = make_app()
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_poll(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause()
        await pilot.resize_terminal(80, 24)
        await settle(pilot, app, (80, 24))
        await pilot.press("escape")
        await settle(pilot, app, (80, 24))
        assert (layout(app), tree_lines(app)) == expected


# -- 2. keys work after every overlay and toggle --------------------------------------------------------------

OVERLAYS = {
    "event log": ("e", "e"),
    "help": ("question_mark", "escape"),
    "colo picker": ("c", "escape"),
    "filter box, esc": ("slash", "escape"),
    "filter box, enter": ("slash", "enter"),
    "filter applied and cleared": ("slash", "a", "enter", "escape"),
}


WEB = DEMO_TUNNELS["web-prod"]


async def drill(pilot: Pilot, app: TunneltopApp, tunnel_id: str = WEB) -> None:
    """From the overview into one tunnel (enter on its row), and its connections read."""
    table = app.main_screen.query_one("#overview-table")
    table.move_cursor(row=table.order.index(tunnel_id))
    polls = app.poll_count
    await pilot.press("enter")
    await wait_for_poll(pilot, app, count=polls + 1)


def main_widget(app: TunneltopApp):
    return app.main_screen.query_one("#overview-table") if app.view == "overview" else app.table


@pytest.mark.parametrize("view", ["overview", "drilled", "monitor"])
async def test_keys_reach_the_view_after_every_overlay_and_toggle(view: str) -> None:
    """Every overlay in turn in one app (one start per view keeps the default suite fast)."""
    app, _ = make_app(start_view=None if view in ("overview", "drilled") else "monitor")
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_poll(pilot, app)
        if view == "drilled":
            await drill(pilot, app)
        expected = (app.view, app.drilled)
        widget = main_widget(app)
        assert app.focused is widget
        for name, keys in OVERLAYS.items():
            await pilot.press("g")  # the first row, so that j has somewhere to go
            await pilot.press(*keys)
            await pilot.pause()
            assert (app.view, app.drilled) == expected, name
            assert app.focused is widget, f"after {name}, keys go to {app.focused!r}"
            row = widget.cursor_row
            await pilot.press("j")
            assert widget.cursor_row == row + 1, name


async def test_j_and_enter_work_after_the_event_log_is_shown_and_hidden_on_the_overview() -> None:
    app, _ = make_app(start_view=None)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_poll(pilot, app)
        table = main_widget(app)
        second = table.order[1]
        await pilot.press("e", "e", "j", "enter")
        await pilot.pause()
        assert app.view == "monitor" and app.drilled == second
        assert app.focused is app.table


async def test_the_filter_box_gives_the_keys_back_to_the_tree_that_had_them() -> None:
    app, _ = make_app()
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_poll(pilot, app)
        app.client_tree.focus()
        await pilot.pause()
        await pilot.press("slash", "escape")
        assert app.focused is app.client_tree
        await pilot.press("e", "e")
        assert app.focused is app.client_tree


async def test_an_event_chosen_on_the_overview_opens_its_tunnel_at_its_row() -> None:
    clock = WallClock()
    app, fake = make_app(start_view=None, clock=clock)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_poll(pilot, app)
        clients = fake.sim.clients(WEB)
        conn = clients[0]["conns"][0]
        conn["is_pending_reconnect"] = True
        fake.sim.set_clients(WEB, clients)
        clock.now += timedelta(seconds=5)
        await pilot.press("r")
        # The poll that reads web-prod's connections again (blast radius reads share the budget: maybe not r's).
        await app.polling.wait_until(lambda: any(e.kind is EventKind.CONN_PENDING for e in app.session.log))
        await pilot.press("e")
        view = app.main_screen.query_one(EventLogView)
        pending = [i for i, e in enumerate(view.events_shown) if e.kind is EventKind.CONN_PENDING]
        assert pending, [e.kind for e in view.events_shown]
        view.move_cursor(row=pending[0])
        await pilot.press("enter")
        await pilot.pause()
        assert app.view == "monitor" and app.drilled == WEB
        assert app.table.cursor_key == f"{WEB}/{clients[0]['id']}/{conn['id']}"
        assert app.focused is app.table


# -- 3. one selection: the tree, the table and the detail pane agree ------------------------------------------


def subject(app: TunneltopApp) -> str:
    """The title of what the detail pane describes ("Connection <id>", "Connector <id>", "Tunnel <name>")."""
    return plain(app.main_screen.query_one(DetailPane).shown).strip().splitlines()[0].strip()


def tree_ref(app: TunneltopApp) -> NodeRef | None:
    node = app.client_tree.cursor_node
    return node.data if node is not None else None


def expanded_nodes(app: TunneltopApp) -> set[str]:
    def walk(node: TreeNode[NodeRef]) -> list[TreeNode[NodeRef]]:
        return [node, *(n for child in node.children for n in walk(child))]

    return {n.data.node_id for n in walk(app.client_tree.root) if n.data is not None and n.is_expanded}


def shown_ancestors(app: TunneltopApp, node_id: str) -> list[str]:
    """``node_id`` and the ids above it, deepest first, that the tree shows (their parents are expanded)."""
    parts = node_id.split("/")
    ids = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    shown = []
    for each in ids:
        node = app.client_tree.node_for(each)
        if node is None:
            break
        shown.append(each)
        if not node.is_expanded:
            break
    return shown[::-1]


async def test_moving_in_the_tree_moves_the_table_and_the_pane_to_the_same_item() -> None:
    app, _ = make_app(refs=["web-prod"])
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_poll(pilot, app)
        app.client_tree.focus()
        await pilot.pause()
        kinds = set()
        for _ in range(12):
            await pilot.press("j")
            await pilot.pause()
            ref = tree_ref(app)
            assert ref is not None
            kinds.add(ref.kind)
            key = app.table.cursor_key
            if ref.kind == "conn":
                assert key == ref.node_id
                assert subject(app) == f"Connection {ref.conn_id}"
            else:
                assert key is not None and key.startswith(ref.node_id + "/"), "the table is on one of its rows"
                assert subject(app).startswith("Connector" if ref.kind == "connector" else "Tunnel")
        assert kinds >= {"connector", "conn"}
        await pilot.press("tab")  # to the table: the same connection, so the pane stays on it
        assert app.focused is app.table
        row = app.table.rows_by_key[app.table.cursor_key]
        assert subject(app) == f"Connection {row.conn.id}"
        assert tree_ref(app).node_id == row.key


@pytest.mark.parametrize("refs", [["web-prod"], None], ids=["one tunnel", "every tunnel"])
async def test_moving_in_the_table_moves_the_tree_and_the_pane_to_the_same_connection(refs: list[str] | None) -> None:
    app, _ = make_app(refs=refs)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_poll(pilot, app)
        assert app.focused is app.table
        expanded = expanded_nodes(app)
        for step in range(8):
            if step:
                await pilot.press("j")
                await pilot.pause()
            key = app.table.cursor_key
            row = app.table.rows_by_key[key]
            assert subject(app) == f"Connection {row.conn.id}"
            # The row's own node, or (under a collapsed connector) the nearest node the tree shows.
            assert tree_ref(app).node_id == shown_ancestors(app, key)[0]
        if refs:
            assert tree_ref(app).kind == "conn"
        assert expanded_nodes(app) == expanded, "walking the table expands nothing"


async def test_enter_in_either_moves_the_other_to_the_same_item() -> None:
    app, _ = make_app(refs=["web-prod"])
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_poll(pilot, app)
        await pilot.press("j", "j", "enter")  # a row: the tree narrows to its connector, and shows the row
        await pilot.pause()
        key = app.table.cursor_key
        assert app.scope is not None and key.startswith(app.scope.node_id + "/")
        assert tree_ref(app).node_id == key
        await pilot.press("escape", "escape")  # back to every connection
        app.client_tree.focus()
        await pilot.pause()
        await pilot.press("j", "j", "enter")
        await pilot.pause()
        ref = tree_ref(app)
        key = app.table.cursor_key
        assert key == ref.node_id or key.startswith(ref.node_id + "/")


# -- 4. drilled into one tunnel from the overview ---------------------------------------------------------------


def strip_text(app: TunneltopApp) -> str:
    return plain(app.main_screen.query_one("#colo-strip", Static).content).strip()


def filter_line(app: TunneltopApp) -> str:
    """What the header says of the active filter ("" when none is)."""
    line = app.header.render().plain
    return line[line.index(" filter: ") :] if " filter: " in line else ""


async def test_drilled_in_the_colo_strip_shows_the_change_since_the_session_started() -> None:
    clock = WallClock()
    app, fake = make_app(start_view=None, clock=clock)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_poll(pilot, app)
        await drill(pilot, app)
        assert "+" not in strip_text(app) and "-" not in strip_text(app), "no change yet"
        clients = fake.sim.clients(WEB)
        colo = clients[0]["conns"][0]["colo_name"]
        lost = sum(1 for c in clients for conn in c["conns"] if conn["colo_name"] == colo)
        for client in clients:
            client["conns"] = [conn for conn in client["conns"] if conn["colo_name"] != colo]
        fake.sim.set_clients(WEB, clients)
        clock.now += timedelta(seconds=5)
        polls = app.poll_count
        await pilot.press("r")
        await wait_for_poll(pilot, app, count=polls + 1)
        assert f"{colo} 0 -{lost}" in strip_text(app), strip_text(app)


async def test_drilled_in_the_table_has_no_tunnel_column_and_gets_it_back_for_every_tunnel() -> None:
    app, _ = make_app(start_view=None)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_poll(pilot, app)
        await drill(pilot, app)
        assert "tunnel" not in app.table.columns_shown
        assert app.table.row_count > 0 and {r.tunnel.id for r in app.table.rows_by_key.values()} == {WEB}
        assert app.focused is app.table
        await pilot.press("s")  # a sort chosen here is kept
        sort = (app.table.sort_column, app.table.sort_reverse)
        await pilot.press("escape", "v")  # back to the overview, then every connection
        await pilot.pause()
        assert app.view == "monitor" and app.drilled is None
        assert "tunnel" in app.table.columns_shown
        assert {r.tunnel.id for r in app.table.rows_by_key.values()} > {WEB}
        assert (app.table.sort_column, app.table.sort_reverse) == sort
        assert app.focused is app.table


async def test_drilled_in_the_colo_picker_lists_the_tunnels_colos() -> None:
    app, _ = make_app(start_view=None)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_poll(pilot, app)
        await drill(pilot, app)
        colos = {r.conn.colo_name for r in app.table.rows_by_key.values()}
        everywhere = {x.colo_name for t in app.snapshot.tunnels for c in t.connectors or () for x in c.conns}
        assert colos < everywhere, "the demo account has colos web-prod does not use"
        await pilot.press("c")
        assert isinstance(app.screen, ColoPicker)
        options = app.screen.query_one(OptionList)
        listed = {options.get_option_at_index(i).id for i in range(options.option_count)}
        assert listed == colos
        await pilot.press("enter")  # the first: the table keeps the tunnel's rows in that colo
        await pilot.pause()
        chosen = options.get_option_at_index(0).id
        assert app.drilled == WEB and app.table.row_count > 0
        assert {r.conn.colo_name for r in app.table.rows_by_key.values()} == {chosen}


@pytest.mark.parametrize("view", ["overview", "drilled", "monitor"])
async def test_a_filter_that_matches_nothing_says_so_and_names_the_filter(view: str) -> None:
    app, _ = make_app(start_view=None if view in ("overview", "drilled") else "monitor")
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_poll(pilot, app)
        if view == "drilled":
            await drill(pilot, app)
        table = main_widget(app)
        await pilot.press("slash", *"nowhere-at-all", "enter")
        await pilot.pause()
        assert table.row_count == 0
        what = "tunnel" if view == "overview" else "connection"
        line = filter_line(app)
        assert "nowhere-at-all" in line and f"no {what} matches" in line, line
        await pilot.press("escape")
        assert table.row_count > 0 and filter_line(app) == ""
        await pilot.press("slash", *"!nowhere-at-all", "enter")  # a filter that matches: no such line
        assert table.row_count > 0 and "matches" not in filter_line(app)
