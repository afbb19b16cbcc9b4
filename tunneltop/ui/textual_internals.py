"""Every use tunneltop makes of Textual's private names, and nothing else.

Textual's public API does almost all tunneltop needs; the few things it does not are done here, each in one small
function that says which private name it touches and why no public API does the job. No other module touches a
private Textual name (tests/test_textual_internals.py checks the package source), and the same test names each
internal used here and checks that the installed Textual still has it, with the shape relied on: a Textual upgrade
that changes one fails that test by name rather than a random UI test, and only this module needs changing.

What is public and used instead of internals elsewhere: ``TreeNode.id``/``tree``/``refresh()``, ``Widget.refresh
(*regions)``, ``DOMNode.rich_style`` (overridden by ``line_style.PassStyle``), ``on_click`` handlers and
``App.panic`` (the crash report).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from rich.text import Text
    from textual.app import App
    from textual.geometry import Size
    from textual.scroll_view import ScrollView
    from textual.widgets import Tree
    from textual.widgets.tree import TreeNode

TreeT = TypeVar("TreeT", bound="type[Tree[Any]]")


def tree_node_class(node_class: type[TreeNode[Any]]) -> Callable[[TreeT], TreeT]:
    """A class decorator: every node the decorated ``Tree`` subclass makes is a ``node_class``.

    Touches ``Tree._add_node``, the one method through which a Tree makes each of its nodes (the root in
    ``__init__``, the others in ``TreeNode.add``). Tree has no public way to choose the class of its nodes, and
    ClientTree's nodes build their label only when it is read or drawn (see ``client_tree._ClientNode``). The node
    Textual made is handed over to ``node_class``, which must be a subclass of TreeNode that adds no state of its
    own: nothing else of ``_add_node`` (its private counters and maps) is relied on."""

    def decorate(tree_class: TreeT) -> TreeT:
        def _add_node(self: Tree[Any], *args: Any, **kwargs: Any) -> TreeNode[Any]:
            node = super(tree_class, self)._add_node(*args, **kwargs)  # type: ignore[misc]
            node.__class__ = node_class
            return node

        _add_node.__qualname__ = f"{tree_class.__qualname__}._add_node"
        tree_class._add_node = _add_node  # type: ignore[attr-defined]
        return tree_class

    return decorate


def store_node_label(node: TreeNode[Any], label: Text) -> None:
    """Make ``label`` the label ``node.label`` gives and ``Tree.render_label`` draws, without repainting anything.

    Touches ``TreeNode._label``, where TreeNode keeps its label. The public ``set_label`` also counts an update of
    the node and schedules a repaint of its line: right for a new label, wrong for a label built lazily while its
    line is being drawn or measured (the line would be drawn twice, and the second copy sent to the terminal again).
    ``label`` must be what ``Tree.process_label`` makes of a label: a one-line Text."""
    node._label = label


def update_scrollbars(widget: ScrollView, virtual_size: Size) -> None:
    """Fit the scrollbars of ``widget`` to ``virtual_size`` (already set with ``set_reactive``) without a layout.

    Touches ``Widget._scroll_update``, which Textual's own layout pass calls when a scrolling widget's virtual size
    changes: it shows or hides each scrollbar, sizes its thumb, and clamps the scroll offsets. Setting the public
    ``virtual_size`` does the same, but through a layout of the whole screen (and a repaint of everything that
    moved), on every poll that adds or removes a row of a table whose height does not depend on its rows."""
    widget._scroll_update(virtual_size)


def report_crashes_with(app: App[Any], report: Callable[[App[Any]], None]) -> None:
    """Have ``app`` call ``report(app)`` instead of printing Textual's own crash report on an unhandled exception.

    Touches ``App._fatal_error``, which ``App._handle_exception`` calls (with the exception being handled) to exit
    with a report; Textual's prints every frame's local variables, and no public setting turns that off.
    ``report`` must end the app as ``_fatal_error`` does: ``App.panic(...)`` does (see lifecycle.crash_report)."""
    app._fatal_error = lambda: report(app)  # type: ignore[method-assign]
