"""The one failure-streak rule (``poll/streak.py``) that the poll engine (so ``--watch``, serve and the live view)
and the attach source both follow: ``poll_failed`` when a streak starts, when its kind changes and at least every
``FAILED_REPEAT`` seconds while it lasts; ``poll_recovered`` with its length when a poll succeeds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tunneltop.api.errors import NetworkError, RateLimitedError
from tunneltop.changes.events import EventKind
from tunneltop.poll.streak import FAILED_REPEAT, FailureStreak

T0 = datetime(2026, 12, 1, 3, 12, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_streak_says_its_start_a_new_kind_each_minute_and_its_end() -> None:
    streak = FailureStreak()
    assert not streak.failing and streak.kind is None and streak.succeeded(at(0)) == []

    first = streak.failed(at(0), NetworkError("the network is down"))
    assert [e.kind for e in first] == [EventKind.POLL_FAILED] and first[0].before is None
    assert streak.failing and streak.kind is NetworkError
    assert streak.failed(at(5), NetworkError("the network is down")) == [], "the same failure: quiet"

    changed = streak.failed(at(10), RateLimitedError("rate limited", retry_after=30))
    assert changed[0].after == "rate limited" and changed[0].before == {"failed_polls": 2, "since": at(0)}
    assert streak.kind is RateLimitedError
    assert streak.failed(at(10 + FAILED_REPEAT - 1), RateLimitedError("rate limited", retry_after=30)) == []
    repeated = streak.failed(at(10 + FAILED_REPEAT), RateLimitedError("rate limited", retry_after=30))
    assert [e.kind for e in repeated] == [EventKind.POLL_FAILED], "still failing after a minute: said again"

    recovered = streak.succeeded(at(100))
    assert [e.kind for e in recovered] == [EventKind.POLL_RECOVERED]
    assert recovered[0].before == "rate limited" and recovered[0].after == {"failed_polls": 5, "since": at(0)}
    assert not streak.failing and streak.succeeded(at(105)) == []
