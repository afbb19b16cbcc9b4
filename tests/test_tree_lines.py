"""The client tree draws its own lines (ui/tree_lines.py): cell for cell what Textual's Tree draws, metadata
included, in every state a line can be in; and a line it has made is kept until what it shows changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from rich.style import Style
from rich.text import Span, Text
from textual.pilot import Pilot
from textual.strip import Strip
from textual.widgets import Tree

from tests.support.ui import make_app, wait_for_poll
from tunneltop.ui.app import TunneltopApp
from tunneltop.ui.client_tree import ClientTree

SIZE = (130, 44)


def _cells(strip: Strip) -> list[tuple[str, Style | None]]:
    return [(char, segment.style) for segment in strip for char in segment.text]


@asynccontextmanager
async def _demo(size: tuple[int, int] = SIZE) -> AsyncIterator[tuple[TunneltopApp, Pilot[None], ClientTree]]:
    """The app on the demo account after its first poll, drawn: the app, its pilot and its client tree."""
    app, _ = make_app()
    async with app.run_test(size=size) as pilot:
        await wait_for_poll(pilot, app)
        await pilot.pause()
        yield app, pilot, app.client_tree


def _differences(app: TunneltopApp) -> list[int]:
    """The lines on screen where the client tree's drawing and Textual's Tree's differ (none, expected)."""
    tree = app.client_tree
    return [
        y
        for y in range(tree.size.height)
        if _cells(tree.render_line(y)) != _cells(Tree.render_line(tree, y))
    ]


async def test_every_line_is_drawn_as_textual_tree_draws_it() -> None:
    async with _demo() as (app, pilot, tree):
        assert tree.get_node_at_line(0) is not None and tree.get_node_at_line(5) is not None
        assert _differences(app) == [], "at start, the focus elsewhere"

        tree.focus()
        await pilot.pause()
        assert tree.has_focus
        assert _differences(app) == [], "focused, the cursor on the first line"

        # The cursor on a connector, expanded, then on one of its connections: the guides below the cursor's node
        # take its style, and its label the cursor's.
        connector = next(
            line for line in range(tree.last_line + 1)
            if (node := tree.get_node_at_line(line)) is not None and node.data is not None
            and node.data.kind == "connector"
        )
        tree.cursor_line = connector
        node = tree.get_node_at_line(connector)
        assert node is not None
        node.expand()
        await pilot.pause()
        assert any(child.data is not None and child.data.kind == "conn" for child in node.children)
        assert _differences(app) == [], "the cursor on an expanded connector"
        tree.cursor_line = connector + 1
        await pilot.pause()
        assert _differences(app) == [], "the cursor on a connection"

        # The mouse over a line: its line and the guides below it are highlighted.
        tree.hover_line = connector
        await pilot.pause()
        assert _differences(app) == [], "the mouse over a connector"
        tree.hover_line = 0
        await pilot.pause()
        assert _differences(app) == [], "the mouse over a tunnel"

        node.collapse()
        tree.hover_line = -1
        app.table.focus()
        await pilot.pause()
        assert _differences(app) == [], "collapsed again, the focus back on the table"


async def test_a_narrow_tree_scrolled_sideways_is_drawn_as_textual_tree_draws_it() -> None:
    async with _demo((80, 24)) as (app, pilot, tree):
        assert tree.virtual_size.width > tree.size.width, "labels wider than the tree"
        tree.scroll_to(x=4, animate=False)
        await pilot.pause()
        assert tree.scroll_offset.x == 4
        assert _differences(app) == []


async def test_a_line_is_made_once_then_kept_until_what_it_shows_changes() -> None:
    async with _demo() as (app, pilot, tree):
        drawing = tree.drawing
        first = [tree.render_line(y).text for y in range(tree.size.height)]
        made = drawing.made
        assert [tree.render_line(y).text for y in range(tree.size.height)] == first
        assert drawing.made == made, "drawn again unchanged: every line kept"

        # A relabelled node's line is made again, and only its line.
        node = tree.get_node_at_line(1)
        assert node is not None
        node.set_label("relabelled")
        await pilot.pause()
        made = drawing.made
        lines = [tree.render_line(y).text for y in range(tree.size.height)]
        assert drawing.made == made
        assert "relabelled" in lines[1] and lines[:1] + lines[2:] == first[:1] + first[2:]

        # The focus changes the tree's look: every line is made again.
        tree.focus()
        await pilot.pause()
        shown = min(tree.size.height, tree.last_line + 1)
        assert shown > 10 and drawing.made == made + shown
        assert _differences(app) == []


async def test_a_label_with_overlapping_spans_or_a_style_of_its_own_is_drawn_as_textual_tree_draws_it() -> None:
    # The client tree's own labels are runs of named styles, read span by span; any other Text is rendered by rich.
    async with _demo() as (app, pilot, tree):
        first, second = tree.get_node_at_line(1), tree.get_node_at_line(2)
        assert first is not None and second is not None
        first.set_label(Text("overlapping spans", spans=[Span(0, 11, "bold"), Span(5, 17, Style(color="red"))]))
        second.set_label(Text("a style of its own", style="italic", spans=[Span(2, 7, "underline")]))
        tree.focus()
        tree.cursor_line = 1
        await pilot.pause()
        assert "overlapping spans" in tree.render_line(1).text and "a style of its own" in tree.render_line(2).text
        assert _differences(app) == []
