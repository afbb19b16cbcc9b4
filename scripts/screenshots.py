"""Regenerate screenshots/*.svg: the real app on the demo account, driven by Pilot, at a fixed time.

Run from the repository root:  python scripts/screenshots.py
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual.pilot import Pilot  # noqa: E402

from tests.support.ui import make_app, wait_for_poll  # noqa: E402
from tunneltop.demo.cfapi import Fault  # noqa: E402
from tunneltop.ui.app import TunneltopApp  # noqa: E402

OUT = ROOT / "screenshots"
Step = Callable[[Pilot, TunneltopApp, object], Awaitable[None]]


async def _overview(pilot: Pilot, app: TunneltopApp, fake: object) -> None:
    return None


async def _one_tunnel(pilot: Pilot, app: TunneltopApp, fake: object) -> None:
    app.client_tree.focus()
    await pilot.press("j", "j", "j")


async def _filtered(pilot: Pilot, app: TunneltopApp, fake: object) -> None:
    await pilot.press("slash", *"colo:AMS,FRA", "enter")


async def _pending(pilot: Pilot, app: TunneltopApp, fake: object) -> None:
    await pilot.press("slash", *"state:pending", "enter", "j")


async def _stale(pilot: Pilot, app: TunneltopApp, fake: object) -> None:
    fake.inject(Fault.html_page(502), times=100)  # type: ignore[attr-defined]
    await pilot.press("r")
    await wait_for_poll(pilot, app, count=2)


async def _help(pilot: Pilot, app: TunneltopApp, fake: object) -> None:
    await pilot.press("question_mark")


SHOTS: list[tuple[str, tuple[int, int], list[str] | None, Step]] = [
    ("account", (140, 30), [], _overview),
    ("overview", (140, 40), None, _overview),
    ("tunnel", (140, 40), ["api-staging"], _one_tunnel),
    ("filtered", (140, 40), None, _filtered),
    ("pending", (140, 40), None, _pending),
    ("stale", (140, 40), None, _stale),
    ("help", (120, 36), None, _help),
    ("small-80x24", (80, 24), None, _overview),
]


async def shoot(name: str, size: tuple[int, int], refs: list[str] | None, step: Step) -> Path:
    # refs == []: nothing named, so the account overview; None: every tunnel named, the connections view.
    app, fake = make_app(refs=refs or None, start_view=None if refs == [] else "monitor")
    async with app.run_test(size=size) as pilot:
        await wait_for_poll(pilot, app)
        await step(pilot, app, fake)
        await pilot.pause(0.3)
        return Path(app.save_screenshot(filename=f"{name}.svg", path=str(OUT)))


async def main() -> None:
    OUT.mkdir(exist_ok=True)
    for shot in SHOTS:
        print(await shoot(*shot))


if __name__ == "__main__":
    asyncio.run(main())
