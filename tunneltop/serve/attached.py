"""``tunneltop --attach URL``: the plain command's front ends fed by a ``tunneltop serve`` server (``attach.py``)
instead of the Cloudflare API: ``--once`` prints the server's latest snapshot as ``--once`` does, ``--watch`` prints
the changes as ``--watch`` does (the same JSON Lines, worked out from the server's snapshots as the server's own
events are), and the live view shows it with a badge saying where the data comes from. ``--record FILE`` records
what the live view or ``--watch`` reads. No Cloudflare credential is read or needed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tunneltop.api.errors import ApiError
from tunneltop.config import ConfigError
from tunneltop.poll.account import utc_now
from tunneltop.poll.planner import DEFAULT_INTERVAL
from tunneltop.poll.source import LiveSource
from tunneltop.poll.target import Target
from tunneltop.report import EXIT_UNKNOWN, exit_status, render_json, render_table
from tunneltop.sanitize import clean
from tunneltop.serve.attach import AttachSource
from tunneltop.serve.command import read_token

if TYPE_CHECKING:
    from tunneltop.record.store import Recorder

NOT_ATTACHED = ("demo", "account", "token_file", "budget")


def _err(message: str) -> None:
    print(f"tunneltop: {clean(message, 2000)}", file=sys.stderr)


async def once_attached(source: AttachSource, output: str) -> int:
    """The server's latest snapshot, printed as ``--once`` prints one, and its exit status."""
    try:
        outcome = await source.poll()
        while outcome.holding is not None:  # the server's first poll is under way
            outcome = await source.poll()
    finally:
        await source.aclose()
    if outcome.snapshot is None:
        error = outcome.error
        _err(error.message if isinstance(error, ApiError) else str(error))
        return EXIT_UNKNOWN
    snapshot = outcome.snapshot
    if output == "json":
        sys.stdout.write(render_json(snapshot))
    else:
        sys.stdout.write(render_table(snapshot, utc_now()))
    return exit_status(snapshot)


def run_attached(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run what the command line asks for against the server at ``args.attach``."""
    given = [name for name in NOT_ATTACHED if getattr(args, name, None)]
    if given or args.tunnels:
        what = ", ".join(f"--{n.replace('_', '-')}" for n in given) or "tunnel names"
        parser.error(f"--attach reads what the serve server watches, as it polls it: {what} go to the server")
    watch = args.watch or args.output == "jsonl"
    if args.record is not None and not watch and (args.once or args.output):
        parser.error("--record records the live view and --watch; --once polls once: nothing to keep")
    if args.record is None and (args.record_keep or args.record_max):
        parser.error("--record-keep and --record-max go with --record FILE")
    token: str | None = None
    if args.attach_token_file is not None:
        try:
            token = read_token(Path(args.attach_token_file), "--attach-token-file")
        except ConfigError as exc:
            _err(str(exc))
            return EXIT_UNKNOWN
    source = AttachSource(args.attach, interval=args.interval or DEFAULT_INTERVAL, token=token)
    if (args.once or args.output) and not watch:
        try:
            return asyncio.run(once_attached(source, args.output or "table"))
        except KeyboardInterrupt:
            return 130
    recorder = None
    if args.record is not None:
        from tunneltop.record.store import open_recorder

        recorder = open_recorder(args.record, keep=args.record_keep, max_bytes=args.record_max, say=_err)
    if args.record is not None and recorder is None:
        return EXIT_UNKNOWN
    try:
        return _follow(args, source, watch, recorder)
    finally:
        if recorder is not None:
            recorder.close()


def _follow(args: argparse.Namespace, source: AttachSource, watch: bool, recorder: Recorder | None) -> int:
    """``--watch`` or the live view over ``source``, recording to ``recorder`` when given."""
    if watch:
        from tunneltop.stream import run_watch

        return run_watch(Target(source.url, None), source.interval, recorder=recorder, source=source)
    from tunneltop.profiles import load_keys
    from tunneltop.ui.app import run_app
    from tunneltop.ui.commands import KeymapError, keymap

    try:
        keys = keymap(load_keys(None, os.environ))
    except (ConfigError, KeymapError) as exc:
        _err(str(exc))
        return EXIT_UNKNOWN
    live: LiveSource = source
    if recorder is not None:
        from tunneltop.record.source import RecordedSource

        live = RecordedSource(source, recorder)
    return run_app(
        Target(source.url, None),
        source=live,
        interval=source.interval,
        ghost_seconds=args.ghost_seconds,
        bell=args.bell,
        export_dir=args.export_dir,
        keymap=keys,
    )
