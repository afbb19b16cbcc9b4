"""What changed between two polls, as typed events: pure, fast, and exact enough to replay.

``diff(old, new)`` turns two snapshots into a list of ``ChangeEvent``; ``apply(old, events)`` replays them. The
contract, checked by property tests: ``replay_form(apply(old, diff(old, new))) == replay_form(new)``.

This module is the package's one door (everything below is importable from here) and holds the rules; the code
lives by what it holds: ``kinds`` (event kinds, severities), ``messages`` (the line each kind says to people),
``event`` (``ChangeEvent``, its JSON, the poll events), ``diff``, ``grouping`` (a failover and schema drift as one
event each, with their pairing and drift rules) and ``replay``.

Rules:

- The first poll is the baseline: ``diff(None, new)`` holds no change, only the findings it raises.
- Identity is the id: tunnels by ``id``, connectors by ``id`` within their tunnel, connections by ``id`` within
  their connector. A tunnel id listed twice counts once (its first copy).
- A connector or connection that appears or vanishes is one event carrying the whole record
  (``connector_joined`` carries its connections; no ``conn_opened`` for them). A connector present in both polls
  gets one event per changed aspect (run_at, version, config_version, features, anything else), then one event per
  opened, closed or changed connection.
- Every connection event carries both full records, its kind chosen by the ``state`` transition: to pending is
  ``conn_pending``, pending to active is ``conn_recovered``, anything else ``conn_changed``.
- A failover is one ``colo_moved`` (connections closed or gone pending in colos that lost some and opened in colos
  that gained some, on one connector in one poll), and schema drift one ``schema_drift`` notice per poll,
  direction and kind of record (a field missing from every record of one answer, or newly sent on every one): see
  ``tunneltop.changes.grouping``. Each carries the per-record events it stands for in ``parts`` (in its JSON too);
  they are not events of their own, and replay applies them. Consumers acting per connection read
  ``flatten(events)``.
- Findings (``TunnelState.findings``) are keyed by tunnel, check and connector: one that appears is
  ``finding_raised`` (warning, or error for a critical finding; the finding in ``after``), one that goes is
  ``finding_cleared`` (info, the finding in ``before``); the same finding at another severity is raised again
  (``before`` the old one); a changed message alone is not an event. A tunnel seen for the first time (the
  first poll, ``tunnel_added``, or its first read in the account view) raises its findings once. A failed fetch
  clears nothing; a removed tunnel's findings go with its ``tunnel_removed``, a connector's with its
  ``connector_left``. Findings replay as nothing.
- The tunnel list's deprecated ``connections`` field is dropped at decode (``model.records.Tunnel``): it never
  makes an event. Messages format values for people (``messages.human``): never a Python repr.
- Connectors unknown (``TunnelState.connectors is None``: their fetch failed this poll) are never read as gone:
  losing sight of them is one ``tunnel_fetch_failed``, regaining it one ``tunnel_fetch_recovered`` carrying the
  connectors as now seen, and no connector or connection event is derived across either. While unknown the
  tunnel's health is ``unknown`` (``tunnel_health``), so a consumer of health events sees the loss of sight too.
- Connectors kept from an earlier read while a refresh fails (``connectors`` known and ``error`` set) are stale:
  becoming so is one ``tunnel_stale`` carrying the error, being read again one ``tunnel_refreshed``; both replay as
  nothing, since what the connections are has not changed.
- ``tunnel_health`` is derived: it is reported after the tunnel's other events and replays as nothing. Its
  severity follows the verdict reached: healthy ok, degraded or unknown warning, down error, inactive info (idle
  is neutral; an inactive tunnel that should run says so by a finding).
- Order is deterministic: tunnels gone first (old order), then the new snapshot's tunnels in its order; within a
  tunnel its record, its visibility, then connectors gone (old order) and the new connectors in order, each
  followed by its connections gone and then its connections in new order; then its findings cleared and raised;
  the tunnel's health last. An event made of others stands where its first part would.

What ``apply`` reproduces (``replay_form``): the account id and, keyed by id, every tunnel record and its
connectors with their connections, or None where they are unknown. Not reproduced: the order of survivors against
newcomers (survivors keep their old order; newcomers follow in event order), per-poll diagnostics (record problems,
an unchanged-visibility error text), findings and ``fetched_at``, which becomes the last event's time.
"""

from __future__ import annotations

from tunneltop.changes.diff import diff, without_first_sight
from tunneltop.changes.event import ChangeEvent, changed_fields, flatten, poll_failed, poll_recovered
from tunneltop.changes.kinds import EventKind, Severity
from tunneltop.changes.messages import human, rfc3339
from tunneltop.changes.replay import ReplayError, apply, replay_form

__all__ = [
    "ChangeEvent",
    "EventKind",
    "ReplayError",
    "Severity",
    "apply",
    "changed_fields",
    "diff",
    "flatten",
    "human",
    "poll_failed",
    "poll_recovered",
    "replay_form",
    "rfc3339",
    "without_first_sight",
]
