"""The virtual connections table on its own: diff updates, sorting, cursor by key, drawing, keys and mouse."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

from tunneltop.model.health import age_changes_at, format_age
from tunneltop.model.records import Connection, Connector, Tunnel
from tunneltop.ui.conn_table import COLUMNS, ConnectionsTable
from tunneltop.views.rows import ConnRow, sort_rows
from tunneltop.views.session import Mark

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
COLOS = ("DFW", "LAX", "AMS", "FRA", "SIN")


def make_row(
    n: int, *, tunnel: int = 0, pending: bool | None = False, colo: str | None = None, age: int = 0
) -> ConnRow:
    t = Tunnel(id=f"t{tunnel}", name=f"tunnel-{tunnel:02d}")
    c = Connector(id=f"c{tunnel}-{n % 3}", version="2025.1.0")
    conn = Connection(
        id=f"conn-{n:05d}",
        colo_name=colo or COLOS[n % len(COLOS)],
        origin_ip=f"192.0.2.{n % 250 + 1}",
        opened_at=NOW - timedelta(seconds=age or 100 + n * 37),
        is_pending_reconnect=pending,
        client_version=("2024.8.2", "2025.1.0", "2024.10.0")[n % 3],
    )
    return ConnRow(f"{t.id}/{c.id}/{conn.id}", t, c, conn)


class TableApp(App[None]):
    def __init__(self, show_tunnel: bool = True) -> None:
        super().__init__()
        self.show_tunnel = show_tunnel
        self.messages: list[object] = []

    def compose(self) -> ComposeResult:
        yield ConnectionsTable(show_tunnel=self.show_tunnel, id="table")

    def on_data_table_row_highlighted(self, message: DataTable.RowHighlighted) -> None:
        self.messages.append(message)

    def on_connections_table_row_highlighted(self, message: DataTable.RowHighlighted) -> None:
        self.messages.append(message)

    def on_connections_table_row_selected(self, message: DataTable.RowSelected) -> None:
        self.messages.append(message)

    def on_connections_table_header_selected(self, message: DataTable.HeaderSelected) -> None:
        self.messages.append(message)


def keys(table: ConnectionsTable) -> list[str]:
    return [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]


def line(table: ConnectionsTable, y: int) -> str:
    return table.render_line(y).text


async def test_rows_follow_each_show_in_sorted_order_for_every_column_and_direction() -> None:
    rng = random.Random(5)
    rows = {r.key: r for r in (make_row(n, tunnel=n % 4, pending=n % 11 == 0) for n in range(120))}
    serial = 1000
    async with TableApp().run_test(size=(160, 30)) as pilot:
        table = pilot.app.query_one(ConnectionsTable)
        for step in range(40):
            # Churn: some close, some open, some change state or colo; sometimes the sort changes.
            for key in rng.sample(sorted(rows), 6):
                del rows[key]
            for _ in range(6):
                serial += 1
                row = make_row(serial, tunnel=rng.randrange(4), pending=rng.random() < 0.2)
                rows[row.key] = row
            for key in rng.sample(sorted(rows), 4):
                old = rows[key]
                conn = old.conn.model_copy(
                    update={"is_pending_reconnect": not old.conn.is_pending_reconnect, "colo_name": rng.choice(COLOS)}
                )
                rows[key] = ConnRow(key, old.tunnel, old.connector, conn)
            if step % 7 == 3:
                table.set_sort(rng.choice(table.columns_shown), rng.random() < 0.5)
            shown = list(rows.values())
            rng.shuffle(shown)
            table.show(shown, NOW + timedelta(seconds=5 * step))
            expected = [r.key for r in sort_rows(rows.values(), table.sort_column, table.sort_reverse)]
            assert keys(table) == expected
            assert table.rows_by_key == rows
        # A big change at once (a new filter) takes the re-sort path and lands in the same order.
        kept = {k: r for k, r in rows.items() if r.conn.colo_name in ("DFW", "AMS")}
        table.show(list(kept.values()), NOW)
        assert keys(table) == [r.key for r in sort_rows(kept.values(), table.sort_column, table.sort_reverse)]


async def test_ghost_and_unknown_rows_sort_and_style_like_the_rest() -> None:
    rows = [make_row(1), make_row(2, pending=True), make_row(3, pending=None), make_row(4)]
    rows.append(ConnRow(rows[0].key + "-gone", rows[0].tunnel, rows[0].connector, rows[0].conn, gone_at=NOW))
    async with TableApp().run_test(size=(160, 20)) as pilot:
        table = pilot.app.query_one(ConnectionsTable)
        table.show(rows, NOW)
        states = [table.rows_by_key[k].state for k in keys(table)]
        assert states == ["pending", "gone", "unknown", "active", "active"]
        ghost = table.get_cell(rows[-1].key, "origin")
        assert "strike" in str(ghost.style) and "dim" in str(ghost.style)
        assert "yellow" in str(table.get_cell(rows[1].key, "colo").style)


async def test_cells_marks_and_ages() -> None:
    row = make_row(7, age=3 * 60 + 5)
    async with TableApp().run_test(size=(160, 20)) as pilot:
        table = pilot.app.query_one(ConnectionsTable)
        table.show([row], NOW, {row.key: Mark("new", NOW + timedelta(seconds=30))})
        assert table.get_cell(row.key, "state").plain == "✚ ● active"
        assert table.get_cell(row.key, "opened").plain == "3m05s"
        table.show([row], NOW + timedelta(seconds=60), {row.key: Mark("changed", NOW, frozenset({"colo"}))})
        assert table.get_cell(row.key, "opened").plain == "4m05s"  # the age follows the clock
        assert "reverse" in str(table.get_cell(row.key, "colo").style)
        assert "reverse" not in str(table.get_cell(row.key, "state").style)
        table.show([row], NOW + timedelta(seconds=60), {})
        assert "reverse" not in str(table.get_cell(row.key, "colo").style)
        with pytest.raises(CellDoesNotExist):
            table.get_cell("nope", "colo")
        with pytest.raises(CellDoesNotExist):
            table.coordinate_to_cell_key((1, 0))


async def test_draws_header_with_sort_arrow_and_only_the_visible_rows() -> None:
    rows = [make_row(n) for n in range(500)]
    async with TableApp().run_test(size=(160, 12)) as pilot:
        table = pilot.app.query_one(ConnectionsTable)
        table.show(rows, NOW)
        await pilot.pause()
        header = line(table, 0)
        for label in COLUMNS.values():
            assert label in header
        assert "State ▲" in header
        first = table.rows_by_key[keys(table)[0]]
        assert first.conn.id[:8] in line(table, 1) and "tunnel-00" in line(table, 1)
        table.set_sort("opened", True)
        assert "Opened ▼" in line(table, 0)
        table._line_cache.clear()
        drawn: list[int] = []
        real = ConnectionsTable._strip

        def counting(self, *args, **kwargs):
            drawn.append(1)
            return real(self, *args, **kwargs)

        ConnectionsTable._strip = counting
        try:
            table.refresh()
            await pilot.pause()
        finally:
            ConnectionsTable._strip = real
        assert 0 < len(drawn) <= 12, "only the lines on screen are drawn"


async def test_markup_and_control_characters_are_shown_literally() -> None:
    row = make_row(1)
    hostile = row.tunnel.model_copy(update={"name": "[bold red]x[/][@click=app.quit]\x1b[2J"})
    row = ConnRow(row.key, hostile, row.connector, row.conn)
    async with TableApp().run_test(size=(160, 10)) as pilot:
        table = pilot.app.query_one(ConnectionsTable)
        table.show([row], NOW)
        text = line(table, 1)
        assert "[bold red]x[/][@click=app.quit]" in text and "\x1b" not in text


async def test_cursor_stays_on_its_connection_through_updates_and_sorts() -> None:
    rows = [make_row(n, tunnel=n % 3) for n in range(60)]
    async with TableApp().run_test(size=(160, 20)) as pilot:
        table = pilot.app.query_one(ConnectionsTable)
        table.focus()
        table.show(rows, NOW)
        await pilot.press("j", "j", "j")
        assert table.cursor_row == 3
        chosen = table.cursor_key
        for column in table.columns_shown:
            table.set_sort(column, False)
            assert table.cursor_key == chosen
        table.set_sort("colo", True)
        assert table.cursor_key == chosen
        # Rows sorted in ahead of it do not move the cursor off it.
        rows += [make_row(n, colo="ZZZ") for n in range(100, 120)]
        table.show(rows, NOW)
        assert table.cursor_key == chosen
        # When its row goes, the cursor keeps its place in the list.
        index = table.cursor_row
        table.show([r for r in rows if r.key != chosen], NOW)
        assert table.cursor_row == index and table.cursor_key != chosen
        assert table.select_key(rows[10].key) and table.cursor_key == rows[10].key
        assert not table.select_key("missing")
        table.show([], NOW)
        assert table.row_count == 0 and table.cursor_key is None


async def test_keys_move_the_cursor_and_scroll_it_into_view() -> None:
    rows = [make_row(n) for n in range(300)]
    async with TableApp().run_test(size=(160, 12)) as pilot:
        table = pilot.app.query_one(ConnectionsTable)
        table.focus()
        table.show(rows, NOW)
        await pilot.pause()
        await pilot.press("G")
        assert table.cursor_row == 299
        await pilot.pause()
        assert table.scroll_y > 250
        last = table.rows_by_key[table.cursor_key].conn.id[:8]
        assert any(last in line(table, y) for y in range(1, table.scrollable_content_region.height))
        await pilot.press("g")
        assert table.cursor_row == 0 and table.scroll_y == 0
        await pilot.press("pagedown")
        assert table.cursor_row == table.scrollable_content_region.height - 1
        await pilot.press("pageup", "down", "down", "up")
        assert table.cursor_row == 1
        await pilot.press("end", "home")
        assert table.cursor_row == 0
        table.move_cursor(row=42)
        assert table.cursor_row == 42 and table.get_row_index(table.cursor_key) == 42


async def test_enter_click_and_header_click_post_datatable_messages() -> None:
    rows = [make_row(n) for n in range(30)]
    app = TableApp()
    async with app.run_test(size=(160, 20)) as pilot:
        table = app.query_one(ConnectionsTable)
        table.focus()
        table.show(rows, NOW)
        await pilot.press("j", "enter")
        await pilot.pause()
        selected = [m for m in app.messages if isinstance(m, DataTable.RowSelected)]
        assert selected and selected[-1].row_key.value == keys(table)[1] and selected[-1].control is table
        highlighted = [m for m in app.messages if isinstance(m, DataTable.RowHighlighted)]
        assert highlighted[-1].row_key.value == keys(table)[1]
        await pilot.click("#table", offset=(3, 4))  # the fourth row
        await pilot.pause()
        assert table.cursor_row == 3
        assert [m for m in app.messages if isinstance(m, DataTable.RowSelected)][-1].cursor_row == 3
        x = sum(table._widths[c] for c in table.columns_shown[:2]) + 1  # inside the third heading
        await pilot.click("#table", offset=(x, 0))
        await pilot.pause()
        header = [m for m in app.messages if isinstance(m, DataTable.HeaderSelected)][-1]
        assert header.column_key.value == table.columns_shown[2] and header.column_index == 2


async def test_a_poll_that_changes_nothing_on_screen_repaints_nothing() -> None:
    rows = [make_row(n, age=7200) for n in range(200)]
    async with TableApp().run_test(size=(160, 12)) as pilot:
        table = pilot.app.query_one(ConnectionsTable)
        table.show(rows, NOW)
        await pilot.pause()
        regions: list[object] = []
        real = table.refresh

        def spy(*args, **kwargs):
            regions.append(args)
            return real(*args, **kwargs)

        table.refresh = spy
        same = [ConnRow(r.key, r.tunnel, r.connector, r.conn) for r in rows]  # equal rows, new objects
        table.show(same, NOW + timedelta(seconds=5))  # ages shown in minutes: no visible change
        assert regions == []
        # A row changing below the fold repaints nothing either; one on screen repaints just its line.
        last = keys(table)[-1]
        changed = {**table.rows_by_key}
        changed[last] = ConnRow(
            last, rows[0].tunnel, rows[0].connector, rows[0].conn.model_copy(update={"colo_name": "LHR"})
        )
        table.show(list(changed.values()), NOW + timedelta(seconds=5))
        assert regions == []
        first = keys(table)[0]
        row = changed[first]
        changed[first] = ConnRow(first, row.tunnel, row.connector, row.conn.model_copy(update={"origin_ip": "::1"}))
        table.show(list(changed.values()), NOW + timedelta(seconds=5))
        assert len(regions) == 1


async def test_one_tunnel_hides_the_tunnel_column() -> None:
    async with TableApp(show_tunnel=False).run_test(size=(120, 10)) as pilot:
        table = pilot.app.query_one(ConnectionsTable)
        table.show([make_row(1)], NOW)
        assert "tunnel" not in table.columns_shown and "Tunnel" not in line(table, 0)
        with pytest.raises(CellDoesNotExist):
            table.get_cell(make_row(1).key, "tunnel")


class TwoTables(App[None]):
    def compose(self) -> ComposeResult:
        yield ConnectionsTable(show_tunnel=True, id="shown")
        yield ConnectionsTable(show_tunnel=True, id="planned")


async def test_a_plan_adopted_leaves_the_table_exactly_as_show_would() -> None:
    # A large change is worked out off the screen's thread (plan) and taken in at once (adopt): the table must
    # then be what show() makes of the same rows, poll after poll, whichever way each poll arrived.
    rng = random.Random(11)
    rows = {r.key: r for r in (make_row(n, tunnel=n % 4, pending=n % 11 == 0) for n in range(150))}
    serial = 1000
    async with TwoTables().run_test(size=(160, 40)) as pilot:
        shown = pilot.app.query_one("#shown", ConnectionsTable)
        planned = pilot.app.query_one("#planned", ConnectionsTable)
        for step in range(24):
            churn = 20 if step % 2 else 3  # a plan from scratch, or one made on copies of the table (a small change)
            for key in rng.sample(sorted(rows), churn):
                del rows[key]
            for _ in range(churn):
                serial += 1
                row = make_row(serial, tunnel=rng.randrange(4), pending=rng.random() < 0.2, age=serial * 7)
                rows[row.key] = row
            if step % 5 == 2:
                column, reverse = rng.choice(shown.columns_shown), rng.random() < 0.5
                shown.set_sort(column, reverse)
                planned.set_sort(column, reverse)
            elif step % 5 == 4:  # a large table's sort: planned off the screen's thread (sort_plan), adopted
                column, reverse = rng.choice(shown.columns_shown), rng.random() < 0.5
                shown.set_sort(column, reverse)
                assert planned.adopt(planned.sort_plan(column, reverse), NOW)
                assert (planned.sort_column, planned.sort_reverse) == (column, reverse)
                assert keys(planned) == keys(shown) and planned.cursor_row == shown.cursor_row
            marks = {k: Mark("new", NOW + timedelta(seconds=30)) for k in rng.sample(sorted(rows), 2 + step % 4)}
            now = NOW + timedelta(seconds=5 * step)
            batch = list(rows.values())
            rng.shuffle(batch)
            shown.show(batch, now, marks)
            if step % 3 == 0:
                planned.show(batch, now, marks)  # some polls the plain way, to mix both
            else:
                assert planned.needs(batch, marks)
                assert planned.adopt(planned.plan(batch, marks), now)
                assert not planned.needs(batch, marks)
            assert keys(planned) == keys(shown)
            assert planned.rows_by_key == shown.rows_by_key
            assert planned.cursor_row == shown.cursor_row
            await pilot.pause()
            assert [line(planned, y) for y in range(12)] == [line(shown, y) for y in range(12)]
        # A plan made before the table changed (here, its sort) is refused: it would undo that change.
        stale = planned.plan(list(rows.values())[:50])
        planned.set_sort("colo", False)
        assert not planned.adopt(stale, NOW)
        assert planned.row_count == len(rows)
        stale_sort = planned.sort_plan("origin", True)
        planned.show(list(rows.values())[:40], NOW)
        assert not planned.adopt(stale_sort, NOW), "a sort worked out before the rows changed would bring them back"
        assert planned.row_count == 40 and planned.sort_column == "colo"


def test_cell_widths_are_kept_compactly_and_wide_cells_still_count() -> None:
    from tunneltop.ui.virtual_table import _sizes

    assert _sizes([("DFW", ""), ("✚ active", "bold"), ("", "")]) == bytes([3, 8, 0])
    wide = _sizes([("x" * 300, ""), ("名前", "")])  # too wide for a byte: kept as numbers; East Asian text is 2 a char
    assert list(wide) == [300, 4]


async def test_a_tick_works_out_lines_only_when_a_clock_text_on_screen_can_have_moved() -> None:
    # Ages over an hour read in minutes: ticks within the minute redraw nothing and work nothing out; at the
    # minute the lines are worked out and repainted. A row that comes meanwhile, seconds old, moves each second.
    rows = [make_row(n, age=7200) for n in range(50)]
    async with TableApp().run_test(size=(160, 12)) as pilot:
        table = pilot.app.query_one(ConnectionsTable)
        table.show(rows, NOW)
        await pilot.pause()
        asked: list[int] = []
        real = table.timed_text

        def counting(row: ConnRow, column: str, now: datetime) -> str:
            asked.append(1)
            return real(row, column, now)

        table.timed_text = counting  # type: ignore[method-assign]
        for second in range(1, 55):
            table.tick(NOW + timedelta(seconds=second))
        assert asked == [], "every age on screen reads the same until 12:01:00 (they opened on the minute)"
        table.tick(NOW + timedelta(seconds=60))
        await pilot.pause()
        assert asked and "2h01m" in line(table, 1)
        top = keys(table)[0]  # reconnected: the same place in the order, opened 5 s ago
        first = table.rows_by_key[top]
        opened = NOW + timedelta(seconds=60)
        young = ConnRow(top, first.tunnel, first.connector, first.conn.model_copy(update={"opened_at": opened}))
        table.show([young if r.key == top else r for r in rows], NOW + timedelta(seconds=65))
        await pilot.pause()
        assert " 5s " in line(table, 1) and "2h01m" in line(table, 2)
        table.tick(NOW + timedelta(seconds=66))
        await pilot.pause()
        assert " 6s " in line(table, 1), "a second later: the young row reads 6s"
        table.tick(NOW + timedelta(seconds=62))  # a replay's clock jumped back
        await pilot.pause()
        assert " 2s " in line(table, 1)


def test_an_age_reads_the_same_until_it_says_it_changes() -> None:
    rng = random.Random(7)
    for _ in range(2_000):
        since = NOW - timedelta(seconds=rng.choice([rng.uniform(-5, 90), rng.uniform(0, 3 * 86_400)]))
        now = NOW + timedelta(seconds=rng.uniform(0, 5))
        changes = age_changes_at(since, now)
        assert changes > now
        text = format_age(now - since)
        assert format_age(changes - timedelta(microseconds=1) - since) == text
        assert format_age(changes - since) != text
