"""Replay: ``apply(old, diff(old, new))`` rebuilds ``new`` as far as ``replay_form`` says (rules in changes.events)."""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

from tunneltop.changes.diff import CONNECTOR_ASPECTS, first_by_id
from tunneltop.changes.event import ChangeEvent, flatten, record_json
from tunneltop.changes.kinds import EventKind
from tunneltop.model.records import Connection, Connector, Tunnel
from tunneltop.model.snapshot import Snapshot, TunnelState


class ReplayError(ValueError):
    """An event does not fit the snapshot it is replayed onto (a wrong base snapshot, or events out of order)."""


class _TunnelEdit:
    __slots__ = ("connectors", "conns", "error", "problems", "tunnel")

    def __init__(self, state: TunnelState) -> None:
        self.tunnel: Tunnel = state.tunnel
        self.connectors: dict[str, Connector] | None = (
            None if state.connectors is None else first_by_id(state.connectors, operator.attrgetter("id"))
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
            self.conns[cid] = first_by_id(connector.conns, operator.attrgetter("id"))
        return self.conns[cid]

    def state(self) -> TunnelState:
        connectors = None
        if self.connectors is not None:
            connectors = tuple(
                c.model_copy(update={"conns": list(self.conns[cid].values())}) if cid in self.conns else c
                for cid, c in self.connectors.items()
            )
        return TunnelState(self.tunnel, connectors, self.problems, self.error)


_ASPECT_FIELD = {kind: name for name, kind in CONNECTOR_ASPECTS}
_CONN_REPLACING = frozenset(
    {EventKind.CONN_OPENED, EventKind.CONN_PENDING, EventKind.CONN_RECOVERED, EventKind.CONN_CHANGED}
)
# Replayed as nothing: derived (health, findings), poll-wide, or about how fresh kept connections are (not what
# they are).
_NO_STATE = frozenset(
    {
        EventKind.TUNNEL_HEALTH,
        EventKind.TUNNEL_STALE,
        EventKind.TUNNEL_REFRESHED,
        EventKind.FINDING_RAISED,
        EventKind.FINDING_CLEARED,
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
        edit.connectors, edit.conns, edit.error = first_by_id(e.after, operator.attrgetter("id")), {}, None
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
    """Replay ``events`` (as ``diff`` made them) onto ``old``; see changes.events for what comes back exactly."""
    states: dict[str, TunnelState] = first_by_id(old.tunnels, lambda s: s.tunnel.id)
    edits: dict[str, _TunnelEdit] = {}
    fetched_at = old.fetched_at
    for group in events:
        fetched_at = group.at
        for e in flatten((group,)):  # an event made of others (a failover, drift) is replayed part by part
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
    """What ``apply`` reproduces exactly, keyed by id so that order does not count (see changes.events)."""
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
                    connectors[c.id] = {**record_json(c, shell=True), "conns": conns}
        tunnels[state.tunnel.id] = {"tunnel": state.tunnel.api_dict(), "connectors": connectors}
    return {"account_id": snapshot.account_id, "tunnels": tunnels}
