"""A recording made the way a front end makes one: the stand-in polled by the real engine on a fake clock, each
poll written by the real Recorder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tests.support.budget import Stand
from tests.support.clock import FakeClock
from tunneltop.demo.cfapi import FakeCloudflare, Fault
from tunneltop.model.snapshot import Snapshot
from tunneltop.poll.engine import PollEngine, PollOutcome
from tunneltop.record.store import Recorder


async def poll_and_record(
    engine: PollEngine,
    recorder: Recorder,
    cf: FakeCloudflare,
    clock: FakeClock,
    polls: int,
    *,
    every: Sequence[float] = (5.0,),
    fail_at: frozenset[int] = frozenset(),
) -> list[PollOutcome]:
    """``polls`` polls, ``every`` seconds apart (cycling, or longer when the engine says so), each written as
    ``--watch`` writes it; the polls in ``fail_at`` find Cloudflare failing (503)."""
    outcomes = []
    for n in range(polls):
        cf.clear_faults()
        if n in fail_at:
            cf.inject(Fault.error(503), times=1000)
        outcome = await engine.poll()
        recorder.write_outcome(outcome)
        outcomes.append(outcome)
        clock.advance(max(every[n % len(every)], engine.next_poll_delay()))
    return outcomes


async def record_polls(path: Path, polls: int) -> list[Snapshot]:
    """``polls`` polls of the stand-in 5 s apart (seed 3: warnings at polls 0, 4 and 5, an info event at 1),
    recorded to ``path``; the snapshots as the engine gave them."""
    clock = FakeClock()
    stand = Stand(clock, seed=3)
    engine = stand.engine(budget=240)
    seen = []
    with Recorder(path, now=clock.wall) as recorder:
        for _ in range(polls):
            outcome = await engine.poll()
            recorder.write_outcome(outcome)
            assert outcome.snapshot is not None
            seen.append(outcome.snapshot)
            clock.advance(5.0)
    await engine.client.aclose()
    return seen
