"""JSON for people and programs at once, at the C encoder's speed: ``--once -o json`` and other whole documents.

``json.dumps(..., indent=2)`` runs Python's pure-Python encoder (the C one does not indent): at 10,000 connections
it was a third of ``--once -o json``'s time. Here the outer containers are indented as ``indent=2`` would, and a
container that holds no container (a list of strings, the tunnel's record), or that sits ``LINE_DEPTH`` deep (in
``--once``'s document: a connector with its connections), is written on one line by the C encoder: one line per
connector, found whole by ``grep`` of its id. The text is the same JSON value as ``json.dumps`` gives; only where
lines break differs. ASCII only: control and bidi characters from the API arrive escaped, never raw, at whatever
reads it. A value its caller has written already (ASCII JSON on one line) is put in as the bytes that spell it
(``--once`` has pydantic write each connector, in bytes): no JSON value is bytes (json.dumps refuses them), so bytes
in a document can mean nothing else, and cost no object around them (50,000 at 100,000 connections); at
``LINE_DEPTH`` they are a line of their own. ``write`` hands
bytes to the stream's bytes as they are, where decoding each and having the stream encode them all again was two
more passes over the document.
"""

from __future__ import annotations

import codecs
import io
import json
import os
from itertools import chain, repeat
from typing import Any, TextIO

_FLAT = json.JSONEncoder(ensure_ascii=True, separators=(", ", ": "))  # the C encoder: no indent, no state
_KEY = json.JSONEncoder(ensure_ascii=True)
LINE_DEPTH = 4  # the document, its tunnels list, a tunnel, its clients list: a client is one line
# ``write`` hands the stream this many pieces of text at a time (a connector's line is a piece: up to a few MB).
_BATCH = 512


def _flat(value: Any) -> bool:
    if isinstance(value, dict):
        return not any(isinstance(v, dict | list | bytes) for v in value.values())
    if isinstance(value, list):
        return not any(isinstance(v, dict | list | bytes) for v in value)
    return True


def _write(value: Any, depth: int, out: list[str | bytes]) -> None:
    if isinstance(value, bytes):
        out.append(value)
        return
    if depth >= LINE_DEPTH or _flat(value):
        out.append(_FLAT.encode(value))
        return
    pad = "\n" + "  " * (depth + 1)
    if isinstance(value, dict):
        out.append("{")
        for n, (key, item) in enumerate(value.items()):
            # A key that is not a string is named as json.dumps names it (true, null, 1.5).
            name = key if isinstance(key, str) else _KEY.encode(key).strip('"')
            out.append(("," if n else "") + pad + _KEY.encode(name) + ": ")
            _write(item, depth + 1, out)
        out.append("\n" + "  " * depth + "}")
        return
    out.append("[")
    if set(map(type, value)) == {bytes}:
        # Every item written already (a tunnel's clients, its findings): each after its separator, at C speed.
        out.append(pad)
        out.append(value[0])
        out += chain.from_iterable(zip(repeat("," + pad), value[1:]))
    else:
        for n, item in enumerate(value):
            out.append(("," if n else "") + pad)
            _write(item, depth + 1, out)
    out.append("\n" + "  " * depth + "]")


def dumps(document: Any) -> str:
    """``document`` as indented, ASCII-only JSON text whose innermost containers each take one line."""
    out: list[str | bytes] = []
    _write(document, 0, out)
    return "".join([p if type(p) is str else p.decode("ascii") for p in out])  # type: ignore[union-attr]


# Encodings that spell ASCII text as its ASCII bytes: a stream in one takes the values written already as they are.
_ASCII_SAME = frozenset({"utf-8", "ascii", "latin-1", "iso8859-1", "cp1252"})


def _bytes_of(stream: TextIO) -> Any:
    """The binary stream under ``stream`` where ASCII bytes written to it say what the text would (a text stream
    over a buffer, its encoding ASCII's superset, no newline translation: POSIX's), flushed; else None."""
    if not isinstance(stream, io.TextIOWrapper) or os.linesep != "\n":
        return None
    try:
        if codecs.lookup(stream.encoding).name not in _ASCII_SAME:
            return None
    except LookupError:
        return None
    stream.flush()
    return stream.buffer


def write(document: Any, stream: TextIO) -> None:
    """``dumps(document)`` written to ``stream`` a batch of pieces at a time: the text joined whole, then encoded
    whole by the stream, was two more copies of it at the process's peak (80 MB at 100,000 connections). To a
    stream over bytes in an encoding that spells ASCII as itself (stdout's), as bytes: the values written already
    as they are."""
    out: list[str | bytes] = []
    _write(document, 0, out)
    binary = _bytes_of(stream)
    for start in range(0, len(out), _BATCH):
        batch = out[start : start + _BATCH]
        if binary is not None:
            binary.write(b"".join([p if type(p) is bytes else p.encode("ascii") for p in batch]))  # type: ignore[union-attr]
        else:
            stream.write("".join([p if type(p) is str else p.decode("ascii") for p in batch]))  # type: ignore[union-attr]
