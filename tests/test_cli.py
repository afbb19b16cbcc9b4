"""``tunneltop --once`` in-process against a Cloudflare-like server on 127.0.0.1: exit statuses, output, secrets."""

from __future__ import annotations

import json
import os
import runpy
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from tunneltop import __version__
from tunneltop.cli import main
from tunneltop.demo.cfapi import FakeCloudflare, Fault
from tunneltop.demo.server import LoopbackServer
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID, DEMO_TUNNELS, SimulatedAccount
from tunneltop.demo.transport import DemoTransport
from tunneltop.poll.target import Target

START = datetime(2026, 8, 20, 12, 0, tzinfo=UTC)
TOKEN = "cfut_CliSecretToken-7Hq2ZpX9wLm4"
EMAIL = "ops@example.com"
KEY = "0123456789abcdef0123456789abcdef01234"  # 37 hex digits, the global key's shape
HOSTILE = "pwn\x1b[2J\x1b]0;title\x07\u202eevil\u2066x"


@pytest.fixture
def fake() -> FakeCloudflare:
    return FakeCloudflare(SimulatedAccount(start=START), tokens=[TOKEN], key_pairs=[(EMAIL, KEY)], clock=lambda: START)


class Wire:
    """Where the CLI's client sends its requests when a test gives it an in-process transport."""

    transport: httpx.AsyncBaseTransport | None = None


@pytest.fixture(autouse=True)
def wire(monkeypatch: pytest.MonkeyPatch, clock) -> Wire:
    """Every client the CLI builds runs on the fake clock: back-off and rate-limit waits are recorded, not slept."""
    wire = Wire()
    original = Target.client

    def client(self: Target, **options: object):
        if wire.transport is not None and self.transport is None:
            self.transport = wire.transport
        return original(self, sleep=clock.sleep, clock=clock, **options)

    monkeypatch.setattr(Target, "client", client)
    return wire


@pytest.fixture
def sleeps(clock) -> list[float]:
    return clock.sleeps


@pytest.fixture
def api(fake: FakeCloudflare, wire: Wire, monkeypatch: pytest.MonkeyPatch) -> FakeCloudflare:
    """The fake Cloudflare in-process (no socket): fast enough to run the CLI dozens of times."""
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", "http://127.0.0.1:9/client/v4")
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    wire.transport = DemoTransport(fake)
    return fake


@pytest.fixture
def server(fake: FakeCloudflare, monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    """The same fake over real HTTP on 127.0.0.1."""
    with LoopbackServer(fake) as running:
        monkeypatch.setenv("CLOUDFLARE_BASE_URL", running.base_url)
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
        yield running


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def usage_exit(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    return info.value.code, capsys.readouterr().err


# -- exit statuses ---------------------------------------------------------------------------------------------


def test_0_when_every_tunnel_is_healthy(server, fake, capsys):
    code, out, err = run(capsys, "--once", "web-prod", "home-lab")
    assert code == 0, err
    assert err == ""
    assert "web-prod" in out and "home-lab" in out
    assert out.count("health=healthy") == 2
    assert "2xDFW, 2xLAX" in out


def test_1_when_any_connection_is_pending(api, fake, capsys):
    code, out, _ = run(capsys, "--once", "web-prod", "api-staging")
    assert code == 1
    assert "health=degraded" in out
    assert "pending=1" in out


def test_1_when_a_pending_reconnect_hides_behind_a_healthy_status(api, fake, capsys):
    clients = fake.sim.clients(DEMO_TUNNELS["web-prod"])
    clients[0]["conns"][0]["is_pending_reconnect"] = True
    fake.sim.set_clients(DEMO_TUNNELS["web-prod"], clients, status="healthy")
    code, out, _ = run(capsys, "--once", "web-prod")
    assert code == 1
    assert "status=healthy  health=degraded" in out


@pytest.mark.parametrize("names", [["batch-etl"], ["web-prod", "batch-etl", "api-staging"]])
def test_2_when_any_tunnel_is_down(api, names, capsys):
    code, out, _ = run(capsys, "--once", *names)
    assert code == 2
    assert "no connectors" in out
    assert out.startswith("TUNNELTOP CRITICAL - ")


def test_an_inactive_tunnel_is_0_unless_required(api, capsys, config_file):
    code, out, _ = run(capsys, "--once", "office-router-new")
    assert code == 0
    assert out.startswith("TUNNELTOP OK - 1 tunnels: 1 inactive | tunnels=1 healthy=0 degraded=0 down=0 inactive=1 ")
    config_file.write_text('[expect.tunnels."office-*"]\nrequired = true\n', encoding="utf-8")
    code, out, _ = run(capsys, "--once", "office-router-new")
    assert code == 2
    assert out.startswith("TUNNELTOP CRITICAL - 1 of 1 tunnels need attention: office-router-new required but inactive")
    assert "  CRITICAL required: inactive (never run), but required to run" in out


def test_findings_through_once(api, fake, capsys, config_file):
    # The stand-in dates its cloudflared versions from its start, all within a year but api-staging's steady
    # connector (15 months old on purpose): with old_release not ignored, that one is a warning.
    config_file.write_text('[expect.tunnels."web-*"]\nmin_connectors = 3\n', encoding="utf-8")
    code, out, _ = run(capsys, "--once", "web-prod", "api-staging")
    assert code == 1
    first = out.splitlines()[0]
    assert first.split(" | ")[0] == (
        "TUNNELTOP WARNING - 2 of 2 tunnels need attention: "
        "api-staging degraded, too few connections, old cloudflared; web-prod too few connectors"
    )
    assert "  WARNING min_connectors: 2 of 3 expected connectors running" in out
    code, out, _ = run(capsys, "--once", "-o", "json", "web-prod")
    doc = json.loads(out)
    assert (code, doc["status"]) == (1, "warning")
    assert [f["check"] for f in doc["tunnels"][0]["findings"]] == ["min_connectors"]


def test_2_when_a_healthy_status_has_no_connectors(api, fake, capsys):
    fake.sim.set_clients(DEMO_TUNNELS["home-lab"], [], status="healthy")
    code, out, _ = run(capsys, "--once", "home-lab")
    assert code == 2
    assert "health=down" in out


def test_2_for_the_whole_demo_scenario_account(api, capsys):
    code, out, _ = run(capsys, "--once")
    assert code == 2
    assert f"account {DEMO_ACCOUNT_ID} (Demo Account (simulated))" in out
    for name in ("web-prod", "api-staging", "k8s-ingress-eu", "home-lab", "batch-etl", "office-router-new"):
        assert name in out
    assert "old-blog" not in out  # deleted tunnels are left out


def test_3_for_bad_credentials(api, monkeypatch, capsys):
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "cfut_not-the-right-one")
    code, out, err = run(capsys, "--once")
    assert code == 3
    assert out.startswith("TUNNELTOP UNKNOWN - ") and out.count("\n") == 1
    assert "Cloudflare refused the credentials (HTTP 403)" in err
    assert "Cloudflare Tunnel Read" in err


def test_3_for_a_malformed_token(api, monkeypatch, capsys):
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", 'cfut_"quoted"')
    code, _, err = run(capsys, "--once", "--account", DEMO_ACCOUNT_ID)
    assert code == 3
    assert "6111: Invalid format for Authorization header" in err


def test_3_for_an_account_owned_token_on_accounts(api, fake, capsys):
    fake.inject(Fault.error(403, code=1001, message="Account-owned tokens cannot use this endpoint"))
    code, _, err = run(capsys, "--once")
    assert code == 3
    assert "--account" in err


def test_3_when_the_api_is_unreachable(monkeypatch, capsys, sleeps, unused_port):
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", f"http://127.0.0.1:{unused_port}/client/v4")
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    code, out, err = run(capsys, "--once", "--account", DEMO_ACCOUNT_ID)
    assert code == 3
    assert out.startswith("TUNNELTOP UNKNOWN - ") and out.count("\n") == 1
    assert "could not reach the Cloudflare API: ConnectError" in err
    assert len(sleeps) == 3  # retried with back-off before giving up


def test_3_on_an_api_error_for_the_tunnel_list(api, fake, capsys, sleeps):
    fake.inject(Fault.html_page(502), path_contains="cfd_tunnel", times=10)
    code, _, err = run(capsys, "--once", "--account", DEMO_ACCOUNT_ID)
    assert code == 3
    assert "HTTP 502 with an HTML error page" in err
    assert len(sleeps) == 3


def test_3_when_one_tunnels_connections_cannot_be_read(api, fake, capsys):
    fake.inject(Fault.error(500), path_contains=f"{DEMO_TUNNELS['web-prod']}/connections", times=10)
    code, out, _ = run(capsys, "--once", "web-prod", "home-lab")
    assert code == 3
    assert "health=unknown" in out
    assert "error: Cloudflare answered HTTP 500" in out


def test_3_when_rate_limited_for_longer_than_once_may_wait(api, fake, capsys, sleeps):
    fake.inject(Fault.rate_limited(300))
    code, out, err = run(capsys, "--once", "--account", DEMO_ACCOUNT_ID)
    assert code == 3
    assert out.startswith("TUNNELTOP UNKNOWN - ") and out.count("\n") == 1
    assert "rate limited" in err and "300 s" in err
    assert sleeps == []
    assert len(fake.requests) == 1


def test_a_short_rate_limit_is_waited_out(api, fake, capsys, sleeps):
    fake.inject(Fault.rate_limited(5))
    code, _, _ = run(capsys, "--once", "web-prod")
    assert code == 0
    assert len(sleeps) == 1 and 0 < sleeps[0] <= 5


def test_3_with_several_accounts_lists_them(server, fake, capsys):
    fake.accounts = [
        {"id": DEMO_ACCOUNT_ID, "name": "Demo"},
        {"id": "a" * 32, "name": f"Other {HOSTILE}"},
    ]
    code, out, err = run(capsys, "--once")
    assert code == 3
    assert out.startswith("TUNNELTOP UNKNOWN - ") and out.count("\n") == 1
    assert "these credentials see 2 accounts; name one with --account ID" in err
    assert f"  {DEMO_ACCOUNT_ID}  Demo" in err.splitlines()
    assert f"  {'a' * 32}  Other pwn" in err
    assert "\x1b" not in err and "\u202e" not in err


def test_account_from_the_environment_skips_the_accounts_list(api, fake, monkeypatch, capsys):
    fake.accounts = [{"id": DEMO_ACCOUNT_ID, "name": "Demo"}, {"id": "a" * 32, "name": "Other"}]
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", DEMO_ACCOUNT_ID)
    code, _, _ = run(capsys, "--once", "web-prod")
    assert code == 0
    assert all(not r.path.endswith("/accounts") for r in fake.requests)


# --once is a monitoring plugin: its usage errors are UNKNOWN (3), as the plugin guidelines say (64 elsewhere).


def test_3_for_an_unknown_tunnel_name(api, fake, capsys):
    # A mistyped name is the caller's mistake (a usage error), found in the tunnel list: never a ?name= look-up.
    code, out, err = run(capsys, "--once", "web-prd")
    assert code == 3
    # A monitoring plugin says why on stdout too, in its one status line.
    assert out == "TUNNELTOP UNKNOWN - no tunnel with the name 'web-prd' in this account; did you mean: web-prod?\n"
    assert err == "tunneltop: no tunnel with the name 'web-prd' in this account; did you mean: web-prod?\n"
    assert all(("name", "web-prd") not in r.query for r in fake.requests)


def test_3_for_an_unknown_tunnel_name_among_known_ones(api, capsys):
    code, out, err = run(capsys, "--once", "web-prod", "web-prd")
    assert code == 3
    assert out.startswith("TUNNELTOP UNKNOWN - ") and out.count("\n") == 1
    assert "no tunnel with the name 'web-prd' in this account; did you mean: web-prod?" in err


def test_3_for_an_unknown_tunnel_id(api, fake, capsys):
    missing = "00000000-0000-4000-8000-000000000000"
    code, out, err = run(capsys, "--once", missing)
    assert code == 3
    assert out.startswith("TUNNELTOP UNKNOWN - ") and out.count("\n") == 1
    assert f"no tunnel with the id '{missing}' in this account" in err
    assert all(missing not in r.path for r in fake.requests)  # matched against the list, not GET cfd_tunnel/{id}


def test_3_for_a_duplicated_tunnel_name(api, fake, capsys):
    # Ambiguous: the user has to name it differently (by id), like any other usage error.
    fake.sim.add_tunnel("web-prod")
    code, _, err = run(capsys, "--once", "web-prod")
    assert code == 3
    assert "several tunnels are named 'web-prod'" in err
    assert DEMO_TUNNELS["web-prod"] in err


def test_3_without_credentials(monkeypatch, capsys):
    code, out, err = run(capsys, "--once")
    assert code == 3
    assert out.startswith("TUNNELTOP UNKNOWN - ") and out.count("\n") == 1
    assert err.startswith("tunneltop: no credentials: set CLOUDFLARE_API_TOKEN")


def test_3_for_half_a_key_pair(monkeypatch, capsys):
    monkeypatch.setenv("CLOUDFLARE_API_KEY", KEY)
    code, _, err = run(capsys, "--once")
    assert code == 3
    assert "CLOUDFLARE_EMAIL is not set" in err
    assert KEY not in err


def test_3_for_plain_http_to_a_remote_host(monkeypatch, capsys):
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", "http://api.example.com/client/v4")
    code, _, err = run(capsys, "--once")
    assert code == 3
    assert "refusing plain http:// for api.example.com" in err


@pytest.mark.parametrize(
    ("argv", "status"),
    [
        (["--once", "--bogus"], 3),
        (["--onc", "--interval", "soon"], 3),
        (["--interval", "0.5", "-o", "table"], 3),
        (["-ojson", "--interval", "7200"], 3),
        (["--output=table", "--bogus"], 3),
        (["--output", "xml"], 64),
        (["--seed", "x", "--demo"], 64),
        (["--watch", "--bogus"], 64),
        (["--bogus", "--", "--once"], 64),  # after --, "--once" is a tunnel's name
    ],
)
def test_usage_errors_are_3_for_once_and_64_otherwise(capsys, argv, status):
    code, err = usage_exit(capsys, *argv)
    assert code == status
    assert err.startswith("usage: tunneltop")
    assert "tunneltop: error:" in err


def test_interval_message(capsys):
    _, err = usage_exit(capsys, "--interval", "0")
    assert "interval must be between 1 and 3600 seconds" in err


def test_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert "Read-only" in out and "64 usage" in out


def test_version_text(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"tunneltop {__version__}"


# -- credentials on the wire -----------------------------------------------------------------------------------


def test_email_and_key_pair_work(api, fake, monkeypatch, capsys):
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN")
    monkeypatch.setenv("CLOUDFLARE_EMAIL", EMAIL)
    monkeypatch.setenv("CLOUDFLARE_API_KEY", KEY)
    code, _, err = run(capsys, "--once", "web-prod")
    assert code == 0, err
    assert {r.auth for r in fake.requests} == {"api_key"}


def test_token_wins_over_a_key_pair_with_a_notice(api, fake, monkeypatch, capsys):
    monkeypatch.setenv("CLOUDFLARE_EMAIL", EMAIL)
    monkeypatch.setenv("CLOUDFLARE_API_KEY", "f" * 37)
    code, _, err = run(capsys, "--once", "web-prod")
    assert code == 0
    assert "tunneltop: using the API token from CLOUDFLARE_API_TOKEN; ignoring CLOUDFLARE_EMAIL" in err
    assert {r.auth for r in fake.requests} == {"bearer"}


def test_token_file(api, fake, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN")
    path = tmp_path / "cf-token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o644)
    code, _, err = run(capsys, "--once", "--token-file", str(path), "web-prod")
    assert code == 0
    assert f"warning: token file {path} is readable by other users" in err
    path.write_text("")
    code, _, err = run(capsys, "--once", "--token-file", str(path))
    assert code == 3
    assert "is empty" in err


def test_the_client_only_ever_sends_get(api, fake, capsys):
    run(capsys, "--once")
    run(capsys, "--once", "--output", "json", "web-prod", DEMO_TUNNELS["api-staging"])
    run(capsys, "--once", "nope")
    assert len(fake.requests) > 10
    assert fake.non_get_requests == []


# -- the secret never shows ------------------------------------------------------------------------------------

FAILURES = {
    "wrong-token": lambda fake, mp, wire: mp.setenv("CLOUDFLARE_API_TOKEN", TOKEN + "x"),
    "malformed-token": lambda fake, mp, wire: mp.setenv("CLOUDFLARE_API_TOKEN", f"{TOKEN} {TOKEN}"),
    "echoing-proxy": lambda fake, mp, wire: fake.inject(Fault.error(400, 6003, f"bad header: Bearer {TOKEN}"), times=9),
    "html-502": lambda fake, mp, wire: fake.inject(Fault.html_page(502), times=9),
    "truncated": lambda fake, mp, wire: fake.inject(Fault.raw('{"success": true, "result": [', 200), times=9),
    "rate-limited": lambda fake, mp, wire: fake.inject(Fault.rate_limited(600)),
    "unreachable": lambda fake, mp, wire: setattr(wire, "transport", None),
    "remote-http": lambda fake, mp, wire: mp.setenv("CLOUDFLARE_BASE_URL", f"http://{TOKEN}.example/client/v4"),
    "several-accounts": lambda fake, mp, wire: setattr(fake, "accounts", [{"id": "a" * 32}, {"id": "b" * 32}]),
    "unknown-name": lambda fake, mp, wire: None,
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
@pytest.mark.parametrize("output", ["table", "json"])
def test_no_failure_path_prints_the_secret(api, wire, monkeypatch, capsys, failure, output, unused_port):
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", f"http://127.0.0.1:{unused_port}/client/v4")
    FAILURES[failure](api, monkeypatch, wire)
    argv = ["--once", "--output", output] + (["no-such-tunnel"] if failure == "unknown-name" else [])
    code, out, err = run(capsys, *argv)
    assert code == 3
    assert TOKEN not in out and TOKEN not in err
    assert err.startswith("tunneltop: ")


def test_success_output_does_not_contain_the_secret(api, capsys):
    for output in ("table", "json"):
        code, out, err = run(capsys, "--once", "-o", output)
        assert code == 2
        assert TOKEN not in out + err


# -- output ----------------------------------------------------------------------------------------------------


def test_json_output(server, capsys):
    code, out, err = run(capsys, "--output", "json", "web-prod", "batch-etl")
    assert code == 2
    assert err == ""
    doc = json.loads(out)
    assert set(doc) >= {"account_id", "fetched_at", "tunnels"}
    assert "demo" not in doc
    assert doc["account_id"] == DEMO_ACCOUNT_ID
    web, batch = doc["tunnels"]
    assert set(web) >= {"id", "name", "status", "health", "clients"}
    assert (web["name"], web["health"], batch["health"]) == ("web-prod", "healthy", "down")
    assert batch["clients"] == []
    client = web["clients"][0]
    assert set(client) >= {"id", "arch", "version", "run_at", "config_version", "features", "conns"}
    conn = client["conns"][0]
    assert set(conn) >= {"id", "colo_name", "origin_ip", "opened_at", "is_pending_reconnect"}
    assert conn["is_pending_reconnect"] is False
    assert conn["opened_at"].endswith("Z")


def test_drifted_records_show_as_problems_not_failures(api, fake, capsys):
    fake.sim.set_clients(
        DEMO_TUNNELS["home-lab"],
        [
            {"id": "k1", "arch": 64, "conns": [{"id": "c1", "colo_name": "SEA"}, {"colo_name": "no-id"}]},
            {"arch": "no id at all"},
            "junk",
        ],
        status="healthy",
    )
    code, out, _ = run(capsys, "--once", "-o", "json", "home-lab")
    doc = json.loads(out)
    [tunnel] = doc["tunnels"]
    assert [c["id"] for c in tunnel["clients"]] == ["k1"]
    assert tunnel["clients"][0]["arch"] is None
    assert tunnel["clients"][0]["conns"][0]["is_pending_reconnect"] is None
    assert len(tunnel["problems"]) == 4
    # Connections of unknown state under a "healthy" status: healthy on the API's word.
    assert code == 0


def test_hostile_names_are_escaped_in_json_and_replaced_in_the_table(api, fake, capsys):
    tid = DEMO_TUNNELS["home-lab"]
    fake.sim.add_tunnel(HOSTILE, status="healthy", tunnel_id="55555555-5555-4555-8555-555555555555")
    clients = fake.sim.clients(tid)
    clients[0]["arch"] = HOSTILE
    clients[0]["conns"][0]["colo_name"] = HOSTILE
    fake.sim.set_clients(tid, clients, status="healthy")

    code, out, _ = run(capsys, "--once", tid, "55555555-5555-4555-8555-555555555555")
    assert code == 0
    for ch in ("\x1b", "\x07", "\u202e", "\u2066"):
        assert ch not in out
    assert "pwn" in out and "\N{REPLACEMENT CHARACTER}" in out

    code, out, _ = run(capsys, "--once", "-o", "json", tid, "55555555-5555-4555-8555-555555555555")
    assert code == 0
    assert out.isascii()
    assert "\\u001b[2J" in out and "\\u202e" in out
    doc = json.loads(out)
    assert doc["tunnels"][1]["name"] == HOSTILE
    assert doc["tunnels"][0]["clients"][0]["arch"] == HOSTILE


# -- demo ------------------------------------------------------------------------------------------------------


def test_demo_once_table(capsys):
    code, out, err = run(capsys, "--demo", "--once")
    assert code == 2  # the demo account holds a down tunnel
    assert err == ""
    assert out.startswith("TUNNELTOP CRITICAL - ")
    assert out.splitlines()[1].startswith(f"DEMO (simulated account) - account {DEMO_ACCOUNT_ID}")
    assert "health=degraded" in out and "health=down" in out and "health=inactive" in out


def test_demo_once_json(capsys):
    code, out, _ = run(capsys, "--demo", "--once", "--output", "json")
    assert code == 2
    doc = json.loads(out)
    assert doc["demo"] is True
    assert doc["account_id"] == DEMO_ACCOUNT_ID
    healths = {t["name"]: t["health"] for t in doc["tunnels"]}
    assert healths["web-prod"] == "healthy"
    assert healths["api-staging"] == "degraded"
    assert healths["batch-etl"] == "down"
    assert healths["office-router-new"] == "inactive"


def test_demo_ignores_real_credentials_and_base_url(monkeypatch, capsys):
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", "http://api.example.com/client/v4")
    code, out, err = run(capsys, "--demo", "-o", "json", "web-prod")
    assert code == 0
    assert json.loads(out)["tunnels"][0]["name"] == "web-prod"
    assert TOKEN not in out + err


@pytest.mark.parametrize(("given", "kept"), [(None, "__all__"), ("", ""), ("logfire", "logfire")])
def test_the_program_looks_for_no_pydantic_plugin_unless_told(
    given: str | None, kept: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Run as `python -m tunneltop --version`: pydantic reads this before the first model is built, and a value of
    # the user's own (the plugins wanted, or the ones to skip) is theirs.
    if given is None:
        monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)
    else:
        monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", given)
    monkeypatch.setattr(sys, "argv", ["tunneltop", "--version"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("tunneltop", run_name="__main__", alter_sys=True)
    assert done.value.code == 0 and capsys.readouterr().out.startswith("tunneltop ")
    assert os.environ["PYDANTIC_DISABLE_PLUGINS"] == kept
