"""The connections table's cells, written out flat for speed, are exactly what the plain per-column spelling makes
(the spelling the table had before, kept here as the specification), for every state, mark and column set."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from itertools import chain, combinations

import pytest

from tests.test_table import NOW, make_row
from tunneltop.model.records import Connection, Connector, Tunnel
from tunneltop.sanitize import clean
from tunneltop.ui.conn_table import COLUMNS, ConnectionsTable
from tunneltop.ui.text import STATE_LABEL, short_id
from tunneltop.ui.virtual_table import Cell, _sizes
from tunneltop.views.rows import ConnRow
from tunneltop.views.session import FIELD_COLUMNS, Mark


def specified(row: ConnRow, columns: Sequence[str], mark: Mark | None) -> tuple[Cell, ...]:
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
        "opened": ("", base),
        "state": (state_text, state_style),
        "version": (clean(conn.client_version or row.connector.version, 24), base),
        "id": (short_id(conn.id), f"dim {base}".strip()),
    }
    if mark is not None and mark.kind == "changed":
        for column in mark.columns:
            text, style = values[column]
            values[column] = (text, f"{style} reverse".strip())
    return tuple(values[c] for c in columns)


def _rows() -> list[ConnRow]:
    plain = [make_row(1), make_row(2, pending=True), make_row(3, pending=None)]
    odd = ConnRow(
        "t9/c9/x",
        Tunnel(id="t9", name=None),
        Connector(id="\x1b[31mconnector-with-a-long-id", version="2024.1.0"),
        Connection(id="", colo_name=None, origin_ip="a" * 60, client_version=None, is_pending_reconnect=False),
    )
    named = ConnRow("t8/c8/y", Tunnel(id="t8", name="名前\u202e" + "n" * 50), odd.connector, plain[0].conn)
    rows = [*plain, odd, named]
    return rows + [ConnRow(r.key, r.tunnel, r.connector, r.conn, gone_at=NOW) for r in rows]


def _marks() -> list[Mark | None]:
    columns = sorted({*FIELD_COLUMNS.values(), "connector"})
    changed = chain.from_iterable(combinations(columns, n) for n in (1, 2, len(columns)))
    until = NOW + timedelta(seconds=30)
    return [None, Mark("new", until), *(Mark("changed", until, frozenset(c)) for c in changed)]


@pytest.mark.parametrize("show_tunnel", [True, False])
def test_cells_are_as_specified_for_every_state_and_mark(show_tunnel: bool) -> None:
    table = ConnectionsTable(show_tunnel=show_tunnel)
    columns = [c for c in COLUMNS if show_tunnel or c != "tunnel"]
    assert table.columns_shown == columns
    for row in _rows():
        for mark in _marks():
            cells = table.cells(row, mark)
            assert cells == specified(row, columns, mark), (row.key, row.state, mark)
            assert isinstance(cells, tuple)


def test_cell_widths_measure_only_the_wide_cells_again() -> None:
    # Each cell's width, whether the row's other cells are ASCII or not.
    assert _sizes([("● active", ""), ("DFW", ""), ("名前", ""), ("", "")]) == bytes([8, 3, 4, 0])
    assert _sizes([("DFW", ""), ("ab", "")]) == bytes([3, 2])


def test_cell_widths_of_texts_with_symbols_are_rich_s() -> None:
    # A text of ASCII and the one-cell symbols tunneltop draws is measured by its length; any other by rich.
    from itertools import product

    from rich.cells import cell_len

    pieces = ["web-prod: ", "DFW→ORD", "…", "⚠ ", "● up", "名前", "🙂", "e\u0301", "✔✖▲▼", "\u200d", "·"]
    texts = ["".join(p) for p in product(pieces, repeat=2)] + ["12 connections moved 4xDFW, 8xLAX→12xORD"]
    assert list(_sizes([(text, "") for text in texts])) == [cell_len(text) for text in texts]
