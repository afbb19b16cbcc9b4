"""The simulated account: determinism, the demo scenario's shape, evolution, status rules, scale."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tunneltop.demo.simulator import (
    DEMO_ACCOUNT_ID,
    DEMO_TUNNELS,
    MAX_CATCHUP_TICKS,
    SimulatedAccount,
    derive_status,
)

START = datetime(2026, 8, 20, 12, 0, tzinfo=UTC)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def snapshot(sim: SimulatedAccount) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    return [(t, sim.clients(t["id"])) for t in sim.list_tunnels()]


def by_name(sim: SimulatedAccount) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in sim.list_tunnels()}


def parse(stamp: str) -> datetime:
    assert STAMP.fullmatch(stamp), stamp
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def conn(colo: str = "DFW", pending: Any = False) -> dict[str, Any]:
    c: dict[str, Any] = {"id": "c", "colo_name": colo}
    if pending is not None:
        c["is_pending_reconnect"] = pending
    return c


def client(*conns: dict[str, Any]) -> dict[str, Any]:
    return {"id": "x", "conns": list(conns)}


# ---------------------------------------------------------------- determinism


def test_same_seed_and_times_give_identical_data() -> None:
    a, b = SimulatedAccount(seed=11, start=START), SimulatedAccount(seed=11, start=START)
    assert snapshot(a) == snapshot(b)
    for seconds in (3, 9, 40, 41, 200, 900, 5000):
        a.advance(START + timedelta(seconds=seconds))
        b.advance(START + timedelta(seconds=seconds))
        assert snapshot(a) == snapshot(b)


def test_different_seeds_differ_but_tunnel_ids_are_fixed() -> None:
    a, b = SimulatedAccount(seed=1, start=START), SimulatedAccount(seed=2, start=START)
    assert snapshot(a) != snapshot(b)
    fixed = list(DEMO_TUNNELS.values())
    assert a.tunnel_ids(include_deleted=True) == b.tunnel_ids(include_deleted=True) == fixed


def test_scale_scenario_is_deterministic() -> None:
    a = SimulatedAccount(seed=3, start=START, tunnels=50)
    b = SimulatedAccount(seed=3, start=START, tunnels=50)
    for moment in (START + timedelta(seconds=30), START + timedelta(minutes=10)):
        a.advance(moment)
        b.advance(moment)
    assert snapshot(a) == snapshot(b)


# ---------------------------------------------------------------- the demo scenario


def test_demo_scenario_shows_every_status() -> None:
    sim = SimulatedAccount(start=START)
    tunnels = by_name(sim)
    assert set(tunnels) == set(DEMO_TUNNELS)
    assert {n: t["status"] for n, t in tunnels.items()} == {
        "web-prod": "healthy", "api-staging": "degraded", "k8s-ingress-eu": "healthy", "home-lab": "healthy",
        "batch-etl": "down", "office-router-new": "inactive", "old-blog": "down",
    }
    accounts = sim.accounts()
    assert [a["id"] for a in accounts] == [DEMO_ACCOUNT_ID]
    assert accounts[0]["name"] == "Demo Account (simulated)"
    assert re.fullmatch(r"[0-9a-f]{32}", DEMO_ACCOUNT_ID)
    assert sim.tunnel_ids() == [t for n, t in DEMO_TUNNELS.items() if n != "old-blog"]


def test_demo_tunnels_are_coherent_and_api_shaped() -> None:
    sim = SimulatedAccount(start=START)
    for tunnel in sim.list_tunnels():
        assert UUID.fullmatch(tunnel["id"])
        assert tunnel["account_tag"] == DEMO_ACCOUNT_ID
        assert tunnel["tun_type"] == "cfd_tunnel" and tunnel["connections"] == []
        parse(tunnel["created_at"])
        if tunnel["status"] == "inactive":
            assert tunnel["conns_active_at"] is None and tunnel["conns_inactive_at"] is None
        elif tunnel["status"] == "down":
            assert parse(tunnel["conns_inactive_at"]) > parse(tunnel["conns_active_at"])
        else:
            assert tunnel["conns_active_at"] is not None and tunnel["conns_inactive_at"] is None
        for c in sim.clients(tunnel["id"]):
            assert UUID.fullmatch(c["id"])
            assert c["arch"] in {"linux_amd64", "linux_arm64", "darwin_arm64", "windows_amd64"}
            assert re.fullmatch(r"20\d\d\.\d+\.\d+", c["version"])
            assert isinstance(c["config_version"], int) and "ha-origin" in c["features"]
            parse(c["run_at"])
            for k in c["conns"]:
                assert k["id"] == k["uuid"] and UUID.fullmatch(k["id"])
                assert k["client_id"] == c["id"] and k["client_version"] == c["version"]
                assert re.fullmatch(r"[A-Z]{3}", k["colo_name"])
                assert isinstance(k["is_pending_reconnect"], bool)
                assert parse(k["opened_at"]) >= parse(c["run_at"])


def test_demo_healthy_degraded_big_down_inactive_deleted() -> None:
    sim = SimulatedAccount(start=START)
    t = by_name(sim)
    web = sim.clients(t["web-prod"]["id"])
    assert len(web) == 2
    for c in web:
        colos = Counter(k["colo_name"] for k in c["conns"])
        assert sum(colos.values()) == 4 and len(colos) >= 2
    staging = sim.clients(t["api-staging"]["id"])
    assert any(k["is_pending_reconnect"] for c in staging for k in c["conns"])
    assert 3 <= len(sim.clients(t["k8s-ingress-eu"]["id"])) <= 4
    ips = {k["origin_ip"] for c in sim.clients(t["k8s-ingress-eu"]["id"]) for k in c["conns"]}
    assert any(":" in ip for ip in ips), "one connector reaches the edge over IPv6"
    assert sim.clients(t["batch-etl"]["id"]) == [] and sim.clients(t["office-router-new"]["id"]) == []
    assert t["old-blog"]["deleted_at"] is not None
    assert all(x["deleted_at"] is None for n, x in t.items() if n != "old-blog")
    config = sim.configuration(t["web-prod"]["id"])
    assert config["source"] == "cloudflare"
    assert config["config"]["ingress"][-1] == {"service": "http_status:404"}
    assert config["version"] == web[0]["config_version"]
    assert sim.configuration(t["home-lab"]["id"])["source"] == "local"


# ---------------------------------------------------------------- evolution


@pytest.mark.parametrize("seed", [1, 7, 42])
def test_something_changes_within_thirty_seconds(seed: int) -> None:
    sim = SimulatedAccount(seed=seed, start=START)
    before = snapshot(sim)
    sim.advance(START + timedelta(seconds=30))
    assert snapshot(sim) != before


def test_evolution_over_minutes_shows_drops_pending_joins_and_leaves() -> None:
    sim = SimulatedAccount(start=START)
    staging, k8s = DEMO_TUNNELS["api-staging"], DEMO_TUNNELS["k8s-ingress-eu"]
    pending_seen: set[str] = set()
    connector_sets: list[frozenset[str]] = []
    statuses: dict[str, set[str]] = {}
    for second in range(0, 600, 4):
        sim.advance(START + timedelta(seconds=second))
        conns = [k for c in sim.clients(staging) for k in c["conns"]]
        pending_seen |= {k["id"] for k in conns if k["is_pending_reconnect"]}
        connector_sets.append(frozenset(c["id"] for c in sim.clients(k8s)))
        for t in sim.list_tunnels():
            statuses.setdefault(t["name"], set()).add(t["status"])
    assert len(pending_seen) >= 3, "connections keep dropping and going pending"
    assert len(set(connector_sets)) >= 3, "the autoscaled connector leaves and comes back as a new one"
    assert {len(s) for s in connector_sets} == {3, 4}
    # The demo must keep showing every state.
    assert statuses["api-staging"] == {"degraded"}
    assert statuses["batch-etl"] == {"down"} and statuses["office-router-new"] == {"inactive"}
    assert statuses["k8s-ingress-eu"] == {"healthy"}


def test_pending_connections_expire_after_minutes() -> None:
    sim = SimulatedAccount(start=START)
    staging = DEMO_TUNNELS["api-staging"]
    first = {k["id"] for c in sim.clients(staging) for k in c["conns"] if k["is_pending_reconnect"]}
    assert first
    sim.advance(START + timedelta(seconds=12))
    still = {k["id"] for c in sim.clients(staging) for k in c["conns"]}
    assert first <= still, "a pending connection lingers, it does not vanish at once"
    for second in range(16, 400, 4):
        sim.advance(START + timedelta(seconds=second))
    assert not first & {k["id"] for c in sim.clients(staging) for k in c["conns"]}


def test_timestamps_never_run_ahead_of_the_clock() -> None:
    sim = SimulatedAccount(start=START)
    end = START + timedelta(minutes=20)
    for second in range(0, 1200, 4):
        sim.advance(START + timedelta(seconds=second))
    sim.advance(end)
    for t in sim.list_tunnels():
        for c in sim.clients(t["id"]):
            assert parse(c["run_at"]) <= end
            assert all(parse(k["opened_at"]) <= end + timedelta(seconds=2) for k in c["conns"])


def test_catch_up_is_capped() -> None:
    sim = SimulatedAccount(start=START, tunnels=200)
    sim.advance(START + timedelta(hours=10))
    assert sim.tick_count == MAX_CATCHUP_TICKS  # the cap itself, which is what keeps a catch-up cheap
    sim.advance(START + timedelta(hours=10, seconds=8))
    assert sim.tick_count == MAX_CATCHUP_TICKS + 2


def test_time_going_backwards_is_ignored() -> None:
    sim = SimulatedAccount(start=START)
    sim.advance(START + timedelta(minutes=1))
    before = snapshot(sim)
    sim.advance(START)
    assert snapshot(sim) == before


def test_freeze_stops_events_and_does_not_replay_them_later() -> None:
    sim = SimulatedAccount(start=START)
    sim.freeze()
    before = snapshot(sim)
    sim.advance(START + timedelta(minutes=30))
    assert snapshot(sim) == before and sim.tick_count == 0
    sim.unfreeze()
    sim.advance(START + timedelta(minutes=30, seconds=4))
    assert sim.tick_count == 1


def test_conns_active_and_inactive_at_follow_a_tunnel_going_down_and_up() -> None:
    sim = SimulatedAccount(start=START)
    web = DEMO_TUNNELS["web-prod"]
    sim.freeze()
    saved = sim.clients(web)
    # No simulated event takes a demo tunnel down and back, so drive the bookkeeping directly.
    sim._clients[web] = []
    sim._refresh(web, START + timedelta(seconds=5))
    tunnel = sim.get_tunnel(web)
    assert tunnel["status"] == "down" and tunnel["conns_inactive_at"] is not None
    sim._clients[web] = saved
    sim._refresh(web, START + timedelta(seconds=9))
    tunnel = sim.get_tunnel(web)
    assert tunnel["status"] == "healthy" and tunnel["conns_inactive_at"] is None
    assert parse(tunnel["conns_active_at"]) == START + timedelta(seconds=9)


# ---------------------------------------------------------------- status rules


@pytest.mark.parametrize(
    ("clients", "ever", "expected"),
    [
        ([], False, "inactive"),
        ([], True, "down"),
        ([client(conn(pending=True))], True, "down"),
        ([client(*[conn()] * 4)], True, "healthy"),
        ([client(*[conn()] * 4), client(*[conn()] * 4)], True, "healthy"),
        ([client(*[conn()] * 3)], True, "degraded"),
        ([client(*[conn()] * 4, conn(pending=True))], True, "degraded"),
        ([client(*[conn()] * 4), client()], True, "degraded"),
        # A missing is_pending_reconnect is unknown, never counted as active.
        ([client(*[conn()] * 3, conn(pending=None))], True, "degraded"),
    ],
)
def test_derive_status(clients: list[dict[str, Any]], ever: bool, expected: str) -> None:
    assert derive_status(clients, ever) == expected


def test_status_always_matches_the_data_as_it_evolves() -> None:
    sim = SimulatedAccount(start=START, tunnels=40)
    for second in range(0, 400, 4):
        sim.advance(START + timedelta(seconds=second))
    for t in sim.list_tunnels():
        assert t["status"] == derive_status(sim.clients(t["id"]), t["conns_active_at"] is not None)


# ---------------------------------------------------------------- test hooks


def test_add_tunnel_generates_matching_connectors() -> None:
    sim = SimulatedAccount(start=START)
    for status, count in (("healthy", 1), ("degraded", 1), ("down", 0), ("inactive", 0)):
        tunnel = sim.add_tunnel(f"extra-{status}", status=status)
        assert tunnel["status"] == status and tunnel["id"] in sim.tunnel_ids()
        assert len(sim.clients(tunnel["id"])) == count
        assert derive_status(sim.clients(tunnel["id"]), tunnel["conns_active_at"] is not None) == status


def test_add_tunnel_and_set_clients_keep_records_verbatim() -> None:
    sim = SimulatedAccount(start=START)
    hostile: list[Any] = [{"id": "not-a-uuid", "conns": [{"colo_name": None, "surprise": {"x": 1}}]}, "junk"]
    tunnel = sim.add_tunnel("odd", status="healthy", clients=hostile, tunnel_id="t-1")
    assert tunnel["id"] == "t-1" and sim.clients("t-1") == hostile
    sim.advance(START + timedelta(minutes=5))
    assert sim.clients("t-1") == hostile and sim.get_tunnel("t-1")["status"] == "healthy"

    web = DEMO_TUNNELS["web-prod"]
    drifted = [{"id": "c1", "conns": [{"id": "k1", "colo_name": "DFW"}]}]  # is_pending_reconnect dropped
    sim.set_clients(web, drifted, status="degraded")
    sim.advance(START + timedelta(minutes=10))
    assert sim.clients(web) == drifted and sim.get_tunnel(web)["status"] == "degraded"
    assert sim.get_client(web, "c1") == drifted[0]
    with pytest.raises(KeyError):
        sim.get_client(web, "nope")


def test_delete_tunnel() -> None:
    sim = SimulatedAccount(start=START)
    web = DEMO_TUNNELS["web-prod"]
    sim.advance(START + timedelta(seconds=20))
    sim.delete_tunnel(web)
    tunnel = sim.get_tunnel(web)
    assert parse(tunnel["deleted_at"]) == START + timedelta(seconds=20)
    assert tunnel["status"] == "down" and sim.clients(web) == []
    assert web not in sim.tunnel_ids() and web in sim.tunnel_ids(include_deleted=True)
    sim.advance(START + timedelta(minutes=10))
    assert sim.clients(web) == []


def test_accessors_return_copies() -> None:
    sim = SimulatedAccount(start=START)
    web = DEMO_TUNNELS["web-prod"]
    sim.clients(web)[0]["conns"].clear()
    sim.get_tunnel(web)["name"] = "changed"
    assert len(sim.clients(web)[0]["conns"]) == 4 and sim.get_tunnel(web)["name"] == "web-prod"
    with pytest.raises(KeyError):
        sim.clients("no-such-tunnel")


def test_embedded_connections_option() -> None:
    sim = SimulatedAccount(start=START, embed_connections=True)
    web = DEMO_TUNNELS["web-prod"]
    assert len(sim.get_tunnel(web)["connections"]) == 8


# ---------------------------------------------------------------- scale


def test_scale_scenario_sizes() -> None:
    # How fast it is built is benchmarks' business (python -m benchmarks.bench), never a timed assertion here.
    sim = SimulatedAccount(start=START, tunnels=2500, connectors_per_tunnel=1)
    assert len(sim.tunnel_ids()) == 2500
    assert 9000 <= sim.connection_count() <= 10000
    statuses = Counter(t["status"] for t in sim.iter_tunnels())
    assert set(statuses) == {"healthy", "degraded", "down", "inactive"}
    assert statuses["healthy"] > 2000
    names = [t["name"] for t in sim.iter_tunnels()]
    assert len(set(names)) == len(names)


def test_scale_connector_count() -> None:
    sim = SimulatedAccount(start=START, tunnels=100, connectors_per_tunnel=5)
    live = sum(1 for t in sim.iter_tunnels() if t["status"] in ("healthy", "degraded"))
    assert sim.connector_count() == live * 5
