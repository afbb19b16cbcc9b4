"""A large answer decoded in pieces (api/jsondecode.py) is exactly what json.loads makes of it, valid or not; no
single scanner call reads much more than two windows of it; and the client, and the validation it hands the records
to (in slices, model/parse.py), answer as they did with one call each."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_api_errors import CLOUDFLARE_502_PAGE, fail_with, make_client
from tests.test_properties import raw_connector
from tunneltop.api import InvalidResponseError, ServerError, jsondecode
from tunneltop.api import client as client_module
from tunneltop.model import parse
from tunneltop.model.parse import RecordCache, parse_connectors, parse_many
from tunneltop.model.records import Account, Tunnel

# Deterministic, as the other property tests: the same examples every run.
PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=300)
ACCOUNT = "699d98642c564d2e855e9661899b7252"
TUNNEL = "f70ff985-a4ef-4643-bbbc-4a0ed4fc8415"


# -- documents, written with whitespace anywhere json allows it ------------------------------------------------------


class Raw(str):
    """A token written as is: a number or string in a spelling json.dumps never uses."""


class Pairs(list[tuple[str, Any]]):
    """An object as written: its keys in order, repeats allowed (the last value wins, in the first one's place)."""


WS = st.text(alphabet=" \t\n\r", max_size=3)
TEXT = st.text(max_size=12) | st.sampled_from(['"', "\\", "[", "]", "{", "}", '"]}', "\\u0041", "\x00\x1f", "\u2028"])
# Lone and paired surrogates, which json.dumps escapes (or, with ensure_ascii off, writes as is).
TEXT |= st.sampled_from(["\ud800", "\udfff", "\ud83d\ude00", "x\udc00y"])
NUMBERS = st.sampled_from(
    ["0", "-0", "7", "-12", "1.5", "1e5", "1E+5", "2.5e-3", "-0.0e0", "123456789012345678901234567890", "1e400"]
)
TOKENS = NUMBERS | st.sampled_from(['"\\/"', '"\\u00E9"', '"\\ud83d\\ude00"', '"a\\"]}"', '"\\\\"', "NaN", "-Infinity"])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | TEXT
    | TOKENS.map(Raw)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=6) | st.lists(st.tuples(TEXT, inner), max_size=5).map(Pairs),
    max_leaves=40,
)
# Cloudflare's envelope: an object whose big values are arrays, the elements being objects with arrays of their own.
KEYS = st.sampled_from(["result", "success", "errors", "result_info"]) | TEXT
ENVELOPES = st.lists(st.tuples(KEYS, VALUES), max_size=5)
DOCUMENTS = ENVELOPES.map(Pairs) | VALUES


def render(draw: st.DrawFn, value: Any, ascii_only: bool) -> str:
    def ws() -> str:
        return draw(WS)

    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Pairs):
        members = [f"{ws()}{json.dumps(k, ensure_ascii=ascii_only)}{ws()}:{ws()}{render(draw, v, ascii_only)}{ws()}"
                   for k, v in value]
        return "{" + (",".join(members) or ws()) + "}"
    if isinstance(value, list):
        return "[" + (",".join(f"{ws()}{render(draw, v, ascii_only)}{ws()}" for v in value) or ws()) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


ENCODINGS = st.sampled_from(["utf-8"] * 6 + ["utf-8-sig", "utf-16", "utf-16-le", "utf-32-be"])


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    text = draw(WS) + render(draw, draw(DOCUMENTS), draw(st.booleans())) + draw(WS)
    return text.encode(draw(ENCODINGS), "surrogatepass")


@st.composite
def broken(draw: st.DrawFn) -> bytes:
    """A body spoilt the way answers are: cut short, a character added or lost, garbage after it, bad bytes."""
    body = draw(bodies())
    at = draw(st.integers(0, len(body)))
    how = draw(st.sampled_from(["cut", "insert", "delete", "trail"]))
    if how == "cut":
        return body[:at]
    if how == "insert":
        extra = draw(st.sampled_from([b'"', b",", b":", b"}", b"]", b"[", b"\\", b"x", b"\xff", b" "]))
        return body[:at] + extra + body[at:]
    if how == "delete":
        return body[:at] + body[at + 1 :]
    return body + draw(st.sampled_from([b"x", b" {}", b",", b"<html>", b"\xff", b"]"]))


def outcome(decode: Callable[[bytes], Any], body: bytes) -> tuple[Any, ...]:
    """What ``decode`` made of ``body``: the value (its repr tells 1 from 1.0 and True, and keeps key order and nan),
    or the error with all it says."""
    try:
        return ("value", repr(decode(body)))
    except json.JSONDecodeError as exc:
        return ("JSONDecodeError", exc.msg, exc.pos, exc.lineno, exc.colno, exc.doc)
    except ValueError as exc:  # UnicodeDecodeError, or an integer over Python's digit limit
        return (type(exc).__name__, str(exc))


def piecewise(window: int) -> Callable[[bytes], Any]:
    return lambda body: jsondecode.loads(body, above=0, window=window)


# Windows of a byte or a few put their ends everywhere: inside strings, escapes, numbers, keys, UTF-8 sequences, and
# force the containers they cut through to be read piecewise, level after level; a large one reads the whole body
# as one window.
WINDOWS = st.integers(1, 64) | st.sampled_from([1 << 20])


@PROPERTY
@given(bodies(), WINDOWS)
def test_a_valid_document_is_exactly_what_json_loads_makes_of_it(body: bytes, window: int) -> None:
    expected = outcome(json.loads, body)
    assert expected[0] == "value"
    assert outcome(piecewise(window), body) == expected


@PROPERTY
@given(broken(), WINDOWS)
def test_a_spoilt_document_fails_as_json_loads_fails(body: bytes, window: int) -> None:
    assert outcome(piecewise(window), body) == outcome(json.loads, body)


@pytest.mark.parametrize(
    "body",
    [
        CLOUDFLARE_502_PAGE * 2000,
        b"",
        b"   ",
        b"\xff\xfe",
        b'"a lone string"',
        b"  12.5e3 ",
        b" " * 300_000 + b'{"success": true}' + b"\n" * 300_000,
        b'{"result": [' + b"1," * 200_000 + b"]}",
        b'{"result": [' + b"{}," * 100_000 + b"{}] }}",
        b'{"result": "' + b"x" * 300_000,
        b'[{"a": "' + "é".encode() * 200_000 + b'"}, 1e' + b"9" * 5000 + b"]",
        # A run of elements must not run past its array's end into the next one's ('}], "x": [{').
        b'{"result": [' + b'{"a": 1}, ' * 20 + b'{"a": 2}], "x": [{"b": 2}], "y": 3}',
        b'{"result": [{"a": "}"}, {"b": "{"}, {"c": 1}]}',
    ],
    ids=["html", "empty", "blank", "bad-bytes", "string", "number", "padded", "trailing-comma", "extra-brace",
         "unterminated", "huge-integer", "arrays-of-objects", "brackets-in-strings"],
)
@pytest.mark.parametrize("window", [1, 7, 16, 48, jsondecode.WINDOW])
def test_what_answers_are_made_of_when_they_go_wrong(body: bytes, window: int) -> None:
    assert outcome(piecewise(window), body) == outcome(json.loads, body)


def tunnel_list(connections: int) -> dict[str, Any]:
    """The tunnel list as the API sends it: each tunnel with its (deprecated) connections, all of them in one."""
    conns = [{"id": f"{n:08x}", "colo_name": "DFW", "is_pending_reconnect": False, "opened_at": "2026-11-28T11:00:00Z"}
             for n in range(connections)]
    tunnels = [{"id": TUNNEL, "name": "huge", "connections": conns}, {"id": "t2", "name": "small", "connections": []}]
    return {"result": tunnels, "success": True, "errors": [], "messages": [], "result_info": {"count": 2}}


@pytest.mark.parametrize("window", [4096, jsondecode.WINDOW])
def test_no_scanner_call_reads_much_more_than_two_windows(window: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # One element of 5,000 connections (the huge tunnel) is read piecewise too, not in one call.
    body = json.dumps(tunnel_list(5000)).encode()
    assert len(body) > 8 * window
    expected = json.loads(body)  # before the spy: json.loads goes through raw_decode too
    spans: list[int] = []
    raw_decode = json.JSONDecoder.raw_decode

    def spy(self: json.JSONDecoder, s: str, idx: int = 0) -> tuple[Any, int]:
        spans.append(len(s) - idx)  # what the call may read: the text from idx on
        return raw_decode(self, s, idx)

    shared = jsondecode._shared_strings

    def shared_spy(text: str) -> Any:
        spans.append(len(text))  # a run of elements: read by jiter
        return shared(text)

    monkeypatch.setattr(json.JSONDecoder, "raw_decode", spy)
    monkeypatch.setattr(jsondecode, "_shared_strings", shared_spy)
    assert jsondecode.loads(body, window=window) == expected
    assert len(spans) >= len(body) // (2 * window) and max(spans) <= 2 * window + 2


def test_elements_share_their_keys_strings_as_under_json_loads() -> None:
    # The records are kept (RecordCache): a copy of every key per connector would be 20 MB at 100,000 connections.
    body = json.dumps(connections_answer(2000)).encode()
    connectors = jsondecode.loads(body)["result"]
    keys = {id(key) for connector in connectors for record in (connector, *connector["conns"]) for key in record}
    assert len(connectors) == 2000 and len(keys) < 2000, "a copy per connector is 20,000 (ten keys each)"


def test_a_body_up_to_the_threshold_is_one_json_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    small = json.dumps(tunnel_list(10)).encode()
    monkeypatch.setattr(jsondecode, "_Reader", lambda *_: pytest.fail("read in pieces"))
    assert jsondecode.loads(small) == json.loads(small)


# -- the client ------------------------------------------------------------------------------------------------------


def connections_answer(connectors: int) -> dict[str, Any]:
    result = [
        {"id": f"k{n:05d}", "version": "2025.4.0", "run_at": "2026-11-28T10:00:00Z",
         "conns": [{"id": f"c{n:05d}-{i}", "colo_name": "DFW", "origin_ip": "192.0.2.1",
                    "opened_at": "2026-11-28T11:00:00Z", "is_pending_reconnect": False} for i in range(4)]}
        for n in range(connectors)
    ]
    return {"result": result, "success": True, "errors": [], "messages": [], "result_info": {"count": connectors}}


async def test_the_client_reads_a_large_answer_as_it_read_it_whole(clock: Any) -> None:
    body = json.dumps(connections_answer(800), indent=1).encode()
    assert len(body) > jsondecode.PIECEWISE_ABOVE
    async with make_client(lambda request: httpx.Response(200, content=body), clock) as client:
        connectors, problems = await client.list_connectors(ACCOUNT, TUNNEL)
    assert (connectors, problems) == parse_connectors(json.loads(body)["result"])
    assert len(connectors) == 800 and problems == []


async def test_released_answers_leave_the_cached_records_whole(clock: Any) -> None:
    # The client empties each decoded answer a slice at a time once parsed (jsondecode.release), and the cache its
    # last poll's entries: what the cache keeps must not be what is emptied.
    first = connections_answer(800)
    second = copy.deepcopy(first)
    second["result"][5]["conns"][1]["colo_name"] = "AMS"
    answers = iter([first, second, first])
    cache = RecordCache()
    async with make_client(lambda request: httpx.Response(200, json=next(answers)), clock) as client:
        polls = [await client.list_connectors(ACCOUNT, TUNNEL, cache) for _ in range(3)]
    for poll, answer in zip(polls, (first, second, first), strict=True):
        assert poll == parse_connectors(copy.deepcopy(answer["result"]))
    assert polls[2][0][0] is polls[0][0][0] and polls[2][0][5] is not polls[1][0][5]
    assert all(kept is now for kept, now in zip(cache.connectors.values(), polls[2][0], strict=True))
    assert sorted(map(id, cache.texts.values())) == sorted(map(id, polls[2][0])), "each known by its text"


@pytest.mark.parametrize("connectors", [3, 800])  # a small answer and a large one
async def test_unchanged_connectors_read_again_are_not_decoded(
    clock: Any, connectors: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A connector whose text is that of one cached is that very model, put in place as the answer is read, not
    # decoded (RecordCache.reading); in one that changed, each unchanged connection is the cached one too.
    first = connections_answer(connectors)
    second = copy.deepcopy(first)
    second["result"][1]["conns"][2]["colo_name"] = "AMS"
    answers = iter([first, second])
    cache = RecordCache()
    read: list[list[Any]] = []

    def parse_spy(raw: Any, cache: RecordCache | None = None, reading: Any = None) -> Any:
        read.append(list(raw))  # what the answer was decoded into (the client empties it afterwards)
        return parse_connectors(raw, cache, reading)

    monkeypatch.setattr(client_module, "parse_connectors", parse_spy)
    async with make_client(lambda request: httpx.Response(200, json=next(answers)), clock) as client:
        before, _ = await client.list_connectors(ACCOUNT, TUNNEL, cache)
        now, problems = await client.list_connectors(ACCOUNT, TUNNEL, cache)
    assert (now, problems) == parse_connectors(copy.deepcopy(second["result"]))
    assert all(isinstance(item, dict) for item in read[0]), "nothing cached yet: all decoded"
    assert [item is was for item, was in zip(read[1], before, strict=True)] == [n != 1 for n in range(connectors)]
    assert read[1][1] == second["result"][1], "the changed one: decoded"
    assert now[1] is not before[1] and now[1].conns[2].colo_name == "AMS"
    assert all(now[1].conns[n] is before[1].conns[n] for n in (0, 1, 3)), "its unchanged connections: the cached"
    assert all(a is b for n, (a, b) in enumerate(zip(now, before, strict=True)) if n != 1)


async def test_the_tunnel_lists_copy_of_the_connections_is_neither_compared_nor_kept(clock: Any) -> None:
    answer = tunnel_list(3000)
    answer["result"].append({"id": 5, "connections": []})  # odd: reported as it was
    cache: dict[str, Any] = {}
    async with make_client(lambda request: httpx.Response(200, json=answer), clock) as client:
        polls = [await client.list_tunnels(ACCOUNT, cache=cache) for _ in range(2)]
    expected = parse_many(Tunnel, copy.deepcopy(answer["result"]), "tunnel")
    assert polls[0] == polls[1] == expected and len(expected[0]) == 2 and len(expected[1]) == 1
    assert polls[1][0][0] is polls[0][0][0], "unchanged: the same model"
    assert all("connections" not in raw for raw, _ in cache.values())


def test_release_empties_a_list_and_leaves_anything_else() -> None:
    items = [{"n": n} for n in range(1000)]
    kept = items[10]
    jsondecode.release(items)
    assert items == [] and kept == {"n": 10}
    envelope = {"result": [1, 2]}
    jsondecode.release(envelope)
    jsondecode.release(None)
    assert envelope == {"result": [1, 2]}


@pytest.mark.parametrize("spoil", [lambda b: b[:-7], lambda b: b[: len(b) // 2], lambda b: b + b"}"])
async def test_a_large_answer_cut_short_or_with_garbage_is_not_valid_json(clock: Any, spoil: Any) -> None:
    body = spoil(json.dumps(connections_answer(2000)).encode())
    assert len(body) > jsondecode.PIECEWISE_ABOVE
    error = await fail_with(clock, httpx.Response(200, headers={"Content-Type": "application/json"}, content=body))
    assert type(error) is InvalidResponseError
    assert error.transient and "not valid JSON" in error.message and f"{len(body)} bytes" in error.message


async def test_a_large_html_page_is_still_an_html_page(clock: Any) -> None:
    page = CLOUDFLARE_502_PAGE * 1000
    assert len(page) > jsondecode.PIECEWISE_ABOVE
    error = await fail_with(clock, httpx.Response(502, content=page))
    assert type(error) is ServerError and "HTML" in error.message and "HTTP 502" in error.message


# -- validation in slices --------------------------------------------------------------------------------------------


@contextmanager
def slices_of(weight: int) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parse, "_SLICE_WEIGHT", weight)
        yield


def clean_connector(n: int, conns: int) -> dict[str, Any]:
    return {"id": f"k{n}", "version": "2025.1.0", "run_at": "2026-11-28T10:00:00Z",
            "conns": [{"id": f"c{n}-{i}", "colo_name": "DFW", "is_pending_reconnect": False} for i in range(conns)]}


@st.composite
def answers(draw: st.DrawFn) -> list[Any]:
    """A connections answer: mostly clean connectors, now and then an odd one (a wrong field, a repeated id, not
    even an object), so that both the whole answer's path and the record-by-record one meet several slices."""
    odd = draw(st.integers(0, 4))  # 0: all clean; else about one in ``odd + 1`` is not
    out: list[Any] = []
    for n in range(draw(st.integers(0, 14))):
        clean = not odd or draw(st.integers(0, odd)) > 0
        out.append(clean_connector(n, draw(st.integers(0, 5))) if clean else draw(raw_connector()))
    return out


WEIGHTS = (1, 2, 3, 7)
ONE_CALL = 10**9


@PROPERTY
@given(answers(), answers())
def test_validated_in_slices_is_validated_in_one_call(first: list[Any], second: list[Any]) -> None:
    def polls() -> tuple[Any, ...]:
        cache = RecordCache()
        once = parse_connectors(copy.deepcopy(first))
        seen = parse_connectors(copy.deepcopy(first), cache)
        again = parse_connectors(copy.deepcopy(second), cache)  # against what the first poll cached
        return once, seen, again, [c.api_dict() for c in again[0]]

    with slices_of(ONE_CALL):
        expected = polls()
    for weight in WEIGHTS:
        with slices_of(weight):
            assert polls() == expected


@PROPERTY
@given(st.lists(st.integers(0, 9) | st.none(), max_size=12), st.sampled_from(WEIGHTS))
def test_a_flat_list_validated_in_slices_is_validated_in_one_call(picks: list[int | None], weight: int) -> None:
    raw = [{"id": f"t{n}", "name": "web", "status": "healthy"} if n is not None else {"id": 5} for n in picks]
    raw += [{"id": "tx", "created_at": "yesterday"}, ["not", "an", "object"]]
    for model in (Tunnel, Account):
        with slices_of(ONE_CALL):
            expected = parse_many(model, copy.deepcopy(raw), "record")
        with slices_of(weight):
            assert parse_many(model, copy.deepcopy(raw), "record") == expected


@st.composite
def texts(draw: st.DrawFn) -> str:
    """A JSON text as the runs are (written with whitespace anywhere), valid or spoilt as answers are."""
    text = draw(WS) + render(draw, draw(DOCUMENTS), draw(st.booleans())) + draw(WS)
    at = draw(st.integers(0, len(text)))
    how = draw(st.sampled_from(["valid", "valid", "cut", "insert", "delete", "trail"]))
    if how == "cut":
        return text[:at]
    if how == "insert":
        extra = draw(st.sampled_from(['"', ",", ":", "}", "]", "[", "\\", "x", "\x01", " ", "-", "0"]))
        return text[:at] + extra + text[at:]
    if how == "delete":
        return text[:at] + text[at + 1 :]
    return text + (draw(st.sampled_from(["x", " {}", ",", "]", "0", "e5"])) if how == "trail" else "")


@PROPERTY
@given(texts())
def test_jiter_reads_nothing_json_refuses_and_what_it_reads_as_json_does(text: str) -> None:
    # A run of elements is read by jiter when it can (sharing equal strings), else by json's scanner: so jiter must
    # never accept a text json refuses, nor read one differently.
    try:
        value = jsondecode._shared_strings(text)
    except (ValueError, TypeError):
        return
    assert repr(value) == repr(json.loads(text))


def test_equal_strings_are_shared() -> None:
    # As the API writes a connection: its uuid is its id, its connector's id, version and address are in each.
    answer = connections_answer(2000)
    for connector in answer["result"]:
        for conn in connector["conns"]:
            conn.update(uuid=conn["id"], client_id=connector["id"], client_version=connector["version"])
    body = json.dumps(answer).encode()
    connectors = jsondecode.loads(body)["result"]
    assert connectors == json.loads(body)["result"]
    conns = [conn for connector in connectors for conn in connector["conns"]]
    # Runs of elements are read by jiter: all but those read one by one at the array's end (the last window's,
    # whose braces are counted with the envelope's after it) and a value whose slot in jiter's cache went to
    # another between two of its uses.
    assert len(conns) == 8000 and sum(conn["id"] is conn["uuid"] for conn in conns) > 0.95 * len(conns)
    for field in ("client_id", "client_version", "colo_name", "origin_ip", "opened_at"):
        objects = {id(conn[field]) for conn in conns}
        assert len(objects) < len({conn[field] for conn in conns}) + 0.05 * len(conns), field


# -- an answer's elements handed over as they are read (loads' ``elements``) ------------------------------------------


class Recorder:
    """A hook that keeps what it is handed and knows the digests of ``texts``: an element it knows is given back as
    ("known", the value it was read as), a tuple (which no JSON value is), so that what took whose place shows in
    the value's repr."""

    def __init__(self, texts: dict[bytes, Any] | None = None) -> None:
        self.texts = texts or {}
        self.runs: list[list[tuple[Any, bytes | None]]] = []
        self.hits = 0

    def known(self, digest: bytes) -> Any:
        if digest not in self.texts:
            return None
        self.hits += 1
        return ("known", self.texts[digest])

    def decoded(self, values: list[Any], digests: list[bytes | None]) -> None:
        self.runs.append(list(zip(values, digests, strict=True)))

    def handed(self) -> list[Any]:
        return [value for run in self.runs for value, _ in run]

    def digests(self) -> dict[bytes, Any]:
        return {digest: value for run in self.runs for value, digest in run if digest is not None}


def unwrapped(value: Any) -> Any:
    """``value`` with each known element of a top-level ``result`` array back as the value it was read as."""
    if isinstance(value, dict) and isinstance(value.get("result"), list):
        value["result"] = [e[1] if isinstance(e, tuple) and e[0] == "known" else e for e in value["result"]]
    return value


def read_with(hook: Recorder, window: int, above: int = 0) -> Callable[[bytes], Any]:
    return lambda body: unwrapped(jsondecode.loads(body, above=above, window=window, elements=hook))


# Envelopes whose result is an array of objects (which have a "result" of their own now and then), among others.
ELEMENTS = st.lists(VALUES | st.lists(st.tuples(st.sampled_from(["result", "id"]), VALUES), max_size=3).map(Pairs),
                    max_size=8)
HANDED = st.lists(st.tuples(KEYS, VALUES) | st.tuples(st.just("result"), ELEMENTS), max_size=5).map(Pairs) | VALUES


@st.composite
def handed_bodies(draw: st.DrawFn) -> bytes:
    text = draw(WS) + render(draw, draw(HANDED), draw(st.booleans())) + draw(WS)
    return text.encode(draw(ENCODINGS), "surrogatepass")


@PROPERTY
@given(handed_bodies(), WINDOWS, st.sampled_from([0, jsondecode.PIECEWISE_ABOVE]))
def test_elements_are_handed_as_read_and_known_ones_read_again_are_the_same(
    body: bytes, window: int, above: int
) -> None:
    first = Recorder()
    assert outcome(read_with(first, window, above), body) == outcome(json.loads, body)
    # Each element of a result array handed once, in order (a repeated "result" key's earlier arrays too, which
    # it then overwrites), whatever the body's size.
    assert repr(first.handed()) == repr([e for array in result_arrays(body) for e in array])
    # Read again knowing every text handed with a digest: those are not decoded, and what takes their place is
    # what they were read as, the very value json.loads makes of them.
    again = Recorder(first.digests())
    assert outcome(read_with(again, window, above), body) == outcome(json.loads, body)
    assert again.hits == sum(digest is not None for run in first.runs for _, digest in run)


@PROPERTY
@given(broken(), WINDOWS)
def test_a_spoilt_document_fails_as_json_loads_fails_whatever_the_hook_knows(body: bytes, window: int) -> None:
    # Known by the texts of the unspoilt documents' elements, which the spoilt one may share, or may cut short.
    known = Recorder()
    with contextlib.suppress(ValueError):
        jsondecode.loads(body, above=0, window=window, elements=known)
    assert outcome(read_with(Recorder(known.digests()), window), body) == outcome(json.loads, body)


def result_arrays(body: bytes) -> list[list[Any]]:
    """The values of a top-level object's "result" keys (every one, repeated or not) that are arrays."""
    objects: list[list[tuple[str, Any]]] = []

    def pairs(members: list[tuple[str, Any]]) -> dict[str, Any]:
        objects.append(members)
        return dict(members)

    if not isinstance(json.loads(body, object_pairs_hook=pairs), dict):
        return []
    return [v for k, v in objects[-1] if k == "result" and isinstance(v, list)]  # the outermost object ends last


ODD_ELEMENTS = [
    # Braces in strings, a record within an element that starts as the elements do, elements that start otherwise.
    b'{"result": [{"id": "a{", "conns": [{"id": "x"}, {"id": "y"}]}, {"id": "}b"}, {"id": "}, {\\"id\\": 1"}]}',
    b'{"result": [{"id": 1, "n": {"id": 2}}, {"id": 3, "n": [{"id": 4}, {"id": 5}]}, {"k": 6}, {"id": 7}], "x": 1}',
    b'{"result": [{"id":"a"},{"id":"b"} ,\n {"id":"c"}, 7, {"id": "d"}, [{"id": "e"}], {"id": "\\ud800"}]}',
    b'{"result": [{"id": "a"}, {"id": "a"}, {"id": "a"}], "result_info": {"id": "a"}}',
]


@pytest.mark.parametrize("body", ODD_ELEMENTS, ids=["braces-in-strings", "nested", "mixed", "repeated"])
@pytest.mark.parametrize("window", [1, 7, 16, 48, jsondecode.WINDOW])
def test_elements_cut_out_of_odd_texts_are_what_json_loads_reads(body: bytes, window: int) -> None:
    first = Recorder()
    assert outcome(read_with(first, window), body) == outcome(json.loads, body)
    again = Recorder(first.digests())
    assert outcome(read_with(again, window), body) == outcome(json.loads, body)
    if window == jsondecode.WINDOW:  # each object element whole in the text (a smaller window reads it in pieces)
        assert repr(again.handed()) == repr([e for e in json.loads(body)["result"] if not isinstance(e, dict)])


@pytest.mark.parametrize("window", [4096, jsondecode.WINDOW])
def test_a_large_answers_elements_are_handed_a_run_at_a_time(window: int, monkeypatch: pytest.MonkeyPatch) -> None:
    body = json.dumps(connections_answer(2000)).encode()
    expected = json.loads(body)  # before the spies: json.loads goes through raw_decode too
    first = Recorder()
    assert jsondecode.loads(body, window=window, elements=first) == expected
    assert len(first.runs) > len(body) // (2 * window), "a run (or an element) at a time, as read, not the whole array"
    assert len(first.digests()) == 2000, "each known by its text"
    # Read again knowing them all: nothing of the result array is decoded.
    read: list[str] = []
    shared, raw_decode = jsondecode._shared_strings, json.JSONDecoder.raw_decode

    def shared_spy(text: str) -> Any:
        read.append(text)
        return shared(text)

    def scan_spy(self: json.JSONDecoder, s: str, idx: int = 0) -> tuple[Any, int]:
        value, end = raw_decode(self, s, idx)
        read.append(s[idx:end])
        return value, end

    monkeypatch.setattr(jsondecode, "_shared_strings", shared_spy)
    monkeypatch.setattr(json.JSONDecoder, "raw_decode", scan_spy)
    again = Recorder(first.digests())
    value = jsondecode.loads(body, window=window, elements=again)
    assert unwrapped(value) == expected and again.hits == 2000 and again.runs == []
    # What was decoded: the envelope's other values and its keys, the start of the first connector (whose first
    # connection starts as a connector does: its end is then found by counting braces), and now and then a
    # connector whose text ends just where the text read so far does, read by json's scanner and then put in place.
    assert sum(map(len, read)) < len(body) // 100
