"""``tunneltop replay FILE``: look back at a recording (``--record FILE``). Sends no request to anyone.

- ``--at TIME [-o table|json]``: the ``--once`` document as it was then (the last poll at or before TIME), and
  ``--once``'s exit status then. TIME is RFC 3339 (``2026-12-01T03:12:00Z``; no zone: UTC) or relative to the
  end of the recording (``-15m``, ``-2h``, ``-1d``). When the last poll then had failed, the reason goes to stderr
  and the exit status is 3, as ``--once`` would have said.
- ``--events [--since TIME] [--until TIME] [-o jsonl]``: the recorded change events, one JSON object a line.
- neither: the live view over the recording (REPLAY, its time and the poll in its header; ``[`` ``]`` step,
  ``{`` ``}`` jump to events, ``t`` to a time, ``p`` plays: see ``ui/commands.py``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

from tunneltop.model.snapshot import Snapshot
from tunneltop.record.reader import Recording
from tunneltop.record.schema import RecordingError
from tunneltop.report import EXIT_UNKNOWN, EXIT_USAGE, exit_status, failure_line, render_json, render_table
from tunneltop.sanitize import clean

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TIME_FLAGS = ("--at", "--since", "--until")


class TimeError(RecordingError):
    """A time given that is not one, or that the recording does not cover: the caller's mistake (exit 64)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tunneltop replay",
        description="Look back at a recording made with --record FILE. Sends no request to Cloudflare.",
        epilog="TIME: 2026-12-01T03:12:00Z (no zone: UTC), or from the end of the recording: -15m, -2h, -1d\n"
        "exit status of --at: what --once would have said then (0 ok, 1 degraded, 2 down, 3 unknown)\n\n"
        "keys of the live view over a recording (? lists them all):\n"
        "  [ ]  one poll back / forward        p  play / pause\n"
        "  { }  previous / next event          E  which events: warning and worse,\n"
        "  t    jump to a time                    errors only, any",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="the recording")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--at", metavar="TIME", help="the state then, as --once printed it")
    what.add_argument("--events", action="store_true", help="the recorded change events (JSON Lines)")
    parser.add_argument("--since", metavar="TIME", help="with --events: from this time on (included)")
    parser.add_argument("--until", metavar="TIME", help="with --events: up to this time (included)")
    parser.add_argument(
        "--output", "-o", choices=("table", "json", "jsonl"), help="--at: table or json; --events: jsonl"
    )
    return parser


def parse_time(text: str, recording: Recording) -> datetime:
    """RFC 3339, or ``-N[smhd]`` back from the end of the recording."""
    relative = _RELATIVE.match(text.strip())
    if relative is not None:
        return recording.end - timedelta(seconds=float(relative.group(1)) * _UNITS[relative.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise TimeError(f"not a time: {text!r} (e.g. 2026-12-01T03:12:00Z, or -15m from the end)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def not_fetched(snapshot: Snapshot) -> list[str]:
    """As ``PollEngine.not_fetched`` said of this snapshot when it was live (it reads only the snapshot)."""
    return [
        s.tunnel.id
        for s in snapshot.tunnels
        if s.connectors is None and s.error is None and (s.tunnel.status or "").lower() != "inactive"
    ]


def _at(recording: Recording, text: str, output: str) -> int:
    try:
        index = recording.index_at(parse_time(text, recording))
    except RecordingError as exc:
        raise TimeError(str(exc)) from None
    row = recording.polls[index]
    if not row.ok:
        if output == "table":  # as --once would have: a monitoring plugin's status line whatever happens
            sys.stdout.write(failure_line(row.error or "the poll failed") + "\n")
        print(f"tunneltop: at {row.at} the poll had failed: {clean(row.error, 2000)}", file=sys.stderr)
        return EXIT_UNKNOWN
    snapshot = recording.snapshot(index)
    skipped = not_fetched(snapshot)
    if output == "json":
        sys.stdout.write(render_json(snapshot, demo=recording.demo, not_fetched=skipped))
    else:
        # Ages as they were then: the recording's moment is "now".
        sys.stdout.write(render_table(snapshot, snapshot.fetched_at, demo=recording.demo, not_fetched=skipped))
    return exit_status(snapshot)


def _events(recording: Recording, since: str | None, until: str | None) -> int:
    low = parse_time(since, recording) if since is not None else None
    high = parse_time(until, recording) if until is not None else None
    for document in recording.events(low, high):
        sys.stdout.write(json.dumps(document, ensure_ascii=True) + "\n")
    sys.stdout.flush()
    return 0


def _glued(argv: Sequence[str]) -> list[str]:
    """``--at -15m`` as ``--at=-15m``: argparse would take a value starting with '-' for a flag."""
    words: list[str] = []
    for word in argv:
        if words and words[-1] in _TIME_FLAGS and _RELATIVE.match(word):
            words[-1] = f"{words[-1]}={word}"
        else:
            words.append(word)
    return words


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(_glued(argv))
    if (args.since or args.until) and not args.events:
        parser.error("--since and --until go with --events")
    if args.at is not None and args.output not in (None, "table", "json"):
        parser.error("--at prints -o table or -o json")
    if args.events and args.output not in (None, "jsonl"):
        parser.error("--events prints -o jsonl")
    try:
        with Recording(args.file) as recording:
            if args.at is not None:
                return _at(recording, args.at, args.output or "table")
            if args.events:
                return _events(recording, args.since, args.until)
            return _live(recording)
    except RecordingError as exc:
        print(f"tunneltop: {clean(str(exc), 2000)}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, TimeError) else EXIT_UNKNOWN
    except BrokenPipeError:
        return 0


def _live(recording: Recording) -> int:
    from tunneltop.record.source import ReplaySource
    from tunneltop.ui.app import run_app

    source = ReplaySource(recording)
    # The view's clock is the recording's: ages, change marks and ghost rows as they were then.
    return run_app(source.target(), source=source, interval=source.interval, clock=source.now)
