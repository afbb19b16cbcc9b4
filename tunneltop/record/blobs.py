"""How JSON is packed into the ``blobs`` and ``events`` tables (see ``schema``), both ways."""

from __future__ import annotations

import json
import zlib
from typing import Any

from tunneltop.record.schema import COMPRESS_FROM, EVENT_DICTIONARY, RAW, ZLIB, ZLIB_DELTA, RecordingError


def dump(document: Any) -> bytes:
    """Compact, ASCII-only JSON (what is hashed and stored): the same document always gives the same bytes."""
    return json.dumps(document, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def pack(data: bytes, base: bytes | None = None) -> tuple[int, bytes]:
    """(codec, stored bytes). With ``base`` (an earlier version of the same document), zlib refers back to it."""
    if base is not None:
        packer = zlib.compressobj(6, zdict=base)
        return ZLIB_DELTA, packer.compress(data) + packer.flush()
    if len(data) < COMPRESS_FROM:
        return RAW, data
    return ZLIB, zlib.compress(data, 6)


def unpack(codec: int, stored: bytes, base: bytes | None = None) -> bytes:
    try:
        if codec == RAW:
            return stored
        if codec == ZLIB:
            return zlib.decompress(stored)
        if codec == ZLIB_DELTA and base is not None:
            unpacker = zlib.decompressobj(zdict=base)
            return unpacker.decompress(stored) + unpacker.flush()
    except zlib.error as exc:
        raise RecordingError(f"a stored state is damaged ({exc})") from None
    raise RecordingError(f"a stored state has an unknown encoding ({codec})")


def pack_events(documents: list[dict[str, Any]]) -> bytes:
    """A poll's events as one zlib stream: they repeat each other's ids and field names, and the dictionary's."""
    packer = zlib.compressobj(6, zdict=EVENT_DICTIONARY)
    return packer.compress(dump(documents)) + packer.flush()


def unpack_events(stored: bytes, dictionary: bytes = EVENT_DICTIONARY) -> list[dict[str, Any]]:
    try:
        unpacker = zlib.decompressobj(zdict=dictionary)
        documents: list[dict[str, Any]] = json.loads(unpacker.decompress(stored) + unpacker.flush())
    except (zlib.error, ValueError) as exc:
        raise RecordingError(f"stored events are damaged ({exc})") from None
    return documents
