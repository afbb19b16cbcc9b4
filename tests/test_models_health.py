"""Health verdicts, edge summaries, ages and snapshots: the pure helpers over the models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tunneltop.model import Connection, Connector, Health, Snapshot, Tunnel, TunnelState, edge_summary, format_age
from tunneltop.model.findings import Finding, Severity
from tunneltop.model.health import (
    Status,
    active_conns,
    age,
    origin_ips,
    pending_conns,
    rank,
    tunnel_health,
    tunnel_status,
    worst,
    worst_status,
)
from tunneltop.model.parse import RecordProblem
from tunneltop.model.snapshot import FiguresMemo, account_figures

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def c(cid: str, colo: str | None = "DFW", pending: bool | None = False, ip: str | None = "203.0.113.5") -> Connection:
    return Connection(id=cid, colo_name=colo, is_pending_reconnect=pending, origin_ip=ip)


def k(*conns: Connection, kid: str = "k1") -> Connector:
    return Connector(id=kid, conns=list(conns))


def healthy_connector(kid: str = "k1") -> Connector:
    return k(c("1", "DFW"), c("2", "LAX"), c("3", "DFW"), c("4", "LAX"), kid=kid)


def t(status: str | None = "healthy") -> Tunnel:
    return Tunnel(id="t1", name="web", status=status)


# -- health --------------------------------------------------------------------------------------------------------


def test_all_connections_active_is_healthy():
    assert tunnel_health(t("healthy"), [healthy_connector()]) is Health.HEALTHY


@pytest.mark.parametrize("status", ["healthy", "degraded", "down", None])
def test_any_pending_reconnect_is_degraded_whatever_the_status_says(status):
    connector = k(c("1"), c("2"), c("3"), c("4", pending=True))
    assert tunnel_health(t(status), [connector]) is Health.DEGRADED


def test_pending_on_a_second_connector_is_degraded():
    assert tunnel_health(t(), [healthy_connector("a"), k(c("9", pending=True), kid="b")]) is Health.DEGRADED


def test_status_degraded_with_all_active_connections_is_degraded():
    assert tunnel_health(t("degraded"), [healthy_connector()]) is Health.DEGRADED


@pytest.mark.parametrize("status", ["healthy", "down", "degraded", None, "weird"])
def test_no_connectors_is_down(status):
    assert tunnel_health(t(status), []) is Health.DOWN


def test_no_connectors_on_a_never_run_tunnel_is_inactive():
    assert tunnel_health(t("inactive"), []) is Health.INACTIVE


def test_connectors_without_connections_are_down():
    assert tunnel_health(t("healthy"), [k()]) is Health.DOWN


@pytest.mark.parametrize("status", ["healthy", "degraded", "down", "inactive", None, "mystery"])
def test_failed_fetch_is_unknown(status):
    assert tunnel_health(t(status), None) is Health.UNKNOWN


def test_connections_of_unknown_state_trust_a_healthy_status_only():
    unknown = k(c("1", pending=None), c("2", pending=None))
    assert tunnel_health(t("healthy"), [unknown]) is Health.HEALTHY
    assert tunnel_health(t("down"), [unknown]) is Health.UNKNOWN
    assert tunnel_health(t(None), [unknown]) is Health.UNKNOWN


def test_status_case_is_ignored():
    assert tunnel_health(t("Inactive"), []) is Health.INACTIVE


def test_active_and_pending_lists_leave_unknown_out():
    connector = k(c("1"), c("2", pending=True), c("3", pending=None))
    assert [x.id for x in active_conns(connector)] == ["1"]
    assert [x.id for x in pending_conns(connector)] == ["2"]


def test_worst_verdict():
    assert worst([]) is None
    assert worst([Health.HEALTHY, Health.DEGRADED]) is Health.DEGRADED
    # Inactive (never run) is neutral: it ranks below healthy, never above an incident.
    assert worst([Health.DEGRADED, Health.INACTIVE, Health.HEALTHY]) is Health.DEGRADED
    assert worst([Health.INACTIVE, Health.HEALTHY]) is Health.HEALTHY
    assert worst([Health.INACTIVE]) is Health.INACTIVE
    assert worst([Health.INACTIVE, Health.DOWN]) is Health.DOWN
    assert worst([Health.DOWN, Health.UNKNOWN, Health.HEALTHY]) is Health.UNKNOWN


# -- edge summary and origin IPs -----------------------------------------------------------------------------------


def test_edge_summary_like_cloudflared():
    assert edge_summary(healthy_connector().conns) == "2xDFW, 2xLAX"


def test_edge_summary_sorts_colos_and_leaves_pending_out():
    conns = [c("1", "LAX"), c("2", "AMS"), c("3", "LAX"), c("4", "DFW", pending=True), c("5", "FRA", pending=True)]
    assert edge_summary(conns) == "1xAMS, 2xLAX"


def test_edge_summary_of_nothing_and_of_unknown_colos():
    assert edge_summary([]) == ""
    assert edge_summary([c("1", pending=True)]) == ""
    assert edge_summary([c("1", None), c("2", "DFW")]) == "1x?, 1xDFW"
    assert edge_summary([c("1", "DFW", pending=None)]) == "1xDFW"


def test_origin_ips_are_distinct_in_first_seen_order():
    connector = k(c("1", ip="198.51.100.2"), c("2", ip="203.0.113.5"), c("3", ip="198.51.100.2"), c("4", ip=None))
    assert origin_ips(connector) == ["198.51.100.2", "203.0.113.5"]


# -- ages ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (59.9, "59s"),
        (60, "1m00s"),
        (185, "3m05s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (3 * 3600 + 12 * 60 + 30, "3h12m"),
        (86399, "23h59m"),
        (86400, "1d00h"),
        (2 * 86400 + 4 * 3600 + 59, "2d04h"),
        (400 * 86400, "400d00h"),
        (-30, "0s"),
    ],
)
def test_format_age(seconds, text):
    assert format_age(timedelta(seconds=seconds)) == text


def test_format_age_unknown():
    assert format_age(None) == "-"


def test_age():
    assert age(None, NOW) is None
    assert age(NOW - timedelta(minutes=5), NOW) == timedelta(minutes=5)


# -- snapshots -----------------------------------------------------------------------------------------------------


def test_tunnel_state_counts_and_json():
    connector = k(c("1", "DFW"), c("2", "LAX", pending=True), c("3", "LAX", pending=None))
    state = TunnelState(t("healthy"), (connector,), (RecordProblem("connector k1", "field 'x' bad"),))
    assert state.active_count == 1
    assert state.pending_count == 1
    assert state.health is Health.DEGRADED
    out = state.to_json()
    assert out["id"] == "t1" and out["name"] == "web" and out["status"] == "healthy"
    assert out["health"] == "degraded"
    assert out["clients"][0]["id"] == "k1"
    assert [x["id"] for x in out["clients"][0]["conns"]] == ["1", "2", "3"]
    assert out["problems"] == ["connector k1: field 'x' bad"]
    assert out["error"] is None


def test_tunnel_state_without_connectors_is_null_clients():
    state = TunnelState(t("healthy"), None, (), "Cloudflare answered HTTP 502")
    assert state.active_count == state.pending_count == 0
    assert state.to_json()["clients"] is None
    assert state.to_json()["error"] == "Cloudflare answered HTTP 502"
    assert state.health is Health.UNKNOWN


def test_snapshot_health_and_json():
    states = (
        TunnelState(t("healthy"), (healthy_connector(),)),
        TunnelState(Tunnel(id="t2", name="db", status="inactive"), ()),
    )
    snap = Snapshot("acc", NOW, states, (RecordProblem("tunnel #3", "skipped"),), account_name="Acme")
    assert snap.health is Health.HEALTHY  # the inactive one is neutral
    assert snap.pending_count == 0
    out = snap.to_json()
    assert out["account_id"] == "acc"
    assert out["fetched_at"] == "2025-03-01T12:00:00Z"
    assert [x["health"] for x in out["tunnels"]] == ["healthy", "inactive"]
    assert out["problems"] == ["tunnel #3: skipped"]
    assert Snapshot("acc", NOW, ()).health is None


def test_snapshot_figures_are_worked_out_once_per_snapshot():
    pending = k(c("1", "DFW"), c("2", "LAX", pending=True))
    states = (TunnelState(t("degraded"), (pending,)), TunnelState(Tunnel(id="t2", name="db", status="down"), ()))
    snap = Snapshot("acc", NOW, states, (RecordProblem("tunnel #3", "skipped"),))
    assert snap.figures is snap.figures  # kept on the (immutable) snapshot itself
    assert (snap.health, snap.pending_count, snap.problem_count) == (Health.DOWN, 1, 1)
    assert snap.health_counts == {Health.DEGRADED: 1, Health.DOWN: 1}
    snap.health_counts.clear()  # a copy: the figures are not changed through it
    assert snap.health_counts == {Health.DEGRADED: 1, Health.DOWN: 1}
    assert account_figures(states) == snap.figures
    # Equality and the dataclass's fields are those of the data alone.
    assert snap == Snapshot("acc", NOW, states, (RecordProblem("tunnel #3", "skipped"),))


def test_figures_memo_reuses_the_figures_of_the_same_tunnels_tuple_and_holds_only_the_last():
    states = (TunnelState(t("healthy"), (healthy_connector(),)),)
    memo, other = FiguresMemo(), FiguresMemo()
    first = memo.of(Snapshot("acc", NOW, states))
    # An unchanged poll: a new snapshot with the very same tunnels tuple gets the very same figures back.
    assert memo.of(Snapshot("acc", NOW + timedelta(seconds=5), states)) is first
    # The same content in another tuple is worked out again; the memo then holds that tuple only.
    copy = (*states,)
    assert copy is not states
    again = memo.of(Snapshot("acc", NOW, copy))
    assert again is not first and again == first
    assert memo._last is not None and memo._last[0] is copy
    # Two memos share nothing.
    assert other._last is None
    assert other.of(Snapshot("acc", NOW, states)) is not again


# -- rank and status: health and findings together -----------------------------------------------------------------

WARN = Finding("old_release", Severity.WARNING, "old", "upgrade")
CRIT = Finding("origin_ips", Severity.CRITICAL, "stranger", "look")


def test_rank_orders_worst_first_unknown_down_degraded_or_critical_warning_healthy_inactive():
    order = [
        rank(Health.UNKNOWN),
        rank(Health.DOWN),
        rank(Health.DEGRADED),
        rank(Health.HEALTHY, [CRIT]),
        rank(Health.HEALTHY, [WARN]),
        rank(Health.HEALTHY),
        rank(Health.INACTIVE),
    ]
    assert order == sorted(order)
    assert rank(Health.DEGRADED) == rank(Health.HEALTHY, [CRIT]) == rank(Health.INACTIVE, [CRIT])
    assert rank(Health.HEALTHY, [WARN]) < rank(Health.HEALTHY) < rank(Health.INACTIVE)
    # A finding never makes a tunnel rank better than its health: down stays down, unknown unknown.
    assert rank(Health.DOWN, [WARN]) == rank(Health.DOWN)
    assert rank(Health.UNKNOWN, [CRIT]) == rank(Health.UNKNOWN)
    assert rank(Health.DEGRADED, [WARN]) == rank(Health.DEGRADED)


@pytest.mark.parametrize(
    ("health", "findings", "status"),
    [
        (Health.HEALTHY, [], Status.OK),
        (Health.INACTIVE, [], Status.OK),
        (Health.HEALTHY, [WARN], Status.WARNING),
        (Health.DEGRADED, [], Status.WARNING),
        (Health.HEALTHY, [WARN, CRIT], Status.CRITICAL),
        (Health.INACTIVE, [CRIT], Status.CRITICAL),
        (Health.DOWN, [], Status.CRITICAL),
        (Health.DEGRADED, [CRIT], Status.CRITICAL),
        (Health.UNKNOWN, [CRIT], Status.UNKNOWN),
    ],
)
def test_tunnel_status(health, findings, status):
    assert tunnel_status(health, findings) is status


def test_worst_status_and_exit_codes():
    assert [s.exit_code for s in Status] == [0, 1, 2, 3]
    assert worst_status([]) is Status.OK
    assert worst_status([Status.OK, Status.CRITICAL, Status.WARNING]) is Status.CRITICAL
    assert worst_status([Status.CRITICAL, Status.UNKNOWN]) is Status.UNKNOWN


def test_figures_count_tunnels_with_warnings_and_critical_findings_and_give_the_status():
    base = TunnelState(t("healthy"), (healthy_connector(),))
    states = (
        TunnelState(Tunnel(id="a", name="a", status="healthy"), (healthy_connector(),), findings=(WARN, WARN)),
        TunnelState(Tunnel(id="b", name="b", status="healthy"), (healthy_connector(),), findings=(CRIT, WARN)),
        TunnelState(Tunnel(id="c", name="c", status="inactive"), ()),
        base,
    )
    figures = account_figures(states)
    assert (figures.warnings, figures.critical, figures.status) == (1, 1, Status.CRITICAL)
    assert figures.health is Health.HEALTHY
    assert [s.rank for s in sorted(states, key=lambda s: s.rank)] == [2, 3, 4, 5]
    assert account_figures((base,)).status is Status.OK
    assert Snapshot("acc", NOW, ()).status is Status.OK
