"""The one poll engine every front end runs: resolve the account, plan within the budget, fetch, snapshot, diff.

The live view, ``--watch`` and ``--once`` all call ``PollEngine.poll()`` and get a ``PollOutcome``: a complete
``Snapshot`` (or the failure that kept it from being made) and the change events since the last one, including
the failure-streak events below. Nothing here sends a request the planner did not plan, and every request also
passes the client's ``RequestGate``: the budget is kept twice over, never bypassed.

What a poll reads:
- the tunnel list, at most once per list period: every tunnel's health and metadata (one request per 1,000
  tunnels). With tunnels named and fewer named than the list has pages, each named tunnel is read with a ``uuid``
  filter instead;
- the connections of the tunnels the ``Planner`` picks: the tunnels in view (named tunnels are all "in view")
  first, then those whose list entry changed, then round-robin, stalest first;
- with what the budget leaves after them, the blast radius (hostnames, routes) of the tunnels whose reach is due
  (``poll/reach.py``: first sight, a connector's config version changed, every few minutes; never every poll);
- beside them, not through the gate (it is not Cloudflare): cloudflared's /ready on this host, when a
  ``LocalReadyProbe`` is given (``poll/local.py``).

Named tunnels are resolved once, against the first full read of the list: a name that matches nothing is a usage
error (with the near names), reported once and never polled again.

Failed polls give the failure-streak events by the one rule (``poll/streak.py``: ``poll_failed`` when a streak
starts, when its kind changes and every ``FAILED_REPEAT`` seconds; ``poll_recovered`` when it ends). Holding back
for the budget is not a failure.

One module (over ~400 lines) because a poll's steps share the engine's state (resolved names, the list's cache,
the streak, the reach schedule); planning, reach, the streak and pacing already live in their own modules.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tunneltop.api.client import CloudflareClient
from tunneltop.api.errors import (
    ApiError,
    AuthError,
    NotFoundError,
    OverBudgetError,
    RateLimitedError,
    RequestFailedError,
    UsageError,
)
from tunneltop.api.gate import BudgetStatus
from tunneltop.model.expect import Expectations
from tunneltop.model.parse import RecordCache, RecordProblem
from tunneltop.model.reach import LocalReady
from tunneltop.model.records import Account, Connector, Tunnel, share_connectors
from tunneltop.model.rules import FindingRules
from tunneltop.model.snapshot import Snapshot, TunnelState, same_objects
from tunneltop.poll.account import AccountChoiceNeeded, resolve_account, utc_now
from tunneltop.poll.local import LocalReadyProbe
from tunneltop.poll.planner import DEFAULT_INTERVAL, LIST_SHARE, Plan, Planner, list_pages
from tunneltop.poll.reach import ReachTracker
from tunneltop.poll.streak import FailureStreak

if TYPE_CHECKING:
    from tunneltop.changes.events import ChangeEvent

# Error text of a connection fetch the credentials were refused: a sign the token's permissions are narrow.
REFUSED = "refused: "
GONE = "tunnel not found: deleted, or no longer visible to these credentials"
# A tunnel whose connections could not be refreshed keeps showing the last ones read, marked stale, for this
# long; after it they are unknown (a passing 5xx should not blank a tunnel, a lasting one should not look fine).
STALE_LIMIT = timedelta(minutes=5)
# Connections of several tunnels are fetched at once, but politely: the rate limit is shared with the user.
FETCH_CONCURRENCY = 4
# Requests a long-running front end's first poll may send at once (a small account's first screen in one go);
# then the budget paces them.
STARTUP_BURST = 16

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_STATUS_RANK = {"down": 1, "degraded": 3, "healthy": 4}

class HoldingBack(OverBudgetError):
    """Not a failure: the request budget has no room yet for the first read of the tunnel list (the requests of
    the last minute, this tool's and the dashboard's, used it up). The poll is simply later."""


def is_permanent(error: BaseException) -> bool:
    """Errors no retry can fix: the credentials, a missing permission, a bad account or tunnel name."""
    # A 404 that reaches a poll's outcome is the account's (a tunnel's own 404 is that tunnel's error).
    return isinstance(error, AuthError | UsageError | NotFoundError | AccountChoiceNeeded)


def near_names(ref: str, names: Iterable[str]) -> list[str]:
    """Up to three names close to ``ref`` (a typo's likely meaning)."""
    import difflib

    pool = sorted(set(names))
    near = difflib.get_close_matches(ref, pool, n=3, cutoff=0.5)
    near += [n for n in pool if ref.lower() in n.lower() and n not in near][: 3 - len(near)]
    return near


def resolve_refs(refs: Sequence[str], tunnels: Sequence[Tunnel]) -> tuple[dict[str, str], list[UsageError]]:
    """Tunnel ids for the names/UUIDs asked for, matched against the tunnel list, and one error per ref that
    matches no tunnel or several."""
    by_id = {t.id.lower(): t for t in tunnels}
    by_name: dict[str, list[Tunnel]] = {}
    for tunnel in tunnels:
        if tunnel.name:
            by_name.setdefault(tunnel.name, []).append(tunnel)
    found: dict[str, str] = {}
    errors: list[UsageError] = []
    for ref in refs:
        if _UUID.match(ref) and (by_uuid := by_id.get(ref.lower())) is not None:
            found[by_uuid.id] = ref
            continue
        named = by_name.get(ref, [])
        if len(named) == 1:
            found[named[0].id] = ref
        elif named:
            ids = ", ".join(t.id for t in named)
            errors.append(UsageError(f"several tunnels are named {ref!r} ({ids}); name one by its id"))
        else:
            near = near_names(ref, by_name)
            hint = f"; did you mean: {', '.join(near)}?" if near else ""
            what = "id" if _UUID.match(ref) else "name"
            errors.append(UsageError(f"no tunnel with the {what} {ref!r} in this account{hint}"))
    return found, errors


@dataclass(frozen=True)
class _Fetched:
    """One tunnel's connections as last fetched, and what its list entry said at the time."""

    connectors: tuple[Connector, ...] | None
    problems: tuple[RecordProblem, ...]
    error: str | None
    at: float  # the gate's clock: when the fetch was attempted
    at_wall: datetime | None  # when the connectors shown were fetched (None: never successfully)
    signature: tuple[object, ...]


def _signature(tunnel: Tunnel) -> tuple[object, ...]:
    """What in a list entry says the connections have changed since they were fetched."""
    return (tunnel.status, tunnel.conns_active_at, tunnel.conns_inactive_at)


@dataclass(frozen=True)
class PollOutcome:
    """One poll's result for a front end.

    ``snapshot``: the account as now known (None when the poll failed or held back). ``events``: what changed
    since the last snapshot, and the failure-streak events. ``error``: why the poll failed (``permanent`` when no
    retry can fix it). ``holding``: the budget had no room yet; nothing is wrong.
    """

    snapshot: Snapshot | None
    events: list[ChangeEvent] = field(default_factory=list)
    error: BaseException | None = None
    holding: str | None = None

    @property
    def permanent(self) -> bool:
        return self.error is not None and is_permanent(self.error)

    @property
    def retry_after(self) -> float | None:
        return getattr(self.error, "retry_after", None)


class PollEngine:
    """Polls one account's tunnels, named or all of them, within the client's request budget."""

    def __init__(
        self,
        client: CloudflareClient,
        account_id: str | None,
        refs: Sequence[str] = (),
        *,
        interval: float = DEFAULT_INTERVAL,
        concurrency: int = FETCH_CONCURRENCY,
        min_burst: float = 1.0,
        now: Callable[[], datetime] = utc_now,
        account_name: str | None = None,
        expectations: Expectations | None = None,
        reach: bool = False,
        local: LocalReadyProbe | None = None,
        events: bool = True,
    ) -> None:
        """``events``: work out what changed from one poll to the next (False: a caller that reads one poll only,
        ``--once``, whose first poll's events, one per finding, nobody would read)."""
        self.client = client
        self.gate = client.gate
        self.account: Account | None = Account(id=account_id, name=account_name) if account_id else None
        self.refs = list(refs)
        self.planner = Planner(self.gate, interval, min_burst=min(self.gate.limit_per_minute, min_burst))
        self.in_view: frozenset[str] = frozenset()
        self.last_plan: Plan | None = None
        self.list_fetched_at: datetime | None = None
        self.usage_errors: list[UsageError] = []  # refs that matched no tunnel (reported once, never polled)
        self.previous: Snapshot | None = None
        self._account_id = account_id
        self._events = events
        self._concurrency = max(1, concurrency)
        self._min_burst = min_burst
        self._now = now
        self._watched: dict[str, str] | None = None if not refs else {}  # tunnel id -> the ref that named it
        self._resolved = not refs
        self._force: frozenset[str] = frozenset()
        self._tunnels: list[Tunnel] = []
        self._known: dict[str, Tunnel] = {}  # named mode: the last list entry of each watched tunnel
        self._gone: set[str] = set()  # named mode: watched tunnels the last list did not show
        self._fresh: set[str] = set()  # tunnels whose connections this poll read
        self._problems: tuple[RecordProblem, ...] = ()
        self._list_at: float | None = None
        self._total_tunnels: int | None = None  # the account's, from its last full list read
        self._fetched: dict[str, _Fetched] = {}
        self._attempted: dict[str, float] = {}
        self._by_id: dict[str, Tunnel] = {}
        self._order: list[str] = []
        self._skip: set[str] = set()
        self._states: dict[str, TunnelState] = {}
        self._last_tunnels: tuple[TunnelState, ...] = ()
        self._records: dict[str, RecordCache] = {}
        self._tunnel_records: dict[str, tuple[dict[str, Any], Tunnel]] = {}
        # The field sets this poll's new records share (model/records.py share_bookkeeping), made anew each poll.
        self._field_sets: dict[frozenset[str], set[str]] = {}
        self._streak = FailureStreak()
        # The findings (model/rules.py), with what they keep across polls: since when connections are pending.
        self.rules = FindingRules(expectations)
        self._polled_at = now()
        # Front ends read blast radius (reach=True); a bare engine (tests of lists and connections) does not.
        self.reach = ReachTracker(client, now, self._concurrency) if reach else None
        self.local = local
        self._local_ready: LocalReady | None = None
        self._size_list_share()

    # -- what front ends read and set -----------------------------------------------------------------------------

    @property
    def named(self) -> bool:
        return self._watched is not None

    @property
    def interval(self) -> float:
        return self.planner.interval

    @interval.setter
    def interval(self, seconds: float) -> None:
        self.planner.interval = seconds

    @property
    def effective_interval(self) -> float:
        """Seconds between two refreshes of what is watched: the interval asked for, or longer when one cycle's
        requests (the list, and each named tunnel's connections) do not fit the budget at that pace."""
        count = self._total_tunnels if self._total_tunnels is not None else len(self._order)
        if not self.named:
            return self.planner.list_period(count)
        return max(self.interval, self._cycle_requests() * 60 / self.gate.limit_per_minute)

    def _list_cost(self) -> int:
        """Requests one read of what the list says about the watched tunnels costs."""
        pages = list_pages(self._total_tunnels or 0, self.planner.page_size)
        if self.named and self._resolved and self._watched is not None:
            return max(1, min(pages, len(self._watched)))
        return pages

    def _cycle_requests(self) -> int:
        # Before the names are resolved, each name counts as one tunnel (a name may match none).
        watched = len(self._watched) if self._resolved and self._watched is not None else len(self.refs)
        return self._list_cost() + watched

    def _size_list_share(self, reach_due: int | None = None) -> None:
        # Named tunnels: the list costs its share of one cycle (list + each tunnel's connections), so that list
        # and connections refresh together at the stretched interval. All tunnels: the planner's default share.
        # A whole cycle may go out at once (up to a minute's budget), so that a poll shows every named tunnel.
        if self.named and (self._watched or not self._resolved):
            cost = self._list_cost()
            self.planner.list_share = cost / self._cycle_requests()
            # One cycle at most: more would only run cycles ahead of the pace and then stall for the minute. But a
            # front end that asked for the whole minute at once (--once: its one poll) may also read the blast
            # radius due (``reach_due`` requests) in the same go; a live view reads it with what cycles leave.
            floor: float = self._cycle_requests()
            if reach_due is None:  # before the first read of the list: each named tunnel's first read, at most
                first = self.reach is not None and self._list_at is None
                reach_due = 2 * len(self._watched or self.refs) if first else 0
            if reach_due and self._min_burst >= self.gate.limit_per_minute:
                floor = min(self._min_burst, floor + reach_due)
            self.planner.min_burst = min(self.gate.limit_per_minute, floor)
        else:
            self.planner.list_share = LIST_SHARE
            self.planner.min_burst = min(self.gate.limit_per_minute, self._min_burst)

    @property
    def status(self) -> BudgetStatus:
        deferred = self.last_plan.deferred if self.last_plan is not None else 0
        return self.gate.status(deferred)

    @property
    def blocked_for(self) -> float:
        return self.gate.blocked_for()

    def set_in_view(self, tunnel_ids: Iterable[str]) -> None:
        self.in_view = frozenset(tunnel_ids)

    def refresh(self, tunnel_ids: Iterable[str] = ()) -> None:
        """Fetch these (default: what is in view) at the next poll even if fresh: a reorder, never a bypass."""
        self._force = frozenset(tunnel_ids) or self.in_view or frozenset(self._watched or ())

    def next_poll_in(self) -> float:
        """Seconds until the next poll has something it may send: the budget's wait, or a block's."""
        return max(self.gate.blocked_for(), self.gate.wait_time())

    def next_poll_delay(self) -> float:
        """Seconds until the next poll: the interval, or longer for a block or the budget's wait. A poll that
        found no token at all (the minute was full a moment longer) goes again when one frees up, not a whole
        interval later."""
        wait = self.next_poll_in()
        plan = self.last_plan
        if plan is not None and plan.requests == 0 and plan.available == 0:
            return wait
        return max(self.interval, wait)

    # -- one poll ------------------------------------------------------------------------------------------------

    async def poll(self) -> PollOutcome:
        """One poll. Never raises an API error: failures come back in the outcome."""
        self._polled_at = self._now()
        try:
            snapshot = await self._poll()
        except HoldingBack as exc:
            return PollOutcome(None, holding=exc.message)
        except (ApiError, AccountChoiceNeeded) as exc:
            return PollOutcome(None, self._failed(exc), exc)
        return PollOutcome(snapshot, self._succeeded(snapshot))

    def _failed(self, exc: BaseException) -> list[ChangeEvent]:
        return self._streak.failed(self._now(), exc)

    def _succeeded(self, snapshot: Snapshot) -> list[ChangeEvent]:
        events = self._streak.succeeded(snapshot.fetched_at)
        if self._events:
            from tunneltop.changes.events import diff, without_first_sight

            events.extend(without_first_sight(diff(self.previous, snapshot)))
        self.previous = snapshot
        return events

    @property
    def failing(self) -> bool:
        return self._streak.failing

    async def _poll(self) -> Snapshot:
        self._field_sets = {}
        if self.account is None:
            self.account = await resolve_account(self.client, self._account_id)
        account = self.account
        sent = self.gate.sent
        listed = self._plan(connections=False).list_pages > 0
        if listed:
            started = self.gate.now()
            await self._read_list(account)
            self._list_at = started
            self.list_fetched_at = self._now()
        elif self._list_at is None:
            wait = max(self.gate.blocked_for(), self.gate.wait_time())
            if self.gate.blocked_for() > 0:
                raise RateLimitedError(
                    f"rate limited by Cloudflare: no request is sent for another {wait:.0f} s", retry_after=wait
                )
            raise HoldingBack(
                f"holding back to stay within tunneltop's request budget: the tunnel list in {wait:.0f} s",
                retry_after=wait,
            )
        if self.named and self.reach is not None:
            reach = self.reach
            self._size_list_share(sum(reach.cost(self._by_id[tid]) for tid in self._reach_due(reach)))
        plan = self._plan(reserve=self._reach_reserve())
        if not listed and not plan.requests and self.gate.blocked_for() > 0:
            wait = self.gate.blocked_for()
            raise RateLimitedError(
                f"rate limited by Cloudflare: no request is sent for another {wait:.0f} s", retry_after=wait
            )
        self._fresh = set()
        failed, self._local_ready = await asyncio.gather(
            self._fetch_connections(plan.connections, listed=listed), self._read_local()
        )
        if failed is None and self._streak.failing and self.gate.sent == sent:
            # While polls are failing, a poll that sent nothing (no token yet) read nothing: no recovery, a wait.
            wait = self.next_poll_in()
            raise HoldingBack(
                f"holding back to stay within tunneltop's request budget: the next request in {wait:.0f} s",
                retry_after=wait,
            )
        if self.reach is not None and failed is None and not self._streak.failing and not plan.saving:
            # After the connections, with what they left (and never what the list is saving up for). Not while polls
            # fail: a poll that read only this would pass for a recovery.
            due = [self._by_id[tid] for tid in self._reach_due(self.reach)]
            await self.reach.read(account.id, due, self._connectors_of(), self.gate.available())
        self._force = frozenset()
        snapshot = self.rules.apply(self._snapshot(account))
        if failed is not None:
            raise failed
        return snapshot

    async def _read_list(self, account: Account) -> None:
        if self.named and self._resolved and self._watched is not None and self._list_cost() < list_pages(
            self._total_tunnels or 0, self.planner.page_size
        ):
            # Fewer named tunnels than the list has pages: one filtered read each (deleted ones included, so a
            # tunnel deleted while watched says so).
            tunnels: list[Tunnel] = []
            problems: list[RecordProblem] = []
            for tid in self._watched:
                found, odd = await self.client.list_tunnels(
                    account.id, uuid=tid, include_deleted=None, cache=self._tunnel_records
                )
                tunnels.extend(t for t in found if t.id == tid)
                problems.extend(odd)
        else:
            tunnels, problems = await self.client.list_tunnels(account.id, cache=self._tunnel_records)
            self._total_tunnels = len(tunnels)
        if not self._resolved:
            self._resolve(tunnels)
        self._take_list(tunnels, problems)

    def _resolve(self, tunnels: Sequence[Tunnel]) -> None:
        found, errors = resolve_refs(self.refs, tunnels)
        self.usage_errors = errors
        self._watched = found
        self._resolved = True
        self._size_list_share()
        if not found:
            raise errors[0] if len(errors) == 1 else UsageError("; ".join(e.message for e in errors))

    def _take_list(self, tunnels: list[Tunnel], problems: Iterable[RecordProblem]) -> None:
        if self._watched is not None:
            listed = {t.id: t for t in tunnels}
            for tid in self._watched:
                if tid in listed:
                    self._known[tid] = listed[tid]
            # A watched tunnel the list no longer shows (deleted, or out of sight) stays, as last seen.
            tunnels = [self._known[tid] for tid in self._watched if tid in self._known]
            self._gone = {tid for tid in self._watched if tid not in listed}
        else:
            self._gone = set()
        self._tunnels, self._problems = tunnels, tuple(problems)
        self._by_id = {t.id: t for t in tunnels}
        self._fetched = {tid: f for tid, f in self._fetched.items() if tid in self._by_id}
        self._attempted = {tid: f.at for tid, f in self._fetched.items()}
        if self._watched is not None:
            self._order = [t.id for t in tunnels]  # the order they were named in
        else:
            # Worst status first: when all are equally stale, the interesting tunnels' details come first.
            ranked = sorted(tunnels, key=lambda t: _STATUS_RANK.get((t.status or "").lower(), 0))
            self._order = [t.id for t in ranked]
        self._skip = {
            t.id for t in tunnels if (t.status or "").lower() == "inactive" or t.deleted_at is not None
        } | self._gone

    async def _read_local(self) -> LocalReady | None:
        return None if self.local is None else await self.local.read()

    def _connectors_of(self) -> dict[str, tuple[Connector, ...] | None]:
        return {tid: f.connectors for tid, f in self._fetched.items()}

    def _reach_due(self, reach: ReachTracker) -> list[str]:
        view = self.in_view if self._watched is None else frozenset(self._watched)
        return reach.due(self.gate.now(), self._order, self._connectors_of(), in_view=view, skip=self._skip)

    def _reach_reserve(self) -> int:
        """Requests kept back from this poll's connections for a blast radius read (see poll/reach.py)."""
        if self.reach is None or self._streak.failing:
            return 0
        first = next(iter(self._reach_due(self.reach)), None)
        now = self.gate.now()
        return self.reach.reserve(now, self._by_id[first] if first is not None else None, self.gate.available(now))

    def _plan(self, *, connections: bool = True, reserve: int = 0) -> Plan:
        changed = []
        for tid, fetched in self._fetched.items():
            # A failed fetch is worth another try soon; a refusal is not (the token's permissions won't change).
            failed = fetched.error is not None and not fetched.error.startswith(REFUSED)
            if tid not in self._skip and (failed or fetched.signature != _signature(self._by_id[tid])):
                changed.append(tid)
        view = self.in_view if self._watched is None else frozenset(self._watched)
        now = self.gate.now()
        attempted = self._attempted
        if self._force:
            # A refresh (r, unpause): these count as due now; the budget still decides how many go.
            attempted = {tid: at for tid, at in attempted.items() if tid not in self._force}
        count = self._total_tunnels if self._total_tunnels is not None else len(self._order)
        list_at = self._list_at
        if self._watched is not None and list_at is not None:
            # Named tunnels go in cycles: the list, then each tunnel's connections, then the list again. A budget
            # tighter than planned (Cloudflare's count, other processes) then slows the cycle, rather than the
            # list taking every token on time and the connections starving.
            behind = any(attempted.get(tid, -math.inf) < list_at for tid in self._order if tid not in self._skip)
            list_at = now if behind else list_at
        elif list_at is not None:
            # The whole account: the list keeps to its share (half) when the budget is tighter than planned too.
            # While connection fetches are due, it waits for as many of them since it was read as it has pages,
            # rather than coming due every time a token does and the connections starving.
            ready = [attempted.get(tid, -math.inf) for tid in self._order if tid not in self._skip]
            since = sum(1 for at in ready if at >= list_at)
            due = any(at <= now - self.interval for at in ready)
            list_at = now if due and since < self._list_cost() else list_at
        plan = self.planner.plan(
            now,
            self._order,
            in_view=view | self._force,
            fetched_at=attempted,
            changed=changed,
            skip=self._skip,
            list_fetched_at=list_at,
            connections=connections,
            list_requests=self._list_cost() if self._resolved else None,
            tunnel_count=count,
            reserve=reserve,
        )
        self.last_plan = plan
        return plan

    async def _fetch_connections(self, tunnel_ids: Sequence[str], *, listed: bool = False) -> ApiError | None:
        """Fetch planned connections; the failure that ends the poll (a 429, or every fetch failing) or None.
        ``listed``: this poll read the tunnel list."""
        queue = list(tunnel_ids)
        queue.reverse()
        stop: list[ApiError] = []
        transient: list[ApiError] = []
        refused: list[ApiError] = []
        done = [0, 0]  # fetches tried, and of them those the budget had no token for

        async def worker() -> None:
            while queue and not stop:
                tunnel = self._by_id[queue.pop()]
                if not await self._fetch_one(tunnel, stop, transient, refused):
                    done[1] += 1
                done[0] += 1

        await asyncio.gather(*(worker() for _ in range(min(self._concurrency, len(queue)) or 1)))
        if stop:
            return stop[0]
        fetchable = sum(1 for tid in self._order if tid not in self._skip)  # never-run and gone ones have nothing
        if self.named and transient and len(transient) + done[1] == done[0] == fetchable:
            # Every named tunnel failed the same passing way (a 5xx, a timeout, success: false; the budget's lack of a
            # token for some is no success): a failed poll, so the screen keeps the last good data marked stale
            # instead of each tunnel going unknown.
            return transient[0]
        kind = self._streak.kind
        if kind is not None and not listed and not self._fresh:
            # While polls are failing, a poll that read nothing shows no recovery: the failure goes on when a fetch
            # it sent failed the passing way, or was refused while the streak is the credentials being refused (a
            # refusal alone is otherwise one tunnel's: narrow permissions).
            failures = transient + (refused if issubclass(kind, AuthError) else [])
            if failures:
                return failures[0]
        return None

    async def _fetch_one(
        self, tunnel: Tunnel, stop: list[ApiError], transient: list[ApiError], refused: list[ApiError]
    ) -> bool:
        """Fetch one tunnel's connections; False when no request could be sent for want of a token."""
        at = self.gate.now()
        previous = self._fetched.get(tunnel.id)
        try:
            cache = self._records.setdefault(tunnel.id, RecordCache())
            connectors, problems = await self.client.list_connectors(self.account.id, tunnel.id, cache)  # type: ignore[union-attr]
        except OverBudgetError:
            return False  # no token: it waits for a later poll (the plan said it would fit; another process won)
        except RateLimitedError as exc:
            stop.append(exc)
            return True
        except NotFoundError:
            error = GONE
        except AuthError as exc:
            refused.append(exc)
            error = REFUSED + exc.message
        except ApiError as exc:
            # success: false (on HTTP 200 too) passes like a 5xx: Cloudflare's "unknown error" is one.
            if exc.transient or isinstance(exc, RequestFailedError):
                transient.append(exc)
            error = exc.message
        else:
            fresh = tuple(connectors)
            before = previous.connectors if previous is not None else None
            if before is not None and same_objects(before, fresh):
                fresh = before  # nothing in them changed: later stages skip them by identity
            else:  # what validation left unshared of the new records' bookkeeping, shared across this poll's tunnels
                share_connectors(fresh, before or (), self._field_sets)
            self._fetched[tunnel.id] = _Fetched(fresh, tuple(problems), None, at, self._now(), _signature(tunnel))
            self._attempted[tunnel.id] = at
            self._fresh.add(tunnel.id)
            return True
        # A failed refresh keeps the connections fetched before for up to STALE_LIMIT: older, and the error says so.
        # Not a tunnel not found: it has none (as when the list no longer shows it), and must not look fine.
        kept: tuple[tuple[Connector, ...] | None, tuple[RecordProblem, ...], datetime | None]
        if (
            error != GONE
            and previous is not None
            and previous.at_wall is not None
            and self._polled_at - previous.at_wall <= STALE_LIMIT
        ):
            kept = (previous.connectors, previous.problems, previous.at_wall)
        else:
            kept = (None, (), None)
        self._fetched[tunnel.id] = _Fetched(kept[0], kept[1], error, at, kept[2], _signature(tunnel))
        self._attempted[tunnel.id] = at
        return True

    def _snapshot(self, account: Account) -> Snapshot:
        states: list[TunnelState] = []
        kept: dict[str, TunnelState] = {}
        for tunnel in self._tunnels:
            fetched = self._fetched.get(tunnel.id)
            connectors: tuple[Connector, ...] | None
            problems: tuple[RecordProblem, ...]
            error: str | None
            at: datetime | None
            if tunnel.id in self._gone:
                connectors, problems, error, at = None, (), GONE, None
            elif tunnel.deleted_at is not None:
                # Deleted (read by id): its connections went with it, whatever was read before; it is not read again.
                connectors, problems, error, at = (), (), None, None
            elif fetched is None:
                inactive = (tunnel.status or "").lower() == "inactive"
                connectors, problems, error, at = ((), (), None, None) if inactive else (None, (), None, None)
            else:
                connectors, problems, error, at = fetched.connectors, fetched.problems, fetched.error, fetched.at_wall
                if tunnel.id in self._fresh:
                    # Read by this very poll: "as of the snapshot" (None), so that an unchanged tunnel read again
                    # keeps the very same state object and every later stage skips it by identity.
                    at = None
            reach = self.reach.reach_of(tunnel.id) if self.reach is not None else None
            state = self._states.get(tunnel.id)
            if not (
                state is not None
                and state.connectors is connectors
                and state.error == error
                and state.fetched_at == at
                and state.reach is reach
                and (state.tunnel is tunnel or state.tunnel == tunnel)
            ):
                # Unchanged tunnels keep the very same state object: the change engine skips them at once.
                state = TunnelState(tunnel, connectors, problems, error, at, reach=reach)
            kept[tunnel.id] = state
            states.append(state)
        self._states = kept
        for gone in self._records.keys() - kept.keys():
            del self._records[gone]
        if self.reach is not None:
            self.reach.forget(kept)
        if not same_objects(states, self._last_tunnels):
            self._last_tunnels = tuple(states)  # else the same tuple: later stages tell "nothing changed" in O(1)
        return Snapshot(
            account_id=account.id,
            account_name=account.name,
            fetched_at=self._now(),
            tunnels=self._last_tunnels,
            problems=self._problems,
            local=self._local_ready,
        )

    def not_fetched(self, snapshot: Snapshot) -> list[str]:
        """Tunnels that ran but whose connections were never fetched (beyond the budget so far)."""
        return [
            s.tunnel.id
            for s in snapshot.tunnels
            if s.connectors is None and s.error is None and (s.tunnel.status or "").lower() != "inactive"
        ]

