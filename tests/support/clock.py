"""The one fake clock: time moves only when the code under test sleeps on it or the test moves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

WALL_START = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    """A monotonic clock (call it: seconds, a float) and the wall clock of the same moment (``wall()``: an aware
    datetime, ``wall_start`` when the monotonic reading is ``start``), both moved together.

    Hand ``clock`` to what reads a monotonic clock (the client, its gate, the ledger, the app's countdown),
    ``clock.wall`` to what reads a wall clock (the stand-in, the engine's ages, the app's header), and
    ``clock.sleep`` to what sleeps: a sleep is recorded in ``sleeps`` and moves the clock at once."""

    def __init__(self, start: float = 1000.0, wall_start: datetime = WALL_START) -> None:
        self.start = start
        self.now = start
        self.wall_start = wall_start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return self.wall_start + timedelta(seconds=self.now - self.start)

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def no_sleep(seconds: float) -> None:
    """A sleep that returns at once: back-off and Retry-After waits cost no real time."""
    return None
