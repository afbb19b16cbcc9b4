"""The request-budget rig: the stand-in Cloudflare on a ``FakeClock`` behind a ``Doorman``, its front ends
(engine, ``run_once``/``--watch`` targets, the real ``--watch`` loop) on the same clock, and the measures of what
reached it (the busiest 60 and 300 seconds).

Between the client and the stand-in sits the ``Doorman`` transport: a request the client's gate did not grant a
token for (no side door: every request takes one) is refused with a 599 and noted.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.support.clock import FakeClock
from tunneltop import stream as stream_module
from tunneltop.api.client import CloudflareClient
from tunneltop.api.gate import RequestGate
from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.simulator import SimulatedAccount
from tunneltop.demo.transport import DEMO_BASE_URL, DemoTransport
from tunneltop.poll.engine import PollEngine, PollOutcome
from tunneltop.poll.target import Target
from tunneltop.stream import watch_stream

START = datetime(2026, 11, 28, 12, tzinfo=UTC)
T0 = 1000.0  # the fake clock's reading at START (FakeClock(T0)'s wall clock reads START)
# The demo account's tunnels that are not deleted (office-router-new never ran: it has no connections to fetch).
DEMO_NAMES = ["web-prod", "api-staging", "k8s-ingress-eu", "home-lab", "batch-etl", "office-router-new"]


def max_in_window(times: list[float], window: float = 60.0) -> int:
    """The most ``times`` that fall in any ``window`` seconds."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


class Doorman(httpx.AsyncBaseTransport):
    """Passes a request on to the stand-in only if a gate granted a token for it; any other is refused (599) and
    noted in ``side_door``. ``arrived`` never exceeds the tokens granted (the sum of the gates' ``sent``)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, gates: Iterable[RequestGate] = ()) -> None:
        self.inner = inner
        self.gates: list[RequestGate] = list(gates)
        self.arrived = 0
        self.side_door: list[str] = []

    @property
    def granted(self) -> int:
        return sum(gate.sent for gate in self.gates)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.arrived + 1 > self.granted:
            self.side_door.append(request.url.path)
            return httpx.Response(599, request=request)
        self.arrived += 1
        return await self.inner.handle_async_request(request)


class Stand:
    """The stand-in Cloudflare on the fake clock, behind a Doorman."""

    def __init__(
        self,
        clock: FakeClock,
        *,
        tunnels: int | None = None,
        freeze: bool = False,
        seed: int = 7,
    ) -> None:
        self.clock = clock
        self.sim = SimulatedAccount(seed=seed, start=clock.wall_start, tunnels=tunnels, connectors_per_tunnel=1)
        if freeze:
            self.sim.freeze()
        self.cf = FakeCloudflare(self.sim, require_auth=False, clock=self.wall)
        self.doorman = Doorman(DemoTransport(self.cf))

    def wall(self) -> datetime:
        return self.clock.wall()

    def times(self, path_contains: str = "") -> list[float]:
        """When each request reached the stand-in, on the fake clock."""
        start, wall_start = self.clock.start, self.clock.wall_start
        return [start + (r.time - wall_start).total_seconds() for r in self.cf.requests if path_contains in r.path]

    def gate(self, budget: int = 60, **kwargs: Any) -> RequestGate:
        gate = RequestGate(budget, clock=self.clock, **kwargs)
        self.doorman.gates.append(gate)
        return gate

    def client(self, gate: RequestGate, **options: Any) -> CloudflareClient:
        options.setdefault("clock", self.clock)
        options.setdefault("sleep", self.clock.sleep)
        options.setdefault("rng", random.Random(1))
        return CloudflareClient(None, DEMO_BASE_URL, transport=self.doorman, gate=gate, **options)

    def engine(
        self,
        refs: Sequence[str] = (),
        *,
        budget: int = 60,
        interval: float = 5.0,
        gate: RequestGate | None = None,
        **options: Any,
    ) -> PollEngine:
        client = self.client(gate if gate is not None else self.gate(budget), **options)
        return PollEngine(client, self.sim.account_id, refs, interval=interval, now=self.wall)

    def names(self) -> list[str]:
        return [t["name"] for t in self.sim.iter_tunnels() if t["deleted_at"] is None]

    def ids_of(self, names: Iterable[str]) -> dict[str, str]:
        wanted = set(names)
        return {t["name"]: t["id"] for t in self.sim.iter_tunnels() if t["name"] in wanted}

    def assert_no_side_door(self, *, exact: bool = True) -> None:
        assert self.doorman.side_door == [], f"requests without a token: {self.doorman.side_door[:5]}"
        assert self.doorman.arrived == len(self.cf.requests)
        if exact:
            assert self.doorman.arrived == self.doorman.granted, "a token granted for a request never sent"


@dataclass(frozen=True)
class Peaks:
    minute: int
    five_minutes: int
    total: int

    def __str__(self) -> str:
        return f"max {self.minute} in 60 s, {self.five_minutes} in 300 s, {self.total} in all"


def peaks(times: list[float]) -> Peaks:
    return Peaks(max_in_window(times, 60.0), max_in_window(times, 300.0), len(times))


def assert_within(times: list[float], budget: int) -> Peaks:
    got = peaks(times)
    print(f"budget {budget}/min: {got}")  # shown with -rP
    assert got.minute <= budget, f"over the budget of {budget} per minute: {got}"
    assert got.five_minutes <= 5 * budget, f"over five budgets ({5 * budget}) in 300 s: {got}"
    return got


def next_wait(engine: PollEngine) -> float:
    """The loop every front end runs between polls: the interval, stretched to the budget, and any wait."""
    return max(engine.interval, engine.next_poll_in(), engine.effective_interval)


async def drive(
    engine: PollEngine,
    clock: FakeClock,
    seconds: float,
    *,
    step: float | Callable[[PollEngine], float] = next_wait,
    before: Callable[[float], None] | None = None,
) -> list[tuple[float, PollOutcome]]:
    """Poll for ``seconds`` of fake time; the outcomes, each with its time."""
    until = clock.now + seconds
    outcomes: list[tuple[float, PollOutcome]] = []
    while clock.now < until:
        if before is not None:
            before(clock.now)
        outcomes.append((clock.now, await engine.poll()))
        clock.advance(step(engine) if callable(step) else step)
    return outcomes


def connection_times(stand: Stand, tunnel_id: str) -> list[float]:
    return stand.times(f"/cfd_tunnel/{tunnel_id}/connections")


@dataclass
class RigTarget(Target):
    """A Target whose client runs on the fake clock and whose gate the Doorman knows (for run_once, --watch and
    the app, which make their client from the target)."""

    clock: FakeClock | None = None
    doorman: Doorman | None = None

    def gate(self, *, clock: Callable[[], float] = time.monotonic) -> RequestGate:
        gate = super().gate(clock=self.clock if self.clock is not None else clock)
        if self.doorman is not None:
            self.doorman.gates.append(gate)
        return gate

    def client(self, *, gate: RequestGate | None = None, **options: Any) -> CloudflareClient:
        if self.clock is not None:
            options.setdefault("clock", self.clock)
            options.setdefault("sleep", self.clock.sleep)
        options.setdefault("rng", random.Random(1))
        return super().client(gate=gate, **options)


def rig_target(stand: Stand, refs: Sequence[str], *, budget: int = 60) -> RigTarget:
    return RigTarget(
        DEMO_BASE_URL,
        None,
        stand.sim.account_id,
        list(refs),
        demo=True,
        transport=stand.doorman,
        budget_per_minute=budget,
        clock=stand.clock,
        doorman=stand.doorman,
    )


async def watch(
    stand: Stand,
    monkeypatch: pytest.MonkeyPatch,
    seconds: float,
    *,
    interval: float,
    refs: Sequence[str] = (),
    budget: int = 60,
) -> tuple[list[dict[str, Any]], list[float]]:
    """The real ``watch_stream`` loop for ``seconds`` of fake time, its sleep between polls moved onto the fake
    clock: its lines, and each sleep between polls."""
    clock = stand.clock
    until = clock.now + seconds
    slept: list[float] = []

    async def sleep_on_the_fake_clock(wait: float, stop: asyncio.Event) -> bool:
        slept.append(wait)
        clock.advance(max(0.0, wait))
        if clock.now >= until:
            stop.set()
        return stop.is_set()

    monkeypatch.setattr(stream_module, "sleep_unless_stopped", sleep_on_the_fake_clock)
    out = io.StringIO()
    assert await watch_stream(rig_target(stand, refs, budget=budget), interval, out, stop=asyncio.Event()) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()], slept
