"""Command line: argument parsing and the headless path (``--once``). Textual is imported only for the live UI.

Over ~400 lines because it is the one place where flags, the environment and the config file become a run for
every front end (live view, ``--once``, ``--watch``, ``--attach``, ``--record``); serve and replay add their own
flags in their packages.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from tunneltop import __version__
from tunneltop.api.errors import ApiError, UsageError
from tunneltop.completion import add_completion_flags
from tunneltop.config import ConfigError
from tunneltop.poll.account import AccountChoiceNeeded, utc_now
from tunneltop.poll.engine import PollEngine
from tunneltop.poll.local import OFF, LocalMetricsError, LocalReadyProbe, parse_address, probe_for
from tunneltop.poll.target import Target
from tunneltop.profiles import (
    DEFAULT_BUDGET,
    DEFAULT_INTERVAL,
    MAX_BUDGET,
    Profile,
    load_keys,
    load_profile,
    merge_settings,
)
from tunneltop.report import EXIT_UNKNOWN, EXIT_USAGE, exit_status, failure_line, render_table, write_json
from tunneltop.sanitize import clean

if TYPE_CHECKING:
    from tunneltop.record.store import Recorder

MIN_INTERVAL = 1.0
# Headless runs may sit out a short 429; a live screen shows a countdown instead of blocking.
ONCE_MAX_RATE_LIMIT_WAIT = 30.0


class _Parser(argparse.ArgumentParser):
    usage_status = EXIT_USAGE  # EXIT_UNKNOWN for --once: a monitoring plugin's usage error is UNKNOWN

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(self.usage_status, f"{self.prog}: error: {message}\n")


_ONCE_OUTPUTS = ("--output=table", "--output=json", "-otable", "-ojson")


def once_asked(argv: Sequence[str]) -> bool:
    """Whether the command line asks for --once (``-o table``/``-o json`` imply it), read before parsing it, so
    that even a bad flag beside it exits UNKNOWN (3) as the monitoring plugin guidelines say, not 64."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if (len(arg) > 3 and "--once".startswith(arg)) or arg in _ONCE_OUTPUTS:
            return True
        if arg in ("-o", "--output") and list(argv[i + 1 : i + 2]) in (["table"], ["json"]):
            return True
    return False


def _local_metrics(value: str) -> str:
    if value.strip().lower() == OFF:
        return OFF
    try:
        return parse_address(value)
    except LocalMetricsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _interval(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not MIN_INTERVAL <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"interval must be between {MIN_INTERVAL:g} and 3600 seconds")
    return seconds


def _budget(value: str) -> int:
    try:
        per_minute = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of requests per minute: {value!r}") from None
    if not 1 <= per_minute <= MAX_BUDGET:
        raise argparse.ArgumentTypeError(f"the budget must be between 1 and {MAX_BUDGET} requests per minute")
    return per_minute


def _age(value: str) -> timedelta:
    from tunneltop.record.retention import parse_age

    try:
        return parse_age(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _size(value: str) -> int:
    from tunneltop.record.retention import parse_size

    try:
        return parse_size(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


EPILOG = """\
environment:
  CLOUDFLARE_API_TOKEN   API token with "Cloudflare Tunnel Read" (preferred)
  CLOUDFLARE_EMAIL       with CLOUDFLARE_API_KEY: a global API key (legacy;
  CLOUDFLARE_API_KEY       when a token is set too, the token wins)
  CLOUDFLARE_ACCOUNT_ID  which account, when the credentials see several
  CLOUDFLARE_BASE_URL    API base URL (or CLOUDFLARE_API_BASE_URL); default
                           https://api.cloudflare.com/client/v4
  TUNNELTOP_PROFILE      which profile of the config file, like --profile
  TUNNELTOP_INTERVAL     seconds between polls, like --interval
  TUNNELTOP_BUDGET       requests per minute, like --budget
  XDG_CONFIG_HOME        config file: $XDG_CONFIG_HOME/tunneltop/config.toml
                           (default ~/.config/tunneltop/config.toml)
  Flags beat the environment, which beats the config file. No flag takes a
  secret: the command line is visible to every user (use --token-file PATH).

examples:
  export CLOUDFLARE_API_TOKEN=...     # a token with "Cloudflare Tunnel Read"
  tunneltop                           # every tunnel of the account, live
  tunneltop web-prod api-staging      # just these tunnels (names or UUIDs)
  tunneltop --once                    # print once and exit: scripts, cron
  tunneltop --once -o json | jq .     # the same as JSON
  tunneltop --watch | jq -c 'select(.severity != "info")'
                                      # one JSON line per change, for alerting
  tunneltop --watch --record tt.db --record-keep 7d > /dev/null
  tunneltop replay tt.db --at -15m    # the --once table as it was 15 min ago
  tunneltop replay tt.db              # the live view over it ([ ] steps)
  tunneltop --demo                    # a simulated account, no credentials

keys in the live view (? lists them all; ctrl+p finds an action by name):
  ?  help                 enter  drill into a tunnel or connector
  /  filter               esc    back out, or clear the filter
  e  event log            r      refresh now
  v  switch views         p      pause or resume polling
  q  quit

exit status of --once (a monitoring plugin: its first line is the status):
   0 OK: every tunnel healthy or inactive, nothing found
   1 WARNING: a tunnel degraded (a pending reconnect counts), or a warning
     finding (config drift, all connections in one colo, old cloudflared...)
   2 CRITICAL: a tunnel down or without connectors, or a critical finding
     (a required tunnel inactive, an origin IP outside origin_ips...)
   3 UNKNOWN: credentials, network or API error; a usage error of --once
  64 usage error of --watch or the live view: a bad flag, or a tunnel name
     that matches no tunnel (--watch: 0 when stopped, else 3 or 64)
"""


def build_parser() -> _Parser:
    # The epilog is laid out by hand for 80 columns; the flags' help is still wrapped to the terminal.
    parser = _Parser(
        prog="tunneltop",
        description="htop for Cloudflare Tunnels: every cloudflared connector and edge connection,\n"
        "live. Read-only: tunneltop only ever reads from the API.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("tunnels", nargs="*", metavar="TUNNEL", help="tunnel name or UUID (default: every tunnel)")
    parser.add_argument("--once", action="store_true", help="fetch once, print, and exit (no screen)")
    parser.add_argument(
        "--watch",
        action="store_true",
        help="no screen: poll forever and print one JSON object per change event (JSON Lines); ctrl-c stops",
    )
    parser.add_argument(
        "--output",
        "-o",
        choices=("table", "json", "jsonl"),
        help="headless output: table or json (imply --once), jsonl (implies --watch)",
    )
    parser.add_argument("--account", metavar="ID", help="Cloudflare account id (default: CLOUDFLARE_ACCOUNT_ID)")
    parser.add_argument("--token-file", metavar="PATH", type=Path, help="read the API token from this file")
    parser.add_argument(
        "--interval",
        "-n",
        type=_interval,
        default=None,
        metavar="SECONDS",
        help=f"seconds between polls in the live view and --watch (default {DEFAULT_INTERVAL:g})",
    )
    parser.add_argument(
        "--ghost-seconds",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long a closed connection stays on screen as a dimmed 'gone' row (default 60)",
    )
    parser.add_argument("--bell", action="store_true", help="ring the terminal bell when a tunnel's health worsens")
    parser.add_argument(
        "--export-dir", type=Path, metavar="DIR", help="where x (export) and w (screenshot) write (default: .)"
    )
    parser.add_argument(
        "--budget",
        type=_budget,
        metavar="N",
        help=f"requests per minute tunneltop may send (default {DEFAULT_BUDGET}: a quarter of Cloudflare's limit, "
        f"which your dashboard and other tools share; at most {MAX_BUDGET})",
    )
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="a [profiles.NAME] of the config file ($XDG_CONFIG_HOME/tunneltop/config.toml); "
        "flags beat the environment, which beats the file",
    )
    parser.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="the live view, --watch and serve: record every poll to this SQLite file, to look back at with "
        "'tunneltop replay FILE'",
    )
    parser.add_argument(
        "--record-keep", type=_age, metavar="AGE", help="drop what is older than this as it records, e.g. 7d"
    )
    parser.add_argument(
        "--record-max", type=_size, metavar="SIZE", help="keep the recording under this size, e.g. 500MB"
    )
    parser.add_argument(
        "--local-metrics",
        type=_local_metrics,
        metavar="HOST:PORT",
        help="cloudflared's metrics server on this host, to tell which connector runs here and compare its "
        "readyConnections (default: look once at 127.0.0.1:20241-20245; 'off' does not look)",
    )
    parser.add_argument("--demo", action="store_true", help="watch a built-in simulated account (no credentials)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the demo account's simulation (default 7)")
    parser.add_argument(
        "--attach",
        metavar="URL",
        help="read a 'tunneltop serve' server instead of the Cloudflare API: the live view, --once or --watch, "
        "no credentials",
    )
    parser.add_argument(
        "--attach-token-file", metavar="PATH", type=Path, help="the serve server's bearer token (its --auth-token-file)"
    )
    parser.add_argument(
        "--version", "-V", action="version", version=f"tunneltop {__version__}", help="print the version and exit"
    )
    add_completion_flags(parser, __version__)
    return parser


def _err(message: str) -> None:
    print(f"tunneltop: {clean(message, 2000)}", file=sys.stderr)


def build_target(args: argparse.Namespace) -> Target:
    if args.demo:
        from tunneltop.demo.local_ready import DEMO_ADDRESS, ReadyTransport, simulated
        from tunneltop.demo.transport import DEMO_ACCOUNT_ID, DEMO_BASE_URL, demo_transport

        args.interval = args.interval or DEFAULT_INTERVAL
        args.budget = args.budget or DEFAULT_BUDGET
        transport = demo_transport(args.seed)
        # This host runs one of the simulated connectors (web-prod's first), unless --local-metrics says otherwise.
        here = ReadyTransport(simulated(transport.cloudflare))
        local = probe_for(args.local_metrics) if args.local_metrics else LocalReadyProbe(DEMO_ADDRESS, transport=here)
        return Target(
            DEMO_BASE_URL,
            None,
            args.account or DEMO_ACCOUNT_ID,
            args.tunnels,
            demo=True,
            transport=transport,
            budget_per_minute=args.budget,
            # The config file's [expect] applies to the demo too: the way to try expectations out.
            expectations=load_profile(args.profile, None, os.environ).expectations,
            local=local,
        )
    # Flags beat the environment, which beats the config file's profile, which beats the defaults.
    profile = load_profile(args.profile, None, os.environ)
    settings = merge_settings(
        profile,
        os.environ,
        account=args.account,
        token_file=args.token_file,
        interval=args.interval,
        budget=args.budget,
        tunnels=args.tunnels,
    )
    args.interval, args.budget = settings.interval, settings.budget_per_minute
    if args.record is None and not (args.once or args.output in ("table", "json")):
        args.record = profile.record  # the live view's and --watch's (--once polls once: nothing to keep)
    return Target(
        settings.base_url,
        settings.credentials,
        settings.account_id,
        settings.tunnels,
        notices=settings.notices,
        budget_per_minute=settings.budget_per_minute,
        expectations=settings.expectations,
        local=_probe(args.local_metrics, profile),
    )


def _probe(flag: str | None, profile: Profile) -> LocalReadyProbe | None:
    """The flag's, else the profile's ``local_metrics``, else the default ports."""
    try:
        return probe_for(flag or profile.local_metrics)
    except LocalMetricsError as exc:
        raise ConfigError(f"{profile.label}: local_metrics: {exc}") from None


def _status_failure(message: str) -> None:
    """--once -o table: the monitoring plugin's status line on stdout (UNKNOWN) when there is nothing to report."""
    sys.stdout.write(failure_line(message) + "\n")


def _once_failed(error: BaseException, output: str) -> int:
    if output == "table":
        _status_failure(error.message if isinstance(error, ApiError | UsageError) else str(error))
    return report_failure(error, EXIT_UNKNOWN)


def report_failure(error: BaseException, usage_status: int = EXIT_USAGE) -> int:
    """Say why a headless run cannot go on, on stderr, and the exit status that goes with it (``usage_status`` for
    a usage error: --once's is UNKNOWN)."""
    if isinstance(error, AccountChoiceNeeded):
        _err(f"{error}:")
        for acc in error.accounts:
            print(f"  {clean(acc.id, 40)}  {clean(acc.name, 80)}", file=sys.stderr)
        return EXIT_UNKNOWN
    if isinstance(error, UsageError):
        _err(error.message)
        return usage_status
    _err(error.message if isinstance(error, ApiError) else str(error))
    return EXIT_UNKNOWN


async def run_once(target: Target, output: str, *, ending: bool = False) -> int:
    """One poll within this run's cap (a minute's budget, less what other tunneltop processes on this credential
    sent in the last minute, and at most a share of what Cloudflare says remains), printed. ``ending``: the process
    ends with this poll (tunneltop run as the program): what it read is left to the end (see _left_to_the_end)."""
    # No cyclic garbage collection meanwhile: the answers' records all live until the output is written and the
    # process ends, so each collection would walk a heap of up to millions of objects and free next to nothing (at
    # 100,000 connections, about a quarter of the run). Turned back on after, for a caller in a process that lives on.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return await _poll_once(target, output, ending)
    finally:
        if collecting:
            gc.enable()


def _left_to_the_end(value: object) -> None:
    """Keep ``value`` (the snapshot: every record read) to the process's end, and past it: held by a list that holds
    itself, frozen out of the cyclic collector's sight (gc.freeze, with everything else tracked: splices of its
    lists, no walk), so that nothing frees it, not even the interpreter's teardown (it frees what modules hold, and
    collects cycles, never frozen ones). The operating system takes the memory back whole, where freeing it an
    object at a time (at 100,000 connections about a million objects) and the collections on the way were 127M
    instructions, 2% of the run. Frozen now, before the collector is on again: a collection would walk all of it."""
    holder: list[object] = [value]
    holder.append(holder)
    gc.freeze()


async def _poll_once(target: Target, output: str, ending: bool = False) -> int:
    # one_shot: no other thread to let run, nothing to keep for a next poll (see CloudflareClient).
    async with target.client(max_rate_limit_wait=ONCE_MAX_RATE_LIMIT_WAIT, one_shot=True) as client:
        engine = PollEngine(
            client,
            target.account_id,
            target.refs,
            min_burst=target.budget_per_minute,
            expectations=target.expectations,
            reach=True,
            local=target.local,
            events=False,  # one poll, printed: what changed since is nobody's question (25,000 events at 100,000)
        )
        outcome = await engine.poll()
        status = engine.status
    snapshot = outcome.snapshot
    if snapshot is None:
        error = outcome.error if outcome.error is not None else ApiError(outcome.holding or "no data")
        return _once_failed(error, output)
    for problem in engine.usage_errors:
        # A tunnel named that does not exist is the caller's mistake: say so (the others were fetched).
        return _once_failed(problem, output)
    skipped = engine.not_fetched(snapshot)
    if output == "json":
        write_json(sys.stdout, snapshot, demo=target.demo, not_fetched=skipped, budget=status)
    else:
        sys.stdout.write(render_table(snapshot, utc_now(), demo=target.demo, not_fetched=skipped, budget=status))
    if ending:
        _left_to_the_end(snapshot)
    return exit_status(snapshot)


def _watch(target: Target, args: argparse.Namespace) -> int:
    from tunneltop.stream import run_watch

    if args.record is None:
        return run_watch(target, args.interval)
    recorder = _open_recorder(args, target)
    if recorder is None:
        return EXIT_UNKNOWN
    try:
        return run_watch(target, args.interval, recorder=recorder)
    finally:
        recorder.close()


def _open_recorder(args: argparse.Namespace, target: Target) -> Recorder | None:
    from tunneltop.record.store import open_recorder

    return open_recorder(args.record, keep=args.record_keep, max_bytes=args.record_max, demo=target.demo, say=_err)


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["serve"]:
        from tunneltop.serve.command import main as serve_main

        return serve_main(args_in[1:])
    if args_in[:1] == ["replay"]:
        from tunneltop.record.command import main as replay_main

        return replay_main(args_in[1:])
    parser = build_parser()
    if once_asked(args_in):
        parser.usage_status = EXIT_UNKNOWN
    args = parser.parse_args(argv)
    watch = args.watch or args.output == "jsonl"
    if watch and (args.once or args.output in ("table", "json")):
        parser.error("--watch prints JSON Lines (-o jsonl); --once and -o table/json print once")
    if args.ghost_seconds < 0:
        parser.error("--ghost-seconds cannot be negative")
    if args.attach is not None:
        from tunneltop.serve.attached import run_attached

        return run_attached(args, parser)
    if args.record is None and (args.record_keep or args.record_max):
        parser.error("--record-keep and --record-max go with --record FILE")
    if args.record is not None and (args.once or args.output in ("table", "json")):
        parser.error("--record records the live view and --watch; --once polls once: nothing to keep")
    try:
        target = build_target(args)
    except ConfigError as exc:
        if not watch and (args.once or args.output) and (args.output or "table") == "table":
            _status_failure(str(exc))
        _err(str(exc))
        return EXIT_UNKNOWN
    target.share_budget()
    for notice in target.notices:
        _err(notice)
    if watch:
        return _watch(target, args)
    if args.once or args.output:
        if argv is None:
            # Run as the program (see below): what the imports made lives to the end, so later collections need not
            # walk it again.
            gc.freeze()
        try:
            status = asyncio.run(run_once(target, args.output or "table", ending=argv is None))
        except KeyboardInterrupt:
            return 130
        if argv is None:
            # Run as the program, which ends now: what is left (every module, pydantic's schemas) is frozen out of the
            # cyclic collector's sight, so that the interpreter's teardown does not walk it in collection after
            # collection (70-100 ms of CPU: a sixth of a run at 10,000 connections). It is still freed, by reference
            # counting, but for the poll's snapshot (see _left_to_the_end). A caller that passes its own argv keeps
            # its collector as it was.
            gc.freeze()
        return status
    from tunneltop.ui.app import run_app
    from tunneltop.ui.commands import KeymapError, keymap

    try:
        keys = keymap(load_keys(None, os.environ))
    except (ConfigError, KeymapError) as exc:
        _err(str(exc))
        return EXIT_UNKNOWN

    recorder = _open_recorder(args, target) if args.record is not None else None
    if args.record is not None and recorder is None:
        return EXIT_UNKNOWN
    try:
        return run_app(
            target,
            interval=args.interval,
            ghost_seconds=args.ghost_seconds,
            bell=args.bell,
            export_dir=args.export_dir,
            keymap=keys,
            recorder=recorder,
        )
    finally:
        if recorder is not None:
            recorder.close()


if __name__ == "__main__":
    sys.exit(main())
