"""The one gate every HTTP request passes: a token from the request budget, or no request at all.

The client asks the gate before each request it sends (pages, retries, name look-ups, ``/accounts``, token checks:
every one) and hands it every answer's ``Ratelimit`` headers and every 429's ``Retry-After``. Two ledgers of sends
stand behind it:

- ``RequestBudget`` (this process): the sliding minute, the pacing bucket, Cloudflare's own count and 429 blocks;
- a ``Ledger`` (every tunneltop process using the same credential on this machine): the same minute counted across
  processes, and a 429 seen by one process blocks them all. The demo and the fallback use a process-local one.

A request the gate refuses is not queued: the caller gets ``OverBudgetError`` (our own budget is spent) or
``RateLimitedError`` (Cloudflare said stop), and the poll that wanted it is reported as failed or deferred.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tunneltop.api.budget import COUNTED, DEFAULT_LIMIT_PER_MINUTE, RequestBudget, room_wait
from tunneltop.api.errors import OverBudgetError, RateLimitedError
from tunneltop.api.ledger import (
    WINDOW,
    Ledger,
    LedgerUnavailable,
    LedgerView,
    LocalLedger,
    SharedLedger,
    ledger_dir,
    ledger_name,
)
from tunneltop.api.ratelimit import RateLimit

# At most half of Cloudflare's 240 requests per minute per user: the dashboard and other tools share the rest.
MAX_LIMIT_PER_MINUTE = 120


@dataclass(frozen=True)
class BudgetStatus:
    """The figures every front end shows: requests in the last minute (every process on this credential), the
    budget, a block's countdown, and how many tunneltop processes share the budget."""

    used_per_minute: int
    limit_per_minute: int
    blocked_for: float
    processes: int = 1
    deferred: int = 0  # due fetches the last poll left for later (set by the engine)

    def __str__(self) -> str:
        text = f"API {self.used_per_minute}/{self.limit_per_minute} per min"
        if self.processes > 1:
            text += f" (shared by {self.processes} tunneltop processes)"
        if self.blocked_for > 0:
            text += f" · rate limited: next request in {self.blocked_for:.0f} s"
        return text

    def to_json(self) -> dict[str, object]:
        return {
            "used_per_minute": self.used_per_minute,
            "limit_per_minute": self.limit_per_minute,
            "blocked_for": round(self.blocked_for, 1),
            "processes": self.processes,
        }


class RequestGate:
    """One request budget for every request of this process, and through ``ledger`` of this machine.

    Thread-safe: the live view's engine sends from its own thread (``poll/threaded.py``) while the screen reads the
    figures, so every question and every send holds one lock (the budget's lists are not safe to share otherwise).
    """

    def __init__(
        self,
        limit_per_minute: int = DEFAULT_LIMIT_PER_MINUTE,
        *,
        ledger: Ledger | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] | None = None,
    ) -> None:
        self.budget = RequestBudget(limit_per_minute)
        self._clock = clock
        # The ledger's times are its own clock's (wall time across processes); the budget's are ``clock``'s.
        self._wall = wall if wall is not None else (time.time if ledger is not None else clock)
        self.ledger: Ledger = ledger if ledger is not None else LocalLedger(clock=self._wall)
        self.ledger.register()
        self._lock = threading.RLock()
        self.sent = 0  # requests this gate let through (tests and figures read it)
        self.refused = 0

    def __repr__(self) -> str:
        return f"RequestGate(limit_per_minute={self.limit_per_minute})"

    @property
    def limit_per_minute(self) -> int:
        return self.budget.limit_per_minute

    @property
    def burst(self) -> float:
        return self.budget.burst

    @burst.setter
    def burst(self, value: float) -> None:
        with self._lock:
            self.budget.burst = value

    def now(self) -> float:
        return self._clock()

    # -- questions the planner and the front ends ask -----------------------------------------------------------

    def _shared(self) -> LedgerView:
        return self.ledger.view()

    def _shared_used(self, view: LedgerView) -> int:
        cut = self._wall() - WINDOW
        return sum(1 for at in view.sent if at > cut)

    def _shared_block(self, view: LedgerView) -> float:
        if view.blocked_until is None:
            return 0.0
        return max(0.0, view.blocked_until - self._wall())

    def blocked_for(self, now: float | None = None) -> float:
        """Seconds until a 429 (this process's or another's) or an exhausted Cloudflare window has passed."""
        with self._lock:
            at = self._clock() if now is None else now
            return max(self.budget.blocked_for(at), self._shared_block(self._shared()))

    def available(self, now: float | None = None) -> int:
        """Requests that may go out now: this process's limits, and the minute shared with other processes."""
        with self._lock:
            at = self._clock() if now is None else now
            view = self._shared()
            if self._shared_block(view) > 0:
                return 0
            own = self.limit_per_minute - self.budget.sent_within(COUNTED, at)  # as ``acquire`` will count them
            return max(0, min(self.budget.available(at), own, self.limit_per_minute - self._shared_used(view)))

    def wait_time(self, now: float | None = None) -> float:
        """Seconds until one request may go out (0 when one may now)."""
        with self._lock:
            at = self._clock() if now is None else now
            view = self._shared()
            return max(
                self.budget.wait_time(at),
                self._shared_block(view),
                self.budget.wait_for_room(COUNTED, at),
                room_wait(sorted(view.sent), self.limit_per_minute, WINDOW, self._wall()),
            )

    def status(self, deferred: int = 0) -> BudgetStatus:
        with self._lock:
            view = self._shared()
            at = self._clock()
            used = max(self._shared_used(view), self.budget.used_per_minute(at))
            blocked = max(self.budget.blocked_for(at), self._shared_block(view))
        return BudgetStatus(used, self.limit_per_minute, blocked, max(1, view.processes), deferred)

    # -- the gate ---------------------------------------------------------------------------------------------

    def acquire(self, path: str) -> float:
        """Take one token for a request to ``path``, or raise: nothing is sent without one. Returns the ticket to
        hand back to ``answered``."""
        with self._lock:
            return self._acquire(path)

    def _acquire(self, path: str) -> float:
        now = self._clock()
        blocked = self.blocked_for(now)
        if blocked > 0:
            raise RateLimitedError(
                f"rate limited by Cloudflare: no request is sent for another {math.ceil(blocked):.0f} s",
                retry_after=blocked,
                status=429,
                path=path,
            )
        # The plan kept the minute; this last check keeps it with a quarter second of slack (COUNTED) for the way
        # to the server, and across processes (the ledger counts the same way).
        over = self.budget.sent_within(COUNTED, now) >= self.limit_per_minute
        if over or not self.budget.can_send(now) or not self.ledger.reserve(self.limit_per_minute):
            self.refused += 1
            wait = self.wait_time(now)
            shared = self._shared().processes
            who = f" (shared by {shared} tunneltop processes)" if shared > 1 else ""
            raise OverBudgetError(
                f"tunneltop's own request budget of {self.limit_per_minute} per minute{who} is spent: "
                f"the next request may go in {math.ceil(wait):.0f} s",
                retry_after=wait,
                path=path,
            )
        self.budget.record(now)
        self.sent += 1
        return now

    def answered(self, ticket: float) -> None:
        """The request whose token was taken at ``ticket`` has its answer (or failed): count it from now."""
        with self._lock:
            self.budget.resend(ticket, self._clock())

    def observe(self, ratelimit: RateLimit | None, retry_after: float | None = None) -> None:
        """An answer came: take in Cloudflare's count, and after a 429 block every process for Retry-After."""
        with self._lock:
            now = self._clock()
            if ratelimit is not None:
                self.budget.observe_ratelimit(ratelimit, now)
                if ratelimit.remaining is not None and ratelimit.remaining <= 0 and ratelimit.reset:
                    self.ledger.block_until(self._wall() + ratelimit.reset)
            if retry_after is not None:
                self.budget.block(retry_after, now)
                self.ledger.block_until(self._wall() + retry_after)

    def close(self) -> None:
        self.ledger.close()


def shared_ledger(identity: str | None, env: Mapping[str, str]) -> tuple[Path | None, str | None]:
    """The ledger file every process with this credential shares, or None (and why) when it cannot be used.

    ``identity`` is the credential's identity (it may hold the secret: only its hash names the file). None: no
    credential (the demo), which keeps a process-local budget.
    """
    if identity is None:
        return None, None
    path = ledger_dir(env) / ledger_name(identity)
    try:
        ledger = SharedLedger(path)
        ledger.view()  # creates it, or says why it cannot be
    except LedgerUnavailable as exc:
        return None, f"the request budget is not shared with other tunneltop processes: {exc}"
    return path, None
