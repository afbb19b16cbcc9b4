"""What the operator expects of each tunnel: the config file's ``[expect]`` tables, checked and resolved per tunnel.

Where expectations are written (the config file; see the README's "Expectations")::

    [expect]                         # every tunnel
    min_connectors = 2
    [expect.tunnels."prod-*"]        # tunnels whose name matches the glob (fnmatch, case-sensitive; or the id)
    min_connectors = 3
    origin_ips = ["203.0.113.0/24"]
    [profiles.prod.expect]           # the same, for one profile only (with its own .tunnels."glob" tables)

How they combine, key by key, later wins: the top-level ``[expect]``, then the profile's ``[expect]``, then each
top-level ``[expect.tunnels."glob"]`` that matches the tunnel in the order the file writes them, then the profile's
matching globs in order. So write general globs first and specific ones after (``"prod-*"`` before
``"prod-web"``). A key not written anywhere keeps its default (below).

Keys (each optional):
- ``min_connectors``: connectors with an active connection, at least (default: no check).
- ``min_colos``: distinct colos of the active connections, at least (default 2: "all connections in one colo").
- ``min_active_per_connector``: active connections per connector, at least (default 4, cloudflared's own).
- ``max_versions``: distinct cloudflared versions among the connectors, at most (default: no check; mixed versions
  are normal during a rolling upgrade).
- ``origin_ips``: CIDRs (or single addresses) a connector may connect from; any other is a critical finding.
- ``colos``: colo codes (``"DFW"``) the connections may land in; any other is a critical finding.
- ``required``: the tunnel must run: inactive (never run) is then a critical finding. Without it an inactive
  tunnel is neutral and no other check applies to it.
- ``severity``: ``"warning"`` (default) or ``"critical"``: the severity of the capacity checks above (connectors,
  colos, connections, versions) for the tunnels this table covers.
- ``ignore``: check ids to leave out, e.g. ``["old_release"]`` for a host pinned to an old cloudflared.

Pure data and parsing, no I/O: ``tunneltop.profiles`` reads the file and names it in the errors raised here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from tunneltop.model.findings import Severity

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Every check the rules can raise (model/rules.py): the ids ``ignore`` may name, and that findings carry.
CHECKS = (
    "required",
    "min_connectors",
    "min_colos",
    "min_active_per_connector",
    "max_versions",
    "origin_ips",
    "colos",
    "config_drift",
    "old_release",
    "pending_reconnect",
    "local_ready",
)

_COUNTS = ("min_connectors", "min_colos", "min_active_per_connector", "max_versions")
KEYS = (*_COUNTS, "origin_ips", "colos", "required", "severity", "ignore")


class ExpectError(ValueError):
    """An ``[expect]`` table that cannot be used; the message names the table and the key."""


@dataclass(frozen=True)
class TunnelExpect:
    """What one tunnel is expected to be, every table that covers it applied. The defaults are the built-in
    checks: they run with no configuration at all."""

    min_connectors: int | None = None
    min_colos: int = 2
    min_active_per_connector: int = 4
    max_versions: int | None = None
    origin_ips: tuple[IpNetwork, ...] | None = None
    colos: frozenset[str] | None = None
    required: bool = False
    severity: Severity = Severity.WARNING
    ignore: frozenset[str] = frozenset()

    def checks(self, check: str) -> bool:
        return check not in self.ignore


BUILT_IN = TunnelExpect()


@dataclass(frozen=True)
class ExpectTable:
    """One ``[expect]`` table as written: only the keys it sets, already checked and converted."""

    where: str  # e.g. '[expect.tunnels."prod-*"]', for messages
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Expectations:
    """Every ``[expect]`` table of a run, in the order they apply (see the module's doc)."""

    base: tuple[ExpectTable, ...] = ()
    globs: tuple[tuple[str, ExpectTable], ...] = ()

    def for_tunnel(self, name: str | None, tunnel_id: str) -> TunnelExpect:
        """The expectations of one tunnel: every base table, then every glob that matches its name (or its id)."""
        values: dict[str, Any] = {}
        for table in self.base:
            values.update(table.values)
        for pattern, table in self.globs:
            if (name is not None and fnmatchcase(name, pattern)) or pattern == tunnel_id:
                values.update(table.values)
        return TunnelExpect(**values) if values else BUILT_IN

    @classmethod
    def parse(cls, tables: list[tuple[object, str]]) -> Expectations:
        """From raw TOML tables, each with where it was written (``"[expect]"``, ``"[profiles.prod.expect]"``), in
        the order they apply. Raises ExpectError naming the table and key of the first thing wrong."""
        base: list[ExpectTable] = []
        globs: list[tuple[str, ExpectTable]] = []
        for raw, where in tables:
            table, found = _table(raw, where, nested=True)
            base.append(table)
            globs.extend(found)
        return cls(tuple(base), tuple(globs))


def _shown(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text}" if len(text) <= 40 else type(value).__name__


def _table(raw: object, where: str, *, nested: bool) -> tuple[ExpectTable, list[tuple[str, ExpectTable]]]:
    if not isinstance(raw, dict):
        raise ExpectError(f"{where} must be a table of expectations, not {_shown(raw)}")
    known = (*KEYS, "tunnels") if nested else KEYS
    values: dict[str, Any] = {}
    globs: list[tuple[str, ExpectTable]] = []
    for key, value in raw.items():
        if key not in known:
            import difflib

            near = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f" (known: {', '.join(known)})"
            raise ExpectError(f"unknown setting {key!r} in {where}{hint}")
        if key == "tunnels":
            globs = _globs(value, where)
        else:
            values[key] = _value(key, value, f"{where} {key}")
    return ExpectTable(where, values), globs


def _globs(raw: object, where: str) -> list[tuple[str, ExpectTable]]:
    if not isinstance(raw, dict):
        raise ExpectError(f'{where} tunnels must hold [expect.tunnels."GLOB"] tables, not {_shown(raw)}')
    out = []
    for pattern, table in raw.items():
        if not pattern.strip():
            raise ExpectError(f"{where} tunnels: a tunnel glob cannot be empty")
        inner = f'{where[:-1]}.tunnels."{pattern}"]'
        out.append((pattern, _table(table, inner, nested=False)[0]))
    return out


def _value(key: str, value: object, where: str) -> object:
    if key in _COUNTS:
        least = 1 if key == "max_versions" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ExpectError(f"{where} must be a whole number, {least} or more, not {_shown(value)}")
        return value
    if key == "required":
        if not isinstance(value, bool):
            raise ExpectError(f"{where} must be true or false, not {_shown(value)}")
        return value
    if key == "severity":
        if value not in ("warning", "critical"):
            raise ExpectError(f'{where} must be "warning" or "critical", not {_shown(value)}')
        return Severity(value)
    items = _strings(value, where)
    if key == "origin_ips":
        networks = []
        for item in items:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ExpectError(f"{where}: {item!r} is not an IP address or CIDR (e.g. 203.0.113.0/24)") from None
        return tuple(networks)
    if key == "colos":
        return frozenset(item.upper() for item in items)
    unknown = [item for item in items if item not in CHECKS]
    if unknown:
        raise ExpectError(f"{where}: no check is called {unknown[0]!r} (checks: {', '.join(CHECKS)})")
    return frozenset(items)


def _strings(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ExpectError(f"{where} must be a list of non-empty strings, not {_shown(value)}")
    return [v.strip() for v in value]
