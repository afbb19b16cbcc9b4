"""Schema drift: one odd record spoils one row (or one field), never the poll."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunneltop.model import Account, Connection, Connector, Tunnel, parse_connectors, parse_many
from tunneltop.model.parse import RecordProblem, validate_record


def conn(cid: str = "c1", **fields: object) -> dict:
    return {
        "id": cid,
        "uuid": cid,
        "client_id": "k1",
        "client_version": "2025.2.0",
        "colo_name": "DFW",
        "origin_ip": "203.0.113.5",
        "opened_at": "2025-03-01T10:00:01.123456Z",
        "is_pending_reconnect": False,
        **fields,
    }


def connector(cid: str = "k1", conns: object = None, **fields: object) -> dict:
    return {
        "id": cid,
        "arch": "linux_amd64",
        "version": "2025.2.0",
        "run_at": "2025-03-01T10:00:00Z",
        "config_version": 4,
        "features": ["ha-origin", "serialized_headers"],
        "conns": [conn("c1"), conn("c2", colo_name="LAX")] if conns is None else conns,
        **fields,
    }


def test_a_well_formed_answer_parses_cleanly():
    connectors, problems = parse_connectors([connector()])
    assert problems == []
    [k] = connectors
    assert k.id == "k1" and k.arch == "linux_amd64" and k.config_version == 4
    assert k.run_at == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    assert k.features == ["ha-origin", "serialized_headers"]
    assert [c.colo_name for c in k.conns] == ["DFW", "LAX"]
    assert [c.state for c in k.conns] == ["active", "active"]


def test_empty_and_null_results():
    assert parse_connectors(None) == ([], [])
    assert parse_connectors([]) == ([], [])


def test_a_result_that_is_not_a_list_is_one_problem():
    connectors, problems = parse_connectors({"id": "k1"})
    assert connectors == []
    assert problems == [RecordProblem("connections", "expected a list, got dict")]


def test_missing_is_pending_reconnect_is_unknown_never_active():
    raw = conn()
    del raw["is_pending_reconnect"]
    [k], problems = parse_connectors([connector(conns=[raw])])
    assert problems == []
    assert k.conns[0].is_pending_reconnect is None
    assert k.conns[0].state == "unknown"


def test_explicit_null_is_pending_reconnect_is_unknown():
    [k], _ = parse_connectors([connector(conns=[conn(is_pending_reconnect=None)])])
    assert k.conns[0].state == "unknown"


def test_pending_reconnect():
    [k], _ = parse_connectors([connector(conns=[conn(is_pending_reconnect=True)])])
    assert k.conns[0].state == "pending"


def test_missing_optional_fields_are_none():
    [k], problems = parse_connectors([{"id": "k1", "conns": [{"id": "c1"}]}])
    assert problems == []
    assert (k.arch, k.version, k.run_at, k.config_version, k.features) == (None, None, None, None, [])
    c = k.conns[0]
    assert (c.colo_name, c.origin_ip, c.opened_at, c.is_pending_reconnect) == (None, None, None, None)


def test_wrong_type_on_a_connection_field_becomes_unknown_with_a_problem():
    bad = conn("c2", is_pending_reconnect="sometimes", colo_name=["DFW"], opened_at="yesterday-ish")
    [k], problems = parse_connectors([connector(conns=[conn("c1"), bad])])
    c1, c2 = k.conns
    assert c1.state == "active"
    assert c2.id == "c2"
    assert c2.state == "unknown"
    assert c2.colo_name is None and c2.opened_at is None
    assert c2.origin_ip == "203.0.113.5"
    fields = sorted(p.message.split("'")[1] for p in problems)
    assert fields == ["colo_name", "is_pending_reconnect", "opened_at"]
    assert all(p.where == "connector k1 connection #2" and "shown as unknown" in p.message for p in problems)


def test_wrong_type_on_a_connector_field_keeps_the_connector():
    raw = connector(arch=64, config_version="four", features="ha-origin", run_at={"when": "now"})
    [k], problems = parse_connectors([raw])
    assert (k.arch, k.config_version, k.features, k.run_at) == (None, None, [], None)
    assert k.version == "2025.2.0"
    assert len(k.conns) == 2
    assert {p.message.split("'")[1] for p in problems} == {"arch", "config_version", "features", "run_at"}
    assert all(p.where == "connector k1" for p in problems)


def test_problems_do_not_quote_the_bad_value():
    hostile = "\x1b]0;pwned\x07"
    [k], problems = parse_connectors([connector(conns=[conn(is_pending_reconnect=hostile)])])
    assert k.conns[0].state == "unknown"
    assert problems and all(hostile not in str(p) for p in problems)
    assert "(got str)" in str(problems[0])


def test_missing_or_non_string_id_skips_that_record_only():
    records = [
        connector("k1"),
        {k: v for k, v in connector("k2").items() if k != "id"},
        connector(12345),
        connector(None),
        "not an object",
        connector("k3"),
    ]
    connectors, problems = parse_connectors(records)
    assert [k.id for k in connectors] == ["k1", "k3"]
    assert len(problems) == 4
    assert all(p.message.endswith("skipped") for p in problems)
    assert [p.where for p in problems] == ["connector #2", "connector #3", "connector #4", "connector #5"]


def test_connections_without_a_usable_id_are_skipped():
    conns = [conn("c1"), {"colo_name": "AMS"}, conn(7), 3, conn("c4")]
    [k], problems = parse_connectors([connector(conns=conns)])
    assert [c.id for c in k.conns] == ["c1", "c4"]
    assert len(problems) == 3


def test_duplicate_connectors_and_connections_are_skipped():
    first = connector("k1", conns=[conn("c1"), conn("c1", colo_name="LAX"), conn("c2")])
    second = connector("k1", arch="arm64")
    connectors, problems = parse_connectors([first, second])
    [k] = connectors
    assert k.arch == "linux_amd64"
    assert [(c.id, c.colo_name) for c in k.conns] == [("c1", "DFW"), ("c2", "DFW")]
    assert sorted(p.message for p in problems) == [
        "duplicate connection id; later copy skipped",
        "duplicate connector id; later copy skipped",
    ]


def test_non_list_conns_is_a_problem_and_no_connections():
    for value in ({"id": "c1"}, "c1", 4):
        [k], problems = parse_connectors([connector(conns=value)])
        assert k.conns == []
        assert len(problems) == 1 and "'conns' is" in problems[0].message


def test_null_conns_is_no_connections_without_a_problem():
    [k], problems = parse_connectors([connector(conns=None) | {"conns": None}])
    assert k.conns == [] and problems == []


def test_extra_fields_are_kept_in_api_dict():
    raw = connector(
        conns=[conn(new_conn_field={"nested": [1, 2]}, protocol="quic")],
        hostname="edge-box-1",
        future={"x": 1},
    )
    [k], problems = parse_connectors([raw])
    assert problems == []
    out = k.api_dict()
    assert out["hostname"] == "edge-box-1" and out["future"] == {"x": 1}
    assert out["conns"][0]["protocol"] == "quic"
    assert out["conns"][0]["new_conn_field"] == {"nested": [1, 2]}
    json.dumps(out)


def test_api_dict_uses_the_apis_field_names_and_rfc3339_dates():
    [k], _ = parse_connectors([connector()])
    out = k.api_dict()
    assert set(out) == {"id", "arch", "version", "run_at", "config_version", "features", "conns"}
    assert out["run_at"] == "2025-03-01T10:00:00Z"
    assert set(out["conns"][0]) == {
        "id",
        "uuid",
        "client_id",
        "client_version",
        "colo_name",
        "origin_ip",
        "opened_at",
        "is_pending_reconnect",
    }
    assert out["conns"][0]["opened_at"] == "2025-03-01T10:00:01.123456Z"
    assert out["conns"][0]["is_pending_reconnect"] is False


def test_dates_without_a_zone_are_taken_as_utc():
    [k], problems = parse_connectors([connector(run_at="2025-03-01T10:00:00", conns=[conn(opened_at="2025-03-01")])])
    assert problems == []
    assert k.run_at == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    assert k.conns[0].opened_at == datetime(2025, 3, 1, tzinfo=UTC)
    assert k.api_dict()["run_at"] == "2025-03-01T10:00:00Z"


def test_parsing_does_not_mutate_its_input():
    raw = [connector(arch=64, conns=[conn(is_pending_reconnect="x")])]
    before = copy.deepcopy(raw)
    parse_connectors(raw)
    assert raw == before


def test_models_are_frozen():
    [k], _ = parse_connectors([connector()])
    try:
        k.arch = "x"  # type: ignore[misc]
    except Exception as exc:  # pydantic raises ValidationError for frozen instances
        assert "frozen" in str(exc).lower()
    else:
        raise AssertionError("Connector is mutable")


def test_parse_many_tunnels_and_accounts():
    tunnels, problems = parse_many(
        Tunnel,
        [
            {"id": "t1", "name": "web", "status": "healthy", "tun_type": "cfd_tunnel", "config_src": "cloudflare"},
            {"id": "t2", "status": 5},
            {"name": "anonymous"},
        ],
        "tunnel",
    )
    assert [(t.id, t.status) for t in tunnels] == [("t1", "healthy"), ("t2", None)]
    assert tunnels[1].label == "t2" and tunnels[0].label == "web"
    assert [p.where for p in problems] == ["tunnel #2", "tunnel #3"]
    accounts, problems = parse_many(Account, None, "account")
    assert accounts == [] and problems == []


def test_validate_record_refuses_non_objects():
    record, problems = validate_record(Tunnel, ["id", "t1"], "tunnel")
    assert record is None
    assert problems == [RecordProblem("tunnel", "expected an object, got list; skipped")]


# -- property: parsing never raises, and returns only valid models ---------------------------------------------

FIELD_NAMES = [
    "id",
    "arch",
    "version",
    "run_at",
    "config_version",
    "features",
    "conns",
    "uuid",
    "client_id",
    "colo_name",
    "origin_ip",
    "opened_at",
    "is_pending_reconnect",
    "state",
    "model_config",
    "__class__",
]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["2025-03-01T10:00:00Z", "2025-03-01T10:00:00", "true", "DFW", "k1", "c1"])
)
keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=8),
    max_leaves=20,
)
dates = st.sampled_from(["2025-03-01T10:00:00Z", "2025-03-01T10:00:00", "2025-03-01", 1740823200, "+99999-01-01"])
connector_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.sampled_from(["k1", "k2"]) | json_values,
        "conns": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "id": st.sampled_from(["c1", "c2"]) | json_values,
                    "is_pending_reconnect": json_values,
                    "opened_at": dates | json_values,
                },
            ).flatmap(lambda d: st.dictionaries(keys, json_values, max_size=3).map(lambda extra: {**extra, **d}))
            | json_values,
            max_size=4,
        )
        | json_values,
        "run_at": dates | json_values,
        "features": json_values,
    },
)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, st.lists(connector_like | json_values, max_size=5)))
def test_parse_connectors_never_raises_and_returns_valid_models(raw):
    connectors, problems = parse_connectors(raw)
    assert all(isinstance(p, RecordProblem) and isinstance(str(p), str) for p in problems)
    ids = [k.id for k in connectors]
    assert len(ids) == len(set(ids))
    for k in connectors:
        assert isinstance(k, Connector)
        assert isinstance(k.id, str)
        assert Connector.model_validate(k.model_dump()) == k
        conn_ids = [c.id for c in k.conns]
        assert len(conn_ids) == len(set(conn_ids))
        for c in k.conns:
            assert isinstance(c, Connection) and isinstance(c.id, str)
            assert c.is_pending_reconnect in (True, False, None)
            assert c.state in ("active", "pending", "unknown")
            assert c.opened_at is None or c.opened_at.tzinfo is not None
        assert k.run_at is None or k.run_at.tzinfo is not None
        json.dumps(k.api_dict())
