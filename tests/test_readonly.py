"""Read-only, whatever the user presses: every key binding of the app, of every widget and of every screen, every
command of the command palette, and a long seeded-random key sequence, against a real HTTP server that logs the
method of every request it receives. Nothing but GET may ever arrive. The code has no other verb to send, either.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import json
import random
from pathlib import Path

import pytest
from textual.app import App
from textual.command import CommandPalette
from textual.dom import DOMNode
from textual.pilot import Pilot
from textual.widgets import Input

from tests.support.live import SIZE, TOKEN, WEB, MovingClock, live_app, make_fake, wait_until
from tunneltop.api.auth import Credentials
from tunneltop.cli import run_once
from tunneltop.demo.cfapi import FakeCloudflare, Fault
from tunneltop.demo.server import LoopbackServer
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID
from tunneltop.poll.target import Target
from tunneltop.stream import watch_stream
from tunneltop.ui.app import TunneltopApp

QUIT_KEYS = {"q", "ctrl+q", "ctrl+c"}
# Keys any terminal user may hit, on top of every binding: navigation, editing, function keys, letters, digits.
EXTRA_KEYS = [
    *"abcdefghijklmnoprstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "up",
    "down",
    "left",
    "right",
    "home",
    "end",
    "pageup",
    "pagedown",
    "enter",
    "escape",
    "tab",
    "shift+tab",
    "space",
    "backspace",
    "delete",
    "insert",
    "f1",
    "f5",
    "f10",
    "ctrl+a",
    "ctrl+d",
    "ctrl+e",
    "ctrl+k",
    "ctrl+l",
    "ctrl+r",
    "ctrl+s",
    "ctrl+u",
    "ctrl+w",
    "ctrl+x",
    "ctrl+z",
]


@pytest.fixture
def fake() -> FakeCloudflare:
    return make_fake()


def binding_keys(node: DOMNode) -> set[str]:
    """Every key bound on ``node`` (its class's bindings and those it inherits)."""
    return {key for key in node._bindings.key_to_bindings}


def bound_keys(app: App) -> dict[DOMNode, set[str]]:
    """Each node of the current screen (and the app and the screen) with the keys bound on it."""
    nodes: list[DOMNode] = [app, app.screen, *app.screen.walk_children()]
    return {node: keys for node in nodes if (keys := binding_keys(node) - QUIT_KEYS)}


async def press_every_binding(pilot: Pilot, app: TunneltopApp, *, app_keys: bool = True) -> set[str]:
    """Focus each shown widget that has bindings and press every one of them; then the app's and the screen's."""
    pressed: set[str] = set()
    targets = [(n, k) for n, k in bound_keys(app).items() if n is not app and n is not app.screen]
    if app_keys:
        targets += [(app.screen, binding_keys(app.screen) - QUIT_KEYS), (app, binding_keys(app) - QUIT_KEYS)]
    for node, keys in targets:
        if node is not app and node is not app.screen:
            if not (node.is_mounted and getattr(node, "can_focus", False) and node.display and node.visible):
                continue
            node.focus()
            await pilot.pause()
        for key in sorted(keys):
            await pilot.press(key)
            pressed.add(key)
            while app.screen is not app.main_screen:  # a binding opened a screen: press its keys, then close it
                pressed |= await press_screen(pilot, app)
            if isinstance(app.focused, Input) and node is app:  # "/" opened the filter: the next key is a binding
                await pilot.press("escape")
    return pressed


async def press_screen(pilot: Pilot, app: TunneltopApp) -> set[str]:
    """Every key bound on the modal on top (help, colo picker, account picker), then close it."""
    screen = app.screen
    keys: set[str] = set()
    for node in [screen, *screen.walk_children()]:
        keys |= binding_keys(node)
    closing = {"escape", "q", "question_mark", "enter"}
    for key in sorted(keys - QUIT_KEYS - closing):
        await pilot.press(key)
    if app.screen is screen:
        await pilot.press("escape")
    if app.screen is screen:
        screen.dismiss(None)
        await pilot.pause()
    return keys | {"escape"}


async def run_every_palette_command(pilot: Pilot, app: TunneltopApp) -> list[str]:
    """What choosing each of tunneltop's commands in the command palette does (its callback), and the palette
    itself driven by keys. (Textual's own commands, Theme, Keys, Maximize, Screenshot, never reach our code.)"""
    textual_own = len(list(App.get_system_commands(app, app.screen)))
    titles = []
    for command in list(app.get_system_commands(app.screen))[textual_own:]:
        titles.append(command.title)
        command.callback()
        await pilot.pause()
        while app.screen is not app.main_screen:
            await press_screen(pilot, app)
    await pilot.press("ctrl+p", *"refresh", "enter")
    await pilot.pause()
    if isinstance(app.screen, CommandPalette):
        await pilot.press("escape")
    return titles


async def press_at_random(pilot: Pilot, app: TunneltopApp, seed: int, count: int) -> None:
    everything = set(EXTRA_KEYS)
    for keys in bound_keys(app).values():
        everything |= keys
    alphabet = sorted(everything - QUIT_KEYS - {"ctrl+p"})  # the palette could be typed into "quit"
    rng = random.Random(seed)
    await pilot.press(*(rng.choice(alphabet) for _ in range(count)))


@pytest.mark.usefixtures("quick_keys")
@pytest.mark.slow  # a real process end to end: run with pytest -m slow (CI does)
async def test_whatever_is_pressed_only_get_is_sent(
    fake: FakeCloudflare, server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The account overview, then drilled into a tunnel (the monitor view): every binding of every widget and
    screen, every palette command, and random keys, with some polls failing in between."""
    monkeypatch.chdir(tmp_path)  # Textual's own screenshot command writes to the working directory
    # Polls go on while keys are pressed (and keys change the interval, pause, refresh...).
    app = live_app(
        server.base_url, refs=None, interval=0.3, clock=MovingClock(), export_dir=tmp_path, budget_per_minute=1200
    )
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.snapshot is not None)  # the first poll
        pressed = await press_every_binding(pilot, app)
        app.paused = False
        titles = await run_every_palette_command(pilot, app)
        assert {"Export", "Screenshot", "Refresh now", "Pause / resume", "Choose account"} <= set(titles)
        app.paused = False
        fake.inject(Fault.error(503), times=3)
        await press_at_random(pilot, app, seed=20261128, count=25)
        await pilot.press("escape", "escape", "escape")
        app.drill_into(WEB)
        await pilot.pause()
        app.table.focus()
        pressed |= await press_every_binding(pilot, app, app_keys=False)  # the monitor's widgets
        app.paused = False
        fake.inject(Fault.html_page(502), times=3)
        await press_at_random(pilot, app, seed=28112026, count=25)
        assert app.is_running
        assert {"question_mark", "slash", "c", "s", "S", "r", "p", "e", "x", "w", "v", "j", "k", "g", "G"} <= pressed
        await pilot.press("escape", "escape", "escape")
        app.paused = False
        polls = app.poll_count + app.failures
        await pilot.press("r")
        await wait_until(pilot, lambda: app.poll_count + app.failures > polls)  # polling goes on
        await pilot.press("q")
    assert not app.is_running
    assert any(p.suffix == ".svg" for p in tmp_path.iterdir()) and any(p.suffix == ".json" for p in tmp_path.iterdir())
    assert len(fake.requests) > 10
    assert fake.non_get_requests == []
    assert {r.method for r in fake.requests} == {"GET"}


class UntilConnectionsRead(io.StringIO):
    """The stream's output. The stream flushes once per poll: after the poll that has, since the baseline, read
    the connections of every running tunnel, it sets ``stop`` (polls read what the budget's tokens allow, so the
    connections come over several polls)."""

    def __init__(self, fake: FakeCloudflare, stop: asyncio.Event) -> None:
        super().__init__()
        self.fake, self.stop = fake, stop
        self.running = {
            t["id"] for t in fake.sim.iter_tunnels() if t["status"] != "inactive" and t.get("deleted_at") is None
        }

    def flush(self) -> None:
        super().flush()
        read = {r.path.split("/")[-2] for r in self.fake.requests if r.path.endswith("/connections")}
        if '"kind": "baseline"' in self.getvalue() and read >= self.running:
            self.stop.set()


async def test_the_stream_and_once_send_only_get(fake: FakeCloudflare, server: LoopbackServer) -> None:
    # The budget travels on the target: the most allowed (120 per minute), two requests a second.
    target = Target(server.base_url, Credentials.token(TOKEN), DEMO_ACCOUNT_ID, [], budget_per_minute=120)
    stop = asyncio.Event()
    out = UntilConnectionsRead(fake, stop)
    fake.inject(Fault.error(400, 9999), times=2)  # failed polls, then recovery (a 400 is not retried)

    assert await watch_stream(target, 0.05, out, stop=stop) == 0  # it stops on its own output (above)
    kinds = [json.loads(line)["kind"] for line in out.getvalue().splitlines()]
    assert kinds[:3] == ["poll_failed", "poll_recovered", "baseline"]
    streamed = len(fake.requests)
    assert streamed > 5
    assert fake.non_get_requests == []

    once = Target(server.base_url, Credentials.token(TOKEN), DEMO_ACCOUNT_ID, ["web-prod", "home-lab"])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        # 0, or 1 for a warning: the stand-in's cloudflared versions are more than a year old by now.
        assert await run_once(once, "json") in (0, 1)
    assert [t["name"] for t in json.loads(printed.getvalue())["tunnels"]] == ["web-prod", "home-lab"]
    assert len(fake.requests) > streamed
    assert fake.non_get_requests == []
    assert {r.method for r in fake.requests} == {"GET"}
    # The blast radius reads were among them, GET too: a tunnel's configuration and its private routes.
    read = {r.path.rsplit("/", 2)[-1] for r in fake.requests}
    assert {"configurations", "routes"} <= read


def test_the_code_has_no_verb_but_get() -> None:
    """No call in tunneltop (the demo's fake server aside) names an HTTP verb other than GET or a raw send."""
    verbs = {"post", "put", "patch", "delete", "head", "options", "request", "send", "stream", "build_request"}
    root = Path(__file__).resolve().parent.parent / "tunneltop"
    found = []
    for path in sorted(root.rglob("*.py")):
        if "demo" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in verbs:
                found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)[:60]}")
    assert found == []
    client = (root / "api" / "client.py").read_text(encoding="utf-8")
    assert client.count("self._http.get(") == 1
