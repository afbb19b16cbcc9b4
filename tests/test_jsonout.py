"""The --once JSON writer: the same JSON value as json.dumps, ASCII only, a connector a line."""

from __future__ import annotations

import io
import json

from tunneltop.jsonout import dumps, write


def test_the_same_value_as_json_dumps_in_ascii_with_a_connector_a_line() -> None:
    conns = [{"id": f"c{n}", "colo_name": "DFW\u202e", "is_pending_reconnect": n == 1, "ip": None} for n in (0, 1)]
    clients = [{"id": "k1", "features": ["a", "b"], "conns": conns, "meta": {}}, {"id": "k2\x1b[31m", "conns": []}]
    document = {
        "account_id": "a",
        "tunnels": [{"id": "t", "clients": clients, "tunnel": {"name": "é", "metadata": {}}, "findings": []}],
        "odd keys": {1: "one", False: "no", None: "none", 2.5: "half"},
        "empty": [],
    }
    text = dumps(document)
    assert json.loads(text) == json.loads(json.dumps(document)) and text.isascii()
    lines = text.splitlines()
    assert sum('"id": "k' in line for line in lines) == 2, "each connector, whole, on one line"
    assert any('"k1"' in line and '"c1"' in line for line in lines), "with its connections"
    assert lines[0] == "{" and lines[1] == '  "account_id": "a",'


def test_json_written_already_is_put_in_as_it_is_a_line_of_its_own() -> None:
    document = {"tunnels": [{"id": "t", "clients": [b'{"id":"k1","conns":[]}', {"id": "k2", "conns": []}]}]}
    text = dumps(document)
    clients = [{"id": "k1", "conns": []}, {"id": "k2", "conns": []}]
    assert json.loads(text) == {"tunnels": [{"id": "t", "clients": clients}]}
    assert '        {"id":"k1","conns":[]},' in text.splitlines()


def test_written_a_batch_at_a_time_is_the_text_dumps_gives() -> None:
    clients = [f'{{"id":"k{n}","conns":[]}}'.encode() for n in range(1500)]
    document = {"tunnels": [{"id": "t", "clients": clients, "findings": [{"check": "x"}] * 700}], "problems": []}
    stream = io.StringIO()
    write(document, stream)
    assert stream.getvalue() == dumps(document)


def test_a_list_written_already_is_laid_out_as_the_same_list_encoded_here() -> None:
    clients = [{"id": f"k{n}", "conns": [{"id": f"c{n}", "colo": "DFW\u202e"}]} for n in range(3)]
    written = [json.dumps(c, separators=(", ", ": ")).encode() for c in clients]
    for items, encoded in ((clients, written), (clients[:1], written[:1])):
        document = {"tunnels": [{"id": "t", "clients": items, "findings": [{"check": "x"}]}]}
        as_written = {"tunnels": [{"id": "t", "clients": encoded, "findings": [{"check": "x"}]}]}
        assert dumps(as_written) == dumps(document)
