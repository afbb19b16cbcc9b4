"""Where the live view's memory goes: what the poll engine, the session and the rows keep per connection.

``python -m benchmarks.memory --connections 100000`` prints one JSON document. The account is ``benchmarks.live``'s
(one tunnel, 4 connections per connector), served by its stand-in in a child process over loopback HTTP
(``benchmarks.standin``), so that this process holds only what the live view's data layers keep: the poll engine
(``PollEngine``, its ``RecordCache`` per tunnel, its last snapshot), a ``Session`` fed each outcome, and the rows it
hands the table (``Session.rows``), as ``ui/app.py`` keeps them. The table and tree widgets are not built (the sort
keys the table keeps per row are, from ``views.rows``).

Polls: the first (everything decoded and validated), an unchanged one (``r``: the same bytes), and a failover (8%
of the connections close and as many open at another colo). CPU seconds (this process, every thread) of each, and
of a floor in the same run: the connections answer read with plain httpx and decoded with ``json.loads``.

``holders``: bytes per connection after the unchanged poll, by what holds them. Objects are walked from the
holders in the order listed and each is counted once, by the first holder that reaches it (strings a raw record
shares with its model count as the model's; ``RecordCache`` counts what only it keeps). ``rss_mb`` is the whole
process after the unchanged poll (``peak_rss_mb``: the most it was until then); ``heap_mb`` what the polls added:
tracemalloc's figure with ``--trace``, else the RSS over the baseline taken before the first poll.

``pymalloc_mb`` and ``pymalloc_after_failover_mb``: Python's small-object allocator, which holds most of the RSS:
the arenas it has (1 MiB each, given back only when wholly free) and the bytes of live objects in them. After a
changed poll the difference is what the poll's decoded answer left: the records that changed, kept, and the strings
jiter's cache keeps (api/jsondecode.py), are spread over all of the answer's arenas, whose free room only later
allocations can use.

``rss_after_failover_trimmed_mb``: the RSS once glibc's ``malloc_trim`` has given back the free memory its heaps
keep (objects over 512 bytes are not pymalloc's), and ``malloc_trim_cpu_ms`` what that took.

``--trace``: also tracemalloc's top lines and files (it slows every poll: no CPU figures then) and the objects the
collector tracks, by type, that the polls added.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import re
import resource
import sys
import tempfile
import time
import tracemalloc
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any

from pydantic import BaseModel

from benchmarks.live import rss_mb
from benchmarks.standin import StandIn, open_standin

_MODEL_SLOTS = ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")


def pymalloc_mb() -> dict[str, float]:
    """The small-object allocator's arenas and the bytes in use in them (its own statistics, which it writes to the
    C stderr: read back from a temporary file). Empty where it has none (not CPython)."""
    stats = getattr(sys, "_debugmallocstats", None)
    if stats is None:
        return {}
    with tempfile.TemporaryFile() as out:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            stats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode(errors="replace")
    arenas = re.search(r"(\d+) arenas \* (\d+) bytes/arena", text)
    in_use = re.search(r"# bytes in allocated blocks\s*=\s*([\d,]+)", text)
    if arenas is None or in_use is None:
        return {}
    return {
        "arenas": round(int(arenas.group(1)) * int(arenas.group(2)) / 2**20, 1),
        "in_use": round(int(in_use.group(1).replace(",", "")) / 2**20, 1),
    }


def trimmed_rss_mb() -> tuple[float, float]:
    """The RSS after glibc's ``malloc_trim(0)`` has given back what its heaps hold free (objects over 512 bytes
    come from them: lists, long strings, large dicts' tables; one heap per thread that allocates), and the CPU
    milliseconds the call took; (0, 0) where there is no glibc."""
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return 0.0, 0.0
    trim.argtypes = [ctypes.c_size_t]
    started = time.process_time()
    trim(0)
    return rss_mb(), (time.process_time() - started) * 1000


def _peak_rss_mb(now_mb: float) -> float:
    # The kernel updates the high-water mark lazily: the RSS just read may be above it.
    return max(now_mb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


# -- sizes by holder --------------------------------------------------------------------------------------------


class Sizer:
    """Bytes of what is reachable from a holder and not yet counted for an earlier one. Follows containers, pydantic
    models and dataclasses (the data a poll keeps), never types, functions, enums or other objects."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def size(self, roots: Iterable[object], follow: bool = True) -> int:
        total = 0
        stack = list(roots)
        seen = self.seen
        while stack:
            obj = stack.pop()
            if obj is None or isinstance(obj, bool | type | Enum) or callable(obj) or id(obj) in seen:
                continue
            if type(obj) is int and -5 <= obj <= 256:
                continue  # shared by every user
            seen.add(id(obj))
            total += sys.getsizeof(obj)
            if follow:
                stack.extend(_children(obj))
        return total


def _children(obj: object) -> Iterator[object]:
    if isinstance(obj, str | bytes | int | float | date | timedelta):
        return
    if isinstance(obj, dict):
        yield from obj.keys()
        yield from obj.values()
    elif isinstance(obj, list | tuple | set | frozenset | deque):
        yield from obj
    elif isinstance(obj, BaseModel):
        for name in _MODEL_SLOTS:
            yield getattr(obj, name, None)
    elif dataclasses.is_dataclass(obj):
        for name in getattr(type(obj), "__slots__", ()):
            yield getattr(obj, name, None)
        yield getattr(obj, "__dict__", None)


def _model_parts(models: list[BaseModel]) -> dict[str, list[object]]:
    parts: dict[str, list[object]] = {"object": [], "fields_set": [], "extra": [], "strings": [], "datetimes": []}
    for model in models:
        parts["object"] += (model, model.__dict__)
        parts["fields_set"].append(model.__pydantic_fields_set__)
        parts["extra"].append(model.__pydantic_extra__)
        for value in model.__dict__.values():
            if isinstance(value, str):
                parts["strings"].append(value)
            elif isinstance(value, datetime):
                parts["datetimes"] += (value, value.tzinfo)
    return parts


def holders(engine: Any, session: Any, rows: list[Any], connections: int) -> dict[str, float]:
    """Bytes per connection by holder (see the module's doc)."""
    from tunneltop.model.records import Connection, Connector
    from tunneltop.views.rows import SORT_KEYS, natural_key

    states = engine.previous.tunnels
    connectors: list[Connector] = [c for s in states for c in s.connectors or ()]
    conns: list[Connection] = [n for c in connectors for n in c.conns]
    conns += [r.conn for r in session.ghosts.values()]
    sizer = Sizer()
    out: dict[str, int] = {}
    for what, models in (("Connection", conns), ("Connector", connectors)):
        for part, objects in _model_parts(models).items():  # type: ignore[arg-type]
            out[f"{what} {part}"] = sizer.size(objects, follow=False)
        # The lists (features, conns) and what is in them not counted yet.
        out[f"{what} lists"] = sizer.size([v for m in models for v in m.__dict__.values() if isinstance(v, list)])
    caches = list(engine._records.values())
    # Its dicts and what only it keeps: the digests of the connectors' texts (the records it keeps are counted above).
    out["RecordCache (connectors, texts, loose)"] = sizer.size(
        [getattr(c, name, None) for c in caches for name in ("connectors", "texts", "loose")]
    )
    out["RecordCache last answer (digest, list)"] = sizer.size([c.last for c in caches])
    kept = ("previous", "_fetched", "_states", "_last_tunnels", "_tunnel_records", "_tunnels", "_known")
    out["engine: snapshot, states, findings"] = sizer.size([getattr(engine, name) for name in kept])
    out["engine: findings rules"] = sizer.size([engine.rules.__dict__])
    everyone = list(rows) + list(session.ghosts.values())
    out["ConnRow objects"] = sizer.size(everyone, follow=False)
    out["row keys"] = sizer.size([r.key for r in everyone], follow=False)
    out["rows list (app.rows)"] = sizer.size([rows], follow=False)
    for name in ("_row_memo", "_state_rows", "_rows_seen", "_colo_parts", "_colos_seen"):
        if hasattr(session, name):  # the session's own bookkeeping, as it is now
            out[f"Session.{name}"] = sizer.size([getattr(session, name)])
    out["Session marks, ghosts, log, trends"] = sizer.size(
        [session.marks, session.ghosts, list(session.log), session.trends, session._tunnel_baselines]
    )
    # Not the data layers' own: what the connections table keeps per row to sort by (virtual_table._sort_keys),
    # made by views.rows' sort keys.
    out["table sort keys (natural_key, as the table keeps them)"] = sizer.size(
        [[(SORT_KEYS["state"](r), natural_key(r)) for r in rows]]
    )
    figures = {name: round(size / connections, 1) for name, size in out.items()}
    figures["total"] = round(sum(out.values()) / connections, 1)
    return figures


# -- the polls --------------------------------------------------------------------------------------------------


async def _floor_cpu(standin: StandIn, path: str) -> float:
    """CPU seconds of one read of the connections answer with plain httpx, decoded by ``json.loads``."""
    import httpx

    headers = standin.credentials.headers() if standin.credentials is not None else {}
    base_url = standin.base_url.rstrip("/") + "/"
    async with httpx.AsyncClient(base_url=base_url, headers=headers, transport=standin.transport) as http:
        started = time.process_time()
        json.loads((await http.get(path)).content)
        return time.process_time() - started


def _type_counts() -> Counter[str]:
    return Counter(type(o).__name__ for o in gc.get_objects())


FAILOVER_SHARE = 0.08


async def measure(standin: StandIn, trace: bool) -> dict[str, Any]:
    from tunneltop.poll.engine import STARTUP_BURST, PollEngine
    from tunneltop.poll.target import Target
    from tunneltop.views.session import Session

    connections = standin.connections
    path = f"accounts/{standin.account_id}/cfd_tunnel/{standin.tunnel_id}/connections"
    target = Target(standin.base_url, standin.credentials, standin.account_id, standin.refs)
    client = target.client()
    floor = [await _floor_cpu(standin, path) for _ in range(3)]
    engine = PollEngine(client, standin.account_id, standin.refs, interval=3600.0, min_burst=STARTUP_BURST, reach=True)
    session = Session()
    figures: dict[str, Any] = {"connections": connections, "floor_cpu_s": sorted(floor)[1]}
    rows: list[Any] = []
    gc.collect()
    types_before = _type_counts()
    figures["rss_baseline_mb"] = baseline = rss_mb()
    if trace:
        tracemalloc.start()

    async def poll(name: str) -> None:
        nonlocal rows
        started = time.process_time()
        outcome = await engine.poll()
        assert outcome.snapshot is not None, outcome.error
        session.on_snapshot(outcome.snapshot, datetime.now(UTC), outcome.events)
        rows = session.rows(outcome.snapshot)  # what the app keeps as app.rows
        session.colo_counts(outcome.snapshot)  # the monitor view's colo strip, redrawn with each poll
        if not trace:
            figures[f"{name}_cpu_s"] = time.process_time() - started
        engine.refresh()  # the next poll reads the tunnel again, as the view's r does

    await poll("first_poll")
    await poll("unchanged_poll")
    gc.collect()
    figures["rss_mb"] = rss_mb()
    figures["peak_rss_mb"] = _peak_rss_mb(figures["rss_mb"])
    figures["pymalloc_mb"] = pymalloc_mb()
    if trace:
        current, peak = tracemalloc.get_traced_memory()
        figures["heap_mb"] = current / 2**20
        figures["peak_heap_mb"] = peak / 2**20
        snap = tracemalloc.take_snapshot()
        figures["top_lines"] = [
            f"{s.size / connections:7.1f} B/conn {s.count:8d} {_short(s.traceback[0].filename)}:{s.traceback[0].lineno}"
            for s in snap.statistics("lineno")[:20]
        ]
        figures["top_files"] = [
            f"{s.size / connections:7.1f} B/conn  {_short(s.traceback[0].filename)}"
            for s in snap.statistics("filename")[:10]
        ]
        added = _type_counts() - types_before
        figures["gc_objects_added"] = dict(added.most_common(15))
    else:
        figures["heap_mb"] = figures["rss_mb"] - baseline
    figures["bytes_per_connection"] = holders(engine, session, rows, connections)
    figures["failover_moved"] = standin.failover(FAILOVER_SHARE, 30.0)
    await poll("failover_poll")
    gc.collect()
    figures["rss_after_failover_mb"] = rss_mb()
    figures["peak_rss_after_failover_mb"] = _peak_rss_mb(figures["rss_after_failover_mb"])
    figures["pymalloc_after_failover_mb"] = pymalloc_mb()
    figures["rss_after_failover_trimmed_mb"], figures["malloc_trim_cpu_ms"] = trimmed_rss_mb()
    if trace:
        figures["heap_after_failover_mb"] = tracemalloc.get_traced_memory()[0] / 2**20
    figures["ghosts"] = len(session.ghosts)
    figures["bytes_per_connection_after_failover"] = holders(engine, session, rows, connections)
    await client.aclose()
    return figures


def _short(filename: str) -> str:
    return filename.split("/site-packages/")[-1].split("/work/main/")[-1]


def run(connections: int, trace: bool = False) -> dict[str, Any]:
    from tunneltop.ui.lifecycle import tune_gc

    tune_gc()  # as run_app() does for the real app
    standin = open_standin("process", connections, "huge")
    try:
        return asyncio.run(measure(standin, trace))
    finally:
        standin.close()


def main(argv: list[str] | None = None, out: Callable[[str], object] = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--trace", action="store_true", help="tracemalloc's top lines and gc counts (slower)")
    args = parser.parse_args(argv)
    out(json.dumps(run(args.connections, args.trace), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
