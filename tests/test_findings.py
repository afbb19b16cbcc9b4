"""The rules (model/rules.py): every built-in check, every configured one, and what FindingRules keeps across polls."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.clock import FakeClock
from tunneltop.api import CloudflareClient, RequestGate
from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.simulator import DEMO_TUNNELS, SimulatedAccount
from tunneltop.demo.transport import DEMO_BASE_URL, DemoTransport
from tunneltop.model import Snapshot, Tunnel, TunnelState, parse_connectors
from tunneltop.model.expect import Expectations, TunnelExpect
from tunneltop.model.findings import Finding, Severity, made
from tunneltop.model.health import Health, Status
from tunneltop.model.reach import LocalReady, Reach
from tunneltop.model.rules import FindingRules, _counted, release_month, tunnel_findings, with_findings
from tunneltop.poll.engine import PollEngine
from tunneltop.sanitize import REPLACEMENT

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ACCOUNT = "acc"


def connector(
    kid: str = "k1",
    colos: tuple[str, ...] = ("DFW", "LAX", "DFW", "LAX"),
    pending: int = 0,
    version: str = "2026.10.0",
    config_version: int | None = 7,
    ip: str = "203.0.113.5",
) -> dict:
    return {
        "id": kid,
        "version": version,
        "config_version": config_version,
        "conns": [
            {
                "id": f"{kid}-c{i}",
                "colo_name": colo,
                "origin_ip": ip,
                "is_pending_reconnect": i < pending,
                "client_id": kid,
            }
            for i, colo in enumerate(colos)
        ],
    }


def state(*clients: dict, name: str = "web", status: str = "healthy", **kw) -> TunnelState:
    parsed, problems = parse_connectors(list(clients))
    assert not problems
    return TunnelState(Tunnel(id=f"id-{name}", name=name, status=status), tuple(parsed), **kw)


def checks(findings: tuple[Finding, ...]) -> list[str]:
    return [f.check for f in findings]


def find(s: TunnelState, expect: TunnelExpect | None = None, **kw) -> tuple[Finding, ...]:
    return tunnel_findings(s, expect or TunnelExpect(), kw.pop("now", NOW), **kw)


# -- built in: no configuration ---------------------------------------------------------------------------------


def test_a_healthy_redundant_up_to_date_tunnel_has_no_finding():
    assert find(state(connector("a"), connector("b"))) == ()


def test_all_connections_in_one_colo():
    (f,) = find(state(connector(colos=("AMS",) * 4)))
    assert (f.check, f.severity) == ("min_colos", Severity.WARNING)
    assert f.message == "all 4 connections in one colo (4xAMS)"
    assert "data centre" in f.hint


def test_a_connector_with_fewer_than_4_active_connections():
    s = state(connector("a"), connector("bbbbbbbbbb-long", colos=("DFW", "LAX")))
    (f,) = find(s)
    assert (f.check, f.severity, f.connector_id) == ("min_active_per_connector", Severity.WARNING, "bbbbbbbbbb-long")
    assert f.message == "connector bbbbbbbb has 2 of 4 connections active"


def test_pending_connections_are_not_active():
    (f,) = find(state(connector(pending=1)))
    assert f.message == "connector k1 has 3 of 4 connections active"


def test_connections_whose_state_is_unknown_are_not_counted():
    clients = [connector()]
    for conn in clients[0]["conns"]:
        del conn["is_pending_reconnect"]  # schema drift: the field is gone
    assert find(state(*clients), TunnelExpect(min_connectors=2)) == ()


def test_config_drift_against_the_remote_configuration():
    reach = Reach(NOW, "cloudflare", ("app.example.com",), config_version=9)
    s = state(connector("a", config_version=9), connector("b", config_version=2), reach=reach)
    (f,) = find(s)
    assert (f.check, f.severity, f.connector_id) == ("config_drift", Severity.WARNING, "b")
    assert f.message == "connector b runs configuration version 2, the tunnel's remote configuration is version 9"


@pytest.mark.parametrize(
    "reach",
    [
        None,  # not fetched yet
        Reach(NOW, "local"),  # locally managed: no remote version to compare with
        Reach(NOW, "cloudflare", config_version=None),
    ],
)
def test_no_config_drift_without_a_known_remote_version(reach):
    assert find(state(connector(config_version=2), reach=reach)) == ()


def test_a_release_more_than_a_year_old():
    s = state(connector("a", version="2025.10.1"), connector("b", version="2025.11.0"))
    (f,) = find(s)  # 2025-11 is 12 months before 2026-11: still supported
    assert (f.check, f.severity, f.connector_id) == ("old_release", Severity.WARNING, "a")
    assert f.message == "connector a runs cloudflared 2025.10.1, released 2025-10 (13 months ago)"
    assert "within one year" in f.hint


@pytest.mark.parametrize("version", ["DEV", "", "2025", "2025.13.1", "v2020.1.1", "unknown"])
def test_a_version_that_is_no_date_gives_no_finding(version):
    assert release_month(version) is None
    assert find(state(connector(version=version))) == ()


def test_release_month():
    assert release_month("2025.8.1") == (2025, 8)
    assert release_month("2024.12.2-rc1") == (2024, 12)


def test_without_now_no_age_based_finding():
    assert tunnel_findings(state(connector(version="2020.1.0"))) == ()


def test_inactive_tunnels_are_neutral_whatever_is_expected_unless_required():
    inactive = TunnelState(Tunnel(id="t", name="old", status="inactive"), ())
    assert inactive.health is Health.INACTIVE
    assert find(inactive, TunnelExpect(min_connectors=3, min_colos=3)) == ()
    (f,) = find(inactive, TunnelExpect(required=True))
    assert (f.check, f.severity) == ("required", Severity.CRITICAL)
    assert find(inactive, TunnelExpect(required=True, ignore=frozenset({"required"}))) == ()


def test_unknown_connections_give_no_finding():
    unknown = TunnelState(Tunnel(id="t", name="x", status="healthy"), None, error="timed out")
    assert find(unknown, TunnelExpect(min_connectors=3, required=True)) == ()


def test_local_ready_matching_connector():
    s = state(connector("a"), connector("b"))
    assert find(s, local=LocalReady("127.0.0.1:20241", "b", 4, 200)) == ()
    (f,) = find(s, local=LocalReady("127.0.0.1:20241", "b", 3, 200))
    assert (f.check, f.severity, f.connector_id) == ("local_ready", Severity.WARNING, "b")
    assert f.message == "this host's cloudflared (127.0.0.1:20241) says 3 connections ready, the API lists 4 active"
    (f,) = find(s, local=LocalReady("127.0.0.1:20241", "b", 0, 503))
    assert f.severity is Severity.CRITICAL
    # Another tunnel's connector, or a /ready without an id or a count: nothing to compare.
    assert find(s, local=LocalReady("127.0.0.1:20241", "zzz", 0, 503)) == ()
    assert find(s, local=LocalReady("127.0.0.1:20241", None, 0, 503)) == ()
    assert find(s, local=LocalReady("127.0.0.1:20241", "b", None, 200)) == ()


# -- configured ------------------------------------------------------------------------------------------------


def test_min_connectors_counts_connectors_with_an_active_connection():
    s = state(connector("a"), connector("b", colos=("DFW",) * 4, pending=4))
    expect = TunnelExpect(min_connectors=2, min_active_per_connector=0)
    (f,) = find(s, expect)
    assert (f.check, f.severity) == ("min_connectors", Severity.WARNING)
    assert f.message == "1 of 2 expected connectors running"
    assert find(s, TunnelExpect(min_connectors=1, min_active_per_connector=0)) == ()


def test_min_connectors_on_a_down_tunnel():
    down = state(status="down")
    assert down.health is Health.DOWN
    (f,) = find(down, TunnelExpect(min_connectors=2))
    assert (f.check, f.message) == ("min_connectors", "0 of 2 expected connectors running")
    assert f.hint.startswith("no cloudflared runs it")


def test_min_colos_and_severity():
    s = state(connector(colos=("DFW", "LAX", "DFW", "LAX")))
    expect = TunnelExpect(min_colos=3, severity=Severity.CRITICAL)
    (f,) = find(s, expect)
    assert (f.check, f.severity, f.message) == (
        "min_colos",
        Severity.CRITICAL,
        "connections in 2 of 3 expected colos (2xDFW, 2xLAX)",
    )
    # min_colos = 1: one colo is fine for this tunnel.
    assert find(state(connector(colos=("AMS",) * 4)), TunnelExpect(min_colos=1)) == ()


def test_min_active_per_connector_configured():
    s = state(connector(colos=("DFW", "LAX")))
    assert find(s, TunnelExpect(min_active_per_connector=2)) == ()
    (f,) = find(s, TunnelExpect(min_active_per_connector=3))
    assert f.message == "connector k1 has 2 of 3 connections active"


def test_max_versions():
    s = state(connector("a", version="2026.10.0"), connector("b", version="2026.9.1"))
    assert find(s) == ()  # mixed versions are normal during a rolling upgrade: only when asked
    (f,) = find(s, TunnelExpect(max_versions=1))
    assert (f.check, f.message) == (
        "max_versions",
        "2 cloudflared versions across 2 connectors (2026.10.0, 2026.9.1); at most 1 expected",
    )
    assert find(s, TunnelExpect(max_versions=2)) == ()


def test_origin_ips():
    import ipaddress

    nets = (ipaddress.ip_network("203.0.113.0/24"), ipaddress.ip_network("2001:db8::/32"))
    s = state(connector("a"), connector("b", ip="198.51.100.7"), connector("c", ip="2001:db8::1"))
    (f,) = find(s, TunnelExpect(origin_ips=nets))
    assert (f.check, f.severity, f.connector_id) == ("origin_ips", Severity.CRITICAL, "b")
    assert f.message == "connector b connects from 198.51.100.7, outside the expected 203.0.113.0/24, 2001:db8::/32"
    # An origin IP that is no address is outside.
    (f,) = find(state(connector(ip="not-an-ip\x1b[2J")), TunnelExpect(origin_ips=nets))
    assert "\x1b" not in f.message


def test_colos_allow_list():
    s = state(connector("a", colos=("FRA", "AMS", "FRA", "DFW")))
    (f,) = find(s, TunnelExpect(colos=frozenset({"FRA", "AMS"})))
    assert (f.check, f.severity) == ("colos", Severity.CRITICAL)
    assert f.message == "connector a has connections outside the allowed colos: 1xDFW (allowed: AMS, FRA)"


def test_ignore_leaves_a_check_out():
    s = state(connector(colos=("AMS",) * 2, version="2020.1.0"))
    assert sorted(checks(find(s))) == ["min_active_per_connector", "min_colos", "old_release"]
    expect = TunnelExpect(ignore=frozenset({"old_release", "min_colos"}))
    assert checks(find(s, expect)) == ["min_active_per_connector"]


def test_critical_findings_come_first():
    import ipaddress

    s = state(connector(colos=("AMS",) * 4, ip="198.51.100.7"))
    found = find(s, TunnelExpect(origin_ips=(ipaddress.ip_network("203.0.113.0/24"),)))
    assert [f.severity for f in found] == [Severity.CRITICAL, Severity.WARNING]


def test_untrusted_strings_are_cleaned_in_messages():
    s = state(connector(colos=("\x1b]0;x\x07",) * 4, version="2020.1.0\u202e"))
    for f in find(s):
        assert f.message.isprintable(), f.message


# -- the snapshot, and FindingRules across polls --------------------------------------------------------------


def snap(*states: TunnelState, at: datetime = NOW, local: LocalReady | None = None) -> Snapshot:
    return Snapshot(ACCOUNT, at, states, local=local)


def test_with_findings_fills_every_tunnel_and_keeps_the_others_as_they_are():
    good, lonely = state(connector(), name="good"), state(connector(colos=("AMS",) * 4), name="lonely")
    before = snap(good, lonely)
    after = with_findings(before)
    assert after.tunnels[0] is good
    assert checks(after.tunnels[1].findings) == ["min_colos"]
    assert after.status is Status.WARNING and before.status is Status.OK
    assert (after.figures.warnings, after.figures.critical) == (1, 0)
    # Nothing to find anywhere: the very same snapshot back.
    clean_snap = snap(good)
    assert with_findings(clean_snap) is clean_snap


def test_expectations_by_glob_reach_the_tunnel_they_name():
    expectations = Expectations.parse([({"tunnels": {"prod-*": {"min_connectors": 2}}}, "[expect]")])
    prod, dev = state(connector(), name="prod-web"), state(connector(), name="dev-web")
    after = with_findings(snap(prod, dev), expectations)
    assert checks(after.tunnels[0].findings) == ["min_connectors"]
    assert after.tunnels[1] is dev


def test_rules_keep_the_same_states_and_tuple_when_nothing_changed():
    rules = FindingRules()
    lonely = state(connector(colos=("AMS",) * 4), name="lonely")
    good = state(connector(), name="good")
    first = rules.apply(snap(lonely, good))
    second = rules.apply(snap(lonely, good, at=NOW + timedelta(seconds=5)))
    assert second.tunnels is first.tunnels
    assert second.tunnels[0] is first.tunnels[0] and second.tunnels[1] is good
    # A changed tunnel is worked out again; the other keeps its very state.
    fixed = state(connector(), name="lonely")
    third = rules.apply(snap(fixed, good))
    assert third.tunnels[0] is fixed and third.tunnels[1] is good


def test_a_tunnel_read_again_unchanged_keeps_its_findings_tuple(monkeypatch: pytest.MonkeyPatch):
    # Each fetch gives the state a new fetched_at, and nothing else new: the findings are not worked out again, and
    # are the very same tuple (the change engine compares them by identity first).
    rules = FindingRules()
    lonely = state(connector(colos=("AMS",) * 4), name="lonely")
    first = rules.apply(snap(lonely)).tunnels[0]
    assert checks(first.findings) == ["min_colos"]
    worked: list[str] = []
    monkeypatch.setattr("tunneltop.model.rules.tunnel_findings", lambda s, *a, **k: worked.append(s.tunnel.name))
    again = replace(lonely, fetched_at=NOW + timedelta(seconds=5))
    second = rules.apply(snap(again, at=NOW + timedelta(seconds=5))).tunnels[0]
    assert second.findings is first.findings and second.fetched_at == again.fetched_at and worked == []
    # Anything it depends on new (here its connectors, equal or not): worked out again.
    moved = replace(again, connectors=tuple(list(again.connectors or ())))
    rules.apply(snap(moved, at=NOW + timedelta(seconds=10)))
    assert worked == ["lonely"]


def test_a_fleet_on_an_old_release_keeps_each_connectors_finding_across_polls():
    # One old_release finding per connector: a poll that changes one connector hands the others' back, the very
    # objects (at 100,000 connections they were 25,000 new findings a poll); one upgraded loses its own.
    rules = FindingRules()
    old = [connector(f"k{n}", version="2024.1.0") for n in range(4)]
    first = rules.apply(snap(state(*old))).tunnels[0].findings
    assert checks(first) == ["old_release"] * 4
    upgraded = [*old[:3], connector("k3", version="2026.10.0")]
    second = rules.apply(snap(state(*upgraded), at=NOW + timedelta(seconds=5))).tunnels[0].findings
    assert [f.connector_id for f in second] == ["k0", "k1", "k2"]
    assert all(a is b for a, b in zip(second, first[:3], strict=True))
    assert second == tunnel_findings(state(*upgraded), TunnelExpect(), NOW)  # the same as worked out afresh
    back = rules.apply(snap(state(*old), at=NOW + timedelta(seconds=10))).tunnels[0].findings
    assert back[:3] == second and back[3] is not first[3] and back[3] == first[3]


def test_findings_follow_the_day_and_the_local_ready():
    rules = FindingRules()
    s = state(connector(version="2025.11.0"))
    assert rules.apply(snap(s)).tunnels[0] is s
    later = rules.apply(snap(s, at=datetime(2026, 12, 2, tzinfo=UTC)))
    assert checks(later.tunnels[0].findings) == ["old_release"]
    local = LocalReady("127.0.0.1:20241", "k1", 0, 503)
    assert checks(rules.apply(snap(s, local=local)).tunnels[0].findings) == ["local_ready"]


def test_pending_reconnects_are_timed_across_polls():
    rules = FindingRules()
    stuck = state(connector("a", pending=1), connector("b"))
    at = NOW
    first = rules.apply(snap(stuck, at=at))
    assert "pending_reconnect" not in checks(first.tunnels[0].findings)
    second = rules.apply(snap(stuck, at=at + timedelta(minutes=2)))
    assert "pending_reconnect" not in checks(second.tunnels[0].findings)
    third = rules.apply(snap(stuck, at=at + timedelta(minutes=3, seconds=1)))
    (f,) = [f for f in third.tunnels[0].findings if f.check == "pending_reconnect"]
    assert (f.severity, f.connector_id) == (Severity.WARNING, "a")
    assert f.message == "connector a: 1 connection(s) pending a reconnect for 3 min or more (DFW)"
    # It reconnects: the tracking forgets it, and a new pending one starts from zero.
    rules.apply(snap(state(connector("a"), connector("b")), at=at + timedelta(minutes=4)))
    again = rules.apply(snap(stuck, at=at + timedelta(minutes=5)))
    assert "pending_reconnect" not in checks(again.tunnels[0].findings)


def test_rules_forget_tunnels_that_left():
    rules = FindingRules()
    rules.apply(snap(state(connector(), name="a"), state(connector(), name="b")))
    rules.apply(snap(state(connector(), name="a")))
    assert set(rules._memo) == {"id-a"}


# -- through the one poll engine, on the frozen demo account ---------------------------------------------------------


def demo_client(sim: SimulatedAccount, clock: FakeClock) -> CloudflareClient:
    return CloudflareClient(
        None,
        DEMO_BASE_URL,
        transport=DemoTransport(FakeCloudflare(sim, require_auth=False, clock=clock.wall)),
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(2),
        gate=RequestGate(60, clock=clock),
    )


async def test_the_engine_fills_findings_and_keeps_them_across_polls():
    clock = FakeClock()
    sim = SimulatedAccount(start=clock.wall())
    sim.freeze()
    client = demo_client(sim, clock)
    expectations = Expectations.parse(
        [({"ignore": ["old_release"], "tunnels": {"web-*": {"min_connectors": 3}}}, "[expect]")]
    )
    engine = PollEngine(
        client, sim.account_id, ["web-prod", "api-staging"], interval=60.0, now=clock.wall, expectations=expectations
    )
    first = (await engine.poll()).snapshot
    assert first is not None
    by_name = {s.tunnel.name: s for s in first.tunnels}
    assert checks(by_name["web-prod"].findings) == ["min_connectors"]
    assert by_name["web-prod"].status is Status.WARNING
    assert "pending_reconnect" not in checks(by_name["api-staging"].findings)
    # Polls on a frozen account: the very same tunnels tuple while nothing changes; then the pending connection
    # of api-staging, pending since the first poll, is stuck.
    clock.advance(60)
    second = (await engine.poll()).snapshot
    assert second is not None and second.tunnels is first.tunnels
    clock.advance(150)
    third = (await engine.poll()).snapshot
    assert third is not None
    stuck = {s.tunnel.name: s for s in third.tunnels}["api-staging"]
    assert "pending_reconnect" in checks(stuck.findings)
    # web-prod did not change: its very state object, findings and all.
    assert {s.tunnel.name: s for s in third.tunnels}["web-prod"] is by_name["web-prod"]


async def test_an_engine_that_is_asked_for_no_events_finds_the_same_and_says_no_change():
    # --once reads one poll: the first poll's events (one per finding) are worked out for nobody.
    polls = []
    for events in (True, False):
        clock = FakeClock()
        sim = SimulatedAccount(start=clock.wall())
        sim.freeze()
        engine = PollEngine(demo_client(sim, clock), sim.account_id, ["web-prod", "api-staging"], now=clock.wall,
                            events=events)
        polls.append(await engine.poll())
    told, quiet = polls
    assert told.snapshot is not None and quiet.snapshot is not None
    assert told.events and any(e.kind.name.startswith("FINDING") for e in told.events)
    assert quiet.events == []
    assert [s.findings for s in quiet.snapshot.tunnels] == [s.findings for s in told.snapshot.tunnels]


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [("drift", {"config_drift"}), ("lost-redundancy", {"min_colos", "min_connectors"})],
)
async def test_the_stand_ins_scenarios_are_found_within_one_poll(scenario, expected):
    clock = FakeClock()
    sim = SimulatedAccount(start=clock.wall())
    sim.freeze()
    sim.scenario(scenario)
    expectations = Expectations.parse([({"min_connectors": 2, "ignore": ["old_release"]}, "[expect]")])
    engine = PollEngine(
        demo_client(sim, clock), sim.account_id, ["web-prod"], now=clock.wall, expectations=expectations, reach=True
    )
    snapshot = (await engine.poll()).snapshot
    assert snapshot is not None
    [web] = snapshot.tunnels
    assert web.tunnel.id == DEMO_TUNNELS["web-prod"] and web.health.value == "healthy"
    assert set(checks(web.findings)) == expected
    assert web.status is Status.WARNING


OLD_2024 = "runs cloudflared 2024.1.0, released 2024-01 (34 months ago)"


def test_a_fleet_worked_out_per_version_says_what_each_connector_runs_critical_first():
    fleet = [
        connector("old-a\x1b", version="2024.1.0", config_version=3),
        connector("new-b", version="2026.10.0", config_version=9),
        connector("old-c", version="2024.1.0", config_version=3),
        connector("dev-d", version="DEV", colos=("", "", "", ""), pending=1),
        connector("old-e", version="2025.2.7", config_version=None, colos=(None, "", "DFW", "DFW")),  # type: ignore[arg-type]
    ]
    expect = TunnelExpect(origin_ips=(ipaddress.ip_network("10.0.0.0/8"),), min_colos=4)
    found = tunnel_findings(state(*fleet, reach=Reach(NOW, "cloudflare", (), (), 9)), expect, NOW)
    assert [f.severity for f in found] == sorted((f.severity for f in found), key=lambda s: s is not Severity.CRITICAL)
    assert [(f.check, f.connector_id) for f in found if f.severity is Severity.CRITICAL][:2] == [
        ("origin_ips", "old-a\x1b"),
        ("origin_ips", "new-b"),
    ]
    said = {(f.check, f.connector_id): f.message for f in found}
    assert said["old_release", "old-a\x1b"] == f"connector old-a{REPLACEMENT} {OLD_2024}"
    assert said["old_release", "old-c"] == f"connector old-c {OLD_2024}"
    assert said["old_release", "old-e"] == "connector old-e runs cloudflared 2025.2.7, released 2025-02 (21 months ago)"
    assert ("old_release", "new-b") not in said and ("old_release", "dev-d") not in said
    assert said["config_drift", "old-c"] == (
        "connector old-c runs configuration version 3, the tunnel's remote configuration is version 9"
    )
    assert ("config_drift", "old-e") not in said
    # Colos the API leaves unnamed (missing or empty) count as one, "?": dev-d's pending one is not active.
    assert said["min_colos", None] == "connections in 3 of 4 expected colos (5x?, 8xDFW, 6xLAX)"


@pytest.mark.parametrize("connector_id", ["c0ffee00-1", None])
def test_made_is_the_finding_init_makes(connector_id: str | None) -> None:
    # The fast maker behind old_release (one per connector) gives the same frozen value as the dataclass's __init__.
    args = ("old_release", Severity.WARNING, "connector c0ffee00 runs cloudflared 2024.1.1", "upgrade it")
    fast, slow = made(*args, connector_id), Finding(*args, connector_id)
    assert type(fast) is Finding
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert fast.to_json() == slow.to_json()
    assert replace(fast, message="other") == replace(slow, message="other")
    with pytest.raises(AttributeError):
        fast.message = "changed"  # type: ignore[misc]


def _drifting(flags: tuple[bool | None, ...], kid: str) -> dict:
    """A connector whose connections say these flags; None: the API left ``is_pending_reconnect`` out."""
    record = connector(kid, colos=("DFW",) * len(flags))
    for conn, flag in zip(record["conns"], flags, strict=True):
        if flag is None:
            del conn["is_pending_reconnect"]
        else:
            conn["is_pending_reconnect"] = flag
    return record


@pytest.mark.parametrize(
    "fleet",
    [
        [(False, False), (False,)],
        [(False, True), (False, False)],
        [(False, None), (False, False, False)],
        [(None, None), (True,)],
        [(), (False,)],
    ],
)
def test_counted_connectors_are_those_whose_every_connection_says(fleet: list[tuple[bool | None, ...]]) -> None:
    s = state(*(_drifting(flags, f"k{n}") for n, flags in enumerate(fleet)))
    assert s.connectors is not None
    counted, counts, active = _counted(s.connectors)
    known = [c for c in s.connectors if all(conn.is_pending_reconnect is not None for conn in c.conns)]
    assert [c.id for c in counted] == [c.id for c in known]
    assert counts == [sum(conn.is_pending_reconnect is False for conn in c.conns) for c in known]
    assert [conn.id for conn in active] == [
        conn.id for c in known for conn in c.conns if conn.is_pending_reconnect is False
    ]


@pytest.mark.parametrize(("least", "found"), [(2, False), (3, True)])
def test_unnamed_colos_count_once_whether_missing_empty_or_question_marked(least: int, found: bool) -> None:
    colos = ("?", "", None, "DFW")
    s = state(connector(colos=colos), connector("k2", colos=colos))  # type: ignore[arg-type]
    said = {f.check: f.message for f in find(s, TunnelExpect(min_colos=least))}
    if found:
        assert said["min_colos"] == "connections in 2 of 3 expected colos (6x?, 2xDFW)"
    else:
        assert "min_colos" not in said
