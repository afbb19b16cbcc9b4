"""What tunneltop concludes about a tunnel beyond the API's own status: findings, each with a check id, a
severity, a message with the numbers and a hint of what to look at.

The rules that produce them (built-in checks and the config file's ``[expect]``) live beside this type; a finding
itself is plain immutable data, so that it travels unchanged through every source (API, serve, a recording) and
every front end.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Finding:
    check: str  # a stable id, e.g. "config_drift", "min_connectors": events, metrics and alert rules key on it
    severity: Severity
    message: str  # with the numbers: "2 of 3 expected connectors"
    hint: str  # what to look at next
    connector_id: str | None = None  # the connector it is about, when it is about one

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "severity": self.severity.value,
            "message": self.message,
            "hint": self.hint,
            "connector_id": self.connector_id,
        }
