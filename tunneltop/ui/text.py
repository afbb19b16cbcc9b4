"""Rich ``Text`` built from untrusted API strings: sanitised, and never parsed as markup."""

from __future__ import annotations

from rich.text import Text

from tunneltop.model.health import Health
from tunneltop.sanitize import clean

HEALTH_STYLE: dict[Health, str] = {
    Health.HEALTHY: "green",
    Health.DEGRADED: "yellow",
    Health.DOWN: "red",
    Health.INACTIVE: "bright_black",
    Health.UNKNOWN: "magenta",
}
# Glyphs carry the meaning too, so it survives NO_COLOR and colour-blind eyes.
HEALTH_GLYPH: dict[Health, str] = {
    Health.HEALTHY: "●",
    Health.DEGRADED: "◐",
    Health.DOWN: "✖",
    Health.INACTIVE: "○",
    Health.UNKNOWN: "?",
}
# Under NO_COLOR Textual draws each colour as the grey of its luminance: on a dark background red comes out grey 54
# on 18, magenta 73, green 92, so "✖ down" would be the hardest word on screen to read. Without colour, these
# attributes carry what the colours did (styles not listed read well as they are: yellow and cyan come out light).
MONO_STYLE: dict[str, str] = {
    "green": "",
    "yellow": "bold",
    "bold yellow": "bold",
    "red": "bold reverse",
    "bold red": "bold reverse",
    "magenta": "bold underline",
    "bright_black": "dim",
}
STATE_LABEL: dict[str, tuple[str, str]] = {
    "active": ("● active", "green"),
    "pending": ("⟳ PENDING", "bold yellow"),
    "unknown": ("? unknown", "magenta"),
    "gone": ("✖ gone", "dim strike"),
}


def safe(value: object, style: str = "", max_len: int | None = 120) -> Text:
    """A Text of an untrusted value: control characters replaced, length bounded, markup never interpreted."""
    return Text(clean(value, max_len), style=style, no_wrap=True, overflow="ellipsis")


def mono_style(style: str) -> str:
    """What ``style`` becomes without colour (NO_COLOR): attributes in place of the colours that go dark."""
    return MONO_STYLE.get(style, style)


def restyle(text: Text, styles: dict[str, str]) -> Text:
    """A copy of ``text`` with each style named in ``styles`` (its own and its spans') replaced."""
    out = text.copy()
    if isinstance(out.style, str):
        out.style = styles.get(out.style, out.style)
    out.spans = [span._replace(style=styles.get(span.style, span.style)) if isinstance(span.style, str) else span
                 for span in out.spans]
    return out


def health_text(health: Health) -> Text:
    return Text(f"{HEALTH_GLYPH[health]} {health.value}", style=HEALTH_STYLE[health])


def short_id(value: str | None, length: int = 8) -> str:
    return clean(value, None)[:length] if value else "-"
