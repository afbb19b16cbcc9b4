"""``tunneltop replay FILE`` and the replay source: the --once document and exit status as they were, the recorded
events, stepping and jumping through the recording, a writer killed mid-write, and never an HTTP request."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.budget import Stand
from tests.support.clock import FakeClock
from tests.support.record import poll_and_record
from tunneltop import cli
from tunneltop.changes.events import rfc3339
from tunneltop.model.codec import snapshot_from_json
from tunneltop.poll.engine import PollOutcome
from tunneltop.poll.source import LiveSource, badge
from tunneltop.profiles import load_profile
from tunneltop.record.command import not_fetched
from tunneltop.record.reader import Recording
from tunneltop.record.source import RecordedSource, ReplaySource
from tunneltop.record.store import Recorder
from tunneltop.report import EXIT_UNKNOWN, EXIT_USAGE, exit_status, render_json


async def record(path: Path, polls: int = 30, *, fail_at: frozenset[int] = frozenset({12, 13})) -> list[PollOutcome]:
    """The demo account through the one poll engine, every 5 s of fake time, recorded as --watch records it."""
    clock = FakeClock()
    stand = Stand(clock, seed=11)
    engine = stand.engine(budget=240)
    with Recorder(path, full_every_polls=8, now=clock.wall) as recorder:
        outcomes = await poll_and_record(engine, recorder, stand.cf, clock, polls, fail_at=fail_at)
    await engine.client.aclose()
    return [o for o in outcomes if o.snapshot is not None or o.error is not None]


def forbid_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any HTTP client made from here on fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("replay made an HTTP client")

    monkeypatch.setattr(httpx.AsyncClient, "__init__", refuse)
    monkeypatch.setattr(httpx.Client, "__init__", refuse)


# -- tunneltop replay FILE --at / --events ------------------------------------------------------------------------


async def test_replay_at_prints_the_once_document_as_it_was_then_with_its_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rec.db"
    outcomes = await record(path)
    forbid_http(monkeypatch)
    for outcome, later in ((outcomes[3], 1), (outcomes[20], 2), (outcomes[-1], 0)):  # the end is the last poll's time
        snapshot = outcome.snapshot
        assert snapshot is not None
        at = (snapshot.fetched_at + timedelta(seconds=later)).isoformat().replace("+00:00", "Z")
        status = cli.main(["replay", str(path), "--at", at, "-o", "json"])
        document = json.loads(capsys.readouterr().out)
        assert status == exit_status(snapshot)
        assert document == json.loads(render_json(snapshot, not_fetched=not_fetched(snapshot)))
        assert {k: document[k] for k in snapshot.to_json()} == snapshot.to_json()
    assert cli.main(["replay", str(path), "--at", "-0s", "-o", "table"]) == exit_status(outcomes[-1].snapshot)  # type: ignore[arg-type]
    table = capsys.readouterr().out
    assert outcomes[-1].snapshot.fetched_at.strftime("%Y-%m-%dT%H:%M:%SZ") in table  # type: ignore[union-attr]


async def test_replay_at_a_failed_poll_exits_unknown_and_outside_the_recording_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rec.db"
    outcomes = await record(path)
    forbid_http(monkeypatch)
    failed = next(o for o in outcomes if o.snapshot is None)
    at = failed.events[0].at.isoformat()
    assert cli.main(["replay", str(path), "--at", at]) == EXIT_UNKNOWN
    said = capsys.readouterr()
    assert "the poll had failed" in said.err and said.out.startswith("TUNNELTOP UNKNOWN - ")
    for outside in ("2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z", "-30d"):
        assert cli.main(["replay", str(path), "--at", outside]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert "outside the recording, which covers" in err
    assert cli.main(["replay", str(path), "--at", "yesterday"]) == EXIT_USAGE
    assert "not a time" in capsys.readouterr().err
    assert cli.main(["replay", str(tmp_path / "none.db"), "--events"]) == EXIT_UNKNOWN
    assert "no recording at" in capsys.readouterr().err


async def test_replay_events_prints_the_recorded_events_between_two_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rec.db"
    outcomes = await record(path)
    forbid_http(monkeypatch)
    live = [e.to_json() for o in outcomes for e in o.events]
    assert cli.main(["replay", str(path), "--events", "-o", "jsonl"]) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == live
    since, until = outcomes[10].snapshot.fetched_at, outcomes[20].snapshot.fetched_at  # type: ignore[union-attr]
    assert cli.main(["replay", str(path), "--events", "--since", since.isoformat(), "--until", until.isoformat()]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines and lines == [e for e in live if since.isoformat()[:19] <= e["at"][:19] <= until.isoformat()[:19]]
    assert cli.main(["replay", str(path), "--events", "--since", "-10s"]) == 0
    assert len(capsys.readouterr().out.splitlines()) <= len(outcomes[-1].events) + len(outcomes[-2].events)


# -- the replay source -------------------------------------------------------------------------------------------


async def test_the_replay_source_plays_the_polls_and_their_events_as_they_came_live(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rec.db"
    outcomes = await record(path)
    forbid_http(monkeypatch)
    source: LiveSource = ReplaySource(Recording(path))
    assert badge(source) is not None and badge(source).startswith("REPLAY")  # type: ignore[union-attr]
    assert source.status is None
    for index, live in enumerate(outcomes):
        replayed = await source.poll()
        assert (replayed.snapshot is None) == (live.snapshot is None)
        if live.snapshot is not None:
            assert replayed.snapshot is not None and replayed.snapshot.to_json() == live.snapshot.to_json()
        else:
            assert replayed.error is not None and str(replayed.error) == str(live.error)
        if index:  # the first is the baseline; each step forward gives the events that poll gave live
            assert [e.to_json() for e in replayed.events] == [e.to_json() for e in live.events]
    at_end = await source.poll()
    assert at_end.snapshot is not None and at_end.events == []  # stays on the last poll
    assert isinstance(source, ReplaySource) and source.at_end
    await source.aclose()


async def test_the_replay_source_steps_back_and_jumps_to_a_time_and_to_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rec.db"
    outcomes = await record(path)
    forbid_http(monkeypatch)
    source = ReplaySource(Recording(path), playing=False)
    first = await source.poll()
    assert first.snapshot is not None and first.snapshot.to_json() == outcomes[0].snapshot.to_json()  # type: ignore[union-attr]
    assert (await source.poll()).snapshot is first.snapshot  # paused: the very same snapshot again
    source.step(5)
    assert source.next_poll_in() == 0.0
    fifth = await source.poll()
    assert fifth.snapshot.to_json() == outcomes[5].snapshot.to_json() and fifth.events == []  # type: ignore[union-attr]
    source.step(-2)
    third = await source.poll()
    assert third.snapshot.to_json() == outcomes[3].snapshot.to_json()  # type: ignore[union-attr]
    source.step(1)
    assert [e.to_json() for e in (await source.poll()).events] == [e.to_json() for e in outcomes[4].events]
    target = outcomes[22].snapshot.fetched_at  # type: ignore[union-attr]
    source.jump_to(target + timedelta(seconds=2))
    assert (await source.poll()).snapshot.to_json() == outcomes[22].snapshot.to_json()  # type: ignore[union-attr]
    at = outcomes[22].snapshot.fetched_at.replace(microsecond=0)  # type: ignore[union-attr]
    assert source.label == f"REPLAY {rfc3339(at)} poll 23 of {len(source.recording)} paused"
    # Back to the polls that failed: the previous poll with an error event.
    assert source.jump_to_event({"error"}, forward=False)
    failed = await source.poll()
    assert failed.snapshot is None and failed.error is not None
    assert source.position is not None and not source.recording.polls[source.position].ok
    assert not source.jump_to_event({"no-such-severity"})
    source.play()
    assert (await source.poll()).snapshot is not None or source.position is not None
    await source.aclose()


# -- a writer killed mid-write -----------------------------------------------------------------------------------

WRITER = """
import sys
from datetime import timedelta
from tunneltop.demo.simulator import SimulatedAccount
from tunneltop.model.parse import parse_connectors, parse_many
from tunneltop.model.records import Tunnel
from tunneltop.model.snapshot import Snapshot, TunnelState
from tunneltop.record.store import Recorder

sim = SimulatedAccount(seed=5, tunnels=30, connectors_per_tunnel=3)
recorder = Recorder(sys.argv[1], full_every_polls=7).open()
for n in range(100000):
    sim.advance(sim.start + timedelta(seconds=5 * n))
    tunnels, problems = parse_many(Tunnel, sim.list_tunnels(), "tunnel")
    states = tuple(TunnelState(t, tuple(parse_connectors(sim.clients(t.id))[0])) for t in tunnels)
    assert recorder.write(Snapshot(sim.account_id, sim.now, states, tuple(problems)), []), recorder.failure
    print(n, flush=True)
"""


def test_a_writer_killed_mid_write_leaves_a_sound_file_that_replays_and_records_on(tmp_path: Path) -> None:
    path = tmp_path / "rec.db"
    with subprocess.Popen(  # closes its pipe when done
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent
    ) as writer:
        assert writer.stdout is not None
        committed = -1
        while committed < 40:  # it writes as fast as it can: the kill lands in the middle of some poll's write
            committed = int(writer.stdout.readline())
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with Recording(path) as recording:
        assert len(recording) >= committed + 1  # every poll it said was written is there
        recording.snapshot(len(recording) - 1)
        recording.snapshot(0)
    with Recorder(path) as recorder:  # the dead writer's lock is gone with it
        with Recording(path) as recording:
            last = recording.snapshot(len(recording) - 1)
        assert recorder.write(last, [])
    with Recording(path) as recording:
        assert recording.snapshot(len(recording) - 1).to_json() == last.to_json()


def test_a_profile_names_the_recording_relative_to_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[profiles.prod]\nrecord = "recordings/prod.db"\n[profiles.home]\nrecord = "~/r.db"\n')
    assert load_profile("prod", config, {}).record == tmp_path / "recordings" / "prod.db"
    assert load_profile("home", config, {"HOME": str(tmp_path)}).record == tmp_path / "r.db"


async def test_a_recorded_source_records_every_poll_of_the_source_it_wraps(tmp_path: Path) -> None:
    """The live view's --record: its source, wrapped."""
    path = tmp_path / "rec.db"
    clock = FakeClock()
    stand = Stand(clock, seed=2)
    engine = stand.engine(budget=240)
    source: LiveSource = RecordedSource(engine, Recorder(path, now=clock.wall).open())
    source.interval = 7.0
    assert engine.interval == 7.0 and source.status == engine.status
    seen = []
    for _ in range(6):
        outcome = await source.poll()
        assert outcome.snapshot is not None
        seen.append(outcome.snapshot.to_json())
        clock.advance(max(5.0, source.next_poll_delay()))
    assert isinstance(source, RecordedSource) and source.failure is None
    await source.aclose()
    await engine.client.aclose()
    with Recording(path) as recording:
        assert [recording.snapshot(i).to_json() for i in range(len(recording))] == seen
    with Recorder(path):  # closed with the source: the file is free again
        pass


# -- the command line --------------------------------------------------------------------------------------------


def test_record_flags_are_checked_and_a_busy_file_is_refused_before_any_poll(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rec.db"
    with pytest.raises(SystemExit) as usage:
        cli.main(["--demo", "--once", "--record", str(path)])
    assert usage.value.code in (EXIT_USAGE, EXIT_UNKNOWN)  # --once's usage errors are UNKNOWN (a plugin's)
    assert "--once polls once: nothing to keep" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--demo", "--watch", "--record-keep", "7d"])
    assert "go with --record FILE" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--demo", "--watch", "--record", str(path), "--record-max", "10KB"])
    assert "at least 1MB" in capsys.readouterr().err
    with Recorder(path):
        assert cli.main(["--demo", "--watch", "--record", str(path)]) == EXIT_UNKNOWN
    said = capsys.readouterr()
    assert f"is being recorded by another tunneltop (pid {os.getpid()})" in said.err and said.out == ""


@pytest.mark.slow
def test_watch_record_from_the_command_line_then_replay_it(tmp_path: Path) -> None:
    """The real command, polling the demo account every second, stopped with SIGTERM; then replayed."""
    path = tmp_path / "rec.db"
    command = [sys.executable, "-m", "tunneltop", "--demo", "--watch", "-n", "1", "--record", str(path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as watcher:  # closes its pipe when done
        assert watcher.stdout is not None
        assert json.loads(watcher.stdout.readline())["kind"] == "baseline"  # the first poll is recorded before it
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait() == 0
    replay = [sys.executable, "-m", "tunneltop", "replay", str(path)]
    shown = subprocess.run([*replay, "--at", "-0s", "-o", "json"], capture_output=True, text=True, check=False)
    document = json.loads(shown.stdout)
    assert document["demo"] is True and document["tunnels"]
    assert shown.returncode == exit_status(snapshot_from_json(document))
