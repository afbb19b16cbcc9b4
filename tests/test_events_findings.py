"""Findings as events (issue 13): raised and cleared in the one event stream, keyed by tunnel, check and
connector, a tunnel's findings raised once when it is first seen."""

from __future__ import annotations

import asyncio
import csv
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.snapshots import CONNECTOR_ID, T0, T1, changes, connector, kinds, one, snap, state, tunnel
from tests.support.stream import ScriptedOut, demo_target, frozen_fake, pending_web, run
from tunneltop.changes.events import EventKind, Severity, diff
from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.export import export_view
from tunneltop.model.findings import Finding
from tunneltop.model.findings import Severity as Grade
from tunneltop.model.snapshot import Snapshot, TunnelState

DRIFT = Finding("config_drift", Grade.CRITICAL, "config version 2, remote 9", "restart cloudflared", CONNECTOR_ID)
FEW = Finding("min_active_per_connector", Grade.WARNING, "3 of 4 connections active", "check port 7844", CONNECTOR_ID)
COLOS = Finding("one_colo", Grade.WARNING, "all 4 connections in DFW", "check the network path")


@pytest.fixture
def fake() -> FakeCloudflare:
    """The demo account, frozen; the tunnel list carries its deprecated copy of each tunnel's connections."""
    return frozen_fake(embed_connections=True)


def found(*findings: Finding, at: object = T0, connectors: tuple[object, ...] | None = None) -> Snapshot:
    base = one((connector(),) if connectors is None else connectors)  # type: ignore[arg-type]
    return replace(base, fetched_at=at, tunnels=(replace(base.tunnels[0], findings=findings),))


def test_the_first_poll_raises_its_findings_once() -> None:
    first = found(DRIFT, FEW)
    events = diff(None, first)
    assert kinds(events) == ["finding_raised", "finding_raised"]
    drift = events[0]
    assert (drift.severity, drift.tunnel_id, drift.connector_id) == (Severity.ERROR, "t-web", CONNECTOR_ID)
    assert drift.describe() == "web-prod: finding config_drift: config version 2, remote 9 (hint: restart cloudflared)"
    assert events[1].severity is Severity.WARNING
    assert drift.to_json()["after"] == {
        "check": "config_drift",
        "severity": "critical",
        "message": "config version 2, remote 9",
        "hint": "restart cloudflared",
        "connector_id": CONNECTOR_ID,
    }
    assert changes(first, found(DRIFT, FEW, at=T1)) == [], "not again on the next poll"
    assert diff(None, one((connector(),))) == [], "a baseline with no findings is still empty"


def test_raised_cleared_and_raised_again_at_another_severity() -> None:
    events = changes(found(FEW), found(FEW, DRIFT))
    assert kinds(events) == ["finding_raised"] and events[0].after is DRIFT
    cleared = changes(found(FEW, DRIFT), found(DRIFT))
    assert kinds(cleared) == ["finding_cleared"] and cleared[0].severity is Severity.INFO
    assert cleared[0].describe() == "web-prod: finding min_active_per_connector cleared: 3 of 4 connections active"
    worse = replace(FEW, severity=Grade.CRITICAL, message="1 of 4 connections active")
    escalated = changes(found(FEW), found(worse))
    assert kinds(escalated) == ["finding_raised"] and escalated[0].before is FEW
    assert escalated[0].describe().startswith("web-prod: finding min_active_per_connector now critical: 1 of 4")
    reworded = replace(FEW, message="2 of 4 connections active")
    assert changes(found(FEW), found(reworded)) == [], "the same finding reworded is not news"


def test_findings_are_keyed_by_connector_too() -> None:
    other = replace(FEW, connector_id="k2")
    events = changes(found(FEW), found(FEW, other))
    assert kinds(events) == ["finding_raised"] and events[0].connector_id == "k2"


def test_a_connector_that_left_takes_its_findings_with_it() -> None:
    gone = replace(DRIFT, connector_id="k2")
    events = changes(found(gone, COLOS, connectors=(connector("k2"), connector())), found(connectors=(connector(),)))
    assert kinds(events) == ["connector_left", "finding_cleared"]
    assert events[1].before is COLOS, "the tunnel's own finding is cleared; k2's left with k2"


def test_a_new_tunnel_raises_its_findings_after_it_is_added() -> None:
    web = state()
    api = TunnelState(tunnel("t-api", "api"), (connector(),), findings=(COLOS,))
    events = changes(snap(web), snap(web, api))
    assert kinds(events) == ["tunnel_added", "finding_raised"] and events[1].tunnel_name == "api"


def test_a_failed_fetch_clears_nothing() -> None:
    blind = replace(found(), tunnels=(TunnelState(tunnel(), None, (), "HTTP 502"),))
    events = changes(found(DRIFT), blind)
    assert EventKind.FINDING_CLEARED not in [e.kind for e in events]


def test_findings_come_before_the_health_they_go_with() -> None:
    old = found(connectors=(connector(),))
    new = found(FEW, connectors=(connector(conns=[]),))
    assert kinds(changes(old, new)) == ["conn_closed", "finding_raised", "tunnel_health"]


def test_findings_reach_the_events_csv(tmp_path: Path) -> None:
    events = diff(None, found(DRIFT))
    [_, _, event_csv] = export_view(tmp_path, T0 + timedelta(seconds=1), [], events)
    with event_csv.open(encoding="utf-8") as handle:
        [row] = list(csv.DictReader(handle))
    assert (row["kind"], row["severity"]) == ("finding_raised", "error")
    assert "config version 2, remote 9" in row["message"] and "restart cloudflared" in row["message"]


async def test_watch_raises_each_finding_once(fake: FakeCloudflare) -> None:
    """Through the real --watch loop over the simulated account (its cloudflared releases are old): the findings
    come once after the baseline, and a poll later only what changed."""
    stop = asyncio.Event()
    out = ScriptedOut([("baseline", pending_web(fake)), ("conn_pending", stop.set)])
    assert await run(demo_target(fake), out, stop) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    raised = [
        (line["tunnel_id"], line["after"]["check"], line["after"]["connector_id"])
        for line in lines
        if line["kind"] == "finding_raised"
    ]
    assert raised and len(raised) == len(set(raised)), "no finding is raised twice"
    first = [line["kind"] for line in lines].index("conn_pending")
    later = [line for line in lines[first:] if line["kind"] == "finding_raised"]
    assert all(line["tunnel_name"] == "web-prod" for line in later)
