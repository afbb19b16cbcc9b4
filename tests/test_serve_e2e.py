"""tunneltop serve end to end with Prometheus' own tools: promtool checks a real scrape and the shipped rules, a
real Prometheus server scrapes serve (with the bearer token) and answers a query, and the real command stops on
SIGTERM/SIGINT with exit status 0.

Prometheus' tools come from the Debian package (``apt-get install prometheus``: promtool and the server), which
``.ci/run`` installs. Missing, these tests FAIL saying so; ``TUNNELTOP_ALLOW_NO_PROMETHEUS=1`` turns that into a
skip for a local run on a machine without them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.serve import BEARER, START, TOKEN, serving
from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.server import LoopbackServer
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID, SimulatedAccount

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def fake() -> FakeCloudflare:
    return FakeCloudflare(SimulatedAccount(start=START), tokens=[TOKEN], clock=lambda: START)


def prometheus_tool(name: str) -> str:
    """The path of ``promtool`` or ``prometheus``; a failure (a skip only when allowed) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        why = f"{name} is not installed: install Prometheus' tools (apt-get install -y prometheus)"
        if os.environ.get("TUNNELTOP_ALLOW_NO_PROMETHEUS") == "1":
            pytest.skip(why)
        pytest.fail(f"{why}, or set TUNNELTOP_ALLOW_NO_PROMETHEUS=1 to skip this test on this machine")
    return path


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [prometheus_tool("promtool"), *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=120
    )


async def test_promtool_checks_a_real_scrape(server: LoopbackServer) -> None:
    async with serving(server, "web-prod", "home-lab") as (serve, http, _):
        while "tunneltop_tunnel_connections" not in (text := (await http.get("/metrics")).text):
            feed = serve.poller.feed
            await feed.wait_after(feed.seq, 3600)  # the next poll
    result = promtool("check", "metrics", stdin=text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""  # no lint complaint either


def test_promtool_checks_and_tests_the_shipped_rules() -> None:
    where = EXAMPLES / "prometheus"
    checked = promtool("check", "rules", "tunneltop.rules.yml", cwd=where)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout
    tested = promtool("test", "rules", "tunneltop.rules.test.yml", cwd=where)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    config = promtool("check", "config", "prometheus.yml", cwd=where)
    assert config.returncode == 0, config.stdout + config.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _dashboard_queries() -> list[str]:
    dashboard = json.loads((EXAMPLES / "grafana" / "tunneltop.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    return [e.replace("$job", ".*").replace("$tunnel", ".*") for e in exprs]


async def _until(http: httpx.AsyncClient, path: str, done: Any, **params: str) -> Any:
    """GET ``path`` until ``done(answer)``: Prometheus starting, then scraping, then evaluating."""
    while True:
        try:
            response = await http.get(path, params=params)
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 200 and done(answer := response.json()):
            return answer
        await asyncio.sleep(0.2)  # not a deadline: the next look at a server that moves on by itself


async def test_a_real_prometheus_scrapes_serve(server: LoopbackServer, tmp_path: Path) -> None:
    binary = prometheus_tool("prometheus")
    async with serving(server, "web-prod", "home-lab", token=BEARER) as (serve, _, _):
        (tmp_path / "token").write_text(BEARER + "\n", encoding="utf-8")
        shutil.copy(EXAMPLES / "prometheus" / "tunneltop.rules.yml", tmp_path)
        (tmp_path / "prometheus.yml").write_text(
            f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [tunneltop.rules.yml]
scrape_configs:
  - job_name: tunneltop
    authorization: {{type: Bearer, credentials_file: {tmp_path / "token"}}}
    static_configs: [{{targets: ["127.0.0.1:{serve.addresses[0][1]}"]}}]
""",
            encoding="utf-8",
        )
        port = _free_port()
        with (tmp_path / "prometheus.log").open("wb") as log:  # the child has its own copy of the file
            process = await asyncio.create_subprocess_exec(
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as prometheus:
                query = 'tunneltop_tunnel_health{tunnel_name="web-prod",tunneltop_tunnel_health="healthy"}'
                answer = await _until(prometheus, "/api/v1/query", lambda a: a["data"]["result"], query=query)
                (series,) = answer["data"]["result"]
                assert series["value"][1] == "1"
                assert series["metric"]["job"] == "tunneltop"
                assert series["metric"]["tunnel_id"]
                up = await _until(prometheus, "/api/v1/query", lambda a: a["data"]["result"], query="up")
                assert up["data"]["result"][0]["value"][1] == "1"  # scraped with the bearer token
                connections = await _until(
                    prometheus,
                    "/api/v1/query",
                    lambda a: a["data"]["result"],
                    query='sum(tunneltop_tunnel_connections{state="active"})',
                )
                assert float(connections["data"]["result"][0]["value"][1]) > 0
                # Every panel of the shipped dashboard is a query Prometheus accepts.
                for expr in _dashboard_queries():
                    checked = (await prometheus.get("/api/v1/query", params={"query": expr})).json()
                    assert checked["status"] == "success", (expr, checked)
                # The shipped rules load and evaluate without error.
                rules = await _until(
                    prometheus,
                    "/api/v1/rules",
                    lambda a: all(r.get("lastEvaluation", "").startswith("2") and r["health"] == "ok"
                                  for g in a["data"]["groups"] for r in g["rules"]) and a["data"]["groups"],
                )
                assert sum(len(g["rules"]) for g in rules["data"]["groups"]) == 7
        finally:
            process.terminate()
            await process.wait()


@pytest.fixture
def loopback(fake: FakeCloudflare) -> Iterator[LoopbackServer]:
    with LoopbackServer(fake) as running:
        yield running


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_command_stops_on_a_signal_with_status_0(loopback: LoopbackServer, sig: signal.Signals) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    env |= {"CLOUDFLARE_BASE_URL": loopback.base_url, "CLOUDFLARE_API_TOKEN": TOKEN,
            "CLOUDFLARE_ACCOUNT_ID": DEMO_ACCOUNT_ID}
    with subprocess.Popen(  # closes its pipes when done
        [sys.executable, "-m", "tunneltop", "serve", "--listen", "127.0.0.1:0", "web-prod"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stderr is not None
            line = process.stderr.readline()
            match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
            assert match, line
            with httpx.Client(base_url=match.group(1), timeout=None) as http:
                while http.get("/healthz").status_code != 200:  # the first poll
                    time.sleep(0.05)
                assert "tunneltop_tunnel_health" in http.get("/metrics").text
            process.send_signal(sig)
            assert process.wait() == 0
            rest = process.stderr.read()
            assert "Traceback" not in rest and TOKEN not in line + rest
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
