"""When a tunnel's blast radius (its public hostnames and private routes, ``model/reach.py``) is read, and how.

A read costs two requests (the configuration, and the routes filtered by the tunnel; one for a locally managed
tunnel, whose configuration the API does not hold), so it is never made once per poll. A tunnel's reach is due:
- on first sight;
- when its connectors' ``config_version``s change (a configuration pushed from the dashboard; a connector behind the
  known version is drift, which is no news poll after poll);
- every ``REACH_PERIOD`` (routes and hostnames edited without a restart give no sign), or ``REACH_RETRY`` after a
  read that failed the passing way.
Due tunnels in view go first, then version changes, first sightings, and the stalest.

Connections come first: the engine gives reach what the planner leaves of the budget after them, and when they
take it all, keeps back one read every ``REACH_TRICKLE`` seconds, so a busy account still learns its blast radius.
Every request goes through the client and its gate. Errors never fail a poll: the last good reach stays, with
``Reach.error`` saying why it is not fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from tunneltop.api.client import CloudflareClient
from tunneltop.api.errors import ApiError, AuthError, NotFoundError, OverBudgetError, RateLimitedError
from tunneltop.model.reach import Reach
from tunneltop.model.records import Connector, Tunnel
from tunneltop.model.remote import CLOUDFLARE, LOCAL, RemoteConfig, RouteRecord, locally_managed, unnamed_networks

# Cloudflare's rate limit counts over 5 minutes too: one read of every tunnel per window keeps reach a small,
# steady share of it, and hostnames edited in the dashboard show within that (or at once, with a restart).
REACH_PERIOD = 300.0
# A read that failed the passing way (a 5xx, a timeout) is tried again this much later; a refusal (403) or a 404
# waits the whole period: a token's permissions are not fixed by asking again.
REACH_RETRY = 60.0
# When connections take the whole budget, one read may still go every this many seconds (about a sixth of the
# default budget while reads are due, none once they are done).
REACH_TRICKLE = 10.0
UNKNOWN = "unknown"


@dataclass
class _Seen:
    reach: Reach | None
    at: float  # the gate's clock: when the last read was attempted
    versions: frozenset[int] | None  # the connectors' config versions then (None: not known then)
    wait: float  # seconds after ``at`` the next periodic read is due


def config_versions(connectors: Sequence[Connector] | None) -> frozenset[int] | None:
    if connectors is None:
        return None
    return frozenset(c.config_version for c in connectors if c.config_version is not None)


class ReachTracker:
    """Each tunnel's last reach and when the next read is due, and the reads themselves."""

    def __init__(self, client: CloudflareClient, now: Callable[[], datetime], concurrency: int = 4) -> None:
        self.client = client
        self._now = now
        self._concurrency = max(1, concurrency)
        self._seen: dict[str, _Seen] = {}
        self._names: dict[str, str] = {}  # virtual network id -> name
        self._names_at: float | None = None
        # Tunnel id -> (its connectors as last asked about, their config versions): the engine hands the very same
        # tuple while a tunnel is unchanged, and at 10,000 connections reading the versions again was 4 ms a poll.
        self._versions: dict[str, tuple[Sequence[Connector] | None, frozenset[int] | None]] = {}
        # When the last read went (the trickle's clock). Counted from the start: the first polls' connections (and a
        # one-poll --once) keep the whole budget, and reach has what they leave.
        self._last_read = client.gate.now()

    def reach_of(self, tunnel_id: str) -> Reach | None:
        seen = self._seen.get(tunnel_id)
        return None if seen is None else seen.reach

    def forget(self, keep: Collection[str]) -> None:
        self._seen = {tid: s for tid, s in self._seen.items() if tid in keep}
        self._versions = {tid: v for tid, v in self._versions.items() if tid in keep}

    @staticmethod
    def cost(tunnel: Tunnel) -> int:
        """Requests one read costs: the routes, and the configuration unless the tunnel is locally managed."""
        return 1 if locally_managed(tunnel) else 2

    def _versions_news(self, seen: _Seen, current: frozenset[int] | None) -> bool:
        if current is None:
            return False
        if seen.versions is None:
            # Connections first read after the reach: news only if a connector runs a newer version than it said.
            seen.versions = current
            known = seen.reach.config_version if seen.reach is not None else None
            return known is not None and max(current, default=0) > known
        return current != seen.versions

    def due(
        self,
        now: float,
        order: Sequence[str],
        connectors: Mapping[str, Sequence[Connector] | None],
        *,
        in_view: Collection[str] = (),
        skip: Collection[str] = (),
    ) -> list[str]:
        """The tunnels whose reach is due at ``now`` (the gate's clock), the first to read first."""
        ranked: list[tuple[int, int, float, int, str]] = []
        for index, tid in enumerate(order):
            if tid in skip:
                continue
            seen = self._seen.get(tid)
            if seen is None:
                rank, at = 1, -1.0
            elif self._versions_news(seen, self._versions_of(tid, connectors.get(tid))):
                rank, at = 0, seen.at
            elif now - seen.at >= seen.wait:
                rank, at = 2, seen.at
            else:
                continue
            ranked.append((0 if tid in in_view else 1, rank, at, index, tid))
        ranked.sort()
        return [entry[-1] for entry in ranked]

    def _versions_of(self, tunnel_id: str, connectors: Sequence[Connector] | None) -> frozenset[int] | None:
        known = self._versions.get(tunnel_id)
        if known is not None and known[0] is connectors:
            return known[1]
        versions = config_versions(connectors)
        self._versions[tunnel_id] = (connectors, versions)
        return versions

    def reserve(self, now: float, first: Tunnel | None, available: int) -> int:
        """Requests to keep back from the connections for a read (the trickle), when one is due and the budget has
        them now: kept back for tokens yet to come, they would starve the connections (and the read would wait for
        good) when Cloudflare slows the budget to one token at a time."""
        if first is None or now - self._last_read < REACH_TRICKLE:
            return 0
        cost = self.cost(first)
        return cost if available >= cost else 0

    async def read(
        self,
        account_id: str,
        tunnels: Sequence[Tunnel],
        connectors: Mapping[str, Sequence[Connector] | None],
        spare: int,
    ) -> int:
        """Read the reach of ``tunnels`` in turn while ``spare`` requests cover their cost; how many were read."""
        chosen: list[Tunnel] = []
        for tunnel in tunnels:
            cost = self.cost(tunnel)
            if cost > spare:
                break
            spare -= cost
            chosen.append(tunnel)
        if not chosen:
            return 0
        self._last_read = self.client.gate.now()
        stop = asyncio.Event()
        queue = list(reversed(chosen))

        async def worker() -> None:
            while queue and not stop.is_set():
                tunnel = queue.pop()
                versions = self._versions_of(tunnel.id, connectors.get(tunnel.id))
                if not await self._read_one(account_id, tunnel, versions):
                    stop.set()

        await asyncio.gather(*(worker() for _ in range(min(self._concurrency, len(chosen)))))
        return len(chosen) - len(queue)

    async def _read_one(self, account_id: str, tunnel: Tunnel, versions: frozenset[int] | None) -> bool:
        """One tunnel's read; False when the budget or a 429 says no more reads this poll."""
        at = self.client.gate.now()
        previous = self.reach_of(tunnel.id)
        local = locally_managed(tunnel)
        config: RemoteConfig | None = None
        routes: list[RouteRecord] | None = None
        errors: list[str] = []
        wait = REACH_PERIOD
        for part in ("configuration", "private routes"):
            if part == "configuration" and local:
                continue
            try:
                if part == "configuration":
                    config, _ = await self.client.get_configuration(account_id, tunnel.id)
                else:
                    routes, _ = await self.client.list_routes(account_id, tunnel.id)
            except (OverBudgetError, RateLimitedError):
                if config is None and routes is None:
                    return False  # nothing was read: it stays due, for a later poll
                errors.append(f"{part}: not read (request budget)")
                wait = REACH_RETRY
            except AuthError as exc:
                errors.append(f"{part}: refused: {exc.message}")
            except NotFoundError:
                errors.append(f"{part}: not found")
            except ApiError as exc:
                errors.append(f"{part}: {exc.message}")
                wait = REACH_RETRY
        if routes is not None:
            await self._name_networks(account_id, routes, at)
        self._seen[tunnel.id] = _Seen(self._merge(previous, local, config, routes, errors), at, versions, wait)
        return True

    async def _name_networks(self, account_id: str, routes: list[RouteRecord], at: float) -> None:
        """Virtual network names for routes that came without one: the account's list, at most once a period."""
        if not unnamed_networks(routes, self._names):
            return
        if self._names_at is not None and at - self._names_at < REACH_PERIOD:
            return
        self._names_at = at
        with contextlib.suppress(ApiError):  # else the routes keep the network's id: less friendly, as true
            self._names = await self.client.list_virtual_networks(account_id)

    def _merge(
        self,
        previous: Reach | None,
        local: bool | None,
        config: RemoteConfig | None,
        routes: list[RouteRecord] | None,
        errors: list[str],
    ) -> Reach:
        """The new reach: what was read, the last good read for what was not, and why."""
        error = "; ".join(errors) or None
        if config is None and routes is None:
            if previous is not None:
                return replace(previous, error=error)
            return Reach(self._now(), LOCAL if local else UNKNOWN, error=error)
        hostnames: tuple[str, ...] = ()
        version: int | None = None
        if local:
            managed = LOCAL
        elif config is not None:
            managed = LOCAL if config.source == LOCAL else CLOUDFLARE
            hostnames, version = config.hostnames, config.version if managed == CLOUDFLARE else None
        else:
            managed = previous.managed if previous is not None else UNKNOWN
            hostnames = previous.hostnames if previous is not None else ()
            version = previous.config_version if previous is not None else None
        if routes is not None:
            named = tuple(r.route(self._names) for r in routes)
        else:
            named = previous.routes if previous is not None else ()
        return Reach(self._now(), managed, hostnames, named, version, error)
