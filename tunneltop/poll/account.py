"""The account-wide overview's data: a polling source that keeps to the request budget, and one row per tunnel.

``AccountSource.poll()`` makes only the calls the ``Planner`` allows (the tunnel list, then some tunnels'
connections), merges them with what earlier polls fetched and returns a complete ``Snapshot``: every tunnel of the
latest list, each with its connections as last fetched (``TunnelState.fetched_at``) or, not fetched yet, with the
list's status as its health. ``summaries(snapshot)`` turns that into rows, worst health first; ``notices`` says
when the list is empty or may be partial.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tunneltop.api.budget import RequestBudget
from tunneltop.api.client import CloudflareClient
from tunneltop.api.errors import ApiError, AuthError, NotFoundError, RateLimitedError
from tunneltop.model.parse import RecordCache, RecordProblem
from tunneltop.model.records import Account, Connector, Tunnel
from tunneltop.model.snapshot import Snapshot, TunnelState, same_objects
from tunneltop.poll.planner import DEFAULT_INTERVAL, Plan, Planner
from tunneltop.poll.source import FETCH_CONCURRENCY, TunnelSource, utc_now

# Error text of a connection fetch the credentials were refused: a sign the token's permissions are narrow.
REFUSED = "refused: "

_STATUS_RANK = {"down": 1, "degraded": 3, "healthy": 4}


@dataclass(frozen=True)
class _Fetched:
    """One tunnel's connections as last fetched, and what its list entry said at the time."""

    connectors: tuple[Connector, ...] | None
    problems: tuple[RecordProblem, ...]
    error: str | None
    at: float  # the budget's clock: when the fetch was attempted
    at_wall: datetime | None  # when the connectors shown were fetched (None: never successfully)
    signature: tuple[object, ...]


def _signature(tunnel: Tunnel) -> tuple[object, ...]:
    """What in a list entry says the connections have changed since they were fetched."""
    return (tunnel.status, tunnel.conns_active_at, tunnel.conns_inactive_at)


@dataclass(frozen=True)
class BudgetStatus:
    """The header's figures: requests in the last minute, the budget, and a 429 countdown."""

    used_per_minute: int
    limit_per_minute: int
    blocked_for: float
    deferred: int  # due connection fetches the last poll left for later

    def __str__(self) -> str:
        text = f"API {self.used_per_minute}/{self.limit_per_minute} per min"
        if self.blocked_for > 0:
            text += f" · rate limited: next request in {self.blocked_for:.0f} s"
        return text


class AccountSource:
    """Polls every non-deleted tunnel of one account, a budget's worth of requests at a time.

    ``in_view`` (tunnel ids) is set by the screen: those tunnels' connections are fetched first. ``poll()`` raises
    ``RateLimitedError`` when it could not send what it needed because Cloudflare answered 429 (after keeping what
    the poll did fetch), and ``ApiError`` when the tunnel list failed; otherwise it returns a snapshot.
    """

    def __init__(
        self,
        client: CloudflareClient,
        account: Account,
        *,
        interval: float = DEFAULT_INTERVAL,
        budget: RequestBudget | None = None,
        planner: Planner | None = None,
        concurrency: int = FETCH_CONCURRENCY,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.client = client
        self.account = account
        self.budget = budget if budget is not None else RequestBudget()
        self.planner = planner if planner is not None else Planner(self.budget, interval)
        self.in_view: frozenset[str] = frozenset()
        self.last_plan: Plan | None = None
        self.list_fetched_at: datetime | None = None
        self._concurrency = max(1, concurrency)
        self._clock = clock
        self._now = now
        self._tunnels: list[Tunnel] = []
        self._problems: tuple[RecordProblem, ...] = ()
        self._list_at: float | None = None
        self._fetched: dict[str, _Fetched] = {}
        self._attempted: dict[str, float] = {}  # the planner's view of _fetched: when each fetch was tried
        self._by_id: dict[str, Tunnel] = {}
        self._order: list[str] = []
        self._skip: set[str] = set()
        self._states: dict[str, TunnelState] = {}
        self._last_tunnels: tuple[TunnelState, ...] = ()
        # What the API sent last, so an unchanged record is not validated again and stays the same object.
        self._records: dict[str, RecordCache] = {}
        self._tunnel_records: dict[str, tuple[dict[str, Any], Tunnel]] = {}
        # Every request the client ever sent counts (account resolution included), and every Ratelimit it read.
        self._sent_seen = 0
        self._ratelimit_seen: object = None

    # -- what the header shows ---------------------------------------------------------------------------------

    @property
    def interval(self) -> float:
        return self.planner.interval

    @interval.setter
    def interval(self, seconds: float) -> None:
        self.planner.interval = seconds

    @property
    def limit_per_minute(self) -> int:
        return self.budget.limit_per_minute

    @property
    def used_per_minute(self) -> int:
        self._sync()
        return self.budget.used_per_minute(self._clock())

    @property
    def blocked_for(self) -> float:
        """Seconds before anything may be sent (a 429's Retry-After, or Cloudflare's quota used up)."""
        return max(self.budget.blocked_for(self._clock()), self.client.blocked_for)

    @property
    def status(self) -> BudgetStatus:
        deferred = self.last_plan.deferred if self.last_plan is not None else 0
        return BudgetStatus(self.used_per_minute, self.limit_per_minute, self.blocked_for, deferred)

    def set_in_view(self, tunnel_ids: Iterable[str]) -> None:
        self.in_view = frozenset(tunnel_ids)

    # -- bookkeeping -------------------------------------------------------------------------------------------

    def _sync(self) -> None:
        """Count every request the client has sent since last time, and take in the latest Ratelimit header."""
        sent = self.client.stats.sent_at
        for at in sent[self._sent_seen :]:
            self.budget.record(at)
        self._sent_seen = len(sent)
        ratelimit = self.client.ratelimit
        if ratelimit is not None and ratelimit is not self._ratelimit_seen:
            self._ratelimit_seen = ratelimit
            self.budget.observe_ratelimit(ratelimit, self._clock())
        if self.client.blocked_for > 0:
            self.budget.block(self.client.blocked_for, self._clock())

    def _take_list(self, tunnels: list[Tunnel], problems: Iterable[RecordProblem]) -> None:
        self._tunnels, self._problems = tunnels, tuple(problems)
        self._by_id = {t.id: t for t in tunnels}
        self._fetched = {tid: f for tid, f in self._fetched.items() if tid in self._by_id}
        self._attempted = {tid: f.at for tid, f in self._fetched.items()}
        # Worst status first: when all are equally stale, the interesting tunnels' details come first.
        ranked = sorted(tunnels, key=lambda t: _STATUS_RANK.get((t.status or "").lower(), 0))
        self._order = [t.id for t in ranked]
        self._skip = {t.id for t in tunnels if (t.status or "").lower() == "inactive"}

    def _plan(self, *, connections: bool = True) -> Plan:
        changed = []
        for tid, fetched in self._fetched.items():
            # A failed fetch is worth another try soon; a refusal is not (the token's permissions won't change).
            failed = fetched.error is not None and not fetched.error.startswith(REFUSED)
            if tid not in self._skip and (failed or fetched.signature != _signature(self._by_id[tid])):
                changed.append(tid)
        plan = self.planner.plan(
            self._clock(),
            self._order,
            in_view=self.in_view,
            fetched_at=self._attempted,
            changed=changed,
            skip=self._skip,
            list_fetched_at=self._list_at,
            connections=connections,
        )
        self.last_plan = plan
        return plan

    def _rate_limited(self, exc: RateLimitedError) -> None:
        self.budget.block(exc.retry_after, self._clock())
        self._sync()

    # -- one poll ----------------------------------------------------------------------------------------------

    async def poll(self) -> Snapshot:
        self._sync()
        listed = self._plan(connections=False).list_pages > 0
        if listed:
            started = self._clock()
            try:
                tunnels, problems = await self.client.list_tunnels(self.account.id, cache=self._tunnel_records)
            except RateLimitedError as exc:
                self._rate_limited(exc)
                raise
            finally:
                self._sync()
            self._list_at = started
            self.list_fetched_at = self._now()
            self._take_list(tunnels, problems)
        elif self._list_at is None:
            wait = max(self.blocked_for, self.budget.wait_time(self._clock()))
            raise HoldingBack(
                f"holding back to stay within tunneltop's request budget: the tunnel list in {wait:.0f} s",
                retry_after=wait,
            )
        # Connections for the tunnels as now listed (the list itself is not due again).
        plan = self._plan()
        if not listed and not plan.requests and self.blocked_for > 0:
            wait = self.blocked_for
            raise RateLimitedError(
                f"rate limited by Cloudflare: no request is sent for another {wait:.0f} s", retry_after=wait
            )
        limited = await self._fetch_connections(plan.connections)
        snapshot = self._snapshot()
        if limited is not None:
            raise limited
        return snapshot

    async def _fetch_connections(self, tunnel_ids: Iterable[str]) -> RateLimitedError | None:
        queue = list(tunnel_ids)
        queue.reverse()
        limited: list[RateLimitedError] = []

        async def worker() -> None:
            while queue and not limited:
                self._sync()
                if not self.budget.can_send(self._clock()):
                    return
                tunnel = self._by_id[queue.pop()]
                await self._fetch_one(tunnel, limited)
                self._sync()

        await asyncio.gather(*(worker() for _ in range(self._concurrency)))
        return limited[0] if limited else None

    async def _fetch_one(self, tunnel: Tunnel, limited: list[RateLimitedError]) -> None:
        at = self._clock()
        previous = self._fetched.get(tunnel.id)
        try:
            cache = self._records.setdefault(tunnel.id, RecordCache())
            connectors, problems = await self.client.list_connectors(self.account.id, tunnel.id, cache)
        except RateLimitedError as exc:
            self._rate_limited(exc)
            limited.append(exc)
            return
        except NotFoundError:
            error = "tunnel not found: deleted, or no longer visible to these credentials"
        except AuthError as exc:
            error = REFUSED + exc.message
        except ApiError as exc:
            error = exc.message
        else:
            fresh = tuple(connectors)
            before = previous.connectors if previous is not None else None
            if before is not None and same_objects(before, fresh):
                fresh = before  # nothing in them changed: later stages skip them by identity
            self._fetched[tunnel.id] = _Fetched(fresh, tuple(problems), None, at, self._now(), _signature(tunnel))
            self._attempted[tunnel.id] = at
            return
        # A failed refresh keeps the connections fetched before, if any: older, and the error says so.
        self._fetched[tunnel.id] = _Fetched(
            previous.connectors if previous is not None else None,
            previous.problems if previous is not None else (),
            error,
            at,
            previous.at_wall if previous is not None else None,
            _signature(tunnel),
        )
        self._attempted[tunnel.id] = at

    def _snapshot(self) -> Snapshot:
        states: list[TunnelState] = []
        kept: dict[str, TunnelState] = {}
        for tunnel in self._tunnels:
            fetched = self._fetched.get(tunnel.id)
            if fetched is None:
                inactive = (tunnel.status or "").lower() == "inactive"
                connectors, problems, error, at = ((), (), None, None) if inactive else (None, (), None, None)
            else:
                connectors, problems, error, at = fetched.connectors, fetched.problems, fetched.error, fetched.at_wall
            state = self._states.get(tunnel.id)
            if not (
                state is not None
                and state.connectors is connectors
                and state.error == error
                and state.fetched_at == at
                and (state.tunnel is tunnel or state.tunnel == tunnel)
            ):
                # Unchanged tunnels keep the very same state object: the change engine skips them at once.
                state = TunnelState(tunnel, connectors, problems, error, at)
            kept[tunnel.id] = state
            states.append(state)
        self._states = kept
        for gone in self._records.keys() - kept.keys():
            del self._records[gone]
        if not same_objects(states, self._last_tunnels):
            self._last_tunnels = tuple(states)  # else the same tuple, as TunnelSource.poll hands back
        return Snapshot(
            account_id=self.account.id,
            account_name=self.account.name,
            fetched_at=self._now(),
            tunnels=self._last_tunnels,
            problems=self._problems,
        )




class HoldingBack(RateLimitedError):
    """Not a failure: the request budget has no room yet for the first read of the tunnel list (the requests of
    the last minute, this tool's and the dashboard's, used it up). The poll is simply later."""


def source_for(
    client: CloudflareClient,
    account: Account,
    refs: Sequence[str],
    *,
    interval: float,
    budget_per_minute: int,
    now: Callable[[], datetime] = utc_now,
    min_burst: float = 1.0,
) -> TunnelSource | AccountSource:
    """The source a live front end polls: the named tunnels every poll, or with none named the whole account
    within the request budget (a small account's first screen may come in one burst of ``min_burst``)."""
    if refs:
        return TunnelSource(client, account, refs, now=now)
    budget = RequestBudget(budget_per_minute)
    planner = Planner(budget, interval, min_burst=min(budget_per_minute, min_burst))
    return AccountSource(client, account, interval=interval, budget=budget, planner=planner, now=now)


