"""The event log pane: recent changes, newest first, coloured by severity, following the active filter."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from tunneltop.changes.events import ChangeEvent, Severity
from tunneltop.sanitize import clean

SEVERITY_STYLE = {
    Severity.INFO: ("·", "dim"),
    Severity.OK: ("✔", "green"),
    Severity.WARNING: ("▲", "yellow"),
    Severity.ERROR: ("✖", "bold red"),
}
# The pane shows the newest events that match; the full log (bounded, see EventLog) is kept for export.
SHOWN_EVENTS = 500


class EventLogView(DataTable):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", **kwargs)  # type: ignore[arg-type]
        self.events_shown: list[ChangeEvent] = []

    def on_mount(self) -> None:
        self.add_column(Text("Time"), key="time")
        self.add_column(Text(""), key="sev")
        self.add_column(Text("Event"), key="event")

    def show(self, events: Sequence[ChangeEvent]) -> None:
        """Newest first. Rebuilt when it changes: it holds at most SHOWN_EVENTS rows."""
        events = list(events[:SHOWN_EVENTS])
        if events == self.events_shown:
            return
        keep = self.events_shown[self.cursor_row] if 0 <= self.cursor_row < len(self.events_shown) else None
        self.clear()
        for index, event in enumerate(events):
            glyph, style = SEVERITY_STYLE[event.severity]
            self.add_row(
                Text(event.at.strftime("%H:%M:%S"), style="dim"),
                Text(glyph, style=style),
                Text(clean(event.describe(), 300), style=style if event.severity is not Severity.INFO else ""),
                key=str(index),
            )
        self.events_shown = events
        if keep is not None and keep in events:
            self.move_cursor(row=events.index(keep), animate=False)

    def selected_event(self) -> ChangeEvent | None:
        if 0 <= self.cursor_row < len(self.events_shown):
            return self.events_shown[self.cursor_row]
        return None
