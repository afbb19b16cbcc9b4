"""Pilot tests of the live monitor against the simulated account, through the real client code."""

from __future__ import annotations

import re

import pytest
from rich.text import Text
from textual.widgets import Input, OptionList, Static

from tests.support.ui import make_app, plain, wait_for_poll
from tunneltop.demo.cfapi import Fault
from tunneltop.demo.simulator import DEMO_TUNNELS
from tunneltop.model.health import Health
from tunneltop.ui.client_tree import ClientTree
from tunneltop.ui.commands import COMMANDS
from tunneltop.ui.detail import DetailPane
from tunneltop.ui.screens import ColoPicker, HelpScreen

SIZE = (130, 40)


def table_keys(app) -> list[str]:
    table = app.table
    return [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]


def cell(app, key: str, column: str) -> Text:
    return app.table.get_cell(key, column)


def sim_conn_count(fake) -> int:
    return sum(len(c.get("conns", [])) for tid in fake.sim.tunnel_ids() for c in fake.sim.clients(tid))


async def test_first_poll_fills_tree_table_and_header() -> None:
    app, fake = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        assert app.table.row_count == sim_conn_count(fake) > 0
        tree = app.query_one(ClientTree)
        tunnel_nodes = [n for n in tree.root.children]
        assert {n.data.tunnel_id for n in tunnel_nodes} == set(fake.sim.tunnel_ids())
        header = app.header
        assert header.demo is True
        assert header.health is not None
        assert header.pending == app.snapshot.pending_count
        assert "DEMO" in str(header.render())
        assert not header.stale


async def test_pending_rows_stand_out_by_word_and_colour() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        pending = [k for k, r in app.table.rows_by_key.items() if r.state == "pending"]
        active = [k for k, r in app.table.rows_by_key.items() if r.state == "active"]
        assert pending and active, "the demo account has pending reconnects"
        state = cell(app, pending[0], "state")
        assert "PENDING" in state.plain and "⟳" in state.plain  # readable without colour
        assert "yellow" in str(state.style)
        assert "yellow" in str(cell(app, pending[0], "origin").style)
        assert "PENDING" not in cell(app, active[0], "state").plain
        # Default sort puts pending reconnects on top.
        assert table_keys(app)[0] in pending


async def test_filter_box_limits_rows_and_tree_and_esc_clears() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        total = app.table.row_count
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"colo:AMS,FRA", "enter")
        colos = {r.conn.colo_name for r in app.table.rows_by_key.values()}
        assert colos and colos <= {"AMS", "FRA"}
        assert 0 < app.table.row_count < total
        assert "filter: colo:AMS,FRA" in app.header.render().plain, "the header names the active filter"
        tree_tunnels = {n.data.tunnel_id for n in app.client_tree.root.children}
        assert tree_tunnels == {r.tunnel.id for r in app.table.rows_by_key.values()}
        await pilot.press("escape")
        assert app.table.row_count == total
        assert not app.filter.active
        assert "filter:" not in app.header.render().plain


async def test_typing_a_filter_repaints_the_box_only_and_keeps_the_cursor_in_sight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Input asks for a layout of the whole screen on every key (its virtual size); the box's size is fixed, so it
    # only repaints itself. Scrolling a text longer than the box must still follow the cursor.
    asked: list[bool] = []
    refresh = Input.refresh

    def spy(self: Input, *regions: object, **kwargs: bool) -> Input:
        if self.id == "filter-input":
            asked.append(kwargs.get("layout", False))
        return refresh(self, *regions, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Input, "refresh", spy)
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        await pilot.press("slash")
        box = app.query_one("#filter-input", Input)
        asked.clear()
        long = "web-prod " * 20  # wider than the box
        await pilot.press(*long.replace(" ", "_"))
        await pilot.pause()
        assert asked and not any(asked)
        assert box.value == long.replace(" ", "_") and box.cursor_position == len(box.value)
        assert box.scroll_x > 0  # the end of the text, where the cursor is, is in sight


async def test_the_filter_box_and_badge_move_nothing_on_the_screen() -> None:
    # A line that came and went above the views moved them all: Textual laid out and repainted the whole screen
    # (30-60 ms at 200x50 with a large view) on "/", on the first key and on esc. The box is drawn over the key bar
    # and the active filter is named in the header's one line.
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        views = app.views.region, app.table.region, app.client_tree.region
        seen = []
        for keys in (("slash",), tuple("colo:AMS"), ("enter",), ("slash", "ctrl+u", *"bogus:1"), ("escape",)):
            await pilot.press(*keys)
            await pilot.pause()
            seen.append((app.views.region, app.table.region, app.client_tree.region))
            box = app.query_one("#filter-input", Input)
            if box.display and app.filter_bar.is_open:
                assert box.region.y == SIZE[1] - 1, "the box is on the bottom line, over the key bar"
        assert seen == [views] * len(seen)
        assert "filter:" not in app.header.render().plain


async def test_the_filter_box_lays_the_screen_out_once_to_open_and_close_and_enter_redraws_no_view(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A layout is of the whole screen, tens of ms with a large view. The box took two to open and two to close
    # (its row was shown and hidden inside a bar whose height followed it), esc with the box closed took one (the
    # empty error line set again), and enter (the filter already applied as typed) and esc in an empty box (the
    # empty filter) redrew every view: at 10,000 connections (benchmarks.live) enter stalled the screen as long
    # as the typing did.
    app, _ = make_app()
    layouts: list[object] = []
    redraws: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        app.screen.screen_layout_refresh_signal.subscribe(app, layouts.append)
        render_views = app.render_views
        monkeypatch.setattr(app, "render_views", lambda: (redraws.append(app.filter.text), render_views())[1])
        await pilot.press("slash", "escape")  # its first opening gives the box its size
        await pilot.pause()
        for keys, expected_layouts, expected_redraws in (
            (("slash",), 1, []),
            (("escape",), 1, []),  # esc in an empty box closes it: the empty filter is the one applied
            (("slash",), 1, []),
            (tuple("web"), None, ["w", "we", "web"]),  # the views' own sizes change (scrollbars come and go)
            (("enter",), 1, []),
            (("escape",), None, [""]),
        ):
            layouts.clear()
            redraws.clear()
            await pilot.press(*keys)
            await pilot.pause()
            assert redraws == expected_redraws, keys
            if expected_layouts is not None:
                assert len(layouts) == expected_layouts, keys
            if keys == ("enter",):
                assert not app.filter_bar.is_open and app.filter.text == "web"
                assert {r.tunnel.name for r in app.table.rows_by_key.values()} == {"web-prod"}


async def test_inverted_and_free_text_filters() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        total = app.table.row_count
        await pilot.press("slash", *"!colo:AMS", "enter")
        assert all(r.conn.colo_name != "AMS" for r in app.table.rows_by_key.values())
        inverted = app.table.row_count
        await pilot.press("slash", "ctrl+u", *"colo:AMS", "enter")
        assert app.table.row_count + inverted == total
        await pilot.press("slash", "ctrl+u", *"state:pending", "enter")
        assert {r.state for r in app.table.rows_by_key.values()} == {"pending"}
        await pilot.press("slash", "ctrl+u", *"web-prod", "enter")
        assert {r.tunnel.name for r in app.table.rows_by_key.values()} == {"web-prod"}


async def test_invalid_filter_shows_error_and_keeps_the_last_good_filter() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        await pilot.press("slash", *"colo:DFW", "enter")
        rows = app.table.row_count
        await pilot.press("slash", "ctrl+u", *"bogus:1", "enter")
        error = str(app.query_one("#filter-error", Static).render())
        assert "unknown filter key" in error
        assert app.filter_bar.is_open  # box stays open to fix it
        # Live filtering applied the last text that parsed ("bogus" before the colon); never the broken one.
        assert app.filter.text == "bogus" and app.filter.words == ("bogus",)
        await pilot.press("escape")
        assert not app.filter.active and app.table.row_count > rows
        await pilot.press("slash", "ctrl+u", *"[/oops]", "enter")  # markup-looking text is just text
        assert app.filter.words == ("[/oops]",)
        assert app.table.row_count == 0


async def test_colo_picker_filters_to_the_chosen_colo() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        await pilot.press("c")
        assert isinstance(app.screen, ColoPicker)
        options = app.screen.query_one(OptionList)
        first = options.get_option_at_index(0)
        assert "active" in str(first.prompt)
        await pilot.press("enter")
        assert not isinstance(app.screen, ColoPicker)
        assert app.filter.colos == {first.id}
        assert {r.conn.colo_name for r in app.table.rows_by_key.values()} == {first.id}
        await pilot.press("c", "escape")
        assert app.filter.colos == {first.id}


async def test_colo_picker_counts_each_colos_active_and_pending_connections_as_the_rows_hold_them() -> None:
    from collections import Counter

    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        pending = Counter(r.conn.colo_name for r in app.rows if r.state == "pending")
        active = Counter(r.conn.colo_name for r in app.rows if r.state != "pending")
        assert pending, "the demo account has pending connections"
        await pilot.press("c")
        assert isinstance(app.screen, ColoPicker)
        options = app.screen.query_one(OptionList)
        shown = {options.get_option_at_index(i).id: str(options.get_option_at_index(i).prompt)
                 for i in range(options.option_count)}
        assert set(shown) == set(active) | set(pending)
        for colo, prompt in shown.items():
            assert f" {active[colo]} active" in prompt
            assert (f"{pending[colo]} pending" in prompt) == (pending[colo] > 0)


async def test_sort_cycles_and_reverses_and_cursor_stays_on_the_same_connection() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        await pilot.press("j", "j", "j", "j", "j")
        chosen = app.table.cursor_key
        assert chosen is not None
        for _ in range(len(app.table.columns_shown)):
            await pilot.press("s")
            assert app.table.cursor_key == chosen
        await pilot.press("S")
        assert app.table.sort_reverse is True
        assert app.table.cursor_key == chosen


async def test_sort_uses_real_values_for_ip_and_time() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        app.sort_by("opened", False)
        await pilot.pause()
        opened = [app.table.rows_by_key[k].conn.opened_at for k in table_keys(app)]
        assert opened == sorted(opened)
        app.sort_by("origin", False)
        await pilot.pause()
        import ipaddress

        ips = [ipaddress.ip_address(app.table.rows_by_key[k].conn.origin_ip) for k in table_keys(app)]
        assert ips == sorted(ips, key=lambda a: (a.version, int(a)))


async def test_header_click_sorts_by_that_column() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        await pilot.click("#table", offset=(2, 0))  # the first column's header
        assert app.table.sort_column == app.table.columns_shown[0]


async def test_pause_stops_requests_and_resume_polls_again() -> None:
    app, fake = make_app(interval=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        await pilot.press("p")
        assert app.paused and app.header.paused
        await app.workers.wait_for_complete()  # a poll the 1 s timer started before p still ends
        polls = app.poll_count + app.failures
        sent = len(fake.requests)
        assert app.polling.next_poll_at is None, "no poll is armed while paused"
        app._tick()  # nor does the once-a-second tick start one
        await pilot.pause()
        assert len(fake.requests) == sent, "no request may be sent while paused"
        await pilot.press("p")
        await wait_for_poll(pilot, app, count=polls + 1)
        assert len(fake.requests) > sent


async def test_interval_keys_step_through_the_ladder() -> None:
    app, _ = make_app(interval=5.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        await pilot.press("plus")
        assert app.interval == 10.0 and app.header.interval == 10.0
        await pilot.press("minus", "minus")
        assert app.interval == 3.0


async def test_tree_selection_narrows_the_table_and_esc_widens() -> None:
    app, fake = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        tree = app.client_tree
        tree.focus()
        web = DEMO_TUNNELS["web-prod"]
        node = tree.node_for(web)
        tree.select_node(node)
        await pilot.pause()
        assert {r.tunnel.id for r in app.table.rows_by_key.values()} == {web}
        connector = fake.sim.clients(web)[0]["id"]
        tree.select_node(tree.node_for(f"{web}/{connector}"))
        await pilot.pause()
        assert {r.connector.id for r in app.table.rows_by_key.values()} == {connector}
        assert "Connector" in plain(app.query_one(DetailPane).shown)
        await pilot.press("escape")
        assert app.scope.kind == "tunnel"
        await pilot.press("escape")
        assert app.scope is None
        assert app.table.row_count == sim_conn_count(fake)


async def test_enter_on_a_row_drills_into_its_connector() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        app.table.focus()
        key = app.table.cursor_key
        row = app.table.rows_by_key[key]
        await pilot.press("enter")
        assert app.scope.connector_id == row.connector.id
        assert app.table.cursor_key == key
        assert app.client_tree.cursor_node.data.connector_id == row.connector.id


async def test_refresh_keeps_expansion_and_tree_cursor() -> None:
    app, _ = make_app(frozen=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        tree = app.client_tree
        tree.focus()
        web = tree.node_for(DEMO_TUNNELS["web-prod"])
        home = tree.node_for(DEMO_TUNNELS["home-lab"])
        web.collapse()
        await pilot.pause()
        tree.move_cursor(home)
        await pilot.pause()
        assert tree.cursor_node is home
        polls = app.poll_count
        await pilot.press("r")
        await wait_for_poll(pilot, app, count=polls + 1)
        assert tree.node_for(DEMO_TUNNELS["web-prod"]) is web and not web.is_expanded
        assert tree.cursor_node is home


async def test_error_marks_stale_keeps_data_and_recovers() -> None:
    # Changed on purpose: the poll fails when every named tunnel's fetch fails the passing way, which r can show
    # only when the budget lets its poll reach them all: at a 30 s interval a burst of 30 requests may go at once.
    app, fake = make_app(interval=30.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        rows = app.table.row_count
        fake.inject(Fault.html_page(502), times=100)
        await pilot.press("r")
        await wait_for_poll(pilot, app, count=2)
        assert app.failures == 1
        assert app.table.row_count == rows, "the last good data stays on screen"
        assert app.header.stale and "STALE" in str(app.header.render())
        assert app.status.error and "502" in app.status.message and "last good data" in app.status.message
        fake.clear_faults()
        await pilot.press("r")
        await wait_for_poll(pilot, app, count=3)
        assert not app.header.stale and not app.status.error
        assert app.status.message.startswith("recovered")


async def test_auth_error_message_names_the_permission() -> None:
    app, fake = make_app()
    async with app.run_test(size=SIZE) as pilot:
        fake.inject(Fault.error(403, 10000, "Authentication error"), times=10)
        await wait_for_poll(pilot, app)
        assert "Cloudflare Tunnel Read" in app.status.message
        assert app.snapshot is None and app.table.row_count == 0


async def test_rate_limit_holds_every_request_until_retry_after() -> None:
    app, fake = make_app(interval=60.0)  # no poll of the timer's in between: the 429 meets r's poll
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        fake.inject(Fault.rate_limited(300))
        await pilot.press("r")
        await wait_for_poll(pilot, app, count=2)
        sent = len(fake.requests)
        assert "rate limited" in app.status.message and "300" in app.status.message
        # Changed on purpose: r waits for the budget's next token (a reorder, never a bypass), so while Retry-After
        # lasts it arms the next poll for when the block ends instead of polling (and failing) at once.
        await pilot.press("r")  # asking again must not send anything before Retry-After passes
        # The block is counted on the engine's own clock: a loaded machine may have spent a second or more since.
        waits = re.search(r"refreshing when the request budget allows \((\d+) s\)", app.status.message)
        assert waits is not None and 240 <= int(waits[1]) <= 300, app.status.message
        assert app._next_poll_at - app._monotonic() > 290
        await pilot.pause()
        assert len(fake.requests) == sent and app.poll_count + app.failures == 2
        assert app.header.stale


async def test_hostile_strings_render_literally() -> None:
    app, fake = make_app()
    hostile = "[bold red]x[/][@click=app.quit]\x1b]0;pwned\x07\x1b[2J\u202eevil"
    tid = DEMO_TUNNELS["home-lab"]
    clients = fake.sim.clients(tid)
    clients[0]["version"] = hostile
    clients[0]["conns"][0]["colo_name"] = hostile
    clients[0]["conns"][0]["origin_ip"] = "[/oops]"
    fake.sim.set_clients(tid, clients)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        key = f"{tid}/{clients[0]['id']}/{clients[0]['conns'][0]['id']}"
        colo = cell(app, key, "colo").plain
        assert colo.startswith("[bold") and "\x1b" not in colo and "\u202e" not in colo and "\x07" not in colo
        assert cell(app, key, "origin").plain == "[/oops]"
        app.table.select_key(key)
        app.table.focus()
        await pilot.pause()
        detail = plain(app.query_one(DetailPane).shown)
        assert "Connection" in detail and "\x1b" not in detail and "\u202e" not in detail
        assert app.is_running  # [@click=app.quit] did not become an action
        node_text = app.client_tree.node_for(f"{tid}/{clients[0]['id']}").label.plain
        assert "\x1b" not in node_text


async def test_help_screen_lists_every_binding_and_says_read_only() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = plain(app.screen.query_one("#help-box"))
        assert "read-only" in text
        replay_only = {c.id for c in COMMANDS if c.replay}  # listed in a replay (tests/test_ui_replay.py)
        for binding in app.BINDINGS:
            if binding.id in replay_only:
                continue
            key = binding.key.split(",")[0]
            shown = {"question_mark": "?", "slash": "/", "plus": "+", "minus": "-", "escape": "esc"}.get(key, key)
            assert shown in text, f"help does not list {binding.key}"
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_every_action_is_in_the_command_palette() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for wanted in (
            "Filter",
            "Colo picker",
            "Cycle sort",
            "Reverse sort",
            "Refresh now",
            "Pause / resume",
            "Poll less often",
            "Poll more often",
            "Help",
            "Back",
        ):
            assert wanted in titles


async def test_several_tunnels_named_and_one_tunnel_hides_tunnel_column() -> None:
    app, _ = make_app(refs=["web-prod"])
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        assert "tunnel" not in app.table.columns_shown
        assert {r.tunnel.name for r in app.table.rows_by_key.values()} == {"web-prod"}
        assert app.snapshot.tunnels[0].health == Health.HEALTHY


async def test_polls_and_ticks_while_a_modal_is_open_do_not_crash() -> None:
    app, _ = make_app(interval=1.0, frozen=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        await pilot.press("question_mark")
        await wait_for_poll(pilot, app, count=2)
        app._tick()  # a header tick too
        await pilot.pause()
        await pilot.press("escape", "c")
        await wait_for_poll(pilot, app, count=3)
        assert isinstance(app.screen, ColoPicker) and app.is_running


async def test_several_accounts_open_a_picker_and_the_choice_is_polled() -> None:
    from tunneltop.ui.screens import AccountPicker

    app, fake = make_app(account=None)
    other = "0123456789abcdef0123456789abcdef"
    fake.accounts = [
        {"id": other, "name": "Other [bold]Co[/]"},
        {"id": fake.sim.account_id, "name": "Demo"},
    ]
    async with app.run_test(size=SIZE) as pilot:
        await app.polling.wait_until(lambda: isinstance(app.screen, AccountPicker))
        await pilot.pause()
        assert app.snapshot is None and app.poll_count == 0
        await pilot.press("down", "enter")
        await wait_for_poll(pilot, app)
        assert app.snapshot.account_id == fake.sim.account_id
        assert app.table.row_count > 0
        assert app.header.account == "Demo"


async def test_a_wait_for_a_poll_ends_when_the_app_does() -> None:
    """The tests' waits have no deadline of their own: one on an app that has ended raises, it does not hang."""
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        app.exit()
        with pytest.raises(RuntimeError, match="not running"):
            await wait_for_poll(pilot, app, count=99)
