"""The account overview: one row per tunnel, worst health first, and the notices above it (tunnels not read yet,
missing permissions). A filter's count is in the header's filter badge (see FilterBar.show_badge)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from tunneltop.sanitize import clean
from tunneltop.ui.overview_table import OVERVIEW_COLUMNS, OverviewTable, summary_matches
from tunneltop.views.overview import notices as overview_notices

if TYPE_CHECKING:
    from tunneltop.ui.app import TunneltopApp


class OverviewView(Vertical):
    def __init__(self, **kwargs: str) -> None:
        super().__init__(**kwargs)
        self._notices: list[str] | None = None  # the notices shown (None: none set yet)

    def compose(self) -> ComposeResult:
        yield Static("", id="overview-notice", markup=False)
        yield OverviewTable(id="overview-table")

    @property
    def live(self) -> TunneltopApp:
        return cast("TunneltopApp", self.app)

    @property
    def table(self) -> OverviewTable:
        return self.query_one(OverviewTable)

    @on(DataTable.RowSelected, "#overview-table")
    def _tunnel_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.live.drill_into(event.row_key.value)

    @on(DataTable.HeaderSelected, "#overview-table")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        self.live.sort_clicked(self.table, event.column_key.value or "", OVERVIEW_COLUMNS)

    def render_rows(self) -> None:
        live = self.live
        snapshot = live.snapshot
        if snapshot is None:
            return
        table = self.table
        notice = self.query_one("#overview-notice", Static)
        now = live.clock()
        flt = live.filter
        rows = [s for s in live.overview_rows.summaries(snapshot, now) if summary_matches(flt, s)]
        table.show(rows, now)
        live.filter_bar.show_badge(flt, len(rows), "tunnel", among=len(snapshot.tunnels))
        lines = overview_notices(snapshot)
        if lines != self._notices:  # an update lays the screen out again: only when the notices change
            self._notices = lines
            notice.update(Text("\n".join(clean(line, 300) for line in lines), style="yellow"))
            notice.display = bool(lines)
        engine = live.engine
        if engine is not None and engine.named is False:
            engine.set_in_view(table.visible_ids())  # what is on screen is read first
