"""The live view's commands that act rather than move: refresh, pause, the interval, the event log, the account,
export and screenshot, a replay's steps and jumps, help and the command palette (the keys are in
``ui/commands.py``).

A mixin of ``TunneltopApp``: Textual looks actions up on the app."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import SystemCommand
from textual.screen import Screen

from tunneltop.export import export_view
from tunneltop.record.command import parse_time
from tunneltop.record.schema import RecordingError
from tunneltop.record.source import ReplaySource
from tunneltop.ui.commands import COMMANDS, JUMP_SEVERITIES, help_rows, shown, shown_keys
from tunneltop.ui.event_log import EventLogView
from tunneltop.ui.messages import AccountsToChoose
from tunneltop.ui.screens import AccountPicker, HelpScreen, TimePrompt
from tunneltop.views.session import Session

INTERVAL_STEPS = (1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0)


class Actions:
    """What the keys and the palette do besides moving around (see the module's docstring)."""

    def action_refresh(self) -> None:
        """What is on screen goes to the front of the next poll, which goes as soon as the budget has a token:
        a reorder, never a bypass (sixty presses send no more than the budget)."""
        wait = self.polling.refresh()
        later = f"refreshing when the request budget allows ({wait:.0f} s)"
        self.status.message = "refreshing…" if wait <= 0 else later

    def action_pause(self) -> None:
        replay = self.replay
        if replay is None:
            self.paused = not self.paused
            return
        # A replay sends nothing: p plays or pauses the recording (polling goes on, showing where it is).
        restart = replay.at_end  # playing from the end starts over: a jump to the first poll
        if replay.playing and not restart:
            replay.pause()
        else:
            replay.play()
        self._replay_moved("playing" if replay.playing else "paused", jump=restart and replay.playing)

    def _step_interval(self, direction: int) -> None:
        steps = INTERVAL_STEPS
        if direction > 0:
            new = next((s for s in steps if s > self.interval), steps[-1])
        else:
            new = next((s for s in reversed(steps) if s < self.interval), steps[0])
        self.interval = new
        self.status.message = f"polling every {new:g} s"

    def action_slower(self) -> None:
        self._step_interval(+1)

    def action_faster(self) -> None:
        self._step_interval(-1)

    def action_toggle_events(self) -> None:
        view = self.main_screen.query_one(EventLogView)
        view.display = not view.display
        self.render_events()
        if view.display:
            view.focus()
        elif self.focused is None or self.focused is view:
            self.focus_view()

    def on_accounts_to_choose(self, message: AccountsToChoose) -> None:
        """A poll found several accounts and none was named (a message handler, found on the app's classes)."""
        if self.closing:
            return
        # Polling stops here: nothing sensible can be fetched until an account is chosen.
        self._accounts = message.accounts
        self.status.error = False
        self.status.message = f"{len(message.accounts)} accounts visible: choose one (a)"
        self.action_choose_account()
        self.polling.outcome_applied()  # not re-armed: the account chosen starts the next poll

    def action_choose_account(self) -> None:
        if not self._accounts or not self.polling.replaceable:
            self.notify("the account was given or is the only one visible", markup=False)
            return

        def chosen(account_id: str | None) -> None:
            if not account_id:
                self.status.message = "no account chosen: press a to choose one, or start with --account ID"
                return
            self.target.account_id = account_id
            self.polling.forget_source()  # a new account: a new engine, on the same client and request budget
            self.snapshot = None
            self.session = Session(
                ghost_seconds=self.session.ghost_for.total_seconds(), mark_seconds=self.session.mark_for.total_seconds()
            )
            name = next((n for i, n in self._accounts if i == account_id), None)
            self.header.account = name or account_id
            self.polling.schedule(0)

        self.push_screen(AccountPicker(self._accounts), chosen)

    def action_export(self) -> None:
        now = self.clock()
        try:
            paths = export_view(
                self.export_dir,
                now,
                self.visible_rows(),
                self.session.log.filter(self.event_matches),
                filter_text=self.filter.text,
                account_id=self.snapshot.account_id if self.snapshot else self.target.account_id,
                demo=self.target.demo,
            )
        except OSError as exc:
            self.notify(f"export failed: {exc}", severity="error", markup=False)
            return
        self.notify("exported " + ", ".join(str(p) for p in paths), title="Export", markup=False, timeout=10)

    def action_screenshot_svg(self) -> None:
        name = f"tunneltop-{self.clock().strftime('%Y%m%d-%H%M%S')}.svg"
        try:
            self.export_dir.mkdir(parents=True, exist_ok=True)  # as the export (x) does
            path = self.save_screenshot(filename=name, path=str(self.export_dir))
        except OSError as exc:
            self.notify(f"screenshot failed: {exc}", severity="error", markup=False)
            return
        self.notify(f"screenshot written to {path}", title="Screenshot", markup=False)

    # -- a replay (tunneltop replay FILE) --------------------------------------------------------------------------

    @property
    def replay(self) -> ReplaySource | None:
        """The recording shown, when this view replays one."""
        source = self.polling.source
        return source if isinstance(source, ReplaySource) else None

    def _replaying(self) -> ReplaySource | None:
        """The recording, or None after saying that the key is for a replay."""
        replay = self.replay
        if replay is None:
            self.notify("that key moves through a recording: open one with tunneltop replay FILE", markup=False)
        return replay

    def _replay_moved(self, what: str, *, jump: bool) -> None:
        """Show where the replay went at once: the next poll has nothing to wait for. After a ``jump`` (anything but
        one poll forward) the view starts afresh, as at a first poll: the source gives no events for it, and the
        marks and ghost rows on screen belong to the moment left."""
        if jump:
            self.session.marks.clear()
            self.session.ghosts.clear()
        self.polling.refresh()
        self.status.message = f"replay: {what}"

    def _replay_step(self, polls: int) -> None:
        replay = self._replaying()
        if replay is not None:
            replay.step(polls)
            self._replay_moved("one poll forward" if polls > 0 else "one poll back", jump=polls != 1)

    def action_replay_back(self) -> None:
        self._replay_step(-1)

    def action_replay_forward(self) -> None:
        self._replay_step(+1)

    def _replay_event(self, forward: bool) -> None:
        replay = self._replaying()
        if replay is None:
            return
        name, severities = JUMP_SEVERITIES[self.jump_severity]
        if replay.jump_to_event(severities, forward=forward):
            self._replay_moved(f"{'next' if forward else 'previous'} poll with an event ({name})", jump=True)
        else:
            where = "after" if forward else "before"
            self.notify(f"no event ({name}) {where} this poll; E chooses another severity", markup=False)

    def action_replay_prev_event(self) -> None:
        self._replay_event(False)

    def action_replay_next_event(self) -> None:
        self._replay_event(True)

    def action_replay_severity(self) -> None:
        if self._replaying() is None:
            return
        self.jump_severity = (self.jump_severity + 1) % len(JUMP_SEVERITIES)
        self.status.message = f"replay: {{ }} jump to events: {JUMP_SEVERITIES[self.jump_severity][0]}"

    def action_replay_time(self) -> None:
        replay = self._replaying()
        if replay is None:
            return
        recording = replay.recording
        covers = f"the recording covers {recording.polls[0].at} to {recording.polls[-1].at}"

        def chosen(text: str | None) -> None:
            if not text or not text.strip():
                return
            try:
                replay.jump_to(parse_time(text, recording))
            except RecordingError as exc:  # not a time, or one the recording does not cover: said, nothing moves
                self.notify(str(exc), title="Jump to a time", severity="error", markup=False)
                return
            self._replay_moved(f"jumped to {text.strip()}", jump=True)

        self.push_screen(TimePrompt(covers), chosen)

    # -- help and the palette -----------------------------------------------------------------------------------

    def keys_for(self) -> dict[str, str]:
        """Each command's keys as this user has them (the defaults, then the config file's [keys])."""
        return {c.id: self._user_keymap.get(c.id, c.keys) for c in COMMANDS}

    def help_rows(self) -> list[tuple[str, str]]:
        return help_rows(self.keys_for(), replaying=self.replay is not None)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.help_rows()))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)  # type: ignore[misc]
        keys = self.keys_for()
        replaying = self.replay is not None
        for command in COMMANDS:
            if command.palette and shown(command, replaying):
                action = getattr(self, f"action_{command.action}")
                help_text = command.help_for(replaying)
                yield SystemCommand(command.palette, f"{help_text} ({shown_keys(keys[command.id])})", action)
        yield SystemCommand("Clear filter", "Show every connection (esc)", self.clear_filter)
