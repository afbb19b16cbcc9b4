"""The live view fed by a source other than the API (what attach and replay will plug in: poll.source.LiveSource):
it shows the source's snapshots and failures as it does the engine's, says in the header where the data comes
from, sends no request to Cloudflare, and closes the source when it ends."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from tests.support.ui import FIXED_NOW, make_app, wait_for_poll
from tunneltop.api.errors import RequestFailedError, UsageError
from tunneltop.api.gate import BudgetStatus
from tunneltop.changes.events import poll_failed
from tunneltop.poll.engine import PollEngine, PollOutcome
from tunneltop.poll.source import badge
from tunneltop.poll.target import Target
from tunneltop.poll.threaded import ThreadedSource
from tunneltop.ui.app import TunneltopApp

SIZE = (130, 40)


class ScriptedSource:
    """A LiveSource that hands out outcomes from a list (the last one again when it runs out); polls come when the
    test asks (r), never on a timer."""

    label = "REPLAY 12:00:00Z"

    def __init__(self, outcomes: list[PollOutcome]) -> None:
        self.outcomes = outcomes
        self.usage_errors: list[UsageError] = []
        self.interval = 5.0
        self.effective_interval = 5.0
        self.named = True
        self.status: BudgetStatus | None = None
        self.polls = 0
        self.refreshed = 0
        self.in_view: set[str] = set()
        self.closed = False

    async def poll(self) -> PollOutcome:
        outcome = self.outcomes[min(self.polls, len(self.outcomes) - 1)]
        self.polls += 1
        return outcome

    def next_poll_delay(self) -> float:
        return 3600.0

    def next_poll_in(self) -> float:
        return 0.0

    def refresh(self, tunnel_ids: Iterable[str] = ()) -> None:
        self.refreshed += 1

    def set_in_view(self, tunnel_ids: Iterable[str]) -> None:
        self.in_view = set(tunnel_ids)

    async def aclose(self) -> None:
        self.closed = True


async def demo_outcome() -> PollOutcome:
    """One real poll of the simulated account (as a recording or a serve server would have it)."""
    app, _ = make_app()
    target = app.target
    client = target.client()
    try:
        return await PollEngine(client, target.account_id, target.refs, now=lambda: FIXED_NOW).poll()
    finally:
        await client.aclose()


async def test_the_live_view_shows_a_given_source_with_its_badge_and_sends_no_request() -> None:
    good = await demo_outcome()
    assert good.snapshot is not None
    failed = PollOutcome(None, [poll_failed(FIXED_NOW, "the server went away")], RequestFailedError("server gone"))
    source = ScriptedSource([good, failed])
    assert badge(source) == "REPLAY 12:00:00Z"
    app, fake = make_app(source=source)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        assert app.engine is source
        conns = sum(len(c.conns) for t in good.snapshot.tunnels for c in t.connectors or ())
        assert app.table.row_count == conns > 0
        header = str(app.header.render())
        assert "REPLAY 12:00:00Z" in header
        assert "per min" not in header  # no request budget: the source sends no request to Cloudflare
        refreshed = source.refreshed
        await pilot.press("r")  # a refresh asks the source, and polls it
        await wait_for_poll(pilot, app, count=2)
        assert source.refreshed == refreshed + 1 and source.polls == 2
        assert app.failures == 1 and "server gone" in app.status.message
        assert app.header.stale and app.table.row_count == conns  # the last good data stays
        await pilot.press("a")  # no account to choose: the source is given, not made from an account
    assert source.closed
    assert fake.requests == []


async def test_without_a_source_the_app_polls_the_api_with_no_badge() -> None:
    app, fake = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        assert isinstance(app.engine, ThreadedSource) and badge(app.engine) is None
        assert "API" in str(app.header.render()) and "REPLAY" not in str(app.header.render())
    assert fake.requests


def test_the_interval_asked_for_reaches_a_given_source() -> None:
    source = ScriptedSource([])
    app = TunneltopApp(Target("http://127.0.0.1:1", None, "acct", ["web"]), source=source, interval=2.0)
    assert app.engine is source and source.interval == 2.0


class GatedSource(ScriptedSource):
    """A ScriptedSource whose polls wait until the test opens the gate; it counts how many run at once and how
    many were cancelled on their way."""

    def __init__(self, outcomes: list[PollOutcome]) -> None:
        super().__init__(outcomes)
        self.gate = asyncio.Event()
        self.running = 0
        self.most_at_once = 0
        self.cancelled = 0

    async def poll(self) -> PollOutcome:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1
        return await super().poll()


async def test_a_poll_asked_for_while_one_is_on_its_way_goes_after_it_never_cancelling_it() -> None:
    # r (or a resume, or an outcome applied late) while a poll is on its way: cancelling that poll would spend its
    # requests for nothing, and the source's contract says polls never overlap. The one asked for goes right after.
    good = await demo_outcome()
    source = GatedSource([good])
    app, fake = make_app(source=source)
    async with app.run_test(size=SIZE) as pilot:
        while source.running == 0:  # the first poll, held at the gate
            await pilot.pause()
        await pilot.press("r")
        while app.polling.armed:  # its timer (no wait: the source has room) fires while the poll is held
            await pilot.pause()
        assert source.running == 1 and source.cancelled == 0 and app.polling.in_flight
        app.polling.rearm(app.paused, app.interval)  # an outcome applied late arms nothing while one is on its way
        assert not app.polling.armed
        source.gate.set()
        await wait_for_poll(pilot, app, count=2)  # the first, then the one asked for, without the hour's wait
        assert source.polls == 2 and source.most_at_once == 1 and source.cancelled == 0
    assert fake.requests == []
