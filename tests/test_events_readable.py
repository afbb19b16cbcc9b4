"""Events that read like a person wrote them (issue 13): a failover is one event, schema drift one notice, the
tunnel list's deprecated ``connections`` copy makes none, no value is a Python repr, ghosts say gone, summaries
count pending connections, and Go's zero time is unknown."""

from __future__ import annotations

import asyncio
import csv
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tests.support.snapshots import CONNECTOR_ID, T0, T1, changes, conn, connector, kinds, one, snap, state, tunnel
from tests.support.stream import WEB, ScriptedOut, demo_target, frozen_fake, run
from tunneltop.changes.events import EventKind, Severity, diff, flatten, human
from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.export import export_view
from tunneltop.model.records import Connection, Connector, Tunnel
from tunneltop.model.snapshot import Snapshot
from tunneltop.ui.detail import connection_detail
from tunneltop.views.rows import ConnRow
from tunneltop.views.session import Session


@pytest.fixture
def fake() -> FakeCloudflare:
    # The tunnel list carries its deprecated copy of each tunnel's connections, as Cloudflare's does.
    return frozen_fake(embed_connections=True)


# -- a failover is one event -----------------------------------------------------------------------------------


def test_connections_moving_colo_are_one_event_with_their_parts() -> None:
    before = [conn("a1", "DFW"), conn("a2", "DFW"), conn("b1", "LAX"), conn("b2", "LAX")]
    after = [conn("a3", "ORD"), conn("a4", "ORD"), conn("b1", "LAX"), conn("b2", "LAX")]
    events = changes(one((connector(conns=before),)), one((connector(conns=after),), at=T1))
    assert kinds(events) == ["colo_moved"]
    moved = events[0]
    assert moved.describe() == "web-prod: 2 connections moved DFW→ORD (connector 9f8e7d6c)"
    assert (moved.tunnel_id, moved.connector_id, moved.colo, moved.severity) == (
        "t-web",
        CONNECTOR_ID,
        "ORD",
        Severity.WARNING,
    )
    document = moved.to_json()
    assert (document["before"], document["after"]) == ({"DFW": 2}, {"ORD": 2})
    assert [(p["kind"], p["conn_id"]) for p in document["parts"]] == [
        ("conn_closed", "a1"),
        ("conn_closed", "a2"),
        ("conn_opened", "a3"),
        ("conn_opened", "a4"),
    ]
    assert [e.kind for e in flatten(events)] == [EventKind.CONN_CLOSED] * 2 + [EventKind.CONN_OPENED] * 2


def test_several_colos_at_once_and_the_rest_stays_separate() -> None:
    before = [conn("a1", "DFW"), conn("a2", "DFW"), conn("b1", "LAX"), conn("b2", "LAX"), conn("c1", "SEA")]
    after = [conn("n1", "ORD"), conn("n2", "ORD"), conn("n3", "ORD"), conn("n4", "AMS"), conn("c2", "SEA")]
    events = changes(one((connector(conns=before),)), one((connector(conns=after),)))
    # SEA closed one and opened one: a reconnect in place, not a move.
    assert kinds(events) == ["colo_moved", "conn_closed", "conn_opened"]
    assert events[0].describe() == "web-prod: 4 connections moved 2xDFW, 2xLAX→1xAMS, 3xORD (connector 9f8e7d6c)"
    assert {events[1].conn_id, events[2].conn_id} == {"c1", "c2"}


def test_more_closed_than_opened_moves_as_many_as_opened() -> None:
    before = [conn("a1", "DFW"), conn("a2", "DFW"), conn("a3", "DFW")]
    events = changes(one((connector(conns=before),)), one((connector(conns=[conn("n1", "ORD")]),)))
    assert kinds(events) == ["colo_moved", "conn_closed", "conn_closed"]
    assert events[0].describe().endswith("1 connection moved DFW→ORD (connector 9f8e7d6c)")


def test_connections_dropped_pending_in_one_colo_and_opened_in_another_moved() -> None:
    """How a failover looks in the API: the edge lists the dropped connections as pending for minutes."""
    before = [conn("a1", "FRA"), conn("a2", "FRA"), conn("b1", "AMS")]
    after = [conn("a1", "FRA", pending=True), conn("a2", "FRA", pending=True), conn("b1", "AMS"), conn("n1", "LHR")]
    events = changes(one((connector(conns=before),)), one((connector(conns=after),)))
    assert kinds(events) == ["colo_moved", "conn_pending", "tunnel_health"]
    assert events[0].describe() == (
        "web-prod: 1 connection moved FRA→LHR, the old one held pending by the edge (connector 9f8e7d6c)"
    )
    assert [p.kind.value for p in events[0].parts] == ["conn_pending", "conn_opened"]
    # Minutes later the edge lets the held ones go: that is not another move.
    later = [conn("b1", "AMS"), conn("n1", "LHR"), conn("n2", "ORD")]
    assert kinds(changes(one((connector(conns=after),)), one((connector(conns=later),)))) == [
        "conn_closed",
        "conn_closed",
        "conn_opened",
        "tunnel_health",
    ]


def test_closes_on_one_connector_and_opens_on_another_are_not_a_move() -> None:
    old = one((connector(conns=[conn("a1", "DFW")]), connector("k2", conns=[conn("b1", "LAX")])))
    new = one((connector(conns=[]), connector("k2", conns=[conn("b1", "LAX"), conn("b2", "ORD")])))
    assert kinds(changes(old, new)) == ["conn_closed", "conn_opened"]


def test_a_failover_is_one_row_of_the_events_csv_and_keeps_its_parts_in_the_json(tmp_path: Path) -> None:
    old = one((connector(conns=[conn("a1", "DFW")]),))
    events = diff(old, one((connector(conns=[conn("a2", "ORD")]),), at=T1))
    json_path, _, event_csv = export_view(tmp_path, T1, [], events)
    with event_csv.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["kind"], r["colo"], r["message"]) for r in rows] == [
        ("colo_moved", "ORD", "web-prod: 1 connection moved DFW→ORD (connector 9f8e7d6c)")
    ]
    [document] = json.loads(json_path.read_text(encoding="utf-8"))["events"]
    assert [p["kind"] for p in document["parts"]] == ["conn_closed", "conn_opened"]


def test_a_failover_marks_its_new_rows() -> None:
    session = Session()
    old = one((connector(conns=[conn("a1", "DFW")]),))
    new = one((connector(conns=[conn("a2", "ORD")]),), at=T1)
    session.on_snapshot(old, T0)
    logged = session.on_snapshot(new, T1)
    assert kinds(logged) == ["colo_moved"] and len(session.log) == 1
    assert session.marks[f"t-web/{CONNECTOR_ID}/a2"].kind == "new"
    assert [r.state for r in session.rows(new)] == ["active", "gone"]


# -- the deprecated connections field ----------------------------------------------------------------------------


def test_the_deprecated_connections_field_is_dropped_at_decode() -> None:
    raw = {"id": "t1", "name": "web", "connections": [{"client_id": "k", "colo_name": "DFW"}], "brand_new": 1}
    record = Tunnel.model_validate(raw)
    assert "connections" not in record.api_dict() and record.api_dict()["brand_new"] == 1
    assert raw["connections"], "the raw answer is not changed"
    moved = Tunnel.model_validate({**raw, "connections": []})
    old = snap(state(record, (connector(),)))
    assert diff(old, snap(state(moved, (connector(),)), at=T1)) == []


# -- no Python repr in any message -------------------------------------------------------------------------------


def test_values_are_formatted_for_people() -> None:
    assert human(None) == "-"
    assert human(True) == "true"
    assert human(["a", "b"]) == "a, b"
    assert human({"edge": {"ip": "198.51.100.1"}}) == '{"edge": {"ip": "198.51.100.1"}}'
    assert human(T0) == "2025-03-01T12:00:00Z"
    old = one((connector(conns=[conn(meta={"a": 1}), conn("c2")], labels=["x"]),))
    new = one((connector(conns=[conn(meta={"a": 2}), conn("c2")], labels=["x", "y"]),))
    lines = [e.describe() for e in changes(old, new)]
    assert lines == [
        "web-prod: connector 9f8e7d6c changed: labels x -> x, y",
        'web-prod: DFW 203.0.113.7 changed: meta {"a": 1} -> {"a": 2} (conn 1a2b3c4d, connector 9f8e7d6c)',
    ]
    assert not any(re.search(r"\{'|\['|None", line) for line in lines)


# -- ghosts and summaries ------------------------------------------------------------------------------------------


def _plain(renderable: Any) -> str:
    console = Console(width=160, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_a_ghost_says_gone_not_pending() -> None:
    pending = conn(pending=True)
    row = ConnRow("k", tunnel(), connector(conns=[pending]), pending, gone_at=T1)
    later = T1 + timedelta(seconds=5)
    text = _plain(connection_detail(row.tunnel, row.connector, row.conn, later, gone_at=row.gone_at))
    assert "✖ gone" in text and "PENDING" not in text
    assert re.search(r"gone\s+2025-03-01 12:00:05Z  \(5s ago\)", text)
    assert "no longer lists this connection (it was pending a reconnect)" in text
    live = _plain(connection_detail(row.tunnel, row.connector, row.conn, T1))
    assert "⟳ PENDING" in live


def test_connector_left_counts_its_pending_connections() -> None:
    conns = [conn("a1", "AMS"), conn("a2", "AMS"), conn("f1", "FRA"), conn("p1", "FRA", pending=True)]
    old = one((connector(), connector("k2", conns=conns)))
    left = changes(old, one((connector(),)))[0]
    assert left.describe() == "web-prod: connector k2 left (had 4 connections: 2xAMS, 1xFRA, 1 pending)"
    joined = changes(one((connector(),)), old)[0]
    assert joined.describe().endswith("joined (2025.1.0, linux_amd64, edges 2xAMS, 1xFRA, 1 pending)")


# -- schema drift --------------------------------------------------------------------------------------------------


def _without(field: str, conns: list[Connection]) -> list[Connection]:
    return [Connection.model_validate({k: v for k, v in c.model_dump().items() if k != field}) for c in conns]


def test_a_field_missing_for_one_poll_is_one_notice_and_one_when_it_returns() -> None:
    def account(drop: bool) -> Snapshot:
        states = []
        for name, count in (("web", 8), ("api", 6)):
            conns = [conn(f"{name}{i}", ("DFW", "LAX")[i % 2]) for i in range(count)]
            conns = _without("is_pending_reconnect", conns) if drop else conns
            states.append(state(tunnel(f"t-{name}", name), (connector(conns=conns),)))
        return snap(*states)

    normal, drifted = account(False), account(True)
    gone = changes(normal, drifted)
    assert kinds(gone) == ["schema_drift"], "not 14 conn_changed"
    notice = gone[0]
    assert notice.severity is Severity.WARNING and notice.tunnel_id is None
    assert notice.describe() == (
        "schema drift: field is_pending_reconnect missing from every connection (14 connections in 2 tunnels); "
        "shown as unknown until the API sends it again"
    )
    document = notice.to_json()
    assert document["after"]["tunnels"] == ["t-web", "t-api"] and len(document["parts"]) == 14
    back = changes(drifted, normal)
    assert kinds(back) == ["schema_drift"], "and not 14 more"
    assert back[0].severity is Severity.OK
    assert back[0].describe().startswith("schema drift: field is_pending_reconnect now sent on every connection")


def test_drift_keeps_other_changes_and_news_of_pending_apart() -> None:
    base = [conn("c1"), conn("c2"), conn("c3")]
    drifted = _without("is_pending_reconnect", [conn("c1"), conn("c2"), conn("c3", colo="LAX")])
    events = changes(one((connector(conns=base),)), one((connector(conns=drifted),)))
    assert kinds(events) == ["schema_drift", "conn_changed"]
    assert events[0].after["count"] == 2 and events[1].conn_id == "c3"
    assert "(2 connections);" in events[0].describe()
    back = [conn("c1"), conn("c2", pending=True), conn("c3", colo="LAX")]
    events = changes(one((connector(conns=drifted),)), one((connector(conns=back),)))
    assert kinds(events) == ["schema_drift", "conn_pending", "tunnel_health"], "back as pending is news"


def test_a_field_missing_from_some_connections_is_a_change() -> None:
    old = one((connector(conns=[conn("c1"), conn("c2")]),))
    new = one((connector(conns=[*_without("is_pending_reconnect", [conn("c1")]), conn("c2")]),))
    assert kinds(changes(old, new)) == ["conn_changed"]
    one_conn = changes(one((connector(),)), one((connector(conns=_without("is_pending_reconnect", [conn()])),)))
    assert "(1 connection);" in one_conn[0].describe()


def test_a_field_missing_from_every_connector_is_one_notice() -> None:
    def shells(drop: bool) -> tuple[Connector, ...]:
        made = (connector(), connector("k2", conns=[conn("c2")]))
        if drop:
            made = tuple(Connector.model_validate(c.model_dump(exclude={"run_at", "version"})) for c in made)
        return made

    events = changes(one(shells(False)), one(shells(True)))
    assert kinds(events) == ["schema_drift"], "not connector_restarted and connector_upgraded for each"
    assert events[0].after["records"] == "connectors" and events[0].after["fields"] == ["run_at", "version"]
    assert events[0].describe().startswith("web-prod: schema drift: fields run_at, version missing from every "
                                           "connector (2 connectors)")
    assert kinds(changes(one(shells(True)), one(shells(False)))) == ["schema_drift"]


def test_a_field_missing_from_every_tunnel_of_the_list_is_one_notice() -> None:
    def account(drop: bool) -> Snapshot:
        made = [tunnel(f"t-{n}", n, conns_active_at=T0) for n in ("web", "api", "db")]
        if drop:
            made = [Tunnel.model_validate(t.model_dump(exclude={"conns_active_at"})) for t in made]
        return snap(*(state(t, (connector(),)) for t in made))

    events = changes(account(False), account(True))
    assert kinds(events) == ["schema_drift"], "not a tunnel_changed per tunnel"
    assert events[0].describe().startswith("schema drift: field conns_active_at missing from every tunnel (3 tunnels);")
    assert kinds(changes(account(True), account(False))) == ["schema_drift"]


# -- Go's zero time ------------------------------------------------------------------------------------------------


def test_go_zero_time_is_unknown() -> None:
    zero = "0001-01-01T00:00:00Z"
    record = Connection.model_validate({"id": "c", "opened_at": zero, "is_pending_reconnect": False})
    assert record.opened_at is None and record.api_dict()["opened_at"] is None
    assert Connector.model_validate({"id": "k", "run_at": zero}).run_at is None
    assert Connection.model_validate({"id": "c", "opened_at": "0001-01-01T00:00:00"}).opened_at is None
    # Not "deleted 2,025 years ago": a zero deleted_at is a tunnel that is not deleted.
    assert Tunnel.model_validate({"id": "t", "deleted_at": zero, "conns_active_at": zero}).deleted_at is None
    text = _plain(connection_detail(tunnel(), connector(), record, T1))
    assert re.search(r"opened\s+-\s*\n", text) and "ago" not in text and "1-01-01" not in text


# -- end to end: the --watch stream over the simulated account ---------------------------------------------------


async def test_a_failover_and_drift_in_the_watch_stream(fake: FakeCloudflare) -> None:
    """Through the real --watch loop: a colo failover is one line with its parts (and no 'tunnel changed' from the
    tunnel list's copy of the connections), drift one line each way."""
    stop = asyncio.Event()
    moved: list[str] = []

    def failover() -> None:
        clients = fake.sim.clients(WEB)
        conns = clients[0]["conns"]
        dfw = [c for c in conns if c["colo_name"] == "DFW"]
        moved.extend(c["id"] for c in dfw)
        fresh = [{**c, "id": f"{c['id'][:-4]}beef", "uuid": None, "colo_name": "ORD"} for c in dfw]
        clients[0]["conns"] = [c for c in conns if c not in dfw] + fresh
        fake.sim.set_clients(WEB, clients)

    def drop_field(field: str) -> None:
        clients = fake.sim.clients(WEB)
        for client in clients:
            client["conns"] = [{k: v for k, v in c.items() if k != field} for c in client["conns"]]
        fake.sim.set_clients(WEB, clients)

    def restore() -> None:
        clients = fake.sim.clients(WEB)
        for client in clients:
            for c in client["conns"]:
                c["is_pending_reconnect"] = False
        fake.sim.set_clients(WEB, clients)

    class Out(ScriptedOut):
        def flush(self) -> None:
            super().flush()
            if self.kinds().count("schema_drift") == 2:
                stop.set()

    out = Out(
        [
            ("baseline", failover),
            ("colo_moved", lambda: drop_field("is_pending_reconnect")),
            ("schema_drift", restore),
        ]
    )
    assert await run(demo_target(fake), out, stop) == 0
    lines = out.lines()
    assert [line["kind"] for line in lines if line["kind"] not in ("tunnel_health",)] == [
        "baseline",
        "colo_moved",
        "schema_drift",
        "schema_drift",
    ]
    failover_line = next(line for line in lines if line["kind"] == "colo_moved")
    assert failover_line["message"].startswith("web-prod: 2 connections moved DFW→ORD (connector ")
    assert sorted(p["conn_id"] for p in failover_line["parts"] if p["kind"] == "conn_closed") == sorted(moved)
    notices = [line for line in lines if line["kind"] == "schema_drift"]
    assert [n["after"]["state"] for n in notices] == ["missing", "sent"]
    assert notices[0]["after"]["count"] == 8 and notices[0]["severity"] == "warning"
    assert not any("connections [" in line.get("message", "") or "{'" in line.get("message", "") for line in lines)


def test_go_zero_time_never_reaches_an_age(fake: FakeCloudflare) -> None:
    clients = fake.sim.clients(WEB)
    clients[0]["run_at"] = "0001-01-01T00:00:00Z"
    clients[0]["conns"][0]["opened_at"] = "0001-01-01T00:00:00Z"
    fake.sim.set_clients(WEB, clients)
    records = [Connector.model_validate(c) for c in fake.sim.clients(WEB)]
    assert records[0].run_at is None and records[0].conns[0].opened_at is None
    assert isinstance(records[1].run_at, datetime)
