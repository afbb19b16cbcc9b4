"""model/parse.py connectors_from_json: --once's one-call decode and validation of a connections answer gives what
json.loads and parse_connectors give, or None (the usual way then says what is odd), never something else."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_properties import JSON, PROPERTY, raw_connector
from tunneltop.api import ApiError, CloudflareClient, RetryPolicy, jsondecode
from tunneltop.model.parse import RecordCache, connectors_from_json, parse_connectors


def _usual(content: bytes) -> tuple[Any, list[Any], list[Any]]:
    body = json.loads(content)
    connectors, problems = parse_connectors(body["result"])
    return body, connectors, problems


@PROPERTY
@given(
    st.lists(raw_connector(), max_size=3) | st.lists(raw_connector(), max_size=1) | JSON,
    st.booleans(),
    st.sampled_from([True, True, True, False, 1, None]),
    JSON,
)
def test_the_same_records_as_json_loads_and_parse_connectors_or_none(
    result: Any, ascii_only: bool, success: Any, messages: Any
) -> None:
    content = json.dumps({"success": success, "result": result, "messages": messages}, ensure_ascii=ascii_only).encode(
        "utf-8", "surrogatepass"
    )
    fast = connectors_from_json(content)
    if fast is None:
        return
    body, connectors, problems = _usual(content)
    assert body["success"] is True and not problems
    # repr: NaN is no equal of itself, and 1 and 1.0 are equal but not the same JSON.
    assert repr(fast[0]) == repr(connectors)
    assert repr(fast[1]) == repr(body["messages"]) and fast[2] is None


def _connector(kid: str, *conn_ids: str) -> dict[str, Any]:
    conns = [
        {"id": c, "colo_name": "DFW", "is_pending_reconnect": False, "opened_at": "2026-11-28T11:00:00Z"}
        for c in conn_ids
    ]
    run_at = "2026-11-28T10:00:00.000000Z"
    return {"id": kid, "version": "2025.4.0", "run_at": run_at, "features": ["x"], "conns": conns}


def _answer(result: Any, **envelope: Any) -> bytes:
    return json.dumps({"success": True, "errors": [], "messages": [], "result": result, **envelope}).encode()


def test_a_clean_answer_is_read_in_one_call_with_its_envelope():
    content = _answer([_connector("k1", "c1", "c2"), _connector("k2", "c3")], result_info={"count": 2}, extra=1)
    fast = connectors_from_json(content)
    assert fast is not None
    _, connectors, problems = _usual(content)
    assert (fast[0], fast[1], fast[2]) == (connectors, [], {"count": 2}) and not problems


def test_anything_odd_is_left_to_the_usual_way():
    missing_conns = _connector("k2")
    del missing_conns["conns"]
    odd = [
        _answer([_connector("k1", "c1"), _connector("k1", "c2")]),  # a repeated connector
        _answer([_connector("k1", "c1", "c1")]),  # a repeated connection
        _answer([_connector("k1", "c1"), missing_conns]),  # no 'conns': as _whole, left to the usual way
        _answer([{**_connector("k1", "c1"), "conns": None}]),
        _answer([{**_connector("k1", "c1"), "version": 5}]),  # a field of the wrong type: shown as unknown
        _answer(None),
        _answer([_connector("k1", "c1")], success=False),
        _answer([_connector("k1", "c1")], success=1),
        b"\xef\xbb\xbf" + _answer([]),  # json.loads reads a BOM; pydantic does not
        _answer([]) + b" x",
        b"<html>",
    ]
    assert [connectors_from_json(content) for content in odd] == [None] * len(odd)


# -- the client's one-shot reads (--once) --------------------------------------------------------------------------


def _client(content: bytes, status: int = 200, **options: Any) -> CloudflareClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, headers={"content-type": "application/json"})

    return CloudflareClient(None, "http://api.test/client/v4", transport=httpx.MockTransport(handler), **options)


async def _read(content: bytes, status: int = 200, **options: Any) -> tuple[list[Any], list[Any]]:
    async with _client(content, status, **options) as client:
        return await client.list_connectors("acc", "tun", RecordCache())


@pytest.mark.parametrize(
    "content",
    [
        _answer([_connector("k1", "c1", "c2"), _connector("k2", "c3")]),
        _answer([_connector("k1", "c1"), _connector("k1", "c2")]),
        _answer([{**_connector("k1", "c1"), "version": 5}, {"no": "id"}]),
        b"\xef\xbb\xbf" + _answer([_connector("k1", "c1")]),
    ],
    ids=["clean", "repeated", "odd records", "bom"],
)
async def test_a_one_shot_client_reads_what_a_polling_one_reads(content: bytes) -> None:
    assert await _read(content, one_shot=True) == await _read(content)


@pytest.mark.parametrize(
    ("content", "status"),
    [(b'{"success": false, "errors": [{"code": 10000, "message": "no"}], "result": null}', 403), (b"<html>", 502)],
)
async def test_a_one_shot_client_fails_as_a_polling_one_does(content: bytes, status: int) -> None:
    failures: list[str] = []
    for options in ({"one_shot": True}, {}):
        with pytest.raises(ApiError) as caught:
            await _read(content, status, retry=RetryPolicy(retries=0), **options)
        failures.append(f"{type(caught.value).__name__}: {caught.value}")
    assert failures[0] == failures[1]


async def test_a_one_shot_client_reads_a_clean_answer_from_its_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    content = _answer([_connector("k1", "c1", "c2")])
    expected = await _read(content)

    def no_decode(content: bytes) -> Any:
        raise AssertionError("decoded the usual way")

    monkeypatch.setattr(jsondecode, "loads", no_decode)
    assert await _read(content, one_shot=True) == expected
