"""tunneltop serve over real HTTP: the server on 127.0.0.1 (a free port), its poller reading the loopback stand-in
of the Cloudflare API. Tests wait on the server's own events (a poll's end on its event feed, an SSE line), never
on the clock."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.serve import BEARER, START, TOKEN, WEB, polled, serving
from tunneltop.cli import main as cli_main
from tunneltop.demo.cfapi import FakeCloudflare, Fault
from tunneltop.demo.server import LoopbackServer
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID, SimulatedAccount
from tunneltop.model.codec import snapshot_from_json
from tunneltop.poll.engine import PollEngine
from tunneltop.serve.command import (
    DEFAULT_LISTEN,
    build_serve_parser,
    exposure_warning,
    is_loopback,
    parse_listen,
)
from tunneltop.serve.feed import EventFeed


@pytest.fixture
def fake() -> FakeCloudflare:
    return FakeCloudflare(SimulatedAccount(start=START), tokens=[TOKEN], clock=lambda: START)


async def scrape(http: httpx.AsyncClient, **headers: str) -> dict[str, list[Any]]:
    """/metrics parsed: samples by series name."""
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(response.text):
        assert family.documentation, family.name  # every series has its HELP
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples: dict[str, list[Any]], name: str, **labels: str) -> float | None:
    found = [s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def health_of(samples: dict[str, list[Any]], tunnel: str) -> str:
    states = [s for s in samples["tunneltop_tunnel_health"] if s.labels["tunnel_name"] == tunnel and s.value == 1]
    assert len(states) == 1
    return str(states[0].labels["tunneltop_tunnel_health"])


class Events:
    """Server-sent events read off a streaming response: each as a dict of its fields (``comments`` too)."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self) -> dict[str, Any]:
        event: dict[str, Any] = {"comments": []}
        async for line in self._lines:
            if not line:
                if len(event) > 1:
                    return event
                continue
            if line.startswith(":"):
                event["comments"].append(line[1:].strip())
                if event["comments"][-1] == "keep-alive":
                    return event
                continue
            name, _, text = line.partition(": ")
            event[name] = json.loads(text) if name == "data" else text
        raise AssertionError("the event stream ended")

    async def poll(self, after: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The next ``poll`` event numbered above ``after``, and the ``change`` events before it."""
        changes: list[dict[str, Any]] = []
        while True:
            event = await self.next()
            if event.get("event") == "change":
                changes.append(event)
            elif event.get("event") == "poll" and event["data"]["poll"] > after:
                return event, changes


async def test_metrics_follow_a_change_within_one_poll(server: LoopbackServer, fake: FakeCloudflare) -> None:
    async with serving(server, "web-prod") as (serve, http, _), http.stream("GET", "/api/v1/events") as response:
        assert response.headers["content-type"] == "text/event-stream"
        events = Events(response)
        hello = await events.next()
        assert hello["event"] == "hello" and hello["id"].startswith(serve.poller.feed.epoch + "-")
        while True:  # the budget paces the reads: the list first, the connections at a later poll
            poll, _ = await events.poll()
            assert poll["data"]["ok"] is True
            samples = await scrape(http)
            if value(samples, "tunneltop_tunnel_connectors", tunnel_name="web-prod", tunnel_id=WEB) is not None:
                break
        assert health_of(samples, "web-prod") == "healthy"
        assert value(samples, "tunneltop_tunnel_connectors", tunnel_name="web-prod", tunnel_id=WEB) == 2
        assert value(samples, "tunneltop_tunnel_connections", tunnel_name="web-prod", colo="DFW", state="active") == 4

        fake.sim.set_clients(WEB, [], status="down")
        seen: list[dict[str, Any]] = []
        while not any(c["data"]["kind"] == "tunnel_health" for c in seen):
            _, changes = await events.poll()
            seen += changes
        # The poll that saw the change has ended: the metrics say so already.
        samples = await scrape(http)
        assert health_of(samples, "web-prod") == "down"
        assert value(samples, "tunneltop_tunnel_connectors", tunnel_name="web-prod", tunnel_id=WEB) == 0
        assert "tunneltop_tunnel_connections" not in samples
        assert all(c["data"]["tunnel_name"] == "web-prod" for c in seen)
        assert all(c["id"].startswith(serve.poller.feed.epoch + "-") for c in seen)


async def test_config_drift_shows_in_the_versions(server: LoopbackServer, fake: FakeCloudflare) -> None:
    # Polls 2 s apart: the list and the connections then leave room in the budget for the configuration's reads.
    async with serving(server, "web-prod", interval=2.0) as (serve, http, _):
        fake.sim.scenario("drift")  # the remote configuration pushed, one connector left on the old one
        while True:
            await polled(serve, serve.poller.polls + 1)
            samples = await scrape(http)
            remote = value(samples, "tunneltop_tunnel_remote_config_version", tunnel_name="web-prod")
            running = [s.value for s in samples.get("tunneltop_connector_config_version", [])]
            if remote is not None and len(set(running)) == 2 and remote == max(running):
                break
        behind = [s for s in samples["tunneltop_connector_config_version"] if s.value < remote]
        assert len(behind) == 1 and behind[0].labels["tunnel_name"] == "web-prod"


async def test_fifty_scrapes_send_no_request_to_cloudflare(server: LoopbackServer, fake: FakeCloudflare) -> None:
    async with serving(server, interval=3600) as (serve, http, _):
        await polled(serve, 1)
        before = len(fake.requests)
        assert before > 0
        for _ in range(50):
            samples = await scrape(http)
        assert (await http.get("/api/v1/snapshot")).status_code == 200
        assert (await http.get("/healthz")).status_code == 200
        assert len(fake.requests) == before  # counted at the stand-in's side
        assert value(samples, "tunneltop_api_requests_total") == before
        assert value(samples, "tunneltop_polls_total", result="ok") == 1
        assert value(samples, "tunneltop_api_budget_allowed_per_minute") == 120
        assert 0 < (value(samples, "tunneltop_api_budget_used_per_minute") or 0) <= 120


async def test_the_snapshot_is_the_once_json_document(server: LoopbackServer) -> None:
    async with serving(server, "web-prod", interval=3600) as (serve, http, _):
        await polled(serve, 1)
        response = await http.get("/api/v1/snapshot")
        assert response.status_code == 200
        document = response.json()
        assert document["account_id"] == DEMO_ACCOUNT_ID
        assert [t["name"] for t in document["tunnels"]] == ["web-prod"]
        assert document["api"]["limit_per_minute"] == 120
        snapshot = snapshot_from_json(document)
        assert snapshot.tunnels[0].tunnel.id == WEB
        assert response.text.isascii()  # ensure_ascii, as --once -o json writes it


async def test_before_the_first_poll_health_and_snapshot_say_so(server: LoopbackServer) -> None:
    async with serving(server, run=False) as (_, http, _):
        health = await http.get("/healthz")
        assert health.status_code == 503
        assert health.json()["status"] == "starting"
        snapshot = await http.get("/api/v1/snapshot")
        assert snapshot.status_code == 503
        assert "no snapshot yet" in snapshot.json()["error"]
        samples = await scrape(http)
        assert value(samples, "tunneltop_healthy") == 0
        assert "tunneltop_tunnel_health" not in samples


async def test_auth_is_enforced_when_configured(server: LoopbackServer) -> None:
    async with serving(server, "web-prod", token=BEARER, interval=3600) as (serve, http, err):
        await polled(serve, 1)
        for path in ("/metrics", "/api/v1/snapshot", "/api/v1/events"):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": BEARER}):
                refused = await http.get(path, headers=headers)
                assert refused.status_code == 401, (path, headers)
                assert refused.headers["www-authenticate"].startswith("Bearer")
                assert BEARER not in refused.text
        assert (await http.get("/healthz")).status_code == 200  # an orchestrator's probe needs no token
        authorized = {"Authorization": f"Bearer {BEARER}"}
        assert (await http.get("/api/v1/snapshot", headers=authorized)).status_code == 200
        samples = await scrape(http, **authorized)
        assert health_of(samples, "web-prod") == "healthy"
    assert BEARER not in err.getvalue() and TOKEN not in err.getvalue()


async def test_without_a_token_every_path_is_open(server: LoopbackServer) -> None:
    async with serving(server, "web-prod", interval=3600) as (serve, http, _):
        await polled(serve, 1)
        assert (await http.get("/api/v1/snapshot")).status_code == 200


def test_the_default_bind_is_loopback_and_elsewhere_is_warned_about() -> None:
    args = build_serve_parser().parse_args([])
    assert DEFAULT_LISTEN == "127.0.0.1:9877"
    assert args.listen == ("127.0.0.1", 9877)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.1.2.3", "example.com"))
    assert exposure_warning("127.0.0.1", None) is None
    warning = exposure_warning("0.0.0.0", None)
    assert warning is not None and "unauthenticated" in warning and "--auth-token-file" in warning
    assert exposure_warning("0.0.0.0", BEARER) is None
    for bad in ("9877", "host:", "host:99999", ":1"):
        with pytest.raises(SystemExit):
            build_serve_parser().parse_args(["--listen", bad])


async def test_failing_polls_turn_healthz_503_and_back(server: LoopbackServer, fake: FakeCloudflare) -> None:
    fake.inject(Fault.unsuccessful(message="An unknown error has occurred"), times=10**6)
    async with serving(server, "web-prod") as (serve, http, err):
        await polled(serve, 1)
        health = await http.get("/healthz")
        assert health.status_code == 503
        assert health.json()["status"] == "failing"
        assert "unknown error" in health.json()["last_error"]
        samples = await scrape(http)
        assert value(samples, "tunneltop_poll_errors_total", kind="request_failed") >= 1  # type: ignore[operator]
        assert value(samples, "tunneltop_api_errors_total", kind="request_failed") >= 1  # type: ignore[operator]
        fake.clear_faults()
        while not serve.poller.results["ok"]:
            await polled(serve, serve.poller.polls + 1)
        health = await http.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
    assert "unknown error" in err.getvalue()  # the failure streak, said on stderr
    assert TOKEN not in err.getvalue()


async def test_a_crash_in_one_poll_is_logged_and_the_server_goes_on(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = PollEngine.poll
    calls: list[int] = []

    async def crashing_once(self: PollEngine) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError(f"a bug, with the token in its message: {TOKEN}")
        return await real(self)

    monkeypatch.setattr(PollEngine, "poll", crashing_once)
    async with serving(server, "web-prod") as (serve, http, err):
        await polled(serve, 2)
        samples = await scrape(http)
        assert value(samples, "tunneltop_polls_total", result="crashed") == 1
        assert value(samples, "tunneltop_poll_errors_total", kind="crash") == 1
        assert value(samples, "tunneltop_polls_total", result="ok") >= 1  # type: ignore[operator]
        assert (await http.get("/healthz")).status_code == 200
    log = err.getvalue()
    assert "internal error" in log and "RuntimeError" in log and "Traceback" in log
    assert TOKEN not in log


async def test_events_resume_from_last_event_id(server: LoopbackServer) -> None:
    async with serving(server, "web-prod") as (serve, http, _):
        async with http.stream("GET", "/api/v1/events") as response:
            events = Events(response)
            await events.next()
            seen, _ = await events.poll()
        await polled(serve, seen["data"]["poll"] + 2)  # two more polls while away
        headers = {"Last-Event-ID": seen["id"]}
        async with http.stream("GET", "/api/v1/events", headers=headers) as response:
            first = await Events(response).next()
        epoch, _, seq = seen["id"].partition("-")
        assert first["id"] == f"{epoch}-{int(seq) + 1}"  # right after the last one seen: nothing missed
        assert first["event"] in ("change", "poll")

        for stale in (f"{'0' * 8}-1", "garbage", f"{epoch}-{10**9}"):
            async with http.stream("GET", "/api/v1/events", headers={"Last-Event-ID": stale}) as response:
                reset = await Events(response).next()
            assert reset["event"] == "reset", stale
            assert reset["data"]["epoch"] == epoch


async def test_a_quiet_stream_sends_keep_alive_comments(server: LoopbackServer) -> None:
    async with serving(server, "web-prod", interval=3600) as (serve, http, _):
        await polled(serve, 1)
        serve.app.keepalive = 0.01
        async with http.stream("GET", "/api/v1/events") as response:
            events = Events(response)
            assert (await events.next())["event"] == "hello"
            assert (await events.next())["comments"] == ["keep-alive"]


def test_the_feed_is_a_bounded_ring() -> None:
    feed = EventFeed(capacity=3)
    for n in range(5):
        feed.publish("change", {"n": n})
    assert feed.seq == 5
    assert feed.since(1) is None  # 2 fell off: a reader at 1 must start over
    assert [item.seq for item in feed.since(2) or ()] == [3, 4, 5]
    assert feed.since(5) == []
    assert feed.resume_after(feed.event_id(3)) == 3
    assert feed.resume_after(feed.event_id(1)) is None
    assert feed.resume_after(f"{feed.epoch}x-3") is None
    assert feed.resume_after(None) is None
    by_size = EventFeed(capacity=100, max_bytes=100)
    for n in range(20):
        by_size.publish("change", {"padding": "x" * 30, "n": n})
    assert sum(len(item.data) for item in by_size.since(by_size.seq - 2) or ()) <= 100
    assert by_size.since(1) is None
    assert all("\n" not in item.data for item in by_size.since(by_size.seq - 1) or ())


async def test_a_client_that_reads_nothing_is_dropped_and_holds_no_more_than_a_buffer(server: LoopbackServer) -> None:
    async with serving(server, "web-prod", run=False) as (serve, http, _):
        serve.app.write_timeout = 0.2
        port = serve.addresses[0][1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/v1/events HTTP/1.1\r\nHost: tt\r\n\r\n")  # and then never reads
        await writer.drain()
        while not serve.app.streams:
            await asyncio.sleep(0.01)
        feed = serve.poller.feed
        for n in range(400):  # ~25 MB of events: far beyond what the sockets hold
            feed.publish("change", {"n": n, "padding": "x" * 64_000})
        while serve.app.streams:  # its writes stall, time out, and the stream ends
            await asyncio.sleep(0.01)
        assert sum(len(item.data) for item in feed.since(feed.seq - 600) or ()) <= 32 * 1024 * 1024
        async with http.stream("GET", "/api/v1/events") as response:  # the server still serves the others
            assert (await Events(response).next())["event"] == "hello"
        writer.close()


def test_serve_refuses_what_is_not_its_own_and_an_unusable_token_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for flags in (["--once"], ["--watch"], ["-o", "json"], ["--attach", "http://127.0.0.1:9"]):
        with pytest.raises(SystemExit) as stopped:
            cli_main(["serve", "--demo", *flags])
        assert stopped.value.code == 64
        assert "serve runs until stopped" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    assert cli_main(["serve", "--demo", "--auth-token-file", str(empty)]) == 64
    assert cli_main(["serve", "--demo", "--auth-token-file", str(tmp_path / "missing")]) == 64
    err = capsys.readouterr().err
    assert "--auth-token-file" in err and "is empty" in err and "FileNotFoundError" in err
    help_text = build_serve_parser().format_help()
    assert "--listen" in help_text and "[--once]" not in help_text and "--attach URL" not in help_text
