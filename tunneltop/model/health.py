"""Small pure helpers over the models: edge summaries, ages, a health verdict per tunnel, and how tunnels rank.

``Health`` is what the API's status and the connections say, nothing more (it is what events, metrics and the
JSON's ``"health"`` report). What tunneltop concludes beyond it, the findings (model/rules.py), joins it in two
places: ``rank`` (worst first: how tunnels are sorted and the header's verdict) and ``Status`` (the monitoring
plugin's OK / WARNING / CRITICAL / UNKNOWN, and ``--once``'s exit status).
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import chain

from tunneltop.model.findings import Finding, Severity
from tunneltop.model.records import Connection, Connector, Tunnel


class Health(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"
    INACTIVE = "inactive"
    UNKNOWN = "unknown"


# Worst first: used to sort tunnels and to pick an overall verdict. Inactive (created, never run) comes last, as
# neutral as Cloudflare's grey: a retired tunnel must not outrank an incident. An inactive tunnel the operator
# requires to run gets a critical finding instead, which ranks it with the degraded ones (see ``rank``).
HEALTH_ORDER: dict[Health, int] = {
    Health.UNKNOWN: 0,
    Health.DOWN: 1,
    Health.DEGRADED: 2,
    Health.HEALTHY: 4,
    Health.INACTIVE: 5,
}
# Between degraded and healthy: a tunnel whose worst finding is a warning.
WARNING_RANK = 3


_SEVERITY = operator.attrgetter("severity")
_PENDING = operator.attrgetter("is_pending_reconnect")
_CONNS = operator.attrgetter("conns")


def worst_severity(findings: Iterable[Finding]) -> Severity | None:
    """CRITICAL if any finding is, else WARNING if there is any, else None. Read at C speed: a fleet on an old
    cloudflared has a warning per connector (25,000 at 100,000 connections), and the rank, the status and the
    header's figures each ask."""
    severities = list(map(_SEVERITY, findings))
    if not severities:
        return None
    return Severity.CRITICAL if Severity.CRITICAL in severities else Severity.WARNING


def rank(health: Health, findings: Iterable[Finding] = ()) -> int:
    """Where a tunnel sorts, worst first: unknown, down, degraded or any critical finding, warning findings,
    healthy, inactive."""
    base = HEALTH_ORDER[health]
    severity = worst_severity(findings)
    if severity is Severity.CRITICAL:
        return min(base, HEALTH_ORDER[Health.DEGRADED])
    if severity is Severity.WARNING:
        return min(base, WARNING_RANK)
    return base


class Status(StrEnum):
    """A monitoring plugin's verdict (Nagios plugin guidelines), worst last in exit-code order."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES[self]


_EXIT_CODES = {Status.OK: 0, Status.WARNING: 1, Status.CRITICAL: 2, Status.UNKNOWN: 3}


def tunnel_status(health: Health, findings: Iterable[Finding] = ()) -> Status:
    """Unknown health is UNKNOWN; down or a critical finding CRITICAL; degraded or a warning finding WARNING;
    healthy and inactive (neutral: an inactive tunnel that must run has a critical finding) OK."""
    if health is Health.UNKNOWN:
        return Status.UNKNOWN
    severity = worst_severity(findings)
    if health is Health.DOWN or severity is Severity.CRITICAL:
        return Status.CRITICAL
    if health is Health.DEGRADED or severity is Severity.WARNING:
        return Status.WARNING
    return Status.OK


def worst_status(statuses: Iterable[Status]) -> Status:
    """The overall verdict: UNKNOWN beats CRITICAL (nothing confirms the rest), which beats WARNING, then OK."""
    return max(statuses, key=lambda s: s.exit_code, default=Status.OK)


def active_conns(connector: Connector) -> list[Connection]:
    return [c for c in connector.conns if c.is_pending_reconnect is False]


def pending_conns(connector: Connector) -> list[Connection]:
    return [c for c in connector.conns if c.is_pending_reconnect is True]


def edge_summary(conns: Iterable[Connection]) -> str:
    """Per-colo counts as ``cloudflared tunnel info`` prints them: ``2xDFW, 2xLAX``; pending ones left out."""
    counts = Counter(c.colo_name or "?" for c in conns if c.is_pending_reconnect is not True)
    return ", ".join(f"{n}x{colo}" for colo, n in sorted(counts.items()))


def origin_ips(connector: Connector) -> list[str]:
    """Distinct origin IPs of a connector, in first-seen order."""
    return list(dict.fromkeys(c.origin_ip for c in connector.conns if c.origin_ip))


def format_age(delta: timedelta | None) -> str:
    """A compact age: ``45s``, ``3m05s``, ``3h12m``, ``2d04h``; ``-`` when unknown."""
    if delta is None:
        return "-"
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def age_changes_at(since: datetime, now: datetime) -> datetime:
    """When ``format_age(now - since)`` next reads differently: the next second under an hour, then the next
    minute, then the next hour (a table redraws its clock columns only then)."""
    seconds = max(0, int((now - since).total_seconds()))
    step = 1 if seconds < 3600 else 60 if seconds < 86400 else 3600
    return since + timedelta(seconds=(seconds // step + 1) * step)


def age(since: datetime | None, now: datetime) -> timedelta | None:
    if since is None:
        return None
    return now - since


def tunnel_health(tunnel: Tunnel, connectors: Sequence[Connector] | None) -> Health:
    """A verdict from the API's status and what the connections show.

    ``connectors`` is None when they could not be fetched: the verdict is then unknown, whatever the API's
    status says, since nothing confirms it (``--once`` exits 3 rather than reporting a guess). Any pending
    reconnect makes a tunnel degraded even while Cloudflare still calls it healthy: it is what an operator
    watching an incident needs to see.
    """
    if connectors is None:
        return Health.UNKNOWN
    return _verdict((tunnel.status or "").lower(), connectors)


def counted_health(tunnel: Tunnel, connectors: Sequence[Connector] | None, active: int, pending: int) -> Health:
    """``tunnel_health`` from counts its caller has of the connections, active and pending (TunnelState's), rather
    than another pass over every one of them (at 100,000 connections, each pass reads 100,000 records)."""
    if connectors is None:
        return Health.UNKNOWN
    return _verdict_of((tunnel.status or "").lower(), connectors, active, pending)


def connector_health(connector: Connector) -> Health:
    """A connector's own verdict: the tunnel rule applied to it alone, with no status from the API."""
    return _verdict("", (connector,))


def _verdict(status: str, connectors: Sequence[Connector]) -> Health:
    # Every connection's flag in one pass at C speed (100,000 connections: a generator per question took 50 ms).
    # StrictBool: each is True, False or None, so counting equals counts what ``is`` would.
    flags = list(map(_PENDING, chain.from_iterable(map(_CONNS, connectors))))
    return _verdict_of(status, connectors, flags.count(False), flags.count(True))


def _verdict_of(status: str, connectors: Sequence[Connector], active: int, pending: int) -> Health:
    if not connectors:
        return Health.INACTIVE if status == "inactive" else Health.DOWN
    if pending or status == "degraded":
        return Health.DEGRADED
    if active:
        return Health.HEALTHY
    if any(map(len, map(_CONNS, connectors))):
        # The API left out is_pending_reconnect: the connections can't tell, so trust its status.
        return Health.HEALTHY if status == "healthy" else Health.UNKNOWN
    return Health.DOWN


def worst(healths: Iterable[Health]) -> Health | None:
    items = list(healths)
    if not items:
        return None
    return min(items, key=HEALTH_ORDER.__getitem__)
