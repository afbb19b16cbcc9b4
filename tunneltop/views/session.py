"""What one watching session remembers: its event log, recent marks, ghost rows, colo baselines and trends.

Pure and clock-driven (every method takes ``now``), so the UI only renders what this decides and tests can move
time by hand.
"""

from __future__ import annotations

import operator
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain, compress, repeat

from tunneltop.changes.events import ChangeEvent, EventKind, diff, flatten, without_first_sight
from tunneltop.model.health import HEALTH_ORDER, Health
from tunneltop.model.records import Connection, Connector, Tunnel
from tunneltop.model.snapshot import Snapshot, TunnelState
from tunneltop.poll.engine import GONE
from tunneltop.views.history import DEFAULT_MAXLEN, SHOWN_EVENTS, EventLog
from tunneltop.views.rows import ChangedRows, ConnRow, row_key

DEFAULT_GHOST_SECONDS = 60.0
DEFAULT_MARK_SECONDS = 30.0
TREND_POINTS = 120

# Which table column shows which connection field, for "changed cell" marks.
FIELD_COLUMNS = {
    "colo_name": "colo",
    "origin_ip": "origin",
    "opened_at": "opened",
    "is_pending_reconnect": "state",
    "client_version": "version",
}


# Rows per tunnel id and connector id, reused while its records are unchanged (see Session._rows_of), and the rows
# of each tunnel with the state they were made from.
_RowMemo = dict[str, dict[str, list[ConnRow]]]
_StateRows = dict[str, tuple[TunnelState, list[ConnRow]]]
_Changes = tuple[list[tuple[str, str, frozenset[str]]], list[ConnRow], set[str]]  # see Session._changes
_ColoParts = dict[str, tuple[TunnelState, Counter[str], Counter[str]]]  # see Session._colos
# The per-connector row lists a build made anew (the others are the last build's, reused whole), or None when an id
# listed twice keeps the memo from holding every list (see Session._build_rows).
_Fresh = list[list[ConnRow]] | None
# The last rows' per-connector lists a build did not reuse, or None where not told (see Session._build_rows).
_Left = list[list[ConnRow]] | None
# How a build's rows differ from the rows it was made after (see Session._build_rows): that list's token, the rows
# that came (by identity), the keys of the rows that left that none of those holds, and the keys of those that came;
# None where not told.
_Delta = tuple[object, list[ConnRow], list[str], set[str]] | None
# A build (see Session._build_rows): its rows, memo, per-tunnel rows, fresh and left lists, and the token of the rows
# whose memo it reused.
_Build = tuple[ChangedRows[ConnRow], _RowMemo, _StateRows, _Fresh, _Left, object | None]


@dataclass(frozen=True)
class Mark:
    """A row recently opened (``new``) or changed (``changed``, with the columns that changed)."""

    kind: str
    until: datetime
    columns: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ColoCount:
    colo: str
    active: int
    pending: int
    delta: int  # active connections now minus at the session's first poll (a tunnel's: its first read)


_key_of = operator.attrgetter("key")
_id_of = operator.attrgetter("id")
_NO_COLUMNS: frozenset[str] = frozenset()
_NEW = EventKind.CONN_OPENED  # enum members read once: looked up on their class, each costs a call
_RECORD_CHANGES = frozenset({EventKind.CONN_PENDING, EventKind.CONN_RECOVERED, EventKind.CONN_CHANGED})


_CONNS = operator.attrgetter("conns")
_COLO = operator.attrgetter("colo_name")
_PENDING = operator.attrgetter("is_pending_reconnect")


def _colos_of(state: TunnelState) -> tuple[Counter[str], Counter[str]]:
    """How many of a tunnel's active connections each colo holds, and of its pending ones ("?": no colo). At C
    speed: a failover recounts the whole tunnel, 100,000 connections."""
    conns = list(chain.from_iterable(map(_CONNS, state.connectors or ())))
    colos = list(map(_COLO, conns))
    if None in colos or "" in colos:
        colos = [colo or "?" for colo in colos]
    flags = list(map(_PENDING, conns))  # StrictBool: True, False or None, told apart by identity
    active = Counter(compress(colos, map(operator.is_, flags, repeat(False))))
    pending = Counter(compress(colos, map(operator.is_, flags, repeat(True))))
    return active, pending


def _lists_left(last: _RowMemo, memo: _RowMemo) -> list[list[ConnRow]]:
    """The per-connector lists of ``last`` (a memo holding every list of its rows) that ``memo`` does not reuse."""
    left: list[list[ConnRow]] = []
    for tunnel_id, lists in last.items():
        now = memo.get(tunnel_id)
        if now is lists:
            continue  # the tunnel's state is the same object: all of its rows reused
        kept = set(map(id, now.values())) if now else set()
        left.extend(made for made in lists.values() if id(made) not in kept)
    return left


def _slashed(tunnel_id: str, connectors: tuple[Connector, ...] | None) -> bool:
    """Whether a tunnel or connector id holds a "/": then two rows' keys (tunnel/connector/connection) could be
    the same text for different ids."""
    return "/" in tunnel_id or "/" in "".join(map(_id_of, connectors or ()))


def _same_tunnel(kept: Tunnel, tunnel: Tunnel) -> bool:
    return kept is tunnel or kept == tunnel


def sparkline(values: Iterable[int], width: int = 24) -> str:
    """A one-line chart of the last ``width`` values with block characters."""
    points = list(values)[-width:]
    if not points:
        return ""
    bars = "▁▂▃▄▅▆▇█"
    low, high = min(points), max(points)
    if high == low:
        return bars[3 if high else 0] * len(points)
    return "".join(bars[round((v - low) * (len(bars) - 1) / (high - low))] for v in points)


def _is_worse(before: Health, after: Health) -> bool:
    return HEALTH_ORDER[after] < HEALTH_ORDER[before]


class Session:
    def __init__(
        self,
        *,
        ghost_seconds: float = DEFAULT_GHOST_SECONDS,
        mark_seconds: float = DEFAULT_MARK_SECONDS,
        log_size: int = DEFAULT_MAXLEN,
    ) -> None:
        self.ghost_for = timedelta(seconds=ghost_seconds)
        self.mark_for = timedelta(seconds=mark_seconds)
        self.log = EventLog(log_size)
        self.last: Snapshot | None = None
        self.marks: dict[str, Mark] = {}
        self.ghosts: dict[str, ConnRow] = {}
        self.trends: dict[str, deque[int]] = {}
        self._baseline: Counter[str] | None = None
        # Each tunnel's active connections per colo when the session first read them: drilled into one tunnel, its
        # colo strip shows its own change (an account-wide first poll may not have read every tunnel's connectors).
        self._tunnel_baselines: dict[str, Counter[str]] = {}
        # Rows per tunnel and connector, reused while its records are unchanged (parsing keeps unchanged records
        # identical; the rows hold their tunnel and connector), and the rows of the last snapshot: a poll reads them
        # several times (marks, ghosts, colos, table). Only the last: the one before is read once more, by the next
        # poll's marks, before its own rows are made, and keeping it kept every record a change replaced alive (a
        # failover at 100,000 connections: 20 MB) until the next change.
        # Set as one (a build on another thread reads them together, see prepare): the token of the rows they belong
        # to, the memo, the per-tunnel rows, and whether the memo holds every per-connector list of those rows (no
        # tunnel or connector id listed twice: then what a poll's rows left and came is told list by list).
        self._memo: tuple[object | None, _RowMemo, _StateRows, bool] = (None, {}, {}, False)
        self._rows_seen: tuple[Snapshot, ChangedRows[ConnRow]] | None = None
        # How those rows differ from the ones before them (their token and _Delta), and what rows() handed out last
        # (its token, the token of the rows it holds, and the ghosts it holds after them): each list rows() hands
        # out tells what changed since the one before (ChangedRows), so that the table need not work it out.
        self._part_change: tuple[object, _Delta] | None = None
        self._handed: tuple[object, object, list[ConnRow]] | None = None
        # Made ahead by prepare: a snapshot's rows (with the memo and per-tunnel rows that go with them), the marks,
        # ghosts and returning keys between the last snapshot and it (for those very events), and its colo counts.
        self._prepared: tuple[Snapshot, ChangedRows[ConnRow], _RowMemo, _StateRows, _Fresh, _Delta] | None = None
        self._prepared_changes: tuple[Snapshot, Snapshot, list[ChangeEvent], _Changes] | None = None
        self._prepared_colos: tuple[Snapshot, _ColoParts, Counter[str], Counter[str]] | None = None
        # Colo counts: totals kept up to date from the tunnels whose state changed (unchanged ones are the same object).
        self._colo_parts: _ColoParts = {}
        self._colos_seen: tuple[Snapshot, Counter[str], Counter[str]] | None = None

    # -- feeding it ---------------------------------------------------------------------------------------------

    def on_snapshot(
        self, snapshot: Snapshot, now: datetime, events: list[ChangeEvent] | None = None
    ) -> list[ChangeEvent]:
        """Take a new poll and its events (the poll engine's; by default the diff from the last one), log them and
        return them."""
        given = events  # what prepare was given, if it was
        if events is None:
            events = diff(self.last, snapshot)
        events = without_first_sight(events)
        self.log.extend(events)
        self._mark(events, snapshot, now, given)
        if self._baseline is None:
            self._baseline = self._colo_active(snapshot)
        if self.last is None or snapshot.tunnels is not self.last.tunnels:
            baselines = self._tunnel_baselines
            first = [s for s in snapshot.tunnels if s.connectors is not None and s.tunnel.id not in baselines]
            if first:
                self._colos(snapshot)  # each tunnel's colos, counted once (ahead of time, by prepare) and kept
                parts = self._colo_parts
                for state in first:
                    baselines[state.tunnel.id] = Counter(parts[state.tunnel.id][1])  # a copy: parts are shared
        for state in snapshot.tunnels:
            trend = self.trends.setdefault(state.tunnel.id, deque(maxlen=TREND_POINTS))
            trend.append(state.active_count)
        self.last = snapshot
        return events

    def on_failure(self, events: Iterable[ChangeEvent]) -> None:
        """A failed poll: log the engine's failure-streak events (poll_failed at a streak's start, when its kind of
        error changes, and once a minute while it lasts)."""
        self.log.extend(events)

    def _mark(
        self, events: list[ChangeEvent], snapshot: Snapshot, now: datetime, given: list[ChangeEvent] | None = None
    ) -> None:
        if not events and self.last is not None and snapshot.tunnels is self.last.tunnels:
            return  # the same tunnels as last poll (see TunnelSource.poll): no marks, and no row came or went
        prepared = self._prepared_changes
        self._prepared_changes = None
        if prepared is not None and prepared[0] is self.last and prepared[1] is snapshot and prepared[2] is given:
            marked, ghosts, came = prepared[3]
            self._rows_of(snapshot)  # the rows made with them take the place of the last ones
        elif self.last is None:
            # The first poll: no row left, none came back (no ghost yet); keying every row (0.1 s at 100,000) buys
            # nothing on the screen's thread. Its events may still mark (a tunnel's connectors read late).
            self._rows_of(snapshot)
            marked, ghosts, came = self._marked(events, snapshot), [], set()
        else:
            old_rows = self._rows_of(self.last) if self.last is not None else []  # before this poll's (_rows_of)
            marked, ghosts, came = self._changes(events, snapshot, old_rows, self._rows_of(snapshot))
        until = now + self.mark_for
        # One Mark for all the marks alike (frozen): a failover marks thousands of rows new, and the table compares
        # marks poll after poll (the same object: at once).
        alike: dict[tuple[str, frozenset[str]], Mark] = {}
        for key, kind, columns in marked:
            mark = alike.get((kind, columns))
            if mark is None:
                mark = alike[kind, columns] = Mark(kind, until, columns)
            self.marks[key] = mark
        self.ghosts.update((r.key, ConnRow(r.key, r.tunnel, r.connector, r.conn, gone_at=now)) for r in ghosts)
        for key in came:  # a connection back before its ghost went: the ghost goes (a returning row is new)
            self.ghosts.pop(key, None)

    def _changes(
        self, events: list[ChangeEvent], snapshot: Snapshot, old_rows: list[ConnRow], new_rows: list[ConnRow]
    ) -> tuple[list[tuple[str, str, frozenset[str]]], list[ConnRow], set[str]]:
        """What a poll marks (row key, kind, columns), the rows it leaves as ghosts, and the keys of the rows that
        came; changes nothing (see prepare)."""
        marked = self._marked(events, snapshot)
        # An unchanged row is the very same object poll after poll (see _rows_of): the rows that left and came are
        # found by identity at C speed, and only they are looked at (at 100,000 connections a failover spent 0.15 s
        # here on the screen's thread, keying every row of both polls).
        old_by_id = dict(zip(map(id, old_rows), old_rows, strict=True))
        new_by_id = dict(zip(map(id, new_rows), new_rows, strict=True))
        came = set(map(_key_of, map(new_by_id.__getitem__, new_by_id.keys() - old_by_id.keys())))
        left = [row for i in old_by_id.keys() - new_by_id.keys() if (row := old_by_id[i]).key not in came]
        ghosts = []
        if left:
            present = set(map(_key_of, new_rows))  # exact even where the API lists a connection twice
            states = {t.tunnel.id: t for t in snapshot.tunnels}
            ghosts = [r for r in left if r.key not in present and self._visible(states.get(r.tunnel.id))]
        return marked, ghosts, came

    def _changes_by_lists(
        self, events: list[ChangeEvent], snapshot: Snapshot, fresh: list[list[ConnRow]], lists_left: list[list[ConnRow]]
    ) -> _Changes:
        """``_changes`` against the last rows, told from the row lists (no row keyed but those that left or came):
        a connector's rows are reused as one list while it is the same object, so the rows that came are the lists
        made anew, and those that left are the lists of the last rows (all in the memo: no id listed twice, on
        either side) not reused. A key that left is then present again only among those that came (no id holds a
        "/", so a key is one connector's). At 100,000 connections this spares keying and hashing every row of both
        polls."""
        came = set(map(_key_of, chain.from_iterable(fresh)))
        left = [row for made in lists_left for row in made if row.key not in came]
        ghosts = []
        if left:
            states = {t.tunnel.id: t for t in snapshot.tunnels}
            ghosts = [r for r in left if self._visible(states.get(r.tunnel.id))]
        return self._marked(events, snapshot), ghosts, came

    def _marked(self, events: list[ChangeEvent], snapshot: Snapshot) -> list[tuple[str, str, frozenset[str]]]:
        """What a poll marks: (row key, kind, columns)."""
        marked: list[tuple[str, str, frozenset[str]]] = []
        for event in flatten(events):  # a failover's or drift's connections are marked one by one
            kind = event.kind
            tid, cid = event.tunnel_id or "", event.connector_id or ""
            if kind is _NEW:
                marked.append((row_key(tid, cid, event.conn_id or ""), "new", _NO_COLUMNS))
            elif kind in _RECORD_CHANGES:
                columns = self._changed_columns(event.before, event.after)
                marked.append((row_key(tid, cid, event.conn_id or ""), "changed", columns))
            elif kind is EventKind.CONNECTOR_JOINED and isinstance(event.after, Connector):
                marked.extend((row_key(tid, cid, conn.id), "new", _NO_COLUMNS) for conn in event.after.conns)
            elif kind in (EventKind.CONNECTOR_UPGRADED, EventKind.CONNECTOR_RESTARTED):
                column = "version" if kind is EventKind.CONNECTOR_UPGRADED else "connector"
                marked.extend((key, "changed", frozenset({column})) for key in self._connector_keys(snapshot, tid, cid))
        return marked

    @staticmethod
    def _visible(state: TunnelState | None) -> bool:
        """A connection is gone only if we can see its tunnel's connectors, or that the tunnel itself is gone
        (whether a connection fetch or the tunnel list saw it first); a failed fetch proves nothing."""
        return state is None or state.connectors is not None or state.error == GONE

    @staticmethod
    def _connector_keys(snapshot: Snapshot, tunnel_id: str, connector_id: str) -> list[str]:
        for state in snapshot.tunnels:
            if state.tunnel.id == tunnel_id:
                for connector in state.connectors or ():
                    if connector.id == connector_id:
                        return [row_key(tunnel_id, connector_id, c.id) for c in connector.conns]
        return []

    @staticmethod
    def _changed_columns(before: object, after: object) -> frozenset[str]:
        if not (isinstance(before, Connection) and isinstance(after, Connection)):
            return frozenset()
        return frozenset(
            column for name, column in FIELD_COLUMNS.items() if getattr(before, name) != getattr(after, name)
        )

    # -- reading it ---------------------------------------------------------------------------------------------

    def expire(self, now: datetime) -> bool:
        """Drop marks and ghosts whose time is up; True when anything went (the view needs a redraw)."""
        marks = [k for k, m in self.marks.items() if m.until <= now]
        ghosts = [k for k, g in self.ghosts.items() if g.gone_at is not None and g.gone_at + self.ghost_for <= now]
        for key in marks:
            del self.marks[key]
        for key in ghosts:
            del self.ghosts[key]
        return bool(marks or ghosts)

    def next_expiry(self) -> datetime | None:
        times = [m.until for m in self.marks.values()]
        times += [g.gone_at + self.ghost_for for g in self.ghosts.values() if g.gone_at is not None]
        return min(times, default=None)

    def rows(self, snapshot: Snapshot) -> ChangedRows[ConnRow]:
        """The snapshot's rows, followed by the ghosts of recently closed connections (do not mutate the list), telling
        what changed since the list this handed out before (see ChangedRows)."""
        part = self._rows_of(snapshot)
        ghosts = list(self.ghosts.values())
        handed = self._handed
        if handed is not None and handed[0] is part.token and not ghosts:
            return part  # the very list handed out last time
        rows = part if not ghosts and not part.told else ChangedRows(part)
        rows.extend(ghosts)  # a list copied and extended at C speed
        change = self._change_since(handed, part, ghosts) if handed is not None else None
        if change is None:
            rows.tell(None, [], [])
        else:
            rows.tell(handed[0] if handed is not None else None, *change)
        self._handed = (rows.token, part.token, ghosts)
        return rows

    def _change_since(
        self, handed: tuple[object, object, list[ConnRow]], part: ChangedRows[ConnRow], ghosts: list[ConnRow]
    ) -> tuple[list[ConnRow], list[str]] | None:
        """The rows that came and the keys that went between the list handed out (``handed``) and ``part`` followed
        by ``ghosts`` (see ChangedRows), or None where not known. No id is listed twice nor holds a "/" where told
        (the memo is whole), so a key is one row's, and a ghost's key no live row's of the same list."""
        _, part_before, ghosts_before = handed
        change, self._part_change = self._part_change, None  # told once: the next list is told since this one
        came_keys: set[str] = set()
        if part_before is part.token:
            came: list[ConnRow] = []
            left: list[str] = []
        elif change is not None and change[0] is part.token and change[1] is not None and change[1][0] is part_before:
            came, left, came_keys = list(change[1][1]), list(change[1][2]), change[1][3]
        else:
            return None
        if ghosts or ghosts_before:  # a few: told by identity (both lists hold theirs, so no id is reused)
            before, now = set(map(id, ghosts_before)), set(map(id, ghosts))
            ghosts_came = [ghost for ghost in ghosts if id(ghost) not in before]
            ghost_keys = set(map(_key_of, ghosts_came))
            if ghost_keys:  # a row that left and stays as a ghost: its key did not go
                left = [key for key in left if key not in ghost_keys]
            came += ghosts_came
            gone = [g.key for g in ghosts_before if id(g) not in now]
            left += [key for key in gone if key not in came_keys and key not in ghost_keys]
        return came, left

    def prepare(self, snapshot: Snapshot, events: list[ChangeEvent] | None = None) -> None:
        """Work out ahead what taking a poll (on_snapshot with these events) will need: its rows, marks and ghosts,
        and its colo counts, so that taking it only installs them. Safe on another thread while this session is
        used: it reads what is replaced whole, never changed in place, and sets attributes. At 100,000 connections
        that is 0.3-0.5 s of Python the screen's thread no longer spends on a first poll or a failover."""
        last = self.last
        seen = self._rows_seen
        if seen is not None and seen[0].tunnels is snapshot.tunnels:
            return
        build = self._build_rows(snapshot)
        self._prepared = (snapshot, *build[:4], self._delta(build))
        fresh, lists_left = build[3:5]
        logged = without_first_sight(events) if events is not None else []  # what on_snapshot will log
        if events is not None and last is not None and seen is not None and seen[0].tunnels is last.tunnels:
            rows = build[0]
            if fresh is not None and lists_left is not None:
                changes = self._changes_by_lists(logged, snapshot, fresh, lists_left)
            else:
                changes = self._changes(logged, snapshot, seen[1], rows)
            self._prepared_changes = (last, snapshot, events, changes)
        self._prepared_colos = (snapshot, *self._count_colos(snapshot))
        for event in logged[-SHOWN_EVENTS:]:  # the newest, which the event log shows
            event.describe()  # made once and kept: the event log's lines (~10-25 µs each), here off the screen's thread
        for state in snapshot.tunnels:  # cached on each state: read for every tunnel by the trends and the header
            state.active_count  # noqa: B018
            state.pending_count  # noqa: B018
        snapshot.figures  # noqa: B018  # the header's: each tunnel's health over every connector (cached, immutable)

    def _rows_of(self, snapshot: Snapshot) -> ChangedRows[ConnRow]:
        """``rows_of(snapshot)``, with each unchanged connector's rows reused (do not mutate the list)."""
        last = self._rows_seen
        if last is not None and (last[0] is snapshot or last[0].tunnels is snapshot.tunnels):
            return last[1]  # an unchanged poll: the same tunnels tuple
        prepared = self._prepared
        if prepared is not None and prepared[0] is snapshot:
            rows, memo, by_state, fresh, delta = prepared[1:]
            self._prepared = None
        else:
            build = self._build_rows(snapshot)
            rows, memo, by_state, fresh = build[:4]
            delta = self._delta(build)
        self._memo = (rows.token, memo, by_state, fresh is not None)
        self._rows_seen = (snapshot, rows)
        self._part_change = (rows.token, delta)
        return rows

    @staticmethod
    def _delta(build: _Build) -> _Delta:
        """How a build's rows differ from the rows it was made after (see _Delta)."""
        fresh, lists_left, after = build[3:]
        if fresh is None or lists_left is None or after is None:
            return None
        came = list(chain.from_iterable(fresh))
        came_keys = set(map(_key_of, came))
        # Only the keys that went: a row made again keeps its key (and the key string of the last rows', which a
        # list of every key that left would keep alive: 28,000 at a failover of 100,000 connections, ~4 MB).
        left = [row.key for made in lists_left for row in made if row.key not in came_keys]
        return (after, came, left, came_keys)

    def _build_rows(self, snapshot: Snapshot) -> _Build:
        """The rows of ``snapshot`` with the memo and per-tunnel rows that go with them, the per-connector lists made
        anew (None where a tunnel or connector id is listed twice), and the last rows' lists not reused (None where
        not all of them are in the memo, or fresh is None); changes nothing."""
        memo: _RowMemo = {}
        by_state: _StateRows = {}
        rows: ChangedRows[ConnRow] = ChangedRows()
        fresh: _Fresh = []
        after, row_memo, state_rows, whole = self._memo
        for state in snapshot.tunnels:
            tunnel = state.tunnel
            if fresh is not None and (tunnel.id in memo or _slashed(tunnel.id, state.connectors)):
                fresh = None
            seen = state_rows.get(tunnel.id)
            known = row_memo.get(tunnel.id, {})
            if seen is not None and seen[0] is state:  # the source hands back unchanged tunnels as the same object
                by_state[tunnel.id] = seen
                rows.extend(seen[1])
                memo[tunnel.id] = known
                if len(known) != len(state.connectors or ()):  # a connector id listed twice: its lists not all kept
                    fresh = None
                continue
            # Each connector's rows are reused while it is the same object, its tunnel equal (all of a tunnel's
            # lists hold equal tunnels: each was reused or made for an equal one), told at C speed: a failover at
            # 100,000 connections changes a few thousand of 25,000 connectors.
            connectors = state.connectors or ()
            ids = list(map(_id_of, connectors))
            lists: list[list[ConnRow] | None] = list(map(known.get, ids))
            held = [made[0].connector if made else None for made in lists]
            shown = next((made[0].tunnel for made in lists if made), None)
            keep = map(operator.is_, held, connectors) if shown is not None and _same_tunnel(shown, tunnel) else ()
            for index in [i for i, kept in enumerate(keep) if not kept] if keep else range(len(lists)):
                # A connector with no connections has no rows to tell its records by: made again, for nothing.
                connector = connectors[index]
                made = [ConnRow(row_key(tunnel.id, connector.id, c.id), tunnel, connector, c) for c in connector.conns]
                lists[index] = made
                if fresh is not None:
                    fresh.append(made)
            mine: dict[str, list[ConnRow]] = dict(zip(ids, lists, strict=True))  # type: ignore[arg-type]
            part: list[ConnRow] = list(chain.from_iterable(lists))  # type: ignore[arg-type]
            if len(mine) != len(connectors):
                fresh = None
            memo[tunnel.id] = mine
            by_state[tunnel.id] = (state, part)
            rows.extend(part)
        lists_left = _lists_left(row_memo, memo) if fresh is not None and whole else None
        return rows, memo, by_state, fresh, lists_left, after

    def worsened(self, events: Iterable[ChangeEvent]) -> list[ChangeEvent]:
        """Health events that made a tunnel worse: what deserves an alert."""
        return [
            e
            for e in events
            if e.kind is EventKind.TUNNEL_HEALTH
            and isinstance(e.before, Health)
            and isinstance(e.after, Health)
            and _is_worse(e.before, e.after)
        ]

    def _colos(self, snapshot: Snapshot) -> tuple[Counter[str], Counter[str]]:
        """Active and pending connections per colo (kept for the last snapshot: every redraw shows them)."""
        if self._colos_seen is not None and self._colos_seen[0].tunnels is snapshot.tunnels:
            return self._colos_seen[1], self._colos_seen[2]
        prepared = self._prepared_colos
        if prepared is not None and prepared[0] is snapshot:
            parts, active, pending = prepared[1:]
        else:
            parts, active, pending = self._count_colos(snapshot)
        self._prepared_colos = None
        self._colo_parts = parts
        self._colos_seen = (snapshot, active, pending)
        return active, pending

    def _count_colos(self, snapshot: Snapshot) -> tuple[_ColoParts, Counter[str], Counter[str]]:
        """The counts of ``_colos``, changing nothing: counted again only for tunnels whose state changed (unchanged
        ones are the same objects); each tunnel's own counts are kept, taken off and put back colo by colo."""
        seen = self._colos_seen
        active: dict[str, int] = dict(seen[1]) if seen is not None else {}
        pending: dict[str, int] = dict(seen[2]) if seen is not None else {}
        before = self._colo_parts
        parts: _ColoParts = {}
        for state in snapshot.tunnels:
            old = before.get(state.tunnel.id)
            if old is not None and old[0] is state:
                parts[state.tunnel.id] = old
                continue
            parts[state.tunnel.id] = (state, *_colos_of(state))
        for tunnel_id, old in before.items():
            new = parts.get(tunnel_id)
            if new is old:
                continue
            for colo, n in old[1].items():
                active[colo] -= n
            for colo, n in old[2].items():
                pending[colo] -= n
        for tunnel_id, new in parts.items():
            if before.get(tunnel_id) is new:
                continue
            for colo, n in new[1].items():
                active[colo] = active.get(colo, 0) + n
            for colo, n in new[2].items():
                pending[colo] = pending.get(colo, 0) + n
        return (
            parts,
            Counter({c: n for c, n in active.items() if n > 0}),
            Counter({c: n for c, n in pending.items() if n > 0}),
        )

    def _colo_active(self, snapshot: Snapshot) -> Counter[str]:
        return Counter(self._colos(snapshot)[0])

    def colo_counts(self, snapshot: Snapshot) -> list[ColoCount]:
        active, pending = self._colos(snapshot)
        base = self._baseline or Counter()
        colos = sorted(set(active) | set(pending) | set(base))
        return [ColoCount(c, active[c], pending[c], active[c] - base[c]) for c in colos]

    def tunnel_colo_counts(self, state: TunnelState) -> list[ColoCount]:
        """One tunnel's connections per colo, and the change since the session first read them: a colo it had then
        and has no more stays listed with its loss. None while its connections are unknown (never read)."""
        if state.connectors is None:
            return []
        kept = self._colo_parts.get(state.tunnel.id)
        active, pending = kept[1:] if kept is not None and kept[0] is state else _colos_of(state)
        base = self._tunnel_baselines.get(state.tunnel.id, Counter())
        colos = sorted(active.keys() | pending.keys() | base.keys())
        return [ColoCount(c, active[c], pending[c], active[c] - base[c]) for c in colos]

    def trend(self, tunnel_id: str) -> list[int]:
        return list(self.trends.get(tunnel_id, ()))
