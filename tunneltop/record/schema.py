"""The recording's SQLite schema, version 1: what is stored and how to read any moment back.

A recording is a sequence of **polls**. Polls are grouped in **segments**: the first poll of a segment stores every
tunnel (a full snapshot); each later poll of the segment stores only the tunnels that changed since the poll before
it. So the state at poll P of segment S is: for each tunnel id in P's tunnel list, its row in ``tunnel_states``
with the greatest poll id in [S, P]. A segment starts when a recording session starts, every
``FULL_EVERY_POLLS`` polls or ``FULL_EVERY`` of recorded time, and when recording resumes after a failure; it is
self-contained (no row or blob of a segment refers to another), so retention deletes whole segments, oldest first,
and what is left still starts with a full snapshot.

Tables:

- ``meta(key, value)``: ``schema_version`` (this module's ``SCHEMA_VERSION``; a file with a greater one is refused,
  never guessed at), ``created_at``, ``created_by`` (tunneltop's version), ``writer_pid`` (the last writer).
- ``polls(id, t, at, segment, ok, head, tunnels, error, severities, events)``: one row per poll, in order.
  ``t``: the snapshot's time as Unix seconds (what time searches use), ``at``: the same as written in the snapshot
  JSON (kept verbatim so the document replays byte for byte). ``segment``: the id of the segment's first poll.
  ``ok``: 1 when the poll gave a snapshot, 0 when it failed (``error`` says why; ``head`` and ``tunnels`` are then
  NULL). ``head``: blob of the snapshot document without its time and tunnels (account, problems, this host).
  ``tunnels``: blob of the JSON list of the snapshot's tunnel ids, in its order. Both are written once and
  referred to again while unchanged. ``events``: the poll's change events, a JSON list of ``ChangeEvent.to_json``
  documents (each event's time is its poll's), zlib-compressed as one stream with ``EVENT_DICTIONARY`` as preset
  dictionary (kept in ``meta`` too, so a later tunneltop reads files written with this one); NULL when there were
  none. ``severities``: which severities those events have, one bit each (``SEVERITY_BITS``), so "the next
  warning" is a search of this table alone.
- ``tunnel_states(poll, tunnel, blob)``: a tunnel's document (``TunnelState.to_json``) as of that poll, written
  only when it changed (see ``tunneltop.record.store``). Primary key (poll, tunnel). ``tunnel`` is the tunnel's
  key in ``tunnel_keys(key, id)``, its id written once for the whole file rather than on every row.
- ``blobs(id, segment, codec, base, data)``: the stored JSON. ``codec`` 0: UTF-8 JSON as is; 1: zlib; 2: zlib
  with the decoded blob ``base`` (an earlier version of the same tunnel, same segment) as its preset dictionary, so
  a tunnel whose one connection of forty changed costs about that connection. Chains are at most
  ``MAX_CHAIN`` long, so reading one costs at most that many decompressions.

Nothing from the request side (credentials, headers, URLs) is ever written: only what the snapshot and event
documents hold, which is what ``--once -o json`` and ``--watch`` print.
"""

from __future__ import annotations

from datetime import timedelta

SCHEMA_VERSION = 1

# A full snapshot at least this often: replay's seek reads at most one segment's changed rows.
FULL_EVERY_POLLS = 720
FULL_EVERY = timedelta(hours=1)
MAX_CHAIN = 16
# Below this, zlib's header costs more than it saves.
COMPRESS_FROM = 96

RAW, ZLIB, ZLIB_DELTA = 0, 1, 2

SEVERITY_BITS = {"info": 1, "ok": 2, "warning": 4, "error": 8}
OTHER_SEVERITY = 16  # a severity a later tunneltop adds

# What every event document repeats (its keys, kinds, severities, field names of records): a preset dictionary
# lets zlib refer back to it from the first byte of a small document.
EVENT_DICTIONARY = (
    b'"conns": [{"id": "uuid": "client_id": "client_version": "colo_name": "origin_ip": "opened_at": '
    b'"is_pending_reconnect": false, true, null, "arch": "linux_amd64", "version": "run_at": "config_version": '
    b'"features": ["ha-origin", "allow_remote_config", "serialized_headers", "support_datagram_v2", '
    b'"support_quic_eof", "management_logs"], "tunnel": {"name": "status": "healthy", "degraded", "down", '
    b'"inactive", "created_at": "deleted_at": "conns_active_at": "conns_inactive_at": "tun_type": "cfd_tunnel", '
    b'"remote_config": "config_src": "account_tag": "health": "clients": "error": "changed": '
    b'{"at": "2026-12-01T00:00:00Z", "kind": "conn_opened", "conn_closed", "conn_pending", "conn_recovered", '
    b'"conn_changed", "connector_joined", "connector_left", "tunnel_health", "severity": "info", "ok", "warning", '
    b'"error", "tunnel_id": "tunnel_name": "connector_id": "conn_id": "colo": "before": "after": "message": '
)

DDL = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE blobs (
        id INTEGER PRIMARY KEY,
        segment INTEGER NOT NULL,
        codec INTEGER NOT NULL,
        base INTEGER,
        data BLOB NOT NULL
    )""",
    "CREATE INDEX blobs_segment ON blobs (segment)",
    """CREATE TABLE polls (
        id INTEGER PRIMARY KEY,
        t REAL NOT NULL,
        at TEXT NOT NULL,
        segment INTEGER NOT NULL,
        ok INTEGER NOT NULL,
        head INTEGER,
        tunnels INTEGER,
        error TEXT,
        severities INTEGER NOT NULL DEFAULT 0,
        events BLOB
    )""",
    "CREATE INDEX polls_t ON polls (t)",
    "CREATE TABLE tunnel_keys (key INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE)",
    """CREATE TABLE tunnel_states (
        poll INTEGER NOT NULL,
        tunnel INTEGER NOT NULL,
        blob INTEGER NOT NULL,
        PRIMARY KEY (poll, tunnel)
    ) WITHOUT ROWID""",
)


class RecordingError(Exception):
    """The recording cannot be written or read: the message says why and what to do."""
