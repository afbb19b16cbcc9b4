"""The headless change stream end to end: the simulated account through the in-process demo transport, with
changes scripted between polls, and the real thing in a subprocess against the loopback server."""

from __future__ import annotations

import asyncio
import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from tests.support.stream import (
    BUDGET,
    INTERVAL,
    QUOTA,
    START,
    WEB,
    ScriptedOut,
    demo_target,
    frozen_fake,
    pending_web,
    run,
)
from tunneltop.demo.cfapi import FakeCloudflare, Fault
from tunneltop.demo.server import LoopbackServer
from tunneltop.demo.simulator import DEMO_TUNNELS, SimulatedAccount

HOME = DEMO_TUNNELS["home-lab"]
BATCH = DEMO_TUNNELS["batch-etl"]
# A failure Cloudflare reports with HTTP 200 and a code that is not about credentials: RequestFailedError.
ODD = Fault.unsuccessful(code=8000000, message="Internal processing error")
TOKEN = "cfut_streamTestToken0123456789abcdefghijklmn"


@pytest.fixture
def fake() -> FakeCloudflare:
    return frozen_fake()


async def test_scripted_changes_come_out_as_events(fake: FakeCloudflare) -> None:
    stop = asyncio.Event()
    out = ScriptedOut(
        [
            ("baseline", pending_web(fake)),
            ("conn_pending", lambda: fake.inject(Fault.unsuccessful(), path_contains="cfd_tunnel")),
            ("poll_recovered", lambda: fake.sim.delete_tunnel(BATCH)),
            # A tunnel whose refresh fails keeps its last connections, stale, and says so; then fresh again.
            ("tunnel_removed", lambda: fake.inject(ODD, path_contains=f"{HOME}/connections")),
            ("tunnel_refreshed", stop.set),
        ]
    )
    assert await run(demo_target(fake), out, stop) == 0
    assert out.kinds() == [
        "baseline",
        "conn_pending",
        "tunnel_health",
        "poll_failed",
        "poll_recovered",
        "tunnel_removed",
        "tunnel_stale",
        "tunnel_refreshed",
    ]
    lines = out.lines()
    assert lines[0].pop("at").endswith("Z")
    # The budget's figures as of the first poll: /accounts, the list and the 5 tunnels that ran (7), then the blast
    # radius (configuration and routes) of the first tunnels with what the start-up burst of 16 leaves.
    api = {"used_per_minute": 16, "limit_per_minute": BUDGET, "blocked_for": 0.0, "processes": 1}
    assert lines[0].pop("api") == api
    assert lines[0] == {
        "kind": "baseline",
        "account_id": fake.sim.account_id,
        "account_name": "Demo Account (simulated)",
        "interval": INTERVAL,
        "tunnels": 6,
        "connectors": 9,
        "connections": 36,
        "active": 35,
        "pending": 1,
        "health": "down",
        "tunnels_by_health": {"degraded": 1, "down": 1, "healthy": 3, "inactive": 1},
        "demo": True,
    }
    pending = lines[1]
    assert (pending["tunnel_id"], pending["tunnel_name"], pending["severity"]) == (WEB, "web-prod", "warning")
    assert pending["before"]["is_pending_reconnect"] is False and pending["after"]["is_pending_reconnect"] is True
    assert pending["message"].startswith("web-prod: ") and "went pending" in pending["message"]
    assert (lines[2]["before"], lines[2]["after"]) == ("healthy", "degraded")
    assert lines[4]["after"]["failed_polls"] == 1 and "refused" in lines[3]["after"]
    assert (lines[5]["tunnel_name"], lines[6]["tunnel_name"]) == ("batch-etl", "home-lab")
    stale, fresh = lines[6], lines[7]
    assert (stale["severity"], fresh["severity"]) == ("warning", "ok")
    assert "the last ones read stay shown" in stale["message"] and stale["after"] == fresh["before"]
    assert fake.non_get_requests == []


async def test_polls_failing_from_the_start_come_before_the_baseline(fake: FakeCloudflare) -> None:
    stop = asyncio.Event()
    fake.inject(Fault.unsuccessful(), path_contains="accounts", times=2)
    out = ScriptedOut([("baseline", stop.set)])
    assert await run(demo_target(fake), out, stop) == 0
    assert out.kinds() == ["poll_failed", "poll_recovered", "baseline"]
    assert out.lines()[1]["after"]["failed_polls"] == 2


async def test_a_new_kind_of_error_is_reported_while_failing(fake: FakeCloudflare) -> None:
    stop = asyncio.Event()

    def break_it() -> None:
        # Two passing failures of different kinds: success: false, then a 429 (Retry-After 1 s, not sat out).
        fake.inject(ODD, path_contains="cfd_tunnel", times=1)
        fake.inject(Fault.rate_limited(retry_after=1), path_contains="cfd_tunnel", times=1)

    out = ScriptedOut([("baseline", break_it), ("poll_recovered", stop.set)])
    assert await run(demo_target(fake, fake.sim.account_id), out, stop, max_rate_limit_wait=0) == 0
    assert out.kinds() == ["baseline", "poll_failed", "poll_failed", "poll_recovered"]
    lines = out.lines()
    assert "Internal processing error" in lines[1]["after"] and lines[1]["before"] is None
    assert "rate limited" in lines[2]["after"] and lines[2]["before"]["failed_polls"] == 1
    assert lines[3]["after"]["failed_polls"] == 2 and lines[3]["before"] == lines[2]["after"]


async def test_credentials_refused_while_streaming_end_it_with_exit_3(fake: FakeCloudflare) -> None:
    """No retry fixes a refused token: the poll_failed line, then exit 3 with the reason on stderr (a bad token
    does not stream poll_failed lines for ever)."""
    err = io.StringIO()
    out = ScriptedOut([("baseline", lambda: fake.inject(Fault.error(403, 10000, "Authentication error"), times=10**6))])
    assert await run(demo_target(fake, fake.sim.account_id), out, asyncio.Event(), err=err) == 3
    assert out.kinds() == ["baseline", "poll_failed"]
    assert "refused the credentials" in out.lines()[1]["after"]
    assert "refused the credentials" in err.getvalue()


async def test_after_a_429_the_next_poll_waits_for_retry_after() -> None:
    sim = SimulatedAccount()
    sim.freeze()
    fake = FakeCloudflare(sim, require_auth=False, rate_limit=QUOTA)  # real time: the wait is what is tested
    stop = asyncio.Event()
    limited: list[int] = []

    def rate_limit() -> None:
        limited.append(len(fake.requests))  # the next request is the one answered 429
        fake.inject(Fault.rate_limited(retry_after=1), path_contains="cfd_tunnel")

    out = ScriptedOut([("baseline", rate_limit), ("poll_recovered", stop.set)])
    assert await run(demo_target(fake, sim.account_id), out, stop, max_rate_limit_wait=0) == 0
    assert out.kinds() == ["baseline", "poll_failed", "poll_recovered"]
    assert "rate limited" in out.lines()[1]["after"]
    refused, after = fake.requests[limited[0]], fake.requests[limited[0] + 1]
    assert "cfd_tunnel" in refused.path
    assert (after.time - refused.time).total_seconds() >= 1.0


async def test_stop_ends_a_hanging_poll_at_once(fake: FakeCloudflare) -> None:
    stop = asyncio.Event()
    out = ScriptedOut([("baseline", lambda: fake.inject(Fault.hang(30), path_contains="cfd_tunnel"))])
    task = asyncio.create_task(run(demo_target(fake, fake.sim.account_id), out, stop))
    while "baseline" not in out.kinds():
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    stop.set()
    # Ended by the stop, not by the hang (30 s) or the client's timeout: well before either, on any machine.
    assert await asyncio.wait_for(task, timeout=15) == 0
    assert out.kinds() == ["baseline"]


async def test_several_accounts_and_none_named_is_exit_3(fake: FakeCloudflare) -> None:
    fake.accounts = [{"id": "a" * 32, "name": "One"}, {"id": "b" * 32, "name": "Two\x1b[2J"}]
    err = io.StringIO()
    code = await run(demo_target(fake), io.StringIO(), asyncio.Event(), err=err)
    assert code == 3
    assert "see 2 accounts" in err.getvalue() and "a" * 32 in err.getvalue() and "\x1b" not in err.getvalue()


async def test_a_reader_that_went_away_ends_the_stream_quietly(fake: FakeCloudflare) -> None:
    class Gone(io.StringIO):
        def flush(self) -> None:
            raise BrokenPipeError

    assert await run(demo_target(fake), Gone(), asyncio.Event()) == 0


# -- the real thing, in a subprocess against the loopback server ----------------------------------------------------

WATCH = """
import sys
from tunneltop.api.auth import Credentials
from tunneltop.stream import run_watch
from tunneltop.poll.target import Target
target = Target(sys.argv[1], Credentials.token(sys.argv[2]), budget_per_minute=int(sys.argv[4]))
sys.exit(run_watch(target, float(sys.argv[3])))
"""


@pytest.fixture
def server() -> Iterator[tuple[LoopbackServer, FakeCloudflare]]:
    sim = SimulatedAccount(start=START)
    sim.freeze()
    fake = FakeCloudflare(sim, tokens=[TOKEN], clock=lambda: START, rate_limit=QUOTA)
    with LoopbackServer(fake) as running:
        yield running, fake


class Watcher:
    """``run_watch`` in a child process, its stdout read line by line on a thread."""

    def __init__(self, base_url: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WATCH, base_url, TOKEN, str(INTERVAL), str(BUDGET)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")  # the end of its output

    def next_line(self) -> str:
        """The next line it writes (waiting for it); it must not have exited."""
        line = self.lines.get()
        if not line:
            assert self.proc.stderr is not None
            raise AssertionError(f"--watch exited ({self.proc.wait()}): {self.proc.stderr.read()[-2000:]}")
        return line

    def next_kind(self) -> str:
        """The next line's kind, findings raised or cleared left out (as ScriptedOut.lines does)."""
        while (kind := json.loads(self.next_line())["kind"]).startswith("finding_"):
            pass
        return str(kind)

    def finish(self, sig: int) -> tuple[int, str]:
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait()
        finally:
            self.proc.kill()
        assert self.proc.stderr is not None and self.proc.stdout is not None
        with self.proc.stderr:
            stderr = self.proc.stderr.read()
        while self.lines.get():  # the reader is at the end of the output: its pipe can close
            pass
        self.proc.stdout.close()
        return code, stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_watch_over_real_http_exits_cleanly_on_a_signal(
    server: tuple[LoopbackServer, FakeCloudflare], sig: signal.Signals
) -> None:
    running, fake = server
    watcher = Watcher(running.base_url)
    assert watcher.next_kind() == "baseline"
    pending_web(fake)()
    assert [watcher.next_kind(), watcher.next_kind()] == ["conn_pending", "tunnel_health"]
    code, stderr = watcher.finish(sig)
    assert (code, stderr) == (0, "")
    assert {r.auth for r in fake.requests} == {"bearer"} and fake.non_get_requests == []


def test_the_stream_never_imports_textual() -> None:
    probe = "import tunneltop.stream, sys; print('textual' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_closed_pipe_ends_the_stream_quietly(server: tuple[LoopbackServer, FakeCloudflare]) -> None:
    """``tunneltop --watch -o jsonl | head -1``: the next write finds the reader gone; exit 0, no traceback."""
    running, fake = server
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    with subprocess.Popen(  # closes its pipes when done
        [sys.executable, "-c", WATCH, running.base_url, TOKEN, str(INTERVAL), str(BUDGET)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            assert json.loads(proc.stdout.readline())["kind"] == "baseline"
            proc.stdout.close()
            pending_web(fake)()
            assert proc.wait() == 0
            assert proc.stderr.read() == b""
        finally:
            proc.kill()
