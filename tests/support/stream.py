"""The headless change stream's rig: the frozen demo account in-process (``DemoTransport``), the real
``watch_stream`` loop every 50 ms, and ``ScriptedOut``, which makes changes between polls, never inside one."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.simulator import DEMO_TUNNELS, SimulatedAccount
from tunneltop.demo.transport import DEMO_BASE_URL, DemoTransport
from tunneltop.poll.target import Target
from tunneltop.stream import watch_stream

START = datetime(2026, 8, 20, 12, 0, tzinfo=UTC)
WEB = DEMO_TUNNELS["web-prod"]
INTERVAL = 0.05
# These tests poll every 50 ms: a budget so large it never stretches the interval (test_stream_budget pins that),
# and a Cloudflare quota to match. tunneltop plans to use at most half of what Cloudflare's Ratelimit header says
# is left until its window resets; the stand-in's clock stands still, so with its usual 1,200 per 5 minutes its
# window never resets and that half (2 requests a second) would pace the polls whatever the budget.
BUDGET = 1_000_000
QUOTA = 10**9


class ScriptedOut(io.StringIO):
    """Collects the stream's lines. After each poll (the stream flushes once per poll) it runs the next scripted
    step once that step's kind of line has been seen, so changes land between polls, never inside one."""

    def __init__(self, steps: list[tuple[str, Callable[[], None]]]) -> None:
        super().__init__()
        self.steps = steps

    def lines(self) -> list[dict[str, Any]]:
        # Findings raised and cleared (the demo's old cloudflared releases, ...) have tests of their own
        # (test_events_findings): these follow the changes scripted here.
        lines = [json.loads(line) for line in self.getvalue().splitlines()]
        return [line for line in lines if not line["kind"].startswith("finding_")]

    def kinds(self) -> list[str]:
        return [line["kind"] for line in self.lines()]

    def flush(self) -> None:
        super().flush()
        if self.steps and self.steps[0][0] in self.kinds():
            _, action = self.steps.pop(0)
            action()


def frozen_fake(**account: Any) -> FakeCloudflare:
    """The demo account, frozen at START, with no credentials needed and a quota that never paces the polls."""
    sim = SimulatedAccount(start=START, **account)
    sim.freeze()
    return FakeCloudflare(sim, require_auth=False, clock=lambda: START, rate_limit=QUOTA)


def demo_target(fake: FakeCloudflare, account_id: str | None = None) -> Target:
    return Target(DEMO_BASE_URL, None, account_id, demo=True, transport=DemoTransport(fake))


def pending_web(fake: FakeCloudflare) -> Callable[[], None]:
    def change() -> None:
        clients = fake.sim.clients(WEB)
        clients[0]["conns"][1]["is_pending_reconnect"] = True
        fake.sim.set_clients(WEB, clients)

    return change


async def run(target: Target, out: io.StringIO, stop: asyncio.Event, **options: Any) -> int:
    options.setdefault("budget_per_minute", BUDGET)
    return await watch_stream(target, INTERVAL, out, stop=stop, **options)
