"""One change event: what changed, where, how grave, its line for people and its JSON for tools."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel

from tunneltop.changes.kinds import GROUP_KINDS, EventKind, Severity
from tunneltop.changes.messages import DESCRIBE, rfc3339
from tunneltop.model.findings import Finding
from tunneltop.model.snapshot import TunnelState
from tunneltop.sanitize import clean


def record_json(record: BaseModel, *, shell: bool = False) -> dict[str, Any]:
    # Every record here is a tunneltop.model.records one (a BaseModel with api_dict); BaseModel itself has none.
    data: dict[str, Any] = record.api_dict()  # type: ignore[attr-defined]
    if shell:
        data.pop("conns", None)
    return data


def _state_json(state: TunnelState) -> dict[str, Any]:
    return {
        "tunnel": state.tunnel.api_dict(),
        "health": state.health.value,
        "clients": None if state.connectors is None else [c.api_dict() for c in state.connectors],
        "error": state.error,
    }


def json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value.value if isinstance(value, Enum) else value
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, TunnelState):
        return _state_json(value)
    if isinstance(value, Finding):
        return value.to_json()
    if isinstance(value, BaseModel):
        return record_json(value)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)


def changed_fields(before: BaseModel, after: BaseModel, *, skip: Iterable[str] = ()) -> list[str]:
    """Names of the fields (declared or extra) whose API value differs, sorted."""
    # Records from tunneltop.model.records (BaseModel subclasses with api_dict); BaseModel itself has none.
    a, b = before.api_dict(), after.api_dict()  # type: ignore[attr-defined]
    ignored = set(skip)
    return sorted(k for k in a.keys() | b.keys() if k not in ignored and (k not in a or k not in b or a[k] != b[k]))


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change seen between two polls. ``before``/``after`` hold what the kind is about (see changes.events).

    ``parts``: for an event made of others (``colo_moved``, ``schema_drift``), the per-connection events it stands
    for: one line for people, every part in its JSON, and replayed part by part."""

    at: datetime
    kind: EventKind
    severity: Severity
    tunnel_id: str | None = None
    tunnel_name: str | None = None
    connector_id: str | None = None
    conn_id: str | None = None
    colo: str | None = None
    before: Any = None
    after: Any = None
    parts: tuple[ChangeEvent, ...] = ()
    # describe()'s line, made once: the event log draws up to 500 of them when it is shown (views.session's prepare
    # makes them on a worker thread, ahead of the screen's).
    _line: str | None = field(default=None, init=False, repr=False, compare=False)

    def describe(self) -> str:
        """A short human line, safe to print (API text is sanitised)."""
        line = self._line
        if line is None:
            text = DESCRIBE[self.kind](self)
            line = text if self.tunnel_id is None else f"{clean(self.tunnel_name or self.tunnel_id, 60)}: {text}"
            object.__setattr__(self, "_line", line)  # frozen: the line is derived from the fields, never changes
        return line

    def changed(self) -> list[str] | None:
        """The record fields that changed, for an event about one record's change; None for other events."""
        if not (isinstance(self.before, BaseModel) and isinstance(self.after, BaseModel)):
            return None
        return changed_fields(self.before, self.after, skip=("conns",))

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict: datetimes in RFC 3339 with Z, records as the API spells them."""
        shell = self.kind is EventKind.CONNECTOR_CHANGED
        before = record_json(self.before, shell=True) if shell else json_value(self.before)
        after = record_json(self.after, shell=True) if shell else json_value(self.after)
        document: dict[str, Any] = {
            "at": rfc3339(self.at),
            "kind": self.kind.value,
            "severity": self.severity.value,
            "tunnel_id": self.tunnel_id,
            "tunnel_name": self.tunnel_name,
            "connector_id": self.connector_id,
            "conn_id": self.conn_id,
            "colo": self.colo,
            "before": before,
            "after": after,
            "message": self.describe(),
        }
        changed = self.changed()
        if changed is not None:
            document["changed"] = changed
        if self.kind in GROUP_KINDS:
            document["parts"] = [p.to_json() for p in self.parts]
        return document


def flatten(events: Iterable[ChangeEvent]) -> Iterator[ChangeEvent]:
    """Each event, with one made of others (``colo_moved``, ``schema_drift``) given as its parts: for readers that
    act per connection (row marks, replay)."""
    for event in events:
        if event.parts:
            yield from flatten(event.parts)
        else:
            yield event


def poll_failed(at: datetime, message: str, *, failed_polls: int = 0, since: datetime | None = None) -> ChangeEvent:
    """A whole poll failed (credentials, network, rate limit): nothing is known about this moment. Said again while
    polls keep failing, with the streak so far in ``before`` (``failed_polls``, ``since``); None on the first."""
    before = {"failed_polls": failed_polls, "since": since} if failed_polls else None
    return ChangeEvent(at, EventKind.POLL_FAILED, Severity.ERROR, before=before, after=message)


def poll_recovered(
    at: datetime, *, last_error: str | None = None, failed_polls: int = 0, since: datetime | None = None
) -> ChangeEvent:
    """Polls succeed again after ``failed_polls`` failures, the first at ``since``; ``before`` is the last error."""
    return ChangeEvent(
        at,
        EventKind.POLL_RECOVERED,
        Severity.OK,
        before=last_error,
        after={"failed_polls": failed_polls, "since": since},
    )
