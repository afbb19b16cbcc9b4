"""Moving around the live view: the two views (account overview, tunnel monitor), drilling into a tunnel and
back, the filter and the colo picker, sorting, and where the keys go when an overlay or a toggle closes.

A mixin of ``TunneltopApp``: Textual looks actions up on the app. The handlers of widget messages stay on the app
(Textual collects ``@on`` handlers from Textual classes only)."""

from __future__ import annotations

from collections.abc import Iterable

from textual.widget import Widget

from tunneltop.ui.client_tree import NodeRef
from tunneltop.ui.conn_table import ConnectionsTable
from tunneltop.ui.detail import DetailPane
from tunneltop.ui.event_log import EventLogView
from tunneltop.ui.overview_table import OVERVIEW_COLUMNS, OverviewTable
from tunneltop.ui.screens import ColoPicker
from tunneltop.views.filters import Filter
from tunneltop.views.session import ColoCount

OVERVIEW = "overview"
MONITOR = "monitor"


class Navigation:
    """What moves between views, scopes and widgets (see the module's docstring)."""

    # -- the views ----------------------------------------------------------------------------------------------

    def set_view(self, view: str) -> None:
        self.view = view
        self.views.current = view
        self.monitor.show_table()
        self.main_widget().focus()
        self.render_views()

    def drill_into(self, tunnel_id: str) -> None:
        """From the overview into one tunnel's connectors and connections; its data is fetched first."""
        self.drilled = tunnel_id
        self.scope = NodeRef("tunnel", tunnel_id)
        if self.engine is not None:
            self.engine.set_in_view([tunnel_id])
        self.set_view(MONITOR)
        self.client_tree.select_ref(tunnel_id)
        state = self.tunnel_state(tunnel_id)
        if state is not None and state.connectors is None and not self.paused:
            self.polling.schedule(0)

    def action_toggle_view(self) -> None:
        if not self.account_wide:
            self.notify("the overview lists every tunnel: start tunneltop without naming tunnels", markup=False)
            return
        self.drilled = None
        self.scope = None
        self.set_view(MONITOR if self.view == OVERVIEW else OVERVIEW)

    def action_go_back(self) -> None:
        if self.filter_bar.is_open or self.filter.active:
            self.filter_bar.clear()
        elif self.view == OVERVIEW:
            return
        elif self.scope is not None and self.scope.kind != "tunnel":
            self.scope = NodeRef("tunnel", self.scope.tunnel_id)
        elif self.scope is not None and self.drilled is None:
            self.scope = None
        elif self.account_wide:
            self.drilled = None
            self.scope = None
            self.set_view(OVERVIEW)

    # -- focus --------------------------------------------------------------------------------------------------

    def main_widget(self) -> Widget:
        """Where the keys go in this view unless the user moves them: the overview's table or the connections'."""
        return self.sorted_table()

    def view_widgets(self) -> list[Widget]:
        """The widgets that take keys in this view (the others are hidden: a hidden widget with the focus keeps
        the keys, and nothing seems to happen)."""
        screen = self.main_screen
        widgets: list[Widget] = [self.table, self.client_tree, screen.query_one(DetailPane)]
        if self.view == OVERVIEW:
            widgets = [screen.query_one(OverviewTable)]
        log = screen.query_one(EventLogView)
        return [*widgets, log] if log.display else widgets

    def focus_view(self, prefer: Widget | None = None) -> None:
        """Give the keys back to the view after an overlay or a toggle closes: to ``prefer`` or, failing that, the
        tree or table that had them last, when the view shows it; else to the view's main widget."""
        shown = self.view_widgets()
        for widget in (prefer, self._view_focus):
            if widget is not None and widget in shown:
                widget.focus()
                return
        self.main_widget().focus()

    # -- filter and colos ---------------------------------------------------------------------------------------

    def action_filter(self) -> None:
        self.filter_bar.open()

    def clear_filter(self) -> None:
        self.filter_bar.clear()

    def colo_counts(self) -> list[ColoCount]:
        """Connections per colo of what the view shows: the account's, or the drilled tunnel's. The session keeps
        them (worked out on a worker thread with each poll), for the colo strip and the colo picker alike."""
        if self.snapshot is None:
            return []
        if self.drilled is not None:  # drilled into one tunnel from the overview: its colos, not the account's
            state = self.tunnel_state(self.drilled)
            return self.session.tunnel_colo_counts(state) if state is not None else []
        return self.session.colo_counts(self.snapshot)

    def action_colos(self) -> None:
        # The colo strip's counts (counting the rows here took ~25 ms of the screen's thread at 100,000
        # connections). A colo listed only for what it lost since the session began has nothing to filter to.
        choices = [(c.colo, c.active, c.pending) for c in self.colo_counts() if c.active or c.pending]

        def chosen(colo: str | None) -> None:
            if colo:
                # Built, not parsed: a colo is API text, and "DFW x" or "a state:b" would parse as more filter.
                self.filter_bar.set_quietly(Filter(f"colo:{colo}", colos=frozenset({colo.upper()})))

        self.push_screen(ColoPicker(choices), chosen)

    # -- sort ---------------------------------------------------------------------------------------------------

    def sorted_table(self) -> ConnectionsTable | OverviewTable:
        return self.main_screen.query_one(OverviewTable) if self.view == OVERVIEW else self.table

    def sort_by(self, column: str, reverse: bool) -> None:
        table = self.sorted_table()
        if isinstance(table, ConnectionsTable):
            self.monitor.sort(table, column, reverse)  # a large table's on a thread of its own
            return
        table.set_sort(column, reverse)
        self.render_views()

    def _sort_of(self, table: ConnectionsTable | OverviewTable) -> tuple[str, bool]:
        """The sort ``table`` is in, or going to be in (a large table's sort is worked out on a thread)."""
        if isinstance(table, ConnectionsTable):
            return self.monitor.sort_of(table)
        return table.sort_column, table.sort_reverse

    def sort_clicked(self, table: ConnectionsTable | OverviewTable, column: str, columns: Iterable[str]) -> None:
        """A click on a column header: sort by it, or the other way round when it is the sort column already."""
        if column not in columns:
            return
        sort_column, sort_reverse = self._sort_of(table)
        self.sort_by(column, not sort_reverse if column == sort_column else False)

    def action_cycle_sort(self) -> None:
        table = self.sorted_table()
        columns = list(OVERVIEW_COLUMNS) if isinstance(table, OverviewTable) else table.columns_shown
        sort_column, _ = self._sort_of(table)
        index = columns.index(sort_column) if sort_column in columns else -1
        self.sort_by(columns[(index + 1) % len(columns)], False)

    def action_reverse_sort(self) -> None:
        sort_column, sort_reverse = self._sort_of(self.sorted_table())
        self.sort_by(sort_column, not sort_reverse)
