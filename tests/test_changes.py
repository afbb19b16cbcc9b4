"""The change engine on hand-built snapshots: one test per kind of change, plus order, JSON and replay."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from tests.support.snapshots import (
    CONN_ID,
    CONNECTOR_ID,
    T0,
    T1,
    changes,
    conn,
    connector,
    kinds,
    one,
    snap,
    state,
    tunnel,
)
from tunneltop.changes.events import (
    EventKind,
    ReplayError,
    Severity,
    apply,
    diff,
    poll_failed,
    poll_recovered,
    replay_form,
)
from tunneltop.model.health import Health
from tunneltop.model.records import Connection, Connector


def four_conns(prefix: str = "c") -> list[Connection]:
    return [conn(f"{prefix}{i}", ("DFW", "LAX")[i % 2]) for i in range(4)]


# -- baseline and no-change -------------------------------------------------------------------------------------


def test_first_poll_is_the_baseline() -> None:
    assert diff(None, one((connector(),))) == []


def test_an_identical_poll_parsed_anew_has_no_events() -> None:
    old = one((connector(conns=four_conns()),))
    again = one(tuple(Connector.model_validate(c.api_dict()) for c in old.tunnels[0].connectors or ()), at=T1)
    assert diff(old, again) == []


# -- connections --------------------------------------------------------------------------------------------------


def test_conn_opened() -> None:
    events = changes(one((connector(conns=[]),)), one((connector(),), at=T1))
    assert kinds(events) == ["conn_opened", "tunnel_health"]
    e = events[0]
    assert (e.at, e.severity, e.tunnel_id, e.connector_id, e.conn_id, e.colo) == (
        T1,
        Severity.INFO,
        "t-web",
        CONNECTOR_ID,
        CONN_ID,
        "DFW",
    )
    assert e.before is None and e.after == conn()
    assert e.describe() == "web-prod: DFW 203.0.113.7 opened (conn 1a2b3c4d, connector 9f8e7d6c)"
    # The line is made once and kept; an event described is still equal to its twin that was not, and says so.
    assert e.describe() is e.describe()
    twin = dataclasses.replace(e)
    assert twin == e and repr(twin) == repr(e) and twin.describe() == e.describe()


def test_conn_closed_is_a_warning_when_it_was_active() -> None:
    events = changes(one((connector(conns=four_conns()),)), one((connector(conns=four_conns()[:3]),)))
    assert kinds(events) == ["conn_closed"]
    assert events[0].severity is Severity.WARNING and events[0].before.id == "c3" and events[0].after is None


def test_conn_closed_after_pending_is_only_information() -> None:
    old = one((connector(conns=[*four_conns()[:3], conn("c3", pending=True)]),))
    events = changes(old, one((connector(conns=four_conns()[:3]),)))
    assert kinds(events) == ["conn_closed", "tunnel_health"]
    assert events[0].severity is Severity.INFO
    assert events[1].before is Health.DEGRADED and events[1].after is Health.HEALTHY


def test_conn_went_pending() -> None:
    events = changes(one((connector(),)), one((connector(conns=[conn(pending=True)]),)))
    assert kinds(events) == ["conn_pending", "tunnel_health"]
    assert events[0].severity is Severity.WARNING
    assert events[0].before.state == "active" and events[0].after.state == "pending"
    assert events[0].describe() == "web-prod: DFW 203.0.113.7 went pending (conn 1a2b3c4d, connector 9f8e7d6c)"
    assert events[1].severity is Severity.WARNING
    assert (events[1].before, events[1].after) == (Health.HEALTHY, Health.DEGRADED)


def test_unknown_to_pending_is_pending_too() -> None:
    events = changes(one((connector(conns=[conn(pending=None)]),)), one((connector(conns=[conn(pending=True)]),)))
    assert kinds(events)[0] == "conn_pending"


def test_conn_recovered() -> None:
    events = changes(one((connector(conns=[conn(pending=True)]),)), one((connector(),)))
    assert kinds(events) == ["conn_recovered", "tunnel_health"]
    assert events[0].severity is Severity.OK and events[1].severity is Severity.OK


def test_other_connection_changes_are_conn_changed() -> None:
    events = changes(one((connector(),)), one((connector(conns=[conn(colo="LAX")]),)))
    assert kinds(events) == ["conn_changed"]
    assert events[0].colo == "LAX"
    assert events[0].to_json()["changed"] == ["colo_name"]
    assert "colo_name DFW -> LAX" in events[0].describe()


def test_active_to_unknown_is_a_change_not_a_recovery() -> None:
    events = changes(one((connector(),)), one((connector(conns=[conn(pending=None)]),)))
    assert kinds(events)[0] == "conn_changed"
    assert "state active -> unknown" in events[0].describe()


def test_an_unknown_field_appearing_on_some_connections_is_a_change() -> None:
    old = one((connector(conns=[conn("c1"), conn("c2")]),))
    events = changes(old, one((connector(conns=[conn("c1", edge_ip="198.51.100.1"), conn("c2")]),)))
    assert kinds(events) == ["conn_changed"]
    assert events[0].to_json()["changed"] == ["edge_ip"]


def test_an_unknown_field_appearing_on_every_connection_is_drift() -> None:
    events = changes(one((connector(),)), one((connector(conns=[conn(edge_ip="198.51.100.1")]),)))
    assert kinds(events) == ["schema_drift"]
    assert [p["changed"] for p in events[0].to_json()["parts"]] == [["edge_ip"]]


# -- connectors ---------------------------------------------------------------------------------------------------


def test_connector_joined_carries_its_connections() -> None:
    other = connector("k2", conns=four_conns("n"))
    events = changes(one((connector(),)), one((connector(), other)))
    assert kinds(events) == ["connector_joined"]
    assert events[0].after == other and events[0].connector_id == "k2"
    assert events[0].describe() == "web-prod: connector k2 joined (2025.1.0, linux_amd64, edges 2xDFW, 2xLAX)"
    assert len(events[0].to_json()["after"]["conns"]) == 4


def test_connector_left_is_one_event_and_a_warning() -> None:
    events = changes(one((connector(), connector("k2", conns=four_conns("n")))), one((connector(),)))
    assert kinds(events) == ["connector_left"]
    assert events[0].severity is Severity.WARNING and events[0].before.id == "k2"
    assert "left (had 4 connections: 2xDFW, 2xLAX)" in events[0].describe()


def test_last_connector_leaving_takes_health_down() -> None:
    events = changes(one((connector(),)), one(()))
    assert kinds(events) == ["connector_left", "tunnel_health"]
    assert events[1].after is Health.DOWN and events[1].severity is Severity.ERROR


def test_connector_restarted_with_new_connections() -> None:
    restarted = connector(run_at=T1, conns=four_conns("r"))
    events = changes(one((connector(conns=four_conns()),)), one((restarted,)))
    assert kinds(events) == ["connector_restarted"] + ["conn_closed"] * 4 + ["conn_opened"] * 4
    assert events[0].severity is Severity.WARNING
    assert (events[0].before, events[0].after) == (T0 - timedelta(days=1), T1)
    assert events[0].to_json()["after"] == "2025-03-01T12:00:05Z"


def test_connector_upgraded_config_and_features() -> None:
    new = connector(version="2025.4.0", config_version=4, features=["ha-origin", "management_logs"])
    events = changes(one((connector(),)), one((new,)))
    assert kinds(events) == ["connector_upgraded", "config_changed", "features_changed"]
    assert (events[0].before, events[0].after) == ("2025.1.0", "2025.4.0")
    assert (events[1].before, events[1].after) == (3, 4)
    assert events[2].after == ("ha-origin", "management_logs")
    assert events[0].describe() == "web-prod: connector 9f8e7d6c version: 2025.1.0 -> 2025.4.0"
    assert events[2].describe() == "web-prod: connector 9f8e7d6c features changed: +management_logs -serialized_headers"


def test_other_connector_fields_are_connector_changed() -> None:
    old = one((connector(hostname="a"),))
    events = changes(old, one((connector(arch="linux_arm64"),)))
    assert kinds(events) == ["connector_changed"]
    document = events[0].to_json()
    assert document["changed"] == ["arch", "hostname"]
    assert "conns" not in document["after"] and document["after"]["arch"] == "linux_arm64"


# -- tunnels ------------------------------------------------------------------------------------------------------


def test_tunnel_added_and_removed() -> None:
    web, api = state(), state(tunnel("t-api", "api"), (connector(),))
    added = changes(snap(web), snap(web, api))
    assert kinds(added) == ["tunnel_added"]
    assert added[0].after is api and added[0].to_json()["after"]["health"] == "healthy"
    removed = changes(snap(web, api), snap(web))
    assert kinds(removed) == ["tunnel_removed"] and removed[0].severity is Severity.WARNING


def test_tunnel_record_change() -> None:
    old = snap(state(tunnel(status="healthy"), (connector(),)))
    new = snap(state(tunnel(status="degraded", name="web-prod-2"), (connector(),)))
    events = changes(old, new)
    assert kinds(events) == ["tunnel_changed", "tunnel_health"]
    assert events[0].to_json()["changed"] == ["name", "status"]
    assert events[0].describe() == "web-prod-2: tunnel changed: name web-prod -> web-prod-2; status healthy -> degraded"
    assert events[1].severity is Severity.WARNING


def test_health_improving_to_a_bad_state_is_not_ok() -> None:
    down = snap(state(tunnel(status="down"), ()))
    degraded = snap(state(tunnel(status="degraded"), (connector(conns=[conn(pending=True), conn("c2")]),)))
    events = changes(down, degraded)
    assert events[-1].kind is EventKind.TUNNEL_HEALTH
    assert (events[-1].after, events[-1].severity) == (Health.DEGRADED, Severity.WARNING)


def test_a_tunnel_going_idle_is_neutral() -> None:
    events = changes(one((connector(),)), snap(state(tunnel(status="inactive"), ())))
    assert events[-1].after is Health.INACTIVE and events[-1].severity is Severity.INFO


def test_health_event_comes_after_the_changes_that_caused_it() -> None:
    events = changes(one((connector(),)), one((connector(conns=[]),)))
    assert kinds(events) == ["conn_closed", "tunnel_health"]


# -- connectors that could not be fetched ----------------------------------------------------------------------------


def test_connectors_unknown_are_not_read_as_gone() -> None:
    events = changes(one((connector(), connector("k2"))), one(None))
    assert kinds(events) == ["tunnel_fetch_failed", "tunnel_health"]
    assert events[0].after == "HTTP 502" and events[0].severity is Severity.WARNING
    assert events[0].describe() == "web-prod: connections could not be fetched: HTTP 502"
    assert (events[1].after, events[1].severity) == (Health.UNKNOWN, Severity.WARNING)


def test_connectors_known_again_is_one_event() -> None:
    back = (connector(), connector("k2"))
    events = changes(one(None), one(back))
    assert kinds(events) == ["tunnel_fetch_recovered", "tunnel_health"]
    assert (events[1].after, events[1].severity) == (Health.HEALTHY, Severity.OK)
    assert events[0].after == back and events[0].severity is Severity.OK
    assert events[0].describe() == "web-prod: connections readable again (2 connectors, 2 connections)"


def test_still_unknown_is_quiet() -> None:
    assert changes(one(None), snap(state(tunnel(), None, "another error"))) == []


def test_connections_kept_while_a_refresh_fails_are_stale_then_fresh() -> None:
    kept = (connector(conns=[conn()]),)
    fresh = one(kept)
    stale = snap(state(tunnel(), kept, "HTTP 502"))
    events = changes(fresh, stale)
    assert kinds(events) == ["tunnel_stale"], "no connection is read as gone, and health does not move"
    assert events[0].severity is Severity.WARNING and events[0].after == "HTTP 502"
    assert "the last ones read stay shown" in events[0].describe()
    assert changes(stale, snap(state(tunnel(), kept, "HTTP 503"))) == [], "still stale is quiet"
    back = changes(stale, one(kept))
    assert kinds(back) == ["tunnel_refreshed"] and back[0].severity is Severity.OK
    # Read again with a change: the change is reported too.
    moved = changes(stale, one((connector(conns=[]),)))
    assert kinds(moved) == ["tunnel_refreshed", "conn_closed", "tunnel_health"]


# -- order, poll events, replay errors ----------------------------------------------------------------------------


def test_order_follows_the_new_snapshot_with_departures_first() -> None:
    a, b, c = (state(tunnel(f"t-{n}", n), (connector(conns=[conn()]),)) for n in "abc")
    b2 = state(tunnel("t-b", "b"), (connector(conns=[conn(pending=True)]),))
    d = state(tunnel("t-d", "d"))
    events = changes(snap(a, b, c), snap(d, b2, a))
    assert [(e.kind.value, e.tunnel_name) for e in events] == [
        ("tunnel_removed", "c"),
        ("tunnel_added", "d"),
        ("conn_pending", "b"),
        ("tunnel_health", "b"),
    ]


def test_poll_events() -> None:
    failed = poll_failed(T0, "could not reach the Cloudflare API: ConnectError\x1b[2J")
    assert failed.kind is EventKind.POLL_FAILED and failed.severity is Severity.ERROR
    assert failed.describe() == "poll failed: could not reach the Cloudflare API: ConnectError\ufffd[2J"
    back = poll_recovered(T1, last_error="boom", failed_polls=3, since=T0)
    assert back.severity is Severity.OK
    assert back.describe() == "polling recovered after 3 failed polls (failing since 2025-03-01T12:00:00Z)"
    document = back.to_json()
    assert document["after"] == {"failed_polls": 3, "since": "2025-03-01T12:00:00Z"}
    assert document["at"] == "2025-03-01T12:00:05Z" and document["tunnel_id"] is None
    base = one((connector(),))
    assert replay_form(apply(base, [failed, back])) == replay_form(base)
    assert apply(base, [failed, back]).fetched_at == T1


def test_json_form() -> None:
    [event] = diff(one((connector(),)), one((connector(conns=[conn(pending=True)]),), at=T1))[:1]
    document = event.to_json()
    assert document["at"] == "2025-03-01T12:00:05Z"
    assert document["kind"] == "conn_pending" and document["severity"] == "warning"
    assert document["before"]["is_pending_reconnect"] is False and document["after"]["is_pending_reconnect"] is True
    assert document["before"]["opened_at"] == "2025-03-01T11:00:00Z"
    assert document["message"] == event.describe()
    assert document["changed"] == ["is_pending_reconnect"]


def test_describe_sanitises_api_text() -> None:
    evil = tunnel(name="web\x1b]0;pwned\x07\u202e")
    events = diff(one((connector(),), evil), one((connector(conns=[conn(colo="D\nFW", pending=True)]),), evil))
    line = events[0].describe()
    assert line.isprintable() and "\x1b" not in line and "\u202e" not in line


def test_replay_onto_the_wrong_snapshot_fails_clearly() -> None:
    events = diff(one((connector(),)), one((connector(conns=[]),)))
    with pytest.raises(ReplayError):
        apply(snap(), events)
    with pytest.raises(ReplayError):
        apply(one((connector("other"),)), events)
