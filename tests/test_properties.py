"""Property tests with arbitrary JSON-like input, the way a drifting or hostile API could send it: the models, the
change engine, the rows and the outputs never raise, and keep their promises.

``test_changes_properties.py`` checks the change engine's replay contract on well-formed records; here the records
come from arbitrary JSON through the real parsing path, so drift (missing, extra, null, wrong-typed fields, records
that are not records, duplicate ids) reaches every stage.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tunneltop.changes.events import apply, diff, poll_failed, replay_form
from tunneltop.model.health import Health, edge_summary, tunnel_health
from tunneltop.model.parse import parse_connectors, parse_many, validate_record
from tunneltop.model.records import Account, Connection, Connector, TokenStatus, Tunnel
from tunneltop.model.snapshot import Snapshot, TunnelState
from tunneltop.report import exit_status, render_json, render_table
from tunneltop.sanitize import clean
from tunneltop.views.filters import Filter, RowSelector
from tunneltop.views.rows import SORT_KEYS, ip_sort_key, rows_of, sort_rows, version_sort_key
from tunneltop.views.session import Session

# Deterministic: the same examples every run (CI must not flake); enough of them to find what a fixed list misses.
PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=80)
# Whole snapshots (several tunnels, each with a drawn connections answer) cost more: fewer of them.
SNAPSHOTS = settings(PROPERTY, max_examples=30)

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

# Text the API might send: anything, including control characters, escapes, bidi overrides and odd digits.
TEXT = st.text(max_size=24) | st.sampled_from(["", "DFW", "2025.1.0", "\x1b[2J", "[/]", "\u202e", "2025.\u00b2"])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | TEXT
)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12
)
# Ids from a small pool, so records collide (duplicates) and snapshots overlap (changes).
IDS = st.sampled_from(["a", "b", "c", "d/e", "\x1b"])
TIMES = st.sampled_from(
    ["2026-11-28T11:00:00Z", "2026-11-28T11:00:00.123456Z", "2026-11-28", "yesterday", "", 0, 1.5e12, None]
)


def _field(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field as the API might send it: the expected kind of value, or anything at all."""
    return st.one_of(value, JSON)


@st.composite
def raw_conn(draw: st.DrawFn) -> Any:
    record = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "id": _field(IDS),
                "uuid": _field(IDS),
                "client_id": _field(IDS),
                "client_version": _field(TEXT),
                "colo_name": _field(st.sampled_from(["DFW", "LAX", "AMS", ""])),
                "origin_ip": _field(st.sampled_from(["203.0.113.7", "2001:db8::1", "300.1.1.1", ""])),
                "opened_at": _field(TIMES),
                "is_pending_reconnect": _field(st.sampled_from([True, False, None, "true", 0])),
            },
        )
    )
    record.update(draw(st.dictionaries(TEXT, JSON, max_size=2)))  # unknown fields
    return draw(st.one_of(st.just(record), JSON)) if draw(st.integers(0, 9)) == 0 else record


@st.composite
def raw_connector(draw: st.DrawFn) -> Any:
    record = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "id": _field(IDS),
                "arch": _field(TEXT),
                "version": _field(TEXT),
                "run_at": _field(TIMES),
                "config_version": _field(st.integers(-5, 5)),
                "features": _field(st.lists(TEXT, max_size=3)),
                "conns": _field(st.lists(raw_conn(), max_size=4)),
            },
        )
    )
    record.update(draw(st.dictionaries(TEXT, JSON, max_size=2)))
    return draw(st.one_of(st.just(record), JSON)) if draw(st.integers(0, 9)) == 0 else record


RAW_CONNECTIONS = st.one_of(st.lists(raw_connector(), max_size=4), JSON)
RAW_TUNNELS = st.lists(
    st.fixed_dictionaries(
        {"id": _field(IDS)},
        optional={
            "name": _field(TEXT),
            "status": _field(st.sampled_from(["healthy", "degraded", "down", "inactive", "odd"])),
            "deleted_at": _field(TIMES),
            "conns_active_at": _field(TIMES),
            "remote_config": _field(st.booleans()),
        },
    )
    | JSON,
    max_size=5,
)


def _json_safe(document: Any) -> str:
    """The document as JSON, as tunneltop writes it (NaN and infinities are Python's extension of JSON)."""
    return json.dumps(document, ensure_ascii=True)


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    """A snapshot built the way a poll builds one: the tunnel list and each tunnel's connections parsed from JSON."""
    tunnels, problems = parse_many(Tunnel, draw(RAW_TUNNELS), "tunnel")
    states = []
    for tunnel in tunnels:
        if draw(st.integers(0, 5)) == 0:
            states.append(TunnelState(tunnel, None, (), draw(TEXT) or "failed"))
            continue
        connectors, found = parse_connectors(draw(RAW_CONNECTIONS))
        states.append(TunnelState(tunnel, tuple(connectors), tuple(found)))
    at = T0 + timedelta(seconds=draw(st.integers(0, 3600)))
    return Snapshot("0" * 32, at, tuple(states), tuple(problems), draw(st.none() | TEXT))


# -- models ------------------------------------------------------------------------------------------------------


@PROPERTY
@given(RAW_CONNECTIONS)
def test_parse_connectors_never_raises_and_keeps_ids_unique(raw: Any) -> None:
    connectors, problems = parse_connectors(raw)
    assert all(isinstance(c, Connector) for c in connectors)
    ids = [c.id for c in connectors]
    assert len(ids) == len(set(ids)) and all(isinstance(i, str) for i in ids)
    for connector in connectors:
        conn_ids = [c.id for c in connector.conns]
        assert len(conn_ids) == len(set(conn_ids))
        assert all(isinstance(c, Connection) for c in connector.conns)
        assert all(c.is_pending_reconnect in (True, False, None) for c in connector.conns)
        assert all(c.opened_at is None or c.opened_at.tzinfo is not None for c in connector.conns)
        _json_safe(connector.api_dict())
    assert all(isinstance(p.message, str) and p.message for p in problems)
    # The same input always gives the same answer (no hidden state).
    assert parse_connectors(raw) == (connectors, problems)


@PROPERTY
@given(st.sampled_from([Tunnel, Account, Connection, Connector, TokenStatus]), JSON | raw_conn() | raw_connector())
def test_validate_record_never_raises(model: type, raw: Any) -> None:
    record, problems = validate_record(model, raw, "record")
    if record is None:
        assert problems and "skipped" in problems[-1].message
    else:
        assert isinstance(record, model)
        _json_safe(record.api_dict())
    for problem in problems:  # they name the field and the type, never quote the value (it may be hostile)
        assert not any(text in problem.message for text in _strings(raw) if len(text) > 6)


@PROPERTY
@given(RAW_TUNNELS)
def test_parse_many_never_raises_and_keeps_ids_unique(raw: Any) -> None:
    tunnels, problems = parse_many(Tunnel, raw, "tunnel")
    ids = [t.id for t in tunnels]
    assert len(ids) == len(set(ids))
    dicts = [r for r in raw if isinstance(r, dict) and isinstance(r.get("id"), str)]
    assert set(ids) <= {r["id"] for r in dicts}
    assert len(tunnels) + sum("skipped" in p.message for p in problems) == len(raw), "each record kept or skipped"


@SNAPSHOTS
@given(snapshots())
def test_health_and_outputs_of_any_snapshot(snapshot: Snapshot) -> None:
    for state in snapshot.tunnels:
        assert isinstance(state.health, Health)
        assert state.active_count >= 0 and state.pending_count >= 0
        if state.connectors is not None:
            assert tunnel_health(state.tunnel, state.connectors) == state.health
            edge_summary(c for k in state.connectors for c in k.conns)
    assert exit_status(snapshot) in (0, 1, 2, 3)
    table = render_table(snapshot, T0)
    assert all(line.isprintable() for line in table.splitlines())
    document = render_json(snapshot)
    assert document.isascii()
    parsed = json.loads(document)
    assert [t["id"] for t in parsed["tunnels"]] == [t.tunnel.id for t in snapshot.tunnels]


# -- rows, sorting and filtering ---------------------------------------------------------------------------------


@PROPERTY
@given(TEXT | st.none())
def test_sort_keys_never_raise(value: str | None) -> None:
    version_sort_key(value)
    ip_sort_key(value)
    assert sorted([version_sort_key(value), version_sort_key("2025.1.0"), version_sort_key(None)])


@SNAPSHOTS
@given(snapshots(), st.sampled_from(sorted(SORT_KEYS)), st.booleans(), TEXT)
def test_rows_sort_and_filter_any_snapshot(snapshot: Snapshot, column: str, reverse: bool, words: str) -> None:
    rows = rows_of(snapshot)
    ordered = sort_rows(rows, column, reverse)
    assert sorted(r.key for r in ordered) == sorted(r.key for r in rows)
    selector = RowSelector()  # one for every filter, as the live view keeps it while a filter is typed
    texts = (words, f"!{words} state:active", f"colo:{words}" if words.strip() else "colo:DFW", "state:pending",
             "!state:active", words)
    for text in texts:
        try:
            flt = Filter.parse(text)
        except ValueError:
            continue
        kept = [r for r in rows if flt.matches(r)]
        assert len(kept) <= len(rows)
        # The live view's selector, its haystacks kept from the filter before, picks exactly the same rows.
        assert selector.select(flt, rows) == kept


# -- the change engine -------------------------------------------------------------------------------------------


@SNAPSHOTS
@given(snapshots(), snapshots())
def test_diff_of_any_two_polls_replays_and_describes_safely(old: Snapshot, new: Snapshot) -> None:
    events = diff(old, new)
    assert diff(None, new) == []
    assert diff(new, new) == []
    assert _unique_tunnels(old) and _unique_tunnels(new)  # parse_many keeps the first of a repeated id
    if not _has_nan(old, new):
        assert replay_form(apply(old, events)) == replay_form(new)
    for event in events:
        line = event.describe()
        assert line.isprintable(), line
        _json_safe(event.to_json())


@SNAPSHOTS
@given(st.lists(snapshots() | st.text(max_size=40), min_size=1, max_size=5))
def test_a_session_takes_any_sequence_of_polls_and_failures(polls: list[Snapshot | str]) -> None:
    session = Session(ghost_seconds=30, mark_seconds=10)
    at = T0
    for poll in polls:
        at += timedelta(seconds=7)
        if isinstance(poll, str):
            session.on_failure([poll_failed(at, poll or "failed")])
        else:
            session.on_snapshot(poll, at)
            rows = session.rows(poll)
            keys = [r.key for r in rows]
            assert len(keys) == len(set(keys)), "a ghost never doubles a live row"
            assert _counts(session.colo_counts(poll)) == _recount(poll)
        session.expire(at)
    failures = [p for p in polls if isinstance(p, str)]
    logged = [e for e in session.log if e.kind.value == "poll_failed"]
    assert len(logged) <= len(failures)
    assert bool(logged) == bool(failures)


@st.composite
def tidy_states(draw: st.DrawFn) -> tuple[TunnelState, ...]:
    """Well-formed tunnel states over a few tunnel ids, so that a tunnel comes back changed from poll to poll."""
    states = []
    for tunnel_id in draw(st.lists(st.sampled_from(["t1", "t2", "t3", "t4"]), unique=True, max_size=4)):
        if draw(st.integers(0, 5)) == 0:
            states.append(TunnelState(Tunnel(id=tunnel_id), None, (), "failed"))
            continue
        conns = [
            Connection(id=f"{tunnel_id}-{n}", colo_name=colo, is_pending_reconnect=pending)
            for n, (colo, pending) in enumerate(
                draw(st.lists(st.tuples(st.sampled_from(["DFW", "LAX", None]), st.sampled_from([True, False, None]))))
            )
        ]
        states.append(TunnelState(Tunnel(id=tunnel_id), (Connector(id=f"{tunnel_id}-c", conns=conns),)))
    return tuple(states)


@PROPERTY
@given(st.lists(st.tuples(tidy_states(), st.lists(st.booleans(), max_size=4)), min_size=1, max_size=6))
def test_colo_counts_follow_polls_that_reuse_unchanged_tunnels(
    steps: list[tuple[tuple[TunnelState, ...], list[bool]]],
) -> None:
    # The source hands back an unchanged tunnel as the same object: the counts are kept per tunnel and only the
    # changed ones are counted again. Each poll here keeps some of the previous poll's tunnel objects.
    session = Session(ghost_seconds=30, mark_seconds=10)
    previous: tuple[TunnelState, ...] = ()
    at = T0
    for fresh, keep in steps:
        kept = tuple(state for state, k in zip(previous, keep, strict=False) if k)
        ids = {state.tunnel.id for state in kept}
        at += timedelta(seconds=7)
        poll = Snapshot("0" * 32, at, kept + tuple(t for t in fresh if t.tunnel.id not in ids))
        session.on_snapshot(poll, at)
        assert _counts(session.colo_counts(poll)) == _recount(poll)
        previous = poll.tunnels


def _counts(colos: list[Any]) -> tuple[dict[str, int], dict[str, int]]:
    return {c.colo: c.active for c in colos if c.active}, {c.colo: c.pending for c in colos if c.pending}


def _recount(snapshot: Snapshot) -> tuple[dict[str, int], dict[str, int]]:
    conns = [conn for t in snapshot.tunnels for c in t.connectors or () for conn in c.conns]
    active = Counter(c.colo_name or "?" for c in conns if c.is_pending_reconnect is False)
    pending = Counter(c.colo_name or "?" for c in conns if c.is_pending_reconnect is True)
    return dict(active), dict(pending)


# -- sanitising --------------------------------------------------------------------------------------------------


@PROPERTY
@given(st.text(), st.integers(min_value=1, max_value=300))
def test_clean_is_printable_and_bounded(text: str, limit: int) -> None:
    out = clean(text, limit)
    assert out.isprintable()
    assert len(out) <= limit
    assert clean(out, None) == out


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]  # values: keys are field names, named on purpose
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _unique_tunnels(snapshot: Snapshot) -> bool:
    ids = [t.tunnel.id for t in snapshot.tunnels]
    return len(ids) == len(set(ids))


def _has_nan(*snapshots: Snapshot) -> bool:
    """NaN is not equal to itself, so a record holding one never compares equal to its replay."""
    return any(
        isinstance(v, float) and math.isnan(v) for s in snapshots for v in _leaves(json.loads(_json_safe(s.to_json())))
    )


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]
