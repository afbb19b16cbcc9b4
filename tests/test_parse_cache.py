"""Re-reading an unchanged poll: unchanged records come back as the very same models, and odd ones are reported
again every time (the identity is what lets rows, the tree and the change engine skip what did not change)."""

from __future__ import annotations

import copy
from typing import Any

from tunneltop.model.parse import RecordCache, parse_connectors, parse_many
from tunneltop.model.records import Tunnel


def conn(cid: str, colo: str = "DFW") -> dict[str, Any]:
    return {"id": cid, "colo_name": colo, "origin_ip": "192.0.2.1", "is_pending_reconnect": False}


def answer() -> list[dict[str, Any]]:
    return [
        {"id": "k1", "version": "2025.1.0", "conns": [conn("a"), conn("b", "LAX")]},
        {"id": "k2", "version": "2025.1.0", "conns": [conn("c")]},
    ]


def test_unchanged_connectors_and_connections_are_the_same_objects() -> None:
    cache = RecordCache()
    first, _ = parse_connectors(answer(), cache)
    again, problems = parse_connectors(answer(), cache)  # equal JSON, decoded afresh
    assert problems == [] and all(a is b for a, b in zip(first, again, strict=True))
    changed = answer()
    changed[0]["conns"][1]["colo_name"] = "AMS"
    third, _ = parse_connectors(changed, cache)
    assert third[1] is first[1], "the other connector did not change"
    assert third[0] is not first[0] and third[0].conns[0] is first[0].conns[0], "nor did its first connection"
    assert third[0].conns[1].colo_name == "AMS"


def test_a_record_with_a_problem_is_never_cached_and_reported_every_poll() -> None:
    cache = RecordCache()
    odd = answer()
    odd[1]["conns"][0]["opened_at"] = "not a time"
    for _ in range(3):
        connectors, problems = parse_connectors(copy.deepcopy(odd), cache)
        assert len(problems) == 1 and "opened_at" in str(problems[0])
        assert connectors[1].conns[0].opened_at is None
    assert "k2" not in cache.connectors and "c" not in cache.conns


def test_the_tunnel_list_reuses_unchanged_tunnels() -> None:
    cache: dict[str, tuple[dict[str, Any], Tunnel]] = {}
    raw = [{"id": "t1", "name": "web", "status": "healthy"}, {"id": "t2", "name": "db", "status": "healthy"}]
    first, _ = parse_many(Tunnel, copy.deepcopy(raw), "tunnel", cache)
    raw[1]["status"] = "degraded"
    raw.append({"id": "t3", "name": "new", "created_at": "yesterday"})
    second, problems = parse_many(Tunnel, copy.deepcopy(raw), "tunnel", cache)
    assert second[0] is first[0] and second[1] is not first[1] and second[1].status == "degraded"
    assert len(problems) == 1 and second[2].created_at is None
    assert set(cache) == {"t1", "t2"}, "the odd one is validated (and reported) again next time"
    third, _ = parse_many(Tunnel, copy.deepcopy(raw[:1]), "tunnel", cache)
    assert len(third) == 1 and third[0] is first[0] and set(cache) == {"t1"}, "gone tunnels are forgotten"
