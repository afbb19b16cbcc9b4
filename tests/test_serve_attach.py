"""--attach's source: a tunneltop serve server read over real HTTP as the live view's (snapshot, events), with no
Cloudflare credential and no Cloudflare request; it follows the server across a restart."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.serve import BEARER, START, TOKEN, WEB, polled, serving
from tunneltop.api.auth import Credentials
from tunneltop.api.errors import AuthError, NetworkError
from tunneltop.changes.events import EventKind
from tunneltop.cli import main
from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.server import LoopbackServer
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID, SimulatedAccount
from tunneltop.model.codec import snapshot_from_json
from tunneltop.model.health import Health
from tunneltop.poll.target import Target
from tunneltop.report import exit_status
from tunneltop.serve.attach import AttachSource, display_url, lines_of, server_sent_events
from tunneltop.serve.command import Serving


@pytest.fixture
def fake() -> FakeCloudflare:
    return FakeCloudflare(SimulatedAccount(start=START), tokens=[TOKEN], clock=lambda: START)


def url_of(serve: Serving) -> str:
    return f"http://127.0.0.1:{serve.addresses[0][1]}"


async def test_attach_follows_a_change_with_the_servers_events(server: LoopbackServer, fake: FakeCloudflare) -> None:
    async with serving(server, "web-prod", "home-lab") as (serve, _, _):
        source = AttachSource(url_of(serve), interval=30)
        try:
            first = await source.poll()
            while first.holding is not None:  # the server's first poll is under way
                first = await source.poll()
            assert first.error is None and first.snapshot is not None
            assert {t.tunnel.name for t in first.snapshot.tunnels} == {"web-prod", "home-lab"}
            assert source.status is None and source.label == f"attached to {url_of(serve)}"

            feed = serve.poller.feed
            published_from = feed.seq
            fake.sim.set_clients(WEB, [], status="down")
            seen = []
            while not any(e.kind is EventKind.TUNNEL_HEALTH for e in seen):
                outcome = await source.poll()  # returns when the server's next poll has ended
                assert outcome.error is None and outcome.snapshot is not None
                seen += outcome.events
            web = next(t for t in outcome.snapshot.tunnels if t.tunnel.id == WEB)
            assert web.health is Health.DOWN
            # The very events the server's engine published for the same change.
            published = [i for i in feed.since(published_from) or () if i.event == "change"]
            assert [e.to_json() for e in seen] == [json.loads(p.data) for p in published]
        finally:
            await source.aclose()


async def test_attach_sends_nothing_to_cloudflare(server: LoopbackServer, fake: FakeCloudflare) -> None:
    async with serving(server, "web-prod", interval=3600) as (serve, _, _):
        await polled(serve, 1)
        before = len(fake.requests)
        source = AttachSource(url_of(serve), interval=3600)
        try:
            for _ in range(5):
                source.refresh()
                outcome = await source.poll()
                assert outcome.snapshot is not None
        finally:
            await source.aclose()
        assert len(fake.requests) == before


async def test_attach_needs_the_servers_token_when_it_has_one(server: LoopbackServer) -> None:
    async with serving(server, "web-prod", token=BEARER) as (serve, _, _):
        await polled(serve, 1)
        refused = AttachSource(url_of(serve))
        allowed = AttachSource(url_of(serve), token=BEARER)
        try:
            outcome = await refused.poll()
            assert isinstance(outcome.error, AuthError) and BEARER not in outcome.error.message
            assert (await allowed.poll()).snapshot is not None
        finally:
            await refused.aclose()
            await allowed.aclose()


async def test_attach_marks_data_stale_while_the_server_restarts(server: LoopbackServer) -> None:
    def new_serve() -> Serving:
        target = Target(server.base_url, Credentials.token(TOKEN), DEMO_ACCOUNT_ID, ["web-prod"], budget_per_minute=120)
        return Serving(target, 0.2, err=io.StringIO())

    first = new_serve()
    await first.start("127.0.0.1", 0)
    port = first.addresses[0][1]
    stop = asyncio.Event()
    running = asyncio.create_task(first.run(stop))
    source = AttachSource(f"http://127.0.0.1:{port}", interval=0.5)
    try:
        await polled(first, 1)
        ok = await source.poll()
        assert ok.snapshot is not None
        stop.set()
        assert await running == 0  # the server is gone

        failed = await source.poll()
        assert failed.snapshot is None and isinstance(failed.error, NetworkError)
        assert [e.kind for e in failed.events] == [EventKind.POLL_FAILED]
        assert source.previous is ok.snapshot  # the last good data stays (the view marks it stale)

        second = new_serve()
        await second.start("127.0.0.1", port)
        stop = asyncio.Event()
        running = asyncio.create_task(second.run(stop))
        await polled(second, 1)
        while (back := await source.poll()).snapshot is None:
            pass  # until the stream is up again and the server has a snapshot
        assert back.events and back.events[0].kind is EventKind.POLL_RECOVERED
        assert source.connected or back.snapshot is not None
    finally:
        stop.set()
        await running
        await source.aclose()


def test_the_label_never_shows_a_password() -> None:
    assert display_url("http://ops:hunter2@tt.example:9877/") == "http://tt.example:9877"
    assert display_url("https://[::1]:9877") == "https://[::1]:9877"


async def test_once_attached_prints_the_servers_snapshot(
    server: LoopbackServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def tmp_token(token: str) -> Path:
        path = tmp_path / "serve-token"
        path.write_text(token + "\n", encoding="utf-8")
        return path

    async with serving(server, "web-prod", "home-lab", token=BEARER, interval=3600) as (serve, _, _):
        await polled(serve, 1)
        token_file = tmp_token(BEARER)
        status = await asyncio.to_thread(
            main, ["--attach", url_of(serve), "--attach-token-file", str(token_file), "--once", "-o", "json"]
        )
    out = capsys.readouterr().out
    document = json.loads(out)
    assert document["account_id"] == DEMO_ACCOUNT_ID
    assert {t["name"] for t in document["tunnels"]} == {"web-prod", "home-lab"}
    assert status == exit_status(snapshot_from_json(document))
    assert "api" not in document  # no request budget: nothing was asked of Cloudflare


def test_attach_takes_no_tunnel_names_nor_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    for extra in (["web-prod"], ["--token-file", "/dev/null"], ["--budget", "30"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["--attach", "http://127.0.0.1:9", "--once", *extra])
        assert exit_info.value.code != 0
        assert "--attach" in capsys.readouterr().err


@pytest.mark.slow  # an app start and a few of the server's polls: about 3 s
async def test_an_attached_live_view_follows_a_change(server: LoopbackServer, fake: FakeCloudflare) -> None:
    from tests.support.ui import wait_for_poll
    from tunneltop.ui.app import TunneltopApp

    async with serving(server, "web-prod", "home-lab") as (serve, _, _):
        await polled(serve, 1)
        source = AttachSource(url_of(serve), interval=1.0)
        app = TunneltopApp(
            Target(source.url, None), source=source, interval=1.0, start_view="monitor", ghost_seconds=0
        )
        async with app.run_test(size=(130, 40)) as pilot:
            while app.table.row_count == 0:  # the server reads the connections a few polls in (its budget)
                await wait_for_poll(pilot, app, count=app.poll_count + app.failures + 1)
            before = app.table.row_count
            header = str(app.header.render())
            assert f"attached to {url_of(serve)}" in header and "per min" not in header
            fake.sim.set_clients(WEB, [], status="down")
            while app.table.row_count == before:
                await wait_for_poll(pilot, app, count=app.poll_count + app.failures + 1)
            assert app.table.row_count < before  # web-prod's connections are gone from the screen
            assert app.failures == 0


async def test_the_event_stream_is_read_in_chunks_of_any_size() -> None:
    big = "x" * 200_000  # longer than any line buffer: one event of a tunnel with many connectors

    async def chunks() -> AsyncIterator[bytes]:
        text = f": keep-alive\r\n\r\nid: e-1\r\nevent: poll\r\ndata: {big}\r\n\r\n".encode()
        text += b"id: e-2\ndata: a\ndata: b\n\n"
        for at in range(0, len(text), 7_001):
            yield text[at : at + 7_001]

    events = [event async for event in server_sent_events(lines_of(chunks()))]
    assert events == [("e-1", "poll", big), ("e-2", "message", "a\nb")]
