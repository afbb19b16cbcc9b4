"""The one line each change event says to people: values formatted for reading (never a Python repr), API text
sanitised and bounded."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from tunneltop.changes.kinds import EventKind
from tunneltop.model.findings import Finding
from tunneltop.model.health import edge_summary
from tunneltop.model.records import Connection, Connector
from tunneltop.sanitize import clean

if TYPE_CHECKING:
    from tunneltop.changes.event import ChangeEvent


def rfc3339(moment: datetime) -> str:
    """``2025-03-01T12:00:05Z``: UTC, the way Cloudflare and the JSON outputs spell times (naive taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    """``value`` as JSON would hold it, for the compact JSON that objects are shown as."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def human(value: Any) -> str:
    """A value as a person reads it: ``-`` (none), ``true``, ``2025-03-01T12:00:05Z``, ``a, b``, or compact JSON for an
    object (an unknown field's value may be anything). Never a Python repr."""
    if value is None:
        return "-"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        if not items:
            return "(none)"
        if all(v is None or isinstance(v, bool | int | float | str | Enum | datetime) for v in items):
            return ", ".join(human(v) for v in items)
    if isinstance(value, BaseModel) and isinstance(getattr(value, "id", None), str):
        return str(value.id)  # type: ignore[attr-defined]
    return json.dumps(_plain(value), ensure_ascii=False, separators=(", ", ": "), default=str)


def short(value: str | None) -> str:
    return clean(value[:8] if value else value, 8)


def colo_counts(counts: Iterable[tuple[str, int]]) -> str:
    """``DFW`` for one colo, ``2xDFW, 1xLAX`` for several."""
    pairs = sorted(counts)
    if len(pairs) == 1:
        return clean(pairs[0][0], 12)
    return ", ".join(f"{n}x{clean(colo, 12)}" for colo, n in pairs)


def conns_summary(conns: list[Connection]) -> str:
    """``2xAMS, 1xFRA, 1 pending``: the active ones per colo (as ``cloudflared tunnel info``), then the pending."""
    pending = sum(1 for c in conns if c.is_pending_reconnect is True)
    parts = [edge_summary(conns)] if edge_summary(conns) else []
    if pending:
        parts.append(f"{pending} pending")
    return clean(", ".join(parts) or None, 80)


def _field(record: Any, name: str) -> Any:
    return getattr(record, name, None)  # declared fields and the API's unknown ones alike


def _conn_where(conn: Connection) -> str:
    return f"{clean(conn.colo_name, 12)} {clean(conn.origin_ip, 45)}"


def _conn_ids(e: ChangeEvent) -> str:
    return f"(conn {short(e.conn_id)}, connector {short(e.connector_id)})"


def _conn_line(verb: str) -> Callable[[ChangeEvent], str]:
    def line(e: ChangeEvent) -> str:
        conn = e.after if e.after is not None else e.before
        return f"{_conn_where(conn)} {verb} {_conn_ids(e)}"

    return line


def _change(name: str, old: Any, new: Any) -> str:
    return f"{clean(name, 30)} {clean(human(old), 40)} -> {clean(human(new), 40)}"


def _conn_changed(e: ChangeEvent) -> str:
    parts = []
    for name in e.changed() or ():
        old, new = _field(e.before, name), _field(e.after, name)
        if name == "is_pending_reconnect":
            name, old, new = "state", e.before.state, e.after.state
        parts.append(_change(name, old, new))
    return f"{_conn_where(e.after)} changed: {'; '.join(parts) or 'details'} {_conn_ids(e)}"


def _connector(e: ChangeEvent) -> str:
    return f"connector {short(e.connector_id)}"


def _values(what: str) -> Callable[[ChangeEvent], str]:
    def line(e: ChangeEvent) -> str:
        return f"{_connector(e)} {what}: {clean(human(e.before), 60)} -> {clean(human(e.after), 60)}"

    return line


def _features(e: ChangeEvent) -> str:
    old, new = set(e.before or ()), set(e.after or ())
    parts = [f"+{clean(f, 40)}" for f in sorted(new - old)] + [f"-{clean(f, 40)}" for f in sorted(old - new)]
    return f"{_connector(e)} features changed: {' '.join(parts) or 'reordered'}"


def _joined(e: ChangeEvent) -> str:
    c: Connector = e.after
    return f"{_connector(e)} joined ({clean(c.version, 20)}, {clean(c.arch, 20)}, edges {conns_summary(c.conns)})"


def _left(e: ChangeEvent) -> str:
    c: Connector = e.before
    count = len(c.conns)
    return f"{_connector(e)} left (had {count} connection{'s' if count != 1 else ''}: {conns_summary(c.conns)})"


def _connector_changed(e: ChangeEvent) -> str:
    parts = [_change(n, _field(e.before, n), _field(e.after, n)) for n in e.changed() or ()]
    return f"{_connector(e)} changed: {'; '.join(parts) or 'details'}"


def _tunnel_changed(e: ChangeEvent) -> str:
    parts = [_change(n, _field(e.before, n), _field(e.after, n)) for n in e.changed() or ()]
    return f"tunnel changed: {'; '.join(parts) or 'details'}"


def _colo_moved(e: ChangeEvent) -> str:
    left = Counter(p.before.colo_name for p in e.parts if p.kind is not EventKind.CONN_OPENED)
    opened = Counter(p.after.colo_name for p in e.parts if p.kind is EventKind.CONN_OPENED)
    count = sum(left.values())
    held = sum(1 for p in e.parts if p.kind is EventKind.CONN_PENDING)
    where = f"{colo_counts(left.items())}→{colo_counts(opened.items())}"
    text = f"{count} connection{'s' if count != 1 else ''} moved {where}"
    if held:
        old = ("the old one" if count == 1 else "the old ones") if held == count else f"{held} of the old ones"
        text += f", {old} held pending by the edge"
    return f"{text} ({_connector(e)})"


def _finding(e: ChangeEvent) -> str:
    finding: Finding = e.after if e.after is not None else e.before
    check, message = clean(finding.check, 40), clean(finding.message, 200)
    if e.kind is EventKind.FINDING_CLEARED:
        return f"finding {check} cleared: {message}"
    if isinstance(e.before, Finding) and e.before.severity is not finding.severity:
        check += f" now {finding.severity.value}"
    return f"finding {check}: {message} (hint: {clean(finding.hint, 200)})"


def _schema_drift(e: ChangeEvent) -> str:
    what = e.after
    fields = ", ".join(clean(f, 40) for f in what["fields"])
    records, tunnels = what["records"], what["tunnels"]
    plural = "s" if len(what["fields"]) != 1 else ""
    count = what["count"]
    scope = f"{count} {records if count != 1 else records[:-1]}" + (
        f" in {len(tunnels)} tunnels" if len(tunnels) > 1 and records != "tunnels" else ""
    )
    if what["state"] == "missing":
        return (
            f"schema drift: field{plural} {fields} missing from every {records[:-1]} ({scope}); "
            "shown as unknown until the API sends it again"
        )
    return f"schema drift: field{plural} {fields} now sent on every {records[:-1]} ({scope})"


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


DESCRIBE: dict[EventKind, Callable[[ChangeEvent], str]] = {
    EventKind.CONN_OPENED: _conn_line("opened"),
    EventKind.CONN_CLOSED: _conn_line("closed"),
    EventKind.CONN_PENDING: _conn_line("went pending"),
    EventKind.CONN_RECOVERED: _conn_line("recovered"),
    EventKind.CONN_CHANGED: _conn_changed,
    EventKind.COLO_MOVED: _colo_moved,
    EventKind.CONNECTOR_JOINED: _joined,
    EventKind.CONNECTOR_LEFT: _left,
    EventKind.CONNECTOR_RESTARTED: _values("restarted, run_at"),
    EventKind.CONNECTOR_UPGRADED: _values("version"),
    EventKind.CONFIG_CHANGED: _values("config version"),
    EventKind.FEATURES_CHANGED: _features,
    EventKind.CONNECTOR_CHANGED: _connector_changed,
    EventKind.TUNNEL_ADDED: lambda e: f"tunnel added ({e.after.health.value})",
    EventKind.TUNNEL_REMOVED: lambda e: "tunnel removed (deleted, or no longer visible)",
    EventKind.TUNNEL_HEALTH: lambda e: f"health {human(e.before)} -> {human(e.after)}",
    EventKind.TUNNEL_CHANGED: _tunnel_changed,
    EventKind.TUNNEL_FETCH_FAILED: lambda e: f"connections could not be fetched: {clean(e.after, 200)}",
    EventKind.TUNNEL_FETCH_RECOVERED: _fetch_recovered,
    EventKind.TUNNEL_STALE: lambda e: f"connections could not be refreshed (the last ones read stay shown): "
    f"{clean(e.after, 200)}",
    EventKind.TUNNEL_REFRESHED: lambda e: "connections refreshed again",
    EventKind.FINDING_RAISED: _finding,
    EventKind.FINDING_CLEARED: _finding,
    EventKind.SCHEMA_DRIFT: _schema_drift,
    EventKind.POLL_FAILED: lambda e: f"poll failed: {clean(e.after, 300)}",
    EventKind.POLL_RECOVERED: _poll_recovered,
}
