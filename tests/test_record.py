"""Recording every poll to SQLite and reading any moment back (tunneltop/record/).

The recordings here are made the way a user makes one: the one poll engine against the stand-in Cloudflare (the
in-process demo transport, on a fake clock so that hours pass in a moment), each outcome handed to the Recorder as
``--watch`` hands it, while the simulated account changes and faults come and go. What replays must be exactly what
was seen live.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import sqlite3
import stat
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.clock import FakeClock
from tests.support.record import poll_and_record
from tunneltop import stream as stream_module
from tunneltop.api.auth import Credentials
from tunneltop.api.client import CloudflareClient, RetryPolicy
from tunneltop.api.gate import RequestGate
from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.simulator import SimulatedAccount
from tunneltop.demo.transport import DEMO_BASE_URL, DemoTransport
from tunneltop.poll.engine import PollEngine, PollOutcome
from tunneltop.poll.target import Target
from tunneltop.record import reader as reader_module
from tunneltop.record.blobs import unpack, unpack_events
from tunneltop.record.reader import Recording
from tunneltop.record.retention import parse_age, parse_size
from tunneltop.record.schema import RecordingError
from tunneltop.record.store import Recorder, lock_path
from tunneltop.stream import watch_stream

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
TOKEN = "record-test-token-0123456789abcdefABCDEF"


class Rig:
    """The stand-in Cloudflare and the poll engine on one fake clock; ``run`` polls and records."""

    def __init__(self, *, seed: int = 7, tunnels: int | None = None, token: str | None = None) -> None:
        self.clock = FakeClock(wall_start=T0)
        self.sim = SimulatedAccount(seed=seed, start=T0, tunnels=tunnels, connectors_per_tunnel=2)
        self.cf = FakeCloudflare(
            self.sim, require_auth=token is not None, tokens=[token] if token else [], clock=self.clock.wall
        )
        self.credentials = Credentials.token(token, source="test") if token else None

    def client(self) -> CloudflareClient:
        return CloudflareClient(
            self.credentials,
            DEMO_BASE_URL,
            transport=DemoTransport(self.cf),
            gate=RequestGate(240, clock=self.clock),
            clock=self.clock,
            sleep=self.clock.sleep,
            rng=random.Random(1),
            retry=RetryPolicy(retries=1),
        )

    async def run(
        self, recorder: Recorder, polls: int, *, every: Sequence[float] = (5.0,), fail_at: frozenset[int] = frozenset()
    ) -> list[PollOutcome]:
        """``polls`` polls, ``every`` seconds apart (cycling); the polls in ``fail_at`` find Cloudflare failing."""
        async with self.client() as client:
            engine = PollEngine(client, self.sim.account_id, interval=5.0, min_burst=240, now=self.clock.wall)
            return await poll_and_record(engine, recorder, self.cf, self.clock, polls, every=every, fail_at=fail_at)


def assert_replays_exactly(path: Path, outcomes: list[PollOutcome]) -> None:
    """Every poll comes back: a snapshot as its JSON was live (at its own time too), a failure as a failure, and
    the events it gave."""
    recorded = [o for o in outcomes if o.snapshot is not None or o.error is not None]
    with Recording(path) as recording:
        assert len(recording) == len(recorded)
        assert [p.t for p in recording.polls] == sorted(p.t for p in recording.polls)
        for index, outcome in enumerate(recorded):
            row = recording.polls[index]
            assert [e["kind"] for e in recording.poll_events(index)] == [e.kind.value for e in outcome.events]
            if outcome.snapshot is None:
                assert not row.ok and row.error
                continue
            live = outcome.snapshot.to_json()
            assert recording.snapshot(index).to_json() == live
            assert recording.index_at(outcome.snapshot.fetched_at) == index
        # Backwards too (each from its segment's start, not from a cursor moving forward).
        for index in reversed(range(len(recorded))):
            if recorded[index].snapshot is not None:
                assert recording.snapshot(index).to_json() == recorded[index].snapshot.to_json()  # type: ignore[union-attr]


# -- record, then replay exactly ---------------------------------------------------------------------------------


async def test_a_recording_replays_to_exactly_the_snapshots_seen_live(tmp_path: Path) -> None:
    rig = Rig()
    path = tmp_path / "rec.db"
    with Recorder(path, full_every_polls=9, now=rig.clock.wall) as recorder:
        outcomes = await rig.run(recorder, 60, every=(5.0, 4.0, 11.0), fail_at=frozenset({20, 21, 22, 40}))
        assert recorder.failure is None
    assert sum(o.snapshot is None for o in outcomes) == 4
    assert len({o.snapshot.to_json()["tunnels"].__repr__() for o in outcomes if o.snapshot}) > 10, "nothing changed"
    assert_replays_exactly(path, outcomes)


@settings(deadline=None, max_examples=8, derandomize=True, database=None)
@given(
    seed=st.integers(0, 10_000),
    polls=st.integers(1, 25),
    every=st.lists(st.sampled_from([1.0, 5.0, 30.0, 400.0]), min_size=1, max_size=4),
    fail_at=st.frozensets(st.integers(0, 24), max_size=5),
    full_every=st.integers(1, 12),
)
def test_property_record_then_replay_at_each_polls_time_gives_that_polls_snapshot(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    polls: int,
    every: list[float],
    fail_at: frozenset[int],
    full_every: int,
) -> None:
    path = tmp_path_factory.mktemp("prop") / "rec.db"
    rig = Rig(seed=seed)

    async def record() -> list[PollOutcome]:
        with Recorder(
            path, full_every_polls=full_every, full_every=timedelta(minutes=10), now=rig.clock.wall
        ) as recorder:
            return await rig.run(recorder, polls, every=every, fail_at=fail_at)

    assert_replays_exactly(path, asyncio.run(record()))


async def test_unchanged_tunnels_are_stored_once_and_come_back_as_the_same_objects(tmp_path: Path) -> None:
    rig = Rig()
    rig.sim.freeze()  # nothing changes: every poll after the first hands back the very same tunnels
    path = tmp_path / "rec.db"
    with Recorder(path) as recorder:
        outcomes = await rig.run(recorder, 30)
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT COUNT(*), COUNT(DISTINCT poll) FROM tunnel_states").fetchone()
        blobs = db.execute("SELECT COUNT(*) FROM blobs").fetchone()[0]
    tunnels = len(outcomes[0].snapshot.tunnels)  # type: ignore[union-attr]
    assert rows == (tunnels, 1), "a tunnel is written again only when it changed"
    assert blobs == tunnels + 2  # and the poll's head and tunnel list, once
    with Recording(path) as recording:
        first, second = recording.snapshot(5), recording.snapshot(6)
        assert first.tunnels is second.tunnels


# -- --watch --record --------------------------------------------------------------------------------------------


class _RigTarget(Target):
    """The rig's stand-in as --watch's target, its client on the rig's fake clock."""

    rig: Rig

    def client(self, *, gate: RequestGate | None = None, **options: Any) -> CloudflareClient:
        return self.rig.client()


async def _watch(rig: Rig, recorder: Recorder, polls: int, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """The real ``watch_stream`` loop with ``--record``, for ``polls`` polls: its stdout and stderr."""
    slept = 0

    async def sleep_on_the_fake_clock(wait: float, stop: asyncio.Event) -> bool:
        nonlocal slept
        slept += 1
        rig.clock.advance(max(0.0, wait))
        if slept >= polls:
            stop.set()
        return stop.is_set()

    monkeypatch.setattr(stream_module, "sleep_unless_stopped", sleep_on_the_fake_clock)
    target = _RigTarget(DEMO_BASE_URL, rig.credentials, rig.sim.account_id, demo=rig.credentials is None)
    target.rig = rig
    out, err = io.StringIO(), io.StringIO()
    assert await watch_stream(target, 5.0, out, stop=asyncio.Event(), err=err, recorder=recorder) == 0
    return out.getvalue(), err.getvalue()


def _everything_stored(path: Path) -> list[bytes]:
    """Every byte the file holds, and every stored document decompressed."""
    documents = [path.read_bytes()]
    with sqlite3.connect(path) as db:
        blobs: dict[int, tuple[int, int | None, bytes]] = {}
        rows = db.execute("SELECT id, codec, base, data FROM blobs ORDER BY id").fetchall()
        for blob_id, codec, base, data in rows:
            blobs[blob_id] = (codec, base, unpack(codec, data, blobs[base][2] if base is not None else None))
            documents.append(blobs[blob_id][2])
        batches = db.execute("SELECT events FROM polls WHERE events IS NOT NULL").fetchall()
        documents += [json.dumps(unpack_events(batch)).encode() for (batch,) in batches]
        documents += [str(row).encode() for row in db.execute("SELECT * FROM polls")]
        documents += [str(row).encode() for row in db.execute("SELECT * FROM meta")]
    return documents


async def test_watch_records_every_poll_and_never_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(token=TOKEN)
    path = tmp_path / "rec.db"
    with Recorder(path) as recorder:
        out, err = await _watch(rig, recorder, 12, monkeypatch)
    assert err == ""
    lines = [json.loads(line) for line in out.splitlines()]
    with Recording(path) as recording:
        assert len(recording) == 12
        # The stream's events are the recording's (the baseline line is the stream's own).
        assert [e for e in lines if e["kind"] != "baseline"] == list(recording.events())
    stored = _everything_stored(path)
    assert len(stored) > 10
    for document in stored:
        assert TOKEN.encode() not in document
        assert b"Bearer" not in document and b"Authorization" not in document.title()


async def test_a_full_disk_stops_the_recording_and_the_stream_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = Rig()
    path = tmp_path / "rec.db"
    with Recorder(path, now=rig.clock.wall) as recorder:
        await rig.run(recorder, 3)
        # Then the disk is full: SQLite's own page limit for this connection, at the pages the file has now, says
        # the same "database or disk is full" a full file system does.
        conn = recorder._conn
        assert conn is not None
        conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
        out, err = await _watch(rig, recorder, 12, monkeypatch)
        assert recorder.failure is not None and "disk is full" in recorder.failure
    assert err.count("recording to") == 1 and "the stream goes on without recording" in err
    assert len(out.splitlines()) >= 2  # the baseline and the events after the recording stopped
    with Recording(path) as recording:
        assert len(recording) >= 3  # what was written before stays readable
        recording.snapshot(recording.last_good(len(recording) - 1) or 0)


# -- one writer, crashes, versions -------------------------------------------------------------------------------


def test_a_second_writer_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    path = tmp_path / "rec.db"
    with Recorder(path):
        with pytest.raises(RecordingError, match=r"being recorded by another tunneltop \(pid \d+\)"):
            Recorder(path).open()
        with Recording(path) as recording:  # reading while it records is fine
            assert len(recording) == 0
    with Recorder(path) as again:  # and once the first one is gone, the file is free
        assert again.failure is None
    assert lock_path(path).exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the account's names and addresses: the owner's only


def test_a_file_from_a_newer_tunneltop_or_not_a_recording_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rec.db"
    with Recorder(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(RecordingError, match=r"newer tunneltop .*schema version 99"):
        Recorder(path).open()
    with pytest.raises(RecordingError, match="newer tunneltop"):
        Recording(path)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(RecordingError, match="not a tunneltop recording"):
        Recorder(other).open()
    text = tmp_path / "notes.txt"
    text.write_text("hello " * 200)
    with pytest.raises(RecordingError, match="not a tunneltop recording"):
        Recording(text)


# -- retention -----------------------------------------------------------------------------------------------


async def test_retention_by_age_prunes_whole_segments_and_keeps_a_full_snapshot_first(tmp_path: Path) -> None:
    rig = Rig()
    path = tmp_path / "rec.db"
    with Recorder(path, keep=timedelta(minutes=12), full_every=timedelta(minutes=5)) as recorder:
        outcomes = await rig.run(recorder, 45, every=(60.0,))  # 45 minutes, a poll a minute
    with Recording(path) as recording:
        # Whole segments go, when a segment starts: what is left reaches back the age kept, plus at most the
        # segment holding the cut and the one recorded since the last prune.
        newest = outcomes[-1].snapshot.fetched_at  # type: ignore[union-attr]
        assert newest - timedelta(minutes=12 + 2 * 5) <= recording.start <= newest - timedelta(minutes=12)
        assert recording.polls[0].segment == recording.polls[0].id  # it starts with a full snapshot
        kept = [o for o in outcomes if o.snapshot is not None][-len(recording) :]
        for index, outcome in enumerate(kept):
            assert recording.snapshot(index).to_json() == outcome.snapshot.to_json()  # type: ignore[union-attr]
        with pytest.raises(RecordingError, match="outside the recording"):
            recording.index_at(T0)


async def test_retention_by_size_keeps_the_file_under_its_cap(tmp_path: Path) -> None:
    rig = Rig(tunnels=10)
    path = tmp_path / "rec.db"
    cap = 100_000  # about half of what the 40 polls take
    with Recorder(path, max_bytes=cap, full_every_polls=6) as recorder:
        outcomes = await rig.run(recorder, 40)
        assert recorder.failure is None
    with sqlite3.connect(path) as db:
        used = db.execute("PRAGMA page_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
    assert used <= cap * 1.5  # the cap, give or take the segment being written when it was reached
    with Recording(path) as recording:
        assert 6 <= len(recording) < 30
        last = len(recording) - 1
        assert recording.snapshot(last).to_json() == outcomes[-1].snapshot.to_json()  # type: ignore[union-attr]
        assert recording.snapshot(0).to_json() == outcomes[40 - len(recording)].snapshot.to_json()  # type: ignore[union-attr]


def test_ages_and_sizes_as_written_on_the_command_line() -> None:
    assert parse_age("7d") == timedelta(days=7)
    assert parse_age("90m") == timedelta(minutes=90)
    assert parse_size("500MB") == 500_000_000
    assert parse_size("1GiB") == 2**30
    for bad in ("7", "0d", "-1h", "soon"):
        with pytest.raises(ValueError):
            parse_age(bad)
    for bad in ("500", "1KB", "lots"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_events_are_compressed_against_the_stored_dictionary(tmp_path: Path) -> None:
    """A poll's events are one zlib stream with a preset dictionary, kept in the file's meta for later readers."""
    path = tmp_path / "rec.db"
    with Recorder(path):
        pass
    with sqlite3.connect(path) as db:
        dictionary = bytes.fromhex(db.execute("SELECT value FROM meta WHERE key = 'event_dictionary'").fetchone()[0])
    packer = zlib.compressobj(6, zdict=dictionary)
    stored = packer.compress(b'[{"kind":"conn_opened"}]') + packer.flush()
    assert unpack_events(stored, dictionary) == [{"kind": "conn_opened"}]


async def test_seeks_in_any_order_with_caches_too_small_for_one_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the replay reader lets go of to make room, it reads again: every poll comes back exactly."""
    rig = Rig()
    path = tmp_path / "rec.db"
    with Recorder(path, full_every_polls=15, now=rig.clock.wall) as recorder:
        outcomes = await rig.run(recorder, 40, every=(5.0, 9.0))
    monkeypatch.setattr(reader_module, "_CACHE_AT_LEAST", 2)
    monkeypatch.setattr(reader_module, "_CACHE_SNAPSHOTS", 0)
    order = list(range(len(outcomes)))
    random.Random(4).shuffle(order)
    with Recording(path) as recording:
        for index in order + order[::-1]:
            assert recording.snapshot(index).to_json() == outcomes[index].snapshot.to_json()  # type: ignore[union-attr]
