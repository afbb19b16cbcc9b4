"""A large view's redraw is worked out on a thread of its own and taken in at once (ui/monitor_view.py): what the
screen ends up showing must be what the screen's own thread would have drawn."""

from __future__ import annotations

import gc
import threading

import pytest

from tests.support.ui import make_app, wait_for_poll
from tunneltop.ui.app import TunneltopApp
from tunneltop.ui.monitor_view import MonitorView, _Wanted

SIZE = (130, 40)


async def _settled(app: TunneltopApp) -> None:
    # Each redraw on a thread is a worker whose result the screen takes in before it ends; another may follow.
    while app.monitor.redrawing:
        await app.workers.wait_for_complete()


def _seen(app: TunneltopApp) -> tuple[object, ...]:
    table = app.table
    keys = [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]
    tree = [node.data.node_id for node in app.client_tree.root.children] if app.client_tree.root else []
    labels = [str(node.label) for node in app.client_tree.root.children]
    return (keys, tree, labels, app.header.filtered, table.cursor_row)


async def _walk(app: TunneltopApp) -> list[tuple[object, ...]]:
    seen = []
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        await _settled(app)
        seen.append(_seen(app))
        for keys in (("slash", *"colo:AMS,FRA"), ("enter",), ("slash", "ctrl+u", *"web"), ("enter",), ("escape",)):
            await pilot.press(*keys)
            await _settled(app)
            await pilot.pause()
            seen.append(_seen(app))
        await pilot.press("down", "down", "s")  # the cursor moved, then another sort
        await _settled(app)
        seen.append(_seen(app))
        await pilot.press("r")
        await wait_for_poll(pilot, app, 2)
        await _settled(app)
        seen.append(_seen(app))
    return seen


def every_redraw_on_a_thread(monkeypatch: pytest.MonkeyPatch, work: str = "_work_out") -> list[int]:
    """From now on every redraw (or with ``work="_work_out_sort"``, every sort) is worked out on a worker thread;
    the idents of the threads that worked them out."""
    monkeypatch.setattr("tunneltop.ui.monitor_view.OFF_THREAD_ROWS", 1)
    worked: list[int] = []
    work_out = getattr(MonitorView, work)

    def counted(view: MonitorView) -> None:
        worked.append(threading.get_ident())
        work_out(view)

    monkeypatch.setattr(MonitorView, work, counted)
    return worked


async def test_a_redraw_worked_out_on_a_thread_shows_what_the_screen_thread_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    here, _ = make_app()
    expected = await _walk(here)
    threads = every_redraw_on_a_thread(monkeypatch)
    there, _ = make_app()
    assert await _walk(there) == expected
    assert threads and threading.get_ident() not in threads
    assert len(expected[0][0]) > 0 and len(expected[1][0]) < len(expected[0][0])  # the filter narrowed the table


async def test_a_large_tables_sort_is_worked_out_on_a_thread_and_keys_pressed_meanwhile_go_on_from_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # At 100,000 rows a sort on the screen's thread froze it 1.3 s (benchmarks.live). "s" pressed twice before
    # the first sort is taken in must still go two columns on, and land where the screen's own thread would.
    async def sorted_twice(app: TunneltopApp) -> tuple[object, ...]:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for_poll(pilot, app)
            await _settled(app)
            columns, first = app.table.columns_shown, app.table.sort_column
            await pilot.press("down", "s", "s")
            await _settled(app)
            await pilot.pause()
            moved = (columns.index(app.table.sort_column) - columns.index(first)) % len(columns)
            return (*_seen(app), app.table.sort_column, app.table.sort_reverse, moved)

    here, _ = make_app()
    expected = await sorted_twice(here)
    worked = every_redraw_on_a_thread(monkeypatch, "_work_out_sort")
    there, _ = make_app()
    assert await sorted_twice(there) == expected
    assert worked and threading.get_ident() not in worked
    assert expected[-1] == 2, "two columns on from the first sort column"


async def test_a_finished_redraw_keeps_nothing_of_its_poll_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    # A finished Textual worker sits in a reference cycle with its task: what it was handed must not ride along, or a
    # whole poll's rows and tunnels outlive it until a full collection (seen at 100,000 connections: RSS grew
    # ~100 MB over a dozen polls, then one collection took 0.6-1 s). The collector is off: only reference counting.
    worked = every_redraw_on_a_thread(monkeypatch)
    app, _ = make_app()
    gc.collect()
    gc.disable()
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for_poll(pilot, app)
            await _settled(app)
            for keys in (("slash", *"web"), ("escape",), ("r",)):
                await pilot.press(*keys)
                await _settled(app)
            await wait_for_poll(pilot, app, 2)
            await _settled(app)
            alive = [o for o in gc.get_objects() if isinstance(o, _Wanted)]
            assert len(worked) >= 4 and alive == [], (len(worked), len(alive))
    finally:
        gc.enable()


async def test_a_cleared_filter_lets_go_of_the_rows_haystacks() -> None:
    # Free words are matched against a haystack per row, kept while words are typed: 22 MB at 100,000 rows.
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        await pilot.press("slash", *"web")
        await _settled(app)
        assert app.monitor._selector._texts
        await pilot.press("escape")
        await _settled(app)
        assert not app.filter.active and not app.monitor._selector._texts


async def test_a_fault_in_working_a_poll_out_ahead_never_loses_the_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    # Session.prepare is only work done ahead: if it fails, taking the poll makes the rows itself.
    def broken(*args: object) -> None:
        raise RuntimeError("prepare broke")

    monkeypatch.setattr("tunneltop.views.session.Session.prepare", broken)
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        assert app.poll_count == 1 and app.failures == 0
        assert app.table.row_count == len(app.rows) > 0
