"""A large JSON answer decoded in pieces, so that the thread decoding it lets the others run between them.

``json.loads`` of one tunnel's connections at 100,000 connections (33 MB) is a single C call of 0.2-0.35 s, and no
other thread of the process runs meanwhile (it holds the GIL): the live view's event loop, which has the poll engine
on a thread of its own for this very reason, freezes for as long. ``loads`` reads a large body's top-level object
(or array) itself, and hands each of its values to the json module's own C scanner, and the elements of an array
value a run at a time (those whole in the text read so far) to pydantic's JSON reader, jiter, which makes equal
strings one object (see _shared_strings): calls of a millisecond at most, between which the interpreter may switch
threads. Given an ``elements`` hook, the elements of the envelope's ``result`` are cut out of the text one by one
instead, and each is hashed before it is read: one whose text the hook knows is not decoded at all (see Elements).
A value longer than a window (a tunnel in the tunnel list, which carries a copy of its connections) is read the same
way, a level down. The bytes become text a window at a time too: a 33 MB ``bytes.decode``, or joining text up, is a
single call of 15-20 ms itself. ``release`` frees a decoded list in slices likewise.

The value is exactly the one ``json.loads`` gives (but for the elements a hook knew, which are what it gave), and an
invalid document raises what ``json.loads`` raises (its ``UnicodeDecodeError``, or a ``JSONDecodeError`` with the
same message and position); tests/test_piecewise_decode.py checks both against ``json.loads``. A body up to
``PIECEWISE_ABOVE`` bytes, with no hook, is simply ``json.loads``'.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import json.decoder
import re
from collections.abc import Callable
from typing import Any, Protocol

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


class Elements(Protocol):
    """What ``loads`` hands the elements of an envelope's ``result`` array to as it reads them (neither may raise).

    An element's text is its characters from its opening brace to its closing one, as the answer has them. Where
    ``loads`` finds them (see _Reader._spanned), it asks ``known`` about each element before decoding it: an element
    whose text is that of one decoded before is the same value, so a caller holding what it made of that value
    (RecordCache: the connectors that did not change) need not have it decoded at all.

    ``known(digest)``: what to put in place of the element whose text has ``digest`` (see text_digest), not decoded;
    None to have it decoded (an attribute, so that it may be a dict's ``get``, called at C speed)."""

    known: Callable[[bytes], Any]

    def decoded(self, values: list[Any], digests: list[bytes | None]) -> None:
        """Elements just decoded, in order, each with its text's digest (None where its text was not found: an
        element read in pieces, one that is not an object)."""


def text_digest(text: str) -> bytes:
    """The digest an element's text is known by (SHA-256: a 33 MB answer hashes in about 25 ms)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


_RESULT = "result"
# The start of an object up to the end of its first key ('{"id"'): where the next element of a run of them starts
# with the same, it is looked for (see _Reader._cut).
_FIRST_KEY = re.compile(r'\{[ \t\n\r]*"[^"\\]*"')


def loads(
    content: bytes, *, above: int = PIECEWISE_ABOVE, window: int = WINDOW, elements: Elements | None = None
) -> Any:
    """``json.loads(content)``, in pieces when ``content`` is over ``above`` bytes (see the module's docstring).

    ``elements``: when the document is an object (Cloudflare's envelope) whose ``result`` is an array, its elements
    are handed to it as they are read, whatever the body's size, and an element it knows by its text's digest is
    not decoded: what ``known`` gave takes its place (see Elements). At 100,000 connections, a failover changes a
    quarter of the connectors: the other three quarters of the 33 MB are hashed, not decoded, and nothing is kept
    to compare them with but a digest each."""
    if len(content) <= above and elements is None:
        return json.loads(content)
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
        encoding = json.detect_encoding(content)
        self._decoder = codecs.getincrementaldecoder(encoding)("surrogatepass")
        self._window = window
        self._read = 0  # bytes decoded so far
        self._scan: _Scan = json.JSONDecoder().raw_decode
        self._shared: Callable[[str], Any] = _shared_strings
        self.text = ""
        self.base = 0
        self.eof = False
        self._runs = True  # no run has failed to be found in this text
        # An ASCII body's characters are its bytes: an element's text is hashed from them, with no copy (see _digest).
        ascii_text = elements is not None and encoding == "utf-8" and content.isascii()
        self._ascii = memoryview(content) if ascii_text else None
        # The records within the result array's elements start as they do: their ends are found by their braces.
        self._counting = False

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

    def _piece(self, i: int, scan: _Scan, depth: int = 0) -> tuple[Any, int]:
        """One value (or key) read by ``scan`` (json's C scanner) at ``i``. When it runs into the end of the text so
        far (an error there may be a value cut in two), it is read again with more text; a container that is still
        cut with a window's text after its start, piecewise itself (with ``depth`` left)."""
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
                    return value, end
            if depth and len(self.text) - i >= self._window:
                if self.text[i] == "{":
                    return self._object(i + 1, depth - 1)
                if self.text[i] == "[":
                    return self._array(i + 1, depth - 1)
            i = self._more(i)

    def _key(self, text: str, i: int) -> tuple[str, int]:
        return _SCANSTRING(text, i + 1, True)

    # The two containers as json's C scanner reads them (Modules/_json.c), error for error.

    def _object(self, i: int, depth: int, elements: Elements | None = None) -> tuple[dict[str, Any], int]:
        """``elements``: given the elements of this object's ``result``, if it is an array, as they are read (see
        loads)."""
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
            i = self._skip(i + 1)
            if elements is not None and key == _RESULT and self.text[i : i + 1] == "[":
                out[key], i = self._array(i + 1, depth - 1, elements)
            else:
                out[key], i = self._piece(i, self._scan, depth)
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
            run = self._run(i, elements) if self._runs else None
            if run is None:
                if self._open(i):
                    i = self._more(i)
                    continue
                if elements is None:
                    value, i = self._piece(i, self._scan, depth)
                else:
                    value, i = self._element(i, depth, elements)
                out.append(value)
            else:
                values, i = run
                out += values
            i = self._skip(i)
            if self.text[i : i + 1] == "]":
                return out, i + 1
            if self.text[i : i + 1] != ",":
                raise _Invalid("Expecting ',' delimiter", self.base + i)
            i = self._skip(i + 1)

    def _element(self, i: int, depth: int, elements: Elements) -> tuple[Any, int]:
        """One element read by json's scanner (see _piece), handed to ``elements`` with its text's digest: json's
        scanner reads a value from its first character to its last, so where the text still holds its start, the
        text from there to where the scanner stopped is the element's own. One ``elements`` knows takes the place of
        the copy read."""
        start = self.base + i
        value, end = self._piece(i, self._scan, depth)
        at = start - self.base
        if at < 0 or self.text[at] != "{":  # read in pieces (its start dropped), or not an object
            elements.decoded([value], [None])
            return value, end
        digest = self._digest(at, end)
        known = elements.known(digest)
        if known is not None:
            return known, end
        elements.decoded([value], [digest])
        return value, end

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

    def _run(self, i: int, elements: Elements | None = None) -> tuple[list[Any], int] | None:
        """The elements from ``i`` up to the last that ends, in '}', in the text so far, read in one call (see
        _RUN_BACK), or each with its text (see _spanned) when there is ``elements``; None when there is no such end
        or they do not scan (then none is found again in this text).

        When ``[`` + those elements + ``]`` scans to its end, they are the elements the document has there: json's
        scanner reads a value from its first character to its last and no further (but for a number, and the last
        one ends in '}'), and each but the last is followed by its comma in both texts."""
        if elements is not None:
            spanned = self._spanned(i, elements)
            if spanned is None:
                self._runs = False
            return spanned
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

    def _spanned(self, i: int, elements: Elements) -> tuple[list[Any], int] | None:
        """The elements from ``i`` on, objects each, each followed by the next in the text so far, cut at their ends
        (see _cut): each is known to ``elements`` by its text's digest, or read alone (jiter, else json's scanner) to
        its last character, up to the first that is neither. None when not even the first is.

        A cut may be wrong: it does not fool what follows. A text read alone to its last character is one whole
        value, and a valid object's text has no other prefix that is one, so it is exactly the element; a text whose
        digest was known is the text of one that was (the caller's to make sure), the same value."""
        text = self.text
        first = _FIRST_KEY.match(text, i)
        if first is None:
            return None
        prefix = first.group()
        after = re.compile(r"\}[ \t\n\r]*,[ \t\n\r]*" + re.escape(prefix)).search  # re's cache: compiled once
        while True:
            spans = self._cut(i, after, len(prefix))
            digests = [self._digest(start, end) for start, end in spans]
            values: list[Any] = []
            fresh: list[Any] = []
            fresh_digests: list[bytes | None] = []
            unread: tuple[int, int] | None = None
            for span, digest, value in zip(spans, digests, list(map(elements.known, digests)), strict=True):
                if value is None:
                    value = self._alone(text[span[0] : span[1]])
                    if value is _UNREAD:
                        unread = span
                        break
                    fresh.append(value)
                    fresh_digests.append(digest)
                values.append(value)
            if fresh:
                elements.decoded(fresh, fresh_digests)
            if values:
                return values, spans[len(values) - 1][1]
            if unread is None or self._counting or text.count("{", *unread) == text.count("}", *unread):
                return None
            self._counting = True  # a record within the element starts as the elements do: count braces

    def _cut(self, i: int, after: Callable[[str, int], re.Match[str] | None], prefix: int) -> list[tuple[int, int]]:
        """Where the elements from ``i`` on start and end, each followed in the text so far by the next: each starts
        as the first does, up to its first key ('{"id"', as an API's records are written; ``prefix`` characters),
        after a '}', a comma and whitespace (``after`` finds them), all outside strings, where a '"' is escaped. A
        record within an element may start so too: once one has (``_counting``), the braces before each such start
        must also balance (a brace in a string may unbalance them: then that element is not cut out)."""
        text = self.text
        spans: list[tuple[int, int]] = []
        start, at = i, i + 1
        balance, counted = 0, i  # the braces from start to counted, when counting
        counting = self._counting
        while (found := after(text, at)) is not None:
            end, at = found.start() + 1, found.end() - prefix + 1
            if counting:
                balance += text.count("{", counted, end) - text.count("}", counted, end)
                counted = end
                if balance:
                    continue  # a record within the element
            spans.append((start, end))
            start = at - 1
            balance, counted = 0, start
        return spans

    def _digest(self, start: int, end: int) -> bytes:
        """text_digest of the text from ``start`` to ``end``."""
        if self._ascii is not None:
            return hashlib.sha256(self._ascii[self.base + start : self.base + end]).digest()
        return text_digest(self.text[start:end])

    def _alone(self, piece: str) -> Any:
        """``piece`` read as one whole value (jiter where it can, as a run is), or _UNREAD when it is not one."""
        try:
            return self._shared(piece)
        except (ValueError, TypeError):
            pass
        try:
            value, end = self._scan(piece, 0)
        except ValueError:
            return _UNREAD
        return value if end == len(piece) else _UNREAD


# What _Reader._alone gives back for a text that is not one whole value (None is a value).
_UNREAD = object()
