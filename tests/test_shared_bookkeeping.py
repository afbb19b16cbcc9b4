"""Records share pydantic's per-record bookkeeping (the set of fields given, the dict of unknown fields) where it is
equal, and nothing a reader sees changes: values, equality, copies, dumps."""

from __future__ import annotations

import httpx

from tests.test_models import conn, connector
from tests.test_source import FakeApi, engine, polled
from tunneltop.api import CloudflareClient, Credentials, RequestGate
from tunneltop.model import parse_connectors
from tunneltop.model.records import Connection, Connector, share_bookkeeping, share_connectors


def test_records_given_every_field_share_one_fields_set_and_one_empty_extra():
    [k1, k2], problems = parse_connectors([connector("k1"), connector("k2")])
    assert problems == []
    conns = [*k1.conns, *k2.conns]
    assert len({id(c.model_fields_set) for c in conns}) == 1
    assert len({id(c.model_extra) for c in conns}) == 1
    assert k1.model_fields_set is k2.model_fields_set
    assert conns[0].model_fields_set == set(Connection.model_fields)
    assert conns[0].model_extra == {}


def test_a_record_with_other_fields_keeps_its_own():
    [k], _ = parse_connectors([connector(conns=[conn("c1"), conn("c2", shiny=True), conn("c3", uuid=None)])])
    plain, shiny, no_uuid = k.conns
    assert shiny.model_fields_set == set(Connection.model_fields) | {"shiny"}
    assert shiny.model_fields_set is not plain.model_fields_set
    assert shiny.model_extra == {"shiny": True}
    assert no_uuid.model_fields_set == set(Connection.model_fields)  # given as null: still given
    assert no_uuid.model_fields_set is plain.model_fields_set


def test_a_copy_with_changes_leaves_the_shared_set_and_dict_alone():
    [k], _ = parse_connectors([connector()])
    first, second = k.conns
    fields, extra = set(first.model_fields_set), dict(first.model_extra or {})
    copied = first.model_copy(update={"colo_name": "NRT", "brand_new": 1})
    assert copied.colo_name == "NRT" and copied.model_extra == {"brand_new": 1}
    assert first.model_fields_set == fields and second.model_fields_set == fields
    assert first.model_extra == extra == second.model_extra
    moved = k.model_copy(update={"conns": [second]})
    assert moved.conns == [second] and k.conns == [first, second]
    assert k.model_fields_set == set(Connector.model_fields)


def test_shared_records_read_compare_and_dump_as_before():
    [k], _ = parse_connectors([connector()])
    [again], _ = parse_connectors([connector()])
    assert k == again and k.conns[0] == again.conns[0]
    assert k.conns[0].api_dict() == Connection.model_validate(conn("c1")).model_dump(mode="json")
    assert k.conns[0].model_dump(exclude_unset=True) == k.conns[0].model_dump()


def test_share_bookkeeping_pools_what_validation_could_not():
    # A drifting API: every connection carries a field the model does not know, so none has the model's set.
    [k], _ = parse_connectors([connector(conns=[conn("c1", shiny=1), conn("c2", shiny=2), conn("c3")])])
    drifted, also, plain = k.conns
    assert drifted.model_fields_set is not also.model_fields_set
    share_bookkeeping(k.conns)
    assert drifted.model_fields_set is also.model_fields_set
    assert drifted.model_fields_set == set(Connection.model_fields) | {"shiny"}
    assert plain.model_fields_set == set(Connection.model_fields)
    assert (drifted.model_extra, also.model_extra, plain.model_extra) == ({"shiny": 1}, {"shiny": 2}, {})


def test_share_connectors_leaves_the_known_ones_alone():
    [old], _ = parse_connectors([connector("k1", conns=[conn("c1", shiny=1)])])
    [new], _ = parse_connectors([connector("k2", conns=[conn("c2", shiny=2), conn("c3", shiny=3)])])
    own = old.conns[0].model_fields_set
    share_connectors([old, new], known=[old])
    assert old.conns[0].model_fields_set is own
    assert new.conns[0].model_fields_set is new.conns[1].model_fields_set


async def test_a_poll_shares_the_bookkeeping_of_connections_with_fewer_fields(clock):
    """The fake API's connections carry four of the model's fields, not the model's set: the engine shares theirs."""
    async with CloudflareClient(
        Credentials.token("cfut_shared"),
        "https://api.cloudflare.test/client/v4",
        transport=httpx.MockTransport(FakeApi()),
        sleep=clock.sleep,
        clock=clock,
        gate=RequestGate(60, clock=clock),
    ) as client:
        snapshot = await polled(engine(client, clock))
    conns = [c for s in snapshot.tunnels for k in s.connectors or () for c in k.conns]
    assert len(conns) == 4
    assert len({id(c.model_fields_set) for c in conns}) == 1
    assert len({id(c.model_extra) for c in conns}) == 1
    assert conns[0].model_fields_set == {"id", "colo_name", "origin_ip", "is_pending_reconnect"}
