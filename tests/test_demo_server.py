"""The carriers: LoopbackServer over real HTTP on 127.0.0.1, and DemoTransport in-process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tunneltop.demo.cfapi import FakeCloudflare, Fault
from tunneltop.demo.server import LoopbackServer
from tunneltop.demo.simulator import DEMO_TUNNELS, SimulatedAccount
from tunneltop.demo.transport import DEMO_ACCOUNT_ID, DEMO_BASE_URL, DemoTransport, demo_transport

START = datetime(2026, 8, 20, 12, 0, tzinfo=UTC)
TOKEN = "cfut_loopbackTestToken0123456789abcdefghijkl"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TUNNELS = f"/accounts/{DEMO_ACCOUNT_ID}/cfd_tunnel"
WEB = DEMO_TUNNELS["web-prod"]


@pytest.fixture
def fake() -> FakeCloudflare:
    return FakeCloudflare(SimulatedAccount(start=START), tokens=[TOKEN], clock=lambda: START)


# ================================================================ LoopbackServer


def test_serves_real_http_on_loopback(server: LoopbackServer, fake: FakeCloudflare) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/client/v4", server.base_url)
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=None) as client:
        response = client.get(TUNNELS, params={"is_deleted": "false", "per_page": "2", "page": "2"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.headers["ratelimit-policy"] == '"default";q=1200;w=300'
        body = response.json()
        assert [t["name"] for t in body["result"]] == ["k8s-ingress-eu", "home-lab"]
        assert body["result_info"]["total_count"] == 6
        clients = client.get(f"{TUNNELS}/{WEB}/connections").json()["result"]
        assert clients == fake.sim.clients(WEB)
        assert client.get("/accounts", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert [r.auth for r in fake.requests] == ["bearer", "bearer", "bearer"]
    assert fake.requests[0].query == (("is_deleted", "false"), ("per_page", "2"), ("page", "2"))


def test_non_get_over_http_is_405_and_logged(server: LoopbackServer, fake: FakeCloudflare) -> None:
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=None) as client:
        assert client.delete(f"{TUNNELS}/{WEB}/connections").status_code == 405
        assert client.post(TUNNELS, json={"name": "x"}).status_code == 405
        head = client.head(TUNNELS)
        assert head.status_code == 405 and head.content == b""
        assert client.get(TUNNELS).status_code == 200, "the connection survives a request with a body"
    assert [r.method for r in fake.non_get_requests] == ["DELETE", "POST", "HEAD"]


def test_faults_travel_over_http(server: LoopbackServer, fake: FakeCloudflare) -> None:
    fake.inject(Fault.html_page(504))
    fake.inject(Fault.raw('{"success": tr'))
    fake.inject(Fault.rate_limited(300))
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=None) as client:
        html = client.get("/accounts")
        assert html.status_code == 504 and html.headers["content-type"] == "text/html"
        assert b"504 Gateway Time-out" in html.content
        assert client.get("/accounts").content == b'{"success": tr'
        limited = client.get("/accounts")
        assert limited.status_code == 429 and limited.headers["retry-after"] == "300"


def test_a_hang_times_the_client_out_and_stop_stays_fast(fake: FakeCloudflare) -> None:
    server = LoopbackServer(fake).start()
    fake.inject(Fault.hang(30))
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(server.base_url + "/accounts", headers=AUTH, timeout=0.2)
    began = time.monotonic()
    server.stop()
    assert time.monotonic() - began < 15, "stop waited for the hang (30 s)"


def test_a_short_delay_is_honoured(server: LoopbackServer, fake: FakeCloudflare) -> None:
    fake.inject(Fault.hang(0.15))
    began = time.monotonic()
    response = httpx.get(server.base_url + "/accounts", headers=AUTH, timeout=None)
    assert response.status_code == 200 and time.monotonic() - began >= 0.15


def test_port_is_released_after_stop(fake: FakeCloudflare) -> None:
    server = LoopbackServer(fake).start()
    url = server.base_url
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/accounts", timeout=0.5)
    with pytest.raises(RuntimeError):
        _ = server.base_url


async def test_async_client_against_the_server(server: LoopbackServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=None) as client:
        response = await client.get("/user/tokens/verify")
        assert response.json()["result"]["status"] == "active"


# ================================================================ python -m tunneltop.demo.server


# Ctrl-C as in a terminal: a shell without job control starts a background command with SIGINT ignored, and the
# child inherits that (then SIGINT never stopped the server and the test hung; a run of the suite put in the
# background did). The server is started with Python's own SIGINT handler whatever it inherited.
_WITH_CTRL_C = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'tunneltop.demo.server'; runpy.run_module('tunneltop.demo.server', run_name='__main__')"
)


def run_module(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", _WITH_CTRL_C, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert process.stdout is not None
    lines: list[str] = []
    while line := process.stdout.readline():  # until it says it is serving (or exits)
        lines.append(line)
        if "Ctrl-C" in line:
            break
    return process, lines


def stop_module(process: subprocess.Popen[str], how: signal.Signals = signal.SIGINT) -> str:
    process.send_signal(how)
    out, err = process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    return out


def test_module_with_a_token_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    env = {k: v for k, v in os.environ.items() if k != "CLOUDFLARE_API_TOKEN"}
    process, lines = run_module(["--port", "0", "--seed", "3", "--token-file", str(token_file)], env)
    try:
        text = "".join(lines)
        match = re.search(r"CLOUDFLARE_BASE_URL=(http://127\.0\.0\.1:\d+/client/v4)", text)
        assert match, text
        assert TOKEN not in text
        assert f'CLOUDFLARE_API_TOKEN="$(cat {token_file})"' in text
        base = match[1]
        assert httpx.get(base + "/accounts", headers=AUTH, timeout=None).status_code == 200
        assert httpx.get(base + "/accounts", timeout=None).status_code == 400
    finally:
        out = stop_module(process)
    assert "stopped" in out and TOKEN not in out


def test_module_with_the_token_from_the_environment() -> None:
    env = {**os.environ, "CLOUDFLARE_API_TOKEN": TOKEN}
    process, lines = run_module([], env)
    try:
        text = "".join(lines)
        assert "CLOUDFLARE_BASE_URL=http://127.0.0.1:" in text and TOKEN not in text
        base = re.search(r"(http://127\.0\.0\.1:\d+/client/v4)", text)
        assert base
        assert httpx.get(base[1] + "/accounts", headers=AUTH, timeout=None).status_code == 200
    finally:
        out = stop_module(process, signal.SIGTERM)
    assert "stopped" in out


# ================================================================ DemoTransport


async def test_demo_transport_serves_the_demo_account_without_credentials() -> None:
    transport = demo_transport(seed=7)
    assert DEMO_BASE_URL == "https://demo.tunneltop.invalid/client/v4"
    async with httpx.AsyncClient(transport=transport, base_url=DEMO_BASE_URL) as client:
        accounts = (await client.get("/accounts")).json()["result"]
        assert [a["id"] for a in accounts] == [DEMO_ACCOUNT_ID]
        listed = await client.get(TUNNELS, params={"is_deleted": "false"})
        assert listed.status_code == 200 and listed.headers["ratelimit"].startswith('"default";r=')
        tunnels = listed.json()["result"]
        assert {t["status"] for t in tunnels} == {"healthy", "degraded", "down", "inactive"}
        for tunnel in tunnels:
            clients = (await client.get(f"{TUNNELS}/{tunnel['id']}/connections")).json()["result"]
            for connector in clients:
                single = await client.get(f"{TUNNELS}/{tunnel['id']}/connectors/{connector['id']}")
                assert single.json()["result"]["id"] == connector["id"]
    assert transport.cloudflare.non_get_requests == []
    assert transport.sim is transport.cloudflare.sim


async def test_demo_transport_is_seeded() -> None:
    async def clients(seed: int) -> object:
        async with httpx.AsyncClient(transport=demo_transport(seed), base_url=DEMO_BASE_URL) as client:
            return (await client.get(f"{TUNNELS}/{WEB}/connections")).json()["result"][0]["id"]

    assert await clients(1) == await clients(1) != await clients(2)


async def test_demo_transport_enforces_auth_when_asked(fake: FakeCloudflare) -> None:
    async with httpx.AsyncClient(transport=DemoTransport(fake), base_url=DEMO_BASE_URL) as client:
        assert (await client.get("/accounts", headers=AUTH)).status_code == 200
        missing = await client.get("/accounts")
        assert missing.status_code == 400 and missing.json()["errors"][0]["code"] == 9106
        assert (await client.delete(f"{TUNNELS}/{WEB}")).status_code == 405
    assert [r.method for r in fake.non_get_requests] == ["DELETE"]


async def test_demo_transport_hang_becomes_a_read_timeout(fake: FakeCloudflare) -> None:
    fake.inject(Fault.hang(60))
    transport = DemoTransport(fake)
    async with httpx.AsyncClient(transport=transport, base_url=DEMO_BASE_URL, timeout=0.1) as client:
        began = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/accounts", headers=AUTH)
        assert time.monotonic() - began < 30, "it waited for the hang (60 s), not the read timeout"
        fake.inject(Fault.hang(0.05))
        assert (await client.get("/accounts", headers=AUTH)).status_code == 200


async def test_demo_transport_passes_faults_through(fake: FakeCloudflare) -> None:
    fake.inject(Fault.html_page(502))
    async with httpx.AsyncClient(transport=DemoTransport(fake), base_url=DEMO_BASE_URL) as client:
        response = await client.get("/accounts", headers=AUTH)
    assert response.status_code == 502 and response.headers["content-type"] == "text/html"


def test_module_with_a_scenario_a_local_cloudflared_and_a_request_log(tmp_path: Path) -> None:
    """By hand (tmux): the stand-in with config drift on web-prod, and cloudflared's /ready on loopback for its
    first connector, every request logged for python -m tunneltop.demo.rates."""
    log = tmp_path / "requests.log"
    env = {k: v for k, v in os.environ.items() if k != "CLOUDFLARE_API_TOKEN"}
    process, lines = run_module(
        ["--scenario", "drift", "--local-ready", "0", "--request-log", str(log)], env
    )
    try:
        text = "".join(lines)
        base = re.search(r"(http://127\.0\.0\.1:\d+/client/v4)", text)
        ready = re.search(r"(http://127\.0\.0\.1:\d+/ready)", text)
        assert base and ready, text
        account = f"{base[1]}/accounts/{DEMO_ACCOUNT_ID}"
        web = f"{account}/cfd_tunnel/{DEMO_TUNNELS['web-prod']}"
        version = httpx.get(f"{web}/configurations", timeout=None).json()["result"]["version"]
        clients = httpx.get(f"{web}/connections", timeout=None).json()["result"]
        assert sorted(c["config_version"] for c in clients) == [version - 1, version], "one connector behind"
        here = httpx.get(ready[1], timeout=None)
        assert here.status_code == 200 and here.json()["connectorId"] == clients[0]["id"]
        routes = httpx.get(f"{account}/teamnet/routes", params={"tunnel_id": DEMO_TUNNELS["web-prod"]}, timeout=None)
        assert routes.json()["result_info"]["count"] >= 2
    finally:
        stop_module(process)
    logged = log.read_text().splitlines()
    assert any(line.endswith("/configurations") for line in logged)
    assert any(line.endswith("/teamnet/routes") for line in logged)
    assert not any("/ready" in line for line in logged), "cloudflared's server is not Cloudflare's API"
