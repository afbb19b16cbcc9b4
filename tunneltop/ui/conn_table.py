"""The connections table: one row per edge connection, updated by diff so a poll touches only what changed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from tunneltop.model.health import format_age
from tunneltop.sanitize import clean
from tunneltop.ui.text import STATE_LABEL, short_id
from tunneltop.watch.rows import SORT_KEYS, ConnRow, sort_rows
from tunneltop.watch.session import Mark

COLUMNS: dict[str, str] = {
    "tunnel": "Tunnel",
    "connector": "Connector",
    "colo": "Colo",
    "state": "State",
    "origin": "Origin IP",
    "opened": "Opened",
    "version": "Version",
    "id": "Conn ID",
}
assert list(COLUMNS) == list(SORT_KEYS), "every column sorts by its own real-valued key"

Cell = tuple[str, str]  # (text, style): cheap to compare, turned into Text only when it changed
# Past this many removals in one poll, clearing and re-adding beats DataTable's O(n) remove_row.
_REBUILD_AFTER_REMOVALS = 200


def row_cells(row: ConnRow, now: datetime, columns: Sequence[str], mark: Mark | None = None) -> tuple[Cell, ...]:
    """Each shown cell as (text, style). Pending rows are yellow, ghosts dim and struck through; a new row's
    state says so, and recently changed cells are reversed, so both stand out without colour too."""
    conn = row.conn
    state = row.state
    base = {"pending": "yellow", "gone": "dim strike"}.get(state, "")
    state_text, state_style = STATE_LABEL[state]
    if mark is not None and mark.kind == "new" and state != "gone":
        state_text, state_style = "✚ " + state_text, state_style + " bold"
    values: dict[str, Cell] = {
        "tunnel": (clean(row.tunnel.name or row.tunnel.id, 40), base),
        "connector": (short_id(row.connector.id), base),
        "colo": (clean(conn.colo_name, 12), f"bold {base}".strip()),
        "origin": (clean(conn.origin_ip, 45), base),
        "opened": (format_age(now - conn.opened_at) if conn.opened_at else "-", base),
        "state": (state_text, state_style),
        "version": (clean(conn.client_version or row.connector.version, 24), base),
        "id": (short_id(conn.id), f"dim {base}".strip()),
    }
    if mark is not None and mark.kind == "changed":
        for column in mark.columns:
            text, style = values[column]
            values[column] = (text, f"{style} reverse".strip())
    return tuple(values[c] for c in columns)


class ConnectionsTable(DataTable):
    """A DataTable that keeps its own sorted model and applies each poll as a diff."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]

    def __init__(self, *, show_tunnel: bool, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)  # type: ignore[arg-type]
        self.columns_shown = [c for c in COLUMNS if show_tunnel or c != "tunnel"]
        self.sort_column = "state"  # pending reconnects first: what an incident needs
        self.sort_reverse = False
        self.rows_by_key: dict[str, ConnRow] = {}
        self._cells: dict[str, tuple[Cell, ...]] = {}
        self._order: list[str] = []

    def on_mount(self) -> None:
        for column in self.columns_shown:
            self.add_column(self._heading(column), key=column)

    def _heading(self, column: str) -> Text:
        label = COLUMNS[column]
        if column == self.sort_column:
            label += " ▼" if self.sort_reverse else " ▲"
        return Text(label)

    def _relabel_columns(self) -> None:
        for column in self.columns_shown:
            self.columns[column].label = self._heading(column)  # type: ignore[index]
        self.refresh()

    def set_sort(self, column: str, reverse: bool) -> None:
        self.sort_column, self.sort_reverse = column, reverse
        self._relabel_columns()

    @property
    def cursor_key(self) -> str | None:
        if not self.row_count or self.cursor_row < 0:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # the cursor can point past the end while rows are being replaced
            return None

    def show(self, rows: Sequence[ConnRow], now: datetime, marks: Mapping[str, Mark] | None = None) -> None:
        """Make the table show exactly ``rows``, touching only rows and cells that changed."""
        keep = self.cursor_key
        ordered = sort_rows(rows, self.sort_column, self.sort_reverse)
        wanted = {r.key: r for r in ordered}
        gone = [k for k in self._cells if k not in wanted]
        if len(gone) > _REBUILD_AFTER_REMOVALS:
            self.clear()
            self._cells.clear()
            self._order = []
        else:
            for key in gone:
                self.remove_row(key)
                del self._cells[key]
        for row in ordered:
            cells = row_cells(row, now, self.columns_shown, marks.get(row.key) if marks else None)
            old = self._cells.get(row.key)
            if old is None:
                self.add_row(*(Text(t, style=s) for t, s in cells), key=row.key)
            elif old != cells:
                for column, before, after in zip(self.columns_shown, old, cells, strict=True):
                    if before != after:
                        self.update_cell(row.key, column, Text(after[0], style=after[1]))
            self._cells[row.key] = cells
        self.rows_by_key = wanted
        order = list(wanted)
        if order != self._order:
            self._apply_order(order)
        if keep in wanted:
            self.move_cursor(row=self.get_row_index(keep), animate=False)

    def _apply_order(self, order: list[str]) -> None:
        # DataTable.sort() can only sort on rendered cells; we sort our own model on real values and hand the
        # resulting order to the table the same way its sort() does (Textual is pinned exactly for this).
        self._row_locations = TwoWayDict({RowKey(key): index for index, key in enumerate(order)})
        self._order = order
        self._update_count += 1
        self.refresh()

    def select_key(self, key: str) -> bool:
        if key not in self.rows_by_key:
            return False
        self.move_cursor(row=self.get_row_index(key))
        return True

    def action_scroll_top(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_scroll_bottom(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)
