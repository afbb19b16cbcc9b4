"""Property tests of the change engine: replaying ``diff(old, new)`` onto ``old`` gives ``new``, for random pairs.

Ids come from small pools so that random snapshots overlap: the same tunnel, connector or connection shows up in
both with other fields, which is where the interesting events are.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tunneltop.changes.events import EventKind, apply, diff, replay_form
from tunneltop.model.findings import Finding
from tunneltop.model.findings import Severity as Grade
from tunneltop.model.records import Connection, Connector, Tunnel
from tunneltop.model.snapshot import Snapshot, TunnelState

FINDINGS = (EventKind.FINDING_RAISED, EventKind.FINDING_CLEARED)
DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, max_examples=100)

T0 = datetime(2025, 3, 1, tzinfo=UTC)
TIMES = st.sampled_from([None, T0, T0 + timedelta(seconds=1), T0 + timedelta(days=1)])
EXTRAS = st.sampled_from([{}, {}, {}, {"edge": 1}, {"edge": 2}, {"note": None}])
TEXT = st.sampled_from([None, "", "a", "b"])

connections = st.builds(
    lambda cid, colo, ip, opened, pending, version, extra: Connection(
        id=cid,
        uuid=cid,
        colo_name=colo,
        origin_ip=ip,
        opened_at=opened,
        is_pending_reconnect=pending,
        client_version=version,
        **extra,
    ),
    st.sampled_from(["c1", "c2", "c3", "c4", "c5"]),
    st.sampled_from([None, "DFW", "LAX"]),
    st.sampled_from([None, "203.0.113.7", "2001:db8::1"]),
    TIMES,
    st.sampled_from([None, True, False]),
    TEXT,
    EXTRAS,
)

connectors = st.builds(
    lambda cid, arch, version, run_at, config, features, conns, extra: Connector(
        id=cid,
        arch=arch,
        version=version,
        run_at=run_at,
        config_version=config,
        features=features,
        conns=conns,
        **extra,
    ),
    st.sampled_from(["k1", "k2", "k3"]),
    TEXT,
    st.sampled_from([None, "2025.1.0", "2025.4.0"]),
    TIMES,
    st.sampled_from([None, 1, 2]),
    st.lists(st.sampled_from(["ha-origin", "quic", "v3"]), max_size=3),
    st.lists(connections, max_size=4, unique_by=lambda c: c.id),
    EXTRAS,
)

tunnels = st.builds(
    lambda tid, name, status, extra: Tunnel(id=tid, name=name, status=status, **extra),
    st.sampled_from(["t1", "t2", "t3", "t4"]),
    TEXT,
    st.sampled_from([None, "healthy", "degraded", "down", "inactive", "odd"]),
    EXTRAS,
)


findings = st.lists(
    st.builds(
        Finding,
        st.sampled_from(["config_drift", "min_colos"]),
        st.sampled_from(list(Grade)),
        st.sampled_from(["2 of 3", "1 of 3"]),
        st.just("look"),
        st.sampled_from([None, "k1", "k2"]),
    ),
    max_size=3,
).map(tuple)


@st.composite
def states(draw: st.DrawFn, tunnel: Tunnel | None = None) -> TunnelState:
    record = tunnel or draw(tunnels)
    found = draw(st.none() | st.lists(connectors, max_size=3, unique_by=lambda c: c.id).map(tuple))
    error = None if found is not None else "connections could not be fetched"
    return TunnelState(record, found, (), error, findings=draw(findings))


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    found = draw(st.lists(states(), max_size=4, unique_by=lambda s: s.tunnel.id))
    return Snapshot("acc", T0, tuple(found))


def _reparsed(connector: Connector) -> Connector:
    return Connector.model_validate(connector.api_dict())


@st.composite
def evolve_connector(draw: st.DrawFn, connector: Connector) -> Connector:
    """The same connector a poll later: most connections unchanged (parsed anew), some replaced or gone."""
    conns: list[Connection] = []
    for conn in connector.conns:
        action = draw(st.sampled_from(["same", "same", "drop", "redraw", "flip", "extra"]))
        if action == "same":
            conns.append(Connection.model_validate(conn.api_dict()))
        elif action == "extra":
            conns.append(Connection.model_validate({**conn.api_dict(), **draw(EXTRAS)}))
        elif action == "flip":
            conns.append(conn.model_copy(update={"is_pending_reconnect": conn.is_pending_reconnect is not True}))
        elif action == "redraw":
            other = draw(connections)
            conns.append(other.model_copy(update={"id": conn.id}))
    taken = {c.id for c in conns}
    conns += [c for c in draw(st.lists(connections, max_size=2, unique_by=lambda c: c.id)) if c.id not in taken]
    shell = draw(
        st.sampled_from(
            [
                _reparsed(connector),
                Connector.model_validate({**connector.api_dict(), **draw(EXTRAS)}),
                draw(connectors).model_copy(update={"id": connector.id}),
            ]
        )
    )
    return shell.model_copy(update={"conns": conns})


@st.composite
def evolve(draw: st.DrawFn, old: Snapshot) -> Snapshot:
    """A later poll of ``old``: tunnels kept (mostly as they were), changed, dropped or added."""
    out: list[TunnelState] = []
    for s in old.tunnels:
        action = draw(st.sampled_from(["same", "edit", "edit", "drop", "redraw", "unknown"]))
        if action == "same":
            out.append(s)
        elif action == "redraw":
            out.append(draw(states(tunnel=s.tunnel)))
        elif action == "unknown":
            out.append(TunnelState(s.tunnel, None, (), "HTTP 502"))
        elif action == "edit":
            record = s.tunnel if draw(st.booleans()) else draw(tunnels).model_copy(update={"id": s.tunnel.id})
            found: tuple[Connector, ...] | None = s.connectors
            if found is not None:
                kept = [draw(evolve_connector(c)) for c in found if draw(st.integers(0, 4))]
                taken = {c.id for c in kept}
                new = draw(st.lists(connectors, max_size=2, unique_by=lambda c: c.id))
                kept += [c for c in new if c.id not in taken]
                found = tuple(draw(st.permutations(kept)))
            out.append(TunnelState(record, found, s.problems, s.error, findings=draw(st.just(s.findings) | findings)))
    taken = {s.tunnel.id for s in out}
    out += [
        s for s in draw(st.lists(states(), max_size=2, unique_by=lambda s: s.tunnel.id)) if s.tunnel.id not in taken
    ]
    return Snapshot(old.account_id, T0 + timedelta(seconds=5), tuple(out))


@st.composite
def pairs(draw: st.DrawFn) -> tuple[Snapshot, Snapshot]:
    old = draw(snapshots())
    if draw(st.integers(0, 3)):
        return old, draw(evolve(old))
    return old, draw(snapshots())


def _unknown_on_either_side(old: Snapshot, new: Snapshot) -> set[str]:
    before = {s.tunnel.id: s.connectors for s in old.tunnels}
    return {s.tunnel.id for s in new.tunnels if s.connectors is None or before.get(s.tunnel.id, ()) is None}


@DETERMINISTIC
@given(pairs())
def test_diff_replays_exactly_and_keeps_its_rules(pair: tuple[Snapshot, Snapshot]) -> None:
    """All properties of one pair at once (generating pairs costs more than checking them)."""
    old, new = pair
    events = diff(old, new)
    assert replay_form(apply(old, events)) == replay_form(new)
    assert diff(old, new) == events
    blind = _unknown_on_either_side(old, new)
    now_found = {(s.tunnel.id, f) for s in new.tunnels for f in s.findings}
    for i, event in enumerate(events):
        if event.tunnel_id in blind and event.kind not in FINDINGS:
            assert event.connector_id is None, event
        if event.kind is EventKind.FINDING_RAISED:
            assert (event.tunnel_id, event.after) in now_found
        if event.kind in (EventKind.COLO_MOVED, EventKind.SCHEMA_DRIFT):
            assert event.parts and not any(p.parts for p in event.parts)
            if event.kind is EventKind.COLO_MOVED:
                assert {(p.tunnel_id, p.connector_id) for p in event.parts} == {(event.tunnel_id, event.connector_id)}
        # Values are formatted for people: no Python repr (the generated names hold no quotes or "None").
        assert not re.search(r"\{'|\['|None", event.describe()), event.describe()
        if event.kind is EventKind.TUNNEL_HEALTH:
            assert all(e.tunnel_id != event.tunnel_id for e in events[i + 1 :])
        document: dict[str, Any] = json.loads(json.dumps(event.to_json(), ensure_ascii=True))
        assert document["kind"] == event.kind.value
        assert document["at"].endswith("Z")
        assert event.describe().isprintable()


@settings(DETERMINISTIC, max_examples=40)
@given(snapshots())
def test_a_snapshot_against_itself_parsed_anew_has_no_events(snapshot: Snapshot) -> None:
    again = Snapshot(
        snapshot.account_id,
        T0 + timedelta(seconds=5),
        tuple(
            TunnelState(
                Tunnel.model_validate(s.tunnel.api_dict()),
                None if s.connectors is None else tuple(_reparsed(c) for c in s.connectors),
                s.problems,
                s.error,
                findings=s.findings,
            )
            for s in snapshot.tunnels
        ),
    )
    assert diff(snapshot, again) == []


@settings(DETERMINISTIC, max_examples=30)
@given(snapshots(), st.data())
def test_replay_chains_over_several_polls(first: Snapshot, data: st.DataObject) -> None:
    polls = [first]
    for _ in range(3):
        polls.append(data.draw(evolve(polls[-1])))
    replayed = first
    for old, new in pairwise(polls):
        replayed = apply(replayed, diff(old, new))
    assert replay_form(replayed) == replay_form(polls[-1])
