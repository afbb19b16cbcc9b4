"""What --once's faster paths keep exactly as they were: each record's time settled and bookkeeping shared by its one
model validator (nested or not, through connectors_from_json or parse_connectors), repeats found across the whole
answer or within a connector, share_bookkeeping's shortcut for records already shared, a tunnel's health from its
state's counts, and an old fleet's findings handed back."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tests.test_models import conn, connector
from tunneltop.jsonout import dumps, write
from tunneltop.model import parse_connectors
from tunneltop.model.health import Health, tunnel_health
from tunneltop.model.parse import connectors_from_json
from tunneltop.model.records import Connection, Connector, Tunnel, share_bookkeeping, share_connectors
from tunneltop.model.rules import FleetFindings
from tunneltop.model.snapshot import TunnelState


def _answer(result: Any) -> bytes:
    return json.dumps({"success": True, "errors": [], "messages": [], "result": result}).encode()


def _both(result: list[dict[str, Any]]) -> list[list[Connector]]:
    """The connectors as --once reads them (one pydantic call) and as the live view does (parse_connectors)."""
    fast = connectors_from_json(_answer(result))
    assert fast is not None
    usual, problems = parse_connectors(result)
    assert not problems
    return [fast[0], usual]


def test_times_are_utc_and_go_zero_time_unknown_in_nested_and_single_records() -> None:
    zero = "0001-01-01T00:00:00Z"
    raw = [
        connector("k1", run_at="2025-03-01T10:00:00", conns=[conn("c1", opened_at="2025-03-01T10:00:01")]),
        connector("k2", run_at=zero, conns=[conn("c2", opened_at=zero), conn("c3", opened_at=None)]),
        connector("k3", run_at="2025-03-01T12:00:00+02:00", conns=[conn("c4")]),
    ]
    for k1, k2, k3 in _both(raw):
        assert k1.run_at == datetime(2025, 3, 1, 10, tzinfo=UTC) and k1.run_at.tzinfo is not None
        assert k1.conns[0].opened_at == datetime(2025, 3, 1, 10, 0, 1, tzinfo=UTC)
        assert k2.run_at is None and k2.conns[0].opened_at is None and k2.conns[1].opened_at is None
        assert k3.run_at is not None and k3.run_at.utcoffset() == timedelta(hours=2)
        assert k3.conns[0].opened_at == datetime(2025, 3, 1, 10, 0, 1, 123456, tzinfo=UTC)
    alone = Connection(id="c", opened_at=datetime(2025, 3, 1, 10))
    assert alone.opened_at is not None and alone.opened_at.tzinfo is UTC
    aware = datetime(2025, 3, 1, 10, tzinfo=timezone(timedelta(hours=-5)))
    assert Connector(id="k", run_at=aware).run_at is aware


def test_bookkeeping_is_shared_only_by_records_given_every_field_and_no_other() -> None:
    raw = [
        connector("k1", conns=[conn("c1"), conn("c2", shiny=True)]),
        connector("k2", conns=[conn("c3")], shiny=[1]),
        {
            k: v
            for k, v in connector("k3", conns=[{k: v for k, v in conn("c4").items() if k != "uuid"}]).items()
            if k != "arch"
        },
    ]
    for k1, k2, k3 in _both(raw):
        c1, c2 = k1.conns
        [c3], [c4] = k2.conns, k3.conns
        assert c1.model_fields_set is c3.model_fields_set and c1.model_extra is c3.model_extra is c4.model_extra
        assert c1.model_fields_set == set(Connection.model_fields) and c1.model_extra == {}
        assert c2.model_fields_set == set(Connection.model_fields) | {"shiny"} and c2.model_extra == {"shiny": True}
        assert c4.model_fields_set == set(Connection.model_fields) - {"uuid"}
        assert c4.model_fields_set is not c1.model_fields_set
        assert k1.model_fields_set == set(Connector.model_fields) and k1.model_extra == {}
        assert k2.model_fields_set == set(Connector.model_fields) | {"shiny"} and k2.model_extra == {"shiny": [1]}
        assert k3.model_fields_set == set(Connector.model_fields) - {"arch"} and k3.model_extra is k1.model_extra


def test_share_bookkeeping_leaves_records_already_shared_and_shares_the_rest() -> None:
    [k], _ = parse_connectors([connector(conns=[conn("c1"), conn("c2")])])
    before = [(id(c.model_fields_set), id(c.model_extra)) for c in k.conns]
    share_connectors([k])
    assert [(id(c.model_fields_set), id(c.model_extra)) for c in k.conns] == before
    # Made without validation's sharing (as a copy is): equal sets pooled, empty dicts shared, once more among them.
    copies = [c.model_copy() for c in k.conns]
    assert copies[0].model_fields_set is not copies[1].model_fields_set
    pool: dict[frozenset[str], set[str]] = {}
    share_bookkeeping([*k.conns, *copies], pool)
    assert len({id(c.model_fields_set) for c in [*k.conns, *copies]}) == 1
    assert len({id(c.model_extra) for c in [*k.conns, *copies]}) == 1


@pytest.mark.parametrize(
    ("conn_ids", "repeated"),
    [
        ([["c1", "c2"], ["c1", "c3"]], False),  # the same connection id in two connectors: each keeps its own
        ([["c1", "c2"], ["c3", "c3"]], True),  # twice in one connector: the usual way says so
        ([["c1"], ["c2"], ["c2", "c4"]], False),
        ([["c1", "c1"], ["c1"]], True),
    ],
)
def test_a_connection_id_repeated_within_a_connector_and_only_there_is_left_to_the_usual_way(
    conn_ids: list[list[str]], repeated: bool
) -> None:
    raw = [connector(f"k{n}", conns=[conn(c) for c in ids]) for n, ids in enumerate(conn_ids)]
    fast = connectors_from_json(_answer(raw))
    assert (fast is None) is repeated
    if fast is not None:
        assert [[c.id for c in k.conns] for k in fast[0]] == conn_ids
    assert connectors_from_json(_answer([connector("k1"), connector("k1", conns=[conn("c9")])])) is None


FLAGS = [(), (False,), (True,), (None,), (False, None), (True, None), (False, True), (None, None), (False, False)]


@pytest.mark.parametrize("status", ["healthy", "degraded", "down", "inactive", None])
@pytest.mark.parametrize("fleet", [[], [()], [(), ()], *[[f] for f in FLAGS], [(False,), (None,)], [(True,), ()]])
def test_a_states_health_from_its_counts_is_tunnel_healths_verdict(
    status: str | None, fleet: list[tuple[bool | None, ...]]
) -> None:
    tunnel = Tunnel(id="t", status=status)
    connectors = tuple(
        Connector(id=f"k{n}", conns=[Connection(id=f"c{n}-{i}", is_pending_reconnect=f) for i, f in enumerate(flags)])
        for n, flags in enumerate(fleet)
    )
    state = TunnelState(tunnel, connectors)
    assert state.health is tunnel_health(tunnel, connectors)
    assert TunnelState(tunnel, None, error="x").health is Health.UNKNOWN


def test_an_old_fleets_findings_are_handed_back_when_they_say_the_same() -> None:
    fleet = FleetFindings()
    ks = [Connector(id=f"k{n}-0123456789") for n in range(3)]
    first = fleet.old_release(ks, ["runs old", "runs old", "runs older"])
    assert [f.message for f in first] == [
        f"connector k{n}-01234 {r}" for n, r in enumerate(["runs old"] * 2 + ["runs older"])
    ]
    assert [f.connector_id for f in first] == [k.id for k in ks]
    again = fleet.old_release(ks[1:], ["runs old", "runs newer"])
    assert again[0] is first[1] and again[1] is not first[2] and again[1].message == "connector k2-01234 runs newer"
    assert fleet.old_release(ks[:1], ["runs old"])[0] is not first[0]  # forgotten: not among the last ones


@pytest.mark.parametrize("encoding", ["utf-8", "ascii", "utf-16"])
def test_written_to_a_text_stream_over_bytes_the_document_is_dumps_text_in_its_encoding(encoding: str) -> None:
    document = {
        "tunnels": [
            {
                "id": "t\u00e9",
                "clients": [b'{"id":"k1","conns":[]}', b'{"id":"k2"}'],
                "n": [1, "\x01"],
            },
            {"clients": [b'{"id":"k3"}', {"id": "k4", "conns": []}, b'{"id":"k5"}']},
        ],
        "problems": [],
        "lines": [b'{"a":1}', b'{"b":[2]}'],  # bytes: JSON written already, as connectors' and findings' lines are
        "mixed": [b'{"c":3}', {"d": [4, b'{"e":5}']}, b"6"],
    }
    text = dumps(document)
    assert json.loads(text)["lines"] == [{"a": 1}, {"b": [2]}]
    assert json.loads(text)["mixed"] == [{"c": 3}, {"d": [4, {"e": 5}]}, 6]
    assert json.loads(text)["tunnels"][0]["clients"][0] == {"id": "k1", "conns": []} and text.isascii()
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding=encoding, newline="\n")
    stream.write("before ")
    write(document, stream)
    stream.write("\n")
    stream.flush()
    assert raw.getvalue().decode(encoding) == "before " + text + "\n"
    other = io.StringIO()
    write(document, other)
    assert other.getvalue() == text
