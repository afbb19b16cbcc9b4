"""The live monitor: a Textual app that polls a source, keeps the last good data, and renders it incrementally.

Where each role lives: ``polling.py`` (the timer, the worker and the source: the API's poll engine, a serve server,
a recording), ``messages.py`` (what a poll posts), ``overview_view.py`` and ``monitor_view.py`` (the two views, in a
``ContentSwitcher``), ``filter_bar.py``, ``navigation.py`` (views, drill in and back, focus, sort, colo picker),
``actions.py`` (the other commands, help, palette), ``commands.py`` (keys), ``lifecycle.py`` (signals, a terminal
gone, crash reports). This module composes them, applies each poll's outcome and draws what changed.

Just over ~400 lines: the ``@on`` handlers that are not one view's must live on the app class itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from textual import on
from textual.app import App, ComposeResult
from textual.events import DescendantFocus, Key, Resize
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import ContentSwitcher, DataTable

from tunneltop.api.client import CloudflareClient
from tunneltop.changes.events import EventKind
from tunneltop.model.snapshot import FiguresMemo, Snapshot
from tunneltop.poll.account import utc_now
from tunneltop.poll.source import LiveSource, api_source
from tunneltop.poll.target import Target
from tunneltop.poll.threaded import EngineThread
from tunneltop.record.source import RecordedSource
from tunneltop.record.store import Recorder
from tunneltop.sanitize import clean
from tunneltop.ui.actions import Actions
from tunneltop.ui.client_tree import ClientTree, NodeRef
from tunneltop.ui.commands import bindings
from tunneltop.ui.conn_table import ConnectionsTable
from tunneltop.ui.event_log import EventLogView
from tunneltop.ui.filter_bar import FilterBar
from tunneltop.ui.key_bar import KeyBar
from tunneltop.ui.lifecycle import HeapFreezer, TerminalWatch, crash_report, tune_gc
from tunneltop.ui.messages import PollFailed, PollWaiting, SnapshotReady, UnknownTunnels
from tunneltop.ui.monitor_view import MonitorView
from tunneltop.ui.navigation import MONITOR, OVERVIEW, Navigation
from tunneltop.ui.overview_table import OverviewTable
from tunneltop.ui.overview_view import OverviewView
from tunneltop.ui.polling import PollDriver
from tunneltop.ui.rendering import Drawing
from tunneltop.ui.status import HeaderBar, StatusLine
from tunneltop.ui.textual_internals import report_crashes_with
from tunneltop.views.filters import Filter
from tunneltop.views.overview import OverviewRows
from tunneltop.views.rows import ConnRow
from tunneltop.views.session import DEFAULT_GHOST_SECONDS, DEFAULT_MARK_SECONDS, Session

NARROW_WIDTH = 100


class TunneltopApp(Navigation, Actions, Drawing, App[int]):
    CSS_PATH = "tunneltop.tcss"
    TITLE = "tunneltop"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS = bindings()  # every command once, with ids users remap in [keys] (ui/commands.py)

    # repaint=False: their watchers update exactly the widgets that change; a repaint would redraw the whole screen.
    snapshot: reactive[Snapshot | None] = reactive(None, always_update=True, repaint=False)
    # The filter redraws every view only when it changes: enter after typing sets the one applied as typed, esc in an
    # empty box sets the empty one again (at 10,000 connections each was a redraw as long as the typing's).
    filter: reactive[Filter] = reactive(Filter(), repaint=False)
    scope: reactive[NodeRef | None] = reactive(None, always_update=True, repaint=False)
    paused = reactive(False)
    interval = reactive(5.0)

    def __init__(
        self,
        target: Target,
        *,
        source: LiveSource | None = None,
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
        recorder: Recorder | None = None,
    ) -> None:
        """``source``: where the data comes from (a serve server, a recording; see ``poll.source``); by default the
        one poll engine on the Cloudflare API, made from ``target`` on first use. ``recorder``: an open recording
        (``--record``) that the API's polls are also written to."""
        super().__init__()
        if budget_per_minute is not None:
            target = replace(target, budget_per_minute=budget_per_minute)
        self.target = target
        self.clock = clock
        self._monotonic = monotonic
        self._watch_terminal = watch_terminal
        self._user_keymap = dict(keymap or {})  # not _keymap: that name is Textual's own
        report_crashes_with(self, crash_report)  # without local variables: a client frame holds the token
        self._client_options = client_options or {}
        self._recorder = recorder
        self.jump_severity = 0  # a replay's { }: which of commands.JUMP_SEVERITIES they jump to
        self.set_reactive(TunneltopApp.interval, interval)
        self.client: CloudflareClient | None = None
        self._engine_thread: EngineThread | None = None  # the API engine's, one for the client (made on first use)
        self.polling = PollDriver(self, source, self._api_source, monotonic)
        if source is not None:
            source.interval = interval
        self._notified: str | None = None  # the failure last notified, until a poll succeeds
        self.session = Session(ghost_seconds=ghost_seconds, mark_seconds=mark_seconds)
        self.overview_rows = OverviewRows()  # the overview's rows, kept per tunnel across polls
        self._heap = HeapFreezer()  # a large heap out of the cyclic collector's sight once built (see there)
        self._figures = FiguresMemo()  # the header's counts, kept while the tunnels tuple is the same
        self._bell = bell
        self.export_dir = export_dir or Path.cwd()
        self.rows: list[ConnRow] = []
        self._accounts: list[tuple[str, str | None]] = []
        # With no tunnel named, the account overview is home; enter drills into one tunnel, esc comes back.
        self.account_wide = not target.refs
        self.view = start_view or (OVERVIEW if self.account_wide else MONITOR)
        self.drilled: str | None = None
        self._view_focus: Widget | None = None  # the tree or table that had the keys last (see focus_view)

    def _api_source(self) -> LiveSource:
        """The one poll engine on the API (made on first use, and again after an account switch); the client and
        its request budget stay the same for the whole run."""
        if self.client is None:
            self.client = self.target.client(**self._client_options)
        name = dict(self._accounts).get(self.target.account_id or "")  # chosen in the picker: named there
        if self._engine_thread is None:
            self._engine_thread = EngineThread()
        engine = api_source(
            self.client,
            self.target.account_id,
            self.target.refs,
            interval=self.interval,
            now=self.clock,
            account_name=name,
            expectations=self.target.expectations,
            local=self.target.local,
            thread=self._engine_thread,
        )
        return engine if self._recorder is None else RecordedSource(engine, self._recorder)

    # -- layout -------------------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        yield FilterBar(id="filter-bar")
        with ContentSwitcher(id="views", initial=self.view):
            yield OverviewView(id=OVERVIEW)
            yield MonitorView(show_tunnel=len(self.target.refs) != 1, account_wide=self.account_wide, id=MONITOR)
        yield EventLogView(id="events")
        yield StatusLine(id="status")
        yield KeyBar(id="keys")

    @property
    def main_screen(self) -> Screen:
        """The monitor's own screen. ``self.query_one`` would search whatever modal is on top (help, colos)."""
        return self.screen_stack[0]

    @property
    def views(self) -> ContentSwitcher:
        return self.main_screen.query_one(ContentSwitcher)

    @property
    def monitor(self) -> MonitorView:
        return self.main_screen.query_one(MonitorView)

    @property
    def table(self) -> ConnectionsTable:
        """The connections table of this view: drilled into one tunnel, the one without a Tunnel column."""
        return self.monitor.table

    @property
    def client_tree(self) -> ClientTree:
        return self.main_screen.query_one(ClientTree)

    @property
    def filter_bar(self) -> FilterBar:
        return self.main_screen.query_one(FilterBar)

    @property
    def header(self) -> HeaderBar:
        return self.main_screen.query_one(HeaderBar)

    @property
    def status(self) -> StatusLine:
        return self.main_screen.query_one(StatusLine)

    # The poll's state, as the app and its tests read it (it lives in ``polling``).

    @property
    def engine(self) -> LiveSource | None:
        return self.polling.source

    @property
    def poll_count(self) -> int:
        return self.polling.poll_count

    @property
    def failures(self) -> int:
        return self.polling.failures

    @property
    def last_error(self) -> str | None:
        return self.polling.last_error

    @property
    def last_good_at(self) -> datetime | None:
        return self.polling.last_good_at

    @property
    def _next_poll_at(self) -> float | None:
        return self.polling.next_poll_at

    def _start_poll(self) -> None:
        self.polling.start_poll()

    def on_mount(self) -> None:
        if self._user_keymap:
            self.set_keymap(self._user_keymap)
        header = self.header
        header.demo = self.target.demo
        header.interval = self.interval
        header.account = self.target.account_id or "resolving account…"
        header.watching = ", ".join(self.target.refs) if self.target.refs else "all tunnels"
        self.title = "tunneltop — DEMO (simulated account)" if self.target.demo else "tunneltop"
        if self.polling.replaceable:
            self.client = self.target.client(**self._client_options)
            self.status.message = "connecting… (read-only: tunneltop only ever reads from the API)"
        else:
            self.status.message = "connecting…"
        self.monitor.detail.show(None)
        self.set_view(self.view)
        self._on_resize_class(self.size.width)
        self.set_interval(1.0, self._tick)
        if self._watch_terminal:
            TerminalWatch(self).install()
        self.polling.schedule(0)

    def on_resize(self, event: Resize) -> None:
        # The event's size: this handler runs before App's own, so ``self.size`` is still the old one here.
        self._on_resize_class(event.size.width)

    def _on_resize_class(self, width: int) -> None:
        # The main screen's class, even when a modal (help, colos) is on top and gets the resize.
        self.main_screen.set_class(width < NARROW_WIDTH, "-narrow")

    async def on_unmount(self) -> None:
        await self.polling.aclose()
        if self.client is not None:
            await self.client.aclose()

    @property
    def closing(self) -> bool:
        """True once the app is shutting down: a poll's last message (or a tick) can still arrive after the screens
        are gone, or while Textual is removing their widgets (it stops running first)."""
        return not self.screen_stack or not self.is_running

    # -- each poll's outcome ------------------------------------------------------------------------------------

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        if self.closing:
            return
        recovered = self.polling.took_snapshot(message.snapshot.fetched_at)
        self._notified = None
        previous = self.snapshot
        events = self.session.on_snapshot(message.snapshot, self.clock(), message.events)
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
            table = self.sorted_table()
            table.tick(self.clock())
            self.monitor.show_detail()
            if isinstance(table, OverviewTable) and self.engine is not None:
                self.engine.set_in_view(table.visible_ids())  # the user may have scrolled since
        else:
            self.snapshot = message.snapshot
        self.status.error = False
        problems = self._figures.of(message.snapshot).problems + len(message.snapshot.problems)
        note = f"; {problems} odd record(s) skipped or shown as unknown (see details)" if problems else ""
        self.status.message = ("recovered: " if recovered else "") + f"updated {self.clock():%H:%M:%S}Z{note}"
        self._heap.after_poll(len(self.rows), len(message.snapshot.tunnels))
        self._applied()

    def on_poll_waiting(self, message: PollWaiting) -> None:
        if self.closing:
            return
        if self.last_error is None:  # while polls are failing, the failure stays on the status line
            self.status.error = False
            self.status.message = clean(message.message, 400)
        self._applied()

    def on_poll_failed(self, message: PollFailed) -> None:
        if self.closing:
            return
        text = clean(message.message, 400)
        if message.retry_after:
            text = f"{text} (next request in {message.retry_after:.0f} s)"
        self.polling.took_failure(text, message.permanent)
        if message.events:
            self.session.on_failure(message.events)
            self.render_events()
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
        self._applied()

    def _applied(self) -> None:
        """An outcome is applied: waiters learn of it (they run once this returns), the next poll is armed, and the
        header follows."""
        self.polling.outcome_applied()
        self.polling.rearm(self.paused, self.interval)
        self._update_header()
        stopped = self.polling.recording_stopped()
        if stopped is not None:
            text = f"{clean(stopped, 400)}; the view goes on without recording"
            self.notify(text, title="Recording stopped", severity="error", markup=False, timeout=15)

    def on_key(self, event: Key) -> None:
        """A character that reaches the app while the filter box has the keys was read with the ``/`` before it
        (typed fast, pasted, a slow link) and handed to the view: it belongs in the box, not to the view's own key
        (the box takes every character typed into it, so none of its own gets here)."""
        box = self.filter_bar.box
        if event.is_printable and self.focused is box:
            event.prevent_default()
            event.stop()
            box.post_message(Key(event.key, event.character))

    def on_unknown_tunnels(self, message: UnknownTunnels) -> None:
        if self.closing:
            return
        for text in message.messages:
            self.notify(clean(text, 400), title="Unknown tunnel", severity="error", markup=False, timeout=15)

    # -- reactives ----------------------------------------------------------------------------------------------

    def watch_snapshot(self, snapshot: Snapshot | None) -> None:
        self.rows = self.session.rows(snapshot) if snapshot is not None else []
        if snapshot is not None:
            self.header.account = snapshot.account_name or snapshot.account_id
        self.render_views()

    def watch_filter(self, value: Filter) -> None:
        self.filter_bar.show_badge(value)
        self.render_views()

    def watch_scope(self, value: NodeRef | None) -> None:
        self.render_views()

    def watch_paused(self, paused: bool) -> None:
        self.header.paused = paused
        if paused:
            self.polling.stop()
            self.status.message = "paused: no requests are sent until you press p"
        else:
            # What is on screen goes first, as soon as the budget allows (a reorder, never a bypass).
            self.polling.resume(self.interval, self.clock())
        self._update_header()

    def watch_interval(self, interval: float) -> None:
        self.header.interval = interval
        self.polling.set_interval(interval, self.paused)
        self._update_header()

    # -- messages from widgets ----------------------------------------------------------------------------------

    @on(DataTable.RowSelected, "#events")
    def _event_selected(self, event: DataTable.RowSelected) -> None:
        """Selecting an event selects the row, or failing that the tree node, it is about."""
        chosen = self.main_screen.query_one(EventLogView).selected_event()
        if chosen is None or chosen.tunnel_id is None:
            return
        if self.view == OVERVIEW:  # the tree and table are hidden here: into the event's tunnel first
            self.drill_into(chosen.tunnel_id)
        if chosen.conn_id and chosen.connector_id:
            key = f"{chosen.tunnel_id}/{chosen.connector_id}/{chosen.conn_id}"
            if self.table.select_key(key):
                self.table.focus()
                return
        node = f"{chosen.tunnel_id}/{chosen.connector_id}" if chosen.connector_id else chosen.tunnel_id
        self.client_tree.select_ref(node)
        self.client_tree.focus()

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        if isinstance(event.widget, ClientTree | ConnectionsTable | OverviewTable):
            self._view_focus = event.widget
        self.monitor.show_detail()


def run_app(
    target: Target,
    *,
    source: LiveSource | None = None,
    interval: float = 5.0,
    ghost_seconds: float = DEFAULT_GHOST_SECONDS,
    bell: bool = False,
    export_dir: Path | None = None,
    keymap: dict[str, str] | None = None,
    recorder: Recorder | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> int:
    """The live view until the user quits; ``source`` and ``recorder`` as in ``TunneltopApp`` (default: the API);
    ``clock``: what "now" is (a replay's: the recording's time)."""
    app = TunneltopApp(
        target,
        source=source,
        recorder=recorder,
        clock=clock,
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
