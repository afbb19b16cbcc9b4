"""Shared fixtures, kept generic: a clean environment, a fake clock, a loopback server, quick key presses.

The fakes and helpers shared by test modules live in ``tests/support/``; no test module imports another.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import textual.app
import textual.pilot

from tests.support.clock import FakeClock
from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.server import LoopbackServer


@pytest.fixture(autouse=True)
def _no_cloudflare_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees the developer's own Cloudflare credentials or endpoints, tunneltop settings or config file, nor
    shares a request budget ledger with a tunneltop running on this machine or with a test running beside it
    (each test gets its own runtime, state and config directories)."""
    for name in list(os.environ):
        if name.startswith(("CLOUDFLARE_", "TUNNELTOP_")):
            monkeypatch.delenv(name)
    for name in ("XDG_RUNTIME_DIR", "XDG_STATE_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(name, str(tmp_path_factory.mktemp(name.lower())))


@pytest.fixture(autouse=True)
def config_file(_no_cloudflare_env: None) -> Path:
    """Each test's own config file. It leaves the old_release check out: the stand-in's cloudflared versions are
    fixed strings while tunneltop judges a release's age against today's date, so a test's verdict would otherwise
    change as the calendar moves on. Tests of that check write their own file, or give the rules a date."""
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "tunneltop" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('[expect]\nignore = ["old_release"]\n', encoding="utf-8")
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(fake: FakeCloudflare) -> Iterator[LoopbackServer]:
    """A real HTTP server on 127.0.0.1 answering as the test module's own ``fake`` fixture says."""
    with LoopbackServer(fake) as running:
        yield running


@pytest.fixture
def quick_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pilot waits, after every key, for the whole process to look idle (at least 40 ms, often much more while it
    renders): hundreds of keys took a minute. Here each key is only yielded for; keys still arrive in order."""

    async def settle(*args: object, **kwargs: object) -> None:
        await asyncio.sleep(0.002)

    monkeypatch.setattr(textual.app, "wait_for_idle", settle)
    monkeypatch.setattr(textual.pilot, "wait_for_idle", settle)
