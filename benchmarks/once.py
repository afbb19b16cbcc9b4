"""``tunneltop --once -o json`` against a floor: the same requests made with plain httpx, each answer decoded with
``json.loads`` and the lot written with ``json.dumps``. Both run as whole processes against the loopback stand-in
server, interleaved (floor, tunneltop, floor, ...), and their CPU time (user + system, of the child) and peak RSS
are compared as ratios: the machine may be busy, the ratio of neighbours much less so.

The floor is a ``python -c`` program that imports httpx and json and nothing else (it once ran as this module,
importing the stand-in server's code too: about 0.2 s of CPU it never used, which flattered the ratio). Both run
as an installed program does, from compiled bytecode: the children may write it (to a cache directory of their
own under /tmp), which the warm-up runs do, whatever ``PYTHONDONTWRITEBYTECODE`` says here (it made every run
compile tunneltop's ~45 modules from source).

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
    env.update(
        CLOUDFLARE_BASE_URL=server.base_url, CLOUDFLARE_API_TOKEN=TOKEN, CLOUDFLARE_ACCOUNT_ID=DEMO_ACCOUNT_ID
    )
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


def run(connections: int, rounds: int = 3) -> dict[str, Any]:
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
        finally:
            paths_file.unlink(missing_ok=True)
    med = {name: statistics.median(v) for name, v in cpu.items()}
    return {
        "connections": connections,
        "requests": len(paths),
        "cpu_s": med,
        "wall_s": {name: statistics.median(v) for name, v in wall.items()},
        "cpu_ratio": med["tunneltop"] / med["floor"],
        "peak_rss_mb": rss,
        "output_bytes": out,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.once", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.connections, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
