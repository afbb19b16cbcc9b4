"""The event log: bounded, newest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tunneltop.changes.events import ChangeEvent, EventKind, Severity, poll_failed
from tunneltop.views.history import DEFAULT_MAXLEN, EventLog

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def events(n: int) -> list[ChangeEvent]:
    return [poll_failed(T0 + timedelta(seconds=i), f"failure {i}") for i in range(n)]


def test_newest_first() -> None:
    log = EventLog()
    log.extend(events(3))
    log.append(ChangeEvent(T0 + timedelta(seconds=9), EventKind.POLL_RECOVERED, Severity.OK))
    assert [e.at.second for e in log] == [9, 2, 1, 0]
    assert len(log) == 4


def test_bounded_drops_the_oldest() -> None:
    log = EventLog(maxlen=5)
    log.extend(events(12))
    assert len(log) == 5 == log.maxlen
    assert [e.after for e in log] == [f"failure {i}" for i in (11, 10, 9, 8, 7)]


def test_default_bound() -> None:
    log = EventLog()
    log.extend(events(DEFAULT_MAXLEN + 10))
    assert len(log) == DEFAULT_MAXLEN == 5000
    assert next(iter(log)).after == f"failure {DEFAULT_MAXLEN + 9}"


def test_filter_newest_first() -> None:
    log = EventLog()
    log.extend(events(6))
    assert [e.after for e in log.filter(lambda e: e.at.second % 2 == 0)] == ["failure 4", "failure 2", "failure 0"]


def test_clear_and_invalid_bound() -> None:
    log = EventLog(maxlen=2)
    log.extend(events(2))
    log.clear()
    assert len(log) == 0 and list(log) == []
    with pytest.raises(ValueError):
        EventLog(maxlen=0)


def test_numbered_events_keep_their_numbers_as_events_come_and_the_oldest_go() -> None:
    # The event log pane is keyed by these numbers: a poll's new events arrive and the oldest leave as a diff.
    log = EventLog(maxlen=5)
    batch = events(12)
    log.extend(batch[:3])
    assert log.numbered(lambda e: True, 10) == [(2, batch[2]), (1, batch[1]), (0, batch[0])]
    log.extend(batch[3:8])  # 3 and 4 stay, 0-2 are dropped
    log.append(batch[8])
    assert log.numbered(lambda e: True, 10) == [(n, batch[n]) for n in (8, 7, 6, 5, 4)]
    assert log.numbered(lambda e: e.at.second % 2 == 0, 2) == [(8, batch[8]), (6, batch[6])]  # the newest 2
    log.clear()
    log.extend(batch[9:])
    assert log.numbered(lambda e: True, 10) == [(n, batch[n]) for n in (11, 10, 9)]
