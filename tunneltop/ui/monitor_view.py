"""The tunnel monitor: the tree of tunnels, connectors and connections, the colo strip, the connections table and
the detail pane, with one selection between the tree and the table.

A redraw of a large view (OFF_THREAD_ROWS) is worked out on a worker thread (the filter's matches, the table's
plan, the tree's parts) and taken in at once on the screen's thread; redraws asked for meanwhile wait, and the
latest wins."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Static, Tree

from tunneltop.model.snapshot import TunnelState
from tunneltop.sanitize import clean
from tunneltop.ui.client_tree import ClientTree, NodeRef, TreeItem
from tunneltop.ui.conn_table import COLUMNS, ConnectionsTable
from tunneltop.ui.detail import DetailPane, connection_detail, connector_detail, tunnel_detail
from tunneltop.ui.lifecycle import MemoryTrim
from tunneltop.ui.virtual_table import TablePlan
from tunneltop.views.filters import Filter, RowSelector, scope_test
from tunneltop.views.rows import ConnRow
from tunneltop.views.session import sparkline

if TYPE_CHECKING:
    from tunneltop.ui.app import TunneltopApp

# From this many rows on, what a redraw changes (the filter's matches, the table's new order and widths, the tree's
# parts) is worked out on a thread of its own and taken in at once (see MonitorView.render_rows): at 100,000 rows
# that work is seconds of Python, during which keys, the clock and the STALE badge would otherwise wait. At 10,000
# rows a filter typed stalled the screen 140-270 ms on its own thread; at 2,000 (inline, when this was 5,000) 16-65
# ms, 17-39 off it (benchmarks.live, 12 interleaved runs). At 1,000 either way measured the same: below, inline.
OFF_THREAD_ROWS = 2_000


@dataclass(frozen=True, slots=True)
class _Wanted:
    """What one redraw is made from, read on the screen's thread (the app's state moves on meanwhile)."""

    rows: Sequence[ConnRow]
    flt: Filter
    in_scope: Callable[[ConnRow], bool] | None  # None: every row (no tunnel drilled into, no scope)
    marks: dict[str, Any]
    tunnels: tuple[TunnelState, ...]
    this_host: str | None
    table: ConnectionsTable
    now: datetime


@dataclass(frozen=True, slots=True)
class _Drawn:
    """What a redraw worked out (see MonitorView._work_out), ready to take in on the screen's thread."""

    wanted: _Wanted
    plan: TablePlan[ConnRow] | None  # None: the table's rows are the same as shown (only ages move)
    parts: list[list[TreeItem]]


@dataclass(frozen=True, slots=True)
class _Sort:
    """A sort asked for (``s``, a click on a heading) of a large table, worked out on a thread of its own."""

    table: ConnectionsTable
    column: str
    reverse: bool


class MonitorView(Horizontal):
    """What the app's snapshot, filter, scope and drilled-into tunnel select, drawn; the scope follows the tree."""

    def __init__(self, *, show_tunnel: bool, account_wide: bool, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._show_tunnel = show_tunnel
        self._account_wide = account_wide
        self._selector = RowSelector()
        self._working = False  # a redraw is being worked out on its own thread
        self._next: _Wanted | None = None  # the redraw asked for meanwhile (the latest one wins)
        # The redraw handed to the worker thread. Not a closure over it: a finished Textual worker is in a reference
        # cycle with its task, so whatever its callable holds (a whole poll's rows and tunnels, ~100 MB at 100,000
        # connections) would live on until a full collection.
        self._handed: _Wanted | None = None
        self._sort_next: _Sort | None = None  # a sort asked for meanwhile (the latest one wins); goes first
        self._sort_handed: _Sort | None = None  # the sort being worked out
        self._trim = MemoryTrim()

    def compose(self) -> ComposeResult:
        yield ClientTree(id="tree")
        with Vertical(id="right"):
            yield Static("", id="colo-strip", markup=False)
            yield ConnectionsTable(show_tunnel=self._show_tunnel, id="table")
            if self._account_wide:
                # Drilled into one tunnel, a Tunnel column would say the same name on every row; a table's
                # columns are fixed when it is made, so that view has its own (see show_table).
                drilled = ConnectionsTable(show_tunnel=False, id="drilled-table")
                drilled.display = False
                yield drilled
            yield DetailPane(id="detail")

    @property
    def live(self) -> TunneltopApp:
        return cast("TunneltopApp", self.app)

    @property
    def table(self) -> ConnectionsTable:
        """The connections table of this view: drilled into one tunnel, the one without a Tunnel column."""
        drilled = self.live.drilled is not None and self._account_wide
        return self.query_one("#drilled-table" if drilled else "#table", ConnectionsTable)

    @property
    def client_tree(self) -> ClientTree:
        return self.query_one(ClientTree)

    @property
    def detail(self) -> DetailPane:
        return self.query_one(DetailPane)

    def show_table(self) -> None:
        """Show the connections table of this view (see ``table``); the sort goes along, and the drilled table
        forgets the tunnel it showed when left."""
        if not self._account_wide:
            return
        shown = self.table
        left = self.query_one("#table" if shown.id == "drilled-table" else "#drilled-table", ConnectionsTable)
        if shown.display and not left.display:
            return
        sort = (left.sort_column, left.sort_reverse)
        if left.sort_column in shown.columns_shown and (shown.sort_column, shown.sort_reverse) != sort:
            shown.set_sort(*sort)
        shown.display, left.display = True, False
        if left.id == "drilled-table":
            left.show([], self.live.clock())

    # -- drawing ------------------------------------------------------------------------------------------------

    def render_rows(self) -> None:
        live = self.live
        snapshot = live.snapshot
        narrowed = live.drilled is not None or live.scope is not None
        tunnels = snapshot.tunnels if snapshot is not None else ()
        if live.drilled is not None:
            tunnels = tuple(t for t in tunnels if t.tunnel.id == live.drilled)
        local = snapshot.local if snapshot is not None else None
        wanted = _Wanted(
            rows=live.rows,
            flt=live.filter,
            # the scope as it is now (in_scope reads the app's current scope; a redraw on a thread must not)
            in_scope=scope_test(live.drilled, live.scope) if narrowed else None,
            marks=dict(live.session.marks),
            tunnels=tunnels,
            this_host=local.connector_id if local is not None else None,
            table=self.table,
            now=live.clock(),
        )
        if self._working:
            self._next = wanted
        else:
            self._redraw(wanted)

    def _redraw(self, wanted: _Wanted) -> None:
        if len(wanted.rows) >= OFF_THREAD_ROWS:
            self._working = True
            self._handed = wanted
            self.run_worker(self._work_out, thread=True, group="monitor-redraw")
        else:
            self._draw_here(wanted)

    @property
    def redrawing(self) -> bool:
        """Whether a redraw or a sort is being worked out on its own thread (the table and tree show the one
        before)."""
        return self._working

    # -- sorting ------------------------------------------------------------------------------------------------

    def sort(self, table: ConnectionsTable, column: str, reverse: bool) -> None:
        """Sort ``table``: a large one (OFF_THREAD_ROWS) on a thread of its own, in turn with the redraws (one of
        them at a time touches the table); a small one here and now."""
        if table.row_count < OFF_THREAD_ROWS:
            table.set_sort(column, reverse)  # a redraw being worked out meanwhile sees the table changed: redone
            return
        wanted = _Sort(table, column, reverse)
        if self._working:
            self._sort_next = wanted
        else:
            self._start_sort(wanted)

    def sort_of(self, table: ConnectionsTable) -> tuple[str, bool]:
        """The sort ``table`` is in, or is going to be in once the sort asked for last is taken in: ``s`` pressed
        twice quickly goes two columns on."""
        for wanted in (self._sort_next, self._sort_handed):
            if wanted is not None and wanted.table is table:
                return wanted.column, wanted.reverse
        return table.sort_column, table.sort_reverse

    def _start_sort(self, wanted: _Sort) -> None:
        self._working = True
        self._sort_handed = wanted
        self.run_worker(self._work_out_sort, thread=True, group="monitor-redraw")

    def _work_out_sort(self) -> None:
        """On a worker thread: the table's new order (see VirtualTable.sort_plan), taken in by _take_in_sort."""
        wanted = self._sort_handed
        if wanted is None:  # never: one at a time (_working), each handed before its worker starts
            return
        plan = wanted.table.sort_plan(wanted.column, wanted.reverse)
        with contextlib.suppress(RuntimeError):  # the app ended meanwhile
            self.app.call_from_thread(self._take_in_sort, wanted, plan)

    def _take_in_sort(self, wanted: _Sort, plan: TablePlan[ConnRow]) -> None:
        self._working = False
        self._sort_handed = None
        table = wanted.table
        if not table.adopt(plan, self.live.clock()):
            self._sort_next = self._sort_next or wanted  # the table changed meanwhile: work it out again
        self.show_detail()
        self._go_on()

    def _go_on(self) -> None:
        """The next piece of work asked for while one was worked out: a sort first (it is quick, and the redraw
        after it is then worked out in the new order), then the latest redraw."""
        if self._sort_next is not None:
            following_sort, self._sort_next = self._sort_next, None
            self._start_sort(following_sort)
        elif self._next is not None:
            following, self._next = self._next, None
            self._redraw(following)

    def _choose(self, wanted: _Wanted) -> tuple[Sequence[ConnRow], list[list[TreeItem]]]:
        """The table's rows and the tree's parts for a redraw, on whichever thread works it out (only one at a time
        touches the selector and the tree's parts memo: redraws asked for meanwhile wait, see _next)."""
        flt = wanted.flt
        if flt.active:
            filtered = self._selector.select(flt, wanted.rows)
        else:
            filtered = wanted.rows
            self._selector.forget()  # its haystacks: 22 MB at 100,000 rows, no use until a filter is typed again
        in_scope = wanted.in_scope
        rows = [r for r in filtered if in_scope(r)] if in_scope else filtered
        visible = {r.key for r in filtered} if flt.active else None
        parts = self.client_tree.parts_for(
            wanted.tunnels, visible, include_empty=not flt.active, this_host=wanted.this_host
        )
        return rows, parts

    def _draw_here(self, wanted: _Wanted) -> None:
        """A redraw on the screen's thread: the table applies the rows as a diff (cheap while it is small)."""
        rows, parts = self._choose(wanted)
        wanted.table.show(rows, wanted.now, wanted.marks)
        self._finish(wanted, parts)

    def _work_out(self) -> None:
        """On a worker thread: what _draw_here does for the redraw handed, but the table's change is a plan, taken in
        by _take_in."""
        wanted, self._handed = self._handed, None
        if wanted is None:  # never: one redraw at a time (_working), each handed before its worker starts
            return
        rows, parts = self._choose(wanted)
        table = wanted.table
        plan = table.plan(rows, wanted.marks) if table.needs(rows, wanted.marks) else None
        with contextlib.suppress(RuntimeError):  # the app ended meanwhile
            self.app.call_from_thread(self._take_in, _Drawn(wanted, plan, parts))

    def _take_in(self, drawn: _Drawn) -> None:
        self._working = False
        wanted = drawn.wanted
        if drawn.plan is None:
            wanted.table.tick(wanted.now)
        elif not wanted.table.adopt(drawn.plan, wanted.now):
            self._next = self._next or wanted  # the table changed meanwhile (a sort): work it out again
        self._finish(wanted, drawn.parts)
        if drawn.plan is not None and self._trim.available:
            # The table's containers just replaced are freed: what glibc keeps of them goes back to the system.
            self.run_worker(self._trim, thread=True, group="memory-trim", exit_on_error=False)
        self._go_on()

    def _finish(self, wanted: _Wanted, parts: list[list[TreeItem]]) -> None:
        """What follows the table and the tree on the screen's thread: the filter's badge, the tree, the detail."""
        live = self.live
        snapshot = live.snapshot
        drilled = live.tunnel_state(live.drilled) if live.drilled is not None else None
        unread = snapshot is None or (drilled is not None and drilled.connectors is None)  # no rows to match yet
        live.filter_bar.show_badge(wanted.flt, None if unread else self.table.row_count, "connection")
        self.client_tree.show(parts, expand_connectors=len(wanted.tunnels) <= 2)
        self.show_detail()

    def render_colos(self) -> None:
        live = self.live
        strip = self.query_one("#colo-strip", Static)
        if live.snapshot is None:
            return
        counts = live.colo_counts()
        text = Text(no_wrap=True, overflow="ellipsis")
        for index, count in enumerate(counts):
            if not (count.active or count.pending or count.delta):
                continue
            text.append("  " if index else "")
            text.append(clean(count.colo, 8), style="bold")
            text.append(f" {count.active}")
            if count.pending:
                text.append(f" ⟳{count.pending}", style="yellow")
            if count.delta:
                text.append(f" {count.delta:+d}", style="green" if count.delta > 0 else "red")
        if text != strip.content:  # only when the counts changed; its height is fixed: no layout needed
            strip.update(text, layout=False)

    def show_detail(self, ref: NodeRef | None = None) -> None:
        """The detail pane describes what is highlighted where the focus is (or was, while the pane is read)."""
        live = self.live
        pane = self.detail
        now = live.clock()
        tree = self.client_tree
        focused = pane.describes(live.focused)  # while the pane is read: what the user came from
        if ref is None and focused is tree:
            node = tree.cursor_node
            ref = node.data if node is not None else None
        if ref is None:
            table = self.table
            key = table.cursor_key
            row = table.rows_by_key.get(key) if key else None
            if row is not None:
                pane.show(connection_detail(row.tunnel, row.connector, row.conn, now, gone_at=row.gone_at))
                return
            ref = live.scope
        state = live.tunnel_state(ref.tunnel_id) if ref is not None else None
        if ref is None or state is None:
            pane.show(None)
            return
        connector = next((c for c in state.connectors or () if c.id == ref.connector_id), None)
        if ref.kind == "tunnel" or connector is None:
            pane.show(tunnel_detail(state, now, sparkline(live.session.trend(state.tunnel.id), 40)))
        elif ref.kind == "conn":
            conn = next((c for c in connector.conns if c.id == ref.conn_id), None)
            pane.show(connection_detail(state.tunnel, connector, conn, now) if conn else None)
        else:
            local = live.snapshot.local if live.snapshot is not None else None
            pane.show(connector_detail(state.tunnel, connector, now, findings=state.findings, local=local))

    # -- one selection ------------------------------------------------------------------------------------------

    # The tree and the table each follow the other's cursor, but only the one the user moves (where the focus is,
    # or was before the detail pane) leads; the other's own highlight messages are then ignored, so the two never
    # chase each other.

    def _focus_source(self) -> Widget | None:
        """The widget whose highlight the detail pane describes: the focused one, or while the pane itself is read,
        the one the user came from."""
        return self.detail.describes(self.live.focused)

    def table_follows(self, ref: NodeRef) -> None:
        """The table's cursor onto what the tree highlights: a connection's row, or for a tunnel or connector one of
        its rows (the first shown, unless the cursor is on one already). A row the table does not show (filtered,
        another scope) leaves the cursor where it is."""
        table = self.table
        if ref.kind == "conn":
            table.select_key(ref.node_id)
            return

        def under(row: ConnRow) -> bool:
            return row.tunnel.id == ref.tunnel_id and (ref.connector_id is None or row.connector.id == ref.connector_id)

        key = table.cursor_key
        current = table.rows_by_key.get(key) if key is not None else None
        if current is not None and under(current):
            return
        rows = [table.get_row_index(k) for k, row in table.rows_by_key.items() if under(row)]
        if rows:
            table.move_cursor(row=min(rows))

    def tree_follows(self, row: ConnRow, *, expand: bool = False) -> None:
        """The tree's cursor onto the row's connection. Following a highlight expands nothing: under a collapsed
        connector (or tunnel) the cursor goes to the nearest node the tree shows; choosing a row (``expand``) opens
        the way to it."""
        tree = self.client_tree
        if expand:
            tree.select_ref(row.key)
            return
        target: str | None = None
        for node_id in (row.tunnel.id, f"{row.tunnel.id}/{row.connector.id}", row.key):
            node = tree.node_for(node_id)
            if node is None:
                break
            target = node_id
            if not node.is_expanded:
                break
        cursor = tree.cursor_node
        if target is not None and (cursor is None or cursor.data is None or cursor.data.node_id != target):
            tree.select_ref(target)  # its parents are expanded already: only the cursor moves

    @on(Tree.NodeHighlighted)
    def _node_highlighted(self, event: Tree.NodeHighlighted[NodeRef]) -> None:
        ref = event.node.data
        if ref is None or self._focus_source() is not self.client_tree:
            return
        self.table_follows(ref)
        self.show_detail(ref)

    @on(Tree.NodeSelected)
    def _node_selected(self, event: Tree.NodeSelected[NodeRef]) -> None:
        ref = event.node.data
        if ref is None:
            return
        self.live.scope = NodeRef("connector", ref.tunnel_id, ref.connector_id) if ref.kind == "conn" else ref
        self.table_follows(ref)
        self.show_detail(ref)

    @on(DataTable.RowHighlighted, "#table, #drilled-table")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        table = self.table
        if self._focus_source() is not table:
            return
        row = table.rows_by_key.get(event.row_key.value or "")
        if row is not None:
            self.tree_follows(row)
        self.show_detail()

    @on(DataTable.HeaderSelected, "#table, #drilled-table")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        self.live.sort_clicked(self.table, event.column_key.value or "", COLUMNS)

    @on(DataTable.RowSelected, "#table, #drilled-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        table = self.table
        row = table.rows_by_key.get(event.row_key.value or "")
        if row is None:
            return
        self.live.scope = NodeRef("connector", row.tunnel.id, row.connector.id)
        table.select_key(row.key)
        self.tree_follows(row, expand=True)
