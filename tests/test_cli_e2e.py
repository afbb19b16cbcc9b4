"""The real console entry point in a subprocess, against a Cloudflare-like HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.server import LoopbackServer
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID, DEMO_TUNNELS, SimulatedAccount

START = datetime(2026, 8, 20, 12, 0, tzinfo=UTC)
TOKEN = "cfut_E2eSubprocessSecret-Kq7Vx2Pm"


@pytest.fixture(scope="module")
def fake() -> FakeCloudflare:
    return FakeCloudflare(SimulatedAccount(start=START), tokens=[TOKEN], clock=lambda: START)


@pytest.fixture(scope="module")
def server(fake: FakeCloudflare) -> Iterator[LoopbackServer]:
    with LoopbackServer(fake) as running:
        yield running


def tunneltop(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -X importtime -m tunneltop ARGV`` with a clean environment (no inherited CLOUDFLARE_*)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tunneltop", *argv],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def imported_modules(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not line.startswith("import time:")]


def assert_no_textual(stderr: str) -> None:
    modules = imported_modules(stderr)
    assert "tunneltop.cli" in modules  # the check below looks at a real import log
    assert "httpx" in modules
    textual = sorted(m for m in modules if m == "textual" or m.startswith(("textual.", "tunneltop.ui")))
    assert textual == []


def test_once_table_against_the_loopback_server(server, fake):
    before = len(fake.requests)
    result = tunneltop("--once", "web-prod", "home-lab", env={"CLOUDFLARE_BASE_URL": server.base_url} | auth())
    assert result.returncode == 0, result.stderr[-2000:]
    assert messages(result.stderr) == []
    out = result.stdout
    # A monitoring plugin's output: the status line, then the table.
    assert out.startswith("TUNNELTOP OK - 2 tunnels: 2 healthy | tunnels=2 healthy=2 ")
    out = out.split("\n", 1)[1]
    assert out.startswith(f"account {DEMO_ACCOUNT_ID} (Demo Account (simulated))")
    assert "web-prod" in out and "home-lab" in out
    assert out.count("health=healthy") == 2
    assert "2xDFW, 2xLAX" in out
    assert_no_textual(result.stderr)
    assert TOKEN not in out + result.stderr
    assert re.search(r"^fetched \S+  \(API \d+/60 per min\)$", out.splitlines()[1]), out.splitlines()[1]
    sent = fake.requests[before:]
    # The accounts, one page of the tunnel list (names are matched against it: no ?name= look-up, no GET
    # cfd_tunnel/{id}), each named tunnel's connections, then what rides on each: its private routes, and the
    # remote configuration of web-prod (home-lab is locally managed: the API holds no configuration for it).
    tunnels = f"/accounts/{DEMO_ACCOUNT_ID}/cfd_tunnel"
    routes = f"/accounts/{DEMO_ACCOUNT_ID}/teamnet/routes"
    assert sorted(r.path.split("/client/v4", 1)[1] for r in sent) == sorted(
        [
            "/accounts",
            tunnels,
            f"{tunnels}/{DEMO_TUNNELS['web-prod']}/connections",
            f"{tunnels}/{DEMO_TUNNELS['home-lab']}/connections",
            f"{tunnels}/{DEMO_TUNNELS['web-prod']}/configurations",
            routes,
            routes,
        ]
    )
    assert all("name" not in dict(r.query) for r in sent)
    assert {r.method for r in sent} == {"GET"}
    assert {r.auth for r in sent} == {"bearer"}


def test_once_json_against_the_loopback_server(server, fake):
    env = {"CLOUDFLARE_API_BASE_URL": server.base_url, "CLOUDFLARE_ACCOUNT_ID": DEMO_ACCOUNT_ID} | auth()
    result = tunneltop("--once", "--output", "json", env=env)
    assert result.returncode == 2  # the account holds a down tunnel
    doc = json.loads(result.stdout)
    assert doc["status"] == "critical"
    assert doc["account_id"] == DEMO_ACCOUNT_ID
    assert "demo" not in doc
    healths = {t["name"]: t["health"] for t in doc["tunnels"]}
    assert healths == {
        "web-prod": "healthy",
        "api-staging": "degraded",
        "k8s-ingress-eu": "healthy",
        "home-lab": "healthy",
        "batch-etl": "down",
        "office-router-new": "inactive",
    }
    assert_no_textual(result.stderr)
    assert fake.non_get_requests == []


def test_bad_credentials_exit_3_without_leaking(server):
    env = {"CLOUDFLARE_BASE_URL": server.base_url, "CLOUDFLARE_API_TOKEN": TOKEN + "wrong"}
    result = tunneltop("--once", env=env)
    assert result.returncode == 3
    assert result.stdout.startswith("TUNNELTOP UNKNOWN - Cloudflare refused the credentials (HTTP 403)")
    assert result.stdout.count("\n") == 1
    [message] = messages(result.stderr)
    assert message.startswith("tunneltop: Cloudflare refused the credentials (HTTP 403)")
    assert TOKEN not in result.stderr


def test_usage_error_exits_3_with_once_and_64_without():
    result = tunneltop("--once", "--interval", "0")
    assert result.returncode == 3  # a monitoring plugin's usage error is UNKNOWN
    assert "interval must be between" in result.stderr
    assert tunneltop("--interval", "0").returncode == 64


def test_demo_once_table():
    result = tunneltop("--demo", "--once")
    assert result.returncode == 2
    assert result.stdout.startswith("TUNNELTOP CRITICAL - ")
    assert result.stdout.splitlines()[1].startswith(f"DEMO (simulated account) - account {DEMO_ACCOUNT_ID}")
    assert "health=degraded" in result.stdout and "health=inactive" in result.stdout
    assert_no_textual(result.stderr)


def test_demo_once_json():
    result = tunneltop("--demo", "--once", "--output", "json")
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    assert doc["demo"] is True
    assert {t["health"] for t in doc["tunnels"]} == {"healthy", "degraded", "down", "inactive"}
    assert_no_textual(result.stderr)


def auth() -> dict[str, str]:
    return {"CLOUDFLARE_API_TOKEN": TOKEN}


# Reports, as the interpreter starts to end, how many objects the collector was told to leave alone (gc.freeze).
_FROZEN_AT_EXIT = (
    "import atexit, gc, sys\n"
    "atexit.register(lambda: print('frozen', gc.get_freeze_count(), file=sys.stderr))\n"
    "from tunneltop.cli import main\n"
)


def test_once_run_as_the_program_leaves_its_heap_frozen_for_the_teardown_and_a_caller_s_main_does_not() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDFLARE_", "TUNNELTOP_"))}
    runs = {}
    for name, call in (
        ("program", "sys.argv[1:] = ['--demo', '--once', '-o', 'json']; sys.exit(main())"),
        ("caller", "sys.exit(main(['--demo', '--once', '-o', 'json']))"),
    ):
        done = subprocess.run(
            [sys.executable, "-c", _FROZEN_AT_EXIT + call],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode in (0, 1, 2), done.stderr
        assert json.loads(done.stdout)["demo"] is True
        runs[name] = int(done.stderr.split("frozen")[-1].split()[0])
    assert runs["program"] > 0 and runs["caller"] == 0
