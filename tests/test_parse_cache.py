"""Re-reading an unchanged poll: unchanged records come back as the very same models, and odd ones are reported
again every time (the identity is what lets rows, the tree and the change engine skip what did not change)."""

from __future__ import annotations

import copy
import json
from typing import Any

from tunneltop.api import jsondecode
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
    assert "k2" not in cache.connectors and "c" not in cache.loose


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


def test_new_records_are_validated_together_and_an_odd_one_is_still_reported_alone() -> None:
    # Many new connections in one answer go through one bulk validation; one odd field among them falls back to
    # record-by-record only for that record: it keeps its row (the field unknown) and is the one reported.
    raw = [{"id": f"k{n}", "version": "2025.1.0", "conns": [conn(f"c{n}-{i}") for i in range(4)]} for n in range(50)]
    raw[17]["conns"][2]["is_pending_reconnect"] = "no"
    raw[30]["run_at"] = "not a time"
    cache = RecordCache()
    connectors, problems = parse_connectors(copy.deepcopy(raw), cache)
    assert [c.id for c in connectors] == [f"k{n}" for n in range(50)]
    assert sum(len(c.conns) for c in connectors) == 200
    assert sorted(p.where for p in problems) == ["connector k17 connection #3", "connector k30"]
    assert connectors[17].conns[2].is_pending_reconnect is None and connectors[30].run_at is None
    again, problems_again = parse_connectors(copy.deepcopy(raw), cache)
    assert len(problems_again) == 2, "odd records are never cached: reported every poll"
    assert again[0] is connectors[0] and again[17] is not connectors[17]
    assert again[17].conns[0] is connectors[17].conns[0], "its clean connections are reused"


def test_a_repeated_connector_is_reported_whether_or_not_its_first_copy_was_cached() -> None:
    cache = RecordCache()
    parse_connectors(answer(), cache)
    twice = [*answer(), answer()[0]]
    for _ in range(2):
        connectors, problems = parse_connectors(copy.deepcopy(twice), cache)
        assert [c.id for c in connectors] == ["k1", "k2"]
        assert [p.message for p in problems] == ["duplicate connector id; later copy skipped"]


def test_a_first_answer_validated_in_one_call_is_what_record_by_record_makes_and_is_cached() -> None:
    raw = [{"id": f"k{n}", "version": "2025.1.0", "conns": [conn(f"c{n}-{i}") for i in range(4)]} for n in range(5)]
    cache = RecordCache()  # nothing cached: the whole answer in one pydantic call
    whole, problems = parse_connectors(copy.deepcopy(raw), cache)
    seeded = RecordCache()  # something cached (an unrelated connection): record by record
    seeded.loose = {"zz": parse_connectors([{"id": "kz", "conns": [conn("zz")]}])[0][0].conns[0]}
    by_record, problems_by_record = parse_connectors(copy.deepcopy(raw), seeded)
    assert problems == problems_by_record == [] and whole == by_record
    assert [c.api_dict() for c in whole] == [c.api_dict() for c in by_record]
    again, _ = parse_connectors(copy.deepcopy(raw), cache)
    assert all(a is b for a, b in zip(whole, again, strict=True)), "and cached like it"
    raw[2]["conns"][1]["colo_name"] = "AMS"
    changed, _ = parse_connectors(copy.deepcopy(raw), cache)
    assert changed[2] is not whole[2] and changed[2].conns[0] is whole[2].conns[0]


def envelope(result: list[Any]) -> bytes:
    return json.dumps({"success": True, "errors": [], "messages": [], "result": result}).encode()


def read(body: bytes, cache: RecordCache) -> tuple[list[Any], list[Any], list[Any]]:
    """An answer as the client reads it: decoded with the cache's reading, then parsed; what it was decoded into."""
    reading = cache.reading()
    result = jsondecode.loads(body, elements=reading)["result"]
    decoded = list(result)
    connectors, problems = parse_connectors(result, cache, reading)
    return decoded, connectors, problems


def test_a_connector_read_with_the_text_of_a_cached_one_is_that_one_not_decoded() -> None:
    cache = RecordCache()
    decoded, first, _ = read(envelope(answer()), cache)
    assert all(type(item) is dict for item in decoded) and set(cache.connectors) == {"k1", "k2"}
    assert sorted(map(id, cache.texts.values())) == sorted(map(id, first)), "each known by its text's digest"
    fresh = answer()
    fresh[0]["conns"][1]["colo_name"] = "AMS"
    decoded, again, problems = read(envelope(fresh), cache)
    assert problems == [] and decoded[1] is first[1] and again[1] is first[1], "unchanged: the model, not decoded"
    assert decoded[0] == fresh[0], "changed: decoded"
    assert again[0] is not first[0] and again[0].conns[0] is first[0].conns[0], "its unchanged connection: cached"
    assert again[0].conns[1].colo_name == "AMS" and again == parse_connectors(copy.deepcopy(fresh))[0]
    assert len(cache.texts) == 2 and cache.texts[jsondecode.text_digest(json.dumps(fresh[0]))] is again[0]


def test_only_clean_connectors_are_known_by_their_text() -> None:
    cache = RecordCache()
    odd = answer()
    odd[1]["conns"][0]["opened_at"] = "not a time"
    for n in range(3):
        decoded, connectors, problems = read(envelope(odd), cache)
        assert type(decoded[1]) is dict, "never known: decoded and reported every poll"
        assert len(problems) == 1 and connectors[1].conns[0].opened_at is None
        assert (type(decoded[0]) is dict) is (n == 0) and list(cache.texts.values()) == [connectors[0]]


def test_a_connector_read_without_its_text_is_the_cached_one_only_where_the_models_are_equal() -> None:
    cache = RecordCache()
    first, _ = parse_connectors(answer(), cache)
    respelt = answer()
    respelt[0]["conns"][0]["opened_at"] = "2026-11-28T11:00:00Z"
    respelt[1]["conns"][0]["origin_ip"] = None  # given, as null: another fields set than not given at all
    respelt[1]["conns"].append(conn("d"))
    changed, problems = parse_connectors(copy.deepcopy(respelt), cache)
    assert problems == [] and changed[0] is not first[0] and changed[0].conns[1] is first[0].conns[1]
    assert changed[1].conns[0] is not first[1].conns[0]
    again, _ = parse_connectors(copy.deepcopy(respelt), cache)
    assert all(a is b for a, b in zip(again, changed, strict=True)), "read again: the same models"
    respelt[1]["conns"][0].pop("origin_ip")
    third, _ = parse_connectors(copy.deepcopy(respelt), cache)
    assert third[1] is not changed[1] and third[1].conns[0] is not changed[1].conns[0]
    assert third[1].conns[0].model_fields_set == changed[1].conns[0].model_fields_set - {"origin_ip"}
