"""``tunneltop --watch --attach URL``: the change stream fed by a ``tunneltop serve`` server over real HTTP (the
loopback stand-in behind it) instead of the Cloudflare API: the baseline, then the very change events the server's
own engine published, as JSON Lines; a server that wants a token it was not given ends the stream (exit 3)."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.serve import BEARER, START, TOKEN, WEB, polled, serving
from tunneltop.changes.events import EventKind
from tunneltop.cli import main
from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.server import LoopbackServer
from tunneltop.demo.simulator import SimulatedAccount
from tunneltop.poll.target import Target
from tunneltop.record.reader import Recording
from tunneltop.record.store import Recorder
from tunneltop.serve.attach import AttachSource
from tunneltop.stream import watch_stream


@pytest.fixture
def fake() -> FakeCloudflare:
    return FakeCloudflare(SimulatedAccount(start=START), tokens=[TOKEN], clock=lambda: START)


class Lines(io.StringIO):
    """The stream's output, parsed line by line as it is written; ``news`` wakes whoever waits for a line."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []
        self.news = asyncio.Event()

    def write(self, text: str) -> int:
        self.lines += [json.loads(line) for line in text.splitlines() if line]
        self.news.set()
        return super().write(text)

    async def until(self, kind: str) -> None:
        """Until a line of this kind has been written (no deadline: pytest-timeout guards a hang)."""
        while not any(line["kind"] == kind for line in self.lines):
            await self.news.wait()
            self.news.clear()


async def test_watch_attached_prints_the_servers_events(
    server: LoopbackServer, fake: FakeCloudflare, tmp_path: Path
) -> None:
    async with serving(server, "web-prod", "home-lab") as (serve, _, _):
        await polled(serve, 1)
        url = f"http://127.0.0.1:{serve.addresses[0][1]}"
        out, err, stop = Lines(), io.StringIO(), asyncio.Event()
        with Recorder(tmp_path / "attached.db") as recorder:
            task = asyncio.create_task(
                watch_stream(
                    Target(url, None), 1.0, out, stop=stop, err=err, source=AttachSource(url), recorder=recorder
                )
            )
            await out.until("baseline")
            head = out.lines[0]
            assert head["kind"] == "baseline" and head["tunnels"] == 2 and "api" not in head  # no budget: no API
            feed = serve.poller.feed
            published_from = feed.seq
            fake.sim.set_clients(WEB, [], status="down")
            await out.until(EventKind.TUNNEL_HEALTH.value)
            stop.set()
            assert await task == 0
        published = [json.loads(i.data) for i in feed.since(published_from) or () if i.event == "change"]
        upto = next(i for i, event in enumerate(published) if event["kind"] == EventKind.TUNNEL_HEALTH.value)
        printed = out.lines[out.lines.index(head) + 1 :]
        assert all(event in printed for event in published[: upto + 1]), "the server's own events, as published"
        assert err.getvalue() == ""
    with Recording(tmp_path / "attached.db") as recording:  # --record: what the stream read, recorded
        assert len(recording) >= 2


async def test_watch_attached_to_a_server_that_wants_a_token_ends_saying_so(
    server: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving(server, "web-prod", token=BEARER, interval=3600) as (serve, _, _):
        await polled(serve, 1)
        url = f"http://127.0.0.1:{serve.addresses[0][1]}"
        status = await asyncio.to_thread(main, ["--attach", url, "--watch"])
    assert status == 3
    said = capsys.readouterr()
    assert "asks for a bearer token" in said.err
    assert json.loads(said.out.splitlines()[0])["kind"] == "poll_failed"
