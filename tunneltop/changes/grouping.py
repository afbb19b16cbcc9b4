"""Events made of other events, so that one happening reads as one line: a failover (``colo_moved``) and schema
drift (``schema_drift``). Each keeps the per-record events it stands for as its ``parts``, which its JSON
carries and replay applies; the parts are never log lines of their own.

Pairing rule of a failover: within one connector, in one poll. A connection leaves its colo when it closes or
goes pending (the edge lists a dropped connection as pending for minutes, so a real failover shows its old
connections pending, the simulator's instant one closed); one already pending that closes left earlier. A colo's
leavers and opens pair up first (a reconnect in place is not a move); what is left, connections that left colos
that lost some and opened in colos that gained some, moved: as many as the smaller side, in the diff's order.
Several colos at once make one event ("4 connections moved 2xDFW, 2xLAX→3xORD, 1xSEA"); leavers or opens beyond
the pairs stay events of their own (a loss, or a new connection). Connections leaving on one connector while
others open on another are two hosts doing two things and are not paired.

Drift rule: the unit is one answer: the connections endpoint's for a tunnel (its connectors and their connections),
or the tunnel list. A field missing from every connection (or every connector, or every tunnel) of that answer,
which the last answer had, is drift, not a change: the records whose only change is that field (now missing)
become the parts of one ``schema_drift`` notice for the whole poll (per direction and kind of record), and so does
a field now sent on every record that none had (its return, or a field Cloudflare added), except for a connection
that turns out pending, which is news. Missing means absent from the JSON, not ``null``: a null is a value the API
chose to send.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from pydantic import BaseModel

from tunneltop.changes.event import ChangeEvent
from tunneltop.changes.kinds import EventKind, Severity
from tunneltop.model.records import Connector
from tunneltop.model.snapshot import TunnelState

_RANK = {Severity.INFO: 0, Severity.OK: 1, Severity.WARNING: 2, Severity.ERROR: 3}
_RECORD_CHANGES = frozenset({EventKind.CONN_CHANGED, EventKind.CONN_PENDING, EventKind.CONN_RECOVERED})
# A connector's aspect events carry the values, not the records: which field each is about.
_CONNECTOR_FIELD = {
    EventKind.CONNECTOR_RESTARTED: "run_at",
    EventKind.CONNECTOR_UPGRADED: "version",
    EventKind.CONFIG_CHANGED: "config_version",
    EventKind.FEATURES_CHANGED: "features",
}
_CONNECTOR_CHANGES = frozenset({*_CONNECTOR_FIELD, EventKind.CONNECTOR_CHANGED})
_MISSING, _SENT = "missing", "sent"
# A connection leaving its colo: closed, or dropped and held by the edge as pending a reconnect (the API lists a
# dropped connection as pending for minutes, so a real failover shows its old connections pending, not closed).
_DROPS = frozenset({EventKind.CONN_CLOSED, EventKind.CONN_PENDING})
_OPENED = EventKind.CONN_OPENED  # read once: an enum member looked up on its class costs a call each time


def _present(record: BaseModel) -> set[str]:
    return set(record.model_fields_set) | set(record.__pydantic_extra__ or ())


def _records(state: TunnelState | None, records: str) -> list[BaseModel]:
    if state is None:
        return []
    if records == "connectors":
        return list(state.connectors or ())
    return [c for k in state.connectors or () for c in k.conns]


def _same_shape(a: BaseModel, b: BaseModel) -> bool:
    if a.__pydantic_fields_set__ != b.__pydantic_fields_set__:
        return False
    extra_a, extra_b = a.__pydantic_extra__, b.__pydantic_extra__
    return extra_a is extra_b or (extra_a or {}).keys() == (extra_b or {}).keys()


def _worst(events: list[ChangeEvent]) -> Severity:
    return max((e.severity for e in events), key=_RANK.__getitem__)


class _Grouper:
    __slots__ = ("events", "slots", "taken")

    def __init__(self, events: list[ChangeEvent]) -> None:
        self.events = events
        self.slots: dict[int, ChangeEvent] = {}  # the index of a group's first part -> the group
        self.taken: set[int] = set()

    def group(self, indexes: list[int], make: Callable[[list[ChangeEvent]], ChangeEvent]) -> None:
        indexes.sort()
        self.slots[indexes[0]] = make([self.events[i] for i in indexes])
        self.taken.update(indexes)

    def result(self) -> list[ChangeEvent]:
        if not self.slots:
            return self.events
        out: list[ChangeEvent] = []
        for i, event in enumerate(self.events):
            if i in self.slots:
                out.append(self.slots[i])
            if i not in self.taken:
                out.append(event)
        return out

    # -- schema drift ---------------------------------------------------------------------------------------------

    def drift(self, old: dict[str, TunnelState], new: dict[str, TunnelState]) -> None:
        verdicts: dict[tuple[str, str, str, str], bool] = {}
        by_id: dict[tuple[bool, str], dict[str, Connector]] = {}

        def connector(now: bool, tunnel_id: str, connector_id: str | None) -> Connector | None:
            if (now, tunnel_id) not in by_id:
                state = (new if now else old).get(tunnel_id)
                by_id[now, tunnel_id] = {c.id: c for c in reversed((state.connectors or ()) if state else ())}
            return by_id[now, tunnel_id].get(connector_id or "")

        def lacking(now: bool, records: str, tunnel_id: str, name: str, lack: bool) -> bool:
            states = new if now else old
            if records == "tunnels":  # one answer: the tunnel list
                found: list[BaseModel] = [s.tunnel for s in states.values()]
            else:
                found = _records(states.get(tunnel_id), records)
            return bool(found) and all((name not in _present(r)) is lack for r in found)

        def holds(direction: str, records: str, tunnel_id: str, name: str) -> bool:
            key = (direction, records, "" if records == "tunnels" else tunnel_id, name)
            if key not in verdicts:
                if direction == _MISSING:
                    verdicts[key] = lacking(True, records, tunnel_id, name, True)
                else:
                    verdicts[key] = lacking(False, records, tunnel_id, name, True) and lacking(
                        True, records, tunnel_id, name, False
                    )
            return verdicts[key]

        found: dict[tuple[str, str], tuple[list[int], set[str], dict[str, None]]] = {}
        for i, e in enumerate(self.events):
            if e.tunnel_id is None:
                continue
            if e.kind in _RECORD_CHANGES:
                records, was, now = "connections", e.before, e.after
            elif e.kind is EventKind.TUNNEL_CHANGED:
                records, was, now = "tunnels", e.before, e.after
            elif e.kind in _CONNECTOR_CHANGES:
                records = "connectors"
                was, now = connector(False, e.tunnel_id, e.connector_id), connector(True, e.tunnel_id, e.connector_id)
                if was is None or now is None:
                    continue
            else:
                continue
            if _same_shape(was, now):
                continue  # the usual case (a state flip): no field came or went, so no drift; cheap to tell
            before, after = _present(was), _present(now)
            aspect = _CONNECTOR_FIELD.get(e.kind)
            fields = {aspect} if aspect is not None else set(e.changed() or ())
            if fields and fields <= before - after:
                direction = _MISSING
            elif fields and fields <= after - before and e.kind is not EventKind.CONN_PENDING:
                direction = _SENT
            else:
                continue
            if all(holds(direction, records, e.tunnel_id, name) for name in fields):
                indexes, names, tunnels = found.setdefault((direction, records), ([], set(), {}))
                indexes.append(i)
                names.update(fields)
                tunnels[e.tunnel_id] = None
        for (direction, records), (indexes, names, tunnels) in found.items():
            make = partial(_drift_event, direction=direction, records=records, fields=names, tunnels=list(tunnels))
            self.group(indexes, make)

    # -- failover -------------------------------------------------------------------------------------------------

    def moves(self) -> None:
        # Counted with plain dicts, not Counters: a failover at 100,000 connections is thousands of connectors of a
        # few connections each, where building a Counter costs more than counting.
        events, taken = self.events, self.taken
        buckets: dict[tuple[str | None, str | None], tuple[list[int], list[int]]] = {}
        for i, e in enumerate(events):
            kind = e.kind
            if kind in _DROPS:
                if not e.before.colo_name or e.before.is_pending_reconnect is True or i in taken:
                    continue
                side = 0
            elif kind is _OPENED:
                if not e.after.colo_name or i in taken:
                    continue
                side = 1
            else:
                continue
            where = (e.tunnel_id, e.connector_id)
            bucket = buckets.get(where)
            if bucket is None:
                bucket = buckets[where] = ([], [])
            bucket[side].append(i)
        for closes, opens in buckets.values():
            if not closes or not opens:
                continue
            if len(closes) == 1 and len(opens) == 1:  # the usual failover of a connector: one moved, or none
                if events[closes[0]].before.colo_name != events[opens[0]].after.colo_name:
                    self.group([closes[0], opens[0]], _move_event)
                continue
            closed_in = [events[i].before.colo_name for i in closes]
            opened_in = [events[i].after.colo_name for i in opens]
            if len(closed_in) == len(opened_in) and sorted(closed_in) == sorted(opened_in):
                continue  # the usual case: reconnects in place, nothing moved (and cheaper than counting)
            closed, opened = _counts(closed_in), _counts(opened_in)
            lost = {c: n - opened.get(c, 0) for c, n in closed.items() if n > opened.get(c, 0)}  # what each lost net
            gained = {c: n - closed.get(c, 0) for c, n in opened.items() if n > closed.get(c, 0)}
            moved = min(sum(lost.values()), sum(gained.values()))
            if moved:
                picked = _pick(closes, closed_in, lost, moved) + _pick(opens, opened_in, gained, moved)
                self.group(picked, _move_event)


def _counts(colos: list[str]) -> dict[str, int]:
    """How many of each, in order of first appearance (as a Counter would hold them)."""
    out: dict[str, int] = {}
    for colo in colos:
        out[colo] = out.get(colo, 0) + 1
    return out


def _pick(indexes: list[int], colos: list[str], quota: dict[str, int], count: int) -> list[int]:
    """The first ``count`` of ``indexes`` (whose colos are ``colos``) that fit ``quota``, in their order."""
    left = dict(quota)
    out: list[int] = []
    for i, colo in zip(indexes, colos, strict=True):
        if left.get(colo, 0) > 0:
            left[colo] -= 1
            out.append(i)
            if len(out) == count:
                break
    return out


def _move_event(parts: list[ChangeEvent]) -> ChangeEvent:
    first = parts[0]
    closed: dict[str, int] = {}
    opened: dict[str, int] = {}
    for part in parts:  # each is a connection that left (closed or pending) or opened
        if part.kind is _OPENED:
            colo = part.after.colo_name
            opened[colo] = opened.get(colo, 0) + 1
        elif part.kind in _DROPS:
            colo = part.before.colo_name
            closed[colo] = closed.get(colo, 0) + 1
    return ChangeEvent(
        first.at,
        EventKind.COLO_MOVED,
        _worst(parts),
        first.tunnel_id,
        first.tunnel_name,
        first.connector_id,
        colo=next(iter(opened)) if len(opened) == 1 else None,
        before=closed if len(closed) == 1 else dict(sorted(closed.items())),
        after=opened if len(opened) == 1 else dict(sorted(opened.items())),
        parts=tuple(parts),
    )


def _drift_event(
    parts: list[ChangeEvent], direction: str, records: str, fields: set[str], tunnels: list[str]
) -> ChangeEvent:
    first = parts[0]
    one = len(tunnels) == 1
    after: dict[str, Any] = {
        "state": direction,
        "records": records,
        "fields": sorted(fields),
        "count": len({(p.tunnel_id, p.connector_id, p.conn_id) for p in parts}),  # records, not events
        "tunnels": tunnels,
    }
    return ChangeEvent(
        first.at,
        EventKind.SCHEMA_DRIFT,
        Severity.WARNING if direction == _MISSING else Severity.OK,
        first.tunnel_id if one else None,
        first.tunnel_name if one else None,
        after=after,
        parts=tuple(parts),
    )


def group(events: list[ChangeEvent], old: dict[str, TunnelState], new: dict[str, TunnelState]) -> list[ChangeEvent]:
    """``events`` (one diff's, in its order) with drift and failovers each made one event, placed where its first
    part was. ``old``/``new``: the two snapshots' tunnels by id."""
    if not events:
        return events
    grouper = _Grouper(events)
    grouper.drift(old, new)
    grouper.moves()
    return grouper.result()
