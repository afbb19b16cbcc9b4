"""The key bar: the keys that work where the focus is, as Textual's Footer shows them, drawn as one line."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widget import Widget

from tunneltop.ui.key_bar import KeyBar


class Pane(Widget, can_focus=True):
    BINDINGS = [Binding("z", "app.note('z')", "Zoom")]


class KeysApp(App[None]):
    AUTO_FOCUS = None  # the pane is focused by the tests
    BINDINGS = [
        Binding("a", "note('a')", "Alpha"),
        Binding("b", "note('b')", "Beta", show=False),
        Binding("c", "note('c')", "Gamma"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.notes: list[str] = []

    def compose(self) -> ComposeResult:
        yield Pane()
        yield KeyBar()

    def action_note(self, what: str) -> None:
        self.notes.append(what)


def line(app: KeysApp) -> str:
    return app.query_one(KeyBar).render().plain.rstrip()


async def test_the_bar_names_the_shown_keys_of_the_focus_and_follows_it() -> None:
    app = KeysApp()
    async with app.run_test(size=(80, 5)) as pilot:
        await pilot.pause()
        assert line(app).startswith(" a Alpha  c Gamma ") and "Beta" not in line(app)
        assert line(app).endswith("▏^p palette"), "the command palette's key on the right, as the footer has it"
        app.query_one(Pane).focus()
        await pilot.pause()
        assert " z Zoom " in line(app)
        app.set_focus(None)
        await pilot.pause()
        assert "Zoom" not in line(app)
        assert not app.query_one(KeyBar).children, "one widget: a change of keys repaints a line, mounts nothing"


async def test_a_click_on_a_key_presses_it_and_keys_cut_off_leave_the_palette_key_shown() -> None:
    app = KeysApp()
    async with app.run_test(size=(80, 5)) as pilot:
        await pilot.pause()
        text = line(app)
        await pilot.click(KeyBar, offset=(text.index("Gamma"), 0))
        await pilot.click(KeyBar, offset=(text.index(" a ") + 1, 0))
        await pilot.click(KeyBar, offset=(text.index("Gamma") + 20, 0))  # between the keys and the palette key
        assert app.notes == ["c", "a"]
    app = KeysApp()
    async with app.run_test(size=(20, 5)) as pilot:
        await pilot.pause()
        assert line(app) == " a Alpha▏^p palette"


async def test_the_key_under_the_mouse_is_highlighted_until_it_leaves() -> None:
    app = KeysApp()
    async with app.run_test(size=(80, 5)) as pilot:
        await pilot.pause()
        bar = app.query_one(KeyBar)
        hover = bar.get_component_rich_style("key-bar--hover").bgcolor

        def lit() -> set[str]:
            segments = bar.render().render(app.console)
            return {text.strip() for text, style, _ in segments if style is not None and style.bgcolor == hover}

        assert hover is not None and lit() == set()
        await pilot.hover(KeyBar, offset=(line(app).index("Gamma"), 0))
        assert lit() == {"c", "Gamma"}
        await pilot.hover(KeyBar, offset=(line(app).index("palette"), 0))
        assert lit() == {"^p", "palette"}
        await pilot.hover(Pane, offset=(0, 0))
        assert lit() == set()
