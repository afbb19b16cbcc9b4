"""Reading a recording back: any poll's snapshot, exactly as it was written, and the recorded events.

``Recording(path)`` opens it read-only (a writer may be recording to it at the same time: WAL lets both) and loads
the poll index (a few bytes per poll). A poll's snapshot is rebuilt from its segment's full snapshot and the
changes after it (see ``schema``); stepping forward poll by poll reads only each poll's own changes, and tunnels
that did not change come back as the very same objects, as the live engine hands them out.
"""

from __future__ import annotations

import bisect
import itertools
import json
import sqlite3
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tunneltop.model.codec import CodecError, snapshot_from_json, state_from_json
from tunneltop.model.snapshot import Snapshot, TunnelState, same_objects
from tunneltop.record.blobs import unpack, unpack_events
from tunneltop.record.schema import EVENT_DICTIONARY, OTHER_SEVERITY, SEVERITY_BITS, RecordingError
from tunneltop.record.store import connect

# Decoded tunnels kept for reuse (the same object while a tunnel is unchanged), and their documents (the base the
# next version is compressed against): at least this many, else a few snapshots' worth of the account.
_CACHE_AT_LEAST = 4096
_CACHE_SNAPSHOTS = 4
# SQLite's default limit on the ? of one statement is 999 (older builds) or 32766.
_IDS_PER_QUERY = 900


@dataclass(frozen=True)
class PollRow:
    id: int
    t: float  # Unix seconds
    at: str  # as the snapshot document writes it
    segment: int
    ok: bool
    error: str | None

    @property
    def when(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)


@dataclass
class _Cursor:
    segment: int
    poll: int
    blobs: dict[str, int]


class Recording:
    """A recording, read-only. Raises RecordingError when the file is not one (or is from a newer tunneltop)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise RecordingError(f"no recording at {self.path}")
        self._conn = connect(self.path, read_only=True)
        try:
            meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
            rows = self._conn.execute("SELECT id, t, at, segment, ok, error FROM polls ORDER BY id").fetchall()
        except sqlite3.Error as exc:
            self._conn.close()
            raise RecordingError(f"{self.path} cannot be read ({exc})") from None
        self.demo = meta.get("demo") == "1"
        self._dictionary = bytes.fromhex(meta["event_dictionary"]) if "event_dictionary" in meta else EVENT_DICTIONARY
        self.polls = [PollRow(i, t, at, segment, bool(ok), error) for i, t, at, segment, ok, error in rows]
        self._times = [p.t for p in self.polls]
        self._index = {p.id: n for n, p in enumerate(self.polls)}
        self._bytes: dict[int, bytes] = {}
        self._limit = _CACHE_AT_LEAST
        self._states: dict[int, TunnelState] = {}
        self._cursor: _Cursor | None = None
        self._last: tuple[TunnelState, ...] = ()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.polls)

    @property
    def start(self) -> datetime:
        return self._edge(0)

    @property
    def end(self) -> datetime:
        return self._edge(-1)

    def _edge(self, index: int) -> datetime:
        if not self.polls:
            raise RecordingError(f"{self.path} holds no poll yet")
        return self.polls[index].when

    # -- where in time -------------------------------------------------------------------------------------------

    def index_at(self, moment: datetime) -> int:
        """The last poll at or before ``moment``. RecordingError when the recording does not cover it."""
        if not self.polls:
            raise RecordingError(f"{self.path} holds no poll yet")
        index = bisect.bisect_right(self._times, moment.timestamp()) - 1
        if index < 0 or moment.timestamp() > self._times[-1]:
            raise RecordingError(
                f"{_iso(moment)} is outside the recording, which covers {_iso(self.start)} to {_iso(self.end)}"
            )
        return index

    def last_good(self, index: int) -> int | None:
        """The last poll at or before ``index`` that gave a snapshot (None: none did)."""
        while index >= 0 and not self.polls[index].ok:
            index -= 1
        return index if index >= 0 else None

    def event_poll(self, index: int, severities: Collection[str], *, forward: bool) -> int | None:
        """The next (or previous) poll after (before) ``index`` with an event of one of these severities."""
        mask = 0
        for severity in severities:
            mask |= SEVERITY_BITS.get(severity, OTHER_SEVERITY)
        poll_id = self.polls[index].id
        if forward:
            query = "SELECT MIN(id) FROM polls WHERE id > ? AND severities & ? != 0"
        else:
            query = "SELECT MAX(id) FROM polls WHERE id < ? AND severities & ? != 0"
        found = self._conn.execute(query, (poll_id, mask)).fetchone()[0]
        return None if found is None else self._index.get(int(found))

    # -- what was recorded ---------------------------------------------------------------------------------------

    def snapshot(self, index: int) -> Snapshot:
        """The snapshot of poll ``index`` (one that gave a snapshot: see ``last_good``)."""
        row = self.polls[index]
        if not row.ok:
            raise RecordingError(f"the poll at {row.at} failed: {row.error}")
        try:
            head, order = self._conn.execute("SELECT head, tunnels FROM polls WHERE id = ?", (row.id,)).fetchone()
            blobs = self._blobs_at(row)
            self._load((head, order))
            head_data, ids = json.loads(self._bytes[head]), json.loads(self._bytes[order])
            wanted = [blobs[tunnel_id] for tunnel_id in ids]
            self._limit = max(_CACHE_AT_LEAST, _CACHE_SNAPSHOTS * len(wanted))
            self._load(b for b in wanted if b not in self._states)
            states = tuple(self._state(blob) for blob in wanted)
            document = {**head_data, "fetched_at": row.at, "tunnels": []}
            snapshot = snapshot_from_json(document)
        except (sqlite3.Error, ValueError, KeyError, CodecError) as exc:
            raise RecordingError(f"the poll at {row.at} cannot be read back ({exc})") from None
        if same_objects(states, self._last):
            states = self._last  # the very same tuple, as the engine gives it for an unchanged poll
        self._last = states
        return replace(snapshot, tunnels=states)

    def events(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[dict[str, Any]]:
        """The recorded events (``ChangeEvent.to_json`` documents) of the polls between two times, both included,
        in order (an event's time is its poll's)."""
        low = since.timestamp() if since is not None else float("-inf")
        high = until.timestamp() if until is not None else float("inf")
        cursor = self._conn.execute(
            "SELECT events FROM polls WHERE t >= ? AND t <= ? AND events IS NOT NULL ORDER BY id", (low, high)
        )
        for (stored,) in cursor:
            yield from unpack_events(stored, self._dictionary)

    def poll_events(self, index: int) -> list[dict[str, Any]]:
        row = self._conn.execute("SELECT events FROM polls WHERE id = ?", (self.polls[index].id,)).fetchone()
        return unpack_events(row[0], self._dictionary) if row is not None and row[0] is not None else []

    # -- rebuilding ----------------------------------------------------------------------------------------------

    def _blobs_at(self, row: PollRow) -> dict[str, int]:
        """Each tunnel's blob as of poll ``row``: from the cursor when moving forward in its segment, else from the
        segment's start."""
        cursor = self._cursor
        if cursor is not None and cursor.segment == row.segment and cursor.poll <= row.id:
            changed = self._conn.execute(
                "SELECT k.id, s.blob FROM tunnel_states s JOIN tunnel_keys k ON k.key = s.tunnel"
                " WHERE s.poll > ? AND s.poll <= ? ORDER BY s.poll",
                (cursor.poll, row.id),
            )
            cursor.blobs.update(changed.fetchall())
            cursor.poll = row.id
            return cursor.blobs
        latest = self._conn.execute(
            "SELECT k.id, s.blob, MAX(s.poll) FROM tunnel_states s JOIN tunnel_keys k ON k.key = s.tunnel"
            " WHERE s.poll >= ? AND s.poll <= ? GROUP BY s.tunnel",
            (row.segment, row.id),
        )
        self._cursor = _Cursor(row.segment, row.id, {tunnel_id: blob for tunnel_id, blob, _ in latest})
        return self._cursor.blobs

    def _load(self, wanted: Iterable[int]) -> None:
        """The documents of these blobs into ``_bytes``: their rows and their chains' fetched level by level (one
        query per level, not one per blob), each chain decoded from its root."""
        rows: dict[int, tuple[int, int | None, bytes]] = {}
        pending = [blob for blob in dict.fromkeys(wanted) if blob not in self._bytes]
        targets = list(pending)
        while pending:
            for start in range(0, len(pending), _IDS_PER_QUERY):
                chunk = pending[start : start + _IDS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT id, codec, base, data FROM blobs WHERE id IN ({marks})"
                found = self._conn.execute(query, chunk)
                rows.update((blob, (codec, base, stored)) for blob, codec, base, stored in found)
            missing = [blob for blob in pending if blob not in rows]
            if missing:
                raise RecordingError(f"a stored state is missing (blob {missing[0]})")
            pending = list(
                dict.fromkeys(
                    base
                    for blob in pending
                    if (base := rows[blob][1]) is not None and base not in rows and base not in self._bytes
                )
            )
        decoded: dict[int, bytes] = {}

        def decode(blob: int) -> bytes:
            found = self._bytes.get(blob)
            if found is None:
                found = decoded.get(blob)
            if found is None:
                codec, base, stored = rows[blob]
                found = decoded[blob] = unpack(codec, stored, decode(base) if base is not None else None)
            return found

        # Decoded first, remembered after: nothing leaves the cache while a chain may still need it.
        for blob, document in [(blob, decode(blob)) for blob in targets]:
            _remember(self._bytes, blob, document, self._limit)

    def _state(self, blob: int) -> TunnelState:
        state = self._states.get(blob)
        if state is None:
            if blob not in self._bytes:  # let go of since it was loaded, to make room for others of this snapshot
                self._load((blob,))
            state = state_from_json(json.loads(self._bytes[blob]))
            _remember(self._states, blob, state, self._limit)
        return state


def _remember(cache: dict[int, Any], key: int, value: Any, limit: int) -> None:
    """Into a cache of at most ``limit``: when full, the oldest quarter goes (dicts keep insertion order)."""
    if len(cache) >= limit:
        for old in list(itertools.islice(cache, max(1, limit // 4))):
            del cache[old]
    cache[key] = value


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
