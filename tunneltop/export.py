"""Writing the current view and the event log to files: JSON for tools, CSV for spreadsheets.

CSV cells that a spreadsheet would run as a formula (starting with = + - @) are prefixed with a quote, and control
characters are replaced: the text comes from the API and is untrusted.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from tunneltop.changes.events import ChangeEvent, rfc3339
from tunneltop.sanitize import clean
from tunneltop.views.rows import ConnRow

CONNECTION_FIELDS = (
    "tunnel_id",
    "tunnel_name",
    "connector_id",
    "conn_id",
    "colo",
    "origin_ip",
    "opened_at",
    "state",
    "client_version",
    "connector_version",
    "arch",
)
EVENT_FIELDS = ("at", "severity", "kind", "tunnel_name", "tunnel_id", "connector_id", "conn_id", "colo", "message")


def _time(value: datetime | None) -> str | None:
    return rfc3339(value) if value else None


def row_record(row: ConnRow) -> dict[str, Any]:
    return {
        "tunnel_id": row.tunnel.id,
        "tunnel_name": row.tunnel.name,
        "connector_id": row.connector.id,
        "conn_id": row.conn.id,
        "colo": row.conn.colo_name,
        "origin_ip": row.conn.origin_ip,
        "opened_at": _time(row.conn.opened_at),
        "state": row.state,
        "client_version": row.conn.client_version,
        "connector_version": row.connector.version,
        "arch": row.connector.arch,
    }


def _csv_safe(value: object) -> str:
    # Control and escape characters replaced too: `cat` on the file must not drive the terminal.
    text = "" if value is None else clean(value, None)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _write_csv(path: Path, fields: Sequence[str], records: Iterable[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(fields)
        for record in records:
            writer.writerow([_csv_safe(record.get(f)) for f in fields])


def export_view(
    directory: Path,
    now: datetime,
    rows: Sequence[ConnRow],
    events: Sequence[ChangeEvent],
    *,
    filter_text: str = "",
    account_id: str | None = None,
    demo: bool = False,
) -> list[Path]:
    """Write ``tunneltop-<time>.json``, ``-connections.csv`` and ``-events.csv``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"tunneltop-{now.strftime('%Y%m%d-%H%M%S')}"
    connections = [row_record(r) for r in rows]
    event_docs = [e.to_json() for e in events]
    document = {
        "exported_at": rfc3339(now),
        "demo": demo,
        "account_id": account_id,
        "filter": filter_text,
        "connections": connections,
        "events": event_docs,
    }
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps(document, indent=2, ensure_ascii=True) + "\n", encoding="utf-8")
    conn_path = stem.parent / f"{stem.name}-connections.csv"
    event_path = stem.parent / f"{stem.name}-events.csv"
    _write_csv(conn_path, CONNECTION_FIELDS, connections)
    _write_csv(event_path, EVENT_FIELDS, event_docs)
    return [json_path, conn_path, event_path]
