"""Models of the Cloudflare Tunnel API's data and pure helpers over them. No I/O here."""

from tunneltop.model.health import Health, edge_summary, format_age, tunnel_health
from tunneltop.model.parse import RecordProblem, parse_connectors, parse_many
from tunneltop.model.records import Account, Connection, Connector, TokenStatus, Tunnel
from tunneltop.model.snapshot import Snapshot, TunnelState

__all__ = [
    "Account",
    "Connection",
    "Connector",
    "Health",
    "RecordProblem",
    "Snapshot",
    "TokenStatus",
    "Tunnel",
    "TunnelState",
    "edge_summary",
    "format_age",
    "parse_connectors",
    "parse_many",
    "tunnel_health",
]
