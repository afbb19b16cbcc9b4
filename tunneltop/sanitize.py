"""Making untrusted API text safe to show: every string from the API passes through here before display.

Control characters (C0, C1), escape sequences, bidi overrides and other invisible format characters are
replaced, so an API string can neither drive the terminal nor disguise itself. Markup is a separate concern:
the UI never lets text be parsed as markup at all (it builds ``rich.text.Text`` objects).
"""

from __future__ import annotations

REPLACEMENT = "\N{REPLACEMENT CHARACTER}"
ELLIPSIS = "\N{HORIZONTAL ELLIPSIS}"
DEFAULT_MAX = 200


def clean(value: object, max_len: int | None = DEFAULT_MAX) -> str:
    """A printable, single-line rendering of ``value``; None becomes ``-``."""
    if value is None:
        return "-"
    text = value if isinstance(value, str) else str(value)
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else REPLACEMENT for ch in text)
    if max_len is not None and len(text) > max_len:
        text = text[: max_len - 1] + ELLIPSIS
    return text
