"""A drawing helper shared by the widgets drawn line by line (the client tree and the virtual tables)."""

from __future__ import annotations

from typing import Any

from rich.style import Style
from textual.geometry import Region
from textual.strip import Strip


class PassStyle:
    """Works out the widget's style once per drawing pass: ``rich_style`` gives it for as long as the pass lasts.

    ``rich_style`` walks up the DOM on every read; it is the same for every line of one pass, and a pass draws up
    to a screenful of lines, each of which reads it (Tree's own ``render_line`` does, and so does ``line_style``).
    Mixed in before the widget class."""

    _pass_style: Style | None = None

    def render_lines(self, crop: Region) -> list[Strip]:
        self._pass_style = super().rich_style  # type: ignore[misc]
        try:
            lines: list[Strip] = super().render_lines(crop)  # type: ignore[misc]
            return lines
        finally:
            self._pass_style = None

    @property
    def rich_style(self) -> Style:
        """The widget's style (``DOMNode.rich_style``): the pass's while one is being drawn."""
        style: Style = self._pass_style or super().rich_style  # type: ignore[misc]
        return style

    def line_style(self: Any) -> Style:
        """The style for a line: the pass's, or worked out now when drawn outside a pass."""
        return self.rich_style
