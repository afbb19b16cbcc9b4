"""The account overview's rows: one summary per tunnel, worst first (health and findings: model/health.py
``rank``), and what to say above them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tunneltop.model.findings import Finding, Severity
from tunneltop.model.health import Health, edge_summary, rank, worst_severity
from tunneltop.model.records import Connector
from tunneltop.model.snapshot import Snapshot, TunnelState
from tunneltop.poll.engine import REFUSED
from tunneltop.views.rows import version_sort_key

NO_TUNNELS = "no tunnels in this account (or the token cannot see them: it needs Cloudflare Tunnel Read)"

@dataclass(frozen=True)
class TunnelSummary:
    """One overview row. Counts are None while the tunnel's connections are unknown (not fetched, or failed)."""

    id: str
    name: str | None
    health: Health
    status: str | None
    connectors: int | None
    active: int | None
    pending: int | None
    edges: str
    oldest_version: str | None
    conns_active_at: datetime | None
    conns_inactive_at: datetime | None
    # When its connections were fetched, and how old they were at the snapshot's time. Left out of equality: a view
    # that shows them against its own clock re-places a row only when what it shows changed.
    fetched_at: datetime | None = field(compare=False)
    age: timedelta | None = field(compare=False)
    error: str | None
    findings: tuple[Finding, ...] = ()  # critical first (model/rules.py)

    @property
    def label(self) -> str:
        return self.name or self.id

    @property
    def rank(self) -> int:
        """Where it sorts, worst first: unknown, down, degraded or a critical finding, warnings, healthy, inactive."""
        return rank(self.health, self.findings)

    @property
    def severity(self) -> Severity | None:
        """The worst finding's severity (None: no finding)."""
        return worst_severity(self.findings)

    @property
    def last_change(self) -> datetime | None:
        """The latest of last active / last inactive: when the tunnel last connected or lost its connections."""
        times = [t for t in (self.conns_active_at, self.conns_inactive_at) if t is not None]
        return max(times) if times else None


def oldest_version(connectors: Iterable[Connector]) -> str | None:
    """The oldest cloudflared version among the connectors, compared numerically (2024.9.0 < 2024.10.1)."""
    versions = [c.version for c in connectors if c.version]
    return min(versions, key=version_sort_key) if versions else None


def summarize(state: TunnelState, at: datetime, read_at: datetime | None = None) -> TunnelSummary:
    """One tunnel's row, worked out afresh (OverviewRows keeps them across polls), with its age at ``at``.
    ``read_at``: when the poll that read it ran (its snapshot's time; ``at`` when not given)."""
    return _summary(state, _count(state), at, read_at or at)


def _summary(state: TunnelState, counted: _Counted, at: datetime, read_at: datetime) -> TunnelSummary:
    tunnel, connectors = state.tunnel, state.connectors
    fetched_at = state.fetched_at
    if fetched_at is None and connectors is not None and state.error is None and tunnel.status != "inactive":
        # Read by the snapshot's own poll ("as of the snapshot"): as old as the snapshot, never as new as ``at``,
        # or a row redrawn while polls hang or are paused would say its data was read just now.
        fetched_at = read_at
    age = at - fetched_at if fetched_at is not None else None
    return TunnelSummary(*counted, fetched_at, age, state.error, state.findings)


# What a summary takes from a tunnel's records (the costly part: edges and versions walk every connection).
_Counted = tuple[str, str | None, Health, str | None, int | None, int | None, int | None, str, str | None, Any, Any]


def _count(state: TunnelState) -> _Counted:
    tunnel, connectors = state.tunnel, state.connectors
    known = connectors is not None
    return (
        tunnel.id,
        tunnel.name,
        state.health,
        tunnel.status,
        len(connectors) if connectors is not None else None,
        state.active_count if known else None,
        state.pending_count if known else None,
        edge_summary(conn for c in connectors or () for conn in c.conns),
        oldest_version(connectors or ()),
        tunnel.conns_active_at,
        tunnel.conns_inactive_at,
    )


def summary_sort_key(row: TunnelSummary) -> tuple[int, str, str]:
    return (row.rank, (row.name or "").casefold(), row.id)


class OverviewRows:
    """The rows of one live overview, poll after poll. What a row takes from a tunnel's records is kept per tunnel
    for its last state (sources hand back an unchanged tunnel's state as the same object), and only for the
    tunnels of the last snapshot: a tunnel that left the account is forgotten with the next call."""

    def __init__(self) -> None:
        self._counted: dict[str, tuple[TunnelState, _Counted]] = {}  # tunnel id -> (its last state, its counts)

    def summaries(self, snapshot: Snapshot, now: datetime | None = None) -> list[TunnelSummary]:
        """One row per tunnel, worst first (``rank``), then by name. Ages are taken at ``now`` (default: the snapshot's
        time); what the snapshot's own poll read is as old as the snapshot."""
        at = now or snapshot.fetched_at
        memo = self._counted
        rows = []
        for state in snapshot.tunnels:
            hit = memo.get(state.tunnel.id)
            if hit is not None and hit[0] is state:
                counted = hit[1]
            else:
                counted = _count(state)
                memo[state.tunnel.id] = (state, counted)
            rows.append(_summary(state, counted, at, snapshot.fetched_at))
        # Every tunnel of this snapshot is in the memo now, so it holds others only if it holds more than these
        # (tunnel ids are unique within a snapshot): then keep only these.
        if len(memo) > len(snapshot.tunnels):
            self._counted = {s.tunnel.id: memo[s.tunnel.id] for s in snapshot.tunnels}
        rows.sort(key=summary_sort_key)
        return rows


def summaries(snapshot: Snapshot, now: datetime | None = None) -> list[TunnelSummary]:
    """One row per tunnel, worst first (``rank``), then by name, worked out afresh: for one-shot callers (the live
    overview keeps an OverviewRows)."""
    at = now or snapshot.fetched_at
    return sorted((summarize(s, at, snapshot.fetched_at) for s in snapshot.tunnels), key=summary_sort_key)


@dataclass(frozen=True)
class Coverage:
    """How much of the account the overview has connection data for."""

    tunnels: int
    need_connections: int  # tunnels that ever ran (an inactive one has no connections to fetch)
    with_connections: int
    oldest: timedelta | None  # the oldest connection data shown (None: none yet)


def coverage(snapshot: Snapshot, now: datetime | None = None) -> Coverage:
    at = now or snapshot.fetched_at
    need = [s for s in snapshot.tunnels if (s.tunnel.status or "").lower() != "inactive"]
    ages = [at - s.fetched_at for s in need if s.fetched_at is not None]
    return Coverage(
        tunnels=len(snapshot.tunnels),
        need_connections=len(need),
        with_connections=sum(1 for s in need if s.connectors is not None),
        oldest=max(ages) if ages else None,
    )


def notices(snapshot: Snapshot) -> list[str]:
    """What the overview should say above its rows: an empty account, a list that may be partial, warm-up."""
    out: list[str] = []
    if not snapshot.tunnels and not snapshot.problems:
        return [NO_TUNNELS]
    if snapshot.problems:
        out.append(
            f"{len(snapshot.problems)} tunnel record(s) in Cloudflare's answer could not be read and are not shown"
        )
    refused = sum(1 for s in snapshot.tunnels if (s.error or "").startswith(REFUSED))
    if refused:
        out.append(
            f"Cloudflare refused the connections of {refused} tunnel(s): this token's permissions look narrow, so "
            "the list may be partial too (it needs Cloudflare Tunnel Read on the whole account)"
        )
    cover = coverage(snapshot)
    if cover.with_connections < cover.need_connections:
        out.append(
            f"connection details for {cover.with_connections} of {cover.need_connections} tunnels so far "
            "(fetched a few at a time within the request budget); health of the others is from the tunnel list"
        )
    return out
