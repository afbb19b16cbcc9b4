"""How the client tree draws a line: what Textual's ``Tree`` draws, made straight into segments, and kept.

Tree makes each line by assembling rich ``Text`` objects (the guides, the expand icon, a copy of the label, then a
second copy for the mouse's metadata) and rendering them, and reads its five component styles again for every
line: ~0.18 ms a line at 10,000 connections, 8-9 ms for a screenful, drawn again on every focus change of the tree,
every change of its shape and every first frame. Here the styles are read once per drawing pass, a line's segments
are made directly, and a drawn line is kept under what it shows, through Textual's public API only.

The look is Tree's (Textual 8.2): the same guides, icons, component styles, and the same ``line``, ``node`` and
``toggle`` metadata on the same cells, which Tree's click handler reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

# Lines kept at most: a few screens' worth, across cursor moves, scrolling and the tree's height changing (the event
# log shown and hidden); a change of look drops them all anyway. More costs memory: each line is a Strip carrying
# Textual's caches, and a busy tree's line numbers shift (a soak of filters and failovers at 10,000 connections
# held ~8 MB more with 2,048).
_KEPT = 256


@dataclass(frozen=True, slots=True)
class _Look:
    """The tree's styles for one drawing pass: Tree reads each of them again for every line."""

    base: Style  # the widget's own
    highlight_line: Style  # the line under the mouse
    label: Style
    highlight: Style  # the label under the mouse
    cursor: Style
    # The guides' style and strings (space, vertical, terminator, cross), by where they are: below no node under
    # the mouse or the cursor, below the one under the mouse, below the one under the (focused) cursor.
    guides: tuple[tuple[Style, tuple[str, str, str, str]], ...]


def _guide_strings(tree: Tree[Any], style: Style, hidden: bool) -> tuple[str, str, str, str]:
    """Tree's guide strings for a guide ``style`` (blank where its colour is transparent)."""
    if not tree.show_guides or hidden:
        return ("  ", "  ", "  ", "  ")
    lines = tree.LINES["bold"] if style.bold else tree.LINES["double"] if style.underline2 else tree.LINES["default"]
    depth = max(0, tree.guide_depth - 2)
    space, vertical, terminator, cross = (f"{chars[0]}{chars[1] * depth} " for chars in lines)
    return space, vertical, terminator, cross


def _look(tree: Tree[Any]) -> _Look:
    plain = tree.get_component_rich_style("tree--guides", partial=True)
    guides = []
    for name, style in (
        ("tree--guides", plain),
        ("tree--guides-hover", plain + tree.get_component_rich_style("tree--guides-hover", partial=True)),
        ("tree--guides-selected", plain + tree.get_component_rich_style("tree--guides-selected", partial=True)),
    ):
        hidden = tree.get_component_styles(name).color.a == 0
        guides.append((style, _guide_strings(tree, style, hidden)))
    return _Look(
        base=tree.rich_style,
        highlight_line=tree.get_component_rich_style("tree--highlight-line"),
        label=tree.get_component_rich_style("tree--label", partial=True),
        highlight=tree.get_component_rich_style("tree--highlight", partial=True),
        cursor=tree.get_component_rich_style("tree--cursor", partial=False),
        guides=tuple(guides),
    )


@dataclass(frozen=True, slots=True)
class _Pass:
    """What every line of one drawing pass reads of the tree (each a reactive or a walk when read)."""

    width: int
    pad_width: int  # lines are drawn this wide, then cropped to the screen
    scroll_x: int
    scroll_y: int
    hover_line: int
    hovered: TreeNode[Any] | None
    cursor_line: int
    under_cursor: TreeNode[Any] | None  # the cursor's node while the tree has the focus
    styles: dict[str, Style]  # a label's span styles by name, read from the console as drawn


class TreeLines:
    """Draws the lines of one ``Tree`` and keeps them (see the module's docstring). ``begin`` starts a drawing
    pass and ``end`` ends it, ``line`` draws a line of the screen; ``made`` counts the lines made rather than
    found kept."""

    def __init__(self, tree: Tree[Any]) -> None:
        self._tree = tree
        self.made = 0
        self._look: _Look | None = None
        self._pass: _Pass | None = None
        # (line, node, ...what else its drawing depends on but the label) -> (the label drawn, the line at full width)
        self._kept: dict[tuple[object, ...], tuple[object, Strip]] = {}

    def begin(self) -> None:
        """Read the tree's styles and state for a drawing pass; what was drawn with other styles is dropped."""
        tree = self._tree
        look = _look(tree)
        if look != self._look:
            self._look = look
            self._kept.clear()
        width = tree.size.width
        scroll_x, scroll_y = tree.scroll_offset
        hover_line = tree.hover_line
        self._pass = _Pass(
            width=width,
            pad_width=max(tree.virtual_size.width, width),
            scroll_x=scroll_x,
            scroll_y=scroll_y,
            hover_line=hover_line,
            hovered=tree.get_node_at_line(hover_line) if hover_line >= 0 else None,
            cursor_line=tree.cursor_line,
            under_cursor=tree.cursor_node if tree.has_focus else None,
            styles={},
        )

    def end(self) -> None:
        self._pass = None

    def line(self, y: int) -> Strip:
        """Line ``y`` of the tree's screen (its scroll offset added), cropped as Tree crops it."""
        now = self._pass
        if now is None:  # a line drawn on its own: the tree may have changed since the last pass
            self.begin()
            try:
                return self.line(y)
            finally:
                self.end()
        look = self._look
        assert look is not None
        tree = self._tree
        number = y + now.scroll_y
        node = tree.get_node_at_line(number)
        if node is None:
            return Strip.blank(now.width, look.base)
        path: list[TreeNode[Any]] = []
        root = tree.root
        step: TreeNode[Any] | None = node
        while step is not None and step is not root:
            path.append(step)
            step = step.parent
        path.reverse()
        if tree.show_root and step is root:
            path.insert(0, root)
        label = node.label
        hovered, under_cursor = now.hovered, now.under_cursor
        hover_at = next((i for i, step in enumerate(path) if step is hovered), -1)
        key = (
            number,
            node,
            node.is_expanded,
            node.allow_expand,
            tuple(step.is_last for step in path),
            hover_at,
            next((i for i, step in enumerate(path) if step is under_cursor), -1),
            now.hover_line == number,
            now.cursor_line == number,
            now.pad_width,
        )
        kept = self._kept.get(key)
        if kept is not None and kept[0] is label:  # a node relabelled has a new label: its line is made again
            return kept[1].crop(now.scroll_x, now.scroll_x + now.width)
        strip = self._draw(look, now, number, path, label, hover_at >= 0)
        self.made += 1
        if len(self._kept) >= _KEPT:
            self._kept.clear()
        self._kept[key] = (label, strip)
        return strip.crop(now.scroll_x, now.scroll_x + now.width)

    def _draw(
        self, look: _Look, now: _Pass, number: int, path: list[TreeNode[Any]], label: object, under_mouse: bool
    ) -> Strip:
        """Tree._render_line's line, made as segments. Each cell's style is what rich's Text combines for it in
        Tree's (the line's style, then each span in the order Tree added it), the mouse's metadata added last: its
        styles without metadata repeat from line to line, and rich keeps their sums."""
        tree = self._tree
        node = path[-1]
        hovered, under_cursor = now.hovered, now.under_cursor
        base = look.highlight_line if under_mouse else look.base  # the line is below the node under the mouse
        on_line = Style(meta={"line": number})
        segments: list[Segment] = []
        add = segments.append
        # A guide's look follows the nodes above it on the line's path: below the node under the mouse, then below
        # the one under the cursor, it takes their styles (Tree's order: the cursor's wins).
        kind = 0
        hover = path[0] is hovered
        selected = path[0] is under_cursor
        for step in path[1:]:
            kind = 2 if selected else 1 if hover else 0
            if step is not node:
                style, strings = look.guides[kind]
                add(Segment(strings[0] if step.is_last else strings[1], base + style + on_line))
            hover = hover or step is hovered
            selected = selected or step is under_cursor
        if len(path) > 1:
            style, strings = look.guides[kind]
            add(Segment(strings[2] if node.is_last else strings[3], base + style + on_line))
        if node.allow_expand:
            icon = tree.ICON_NODE_EXPANDED if node.is_expanded else tree.ICON_NODE
            add(Segment(icon, base + Style(meta={"line": number, "toggle": True, "node": node.id})))
        label_style = look.label
        if now.hover_line == number:
            label_style += look.highlight
        if now.cursor_line == number:
            label_style += look.cursor
        on_label = Style(meta={"line": number, "node": node.id})
        for text, style in _label_parts(label, now.styles, tree):
            add(Segment(text, base + style + label_style + on_label))
        length = sum(cell_len(segment.text) for segment in segments)
        if now.pad_width > length:
            add(Segment(" " * (now.pad_width - length), base + on_line))
        return Strip(segments, max(now.pad_width, length))


_NULL = Style()


def _in_order(label: Text) -> bool:
    """Whether ``label`` has no style of its own and its spans, each a style's name, follow one another without
    overlapping: every label the client tree makes (client_tree._text)."""
    if label.style:
        return False
    position = 0
    for span in label.spans:
        if not (position <= span.start < span.end <= len(label.plain)) or not isinstance(span.style, str):
            return False
        position = span.end
    return True


def _label_parts(label: object, styles: dict[str, Style], tree: Tree[Any]) -> list[tuple[str, Style]]:
    """A label's runs of text and their styles, as rich's Text renders them: read span by span where its spans are
    in order (``styles`` keeps each name's style for the pass), rendered by rich otherwise."""
    text = label if isinstance(label, Text) else Text(str(label))
    console = tree.app.console
    if not _in_order(text):
        return [(run, style or _NULL) for run, style, _ in text.render(console)]
    plain = text.plain
    parts: list[tuple[str, Style]] = []
    position = 0
    for span in text.spans:
        name = str(span.style)
        if span.start > position:
            parts.append((plain[position : span.start], _NULL))
        style = styles.get(name)
        if style is None:
            style = styles[name] = console.get_style(name, default=_NULL)
        parts.append((plain[span.start : span.end], style))
        position = span.end
    if position < len(plain):
        parts.append((plain[position:], _NULL))
    return parts
