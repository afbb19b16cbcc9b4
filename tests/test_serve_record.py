"""``tunneltop serve --record FILE`` over real HTTP against the loopback stand-in: every poll is recorded, and
``tunneltop replay FILE --at TIME -o json`` gives back the snapshot the server served; a recording that fails is
said once on stderr and by ``tunneltop_recording``, and the server goes on."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.serve import START, TOKEN, polled
from tests.test_serve import scrape, value
from tunneltop.api.auth import Credentials
from tunneltop.cli import main as cli_main
from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.server import LoopbackServer
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID, SimulatedAccount
from tunneltop.poll.target import Target
from tunneltop.record.command import main as replay_main
from tunneltop.record.store import Recorder
from tunneltop.serve.command import Serving


@pytest.fixture
def fake() -> FakeCloudflare:
    return FakeCloudflare(SimulatedAccount(start=START), tokens=[TOKEN], clock=lambda: START)


@asynccontextmanager
async def recording_serve(
    server: LoopbackServer, path: Path
) -> AsyncIterator[tuple[Serving, httpx.AsyncClient, io.StringIO]]:
    """A serve recording to ``path`` on a free loopback port (the rig of tests/support/serve.py, with --record)."""
    target = Target(server.base_url, Credentials.token(TOKEN), DEMO_ACCOUNT_ID, [], budget_per_minute=120)
    err = io.StringIO()
    with Recorder(path) as recorder:
        serve = Serving(target, 0.2, err=err, recorder=recorder)
        await serve.start("127.0.0.1", 0)
        stop = asyncio.Event()
        task = asyncio.create_task(serve.run(stop))
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{serve.addresses[0][1]}", timeout=None) as http:
                yield serve, http, err
        finally:
            stop.set()
            assert await task == 0


def _without_api(document: dict[str, Any]) -> dict[str, Any]:
    """The snapshot document without the request budget's figures, which are the server's, not the data's."""
    return {key: item for key, item in document.items() if key != "api"}


async def test_serve_records_every_poll_and_replay_gives_back_what_it_served(
    server: LoopbackServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "serve.db"
    async with recording_serve(server, path) as (serve, http, err):
        await polled(serve, 2)
        served = (await http.get("/api/v1/snapshot")).json()
        samples = await scrape(http)
        assert value(samples, "tunneltop_recording") == 1
        assert (value(samples, "tunneltop_recorded_polls_total") or 0) >= 2
    assert "recording" not in err.getvalue()
    capsys.readouterr()
    assert replay_main([str(path), "--at", served["fetched_at"], "-o", "json"]) in (0, 1, 2)
    assert _without_api(json.loads(capsys.readouterr().out)) == _without_api(served)


async def test_a_recording_that_fails_is_said_once_and_serving_goes_on(server: LoopbackServer, tmp_path: Path) -> None:
    path = tmp_path / "serve.db"
    async with recording_serve(server, path) as (serve, http, err):
        await polled(serve, 1)
        with sqlite3.connect(path) as other:  # the file damaged under the recorder: its next write fails
            other.execute("DROP TABLE polls")
        await polled(serve, serve.poller.polls + 3)
        said = [line for line in err.getvalue().splitlines() if "serving goes on without recording" in line]
        assert len(said) == 1
        samples = await scrape(http)
        assert value(samples, "tunneltop_recording") == 0
        assert (await http.get("/healthz")).status_code == 200


def test_serve_refuses_a_file_another_process_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "busy.db"
    with Recorder(path):
        assert cli_main(["serve", "--demo", "--listen", "127.0.0.1:0", "--record", str(path)]) == 3
    assert f"is being recorded by another tunneltop (pid {os.getpid()})" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["serve", "--demo", "--record-keep", "7d"])
    assert "go with --record FILE" in capsys.readouterr().err
