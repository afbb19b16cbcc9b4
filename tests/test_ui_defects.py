"""Defects of the live view a user hits in the first minutes (issue 12), each driven through the real app."""

from __future__ import annotations

from datetime import timedelta

import pytest
from textual.geometry import Size
from textual.pilot import Pilot

from tests.ui_support import FakeClock, make_app, wait_for_poll
from tunneltop.changes.events import EventKind
from tunneltop.demo.simulator import DEMO_TUNNELS
from tunneltop.ui.app import TunneltopApp
from tunneltop.ui.event_log import EventLogView

LAYOUT = ("#header", "#main", "#tree", "#right", "#colo-strip", "#table", "#detail", "#status")


def layout(app: TunneltopApp) -> dict[str, Size]:
    screen = app.main_screen
    return {selector: screen.query_one(selector).size for selector in LAYOUT}


async def settle(pilot: Pilot, app: TunneltopApp, size: tuple[int, int]) -> None:
    """Until the main screen has been laid out at ``size`` (the app resizes on a timer after the event)."""
    for _ in range(100):
        await pilot.pause()
        if app.main_screen.size == Size(*size) and app.main_screen.query_one("#main").size.width == size[0]:
            break
    await pilot.pause()


async def fresh_layout(size: tuple[int, int]) -> dict[str, Size]:
    app, _ = make_app()
    async with app.run_test(size=size) as pilot:
        await wait_for_poll(pilot, app)
        return layout(app)


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
        assert layout(app) == expected


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
        assert layout(app) == expected


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
@pytest.mark.parametrize("keys", list(OVERLAYS.values()), ids=list(OVERLAYS))
async def test_keys_reach_the_view_after_every_overlay_and_toggle(view: str, keys: tuple[str, ...]) -> None:
    app, _ = make_app(start_view=None if view in ("overview", "drilled") else "monitor")
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_poll(pilot, app)
        if view == "drilled":
            await drill(pilot, app)
        expected = (app.view, app.drilled)
        widget = main_widget(app)
        assert app.focused is widget
        await pilot.press(*keys)
        await pilot.pause()
        assert (app.view, app.drilled) == expected
        assert app.focused is widget, f"keys go to {app.focused!r}"
        row = widget.cursor_row
        await pilot.press("j")
        assert widget.cursor_row == row + 1


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
        app.tree.focus()
        await pilot.pause()
        await pilot.press("slash", "escape")
        assert app.focused is app.tree
        await pilot.press("e", "e")
        assert app.focused is app.tree


async def test_an_event_chosen_on_the_overview_opens_its_tunnel_at_its_row() -> None:
    clock = FakeClock()
    app, fake = make_app(start_view=None, clock=clock)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_poll(pilot, app)
        clients = fake.sim.clients(WEB)
        conn = clients[0]["conns"][0]
        conn["is_pending_reconnect"] = True
        fake.sim.set_clients(WEB, clients)
        clock.now += timedelta(seconds=5)
        polls = app.poll_count
        await pilot.press("r")
        await wait_for_poll(pilot, app, count=polls + 1)
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
