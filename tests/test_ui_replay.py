"""The replay's keys in the live view (``tunneltop replay FILE``), driven with Pilot: ``[``/``]`` step a poll,
``{``/``}`` jump to the previous/next poll with an event (``E`` chooses the severity), ``t`` jumps to a time, ``p``
plays and pauses; the header says where the replay is; ghost rows and marks come from the events stepped through,
at the recording's time; no HTTP client is made. Outside a replay the keys are refused with a word and not listed.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tests.support.live import record_notifications
from tests.support.record import record_polls
from tests.support.ui import make_app, wait_for_poll
from tunneltop.model.snapshot import Snapshot
from tunneltop.record.reader import Recording
from tunneltop.record.source import ReplaySource
from tunneltop.ui.app import TunneltopApp
from tunneltop.ui.commands import COMMANDS
from tunneltop.ui.screens import TimePrompt


async def _shown(pilot: Pilot, app: TunneltopApp, snapshot: Snapshot) -> None:
    """Until the view shows ``snapshot`` (woken by each outcome the app applies; no deadline of its own)."""

    def showing() -> bool:
        return app.snapshot is not None and app.snapshot.to_json() == snapshot.to_json()

    await app.polling.wait_until(showing)
    await pilot.pause()


async def _type(pilot: Pilot, text: str) -> None:
    """Into the time prompt, and enter (a long text set at once: a key press each is slow on a loaded machine)."""
    prompt = pilot.app.screen
    assert isinstance(prompt, TimePrompt)
    prompt.query_one(Input).value = text
    await pilot.press("enter")


def no_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, making an HTTP client fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the replay view made an HTTP client")

    monkeypatch.setattr(httpx.AsyncClient, "__init__", refuse)


async def _replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Snapshot], ReplaySource]:
    """A 12-poll recording, paused at its start; from here on no HTTP client may be made."""
    path = tmp_path / "rec.db"
    seen = await record_polls(path, 12)
    no_http(monkeypatch)
    return seen, ReplaySource(Recording(path), playing=False)


def _app(source: ReplaySource) -> TunneltopApp:
    """As ``tunneltop replay FILE`` makes it: the recording's clock (ages, marks, ghosts as they were)."""
    return TunneltopApp(source.target(), source=source, interval=0.5, start_view="monitor", clock=source.now)


async def test_keys_step_and_jump_to_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen, source = await _replay(tmp_path, monkeypatch)
    recording = source.recording
    assert [recording.event_poll(i, {"warning", "error"}, forward=True) for i in (0, 1, 4, 5)] == [4, 4, 5, None]
    app = _app(source)
    notes = record_notifications(app)
    async with app.run_test(size=(130, 40)) as pilot:
        await _shown(pilot, app, seen[0])
        assert app.header.source_badge == f"REPLAY {seen[0].to_json()['fetched_at']} poll 1 of 12 paused"

        await pilot.press("right_square_bracket")  # ]: one poll on, with the events it gave live
        await _shown(pilot, app, seen[1])
        assert "poll 2 of 12 paused" in app.header.source_badge
        assert app.header.now == seen[1].fetched_at, "the view's clock is the recording's"
        assert app.session.marks, "the connection opened at poll 1 is marked new, as it was live"

        await pilot.press("right_curly_bracket")  # }: the next poll with a warning or worse
        await _shown(pilot, app, seen[4])
        await pilot.press("right_curly_bracket")
        await _shown(pilot, app, seen[5])
        await pilot.press("right_curly_bracket")  # none after 5: said, and the replay stays
        await pilot.pause()
        assert any("no event (warning and worse) after this poll" in text for _, text, _ in notes)
        assert source.position == 5
        await pilot.press("left_curly_bracket")  # {: back to 4
        await _shown(pilot, app, seen[4])
        await pilot.press("E", "E")  # warning and worse -> errors only -> any event
        await pilot.press("left_curly_bracket")  # any event: the info at poll 1
        await _shown(pilot, app, seen[1])
        await pilot.press("right_square_bracket", "right_square_bracket")  # ] ]: two polls on
        await _shown(pilot, app, seen[3])
        await pilot.press("right_square_bracket")  # 3 -> 4: the connector that left leaves its ghosts, at 4's time
        await _shown(pilot, app, seen[4])
        assert app.session.ghosts
        assert {row.gone_at for row in app.session.ghosts.values()} == {seen[4].fetched_at}
        await pilot.press("left_square_bracket")  # back to 3: a moment before they went, so no ghosts
        await _shown(pilot, app, seen[3])
        assert not app.session.ghosts and not app.session.marks


async def test_keys_jump_to_a_time_play_and_pause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen, source = await _replay(tmp_path, monkeypatch)
    app = _app(source)
    notes = record_notifications(app)
    async with app.run_test(size=(130, 40)) as pilot:
        await _shown(pilot, app, seen[0])
        await pilot.press("t")  # a time: the last poll at or before it
        await pilot.pause()
        await _type(pilot, "2026-11-28T12:00:17Z")
        await _shown(pilot, app, seen[3])
        await pilot.press("t")
        await pilot.pause()
        await _type(pilot, "-10s")  # from the end (12:00:55): 12:00:45
        await _shown(pilot, app, seen[9])
        await pilot.press("t")
        await pilot.pause()
        await _type(pilot, "2026-11-29T00:00:00Z")  # outside: said, nothing moves
        await pilot.press("t")
        await pilot.pause()
        await _type(pilot, "yesterday")  # not a time: said, nothing moves
        await pilot.pause()
        said = [text for title, text, _ in notes if title == "Jump to a time"]
        assert len(said) == 2 and "outside the recording" in said[0] and "not a time" in said[1]
        assert source.position == 9 and app.screen is app.main_screen

        await pilot.press("p")  # play: one recorded poll per interval, to the end (where the badge says paused)
        assert source.playing
        await _shown(pilot, app, seen[11])
        assert source.at_end
        await pilot.press("p")  # from the end, playing starts over
        await _shown(pilot, app, seen[0])
        assert source.playing and "paused" not in app.header.source_badge
        await pilot.press("p")
        await pilot.pause()
        assert not source.playing and not app.paused


async def test_the_replay_keys_are_listed_in_a_replay_only_and_refused_elsewhere(tmp_path: Path) -> None:
    replay_ids = {c.id for c in COMMANDS if c.replay}
    assert replay_ids == {
        "replay_back",
        "replay_forward",
        "replay_prev_event",
        "replay_next_event",
        "replay_severity",
        "replay_time",
    }
    helps = {c.help for c in COMMANDS if c.replay}
    app, _ = make_app()
    notes = record_notifications(app)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for_poll(pilot, app)
        assert not helps & {text for _, text in app.help_rows()}
        assert not [c for c in app.get_system_commands(app.screen) if c.title.startswith("Replay")]
        await pilot.press("right_square_bracket", "t")
        await pilot.pause()
        assert len([text for _, text, _ in notes if "tunneltop replay FILE" in text]) == 2
        assert not isinstance(app.screen, TimePrompt)

    path = tmp_path / "rec.db"
    await record_polls(path, 2)
    source = ReplaySource(Recording(path), playing=False)
    replay = TunneltopApp(source.target(), source=source, interval=1.0, keymap={"replay_forward": "n"})
    async with replay.run_test(size=(140, 40)) as pilot:
        await wait_for_poll(pilot, replay)
        rows = dict((text, keys) for keys, text in replay.help_rows())
        assert helps <= set(rows)
        assert rows[next(c.help for c in COMMANDS if c.id == "replay_forward")] == "n"
        palette = {c.title for c in replay.get_system_commands(replay.screen)}
        assert "Replay: jump to a time" in palette
        await pilot.press("n")  # remapped
        await replay.polling.wait_until(lambda: source.position == 1)
