"""tunneltop's own request budget: how many API calls it may make now, on a clock it is given (pure, no I/O).

Cloudflare allows 1,200 requests per 5 minutes per *user*, shared with the dashboard and every other tool of that
user, and going over blocks every call for 5 minutes. tunneltop keeps to a share of that (default 60 requests per
minute, 25 %) with four limits, all of which must allow a request:

- a sliding window: never more than ``limit_per_minute`` requests in any 60 seconds;
- pacing: a token bucket refilled at ``limit_per_minute / 60`` per second and holding at most ``burst`` tokens,
  so a minute's budget is spread over the minute instead of spent in the first poll;
- Cloudflare's own count (the ``Ratelimit: "default";r=<remaining>;t=<reset>`` header on every answer): until the
  reset, tunneltop plans to use at most ``share`` of what remains, and spreads it evenly until the reset. With the
  whole quota left this is no constraint; when the dashboard or another tool has used most of it, tunneltop slows
  down in proportion, and with nothing left it stops until the reset;
- a block: after a 429 nothing is sent until ``Retry-After`` has passed.

Times are seconds on a monotonic clock (``time.monotonic`` in the app, a fake one in tests).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from tunneltop.api.ratelimit import RateLimit

# Cloudflare's documented limit: 1,200 requests per 300 seconds per user.
CLOUDFLARE_QUOTA = 1200
CLOUDFLARE_WINDOW = 300.0
CLOUDFLARE_PER_MINUTE = CLOUDFLARE_QUOTA * 60 / CLOUDFLARE_WINDOW  # 240
DEFAULT_LIMIT_PER_MINUTE = 60  # 25 % of Cloudflare's limit
WINDOW = 60.0
# The gate's last check counts sends a second longer (see ``sent_within``): a request reaches Cloudflare some
# milliseconds after it left, so a limit kept exactly at the sender could show one too many in 60 s at the server.
COUNTED = WINDOW + 0.25
# Whatever the budget, tunneltop never plans to use more than half of what Cloudflare says is left.
MAX_SHARE = 0.5
# A new Ratelimit observation whose reset lies this much later than the current one starts a new window.
_RESET_SLACK = 2.0


def room_wait(sent: Sequence[float], limit: int, window: float, now: float) -> float:
    """Seconds until fewer than ``limit`` of the ``sent`` times (sorted) lie in the last ``window`` seconds."""
    start = bisect.bisect_right(sent, now - window)
    excess = len(sent) - start - limit
    if excess < 0:
        return 0.0
    return max(0.0, sent[start + excess] + window - now)


@dataclass
class _Quota:
    """What Cloudflare said is left, as tunneltop's allowance until Cloudflare's window resets."""

    reset_at: float
    left: float  # requests tunneltop may still send before reset_at
    rate: float  # per second: ``left`` spread evenly until reset_at


class RequestBudget:
    """Which requests tunneltop may send, and when: see the module's docstring for the four limits."""

    def __init__(self, limit_per_minute: int = DEFAULT_LIMIT_PER_MINUTE, *, burst: float | None = None) -> None:
        if not isinstance(limit_per_minute, int) or isinstance(limit_per_minute, bool) or limit_per_minute < 1:
            raise ValueError(
                f"the request budget must be a whole number of requests per minute, not {limit_per_minute!r}"
            )
        self.limit_per_minute = limit_per_minute
        self._burst = float(burst) if burst is not None else max(1.0, limit_per_minute / 12)
        self._sent: list[float] = []  # send times, sorted, pruned to the last WINDOW seconds
        self._tokens = self._burst
        self._tokens_at: float | None = None
        self._quota: _Quota | None = None
        self.blocked_until: float | None = None
        self.last_ratelimit: RateLimit | None = None

    def __repr__(self) -> str:
        return f"RequestBudget(limit_per_minute={self.limit_per_minute}, burst={self._burst:g})"

    # -- settings ----------------------------------------------------------------------------------------------

    @property
    def rate(self) -> float:
        """The sustained rate the budget allows, requests per second (before Cloudflare's count lowers it)."""
        return self.limit_per_minute / WINDOW

    @property
    def burst(self) -> float:
        return self._burst

    @burst.setter
    def burst(self, value: float) -> None:
        """Requests that may go out at once (the planner sizes it to one poll interval's worth)."""
        self._burst = max(1.0, min(float(value), float(self.limit_per_minute)))
        # A budget not used yet starts full; one in use keeps what it holds, up to the new size.
        self._tokens = self._burst if self._tokens_at is None else min(self._tokens, self._burst)

    def share(self, ratelimit: RateLimit | None = None) -> float:
        """tunneltop's share of Cloudflare's limit: the budget over the quota (0.25 by default), at most 0.5."""
        per_minute = CLOUDFLARE_PER_MINUTE
        if ratelimit is not None and ratelimit.quota and ratelimit.window:
            per_minute = ratelimit.quota * WINDOW / ratelimit.window
        return min(MAX_SHARE, self.limit_per_minute / per_minute)

    # -- bookkeeping -------------------------------------------------------------------------------------------

    def _prune(self, now: float) -> None:
        cut = bisect.bisect_right(self._sent, now - COUNTED)
        if cut:
            del self._sent[:cut]

    def _quota_at(self, now: float) -> _Quota | None:
        quota = self._quota
        if quota is not None and now >= quota.reset_at:
            return None
        return quota

    def _tokens_after(self, now: float) -> float:
        """Tokens in the bucket at ``now`` (refill at Cloudflare's lowered rate until its reset, then the usual)."""
        if self._tokens_at is None or now <= self._tokens_at:
            return self._tokens
        start, tokens = self._tokens_at, self._tokens
        quota = self._quota
        if quota is not None and start < quota.reset_at:
            slow_until = min(now, quota.reset_at)
            tokens = min(self._slow_burst(quota), tokens + min(self.rate, quota.rate) * (slow_until - start))
            start = slow_until
        tokens += self.rate * (now - start)
        return min(self._burst, tokens)

    def _slow_burst(self, quota: _Quota) -> float:
        """While Cloudflare's count slows tunneltop down, its bursts shrink in proportion: spread, not spent."""
        return max(1.0, math.ceil(self._burst * min(1.0, quota.rate / self.rate) - 1e-9))

    def _refill(self, now: float) -> None:
        self._tokens = self._tokens_after(now)
        if self._tokens_at is None or now > self._tokens_at:
            self._tokens_at = now
        if self._quota is not None and now >= self._quota.reset_at:
            self._quota = None

    def record(self, at: float, count: int = 1) -> None:
        """Requests that went out at ``at`` (retries and extra pages too: they all count against the limit)."""
        self._refill(at)
        for _ in range(count):
            bisect.insort(self._sent, at)
        self._tokens -= count
        if self._quota is not None:
            self._quota.left -= count

    def resend(self, sent_at: float, now: float) -> None:
        """A request recorded at ``sent_at`` was answered at ``now``: count it from then. The server saw it at some
        moment in between (a first request may wait long for a connection), so the minute stays kept there too."""
        index = bisect.bisect_left(self._sent, sent_at)
        if index < len(self._sent) and self._sent[index] == sent_at:
            del self._sent[index]
            bisect.insort(self._sent, max(sent_at, now))

    def block(self, seconds: float, now: float) -> None:
        """After a 429: send nothing for ``seconds`` (Retry-After). A longer block already running stays."""
        until = now + max(0.0, seconds)
        if self.blocked_until is None or until > self.blocked_until:
            self.blocked_until = until

    def observe_ratelimit(self, ratelimit: RateLimit | None, now: float) -> None:
        """Take in Cloudflare's ``Ratelimit`` header: plan to use at most ``share`` of what remains before reset.

        Within one Cloudflare window the allowance only shrinks (our own requests count down from it, and a
        lower ``remaining`` seen later tightens it); a window that resets starts a new allowance.
        """
        if ratelimit is None or ratelimit.remaining is None:
            return
        self.last_ratelimit = ratelimit
        reset = ratelimit.reset if ratelimit.reset is not None else ratelimit.window
        if reset is None or reset <= 0:
            return
        self._refill(now)
        reset_at = now + reset
        if ratelimit.remaining <= 0:
            self.block(reset, now)
        allowance = math.floor(self.share(ratelimit) * ratelimit.remaining)
        quota = self._quota_at(now)
        if quota is None or reset_at > quota.reset_at + _RESET_SLACK:
            quota = _Quota(reset_at=reset_at, left=allowance, rate=0.0)
        else:
            quota.left = min(quota.left, allowance)
            quota.reset_at = min(quota.reset_at, reset_at)
        quota.rate = max(0.0, quota.left) / max(1e-9, quota.reset_at - now)
        self._quota = quota
        self._tokens = min(self._tokens, self._slow_burst(quota))

    # -- questions ---------------------------------------------------------------------------------------------

    def blocked_for(self, now: float) -> float:
        """Seconds until a 429's Retry-After (or an exhausted Cloudflare window) has passed; 0 when not blocked."""
        if self.blocked_until is None:
            return 0.0
        return max(0.0, self.blocked_until - now)

    def used_per_minute(self, now: float) -> int:
        """Requests sent in the last 60 seconds."""
        return len(self._sent) - bisect.bisect_right(self._sent, now - WINDOW)

    def sent_within(self, seconds: float, now: float) -> int:
        """Requests sent in the last ``seconds`` (at most COUNTED: older sends are forgotten)."""
        return len(self._sent) - bisect.bisect_right(self._sent, now - seconds)

    def wait_for_room(self, seconds: float, now: float) -> float:
        """Seconds until fewer than ``limit_per_minute`` sends lie in the last ``seconds`` (0: there is room)."""
        self._prune(now)
        return room_wait(self._sent, self.limit_per_minute, seconds, now)

    def available(self, now: float) -> int:
        """How many requests may go out now without breaking any of the four limits."""
        if self.blocked_for(now) > 0:
            return 0
        room = self.limit_per_minute - self.used_per_minute(now)
        allowed = min(room, math.floor(self._tokens_after(now) + 1e-9))
        quota = self._quota_at(now)
        if quota is not None:
            allowed = min(allowed, math.floor(quota.left + 1e-9))
        return max(0, allowed)

    def can_send(self, now: float) -> bool:
        return self.available(now) >= 1

    def wait_time(self, now: float) -> float:
        """Seconds until ``can_send`` becomes true (0 if it is)."""
        # (Sends are kept for COUNTED seconds: the minute's room is asked of the last WINDOW seconds only.)
        waits = [self.blocked_for(now), self.wait_for_room(WINDOW, now)]
        quota = self._quota_at(now)
        if quota is not None and quota.left < 1 - 1e-9:
            waits.append(quota.reset_at - now)
        tokens = self._tokens_after(now)
        if tokens < 1 - 1e-9:
            need = 1 - tokens
            slow = min(self.rate, quota.rate) if quota is not None else self.rate
            slow_for = (quota.reset_at - now) if quota is not None else math.inf
            if slow > 0 and need / slow <= slow_for:
                waits.append(need / slow)
            else:
                waits.append(slow_for + (need - slow * slow_for) / self.rate)
        return max(0.0, *waits)
