"""Defects of the live view a user hits in the first minutes (issue 12), each driven through the real app."""

from __future__ import annotations

import pytest
from textual.geometry import Size
from textual.pilot import Pilot

from tests.ui_support import make_app, wait_for_poll
from tunneltop.ui.app import TunneltopApp

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
