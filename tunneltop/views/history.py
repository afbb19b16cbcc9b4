"""The recent change events, newest first, in bounded memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator

from tunneltop.changes.events import ChangeEvent

DEFAULT_MAXLEN = 5000


class EventLog:
    """A ring buffer of at most ``maxlen`` events (default 5,000): adding one more drops the oldest.

    Memory is bounded by ``maxlen`` whatever the churn; a long incident keeps only its latest events. Iteration
    and ``filter`` go newest first.
    """

    def __init__(self, maxlen: int = DEFAULT_MAXLEN) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, not {maxlen}")
        self._events: deque[ChangeEvent] = deque(maxlen=maxlen)

    @property
    def maxlen(self) -> int:
        return self._events.maxlen or 0

    def append(self, event: ChangeEvent) -> None:
        self._events.append(event)

    def extend(self, events: Iterable[ChangeEvent]) -> None:
        """Add events in the order they happened (as ``diff`` returns them)."""
        self._events.extend(events)

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[ChangeEvent]:
        return reversed(self._events)

    def filter(self, predicate: Callable[[ChangeEvent], bool]) -> list[ChangeEvent]:
        """The events for which ``predicate`` holds, newest first."""
        return [e for e in reversed(self._events) if predicate(e)]

    def clear(self) -> None:
        self._events.clear()
