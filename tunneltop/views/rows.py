"""A snapshot flattened to one row per connection, with sort keys that use real values, not rendered text."""

from __future__ import annotations

import ipaddress
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from tunneltop.model.records import Connection, Connector, Tunnel
from tunneltop.model.snapshot import Snapshot

T = TypeVar("T")

# Sorts a missing time before every real one.
EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ConnRow:
    """One edge connection with the connector and tunnel it belongs to."""

    key: str
    tunnel: Tunnel
    connector: Connector
    conn: Connection
    # Set on a "ghost": a connection that has closed, kept on screen for a while so its going is seen.
    gone_at: datetime | None = None

    @property
    def state(self) -> str:
        return "gone" if self.gone_at is not None else self.conn.state


class ChangedRows(list[T]):
    """A list of rows that tells how it differs from the list handed out before it (``tell``), so that whoever
    showed that one (the table) need not work it out comparing both, 100,000 rows each: ``token`` names this list,
    ``since`` the one before it (None: not told), ``came`` are the rows of this one not in that one (by identity),
    and ``left`` the keys of the rows of that one that no row of this one holds. Told only where no key is two
    rows'. Neither its rows nor what it tells change once it is handed out."""

    __slots__ = ("came", "left", "since", "token", "told")

    def __init__(self, rows: Iterable[T] = ()) -> None:
        super().__init__(rows)
        self.token = object()
        self.since: object | None = None
        self.came: list[T] = []
        self.left: list[str] = []
        self.told = False

    def tell(self, since: object | None, came: list[T], left: list[str]) -> None:
        """Say what changed since the list whose token is ``since`` (None: not known); once, before handing it out."""
        assert not self.told, "a list handed out is never changed"
        self.since, self.came, self.left, self.told = since, came, left, True


def row_key(tunnel_id: str, connector_id: str, conn_id: str) -> str:
    return f"{tunnel_id}/{connector_id}/{conn_id}"


def rows_of(snapshot: Snapshot) -> list[ConnRow]:
    return [
        ConnRow(row_key(state.tunnel.id, connector.id, conn.id), state.tunnel, connector, conn)
        for state in snapshot.tunnels
        for connector in state.connectors or ()
        for conn in connector.conns
    ]


def ip_sort_key(value: str | None) -> tuple[int, int, str]:
    """IPv4 before IPv6, each numerically; unparsable text last, alphabetically."""
    if not value:
        return (9, 0, "")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return (8, 0, value)
    return (address.version, int(address), "")


def version_sort_key(value: str | None) -> tuple[Any, ...]:
    """``2024.10.1`` after ``2024.9.0``: numeric parts compare as numbers."""
    # Every part is (kind, number, text), so any two keys compare; isdecimal, not isdigit: int() refuses "²".
    if not value:
        return ((0, 0, ""),)
    return tuple((1, int(p), "") if p.isdecimal() else (0, 0, p) for p in re.split(r"[.\-+]", value))


_STATE_ORDER = {"pending": 0, "gone": 1, "unknown": 2, "active": 3}


def _text(value: str | None) -> str:
    # Interned: the table keeps a sort key per row, and 100,000 rows would otherwise hold 100,000 copies of a few
    # colos' and tunnels' names (100 bytes a row); equal interned texts also compare at once, by identity.
    return sys.intern(value.casefold()) if value else ""


# Sort columns: id, heading, key function. The order here is the order ``s`` cycles through.
SORT_KEYS: dict[str, Callable[[ConnRow], Any]] = {
    "tunnel": lambda r: _text(r.tunnel.name),
    "connector": lambda r: r.connector.id,
    "colo": lambda r: _text(r.conn.colo_name),
    "state": lambda r: _STATE_ORDER[r.state],
    "origin": lambda r: ip_sort_key(r.conn.origin_ip),
    "opened": lambda r: r.conn.opened_at or EPOCH,
    "version": lambda r: version_sort_key(r.conn.client_version or r.connector.version),
    "id": lambda r: r.conn.id,
}


def natural_key(row: ConnRow) -> tuple[str, str, str, str]:
    """Tunnel, connector, colo, connection: the order ties fall back to, so rows never shuffle between polls."""
    return (_text(row.tunnel.name), row.connector.id, _text(row.conn.colo_name), row.key)


def sort_rows(rows: Iterable[ConnRow], column: str, reverse: bool = False) -> list[ConnRow]:
    """The chosen column's real values first; ties keep the natural order (Python's sort is stable)."""
    ordered = sorted(rows, key=natural_key)
    return sorted(ordered, key=SORT_KEYS[column], reverse=reverse)
