"""The live view over a recording (``tunneltop replay FILE``), driven with Pilot: the REPLAY badge, the recorded
polls played in order, a step back and a jump shown at the next poll, and no HTTP client made."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.record import record_polls
from tests.support.ui import wait_for_poll
from tunneltop.record.reader import Recording
from tunneltop.record.source import ReplaySource
from tunneltop.ui.app import TunneltopApp


async def test_the_live_view_plays_a_recording_steps_back_and_jumps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rec.db"
    seen = await record_polls(path, 12)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the replay view made an HTTP client")

    monkeypatch.setattr(httpx.AsyncClient, "__init__", refuse)
    source = ReplaySource(Recording(path), playing=False)
    app = TunneltopApp(source.target(), source=source, interval=1.0, start_view="monitor")
    async with app.run_test(size=(130, 40)) as pilot:
        await wait_for_poll(pilot, app, 1)
        assert app.header.source_badge.startswith(f"REPLAY {seen[0].to_json()['fetched_at']}")
        assert app.snapshot is not None and app.snapshot.to_json() == seen[0].to_json()
        source.step(6)  # what a key will do; refresh (r) polls at once, as after any key
        await pilot.press("r")
        await wait_for_poll(pilot, app, 2)
        assert app.snapshot.to_json() == seen[6].to_json()
        assert seen[6].to_json()["fetched_at"] in app.header.source_badge
        source.step(-2)
        await pilot.press("r")
        await wait_for_poll(pilot, app, 3)
        assert app.snapshot.to_json() == seen[4].to_json()
        source.jump_to(seen[-1].fetched_at)
        await pilot.press("r")
        await wait_for_poll(pilot, app, 4)
        assert app.snapshot.to_json() == seen[-1].to_json()
