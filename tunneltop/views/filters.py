"""The filter language of the ``/`` box, parsed once and matched against rows.

- free words match (case-insensitively, as substrings) colo, origin IP, connector id, version, tunnel name or
  connection id; every word must match;
- ``key:value[,value]`` limits a field: ``colo:DFW,LAX`` (exact colos), ``state:pending``, ``tunnel:``,
  ``connector:``, ``ip:``, ``version:`` (substrings);
- a leading ``!`` inverts the whole filter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from tunneltop.views.rows import ConnRow

STATES = ("active", "pending", "unknown", "gone")


class FilterError(ValueError):
    """The filter text cannot be understood; the message says why."""


def _haystack(row: ConnRow) -> tuple[str, ...]:
    c = row.conn
    return tuple(
        (v or "").casefold()
        for v in (
            c.colo_name,
            c.origin_ip,
            row.connector.id,
            c.client_version or row.connector.version,
            row.tunnel.name,
            c.id,
        )
    )


_FIELDS: dict[str, Callable[[ConnRow], str | None]] = {
    "tunnel": lambda r: r.tunnel.name,
    "connector": lambda r: r.connector.id,
    "ip": lambda r: r.conn.origin_ip,
    "version": lambda r: r.conn.client_version or r.connector.version,
}
KEYS = ("colo", "state", *_FIELDS)
_KEY_TOKEN = re.compile(r"^([A-Za-z_]+):(.*)$")


@dataclass(frozen=True)
class Filter:
    text: str = ""
    words: tuple[str, ...] = ()
    colos: frozenset[str] = frozenset()
    states: frozenset[str] = frozenset()
    fields: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())
    inverted: bool = False

    @property
    def active(self) -> bool:
        return bool(self.words or self.colos or self.states or self.fields)

    @classmethod
    def parse(cls, text: str) -> Filter:
        raw = text.strip()
        inverted = raw.startswith("!")
        body = raw[1:].strip() if inverted else raw
        words: list[str] = []
        colos: set[str] = set()
        states: set[str] = set()
        fields: list[tuple[str, tuple[str, ...]]] = []
        for token in body.split():
            match = _KEY_TOKEN.match(token)
            if match is None:
                words.append(token.casefold())
                continue
            key, value = match.group(1).lower(), match.group(2)
            values = tuple(v for v in value.split(",") if v)
            if key not in KEYS:
                raise FilterError(f"unknown filter key {key!r}: use one of {', '.join(KEYS)}")
            if not values:
                raise FilterError(f"{key}: needs a value, e.g. colo:DFW,LAX")
            if key == "colo":
                colos.update(v.upper() for v in values)
            elif key == "state":
                bad = [v for v in values if v.lower() not in STATES]
                if bad:
                    raise FilterError(f"unknown state {bad[0]!r}: use {', '.join(STATES)}")
                states.update(v.lower() for v in values)
            else:
                fields.append((key, tuple(v.casefold() for v in values)))
        if inverted and not (words or colos or states or fields):
            raise FilterError("'!' inverts a filter: write what to leave out after it, e.g. !colo:DFW")
        return cls(raw, tuple(words), frozenset(colos), frozenset(states), tuple(fields), inverted)

    def _matches(self, row: ConnRow) -> bool:
        if self.colos and (row.conn.colo_name or "").upper() not in self.colos:
            return False
        if self.states and row.state not in self.states:
            return False
        for key, values in self.fields:
            got = (_FIELDS[key](row) or "").casefold()
            if not any(v in got for v in values):
                return False
        if self.words:
            hay = _haystack(row)
            return all(any(w in h for h in hay) for w in self.words)
        return True

    def matches(self, row: ConnRow) -> bool:
        if not self.active:
            return True
        return self._matches(row) != self.inverted
