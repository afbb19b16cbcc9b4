"""Modal screens: the help screen, the colo and account pickers, and the replay's time prompt."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from tunneltop.sanitize import clean


class _DrawnOnce:
    """A rich renderable drawn once per width. Textual draws a Static's content to measure its height and again to
    show it; the help's table, measured cell by cell, took most of the time ``?`` held the screen."""

    def __init__(self, renderable: RenderableType) -> None:
        self._renderable = renderable
        self._lines: dict[int, list[list[Segment]]] = {}

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = self._lines.get(options.max_width)
        if lines is None:
            lines = self._lines[options.max_width] = console.render_lines(self._renderable, options, pad=False)
        newline = Segment.line()
        for line in lines:
            yield from line
            yield newline

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self._renderable)


class HelpScreen(ModalScreen[None]):
    """Every binding, and what tunneltop will never do."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close help")]

    def __init__(self, bindings: Iterable[tuple[str, str]]) -> None:
        super().__init__()
        self._help_rows = list(bindings)

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 3))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for keys, description in self._help_rows:
            table.add_row(Text(keys), Text(description))
        with VerticalScroll(id="help-box"):
            yield Static(Text("tunneltop — keys", style="bold"))
            yield Static(_DrawnOnce(table))
            yield Static(
                Text(
                    "tunneltop is read-only: it only ever sends GET requests to the Cloudflare API and "
                    "cannot change, restart or delete anything.\nFilter: free words match colo, origin IP, "
                    "connector id, version; colo:DFW,LAX limits colos; state:pending; a leading ! inverts.",
                    style="dim",
                )
            )


class ColoPicker(ModalScreen[str | None]):
    """Colos present with their connection counts; choosing one filters to it."""

    BINDINGS = [Binding("escape", "dismiss_none", "Close")]

    def __init__(self, colos: list[tuple[str, int, int]]) -> None:
        super().__init__()
        self._colos = colos

    def compose(self) -> ComposeResult:
        options = [
            Option(
                Text(f"{clean(colo, 12):<6} {active:>4} active" + (f"  {pending} pending" if pending else "")),
                id=colo,  # never shown; cleaned and shortened, two colos could look the same
            )
            for colo, active, pending in self._colos
        ]
        with Vertical(id="colo-box"):
            yield Static(Text("Filter to a colo (enter) — esc closes", style="bold"))
            if options:
                yield OptionList(*options, id="colo-list")
            else:
                yield Static(Text("no connections, so no colos yet", style="dim"))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class AccountPicker(ModalScreen[str | None]):
    """The credentials see several accounts and none was named: choose one."""

    BINDINGS = [Binding("escape", "dismiss_none", "Close")]

    def __init__(self, accounts: list[tuple[str, str | None]]) -> None:
        super().__init__()
        self._accounts = accounts

    def compose(self) -> ComposeResult:
        options = [
            Option(Text(f"{clean(name, 40) if name else '(no name)'}  {clean(account_id, 40)}"), id=account_id)
            for account_id, name in self._accounts
        ]
        with Vertical(id="account-box"):
            yield Static(Text("These credentials see several accounts: choose one (enter)", style="bold"))
            yield OptionList(*options, id="account-list")
            yield Static(Text("Start with --account ID or CLOUDFLARE_ACCOUNT_ID to skip this.", style="dim"))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class TimePrompt(ModalScreen[str | None]):
    """A replay's jump to a time: the text typed (RFC 3339, or -15m from the end), or None when closed."""

    # Its own CSS, beside it: the modal boxes of tunneltop.tcss have the same look.
    DEFAULT_CSS = """
    TimePrompt { align: center middle; }
    #time-box { width: 64; height: auto; border: round $accent; padding: 0 1; background: $panel; }
    """
    BINDINGS = [Binding("escape", "dismiss_none", "Close")]

    def __init__(self, covers: str) -> None:
        super().__init__()
        self._covers = covers

    def compose(self) -> ComposeResult:
        with Vertical(id="time-box"):
            yield Static(Text("Jump to a time (enter) — esc closes", style="bold"))
            yield Input(placeholder="2026-12-01T03:12:00Z, or -15m from the end", id="time-input")
            yield Static(Text(self._covers, style="dim"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
