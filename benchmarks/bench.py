"""Performance figures: ``python -m benchmarks.bench`` prints them (a script, never a timed test assertion).

Per size (100, 1,000 and 10,000 connections; each size in its own process so memory figures do not mix):

- parse + validate: ``json.loads`` of one poll's API bodies and the per-record validation the client runs;
- change detection: ``Session.on_snapshot`` (diff, marks, ghosts, trends) inside the app;
- UI update per poll: everything the app does with a new snapshot except change detection (rows, filter, table,
  tree, detail, colo strip, header), **plus** the deferred layout/idle work and the compositor render of the
  frame, measured as process CPU time from posting the snapshot until the app is idle again, inside a real
  running app (``run_test``, headless; the frame is also turned into terminal bytes, which headless skips);
- the same for a stock Textual DataTable rebuilt naively (``clear()`` + ``add_rows()``) with the same cells.

The workload is the simulator's scale scenario (2 connectors x 4 connections per tunnel), polled every 5 s of
simulated time so ages tick, with ghosts kept 60 s and new/changed marks 30 s as in the app's defaults. 1% churn
means 1% of the connections close and as many open per poll; measurements follow a warm-up long enough for
ghosts and marks to reach their steady state.

Then, as whole processes against the loopback server: first paint with data (1,000 connections, the real
``tunneltop`` in a pseudo-terminal, from spawn until a data row reaches the terminal), idle CPU between polls over
30 s, RSS of the real app, and the cold wall time of ``tunneltop --once --output json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import math
import os
import platform
import re
import signal
import statistics
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

from tunneltop.api.gate import RequestGate
from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.server import LoopbackServer
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID, SimulatedAccount, rfc3339
from tunneltop.model.parse import RecordCache, parse_connectors, parse_many
from tunneltop.model.records import Tunnel
from tunneltop.model.snapshot import Snapshot
from tunneltop.poll.engine import PollEngine

SIZES = (100, 1_000, 10_000)
CONNS_PER_TUNNEL = 8  # the scale scenario's 2 connectors x 4 connections
POLL_SECONDS = 5.0
TERMINAL = (200, 50)
START = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
TOKEN = "bench-token-not-a-secret"
_DATA_ROW = re.compile(rb"(?:prod|stage|dev)-[a-z]+-\d{5}")


def tunnels_for(connections: int) -> int:
    """Tunnels of the scale scenario giving about ``connections`` (about 4% of its tunnels have none)."""
    return max(1, math.ceil(connections / CONNS_PER_TUNNEL / 0.96))


# -- the workload ---------------------------------------------------------------------------------------------


class Workload:
    """One account's API answers, poll after poll, with a chosen churn: the bodies the client would receive."""

    def __init__(self, connections: int, seed: int = 11) -> None:
        sim = SimulatedAccount(seed=seed, start=START, tunnels=tunnels_for(connections))
        sim.freeze()
        self.rng = Random(seed)
        self.now = START
        self.tunnels = [t for t in sim.list_tunnels() if t["deleted_at"] is None]
        self.clients: dict[str, list[dict[str, Any]]] = {t["id"]: sim.clients(t["id"]) for t in self.tunnels}
        self._bodies: dict[str, bytes] = {}
        self._tunnel_body = _envelope(self.tunnels)
        self._serial = 0
        # The real engine, with a budget no poll reaches and the workload's clock, so every tunnel is due each poll.
        self.source = PollEngine(
            _Answers(self),  # type: ignore[arg-type]
            DEMO_ACCOUNT_ID,
            interval=POLL_SECONDS,
            now=lambda: self.now,
            account_name="Bench Account (simulated)",
            min_burst=10**9,
        )

    @property
    def connections(self) -> int:
        return sum(len(c["conns"]) for cs in self.clients.values() for c in cs)

    def step(self, churn: float, seconds: float = POLL_SECONDS) -> None:
        """Move time on; close ``churn`` of the connections and open as many new ones."""
        self.now += timedelta(seconds=seconds)
        count = round(self.connections * churn)
        if churn > 0:
            count = max(1, count)
        if not count:
            return
        where = [(tid, client) for tid, cs in self.clients.items() for client in cs]
        slots = [(tid, client, conn) for tid, client in where for conn in client["conns"]]
        for tid, client, conn in self.rng.sample(slots, min(count, len(slots))):
            client["conns"].remove(conn)
            self._bodies.pop(tid, None)
        for tid, client in self.rng.choices(where, k=count):
            self._serial += 1
            conn_id = f"{self._serial:08x}-bench-4000-8000-{self.rng.getrandbits(48):012x}"
            colo = client["conns"][0]["colo_name"] if client["conns"] else "DFW"
            origin = client["conns"][0]["origin_ip"] if client["conns"] else "192.0.2.1"
            client["conns"].append(
                {
                    "colo_name": colo,
                    "id": conn_id,
                    "is_pending_reconnect": False,
                    "origin_ip": origin,
                    "opened_at": rfc3339(self.now - timedelta(seconds=self.rng.uniform(0, POLL_SECONDS))),
                    "client_id": client["id"],
                    "client_version": client["version"],
                    "uuid": conn_id,
                }
            )
            self._bodies.pop(tid, None)

    def bodies(self) -> tuple[bytes, dict[str, bytes]]:
        """The tunnel list's body and each tunnel's connections body, as the API would send them."""
        for tid, clients in self.clients.items():
            if tid not in self._bodies:
                self._bodies[tid] = _envelope(clients)
        return self._tunnel_body, dict(self._bodies)

    async def snapshot(self) -> tuple[Snapshot, float]:
        """One poll through the real PollEngine, its API answers decoded and validated as the client does (no
        HTTP); returns it and the CPU milliseconds it took."""
        self.bodies()
        started = time.process_time()
        outcome = await self.source.poll()
        if outcome.snapshot is None:
            raise RuntimeError(f"the benchmark's poll failed: {outcome.error or outcome.holding}")
        return outcome.snapshot, (time.process_time() - started) * 1000


class _Answers:
    """Stands in for CloudflareClient with the workload's bodies: JSON decoding and validation as in the client."""

    def __init__(self, work: Workload) -> None:
        self.work = work
        self.gate = RequestGate(10**9, clock=lambda: (work.now - START).total_seconds())

    async def list_tunnels(
        self, account_id: str, cache: dict[str, tuple[dict[str, Any], Tunnel]] | None = None, **filters: Any
    ) -> tuple[list[Tunnel], list[Any]]:
        return parse_many(Tunnel, json.loads(self.work._tunnel_body)["result"], "tunnel", cache)

    async def list_connectors(self, account_id: str, tunnel_id: str, cache: RecordCache | None = None) -> Any:
        return parse_connectors(json.loads(self.work._bodies[tunnel_id])["result"], cache)


def _envelope(result: Any) -> bytes:
    return json.dumps({"success": True, "errors": [], "messages": [], "result": result}).encode()


# -- UI figures inside a running app --------------------------------------------------------------------------


@dataclass
class SizeFigures:
    connections: int
    tunnels: int
    parse_ms: list[float] = field(default_factory=list)
    parse_first_ms: float = 0.0
    change_ms: list[float] = field(default_factory=list)
    first_ms: float = 0.0
    ui_still_ms: list[float] = field(default_factory=list)
    ui_churn_ms: list[float] = field(default_factory=list)
    overview_ms: list[float] = field(default_factory=list)
    expiry_ms: list[float] = field(default_factory=list)
    tick_ms: list[float] = field(default_factory=list)
    churn_bytes: list[int] = field(default_factory=list)
    naive_ms: list[float] = field(default_factory=list)
    floor_ms: float = 0.0
    rows_shown: int = 0
    rss_mb: float = 0.0
    peak_rss_mb: float = 0.0
    harness_rss_mb: float = 0.0

    def summary(self) -> dict[str, Any]:
        med = lambda xs: statistics.median(xs) if xs else math.nan  # noqa: E731
        ui = med(self.ui_churn_ms)
        return {
            "connections": self.connections,
            "tunnels": self.tunnels,
            "rows_shown": self.rows_shown,
            "parse_ms": med(self.parse_ms),
            "parse_first_ms": self.parse_first_ms,
            "change_ms": med(self.change_ms),
            "first_ms": self.first_ms,
            "ui_still_ms": med(self.ui_still_ms),
            "ui_churn_ms": ui,
            "ui_churn_max_ms": max(self.ui_churn_ms, default=math.nan),
            "expiry_ms": med(self.expiry_ms),
            "tick_ms": med(self.tick_ms),
            "churn_bytes": med(self.churn_bytes),
            "naive_ms": med(self.naive_ms),
            "speedup": med(self.naive_ms) / ui if ui else math.nan,
            "overview_ms": med(self.overview_ms),
            "floor_ms": self.floor_ms,
            "rss_mb": self.rss_mb,
            "peak_rss_mb": self.peak_rss_mb,
            "harness_rss_mb": self.harness_rss_mb,
        }


def _memory_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB, from /proc (0 where unavailable)."""
    found = {"VmRSS": 0.0, "VmHWM": 0.0}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in found:
                found[name] = int(value.split()[0]) / 1024
    return found["VmRSS"], found["VmHWM"]


class _Meter:
    """Counts the bytes each frame would write to a terminal (headless apps skip that step, so do it here)."""

    def __init__(self, app: Any) -> None:
        from textual._compositor import CompositorUpdate

        self.bytes = 0
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            if isinstance(renderable, CompositorUpdate) and not app._batch_count:
                self.bytes += len(renderable.render_segments(app.console).encode())
            original(screen, renderable)

        app._display = display


async def _settle(pilot: Any) -> None:
    await pilot.pause()
    await pilot.pause()


async def _timed(pilot: Any, action: Callable[[], None], floor: float = 0.0) -> float:
    """CPU milliseconds from ``action`` until the app has handled everything it caused and drawn the frame, less
    ``floor``: what the waiting itself costs (measured with an action that does nothing)."""
    await _settle(pilot)
    started = time.process_time()
    action()
    await _settle(pilot)
    return max(0.0, (time.process_time() - started) * 1000 - floor)


async def _floor(pilot: Any) -> float:
    return statistics.median([await _timed(pilot, lambda: None) for _ in range(9)])


def _bench_app(clock: Callable[[], datetime], view: str = "monitor") -> Any:
    from tunneltop.demo.transport import DEMO_BASE_URL, demo_transport
    from tunneltop.poll.target import Target
    from tunneltop.ui.app import TunneltopApp

    class BenchApp(TunneltopApp):
        """The real app with its timers handed to the benchmark: polls and ticks come when it says."""

        CSS_PATH = str(Path(sys.modules[TunneltopApp.__module__].__file__).with_name(str(TunneltopApp.CSS_PATH)))

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.polling.schedule = lambda delay: None  # type: ignore[method-assign]  # no poll is ever armed

        def _tick(self) -> None:
            if getattr(self, "ticks_enabled", False):
                super()._tick()

    target = Target(DEMO_BASE_URL, None, DEMO_ACCOUNT_ID, [], transport=demo_transport())
    # By default the every-connection view ("v"; home when tunnels are named): the one with a row per connection.
    return BenchApp(target, interval=POLL_SECONDS, clock=clock, monotonic=lambda: 0.0, start_view=view)


async def measure_size(connections: int, *, polls: int = 8, warmup: int = 14, naive: bool = True) -> SizeFigures:
    """UI figures for one size inside a running app (see the module doc for what each one covers)."""
    from tunneltop.ui.messages import SnapshotReady

    work = Workload(connections)
    work.bodies()
    figures = SizeFigures(work.connections, len(work.tunnels))
    figures.harness_rss_mb = _memory_mb()[0]
    app = _bench_app(lambda: work.now)
    async with app.run_test(size=TERMINAL, headless=True) as pilot:
        meter = _Meter(app)
        floor = figures.floor_ms = await _floor(pilot)
        session = app.session
        change_ms: list[float] = []
        original = session.on_snapshot

        def on_snapshot(snapshot: Snapshot, now: datetime, events: Any = None) -> Any:
            started = time.process_time()
            try:
                return original(snapshot, now, events)
            finally:
                change_ms.append((time.process_time() - started) * 1000)

        session.on_snapshot = on_snapshot

        async def poll(churn: float, seconds: float = POLL_SECONDS) -> float:
            work.step(churn, seconds)
            snap, parse_ms = await work.snapshot()
            figures.parse_ms.append(parse_ms)
            change_ms.clear()
            total = await _timed(pilot, lambda: app.post_message(SnapshotReady(snap)), floor)
            figures.change_ms.append(sum(change_ms))
            return total - sum(change_ms)

        async def tick() -> float:
            work.now += timedelta(seconds=1)
            app.ticks_enabled = True
            try:
                return await _timed(pilot, app._tick, floor)
            finally:
                app.ticks_enabled = False

        figures.first_ms = await poll(0.0)
        figures.parse_first_ms = figures.parse_ms.pop()
        for _ in range(polls):
            figures.ui_still_ms.append(await poll(0.0))
        for index in range(warmup + polls):
            before = meter.bytes
            spent = await poll(0.01, POLL_SECONDS - 2)
            if index >= warmup:
                figures.ui_churn_ms.append(spent)
                figures.churn_bytes.append(meter.bytes - before)
            # Between polls the header ticks every second; one of those ticks expires the marks and ghosts
            # set 30 and 60 s earlier, which redraws the views.
            expiry = await tick()
            quiet = await tick()
            if index >= warmup:
                figures.expiry_ms.append(expiry)
                figures.tick_ms.append(quiet)
        figures.rows_shown = len(app.visible_rows())
        rows = app.visible_rows()
        figures.rss_mb, figures.peak_rss_mb = _memory_mb()
    figures.overview_ms = await _overview_polls(work, polls)
    if naive:
        figures.naive_ms = await _naive_rebuild(work, rows, polls)
    return figures


async def _overview_polls(work: Workload, polls: int) -> list[float]:
    """UI update per 1% churn poll of the account overview (one row per tunnel; the home with no tunnel named)."""
    from tunneltop.ui.messages import SnapshotReady

    app = _bench_app(lambda: work.now, view="overview")
    timings: list[float] = []
    async with app.run_test(size=TERMINAL, headless=True) as pilot:
        floor = await _floor(pilot)
        for index in range(polls + 2):
            work.step(0.01 if index else 0.0)
            snap, _ = await work.snapshot()
            spent = await _timed(pilot, lambda snap=snap: app.post_message(SnapshotReady(snap)), floor)
            if index >= 2:
                timings.append(spent)
    return timings


async def _naive_rebuild(work: Workload, rows: list[Any], polls: int) -> list[float]:
    """The baseline: a stock DataTable cleared and refilled with the same cells on every poll."""
    from rich.text import Text
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable

    from tunneltop.ui.conn_table import COLUMNS, row_cells
    from tunneltop.views.rows import sort_rows

    class Naive(App[None]):
        def compose(self) -> ComposeResult:
            yield DataTable(cursor_type="row")

    app = Naive()
    timings: list[float] = []
    async with app.run_test(size=TERMINAL, headless=True) as pilot:
        table = app.query_one(DataTable)
        floor = await _floor(pilot)
        for column, label in COLUMNS.items():
            table.add_column(Text(label), key=column)
        for index in range(polls + 1):
            now = work.now + timedelta(seconds=POLL_SECONDS * index)
            cells = [
                (row.key, [Text(t, style=s) for t, s in row_cells(row, now, list(COLUMNS))])
                for row in sort_rows(rows, "state")
            ]

            def rebuild(cells: list[tuple[str, list[Any]]] = cells) -> None:
                with app.batch_update():
                    table.clear()
                    for key, values in cells:
                        table.add_row(*values, key=key)

            spent = await _timed(pilot, rebuild, floor)
            if index:
                timings.append(spent)
    return timings


# -- whole processes ------------------------------------------------------------------------------------------


def _scale_server(connections: int | None) -> LoopbackServer:
    tunnels = tunnels_for(connections) if connections else None
    sim = SimulatedAccount(seed=11, tunnels=tunnels)
    sim.freeze()
    fake = FakeCloudflare(sim, tokens=[TOKEN], rate_limit=1_000_000)
    return LoopbackServer(fake).start()


def _all_tunnels(server: LoopbackServer) -> list[str]:
    """Every tunnel of the server's account: named on the command line, each poll reads all their connections."""
    return list(server.fake.sim.tunnel_ids())


def _client_env(server: LoopbackServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    env.update(
        CLOUDFLARE_BASE_URL=server.base_url,
        CLOUDFLARE_API_TOKEN=TOKEN,
        CLOUDFLARE_ACCOUNT_ID=DEMO_ACCOUNT_ID,
        TERM="xterm-256color",
    )
    env.pop("NO_COLOR", None)
    env.pop("TEXTUAL", None)
    return env


def _tunneltop_command() -> list[str]:
    script = Path(sys.executable).with_name("tunneltop")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tunneltop"]


def once_cold(runs: int = 7) -> list[float]:
    """Wall seconds of ``tunneltop --once --output json`` against the loopback server (demo account), per run."""
    timings = []
    with _scale_server(None) as server:
        env = _client_env(server)
        for _ in range(runs):
            started = time.perf_counter()
            done = subprocess.run(
                [*_tunneltop_command(), "--once", "--output", "json"], env=env, capture_output=True, check=False
            )
            timings.append(time.perf_counter() - started)
            if done.returncode not in (0, 1, 2):
                raise RuntimeError(f"--once failed ({done.returncode}): {done.stderr.decode()[-400:]}")
    return timings


@dataclass
class LiveRun:
    first_paint_s: float
    rss_mb: float
    peak_rss_mb: float
    idle_cpu_percent: float | None = None


def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_memory_mb(pid: int) -> tuple[float, float]:
    found = {"VmRSS": 0.0, "VmHWM": 0.0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in found:
            found[name] = int(value.split()[0]) / 1024
    return found["VmRSS"], found["VmHWM"]


def _own_terminal() -> None:  # runs in the child before exec: the pty becomes its controlling terminal
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def live_run(
    server: LoopbackServer,
    idle_seconds: float = 0.0,
    timeout: float = 120.0,
    tunnels: Sequence[str] = (),
    interval: float | None = 600.0,
) -> LiveRun:
    """The real ``tunneltop`` in a pseudo-terminal: seconds from spawn until a data row reaches the terminal;
    with ``idle_seconds``, then the CPU it uses while idle between polls (the interval is far longer). With
    ``tunnels`` named, every poll reads all of their connections (no request budget applies)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", TERMINAL[1], TERMINAL[0], 0, 0))
    seen = threading.Event()
    started = time.perf_counter()
    paint: list[float] = []

    def drain() -> None:
        tail = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            if not seen.is_set():
                tail = tail[-64:] + chunk
                if _DATA_ROW.search(tail):
                    paint.append(time.perf_counter() - started)
                    seen.set()

    started = time.perf_counter()
    child = subprocess.Popen(
        [*_tunneltop_command(), *(["--interval", f"{interval:g}"] if interval else []), *tunnels],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=_client_env(server),
        preexec_fn=_own_terminal,  # the pty must be its controlling terminal
        close_fds=True,
    )
    os.close(slave)
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        if not seen.wait(timeout):
            raise RuntimeError("tunneltop painted no data row in time")
        time.sleep(2.0)  # let the first poll's follow-up work finish
        rss, peak = _proc_memory_mb(child.pid)
        run = LiveRun(paint[0], rss, peak)
        if idle_seconds:
            cpu = _proc_cpu_seconds(child.pid)
            time.sleep(idle_seconds)
            run.idle_cpu_percent = (_proc_cpu_seconds(child.pid) - cpu) / idle_seconds * 100
        return run
    finally:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGHUP)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        os.close(master)
        reader.join(timeout=2)


# -- as a user feels it: one huge tunnel, many small ones, --once against its floor ---------------------------


def _live_in_subprocess(connections: int, shape: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.live", "--connections", str(connections), "--shape", shape]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"live benchmark of {connections} ({shape}) failed:\n{done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def felt(sizes: Sequence[int], idle_seconds: float, say: Callable[..., None]) -> dict[str, Any]:
    """The figures of benchmarks.live and benchmarks.once per size, and the idle CPU of the real app at its default
    interval (polls falling in the window) with the first size in one tunnel."""
    from benchmarks import once

    found: dict[str, Any] = {"live": [], "once": []}
    for size in sizes:
        say(f"  the live view as felt, {size:,} connections in one tunnel…", flush=True)
        found["live"].append(_live_in_subprocess(size, "huge"))
        say(f"  --once -o json against its httpx + json floor, {size:,} connections…", flush=True)
        found["once"].append(once.run(size, rounds=3 if size <= 10_000 else 2))
    say(f"  the live view as felt, {sizes[0]:,} connections in small tunnels…", flush=True)
    found["live"].append(_live_in_subprocess(sizes[0], "many"))
    if idle_seconds:
        say(f"  idle CPU at the default interval, {sizes[0]:,} connections in one tunnel…", flush=True)
        with once.huge_server(sizes[0]) as server:
            run = live_run(server, idle_seconds=idle_seconds, timeout=600, tunnels=[once.HUGE_NAME], interval=None)
        found["idle"] = {"connections": sizes[0], "seconds": idle_seconds, "cpu_percent": run.idle_cpu_percent,
                         "first_paint_s": run.first_paint_s, "rss_mb": run.rss_mb}
    return found


def print_felt(found: dict[str, Any]) -> None:
    print()
    print("as a user feels it (wall seconds from the key or poll to the frame; longest event-loop stall meanwhile):")
    for live in found["live"]:
        where = "one tunnel" if live["shape"] == "huge" else f"{live['tunnels']:,} tunnels"
        print(f"  {live['connections']:,} connections in {where}:")
        for name, label in (
            ("first_row", "first data row (app start)"),
            ("unchanged_poll", "unchanged poll (r)"),
            ("failover", f"failover, {live['failover_moved']:,} new ids (r)"),
            ("sort", "s (the next sort column)"),
            ("filter_typed", "/NRT typed"),
            ("filter_applied", "enter (the box closes)"),
            ("filter_cleared", "esc clears it, a poll meanwhile"),
            ("focus_moved", "shift+tab (the focus to the tree)"),
            ("events_shown", "e (the event log shown)"),
            ("events_poll", "a poll with events, the log open (r)"),
            ("help_shown", "? (the help shown)"),
            ("help_closed", "esc (the help closed)"),
            ("colos_shown", "c (the colo picker shown)"),
            ("colos_closed", "esc (the colo picker closed)"),
        ):
            print(f"    {label:38} {live[name + '_s']:8.2f} s   longest stall {live[name + '_stall_ms']:8,.0f} ms")
        print(f"    RSS {live['rss_mb']:.0f} MB; marked stale by its own first poll: {live['stale_after_first']}")
    for once in found["once"]:
        cpu, rss = once["cpu_s"], once["peak_rss_mb"]
        print(
            f"  --once -o json, {once['connections']:,} connections: CPU {cpu['tunneltop']:.2f} s vs floor "
            f"{cpu['floor']:.2f} s = {once['cpu_ratio']:.2f}x; peak RSS {rss['tunneltop']:.0f} vs {rss['floor']:.0f} MB"
        )
    idle = found.get("idle")
    if idle:
        print(
            f"  idle CPU at the default interval, {idle['connections']:,} connections in one tunnel, "
            f"{idle['seconds']:g} s: {idle['cpu_percent']:.2f}% of one core"
        )


# -- the command ----------------------------------------------------------------------------------------------


def _size_in_subprocess(connections: int, polls: int, warmup: int, naive: bool) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.bench", "--child", str(connections)]
    command += ["--polls", str(polls), "--warmup", str(warmup)] + ([] if naive else ["--no-naive"])
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark of {connections} connections failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fmt(value: float, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _rows(results: list[dict[str, Any]]) -> Iterator[tuple[str, list[str]]]:
    yield "connections (actual)", [f"{r['connections']:,}" for r in results]
    yield "rows shown after warm-up (incl. ghosts)", [f"{r['rows_shown']:,}" for r in results]
    yield "parse + validate, first poll (ms)", [_fmt(r["parse_first_ms"]) for r in results]
    yield "parse + validate / later poll (ms)", [_fmt(r["parse_ms"]) for r in results]
    yield "change detection / poll (ms)", [_fmt(r["change_ms"]) for r in results]
    yield "UI: first poll into an empty app (ms)", [_fmt(r["first_ms"]) for r in results]
    yield "UI update / poll, no change (ms)", [_fmt(r["ui_still_ms"]) for r in results]
    yield "UI update / poll, 1% churn (ms)", [_fmt(r["ui_churn_ms"]) for r in results]
    yield "  worst of the measured polls (ms)", [_fmt(r["ui_churn_max_ms"]) for r in results]
    yield "  bytes to the terminal / poll", [_fmt(r["churn_bytes"], 0) for r in results]
    yield "UI: tick that expires marks+ghosts (ms)", [_fmt(r["expiry_ms"]) for r in results]
    yield "UI: plain header tick (ms)", [_fmt(r["tick_ms"], 2) for r in results]
    yield "account overview (home), 1% churn (ms)", [_fmt(r.get("overview_ms", math.nan)) for r in results]
    yield "naive DataTable clear + re-add (ms)", [_fmt(r["naive_ms"]) for r in results]
    yield "  speed-up of the 1% churn update (x)", [_fmt(r["speedup"]) for r in results]
    yield "  (measurement overhead subtracted, ms)", [_fmt(r["floor_ms"], 2) for r in results]
    yield "RSS after the polls, bench process (MB)", [_fmt(r["rss_mb"]) for r in results]
    yield "  peak RSS before the naive run (MB)", [_fmt(r["peak_rss_mb"]) for r in results]
    yield "  of which before the app started (MB)", [_fmt(r["harness_rss_mb"]) for r in results]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="connection counts (comma separated)")
    parser.add_argument("--polls", type=int, default=8, help="measured polls per figure (medians are printed)")
    parser.add_argument("--warmup", type=int, default=14, help="1%% churn polls before measuring (ghost steady state)")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="window for idle CPU (0 skips it)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive DataTable baseline")
    parser.add_argument("--no-processes", action="store_true", help="skip first paint, --once and idle CPU")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON document")
    parser.add_argument(
        "--felt-sizes", default="10000,100000",
        help="connections in one tunnel for the figures as a user feels them (benchmarks.live, benchmarks.once)",
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        from tunneltop.ui.lifecycle import tune_gc

        tune_gc()  # as run_app() does for the real app
        figures = asyncio.run(measure_size(args.child, polls=args.polls, warmup=args.warmup, naive=not args.no_naive))
        print(json.dumps(figures.summary()))
        return 0

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "terminal": f"{TERMINAL[0]}x{TERMINAL[1]}",
    }
    say = (lambda *a, **k: None) if args.json else print
    say(
        f"tunneltop benchmark: Python {report['python']} on {report['cpus']} CPUs ({report['machine']}), "
        f"terminal {report['terminal']}, a poll every {POLL_SECONDS:g} s of simulated time"
    )
    report["sizes"] = []
    for size in sizes:
        say(f"  measuring {size:,} connections…", flush=True)
        report["sizes"].append(_size_in_subprocess(size, args.polls, args.warmup, not args.no_naive))
    if not args.no_processes:
        say("  measuring whole processes against the loopback server…", flush=True)
        once = once_cold()
        report["once_cold_s"] = {"median": statistics.median(once), "min": min(once), "runs": len(once)}
        with _scale_server(1_000) as server:
            runs = [live_run(server) for _ in range(2)]
            runs.append(live_run(server, idle_seconds=args.idle_seconds))
        report["first_paint_1000_s"] = statistics.median(r.first_paint_s for r in runs)
        report["app_rss_1000_mb"] = runs[-1].rss_mb
        report["idle_cpu_percent"] = runs[-1].idle_cpu_percent
        with _scale_server(10_000) as server:
            big = live_run(server, timeout=300, tunnels=_all_tunnels(server))
        report["first_paint_10000_s"] = big.first_paint_s
        report["app_rss_10000_mb"] = big.rss_mb
        report["app_peak_rss_10000_mb"] = big.peak_rss_mb
    if not args.no_processes and args.felt_sizes:
        report["felt"] = felt([int(s) for s in args.felt_sizes.split(",") if s], args.idle_seconds, say)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    results = report["sizes"]
    width = 42
    print()
    print(f"{'':{width}}" + "".join(f"{s:>12,}" for s in sizes))
    for label, values in _rows(results):
        print(f"{label:{width}}" + "".join(f"{v:>12}" for v in values))
    if not args.no_processes:
        once = report["once_cold_s"]
        print()
        print(f"first paint with data, 1,000 connections (real app in a pty): {report['first_paint_1000_s']:.2f} s")
        print(
            f"first paint with data, 10,000 connections (every tunnel named): {report['first_paint_10000_s']:.2f} s"
        )
        print(
            f"real app RSS after its first poll: 1,000 connections {report['app_rss_1000_mb']:.0f} MB (account "
            f"overview); 10,000 connections {report['app_rss_10000_mb']:.0f} MB (every tunnel named, so all "
            f"connections are loaded and shown; peak {report['app_peak_rss_10000_mb']:.0f} MB)"
        )
        print(
            f"tunneltop --once --output json, cold (demo account): median {once['median']:.3f} s, "
            f"best {once['min']:.3f} s of {once['runs']}"
        )
        if report["idle_cpu_percent"] is not None:
            print(
                f"idle app between polls (1,000 connections), {args.idle_seconds:g} s: "
                f"{report['idle_cpu_percent']:.2f}% of one core"
            )
    if report.get("felt"):
        print_felt(report["felt"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
