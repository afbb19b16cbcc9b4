"""A real HTTP server on 127.0.0.1 serving `FakeCloudflare`, for tests and manual runs.

    python -m tunneltop.demo.server [--port N] [--seed N] [--token-file PATH] [--scenario drift|lost-redundancy]
                                    [--local-ready PORT]

It binds to loopback only and never logs requests (headers carry credentials).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.simulator import SCENARIOS, SimulatedAccount

HOST = "127.0.0.1"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for a handler sleeping in a simulated hang

    def __init__(self, port: int, fake: FakeCloudflare) -> None:
        super().__init__((HOST, port), _Handler)
        self.fake = fake
        self.stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Drop every open keep-alive connection, as a server that went away would."""
        with self._open_lock:
            open_now = list(self._open)
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up mid-answer (its timeout fired) is expected; stay quiet.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without this, Nagle's algorithm and delayed ACKs add ~40 ms to every keep-alive request.
    disable_nagle_algorithm = True
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        url = urlsplit(self.path)
        answer = self.server.fake.handle(
            self.command, url.path, parse_qsl(url.query, keep_blank_values=True), dict(self.headers.items()))
        if answer.delay > 0 and self.server.stopping.wait(answer.delay):
            self.close_connection = True
            return
        try:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)
        except OSError:
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # never log: request lines are harmless but headers are not, and quiet is simplest


class LoopbackServer:
    """FakeCloudflare over real HTTP on 127.0.0.1 (port 0 picks a free one), in a daemon thread."""

    def __init__(self, fake: FakeCloudflare, port: int = 0) -> None:
        self.fake = fake
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/client/v4"

    def start(self) -> LoopbackServer:
        if self._server is None:
            self._server = _Server(self._port, self.fake)
            # A short poll interval keeps stop() fast.
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="tunneltop-loopback", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.server_close()
        # Without this, handler threads keep answering on connections a client already holds open.
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _read_token(token_file: str | None) -> tuple[str | None, str]:
    """The accepted token and where it came from (for the hint; the token itself is never printed)."""
    if token_file:
        return Path(token_file).read_text(encoding="utf-8").strip(), "file"
    token = os.environ.get("CLOUDFLARE_API_TOKEN")
    return (token, "env") if token else (None, "none")


def _log_requests(fake: FakeCloudflare, path: str | None, logged: int) -> int:
    """Append the requests received since the last call to ``path``; how many are logged now."""
    requests = fake.requests[logged:]
    if path and requests:
        with open(path, "a", encoding="utf-8") as log:
            for request in requests:
                log.write(f"{request.time.isoformat()} {request.method} {request.path}\n")
    return logged + len(requests)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tunneltop.demo.server",
                                     description="Serve a simulated Cloudflare API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--token-file", help="file holding the API token to accept "
                        "(default: $CLOUDFLARE_API_TOKEN; with neither, no auth is required)")
    parser.add_argument("--tunnels", type=int, default=None, help="scale scenario with this many tunnels")
    parser.add_argument("--connectors-per-tunnel", type=int, default=2)
    parser.add_argument("--request-log", metavar="FILE",
                        help="append one line per request received (time, method, path): request rates measured "
                        "at the server's side (python -m tunneltop.demo.rates FILE)")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, default=[],
                        help="switch on what the demo should show, on web-prod: config drift (a connector behind "
                        "the remote config's version), lost redundancy (one connector, one colo); repeatable")
    parser.add_argument("--local-ready", type=int, metavar="PORT",
                        help="also play cloudflared on this host: GET /ready on 127.0.0.1:PORT for web-prod's first "
                        "connector (20241 is where tunneltop looks by default; 0 picks a free port)")
    args = parser.parse_args(argv)

    token, source = _read_token(args.token_file)
    sim = SimulatedAccount(seed=args.seed, tunnels=args.tunnels,
                           connectors_per_tunnel=args.connectors_per_tunnel)
    for scenario in args.scenario:
        sim.scenario(scenario)
    fake = FakeCloudflare(sim, tokens=[token] if token else [], require_auth=token is not None)
    server = LoopbackServer(fake, port=args.port).start()
    print(f"tunneltop demo server on {server.base_url}  (account {sim.account_id}, seed {args.seed})")
    here = None
    if args.local_ready is not None:
        from tunneltop.demo.local_ready import LocalReadyServer, simulated

        here = LocalReadyServer(simulated(fake), args.local_ready).start()
        print(f"cloudflared /ready on http://{here.address}/ready  (tunneltop --local-metrics {here.address})")
    print("Point tunneltop at it with:")
    if source == "file":
        print(f'  CLOUDFLARE_BASE_URL={server.base_url} CLOUDFLARE_API_TOKEN="$(cat {args.token_file})"')
    elif source == "env":
        print(f"  CLOUDFLARE_BASE_URL={server.base_url}  (CLOUDFLARE_API_TOKEN as already set)")
    else:
        print(f"  CLOUDFLARE_BASE_URL={server.base_url} CLOUDFLARE_API_TOKEN=anything  (auth not required)")
    print("Ctrl-C stops it.", flush=True)
    done = threading.Event()
    # SIGTERM too: a shell running this in the background ignores SIGINT for it.
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    logged = 0
    try:
        while not done.wait(0.5):
            logged = _log_requests(fake, args.request_log, logged)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if here is not None:
            here.stop()
        _log_requests(fake, args.request_log, logged)
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
