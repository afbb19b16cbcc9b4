"""Request rates from a loopback server's request log (``python -m tunneltop.demo.server --request-log FILE``).

``python -m tunneltop.demo.rates FILE`` prints the requests received, the busiest 60 s and 300 s windows, and the
average per minute: the budget measured where Cloudflare would count it, at the server.
"""

from __future__ import annotations

import argparse
import bisect
import sys
from collections.abc import Sequence
from datetime import datetime


def busiest(times: Sequence[float], window: float) -> int:
    """The most requests in any ``window`` seconds (times sorted)."""
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


def read_times(path: str) -> list[float]:
    with open(path, encoding="utf-8") as log:
        return sorted(datetime.fromisoformat(line.split(" ", 1)[0]).timestamp() for line in log if line.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tunneltop.demo.rates", description=__doc__.split("\n\n")[0])
    parser.add_argument("log", help="the server's --request-log file")
    args = parser.parse_args(argv)
    times = read_times(args.log)
    if not times:
        print("no requests")
        return 0
    span = times[-1] - times[0]
    per_minute = len(times) * 60 / span if span > 0 else float(len(times))
    print(
        f"{len(times)} requests over {span:.0f} s: busiest 60 s {busiest(times, 60)}, busiest 300 s "
        f"{busiest(times, 300)}, average {per_minute:.1f} per minute"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
