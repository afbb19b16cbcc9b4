"""The recent change events, newest first, in bounded memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from tunneltop.changes.events import ChangeEvent

DEFAULT_MAXLEN = 5000
# The newest events the event log pane shows; the whole log (DEFAULT_MAXLEN) is kept for export.
SHOWN_EVENTS = 500


class EventLog:
    """A ring buffer of at most ``maxlen`` events (default 5,000): adding one more drops the oldest.

    Memory is bounded by ``maxlen`` whatever the churn; a long incident keeps only its latest events. Iteration
    and ``filter`` go newest first.
    """

    def __init__(self, maxlen: int = DEFAULT_MAXLEN) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, not {maxlen}")
        self._events: deque[ChangeEvent] = deque(maxlen=maxlen)
        self._added = 0  # every event ever added: numbers each one for good (see numbered)

    @property
    def maxlen(self) -> int:
        return self._events.maxlen or 0

    def append(self, event: ChangeEvent) -> None:
        self._events.append(event)
        self._added += 1

    def extend(self, events: Iterable[ChangeEvent]) -> None:
        """Add events in the order they happened (as ``diff`` returns them)."""
        events = list(events)
        self._events.extend(events)
        self._added += len(events)

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[ChangeEvent]:
        return reversed(self._events)

    def filter(self, predicate: Callable[[ChangeEvent], bool]) -> list[ChangeEvent]:
        """The events for which ``predicate`` holds, newest first."""
        return [e for e in reversed(self._events) if predicate(e)]

    def numbered(self, predicate: Callable[[ChangeEvent], bool], limit: int) -> list[tuple[int, ChangeEvent]]:
        """The newest ``limit`` events of ``filter``, each with its number: how many events were added before it, so
        it keeps its number while it is in the log (a view keyed by it sees new events come and old ones go as a
        diff)."""
        newest = self._added - 1
        matching = ((newest - n, e) for n, e in enumerate(reversed(self._events)) if predicate(e))
        return list(islice(matching, limit))

    def clear(self) -> None:
        self._events.clear()
