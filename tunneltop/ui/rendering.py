"""Drawing the live view from the app's state: which rows are in view, both views, the header's figures, the
colo strip and the event log (each widget draws itself; this decides what each is given and when).

A mixin of ``TunneltopApp``, next to ``navigation.py`` and ``actions.py``."""

from __future__ import annotations

from tunneltop.changes.events import ChangeEvent
from tunneltop.model.health import HEALTH_ORDER
from tunneltop.model.records import Connection, Connector, Tunnel
from tunneltop.model.snapshot import TunnelState
from tunneltop.sanitize import clean
from tunneltop.ui.event_log import EventLogView
from tunneltop.ui.navigation import OVERVIEW
from tunneltop.ui.overview_view import OverviewView
from tunneltop.views.filters import scope_test
from tunneltop.views.history import SHOWN_EVENTS
from tunneltop.views.rows import ConnRow


class Drawing:
    """What each widget is given to draw (see the module's docstring)."""

    # -- drawing ------------------------------------------------------------------------------------------------

    def visible_rows(self) -> list[ConnRow]:
        in_scope = scope_test(self.drilled, self.scope)
        return [r for r in self.rows if self.filter.matches(r) and in_scope(r)]

    def tunnel_state(self, tunnel_id: str) -> TunnelState | None:
        if self.snapshot is None:
            return None
        return next((t for t in self.snapshot.tunnels if t.tunnel.id == tunnel_id), None)

    def render_views(self) -> None:
        if self.closing:  # not is_mounted: on App that is a method, so the old guard never fired
            return
        with self.batch_update():
            if self.view == OVERVIEW:
                self.main_screen.query_one(OverviewView).render_rows()
            else:
                self.monitor.render_rows()
            self.monitor.render_colos()
            self.render_events()
            self._update_header()

    def is_stale(self) -> bool:
        if self.last_error is not None and self.snapshot is not None:
            return True
        if self.last_good_at is None:
            return False
        return (self.clock() - self.last_good_at).total_seconds() > 2 * self.interval

    def _update_header(self) -> None:
        header = self.header
        snapshot = self.snapshot
        header.waiting = snapshot is None and self.last_error is None
        figures = self._figures.of(snapshot) if snapshot is not None else None
        header.health = figures.health if figures is not None else None
        if figures is not None:
            counts = figures.counts
            header.tunnel_counts = tuple((h, counts[h]) for h in sorted(counts, key=HEALTH_ORDER.__getitem__))
        header.finding_counts = (figures.critical, figures.warnings) if figures is not None else (0, 0)
        header.pending = figures.pending if figures is not None else 0
        header.last_good = self.last_good_at
        header.now = self.clock()
        header.stale = self.is_stale()
        header.source_badge = self.polling.badge or ""
        header.budget = self.polling.budget_text(self.interval)
        header.next_poll_in = self.polling.next_poll_in()

    def _tick(self) -> None:
        if self.closing:
            return
        if self.session.expire(self.clock()) and self.snapshot is not None:
            self.rows = self.session.rows(self.snapshot)
            self.render_views()
        elif self.snapshot is not None:
            # Ages follow the clock between polls too (a hang or a pause must not leave "0s" on screen): only the
            # on-screen cells whose text moved are redrawn.
            self.sorted_table().tick(self.clock())
        self._update_header()

    def event_matches(self, event: ChangeEvent) -> bool:
        if not self.filter.active:
            return True
        if event.parts:  # a failover or drift: shown when any connection it stands for matches
            return any(self.event_matches(part) for part in event.parts)
        conn = event.after if isinstance(event.after, Connection) else event.before
        if not isinstance(conn, Connection):
            return False
        tunnel = Tunnel(id=event.tunnel_id or "", name=event.tunnel_name)
        row = ConnRow("", tunnel, Connector(id=event.connector_id or ""), conn)
        return self.filter.matches(row)

    def render_events(self) -> None:
        view = self.main_screen.query_one(EventLogView)
        if view.display:
            view.show_events(self.session.log.numbered(self.event_matches, SHOWN_EVENTS), self.clock())

    def _alert(self, events: list[ChangeEvent]) -> None:
        for event in self.session.worsened(events):
            self.notify(clean(event.describe(), 300), title="Health worsened", severity="warning", markup=False)
            if self._bell:
                self.bell()
