"""model/codec.py: a snapshot back from its JSON document, exactly (``snapshot_from_json(s.to_json()).to_json() ==
s.to_json()``) for generated snapshots and for the demo account's polls, and tolerant of what it does not know."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.clock import FakeClock
from tunneltop.api.client import CloudflareClient
from tunneltop.api.gate import RequestGate
from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.simulator import SimulatedAccount
from tunneltop.demo.transport import DEMO_BASE_URL, DemoTransport
from tunneltop.model.codec import CodecError, snapshot_from_json
from tunneltop.model.findings import Finding, Severity
from tunneltop.model.parse import RecordProblem, parse_connectors, parse_many
from tunneltop.model.reach import LocalReady, Reach, Route
from tunneltop.model.records import Tunnel
from tunneltop.model.snapshot import Snapshot, TunnelState
from tunneltop.poll.engine import PollEngine

PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=60)
T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)

TEXT = st.text(max_size=12) | st.sampled_from(["", "DFW", "\x1b[2J", "[/]", "\u202e", "a: b"])
LEAF = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | TEXT
JSON = st.recursive(
    LEAF, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8
)
IDS = st.sampled_from(["a", "b", "c", "d/e", "\x1b"])
TIMES = st.sampled_from(["2026-11-28T11:00:00Z", "2026-11-28T11:00:00.123456Z", "2026-11-28", "odd", None, 3])


def _with_unknowns(fields: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A record with some of its fields and a few the API added tomorrow."""
    return st.builds(
        lambda known, extra: {**extra, **known},
        st.fixed_dictionaries({}, optional=fields),
        st.dictionaries(TEXT, JSON, max_size=2),
    )


CONN = _with_unknowns(
    {
        "id": IDS,
        "colo_name": st.sampled_from(["DFW", "LAX", ""]),
        "origin_ip": st.sampled_from(["203.0.113.7", "2001:db8::1", "x"]),
        "opened_at": TIMES,
        "is_pending_reconnect": st.sampled_from([True, False, None, "true"]),
    }
)
CONNECTOR = _with_unknowns(
    {
        "id": IDS,
        "version": TEXT,
        "run_at": TIMES,
        "config_version": st.integers(-2, 9),
        "conns": st.lists(CONN, max_size=3),
    }
)
TUNNEL = _with_unknowns(
    {
        "id": IDS,
        "name": TEXT,
        "status": st.sampled_from(["healthy", "degraded", "down", "inactive", "odd"]),
        "created_at": TIMES,
        "remote_config": st.booleans() | TEXT,
    }
)
FINDING = st.builds(
    Finding, st.sampled_from(["config_drift", "min_connectors"]), st.sampled_from(Severity), TEXT, TEXT, IDS | st.none()
)
REACH = st.builds(
    Reach,
    st.sampled_from([T0, T0 - timedelta(minutes=3, microseconds=5)]),
    st.sampled_from(["cloudflare", "local"]),
    st.lists(TEXT, max_size=3).map(tuple),
    st.lists(st.builds(Route, TEXT, TEXT | st.none(), TEXT | st.none()), max_size=2).map(tuple),
    st.integers(0, 9) | st.none(),
    error=st.none() | TEXT,
)
# Its connector id is sometimes one of the snapshot's connectors: the document then says "this_host" of it.
LOCAL = st.builds(
    LocalReady,
    st.just("127.0.0.1:20241"),
    IDS | st.none(),
    st.integers(0, 4) | st.none(),
    st.sampled_from([200, 503, None]),
)


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    """A snapshot as a poll builds it (records parsed from drifting JSON), with what the engine adds to it."""
    tunnels, problems = parse_many(Tunnel, draw(st.lists(TUNNEL, max_size=4)), "tunnel")
    states = []
    for tunnel in tunnels:
        kind = draw(st.integers(0, 4))
        fetched_at = draw(st.none() | st.just(T0 - timedelta(seconds=30)))
        findings = tuple(draw(st.lists(FINDING, max_size=2)))
        reach = draw(st.none() | REACH)
        if kind == 0:
            states.append(TunnelState(tunnel, None, (), draw(TEXT) or "failed", None, findings, reach))
            continue
        connectors, found = parse_connectors(draw(st.lists(CONNECTOR, max_size=3) | JSON))
        error = draw(TEXT) if kind == 1 else None  # stale: kept connectors and the refresh's error
        states.append(TunnelState(tunnel, tuple(connectors), tuple(found), error, fetched_at, findings, reach))
    at = T0 + timedelta(seconds=draw(st.integers(0, 3600)), microseconds=draw(st.integers(0, 999999)))
    local = draw(st.none() | LOCAL)
    return Snapshot("0" * 32, at, tuple(states), tuple(problems), draw(st.none() | TEXT), local)


def _through_json(snapshot: Snapshot) -> dict[str, Any]:
    """The document as it travels: written out as tunneltop writes it and read back."""
    loaded: dict[str, Any] = json.loads(json.dumps(snapshot.to_json(), ensure_ascii=True))
    return loaded


@PROPERTY
@given(snapshots())
def test_any_snapshot_comes_back_from_its_document(snapshot: Snapshot) -> None:
    document = _through_json(snapshot)
    back = snapshot_from_json(document)
    assert back.to_json() == snapshot.to_json()
    assert _through_json(back) == document
    assert [t.health for t in back.tunnels] == [t.health for t in snapshot.tunnels]
    assert back.fetched_at == snapshot.fetched_at and back.local == snapshot.local
    for old, new in zip(snapshot.tunnels, back.tunnels, strict=True):
        assert (new.tunnel, new.connectors, new.problems) == (old.tunnel, old.connectors, old.problems)
        assert (new.findings, new.reach, new.fetched_at, new.error) == (
            old.findings,
            old.reach,
            old.fetched_at,
            old.error,
        )


async def test_the_demo_accounts_polls_come_back_from_their_documents() -> None:
    clock = FakeClock()
    start = T0
    sim = SimulatedAccount(seed=3, start=start)
    cloudflare = FakeCloudflare(sim, require_auth=False, clock=lambda: start + timedelta(seconds=clock.now - 1000.0))
    client = CloudflareClient(
        None,
        DEMO_BASE_URL,
        transport=DemoTransport(cloudflare),
        gate=RequestGate(240, clock=clock),
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(1),
    )
    async with client:
        engine = PollEngine(client, sim.account_id, interval=5.0, min_burst=240)
        seen = 0
        for _ in range(40):
            outcome = await engine.poll()
            clock.advance(max(5.0, engine.next_poll_delay()))
            if outcome.snapshot is None:
                continue
            seen += 1
            assert snapshot_from_json(_through_json(outcome.snapshot)).to_json() == outcome.snapshot.to_json()
    assert seen >= 30


def test_unknown_keys_are_ignored_and_old_documents_read() -> None:
    document = {
        "account_id": "acc",
        "fetched_at": "2026-12-01T03:12:00Z",
        "tunnels": [
            # As written before the full record and findings: the top level's id, name and status only.
            {"id": "t1", "name": "web", "status": "healthy", "health": "healthy", "clients": [], "problems": []},
            {"id": "t2", "clients": None, "error": "timeout", "brand_new_key": {"x": 1}},
        ],
        "not_fetched": [],
        "api": {"used_per_minute": 3},
        "a_newer_key": True,
    }
    snapshot = snapshot_from_json(document)
    assert snapshot.fetched_at == datetime(2026, 12, 1, 3, 12, tzinfo=UTC)
    assert [(t.tunnel.id, t.tunnel.name, t.connectors, t.error) for t in snapshot.tunnels] == [
        ("t1", "web", (), None),
        ("t2", None, None, "timeout"),
    ]
    assert snapshot.account_name is None and snapshot.local is None


def test_an_unreadable_tunnel_is_skipped_and_reported() -> None:
    document = {
        "account_id": "acc",
        "fetched_at": "2026-12-01T03:12:00+00:00",
        "tunnels": [{"id": 7}, "nope", {"id": "ok", "clients": "not a list", "fetched_at": "2026-12-01T03:11:00"}],
    }
    snapshot = snapshot_from_json(document)
    [state] = snapshot.tunnels
    assert state.tunnel.id == "ok" and state.connectors == ()
    assert state.fetched_at == datetime(2026, 12, 1, 3, 11, tzinfo=UTC)  # no zone: UTC, as the API's records
    assert [p.where for p in snapshot.problems] == ["tunnel #1", "tunnel #2"]
    assert all(p.message.endswith("skipped") for p in snapshot.problems)
    assert state.problems and "expected a list" in str(state.problems[0])


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ([], "JSON object"),
        ({"fetched_at": "2026-12-01T03:12:00Z", "tunnels": []}, "account_id"),
        ({"account_id": "a", "fetched_at": "2026-12-01T03:12:00Z"}, "tunnel list"),
        ({"account_id": "a", "fetched_at": "yesterday", "tunnels": []}, "RFC 3339"),
        ({"account_id": "a", "tunnels": []}, "fetched_at"),
    ],
)
def test_a_document_that_is_no_snapshot_is_a_clear_error(document: Any, says: str) -> None:
    with pytest.raises(CodecError, match=says):
        snapshot_from_json(document)


def test_problems_come_back_as_they_were_written() -> None:
    problems = (RecordProblem("tunnel #3", "field 'x': bad: really"), RecordProblem("connector ab", "dup"))
    snapshot = Snapshot("acc", T0, (), problems)
    assert snapshot_from_json(_through_json(snapshot)).problems == problems
