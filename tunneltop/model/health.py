"""Small pure helpers over the models: edge summaries, ages, and a health verdict per tunnel."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from tunneltop.model.records import Connection, Connector, Tunnel


class Health(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"
    INACTIVE = "inactive"
    UNKNOWN = "unknown"


# Worst first: used to sort tunnels and to pick an overall verdict.
HEALTH_ORDER: dict[Health, int] = {
    Health.UNKNOWN: 0,
    Health.DOWN: 1,
    Health.INACTIVE: 2,
    Health.DEGRADED: 3,
    Health.HEALTHY: 4,
}


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


def connector_health(connector: Connector) -> Health:
    """A connector's own verdict: the tunnel rule applied to it alone, with no status from the API."""
    return _verdict("", (connector,))


def _verdict(status: str, connectors: Sequence[Connector]) -> Health:
    if not connectors:
        return Health.INACTIVE if status == "inactive" else Health.DOWN
    conns = [conn for c in connectors for conn in c.conns]
    if any(c.is_pending_reconnect is True for c in conns) or status == "degraded":
        return Health.DEGRADED
    if any(c.is_pending_reconnect is False for c in conns):
        return Health.HEALTHY
    if conns:
        # The API left out is_pending_reconnect: the connections can't tell, so trust its status.
        return Health.HEALTHY if status == "healthy" else Health.UNKNOWN
    return Health.DOWN


def worst(healths: Iterable[Health]) -> Health | None:
    items = list(healths)
    if not items:
        return None
    return min(items, key=HEALTH_ORDER.__getitem__)
