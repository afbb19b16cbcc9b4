"""The kinds of change event and their severities."""

from __future__ import annotations

from enum import StrEnum

from tunneltop.model.findings import Severity as FindingSeverity
from tunneltop.model.health import Health


class EventKind(StrEnum):
    CONN_OPENED = "conn_opened"
    CONN_CLOSED = "conn_closed"
    CONN_PENDING = "conn_pending"
    CONN_RECOVERED = "conn_recovered"
    CONN_CHANGED = "conn_changed"
    COLO_MOVED = "colo_moved"
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
    FINDING_RAISED = "finding_raised"
    FINDING_CLEARED = "finding_cleared"
    SCHEMA_DRIFT = "schema_drift"
    POLL_FAILED = "poll_failed"
    POLL_RECOVERED = "poll_recovered"


class Severity(StrEnum):
    INFO = "info"
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


# Events made of other events (their ``parts``): one line for people, the parts kept for JSON and replay.
GROUP_KINDS = frozenset({EventKind.COLO_MOVED, EventKind.SCHEMA_DRIFT})

FIXED_SEVERITY: dict[EventKind, Severity] = {
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
    EventKind.FINDING_CLEARED: Severity.INFO,
    EventKind.POLL_FAILED: Severity.ERROR,
    EventKind.POLL_RECOVERED: Severity.OK,
}

HEALTH_SEVERITY: dict[Health, Severity] = {
    Health.HEALTHY: Severity.OK,
    Health.DEGRADED: Severity.WARNING,
    Health.UNKNOWN: Severity.WARNING,
    Health.DOWN: Severity.ERROR,
    # Idle is neutral (issue 13): an inactive tunnel that should run says so through a finding of its own.
    Health.INACTIVE: Severity.INFO,
}

# A finding raised is as grave as the finding; the event scale's top (error) stands for critical, and the event's
# JSON carries the finding itself with its own severity word.
FINDING_SEVERITY: dict[FindingSeverity, Severity] = {
    FindingSeverity.WARNING: Severity.WARNING,
    FindingSeverity.CRITICAL: Severity.ERROR,
}
