"""Shared test fixtures, kept generic: a clean Cloudflare environment, a fake clock, and a loopback server."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.server import LoopbackServer


@pytest.fixture(autouse=True)
def _no_cloudflare_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees the developer's own Cloudflare credentials or endpoints, nor shares a request budget ledger
    with a tunneltop running on this machine (each test gets its own runtime directory)."""
    for name in list(os.environ):
        if name.startswith("CLOUDFLARE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("runtime")))


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps (or the test advances it)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(fake: FakeCloudflare) -> Iterator[LoopbackServer]:
    """A real HTTP server on 127.0.0.1 answering as the test module's own ``fake`` fixture says."""
    with LoopbackServer(fake) as running:
        yield running
