"""Shared set-up for the UI tests: the app wired to a frozen simulated account, with fixed clocks.

Everything goes through the real client code and the in-process DemoTransport, exactly as ``--demo`` does.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console, RenderableType
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Static

from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID, DEMO_TUNNELS, SimulatedAccount
from tunneltop.demo.transport import DEMO_BASE_URL, DemoTransport
from tunneltop.poll.target import Target
from tunneltop.ui.app import TunneltopApp

FIXED_NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


class WallClock:
    """A wall clock (a datetime) the test moves by hand; support.clock.FakeClock is the monotonic one."""

    def __init__(self, now: datetime = FIXED_NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_app(
    *,
    refs: list[str] | None = None,
    interval: float = 5.0,
    frozen: bool = True,
    seed: int = 7,
    clock: WallClock | None = None,
    account: str | None = DEMO_ACCOUNT_ID,
    start_view: str | None = "monitor",
    tunnels: int | None = None,
    **options: object,
) -> tuple[TunneltopApp, FakeCloudflare]:
    sim = SimulatedAccount(seed=seed, start=FIXED_NOW, tunnels=tunnels, connectors_per_tunnel=1)
    if refs is None and start_view == "monitor":
        # Every live tunnel by name: each poll fetches all of them (TunnelSource), so one poll shows everything.
        refs = [name for name, tid in DEMO_TUNNELS.items() if tid in sim.tunnel_ids()]
    if frozen:
        sim.freeze()
    fake = FakeCloudflare(sim, require_auth=False, clock=lambda: FIXED_NOW)
    target = Target(DEMO_BASE_URL, None, account, refs or [], demo=True, transport=DemoTransport(fake))
    app = TunneltopApp(
        target,
        interval=interval,
        clock=clock or (lambda: FIXED_NOW),
        monotonic=lambda: 1000.0,
        client_options={"sleep": _no_sleep},
        start_view=start_view,
        **options,  # type: ignore[arg-type]
    )
    return app, fake


async def _no_sleep(seconds: float) -> None:
    return None


async def wait_for_poll(pilot: Pilot, app: TunneltopApp, count: int = 1) -> None:
    """Until the app has applied ``count`` polls or failures in total. Woken by the app itself each time it applies
    a poll's outcome (``PollDriver.wait_until``): no deadline of its own, so a loaded machine only makes it later
    (pytest's timeout is the one guard against a hang)."""
    await app.polling.wait_until(lambda: app.poll_count + app.failures >= count)
    await pilot.pause()


def plain(thing: RenderableType | Widget | None) -> str:
    """What a renderable (or every Static inside a widget) shows, as plain text."""
    console = Console(width=120, record=True, file=io.StringIO(), color_system=None)
    if isinstance(thing, Widget):
        parts = [s.content for s in thing.query(Static)]
        for part in parts:
            console.print(part)
    elif thing is not None:
        console.print(thing)
    return console.export_text()


def tree_lines(app: TunneltopApp) -> list[str]:
    """The client tree's lines as drawn, top to bottom of its region."""
    tree = app.client_tree
    return [tree.render_line(y).text for y in range(tree.size.height)]
