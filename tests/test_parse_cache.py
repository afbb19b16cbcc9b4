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
    seeded.loose = {"zz": (conn("zz"), parse_connectors([{"id": "kz", "conns": [conn("zz")]}])[0][0].conns[0])}
    by_record, problems_by_record = parse_connectors(copy.deepcopy(raw), seeded)
    assert problems == problems_by_record == [] and whole == by_record
    assert [c.api_dict() for c in whole] == [c.api_dict() for c in by_record]
    again, _ = parse_connectors(copy.deepcopy(raw), cache)
    assert all(a is b for a, b in zip(whole, again, strict=True)), "and cached like it"
    raw[2]["conns"][1]["colo_name"] = "AMS"
    changed, _ = parse_connectors(copy.deepcopy(raw), cache)
    assert changed[2] is not whole[2] and changed[2].conns[0] is whole[2].conns[0]


def test_same_puts_the_cached_copies_in_place_of_equal_ones_as_an_answer_is_read() -> None:
    cache = RecordCache()
    first, _ = parse_connectors(answer(), cache)
    cached = {key: raw for key, (raw, _) in cache.connectors.items()}
    fresh = answer()
    fresh[0]["conns"][1]["colo_name"] = "AMS"
    changed, changed_conns = fresh[0], list(fresh[0]["conns"])
    run = cache.same(fresh)
    assert run is fresh and run[1] is cached["k2"], "unchanged: the cached copy"
    assert run[0] is changed and run[0] != cached["k1"]
    assert run[0]["conns"][0] is cached["k1"]["conns"][0], "its unchanged connection: the cached copy"
    assert run[0]["conns"][1] is changed_conns[1]
    again, problems = parse_connectors(run, cache)
    assert problems == [] and again[1] is first[1] and again[0].conns[0] is first[0].conns[0]
    assert again == parse_connectors(copy.deepcopy(run))[0]


def test_same_leaves_what_it_cannot_match_as_it_is() -> None:
    cache = RecordCache()
    assert cache.same(answer()) == answer(), "nothing cached"
    parse_connectors(answer(), cache)
    odd: list[Any] = [
        "not an object", {"id": 5}, {"id": ["k1"]}, {"no": "id"}, {"id": "k1", "conns": "none"},
        {"id": "k1", "conns": [7, {"id": ["a"]}, {"id": "z"}, {"id": "a"}]}, {"id": "k9", "conns": [conn("a")]},
    ]
    assert cache.same(copy.deepcopy(odd)) == odd
