"""The account overview: one row per tunnel, worst health first, a virtual table like the connections one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from tunneltop.model.findings import Severity
from tunneltop.model.health import age_changes_at, format_age
from tunneltop.sanitize import clean
from tunneltop.ui.text import HEALTH_GLYPH, HEALTH_STYLE, findings_mark, mono_style, verdict_glyph
from tunneltop.ui.virtual_table import NEVER, Cell, VirtualTable
from tunneltop.views.filters import Filter
from tunneltop.views.overview import TunnelSummary, summary_sort_key
from tunneltop.views.rows import EPOCH, version_sort_key

OVERVIEW_COLUMNS: dict[str, str] = {
    "health": "Health",
    "name": "Tunnel",
    "findings": "Findings",
    "connectors": "Conn.",
    "active": "Active",
    "pending": "Pending",
    "edges": "Edges",
    "version": "Oldest cloudflared",
    "changed": "Last up/down",
    "age": "Data age",
}

_SEVERITY_ORDER: dict[Severity | None, int] = {Severity.CRITICAL: 0, Severity.WARNING: 1}

OVERVIEW_SORT: dict[str, Callable[[TunnelSummary], Any]] = {
    "health": summary_sort_key,
    "name": lambda s: ((s.name or "").casefold(), s.id),
    # Critical first, then warnings, then none; more findings first within each.
    "findings": lambda s: (_SEVERITY_ORDER.get(s.severity, 2), -len(s.findings)),
    "connectors": lambda s: s.connectors if s.connectors is not None else -1,
    "active": lambda s: s.active if s.active is not None else -1,
    "pending": lambda s: s.pending if s.pending is not None else -1,
    "edges": lambda s: s.edges,
    "version": lambda s: version_sort_key(s.oldest_version),
    "changed": lambda s: s.last_change or EPOCH,
    # Data age without the clock (so a row keeps its place as time passes): the oldest fetch is the oldest data.
    "age": lambda s: (0, -s.fetched_at.timestamp()) if s.fetched_at is not None else (1, 0),
}


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


_NO_FINDINGS: Cell = ("-", "dim")


def _cells(s: TunnelSummary) -> tuple[Cell, ...]:
    if s.findings:
        glyph, style = verdict_glyph(s.health, s.findings)
        mark = findings_mark(s.findings)
    else:  # most rows: no more than before findings had a column
        glyph, style, mark = HEALTH_GLYPH[s.health], HEALTH_STYLE[s.health], _NO_FINDINGS
    return (
        (f"{glyph} {s.health.value}", style),
        (clean(s.label, 48), "bold"),
        mark,
        (_count(s.connectors), ""),
        (_count(s.active), ""),
        (_count(s.pending), "bold yellow" if s.pending else "dim"),
        (clean(s.edges or "-", 60), ""),
        (clean(s.oldest_version, 20), ""),
        ("", "dim"),  # last up/down: follows the clock
        ("", "red" if s.error else "dim"),  # data age: follows the clock
    )


def _timed_text(s: TunnelSummary, column: str, now: datetime) -> str:
    if column == "changed":
        changed = s.last_change
        return format_age(now - changed) + " ago" if changed else "-"
    return "not yet" if s.fetched_at is None else format_age(now - s.fetched_at)


# Columns that follow the clock, made only when drawn, and their widths: format_age gives at most 8 cells.
_TIMED = {"changed": len("9999d23h ago"), "age": 8}


class OverviewTable(VirtualTable[TunnelSummary]):
    """The account overview: one row per tunnel, worst health first, a virtual table like the connections one."""

    HEADINGS = OVERVIEW_COLUMNS
    SORTS = OVERVIEW_SORT
    TIMED = _TIMED
    _mono = False  # NO_COLOR: the app's, read when mounted

    class RowHighlighted(VirtualTable.RowHighlighted):
        """The cursor moved to another tunnel (``row_key.value`` is its id)."""

    class RowSelected(VirtualTable.RowSelected):
        """Enter or a click on a tunnel: drill into it."""

    class HeaderSelected(VirtualTable.HeaderSelected):
        """A click on a column heading (``column_key.value`` is the column id)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(columns=list(OVERVIEW_COLUMNS), sort_column="health", **kwargs)

    @property
    def summaries(self) -> dict[str, TunnelSummary]:
        return self.rows_by_key

    @property
    def order(self) -> list[str]:
        return list(self._order)

    def key_of(self, row: TunnelSummary) -> str:
        return row.id

    def natural_key(self, row: TunnelSummary) -> Any:
        return summary_sort_key(row)

    def on_mount(self) -> None:
        self._mono = self.app.no_color

    def cells(self, row: TunnelSummary, mark: Any) -> tuple[Cell, ...]:
        cells = _cells(row)
        if self._mono:  # without colour (NO_COLOR), attributes where the colours would go dark: text.MONO_STYLE
            return tuple((text, mono_style(style)) for text, style in cells)
        return cells

    def timed_text(self, row: TunnelSummary, column: str, now: datetime) -> str:
        return _timed_text(row, column, now)

    def timed_changes_at(self, row: TunnelSummary, column: str, now: datetime) -> datetime:
        since = row.last_change if column == "changed" else row.fetched_at
        return age_changes_at(since, now) if since is not None else NEVER

    def same_row(self, a: TunnelSummary, b: TunnelSummary) -> bool:
        # Summaries leave their fetch time out of equality (it is drawn against the clock), but sorted by data
        # age it is the row's place.
        return a is b or (a == b and (self.sort_column != "age" or a.fetched_at == b.fetched_at))

    def visible_ids(self) -> list[str]:
        """Tunnel ids on screen now (and a screenful either side): the planner fetches these first."""
        top = int(self.scroll_offset.y)
        height = max(1, self.size.height)
        return self._order[max(0, top - height) : top + 2 * height]
