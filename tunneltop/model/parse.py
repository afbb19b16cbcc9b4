"""Record-by-record validation, so one odd record spoils one row and not the whole poll.

A record whose identity (``id``) is missing or not a string is skipped and reported. A record with some other
field of the wrong type keeps its row: that field becomes unknown (None) and the problem is reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from tunneltop.model.records import Connection, Connector

M = TypeVar("M", bound=BaseModel)

_IDENTITY = "id"
_MAX_REPAIRS = 20


@dataclass(frozen=True)
class RecordProblem:
    """Something wrong with one record of an API answer; shown to the user, never fatal."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _describe(err: ErrorDetails) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ())) or "record"
    got = type(err.get("input")).__name__
    return f"field {loc!r} {err.get('msg', 'is invalid').lower()} (got {got})"


def validate_record(model: type[M], raw: Any, where: str) -> tuple[M | None, list[RecordProblem]]:
    """Validate one record; drop wrongly-typed non-identity fields instead of the record."""
    if not isinstance(raw, dict):
        return None, [RecordProblem(where, f"expected an object, got {type(raw).__name__}; skipped")]
    data = dict(raw)
    problems: list[RecordProblem] = []
    for _ in range(_MAX_REPAIRS):
        try:
            return model.model_validate(data), problems
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            top_fields = {e["loc"][0] for e in errors if e.get("loc")}
            if not top_fields or _IDENTITY in top_fields:
                bad = next((e for e in errors if e.get("loc", ("",))[0] == _IDENTITY), errors[0])
                problems.append(RecordProblem(where, f"{_describe(bad)}; skipped"))
                return None, problems
            for err in errors:
                problems.append(RecordProblem(where, f"{_describe(err)}; shown as unknown"))
            for field in top_fields:
                data.pop(field, None)
    problems.append(RecordProblem(where, "could not be repaired; skipped"))
    return None, problems


class RecordCache:
    """One tunnel's clean connectors and connections from the previous poll, each with the raw JSON it came from.

    An unchanged raw record gets the very same (frozen) model back without being validated again: re-reading an
    unchanged poll costs a dict comparison per connector, and later stages (change engine, table) can tell
    "unchanged" by identity. A record that had any problem is never kept, so its problems are reported again on
    every poll; only the current poll's records are kept.
    """

    __slots__ = ("connectors", "conns")

    def __init__(self) -> None:
        self.connectors: dict[str, tuple[dict[str, Any], Connector]] = {}
        self.conns: dict[str, tuple[dict[str, Any], Connection]] = {}


def _cached(entries: dict[str, tuple[dict[str, Any], M]], item: Any) -> M | None:
    if not isinstance(item, dict):
        return None
    key = item.get(_IDENTITY)
    hit = entries.get(key) if isinstance(key, str) else None
    return hit[1] if hit is not None and hit[0] == item else None


def parse_connectors(raw: Any, cache: RecordCache | None = None) -> tuple[list[Connector], list[RecordProblem]]:
    """Parse the ``result`` of the connections endpoint: a list of connectors, each with its ``conns``.

    With ``cache`` (the same one for the same tunnel, poll after poll), unchanged records are reused."""
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        return [], [RecordProblem("connections", f"expected a list, got {type(raw).__name__}")]
    connectors: list[Connector] = []
    problems: list[RecordProblem] = []
    seen: set[str] = set()
    kept = RecordCache()
    for index, item in enumerate(raw):
        reused = _cached(cache.connectors, item) if cache is not None else None
        if reused is not None and reused.id not in seen:
            seen.add(reused.id)
            connectors.append(reused)
            # The entry as cached, not today's equal copy: the model holds the strings of the JSON it came from.
            kept.connectors[reused.id] = cache.connectors[reused.id]  # type: ignore[union-attr]
            for conn in reused.conns:
                kept.conns[conn.id] = cache.conns[conn.id]  # type: ignore[union-attr]
            continue
        where = f"connector #{index + 1}"
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            where = f"connector {item['id'][:8]}"
        conns_raw = item.get("conns") if isinstance(item, dict) else None
        shell = {k: v for k, v in item.items() if k != "conns"} if isinstance(item, dict) else item
        connector, found = validate_record(Connector, shell, where)
        problems.extend(found)
        if connector is None:
            continue
        if connector.id in seen:
            problems.append(RecordProblem(where, "duplicate connector id; later copy skipped"))
            continue
        seen.add(connector.id)
        conns, conn_problems = parse_connections(conns_raw, where, cache, kept)
        problems.extend(conn_problems)
        connector = connector.model_copy(update={"conns": conns})
        connectors.append(connector)
        if not found and not conn_problems:
            if isinstance(conns_raw, list):  # hold its connections as cached above, not today's equal copies
                item = {**item, "conns": [kept.conns[c.id][0] for c in conns]}
            kept.connectors[connector.id] = (item, connector)
    if cache is not None:
        cache.connectors, cache.conns = kept.connectors, kept.conns
    return connectors, problems


def parse_connections(
    raw: Any, owner: str, cache: RecordCache | None = None, kept: RecordCache | None = None
) -> tuple[list[Connection], list[RecordProblem]]:
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        return [], [RecordProblem(owner, f"'conns' is {type(raw).__name__}, not a list")]
    conns: list[Connection] = []
    problems: list[RecordProblem] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        conn = _cached(cache.conns, item) if cache is not None else None
        if conn is not None and kept is not None:
            item = cache.conns[conn.id][0]  # type: ignore[union-attr]  # as for connectors: keep the cached copy
        found: list[RecordProblem] = []
        if conn is None:
            where = f"{owner} connection #{index + 1}"
            conn, found = validate_record(Connection, item, where)
            problems.extend(found)
            if conn is None:
                continue
        if conn.id in seen:
            problems.append(
                RecordProblem(f"{owner} connection #{index + 1}", "duplicate connection id; later copy skipped")
            )
            continue
        seen.add(conn.id)
        conns.append(conn)
        if kept is not None and not found:
            kept.conns[conn.id] = (item, conn)
    return conns, problems


def parse_many(
    model: type[M], raw: Iterable[Any] | None, what: str, cache: dict[str, tuple[dict[str, Any], M]] | None = None
) -> tuple[list[M], list[RecordProblem]]:
    """Validate a flat list of records (tunnels, accounts) one by one; a repeated id keeps its first copy.

    With ``cache`` (the same dict for the same list, poll after poll), an unchanged record is the very same model
    as last time, as RecordCache does for connections: id -> (its raw JSON, the model); only this call's clean
    records are kept in it."""
    records: list[M] = []
    problems: list[RecordProblem] = []
    seen: set[object] = set()
    kept: dict[str, tuple[dict[str, Any], M]] = {}
    for index, item in enumerate(raw or ()):
        where = f"{what} #{index + 1}"
        record = _cached(cache, item) if cache is not None else None
        found: list[RecordProblem] = []
        if record is not None:
            item = cache[record.id][0]  # type: ignore[index, attr-defined]  # the cached copy, as for connections
        else:
            record, found = validate_record(model, item, where)
            problems.extend(found)
            if record is None:
                continue
        key = getattr(record, _IDENTITY, None)
        if key is not None and key in seen:
            problems.append(RecordProblem(where, f"duplicate {what} id; later copy skipped"))
            continue
        seen.add(key)
        records.append(record)
        if cache is not None and not found and isinstance(key, str):
            kept[key] = (item, record)
    if cache is not None:
        cache.clear()
        cache.update(kept)
    return records, problems
