"""--watch keeps to the request budget: a poll of k requests is followed by at least k * 60 / budget seconds."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime

from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.simulator import SimulatedAccount
from tunneltop.demo.transport import DEMO_BASE_URL, DemoTransport
from tunneltop.poll.target import Target
from tunneltop.stream import watch_stream

START = datetime(2026, 11, 28, 12, tzinfo=UTC)


async def test_the_interval_stretches_to_stay_within_the_budget() -> None:
    sim = SimulatedAccount(start=START)
    sim.freeze()
    fake = FakeCloudflare(sim, require_auth=False, clock=lambda: START)
    target = Target(DEMO_BASE_URL, None, sim.account_id, demo=True, transport=DemoTransport(fake))
    stop = asyncio.Event()
    out = io.StringIO()
    # One demo poll is 1 list + 5 connection calls = 6 requests; at 360 per minute that is 1 s between polls,
    # although the interval asked for is 50 ms.
    task = asyncio.create_task(watch_stream(target, 0.05, out, stop=stop, budget_per_minute=360))
    await asyncio.sleep(1.5)
    stop.set()
    assert await asyncio.wait_for(task, 5) == 0
    lists = [r for r in fake.requests if r.path.endswith("/cfd_tunnel")]
    assert len(lists) == 2, f"{len(lists)} polls in 1.5 s: the budget did not pace them"
    assert out.getvalue().startswith('{"kind": "baseline"')


async def test_a_large_account_gets_list_status_rather_than_a_burst_over_budget() -> None:
    sim = SimulatedAccount(start=START, tunnels=100, connectors_per_tunnel=1)
    sim.freeze()
    fake = FakeCloudflare(sim, require_auth=False, clock=lambda: START)
    target = Target(DEMO_BASE_URL, None, sim.account_id, demo=True, transport=DemoTransport(fake))
    stop = asyncio.Event()
    out = io.StringIO()
    task = asyncio.create_task(watch_stream(target, 0.05, out, stop=stop, budget_per_minute=60))
    await asyncio.sleep(0.3)
    stop.set()
    assert await asyncio.wait_for(task, 5) == 0
    assert len(fake.requests) == 1, "100 tunnels exceed a minute's budget of 60: only the list is read"
    assert '"tunnels": 100' in out.getvalue()
