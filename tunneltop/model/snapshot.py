"""One poll's worth of state: every watched tunnel with its connectors, as plain immutable data."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from itertools import chain
from typing import Any

from tunneltop.model.findings import Finding, Severity
from tunneltop.model.health import (
    Health,
    Status,
    counted_health,
    rank,
    tunnel_status,
    worst,
    worst_severity,
    worst_status,
)
from tunneltop.model.parse import RecordProblem
from tunneltop.model.reach import LocalReady, Reach
from tunneltop.model.records import Connector, Tunnel

_CONNS = operator.attrgetter("conns")
_PENDING = operator.attrgetter("is_pending_reconnect")
_STATUS_HEALTH = {h.value: h for h in (Health.HEALTHY, Health.DEGRADED, Health.DOWN, Health.INACTIVE)}


def same_objects(a: Sequence[object], b: Sequence[object]) -> bool:
    """Whether two sequences hold the very same objects in the same order. Records unchanged from poll to poll are
    handed back as the same objects (see RecordCache and TunnelSource), so this is how "nothing changed" is told
    at C speed."""
    return len(a) == len(b) and all(map(operator.is_, a, b))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _reach_json(reach: Reach) -> dict[str, Any]:
    return {
        "fetched_at": _iso(reach.fetched_at),
        "managed": reach.managed,
        "hostnames": list(reach.hostnames),
        "routes": [r.to_json() for r in reach.routes],
        "config_version": reach.config_version,
        "error": reach.error,
    }


def client_json(connector: Connector, this_host: str | None) -> dict[str, Any]:
    """A connector as the documents spell it: the API's record, and ``this_host`` when it runs on this host."""
    record = connector.api_dict()
    if this_host is not None and connector.id == this_host:
        record["this_host"] = True
    return record


# How a document writes each connector (``client_json``'s arguments) and each finding (``Finding.to_json``'s): a
# writer may hand a value of its own that stands for the same JSON (report.py: text written at once).
ClientWriter = Callable[[Connector, str | None], Any]
FindingWriter = Callable[[Finding], Any]


def _local_json(local: LocalReady) -> dict[str, Any]:
    return {
        "address": local.address,
        "connector_id": local.connector_id,
        "ready_connections": local.ready_connections,
        "status": local.status,
    }


@dataclass(frozen=True)
class TunnelState:
    """A tunnel as seen by one poll.

    ``connectors`` is None when its connections could not be fetched (``error`` says why: health unknown) or, with
    no ``error``, were not fetched yet (the account-wide view fetches them a few at a time within its request
    budget: the tunnel list's status is then the verdict). ``fetched_at``: when the connections were fetched, where
    a view keeps them across polls (None: this poll).
    """

    tunnel: Tunnel
    connectors: tuple[Connector, ...] | None
    problems: tuple[RecordProblem, ...] = ()
    error: str | None = None
    fetched_at: datetime | None = None
    # What tunneltop concludes beyond the API's status (model/findings.py), and what rides on the tunnel as last
    # fetched (None: not fetched yet). Both are filled in by the poll engine after the connections are read.
    findings: tuple[Finding, ...] = ()
    reach: Reach | None = None

    @cached_property
    def health(self) -> Health:
        if self.connectors is None and self.error is None:
            return _STATUS_HEALTH.get((self.tunnel.status or "").lower(), Health.UNKNOWN)
        return counted_health(self.tunnel, self.connectors, *self._counts)  # no other pass over the connections

    # Cached like health: read for every tunnel on every redraw (header, tree, trends), and the state is immutable.
    @cached_property
    def active_count(self) -> int:
        return self._counts[0]

    @cached_property
    def pending_count(self) -> int:
        return self._counts[1]

    @cached_property
    def _counts(self) -> tuple[int, int]:
        """Active and pending connections, from one pass over them at C speed (100,000 connections: two generators
        took 20-30 ms). StrictBool: each flag is True, False or None, so counting equals counts what ``is`` would."""
        flags = list(map(_PENDING, chain.from_iterable(map(_CONNS, self.connectors or ()))))
        return flags.count(False), flags.count(True)

    @cached_property
    def rank(self) -> int:
        """Where it sorts, worst first: health and findings together (model/health.py ``rank``)."""
        return rank(self.health, self.findings)

    @cached_property
    def status(self) -> Status:
        """The monitoring verdict: health and findings together (model/health.py ``tunnel_status``)."""
        return tunnel_status(self.health, self.findings)

    def to_json(
        self, this_host: str | None = None, client: ClientWriter = client_json, finding: FindingWriter = Finding.to_json
    ) -> dict[str, Any]:
        """``this_host``: the connector id cloudflared's /ready on this host gave (its client says ``this_host``).
        ``client``, ``finding``: what each connector and finding is written as (see ``ClientWriter``)."""
        return {
            "id": self.tunnel.id,
            "name": self.tunnel.name,
            "status": self.tunnel.status,
            "health": self.health.value,
            "clients": None if self.connectors is None else [client(c, this_host) for c in self.connectors],
            "problems": [str(p) for p in self.problems],
            "error": self.error,
            # What it takes to rebuild the state from this document (model/codec.py: --attach, replay): the tunnel
            # record as the API sent it, and when its connections were read if before this snapshot.
            "fetched_at": _iso(self.fetched_at),
            "tunnel": self.tunnel.api_dict(),
            "findings": [finding(f) for f in self.findings],
            "reach": None if self.reach is None else _reach_json(self.reach),
            # The blast radius as a reader asks for it (null while not fetched): the public hostnames (a locally
            # managed tunnel's are in a file on its host: none here) and the private network routes.
            "managed": None if self.reach is None else self.reach.managed,
            "hostnames": None if self.reach is None else list(self.reach.hostnames),
            "routes": None if self.reach is None else [r.to_json() for r in self.reach.routes],
        }


@dataclass(frozen=True)
class Snapshot:
    account_id: str
    fetched_at: datetime
    tunnels: tuple[TunnelState, ...]
    problems: tuple[RecordProblem, ...] = field(default=())
    account_name: str | None = None
    local: LocalReady | None = None  # cloudflared's /ready on this host, when one answered

    # Worked out once per snapshot, which is immutable. The header reads them every second and keeps a FiguresMemo
    # instead, so that a poll where nothing changed (it hands back the very same tunnels tuple, see
    # TunnelSource.poll) costs it nothing either.
    @cached_property
    def figures(self) -> AccountFigures:
        return account_figures(self.tunnels)

    @property
    def health(self) -> Health | None:
        return self.figures.health

    @property
    def pending_count(self) -> int:
        return self.figures.pending

    @property
    def status(self) -> Status:
        """The monitoring verdict over every tunnel (OK with no tunnels)."""
        return self.figures.status

    @property
    def health_counts(self) -> dict[Health, int]:
        """How many tunnels have each verdict (verdicts no tunnel has are left out)."""
        return dict(self.figures.counts)

    @property
    def problem_count(self) -> int:
        """Odd records skipped or shown as unknown, in the tunnel list and in the tunnels' connections."""
        return self.figures.problems + len(self.problems)

    def to_json(self, client: ClientWriter = client_json, finding: FindingWriter = Finding.to_json) -> dict[str, Any]:
        """``client``, ``finding``: what each connector and finding is written as (see ``ClientWriter``)."""
        this_host = self.local.connector_id if self.local else None
        return {
            "account_id": self.account_id,
            "fetched_at": self.fetched_at.isoformat().replace("+00:00", "Z"),
            "tunnels": [t.to_json(this_host, client, finding) for t in self.tunnels],
            "problems": [str(p) for p in self.problems],
            "account_name": self.account_name,
            "local": None if self.local is None else _local_json(self.local),
        }


@dataclass(frozen=True)
class AccountFigures:
    """What the header says about a tunnels tuple: the worst health, pending reconnects, how many tunnels have each
    verdict, and odd records in the tunnels (the tunnel list's own are the snapshot's ``problems``). ``warnings``
    and ``critical``: tunnels whose worst finding is a warning, tunnels with a critical finding. ``status``: the
    monitoring verdict over all of them."""

    health: Health | None
    pending: int
    counts: dict[Health, int]
    problems: int
    warnings: int = 0
    critical: int = 0
    status: Status = Status.OK


def account_figures(tunnels: tuple[TunnelState, ...]) -> AccountFigures:
    counts: dict[Health, int] = {}
    severities = {Severity.WARNING: 0, Severity.CRITICAL: 0}
    for state in tunnels:
        counts[state.health] = counts.get(state.health, 0) + 1
        if state.findings:
            severities[worst_severity(state.findings) or Severity.WARNING] += 1
    return AccountFigures(
        worst(t.health for t in tunnels),
        sum(t.pending_count for t in tunnels),
        counts,
        sum(len(t.problems) for t in tunnels),
        severities[Severity.WARNING],
        severities[Severity.CRITICAL],
        worst_status(t.status for t in tunnels),
    )


class FiguresMemo:
    """The figures of the last tunnels tuple it was asked about, for a reader that asks every second (the header):
    a snapshot whose tunnels are the very tuple of the one before gets the very same figures back, by one identity
    check. Holds that one tuple only."""

    def __init__(self) -> None:
        self._last: tuple[tuple[TunnelState, ...], AccountFigures] | None = None

    def of(self, snapshot: Snapshot) -> AccountFigures:
        last = self._last
        if last is not None and last[0] is snapshot.tunnels:
            return last[1]
        figures = snapshot.figures
        self._last = (snapshot.tunnels, figures)
        return figures
