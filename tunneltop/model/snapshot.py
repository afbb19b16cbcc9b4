"""One poll's worth of state: every watched tunnel with its connectors, as plain immutable data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from tunneltop.model.health import Health, tunnel_health, worst
from tunneltop.model.parse import RecordProblem
from tunneltop.model.records import Connector, Tunnel

_STATUS_HEALTH = {h.value: h for h in (Health.HEALTHY, Health.DEGRADED, Health.DOWN, Health.INACTIVE)}


@dataclass(frozen=True)
class TunnelState:
    """A tunnel as seen by one poll.

    ``connectors`` is None when its connections could not be fetched (``error`` says why: health unknown) or, with
    no ``error``, were not fetched yet (the account-wide view fetches them a few at a time within its request
    budget: the tunnel list's status is then the verdict). ``fetched_at``: when the connections were fetched, where
    a view keeps them across polls (None: this poll).
    """

    tunnel: Tunnel
    connectors: tuple[Connector, ...] | None
    problems: tuple[RecordProblem, ...] = ()
    error: str | None = None
    fetched_at: datetime | None = None

    @cached_property
    def health(self) -> Health:
        if self.connectors is None and self.error is None:
            return _STATUS_HEALTH.get((self.tunnel.status or "").lower(), Health.UNKNOWN)
        return tunnel_health(self.tunnel, self.connectors)

    # Cached like health: read for every tunnel on every redraw (header, tree, trends), and the state is immutable.
    @cached_property
    def active_count(self) -> int:
        return sum(1 for c in self.connectors or () for conn in c.conns if conn.is_pending_reconnect is False)

    @cached_property
    def pending_count(self) -> int:
        return sum(1 for c in self.connectors or () for conn in c.conns if conn.is_pending_reconnect is True)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.tunnel.id,
            "name": self.tunnel.name,
            "status": self.tunnel.status,
            "health": self.health.value,
            "clients": None if self.connectors is None else [c.api_dict() for c in self.connectors],
            "problems": [str(p) for p in self.problems],
            "error": self.error,
        }


@dataclass(frozen=True)
class Snapshot:
    account_id: str
    fetched_at: datetime
    tunnels: tuple[TunnelState, ...]
    problems: tuple[RecordProblem, ...] = field(default=())
    account_name: str | None = None

    # Cached: the header reads these every second, and a snapshot never changes.
    @cached_property
    def health(self) -> Health | None:
        return worst(t.health for t in self.tunnels)

    @cached_property
    def pending_count(self) -> int:
        return sum(t.pending_count for t in self.tunnels)

    @cached_property
    def health_counts(self) -> dict[Health, int]:
        """How many tunnels have each verdict (verdicts no tunnel has are left out)."""
        counts: dict[Health, int] = {}
        for state in self.tunnels:
            counts[state.health] = counts.get(state.health, 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "fetched_at": self.fetched_at.isoformat().replace("+00:00", "Z"),
            "tunnels": [t.to_json() for t in self.tunnels],
            "problems": [str(p) for p in self.problems],
        }
