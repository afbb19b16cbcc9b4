"""``--attach URL``: a ``tunneltop serve`` server as the source of (snapshot, events), in place of the API.

No Cloudflare credential and no Cloudflare request: it reads the server's ``/api/v1/snapshot`` (the ``--once -o
json`` document, turned back into a ``Snapshot`` by ``model.codec``) each time the server's event stream
(``/api/v1/events``) says a poll ended, and works the change events out itself, with the very ``diff`` the engine
uses, against the last snapshot it read: N viewers, one poller, and the same events as the poller's own (none is
lost to a dropped connection, since the next snapshot carries what happened meanwhile).

It follows the event stream in the background and reconnects by itself, resuming with ``Last-Event-ID`` (a
restarted server starts over: a fresh snapshot). While the server cannot be reached, or its own polls fail, a poll
gives an error (the view keeps the last snapshot, marked stale) with the failure-streak events of the engine's
rule. It implements ``poll.source.LiveSource`` (and ``Labelled``, ``Closable``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from tunneltop.api.errors import ApiError, AuthError, InvalidResponseError, NetworkError, ServerError, UsageError
from tunneltop.api.gate import BudgetStatus
from tunneltop.changes.events import ChangeEvent, diff, without_first_sight
from tunneltop.model.codec import CodecError, snapshot_from_json
from tunneltop.model.snapshot import Snapshot
from tunneltop.poll.account import utc_now
from tunneltop.poll.engine import PollOutcome
from tunneltop.poll.planner import DEFAULT_INTERVAL
from tunneltop.poll.streak import FailureStreak
from tunneltop.sanitize import clean

SNAPSHOT_TIMEOUT = aiohttp.ClientTimeout(total=30.0, connect=5.0)
# The server sends a keep-alive comment every 15 s: a stream silent for 45 s is a server gone half-open.
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=45.0)
RECONNECT_FIRST = 0.5
RECONNECT_MAX = 5.0


def display_url(url: str) -> str:
    """The URL without any user:password part, for the badge and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return clean(urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), 200)


async def lines_of(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """The lines of a byte stream, whatever their length (an event can be long: a tunnel's every connector)."""
    parts: list[bytes] = []  # the line so far, joined once its end comes (a long line is not copied per chunk)
    async for chunk in chunks:
        if b"\n" not in chunk:
            parts.append(chunk)
            continue
        first, *complete, rest = chunk.split(b"\n")
        for line in (b"".join([*parts, first]), *complete):
            yield line.removesuffix(b"\r").decode("utf-8", "replace")
        parts = [rest]


async def server_sent_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str | None, str, str]]:
    """(id, event name, data) of each event on a text/event-stream; comments are skipped."""
    event_id: str | None = None
    name = "message"
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield event_id, name, "\n".join(data)
            name, data = "message", []
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "id":
            event_id = value
        elif key == "event":
            name = value
        elif key == "data":
            data.append(value)


class _NoSnapshotYet(Exception):
    """The server has not finished its first poll: nothing is wrong, the data is on its way."""


def _health_of(body: bytes) -> dict[str, Any]:
    """The server's own health from a 503 answer's body (empty when it is not the JSON serve sends)."""
    try:
        document = json.loads(body)
    except ValueError:
        return {}
    health = document.get("health") if isinstance(document, dict) else None
    return health if isinstance(health, dict) else {}


class AttachSource:
    """The live view's source reading a ``tunneltop serve`` server."""

    def __init__(
        self,
        url: str,
        *,
        interval: float = DEFAULT_INTERVAL,
        token: str | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.url = url.rstrip("/")
        self.usage_errors: list[UsageError] = []
        self.previous: Snapshot | None = None
        self.connected = False  # the event stream is up
        self._interval = interval
        self._effective: float | None = None
        self._now = now
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._session: aiohttp.ClientSession | None = None  # made in the event loop, at the first poll
        self._news = asyncio.Event()
        self._server_poll: dict[str, Any] | None = None  # the last "poll" event: how the server's polls go
        self._last_id: str | None = None
        self._link_error: str | None = None
        self._follower: asyncio.Task[None] | None = None
        self._streak = FailureStreak()  # the engine's rule (poll/streak.py)

    # -- LiveSource -----------------------------------------------------------------------------------------------

    @property
    def label(self) -> str:
        return f"attached to {display_url(self.url)}"

    @property
    def interval(self) -> float:
        return self._interval

    @interval.setter
    def interval(self, seconds: float) -> None:
        self._interval = seconds

    @property
    def effective_interval(self) -> float:
        """The server's pace (its own interval, stretched by its budget), once it has said."""
        return self._effective if self._effective is not None else self._interval

    @property
    def named(self) -> bool:
        return False  # the server decides what is watched; every tunnel it has is shown

    @property
    def status(self) -> BudgetStatus | None:
        return None  # no request to Cloudflare from here

    def refresh(self, tunnel_ids: Iterable[str] = ()) -> None:
        """A refresh reads the server's latest snapshot at once (the server polls at its own pace)."""
        self._news.set()

    def set_in_view(self, tunnel_ids: Iterable[str]) -> None:
        """The server polls what it was told to; nothing to reorder here."""

    def next_poll_in(self) -> float:
        return 0.0

    def next_poll_delay(self) -> float:
        return 0.0  # poll() itself waits for the server's next poll

    async def poll(self) -> PollOutcome:
        """The server's latest snapshot and what changed since the last one read. The first poll reads at once; the
        next ones wait for the server's next poll (at most the interval)."""
        first = self._follower is None
        self._follow()
        if not first:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), max(self._interval, 1.0))
        self._news.clear()
        try:
            snapshot = await self._read_snapshot()
        except _NoSnapshotYet as wait:
            return PollOutcome(None, holding=str(wait))
        except ApiError as exc:
            return PollOutcome(None, self._failed(exc), exc)
        server = self._server_poll
        fresh = self.previous is None or snapshot.fetched_at > self.previous.fetched_at
        if not fresh and server is not None and server.get("error"):
            # Nothing new, and the server says why: its own polls fail. The view keeps this snapshot, stale.
            error = ServerError(f"{display_url(self.url)}: the server's polls fail: {clean(server['error'], 500)}")
            return PollOutcome(None, self._failed(error), error)
        return PollOutcome(snapshot, self._succeeded(snapshot))

    async def aclose(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        if self._session is not None:
            await self._session.close()

    # -- reading the server ---------------------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        # aiohttp's client: its get() streams (the event stream), and it never reads proxies from the environment.
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=SNAPSHOT_TIMEOUT)
        return self._session

    async def _read_snapshot(self) -> Snapshot:
        where = display_url(self.url)
        try:
            async with self._http().get(f"{self.url}/api/v1/snapshot") as response:
                status, body = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = self._link_error or type(exc).__name__
            raise NetworkError(f"{where} cannot be reached: {clean(reason, 200)}") from None
        if status == 401:
            raise AuthError(f"{where} asks for a bearer token (the one in its --auth-token-file)")
        if status == 503:
            health = _health_of(body)
            if health.get("status") == "starting":
                raise _NoSnapshotYet(f"waiting for the first poll of {where}")
            reason = clean(health.get("last_error") or "no poll has succeeded yet", 500)
            raise ServerError(f"{where} has no snapshot: its polls fail: {reason}", status=503)
        if status != 200:
            raise ServerError(f"{where} answered HTTP {status}", status=status)
        try:
            return snapshot_from_json(json.loads(body))
        except (ValueError, CodecError) as exc:
            raise InvalidResponseError(f"{where} sent no snapshot document: {clean(exc, 200)}") from None

    def _follow(self) -> None:
        if self._follower is None or self._follower.done():
            self._follower = asyncio.get_running_loop().create_task(self._follow_events())

    async def _follow_events(self) -> None:
        """Keep the event stream open: each poll's end is news; a lost stream is news too, and is reopened."""
        backoff = RECONNECT_FIRST
        while True:
            headers = {"Accept": "text/event-stream"}
            if self._last_id is not None:
                headers["Last-Event-ID"] = self._last_id
            try:
                url = f"{self.url}/api/v1/events"
                async with self._http().get(url, headers=headers, timeout=STREAM_TIMEOUT) as response:
                    if response.status != 200:
                        self._link_error = f"its event stream answered HTTP {response.status}"
                    else:
                        self.connected, self._link_error, backoff = True, None, RECONNECT_FIRST
                        lines = lines_of(response.content.iter_any())
                        async for event_id, name, data in server_sent_events(lines):
                            self._take(event_id, name, data)
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._link_error = f"{type(exc).__name__} on its event stream"
            self.connected = False
            self._news.set()
            await asyncio.sleep(backoff)
            backoff = min(RECONNECT_MAX, backoff * 2)

    def _take(self, event_id: str | None, name: str, data: str) -> None:
        if event_id is not None:
            self._last_id = event_id
        if name == "poll":
            with contextlib.suppress(ValueError):
                document = json.loads(data)
                if isinstance(document, dict):
                    self._server_poll = document
                    effective = document.get("effective_interval")
                    if isinstance(effective, int | float) and effective > 0:
                        self._effective = float(effective)
            self._news.set()
        elif name in ("hello", "reset"):
            self._news.set()  # a (re)started stream: read the snapshot now

    # -- each poll's events ----------------------------------------------------------------------------------------

    def _failed(self, exc: ApiError) -> list[ChangeEvent]:
        return self._streak.failed(self._now(), exc)

    def _succeeded(self, snapshot: Snapshot) -> list[ChangeEvent]:
        events = self._streak.succeeded(snapshot.fetched_at)
        if self.previous is not None and snapshot.fetched_at == self.previous.fetched_at:
            return events  # the same poll's snapshot read again
        events.extend(without_first_sight(diff(self.previous, snapshot)))
        self.previous = snapshot
        return events
