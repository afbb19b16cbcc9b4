"""What rides on a tunnel (its blast radius) and what the local cloudflared says: plain immutable data.

``Reach`` comes from the tunnel's remote configuration (``GET .../cfd_tunnel/{id}/configurations``: the public
hostnames of its ingress rules, catch-all rules left out, and the configuration ``version``) and from the private
network routes (``GET /accounts/{id}/teamnet/routes?tunnel_id=``). ``LocalReady`` is cloudflared's own ``/ready``
answer on this host.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Route:
    network: str
    virtual_network: str | None = None  # the virtual network's name (or id when the name is unknown)
    comment: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"network": self.network, "virtual_network": self.virtual_network, "comment": self.comment}


@dataclass(frozen=True)
class Reach:
    """A tunnel's blast radius as last fetched. ``managed`` is "cloudflare" (remote configuration) or "local" (the
    ingress rules live in a config file on the connector's host: the API cannot tell its hostnames)."""

    fetched_at: datetime
    managed: str
    hostnames: tuple[str, ...] = ()
    routes: tuple[Route, ...] = ()
    config_version: int | None = None  # the remote configuration's version (None: locally managed or unknown)
    # Why the last read failed (a 403 for a token without the permission, a 404, a 5xx). The rest is then the last
    # good read, as of ``fetched_at``; with ``managed == "unknown"`` there was none.
    error: str | None = None


@dataclass(frozen=True)
class LocalReady:
    """cloudflared's ``/ready`` on this host: ``{"status", "readyConnections", "connectorId"}``."""

    address: str  # host:port it answered on
    connector_id: str | None
    ready_connections: int | None
    status: int | None
