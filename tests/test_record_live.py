"""``--record`` in the live view (Pilot, the in-process demo account): every poll shown is recorded, and
``tunneltop replay FILE --at TIME -o json`` gives back the document of what the view showed; a recording that fails
is said once and the view goes on."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.live import record_notifications
from tests.support.terminal import kill, read_to_close, read_until, spawn, wait_exit
from tests.support.ui import make_app, wait_for_poll
from tunneltop.changes.events import rfc3339
from tunneltop.model.codec import snapshot_from_json
from tunneltop.record.command import main as replay_main
from tunneltop.record.source import RecordedSource
from tunneltop.record.store import Recorder
from tunneltop.report import exit_status, render_json


async def test_the_live_view_records_what_it_shows_and_replay_reads_it_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "live.db"
    recorder = Recorder(path, demo=True).open()
    app, _ = make_app(recorder=recorder)
    async with app.run_test(size=(130, 40)) as pilot:
        await wait_for_poll(pilot, app, 1)
        assert isinstance(app.engine, RecordedSource)
        assert app.header.source_badge == "REC live.db"
        shown = app.snapshot
        assert shown is not None
        await app.polling.wait_until(lambda: recorder.polls_written >= 1)
    with Recorder(path):  # the view closed it as it ended: the file is free again
        pass
    capsys.readouterr()
    status = replay_main([str(path), "--at", rfc3339(shown.fetched_at), "-o", "json"])
    replayed = capsys.readouterr().out
    assert json.loads(replayed) == json.loads(render_json(shown, demo=True, not_fetched=[]))
    assert status == exit_status(shown)


async def test_a_recording_that_fails_is_said_once_and_the_view_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    recorder = Recorder(path, demo=True).open()
    app, _ = make_app(recorder=recorder, interval=1.0)
    notes = record_notifications(app)
    async with app.run_test(size=(130, 40)) as pilot:
        await wait_for_poll(pilot, app, 1)
        with sqlite3.connect(path) as other:  # the file damaged under the recorder: its next write fails
            other.execute("DROP TABLE polls")
        polls = app.poll_count
        await pilot.press("r")
        await wait_for_poll(pilot, app, polls + 2)  # and polls go on
        stopped = [text for title, text, _ in notes if title == "Recording stopped"]
        assert len(stopped) == 1 and "the view goes on without recording" in stopped[0]
        assert app.header.source_badge == "REC stopped"
        assert app.status.error is False and app.snapshot is not None


@pytest.mark.slow  # a real process on a pty: about 3 s
def test_the_real_live_view_records_from_the_command_line(tmp_path: Path) -> None:
    """``tunneltop --demo --record FILE`` on a real terminal, stopped with SIGTERM; then replayed with --at."""
    path = tmp_path / "rec.db"
    pid, master = spawn([sys.executable, "-m", "tunneltop", "--demo", "--record", str(path)])
    try:
        screen = read_until(master, b"web-prod")  # drawn once the first poll is applied: it was recorded before
        assert b"web-prod" in screen, f"tunneltop did not draw its screen: {screen[-500:]!r}"
        os.kill(pid, signal.SIGTERM)
        read_to_close(master)
        _, code, _ = wait_exit(pid)
        assert code == 0
    finally:
        kill(pid)
        os.close(master)
    replay = [sys.executable, "-m", "tunneltop", "replay", str(path), "--at", "-0s", "-o", "json"]
    shown = subprocess.run(replay, capture_output=True, text=True, check=False)
    document = json.loads(shown.stdout)
    assert document["demo"] is True and {t["name"] for t in document["tunnels"]} >= {"web-prod"}
    assert shown.returncode == exit_status(snapshot_from_json(document))
