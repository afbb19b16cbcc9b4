"""Every command of the live view, once: its id, its default keys, and how the footer, the help screen and the
command palette name it. Users remap keys by id in the config file's ``[keys]`` table (see ``keymap``); the help
screen and the palette then show the user's keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Command:
    id: str  # stable: the name users remap in [keys]
    keys: str  # Textual key names, comma-separated
    action: str
    label: str  # the footer's word ("" when not in the footer)
    help: str  # one line for the help screen
    palette: str = ""  # the command palette's title ("" when not offered there)
    priority: bool = False
    replay: bool = False  # only over a recording (tunneltop replay FILE): listed then, refused with a word otherwise
    replay_help: str = ""  # what it does instead in a replay

    def help_for(self, replaying: bool) -> str:
        return self.replay_help if replaying and self.replay_help else self.help


COMMANDS: tuple[Command, ...] = (
    Command("quit", "q", "quit", "Quit", "quit"),
    Command("quit_ctrl_c", "ctrl+c", "quit", "", "quit (as in htop, k9s and less)", priority=True),
    Command("help", "question_mark", "help", "Help", "this help: every key", "Help"),
    Command("filter", "slash", "filter", "Filter", "filter (free text, colo:DFW,LAX, state:pending, ! inverts)",
            "Filter"),
    Command("back", "escape", "go_back", "", "back: clear the filter, widen the tree selection, return to the overview",
            "Back"),
    Command("colos", "c", "colos", "Colos", "colo picker: filter to one colo", "Colo picker"),
    Command("sort", "s", "cycle_sort", "Sort", "cycle the sort column (or click a column header)", "Cycle sort"),
    Command("reverse_sort", "S", "reverse_sort", "", "reverse the sort", "Reverse sort"),
    Command("refresh", "r", "refresh", "Refresh", "refresh now (what is on screen first, within the budget)",
            "Refresh now"),
    Command("pause", "p", "pause", "Pause", "pause / resume polling (no requests while paused)", "Pause / resume",
            replay_help="play / pause the recording"),
    Command("slower", "plus,equals_sign", "slower", "", "poll less often", "Poll less often"),
    Command("faster", "minus", "faster", "", "poll more often", "Poll more often"),
    Command("events", "e", "toggle_events", "Events", "show / hide the event log (enter on an event selects it)",
            "Event log"),
    Command("account", "a", "choose_account", "", "choose the account (when the credentials see several)",
            "Choose account"),
    Command("views", "v", "toggle_view", "Views", "switch between the tunnel overview and every connection",
            "Overview / all connections"),
    Command("export", "x", "export", "Export", "export the view and the event log (JSON + CSV)", "Export"),
    Command("screenshot", "w", "screenshot_svg", "", "write a screenshot (SVG)", "Screenshot"),
    Command("replay_back", "left_square_bracket", "replay_back", "", "replay: one recorded poll back (pauses)",
            "Replay: step back", replay=True),
    Command("replay_forward", "right_square_bracket", "replay_forward", "",
            "replay: one recorded poll forward (pauses), with the events it gave", "Replay: step forward",
            replay=True),
    Command("replay_prev_event", "left_curly_bracket", "replay_prev_event", "",
            "replay: back to the last poll with an event of the chosen severity (see E)", "Replay: previous event",
            replay=True),
    Command("replay_next_event", "right_curly_bracket", "replay_next_event", "",
            "replay: on to the next poll with an event of the chosen severity (see E)", "Replay: next event",
            replay=True),
    Command("replay_severity", "E", "replay_severity", "",
            "replay: which events { } jump to: warning and worse (default), errors only, any event",
            "Replay: event severity to jump to", replay=True),
    Command("replay_time", "t", "replay_time", "",
            "replay: jump to a time (2026-12-01T03:12:00Z, or -15m from the end)", "Replay: jump to a time",
            replay=True),
)

# What { } jump to in a replay, in the order E cycles through them: the events' severities (changes/events.py).
JUMP_SEVERITIES: tuple[tuple[str, frozenset[str]], ...] = (
    ("warning and worse", frozenset({"warning", "error"})),
    ("errors only", frozenset({"error"})),
    ("any event", frozenset({"info", "ok", "warning", "error"})),
)

# Keys the widgets own (not remappable here), listed in the help after the commands.
WIDGET_KEYS: tuple[tuple[str, str], ...] = (
    ("tab / shift+tab", "move between tree, table and filter"),
    ("j k, ↑ ↓", "move the cursor"),
    ("g G, home end", "first / last"),
    ("enter", "drill in: from the overview into a tunnel; in the tree, narrow the table to a tunnel or connector"),
    ("ctrl+p", "command palette: every action by name"),
    ("mouse", "click rows, nodes and column headers"),
)

# What the glyphs on screen mean, for the help screen and the README.
GLYPHS: tuple[tuple[str, str], ...] = (
    ("●", "healthy / an active connection"),
    ("◐", "degraded: some connection failed or is pending"),
    ("○", "inactive: created, never run"),
    ("✖", "down, or a connection gone (dimmed row)"),
    ("⟳", "pending reconnect: the edge holds the connection for a reconnect; not active"),
    ("✚", "new since the last polls (marked for a while)"),
    ("↑", "active connections (in the tree: 8↑)"),
    ("⚠2", "two warning findings (Findings column, tree, header; the detail pane says why)"),
    ("✖1", "one critical finding"),
)


def bindings() -> list[Binding]:
    """The app's bindings, with ids so that ``App.set_keymap`` can remap them."""
    return [
        Binding(c.keys, c.action, c.label, show=bool(c.label), id=c.id, priority=c.priority) for c in COMMANDS
    ]


class KeymapError(ValueError):
    """A [keys] table that names an unknown command or gives no key."""


def keymap(table: Mapping[str, object]) -> dict[str, str]:
    """The ``[keys]`` table of the config file (command id → key or keys, e.g. ``refresh = "f5"`` or
    ``quit = "q,ctrl+q"``) as a Textual keymap; unknown ids and empty keys are a clear error."""
    known = {c.id for c in COMMANDS}
    out: dict[str, str] = {}
    for name, value in table.items():
        if name not in known:
            raise KeymapError(f"[keys]: unknown command {name!r} (known: {', '.join(sorted(known))})")
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        if not isinstance(value, str) or not value.strip():
            raise KeymapError(f"[keys]: {name} needs a key, like {name} = \"f5\"")
        out[name] = value.replace(" ", "")
    return out


def shown_keys(keys: str) -> str:
    """Textual key names as a person reads them (question_mark → ?, slash → /)."""
    names = {
        "question_mark": "?",
        "slash": "/",
        "escape": "esc",
        "plus": "+",
        "equals_sign": "=",
        "minus": "-",
        "left_square_bracket": "[",
        "right_square_bracket": "]",
        "left_curly_bracket": "{",
        "right_curly_bracket": "}",
    }
    return " / ".join(names.get(k, k) for k in keys.split(","))


def shown(command: Command, replaying: bool) -> bool:
    """Whether the help and the palette offer ``command`` now: the replay's keys only in a replay."""
    return replaying or not command.replay


def help_rows(keys_for: Mapping[str, str], *, replaying: bool = False) -> list[tuple[str, str]]:
    """Every key with what it does: the commands with the user's keys (``keys_for``: id → keys; the replay's only
    when ``replaying``), then the widgets' own keys, then the glyphs."""
    rows = [(shown_keys(keys_for.get(c.id, c.keys)), c.help_for(replaying)) for c in COMMANDS if shown(c, replaying)]
    rows += list(WIDGET_KEYS)
    rows += [(glyph, meaning) for glyph, meaning in GLYPHS]
    return rows
