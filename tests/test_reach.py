"""Blast radius: a tunnel's public hostnames and private routes, read through the client and its gate, parsed
tolerant of drift, scheduled by the engine (first sight, a config version change, every few minutes; never once
per poll; after connections, within the budget), and kept when a read fails. All on a hand-moved clock, against
the in-process stand-in."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tunneltop.api.client import CloudflareClient
from tunneltop.api.gate import RequestGate
from tunneltop.demo.cfapi import FakeCloudflare, Fault
from tunneltop.demo.simulator import DEMO_TUNNELS, SimulatedAccount
from tunneltop.demo.transport import DEMO_BASE_URL, DemoTransport
from tunneltop.model.reach import Route
from tunneltop.model.records import Tunnel
from tunneltop.model.remote import (
    RouteRecord,
    locally_managed,
    parse_configuration,
    parse_routes,
    parse_virtual_networks,
    unnamed_networks,
)
from tunneltop.poll.engine import PollEngine
from tunneltop.poll.reach import REACH_PERIOD, REACH_RETRY

START = datetime(2026, 11, 28, 12, tzinfo=UTC)
WEB, STAGING, HOME = DEMO_TUNNELS["web-prod"], DEMO_TUNNELS["api-staging"], DEMO_TUNNELS["home-lab"]
K8S, BATCH = DEMO_TUNNELS["k8s-ingress-eu"], DEMO_TUNNELS["batch-etl"]


# -- parsing ------------------------------------------------------------------------------------------------------


def test_hostnames_leave_out_catch_all_rules_and_keep_paths() -> None:
    config, problems = parse_configuration(
        {
            "version": 9,
            "source": "cloudflare",
            "config": {
                "ingress": [
                    {"hostname": "www.example.com", "service": "http://localhost:8080"},
                    {"hostname": "example.com", "path": "/api", "service": "http://localhost:9000"},
                    {"hostname": "example.com", "path": "^/static/.*", "service": "http://localhost:9001"},
                    {"hostname": "www.example.com", "service": "http://localhost:8081"},  # a repeat: once
                    {"hostname": "", "service": "http_status:503"},
                    {"service": "http_status:404"},
                ]
            },
        }
    )
    assert config.hostnames == ("www.example.com", "example.com/api", "example.com/^/static/.*")
    assert (config.version, config.source, problems) == (9, "cloudflare", [])


@pytest.mark.parametrize(
    ("raw", "hostnames", "version", "problem"),
    [
        ({"version": "9", "config": {"ingress": [{"hostname": "a.example"}]}}, ("a.example",), None, "version"),
        ({"version": True, "config": None}, (), None, "version"),
        ({"version": 3, "config": {"ingress": "a.example"}}, (), 3, "ingress"),
        ({"version": 3, "config": []}, (), 3, "config"),
        (
            {"version": 3, "config": {"ingress": [42, {"hostname": 7}, {"hostname": "b.example"}]}},
            ("b.example",),
            3,
            "ingress rule #1",
        ),
        ([], (), None, "expected an object"),
        (None, (), None, "expected an object"),
    ],
)
def test_a_drifting_configuration_spoils_only_what_drifted(
    raw: Any, hostnames: tuple[str, ...], version: int | None, problem: str
) -> None:
    config, problems = parse_configuration(raw)
    assert (config.hostnames, config.version) == (hostnames, version)
    assert any(problem in str(p) for p in problems), problems


def test_routes_skip_deleted_foreign_and_odd_ones_and_name_their_network() -> None:
    raw = [
        {
            "network": "10.0.0.0/8",
            "tunnel_id": WEB,
            "virtual_network_id": "v1",
            "virtual_network_name": "prod",
            "comment": "core",
        },
        {"network": "10.1.0.0/16", "tunnel_id": WEB, "virtual_network_id": "v2", "comment": ""},
        {"network": "10.2.0.0/16", "tunnel_id": WEB, "deleted_at": "2026-01-01T00:00:00Z"},
        {"network": "10.3.0.0/16", "tunnel_id": HOME},
        {"tunnel_id": WEB},
        "10.4.0.0/16",
    ]
    routes, problems = parse_routes(raw, WEB)
    assert [r.network for r in routes] == ["10.0.0.0/8", "10.1.0.0/16"]
    assert [p.where for p in problems] == ["route #5", "route #6"]
    assert unnamed_networks(routes, {}) == {"v2"}
    assert unnamed_networks(routes, {"v2": "lab"}) == set()
    assert [r.route({"v2": "lab"}) for r in routes] == [
        Route("10.0.0.0/8", "prod", "core"),
        Route("10.1.0.0/16", "lab"),
    ]
    assert RouteRecord("10.1.0.0/16", "v2", None, None).route({}) == Route("10.1.0.0/16", "v2")
    assert parse_routes({"oops": 1}) == ([], parse_routes({"oops": 1})[1])
    names = parse_virtual_networks([{"id": "v1", "name": "prod"}, {"id": "v2"}, 5, {"name": "x"}])
    assert names == {"v1": "prod"}


@pytest.mark.parametrize(
    ("config_src", "remote_config", "local"),
    [
        ("local", None, True),
        ("cloudflare", False, False),
        (None, False, True),
        (None, True, False),
        (None, None, None),
        ("LOCAL", True, True),
        ("weird", True, False),
    ],
)
def test_locally_managed_prefers_config_src_to_the_deprecated_remote_config(
    config_src: str | None, remote_config: bool | None, local: bool | None
) -> None:
    tunnel = Tunnel(id="t", config_src=config_src, remote_config=remote_config)
    assert locally_managed(tunnel) is local


# -- the rig: the stand-in, its clock moved by hand ------------------------------------------------------------------


class Rig:
    def __init__(
        self,
        *,
        budget: int = 60,
        freeze: bool = True,
        refs: tuple[str, ...] = (),
        interval: float = 5.0,
        local: Any = None,
        min_burst: float = 1.0,
    ) -> None:
        self.now = 1000.0
        self.sim = SimulatedAccount(start=START)
        if freeze:
            self.sim.freeze()
        self.cf = FakeCloudflare(self.sim, require_auth=False, clock=self.wall)
        self.gate = RequestGate(budget, clock=self.clock)
        self.client = CloudflareClient(
            None,
            DEMO_BASE_URL,
            transport=DemoTransport(self.cf),
            gate=self.gate,
            clock=self.clock,
            sleep=self.sleep,
            rng=random.Random(1),
        )
        self.engine = PollEngine(
            self.client,
            self.sim.account_id,
            refs,
            interval=interval,
            now=self.wall,
            reach=True,
            local=local,
            min_burst=min_burst,
        )

    def clock(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return START + timedelta(seconds=self.now - 1000.0)

    async def sleep(self, seconds: float) -> None:
        self.now += seconds

    def reads(self, tunnel_id: str | None = None, part: str = "/configurations") -> list[str]:
        return [
            r.path
            for r in self.cf.requests
            if r.path.endswith(part) and (tunnel_id is None or f"/{tunnel_id}/" in r.path)
        ]

    def route_reads(self, tunnel_id: str) -> int:
        return sum(
            1 for r in self.cf.requests if r.path.endswith("/teamnet/routes") and ("tunnel_id", tunnel_id) in r.query
        )

    async def run(self, seconds: float, step: float = 5.0) -> None:
        """Poll every ``step`` seconds for ``seconds``."""
        end = self.now + seconds
        while self.now < end:
            outcome = await self.engine.poll()
            assert outcome.error is None, outcome.error
            self.now += step


def reach_of(rig: Rig, tunnel_id: str) -> Any:
    snapshot = rig.engine.previous
    assert snapshot is not None
    return next(t.reach for t in snapshot.tunnels if t.tunnel.id == tunnel_id)


async def test_first_sight_reads_every_running_tunnel_once_and_attaches_it() -> None:
    rig = Rig(budget=60, min_burst=60)  # as --once: a minute's budget for its one poll
    outcome = await rig.engine.poll()
    assert outcome.snapshot is not None
    web = reach_of(rig, WEB)
    assert web.managed == "cloudflare" and web.config_version == 12 and web.error is None
    assert web.hostnames == ("www.example.com", "api.example.com", "example.com/status")
    assert web.routes == (
        Route("10.10.0.0/16", "default", "prod VPC"),
        Route("10.11.0.0/24", "default", "prod databases"),
    )
    home = reach_of(rig, HOME)
    assert (home.managed, home.hostnames, home.config_version) == ("local", (), None)
    assert home.routes == (Route("192.168.1.0/24", "home", "home LAN"),)
    assert rig.reads(HOME) == [], "a locally managed tunnel's configuration is not asked for"
    office = next(t for t in outcome.snapshot.tunnels if t.tunnel.name == "office-router-new")
    assert office.reach is None, "a tunnel that never ran is not read"
    # The JSON carries it.
    web_json = next(t for t in outcome.snapshot.to_json()["tunnels"] if t["id"] == WEB)
    assert web_json["reach"]["hostnames"] == list(web.hostnames)
    for tid in (WEB, STAGING, K8S, BATCH):
        assert len(rig.reads(tid)) == 1 and rig.route_reads(tid) == 1
    assert {r.method for r in rig.cf.requests} == {"GET"}


async def test_never_once_per_poll_and_again_after_the_period() -> None:
    rig = Rig(budget=120)
    await rig.run(REACH_PERIOD - 10)
    polls = (REACH_PERIOD - 10) / 5
    assert len(rig.reads(WEB)) == 1 and rig.route_reads(WEB) == 1, "read on first sight only"
    assert len(rig.cf.requests) > polls, "the polls went on meanwhile"
    await rig.run(20)
    assert len(rig.reads(WEB)) == 2 and rig.route_reads(WEB) == 2, "read again after the period"
    state = reach_of(rig, WEB)
    assert state is not None and state.error is None


async def test_a_connector_config_version_change_reads_it_at_once() -> None:
    rig = Rig(budget=120)
    await rig.run(30)
    assert len(rig.reads(WEB)) == 1
    rig.sim.scenario("drift")  # a configuration pushed (version 13); one connector still runs 12
    await rig.run(10)
    assert len(rig.reads(WEB)) == 2, "the connectors' versions changed: read again"
    assert reach_of(rig, WEB).config_version == 13
    await rig.run(60)
    assert len(rig.reads(WEB)) == 2, "drift that stays is no news: not read poll after poll"
    versions = sorted(
        c.config_version for t in rig.engine.previous.tunnels if t.tunnel.id == WEB for c in t.connectors or ()
    )
    assert versions == [12, 13]


async def test_versions_are_read_again_only_from_connectors_that_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    import tunneltop.poll.reach as reach_module

    read: list[int] = []  # id() of each connectors tuple whose versions were read
    real = reach_module.config_versions

    def counting(connectors: Any) -> Any:
        read.append(id(connectors))
        return real(connectors)

    monkeypatch.setattr(reach_module, "config_versions", counting)
    rig = Rig(budget=120)
    await rig.run(120)  # two dozen polls of an account that does not change
    running = [t for t in rig.engine.previous.tunnels if t.connectors]
    # Asked about on every poll (four tunnels, about 24 polls), read only when a tunnel's connectors were new.
    assert running and len(read) <= len(rig.cf.requests) / 10


async def test_reach_waits_while_connections_take_the_budget_then_trickles() -> None:
    # 5 running tunnels every 5 s are 60 connection fetches a minute, and the list besides, at 60 a minute: the
    # connections alone want more than the budget. Reach gets nothing on the first poll (the list and connections
    # take the whole start-up burst), then one read every 10 s at most, the tunnel in view first.
    rig = Rig(budget=60, interval=5.0, min_burst=6)
    rig.engine.set_in_view([K8S])
    outcome = await rig.engine.poll()
    assert outcome.snapshot is not None
    assert rig.reads() == [] and all(t.reach is None for t in outcome.snapshot.tunnels)
    await rig.run(120)
    later = [r for r in rig.cf.requests if r.time >= START + timedelta(seconds=60)]
    assert len(later) <= 60 + 1
    configs = rig.reads()
    assert configs and configs[0].endswith(f"/{K8S}/configurations"), "the tunnel in view first"
    times = sorted({r.time for r in rig.cf.requests if r.path.endswith("/configurations")})
    assert all((b - a).total_seconds() >= 9.9 for a, b in itertools.pairwise(times)), times
    assert len(rig.reads()) >= 3, "but it does come"
    connection_reads = [r for r in rig.cf.requests if r.path.endswith("/connections")]
    assert len(connection_reads) > 3 * len(configs), "connections still get the most"


async def test_a_refusal_or_a_404_keeps_the_last_good_reach_and_says_why() -> None:
    rig = Rig(budget=120, min_burst=60)
    await rig.run(5)
    good = reach_of(rig, WEB)
    rig.cf.inject(Fault.error(403, 10000, "Authentication error"), path_contains=f"{WEB}/configurations")
    rig.cf.inject(Fault.error(404, 7003, "Could not route"), path_contains="/teamnet/routes", times=10)
    rig.now += REACH_PERIOD
    outcome = await rig.engine.poll()
    rig.cf.clear_faults()
    assert outcome.error is None and outcome.snapshot is not None, "a failed reach read never fails the poll"
    failed = reach_of(rig, WEB)
    assert failed.hostnames == good.hostnames and failed.routes == good.routes
    assert failed.error is not None and "configuration: refused" in failed.error and "routes: not found" in failed.error
    assert "Tunnel Read" in failed.error
    reads = len(rig.reads(WEB))
    await rig.run(REACH_PERIOD - 20)
    assert len(rig.reads(WEB)) == reads, "a refusal waits the whole period"
    await rig.run(30)
    assert reach_of(rig, WEB).error is None and len(rig.reads(WEB)) == reads + 1


async def test_a_passing_failure_with_no_reach_yet_is_retried_sooner() -> None:
    rig = Rig(budget=120, refs=("web-prod",))
    rig.cf.inject(Fault.error(503), path_contains="/configurations", times=10)
    rig.cf.inject(Fault.html_page(502), path_contains="/teamnet/routes", times=10)
    await rig.run(5)
    first = reach_of(rig, WEB)
    assert first is not None and first.managed == "unknown" and first.hostnames == () and first.error
    assert "configuration:" in first.error and "private routes:" in first.error
    rig.cf.clear_faults()
    await rig.run(REACH_RETRY + 5)
    assert reach_of(rig, WEB).hostnames and reach_of(rig, WEB).error is None


async def test_routes_without_a_network_name_are_named_from_the_virtual_networks() -> None:
    rig = Rig(budget=120, refs=("home-lab", "web-prod"))
    rig.cf.route_names = False
    await rig.run(5)
    assert reach_of(rig, HOME).routes == (Route("192.168.1.0/24", "home", "home LAN"),)
    assert reach_of(rig, WEB).routes[0].virtual_network == "default"
    vnet_reads = [r for r in rig.cf.requests if r.path.endswith("/teamnet/virtual_networks")]
    assert len(vnet_reads) == 1, "the account's virtual networks once, for both tunnels"


async def test_routes_come_in_every_page(monkeypatch: pytest.MonkeyPatch) -> None:
    import tunneltop.api.client as client_module

    monkeypatch.setattr(client_module, "TEAMNET_PAGE_SIZE", 7)
    rig = Rig()
    for i in range(20):
        rig.sim.add_route(WEB, f"10.200.{i}.0/24")
    routes, problems = await rig.client.list_routes(rig.sim.account_id, WEB)
    assert len(routes) == 22 and problems == []
    pages = [dict(r.query) for r in rig.cf.requests if r.path.endswith("/teamnet/routes")]
    assert [p["page"] for p in pages] == ["1", "2", "3", "4"]
    assert all(p["tunnel_id"] == WEB and p["is_deleted"] == "false" for p in pages)
    assert rig.gate.sent == 4, "each page took a token from the gate"


async def test_a_bare_engine_reads_no_reach() -> None:
    rig = Rig()
    bare = PollEngine(rig.client, rig.sim.account_id, now=rig.wall)
    outcome = await bare.poll()
    assert outcome.snapshot is not None and all(t.reach is None for t in outcome.snapshot.tunnels)
    assert rig.reads() == [] and rig.route_reads(WEB) == 0


async def test_once_on_named_tunnels_reads_each_ones_reach_in_its_one_poll() -> None:
    # --once asks for a minute's budget; named tunnels otherwise burst one cycle (list + connections) at most.
    rig = Rig(budget=60, refs=("web-prod", "home-lab", "api-staging"), min_burst=60)
    outcome = await rig.engine.poll()
    assert outcome.snapshot is not None
    assert all(t.reach is not None and t.reach.error is None for t in outcome.snapshot.tunnels)
    rig.now += 5
    await rig.engine.poll()
    assert rig.engine.planner.min_burst == 4, "then one cycle again: the list and three tunnels' connections"


async def test_a_live_named_view_bursts_one_cycle_and_reads_reach_with_what_cycles_leave() -> None:
    rig = Rig(budget=60, refs=("web-prod", "home-lab"), min_burst=16)
    await rig.run(10)
    assert reach_of(rig, WEB) is not None and reach_of(rig, HOME) is not None
    assert rig.engine.planner.min_burst == 3
