"""``tunneltop serve``: the command line. The same flags, profiles and tunnels as the live view, plus where to
listen and, off loopback, the bearer token that guards the data.

    tunneltop serve [TUNNEL ...] [--listen HOST:PORT] [--auth-token-file PATH] [--interval N] [--budget N] ...

It binds to 127.0.0.1:9877 unless told otherwise. Another address is used only when asked for, and without
``--auth-token-file`` the server says on stderr that anyone who can reach it reads the data. SIGTERM and SIGINT
stop it within a few seconds with exit status 0. Textual is never imported here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from aiohttp import web

from tunneltop.config import ConfigError
from tunneltop.poll.target import Target
from tunneltop.report import EXIT_OK, EXIT_UNKNOWN, EXIT_USAGE
from tunneltop.sanitize import clean
from tunneltop.serve.poller import Poller
from tunneltop.serve.server import ServeApp, start

if TYPE_CHECKING:
    from tunneltop.record.store import Recorder

DEFAULT_LISTEN = "127.0.0.1:9877"
# Flags of the live view and --once/--watch that mean nothing to a server: accepted, kept out of its help.
NOT_FOR_SERVE = frozenset(
    {"once", "watch", "output", "ghost_seconds", "bell", "export_dir", "attach", "attach_token_file"}
)

EPILOG = """\
endpoints:
  /metrics          Prometheus text format (a scrape sends no request to Cloudflare)
  /healthz          the poller's own health: 200 while polls succeed, else 503
  /api/v1/snapshot  the tunneltop --once -o json document of the last poll
  /api/v1/events    server-sent events: each change (a --watch line) and each
                    poll's end; resumable with Last-Event-ID
  With --auth-token-file, all but /healthz need "Authorization: Bearer TOKEN".

examples:
  tunneltop serve                                  # every tunnel, on 127.0.0.1:9877
  tunneltop serve --listen 0.0.0.0:9877 --auth-token-file /run/secrets/tt
  tunneltop serve --record /var/lib/tunneltop/tt.db --record-keep 7d
  curl -s localhost:9877/metrics | grep tunneltop_tunnel_health
"""


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as a host and a port."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {value!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost: it may resolve anywhere


def build_serve_parser() -> argparse.ArgumentParser:
    from tunneltop.cli import build_parser

    parser = build_parser()
    parser.prog = "tunneltop serve"
    parser.description = (
        "One poller for a team: tunneltop's poll engine, headless, serving Prometheus\n"
        "metrics, its own health, the --once JSON snapshot and the change events over\n"
        "HTTP. Read-only, within the request budget."
    )
    parser.epilog = EPILOG
    for action in parser._actions:
        if action.dest in NOT_FOR_SERVE:
            action.help = argparse.SUPPRESS
    serve = parser.add_argument_group("serve")
    serve.add_argument(
        "--listen",
        type=parse_listen,
        default=parse_listen(DEFAULT_LISTEN),
        metavar="HOST:PORT",
        help=f"where to listen (default {DEFAULT_LISTEN}; another address only when asked, see --auth-token-file)",
    )
    serve.add_argument(
        "--auth-token-file",
        type=Path,
        metavar="PATH",
        help="require 'Authorization: Bearer TOKEN' on every path but /healthz, TOKEN being this file's content",
    )
    return parser


def read_token(path: Path, flag: str = "--auth-token-file") -> str:
    """The bearer token in ``path`` (surrounding whitespace dropped); ConfigError when unreadable or empty. The
    message names the file, never its content."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {flag} {path}: {type(exc).__name__}") from None
    if not token:
        raise ConfigError(f"{flag} {path} is empty")
    return token


class Serving:
    """One ``tunneltop serve``: the poller and the HTTP server over it, on one event loop."""

    def __init__(
        self,
        target: Target,
        interval: float,
        *,
        token: str | None = None,
        err: TextIO | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.err = err if err is not None else sys.stderr
        self.poller = Poller(target, interval, err=self.err, recorder=recorder)
        self.app = ServeApp(self.poller, token=token)
        self.addresses: list[tuple[str, int]] = []
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> None:
        """Listen (port 0 picks a free one: ``addresses`` says which); OSError when the address cannot be had."""
        self._runner, self.addresses = await start(self.app, host, port)
        for address, bound_port in self.addresses:
            shown = f"[{address}]" if ":" in address else address
            print(f"tunneltop serve: listening on http://{shown}:{bound_port}", file=self.err, flush=True)

    async def run(self, stop: asyncio.Event) -> int:
        """Poll until ``stop`` (or an error no retry can fix), then stop serving; the exit status."""
        try:
            return await self.poller.run(stop)
        finally:
            self.poller.feed.close()
            if self._runner is not None:
                await self._runner.cleanup()


async def serve(
    target: Target,
    interval: float,
    host: str,
    port: int,
    *,
    stop: asyncio.Event,
    token: str | None = None,
    err: TextIO | None = None,
    recorder: Recorder | None = None,
) -> int:
    """Poll and serve until ``stop``; the exit status (0 when stopped). With an open ``recorder`` (``--record``),
    every poll is recorded too."""
    serving = Serving(target, interval, token=token, err=err, recorder=recorder)
    try:
        await serving.start(host, port)
    except OSError as exc:
        reason = clean(exc.strerror or exc)
        print(f"tunneltop serve: cannot listen on {clean(host, 100)}:{port}: {reason}", file=serving.err)
        return EXIT_UNKNOWN
    return await serving.run(stop)


def exposure_warning(host: str, token: str | None) -> str | None:
    """What to say when the data is served beyond this host with nothing guarding it."""
    if is_loopback(host) or token is not None:
        return None
    return (
        f"warning: listening on {clean(host, 100)}, not loopback, with no --auth-token-file: anyone who can reach "
        "this address reads the tunnels' data (names, IPs, versions), unauthenticated"
    )


def run_serve(
    target: Target, interval: float, host: str, port: int, token: str | None, recorder: Recorder | None = None
) -> int:
    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        return await serve(target, interval, host, port, stop=stop, token=token, recorder=recorder)

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return EXIT_OK


def main(argv: Sequence[str]) -> int:
    from tunneltop.cli import build_target

    parser = build_serve_parser()
    args = parser.parse_args(argv)
    if args.once or args.watch or args.output or args.attach:
        parser.error("serve runs until stopped: --once, --watch, --output and --attach are for the plain command")
    if args.record is None and (args.record_keep or args.record_max):
        parser.error("--record-keep and --record-max go with --record FILE")
    host, port = args.listen
    try:
        token = read_token(args.auth_token_file) if args.auth_token_file is not None else None
    except ConfigError as exc:
        print(f"tunneltop serve: {clean(str(exc), 2000)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        target = build_target(args)
    except ConfigError as exc:
        print(f"tunneltop serve: {clean(str(exc), 2000)}", file=sys.stderr)
        return EXIT_UNKNOWN
    warning = exposure_warning(host, token)
    if warning is not None:
        print(f"tunneltop serve: {warning}", file=sys.stderr)
    target.share_budget()
    for notice in target.notices:
        print(f"tunneltop serve: {clean(notice, 2000)}", file=sys.stderr)
    if args.record is None:
        return run_serve(target, args.interval, host, port, token)
    from tunneltop.record.store import open_recorder

    # Before listening: a file another process records is refused with its pid.
    recorder = open_recorder(
        args.record,
        keep=args.record_keep,
        max_bytes=args.record_max,
        demo=target.demo,
        say=lambda message: print(f"tunneltop serve: {clean(message, 2000)}", file=sys.stderr),
    )
    if recorder is None:
        return EXIT_UNKNOWN
    try:
        return run_serve(target, args.interval, host, port, token, recorder)
    finally:
        recorder.close()
