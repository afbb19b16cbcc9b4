"""The Cloudflare stand-in of ``benchmarks.live``: the account it polls, served from a process of its own.

A user's Cloudflare is not in their process, so the stand-in must not be in the app's either: its ``json.dumps`` of
a 33 MB answer (100,000 connections) would hold the app's GIL and show up as stalls of the app.
``open_standin("process", ...)`` starts

    python -m benchmarks.standin --connections N [--shape huge|many]

which builds the account (the same seeds as in the app's process), freezes the simulator and serves it over real
HTTP on 127.0.0.1 (an ephemeral port) with the project's loopback server (``tunneltop.demo.server``). It accepts the
token in ``$TUNNELTOP_STANDIN_TOKEN`` only (the parent makes one per run; it is never printed). On stdout it
writes one JSON line (base URL, account, the tunnel's id, the names to watch, connections), then answers one line
per command read from stdin:

- ``failover SHARE SECONDS``: SHARE of the tunnel's connections close and reopen at another colo with new ids,
  opened SECONDS after the account's start; answers how many moved;
- ``requests``: how many requests it has received so far (request rates are measured at the stand-in's side);
- ``connections``: how many connections the account has now.

End of input (``quit``, or the parent gone) stops it. ``open_standin("inprocess", ...)`` is the old way, the same
account behind an in-process transport, with the same interface.

Each tunnel's connections are encoded once whenever the account changes (at the start, and by ``failover`` before
it answers), and those bytes are served to every request for them (``EncodedOnce``): a user's Cloudflare builds its
answers on Cloudflare's machines, not on theirs, and here the stand-in shares the app's 2 cores, where encoding a
33 MB answer (100,000 connections) took 0.6-0.8 s of each poll's time on screen. Everything on the app's side (the
request, the HTTP read, decoding and all that follows) is timed as before.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random
from typing import IO, Any, Protocol

import httpx

from tunneltop.api.auth import Credentials
from tunneltop.demo.cfapi import JSON_TYPE, FakeCloudflare, FakeResponse, envelope
from tunneltop.demo.server import LoopbackServer
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID, SimulatedAccount, rfc3339
from tunneltop.demo.transport import DEMO_BASE_URL, DemoTransport

PER_CONNECTOR = 4
COLOS = (("DFW", "IAH"), ("ORD", "DFW"), ("NRT", "KIX"), ("AMS", "FRA"), ("LAX", "SJC"))
HUGE_NAME = "prod-huge-00000"
TOKEN_ENV = "TUNNELTOP_STANDIN_TOKEN"
SERVERS = ("process", "inprocess")


def _conn(rng: Random, client: dict[str, Any], colo: str, opened: datetime) -> dict[str, Any]:
    conn_id = f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4000-8000-{rng.getrandbits(48):012x}"
    return {
        "colo_name": colo,
        "id": conn_id,
        "is_pending_reconnect": False,
        "origin_ip": client["_ip"],
        "opened_at": rfc3339(opened),
        "client_id": client["id"],
        "client_version": client["version"],
        "uuid": conn_id,
    }


def huge_clients(connections: int, start: datetime, seed: int = 5) -> list[dict[str, Any]]:
    """One tunnel's connectors for ``connections`` connections: 4 per connector, two colos each."""
    rng = Random(seed)
    clients = []
    for index in range((connections + PER_CONNECTOR - 1) // PER_CONNECTOR):
        client: dict[str, Any] = {
            "id": f"{index:08x}-c0de-4000-8000-{rng.getrandbits(48):012x}",
            "features": ["ha-origin", "serialized_headers"],
            "version": "2025.4.0",
            "arch": "linux_amd64",
            "config_version": 3,
            "run_at": rfc3339(start - timedelta(hours=2, seconds=index)),
            "conns": [],
            "_ip": f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}",
        }
        pair = COLOS[index % len(COLOS)]
        for n in range(min(PER_CONNECTOR, connections - index * PER_CONNECTOR)):
            client["conns"].append(_conn(rng, client, pair[n % 2], start - timedelta(hours=1)))
        clients.append(client)
    for client in clients:
        client.pop("_ip")
    return clients


def failover(sim: SimulatedAccount, tunnel_id: str, share: float, now: datetime, seed: int = 9) -> int:
    """``share`` of the tunnel's connections close and reopen at another colo with new ids (a colo failover)."""
    rng = Random(seed)
    clients = sim.live_clients(tunnel_id)
    slots = [(client, i) for client in clients for i in range(len(client["conns"]))]
    moved = rng.sample(slots, round(len(slots) * share))
    for client, i in moved:
        old = client["conns"][i]
        colo = "ORD" if old["colo_name"] != "ORD" else "DFW"
        client["_ip"] = old["origin_ip"]
        client["conns"][i] = _conn(rng, client, colo, now)
        client.pop("_ip")
    return len(moved)


class EncodedOnce(FakeCloudflare):
    """FakeCloudflare answering a tunnel's connections with bytes encoded when the account last changed (``encode``,
    called under the lock), not on every request: the answer's encoding is Cloudflare's work, not the polling
    machine's. The bytes are the very ones ``FakeCloudflare`` would send."""

    def __init__(self, sim: SimulatedAccount, **kwargs: Any) -> None:
        super().__init__(sim, **kwargs)
        # id() of a tunnel's clients list (the simulator's own, changed in place) -> (that list, its answer's bytes).
        self._encoded: dict[int, tuple[list[Any], bytes]] = {}

    def encode(self, tunnel_ids: Iterable[str]) -> None:
        """Encode these tunnels' connections now (the account changed); hold ``lock``."""
        for tunnel_id in tunnel_ids:
            clients = self.sim.live_clients(tunnel_id)
            self._encoded[id(clients)] = (clients, FakeCloudflare._json(200, envelope(clients)).body)

    # An instance method where FakeCloudflare has a staticmethod: every answer is made through self._json.
    def _json(self, status: int, payload: dict[str, Any]) -> FakeResponse:  # type: ignore[override]
        result = payload.get("result")
        encoded = self._encoded.get(id(result))
        if status == 200 and encoded is not None and encoded[0] is result and payload == envelope(result):
            return FakeResponse(status, {"Content-Type": JSON_TYPE}, encoded[1])
        return FakeCloudflare._json(status, payload)


@dataclass
class Account:
    """The benchmark's account: the frozen simulator, the tunnel a failover hits, the names the app watches."""

    sim: SimulatedAccount
    start: datetime
    tunnel_id: str
    refs: list[str]


def build_account(connections: int, shape: str, start: datetime) -> Account:
    """``huge``: one named tunnel holding every connection; ``many``: the scale scenario's small tunnels (2
    connectors x 4 connections), every one named."""
    if shape == "huge":
        sim = SimulatedAccount(seed=3, start=start, tunnels=0)
        tunnel_id = sim.add_tunnel(HUGE_NAME, clients=huge_clients(connections, start))["id"]
        refs = [HUGE_NAME]
    else:
        per_tunnel = 8
        sim = SimulatedAccount(seed=3, start=start, tunnels=max(1, round(connections / per_tunnel / 0.96)))
        tunnel_id = next(t for t in sim.tunnel_ids() if sim.live_clients(t))
        refs = list(sim.tunnel_ids())
    sim.freeze()
    return Account(sim, start, tunnel_id, refs)


def _start() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# -- what the benchmark holds: either kind of stand-in ------------------------------------------------------------


class StandIn(Protocol):
    """Where the app and the floor send their requests, and the benchmark's controls of the account behind it."""

    kind: str
    base_url: str
    credentials: Credentials | None
    transport: httpx.AsyncBaseTransport | None  # None: real HTTP to base_url
    account_id: str
    tunnel_id: str
    refs: list[str]
    connections: int

    def failover(self, share: float, seconds: float) -> int: ...

    def requests(self) -> int: ...

    def close(self) -> None: ...


class InProcessStandIn:
    """The old way: FakeCloudflare behind an httpx transport in the app's own process (no sockets)."""

    kind = "inprocess"

    def __init__(self, connections: int, shape: str) -> None:
        self.base_url = DEMO_BASE_URL
        self.credentials: Credentials | None = None
        self.account_id = DEMO_ACCOUNT_ID
        self.account = build_account(connections, shape, _start())
        self.fake = EncodedOnce(self.account.sim, require_auth=False, rate_limit=10**9)
        with self.fake.lock:
            self.fake.encode(self.account.sim.tunnel_ids())
        self.transport: httpx.AsyncBaseTransport | None = DemoTransport(self.fake)
        self.tunnel_id = self.account.tunnel_id
        self.refs = self.account.refs
        self.connections = self.account.sim.connection_count()

    def failover(self, share: float, seconds: float) -> int:
        with self.fake.lock:
            moved = failover(self.account.sim, self.tunnel_id, share, self.account.start + timedelta(seconds=seconds))
            self.fake.encode([self.tunnel_id])
            return moved

    def requests(self) -> int:
        with self.fake.lock:
            return len(self.fake.requests)

    def close(self) -> None:
        pass


class ProcessStandIn:
    """The stand-in in a child process (``python -m benchmarks.standin``), polled over loopback HTTP."""

    kind = "process"

    def __init__(self, connections: int, shape: str) -> None:
        self.transport: httpx.AsyncBaseTransport | None = None
        token = secrets.token_urlsafe(24)
        self.credentials: Credentials | None = Credentials.token(token, source="the benchmark's stand-in")
        command = [sys.executable, "-m", "benchmarks.standin", "--connections", str(connections), "--shape", shape]
        # stderr is inherited: a failing child says why where the benchmark's own errors go.
        self._child = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, TOKEN_ENV: token}
        )
        try:
            ready = json.loads(self._reply())
        except BaseException:
            self.close()
            raise
        self.base_url: str = ready["base_url"]
        self.account_id: str = ready["account_id"]
        self.tunnel_id: str = ready["tunnel_id"]
        self.refs: list[str] = ready["refs"]
        self.connections: int = ready["connections"]

    def _reply(self) -> str:
        assert self._child.stdout is not None
        line = self._child.stdout.readline()
        if not line:
            self._child.wait()
            raise RuntimeError(f"the stand-in process ended (exit code {self._child.returncode})")
        if line.startswith("error"):
            raise RuntimeError(f"the stand-in: {line.strip()}")
        return line

    def _ask(self, command: str) -> str:
        assert self._child.stdin is not None
        self._child.stdin.write(command + "\n")
        self._child.stdin.flush()
        return self._reply()

    def failover(self, share: float, seconds: float) -> int:
        return int(self._ask(f"failover {share} {seconds}"))

    def requests(self) -> int:
        return int(self._ask("requests"))

    def close(self) -> None:
        """End of input stops the child; one that does not stop in 10 s is killed. Safe to call twice."""
        if self._child.stdin is not None and not self._child.stdin.closed:
            # OSError: the child is already gone (a broken pipe on the flush).
            with contextlib.suppress(OSError):
                self._child.stdin.close()
        try:
            self._child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()
        if self._child.stdout is not None:
            self._child.stdout.close()


def open_standin(kind: str, connections: int, shape: str) -> StandIn:
    """The benchmark's account with ``connections`` in ``shape``, served as ``kind`` says (``SERVERS``)."""
    if kind == "process":
        return ProcessStandIn(connections, shape)
    if kind == "inprocess":
        return InProcessStandIn(connections, shape)
    raise ValueError(f"unknown stand-in server {kind!r} (one of {', '.join(SERVERS)})")


# -- the child -----------------------------------------------------------------------------------------------------


def serve(connections: int, shape: str, token: str, commands: Iterable[str], out: IO[str]) -> None:
    """Build the account, serve it on 127.0.0.1 and answer ``commands`` (see the module doc) until they end."""

    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    account = build_account(connections, shape, _start())
    fake = EncodedOnce(account.sim, tokens=[token], rate_limit=10**9)
    with fake.lock:
        fake.encode(account.sim.tunnel_ids())
    with LoopbackServer(fake) as server:
        ready = {
            "base_url": server.base_url,
            "account_id": account.sim.account_id,
            "tunnel_id": account.tunnel_id,
            "refs": account.refs,
            "connections": account.sim.connection_count(),
        }
        say(json.dumps(ready))
        for line in commands:
            if not line.strip():
                continue
            verb, *args = line.split()
            # Under the server's lock: a request being answered never sees the account half changed.
            with fake.lock:
                if verb == "failover" and len(args) == 2:
                    now = account.start + timedelta(seconds=float(args[1]))
                    moved = failover(account.sim, account.tunnel_id, float(args[0]), now)
                    fake.encode([account.tunnel_id])  # before answering: the benchmark times from the answer on
                    say(str(moved))
                elif verb == "requests" and not args:
                    say(str(len(fake.requests)))
                elif verb == "connections" and not args:
                    say(str(account.sim.connection_count()))
                elif verb == "quit":
                    break
                else:
                    say(f"error: unknown command {verb!r} (failover SHARE SECONDS, requests, connections, quit)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.standin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--shape", choices=("huge", "many"), default="huge")
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV)
    if not token:
        print(f"benchmarks.standin: set {TOKEN_ENV} to the token it should accept", file=sys.stderr)
        return 2
    serve(args.connections, args.shape, token, sys.stdin, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
