"""Reading a recording back: any poll's snapshot, exactly as it was written, and the recorded events.

``Recording(path)`` opens it read-only (a writer may be recording to it at the same time: WAL lets both) and loads
the poll index (a few bytes per poll). A poll's snapshot is rebuilt from its segment's full snapshot and the
changes after it (see ``schema``); stepping forward poll by poll reads only each poll's own changes, and tunnels
that did not change come back as the very same objects, as the live engine hands them out.
"""

from __future__ import annotations

import bisect
import json
import sqlite3
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tunneltop.model.codec import CodecError, snapshot_from_json, state_from_json
from tunneltop.model.snapshot import Snapshot, TunnelState, same_objects
from tunneltop.record.blobs import unpack, unpack_events
from tunneltop.record.schema import EVENT_DICTIONARY, OTHER_SEVERITY, SEVERITY_BITS, RecordingError
from tunneltop.record.store import connect

# Decoded tunnels kept for reuse (the same object while a tunnel is unchanged): a large account's several times
# over; and decoded documents, enough for the chains (at most MAX_CHAIN long) of every tunnel stepped through.
_STATES_LIMIT = 8192
_BYTES_LIMIT = 4096


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
            states = tuple(self._state(blobs[tunnel_id]) for tunnel_id in json.loads(self._data(order)))
            document = {**json.loads(self._data(head)), "fetched_at": row.at, "tunnels": []}
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
                "SELECT tunnel_id, blob FROM tunnel_states WHERE poll > ? AND poll <= ? ORDER BY poll",
                (cursor.poll, row.id),
            )
            cursor.blobs.update(changed.fetchall())
            cursor.poll = row.id
            return cursor.blobs
        latest = self._conn.execute(
            "SELECT tunnel_id, blob, MAX(poll) FROM tunnel_states WHERE poll >= ? AND poll <= ? GROUP BY tunnel_id",
            (row.segment, row.id),
        )
        self._cursor = _Cursor(row.segment, row.id, {tunnel_id: blob for tunnel_id, blob, _ in latest})
        return self._cursor.blobs

    def _data(self, blob: int) -> bytes:
        data = self._bytes.get(blob)
        if data is not None:
            return data
        found = self._conn.execute("SELECT codec, base, data FROM blobs WHERE id = ?", (blob,)).fetchone()
        if found is None:
            raise RecordingError(f"a stored state is missing (blob {blob})")
        codec, base, stored = found
        data = unpack(codec, stored, self._data(base) if base is not None else None)
        if len(self._bytes) >= _BYTES_LIMIT:
            self._bytes.clear()
        self._bytes[blob] = data
        return data

    def _state(self, blob: int) -> TunnelState:
        state = self._states.get(blob)
        if state is None:
            state = state_from_json(json.loads(self._data(blob)))
            if len(self._states) >= _STATES_LIMIT:
                self._states.clear()
            self._states[blob] = state
        return state


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
