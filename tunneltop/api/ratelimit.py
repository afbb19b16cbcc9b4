"""Cloudflare's rate-limit headers (IETF draft ``RateLimit``/``RateLimit-Policy`` structured fields).

``Ratelimit: "default";r=50;t=30`` means 50 requests remain in this window, which resets in 30 seconds.
``Ratelimit-Policy: "default";q=1200;w=300`` means 1,200 requests per 300 seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RateLimit:
    remaining: int | None = None
    reset: float | None = None
    quota: int | None = None
    window: float | None = None


def _params(value: str) -> dict[str, str]:
    """The ``key=value`` parameters of the first item of a structured-field list."""
    first = value.split(",", 1)[0]
    params: dict[str, str] = {}
    for part in first.split(";")[1:]:
        key, sep, raw = part.strip().partition("=")
        if sep:
            params[key.strip().lower()] = raw.strip().strip('"')
    return params


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    # inf/nan are junk here: an infinite wait would block forever, and int(inf) raises.
    return value if math.isfinite(value) and value >= 0 else None


def parse_ratelimit(headers: Mapping[str, str]) -> RateLimit | None:
    """Read both headers; None when the response carried neither (or nothing readable)."""
    state = headers.get("ratelimit")
    policy = headers.get("ratelimit-policy")
    if state is None and policy is None:
        return None
    sp = _params(state) if state else {}
    pp = _params(policy) if policy else {}
    remaining = _number(sp.get("r"))
    quota = _number(pp.get("q"))
    result = RateLimit(
        remaining=None if remaining is None else int(remaining),
        reset=_number(sp.get("t")),
        quota=None if quota is None else int(quota),
        window=_number(pp.get("w")),
    )
    return None if result == RateLimit() else result


def parse_retry_after(value: str | None, now: datetime, default: float = 60.0) -> float:
    """Seconds to wait after a 429: delta-seconds (what Cloudflare sends) or an HTTP date."""
    number = _number(value)
    if number is not None:
        return number
    if value:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return default
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - now).total_seconds())
    return default
