"""No module keeps mutable state of its own: a memo belongs to the object that uses it, is pruned to what that
object last saw, and goes with it (one process may run several apps, tests many)."""

from __future__ import annotations

import ast
from pathlib import Path

import tunneltop

PACKAGE = Path(tunneltop.__file__).parent
_CONTAINERS = (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)
_FACTORIES = {"dict", "list", "set", "bytearray", "Counter", "defaultdict", "deque", "OrderedDict", "WeakSet"}
_FACTORIES |= {"WeakKeyDictionary", "WeakValueDictionary"}


def _constant(name: str) -> bool:
    """Upper-case names are lookup tables, written once when the module loads and only read after."""
    return name.lstrip("_").isupper() or name == "__all__"


def _mutable(value: ast.expr) -> bool:
    if isinstance(value, _CONTAINERS):
        return True
    if isinstance(value, ast.Call):
        func = value.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        return name in _FACTORIES
    return False


def test_no_module_keeps_a_mutable_container_or_rebinds_a_global() -> None:
    found: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        where = path.relative_to(PACKAGE.parent)
        rebound = [n for n in ast.walk(tree) if isinstance(n, ast.Global)]
        found += [f"{where}:{n.lineno}: global {', '.join(n.names)}" for n in rebound]
        for node in tree.body:
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, value = [node.target], node.value
            else:
                continue
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if _mutable(value) and not all(_constant(n) for n in names):
                found.append(f"{where}:{node.lineno}: {', '.join(names)}")
    assert found == []
