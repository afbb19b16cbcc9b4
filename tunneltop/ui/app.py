"""The live monitor: a Textual app that polls, keeps the last good data, and renders it incrementally.

Flow: a one-shot timer starts the poll worker; the worker posts ``SnapshotReady`` or ``PollFailed``; the app
stores the snapshot in a reactive and hands each widget what it shows; the timer is re-armed only after a poll
ends, so polls never overlap and pause/interval changes are trivial.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.containers import Horizontal, Vertical
from textual.events import DescendantFocus, Resize
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, Static, Tree

from tunneltop.api.client import CloudflareClient
from tunneltop.api.errors import ApiError, UsageError
from tunneltop.changes.events import ChangeEvent, EventKind
from tunneltop.export import export_view
from tunneltop.model.health import HEALTH_ORDER
from tunneltop.model.records import Connection, Connector, Tunnel
from tunneltop.model.snapshot import FiguresMemo, Snapshot, TunnelState
from tunneltop.poll.account import AccountChoiceNeeded, utc_now
from tunneltop.poll.engine import STARTUP_BURST, PollEngine, PollOutcome
from tunneltop.poll.target import Target
from tunneltop.sanitize import clean
from tunneltop.ui.client_tree import ClientTree, NodeRef
from tunneltop.ui.commands import COMMANDS, bindings, help_rows, shown_keys
from tunneltop.ui.conn_table import COLUMNS, ConnectionsTable
from tunneltop.ui.detail import DetailPane, connection_detail, connector_detail, tunnel_detail
from tunneltop.ui.event_log import EventLogView
from tunneltop.ui.lifecycle import TerminalWatch, crash_report, tune_gc
from tunneltop.ui.messages import AccountsToChoose, PollFailed, PollWaiting, SnapshotReady, UnknownTunnels
from tunneltop.ui.overview_table import OVERVIEW_COLUMNS, OverviewTable, summary_matches
from tunneltop.ui.screens import AccountPicker, ColoPicker, HelpScreen
from tunneltop.ui.status import HeaderBar, StatusLine
from tunneltop.ui.textual_internals import report_crashes_with
from tunneltop.views.filters import Filter, FilterError
from tunneltop.views.overview import OverviewRows
from tunneltop.views.overview import notices as overview_notices
from tunneltop.views.rows import ConnRow
from tunneltop.views.session import DEFAULT_GHOST_SECONDS, DEFAULT_MARK_SECONDS, Session, sparkline

INTERVAL_STEPS = (1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0)
NARROW_WIDTH = 100


class TunneltopApp(App[int]):
    CSS_PATH = "tunneltop.tcss"
    TITLE = "tunneltop"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS = bindings()  # every command once, with ids users remap in [keys] (ui/commands.py)

    # repaint=False: their watchers update exactly the widgets that change; a repaint would redraw the whole screen.
    snapshot: reactive[Snapshot | None] = reactive(None, always_update=True, repaint=False)
    filter: reactive[Filter] = reactive(Filter(), always_update=True, repaint=False)
    scope: reactive[NodeRef | None] = reactive(None, always_update=True, repaint=False)
    paused = reactive(False)
    interval = reactive(5.0)

    def __init__(
        self,
        target: Target,
        *,
        interval: float = 5.0,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        watch_terminal: bool = False,
        client_options: dict[str, object] | None = None,
        ghost_seconds: float = DEFAULT_GHOST_SECONDS,
        mark_seconds: float = DEFAULT_MARK_SECONDS,
        bell: bool = False,
        export_dir: Path | None = None,
        budget_per_minute: int | None = None,
        start_view: str | None = None,
        keymap: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        if budget_per_minute is not None:
            target = replace(target, budget_per_minute=budget_per_minute)
        self.target = target
        self._clock = clock
        self._monotonic = monotonic
        self._watch_terminal = watch_terminal
        self._user_keymap = dict(keymap or {})  # not _keymap: that name is Textual's own
        report_crashes_with(self, crash_report)  # without local variables: a client frame holds the token
        self._client_options = client_options or {}
        self.set_reactive(TunneltopApp.interval, interval)
        self.client: CloudflareClient | None = None
        self.engine: PollEngine | None = None
        self._stopped_for: str | None = None  # an error no retry can fix: no automatic polls until r
        self._notified: str | None = None  # the failure last notified, until a poll succeeds
        self.last_good_at: datetime | None = None
        self.last_error: str | None = None
        self.poll_count = 0
        self.failures = 0
        self.session = Session(ghost_seconds=ghost_seconds, mark_seconds=mark_seconds)
        self._overview_rows = OverviewRows()  # the overview's rows, kept per tunnel across polls
        self._figures = FiguresMemo()  # the header's counts, kept while the tunnels tuple is the same
        self._bell = bell
        self.export_dir = export_dir or Path.cwd()
        self._rows: list[ConnRow] = []
        self._accounts: list[tuple[str, str | None]] = []
        # With no tunnel named, the account overview is home; enter drills into one tunnel, esc comes back.
        self.account_wide = not target.refs
        self.view = start_view or ("overview" if self.account_wide else "monitor")
        self.drilled: str | None = None
        self._timer: Timer | None = None
        self._next_poll_at: float | None = None
        # Where the keys go back to when an overlay or toggle closes (see focus_view).
        self._view_focus: Widget | None = None  # the tree or table that had them last
        self._before_filter: Widget | None = None  # what had them when the filter box opened
        self._filter_line: tuple[str, str | None] | None = None  # what the active filter's line says

    # -- layout -------------------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        with Vertical(id="filter-row"):
            yield Input(
                placeholder="filter: words, colo:DFW,LAX, state:pending, !inverts — enter applies, esc clears",
                id="filter-input",
            )
            yield Static("", id="filter-error", markup=False)
        yield Static("", id="active-filter", markup=False)
        with Vertical(id="overview"):
            yield Static("", id="overview-notice", markup=False)
            yield OverviewTable(id="overview-table")
        with Horizontal(id="main"):
            yield ClientTree(id="tree")
            with Vertical(id="right"):
                yield Static("", id="colo-strip", markup=False)
                yield ConnectionsTable(show_tunnel=len(self.target.refs) != 1, id="table")
                if self.account_wide:
                    # Drilled into one tunnel, a Tunnel column would say the same name on every row; a table's
                    # columns are fixed when it is made, so that view has its own (see _show_table).
                    drilled = ConnectionsTable(show_tunnel=False, id="drilled-table")
                    drilled.display = False
                    yield drilled
                yield DetailPane(id="detail")
        yield EventLogView(id="events")
        yield StatusLine(id="status")
        yield Footer()

    @property
    def main_screen(self) -> Screen:
        """The monitor's own screen. ``self.query_one`` would search whatever modal is on top (help, colos)."""
        return self.screen_stack[0]

    @property
    def table(self) -> ConnectionsTable:
        """The connections table of this view: drilled into one tunnel, the one without a Tunnel column."""
        drilled = self.drilled is not None and self.account_wide
        return self.main_screen.query_one("#drilled-table" if drilled else "#table", ConnectionsTable)

    @property
    def client_tree(self) -> ClientTree:
        return self.main_screen.query_one(ClientTree)

    @property
    def header(self) -> HeaderBar:
        return self.main_screen.query_one(HeaderBar)

    @property
    def status(self) -> StatusLine:
        return self.main_screen.query_one(StatusLine)

    def on_mount(self) -> None:
        if self._user_keymap:
            self.set_keymap(self._user_keymap)
        header = self.header
        header.demo = self.target.demo
        header.interval = self.interval
        header.account = self.target.account_id or "resolving account…"
        header.watching = ", ".join(self.target.refs) if self.target.refs else "all tunnels"
        self.title = "tunneltop — DEMO (simulated account)" if self.target.demo else "tunneltop"
        self.client = self.target.client(**self._client_options)
        self.status.message = "connecting… (read-only: tunneltop only ever reads from the API)"
        self.main_screen.query_one(DetailPane).show(None)
        self._set_view(self.view)
        self._on_resize_class(self.size.width)
        self.set_interval(1.0, self._tick)
        if self._watch_terminal:
            TerminalWatch(self).install()
        self._schedule(0)

    def on_resize(self, event: Resize) -> None:
        # The event's size: this handler runs before App's own, so ``self.size`` is still the old one here.
        self._on_resize_class(event.size.width)

    def _on_resize_class(self, width: int) -> None:
        # The main screen's class, even when a modal (help, colos) is on top and gets the resize.
        self.main_screen.set_class(width < NARROW_WIDTH, "-narrow")

    async def on_unmount(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    # -- polling ------------------------------------------------------------------------------------------------

    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.stop()
        delay = max(delay, 0.001)  # Textual's Timer cannot take 0
        self._next_poll_at = self._monotonic() + delay
        self._timer = self.set_timer(delay, self._start_poll, name="poll")

    def _start_poll(self) -> None:
        self._timer = None
        self._next_poll_at = None
        self.poll_worker()

    @work(exclusive=True, exit_on_error=False, group="poll")
    async def poll_worker(self) -> None:
        try:
            outcome = await self._engine().poll()
        except Exception as exc:  # never let a poll take the app down; show it and keep the last data
            self.post_message(PollFailed(f"unexpected {type(exc).__name__} while polling: {exc}"))
            return
        self._post_outcome(outcome)

    def _post_outcome(self, outcome: PollOutcome) -> None:
        engine = self.engine
        if engine is not None and engine.usage_errors:
            self.post_message(UnknownTunnels([e.message for e in engine.usage_errors]))
            engine.usage_errors = []  # said once; those names are not polled
        error = outcome.error
        if outcome.snapshot is not None:
            self.post_message(SnapshotReady(outcome.snapshot, outcome.events))
        elif outcome.holding is not None:
            self.post_message(PollWaiting(outcome.holding))
        elif isinstance(error, AccountChoiceNeeded):
            self.post_message(AccountsToChoose([(a.id, a.name) for a in error.accounts]))
        elif error is not None:
            message = error.message if isinstance(error, ApiError) else str(error)
            # Only a usage error stops polling (a name that matches no tunnel will not start to): credentials
            # refused may be fixed in the dashboard while tunneltop runs, and it recovers by itself.
            stop = isinstance(error, UsageError)
            self.post_message(PollFailed(message, outcome.retry_after, outcome.events, stop))

    def _engine(self) -> PollEngine:
        """The one poll engine (made on first use, and again after an account switch); the client and its request
        budget stay the same for the whole run."""
        if self.client is None:
            self.client = self.target.client(**self._client_options)
        if self.engine is None:
            name = dict(self._accounts).get(self.target.account_id or "")  # chosen in the picker: named there
            self.engine = PollEngine(
                self.client,
                self.target.account_id,
                self.target.refs,
                interval=self.interval,
                min_burst=STARTUP_BURST,  # a small account's first screen in one go; then the budget paces requests
                now=self._clock,
                account_name=name,
                expectations=self.target.expectations,
            )
        return self.engine

    def _rearm(self) -> None:
        if self.paused or self._stopped_for is not None:
            return
        # The planner and the budget pace what each poll fetches; a poll waits only for a token.
        self._schedule(self.engine.next_poll_delay() if self.engine is not None else self.interval)

    @property
    def closing(self) -> bool:
        """True once the app is shutting down: a poll's last message (or a tick) can still arrive after the screens
        are gone, or while Textual is removing their widgets (it stops running first)."""
        return not self.screen_stack or not self.is_running

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        if self.closing:
            return
        self.poll_count += 1
        self.last_good_at = message.snapshot.fetched_at
        recovered = self.last_error is not None
        self.last_error = None
        self._notified = None
        previous = self.snapshot
        events = self.session.on_snapshot(message.snapshot, self._clock(), message.events)
        self._alert(events)
        if (
            previous is not None
            and not events
            and message.snapshot.tunnels is previous.tunnels
            and message.snapshot.problems == previous.problems
            and message.snapshot.account_name == previous.account_name
        ):
            # Nothing in the data changed (the source handed back the same tunnels, and so no marks or ghosts came
            # or went): only what follows the clock moves on.
            self.set_reactive(TunneltopApp.snapshot, message.snapshot)
            table = self._sorted_table()
            table.tick(self._clock())
            self._show_detail()
            if isinstance(table, OverviewTable) and self.engine is not None:
                self.engine.set_in_view(table.visible_ids())  # the user may have scrolled since
        else:
            self.snapshot = message.snapshot
        self.status.error = False
        problems = self._figures.of(message.snapshot).problems + len(message.snapshot.problems)
        note = f"; {problems} odd record(s) skipped or shown as unknown (see details)" if problems else ""
        self.status.message = ("recovered: " if recovered else "") + f"updated {self._clock():%H:%M:%S}Z{note}"
        self._rearm()
        self._update_header()

    def on_accounts_to_choose(self, message: AccountsToChoose) -> None:
        if self.closing:
            return
        # Polling stops here: nothing sensible can be fetched until an account is chosen.
        self._accounts = message.accounts
        self.status.error = False
        self.status.message = f"{len(message.accounts)} accounts visible: choose one (a)"
        self.action_choose_account()

    def action_choose_account(self) -> None:
        if not self._accounts:
            self.notify("the account was given or is the only one visible", markup=False)
            return

        def chosen(account_id: str | None) -> None:
            if not account_id:
                self.status.message = "no account chosen: press a to choose one, or start with --account ID"
                return
            self.target.account_id = account_id
            self.engine = None  # a new account: a new engine, on the same client and request budget
            self.snapshot = None
            self.session = Session(
                ghost_seconds=self.session.ghost_for.total_seconds(), mark_seconds=self.session.mark_for.total_seconds()
            )
            name = next((n for i, n in self._accounts if i == account_id), None)
            self.header.account = name or account_id
            self._schedule(0)

        self.push_screen(AccountPicker(self._accounts), chosen)

    def on_poll_waiting(self, message: PollWaiting) -> None:
        if self.closing:
            return
        if self.last_error is None:  # while polls are failing, the failure stays on the status line
            self.status.error = False
            self.status.message = clean(message.message, 400)
        self._rearm()
        self._update_header()

    def on_poll_failed(self, message: PollFailed) -> None:
        if self.closing:
            return
        self.failures += 1
        text = clean(message.message, 400)
        if message.retry_after:
            text = f"{text} (next request in {message.retry_after:.0f} s)"
        self.last_error = text
        if message.events:
            self.session.on_failure(message.events)
            self._render_events()
        if message.permanent:
            # A name that matches no tunnel: polling stops until the user asks again (r).
            self._stopped_for = text
        self.status.error = True
        self.status.message = (
            text
            + (" — showing the last good data" if self.snapshot is not None else "")
            + (" — polling stopped: press r to try again" if message.permanent else "")
        )
        if any(e.kind is EventKind.POLL_FAILED for e in message.events) and text != self._notified:
            # A notification when polls start failing and when the failure changes; the engine's once-a-minute
            # repeats of the same one go to the event log and the status line only.
            self._notified = text
            self.notify(text, title="Cloudflare API", severity="error", markup=False, timeout=8)
        self._rearm()
        self._update_header()

    def on_unknown_tunnels(self, message: UnknownTunnels) -> None:
        if self.closing:
            return
        for text in message.messages:
            self.notify(clean(text, 400), title="Unknown tunnel", severity="error", markup=False, timeout=15)

    # -- rendering ----------------------------------------------------------------------------------------------

    def watch_snapshot(self, snapshot: Snapshot | None) -> None:
        self._rows = self.session.rows(snapshot) if snapshot is not None else []
        if snapshot is not None and snapshot.account_name:
            self.header.account = snapshot.account_name
        elif snapshot is not None:
            self.header.account = snapshot.account_id
        self._render_views()

    def watch_filter(self, value: Filter) -> None:
        self._show_filter_line()
        self._render_views()

    def _show_filter_line(self, matching: int | None = None, what: str = "connection") -> None:
        """The active filter, named, on its own line; when it matches nothing in the view (``matching`` is 0), the
        line says so: a blank table alone looks like a broken view."""
        label = self.main_screen.query_one("#active-filter", Static)
        value = self.filter
        if value.active:
            line = (value.text, what if matching == 0 else None)
            if line != self._filter_line:
                self._filter_line = line
                name = f"filter: {clean(value.text, 200)}"
                if matching == 0:
                    nothing = (f"   — no {what} matches", "bold yellow")
                    label.update(Text.assemble(name, nothing, "   (esc clears)", style="bold"))
                else:
                    label.update(Text(f"{name}   (esc clears)", style="bold"))
        else:
            self._filter_line = None
        label.set_class(value.active, "visible")

    def watch_scope(self, value: NodeRef | None) -> None:
        self._render_views()

    def watch_paused(self, paused: bool) -> None:
        self.header.paused = paused
        if paused:
            if self._timer is not None:
                self._timer.stop()
            self._timer = None
            self._next_poll_at = None
            self.status.message = "paused: no requests are sent until you press p"
        else:
            # What is on screen goes first, as soon as the budget allows (a reorder, never a bypass).
            wait = 0.0
            if self.engine is not None:
                self.engine.refresh()
                wait = self.engine.next_poll_in()
            due = self.last_good_at is None or (self._clock() - self.last_good_at).total_seconds() >= self.interval
            if not due and self.last_good_at is not None:
                wait = max(wait, self.interval - (self._clock() - self.last_good_at).total_seconds())
            self._schedule(wait)
        self._update_header()

    def watch_interval(self, interval: float) -> None:
        self.header.interval = interval
        if self.engine is not None:
            self.engine.interval = interval
        if not self.paused and self._timer is not None:
            self._rearm()
        self._update_header()

    def _in_scope(self, row: ConnRow) -> bool:
        if self.drilled is not None and row.tunnel.id != self.drilled:
            return False
        scope = self.scope
        if scope is None:
            return True
        if row.tunnel.id != scope.tunnel_id:
            return False
        return scope.connector_id is None or row.connector.id == scope.connector_id

    def visible_rows(self) -> list[ConnRow]:
        return [r for r in self._rows if self.filter.matches(r) and self._in_scope(r)]

    def _render_views(self) -> None:
        if self.closing:  # not is_mounted: on App that is a method, so the old guard never fired
            return
        with self.batch_update():
            if self.view == "overview":
                self._render_overview()
            else:
                self._render_monitor()
            self._render_colos()
            self._render_events()
            self._update_header()

    def _render_overview(self) -> None:
        snapshot = self.snapshot
        table = self.main_screen.query_one(OverviewTable)
        notice = self.main_screen.query_one("#overview-notice", Static)
        if snapshot is None:
            return
        now = self._clock()
        rows = [s for s in self._overview_rows.summaries(snapshot, now) if summary_matches(self.filter, s)]
        table.show(rows, now)
        self._show_filter_line(len(rows), "tunnel")
        lines = overview_notices(snapshot)
        if self.filter.active:
            lines.append(f"{len(rows)} of {len(snapshot.tunnels)} tunnels match the filter")
        notice.update(Text("\n".join(clean(line, 300) for line in lines), style="yellow"))
        notice.display = bool(lines)
        if self.engine is not None and self.engine.named is False:
            self.engine.set_in_view(table.visible_ids())

    def _render_monitor(self) -> None:
        snapshot = self.snapshot
        now = self._clock()
        # Reactives read once, not per row: at 10,000 rows the per-row reads cost more than the table update.
        active = self.filter.active
        filtered = [r for r in self._rows if self.filter.matches(r)] if active else self._rows
        narrowed = self.drilled is not None or self.scope is not None
        self.table.show([r for r in filtered if self._in_scope(r)] if narrowed else filtered, now, self.session.marks)
        drilled = self._tunnel_state(self.drilled) if self.drilled is not None else None
        unread = snapshot is None or (drilled is not None and drilled.connectors is None)  # no rows to match yet
        self._show_filter_line(None if unread else self.table.row_count, "connection")
        visible = {r.key for r in filtered} if active else None
        tunnels = snapshot.tunnels if snapshot is not None else ()
        if self.drilled is not None:
            tunnels = tuple(t for t in tunnels if t.tunnel.id == self.drilled)
        self.client_tree.show(
            self.client_tree.parts_for(tunnels, visible, include_empty=not self.filter.active),
            expand_connectors=len(tunnels) <= 2,
        )
        self._show_detail()

    def _tunnel_state(self, tunnel_id: str) -> TunnelState | None:
        if self.snapshot is None:
            return None
        return next((t for t in self.snapshot.tunnels if t.tunnel.id == tunnel_id), None)

    def _show_detail(self, ref: NodeRef | None = None) -> None:
        pane = self.main_screen.query_one(DetailPane)
        now = self._clock()
        focused = pane.describes(self.focused)  # while the pane is read: what the user came from
        if ref is None and focused is self.client_tree:
            node = self.client_tree.cursor_node
            ref = node.data if node is not None else None
        if ref is None:
            key = self.table.cursor_key
            row = self.table.rows_by_key.get(key) if key else None
            if row is not None:
                pane.show(connection_detail(row.tunnel, row.connector, row.conn, now))
                return
            ref = self.scope
        if ref is None:
            pane.show(None)
            return
        state = self._tunnel_state(ref.tunnel_id)
        if state is None:
            pane.show(None)
            return
        connector = next((c for c in state.connectors or () if c.id == ref.connector_id), None)
        if ref.kind == "tunnel" or connector is None:
            pane.show(tunnel_detail(state, now, sparkline(self.session.trend(state.tunnel.id), 40)))
        elif ref.kind == "conn":
            conn = next((c for c in connector.conns if c.id == ref.conn_id), None)
            pane.show(connection_detail(state.tunnel, connector, conn, now) if conn else None)
        else:
            pane.show(connector_detail(state.tunnel, connector, now))

    def is_stale(self) -> bool:
        if self.last_error is not None and self.snapshot is not None:
            return True
        if self.last_good_at is None:
            return False
        return (self._clock() - self.last_good_at).total_seconds() > 2 * self.interval

    def _budget_text(self) -> str:
        """'API used/budget per min', and the stretched interval when the budget cannot keep the one asked."""
        engine = self.engine
        if engine is None:
            return ""
        text = str(engine.status)
        effective = engine.effective_interval
        if engine.named and effective > self.interval + 0.5:
            text = f"every {effective:.0f} s: budget {engine.gate.limit_per_minute}/min · " + text
        return text

    def _update_header(self) -> None:
        header = self.header
        snapshot = self.snapshot
        header.waiting = snapshot is None and self.last_error is None
        figures = self._figures.of(snapshot) if snapshot is not None else None
        header.health = figures.health if figures is not None else None
        if figures is not None:
            counts = figures.counts
            header.tunnel_counts = tuple((h, counts[h]) for h in sorted(counts, key=HEALTH_ORDER.__getitem__))
        header.pending = figures.pending if figures is not None else 0
        header.last_good = self.last_good_at
        header.now = self._clock()
        header.stale = self.is_stale()
        header.budget = self._budget_text()
        header.next_poll_in = (
            max(0.0, self._next_poll_at - self._monotonic()) if self._next_poll_at is not None else None
        )

    def _tick(self) -> None:
        if self.closing:
            return
        if self.session.expire(self._clock()) and self.snapshot is not None:
            self._rows = self.session.rows(self.snapshot)
            self._render_views()
        elif self.snapshot is not None:
            # Ages follow the clock between polls too (a hang or a pause must not leave "0s" on screen): only the
            # on-screen cells whose text moved are redrawn.
            self._sorted_table().tick(self._clock())
        self._update_header()

    def _render_colos(self) -> None:
        strip = self.main_screen.query_one("#colo-strip", Static)
        if self.snapshot is None:
            return
        counts = self.session.colo_counts(self.snapshot)
        if self.drilled is not None:  # drilled into one tunnel from the overview: its colos, not the account's
            state = self._tunnel_state(self.drilled)
            counts = self.session.tunnel_colo_counts(state) if state is not None else []
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

    def _event_matches(self, event: ChangeEvent) -> bool:
        if not self.filter.active:
            return True
        conn = event.after if isinstance(event.after, Connection) else event.before
        if not isinstance(conn, Connection):
            return False
        tunnel = Tunnel(id=event.tunnel_id or "", name=event.tunnel_name)
        row = ConnRow("", tunnel, Connector(id=event.connector_id or ""), conn)
        return self.filter.matches(row)

    def _render_events(self) -> None:
        view = self.main_screen.query_one(EventLogView)
        if view.display:
            view.show(self.session.log.filter(self._event_matches))

    def _alert(self, events: list[ChangeEvent]) -> None:
        for event in self.session.worsened(events):
            self.notify(clean(event.describe(), 300), title="Health worsened", severity="warning", markup=False)
            if self._bell:
                self.bell()

    # -- events from widgets ------------------------------------------------------------------------------------

    # One selection: the tree and the table each follow the other's cursor, but only the one the user moves (where
    # the focus is, or was before the detail pane) leads; the other's own highlight messages are then ignored, so
    # the two never chase each other.

    def _focus_source(self) -> Widget | None:
        """The widget whose highlight the detail pane describes: the focused one, or while the pane itself is read,
        the one the user came from."""
        return self.main_screen.query_one(DetailPane).describes(self.focused)

    def _table_follows(self, ref: NodeRef) -> None:
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

    def _tree_follows(self, row: ConnRow, *, expand: bool = False) -> None:
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
        self._table_follows(ref)
        self._show_detail(ref)

    @on(Tree.NodeSelected)
    def _node_selected(self, event: Tree.NodeSelected[NodeRef]) -> None:
        ref = event.node.data
        if ref is None:
            return
        if ref.kind == "conn":
            self.scope = NodeRef("connector", ref.tunnel_id, ref.connector_id)
        else:
            self.scope = ref
        self._table_follows(ref)
        self._show_detail(ref)

    @on(DataTable.RowHighlighted, "#table, #drilled-table")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self._focus_source() is not self.table:
            return
        row = self.table.rows_by_key.get(event.row_key.value or "")
        if row is not None:
            self._tree_follows(row)
        self._show_detail()

    @on(DataTable.RowSelected, "#events")
    def _event_selected(self, event: DataTable.RowSelected) -> None:
        """Selecting an event selects the row, or failing that the tree node, it is about."""
        chosen = self.main_screen.query_one(EventLogView).selected_event()
        if chosen is None or chosen.tunnel_id is None:
            return
        if self.view == "overview":  # the tree and table are hidden here: into the event's tunnel first
            self.drill_into(chosen.tunnel_id)
        if chosen.conn_id and chosen.connector_id:
            key = f"{chosen.tunnel_id}/{chosen.connector_id}/{chosen.conn_id}"
            if self.table.select_key(key):
                self.table.focus()
                return
        node = f"{chosen.tunnel_id}/{chosen.connector_id}" if chosen.connector_id else chosen.tunnel_id
        self.client_tree.select_ref(node)
        self.client_tree.focus()

    @on(DataTable.RowSelected, "#table, #drilled-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        row = self.table.rows_by_key.get(event.row_key.value or "")
        if row is None:
            return
        self.scope = NodeRef("connector", row.tunnel.id, row.connector.id)
        self.table.select_key(row.key)
        self._tree_follows(row, expand=True)

    @on(DataTable.HeaderSelected, "#table, #drilled-table, #overview-table")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        column = event.column_key.value or ""
        table = self._sorted_table()
        if column not in (OVERVIEW_COLUMNS if isinstance(table, OverviewTable) else COLUMNS):
            return
        reverse = not table.sort_reverse if column == table.sort_column else False
        self._sort(column, reverse)

    @on(DataTable.RowSelected, "#overview-table")
    def _tunnel_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.drill_into(event.row_key.value)

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        if isinstance(event.widget, ClientTree | ConnectionsTable | OverviewTable):
            self._view_focus = event.widget
        self._show_detail()

    # -- focus --------------------------------------------------------------------------------------------------

    def _main_widget(self) -> Widget:
        """Where the keys go in this view unless the user moves them: the overview's table or the connections'."""
        return self.main_screen.query_one(OverviewTable) if self.view == "overview" else self.table

    def _view_widgets(self) -> list[Widget]:
        """The widgets that take keys in this view (the others are hidden: a hidden widget with the focus keeps
        the keys, and nothing seems to happen)."""
        screen = self.main_screen
        widgets: list[Widget] = [self.table, self.client_tree, screen.query_one(DetailPane)]
        if self.view == "overview":
            widgets = [screen.query_one(OverviewTable)]
        log = screen.query_one(EventLogView)
        return [*widgets, log] if log.display else widgets

    def focus_view(self, prefer: Widget | None = None) -> None:
        """Give the keys back to the view after an overlay or a toggle closes: to ``prefer`` or, failing that, the
        tree or table that had them last, when the view shows it; else to the view's main widget."""
        shown = self._view_widgets()
        for widget in (prefer, self._view_focus):
            if widget is not None and widget in shown:
                widget.focus()
                return
        self._main_widget().focus()

    # -- filter -------------------------------------------------------------------------------------------------

    def action_filter(self) -> None:
        row = self.main_screen.query_one("#filter-row")
        row.set_class(True, "visible")
        box = self.main_screen.query_one("#filter-input", Input)
        box.value = self.filter.text
        if self.focused is not box:
            self._before_filter = self.focused
        box.focus()

    def _filter_from(self, text: str) -> Filter | None:
        error = self.main_screen.query_one("#filter-error", Static)
        try:
            parsed = Filter.parse(text)
        except FilterError as exc:
            error.update(Text(f"✖ {exc}", style="bold red"))
            return None
        error.update("")
        return parsed

    @on(Input.Changed, "#filter-input")
    def _filter_changed(self, event: Input.Changed) -> None:
        parsed = self._filter_from(event.value)
        if parsed is not None:
            self.filter = parsed

    @on(Input.Submitted, "#filter-input")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        parsed = self._filter_from(event.value)
        if parsed is None:
            return  # keep the box open with its error showing
        self.filter = parsed
        self._close_filter_box()

    def _close_filter_box(self) -> None:
        self.main_screen.query_one("#filter-row").set_class(False, "visible")
        self.main_screen.query_one("#filter-error", Static).update("")
        if self.focused not in self._view_widgets():  # the box had the keys (an esc in the view leaves them)
            self.focus_view(self._before_filter)
        self._before_filter = None

    def clear_filter(self) -> None:
        self.filter = Filter()
        self.main_screen.query_one("#filter-input", Input).value = ""
        self._close_filter_box()

    def action_colos(self) -> None:
        counts: Counter[str] = Counter()
        pending: Counter[str] = Counter()
        drilled = self.drilled
        for row in self._rows:
            if drilled is not None and row.tunnel.id != drilled:
                continue  # drilled into one tunnel: its colos, not the account's
            colo = row.conn.colo_name or "?"
            if row.state == "pending":
                pending[colo] += 1
            else:
                counts[colo] += 1
        colos = sorted(set(counts) | set(pending))
        choices = [(colo, counts[colo], pending[colo]) for colo in colos]

        def chosen(colo: str | None) -> None:
            if colo:
                # Built, not parsed: a colo is API text, and "DFW x" or "a state:b" would parse as more filter.
                self.filter = Filter(f"colo:{colo}", colos=frozenset({colo.upper()}))
                box = self.main_screen.query_one("#filter-input", Input)
                with box.prevent(Input.Changed):
                    box.value = self.filter.text

        self.push_screen(ColoPicker(choices), chosen)

    # -- other actions ------------------------------------------------------------------------------------------

    def action_go_back(self) -> None:
        if self.main_screen.query_one("#filter-row").has_class("visible") or self.filter.active:
            self.clear_filter()
        elif self.view == "overview":
            return
        elif self.scope is not None and self.scope.kind != "tunnel":
            self.scope = NodeRef("tunnel", self.scope.tunnel_id)
        elif self.scope is not None and self.drilled is None:
            self.scope = None
        elif self.account_wide:
            self.drilled = None
            self.scope = None
            self._set_view("overview")

    def _set_view(self, view: str) -> None:
        self.view = view
        screen = self.main_screen
        screen.set_class(view == "overview", "-overview")
        self._show_table()
        if view == "overview":
            screen.query_one(OverviewTable).focus()
        else:
            self.table.focus()
        self._render_views()

    def _show_table(self) -> None:
        """Show the connections table of this view (see ``table``); the sort goes along, and the drilled table
        forgets the tunnel it showed when left."""
        if not self.account_wide:
            return
        screen = self.main_screen
        shown = self.table
        left = screen.query_one("#table" if shown.id == "drilled-table" else "#drilled-table", ConnectionsTable)
        if shown.display and not left.display:
            return
        sort = (left.sort_column, left.sort_reverse)
        if left.sort_column in shown.columns_shown and (shown.sort_column, shown.sort_reverse) != sort:
            shown.set_sort(*sort)
        shown.display, left.display = True, False
        if left.id == "drilled-table":
            left.show([], self._clock())

    def drill_into(self, tunnel_id: str) -> None:
        """From the overview into one tunnel's connectors and connections; its data is fetched first."""
        self.drilled = tunnel_id
        self.scope = NodeRef("tunnel", tunnel_id)
        if self.engine is not None:
            self.engine.set_in_view([tunnel_id])
        self._set_view("monitor")
        self.client_tree.select_ref(tunnel_id)
        state = self._tunnel_state(tunnel_id)
        if state is not None and state.connectors is None and not self.paused:
            self._schedule(0)

    def action_toggle_view(self) -> None:
        if not self.account_wide:
            self.notify("the overview lists every tunnel: start tunneltop without naming tunnels", markup=False)
            return
        self.drilled = None
        self.scope = None
        self._set_view("monitor" if self.view == "overview" else "overview")

    def _sorted_table(self) -> ConnectionsTable | OverviewTable:
        return self.main_screen.query_one(OverviewTable) if self.view == "overview" else self.table

    def _sort(self, column: str, reverse: bool) -> None:
        self._sorted_table().set_sort(column, reverse)
        self._render_views()

    def action_cycle_sort(self) -> None:
        table = self._sorted_table()
        columns = list(OVERVIEW_COLUMNS) if isinstance(table, OverviewTable) else table.columns_shown
        index = columns.index(table.sort_column) if table.sort_column in columns else -1
        self._sort(columns[(index + 1) % len(columns)], False)

    def action_reverse_sort(self) -> None:
        table = self._sorted_table()
        self._sort(table.sort_column, not table.sort_reverse)

    def action_refresh(self) -> None:
        """What is on screen goes to the front of the next poll, which goes as soon as the budget has a token:
        a reorder, never a bypass (sixty presses send no more than the budget)."""
        self._stopped_for = None
        wait = 0.0
        if self.engine is not None:
            self.engine.refresh()
            wait = self.engine.next_poll_in()
        later = f"refreshing when the request budget allows ({wait:.0f} s)"
        self.status.message = "refreshing…" if wait <= 0 else later
        self._schedule(wait)

    def action_pause(self) -> None:
        self.paused = not self.paused

    def _step_interval(self, direction: int) -> None:
        steps = INTERVAL_STEPS
        if direction > 0:
            new = next((s for s in steps if s > self.interval), steps[-1])
        else:
            new = next((s for s in reversed(steps) if s < self.interval), steps[0])
        self.interval = new
        self.status.message = f"polling every {new:g} s"

    def action_slower(self) -> None:
        self._step_interval(+1)

    def action_faster(self) -> None:
        self._step_interval(-1)

    def action_toggle_events(self) -> None:
        view = self.main_screen.query_one(EventLogView)
        view.display = not view.display
        self._render_events()
        if view.display:
            view.focus()
        elif self.focused is None or self.focused is view:
            self.focus_view()

    def action_export(self) -> None:
        now = self._clock()
        try:
            paths = export_view(
                self.export_dir,
                now,
                self.visible_rows(),
                self.session.log.filter(self._event_matches),
                filter_text=self.filter.text,
                account_id=self.snapshot.account_id if self.snapshot else self.target.account_id,
                demo=self.target.demo,
            )
        except OSError as exc:
            self.notify(f"export failed: {exc}", severity="error", markup=False)
            return
        self.notify("exported " + ", ".join(str(p) for p in paths), title="Export", markup=False, timeout=10)

    def action_screenshot_svg(self) -> None:
        name = f"tunneltop-{self._clock().strftime('%Y%m%d-%H%M%S')}.svg"
        try:
            self.export_dir.mkdir(parents=True, exist_ok=True)  # as the export (x) does
            path = self.save_screenshot(filename=name, path=str(self.export_dir))
        except OSError as exc:
            self.notify(f"screenshot failed: {exc}", severity="error", markup=False)
            return
        self.notify(f"screenshot written to {path}", title="Screenshot", markup=False)

    def keys_for(self) -> dict[str, str]:
        """Each command's keys as this user has them (the defaults, then the config file's [keys])."""
        return {c.id: self._user_keymap.get(c.id, c.keys) for c in COMMANDS}

    def help_rows(self) -> list[tuple[str, str]]:
        return help_rows(self.keys_for())

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.help_rows()))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        keys = self.keys_for()
        for command in COMMANDS:
            if command.palette:
                action = getattr(self, f"action_{command.action}")
                yield SystemCommand(command.palette, f"{command.help} ({shown_keys(keys[command.id])})", action)
        yield SystemCommand("Clear filter", "Show every connection (esc)", self.clear_filter)


def run_app(
    target: Target,
    *,
    interval: float = 5.0,
    ghost_seconds: float = DEFAULT_GHOST_SECONDS,
    bell: bool = False,
    export_dir: Path | None = None,
    keymap: dict[str, str] | None = None,
) -> int:
    app = TunneltopApp(
        target,
        interval=interval,
        watch_terminal=True,
        ghost_seconds=ghost_seconds,
        bell=bell,
        export_dir=export_dir,
        keymap=keymap,
    )
    tune_gc()
    app.run()
    return app.return_code or 0
