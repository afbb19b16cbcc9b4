"""Hand-built snapshots (a tunnel, a connector, a connection, each with overridable fields) and ``changes``: the
change engine's diff, checked on the way (replay exact, JSON serialisable, every line printable)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tunneltop.changes.events import ChangeEvent, apply, diff, replay_form
from tunneltop.model.records import Connection, Connector, Tunnel
from tunneltop.model.snapshot import Snapshot, TunnelState

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=5)
CONN_ID = "1a2b3c4d-0000-4000-8000-000000000001"
CONNECTOR_ID = "9f8e7d6c-0000-4000-8000-000000000002"


def conn(cid: str = CONN_ID, colo: str = "DFW", pending: bool | None = False, **extra: Any) -> Connection:
    fields: dict[str, Any] = {
        "id": cid,
        "uuid": cid,
        "client_id": CONNECTOR_ID,
        "client_version": "2025.1.0",
        "colo_name": colo,
        "origin_ip": "203.0.113.7",
        "opened_at": T0 - timedelta(hours=1),
        "is_pending_reconnect": pending,
    }
    fields.update(extra)
    return Connection(**fields)


def connector(cid: str = CONNECTOR_ID, conns: list[Connection] | None = None, **extra: Any) -> Connector:
    fields: dict[str, Any] = {
        "id": cid,
        "arch": "linux_amd64",
        "version": "2025.1.0",
        "run_at": T0 - timedelta(days=1),
        "config_version": 3,
        "features": ["ha-origin", "serialized_headers"],
        "conns": [conn()] if conns is None else conns,
    }
    fields.update(extra)
    return Connector(**fields)


def tunnel(tid: str = "t-web", name: str = "web-prod", status: str = "healthy", **extra: Any) -> Tunnel:
    return Tunnel(id=tid, name=name, status=status, **extra)


def state(
    t: Tunnel | None = None, connectors: tuple[Connector, ...] | None = (), error: str | None = None
) -> TunnelState:
    return TunnelState(t or tunnel(), connectors, (), error)


def snap(*states: TunnelState, at: datetime = T0) -> Snapshot:
    return Snapshot("acc", at, tuple(states))


def one(connectors: tuple[Connector, ...] | None, t: Tunnel | None = None, at: datetime = T0) -> Snapshot:
    return snap(state(t, connectors, None if connectors is not None else "HTTP 502"), at=at)


def changes(old: Snapshot, new: Snapshot) -> list[ChangeEvent]:
    """diff, checked on the way: replay is exact, JSON is serialisable, every line describes itself."""
    events = diff(old, new)
    assert replay_form(apply(old, events)) == replay_form(new)
    json.dumps([e.to_json() for e in events], ensure_ascii=True)
    assert all(e.describe().isprintable() for e in events)
    return events


def kinds(events: list[ChangeEvent]) -> list[str]:
    return [e.kind.value for e in events]
