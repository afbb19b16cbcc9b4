"""The filter box (``/``), drawn over the key bar at the bottom while it is open, and the active filter's badge in
the header (saying when it matches nothing).

Neither moves anything else on the screen: the box is an overlay and the badge is part of the header's one line. A
line that came and went above the views (as the box and the filter's line once did) made Textual lay out and repaint
the whole screen each time, 30-60 ms at 200x50 with a large view, on ``/``, on the first key typed and on ``esc``."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import Input, Static

from tunneltop.views.filters import Filter, FilterError

if TYPE_CHECKING:
    from tunneltop.ui.app import TunneltopApp

PLACEHOLDER = "filter: words, colo:DFW,LAX, state:pending, !inverts — enter applies, esc clears"


class FilterInput(Input):
    """The filter's box. Input sets its virtual size on every key typed, and that asks for a layout of the whole
    screen (40-80 ms at 200x50 with a large view, a key at a time). Its size is the stylesheet's (a fixed height,
    the bar's width): nothing else moves when its text does, so it only repaints itself."""

    def refresh(
        self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False
    ) -> FilterInput:
        if layout and not recompose and self.is_mounted and not self.styles.auto_dimensions:
            layout = False
        super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)
        return self


class FilterBar(Vertical):
    """Sets the app's ``filter`` as the user types (a valid one), and gives the keys back when it closes."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._before: Widget | None = None  # what had the keys when the box opened

    def compose(self) -> ComposeResult:
        with Vertical(id="filter-row"):
            yield Static("", id="filter-error", markup=False)
            yield FilterInput(placeholder=PLACEHOLDER, id="filter-input")

    @property
    def live(self) -> TunneltopApp:
        return cast("TunneltopApp", self.app)

    @property
    def box(self) -> Input:
        return self.query_one("#filter-input", Input)

    @property
    def is_open(self) -> bool:
        return self.has_class("visible")

    def open(self) -> None:
        self.set_class(True, "visible")
        box = self.box
        box.value = self.live.filter.text
        if self.live.focused is not box:
            self._before = self.live.focused
        # At once, not as ``focus()`` does (a callback queued behind the keys already read): "/web" typed or pasted
        # in one go must put "web" in the box, not run the view's w, e and b.
        self.screen.set_focus(box)

    def close(self) -> None:
        self.set_class(False, "visible")
        error = self.query_one("#filter-error", Static)
        if error.content:  # an update lays the whole screen out again: only when there is an error to take away
            error.update("")
        live = self.live
        if live.focused not in live.view_widgets():  # the box had the keys (an esc in the view leaves them)
            live.focus_view(self._before)
        self._before = None

    def clear(self) -> None:
        self.live.filter = Filter()
        self.box.value = ""
        self.close()

    def set_quietly(self, flt: Filter) -> None:
        """Set the filter and show its text in the box without parsing it again (see the colo picker)."""
        self.live.filter = flt
        box = self.box
        with box.prevent(Input.Changed):
            box.value = flt.text

    def _parse(self, text: str) -> Filter | None:
        error = self.query_one("#filter-error", Static)
        try:
            parsed = Filter.parse(text)
        except FilterError as exc:
            error.update(Text(f"✖ {exc}", style="bold red"))
            return None
        if error.content:  # an update lays the screen out again (its height follows it): not on every key
            error.update("")
        return parsed

    @on(Input.Changed, "#filter-input")
    def _changed(self, event: Input.Changed) -> None:
        parsed = self._parse(event.value)
        if parsed is not None:
            self.live.filter = parsed

    @on(Input.Submitted, "#filter-input")
    def _submitted(self, event: Input.Submitted) -> None:
        parsed = self._parse(event.value)
        if parsed is None:
            return  # keep the box open with its error showing
        self.live.filter = parsed
        self.close()

    def show_badge(
        self, flt: Filter, matching: int | None = None, what: str = "connection", among: int | None = None
    ) -> None:
        """Name the active filter in the header; when it matches nothing in the view (``matching`` is 0), say so: a
        blank table alone looks like a broken view. With ``among`` (how many there are), say how many match."""
        note = ""
        if matching == 0:
            note = f"no {what} matches"
        elif matching is not None and among is not None:
            note = f"{matching:,} of {among:,} {what}s match"
        self.live.header.filtered = (flt.text, note, matching == 0) if flt.active else None
