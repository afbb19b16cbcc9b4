"""Record-by-record validation, so one odd record spoils one row and not the whole poll.

A record whose identity (``id``) is missing or not a string is skipped and reported. A record with some other
field of the wrong type keeps its row: that field becomes unknown (None) and the problem is reported.
"""

from __future__ import annotations

import gc
import operator
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, StrictBool, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from tunneltop.model.records import Account, Connection, Connector, Tunnel

M = TypeVar("M", bound=BaseModel)

_IDENTITY = "id"
_CONNS = "conns"
_MAX_REPAIRS = 20
_ID_OF = operator.attrgetter(_IDENTITY)
_CONNS_OF = operator.attrgetter(_CONNS)
_FIELDS_SET_OF = operator.attrgetter("__pydantic_fields_set__")
# One pydantic call validates a slice of a list (see _validate_list): at 10,000 connections, about a third less time
# than a call per record. Made once: a TypeAdapter takes about half a millisecond to build.
_LIST_OF: dict[type[BaseModel], TypeAdapter[Any]] = {
    model: TypeAdapter(list[model])  # type: ignore[valid-type]
    for model in (Account, Connection, Connector, Tunnel)
}
# A pydantic call holds the GIL throughout, and the live view's thread waits as long (the whole answer at 100,000
# connections: 0.3 s). A list is validated a slice of about this many records at a time (a connector counting one
# more for each of its connections): a millisecond or two each.
_SLICE_WEIGHT = 512


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
    """One tunnel's clean connectors from the previous poll, each known by the JSON text it was read from.

    An unchanged connector is the very same (frozen) model again, and later stages (change engine, table) tell
    "unchanged" by identity. Read by the client (see ``reading``), a connector whose text is that of one cached is
    not even decoded: the cache keeps a digest of each one's text (``texts``), not the records it was decoded into
    (42 MB at 100,000 connections). A connector read without its text (another caller's list, a text the decoder
    could not cut out) is validated, and the cached one taken instead where the two are equal; in a changed
    connector, each connection equal to the one its connector had under its id likewise (model equality, the change
    engine's: field values and unknown fields). A record that had any problem is never kept, so its problems are
    reported again on every poll; only the current poll's records are kept.

    ``last``: the digest of the last answer's bytes and what was parsed from them (the client's to set), so that an
    answer of the very same bytes is not even decoded: the same connectors and the same problems again.
    """

    __slots__ = ("connectors", "last", "loose", "texts")

    def __init__(self) -> None:
        self.last: tuple[bytes, list[Connector], list[RecordProblem]] | None = None
        self.connectors: dict[str, Connector] = {}
        # The digest of the JSON text each clean connector was read from (jsondecode.text_digest), where it was read
        # with it.
        self.texts: dict[bytes, Connector] = {}
        # The clean connections of connectors not kept (an odd sibling or field), by id, so that they stay the same
        # objects while the odd one is reported again.
        self.loose: dict[str, Connection] = {}

    def reading(self) -> ConnectorsRead:
        """What to hand the decoder of the next answer (jsondecode.loads' ``elements``), then parse_connectors."""
        return ConnectorsRead(self.texts)


class ConnectorsRead:
    """An answer's connectors as the decoder reads them (jsondecode.Elements): a connector whose text's digest is
    one of the cache's ``texts`` is that model, not decoded; each one decoded is noted with its text's digest, for
    parse_connectors to keep beside the model it makes of it."""

    __slots__ = ("digests", "known", "texts")

    def __init__(self, texts: dict[bytes, Connector]) -> None:
        self.texts = texts
        self.known: Callable[[bytes], Connector | None] = texts.get
        # id(element) -> (the element, its text's digest): held, so that no other object takes its id meanwhile.
        self.digests: dict[int, tuple[Any, bytes | None]] = {}

    def decoded(self, values: list[Any], digests: list[bytes | None]) -> None:
        self.digests.update(zip(map(id, values), zip(values, digests, strict=True), strict=True))

    def digest_of(self) -> Callable[[Any], bytes | None]:
        """The digest of the text an item of the answer was read from, where the decoder found it: noted as it was
        decoded, or the one it was known by."""
        known = {id(connector): digest for digest, connector in self.texts.items()}
        digests = self.digests

        def digest(item: Any) -> bytes | None:
            entry = digests.get(id(item))
            if entry is not None and entry[0] is item:
                return entry[1]
            return known.get(id(item)) if type(item) is Connector else None

        return digest


def _same_record(old: M, new: M) -> bool:
    """Whether ``new`` says what ``old`` says (its fields, unknown fields and which were given): then ``old`` is
    kept in its place."""
    return (
        old.__dict__ == new.__dict__
        and old.__pydantic_extra__ == new.__pydantic_extra__
        and old.__pydantic_fields_set__ == new.__pydantic_fields_set__
    )


def _same_connector(old: Connector, new: Connector) -> bool:
    """_same_record, its connections the very same objects (those equal to the cached ones are them by now; a
    connection's own equality would not tell which of its fields were given)."""
    if len(old.conns) != len(new.conns) or not all(map(operator.is_, old.conns, new.conns)):
        return False
    shell, other = dict(old.__dict__), dict(new.__dict__)
    del shell["conns"], other["conns"]
    return (
        shell == other
        and old.__pydantic_extra__ == new.__pydantic_extra__
        and old.__pydantic_fields_set__ == new.__pydantic_fields_set__
    )


def _previous_conns(cache: RecordCache | None, item: Any) -> dict[str, Connection] | None:
    """The connections of ``item``'s connector as last cached (or, if it was not, the loose ones), by id."""
    if cache is None:
        return None
    key = item.get(_IDENTITY) if isinstance(item, dict) else None
    hit = cache.connectors.get(key) if isinstance(key, str) else None
    if hit is None:
        return cache.loose or None
    return {conn.id: conn for conn in hit.conns}


def _cached(entries: dict[str, tuple[dict[str, Any], M]], item: Any) -> M | None:
    if not isinstance(item, dict):
        return None
    key = item.get(_IDENTITY)
    hit = entries.get(key) if isinstance(key, str) else None
    return hit[1] if hit is not None and (hit[0] is item or hit[0] == item) else None


def _slices(items: list[Any]) -> Iterator[slice]:
    """``items`` cut into consecutive slices of about ``_SLICE_WEIGHT`` records each (see there)."""
    start = load = 0
    for end, item in enumerate(items, 1):
        conns = item.get("conns") if isinstance(item, dict) else None
        load += (1 + len(conns)) if isinstance(conns, list) else 1
        if load >= _SLICE_WEIGHT:
            yield slice(start, end)
            start, load = end, 0
    if start < len(items):
        yield slice(start, len(items))


def _validate_list(
    model: type[M], items: list[Any], where: Callable[[int], str]
) -> list[tuple[M | None, list[RecordProblem]]]:
    """Validate ``items`` in one pydantic call a slice (see _slices); only when that fails, the records it named one
    by one (each with its own problems, see validate_record) and the rest of the slice again in one call.
    ``where(i)`` names record ``i``. Records are validated each on its own, so the slices change nothing but the
    calls' length."""
    adapter = _LIST_OF.get(model) or TypeAdapter(list[model])  # type: ignore[valid-type]
    results: list[tuple[M | None, list[RecordProblem]]] = []
    for part in _slices(items):
        results += _validate_slice(model, adapter, items, part, where)
    return results


def _validate_slice(
    model: type[M], adapter: TypeAdapter[Any], items: list[Any], part: slice, where: Callable[[int], str]
) -> list[tuple[M | None, list[RecordProblem]]]:
    chunk = items[part]
    try:
        return [(record, []) for record in adapter.validate_python(chunk)]
    except ValidationError as exc:
        bad = {e["loc"][0] for e in exc.errors(include_url=False) if e.get("loc") and isinstance(e["loc"][0], int)}
    results: list[tuple[M | None, list[RecordProblem]]] = [(None, [])] * len(chunk)
    good = [i for i in range(len(chunk)) if i not in bad]
    try:
        for i, record in zip(good, adapter.validate_python([chunk[i] for i in good]), strict=True):
            results[i] = (record, [])
    except ValidationError:
        bad.update(good)  # not named by the first call's errors: one by one too
    for i in sorted(bad):
        results[i] = validate_record(model, chunk[i], where(part.start + i))
    return results


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Validating an answer makes tens of thousands of objects that all live on: a collection partway through walks
    the whole heap and frees nothing (at 10,000 connections, 40% of the parse). Python's cyclic collector is paused
    for the call (the records hold no cycles; the next collection after it runs as usual)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def parse_connectors(
    raw: Any, cache: RecordCache | None = None, read: ConnectorsRead | None = None
) -> tuple[list[Connector], list[RecordProblem]]:
    """Parse the ``result`` of the connections endpoint: a list of connectors, each with its ``conns``.

    With ``cache`` (the same one for the same tunnel, poll after poll), unchanged records are reused (see
    RecordCache): ``raw`` may then hold cached connectors, put in place as it was decoded with ``read`` (from
    ``cache.reading()``), which also tells the text each other one was read from. The records that are not reused
    are validated in bulk: every connection of the other connectors, then those connectors (with their connections,
    already models); with nothing cached, the whole answer at once (each a slice per call, see _slices)."""
    with _collector_paused():
        try:
            return _parse_connectors(raw, cache, read)
        finally:
            if read is not None:
                _empty(read.digests)  # what it holds of the answer, freed a record at a time (see _empty)


def _parse_connectors(
    raw: Any, cache: RecordCache | None, read: ConnectorsRead | None
) -> tuple[list[Connector], list[RecordProblem]]:
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        return [], [RecordProblem("connections", f"expected a list, got {type(raw).__name__}")]
    digest = read.digest_of() if read is not None else _no_digest
    whole = _whole(raw) if cache is None or not (cache.connectors or cache.loose) else None
    if whole is not None:
        if cache is not None:
            cache.connectors = {c.id: c for c in whole}
            cache.texts = {d: c for item, c in zip(raw, whole, strict=True) if (d := digest(item)) is not None}
        return whole, []
    kept = RecordCache()
    # Each item: a cached connector put in place as its text was read, or (where, item, its connections' places in
    # conn_raw) to validate.
    entries: list[Connector | tuple[str, Any, list[int]]] = []
    conn_raw: list[Any] = []  # every connection to validate, of every connector read
    conn_owner: list[str] = []  # each one's connector and place in it, for a problem's "where" (made if one is)
    conn_place: list[int] = []
    for index, item in enumerate(raw):
        if type(item) is Connector:
            entries.append(item)
            continue
        where = f"connector #{index + 1}"
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            where = f"connector {item['id'][:8]}"
        conns = item.get("conns") if isinstance(item, dict) else None
        slots: list[int] = []
        if isinstance(conns, list):
            for n, conn in enumerate(conns):
                slots.append(len(conn_raw))
                conn_raw.append(conn)
                conn_owner.append(where)
                conn_place.append(n)
        entries.append((where, item, slots))
    checked = _validate_list(Connection, conn_raw, lambda i: f"{conn_owner[i]} connection #{conn_place[i] + 1}")
    connectors: list[Connector] = []
    problems: list[RecordProblem] = []
    shells: list[Any] = []
    owned: list[tuple[str, Any, list[Connection], list[bool], list[RecordProblem]]] = []
    for entry in entries:
        if isinstance(entry, Connector):
            continue
        where, item, slots = entry
        conns_of, clean, found = _connections(where, item, slots, checked, _previous_conns(cache, item))
        shells.append({**item, "conns": conns_of} if isinstance(item, dict) else item)
        owned.append((where, item, conns_of, clean, found))
    built = iter(_validate_list(Connector, shells, lambda i: owned[i][0]))
    owned_iter = iter(owned)
    seen: set[str] = set()
    for entry in entries:
        if isinstance(entry, Connector):
            if entry.id in seen:
                where = f"connector {entry.id[:8]}"
                problems.append(RecordProblem(where, "duplicate connector id; later copy skipped"))
                continue
            seen.add(entry.id)
            connectors.append(entry)
            _keep(kept, entry, digest(entry))
            continue
        where, item, conns_of, clean, conn_problems = next(owned_iter)
        connector, found = next(built)
        problems.extend(found)
        if connector is None:
            continue
        if connector.id in seen:
            problems.append(RecordProblem(where, "duplicate connector id; later copy skipped"))
            continue
        seen.add(connector.id)
        problems.extend(conn_problems)
        if not found and not conn_problems:
            was = cache.connectors.get(connector.id) if cache is not None else None
            if was is not None and _same_connector(was, connector):
                connector = was
            _keep(kept, connector, digest(item))
        else:  # the connector is not kept: its clean connections are, loose
            kept.loose.update((c.id, c) for c, ok in zip(conns_of, clean, strict=True) if ok)
        connectors.append(connector)
    if cache is not None:
        dropped = (cache.connectors, cache.texts, cache.loose)
        cache.connectors, cache.texts, cache.loose = kept.connectors, kept.texts, kept.loose
        for old in dropped:
            _empty(old)
    return connectors, problems


def _no_digest(item: Any) -> None:
    return None


def _keep(kept: RecordCache, connector: Connector, digest: bytes | None) -> None:
    kept.connectors[connector.id] = connector
    if digest is not None:
        kept.texts[digest] = connector


def _empty(entries: dict[Any, Any]) -> None:
    """Empty a dict an entry at a time: what only it held (the last poll's records that changed: a quarter of the
    connectors after a failover of 8% of 100,000 connections) is freed a record at a time, not in one C call of
    20 ms during which no other thread runs."""
    while entries:
        entries.popitem()


def _whole(raw: list[Any]) -> list[Connector] | None:
    """An answer with nothing cached to reuse (a first poll, ``--once``), connectors and their connections in a
    pydantic call a slice (see _slices): at 100,000 connections about 0.3 s against 0.5 s record by record. None
    when anything in it is odd (a record that fails, a repeated id, ``conns`` not a list): the record-by-record path
    then says what."""
    if not all(isinstance(item, dict) and isinstance(item.get("conns"), list) for item in raw):
        return None
    adapter = _LIST_OF[Connector]
    try:
        connectors: list[Connector] = [c for part in _slices(raw) for c in adapter.validate_python(raw[part])]
    except ValidationError:
        return None
    return None if _repeats(connectors) else connectors


def _repeats(connectors: list[Connector], at_once: bool = False) -> bool:
    """Whether a connector id, or a connection id within a connector, comes twice (the record-by-record path keeps
    the first and says so). ``at_once`` (--once, whose process ends after): connection ids unique across the answer,
    the usual case, are unique within each connector: asked of all of them at once, at C speed, and of each
    connector only when some id comes twice (a small set per connector was 2% of a --once at 100,000 connections).
    Not in a process that lives on: the set of them all (4 MB at 100,000) stayed in its heap, freed."""
    if len(set(map(_ID_OF, connectors))) < len(connectors):
        return True
    if at_once:
        conns = list(chain.from_iterable(map(_CONNS_OF, connectors)))
        if len(set(map(_ID_OF, conns))) == len(conns):
            return False
    return any(len({n.id for n in c.conns}) < len(c.conns) for c in connectors)


class _ConnectorsAnswer(BaseModel):
    """A connections answer's envelope with its records, as ``connectors_from_json`` reads it."""

    model_config = ConfigDict(extra="ignore")
    success: StrictBool
    result: list[Connector]
    messages: Any = None
    result_info: Any = None


def connectors_from_json(content: bytes) -> tuple[list[Connector], Any, Any] | None:
    """A successful connections answer decoded and validated from its bytes in one pydantic call: its connectors,
    and the envelope's ``messages`` and ``result_info`` as ``json.loads`` gives them. For a process whose other
    threads need not run meanwhile (``--once``: the call holds the GIL throughout): about half the CPU of the
    decode (piecewise) and validation (a slice a call) that ``parse_connectors`` takes. None whenever anything is
    odd (not a success, not JSON pydantic reads, a record that fails, a connector without its ``conns``, a repeated
    id): the usual way then says what, exactly as without this."""
    try:
        answer = _ConnectorsAnswer.model_validate_json(content)
    except ValueError:  # ValidationError, invalid JSON among them
        return None
    connectors = answer.result
    # Each connector's fields set read at C speed (model_fields_set is a property: a Python call per connector).
    if answer.success is not True or not all(map(operator.contains, map(_FIELDS_SET_OF, connectors), repeat(_CONNS))):
        return None
    return None if _repeats(connectors, at_once=True) else (connectors, answer.messages, answer.result_info)


def _connections(
    owner: str,
    item: Any,
    slots: list[int],
    checked: list[tuple[Connection | None, list[RecordProblem]]],
    previous: dict[str, Connection] | None,
) -> tuple[list[Connection], list[bool], list[RecordProblem]]:
    """One connector's connections from their slots (indexes into ``checked``), each one equal to the one of
    ``previous`` under its id that one; whether each is clean (had no problem); and their problems. A repeated id
    keeps its first copy."""
    raw = item.get("conns") if isinstance(item, dict) else None
    if raw is None:
        return [], [], []
    if not isinstance(raw, list):
        return [], [], [RecordProblem(owner, f"'conns' is {type(raw).__name__}, not a list")]
    conns: list[Connection] = []
    clean: list[bool] = []
    problems: list[RecordProblem] = []
    seen: set[str] = set()
    for index, slot in enumerate(slots):
        conn, found = checked[slot]
        problems.extend(found)
        if conn is None:
            continue
        if conn.id in seen:
            problems.append(
                RecordProblem(f"{owner} connection #{index + 1}", "duplicate connection id; later copy skipped")
            )
            continue
        seen.add(conn.id)
        if not found and previous is not None:
            was = previous.get(conn.id)
            if was is not None and _same_record(was, conn):
                conn = was
        conns.append(conn)
        clean.append(not found)
    return conns, clean, problems


def parse_many(
    model: type[M], raw: Iterable[Any] | None, what: str, cache: dict[str, tuple[dict[str, Any], M]] | None = None
) -> tuple[list[M], list[RecordProblem]]:
    """Validate a flat list of records (tunnels, accounts), the new ones in bulk (see _validate_list); a
    repeated id keeps its first copy.

    With ``cache`` (the same dict for the same list, poll after poll), an unchanged record is the very same model
    as last time, as RecordCache does for connections: id -> (its raw JSON, the model); only this call's clean
    records are kept in it."""
    items = list(raw or ())
    reused = [_cached(cache, item) if cache is not None else None for item in items]
    fresh = [i for i, record in enumerate(reused) if record is None]
    with _collector_paused():
        validated = _validate_list(model, [items[i] for i in fresh], lambda n: f"{what} #{fresh[n] + 1}")
    checked = dict(zip(fresh, validated, strict=True))
    records: list[M] = []
    problems: list[RecordProblem] = []
    seen: set[object] = set()
    kept: dict[str, tuple[dict[str, Any], M]] = {}
    for index, item in enumerate(items):
        record = reused[index]
        found: list[RecordProblem] = []
        if record is not None:
            item = cache[record.id][0]  # type: ignore[index, attr-defined]  # the cached copy, as for connections
        else:
            record, found = checked[index]
            problems.extend(found)
            if record is None:
                continue
        key = getattr(record, _IDENTITY, None)
        if key is not None and key in seen:
            problems.append(RecordProblem(f"{what} #{index + 1}", f"duplicate {what} id; later copy skipped"))
            continue
        seen.add(key)
        records.append(record)
        if cache is not None and not found and isinstance(key, str):
            kept[key] = (item, record)
    if cache is not None:
        cache.clear()
        cache.update(kept)
    return records, problems
