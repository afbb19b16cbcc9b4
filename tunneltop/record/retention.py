"""``--record-keep 7d`` and ``--record-max 500MB``: how long and how big a recording may grow."""

from __future__ import annotations

import re
from datetime import timedelta

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?\s*$", re.IGNORECASE)
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
# Less than this could not hold one segment of a small account: a typo rather than a wish.
MIN_BYTES = 1_000_000


def parse_age(text: str) -> timedelta:
    """``90m``, ``36h``, ``7d``, ``2w``: a positive age. Raises ValueError with what is wrong."""
    match = _AGE.match(text)
    if match is None:
        raise ValueError(f"not an age: {text!r} (a number and s, m, h, d or w, e.g. 7d)")
    seconds = float(match.group(1)) * _AGE_UNITS[match.group(2).lower()]
    if seconds <= 0:
        raise ValueError(f"the age must be more than 0: {text!r}")
    return timedelta(seconds=seconds)


def parse_size(text: str) -> int:
    """``500MB``, ``2GB``, ``750MiB``: bytes (at least 1 MB). Raises ValueError with what is wrong."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (a number and B, KB, MB, GB or TB, e.g. 500MB)")
    size = int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()])
    if size < MIN_BYTES:
        raise ValueError(f"a recording needs at least 1MB: {text!r}")
    return size
