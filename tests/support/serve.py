"""``tunneltop serve`` on a free loopback port, polling the loopback stand-in: the rig of the serve tests, which wait
on the server's own events (a poll's end on its event feed), never on the clock."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx

from tunneltop.api.auth import Credentials
from tunneltop.demo.server import LoopbackServer
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID, DEMO_TUNNELS
from tunneltop.poll.target import Target
from tunneltop.serve.command import Serving

START = datetime(2026, 8, 20, 12, 0, tzinfo=UTC)
TOKEN = "cfut_ServeTestApiSecret-Zq81Lm"  # the stand-in's API token
BEARER = "serve-bearer-Secret-7Hk2Vw"  # serve's own --auth-token-file content
WEB = DEMO_TUNNELS["web-prod"]


@contextlib.asynccontextmanager
async def serving(
    server: LoopbackServer, *refs: str, interval: float = 0.2, token: str | None = None, run: bool = True
) -> AsyncIterator[tuple[Serving, httpx.AsyncClient, io.StringIO]]:
    """A serve on a free loopback port over the stand-in, polling until the block ends, and an HTTP client for it."""
    target = Target(server.base_url, Credentials.token(TOKEN), DEMO_ACCOUNT_ID, list(refs), budget_per_minute=120)
    err = io.StringIO()
    serve = Serving(target, interval, token=token, err=err)
    await serve.start("127.0.0.1", 0)
    stop = asyncio.Event()
    # Not run: the server answers, its poller has not polled yet (it stops at once when the block ends).
    task = asyncio.create_task(serve.run(stop)) if run else None
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{serve.addresses[0][1]}", timeout=None) as http:
            yield serve, http, err
    finally:
        stop.set()
        assert await (task if task is not None else serve.run(stop)) == 0


async def polled(serve: Serving, count: int) -> None:
    """Wait until ``count`` polls have ended."""
    feed = serve.poller.feed
    while serve.poller.polls < count:
        await feed.wait_after(feed.seq, 3600)
