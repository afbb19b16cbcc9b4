"""Key bindings have ids, the config file's [keys] remaps them, and the help screen and palette show the user's."""

from __future__ import annotations

import pytest
from textual.events import Key

from tests.support.ui import make_app, wait_for_poll
from tunneltop.ui.commands import COMMANDS, GLYPHS, KeymapError, keymap
from tunneltop.ui.screens import HelpScreen


def test_keymap_takes_known_ids_and_refuses_unknown_ones() -> None:
    assert keymap({"refresh": "f5", "quit": ["q", "ctrl+q"]}) == {"refresh": "f5", "quit": "q,ctrl+q"}
    with pytest.raises(KeymapError, match="unknown command 'refresh_now'"):
        keymap({"refresh_now": "f5"})
    with pytest.raises(KeymapError, match="needs a key"):
        keymap({"refresh": ""})


def test_every_command_has_a_unique_id_and_help() -> None:
    ids = [c.id for c in COMMANDS]
    assert len(ids) == len(set(ids))
    assert all(c.help for c in COMMANDS)


async def test_a_remapped_key_runs_its_command_and_the_old_one_does_not() -> None:
    app, _ = make_app(keymap={"refresh": "f5", "events": "l"})
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_poll(pilot, app)
        await pilot.press("e")
        await pilot.pause()
        events = app.main_screen.query_one("#events")
        assert not events.display, "e no longer toggles the event log"
        await pilot.press("l")
        await pilot.pause()
        assert events.display, "l does"
        assert app.keys_for()["refresh"] == "f5"


async def test_help_shows_the_users_keys_and_explains_every_glyph() -> None:
    app, _ = make_app(keymap={"refresh": "f5"})
    async with app.run_test(size=(140, 60)) as pilot:
        await wait_for_poll(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        rows = dict((desc, keys) for keys, desc in app.help_rows())
        refresh = next(c.help for c in COMMANDS if c.id == "refresh")
        assert rows[refresh] == "f5"
        keys = [k for k, _ in app.help_rows()]
        for glyph, _ in GLYPHS:
            assert glyph in keys, f"the help does not explain {glyph}"


async def test_the_palette_names_the_users_key() -> None:
    app, _ = make_app(keymap={"refresh": "f5"})
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_poll(pilot, app)
        helps = {c.title: c.help for c in app.get_system_commands(app.screen)}
        assert "(f5)" in helps["Refresh now"]


def test_the_readme_lists_every_command_id() -> None:
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    line = next(line for line in readme.splitlines() if line.startswith("Command ids:"))
    listed = readme[readme.index(line) :].split("(`tunneltop/ui/commands.py`)")[0]
    for command in COMMANDS:
        assert f"`{command.id}`" in listed, f"README does not list {command.id}"


@pytest.mark.parametrize("start_view", ["overview", "monitor"])
async def test_keys_typed_straight_after_slash_go_into_the_filter_box(start_view: str) -> None:
    # A fast typist, a paste or a slow link delivers "/web" in one read: the three letters are queued before "/"
    # is handled. They must reach the box, not run the view's own keys (w, e...).
    app, _ = make_app(start_view=start_view)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_poll(pilot, app)
        for key, char in (("slash", "/"), ("w", "w"), ("e", "e"), ("b", "b")):
            app.post_message(Key(key, char))  # as the terminal driver posts them, all at once
        await pilot.pause()
        assert app.filter_bar.box.value == "web"
        assert not app.main_screen.query_one("#events").display, "e went to the box, not to the event log"
        assert app.filter.text == "web"
