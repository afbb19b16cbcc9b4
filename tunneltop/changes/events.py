"""What changed between two polls, as typed events: pure, fast, and exact enough to replay.

``diff(old, new)`` turns two snapshots into a list of ``ChangeEvent``; ``apply(old, events)`` replays them. The
contract, checked by property tests: ``replay_form(apply(old, diff(old, new))) == replay_form(new)``.

Rules:

- The first poll is the baseline: ``diff(None, new)`` is empty.
- Identity is the id: tunnels by ``id``, connectors by ``id`` within their tunnel, connections by ``id`` within
  their connector. A tunnel id listed twice counts once (its first copy).
- A connector or connection that appears or vanishes is one event carrying the whole record
  (``connector_joined`` carries its connections; no ``conn_opened`` for them). A connector present in both polls
  gets one event per changed aspect (run_at, version, config_version, features, anything else), then one event per
  opened, closed or changed connection.
- Every connection event carries both full records, its kind chosen by the ``state`` transition: to pending is
  ``conn_pending``, pending to active is ``conn_recovered``, anything else ``conn_changed``.
- Connectors unknown (``TunnelState.connectors is None``: their fetch failed this poll) are never read as gone:
  losing sight of them is one ``tunnel_fetch_failed``, regaining it one ``tunnel_fetch_recovered`` carrying the
  connectors as now seen, and no connector or connection event is derived across either. While unknown the
  tunnel's health is ``unknown`` (``tunnel_health``), so a consumer of health events sees the loss of sight too.
- Connectors kept from an earlier read while a refresh fails (``connectors`` known and ``error`` set) are stale:
  becoming so is one ``tunnel_stale`` carrying the error, being read again one ``tunnel_refreshed``; both replay as
  nothing, since what the connections are has not changed.
- ``tunnel_health`` is derived: it is reported after the tunnel's other events and replays as nothing. Its
  severity follows the verdict reached: healthy ok, degraded or unknown warning, down or inactive error.
- Order is deterministic: tunnels gone first (old order), then the new snapshot's tunnels in its order; within a
  tunnel its record, its visibility, then connectors gone (old order) and the new connectors in order, each
  followed by its connections gone and then its connections in new order; the tunnel's health last.

What ``apply`` reproduces (``replay_form``): the account id and, keyed by id, every tunnel record and its
connectors with their connections, or None where they are unknown. Not reproduced: the order of survivors against
newcomers (survivors keep their old order; newcomers follow in event order), per-poll diagnostics (record problems,
an unchanged-visibility error text) and ``fetched_at``, which becomes the last event's time.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum
from itertools import chain
from typing import Any

from pydantic import BaseModel

from tunneltop.model.health import Health, edge_summary
from tunneltop.model.records import Connection, Connector, Tunnel
from tunneltop.model.snapshot import Snapshot, TunnelState
from tunneltop.sanitize import clean


class EventKind(StrEnum):
    CONN_OPENED = "conn_opened"
    CONN_CLOSED = "conn_closed"
    CONN_PENDING = "conn_pending"
    CONN_RECOVERED = "conn_recovered"
    CONN_CHANGED = "conn_changed"
    CONNECTOR_JOINED = "connector_joined"
    CONNECTOR_LEFT = "connector_left"
    CONNECTOR_RESTARTED = "connector_restarted"
    CONNECTOR_UPGRADED = "connector_upgraded"
    CONFIG_CHANGED = "config_changed"
    FEATURES_CHANGED = "features_changed"
    CONNECTOR_CHANGED = "connector_changed"
    TUNNEL_ADDED = "tunnel_added"
    TUNNEL_REMOVED = "tunnel_removed"
    TUNNEL_HEALTH = "tunnel_health"
    TUNNEL_CHANGED = "tunnel_changed"
    TUNNEL_FETCH_FAILED = "tunnel_fetch_failed"
    TUNNEL_FETCH_RECOVERED = "tunnel_fetch_recovered"
    TUNNEL_STALE = "tunnel_stale"
    TUNNEL_REFRESHED = "tunnel_refreshed"
    POLL_FAILED = "poll_failed"
    POLL_RECOVERED = "poll_recovered"


class Severity(StrEnum):
    INFO = "info"
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


_FIXED_SEVERITY: dict[EventKind, Severity] = {
    EventKind.CONN_OPENED: Severity.INFO,
    EventKind.CONN_PENDING: Severity.WARNING,
    EventKind.CONN_RECOVERED: Severity.OK,
    EventKind.CONN_CHANGED: Severity.INFO,
    EventKind.CONNECTOR_JOINED: Severity.INFO,
    EventKind.CONNECTOR_LEFT: Severity.WARNING,
    EventKind.CONNECTOR_RESTARTED: Severity.WARNING,
    EventKind.CONNECTOR_UPGRADED: Severity.INFO,
    EventKind.CONFIG_CHANGED: Severity.INFO,
    EventKind.FEATURES_CHANGED: Severity.INFO,
    EventKind.CONNECTOR_CHANGED: Severity.INFO,
    EventKind.TUNNEL_ADDED: Severity.INFO,
    EventKind.TUNNEL_REMOVED: Severity.WARNING,
    EventKind.TUNNEL_CHANGED: Severity.INFO,
    EventKind.TUNNEL_FETCH_FAILED: Severity.WARNING,
    EventKind.TUNNEL_FETCH_RECOVERED: Severity.OK,
    EventKind.TUNNEL_STALE: Severity.WARNING,
    EventKind.TUNNEL_REFRESHED: Severity.OK,
    EventKind.POLL_FAILED: Severity.ERROR,
    EventKind.POLL_RECOVERED: Severity.OK,
}


_HEALTH_SEVERITY: dict[Health, Severity] = {
    Health.HEALTHY: Severity.OK,
    Health.DEGRADED: Severity.WARNING,
    Health.UNKNOWN: Severity.WARNING,
    Health.DOWN: Severity.ERROR,
    Health.INACTIVE: Severity.ERROR,
}


def _closed_severity(before: Connection) -> Severity:
    # An active connection closing is a loss; a pending one expiring was already reported when it went pending.
    return Severity.WARNING if before.state == "active" else Severity.INFO


def rfc3339(moment: datetime) -> str:
    """``2025-03-01T12:00:05Z``: UTC, the way Cloudflare and the JSON outputs spell times (naive taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _short(value: str | None) -> str:
    return clean(value[:8] if value else value, 8)


def _record_json(record: BaseModel, *, shell: bool = False) -> dict[str, Any]:
    # Every record here is a tunneltop.model.records one (a BaseModel with api_dict); BaseModel itself has none.
    data: dict[str, Any] = record.api_dict()  # type: ignore[attr-defined]
    if shell:
        data.pop("conns", None)
    return data


def _state_json(state: TunnelState) -> dict[str, Any]:
    return {
        "tunnel": state.tunnel.api_dict(),
        "health": state.health.value,
        "clients": None if state.connectors is None else [c.api_dict() for c in state.connectors],
        "error": state.error,
    }


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value.value if isinstance(value, Enum) else value
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, TunnelState):
        return _state_json(value)
    if isinstance(value, BaseModel):
        return _record_json(value)
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return str(value)


def changed_fields(before: BaseModel, after: BaseModel, *, skip: Iterable[str] = ()) -> list[str]:
    """Names of the fields (declared or extra) whose API value differs, sorted."""
    # Records from tunneltop.model.records (BaseModel subclasses with api_dict); BaseModel itself has none.
    a, b = before.api_dict(), after.api_dict()  # type: ignore[attr-defined]
    ignored = set(skip)
    return sorted(k for k in a.keys() | b.keys() if k not in ignored and (k not in a or k not in b or a[k] != b[k]))


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change seen between two polls. ``before``/``after`` hold what the kind is about (see module doc)."""

    at: datetime
    kind: EventKind
    severity: Severity
    tunnel_id: str | None = None
    tunnel_name: str | None = None
    connector_id: str | None = None
    conn_id: str | None = None
    colo: str | None = None
    before: Any = None
    after: Any = None

    def describe(self) -> str:
        """A short human line, safe to print (API text is sanitised)."""
        text = _DESCRIBE[self.kind](self)
        if self.tunnel_id is None:
            return text
        return f"{clean(self.tunnel_name or self.tunnel_id, 60)}: {text}"

    def _changed(self) -> list[str] | None:
        if not (isinstance(self.before, BaseModel) and isinstance(self.after, BaseModel)):
            return None
        return changed_fields(self.before, self.after, skip=("conns",))

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict: datetimes in RFC 3339 with Z, records as the API spells them."""
        shell = self.kind is EventKind.CONNECTOR_CHANGED
        before = _record_json(self.before, shell=True) if shell else _json_value(self.before)
        after = _record_json(self.after, shell=True) if shell else _json_value(self.after)
        document: dict[str, Any] = {
            "at": rfc3339(self.at),
            "kind": self.kind.value,
            "severity": self.severity.value,
            "tunnel_id": self.tunnel_id,
            "tunnel_name": self.tunnel_name,
            "connector_id": self.connector_id,
            "conn_id": self.conn_id,
            "colo": self.colo,
            "before": before,
            "after": after,
            "message": self.describe(),
        }
        changed = self._changed()
        if changed is not None:
            document["changed"] = changed
        return document


# -- describe() ---------------------------------------------------------------------------------------------------


def _conn_where(conn: Connection) -> str:
    return f"{clean(conn.colo_name, 12)} {clean(conn.origin_ip, 45)}"


def _conn_ids(e: ChangeEvent) -> str:
    return f"(conn {_short(e.conn_id)}, connector {_short(e.connector_id)})"


def _conn_line(verb: str) -> Callable[[ChangeEvent], str]:
    def line(e: ChangeEvent) -> str:
        conn = e.after if e.after is not None else e.before
        return f"{_conn_where(conn)} {verb} {_conn_ids(e)}"

    return line


def _conn_changed(e: ChangeEvent) -> str:
    parts = []
    for name in e._changed() or ():
        old, new = getattr(e.before, name, None), getattr(e.after, name, None)
        if name == "is_pending_reconnect":
            name, old, new = "state", e.before.state, e.after.state
        parts.append(f"{name} {clean(_json_value(old), 30)} -> {clean(_json_value(new), 30)}")
    return f"{_conn_where(e.after)} changed: {'; '.join(parts) or 'details'} {_conn_ids(e)}"


def _connector(e: ChangeEvent) -> str:
    return f"connector {_short(e.connector_id)}"


def _values(e: ChangeEvent, what: str) -> str:
    return f"{_connector(e)} {what}: {clean(_json_value(e.before), 60)} -> {clean(_json_value(e.after), 60)}"


def _features(e: ChangeEvent) -> str:
    old, new = set(e.before or ()), set(e.after or ())
    parts = [f"+{clean(f, 40)}" for f in sorted(new - old)] + [f"-{clean(f, 40)}" for f in sorted(old - new)]
    return f"{_connector(e)} features changed: {' '.join(parts) or 'reordered'}"


def _joined(e: ChangeEvent) -> str:
    c: Connector = e.after
    edges = clean(edge_summary(c.conns) or None, 60)
    return f"{_connector(e)} joined ({clean(c.version, 20)}, {clean(c.arch, 20)}, edges {edges})"


def _left(e: ChangeEvent) -> str:
    c: Connector = e.before
    return f"{_connector(e)} left (had {len(c.conns)} connections: {clean(edge_summary(c.conns) or None, 60)})"


def _connector_changed(e: ChangeEvent) -> str:
    return f"{_connector(e)} changed: {', '.join(clean(n, 30) for n in e._changed() or ()) or 'details'}"


def _tunnel_added(e: ChangeEvent) -> str:
    return f"tunnel added ({e.after.health.value})"


def _tunnel_changed(e: ChangeEvent) -> str:
    parts = []
    for name in e._changed() or ():
        old, new = _json_value(getattr(e.before, name, None)), _json_value(getattr(e.after, name, None))
        parts.append(f"{name} {clean(old, 30)} -> {clean(new, 30)}")
    return f"tunnel changed: {'; '.join(parts) or 'details'}"


def _fetch_recovered(e: ChangeEvent) -> str:
    conns = sum(len(c.conns) for c in e.after)
    return f"connections readable again ({len(e.after)} connectors, {conns} connections)"


def _poll_recovered(e: ChangeEvent) -> str:
    failures = (e.after or {}).get("failed_polls")
    since = (e.after or {}).get("since")
    text = "polling recovered"
    if failures:
        text += f" after {failures} failed poll{'s' if failures != 1 else ''}"
    if since is not None:
        text += f" (failing since {rfc3339(since)})"
    return text


_DESCRIBE: dict[EventKind, Callable[[ChangeEvent], str]] = {
    EventKind.CONN_OPENED: _conn_line("opened"),
    EventKind.CONN_CLOSED: _conn_line("closed"),
    EventKind.CONN_PENDING: _conn_line("went pending"),
    EventKind.CONN_RECOVERED: _conn_line("recovered"),
    EventKind.CONN_CHANGED: _conn_changed,
    EventKind.CONNECTOR_JOINED: _joined,
    EventKind.CONNECTOR_LEFT: _left,
    EventKind.CONNECTOR_RESTARTED: lambda e: _values(e, "restarted, run_at"),
    EventKind.CONNECTOR_UPGRADED: lambda e: _values(e, "version"),
    EventKind.CONFIG_CHANGED: lambda e: _values(e, "config version"),
    EventKind.FEATURES_CHANGED: _features,
    EventKind.CONNECTOR_CHANGED: _connector_changed,
    EventKind.TUNNEL_ADDED: _tunnel_added,
    EventKind.TUNNEL_REMOVED: lambda e: "tunnel removed (deleted, or no longer visible)",
    EventKind.TUNNEL_HEALTH: lambda e: f"health {e.before.value} -> {e.after.value}",
    EventKind.TUNNEL_CHANGED: _tunnel_changed,
    EventKind.TUNNEL_FETCH_FAILED: lambda e: f"connections could not be fetched: {clean(e.after, 200)}",
    EventKind.TUNNEL_FETCH_RECOVERED: _fetch_recovered,
    EventKind.TUNNEL_STALE: lambda e: f"connections could not be refreshed (the last ones read stay shown): "
    f"{clean(e.after, 200)}",
    EventKind.TUNNEL_REFRESHED: lambda e: "connections refreshed again",
    EventKind.POLL_FAILED: lambda e: f"poll failed: {clean(e.after, 300)}",
    EventKind.POLL_RECOVERED: _poll_recovered,
}


# -- poll-level events --------------------------------------------------------------------------------------------


def poll_failed(at: datetime, message: str, *, failed_polls: int = 0, since: datetime | None = None) -> ChangeEvent:
    """A whole poll failed (credentials, network, rate limit): nothing is known about this moment. Said again while
    polls keep failing, with the streak so far in ``before`` (``failed_polls``, ``since``); None on the first."""
    before = {"failed_polls": failed_polls, "since": since} if failed_polls else None
    return ChangeEvent(at, EventKind.POLL_FAILED, Severity.ERROR, before=before, after=message)


def poll_recovered(
    at: datetime, *, last_error: str | None = None, failed_polls: int = 0, since: datetime | None = None
) -> ChangeEvent:
    """Polls succeed again after ``failed_polls`` failures, the first at ``since``; ``before`` is the last error."""
    return ChangeEvent(
        at,
        EventKind.POLL_RECOVERED,
        Severity.OK,
        before=last_error,
        after={"failed_polls": failed_polls, "since": since},
    )


# -- diff ---------------------------------------------------------------------------------------------------------

_CONNECTOR_ASPECTS: tuple[tuple[str, EventKind], ...] = (
    ("run_at", EventKind.CONNECTOR_RESTARTED),
    ("version", EventKind.CONNECTOR_UPGRADED),
    ("config_version", EventKind.CONFIG_CHANGED),
    ("features", EventKind.FEATURES_CHANGED),
)
_CONNECTOR_OTHER = tuple(
    name for name in Connector.model_fields if name not in {"id", "conns", *(a for a, _ in _CONNECTOR_ASPECTS)}
)
_connector_other = operator.attrgetter(*_CONNECTOR_OTHER)


def _same_record(a: BaseModel, b: BaseModel) -> bool:
    # Cheaper than BaseModel.__eq__ on the hot path: these models keep only fields and extras.
    return a is b or (a.__dict__ == b.__dict__ and a.__pydantic_extra__ == b.__pydantic_extra__)


# The hot path compares whole tunnels at C speed (attrgetter, map, list equality) and looks closer only when they
# differ: a poll where 1% of connections changed leaves ~99% of tunnels on this path.
_connector_shell = operator.attrgetter(*(n for n in Connector.model_fields if n != "conns"), "__pydantic_extra__")
_conn_key = operator.attrgetter("__dict__", "__pydantic_extra__")
_conns_of = operator.attrgetter("conns")


def _same_conns(a: list[Connection], b: list[Connection]) -> bool:
    return a is b or (len(a) == len(b) and list(map(_conn_key, a)) == list(map(_conn_key, b)))


def _same_connectors(a: tuple[Connector, ...], b: tuple[Connector, ...]) -> bool:
    if a is b:
        return True
    if len(a) != len(b) or list(map(_connector_shell, a)) != list(map(_connector_shell, b)):
        return False
    old_conns = list(map(_conn_key, chain.from_iterable(map(_conns_of, a))))
    return old_conns == list(map(_conn_key, chain.from_iterable(map(_conns_of, b))))


def _first_by_id(items: Iterable[Any], key: Callable[[Any], str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        out.setdefault(key(item), item)
    return out


class _Differ:
    __slots__ = ("at", "events", "tunnel_id", "tunnel_name")

    def __init__(self, at: datetime) -> None:
        self.at = at
        self.events: list[ChangeEvent] = []
        self.tunnel_id: str | None = None
        self.tunnel_name: str | None = None

    def emit(
        self,
        kind: EventKind,
        before: Any = None,
        after: Any = None,
        *,
        connector_id: str | None = None,
        conn_id: str | None = None,
        colo: str | None = None,
        severity: Severity | None = None,
    ) -> None:
        self.events.append(
            ChangeEvent(
                self.at,
                kind,
                severity or _FIXED_SEVERITY[kind],
                self.tunnel_id,
                self.tunnel_name,
                connector_id,
                conn_id,
                colo,
                before,
                after,
            )
        )

    def snapshots(self, old: Snapshot, new: Snapshot) -> None:
        old_by_id = _first_by_id(old.tunnels, lambda s: s.tunnel.id)
        new_by_id = _first_by_id(new.tunnels, lambda s: s.tunnel.id)
        for tid, state in old_by_id.items():
            if tid not in new_by_id:
                self.tunnel_id, self.tunnel_name = tid, state.tunnel.name
                self.emit(EventKind.TUNNEL_REMOVED, before=state)
        for tid, state in new_by_id.items():
            self.tunnel_id, self.tunnel_name = tid, state.tunnel.name
            prev = old_by_id.get(tid)
            if prev is None:
                self.emit(EventKind.TUNNEL_ADDED, after=state)
            elif prev is not state:
                self.tunnel(prev, state)

    def tunnel(self, prev: TunnelState, state: TunnelState) -> None:
        mark = len(self.events)
        if not _same_record(prev.tunnel, state.tunnel):
            self.emit(EventKind.TUNNEL_CHANGED, prev.tunnel, state.tunnel)
        old, new = prev.connectors, state.connectors
        if old is not None and new is not None:
            # Connections kept from an earlier read while a refresh fails (see TunnelSource): stale, then fresh.
            if state.error and not prev.error:
                self.emit(EventKind.TUNNEL_STALE, after=state.error)
            elif prev.error and not state.error:
                self.emit(EventKind.TUNNEL_REFRESHED, before=prev.error)
            self.connectors(old, new)
        elif new is None and old is not None:
            self.emit(EventKind.TUNNEL_FETCH_FAILED, after=state.error or "connections could not be fetched")
        elif old is None and new is not None:
            self.emit(EventKind.TUNNEL_FETCH_RECOVERED, prev.error, new)
        if len(self.events) > mark and prev.health is not state.health:
            self.emit(EventKind.TUNNEL_HEALTH, prev.health, state.health, severity=_HEALTH_SEVERITY[state.health])

    def connectors(self, old: tuple[Connector, ...], new: tuple[Connector, ...]) -> None:
        if _same_connectors(old, new):
            return
        old_by_id = _first_by_id(old, operator.attrgetter("id"))
        new_by_id = _first_by_id(new, operator.attrgetter("id"))
        for cid, connector in old_by_id.items():
            if cid not in new_by_id:
                self.emit(EventKind.CONNECTOR_LEFT, before=connector, connector_id=cid)
        for cid, connector in new_by_id.items():
            prev = old_by_id.get(cid)
            if prev is None:
                self.emit(EventKind.CONNECTOR_JOINED, after=connector, connector_id=cid)
            elif prev is not connector:
                self.connector(prev, connector)

    def connector(self, prev: Connector, connector: Connector) -> None:
        cid = connector.id
        if _connector_shell(prev) != _connector_shell(connector):
            for name, kind in _CONNECTOR_ASPECTS:
                before, after = getattr(prev, name), getattr(connector, name)
                if before != after:
                    if name == "features":
                        before, after = tuple(before), tuple(after)
                    self.emit(kind, before, after, connector_id=cid)
            if (
                _connector_other(prev) != _connector_other(connector)
                or prev.__pydantic_extra__ != connector.__pydantic_extra__
            ):
                self.emit(EventKind.CONNECTOR_CHANGED, prev, connector, connector_id=cid)
        if not _same_conns(prev.conns, connector.conns):
            self.conns(cid, prev.conns, connector.conns)

    def conns(self, cid: str, old: list[Connection], new: list[Connection]) -> None:
        old_by_id = _first_by_id(old, operator.attrgetter("id"))
        new_by_id = _first_by_id(new, operator.attrgetter("id"))
        for conn_id, conn in old_by_id.items():
            if conn_id not in new_by_id:
                self.emit(
                    EventKind.CONN_CLOSED,
                    before=conn,
                    connector_id=cid,
                    conn_id=conn_id,
                    colo=conn.colo_name,
                    severity=_closed_severity(conn),
                )
        for conn_id, conn in new_by_id.items():
            prev = old_by_id.get(conn_id)
            if prev is None:
                self.emit(EventKind.CONN_OPENED, after=conn, connector_id=cid, conn_id=conn_id, colo=conn.colo_name)
            elif not _same_record(prev, conn):
                was, now = prev.state, conn.state
                if now == "pending" and was != "pending":
                    kind = EventKind.CONN_PENDING
                elif was == "pending" and now == "active":
                    kind = EventKind.CONN_RECOVERED
                else:
                    kind = EventKind.CONN_CHANGED
                self.emit(kind, prev, conn, connector_id=cid, conn_id=conn_id, colo=conn.colo_name)


def diff(old: Snapshot | None, new: Snapshot) -> list[ChangeEvent]:
    """The changes from ``old`` to ``new``, each stamped with ``new.fetched_at``; none when ``old`` is None."""
    if old is None or old is new:
        return []
    differ = _Differ(new.fetched_at)
    differ.snapshots(old, new)
    return differ.events


def without_first_sight(events: list[ChangeEvent]) -> list[ChangeEvent]:
    """The overview fetches connections a few tunnels at a time: a tunnel's first fetch (no error before) is
    not a recovery, and the health it then shows is not a change. Dropping them keeps warm-up out of the log
    (an account of 1,000 tunnels would otherwise log 2,000 such events)."""
    first = {e.tunnel_id for e in events if e.kind is EventKind.TUNNEL_FETCH_RECOVERED and e.before is None}
    if not first:
        return events
    return [
        e
        for e in events
        if not (e.tunnel_id in first and e.kind in (EventKind.TUNNEL_FETCH_RECOVERED, EventKind.TUNNEL_HEALTH))
    ]


# -- apply --------------------------------------------------------------------------------------------------------


class ReplayError(ValueError):
    """An event does not fit the snapshot it is replayed onto (a wrong base snapshot, or events out of order)."""


class _TunnelEdit:
    __slots__ = ("connectors", "conns", "error", "problems", "tunnel")

    def __init__(self, state: TunnelState) -> None:
        self.tunnel: Tunnel = state.tunnel
        self.connectors: dict[str, Connector] | None = (
            None if state.connectors is None else _first_by_id(state.connectors, operator.attrgetter("id"))
        )
        self.conns: dict[str, dict[str, Connection]] = {}
        self.error = state.error
        self.problems = state.problems

    def connector(self, cid: str | None) -> Connector:
        if self.connectors is None or cid not in self.connectors:
            raise ReplayError(f"connector {cid} is not in tunnel {self.tunnel.id}")
        return self.connectors[cid]

    def conns_of(self, cid: str | None) -> dict[str, Connection]:
        connector = self.connector(cid)
        assert cid is not None
        if cid not in self.conns:
            self.conns[cid] = _first_by_id(connector.conns, operator.attrgetter("id"))
        return self.conns[cid]

    def state(self) -> TunnelState:
        connectors = None
        if self.connectors is not None:
            connectors = tuple(
                c.model_copy(update={"conns": list(self.conns[cid].values())}) if cid in self.conns else c
                for cid, c in self.connectors.items()
            )
        return TunnelState(self.tunnel, connectors, self.problems, self.error)


_ASPECT_FIELD = {kind: name for name, kind in _CONNECTOR_ASPECTS}
_CONN_REPLACING = frozenset(
    {EventKind.CONN_OPENED, EventKind.CONN_PENDING, EventKind.CONN_RECOVERED, EventKind.CONN_CHANGED}
)
# Replayed as nothing: derived (health), poll-wide, or about how fresh kept connections are (not what they are).
_NO_STATE = frozenset(
    {
        EventKind.TUNNEL_HEALTH,
        EventKind.TUNNEL_STALE,
        EventKind.TUNNEL_REFRESHED,
        EventKind.POLL_FAILED,
        EventKind.POLL_RECOVERED,
    }
)


def _apply_to_tunnel(edit: _TunnelEdit, e: ChangeEvent) -> None:
    kind = e.kind
    if kind is EventKind.TUNNEL_CHANGED:
        edit.tunnel = e.after
    elif kind is EventKind.TUNNEL_FETCH_FAILED:
        edit.connectors, edit.conns, edit.error = None, {}, e.after
    elif kind is EventKind.TUNNEL_FETCH_RECOVERED:
        edit.connectors, edit.conns, edit.error = _first_by_id(e.after, operator.attrgetter("id")), {}, None
    elif kind is EventKind.CONNECTOR_JOINED:
        if edit.connectors is None:
            raise ReplayError(f"connectors of tunnel {edit.tunnel.id} are unknown")
        edit.connectors[e.after.id] = e.after
        edit.conns.pop(e.after.id, None)
    elif kind is EventKind.CONNECTOR_LEFT:
        edit.connector(e.connector_id)
        assert edit.connectors is not None and e.connector_id is not None
        del edit.connectors[e.connector_id]
        edit.conns.pop(e.connector_id, None)
    elif kind in _ASPECT_FIELD:
        value = list(e.after) if kind is EventKind.FEATURES_CHANGED else e.after
        current = edit.connector(e.connector_id)
        edit.connectors[current.id] = current.model_copy(update={_ASPECT_FIELD[kind]: value})  # type: ignore[index]
    elif kind is EventKind.CONNECTOR_CHANGED:
        current = edit.connector(e.connector_id)
        edit.connectors[current.id] = e.after.model_copy(update={"conns": current.conns})  # type: ignore[index]
    elif kind is EventKind.CONN_CLOSED:
        conns = edit.conns_of(e.connector_id)
        if conns.pop(e.conn_id, None) is None:  # type: ignore[arg-type]
            raise ReplayError(f"connection {e.conn_id} is not open on connector {e.connector_id}")
    elif kind in _CONN_REPLACING:
        edit.conns_of(e.connector_id)[e.after.id] = e.after
    else:
        raise ReplayError(f"cannot replay {kind}")


def apply(old: Snapshot, events: Iterable[ChangeEvent]) -> Snapshot:
    """Replay ``events`` (as ``diff`` made them) onto ``old``; see the module doc for what comes back exactly."""
    states: dict[str, TunnelState] = _first_by_id(old.tunnels, lambda s: s.tunnel.id)
    edits: dict[str, _TunnelEdit] = {}
    fetched_at = old.fetched_at
    for e in events:
        fetched_at = e.at
        if e.kind in _NO_STATE:
            continue
        tid = e.tunnel_id
        if tid is None:
            raise ReplayError(f"{e.kind} event without a tunnel")
        if e.kind is EventKind.TUNNEL_ADDED:
            edits.pop(tid, None)
            states.pop(tid, None)
            states[tid] = e.after
        elif e.kind is EventKind.TUNNEL_REMOVED:
            if states.pop(tid, None) is None:
                raise ReplayError(f"tunnel {tid} is not in the snapshot")
            edits.pop(tid, None)
        else:
            if tid not in states:
                raise ReplayError(f"tunnel {tid} is not in the snapshot")
            if tid not in edits:
                edits[tid] = _TunnelEdit(states[tid])
            _apply_to_tunnel(edits[tid], e)
    tunnels = tuple(edits[tid].state() if tid in edits else state for tid, state in states.items())
    return Snapshot(old.account_id, fetched_at, tunnels, old.problems, old.account_name)


def replay_form(snapshot: Snapshot) -> dict[str, Any]:
    """What ``apply`` reproduces exactly, keyed by id so that order does not count (see the module doc)."""
    tunnels: dict[str, Any] = {}
    for state in snapshot.tunnels:
        if state.tunnel.id in tunnels:
            continue
        connectors = None
        if state.connectors is not None:
            connectors = {}
            for c in state.connectors:
                if c.id not in connectors:
                    conns: dict[str, Any] = {}
                    for conn in c.conns:
                        conns.setdefault(conn.id, conn.api_dict())
                    connectors[c.id] = {**_record_json(c, shell=True), "conns": conns}
        tunnels[state.tunnel.id] = {"tunnel": state.tunnel.api_dict(), "connectors": connectors}
    return {"account_id": snapshot.account_id, "tunnels": tunnels}
