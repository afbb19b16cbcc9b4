"""The diff of two snapshots into change events (its rules are in ``tunneltop.changes.events``' docstring)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from datetime import datetime
from itertools import chain, compress
from typing import Any

from pydantic import BaseModel

from tunneltop.changes.event import ChangeEvent
from tunneltop.changes.grouping import group
from tunneltop.changes.kinds import FINDING_SEVERITY, FIXED_SEVERITY, HEALTH_SEVERITY, EventKind, Severity
from tunneltop.model.findings import Finding
from tunneltop.model.records import Connection, Connector
from tunneltop.model.snapshot import Snapshot, TunnelState

CONNECTOR_ASPECTS: tuple[tuple[str, EventKind], ...] = (
    ("run_at", EventKind.CONNECTOR_RESTARTED),
    ("version", EventKind.CONNECTOR_UPGRADED),
    ("config_version", EventKind.CONFIG_CHANGED),
    ("features", EventKind.FEATURES_CHANGED),
)
_CONNECTOR_OTHER = tuple(
    name for name in Connector.model_fields if name not in {"id", "conns", *(a for a, _ in CONNECTOR_ASPECTS)}
)
_connector_other = operator.attrgetter(*_CONNECTOR_OTHER)


def _closed_severity(before: Connection) -> Severity:
    # An active connection closing is a loss; a pending one expiring was already reported when it went pending.
    return Severity.WARNING if before.state == "active" else Severity.INFO


def _same_record(a: BaseModel, b: BaseModel) -> bool:
    # Cheaper than BaseModel.__eq__ on the hot path: these models keep only fields and extras.
    return a is b or (a.__dict__ == b.__dict__ and a.__pydantic_extra__ == b.__pydantic_extra__)


# The hot path compares whole tunnels at C speed (attrgetter, map, list equality) and looks closer only when they
# differ: a poll where 1% of connections changed leaves ~99% of tunnels on this path.
_connector_shell = operator.attrgetter(*(n for n in Connector.model_fields if n != "conns"), "__pydantic_extra__")
_conn_key = operator.attrgetter("__dict__", "__pydantic_extra__")
_conns_of = operator.attrgetter("conns")
_id = operator.attrgetter("id")


def _same_conns(a: list[Connection], b: list[Connection]) -> bool:
    return a is b or (len(a) == len(b) and list(map(_conn_key, a)) == list(map(_conn_key, b)))


def _same_connectors(a: tuple[Connector, ...], b: tuple[Connector, ...]) -> bool:
    if a is b:
        return True
    if len(a) != len(b):
        return False
    # Parsing hands back an unchanged connector as the very same object: only the others are compared field by
    # field. At 100,000 connections a failover compared every connection's fields, 0.6 s in calls that do not let
    # the screen's thread have the GIL meanwhile.
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not y]
    if not pairs:
        return True
    x, y = pairs[0]
    if _connector_shell(x) != _connector_shell(y) or not _same_conns(x.conns, y.conns):
        return False  # the usual answer when one is not the same object: told by the first, not all of them
    olds, news = [x for x, _ in pairs], [y for _, y in pairs]
    if list(map(_connector_shell, olds)) != list(map(_connector_shell, news)):
        return False
    old_conns = list(map(_conn_key, chain.from_iterable(map(_conns_of, olds))))
    return old_conns == list(map(_conn_key, chain.from_iterable(map(_conns_of, news))))


def first_by_id(items: Iterable[Any], key: Callable[[Any], str]) -> dict[str, Any]:
    """Each item by its id, the first where an id is listed twice."""
    listed = items if isinstance(items, list | tuple) else list(items)
    out: dict[str, Any] = dict(zip(map(key, listed), listed, strict=True))  # an id listed twice keeps its last
    if len(out) == len(listed):
        return out
    out = {}
    for item in listed:
        out.setdefault(key(item), item)
    return out


def _findings_by_key(findings: Iterable[Finding]) -> dict[tuple[str, str | None], Finding]:
    out: dict[tuple[str, str | None], Finding] = {}
    for finding in findings:
        out.setdefault((finding.check, finding.connector_id), finding)
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
                severity or FIXED_SEVERITY[kind],
                self.tunnel_id,
                self.tunnel_name,
                connector_id,
                conn_id,
                colo,
                before,
                after,
            )
        )

    def first_sight(self, new: Snapshot) -> None:
        for state in first_by_id(new.tunnels, lambda s: s.tunnel.id).values():
            self.tunnel_id, self.tunnel_name = state.tunnel.id, state.tunnel.name
            self.findings(None, state)

    def snapshots(self, old: Snapshot, new: Snapshot) -> None:
        old_by_id = first_by_id(old.tunnels, lambda s: s.tunnel.id)
        new_by_id = first_by_id(new.tunnels, lambda s: s.tunnel.id)
        for tid, state in old_by_id.items():
            if tid not in new_by_id:
                self.tunnel_id, self.tunnel_name = tid, state.tunnel.name
                self.emit(EventKind.TUNNEL_REMOVED, before=state)
        for tid, state in new_by_id.items():
            self.tunnel_id, self.tunnel_name = tid, state.tunnel.name
            prev = old_by_id.get(tid)
            if prev is None:
                self.emit(EventKind.TUNNEL_ADDED, after=state)
                self.findings(None, state)
            elif prev is not state:
                self.tunnel(prev, state)
        self.events = group(self.events, old_by_id, new_by_id)

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
        self.findings(prev, state)
        if len(self.events) > mark and prev.health is not state.health:
            severity = HEALTH_SEVERITY.get(state.health, Severity.WARNING)
            self.emit(EventKind.TUNNEL_HEALTH, prev.health, state.health, severity=severity)

    def findings(self, prev: TunnelState | None, state: TunnelState) -> None:
        if prev is not None and (prev.findings is state.findings or prev.findings == state.findings):
            return
        old = _findings_by_key(prev.findings) if prev is not None else {}
        new = _findings_by_key(state.findings)
        # A failed fetch proves nothing: what was found stays found until connections are read again. A connector
        # that left takes its findings with it (its connector_left says so; "cleared" would read as fixed).
        if not (state.connectors is None and state.error is not None):
            present = {c.id for c in state.connectors or ()}
            for key, finding in old.items():
                if key not in new and (finding.connector_id is None or finding.connector_id in present):
                    self.emit(EventKind.FINDING_CLEARED, before=finding, connector_id=finding.connector_id)
        for key, finding in new.items():
            was = old.get(key)
            if was is None or was.severity is not finding.severity:
                severity = FINDING_SEVERITY.get(finding.severity, Severity.WARNING)
                self.emit(EventKind.FINDING_RAISED, was, finding, connector_id=finding.connector_id, severity=severity)

    def connectors(self, old: tuple[Connector, ...], new: tuple[Connector, ...]) -> None:
        if _same_connectors(old, new):
            return
        old_by_id = first_by_id(old, _id)
        new_by_id = first_by_id(new, _id)
        if old_by_id.keys() - new_by_id.keys():
            for cid, connector in old_by_id.items():
                if cid not in new_by_id:
                    self.emit(EventKind.CONNECTOR_LEFT, before=connector, connector_id=cid)
        # Parsing hands back an unchanged connector as the same object: only the others are looked at one by one
        # (a failover at 100,000 connections changes a few thousand of 25,000), picked out at C speed.
        news = new_by_id.values()
        olds = list(map(old_by_id.get, new_by_id))
        for cid, prev, connector in compress(zip(new_by_id, olds, news, strict=True), map(operator.is_not, olds, news)):
            if prev is None:
                self.emit(EventKind.CONNECTOR_JOINED, after=connector, connector_id=cid)
            else:
                self.connector(prev, connector)

    def connector(self, prev: Connector, connector: Connector) -> None:
        cid = connector.id
        if _connector_shell(prev) != _connector_shell(connector):
            for name, kind in CONNECTOR_ASPECTS:
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
        old_by_id = first_by_id(old, _id)
        new_by_id = first_by_id(new, _id)
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
    """The changes from ``old`` to ``new``, each stamped with ``new.fetched_at``. With ``old`` None (the first
    poll, the baseline): only the findings it raises."""
    if old is new:
        return []
    differ = _Differ(new.fetched_at)
    if old is None:
        differ.first_sight(new)
    else:
        differ.snapshots(old, new)
    return differ.events


def without_first_sight(events: list[ChangeEvent]) -> list[ChangeEvent]:
    """The overview fetches connections a few tunnels at a time: a tunnel's first fetch (no error before) is
    not a recovery, and the health it then shows is not a change. Dropping them keeps warm-up out of the log
    (an account of 1,000 tunnels would otherwise log 2,000 such events). The findings it raises stay: first
    sight is when they are news."""
    first = {e.tunnel_id for e in events if e.kind is EventKind.TUNNEL_FETCH_RECOVERED and e.before is None}
    if not first:
        return events
    return [
        e
        for e in events
        if not (e.tunnel_id in first and e.kind in (EventKind.TUNNEL_FETCH_RECOVERED, EventKind.TUNNEL_HEALTH))
    ]
