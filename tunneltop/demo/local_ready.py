"""A stand-in for cloudflared's metrics server on this host: ``GET /ready`` answered as cloudflared does,
``{"status": 200|503, "readyConnections": N, "connectorId": "<uuid>"}`` (HTTP 200 when N > 0, else 503).

- ``LocalReadyServer``: real HTTP on 127.0.0.1 (port 0 picks a free one), in a daemon thread, for tests and by hand:
  ``python -m tunneltop.demo.local_ready --port 20241 --connector-id UUID --ready 4``;
- ``ReadyTransport``: the same answer in-process from a simulated account's connector (``--demo``'s "this host").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx

from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.simulator import DEMO_TUNNELS

HOST = "127.0.0.1"
# The address the demo's simulated cloudflared answers on (cloudflared's first default port).
DEMO_ADDRESS = f"{HOST}:20241"

Answer = Callable[[], tuple[int, dict[str, Any]]]


def ready_body(connector_id: str | None, ready: int) -> tuple[int, dict[str, Any]]:
    """cloudflared's /ready: its HTTP status and body. ``connector_id`` None: a release before 2022 (no id)."""
    status = 200 if ready > 0 else 503
    body: dict[str, Any] = {"status": status, "readyConnections": ready}
    if connector_id is not None:
        body["connectorId"] = connector_id
    return status, body


def simulated(fake: FakeCloudflare, tunnel_id: str = DEMO_TUNNELS["web-prod"], index: int = 0) -> Answer:
    """/ready of a simulated connector (the tunnel's ``index``-th): its active connections, as the sim has them."""

    def answer() -> tuple[int, dict[str, Any]]:
        with fake.lock:
            fake.sim.advance(fake.clock())
            clients = [c for c in fake.sim.live_clients(tunnel_id) if isinstance(c, dict)]
            if len(clients) <= index:
                return ready_body(None, 0)
            client = clients[index]
            ready = sum(1 for c in client.get("conns") or () if c.get("is_pending_reconnect") is False)
            return ready_body(str(client.get("id")), ready)

    return answer


class ReadyTransport(httpx.AsyncBaseTransport):
    """Answers ``/ready`` in-process (no socket); anything else is a 404, as cloudflared's server gives."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if request.url.path != "/ready":
            return httpx.Response(404, text="404 page not found\n", request=request)
        status, body = self.answer()
        return httpx.Response(status, json=body, request=request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self.server.requests += 1
        if self.path.split("?")[0] != "/ready":
            status, payload = 404, b"404 page not found\n"
        else:
            status, body = self.server.answer()
            payload = json.dumps(body).encode()
        # A client may hang up before the answer (a probe that gave up, a test's end): that is its business.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if status != 404 else "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, answer: Answer) -> None:
        super().__init__((HOST, port), _Handler)
        self.answer = answer
        self.requests = 0


class LocalReadyServer:
    """cloudflared's /ready over real HTTP on 127.0.0.1, in a daemon thread. ``answer`` may change while it runs."""

    def __init__(self, answer: Answer, port: int = 0) -> None:
        self._answer = answer
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def answer(self) -> Answer:
        return self._answer

    @answer.setter
    def answer(self, answer: Answer) -> None:
        self._answer = answer
        if self._server is not None:
            self._server.answer = answer

    @property
    def address(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        return f"{HOST}:{self._server.server_address[1]}"

    @property
    def requests(self) -> int:
        return self._server.requests if self._server is not None else 0

    def start(self) -> LocalReadyServer:
        if self._server is None:
            self._server = _Server(self._port, self._answer)
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-ready", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> LocalReadyServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tunneltop.demo.local_ready", description="Answer GET /ready on 127.0.0.1 as cloudflared does."
    )
    parser.add_argument("--port", type=int, default=20241, help="port on 127.0.0.1 (default 20241, cloudflared's)")
    parser.add_argument("--connector-id", help="the connector id to report (default: none, as before 2022)")
    parser.add_argument("--ready", type=int, default=4, help="readyConnections (default 4; 0 answers 503)")
    args = parser.parse_args(argv)
    body = ready_body(args.connector_id, args.ready)
    server = LocalReadyServer(lambda: body, args.port).start()
    print(f"cloudflared /ready stand-in on http://{server.address}/ready  (Ctrl-C stops it)", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
