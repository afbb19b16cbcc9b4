"""``tunneltop --once -o json`` against a floor: the same requests made with plain httpx, each answer decoded with
``json.loads`` and the lot written with ``json.dumps``. Both run as whole processes against the loopback stand-in
server, interleaved (floor, tunneltop, floor, ...), and their CPU time (user + system, of the child) and peak RSS
are compared as ratios: the machine may be busy, the ratio of neighbours much less so.

The floor is a ``python -c`` program that imports httpx and json and nothing else (it once ran as this module,
importing the stand-in server's code too: about 0.2 s of CPU it never used, which flattered the ratio). Both run
as an installed program does, from compiled bytecode: the children may write it (to a cache directory of their
own under /tmp), which the warm-up runs do, whatever ``PYTHONDONTWRITEBYTECODE`` says here (it made every run
compile tunneltop's ~45 modules from source).

``--instructions`` also counts the instructions each program runs (valgrind's cachegrind, no cache simulation: about
20 times slower), one run of each: a count that does not move with what else the machine runs, where the CPU time
of neighbouring runs on 2 cores shared with other work was seen to differ by a third from one run to the next. It
leaves out the kernel's work (the CPU times' ``system`` part) and waits. It also counts each program's start alone
(the interpreter and the imports it makes before its first request: ``STARTS``), and so what the rest, the run,
costs: at 10,000 connections tunneltop's start is about half of it (pydantic alone is a quarter of the floor's
whole count), so the two ratios say different things. The floor's HTTP modules that httpx loads at its first
request count in its run. ``pydantic_bound`` is the best ratio any program that validates with pydantic could
reach against this floor: the floor's count plus what pydantic's least use (one model built, one answer validated)
adds to the floor's start.

``python -m benchmarks.once --connections 10000`` prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.live import HUGE_NAME, huge_clients
from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.server import LoopbackServer
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID, SimulatedAccount

TOKEN = "bench-token-not-a-secret"


def huge_server(connections: int) -> LoopbackServer:
    """The loopback server with one tunnel of ``connections`` connections."""
    start = datetime.now(UTC).replace(microsecond=0)
    sim = SimulatedAccount(seed=3, start=start, tunnels=0)
    sim.add_tunnel(HUGE_NAME, clients=huge_clients(connections, start))
    sim.freeze()
    return LoopbackServer(FakeCloudflare(sim, tokens=[TOKEN], rate_limit=10**9)).start()


def _env(server: LoopbackServer, pycache: str | None = None) -> dict[str, str]:
    """The children's environment: the stand-in's credentials, and with ``pycache``, bytecode written and read
    there (see the module's docstring)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    env.update(CLOUDFLARE_BASE_URL=server.base_url, CLOUDFLARE_API_TOKEN=TOKEN, CLOUDFLARE_ACCOUNT_ID=DEMO_ACCOUNT_ID)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def _child(command: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, bytes written) of one child process run to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1, 2):
        raise RuntimeError(f"{command[:3]} failed ({done.returncode}): {done.stderr.decode()[-600:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, len(done.stdout)


# Counts what a program runs, not how long it takes: see the module's docstring.
CACHEGRIND = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]


def instruction_count(report: str) -> int | None:
    """The instruction count in cachegrind's summary (``==123== I refs:  2,137,120,400``; newer releases space it
    ``I   refs:``), or None."""
    for line in report.splitlines():
        head, _, count = line.partition("refs:")
        if head.split("==")[-1].split() == ["I"] and count.strip().replace(",", "").isdigit():
            return int(count.strip().replace(",", ""))
    return None


def _instructions(command: list[str], env: dict[str, str], exits: tuple[int, ...] = (0, 1, 2)) -> int:
    """Instructions one run of ``command`` ran (user space), as cachegrind counts them. A run that ends with a
    status outside ``exits`` (tunneltop's health statuses by default; a Python error is 1) is an error."""
    done = subprocess.run([*CACHEGRIND, *command], env=env, capture_output=True, text=True, check=False)
    count = instruction_count(done.stderr)
    if done.returncode not in exits:
        raise RuntimeError(f"{command[:3]} failed ({done.returncode}): {done.stderr[-600:]}")
    if count is None:
        raise RuntimeError(f"no instruction count from cachegrind ({done.returncode}): {done.stderr[-600:]}")
    return count


def _peak_rss_mb(command: list[str], env: dict[str, str]) -> float:
    """Peak RSS of one run of ``command``: a wrapper process runs it and reports its children's peak (this
    process's own children's peak is the largest of all of them so far)."""
    wrapper = [sys.executable, "-c", _PEAK, *command]
    done = subprocess.run(wrapper, env=env, capture_output=True, text=True, check=False)
    return float(done.stdout.strip().splitlines()[-1])


_PEAK = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
)


# The floor: the same GETs as tunneltop made, with plain httpx; json.loads each; json.dumps them all. Run as
# ``python -c FLOOR BASE_URL PATHS_FILE``, so that it imports what it uses and no more.
FLOOR = """
import json, os, sys
import httpx

paths = json.loads(open(sys.argv[2]).read())
headers = {"Authorization": f"Bearer {os.environ['CLOUDFLARE_API_TOKEN']}"}
answers = []
with httpx.Client(base_url=sys.argv[1], headers=headers, timeout=60) as client:
    for path, query in paths:
        answers.append(json.loads(client.get(path, params=query).content))
sys.stdout.write(json.dumps(answers) + "\\n")
"""


# Each program's start alone: the floor's imports (FLOOR's first lines), and tunneltop run as it is run, asked only
# for its version (its imports as tunneltop/__main__.py makes them, and its command line's parser). "pydantic" is
# the floor's imports plus the least a program validating with pydantic runs: one model of one field built and one
# answer validated. What it costs over the floor's start, any such program pays, however lean the rest: the
# ``pydantic_bound`` ratio (see run()).
PYDANTIC_LEAST = """
from pydantic import BaseModel

class Answer(BaseModel):
    success: bool

Answer.model_validate_json(b'{"success": true}')
"""
STARTS = {
    "floor": ["-c", "import json, os, sys\nimport httpx\n"],
    "pydantic": ["-c", "import json, os, sys\nimport httpx\n" + PYDANTIC_LEAST],
    "tunneltop": ["-m", "tunneltop", "--version"],
}


def run(connections: int, rounds: int = 3, instructions: bool = False) -> dict[str, Any]:
    with huge_server(connections) as server, tempfile.TemporaryDirectory(prefix="tunneltop-bench-pyc-") as pycache:
        env = _env(server, pycache)
        tunneltop = [sys.executable, "-m", "tunneltop", "--once", "--output", "json", HUGE_NAME]
        server.fake.requests.clear()
        _child(tunneltop, env)  # a warm-up that also records which requests a run makes
        prefix = "/client/v4/"
        paths = [(r.path.removeprefix(prefix), list(r.query)) for r in server.fake.requests]
        paths_file = Path(f"/tmp/tunneltop-bench-paths-{os.getpid()}.json")
        paths_file.write_text(json.dumps(paths))
        try:
            httpx_floor = [sys.executable, "-c", FLOOR, server.base_url, str(paths_file)]
            _child(httpx_floor, env)  # the floor's warm-up: httpx's bytecode in the cache
            cpu: dict[str, list[float]] = {"tunneltop": [], "floor": []}
            wall: dict[str, list[float]] = {"tunneltop": [], "floor": []}
            out: dict[str, int] = {}
            for _ in range(rounds):
                for name, command in (("floor", httpx_floor), ("tunneltop", tunneltop)):
                    c, w, size = _child(command, env)
                    cpu[name].append(c)
                    wall[name].append(w)
                    out[name] = size
            rss = {"floor": _peak_rss_mb(httpx_floor, env), "tunneltop": _peak_rss_mb(tunneltop, env)}
            counted = (
                {
                    name: _instructions(command, env)
                    for name, command in (("floor", httpx_floor), ("tunneltop", tunneltop))
                }
                if instructions
                else None
            )
            started = (
                {name: _instructions([sys.executable, *start], env, exits=(0,)) for name, start in STARTS.items()}
                if instructions
                else None
            )
        finally:
            paths_file.unlink(missing_ok=True)
    med = {name: statistics.median(v) for name, v in cpu.items()}
    figures: dict[str, Any] = {
        "connections": connections,
        "requests": len(paths),
        "cpu_s": med,
        "cpu_s_runs": cpu,
        "wall_s": {name: statistics.median(v) for name, v in wall.items()},
        "cpu_ratio": med["tunneltop"] / med["floor"],
        "peak_rss_mb": rss,
        "output_bytes": out,
    }
    if counted is not None:
        figures["instructions_m"] = {name: round(n / 1e6, 1) for name, n in counted.items()}
        figures["instructions_ratio"] = counted["tunneltop"] / counted["floor"]
    if counted is not None and started is not None:
        figures["start_instructions_m"] = {name: round(n / 1e6, 1) for name, n in started.items()}
        ran = {name: counted[name] - started[name] for name in counted}
        figures["run_instructions_m"] = {name: round(n / 1e6, 1) for name, n in ran.items()}
        figures["run_instructions_ratio"] = ran["tunneltop"] / ran["floor"]
        # The best ratio any program validating with pydantic could reach here: the floor's whole count plus
        # pydantic's least start over the floor's (a run of its own no dearer than the floor's).
        figures["pydantic_bound"] = (counted["floor"] + started["pydantic"] - started["floor"]) / counted["floor"]
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.once", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--instructions", action="store_true", help="also count each program's instructions (needs valgrind)"
    )
    args = parser.parse_args(argv)
    print(json.dumps(run(args.connections, args.rounds, args.instructions)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
