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
STATE_LABEL: dict[str, tuple[str, str]] = {
    "active": ("● active", "green"),
    "pending": ("⟳ PENDING", "bold yellow"),
    "unknown": ("? unknown", "magenta"),
    "gone": ("✖ gone", "dim strike"),
}


def safe(value: object, style: str = "", max_len: int | None = 120) -> Text:
    """A Text of an untrusted value: control characters replaced, length bounded, markup never interpreted."""
    return Text(clean(value, max_len), style=style, no_wrap=True, overflow="ellipsis")


def health_text(health: Health) -> Text:
    return Text(f"{HEALTH_GLYPH[health]} {health.value}", style=HEALTH_STYLE[health])


def short_id(value: str | None, length: int = 8) -> str:
    return clean(value, None)[:length] if value else "-"
