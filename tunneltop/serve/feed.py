"""The events ``/api/v1/events`` streams: a bounded in-memory ring every client reads from at its own pace.

Each item has a sequence number; its server-sent-events id is ``<epoch>-<seq>``, where the epoch is drawn when the
server starts, so that an id from before a restart is never mistaken for one of this run's. A client that comes
back with ``Last-Event-ID`` resumes right after it while the ring still holds what followed; otherwise it is told
to start over (a ``reset`` event) and reads on from now. Memory is the ring's, whatever the number of clients or
their speed: a client keeps only its place in the ring, and one too slow to keep up falls off its end.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any

RING_EVENTS = 4096
RING_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class FeedItem:
    seq: int
    event: str  # the SSE event name: "change" or "poll"
    data: str  # one line of JSON (ensure_ascii: no raw newline or control character)


class EventFeed:
    def __init__(self, capacity: int = RING_EVENTS, max_bytes: int = RING_BYTES) -> None:
        self.epoch = secrets.token_hex(4)
        self.seq = 0  # the last item's sequence number (0: none yet)
        self.closed = False
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._items: deque[FeedItem] = deque()
        self._bytes = 0
        self._news = asyncio.Event()

    def publish(self, event: str, document: dict[str, Any]) -> FeedItem:
        self.seq += 1
        item = FeedItem(self.seq, event, json.dumps(document, ensure_ascii=True, separators=(",", ":")))
        self._items.append(item)
        self._bytes += len(item.data)
        while len(self._items) > self._capacity or (self._bytes > self._max_bytes and len(self._items) > 1):
            self._bytes -= len(self._items.popleft().data)
        self._wake()
        return item

    def close(self) -> None:
        """The server is stopping: every reader's wait ends."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        news, self._news = self._news, asyncio.Event()
        news.set()

    def event_id(self, seq: int) -> str:
        return f"{self.epoch}-{seq}"

    def resume_after(self, last_event_id: str | None) -> int | None:
        """Where a client that last saw ``last_event_id`` goes on from: the seq it saw, or None when the ring no
        longer holds what came next (or the id is not this run's)."""
        if last_event_id is None:
            return None
        epoch, _, number = last_event_id.strip().partition("-")
        if epoch != self.epoch or not number.isdigit():
            return None
        seq = int(number)
        if seq > self.seq or (seq < self.seq and self.since(seq) is None):
            return None
        return seq

    def since(self, seq: int) -> list[FeedItem] | None:
        """The items after ``seq``, or None when some of them already fell off the ring."""
        if seq >= self.seq:
            return []
        if not self._items or self._items[0].seq > seq + 1:
            return None
        start = seq + 1 - self._items[0].seq
        return list(itertools.islice(self._items, start, None))

    async def wait_after(self, seq: int, timeout: float) -> bool:
        """Wait until an item after ``seq`` is published or the feed closes; False when ``timeout`` passed first."""
        if self.seq > seq or self.closed:
            return True
        try:
            await asyncio.wait_for(self._news.wait(), timeout)
        except TimeoutError:
            return False
        return True
