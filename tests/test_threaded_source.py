"""The poll engine on its own thread (poll/threaded.py): the same outcomes as the engine run plainly, a poll in
flight never holds up the caller's event loop, closing ends a poll in flight, and every request still takes a
token from the one gate.

Nothing here waits on a clock: a transport that holds a request until the test lets it go, and threading events
the test waits on (in a worker thread, so that the waiting itself does not block the loop under test)."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from tests.support.budget import DEMO_NAMES, T0, Stand
from tests.support.clock import FakeClock
from tests.support.ui import FIXED_NOW, make_app, wait_for_poll
from tunneltop.api.client import CloudflareClient
from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.server import LoopbackServer
from tunneltop.demo.simulator import SimulatedAccount
from tunneltop.demo.transport import DEMO_BASE_URL
from tunneltop.poll.engine import PollEngine
from tunneltop.poll.target import Target
from tunneltop.poll.threaded import ThreadedSource


class Held(httpx.AsyncBaseTransport):
    """Passes requests on to ``inner``; the first one blocks the thread it runs on (as decoding a huge answer
    would) until the test sets ``release``, or with ``hang`` waits on its loop for ever. Notes the thread of the
    first request and of ``aclose``."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, hang: bool = False) -> None:
        self.inner = inner
        self.hang = hang
        self.entered = threading.Event()
        self.release = threading.Event()
        self.request_thread: threading.Thread | None = None
        self.closed_on: threading.Thread | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.entered.is_set():
            self.request_thread = threading.current_thread()
            self.entered.set()
            if self.hang:
                await asyncio.Event().wait()
            self.release.wait()
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        self.closed_on = threading.current_thread()


def held_source(stand: Stand, transport: Held) -> tuple[ThreadedSource, CloudflareClient]:
    client = CloudflareClient(
        None, DEMO_BASE_URL, transport=transport, gate=stand.gate(60), clock=stand.clock, sleep=stand.clock.sleep
    )
    source = ThreadedSource(
        lambda: PollEngine(client, stand.sim.account_id, ["web-prod"], now=stand.wall), on_close=client.aclose
    )
    return source, client


async def test_the_threaded_engine_gives_the_plain_engines_outcomes() -> None:
    plain_stand, threaded_stand = Stand(FakeClock(T0), seed=11), Stand(FakeClock(T0), seed=11)
    plain = plain_stand.engine(DEMO_NAMES, budget=120, interval=10.0)
    threaded = ThreadedSource(lambda: threaded_stand.engine(DEMO_NAMES, budget=120, interval=10.0))
    try:
        for _ in range(6):  # the simulated account evolves as the clocks move: connections come and go
            expected, got = await plain.poll(), await threaded.poll()
            assert got.snapshot == expected.snapshot and got.snapshot is not None
            assert got.events == expected.events
            assert threaded.next_poll_delay() == plain.next_poll_delay()
            assert threaded.status == plain.status and threaded.effective_interval == plain.effective_interval
            plain_stand.clock.advance(30)
            threaded_stand.clock.advance(30)
        assert [r.path for r in threaded_stand.cf.requests] == [r.path for r in plain_stand.cf.requests]
    finally:
        await threaded.aclose()


async def test_an_error_the_engine_raises_comes_out_of_the_poll() -> None:
    stand = Stand(FakeClock(T0))

    def broken(request: httpx.Request) -> httpx.Response:
        raise ZeroDivisionError("a bug, not a fault of the API")

    client = CloudflareClient(None, DEMO_BASE_URL, transport=httpx.MockTransport(broken), gate=stand.gate())
    source = ThreadedSource(lambda: PollEngine(client, stand.sim.account_id, ["web-prod"], now=stand.wall))
    try:
        with pytest.raises(ZeroDivisionError, match="a bug"):
            await source.poll()
    finally:
        await source.aclose()


async def test_a_poll_in_flight_does_not_hold_up_the_callers_loop() -> None:
    stand = Stand(FakeClock(T0), freeze=True)
    transport = Held(stand.doorman)
    source, _ = held_source(stand, transport)
    try:
        poll = asyncio.create_task(source.poll())
        await asyncio.to_thread(transport.entered.wait)  # the engine's thread is now blocked in the request
        turns = 0
        while turns < 200:  # this loop keeps running: a counter, a timer and the budget's figures
            await asyncio.sleep(0)
            turns += 1
            assert source.status.used_per_minute >= 1 and source.next_poll_in() >= 0
        assert not poll.done()
        assert transport.request_thread is not threading.current_thread()
        transport.release.set()
        outcome = await poll
        assert outcome.snapshot is not None and outcome.error is None
        assert [s.tunnel.name for s in outcome.snapshot.tunnels] == ["web-prod"]
    finally:
        transport.release.set()
        await source.aclose()


async def test_closing_ends_a_poll_in_flight_and_closes_the_client_on_the_engines_thread() -> None:
    stand = Stand(FakeClock(T0), freeze=True)
    transport = Held(stand.doorman, hang=True)
    source, _ = held_source(stand, transport)
    poll = asyncio.create_task(source.poll())
    await asyncio.to_thread(transport.entered.wait)
    await source.aclose()
    with pytest.raises(asyncio.CancelledError):
        await poll
    assert transport.closed_on is transport.request_thread and transport.closed_on is not threading.current_thread()
    assert not source.thread.alive
    with pytest.raises(RuntimeError, match="closed"):
        await source.poll()


async def test_refresh_and_the_view_reach_the_engine_before_the_next_poll() -> None:
    stand = Stand(FakeClock(T0), freeze=True)
    source = ThreadedSource(lambda: stand.engine([], budget=60))
    try:
        await source.poll()
        web = stand.ids_of(["web-prod"])["web-prod"]
        source.set_in_view([web])
        source.refresh()
        before = len(stand.cf.requests)
        stand.clock.advance(2)  # tokens for a request or two, and nothing due before the 5 s interval
        await source.poll()  # but what is in view was asked for again
        assert [r.path for r in stand.cf.requests[before:]] == [
            f"/client/v4/accounts/{stand.sim.account_id}/cfd_tunnel/{web}/connections"
        ]
        source.interval = 20.0
        assert source.interval == 20.0 and source.next_poll_delay() >= 20.0
    finally:
        await source.aclose()


async def test_every_request_of_the_threaded_engine_takes_a_token_from_the_one_gate() -> None:
    stand = Stand(FakeClock(T0))
    source = ThreadedSource(lambda: stand.engine(DEMO_NAMES, budget=30, interval=2.0))
    try:
        for _ in range(20):
            poll = asyncio.create_task(source.poll())
            while not poll.done():  # the screen reads the budget while the engine's thread spends it
                assert source.status.used_per_minute <= 30
                source.next_poll_delay()
                await asyncio.sleep(0)
            await poll
            stand.clock.advance(source.next_poll_delay())
    finally:
        await source.aclose()
    assert stand.cf.requests
    stand.assert_no_side_door()


async def test_the_live_view_polls_the_api_on_the_engines_thread_and_ends_it_on_exit() -> None:
    app, fake = make_app()
    async with app.run_test() as pilot:
        await wait_for_poll(pilot, app)
        source = app.engine
        assert isinstance(source, ThreadedSource) and source.thread.alive
        assert app.table.row_count > 0
    assert fake.requests and not source.thread.alive


async def test_an_account_chosen_in_the_picker_is_polled_on_the_same_connections_thread() -> None:
    """Over a real loopback connection: the /accounts read leaves a keep-alive connection on the engine's loop, and
    the source made for the account chosen must use it there (on a loop of its own, its first poll failed)."""
    from tunneltop.ui.app import TunneltopApp
    from tunneltop.ui.screens import AccountPicker

    sim = SimulatedAccount(seed=7, start=FIXED_NOW, connectors_per_tunnel=1)
    sim.freeze()
    fake = FakeCloudflare(sim, require_auth=False, clock=lambda: FIXED_NOW)
    other = {"id": "0123456789abcdef0123456789abcdef", "name": "Other"}
    fake.accounts = [other, {"id": sim.account_id, "name": "Demo"}]
    with LoopbackServer(fake) as server:
        app = TunneltopApp(Target(server.base_url, None, None, []), start_view="monitor")
        async with app.run_test() as pilot:
            await app.polling.wait_until(lambda: isinstance(app.screen, AccountPicker))
            await pilot.pause()
            await pilot.press("down", "enter")
            await wait_for_poll(pilot, app)
            assert app.failures == 0 and app.last_error is None
            assert app.snapshot is not None and app.snapshot.account_id == sim.account_id
