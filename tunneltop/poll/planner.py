"""Which API calls one poll of a whole account makes, so that tunneltop stays inside its request budget.

Health comes from the tunnel list (one request per 1,000 tunnels, every page), fetched at most once per interval
and never taking more than ``list_share`` of the budget. What is left goes to connection fetches, one request per
tunnel, for the tunnels that are *due* (their connection data is at least one interval old, or was never fetched):

- *priority*: the tunnels in view (stalest first), then tunnels whose list entry changed since their connections
  were fetched (status, last active/inactive time) or whose last fetch failed;
- *rotation*: every due tunnel, stalest first (never fetched first), i.e. round-robin over the account.

Priority goes first, but it earns its slots: ``1 - rotation_share`` of a slot for every slot planned, holding at
most ``priority_burst`` (half a minute's budget: 30 by default). A screenful of tunnels in view is fetched before
anything else; more than that, or a storm of changes, takes no more than its share, and the rotation keeps at least
``rotation_share`` of the connection fetches: every tunnel's connection data is at most ``staleness_bound`` seconds
old. Tunnels that never ran (status ``inactive``) have no connections and cost nothing.

Whatever else a poll reads (a tunnel's blast radius, ``poll/reach.py``) comes after the connections, from what they
leave: never from what the list is saving up for (``Plan.saving``), and from the connections' own share only as a
``reserve`` the caller asks for.

The planner is pure: it is told the facts (which tunnels, when each was fetched) and the time, and answers with a
``Plan``; the caller makes the calls, each of which takes its token from the client's ``RequestGate``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = ["Budget", "Call", "Plan", "Planner"]


class Budget(Protocol):
    """What the planner asks of the request budget (``RequestBudget``, or the client's ``RequestGate``)."""

    @property
    def limit_per_minute(self) -> int: ...  # read-only: RequestGate's is a property

    burst: float

    def available(self, now: float) -> int: ...

TUNNEL_PAGE_SIZE = 1000  # the list endpoint's largest page
DEFAULT_INTERVAL = 5.0
# At most this share of the budget goes to the tunnel list, however short the interval.
LIST_SHARE = 0.5
# At least this share of the connection fetches goes to the round-robin rotation when priority wants more.
ROTATION_SHARE = 0.5
# Polls arrive a little early or late; a tunnel this close to due counts as due.
_DUE_SLACK = 0.05


@dataclass(frozen=True)
class Call:
    """One planned API call: the tunnel list (``requests`` pages) or one tunnel's connections."""

    kind: Literal["tunnel_list", "connections"]
    tunnel_id: str | None = None
    requests: int = 1


@dataclass(frozen=True)
class Plan:
    """The calls of one poll, in order: the list first, then connections (priority ones first)."""

    at: float
    list_pages: int
    connections: tuple[str, ...]
    due: int  # connection fetches that were due (planned or not)
    available: int  # requests the budget allowed when this was planned
    # The list is due and the budget is saving up for it: nothing else may spend. (Not compared: what a plan calls.)
    saving: bool = field(default=False, compare=False)

    @property
    def calls(self) -> tuple[Call, ...]:
        head = (Call("tunnel_list", None, self.list_pages),) if self.list_pages else ()
        return head + tuple(Call("connections", tid) for tid in self.connections)

    @property
    def requests(self) -> int:
        return self.list_pages + len(self.connections)

    @property
    def deferred(self) -> int:
        """Due connection fetches left for later polls because the budget was spent."""
        return self.due - len(self.connections)


def list_pages(tunnel_count: int, page_size: int = TUNNEL_PAGE_SIZE) -> int:
    """Requests one full read of the tunnel list costs (at least one, even for an empty account)."""
    return max(1, math.ceil(tunnel_count / page_size))


class Planner:
    """Plans each poll's calls over a ``RequestBudget``; see the module's docstring for the rules."""

    def __init__(
        self,
        budget: Budget,
        interval: float = DEFAULT_INTERVAL,
        *,
        page_size: int = TUNNEL_PAGE_SIZE,
        list_share: float = LIST_SHARE,
        rotation_share: float = ROTATION_SHARE,
        min_burst: float = 1.0,
    ) -> None:
        if not 0 < list_share <= 1 or not 0 < rotation_share <= 1:
            raise ValueError("list_share and rotation_share must be in (0, 1]")
        self.budget = budget
        # The live screen asks for a larger floor, so a small account's first screen is fetched in one go.
        self.min_burst = min_burst
        self.page_size = page_size
        self.list_share = list_share
        self.rotation_share = rotation_share
        self._priority_credit = math.inf  # slots priority may take ahead of the rotation (capped per plan)
        self.interval = interval

    @property
    def interval(self) -> float:
        return self._interval

    @interval.setter
    def interval(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"the poll interval must be positive, not {seconds!r}")
        self._interval = float(seconds)
        self._size_burst(1)

    def _size_burst(self, pages: int) -> None:
        # One interval's worth may go out at once, and always a whole read of the list.
        self.budget.burst = max(pages, self.budget.limit_per_minute * self._interval / 60, self.min_burst)

    # -- rates -------------------------------------------------------------------------------------------------

    def list_period(self, tunnel_count: int, pages: int | None = None) -> float:
        """Seconds between reads of the tunnel list: the interval, or longer if the list would take too much.
        ``pages``: what one read costs, when not one request per 1,000 tunnels (named tunnels read one by one)."""
        pages = list_pages(tunnel_count, self.page_size) if pages is None else pages
        return max(self._interval, pages * 60 / (self.budget.limit_per_minute * self.list_share))

    def connection_rate(self, tunnel_count: int, pages: int | None = None) -> float:
        """Connection fetches per minute the budget leaves once the list is paid for."""
        pages = list_pages(tunnel_count, self.page_size) if pages is None else pages
        return max(0.0, self.budget.limit_per_minute - pages * 60 / self.list_period(tunnel_count, pages))

    @property
    def priority_burst(self) -> float:
        """Priority fetches that may go ahead of the rotation at once: half a minute's budget."""
        return max(1.0, self.budget.limit_per_minute / 2)

    def staleness_bound(self, active_tunnels: int, tunnel_count: int | None = None, *, typical: bool = False) -> float:
        """Seconds within which every active tunnel's connections are refreshed (no 429, Cloudflare quota left).

        A tunnel waits for at most every other active tunnel once, plus an interval's rounding. The worst case
        assumes priority (tunnels in view, changed tunnels) takes every slot it can: its burst, then all but
        ``rotation_share`` of the connection fetches. ``typical=True`` assumes it takes none.
        """
        rate = self.connection_rate(active_tunnels if tunnel_count is None else tunnel_count) / 60
        ahead: float = active_tunnels
        if not typical:
            rate *= self.rotation_share
            ahead += self.priority_burst
        if rate <= 0:
            return math.inf
        return ahead / rate + self._interval

    # -- the plan ----------------------------------------------------------------------------------------------

    def plan(
        self,
        now: float,
        tunnel_ids: Sequence[str],
        *,
        in_view: Collection[str] = (),
        fetched_at: Mapping[str, float] | None = None,
        changed: Collection[str] = (),
        skip: Collection[str] = (),
        list_fetched_at: float | None = None,
        connections: bool = True,
        list_requests: int | None = None,
        tunnel_count: int | None = None,
        reserve: int = 0,
    ) -> Plan:
        """The calls for a poll at ``now``.

        ``tunnel_ids``: the tunnels the last list showed, in the order ties are broken (worst status first works
        well: their details arrive first). ``fetched_at``: when each tunnel's connections were last fetched
        (attempted), on the budget's clock. ``skip``: tunnels needing no connection fetch (never ran).
        ``list_fetched_at``: when the list was last read (None: never). ``connections=False`` plans the list
        alone (to read it first and plan the connections of the tunnels it shows). ``tunnel_count``: the
        account's tunnels when ``tunnel_ids`` are only some (named); ``list_requests``: what one read of the list
        costs, when not one request per 1,000 of them. ``reserve``: requests kept back from the connections for
        something else (a tunnel's blast radius, see the engine), never from the list.
        """
        fetched = fetched_at or {}
        count = len(tunnel_ids) if tunnel_count is None else tunnel_count
        pages = list_pages(count, self.page_size) if list_requests is None else list_requests
        self._size_burst(pages)
        available = self.budget.available(now)
        slack = self._interval * _DUE_SLACK
        list_due = list_fetched_at is None or now - list_fetched_at >= self.list_period(count, pages) - slack
        planned_pages = 0
        if list_due:
            if available < pages:
                # Health first: save up for the list rather than spend on connections.
                return Plan(now, 0, (), 0, available, saving=True)
            planned_pages = pages
        slots = available - planned_pages - max(0, reserve) if connections else 0
        due_before = now - self._interval + slack

        never = -math.inf
        last = {tid: fetched.get(tid, never) for tid in tunnel_ids}  # one look-up each: this runs every poll
        due = [tid for tid in tunnel_ids if last[tid] <= due_before and tid not in skip]
        if slots <= 0 or not due:
            return Plan(now, planned_pages, (), len(due), available)
        rotation = sorted(due, key=last.__getitem__)  # stable: ties keep the caller's order
        view = set(in_view)
        changed_set = set(changed)
        priority = [t for t in rotation if t in view]
        priority += [t for t in rotation if t in changed_set and t not in view]
        chosen: list[str] = []
        taken: set[str] = set()
        cap = self.priority_burst
        self._priority_credit = min(self._priority_credit, cap)

        def take(queue: Iterator[str]) -> bool:
            tid = next((t for t in queue if t not in taken), None)
            if tid is not None:
                chosen.append(tid)
                taken.add(tid)
            return tid is not None

        prio, rota = iter(priority), iter(rotation)
        while len(chosen) < slots:
            # Priority goes first while it has credit; it earns (1 - rotation_share) per slot, up to priority_burst,
            # so a screenful of tunnels in view goes at once but a crowd cannot take more than its share.
            if self._priority_credit >= 1 and take(prio):
                self._priority_credit -= 1
            elif not take(rota) and not take(prio):
                break
            self._priority_credit = min(cap, self._priority_credit + 1 - self.rotation_share)
        # Priority calls go out first within the poll.
        first = [t for t in chosen if t in view or t in changed_set]
        rest = [t for t in chosen if not (t in view or t in changed_set)]
        return Plan(now, planned_pages, tuple(first + rest), len(due), available)
