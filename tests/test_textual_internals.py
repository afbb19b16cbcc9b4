"""The private Textual names tunneltop relies on, each checked by name on the installed Textual, and a check of the
package source that no module but ``tunneltop/ui/textual_internals.py`` touches one.

A Textual upgrade that renames or reshapes an internal fails the test named for it here, not a random UI test;
``textual_internals.py`` is then the one module to change. Each test checks the shape relied on (the name, its
signature) and the behaviour relied on (what it does for us), on a real app where drawing is involved.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import textwrap
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import textual
from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.widget import Widget
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

import tunneltop
from tunneltop.ui import textual_internals
from tunneltop.ui.textual_internals import (
    report_crashes_with,
    store_node_label,
    tree_node_class,
    update_scrollbars,
)

PACKAGE = Path(tunneltop.__file__).parent
INTERNALS_MODULE = PACKAGE / "ui" / "textual_internals.py"
# Private by their look only: a named tuple's public API (rich's Span, Segment and Textual's Region are ones).
NAMED_TUPLE_API = {"_replace", "_asdict", "_fields", "_field_defaults", "_make"}

# Every private Textual name textual_internals.py touches, by the function that touches it. A new internal is
# added here with a test of its own below (test_the_internals_module_touches_only_the_names_listed_here checks).
INTERNALS: dict[str, set[str]] = {
    "tree_node_class": {"_add_node"},
    "store_node_label": {"_label"},
    "update_scrollbars": {"_scroll_update"},
    "report_crashes_with": {"_fatal_error"},
}


def _params(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


# -- each internal, on the installed Textual --------------------------------------------------------------------


class _Node(TreeNode[str]):
    """A node class that adds no state, as tree_node_class requires."""


@tree_node_class(_Node)
class _NodeTree(Tree[str]):
    pass


class _TreeApp(App[None]):
    def compose(self) -> ComposeResult:
        yield _NodeTree(Text("root"))


def test_tree_add_node_makes_every_node_of_a_tree() -> None:
    # tree_node_class: Tree._add_node(parent, label, data, expand=False) is how a Tree makes each node.
    assert _params(Tree._add_node)[:4] == ["self", "parent", "label", "data"]
    tree = _NodeTree(Text("root"))
    leaf = tree.root.add(Text("a"), "a").add_leaf(Text("b"), "b")
    assert type(tree.root) is _Node, "the root is made by Tree.__init__ through _add_node"
    assert type(leaf) is _Node and type(leaf.parent) is _Node, "TreeNode.add makes nodes through _add_node"
    assert tree.get_node_by_id(leaf.id) is leaf and leaf.tree is tree and leaf.data == "b"


def test_tree_node_label_is_kept_in__label() -> None:
    # store_node_label: TreeNode keeps its label in _label, which .label gives and render_label draws.
    tree = _NodeTree(Text("root"))
    node = tree.root.add(Text("before"), "x", allow_expand=False)
    assert isinstance(node._label, Text) and node._label.plain == "before"
    label = Text("after")
    store_node_label(node, label)
    assert node.label is label
    assert tree.render_label(node, Style(), Style()).plain == "after"


class _Scrolling(ScrollView):
    DEFAULT_CSS = "_Scrolling { height: 5; }"


class _ScrollApp(App[None]):
    def compose(self) -> ComposeResult:
        yield _Scrolling()


async def test_widget_scroll_update_fits_the_scrollbars_to_a_virtual_size() -> None:
    # update_scrollbars: Widget._scroll_update(virtual_size) shows/sizes the scrollbars and clamps the offsets.
    assert _params(Widget._scroll_update) == ["self", "virtual_size"]
    async with _ScrollApp().run_test(size=(40, 10)) as pilot:
        view = pilot.app.query_one(_Scrolling)
        await pilot.pause()
        assert not view.show_vertical_scrollbar
        size = Size(20, 100)
        view.set_reactive(_Scrolling.virtual_size, size)
        update_scrollbars(view, size)
        assert view.show_vertical_scrollbar
        assert view.vertical_scrollbar.window_virtual_size == 100
        view.scroll_to(y=50, animate=False, immediate=True)
        assert view.scroll_y == 50
        view.set_reactive(_Scrolling.virtual_size, Size(20, 3))
        update_scrollbars(view, Size(20, 3))
        assert view.scroll_y == 0 and not view.show_vertical_scrollbar


async def test_app_fatal_error_reports_an_unhandled_exception() -> None:
    # report_crashes_with: App._handle_exception calls self._fatal_error(), with the exception being handled.
    assert _params(App._fatal_error) == ["self"]
    assert "self._fatal_error()" in inspect.getsource(App._handle_exception)
    reported: list[str] = []

    def report(app: App[Any]) -> None:
        import sys

        reported.append(repr(sys.exc_info()[1]))
        app.panic(Text("reported"))

    app = App[None]()
    report_crashes_with(app, report)

    def crash() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        async with app.run_test() as pilot:
            app.call_later(crash)
            await pilot.pause()
    assert reported == ["RuntimeError('boom')"]
    assert app.return_code == 1


def test_pytest_textual_snapshot_finds_the_textual_internals_it_imports() -> None:
    # Not tunneltop's: the snapshot tests' plugin (pytest-textual-snapshot 1.1.0, pinned in the test extra)
    # imports these, so a Textual that drops one fails here by name as well as in every snapshot test.
    from textual._doc import take_svg_screenshot
    from textual._import_app import import_app

    assert {"app", "press", "terminal_size", "run_before"} <= set(_params(take_svg_screenshot))
    assert _params(import_app)[:1] == ["import_name"]


def _private_attributes(tree: ast.AST) -> Iterator[ast.Attribute]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            yield node


def test_the_internals_module_touches_only_the_names_listed_here() -> None:
    tree = ast.parse(INTERNALS_MODULE.read_text())
    functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    assert set(INTERNALS) <= set(functions), "every internal listed is one of its functions"
    for name, function in functions.items():
        touched = {a.attr for a in _private_attributes(function)}
        assert touched == INTERNALS.get(name, set()), f"{name} touches {sorted(touched)}: list them in INTERNALS"
    for name in INTERNALS:
        doc = inspect.getdoc(getattr(textual_internals, name)) or ""
        assert all(f"``{i}" in doc or f".{i}``" in doc for i in INTERNALS[name]), f"{name}'s docstring names them"


# -- the package source: no private Textual name outside textual_internals.py -----------------------------------


@cache
def _textual_private_names() -> frozenset[str]:
    """Every private name Textual's source defines or uses as an attribute (``x._name``, ``def _name``)."""
    names: set[str] = set()
    for path in Path(textual.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
    return frozenset(n for n in names if n.startswith("_") and not n.startswith("__")) - NAMED_TUPLE_API


def _package_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p != INTERNALS_MODULE)


def _is_self(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id in ("self", "cls")) or (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"
    )


@cache
def _our_private_names() -> frozenset[str]:
    """The private names tunneltop itself defines: on self, in a class body, at module level, in __slots__. (Where
    one of ours is also a Textual class's, test_no_textual_subclass_uses_a_private_name_of_its_bases finds it.)"""
    names: set[str] = set()

    def body_names(body: list[ast.stmt]) -> None:  # module or class level: not a function's locals
        for statement in body:
            targets = statement.targets if isinstance(statement, ast.Assign) else []
            if isinstance(statement, ast.AnnAssign):
                targets = [statement.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
            if any(isinstance(t, ast.Name) and t.id == "__slots__" for t in targets):
                names.update(c.value for c in ast.walk(statement.value) if isinstance(c, ast.Constant))  # type: ignore[union-attr]
            if isinstance(statement, ast.ClassDef):
                body_names(statement.body)

    for path in _package_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        body_names(tree.body)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _is_self(node.value):
                names.add(node.attr)
    return frozenset(n for n in names if isinstance(n, str) and n.startswith("_"))


def _module_aliases(tree: ast.AST) -> set[str]:
    """Names the module binds to other modules than Textual's (``import os``): ``os._exit`` is not Textual's."""
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "textual":
                    aliases.add(alias.asname or alias.name.split(".")[0])
    return aliases


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    theirs, ours, modules = _textual_private_names(), _our_private_names(), _module_aliases(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "textual":
            private = [p for p in node.module.split(".") if p.startswith("_")]  # type: ignore[union-attr]
            private += [a.name for a in node.names if a.name.startswith("_")]
            if private:
                found.append(f"line {node.lineno}: imports private {node.module}: {private}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "textual" and any(p.startswith("_") for p in alias.name.split(".")):
                    found.append(f"line {node.lineno}: imports private {alias.name}")
        elif isinstance(node, ast.Attribute) and node.attr in theirs and node.attr not in ours:
            if not (isinstance(node.value, ast.Name) and node.value.id in modules):
                found.append(f"line {node.lineno}: .{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in theirs
            and node.args[1].value not in ours
        ):
            found.append(f"line {node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
    return sorted(found, key=lambda v: int(v.split(":")[0].split()[1]))


@pytest.mark.parametrize("path", _package_files(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_module_but_textual_internals_touches_a_private_textual_name(path: Path) -> None:
    found = _violations(path)
    assert not found, f"{path.name} touches private Textual names (go through ui/textual_internals.py): {found}"


def test_the_source_check_finds_what_it_is_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        textwrap.dedent(
            """
            import os
            from textual.widgets._tree import TOGGLE_STYLE
            def f(app, node):
                os._exit(0)
                app._exit_renderables.append(1)
                return getattr(node, "_label"), node._our_own_name_that_textual_never_uses
            """
        )
    )
    assert [v.split(":")[0] for v in _violations(sample)] == ["line 3", "line 6", "line 7"]


def _textual_classes() -> list[type]:
    classes = []
    ui = importlib.import_module("tunneltop.ui")
    for info in pkgutil.iter_modules(ui.__path__):
        module = importlib.import_module(f"tunneltop.ui.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and value.__module__ == module.__name__
                and module.__name__ != textual_internals.__name__
                and any(_is_textual(b) for b in value.__mro__)
            ):
                classes.append(value)
    return classes


def _is_textual(cls: type) -> bool:
    return cls.__module__.split(".")[0] == "textual"


@cache
def _names_used_on_self(cls: type) -> frozenset[str]:
    """The private names a class's own source uses on itself, defines as methods or sets in its body."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return frozenset()
    names = set()
    (body,) = tree.body
    assert isinstance(body, ast.ClassDef)
    for node in body.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name):
                    names.add(target.id)
    names.update(a.attr for a in _private_attributes(tree) if _is_self(a.value))
    return frozenset(n for n in names if n.startswith("_") and not n.startswith("__"))


@pytest.mark.parametrize("cls", _textual_classes(), ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_no_textual_subclass_uses_a_private_name_of_its_bases(cls: type) -> None:
    # A private name of a Textual base used on self is Textual's (read, called or overridden), and one of ours
    # that is also a base's silently replaces Textual's.
    theirs = set().union(*(set(vars(b)) | _names_used_on_self(b) for b in cls.__mro__ if _is_textual(b)))
    ours = set().union(*(_names_used_on_self(b) for b in cls.__mro__ if b.__module__.startswith("tunneltop.")))
    shared = sorted(ours & theirs)
    assert not shared, f"{cls.__qualname__} uses its Textual bases' private names {shared}"
