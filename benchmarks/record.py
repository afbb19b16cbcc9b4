"""Recording figures: ``python -m benchmarks.record`` prints bytes per poll and per day, and replay's seek time.

Accounts come from the simulator's scale scenario (``SimulatedAccount(tunnels=N)``: real shapes, ids, addresses
and versions), read once; then each poll changes ``churn`` of the connections the way the live engine hands
changes on: a changed connection is a new record (closed and reopened under a new id, now, in its pool's other
colo, or gone pending), its connector and tunnel new objects, every other tunnel the very same object as the poll
before (what ``PollEngine`` guarantees). Events are the change engine's own ``diff``. Time is simulated: one poll
every ``--interval`` seconds of recorded time, written as fast as the recorder goes.

- quiet: 1,000 connections (125 tunnels x 2 connectors x 4), one connection changing per poll;
- busy: 10,000 connections (1,250 tunnels x 2 x 4), 1% of them changing every poll.

Bytes are the SQLite file's (pages in use, WAL checkpointed) over a whole number of segments (a full snapshot and
what follows it); a day is 17,280 polls at 5 s. Seek: a 24-hour recording of the quiet account at 5 s (17,280
polls) is made, then the state at random moments is read back from a fresh ``Recording`` each time (cold: nothing
cached but the poll index) and warm (the same reader, as the replay view keeps it); the same for two hours of the
busy account (a seek reads one segment, so the recording's length changes only the poll index's load).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tunneltop.changes.events import ChangeEvent, diff, without_first_sight
from tunneltop.demo.simulator import SimulatedAccount
from tunneltop.model.parse import parse_connectors, parse_many
from tunneltop.model.records import Connection, Connector, Tunnel
from tunneltop.model.snapshot import Snapshot, TunnelState
from tunneltop.record.reader import Recording
from tunneltop.record.schema import FULL_EVERY_POLLS
from tunneltop.record.store import Recorder

START = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
DAY_POLLS = 17_280


class Account:
    """A scale-scenario account as polls see it, changed ``churn`` connections at a time."""

    def __init__(self, tunnels: int, *, seed: int = 7) -> None:
        sim = SimulatedAccount(seed=seed, start=START, tunnels=tunnels, connectors_per_tunnel=2)
        records, _ = parse_many(Tunnel, sim.list_tunnels(), "tunnel")
        self.states = [TunnelState(t, tuple(parse_connectors(sim.clients(t.id))[0])) for t in records]
        self.account_id = sim.account_id
        self.rng = random.Random(seed)
        self.serial = 0
        # Where each connection is: (tunnel index, connector index, connection index).
        self.places = [
            (t, c, k)
            for t, state in enumerate(self.states)
            for c, connector in enumerate(state.connectors or ())
            for k in range(len(connector.conns))
        ]
        self.snapshot = Snapshot(self.account_id, START, tuple(self.states))

    @property
    def connections(self) -> int:
        return len(self.places)

    def _changed(self, conn: Connection, now: datetime) -> Connection:
        if conn.is_pending_reconnect is False and self.rng.random() < 0.3:
            return conn.model_copy(update={"is_pending_reconnect": True})
        self.serial += 1
        new_id = f"{conn.id[:24]}{self.serial:012d}"
        colo = conn.colo_name if self.rng.random() < 0.7 else (conn.colo_name or "DFW")[::-1]
        return conn.model_copy(
            update={"id": new_id, "uuid": new_id, "opened_at": now, "is_pending_reconnect": False, "colo_name": colo}
        )

    def poll(self, changes: int, now: datetime) -> Snapshot:
        touched: dict[int, list[list[Connection]]] = {}
        for t, c, k in self.rng.sample(self.places, changes):
            conns = touched.setdefault(t, [list(x.conns) for x in self.states[t].connectors or ()])
            conns[c][k] = self._changed(conns[c][k], now)
        for t, conns in touched.items():
            state = self.states[t]
            connectors: tuple[Connector, ...] = tuple(
                old if new == old.conns else old.model_copy(update={"conns": new})
                for old, new in zip(state.connectors or (), conns, strict=True)
            )
            self.states[t] = TunnelState(state.tunnel, connectors)
        previous = self.snapshot
        tunnels = tuple(self.states) if touched else previous.tunnels
        self.snapshot = Snapshot(self.account_id, now, tunnels)
        return self.snapshot

    def events(self, previous: Snapshot | None) -> list[ChangeEvent]:
        return without_first_sight(diff(previous, self.snapshot))


@dataclass
class Figures:
    name: str
    connections: int
    polls: int
    bytes_used: int
    write_ms: list[float]

    def report(self, interval: float) -> str:
        per_poll = self.bytes_used / self.polls
        per_day = per_poll * 86400 / interval
        median = statistics.median(self.write_ms)
        worst = max(self.write_ms)
        return (
            f"{self.name}: {self.connections:,} connections, {self.polls:,} polls: "
            f"{per_poll / 1024:,.1f} KiB per poll, "
            f"{per_day / 1e6:,.0f} MB per day at {interval:g} s; write {median:.1f} ms median, {worst:.0f} ms worst "
            "(a full snapshot)"
        )


def used_bytes(path: Path) -> int:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = db.execute("PRAGMA page_count").fetchone()[0] - db.execute("PRAGMA freelist_count").fetchone()[0]
        return int(pages) * int(db.execute("PRAGMA page_size").fetchone()[0])


def record(path: Path, account: Account, polls: int, changes: int, interval: float) -> list[float]:
    """``polls`` polls into ``path``; the milliseconds each write took."""
    times: list[float] = []
    with Recorder(path, durable=False) as recorder:
        previous: Snapshot | None = None
        for n in range(polls):
            snapshot = account.poll(changes if n else 0, START + timedelta(seconds=n * interval))
            events = account.events(previous)
            began = time.perf_counter()
            recorder.write(snapshot, events)
            times.append((time.perf_counter() - began) * 1000)
            previous = snapshot
        assert recorder.failure is None, recorder.failure
    return times


def size(name: str, tunnels: int, changes: float, polls: int, interval: float, where: Path) -> Figures:
    account = Account(tunnels)
    count = max(1, round(changes * account.connections)) if changes < 1 else int(changes)
    path = where / f"{name}.db"
    times = record(path, account, polls, count, interval)
    return Figures(name, account.connections, polls, used_bytes(path), times)


def seek(where: Path, tunnels: int, polls: int, interval: float, samples: int, changes: float = 1) -> str:
    path = where / f"seek-{tunnels}.db"
    account = Account(tunnels)
    count = max(1, round(changes * account.connections)) if changes < 1 else int(changes)
    began = time.perf_counter()
    record(path, account, polls, count, interval)
    made = time.perf_counter() - began
    rng = random.Random(1)
    span = (polls - 1) * interval
    moments = [START + timedelta(seconds=rng.uniform(0, span)) for _ in range(samples)]
    cold: list[float] = []
    for moment in moments:
        began = time.perf_counter()
        with Recording(path) as recording:
            recording.snapshot(recording.index_at(moment))
        cold.append((time.perf_counter() - began) * 1000)
    warm: list[float] = []
    with Recording(path) as recording:
        for moment in moments:
            began = time.perf_counter()
            recording.snapshot(recording.index_at(moment))
            warm.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        steps = min(polls, 2000)
        for index in range(steps):
            recording.snapshot(index)
        step_ms = (time.perf_counter() - began) * 1000 / steps
    size_mb = path.stat().st_size / 1e6
    return (
        f"seek in a {polls * interval / 3600:g}-hour recording ({polls:,} polls of {account.connections:,} "
        f"connections, {size_mb:,.1f} MB, made in {made:.0f} s): cold (open + seek) median "
        f"{statistics.median(cold):.0f} ms, max {max(cold):.0f} ms; warm median {statistics.median(warm):.0f} ms, "
        f"max {max(warm):.0f} ms; stepping forward poll by poll {step_ms:.2f} ms a poll"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.record", description="recording size and seek time")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between polls (default 5)")
    parser.add_argument("--polls", type=int, default=2 * FULL_EVERY_POLLS, help="polls per size run (two segments)")
    parser.add_argument("--day-polls", type=int, default=DAY_POLLS, help="polls in the seek recording (a day at 5 s)")
    parser.add_argument("--samples", type=int, default=30, help="moments to seek to")
    parser.add_argument("--skip-seek", action="store_true")
    parser.add_argument(
        "--busy-seek-polls",
        type=int,
        default=2 * FULL_EVERY_POLLS,
        help="polls in the busy account's seek recording (a seek reads one segment: its length does not matter)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        print(size("quiet", 125, 1, args.polls, args.interval, where).report(args.interval), flush=True)
        print(size("busy", 1250, 0.01, args.polls, args.interval, where).report(args.interval), flush=True)
        if not args.skip_seek:
            print(seek(where, 125, args.day_polls, args.interval, args.samples), flush=True)
            print(seek(where, 1250, args.busy_seek_polls, args.interval, args.samples, 0.01), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
