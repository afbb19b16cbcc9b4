"""The header line and the status line: state at a glance, in reactives the app sets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tunneltop.model.findings import Severity
from tunneltop.model.health import Health, format_age
from tunneltop.sanitize import clean
from tunneltop.ui.text import FINDING_GLYPH, FINDING_STYLE, HEALTH_GLYPH, HEALTH_STYLE, MONO_STYLE, mono_style, restyle


class HeaderBar(Widget):
    """Badges, the active filter (and what it matches), then ``health · pending · data age · next poll · account ·
    watching``."""

    DEFAULT_CSS = "HeaderBar { height: 1; }"

    account = reactive("")
    watching = reactive("")
    health: reactive[Health | None] = reactive(None)
    tunnel_counts: reactive[tuple[tuple[Health, int], ...]] = reactive(())
    finding_counts: reactive[tuple[int, int]] = reactive((0, 0))  # tunnels with a critical finding, with warnings
    pending = reactive(0)
    last_good: reactive[datetime | None] = reactive(None)
    now: reactive[datetime | None] = reactive(None)
    next_poll_in: reactive[float | None] = reactive(None)
    interval = reactive(5.0)
    budget = reactive("")
    demo = reactive(False)
    source_badge = reactive("")  # a source other than the API: "attached to http://…", "REPLAY …"
    paused = reactive(False)
    stale = reactive(False)
    waiting = reactive(True)
    # The active filter: (its text, what it matches, whether that is nothing); see FilterBar.show_badge.
    filtered: reactive[tuple[str, str, bool] | None] = reactive(None)

    def render(self) -> Text:
        text = self._line()
        # Without colour (NO_COLOR), attributes where the colours would go dark: see text.MONO_STYLE.
        return restyle(text, MONO_STYLE) if self.app.no_color else text

    def _line(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" tunneltop ", style="bold reverse")
        if self.demo:
            text.append(" DEMO ", style="bold black on bright_cyan")
        if self.source_badge:
            text.append(f" {clean(self.source_badge, 60)} ", style="bold black on bright_magenta")
        if self.paused:
            text.append(" PAUSED ", style="bold black on yellow")
        if self.stale:
            text.append(" STALE ", style="bold white on red")
        if self.filtered is not None:
            flt, note, nothing = self.filtered
            text.append(f" filter: {clean(flt, 60)} ", style="bold black on bright_white")
            if note:
                text.append(f" {note}", style="bold yellow" if nothing else "bold")
            text.append(" (esc clears)", style="dim")
        # Most urgent first: on an 80-column terminal the tail is what gets cut.
        if self.health is not None:
            text.append(" ")
            text.append(f"{HEALTH_GLYPH[self.health]} {self.health.value}", style=HEALTH_STYLE[self.health])
        if len(self.tunnel_counts) > 1 or sum(n for _, n in self.tunnel_counts) > 1:
            text.append(" (")
            for index, (health, count) in enumerate(self.tunnel_counts):
                text.append(" " if index else "")
                text.append(f"{HEALTH_GLYPH[health]}{count}", style=HEALTH_STYLE[health])
            text.append(")")
        for severity, count in zip((Severity.CRITICAL, Severity.WARNING), self.finding_counts, strict=True):
            if count:
                text.append(f" · {FINDING_GLYPH[severity]}{count} {severity.value}", style=FINDING_STYLE[severity])
        if self.pending:
            text.append(f" · {self.pending} pending", style="bold yellow")
        if self.last_good is not None and self.now is not None:
            text.append(f" · data {format_age(self.now - self.last_good)} old", style="red" if self.stale else "")
        elif self.waiting:
            text.append(" · loading…", style="dim")
        if self.paused:
            text.append(" · polling paused", style="yellow")
        elif self.next_poll_in is not None:
            text.append(f" · next {self.next_poll_in:.0f}s/{self.interval:g}s", style="dim")
        else:
            text.append(f" · polling… (every {self.interval:g}s)", style="dim")
        if self.budget:
            text.append(f" · {self.budget}", style="bold red" if "rate limited" in self.budget else "dim")
        text.append(" · ")
        text.append(clean(self.account, 40), style="bold")
        if self.watching:
            text.append(f" · {clean(self.watching, 60)}")
        return text


class StatusLine(Widget):
    """The last error (actionable text from the client), or what the app is doing; and while the data shown is
    stale, that it is, and since when.

    Staleness is the header's (the app works it out every second and sets it there): the line follows the
    HeaderBar on its screen. A message set before the data went stale ("recovered: updated 12:00:05Z") is no news
    any more and gives way; one set since (a wait for the budget, "polling every 10 s") is kept after it."""

    # An error gets the whole line, in the theme's error colour (under NO_COLOR, a grey the text reads well on). A
    # Rich style string would not do here: Textual parses a Text's own style with its own parser, which knows no
    # "dark_red", and dropped the whole style without a word.
    DEFAULT_CSS = """
    StatusLine { height: 1; color: $text-muted; }
    StatusLine.-error { background: $error-darken-1; color: $text; text-style: bold; }
    """

    message = reactive("")
    error = reactive(False)
    stale = reactive(False)
    last_good: reactive[datetime | None] = reactive(None)  # when the data shown was read
    now: reactive[datetime | None] = reactive(None)
    paused = reactive(False)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._news = True  # the message was set while the data was as it is now (fresh, or already stale)
        self._header: HeaderBar | None = None

    def on_mount(self) -> None:
        self._header = next(iter(self.screen.query(HeaderBar)), None)
        if self._header is not None:
            for name in ("stale", "last_good", "now", "paused"):
                self.watch(self._header, name, self._follow_header, init=False)
            self._follow_header()

    def _follow_header(self) -> None:
        header = self._header
        if header is None:
            return
        self.stale, self.paused = header.stale, header.paused
        if header.stale:  # only then does the line show the time: while fresh, a tick redraws nothing
            self.last_good, self.now = header.last_good, header.now

    def watch_message(self) -> None:
        self._news = True

    def watch_stale(self, stale: bool) -> None:
        self._news = not stale  # a message from before the data went stale is no news now

    def watch_error(self, error: bool) -> None:
        self.set_class(error, "-error")

    def render(self) -> Text:
        message = clean(self.message, 500)
        if self.error or not self.stale:
            return Text(message or " ", no_wrap=True, overflow="ellipsis")
        text = Text(no_wrap=True, overflow="ellipsis")
        style = "bold yellow" if not self.app.no_color else mono_style("bold yellow")
        if self.last_good is not None and self.now is not None:
            age = format_age(self.now - self.last_good)
            text.append(f"stale: nothing new read for {age} (since {self.last_good:%H:%M:%S}Z)", style=style)
        else:
            text.append("stale: nothing new read", style=style)
        if self.paused:
            text.append(" — polling paused", style=style)
        if self._news and message:
            text.append(f" · {message}")
        return text
