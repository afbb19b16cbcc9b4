"""A drawing helper shared by the widgets drawn line by line (the client tree and the virtual tables)."""

from __future__ import annotations

from typing import Any

from rich.style import Style
from textual.geometry import Region
from textual.strip import Strip


class PassStyle:
    """Works out the widget's style once per drawing pass, for ``render_line`` to read as ``self._pass_style``.

    ``rich_style`` walks up the DOM on every read; it is the same for every line of one pass, and a pass draws up
    to a screenful of lines. Mixed in before the widget class."""

    _pass_style: Style | None = None

    def render_lines(self, crop: Region) -> list[Strip]:
        self._pass_style = self.rich_style  # type: ignore[attr-defined]
        try:
            lines: list[Strip] = super().render_lines(crop)  # type: ignore[misc]
            return lines
        finally:
            self._pass_style = None

    def line_style(self: Any) -> Style:
        """The style for a line: the pass's, or worked out now when drawn outside a pass."""
        return self._pass_style or self.rich_style
