"""The live view's panes and lines read as they should (issue 12): the detail pane can be reached and scrolled, health
words stay readable under NO_COLOR, and data that is no longer fresh never looks fresh.

Each test drives the real app through Pilot (``make_app``), or the widget itself where that is the honest level, and
reads what the screen shows (``screen_lines``: the app's own screenshot) rather than widget internals.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.color import Color
from rich.segment import Segment
from rich.text import Text
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget

import tunneltop.ui.app
from tests.support.ui import WallClock, make_app, plain, wait_for_poll
from tunneltop.demo.cfapi import Fault
from tunneltop.model.findings import Finding, Severity
from tunneltop.model.health import Health
from tunneltop.model.records import Connection, Connector, Tunnel
from tunneltop.ui.app import TunneltopApp
from tunneltop.ui.commands import GLYPHS
from tunneltop.ui.detail import DetailPane, connector_detail
from tunneltop.ui.overview_table import OverviewTable
from tunneltop.ui.status import StatusLine

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CSS = str(Path(tunneltop.ui.app.__file__).with_name("tunneltop.tcss"))  # the app's one stylesheet


def screen_lines(app: App[object]) -> list[str]:
    """The screen as the user sees it, one string per line (from the app's own SVG screenshot, where each run of
    text sits at x = column x 12.2 and runs of blanks are left out)."""
    return svg_lines(app.export_screenshot())


def svg_lines(svg: str) -> list[str]:
    lines: dict[int, dict[int, str]] = {}
    for x, line, text in re.findall(r'<text[^>]* x="([\d.]+)"[^>]*clip-path="url\(#[^)]*-line-(\d+)\)">([^<]*)<', svg):
        cells = lines.setdefault(int(line), {})
        for offset, char in enumerate(html.unescape(text).replace("\xa0", " ")):
            cells[round(float(x) / 12.2) + offset] = char
    return [
        "".join(cells.get(column, " ") for column in range(max(cells, default=-1) + 1)).rstrip()
        for cells in (lines.get(n, {}) for n in range(max(lines, default=-1) + 1))
    ]


def on_screen(app: App[object], text: str) -> bool:
    return any(text in line for line in screen_lines(app))


def screen_text(app: App[object]) -> str:
    return "\n".join(screen_lines(app))


def row(app: App[object], label: str) -> str:
    """The screen line that holds ``label`` ("" when none does)."""
    return next((line for line in screen_lines(app) if label in line), "")


# -- 1. the detail pane: focusable and scrollable ---------------------------------------------------------------


class PaneApp(App[None]):
    """The detail pane alone, styled by the app's stylesheet (12 rows high, as on a wide terminal)."""

    CSS_PATH = CSS

    def compose(self) -> ComposeResult:
        yield DetailPane(id="detail")


def connector_with_features() -> tuple[Tunnel, Connector]:
    conn = Connection(id="c1", colo_name="DFW", origin_ip="203.0.113.10", opened_at=NOW)
    connector = Connector(
        id="k1", version="2025.1.0", arch="linux_amd64", run_at=NOW, conns=[conn],
        features=["ha-origin", "serialized_headers", "allow_remote_config"],
    )
    return Tunnel(id="t1", name="web"), connector


async def test_a_connectors_last_row_can_be_reached_by_tab_and_scrolled_into_view() -> None:
    tunnel, connector = connector_with_features()
    app = PaneApp()
    async with app.run_test(size=(100, 20)) as pilot:
        pane = app.query_one(DetailPane)
        pane.show(connector_detail(tunnel, connector, NOW))
        await pilot.pause()
        # The title and 11 rows in a pane of 12 lines with a rule on top: features, the 11th row, is below the fold.
        assert on_screen(app, "pending") and not on_screen(app, "allow_remote_config")
        await pilot.press("tab")
        assert app.focused is pane
        await pilot.press("end")
        await pilot.pause()
        assert on_screen(app, "features") and on_screen(app, "allow_remote_config")
        await pilot.press("g")  # and back, as in the tables
        await pilot.pause()
        assert on_screen(app, "connector id") and not on_screen(app, "allow_remote_config")
        # The same subject, refreshed, stays where the reader is; another subject starts from its first row.
        await pilot.press("end")
        pane.show(connector_detail(tunnel, connector, NOW.replace(minute=1)))
        await pilot.pause()
        assert on_screen(app, "allow_remote_config") and "1m00s" in row(app, "uptime")
        pane.show(connector_detail(tunnel, connector.model_copy(update={"id": "k2"}), NOW))
        await pilot.pause()
        assert on_screen(app, "Connector k2") and not on_screen(app, "allow_remote_config")


async def test_the_detail_pane_shows_subjects_of_any_height_with_no_layout_and_every_row_reachable() -> None:
    # A layout is of the whole screen, and the pane changes on every move of the table's cursor. A body of its own
    # height in a scrolling container made a subject of another height (past the pane's) three layouts in a row.
    tunnel, connector = connector_with_features()
    app = PaneApp()
    async with app.run_test(size=(100, 20)) as pilot:
        pane = app.query_one(DetailPane)
        layouts: list[object] = []
        app.screen.screen_layout_refresh_signal.subscribe(app, layouts.append)
        pane.show(connector_detail(tunnel, connector, NOW))
        await pilot.pause()
        room = pane.scrollable_content_region.height
        assert room > 5 and pane.virtual_size.height == 12  # the title and 11 rows
        layouts.clear()  # the app's first
        pane.show(connector_detail(tunnel, connector.model_copy(update={"id": "k2"}), NOW))  # as many rows
        await pilot.pause()
        assert on_screen(app, "Connector k2")
        why = tuple(
            Finding("old_release", Severity.WARNING, f"connector k3 runs an old one ({n})", "upgrade it", "k3")
            for n in range(3)
        )
        pane.show(connector_detail(tunnel, connector.model_copy(update={"id": "k3"}), NOW, findings=why))
        await pilot.pause()
        assert pane.virtual_size.height > 12  # its findings add rows, and every row can be reached
        assert on_screen(app, "old one (0)") and not on_screen(app, "allow_remote_config")
        assert layouts == []
        await pilot.press("tab", "end")
        await pilot.pause()
        assert on_screen(app, "allow_remote_config") and not on_screen(app, "old one (0)")
        layouts.clear()  # the focus moving in restyles the pane's rule: that layout is Textual's, once per focus
        for lines in (3, 5, room, 2, room + 3, room + 5, 4, room - 1):
            pane.show(Text("\n".join(f"row {n}" for n in range(lines))))
            await pilot.pause()
            assert pane.virtual_size.height == lines and on_screen(app, "row 0"), lines
            await pilot.press("end")
            await pilot.pause()
            assert on_screen(app, f"row {lines - 1}"), lines
            await pilot.press("home")  # untitled text is one subject to the pane: it would stay where it was read
        assert layouts == []


async def test_on_a_small_terminal_tab_reaches_the_detail_pane_and_every_row_can_be_read() -> None:
    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_poll(pilot, app)
        pane = app.main_screen.query_one(DetailPane)
        table = app.table
        key = table.cursor_key
        # 80x24 keeps its height budget: the table keeps room for rows, the pane shows what fits.
        assert table.size.height >= 10 and pane.size.height <= 7
        assert on_screen(app, "connection id") and not on_screen(app, "client version")
        await pilot.press("tab")
        assert app.focused is pane
        assert table.cursor_key == key and f"Connection {key.rsplit('/', 1)[-1]}" in screen_text(app)
        await pilot.press("end")
        await pilot.pause()
        assert on_screen(app, "client version") and on_screen(app, "tunnel ")
        await pilot.press("tab")  # and on, out of it
        assert app.focused is not pane




async def test_from_the_tree_the_detail_pane_keeps_describing_the_connector_while_it_is_read() -> None:
    app, fake = make_app(refs=["web-prod"])
    async with app.run_test(size=(140, 36)) as pilot:
        await wait_for_poll(pilot, app)
        tree = app.client_tree
        tree.focus()
        tunnel_id = app.snapshot.tunnels[0].tunnel.id
        connector = fake.sim.clients(tunnel_id)[0]["id"]
        tree.move_cursor(tree.node_for(f"{tunnel_id}/{connector}"))
        await pilot.pause()
        assert f"Connector {connector}" in screen_text(app) and not on_screen(app, "features")
        await pilot.press("shift+tab")  # from the tree back to the pane (tab goes on to the table first)
        pane = app.main_screen.query_one(DetailPane)
        assert app.focused is pane
        await pilot.press("end")
        await pilot.pause()
        assert on_screen(app, "features") and f"Connector {connector}" in plain(pane.shown)
        polls = app.poll_count
        await pilot.press("r")  # a poll while the pane is read: it stays on the connector, and where it was
        await wait_for_poll(pilot, app, count=polls + 1)
        assert f"Connector {connector}" in plain(pane.shown) and on_screen(app, "features")


# -- 2. NO_COLOR: the health words stay readable -----------------------------------------------------------------


def _luminance(color: Color) -> float:
    """WCAG relative luminance of a colour as drawn."""
    r, g, b = color.get_truecolor()

    def channel(value: int) -> float:
        v = value / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def drawn_word(widget: Widget, word: str) -> Segment:
    """The segment that draws ``word`` in ``widget``, as it reaches the terminal (after Textual's NO_COLOR filter)."""
    lines = widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))
    found = [segment for line in lines for segment in line if word in segment.text]
    assert found, f"{word!r} is not drawn in {widget!r}"
    return found[0]


def contrast(segment: Segment) -> float:
    """The WCAG contrast ratio of the segment's text against its background (reverse video swaps them)."""
    style = segment.style
    assert style is not None and style.color is not None and style.bgcolor is not None
    ratio = (_luminance(style.color) + 0.05) / (_luminance(style.bgcolor) + 0.05)
    return max(ratio, 1 / ratio)


async def test_under_no_color_down_is_as_readable_as_any_word_on_screen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app, _ = make_app(start_view=None)  # the overview: the demo account has a tunnel down
    async with app.run_test(size=(140, 36)) as pilot:
        await wait_for_poll(pilot, app)
        assert app.no_color
        table = app.main_screen.query_one(OverviewTable)
        down = next(key for key, s in table.summaries.items() if s.health is Health.DOWN)
        assert table.cursor_key == down  # worst first
        await pilot.press("j")  # off the cursor: as the rows read
        await pilot.pause()
        words = {"header": drawn_word(app.header, "✖ down"), "overview": drawn_word(table, "✖ down")}
        await pilot.press("k", "enter")  # into the tunnel that is down: its detail says so
        await pilot.pause()
        assert "health" in plain(app.main_screen.query_one(DetailPane).shown)
        words["detail"] = drawn_word(app.main_screen.query_one(DetailPane), "✖ down")
        # WCAG asks 4.5:1 of body text; ordinary text here is about 14:1, red turned grey was 1.7:1.
        assert {name: round(contrast(word), 1) >= 4.5 for name, word in words.items()} == dict.fromkeys(words, True)
        assert all(word.style is not None and word.style.bold for word in words.values())


async def test_with_colour_down_stays_red() -> None:
    app, _ = make_app(start_view=None)
    async with app.run_test(size=(140, 36)) as pilot:
        await wait_for_poll(pilot, app)
        assert not app.no_color
        table = app.main_screen.query_one(OverviewTable)
        await pilot.press("j")
        await pilot.pause()
        for widget in (app.header, table):
            style = drawn_word(widget, "✖ down").style
            assert style is not None and style.color is not None and not style.reverse
            r, g, b = style.color.get_truecolor()
            assert r > 2 * max(g, b), (widget, style)


class LineApp(App[None]):
    CSS_PATH = CSS

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")


async def test_an_error_on_the_status_line_stands_out_in_colour_and_without(monkeypatch: pytest.MonkeyPatch) -> None:
    for no_color in (False, True):
        if no_color:
            monkeypatch.setenv("NO_COLOR", "1")
        app = LineApp()
        async with app.run_test(size=(80, 3)) as pilot:
            line = app.query_one(StatusLine)
            line.message = "connecting…"
            await pilot.pause()
            calm = drawn_word(line, "connecting")
            line.message, line.error = "Cloudflare answered HTTP 502", True
            await pilot.pause()
            error = drawn_word(line, "HTTP 502")
            assert error.style is not None and calm.style is not None
            # Its own background, unlike any other line, and the text readable on it.
            assert error.style.bgcolor != calm.style.bgcolor and contrast(error) >= 4.5, (no_color, error)
            if not no_color:
                r, g, b = error.style.bgcolor.get_truecolor()
                assert r > max(g, b), error  # red


# -- 3. stale data never looks fresh -----------------------------------------------------------------------------


async def tick(pilot: Pilot, app: TunneltopApp) -> None:
    """The app's once-a-second tick, run now (what its timer runs, without waiting a second of real time for it):
    the header, the status line and the tables' ages follow the clock."""
    app._tick()
    await pilot.pause()


def status_text(app: TunneltopApp) -> str:
    return app.status.render().plain


async def test_when_no_new_data_comes_after_a_recovery_the_status_line_says_the_data_is_stale() -> None:
    clock = WallClock()
    # Every tunnel named, at a 30 s interval: the budget lets r's poll reach them all, and all failing fails it.
    app, fake = make_app(interval=30.0, clock=clock)
    async with app.run_test(size=(140, 36)) as pilot:
        await wait_for_poll(pilot, app)
        fake.inject(Fault.html_page(502), times=100)
        await pilot.press("r")
        await wait_for_poll(pilot, app, count=2)
        fake.clear_faults()
        await pilot.press("r")
        await wait_for_poll(pilot, app, count=3)
        assert status_text(app).startswith("recovered: updated 12:00:00Z") and not app.header.stale
        fake.inject(Fault.hang(600), times=100)  # any poll from now on gets no answer
        # 75 s pass with no poll outcome, as while the next poll hangs (its timer is 30 s of real time away, and
        # the app cannot tell a hung poll from one not yet due): stale after two intervals without new data.
        clock.now += timedelta(seconds=75)
        await tick(pilot, app)
        assert app.header.stale and not app.status.error and app.poll_count + app.failures == 3
        assert status_text(app) == "stale: nothing new read for 1m15s (since 12:00:00Z)"  # not "recovered" any more
        assert on_screen(app, "stale: nothing new read for 1m15s")


async def test_paused_and_stale_the_status_line_says_both_and_later_news_follows() -> None:
    clock = WallClock()
    app, _ = make_app(start_view=None, clock=clock)
    async with app.run_test(size=(140, 36)) as pilot:
        await wait_for_poll(pilot, app)
        await pilot.press("p")
        assert status_text(app).startswith("paused")
        clock.now += timedelta(seconds=36)
        await tick(pilot, app)
        assert status_text(app) == "stale: nothing new read for 36s (since 12:00:00Z) — polling paused"
        await pilot.press("plus")  # news since the data went stale is kept, after what matters more
        assert status_text(app).endswith("— polling paused · polling every 10 s")
        await pilot.press("p")
        await wait_for_poll(pilot, app, count=2)
        assert not app.header.stale and status_text(app).startswith("updated 12:00:36Z")


async def test_a_rows_data_age_counts_from_the_poll_that_read_it() -> None:
    clock = WallClock()
    app, _ = make_app(start_view=None, clock=clock)
    async with app.run_test(size=(140, 36)) as pilot:
        await wait_for_poll(pilot, app)
        table = app.main_screen.query_one(OverviewTable)
        read = [key for key, s in table.summaries.items() if s.fetched_at is not None]
        assert read and {table.get_cell(key, "age").plain for key in read} == {"0s"}
        await pilot.press("p")
        clock.now += timedelta(seconds=36)
        await pilot.press("s")  # the overview drawn again, 36 s after its poll
        assert app.header.stale
        assert {table.get_cell(key, "age").plain for key in read} == {"36s"}


async def test_while_no_new_data_comes_every_rows_data_age_grows_with_the_clock() -> None:
    clock = WallClock()
    app, fake = make_app(start_view=None, clock=clock)
    async with app.run_test(size=(140, 36)) as pilot:
        await wait_for_poll(pilot, app)
        table = app.main_screen.query_one(OverviewTable)
        read = [key for key, s in table.summaries.items() if s.fetched_at is not None]
        fake.inject(Fault.hang(600), times=100)  # any poll from now on gets no answer
        clock.now += timedelta(seconds=36)  # and none comes: only the app's own tick runs
        await tick(pilot, app)
        assert app.header.stale and "data 36s old" in app.header.render().plain
        assert {table.get_cell(key, "age").plain for key in read} == {"36s"}
        assert on_screen(app, "36s")


# -- 4. the README explains the glyphs as the help screen does --------------------------------------------------


def test_the_readmes_live_view_explains_every_glyph_the_help_does() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    live = readme[readme.index("## The live view") :]
    live = live[: live.index("\n## ")]
    assert "### What the screen shows" in live
    legend = live[live.index("### What the screen shows") :]
    rows = [line for line in legend.splitlines() if line.startswith("| `")]
    assert rows == [f"| `{glyph}` | {meaning} |" for glyph, meaning in GLYPHS]
