"""The real live app against a real HTTP server on 127.0.0.1 (the fault suite's rig, shared by the secrets,
hostile-data and read-only suites): the stand-in account, the app with short timeouts and no back-off sleeps,
the faults the server answers with, and waits on what the app does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from textual.pilot import Pilot

from tests.support.clock import no_sleep
from tunneltop.api.auth import Credentials
from tunneltop.api.client import RetryPolicy
from tunneltop.demo.cfapi import FakeCloudflare, Fault
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID, DEMO_TUNNELS, SimulatedAccount
from tunneltop.poll.target import Target
from tunneltop.ui.app import TunneltopApp

START = datetime(2026, 11, 28, 12, tzinfo=UTC)
TOKEN = "cfut_FaultSuiteSecret-Q7v2LmZ8xWp3"
SIZE = (130, 40)
WEB = DEMO_TUNNELS["web-prod"]
HOME = DEMO_TUNNELS["home-lab"]
# The client's timeout: a hung answer costs a fraction of a second, while one that comes (loopback, a loaded
# 2-core machine) is in well within it.
HANG_TIMEOUT = 0.25

# Faults the server answers with, and what the message about each says.
ANSWERED = {
    "500-json": (Fault.error(500), "HTTP 500"),
    "502-json": (Fault.error(502), "HTTP 502"),
    "503-json": (Fault.error(503), "HTTP 503"),
    "504-json": (Fault.error(504), "HTTP 504"),
    "500-html": (Fault.html_page(500), "HTTP 500 with an HTML error page"),
    "502-html": (Fault.html_page(502), "HTTP 502 with an HTML error page"),
    "503-html": (Fault.html_page(503), "HTTP 503 with an HTML error page"),
    "504-html": (Fault.html_page(504), "HTTP 504 with an HTML error page"),
    "truncated-json": (Fault.raw('{"success": true, "errors": [], "result": [{"id": "1edea7e3-'), "not valid JSON"),
    "success-false-200": (Fault.unsuccessful(), "Cloudflare refused the request (HTTP 200)"),
    "corrupt-gzip": (Fault(headers={"Content-Encoding": "gzip"}), "could not be decoded"),
    "hang": (Fault.hang(30.0), "did not answer in time"),
}


class MovingClock:
    """A wall clock that starts at START and moves with real time (the account-wide view paces itself by it)."""

    def __init__(self) -> None:
        self._began = time.monotonic()

    def __call__(self) -> datetime:
        return START + timedelta(seconds=time.monotonic() - self._began)


class Warped:
    """A monotonic clock that runs ``factor`` times faster than real time: the request budget's minute passes in
    a few seconds, so a long run of faults at the default budget does not wait a real second for every token."""

    def __init__(self, factor: float = 10.0) -> None:
        self._began = time.monotonic()
        self._factor = factor

    def __call__(self) -> float:
        return 5000.0 + (time.monotonic() - self._began) * self._factor


def make_fake(**options: object) -> FakeCloudflare:
    """The demo account, frozen, at START, accepting TOKEN."""
    sim = SimulatedAccount(start=START)
    sim.freeze()
    return FakeCloudflare(sim, tokens=[TOKEN], clock=lambda: START, **options)  # type: ignore[arg-type]


def live_app(
    base_url: str,
    *,
    interval: float = 0.05,
    refs: list[str] | None = (WEB, HOME),
    monotonic: Callable[[], float] | None = None,
    timeout: float = HANG_TIMEOUT,
    clock: Callable[[], datetime] | None = None,
    **options: object,
) -> TunneltopApp:
    """The real app, its client pointed at a real HTTP server, with short timeouts and no back-off sleeps.

    By default it watches web-prod and home-lab by id (the monitor view: tree, table, detail); ``refs=None`` watches
    the whole account. ``monotonic`` replaces the clock of the app's countdown and the client's Retry-After gate;
    ``clock`` the wall clock (START, standing still, by default)."""
    mono = monotonic or time.monotonic
    target = Target(
        base_url, Credentials.token(TOKEN, source="test"), DEMO_ACCOUNT_ID, list(refs or ()), transport=None
    )
    return TunneltopApp(
        target,
        interval=interval,
        clock=clock or (lambda: START),
        monotonic=mono,
        client_options={
            "timeout": httpx.Timeout(timeout),
            "request_deadline": timeout * 2,
            "retry": RetryPolicy(retries=1),
            "sleep": no_sleep,
            "clock": mono,
        },
        **options,  # type: ignore[arg-type]
    )


async def wait_until(pilot: Pilot, predicate: Callable[[], object]) -> None:
    """Let the app run until ``predicate()`` holds: it is checked again after each short pause, with no deadline
    of its own (pytest-timeout is the hang guard), so a loaded machine only makes the wait longer."""
    while not predicate():
        await pilot.pause(0.02)
    await pilot.pause()


def record_notifications(app: TunneltopApp) -> list[tuple[str, str, object]]:
    """Every notification the app raises, as (title, message, markup flag)."""
    seen: list[tuple[str, str, object]] = []
    original = app.notify

    def notify(message: str, **kwargs: object) -> None:
        seen.append((str(kwargs.get("title", "")), message, kwargs.get("markup", True)))
        original(message, **kwargs)  # type: ignore[arg-type]

    app.notify = notify  # type: ignore[method-assign]
    return seen
