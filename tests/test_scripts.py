"""The repository's scripts still import: scripts/screenshots.py broke silently once when the test helpers it uses
moved (tests.ui_support -> tests.support.ui)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def test_the_screenshot_script_imports_and_names_its_shots() -> None:
    spec = importlib.util.spec_from_file_location("screenshots_script", SCRIPTS / "screenshots.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = [name for name, *_ in module.SHOTS]
    assert "filtered" in names and len(names) == len(set(names))
