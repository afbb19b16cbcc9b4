"""The key bar: the bottom line naming the keys that work where the focus is, drawn as one line of text.

Textual's ``Footer`` is a widget per key; when the focus moves (``/`` into the filter box, ``esc`` out of it) the
keys shown change and it composes itself anew: its old key widgets removed, new ones mounted, and the whole screen
laid out and drawn again, twice (40-80 ms at 200x50 with a large view). This bar draws the same keys, in the same
order and colours, as one line: a change of keys repaints that line. A click on a key presses it, as the footer's
do, and the key under the mouse is highlighted as theirs are.
"""

from __future__ import annotations

from typing import NamedTuple

from rich.style import Style
from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widget import Widget


class _Key(NamedTuple):
    key: str  # the key pressed on a click
    display: str  # as the app shows it (App.get_key_display)
    description: str
    enabled: bool


class KeyBar(Widget):
    """The keys of the focused widget and its ancestors that ask to be shown (``Binding.show``), one per action,
    and the command palette's key on the right."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES = {"key-bar--key", "key-bar--description", "key-bar--edge", "key-bar--hover"}
    # The colours of Textual's Footer (its theme variables), so the bar reads as any Textual app's footer.
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        .key-bar--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .key-bar--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        .key-bar--edge {
            color: $foreground 20%;
        }
        .key-bar--hover {
            color: $footer-key-foreground;
            background: $block-hover-background;
        }
    }
    """

    def __init__(self, **kwargs: str) -> None:
        super().__init__(**kwargs)
        self._keys: tuple[_Key, ...] = ()
        self._palette: _Key | None = None
        self._spans: list[tuple[int, int, _Key]] = []  # where each key was drawn: [start, end) cells
        self._hover: _Key | None = None  # the key under the mouse

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if not self.is_attached or screen is not self.screen:
            return
        keys: dict[str, _Key] = {}  # action -> its first binding shown, in the screen's order
        palette: _Key | None = None
        app = self.app
        for key, active in screen.active_bindings.items():
            binding = active.binding
            entry = _Key(binding.key, app.get_key_display(binding), binding.description, active.enabled)
            if key == app.COMMAND_PALETTE_BINDING and app.ENABLE_COMMAND_PALETTE:
                palette = entry
            elif binding.show:
                keys.setdefault(binding.action, entry)
        shown = tuple(keys.values())
        if shown != self._keys or palette != self._palette:
            self._keys, self._palette = shown, palette
            self.refresh()

    def render(self) -> Text:
        key_style = self.get_component_rich_style("key-bar--key")
        description_style = self.get_component_rich_style("key-bar--description")
        dim = Style(dim=True)
        hover = self.get_component_rich_style("key-bar--hover")
        text = Text(no_wrap=True, overflow="crop", end="")
        spans: list[tuple[int, int, _Key]] = []

        def add(entry: _Key) -> None:
            start = text.cell_len
            style = Style() if entry.enabled else dim
            if entry == self._hover:
                style += hover
            text.append(f" {entry.display} ", key_style + style)
            if entry.description:
                text.append(f"{entry.description} ", description_style + style)
            spans.append((start, text.cell_len, entry))

        for entry in self._keys:
            add(entry)
        if self._palette is not None:
            tail = Text(no_wrap=True, end="")
            tail.append("▏", self.get_component_rich_style("key-bar--edge"))
            lit = hover if self._palette == self._hover else Style()
            tail.append(self._palette.display, key_style + lit)
            tail.append(f" {self._palette.description}", description_style + lit)
            tail.append(" ")
            # On the right, as the footer docks it; keys that do not fit before it are cut off.
            room = max(0, self.size.width - tail.cell_len)
            text.truncate(room, pad=True)
            spans = [(start, min(end, room), entry) for start, end, entry in spans if start < room]
            spans.append((room, room + tail.cell_len, self._palette))
            text.append_text(tail)
        self._spans = spans
        return text

    def _at(self, x: int) -> _Key | None:
        return next((entry for start, end, entry in self._spans if start <= x < end), None)

    def on_mouse_down(self, event: events.MouseDown) -> None:
        entry = self._at(event.x)
        if entry is None:
            return
        if entry.enabled:
            self.app.simulate_key(entry.key)
        else:
            self.app.bell()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        self._lit(self._at(event.x))

    def on_leave(self, event: events.Leave) -> None:
        self._lit(None)

    def _lit(self, entry: _Key | None) -> None:
        if entry != self._hover:
            self._hover = entry
            self.refresh()
