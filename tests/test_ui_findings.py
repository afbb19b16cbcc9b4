"""Findings, blast radius and "this host" in the live view (issue 13), through the app a user runs: the frozen
demo account over the in-process stand-in, its drift and lost-redundancy scenarios, and the simulated cloudflared's
/ready (``tunneltop.demo.local_ready``) as this host's."""

from __future__ import annotations

import re

from tests.support.ui import FIXED_NOW, make_app, plain, wait_for_poll
from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.local_ready import DEMO_ADDRESS, ReadyTransport, simulated
from tunneltop.demo.simulator import DEMO_TUNNELS, OUTDATED_RELEASE, SimulatedAccount, release
from tunneltop.model.expect import Expectations
from tunneltop.model.findings import Severity
from tunneltop.poll.local import LocalReadyProbe
from tunneltop.ui.app import TunneltopApp
from tunneltop.ui.detail import DetailPane
from tunneltop.ui.overview_table import OverviewTable

SIZE = (160, 50)
WEB = DEMO_TUNNELS["web-prod"]
STAGING = DEMO_TUNNELS["api-staging"]
K8S = DEMO_TUNNELS["k8s-ingress-eu"]
HOME = DEMO_TUNNELS["home-lab"]
# k8s-ingress-eu has a connector on IPv6: outside these networks, a critical finding.
ORIGINS = Expectations.parse([({"tunnels": {"k8s-*": {"origin_ips": ["192.0.2.0/24"]}}}, "[expect]")])


def _app(
    *, scenario: str | None = None, this_host: bool = False, **options: object
) -> tuple[TunneltopApp, FakeCloudflare]:
    app, fake = make_app(**options)
    app.target.expectations = ORIGINS  # read when the engine is made, on the first poll
    if scenario is not None:
        fake.sim.scenario(scenario)  # on web-prod
    if this_host:
        # cloudflared on this host is web-prod's first connector, as --demo simulates it
        app.target.local = LocalReadyProbe(DEMO_ADDRESS, transport=ReadyTransport(simulated(fake)))
    return app, fake


def _detail(app: TunneltopApp) -> str:
    """What the detail pane shows, runs of spaces (the grid's columns) made one."""
    return re.sub(r" +", " ", plain(app.main_screen.query_one(DetailPane).shown))


def _reach_read(app: TunneltopApp, tunnel_id: str) -> bool:
    state = app.tunnel_state(tunnel_id)
    return state is not None and state.reach is not None


def _drifted(app: TunneltopApp) -> bool:
    state = app.tunnel_state(WEB)
    return state is not None and any(f.check == "config_drift" for f in state.findings)


def test_demo_versions_are_dated_from_its_start() -> None:
    """The simulated cloudflared versions follow the simulator's start: every connector within the supported year
    but one, which is older on purpose (so the demo shows the old-release check whatever today's date)."""
    sim = SimulatedAccount(start=FIXED_NOW)
    versions = {c["version"] for tid in sim.tunnel_ids() for c in sim.clients(tid)}
    old = release(FIXED_NOW, *OUTDATED_RELEASE)
    assert old == "2025.8.2" and old in versions
    assert all(v in sim.versions for v in versions - {old})
    assert sim.versions[-1] == "2026.10.1" and sim.versions[0] == "2025.12.2"
    later = SimulatedAccount(start=FIXED_NOW.replace(year=2030))
    assert {c["version"] for c in later.clients(STAGING)} == {"2029.8.2", "2029.12.2"}


async def test_overview_column_glyph_and_header_counts() -> None:
    app, _ = _app(start_view=None)  # the account overview
    async with app.run_test(size=SIZE) as pilot:
        await app.polling.wait_until(
            lambda: app.snapshot is not None and all(
                s.connectors is not None for s in app.snapshot.tunnels if s.tunnel.status != "inactive"
            )
        )
        await pilot.pause()
        table = app.main_screen.query_one(OverviewTable)
        assert "findings" in table.columns_shown
        # k8s-ingress-eu: healthy to the API, an origin outside the expected networks: critical, ranked with the
        # degraded, its health glyph degraded's in red.
        k8s = table.get_cell(K8S, "findings")
        assert k8s.plain == "✖ 1 unexpected origin IP" and "red" in str(k8s.style)
        health = table.get_cell(K8S, "health")
        assert health.plain == "◐ healthy" and "red" in str(health.style)
        # api-staging: a connector short of connections and one running a release older than a year.
        staging = table.get_cell(STAGING, "findings")
        assert staging.plain.startswith("⚠ 2 ") and "yellow" in str(staging.style)
        assert table.get_cell(WEB, "findings").plain == "-"
        order = table.order
        assert order.index(K8S) < order.index(WEB) and order.index(STAGING) < order.index(WEB)
        # Sorted by the column: critical first, then warnings.
        table.set_sort("findings", False)
        await pilot.pause()
        assert table.order[:2] == [K8S, STAGING]
        # The header counts the tunnels with findings beside the health counts.
        figures = app.snapshot.figures
        assert (figures.critical, figures.warnings) == (1, 1)
        header = app.header.render().plain
        assert "✖1 critical" in header and "⚠1 warning" in header
        assert header.index("✖1 critical") < header.index("data ")


async def test_tree_label_and_why_in_the_detail() -> None:
    # A live view reads the blast radius with what its polls leave of the budget (here a clock that stands
    # still): one tunnel watched leaves room for it soon.
    app, _ = _app(scenario="drift", refs=["web-prod"])
    async with app.run_test(size=SIZE) as pilot:
        await app.polling.wait_until(lambda: _drifted(app))
        await pilot.pause()
        tree = app.client_tree
        label = str(tree.node_for(WEB).label)
        assert label.startswith("● web-prod") and "⚠1" in label  # the drift: a warning, health unchanged
        tree.focus()
        tree.select_ref(WEB)
        await pilot.pause()
        detail = _detail(app)
        assert "why" in detail and "warning: config drift" in detail
        assert "runs configuration version 12, the tunnel's remote configuration is version 13" in detail
        assert "→ cloudflared on that host has not applied the latest configuration" in detail  # the hint
        # What is at stake: the public hostnames of its ingress (the catch-all left out), the private routes with
        # their virtual network and comment (the deleted one left out), and when that was read.
        for line in ("www.example.com", "api.example.com", "example.com/status", "remote config version 13",
                     "10.10.0.0/16 vnet default prod VPC", "10.11.0.0/24 vnet default prod databases"):
            assert line in detail
        assert "retired subnet" not in detail and "http_status" not in detail
        assert "reach read" in detail and "ago" in detail
        # The connector that lags has the finding in its own detail too; the other does not.
        state = app.tunnel_state(WEB)
        lagging = next(f.connector_id for f in state.findings if f.check == "config_drift")
        others = [c.id for c in state.connectors if c.id != lagging]
        tree.select_ref(f"{WEB}/{lagging}")
        await pilot.pause()
        assert "config drift" in _detail(app)
        tree.select_ref(f"{WEB}/{others[0]}")
        await pilot.pause()
        assert "config drift" not in _detail(app) and "why" not in _detail(app)


async def test_lost_redundancy_says_why() -> None:
    app, _ = _app(scenario="lost-redundancy", refs=["web-prod"])
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        app.client_tree.focus()
        app.client_tree.select_ref(WEB)
        await pilot.pause()
        detail = _detail(app)
        assert "warning: too few colos" in detail and "all 4 connections in one colo (4xDFW)" in detail
        assert "one data centre failing drops them all" in detail  # the hint


async def test_a_locally_managed_tunnel_says_where_its_hostnames_are() -> None:
    # The app's budget clock stands still here: with one tunnel watched, its polls leave room for its reach.
    app, _ = _app(refs=["home-lab"])
    async with app.run_test(size=SIZE) as pilot:
        await app.polling.wait_until(lambda: _reach_read(app, HOME))
        await pilot.pause()
        app.client_tree.focus()
        app.client_tree.select_ref(HOME)
        await pilot.pause()
        detail = _detail(app)
        assert "locally managed: hostnames are in the connector's config file" in detail
        assert "192.168.1.0/24 vnet home home LAN" in detail


async def test_this_host_in_tree_and_detail() -> None:
    app, fake = _app(this_host=True)
    async with app.run_test(size=SIZE) as pilot:
        await app.polling.wait_until(lambda: app.snapshot is not None and app.snapshot.local is not None)
        await pilot.pause()
        here = app.snapshot.local.connector_id
        assert here == fake.sim.clients(WEB)[0]["id"]
        tree = app.client_tree
        assert "this host" in str(tree.node_for(f"{WEB}/{here}").label)
        other = fake.sim.clients(WEB)[1]["id"]
        assert "this host" not in str(tree.node_for(f"{WEB}/{other}").label)
        tree.focus()
        tree.select_ref(f"{WEB}/{here}")
        await pilot.pause()
        detail = _detail(app)
        assert f"Connector {here} (this host)" in detail
        assert "this host cloudflared here (127.0.0.1:20241) says 4 ready; the API lists 4 active" in detail


async def test_this_host_disagreeing_is_a_critical_finding_in_the_detail() -> None:
    app, fake = _app(this_host=True)
    here = fake.sim.clients(WEB)[0]["id"]
    # The local cloudflared lost its connections; the API still lists them.
    app.target.local = LocalReadyProbe(DEMO_ADDRESS, transport=ReadyTransport(lambda: (503, {
        "status": 503, "readyConnections": 0, "connectorId": here})))
    async with app.run_test(size=SIZE) as pilot:
        await app.polling.wait_until(lambda: app.snapshot is not None and app.snapshot.local is not None)
        await pilot.pause()
        state = app.tunnel_state(WEB)
        assert [(f.check, f.severity) for f in state.findings] == [("local_ready", Severity.CRITICAL)]
        assert str(app.client_tree.node_for(WEB).label).startswith("◐") and "✖1" in str(
            app.client_tree.node_for(WEB).label)
        app.client_tree.focus()
        app.client_tree.select_ref(f"{WEB}/{here}")
        await pilot.pause()
        detail = _detail(app)
        assert "says 0 ready; the API lists 4 active" in detail
        assert "critical: local cloudflared disagrees" in detail
