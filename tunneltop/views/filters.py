"""The filter language of the ``/`` box, parsed once and matched against rows.

- free words match (case-insensitively, as substrings) colo, origin IP, connector id, version, tunnel name or
  connection id; every word must match;
- ``key:value[,value]`` limits a field: ``colo:DFW,LAX`` (exact colos), ``state:pending``, ``tunnel:``,
  ``connector:``, ``ip:``, ``version:`` (substrings);
- a leading ``!`` inverts the whole filter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

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

    def _matches_fields(self, row: ConnRow) -> bool:
        """Everything but the free words."""
        if self.colos and (row.conn.colo_name or "").upper() not in self.colos:
            return False
        if self.states and row.state not in self.states:
            return False
        for key, values in self.fields:
            got = (_FIELDS[key](row) or "").casefold()
            if not any(v in got for v in values):
                return False
        return True

    def _matches(self, row: ConnRow) -> bool:
        if not self._matches_fields(row):
            return False
        if self.words:
            hay = _haystack(row)
            return all(any(w in h for h in hay) for w in self.words)
        return True

    def matches(self, row: ConnRow) -> bool:
        if not self.active:
            return True
        return self._matches(row) != self.inverted


# Joins a row's haystack into one string. str.split() treats it as whitespace, so no parsed word holds it: a word is
# in the joined text exactly when it is in one of the parts.
_JOIN = "\x1f"


class RowSelector:
    """``filter.matches`` over a list of rows, for a live view that filters the same rows poll after poll.

    Free words are matched against each row's haystack, made once per row object and kept while the row is
    (records are reused while unchanged): at 100,000 rows, typing a word re-filtered every row from its fields
    for each key. The haystacks are kept only while words are being matched, and only for the rows of the last
    call."""

    def __init__(self) -> None:
        # Row key -> the row its haystack was made from, and -> the haystack: two dicts, not a (row, text) pair per
        # row, so the cyclic collector has two containers to walk, not 100,000 (the pairs, made as a filter was
        # typed, set off a full collection of the screen's heap when it was cleared: ~100 ms at 100,000 rows).
        self._rows: dict[str, ConnRow] = {}
        self._texts: dict[str, str] = {}

    def forget(self) -> None:
        """Drop the haystacks (the filter was cleared)."""
        self._rows, self._texts = {}, {}

    def select(self, flt: Filter, rows: Sequence[ConnRow]) -> list[ConnRow]:
        if not flt.active:
            self.forget()
            return list(rows)
        if not flt.words:
            self.forget()
            return [r for r in rows if flt.matches(r)]
        seen_rows, seen_texts = self._rows, self._texts
        made_rows: dict[str, ConnRow] = {}
        texts: dict[str, str] = {}
        chosen = []
        words, inverted = flt.words, flt.inverted
        plain = not (flt.colos or flt.states or flt.fields)
        for row in rows:
            key = row.key
            text = seen_texts[key] if seen_rows.get(key) is row else _JOIN.join(_haystack(row))
            made_rows[key] = row
            texts[key] = text
            found = all(w in text for w in words)
            if found and not plain:
                found = flt._matches_fields(row)
            if found != inverted:
                chosen.append(row)
        self._rows, self._texts = made_rows, texts
        return chosen


class Scope(Protocol):
    """Where the view is narrowed to: a tunnel, or one of its connectors (the tree's NodeRef is one)."""

    @property
    def tunnel_id(self) -> str: ...

    @property
    def connector_id(self) -> str | None: ...


def scope_test(drilled: str | None, scope: Scope | None) -> Callable[[ConnRow], bool]:
    """Whether a row is in the tunnel drilled into (if any) and in the scope (if any), as they are now."""

    def in_scope(row: ConnRow) -> bool:
        if drilled is not None and row.tunnel.id != drilled:
            return False
        if scope is None:
            return True
        if row.tunnel.id != scope.tunnel_id:
            return False
        return scope.connector_id is None or row.connector.id == scope.connector_id

    return in_scope
