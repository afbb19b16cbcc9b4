"""Pydantic models of what the Cloudflare API returns: accounts, tunnels, connectors and connections.

Field names are the API's own. Every model keeps unknown fields (``extra="allow"``) so that a field Cloudflare
adds tomorrow survives into ``--output json``, and every field but the identity is optional, because the API's
shape drifts (``is_pending_reconnect`` has come and gone five times in Cloudflare's own SDKs).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, model_validator


def _as_utc(value: datetime) -> datetime | None:
    if value.year == 1:
        return None  # Go's zero time (0001-01-01T00:00:00Z): cloudflared's "unset", not a moment 2,000 years ago
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# A time without a zone is taken as UTC (the API's own zone), so ages can always be computed against now; Go's zero
# time is unknown (None).
UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]

# The tunnel list's deprecated copy of each tunnel's connections: read from the connections endpoint instead, so
# dropped at decode (nothing keeps, compares or diffs it; at 10k connections it is half a poll's bytes).
DEPRECATED_TUNNEL_FIELDS = frozenset({"connections"})


class _ApiRecord(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    def api_dict(self) -> dict[str, Any]:
        """The record as the API's JSON would spell it (dates back to RFC 3339 strings, unknown fields kept)."""
        return self.model_dump(mode="json", exclude_none=False)


class Account(_ApiRecord):
    id: str
    name: str | None = None


class Connection(_ApiRecord):
    """One connection between a cloudflared connector and a Cloudflare data centre (colo)."""

    id: str
    uuid: str | None = None
    client_id: str | None = None
    client_version: str | None = None
    colo_name: str | None = None
    origin_ip: str | None = None
    opened_at: UtcDatetime | None = None
    # None means the API did not say: unknown, never assumed active.
    # Strict: "no", 0 or "false" from a drifting API is a wrong type (shown as unknown), not a guess.
    is_pending_reconnect: StrictBool | None = None

    @property
    def state(self) -> str:
        """``active``, ``pending`` (the edge holds it for a reconnect) or ``unknown``."""
        if self.is_pending_reconnect is None:
            return "unknown"
        return "pending" if self.is_pending_reconnect else "active"


class Connector(_ApiRecord):
    """A cloudflared process holding connections to the edge (the API calls it a "client")."""

    id: str
    arch: str | None = None
    version: str | None = None
    run_at: UtcDatetime | None = None
    config_version: int | None = None
    features: list[str] = Field(default_factory=list)
    conns: list[Connection] = Field(default_factory=list)


class Tunnel(_ApiRecord):
    id: str
    name: str | None = None
    status: str | None = None
    created_at: UtcDatetime | None = None
    deleted_at: UtcDatetime | None = None
    conns_active_at: UtcDatetime | None = None
    conns_inactive_at: UtcDatetime | None = None
    tun_type: str | None = None
    remote_config: bool | None = None
    config_src: str | None = None
    account_tag: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_deprecated(cls, data: Any) -> Any:
        if isinstance(data, dict) and not DEPRECATED_TUNNEL_FIELDS.isdisjoint(data):
            return {k: v for k, v in data.items() if k not in DEPRECATED_TUNNEL_FIELDS}
        return data

    @property
    def label(self) -> str:
        return self.name or self.id


class TokenStatus(_ApiRecord):
    id: str | None = None
    status: str | None = None
    expires_on: UtcDatetime | None = None
