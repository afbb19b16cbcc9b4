"""The HTTP side of ``tunneltop serve``: ``/metrics``, ``/healthz``, ``/api/v1/snapshot``, ``/api/v1/events``.

Why aiohttp: it is an asyncio server, so it runs on the very event loop the poll engine runs on (one loop: the
poller's state is read where it is written; only the rendering of an immutable snapshot, megabytes at 10,000
connections, goes to a worker thread), it streams a response as it is written (server-sent events with
back-pressure: a write waits while a slow client's socket buffer is full, so no client can make the server buffer
without bound), it stops cleanly (graceful shutdown with a deadline), and it is a mature, widely deployed
dependency. ``prometheus_client``'s own HTTP server is a thread per request beside the loop and cannot stream;
``http.server`` is the same, and writing HTTP by hand is not where tunneltop should spend its care.

With ``--auth-token-file``, every path but ``/healthz`` needs ``Authorization: Bearer <token>``, compared in
constant time. Nothing is logged per request (no access log): the token never reaches a log.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tunneltop.serve.feed import EventFeed, FeedItem
from tunneltop.serve.metrics import CONTENT_TYPE, MetricsPage
from tunneltop.serve.poller import Poller

# A comment line on the event stream at least this often, so that proxies and clients see the stream is alive.
KEEPALIVE = 15.0
# A client that does not take an event within this long is dropped (its place in the ring is all it held).
WRITE_TIMEOUT = 30.0
WRITE_BATCH = 64 * 1024  # bytes of events handed to a client's socket at once
# Open connections get this long to finish when the server stops.
SHUTDOWN_GRACE = 2.0
PUBLIC_PATHS = frozenset({"/healthz"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json_response(document: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(document, ensure_ascii=True) + "\n", status=status, content_type="application/json"
    )


def _sse(feed: EventFeed, seq: int, event: str, data: str) -> bytes:
    """One server-sent event; ``data`` is one line of JSON (no raw newline: ensure_ascii)."""
    return f"id: {feed.event_id(seq)}\nevent: {event}\ndata: {data}\n\n".encode()


def _sse_item(feed: EventFeed, item: FeedItem) -> bytes:
    return _sse(feed, item.seq, item.event, item.data)


class ServeApp:
    """The routes over one ``Poller``."""

    def __init__(self, poller: Poller, *, token: str | None = None, keepalive: float = KEEPALIVE) -> None:
        self.poller = poller
        self.keepalive = keepalive
        self.write_timeout = WRITE_TIMEOUT
        self.streams = 0  # event streams open now
        self._token = token.encode() if token else None
        self._metrics = MetricsPage(poller)

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/api/v1/snapshot", self.snapshot)
        app.router.add_get("/api/v1/events", self.events)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._token is not None and request.path not in PUBLIC_PATHS:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._token):
                return web.Response(
                    status=401,
                    text="a bearer token is required (the one in serve's --auth-token-file)\n",
                    headers={"WWW-Authenticate": 'Bearer realm="tunneltop"'},
                )
        return await handler(request)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=await self._metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def healthz(self, request: web.Request) -> web.Response:
        healthy, document = self.poller.health()
        return _json_response(document, 200 if healthy else 503)

    async def snapshot(self, request: web.Request) -> web.Response:
        text = await self.poller.snapshot_json()
        if text is None:
            _, health = self.poller.health()
            return _json_response({"error": "no snapshot yet", "health": health}, 503)
        headers = {"X-Tunneltop-Poll": str(self.poller.polls)}
        return web.Response(text=text, content_type="application/json", headers=headers)

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``change`` (a ``--watch`` line), ``poll`` (a poll ended: re-read the snapshot),
        ``hello`` (a fresh start) or ``reset`` (the events asked to resume from are gone: re-read the snapshot)."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        self.streams += 1
        try:
            await self._stream(response, request.headers.get("Last-Event-ID"))
        finally:
            self.streams -= 1
        return response

    async def _stream(self, response: web.StreamResponse, last: str | None) -> None:
        feed = self.poller.feed
        cursor = feed.resume_after(last)
        try:
            if cursor is None:
                cursor = feed.seq
                hello = json.dumps({"epoch": feed.epoch, "poll": self.poller.polls, "resumed": False})
                await self._write(response, _sse(feed, feed.seq, "reset" if last else "hello", hello))
            while not feed.closed:
                items = feed.since(cursor)
                if items is None:  # this client fell behind the ring's end
                    cursor = feed.seq
                    lost = json.dumps({"epoch": feed.epoch, "poll": self.poller.polls, "resumed": False})
                    await self._write(response, _sse(feed, feed.seq, "reset", lost))
                    continue
                if items:
                    # A batch at a time: a client far behind costs one batch of memory, not the ring's worth.
                    batch: list[bytes] = []
                    size = 0
                    for item in items:
                        batch.append(_sse_item(feed, item))
                        size += len(batch[-1])
                        if item is items[-1] or size >= WRITE_BATCH:
                            await self._write(response, b"".join(batch))
                            batch, size, cursor = [], 0, item.seq
                    continue
                if not await feed.wait_after(cursor, self.keepalive):
                    await self._write(response, b": keep-alive\n\n")
        except (ConnectionResetError, TimeoutError):
            pass  # the client left, or took too long to take an event

    async def _write(self, response: web.StreamResponse, data: bytes) -> None:
        # The write waits while the client's socket buffer is full (back-pressure): a client that reads nothing
        # holds one buffer's worth, and is dropped after write_timeout.
        async with asyncio.timeout(self.write_timeout):
            await response.write(data)


async def start(app: ServeApp, host: str, port: int) -> tuple[web.AppRunner, list[tuple[str, int]]]:
    """Listen on ``host:port``; the runner (to stop it) and the addresses bound (port 0 picks a free one)."""
    runner = web.AppRunner(app.application(), access_log=None, shutdown_timeout=SHUTDOWN_GRACE, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, [(str(a[0]), int(a[1])) for a in runner.addresses]
