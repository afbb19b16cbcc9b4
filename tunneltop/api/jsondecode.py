"""A large JSON answer decoded in pieces, so that the thread decoding it lets the others run between them.

``json.loads`` of one tunnel's connections at 100,000 connections (33 MB) is a single C call of 0.2-0.35 s, and no
other thread of the process runs meanwhile (it holds the GIL): the live view's event loop, which has the poll engine
on a thread of its own for this very reason, freezes for as long. ``loads`` reads a large body's top-level object
(or array) itself, and hands each of its values to the json module's own C scanner, and the elements of an array
value a run at a time (those whole in the text read so far) to pydantic's JSON reader, jiter, which makes equal
strings one object (see _shared_strings): calls of a millisecond at most, between which the interpreter may switch
threads. A value longer than a window (a tunnel in the tunnel list, which carries a copy of
its connections) is read the same way, a level down. The bytes become text a window at a time too: a 33 MB
``bytes.decode``, or joining text up, is a single call of 15-20 ms itself. ``release`` frees a decoded list in
slices likewise.

The value is exactly the one ``json.loads`` gives, and an invalid document raises what ``json.loads`` raises (its
``UnicodeDecodeError``, or a ``JSONDecodeError`` with the same message and position); tests/test_piecewise_decode.py
checks both against ``json.loads``. A body up to ``PIECEWISE_ABOVE`` bytes is simply ``json.loads``'.
"""

from __future__ import annotations

import codecs
import json
import json.decoder
import re
from collections.abc import Callable
from typing import Any

from pydantic_core import from_json

# Below this, json.loads takes a couple of milliseconds: one call is as good as any.
PIECEWISE_ABOVE = 256 * 1024
# Bytes made text at a time. A value is handed to json's scanner whole when it ends within the window after its
# start; one that does not (a connector of 100,000 connections, the tunnel list's copy of them) is read piecewise
# itself, down to _DEPTH levels. So no call reads much more than two windows' text: about a millisecond.
WINDOW = 64 * 1024
_DEPTH = 6
# json's scanner reads up to 3 characters past a number before it knows where the number ends ("1e+" is 1 followed
# by garbage, "1e+5" is 100000.0): a value ending nearer than that to the end of the text read so far is read again
# with more text.
_LOOKAHEAD = 3
# An array's elements are read a run at a time where they can be: every whole element in the text read so far in one
# call (json's scanner makes one copy of a key per call: a call per connector held 20 MB more at 100,000 connections,
# kept by RecordCache; jiter, which reads runs, shares keys and values across calls too). The run's end is found by
# counting braces back from the end of the text, at most _RUN_BACK characters back (braces only: the API's arrays
# are of objects); one found wrong (a brace in a string, an array of arrays) does not scan, and those elements are
# read one by one.
_RUN_BACK = 8192
_BRACES = re.compile(r"[{}]")

# Dropping the last reference to a decoded answer frees all of it in one C call too (every dict, list and string of
# it, depth first): 80 ms at 100,000 connections, when a failover's poll drops the copies of the connectors that
# did not change. ``release`` frees a list this many elements at a time.
_RELEASE = 256

_Scan = Callable[[str, int], tuple[Any, int]]


def _shared_strings(text: str) -> Any:
    """``text`` (a whole JSON value) read by pydantic's JSON reader (jiter), each string of up to 64 bytes made
    once and shared by every equal one it reads, in this call and the next ones (its cache of 16,384 strings, a
    hash slot each). A connection's ``id`` and ``uuid`` are equal, its connector's ``client_id``, version, colo and
    origin address repeat across connections: at 100,000 connections, shared, they are 40 MB less of what the
    records and their cache keep, decoded a little faster than by json's scanner. jiter accepts no JSON that json
    does not and reads what it accepts as json does (tests/test_piecewise_decode.py checks both), and refuses some
    that json accepts (a lone surrogate, nesting over 200 levels): json's scanner reads those."""
    return from_json(text, cache_strings=True)


# json's own (private, so not in its type stubs): the C function its scanner reads a string with, and its whitespace.
_SCANSTRING: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_WHITESPACE = re.compile(r"[ \t\n\r]*")


class _Invalid(Exception):
    """A syntax error at ``pos``, a character offset in the whole document (made a JSONDecodeError by ``loads``)."""

    def __init__(self, msg: str, pos: int) -> None:
        super().__init__(msg, pos)
        self.msg = msg
        self.pos = pos


class _NotAContainer(Exception):
    """The document is a lone string, number or constant (or not JSON at all): json.loads reads it whole."""


# What ``loads`` hands the elements of an envelope's ``result`` array to, a run at a time as they are read: it gives
# back as many values, kept in their place (it may not raise).
Elements = Callable[[list[Any]], list[Any]]
_RESULT = "result"


def loads(
    content: bytes, *, above: int = PIECEWISE_ABOVE, window: int = WINDOW, elements: Elements | None = None
) -> Any:
    """``json.loads(content)``, in pieces when ``content`` is over ``above`` bytes (see the module's docstring).

    ``elements``: when the document is an object (Cloudflare's envelope) whose ``result`` is an array, its elements
    are handed to it a run at a time as they are read, and what it gives back is kept in their place. So a caller
    may put an object it already holds in place of an equal one just read (RecordCache.same: the connectors that
    did not change), and the copy read is freed at once, while the memory it took is that the next run is read
    into, not left a hole among what lives on (at 100,000 connections, the 60 MB an answer read whole left)."""
    if len(content) <= above:
        return _handed(json.loads(content), elements)
    try:
        return _Reader(content, window, elements).document()
    except _Invalid as exc:
        # json.loads decodes the whole body before it parses: its UnicodeDecodeError, if any, comes first.
        text = content.decode(json.detect_encoding(content), "surrogatepass")
        raise json.JSONDecodeError(exc.msg, text, exc.pos) from None
    except ValueError:  # the bytes' own error (met in a window), or json's (an integer over Python's digit limit)
        content.decode(json.detect_encoding(content), "surrogatepass")  # json.loads' UnicodeDecodeError, if any
        raise
    except _NotAContainer:
        return json.loads(content)


def _handed(document: Any, elements: Elements | None) -> Any:
    """A document read whole, its ``result`` array's elements handed to ``elements`` as ``loads`` says."""
    if elements is not None and type(document) is dict and type(document.get(_RESULT)) is list:
        document[_RESULT] = elements(document[_RESULT])
    return document


def release(value: Any) -> None:
    """Empty ``value``, if it is a list, a slice of elements at a time from its end: what no one else holds is freed
    a slice at a time, and other threads may run in between."""
    if isinstance(value, list):
        while value:
            del value[-_RELEASE:]


class _Reader:
    """The document's text a window at a time: ``text`` holds what is being read, from the character ``base`` on."""

    def __init__(self, content: bytes, window: int, elements: Elements | None = None) -> None:
        self._content = content
        self._elements = elements
        self._decoder = codecs.getincrementaldecoder(json.detect_encoding(content))("surrogatepass")
        self._window = window
        self._read = 0  # bytes decoded so far
        self._scan: _Scan = json.JSONDecoder().raw_decode
        self._shared: Callable[[str], Any] = _shared_strings
        self.text = ""
        self.base = 0
        self.eof = False
        self._runs = True  # no run has failed to be found in this text

    def document(self) -> Any:
        i = self._skip(0)
        first = self.text[i : i + 1]
        value: Any
        if first == "{":
            value, i = self._object(i + 1, _DEPTH, self._elements)
        elif first == "[":
            value, i = self._array(i + 1, _DEPTH)
        else:
            raise _NotAContainer
        i = self._skip(i)
        if i < len(self.text):
            raise _Invalid("Extra data", self.base + i)
        return value

    def _more(self, at: int) -> int:
        """Decode the next window, dropping the text before ``at`` (whose index becomes 0). It is at least as long as
        the text kept, so that a long string read again and again with more text costs linear time."""
        size = max(self._window, len(self.text) - at)
        chunk = self._content[self._read : self._read + size]
        self._read += len(chunk)
        self.eof = self._read >= len(self._content)
        self.base += at
        self.text = self.text[at:] + self._decoder.decode(chunk, self.eof)
        self._runs = True
        return 0

    def _skip(self, i: int) -> int:
        """The index of the first non-whitespace character from ``i`` on (len(text) only at the end)."""
        while True:
            i = _WHITESPACE.match(self.text, i).end()  # type: ignore[union-attr]  # it matches the empty string
            if i < len(self.text) or self.eof:
                return i
            i = self._more(i)

    def _piece(self, i: int, scan: _Scan, depth: int = 0, elements: Elements | None = None) -> tuple[Any, int]:
        """One value (or key) read by ``scan`` (json's C scanner) at ``i``. When it runs into the end of the text so
        far (an error there may be a value cut in two), it is read again with more text; a container that is still
        cut with a window's text after its start, piecewise itself (with ``depth`` left). ``elements``: given the
        elements of the value, if it is an array (see loads)."""
        while True:
            try:
                value, end = scan(self.text, i)
            except ValueError as exc:
                if self.eof:
                    if isinstance(exc, json.JSONDecodeError):
                        raise _Invalid(exc.msg, self.base + exc.pos) from None
                    raise
            else:
                if self.eof or end + _LOOKAHEAD <= len(self.text):
                    if elements is not None and type(value) is list:
                        value = elements(value)
                    return value, end
            if depth and len(self.text) - i >= self._window:
                if self.text[i] == "{":
                    return self._object(i + 1, depth - 1)
                if self.text[i] == "[":
                    return self._array(i + 1, depth - 1, elements)
            i = self._more(i)

    def _key(self, text: str, i: int) -> tuple[str, int]:
        return _SCANSTRING(text, i + 1, True)

    # The two containers as json's C scanner reads them (Modules/_json.c), error for error.

    def _object(self, i: int, depth: int, elements: Elements | None = None) -> tuple[dict[str, Any], int]:
        """``elements``: given the elements of this object's ``result``, if it is an array (see loads)."""
        out: dict[str, Any] = {}
        i = self._skip(i)
        if self.text[i : i + 1] == "}":
            return out, i + 1
        while True:
            if self.text[i : i + 1] != '"':
                raise _Invalid("Expecting property name enclosed in double quotes", self.base + i)
            key, i = self._piece(i, self._key)
            i = self._skip(i)
            if self.text[i : i + 1] != ":":
                raise _Invalid("Expecting ':' delimiter", self.base + i)
            handed = elements if elements is not None and key == _RESULT else None
            out[key], i = self._piece(self._skip(i + 1), self._scan, depth, handed)
            i = self._skip(i)
            if self.text[i : i + 1] == "}":
                return out, i + 1
            if self.text[i : i + 1] != ",":
                raise _Invalid("Expecting ',' delimiter", self.base + i)
            i = self._skip(i + 1)

    def _array(self, i: int, depth: int, elements: Elements | None = None) -> tuple[list[Any], int]:
        """``elements``: given this array's elements a run (or one) at a time as they are read (see loads)."""
        out: list[Any] = []
        i = self._skip(i)
        if self.text[i : i + 1] == "]":
            return out, i + 1
        while True:
            run = self._run(i) if self._runs else None
            if run is None:
                if self._open(i):
                    i = self._more(i)
                    continue
                value, i = self._piece(i, self._scan, depth)
                out += [value] if elements is None else elements([value])
            else:
                values, i = run
                out += values if elements is None else elements(values)
            i = self._skip(i)
            if self.text[i : i + 1] == "]":
                return out, i + 1
            if self.text[i : i + 1] != ",":
                raise _Invalid("Expecting ',' delimiter", self.base + i)
            i = self._skip(i + 1)

    def _open(self, i: int) -> bool:
        """Whether the element at ``i`` is an object its braces say is still open at the end of the text so far, less
        than a window of it: then more text is read before it is scanned (a scan that fails costs as much as one that
        does not). Braces in its strings may make it look open: it is then read with more text than it needed."""
        text = self.text
        return (
            not self.eof
            and len(text) - i < self._window
            and text[i] == "{"
            and text.count("{", i) > text.count("}", i)
        )

    def _run(self, i: int) -> tuple[list[Any], int] | None:
        """The elements from ``i`` up to the last that ends, in '}', in the text so far, read in one call (see
        _RUN_BACK); None when there is no such end or they do not scan (then none is found again in this text).

        When ``[`` + those elements + ``]`` scans to its end, they are the elements the document has there: json's
        scanner reads a value from its first character to its last and no further (but for a number, and the last
        one ends in '}'), and each but the last is followed by its comma in both texts."""
        text, end = self.text, len(self.text)
        depth = text.count("{", i, end) - text.count("}", i, end)
        stop = 0
        for brace in _BRACES.finditer(text[max(i, end - _RUN_BACK) : end][::-1]):
            if depth == 0 and brace.group() == "}":
                stop = end - brace.start()
                break
            depth += 1 if brace.group() == "}" else -1
        if stop > i:
            piece = "[" + text[i:stop] + "]"
            try:
                return self._shared(piece), stop
            except (ValueError, TypeError):
                pass  # not valid to jiter (which is stricter: a lone surrogate, nesting over 200 levels): json says
            try:
                values, scanned = self._scan(piece, 0)
                if scanned == stop - i + 2:
                    return values, stop
            except ValueError:
                pass
        self._runs = False
        return None
