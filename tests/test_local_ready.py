"""This host: cloudflared's /ready on its metrics server, read by poll/local.py (not through Cloudflare's gate, but
bounded: one request a poll, a short timeout, loopback by default, no proxy, quiet when nothing answers), and the
connector it names marked ``this_host`` in the JSON. Against the loopback stand-in of cloudflared's server."""

from __future__ import annotations

import contextlib
import io
import json
import threading
from typing import Any

import httpx
import pytest

from tunneltop import cli
from tunneltop.api.auth import Credentials
from tunneltop.cli import run_once
from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.local_ready import DEMO_ADDRESS, LocalReadyServer, ReadyTransport, ready_body, simulated
from tunneltop.demo.server import LoopbackServer
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID, DEMO_TUNNELS, SimulatedAccount
from tunneltop.demo.transport import DemoTransport
from tunneltop.model.reach import LocalReady
from tunneltop.poll.local import (
    DEFAULT_PORTS,
    LocalMetricsError,
    LocalReadyProbe,
    parse_address,
    parse_ready,
    probe_for,
)
from tunneltop.poll.target import Target

WEB = DEMO_TUNNELS["web-prod"]
CONNECTOR = "6513270e-269e-4d37-b2a7-4de452e6b438"


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("127.0.0.1:20241", "127.0.0.1:20241"),
        (" localhost:20245 ", "localhost:20245"),
        ("[::1]:20241", "[::1]:20241"),
        ("10.0.0.5:2000", "10.0.0.5:2000"),
        ("127.0.0.1:020241", "127.0.0.1:20241"),
    ],
)
def test_addresses_as_given(given: str, kept: str) -> None:
    assert parse_address(given) == kept


@pytest.mark.parametrize(
    "bad",
    ["", "20241", ":20241", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000", "::1:20241", "[::1:20241", "host:port"],
)
def test_what_is_not_host_port_is_refused(bad: str) -> None:
    with pytest.raises(LocalMetricsError):
        parse_address(bad)


def test_off_means_no_probe_and_nothing_means_the_default_ports() -> None:
    assert probe_for("off") is None and probe_for(" OFF ") is None
    assert isinstance(probe_for(None), LocalReadyProbe) and probe_for(None).address is None  # type: ignore[union-attr]
    assert probe_for("127.0.0.1:9").address == "127.0.0.1:9"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, {"status": 200, "readyConnections": 4, "connectorId": CONNECTOR}, LocalReady("a:1", CONNECTOR, 4, 200)),
        (503, {"status": 503, "readyConnections": 0, "connectorId": CONNECTOR}, LocalReady("a:1", CONNECTOR, 0, 503)),
        (200, {"status": 200, "readyConnections": 4}, LocalReady("a:1", None, 4, 200)),  # before 2022: no id
        (200, {"readyConnections": True, "connectorId": 5, "status": "ok"}, LocalReady("a:1", None, None, 200)),
        (200, {"readyConnections": -1, "connectorId": ""}, LocalReady("a:1", None, None, 200)),
        (200, {"hello": "world"}, None),  # some other server on that port
        (200, [1, 2], None),
    ],
)
def test_ready_answers(status: int, body: Any, expected: LocalReady | None) -> None:
    assert parse_ready("a:1", status, json.dumps(body).encode()) == expected


def test_not_json_is_not_cloudflared() -> None:
    assert parse_ready("a:1", 200, b"<html>hi</html>") is None
    assert parse_ready("a:1", 404, b"404 page not found\n") is None


async def test_a_given_address_is_read_once_per_call_and_follows_the_answer() -> None:
    answer = ready_body(CONNECTOR, 4)
    with LocalReadyServer(lambda: answer) as server:
        probe = LocalReadyProbe(server.address)
        assert await probe.read() == LocalReady(server.address, CONNECTOR, 4, 200)
        answer = ready_body(CONNECTOR, 0)
        assert await probe.read() == LocalReady(server.address, CONNECTOR, 0, 503)
        assert server.requests == 2
        address = server.address
    assert await probe.read() is None, "cloudflared gone: quiet"
    assert probe.address == address


async def test_a_hanging_server_costs_the_timeout_and_no_more() -> None:
    release = threading.Event()

    def hang() -> tuple[int, dict[str, Any]]:
        release.wait(5)
        return ready_body(CONNECTOR, 4)

    with LocalReadyServer(hang) as server:
        try:
            assert await LocalReadyProbe(server.address, timeout=0.2).read() is None
        finally:
            release.set()


async def test_an_environment_proxy_is_never_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with LocalReadyServer(lambda: ready_body(CONNECTOR, 2)) as server:
        assert (await LocalReadyProbe(server.address).read()) == LocalReady(server.address, CONNECTOR, 2, 200)


class Ports(httpx.AsyncBaseTransport):
    """Loopback as the default ports would find it: cloudflared on ``port`` only, every other port refuses."""

    def __init__(self, port: int | None) -> None:
        self.port = port
        self.asked: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(f"{request.url.host}:{request.url.port}{request.url.path}")
        if request.url.port != self.port:
            raise httpx.ConnectError("connection refused", request=request)
        status, body = ready_body(CONNECTOR, 3)
        return httpx.Response(status, json=body, request=request)


async def test_the_default_ports_are_looked_at_once_in_order_and_the_one_that_answers_is_kept() -> None:
    ports = Ports(20243)
    probe = LocalReadyProbe(transport=ports)
    assert await probe.read() == LocalReady("127.0.0.1:20243", CONNECTOR, 3, 200)
    assert ports.asked == [f"127.0.0.1:{p}/ready" for p in (20241, 20242, 20243)]
    assert await probe.read() is not None and await probe.read() is not None
    assert ports.asked[3:] == ["127.0.0.1:20243/ready"] * 2, "then one request per read, to the one found"


async def test_no_cloudflared_here_costs_one_quiet_look_and_nothing_after() -> None:
    ports = Ports(None)
    probe = LocalReadyProbe(transport=ports)
    assert await probe.read() is None
    assert ports.asked == [f"127.0.0.1:{p}/ready" for p in DEFAULT_PORTS], "loopback only, never another host"
    for _ in range(3):
        assert await probe.read() is None
    assert len(ports.asked) == len(DEFAULT_PORTS)


# -- through the engine and the front ends -------------------------------------------------------------------------


async def test_once_marks_the_connector_running_here_and_reports_its_ready_count() -> None:
    fake = FakeCloudflare(SimulatedAccount(), require_auth=False)
    with LoopbackServer(fake) as api, LocalReadyServer(simulated(fake)) as here:
        target = Target(
            api.base_url,
            Credentials.token("t" * 40),
            DEMO_ACCOUNT_ID,
            ["web-prod", "home-lab"],
            local=LocalReadyProbe(here.address),
        )
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            await run_once(target, "json")
        assert here.requests == 1, "one /ready for the one poll"
        address = here.address
    document = json.loads(out.getvalue())
    connector = fake.sim.clients(WEB)[0]["id"]
    assert document["local"] == {
        "address": address,
        "connector_id": connector,
        "ready_connections": 4,
        "status": 200,
    }
    marked = [(t["name"], c["id"]) for t in document["tunnels"] for c in t["clients"] or () if c.get("this_host")]
    assert marked == [("web-prod", connector)]
    assert all(r.method == "GET" for r in fake.requests)
    assert not any("/ready" in r.path for r in fake.requests), "/ready never goes to Cloudflare"


async def test_each_poll_reads_ready_once_and_the_snapshot_follows_it() -> None:
    from tunneltop.api.client import CloudflareClient
    from tunneltop.demo.transport import DEMO_BASE_URL
    from tunneltop.poll.engine import PollEngine

    fake = FakeCloudflare(SimulatedAccount(), require_auth=False)
    here = ReadyTransport(simulated(fake))
    client = CloudflareClient(None, DEMO_BASE_URL, transport=DemoTransport(fake))
    engine = PollEngine(client, DEMO_ACCOUNT_ID, ["web-prod"], local=LocalReadyProbe(DEMO_ADDRESS, transport=here))
    for polls in (1, 2, 3):
        outcome = await engine.poll()
        assert outcome.snapshot is not None and outcome.snapshot.local is not None
        assert outcome.snapshot.local.connector_id == fake.sim.clients(WEB)[0]["id"]
        assert here.requests == polls
    fake.sim.set_clients(WEB, [])
    outcome = await engine.poll()
    assert outcome.snapshot is not None and outcome.snapshot.local == LocalReady(DEMO_ADDRESS, None, 0, 503)
    await client.aclose()


def test_demo_once_has_a_simulated_cloudflared_on_this_host(capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(["--demo", "--once", "-o", "json"])
    document = json.loads(capsys.readouterr().out)
    assert document["local"]["address"] == DEMO_ADDRESS and document["local"]["ready_connections"] == 4
    marked = [t["name"] for t in document["tunnels"] for c in t["clients"] or () if c.get("this_host")]
    assert marked == ["web-prod"]
    web = next(t for t in document["tunnels"] if t["name"] == "web-prod")
    assert web["reach"]["hostnames"] == ["www.example.com", "api.example.com", "example.com/status"]


def test_demo_once_with_local_metrics_off_has_no_local(capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(["--demo", "--once", "-o", "json", "--local-metrics", "off"])
    document = json.loads(capsys.readouterr().out)
    assert document["local"] is None
    assert not any(c.get("this_host") for t in document["tunnels"] for c in t["clients"] or ())


def test_a_bad_local_metrics_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--demo", "--local-metrics", "somewhere"])
    assert exit_info.value.code == 64
    assert "--local-metrics" in capsys.readouterr().err
