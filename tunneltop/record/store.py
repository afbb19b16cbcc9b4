"""The recorder: every poll's snapshot and change events into a SQLite file (schema in ``tunneltop.record.schema``).

One call per poll from a front end: ``recorder.write(snapshot, events)`` (or ``write_outcome(outcome)``), one
transaction each. It never raises once open: a write that fails (a full disk, a file removed under it) stops the
recording, ``failure`` says why, and the front end goes on without it.

What a poll costs: a tunnel is written only when it changed. Unchanged tunnels are the very same objects from poll
to poll (the engine hands them back), so most are told apart by identity, the rest by a hash of their document;
a changed tunnel is stored zlib-compressed against its previous version (see ``schema``), so a churning connection
costs about its own bytes.

Durability: WAL mode with ``synchronous=FULL``. Each poll's commit is fsynced, so a power loss takes at most the
poll being written, and a ``kill -9`` nothing committed (WAL never leaves the file corrupt). ``NORMAL`` would skip
that fsync and could lose every poll since the last checkpoint on power loss; at one commit per poll (5 s by
default) the fsync costs nothing anyone would notice, so the stronger promise is kept.

One writer per file: the recorder holds an exclusive ``flock`` on ``FILE-lock`` (with its pid in it) while open.
The kernel drops the lock when the process dies, however it dies, so a dead writer never blocks the next one; a
live one makes ``open`` fail with its pid.

One module (over ~400 lines): the transaction per poll, retention and the writer's lock are one protocol.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from tunneltop import __version__
from tunneltop.changes.events import ChangeEvent
from tunneltop.model.snapshot import Snapshot, TunnelState
from tunneltop.poll.engine import PollOutcome
from tunneltop.record.blobs import dump, pack, pack_events
from tunneltop.record.schema import (
    DDL,
    EVENT_DICTIONARY,
    FULL_EVERY,
    FULL_EVERY_POLLS,
    MAX_CHAIN,
    OTHER_SEVERITY,
    SCHEMA_VERSION,
    SEVERITY_BITS,
    RecordingError,
)


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + "-lock")


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection to a recording, its schema checked (RecordingError when it is not one this tunneltop reads)."""
    try:
        if read_only:
            conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, check_same_thread=False)
        else:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        raise RecordingError(f"{path} is not a tunneltop recording ({exc})") from None
    if tables and "meta" not in tables:
        conn.close()
        raise RecordingError(f"{path} is an SQLite database but not a tunneltop recording")
    if tables:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row is not None and str(row[0]).isdigit() else None
        if version is None or version > SCHEMA_VERSION:
            conn.close()
            said = "an unknown schema version" if version is None else f"schema version {version}"
            raise RecordingError(
                f"{path} was written by a newer tunneltop ({said}; this one, {__version__}, reads up to "
                f"{SCHEMA_VERSION}): read it with a newer tunneltop"
            )
    return conn


def _utc_now() -> datetime:
    return datetime.now(UTC)


def rfc3339_exact(moment: datetime) -> str:
    """The time as the snapshot document writes it (its offset and fraction kept): stored verbatim per poll."""
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class _Kept:
    """A tunnel as last written in this segment: the state object, its document's hash, bytes and blob."""

    state: TunnelState
    digest: bytes
    data: bytes
    blob: int
    depth: int


@dataclass
class _Segment:
    first: int  # the id of its first poll (its full snapshot)
    started: float  # that poll's time, Unix seconds
    polls: int = 0
    tunnels: dict[str, _Kept] = field(default_factory=dict)
    last_tuple: tuple[TunnelState, ...] | None = None
    this_host: str | None = None
    order: list[str] | None = None
    order_blob: int | None = None
    head: bytes | None = None
    head_blob: int | None = None


class Recorder:
    """Writes a recording, poll by poll. ``open()`` (or ``with``/``async with``) first; it raises RecordingError
    when the file cannot be recorded to (another writer, a newer schema, not a recording); after that, nothing
    raises: see ``failure``."""

    def __init__(
        self,
        path: Path | str,
        *,
        keep: timedelta | None = None,
        max_bytes: int | None = None,
        demo: bool = False,
        full_every_polls: int = FULL_EVERY_POLLS,
        full_every: timedelta = FULL_EVERY,
        durable: bool = True,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        """``durable=False`` skips the fsync of each commit (``synchronous=NORMAL``): still never corrupt, but a
        power loss may take the polls since the last checkpoint. For benchmarks and tests that write thousands of
        polls in a moment; a recording of a live run keeps the default. ``now``: the time of a failed poll that
        said nothing (a failure streak goes on quietly between its reports): the poll engine's clock."""
        self.path = Path(path)
        self.keep = keep
        self.max_bytes = max_bytes
        self.demo = demo
        self.full_every_polls = full_every_polls
        self.full_every = full_every.total_seconds()
        self.durable = durable
        self.now = now
        self.failure: str | None = None
        self.polls_written = 0
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._segment: _Segment | None = None
        self._force_full = False
        self._keys: dict[str, int] = {}

    # -- open and close ------------------------------------------------------------------------------------------

    def open(self) -> Recorder:
        self._lock()
        try:
            self._create_private()
            self._conn = connect(self.path)
            self._prepare(self._conn)
        except BaseException:
            self.close()
            raise
        return self

    def _create_private(self) -> None:
        """A new recording readable by its owner only (SQLite gives its -wal and -shm files the same mode): it holds
        the account's tunnel names, hosts and addresses, if never a secret."""
        try:
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            return
        except OSError as exc:
            raise RecordingError(f"cannot record to {self.path}: {exc.strerror or exc}") from None

    def _lock(self) -> None:
        where = lock_path(self.path)
        try:
            fd = os.open(where, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise RecordingError(f"cannot record to {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise RecordingError(
                f"{self.path} is being recorded by another tunneltop (pid {holder}): one writer per file; "
                "record to another file, or stop that one"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _prepare(self, conn: sqlite3.Connection) -> None:
        try:
            # Before any table exists: lets pruning give pages back to the file system (incremental_vacuum).
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise RecordingError(f"cannot record to {self.path}: SQLite's WAL mode is not available there")
            conn.execute(f"PRAGMA synchronous = {'FULL' if self.durable else 'NORMAL'}")
            conn.execute("BEGIN IMMEDIATE")
            if conn.execute("SELECT name FROM sqlite_master WHERE name = 'meta'").fetchone() is None:
                for statement in DDL:
                    conn.execute(statement)
                conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [
                        ("schema_version", str(SCHEMA_VERSION)),
                        ("created_at", _utc_now().isoformat()),
                        ("created_by", f"tunneltop {__version__}"),
                        ("event_dictionary", EVENT_DICTIONARY.hex()),
                    ],
                )
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('writer_pid', ?)", (str(os.getpid()),))
            if self.demo:
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('demo', '1')")
            conn.execute("COMMIT")
            self._keys = dict(conn.execute("SELECT id, key FROM tunnel_keys"))
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise RecordingError(f"cannot record to {self.path}: {exc}") from None

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            # The lock file stays: removing it could let two writers lock two different files of one name.
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Recorder:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Recorder:
        return self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------------------------

    def write_outcome(self, outcome: PollOutcome) -> bool:
        """A poll engine's outcome: its snapshot and events, or its failure (a poll only held back is not one)."""
        if outcome.snapshot is None and outcome.error is None:
            return self.failure is None
        error = None
        if outcome.error is not None:
            error = str(getattr(outcome.error, "message", None) or outcome.error)
        return self.write(outcome.snapshot, outcome.events, error=error)

    def write(self, snapshot: Snapshot | None, events: Sequence[ChangeEvent] = (), *, error: str | None = None) -> bool:
        """Record one poll (``snapshot`` None: it failed, ``error`` says why) in one transaction. False when the
        recording has stopped (``failure`` says why); never raises."""
        conn = self._conn
        if conn is None or self.failure is not None:
            return False
        try:
            conn.execute("BEGIN IMMEDIATE")
            started = self._write(conn, snapshot, events, error)
            conn.execute("COMMIT")
        except (sqlite3.Error, OSError, RecordingError) as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            # What this recorder remembers of the segment may now be ahead of the file: it writes no more.
            self._stop(exc)
            return False
        self.polls_written += 1
        if started:
            self._prune(conn)
        elif self.max_bytes is not None:
            try:
                # Over the size: the next poll starts a segment, and the oldest ones go to make room for it.
                self._force_full = self._used_bytes(conn) > self.max_bytes
            except sqlite3.Error as exc:
                self._stop(exc)
        return self.failure is None

    def _stop(self, exc: BaseException) -> None:
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and "full" in text.lower():
            text = "the disk is full"
        self.failure = f"recording to {self.path} stopped: {text}"
        self.close()

    def _write(
        self, conn: sqlite3.Connection, snapshot: Snapshot | None, events: Sequence[ChangeEvent], error: str | None
    ) -> bool:
        """The poll's rows; True when it started a segment."""
        started = False
        if snapshot is None:
            at = events[0].at if events else self.now()
            segment = self._segment
            cursor = conn.execute(
                "INSERT INTO polls (t, at, segment, ok, error) VALUES (?, ?, -1, 0, ?)",
                (at.timestamp(), at.isoformat(), error or "the poll failed"),
            )
            poll = int(cursor.lastrowid or 0)
            conn.execute("UPDATE polls SET segment = ? WHERE id = ?", (segment.first if segment else poll, poll))
        else:
            t = snapshot.fetched_at.timestamp()
            cursor = conn.execute(
                "INSERT INTO polls (t, at, segment, ok) VALUES (?, ?, -1, 1)", (t, rfc3339_exact(snapshot.fetched_at))
            )
            poll = int(cursor.lastrowid or 0)
            segment = self._segment
            if (
                segment is None
                or self._force_full
                or segment.polls >= self.full_every_polls
                or t - segment.started >= self.full_every
            ):
                segment = self._segment = _Segment(poll, t)
                self._force_full = False
                started = True
            segment.polls += 1
            head, order = self._write_states(conn, poll, segment, snapshot)
            conn.execute(
                "UPDATE polls SET segment = ?, head = ?, tunnels = ? WHERE id = ?", (segment.first, head, order, poll)
            )
        if events:
            severities = 0
            for event in events:
                severities |= SEVERITY_BITS.get(str(event.severity), OTHER_SEVERITY)
            packed = pack_events([e.to_json() for e in events])
            conn.execute("UPDATE polls SET severities = ?, events = ? WHERE id = ?", (severities, packed, poll))
        return started

    def _blob(self, conn: sqlite3.Connection, segment: _Segment, data: bytes, base: _Kept | None = None) -> int:
        codec, stored = pack(data, base.data if base is not None else None)
        cursor = conn.execute(
            "INSERT INTO blobs (segment, codec, base, data) VALUES (?, ?, ?, ?)",
            (segment.first, codec, base.blob if base is not None else None, stored),
        )
        return int(cursor.lastrowid or 0)

    def _write_states(
        self, conn: sqlite3.Connection, poll: int, segment: _Segment, snapshot: Snapshot
    ) -> tuple[int, int]:
        """The tunnels that changed since the segment's last poll, and the head and order blobs' ids."""
        # The document without its tunnels, as Snapshot.to_json writes it; each tunnel's as it writes that one.
        shell = replace(snapshot, tunnels=()).to_json()
        head = dump({k: v for k, v in shell.items() if k not in ("fetched_at", "tunnels")})
        if head != segment.head:
            segment.head, segment.head_blob = head, self._blob(conn, segment, head)
        this_host = snapshot.local.connector_id if snapshot.local is not None else None
        # Every tunnel's document says which connector is this host's: when that changes, none is skipped by identity.
        same_host = this_host == segment.this_host
        if snapshot.tunnels is not segment.last_tuple or not same_host:
            segment.this_host = this_host
            order = [state.tunnel.id for state in snapshot.tunnels]
            if order != segment.order:
                segment.order, segment.order_blob = order, self._blob(conn, segment, dump(order))
            rows = []
            for state in snapshot.tunnels:
                kept = segment.tunnels.get(state.tunnel.id)
                if kept is not None and kept.state is state and same_host:
                    continue
                data = dump(state.to_json(this_host))
                digest = hashlib.blake2b(data, digest_size=16).digest()
                if kept is not None and kept.digest == digest:
                    kept.state = state
                    continue
                base = kept if kept is not None and kept.depth < MAX_CHAIN else None
                blob = self._blob(conn, segment, data, base)
                depth = base.depth + 1 if base is not None else 0
                segment.tunnels[state.tunnel.id] = _Kept(state, digest, data, blob, depth)
                rows.append((poll, self._key(conn, state.tunnel.id), blob))
            conn.executemany("INSERT OR REPLACE INTO tunnel_states (poll, tunnel, blob) VALUES (?, ?, ?)", rows)
            segment.last_tuple = snapshot.tunnels
        assert segment.head_blob is not None and segment.order_blob is not None
        return segment.head_blob, segment.order_blob

    def _key(self, conn: sqlite3.Connection, tunnel_id: str) -> int:
        """The tunnel's key in ``tunnel_keys``, added the first time it is seen."""
        key = self._keys.get(tunnel_id)
        if key is None:
            cursor = conn.execute("INSERT INTO tunnel_keys (id) VALUES (?)", (tunnel_id,))
            key = self._keys[tunnel_id] = int(cursor.lastrowid or 0)
        return key

    # -- retention -----------------------------------------------------------------------------------------------

    @staticmethod
    def _used_bytes(conn: sqlite3.Connection) -> int:
        pages = conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int(pages) * int(conn.execute("PRAGMA page_size").fetchone()[0])

    def _prune(self, conn: sqlite3.Connection) -> None:
        """Whole segments, oldest first: older than ``keep`` (against the newest poll), then while over
        ``max_bytes``. The current segment always stays, so what is left starts with a full snapshot."""
        if (self.keep is None and self.max_bytes is None) or self._segment is None:
            return
        current = self._segment.first
        try:
            segments = conn.execute(
                "SELECT segment, MAX(t) FROM polls WHERE segment < ? GROUP BY segment ORDER BY segment", (current,)
            ).fetchall()
            newest = conn.execute("SELECT MAX(t) FROM polls").fetchone()[0]
            cut = None
            if self.keep is not None and newest is not None:
                oldest_kept = newest - self.keep.total_seconds()
                for first, last_t in segments:
                    if last_t < oldest_kept:
                        cut = first
            if cut is not None:
                self._drop_before(conn, self._next_segment(conn, cut, current))
            while self.max_bytes is not None and self._used_bytes(conn) > self.max_bytes:
                oldest = conn.execute("SELECT MIN(segment) FROM polls").fetchone()[0]
                if oldest is None or oldest >= current:
                    break
                self._drop_before(conn, self._next_segment(conn, oldest, current))
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._stop(exc)

    @staticmethod
    def _next_segment(conn: sqlite3.Connection, after: int, current: int) -> int:
        row = conn.execute("SELECT MIN(segment) FROM polls WHERE segment > ?", (after,)).fetchone()
        return int(row[0]) if row is not None and row[0] is not None else current

    @staticmethod
    def _drop_before(conn: sqlite3.Connection, first: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM tunnel_states WHERE poll < ?", (first,))
        conn.execute("DELETE FROM polls WHERE id < ?", (first,))
        conn.execute("DELETE FROM blobs WHERE segment < ?", (first,))
        conn.execute("COMMIT")
        conn.execute("PRAGMA incremental_vacuum")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def open_recorder(
    path: Path,
    *,
    keep: timedelta | None,
    max_bytes: int | None,
    demo: bool = False,
    say: Callable[[str], None],
) -> Recorder | None:
    """``--record FILE`` opened before the first poll, as every front end opens it: the recorder, or None after
    ``say`` told why it cannot be (another process records that file, with its pid; a directory not there)."""
    try:
        return Recorder(path, keep=keep, max_bytes=max_bytes, demo=demo).open()
    except RecordingError as exc:
        say(str(exc))
        return None
