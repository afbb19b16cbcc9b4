"""Hostile data in every field the API sends: markup, control characters, OSC/CSI escape sequences, bidi overrides,
very long strings and wide characters. Each must be rendered literally and harmlessly, in the tree, the table, the
detail pane, the event log, the notifications, the header and status line, the SVG screenshot, the exports, the
headless table, the JSON and the JSON Lines stream. ``test_terminal_bytes_hold_no_injected_sequence`` runs the real
program on a real pseudo-terminal and reads the very bytes it sends to the terminal.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import sys
from pathlib import Path

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import OptionList

from tests.support.live import HOME, SIZE, TOKEN, MovingClock, live_app, make_fake, record_notifications, wait_until
from tests.support.terminal import drain, kill, read_to_close, read_until, spawn, wait_exit
from tunneltop.changes.events import EventKind
from tunneltop.cli import main
from tunneltop.demo.cfapi import FakeCloudflare, Fault
from tunneltop.demo.server import LoopbackServer
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID
from tunneltop.poll.target import Target
from tunneltop.stream import watch_stream
from tunneltop.ui.client_tree import ClientTree
from tunneltop.ui.detail import DetailPane
from tunneltop.ui.event_log import EventLogView
from tunneltop.ui.overview_table import OverviewTable
from tunneltop.ui.screens import ColoPicker

OSC_TITLE = "\x1b]0;pwned\x07"
CSI_CLEAR = "\x1b[2Jzap"
OSC_LINK = "\x1b]8;;http://evil.example/\x1b\\"
C1_CSI = "\x9b31m"
BIDI = "\u202e\u2066\u200f"
MARKUP = "[bold]b[/][@click=app.quit]q[/][/]"
CONTROL = "\x00\x08\r\n\t\x7f"
WIDE = "漢字👍"
# What must never reach a screen or a terminal: ESC, BEL, C1, bidi controls, NUL, BS, CR, DEL (and, on one line, LF).
FORBIDDEN = ("\x1b", "\x07", "\x9b", "\u202e", "\u2066", "\u200f", "\x00", "\x08", "\r", "\x7f")

HOSTILE_TUNNEL = "0badbeef-0bad-4bad-8bad-0badbeef0bad"
KEY = "k1aaaaaa-0000-4000-8000-000000000001"


def hostile(tag: str) -> str:
    """A string that tries everything, starting with ``tag`` so a test can tell where it shows."""
    return f"{tag}{MARKUP}{OSC_TITLE}{CSI_CLEAR}{OSC_LINK}{C1_CSI}{BIDI}{CONTROL}{WIDE}"


def assert_harmless(text: str, *, one_line: bool = False) -> None:
    for ch in FORBIDDEN + (("\n",) if one_line else ()):
        assert ch not in text, f"{ch!r} reached the screen in {text[:120]!r}"


def _conn(n: int, **fields: object) -> dict[str, object]:
    conn: dict[str, object] = {
        "id": f"c{n}aaaaaa-0000-4000-8000-00000000000{n}",
        "uuid": f"c{n}aaaaaa-0000-4000-8000-00000000000{n}",
        "client_id": KEY,
        "client_version": hostile(f"CV{n}"),
        "colo_name": hostile(f"COLO{n}"),
        "origin_ip": hostile(f"IP{n}"),
        "opened_at": "2026-11-28T11:00:00Z",
        "is_pending_reconnect": False,
    }
    conn.update(fields)
    return conn


def hostile_clients() -> list[dict[str, object]]:
    """Every field of a connector and its connections hostile, very long or wide; an id with slashes and escapes."""
    return [
        {
            "id": KEY,
            "arch": hostile("ARCH"),
            "version": hostile("VER"),
            "run_at": "2026-11-28T10:00:00Z",
            "config_version": 3,
            "features": [hostile("FEAT"), "F" * 10_000],
            hostile("EXTRAKEY"): hostile("EXTRAVALUE"),
            "conns": [
                _conn(1),
                _conn(2, is_pending_reconnect=True, colo_name="漢" * 3_000),
                _conn(3, origin_ip="W" * 20_000, client_version="V" * 5_000),
                _conn(4, id=hostile("CONNID") + "/../x"),
            ],
        },
        {
            "id": "k2/" + hostile("CONNECTOR"),
            "arch": "linux_amd64",
            "version": None,
            "features": [],
            "conns": [_conn(5, colo_name="[/]", origin_ip="[link=http://evil.example]x[/link]", client_version=None)],
        },
    ]


def hostile_fake() -> FakeCloudflare:
    fake = make_fake()
    fake.sim.add_tunnel(hostile("TUNNEL"), status="healthy", clients=hostile_clients(), tunnel_id=HOSTILE_TUNNEL)
    fake.accounts = [{"id": DEMO_ACCOUNT_ID, "name": hostile("ACCOUNT")}]
    return fake


@pytest.fixture
def fake() -> FakeCloudflare:
    return hostile_fake()


def _plain(renderable: object) -> str:
    from tests.support.ui import plain

    return plain(renderable)  # type: ignore[arg-type]


def _tree_labels(tree: ClientTree) -> list[str]:
    labels: list[str] = []
    stack = list(tree.root.children)
    while stack:
        node = stack.pop()
        labels.append(node.label.plain)
        stack.extend(node.children)
    return labels


async def _change_everything(pilot: Pilot, app, fake: FakeCloudflare) -> None:
    """A second poll in which hostile values change, so the event log has hostile events to describe."""
    clients = hostile_clients()
    clients[0]["version"] = hostile("VER2")
    clients[0]["features"] = [hostile("FEAT2")]
    clients[0][hostile("EXTRAKEY")] = hostile("EXTRAVALUE2")
    clients[0]["conns"][0]["colo_name"] = hostile("COLO1B")  # type: ignore[index]
    fake.sim.set_clients(HOSTILE_TUNNEL, clients)
    await wait_until(pilot, lambda: any(e.kind is EventKind.CONN_CHANGED for e in app.session.log))  # events


async def test_every_view_renders_hostile_data_literally_and_harmlessly(
    fake: FakeCloudflare, server: LoopbackServer, tmp_path: Path
) -> None:
    app = live_app(server.base_url, refs=[HOSTILE_TUNNEL, HOME], export_dir=tmp_path)
    app.target.account_id = None  # the account (and its hostile name) comes from /accounts
    notes = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.poll_count >= 1)  # the first poll
        await _change_everything(pilot, app, fake)
        # An API error message, then a per-tunnel error message (kept for the rest of the test), both hostile.
        fake.inject(Fault.error(500, 10001, hostile("APIERR")), times=10**6)
        await wait_until(pilot, lambda: app.last_error is not None)  # the API error
        assert "APIERR[bold]b[/][@click=app.quit]" in app.status.message  # literal, markup and all
        fake.clear_faults()
        await wait_until(pilot, lambda: app.last_error is None)  # recovery
        fake.inject(Fault.error(400, 9999, hostile("TUNNELERR")), path_contains=f"{HOME}/connections", times=10**6)
        # This very error: home-lab may still carry APIERR from before the recovery until its connections are
        # fetched again (the budget paces the fetches; the recovery may come from another request of the cycle).
        await wait_until(
            pilot,
            lambda: any("TUNNELERR" in (t.error or "") for t in app.snapshot.tunnels if t.tunnel.id == HOME),
        )  # the tunnel error
        assert app.is_running
        app.interval = 60  # no more polls: a busy app makes every simulated key press wait for it

        # Header (account name from the API) and status line.
        header = app.header.render()
        assert isinstance(header, Text) and "ACCOUNT[bold]b[/]" in header.plain
        assert_harmless(header.plain, one_line=True)
        assert_harmless(app.status.render().plain, one_line=True)

        # Notifications: the error, as text, never as markup.
        errors = [text for title, text, _ in notes if title == "Cloudflare API"]
        assert any("APIERR[bold]" in text for text in errors)
        assert all(markup is False for _, _, markup in notes)
        for _, text, _ in notes:
            assert_harmless(text, one_line=True)

        # Tree: every node.
        labels = _tree_labels(app.client_tree)
        assert any("TUNNEL[bold]b[/][@click=app.quit]" in label for label in labels)
        assert any("COLO1B[" in label for label in labels)
        for label in labels:
            assert_harmless(label, one_line=True)
            assert len(label) < 200

        # Table: every cell of every row.
        table = app.table
        hostile_rows = [k for k, r in table.rows_by_key.items() if r.tunnel.id == HOSTILE_TUNNEL]
        assert len(hostile_rows) == 5
        for key in table.rows_by_key:
            for column in table.columns_shown:
                text = table.get_cell(key, column).plain
                assert_harmless(text, one_line=True)
                assert len(text) <= 45
        colos = {table.get_cell(k, "colo").plain for k in hostile_rows}
        assert "[/]" in colos and any(c.startswith("COLO1B[bold") for c in colos)
        # Sorting on every column, both ways (hostile, very long and missing versions among the values).
        rows = set(table.rows_by_key)
        sorted_on = set()
        for _ in table.columns_shown:
            await pilot.press("s")
            assert app.is_running, f"sorting on {table.sort_column} crashed the app"
            sorted_on.add(table.sort_column)
            assert set(table.rows_by_key) == rows
        await pilot.press("S")  # and the last one reversed
        assert sorted_on == set(table.columns_shown) and app.is_running

        # Detail pane: each hostile connection, and the tunnels' and connectors' tree nodes.
        pane = app.main_screen.query_one(DetailPane)
        shown: list[str] = []
        table.focus()
        for key in hostile_rows:
            table.select_key(key)
            await pilot.pause()
            shown.append(_plain(pane.shown))
        app.client_tree.focus()
        for node_id in [n for n in app.client_tree._by_id if n.startswith((HOSTILE_TUNNEL, HOME)) and n.count("/") < 2]:
            app.client_tree.select_ref(node_id)
            await pilot.pause()
            shown.append(_plain(pane.shown))
        for text in shown:
            assert_harmless(text)
        details = "\n".join(shown)
        for tag in ("FEAT2[bold]", "ARCH[bold]", "VER2[bold]", "IP1[bold]", "CV1[bold]", "TUNNELERR[bold]"):
            assert tag in details, f"{tag} is not shown literally"

        # Event log: every event, as described and as drawn.
        await pilot.press("e")
        view = app.main_screen.query_one(EventLogView)
        assert view.display and view.row_count >= 5
        kinds = {e.kind for e in view.events_shown}
        assert {EventKind.CONN_CHANGED, EventKind.FEATURES_CHANGED, EventKind.POLL_FAILED} <= kinds
        for row in range(view.row_count):
            for column in range(3):
                assert_harmless(view.get_cell_at((row, column)).plain, one_line=True)
        described = " ".join(e.describe() for e in app.session.log)
        assert "APIERR[bold]" in described and "EXTRAKEY[bold]" in described

        # Clicking on hostile text never runs [@click=...]; the colo picker lists hostile colos as text.
        await pilot.click("#table", offset=(20, 2))
        await pilot.click("#tree", offset=(6, 1))
        await pilot.press("c")
        assert isinstance(app.screen, ColoPicker)
        prompts = [str(o.prompt) for o in app.screen.query_one(OptionList).options]
        assert any("COLO1B[bold" in p for p in prompts)
        for prompt in prompts:
            assert_harmless(prompt, one_line=True)
        await pilot.press("escape")
        assert app.is_running

        # The SVG screenshot.
        assert_harmless(app.export_screenshot())

        # The export: JSON keeps every hostile string exactly, escaped to ASCII.
        await pilot.press("x")
        await pilot.pause()
        raw = next(tmp_path.glob("tunneltop-*.json")).read_text()
        assert raw.isascii()
        assert hostile("COLO1B") in {c["colo"] for c in json.loads(raw)["connections"]}
        assert app.is_running


async def test_the_account_overview_renders_hostile_data_and_sorts_on_every_column(
    fake: FakeCloudflare, server: LoopbackServer
) -> None:
    clients = fake.sim.clients(HOME)
    clients[0]["version"] = "dev"  # against the hostile tunnel's versions and tunnels without connectors
    fake.sim.set_clients(HOME, clients)
    app = live_app(server.base_url, refs=None, interval=1.0, clock=MovingClock())
    async with app.run_test(size=SIZE) as pilot:
        overview = app.main_screen.query_one(OverviewTable)
        await wait_until(
            pilot,
            lambda: HOSTILE_TUNNEL in overview.summaries and overview.summaries[HOSTILE_TUNNEL].connectors,
        )  # the hostile tunnel's connections
        texts = [overview.get_cell_at((r, c)).plain for r in range(overview.row_count) for c in range(8)]
        assert any(t.startswith("TUNNEL[bold]b[/][@click=app.quit]") for t in texts)
        for text in texts:
            assert_harmless(text, one_line=True)
        sorted_on = set()
        for _ in range(len(overview.columns_shown)):
            await pilot.press("s", "S")
            assert app.is_running, f"sorting the overview on {overview.sort_column} crashed the app"
            sorted_on.add(overview.sort_column)
        assert sorted_on == set(overview.columns_shown)
        assert_harmless(app.export_screenshot())


# -- the colo picker ---------------------------------------------------------------------------------------------


# Colos that look the same once cleaned or shortened for display, or that read as filter syntax.
PICKER_COLOS = (
    "ABCDEFGHIJKLMNOP-1",
    "ABCDEFGHIJKLMNOP-2",
    "x\x1b",
    "x\x07",
    "DFW state:bogus",
    "DFW",
    "DFW x",
    "[/]",
)


async def test_colo_picker_survives_colos_that_look_alike_or_like_filters(
    fake: FakeCloudflare, server: LoopbackServer
) -> None:
    clients = fake.sim.clients(HOME)
    second = dict(clients[0], id="k2aaaaaa-0000-4000-8000-000000000002")
    second["conns"] = [dict(c, id=c["id"][:-1] + "f") for c in clients[0]["conns"]]
    clients.append(second)
    conns = [conn for client in clients for conn in client["conns"]]
    for conn, colo in zip(conns, PICKER_COLOS, strict=True):
        conn["colo_name"] = colo
    fake.sim.set_clients(HOME, clients)
    app = live_app(server.base_url, refs=[HOME], interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.poll_count >= 1)  # the first poll
        listed = sorted(PICKER_COLOS)
        for chosen in ("x\x07", "ABCDEFGHIJKLMNOP-2", "DFW state:bogus", "DFW x"):
            index = listed.index(chosen)
            await pilot.press("c")
            assert isinstance(app.screen, ColoPicker)
            app.screen.query_one(OptionList).highlighted = index
            await pilot.press("enter")
            assert app.is_running
            assert not isinstance(app.screen, ColoPicker)
            shown = {r.conn.colo_name for r in app.table.rows_by_key.values()}
            assert shown == {chosen}, f"choosing {chosen!r} showed {shown}"
            await pilot.press("escape")
            assert len(app.table.rows_by_key) == len(PICKER_COLOS)


# -- headless ----------------------------------------------------------------------------------------------------


@pytest.fixture
def once_env(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> LoopbackServer:
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", server.base_url)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    return server


def test_once_table_replaces_every_control_character(fake, once_env, capsys) -> None:
    fake.inject(Fault.error(400, 9999, hostile("TUNNELERR")), path_contains=f"{HOME}/connections", times=10**6)
    code = main(["--once", HOSTILE_TUNNEL, HOME])
    out, err = capsys.readouterr()
    assert code == 3  # one tunnel's state is unknown
    for line in out.splitlines():
        assert_harmless(line, one_line=True)
    assert_harmless(err)
    assert "TUNNEL[bold]b[/][@click=app.quit]" in out and "TUNNELERR[bold]" in out and "VER[bold]" in out
    assert "\N{REPLACEMENT CHARACTER}" in out
    assert max(len(line) for line in out.splitlines()) < 1000, "very long values are cut"


def test_once_json_keeps_every_hostile_string_exactly_and_in_ascii(fake, once_env, capsys) -> None:
    main(["--once", "-o", "json"])
    out = capsys.readouterr().out
    assert out.isascii()
    doc = json.loads(out)
    tunnel = next(t for t in doc["tunnels"] if t["id"] == HOSTILE_TUNNEL)
    assert tunnel["name"] == hostile("TUNNEL")
    assert tunnel["clients"] == [_api_shaped(c) for c in hostile_clients()]


def _api_shaped(client: dict[str, object]) -> dict[str, object]:
    """A raw connector as tunneltop's JSON spells it back (times normalised to RFC 3339 with Z)."""
    out = dict(client)
    out["conns"] = [dict(c) for c in client["conns"]]  # type: ignore[union-attr]
    for conn in out["conns"]:  # type: ignore[union-attr]
        conn["opened_at"] = "2026-11-28T11:00:00Z"
    out.setdefault("run_at", None)
    out.setdefault("config_version", None)
    return out


async def test_jsonl_stream_is_ascii_and_exact(fake: FakeCloudflare, server: LoopbackServer) -> None:
    from tunneltop.api.auth import Credentials

    target = Target(server.base_url, Credentials.token(TOKEN), DEMO_ACCOUNT_ID, [HOSTILE_TUNNEL])
    out = io.StringIO()
    stop = asyncio.Event()

    async def stop_after_the_change() -> None:
        # On the change itself: the first poll may write more than its baseline (the findings it raised).
        while '"conn_changed"' not in out.getvalue():
            await asyncio.sleep(0.01)
        stop.set()

    async def change_then_stop() -> None:
        while not out.getvalue():
            await asyncio.sleep(0.01)
        clients = hostile_clients()
        clients[0]["conns"][0]["colo_name"] = hostile("COLO1B")  # type: ignore[index]
        fake.sim.set_clients(HOSTILE_TUNNEL, clients)
        await stop_after_the_change()

    # The most --budget allows (120 a minute, Cloudflare's share with it): the one named tunnel's list entry and
    # connections are read about once a second, whatever the 50 ms interval asks for.
    await asyncio.gather(watch_stream(target, 0.05, out, stop=stop, budget_per_minute=120), change_then_stop())
    text = out.getvalue()
    assert text.isascii()
    documents = [json.loads(line) for line in text.splitlines()]
    changed = [d for d in documents if d.get("kind") == "conn_changed"]
    assert changed and changed[0]["after"]["colo_name"] == hostile("COLO1B")
    assert_harmless(changed[0]["message"], one_line=True)


# -- the bytes a real terminal receives ----------------------------------------------------------------------------

# Sequences the data carries that must never reach the terminal as such.
INJECTED_BYTES = (
    b"\x1b]0;pwned",
    b"pwned\x07",
    b"\x1b[2Jzap",
    b"\x1b]8;;http://evil",
    "\x9b".encode(),
    "\u202e".encode(),
    "\u2066".encode(),
    "\u200f".encode(),
    b"\x00",
    b"\x08",
    b"\x7f",
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses a Linux pty")
@pytest.mark.slow  # a real process end to end: run with pytest -m slow (CI does)
def test_terminal_bytes_hold_no_injected_sequence(fake: FakeCloudflare, server: LoopbackServer, tmp_path: Path) -> None:
    """The real program, on a real pty, against the loopback server with hostile data; a hostile API error too."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    fake.inject(Fault.error(400, 9999, hostile("TUNNELERR")), path_contains=f"{HOME}/connections", times=10**6)
    pid, master = spawn(
        [sys.executable, "-m", "tunneltop", "--token-file", str(token_file), "-n", "1", HOSTILE_TUNNEL, HOME],
        cols=200,
        rows=50,
        extra_env={"CLOUDFLARE_BASE_URL": server.base_url},
    )
    try:
        screen = read_until(master, b"TUNNEL[bold]b[/]")
        fake.clear_faults()
        # The next poll fails (a 400 is not retried, so it shows at once): the status line and a notification.
        fake.inject(Fault.error(400, 9999, hostile("APIERR")), times=10**6)
        screen += read_until(master, b"APIERR")
        for key in (b"e", b"\t", b"j", b"j", b"\r", b"c", b"\x1b"):  # event log, tree, a connector, colo picker
            os.write(master, key)
            screen += drain(master, 0.15)
        os.write(master, b"q")
        screen += read_to_close(master)  # until it exits and the terminal closes
        _, code, _ = wait_exit(pid)
    finally:
        kill(pid)
        os.close(master)
    assert code == 0, screen[-2000:]
    # The hostile text did reach the screen, as text: markup literal, control characters replaced.
    replaced = "\N{REPLACEMENT CHARACTER}".encode()
    assert b"TUNNEL[bold]b[/][@click=app.quit]" in screen
    assert b"APIERR" in screen
    assert replaced + b"]0;pwned" + replaced in screen
    for injected in INJECTED_BYTES:
        assert injected not in screen, f"{injected!r} reached the terminal"
    assert re.search(rb"\xc2[\x80-\x9f]", screen) is None, "a C1 control reached the terminal"
    assert TOKEN.encode() not in screen
    # Every OSC the program sent is its own (Textual's pointer shape), none from the data.
    assert set(re.findall(rb"\x1b\](\d+);", screen)) <= {b"22"}
