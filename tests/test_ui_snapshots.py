"""SVG snapshots of the main layouts, on the frozen demo account with fixed clocks (so they are repeatable).

Update after an intended change with: pytest tests/test_ui_snapshots.py --snapshot-update
"""

from __future__ import annotations

from tests.support.ui import make_app, wait_for_poll
from tunneltop.demo.cfapi import Fault


def _after_first_poll(app, *keys: str):
    async def run_before(pilot) -> None:
        await wait_for_poll(pilot, app)
        if keys:
            await pilot.press(*keys)
        await pilot.pause()

    return run_before


def test_overview_wide(snap_compare) -> None:
    app, _ = make_app()
    assert snap_compare(app, terminal_size=(140, 40), run_before=_after_first_poll(app))


def test_overview_80x24(snap_compare) -> None:
    app, _ = make_app()
    assert snap_compare(app, terminal_size=(80, 24), run_before=_after_first_poll(app))


def test_filtered_to_pending(snap_compare) -> None:
    app, _ = make_app()
    assert snap_compare(
        app, terminal_size=(120, 32), run_before=_after_first_poll(app, "slash", *"state:pending", "enter")
    )


def test_stale_after_gateway_error(snap_compare) -> None:
    # At a 30 s interval the budget lets r's poll reach every named tunnel: all of them failing is a failed poll.
    app, fake = make_app(interval=30.0)

    async def run_before(pilot) -> None:
        await wait_for_poll(pilot, app)
        fake.inject(Fault.html_page(502), times=100)
        await pilot.press("r")
        await wait_for_poll(pilot, app, count=2)
        app.clear_notifications()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 32), run_before=run_before)


def test_help_screen(snap_compare) -> None:
    app, _ = make_app()
    assert snap_compare(app, terminal_size=(100, 32), run_before=_after_first_poll(app, "question_mark"))


def test_account_overview(snap_compare) -> None:
    app, _ = make_app(start_view=None)
    assert snap_compare(app, terminal_size=(140, 30), run_before=_after_first_poll(app))
