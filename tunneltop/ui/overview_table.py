"""The account overview: one row per tunnel, worst health first, updated by diff like the connections table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from tunneltop.model.health import format_age
from tunneltop.sanitize import clean
from tunneltop.ui.text import HEALTH_GLYPH, HEALTH_STYLE
from tunneltop.watch.filters import Filter
from tunneltop.watch.overview import TunnelSummary, summary_sort_key
from tunneltop.watch.rows import EPOCH, version_sort_key

OVERVIEW_COLUMNS: dict[str, str] = {
    "health": "Health",
    "name": "Tunnel",
    "connectors": "Conn.",
    "active": "Active",
    "pending": "Pending",
    "edges": "Edges",
    "version": "Oldest cloudflared",
    "changed": "Last up/down",
    "age": "Data age",
}

_NONE_LAST = 1 << 30

OVERVIEW_SORT: dict[str, Callable[[TunnelSummary], Any]] = {
    "health": summary_sort_key,
    "name": lambda s: ((s.name or "").casefold(), s.id),
    "connectors": lambda s: s.connectors if s.connectors is not None else -1,
    "active": lambda s: s.active if s.active is not None else -1,
    "pending": lambda s: s.pending if s.pending is not None else -1,
    "edges": lambda s: s.edges,
    "version": lambda s: version_sort_key(s.oldest_version),
    "changed": lambda s: s.last_change or EPOCH,
    "age": lambda s: s.age.total_seconds() if s.age is not None else _NONE_LAST,
}

Cell = tuple[str, str]


def summary_matches(flt: Filter, summary: TunnelSummary) -> bool:
    """The ``/`` filter applied to a tunnel: words match name, id, edges and version; colo: and state: work on
    what the tunnel's connections showed."""
    if not flt.active:
        return True
    hay = tuple(v.casefold() for v in (summary.name or "", summary.id, summary.edges, summary.oldest_version or ""))
    ok = all(any(w in h for h in hay) for w in flt.words)
    if ok and flt.colos:
        colos = {part.split("x", 1)[-1].upper() for part in summary.edges.split(", ") if part}
        ok = bool(colos & flt.colos)
    if ok and flt.states:
        states = set()
        if summary.pending:
            states.add("pending")
        if summary.active:
            states.add("active")
        if summary.active is None:
            states.add("unknown")
        ok = bool(states & flt.states)
    for key, values in flt.fields:
        if not ok:
            break
        field = {"tunnel": summary.name or "", "version": summary.oldest_version or ""}.get(key)
        ok = field is not None and any(v in field.casefold() for v in values)
    return ok != flt.inverted


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def summary_cells(s: TunnelSummary, now: datetime) -> tuple[Cell, ...]:
    style = HEALTH_STYLE[s.health]
    return (
        (f"{HEALTH_GLYPH[s.health]} {s.health.value}", style),
        (clean(s.label, 48), "bold"),
        (_count(s.connectors), ""),
        (_count(s.active), ""),
        (_count(s.pending), "bold yellow" if s.pending else "dim"),
        (clean(s.edges or "-", 60), ""),
        (clean(s.oldest_version, 20), ""),
        (format_age(now - s.last_change) + " ago" if s.last_change else "-", "dim"),
        ("not yet" if s.age is None else format_age(s.age), "red" if s.error else "dim"),
    )


class OverviewTable(DataTable):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", **kwargs)  # type: ignore[arg-type]
        self.sort_column = "health"
        self.sort_reverse = False
        self.summaries: dict[str, TunnelSummary] = {}
        self._cells: dict[str, tuple[Cell, ...]] = {}
        self._order: list[str] = []

    def on_mount(self) -> None:
        for key in OVERVIEW_COLUMNS:
            self.add_column(self._heading(key), key=key)

    def _heading(self, column: str) -> Text:
        label = OVERVIEW_COLUMNS[column]
        if column == self.sort_column:
            label += " ▼" if self.sort_reverse else " ▲"
        return Text(label)

    def set_sort(self, column: str, reverse: bool) -> None:
        self.sort_column, self.sort_reverse = column, reverse
        for key in OVERVIEW_COLUMNS:
            self.columns[key].label = self._heading(key)  # type: ignore[index]
        self.refresh()

    @property
    def cursor_key(self) -> str | None:
        if not self.row_count or not 0 <= self.cursor_row < len(self._order):
            return None
        return self._order[self.cursor_row]

    @property
    def order(self) -> list[str]:
        return list(self._order)

    def show(self, rows: Sequence[TunnelSummary], now: datetime) -> None:
        keep = self.cursor_key
        ordered = sorted(rows, key=summary_sort_key)
        ordered = sorted(ordered, key=OVERVIEW_SORT[self.sort_column], reverse=self.sort_reverse)
        wanted = {s.id: s for s in ordered}
        gone = [k for k in self._cells if k not in wanted]
        if len(gone) > 200:
            self.clear()
            self._cells.clear()
        else:
            for key in gone:
                self.remove_row(key)
                del self._cells[key]
        for summary in ordered:
            cells = summary_cells(summary, now)
            old = self._cells.get(summary.id)
            if old is None:
                self.add_row(*(Text(t, style=s) for t, s in cells), key=summary.id)
            elif old != cells:
                for column, before, after in zip(OVERVIEW_COLUMNS, old, cells, strict=True):
                    if before != after:
                        self.update_cell(summary.id, column, Text(after[0], style=after[1]))
            self._cells[summary.id] = cells
        self.summaries = wanted
        order = list(wanted)
        if order != self._order:
            # Our own sort on real values, handed to the table as DataTable.sort() itself does.
            self._row_locations = TwoWayDict({RowKey(k): i for i, k in enumerate(order)})
            self._order = order
            self._update_count += 1
            self.refresh()
        if keep in wanted:
            self.move_cursor(row=order.index(keep), animate=False)

    def visible_ids(self) -> list[str]:
        """Tunnel ids on screen now (and a screenful either side): the planner fetches these first."""
        top = int(self.scroll_offset.y)
        height = max(1, self.size.height)
        return self._order[max(0, top - height) : top + 2 * height]

    def action_scroll_top(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_scroll_bottom(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)
