"""The connections table: one row per edge connection, a VirtualTable (see ``ui.virtual_table``), so a poll costs
what changed, not what exists. Rows sort on real values (``watch.rows``); ages ("Opened") are made only when drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

from tunneltop.model.health import age_changes_at, format_age
from tunneltop.sanitize import clean
from tunneltop.ui.text import STATE_LABEL, short_id
from tunneltop.ui.virtual_table import NEVER, Cell, VirtualTable
from tunneltop.views.rows import SORT_KEYS, ConnRow, natural_key
from tunneltop.views.session import Mark

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

# "Opened" shows an age that changes with the clock: formatted only when drawn, in a column wide enough for any
# age format_age can produce up to 27 years ("9999d23h" would need 8).
_AGE_COLUMN = "opened"
_AGE_WIDTH = 8


# Each state's style for most cells, for the colo (bold) and for the id (dim).
_PLAIN = ("", "bold", "dim")
_STATE_STYLES = {
    "pending": ("yellow", "bold yellow", "dim yellow"),
    "gone": ("dim strike", "bold dim strike", "dim dim strike"),
}
_INDEX = {column: index for index, column in enumerate(COLUMNS)}


def _every_cell(row: ConnRow, mark: Mark | None) -> list[Cell]:
    """Every column's cell, in ``COLUMNS`` order; the age cell carries its style and an empty text. Made for every
    row that changes (a failover at 100,000 connections: 16,000 of them), so written out flat."""
    conn = row.conn
    connector = row.connector
    state = "gone" if row.gone_at is not None else conn.state
    base, bold, dim = _STATE_STYLES.get(state, _PLAIN)
    state_text, state_style = STATE_LABEL[state]
    if mark is not None and mark.kind == "new" and state != "gone":
        state_text, state_style = "✚ " + state_text, state_style + " bold"
    cells = [
        (clean(row.tunnel.name or row.tunnel.id, 40), base),
        (short_id(connector.id), base),
        (clean(conn.colo_name, 12), bold),
        (state_text, state_style),
        (clean(conn.origin_ip, 45), base),
        ("", base),
        (clean(conn.client_version or connector.version, 24), base),
        (short_id(conn.id), dim),
    ]
    if mark is not None and mark.kind == "changed":
        for column in mark.columns:
            index = _INDEX[column]
            text, style = cells[index]
            cells[index] = (text, f"{style} reverse".strip())
    return cells


def _cells(row: ConnRow, columns: Sequence[str], mark: Mark | None) -> tuple[Cell, ...]:
    """Each shown cell but the age as (text, style); the age cell carries its style and an empty text."""
    cells = _every_cell(row, mark)
    return tuple(cells[_INDEX[c]] for c in columns)


def _age(row: ConnRow, now: datetime) -> str:
    opened = row.conn.opened_at
    return format_age(now - opened) if opened else "-"


def row_cells(row: ConnRow, now: datetime, columns: Sequence[str], mark: Mark | None = None) -> tuple[Cell, ...]:
    """Each shown cell as (text, style). Pending rows are yellow, ghosts dim and struck through; a new row's
    state says so, and recently changed cells are reversed, so both stand out without colour too."""
    cells = _cells(row, columns, mark)
    return tuple((_age(row, now), s) if c == _AGE_COLUMN else (t, s) for c, (t, s) in zip(columns, cells, strict=True))


def _same_row(a: ConnRow, b: ConnRow) -> bool:
    # Records are reused from poll to poll when unchanged (watch.source), so identity settles almost every row.
    return a is b or (
        a.key == b.key
        and a.gone_at == b.gone_at
        and (a.conn is b.conn or a.conn == b.conn)
        and (a.connector is b.connector or a.connector.version == b.connector.version)
        and (a.tunnel is b.tunnel or a.tunnel.name == b.tunnel.name)
    )


class ConnectionsTable(VirtualTable[ConnRow]):
    """A virtual table of connection rows; pending reconnects first until another column is chosen."""

    HEADINGS = COLUMNS
    SORTS = SORT_KEYS
    TIMED = {_AGE_COLUMN: _AGE_WIDTH}

    # Its own message classes, so handlers can be named for it (on_connections_table_row_selected).
    class RowHighlighted(VirtualTable.RowHighlighted):
        """The cursor moved to another row (``row_key.value`` is the row's key)."""

    class RowSelected(VirtualTable.RowSelected):
        """Enter or a click on a row."""

    class HeaderSelected(VirtualTable.HeaderSelected):
        """A click on a column heading (``column_key.value`` is the column id)."""

    def __init__(self, *, show_tunnel: bool, **kwargs: Any) -> None:
        columns = [c for c in COLUMNS if show_tunnel or c != "tunnel"]
        super().__init__(columns=columns, sort_column="state", **kwargs)
        self._shown_cells = itemgetter(*(_INDEX[c] for c in columns))  # the shown columns' cells, as a tuple

    def key_of(self, row: ConnRow) -> str:
        return row.key

    def natural_key(self, row: ConnRow) -> Any:
        return natural_key(row)

    def cells(self, row: ConnRow, mark: Mark | None) -> tuple[Cell, ...]:
        cells: tuple[Cell, ...] = self._shown_cells(_every_cell(row, mark))
        return cells

    def timed_text(self, row: ConnRow, column: str, now: datetime) -> str:
        return _age(row, now)

    def timed_changes_at(self, row: ConnRow, column: str, now: datetime) -> datetime:
        opened = row.conn.opened_at
        return age_changes_at(opened, now) if opened else NEVER

    def same_row(self, a: ConnRow, b: ConnRow) -> bool:
        return _same_row(a, b)
