"""The header line and the status line: state at a glance, in reactives the app sets."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tunneltop.model.health import Health, format_age
from tunneltop.sanitize import clean
from tunneltop.ui.text import HEALTH_GLYPH, HEALTH_STYLE, MONO_STYLE, restyle


class HeaderBar(Widget):
    """Badges, then ``health · pending · data age · next poll · account · watching``."""

    DEFAULT_CSS = "HeaderBar { height: 1; }"

    account = reactive("")
    watching = reactive("")
    health: reactive[Health | None] = reactive(None)
    tunnel_counts: reactive[tuple[tuple[Health, int], ...]] = reactive(())
    pending = reactive(0)
    last_good: reactive[datetime | None] = reactive(None)
    now: reactive[datetime | None] = reactive(None)
    next_poll_in: reactive[float | None] = reactive(None)
    interval = reactive(5.0)
    budget = reactive("")
    demo = reactive(False)
    paused = reactive(False)
    stale = reactive(False)
    waiting = reactive(True)

    def render(self) -> Text:
        text = self._line()
        # Without colour (NO_COLOR), attributes where the colours would go dark: see text.MONO_STYLE.
        return restyle(text, MONO_STYLE) if self.app.no_color else text

    def _line(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" tunneltop ", style="bold reverse")
        if self.demo:
            text.append(" DEMO ", style="bold black on bright_cyan")
        if self.paused:
            text.append(" PAUSED ", style="bold black on yellow")
        if self.stale:
            text.append(" STALE ", style="bold white on red")
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
    """The last error (actionable text from the client), or what the app is doing."""

    # An error gets the whole line, in the theme's error colour (under NO_COLOR, a grey the text reads well on). A
    # Rich style string would not do here: Textual parses a Text's own style with its own parser, which knows no
    # "dark_red", and dropped the whole style without a word.
    DEFAULT_CSS = """
    StatusLine { height: 1; color: $text-muted; }
    StatusLine.-error { background: $error-darken-1; color: $text; text-style: bold; }
    """

    message = reactive("")
    error = reactive(False)

    def watch_error(self, error: bool) -> None:
        self.set_class(error, "-error")

    def render(self) -> Text:
        return Text(clean(self.message, 500) or " ", no_wrap=True, overflow="ellipsis")
