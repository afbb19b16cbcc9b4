"""Rich ``Text`` built from untrusted API strings: sanitised, and never parsed as markup."""

from __future__ import annotations

from rich.text import Text

from tunneltop.model.findings import Finding, Severity
from tunneltop.model.health import HEALTH_ORDER, Health
from tunneltop.model.rules import CHECK_TITLES
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
FINDING_GLYPH: dict[Severity, str] = {Severity.CRITICAL: "✖", Severity.WARNING: "⚠"}
FINDING_STYLE: dict[Severity, str] = {Severity.CRITICAL: "bold red", Severity.WARNING: "yellow"}
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


def findings_mark(findings: tuple[Finding, ...], *, title: bool = True) -> tuple[str, str]:
    """``⚠ 2 config drift``: how many findings and the worst one's check (rules put critical ones first), styled by
    its severity; ``("", "")`` with none. ``title=False``: the glyph and count only (``⚠2``), for a tree label."""
    if not findings:
        return ("", "")
    worst = _worst(findings)
    if not title:
        return (f"{FINDING_GLYPH[worst.severity]}{len(findings)}", FINDING_STYLE[worst.severity])
    name = CHECK_TITLES.get(worst.check) or clean(worst.check, 32)
    return (f"{FINDING_GLYPH[worst.severity]} {len(findings)} {name}", FINDING_STYLE[worst.severity])


def _worst(findings: tuple[Finding, ...]) -> Finding:
    # Rules put critical findings first; a source that reorders them (a recording, another tunneltop) costs a scan.
    first = findings[0]
    if first.severity is Severity.CRITICAL:
        return first
    return next((f for f in findings if f.severity is Severity.CRITICAL), first)


def verdict_glyph(health: Health, findings: tuple[Finding, ...]) -> tuple[str, str]:
    """A tunnel's health glyph and style, its findings included: a critical finding ranks a tunnel with the degraded
    ones (model.health.rank), so a better health shows degraded's glyph, in the critical finding's red."""
    critical = bool(findings) and _worst(findings).severity is Severity.CRITICAL
    if critical and HEALTH_ORDER[health] > HEALTH_ORDER[Health.DEGRADED]:
        return (HEALTH_GLYPH[Health.DEGRADED], FINDING_STYLE[Severity.CRITICAL])
    return (HEALTH_GLYPH[health], HEALTH_STYLE[health])


def short_id(value: str | None, length: int = 8) -> str:
    return clean(value, None)[:length] if value else "-"
