"""What rides on a tunnel, parsed from the API's JSON: its remote configuration's public hostnames and version, its
private network routes and the names of their virtual networks.

Like the rest of ``model/``, tolerant of drift: an odd ingress rule or route spoils itself (reported as a
``RecordProblem``), not the read. Strings are kept as the API sent them (untrusted: front ends clean them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tunneltop.model.parse import RecordProblem
from tunneltop.model.reach import Route
from tunneltop.model.records import Tunnel

CLOUDFLARE = "cloudflare"
LOCAL = "local"


def locally_managed(tunnel: Tunnel) -> bool | None:
    """Whether the tunnel's ingress rules live in a config file on its hosts (None: the list entry does not say).
    ``config_src`` is the newer field; ``remote_config`` the deprecated one it replaced."""
    source = tunnel.config_src.lower() if isinstance(tunnel.config_src, str) else ""
    if source in (LOCAL, CLOUDFLARE):
        return source == LOCAL
    if tunnel.remote_config is not None:
        return not tunnel.remote_config
    return None


@dataclass(frozen=True)
class RemoteConfig:
    """``GET .../cfd_tunnel/{id}/configurations``: the public hostnames of its ingress rules (catch-all rules, which
    have none, left out; a rule's ``path`` kept as ``host/path``), its ``version`` and ``source``."""

    version: int | None
    source: str | None
    hostnames: tuple[str, ...]


def _hostname(rule: dict[str, Any]) -> str | None:
    host = rule.get("hostname")
    if not isinstance(host, str) or not host:
        return None
    path = rule.get("path")
    if isinstance(path, str) and path:
        return f"{host}/{path.lstrip('/')}"
    return host


def parse_configuration(raw: Any) -> tuple[RemoteConfig, list[RecordProblem]]:
    where = "configuration"
    if not isinstance(raw, dict):
        return RemoteConfig(None, None, ()), [RecordProblem(where, f"expected an object, got {type(raw).__name__}")]
    problems: list[RecordProblem] = []
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        if version is not None:
            problems.append(RecordProblem(where, f"'version' is {type(version).__name__}; shown as unknown"))
        version = None
    source = raw.get("source") if isinstance(raw.get("source"), str) else None
    config = raw.get("config")
    ingress = config.get("ingress") if isinstance(config, dict) else None
    if config is not None and not isinstance(config, dict):
        problems.append(RecordProblem(where, f"'config' is {type(config).__name__}, not an object"))
    if ingress is not None and not isinstance(ingress, list):
        problems.append(RecordProblem(where, f"'ingress' is {type(ingress).__name__}, not a list"))
        ingress = None
    hostnames: dict[str, None] = {}  # ordered, without repeats
    for index, rule in enumerate(ingress or ()):
        if not isinstance(rule, dict):
            problems.append(
                RecordProblem(f"ingress rule #{index + 1}", f"expected an object, got {type(rule).__name__}")
            )
            continue
        host = _hostname(rule)
        if host is not None:
            hostnames[host] = None
        elif rule.get("hostname") not in (None, ""):
            problems.append(RecordProblem(f"ingress rule #{index + 1}", "'hostname' is not a string; skipped"))
    return RemoteConfig(version, source, tuple(hostnames)), problems


@dataclass(frozen=True)
class RouteRecord:
    """One private network route as the API lists it; its virtual network named later (``route``)."""

    network: str
    virtual_network_id: str | None
    virtual_network_name: str | None
    comment: str | None

    def route(self, names: Mapping[str, str]) -> Route:
        vnet = self.virtual_network_name or (
            names.get(self.virtual_network_id, self.virtual_network_id) if self.virtual_network_id else None
        )
        return Route(self.network, vnet, self.comment)


def _text(item: dict[str, Any], key: str) -> str | None:
    value = item.get(key)
    return value if isinstance(value, str) and value else None


def parse_routes(raw: Any, tunnel_id: str | None = None) -> tuple[list[RouteRecord], list[RecordProblem]]:
    """``GET /accounts/{id}/teamnet/routes``: routes with a network, deleted ones and another tunnel's left out (the
    filters were asked for; a drifting API is not trusted to have applied them)."""
    if not isinstance(raw, list):
        return [], [RecordProblem("routes", f"expected a list, got {type(raw).__name__}")]
    routes: list[RouteRecord] = []
    problems: list[RecordProblem] = []
    for index, item in enumerate(raw):
        where = f"route #{index + 1}"
        if not isinstance(item, dict):
            problems.append(RecordProblem(where, f"expected an object, got {type(item).__name__}; skipped"))
            continue
        network = _text(item, "network")
        if network is None:
            problems.append(RecordProblem(where, "no 'network'; skipped"))
            continue
        if item.get("deleted_at") is not None:
            continue
        owner = item.get("tunnel_id")
        if tunnel_id is not None and isinstance(owner, str) and owner != tunnel_id:
            continue
        routes.append(
            RouteRecord(
                network, _text(item, "virtual_network_id"), _text(item, "virtual_network_name"), _text(item, "comment")
            )
        )
    return routes, problems


def unnamed_networks(routes: list[RouteRecord], names: Mapping[str, str]) -> set[str]:
    """Virtual network ids the routes name no network for and ``names`` does not know."""
    return {
        r.virtual_network_id
        for r in routes
        if r.virtual_network_name is None and r.virtual_network_id is not None and r.virtual_network_id not in names
    }


def parse_virtual_networks(raw: Any) -> dict[str, str]:
    """``GET /accounts/{id}/teamnet/virtual_networks``: id -> name (records without both left out)."""
    names: dict[str, str] = {}
    for item in raw if isinstance(raw, list) else ():
        if isinstance(item, dict) and (vid := _text(item, "id")) and (name := _text(item, "name")):
            names[vid] = name
    return names
