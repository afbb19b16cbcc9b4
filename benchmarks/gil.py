"""How long a poll's decode and validation keep another thread from running: the GIL held at a stretch.

``python -m benchmarks.gil --connections 10000 100000`` builds one tunnel's connections answer (``huge_clients`` of
``benchmarks.standin``: 4 connections per connector, as the API's bytes) and the next poll's after a failover (8% of
the connections moved to another colo, new ids). In a worker thread, standing for the poll engine's, the client reads
them as the engine does, ``CloudflareClient.list_connectors`` with the tunnel's ``RecordCache`` (the HTTP answer
from an ``httpx.MockTransport``: ``_parse``'s decode of the body, then ``parse_connectors``): a first poll (nothing
cached: the whole answer's path) and the failover (the record-by-record path). Meanwhile the main thread, standing for
the live view's event loop, sleeps 1 ms at a time and records how late it wakes: the longest lag is the longest it
was kept from running.

Two ways, alternated, each ``--repeat`` times, in one process:

- ``before``: the code before, ``json.loads`` of the body and each list validated in one pydantic call;
- ``after``: ``api/jsondecode.py``'s pieces and ``model/parse.py``'s slices.

Figures per poll, in ms: the longest lag (min, median, max over the repeats; the thread switch interval, 5 ms, is
what any busy Python thread may make another wait) and the worker's CPU time; and the floor: the CPU time of
``json.loads`` of the first body alone, in the same process (``cpu_x``: a poll's median CPU over that floor;
``piecewise_decode_x``: ``jsondecode.loads`` alone over it). The collector is tuned as the live view tunes it
(``ui/lifecycle.tune_gc``); the records are dropped after each way's two polls, unmeasured.

What is left at 100,000 connections is the cyclic collector's: a collection walks every young object at once, and a
poll makes a million (the first poll's records, walked when the collector comes back on after their validation,
about 55 ms here; a failover's, a middle-generation collection of about 100 ms, timed with ``gc.callbacks``).
``--freeze`` freezes the heap after each poll, as the live view's ``HeapFreezer`` does once it is large.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import gc
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

import httpx

from benchmarks.live import FAILOVER_SHARE
from benchmarks.standin import huge_clients
from tunneltop.api import jsondecode
from tunneltop.api.client import CloudflareClient
from tunneltop.demo.simulator import rfc3339
from tunneltop.model import parse
from tunneltop.model.parse import RecordCache
from tunneltop.ui.lifecycle import HeapFreezer, tune_gc

ACCOUNT = "0" * 32
TUNNEL = "f70ff985-a4ef-4643-bbbc-4a0ed4fc8415"
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TICK = 0.001
POLLS = ("first", "failover")


def envelope(clients: list[dict[str, Any]]) -> bytes:
    """The connections endpoint's answer, as the stand-in (demo/cfapi.py) writes it."""
    document = {"result": clients, "success": True, "errors": [], "messages": [], "result_info": None}
    return json.dumps(document, separators=(",", ":")).encode()


def failed_over(clients: list[dict[str, Any]], share: float, seed: int = 9) -> list[dict[str, Any]]:
    """``share`` of the connections closed and reopened at another colo with new ids (as standin.failover)."""
    rng = Random(seed)
    clients = copy.deepcopy(clients)
    slots = [(client, n) for client in clients for n in range(len(client["conns"]))]
    for client, n in rng.sample(slots, round(len(slots) * share)):
        old = client["conns"][n]
        new_id = f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4000-8000-{rng.getrandbits(48):012x}"
        colo = "ORD" if old["colo_name"] != "ORD" else "DFW"
        client["conns"][n] = {**old, "id": new_id, "uuid": new_id, "colo_name": colo,
                              "opened_at": rfc3339(START + timedelta(minutes=5))}
    return clients


@contextlib.contextmanager
def code_before() -> Iterator[None]:
    """The code before: json.loads of the whole body, a slice as long as the list (one call), and what a poll
    dropped freed at once."""
    old: dict[tuple[Any, str], Any] = {
        (jsondecode, "loads"): _whole,
        (jsondecode, "release"): _keep,
        (parse, "_SLICE_WEIGHT"): sys.maxsize,
        (parse, "_empty"): _keep,
    }
    now = {(module, name): getattr(module, name) for module, name in old}
    for (module, name), value in old.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for (module, name), value in now.items():
            setattr(module, name, value)


def _whole(content: bytes, **_options: Any) -> Any:
    """json.loads of the whole body (what the client asks of jsondecode.loads besides, it did not do then)."""
    return json.loads(content)


def _keep(value: Any) -> None:
    """Nothing emptied: the value is freed whole when its last reference goes."""


def lagged(work: Callable[[], Any]) -> tuple[float, float]:
    """``work()`` on a worker thread while this one ticks: (longest lag, the worker's CPU time), in ms."""
    done = threading.Event()
    cpu: list[float] = []
    failed: list[BaseException] = []

    def worker() -> None:
        started = time.thread_time()
        try:
            work()
        except BaseException as exc:  # said on this thread, not left to wait for a worker that died
            failed.append(exc)
        finally:
            cpu.append(time.thread_time() - started)
            done.set()

    thread = threading.Thread(target=worker)
    longest = 0.0
    thread.start()
    while not done.is_set():
        asleep = time.perf_counter()
        time.sleep(TICK)
        longest = max(longest, time.perf_counter() - asleep - TICK)
    thread.join()
    if failed:
        raise failed[0]
    return longest * 1000, cpu[0] * 1000


def two_polls(bodies: list[bytes], connectors: int, freeze: bool) -> list[tuple[float, float]]:
    """Each body read in turn through one client and one RecordCache, as the engine reads a tunnel; with ``freeze``,
    the heap frozen after each poll as the live view's HeapFreezer would (unmeasured: gc.freeze is a list splice)."""
    freezer = HeapFreezer(min_rows=0) if freeze else None
    answers = iter(bodies)
    client = CloudflareClient(
        None, transport=httpx.MockTransport(lambda request: httpx.Response(200, content=next(answers)))
    )
    cache = RecordCache()

    def poll() -> None:
        found, problems = asyncio.run(client.list_connectors(ACCOUNT, TUNNEL, cache))
        assert len(found) == connectors and not problems, "every connector, and no problem"

    figures = []
    for _ in bodies:
        figures.append(lagged(poll))
        if freezer is not None:
            freezer.after_poll(connectors * 4)
    asyncio.run(client.aclose())
    gc.unfreeze()
    return figures  # and the records freed, unmeasured


def cpu_ms(decode: Callable[[bytes], Any], body: bytes) -> float:
    started = time.thread_time()
    decode(body)
    return (time.thread_time() - started) * 1000


def spread(values: list[float]) -> list[float]:
    return [round(f(values), 1) for f in (min, statistics.median, max)]


def measure(connections: int, repeat: int, freeze: bool) -> dict[str, Any]:
    clients = huge_clients(connections, START)
    bodies = [envelope(clients), envelope(failed_over(clients, FAILOVER_SHARE))]
    del clients
    connectors = -(-connections // 4)
    lags: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    floors: list[float] = []
    pieces: list[float] = []
    for _ in range(repeat):
        gc.collect()
        pieces.append(cpu_ms(jsondecode.loads, bodies[0]))
        for way in ("before", "after"):
            gc.collect()
            floors.append(cpu_ms(json.loads, bodies[0]))
            gc.collect()
            with code_before() if way == "before" else contextlib.nullcontext():
                figures = two_polls(bodies, connectors, freeze)
            for poll, (lag, cpu) in zip(POLLS, figures, strict=True):
                lags.setdefault((way, poll), []).append(lag)
                cpus.setdefault((way, poll), []).append(cpu)
    floor = statistics.median(floors)
    out: dict[str, Any] = {
        "connections": connections,
        "freeze": freeze,
        "bytes": len(bodies[0]),
        "floor_ms": round(floor, 1),
        "piecewise_decode_x": round(statistics.median(pieces) / floor, 2),
    }
    for way in ("before", "after"):
        out[way] = {
            poll: {
                "longest_lag_ms": spread(lags[way, poll]),
                "cpu_ms": spread(cpus[way, poll]),
                "cpu_x": round(statistics.median(cpus[way, poll]) / floor, 2),
            }
            for poll in POLLS
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--freeze", action="store_true", help="freeze the heap after each poll, as the live view does")
    args = parser.parse_args(argv)
    tune_gc()
    for connections in args.connections:
        print(json.dumps(measure(connections, args.repeat, args.freeze)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
