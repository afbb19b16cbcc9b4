"""The event log pane: recent changes, newest first, coloured by severity, following the active filter."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tunneltop.changes.events import ChangeEvent, Severity
from tunneltop.sanitize import clean
from tunneltop.ui.virtual_table import Cell, VirtualTable
from tunneltop.views.history import SHOWN_EVENTS

SEVERITY_STYLE = {
    Severity.INFO: ("·", "dim"),
    Severity.OK: ("✔", "green"),
    Severity.WARNING: ("▲", "yellow"),
    Severity.ERROR: ("✖", "bold red"),
}


class EventLogView(VirtualTable[ChangeEvent]):
    """The newest events that match, newest first: a virtual table, so a poll's new events are added and the oldest
    dropped as a diff. It was a DataTable cleared and filled again with its 500 rows on every poll that brought an
    event (~100 ms at 10,000 connections), and showing it laid the whole screen out three times in a row."""

    HEADINGS = {"time": "Time", "sev": "", "event": "Event"}
    # The log's own order (see natural_key), under a column of its own that is not shown: no heading claims a sort.
    SORTS = {"logged": lambda event: 0}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(columns=list(self.HEADINGS), sort_column="logged", **kwargs)
        self.events_shown: list[ChangeEvent] = []
        self._seq: dict[int, int] = {}  # id() of each event shown -> its number in the log (EventLog.numbered)

    def key_of(self, row: ChangeEvent) -> str:
        return str(self._seq[id(row)])

    def natural_key(self, row: ChangeEvent) -> Any:
        return -self._seq[id(row)]  # newest first

    def cells(self, row: ChangeEvent, mark: Any) -> tuple[Cell, ...]:
        glyph, style = SEVERITY_STYLE[row.severity]
        return (
            (row.at.strftime("%H:%M:%S"), "dim"),
            (glyph, style),
            (clean(row.describe(), 300), style if row.severity is not Severity.INFO else ""),
        )

    def timed_text(self, row: ChangeEvent, column: str, now: datetime) -> str:
        raise AssertionError("the event log has no column that follows the clock")

    def show_events(self, numbered: Sequence[tuple[int, ChangeEvent]], now: datetime) -> None:
        """Newest first, each with its number in the log; at most SHOWN_EVENTS of them. Rows are keyed by the event
        object: one logged twice (no source does that today) is shown once, where it came last."""
        seq: dict[int, int] = {}
        events = [event for number, event in numbered[:SHOWN_EVENTS] if seq.setdefault(id(event), number) == number]
        if events == self.events_shown:
            return
        self._seq.update(seq)  # the rows leaving keep their numbers while the diff reads them
        self.show(events, now)
        self._seq = seq
        self.events_shown = events

    def selected_event(self) -> ChangeEvent | None:
        key = self.cursor_key
        return self.rows_by_key.get(key) if key is not None else None
