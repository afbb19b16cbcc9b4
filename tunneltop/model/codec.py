"""A snapshot back from its JSON document (``Snapshot.to_json``, the ``--once -o json`` document): the inverse that
``--attach`` (a serve server's ``/api/v1/snapshot``) and ``replay`` (a recording) rebuild the live state with.

``snapshot_from_json(s.to_json()).to_json() == s.to_json()`` for every snapshot (property-tested). Tolerant the way
the API parsing is: records go through the same record-by-record validation (unknown fields kept, a wrongly typed
field shown as unknown and reported as a problem), keys this module does not know are ignored (derived ones such as
``health``, or ones a newer tunneltop adds), and a tunnel entry that cannot be read is skipped and reported. Only a
document that is not a snapshot at all (no account, time or tunnel list) is an error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tunneltop.model.findings import Finding, Severity
from tunneltop.model.parse import RecordProblem, parse_connectors, validate_record
from tunneltop.model.reach import LocalReady, Reach, Route
from tunneltop.model.records import Tunnel
from tunneltop.model.snapshot import Snapshot, TunnelState

# Built from the dataclasses' own fields, so a field added to them (with its default) is read back with no change
# here; the ones that need converting from JSON are converted by name below.
_FINDING_FIELDS = tuple(f.name for f in dataclasses.fields(Finding))
_REACH_FIELDS = tuple(f.name for f in dataclasses.fields(Reach))
# Said of a client in the document, but derived from the snapshot's ``local``: not part of the API's record.
_DERIVED_CLIENT_KEYS = ("this_host",)


class CodecError(ValueError):
    """The document is not a snapshot (says what is missing or wrong)."""


def parse_time(value: object, what: str) -> datetime:
    """An RFC 3339 time as ``to_json`` writes it (``Z`` or an offset); a time without a zone is UTC."""
    if not isinstance(value, str):
        raise CodecError(f"{what} is not a time: {type(value).__name__}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CodecError(f"{what} is not an RFC 3339 time: {value[:40]!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _optional_time(value: object, what: str) -> datetime | None:
    return None if value is None else parse_time(value, what)


def _problem(text: object) -> RecordProblem:
    # str(RecordProblem) is "where: message"; splitting at the first ": " gives back the very same text.
    where, sep, message = str(text).partition(": ")
    return RecordProblem(where, message) if sep else RecordProblem("record", str(text))


def _api_record(client: Any) -> Any:
    if isinstance(client, Mapping) and any(k in client for k in _DERIVED_CLIENT_KEYS):
        return {k: v for k, v in client.items() if k not in _DERIVED_CLIENT_KEYS}
    return client


def _finding(doc: Mapping[str, Any]) -> Finding:
    values: dict[str, Any] = {name: doc[name] for name in _FINDING_FIELDS if name in doc}
    values["severity"] = Severity(str(doc.get("severity")))
    return Finding(**values)


def _reach(doc: Mapping[str, Any]) -> Reach:
    values: dict[str, Any] = {name: doc[name] for name in _REACH_FIELDS if name in doc}
    values["fetched_at"] = parse_time(doc.get("fetched_at"), "reach fetched_at")
    values["managed"] = str(doc.get("managed"))
    values["hostnames"] = tuple(str(h) for h in doc.get("hostnames") or ())
    values["routes"] = tuple(
        Route(str(r.get("network")), r.get("virtual_network"), r.get("comment")) for r in doc.get("routes") or ()
    )
    return Reach(**values)


def _local(doc: Mapping[str, Any]) -> LocalReady:
    return LocalReady(
        address=str(doc.get("address")),
        connector_id=doc.get("connector_id"),
        ready_connections=doc.get("ready_connections"),
        status=doc.get("status"),
    )


def state_from_json(doc: Mapping[str, Any], where: str = "tunnel") -> TunnelState:
    """One tunnel of the document (``TunnelState.to_json``). Raises CodecError when it has no readable tunnel."""
    if not isinstance(doc, Mapping):
        raise CodecError(f"{where} is not an object")
    record = doc.get("tunnel")
    if not isinstance(record, Mapping):
        # A document from before the full record was written: what the top level says of it.
        record = {"id": doc.get("id"), "name": doc.get("name"), "status": doc.get("status")}
    tunnel, problems = validate_record(Tunnel, record, where)
    if tunnel is None:
        raise CodecError("; ".join(p.message for p in problems) or "no tunnel id")
    clients = doc.get("clients")
    connectors = None
    if clients is not None:
        if isinstance(clients, list):
            clients = [_api_record(c) for c in clients]
        parsed, found = parse_connectors(clients)
        connectors, problems = tuple(parsed), problems + found
    try:
        findings = tuple(_finding(f) for f in doc.get("findings") or ())
        reach = doc.get("reach")
        return TunnelState(
            tunnel,
            connectors,
            tuple(_problem(p) for p in doc.get("problems") or ()) + tuple(problems),
            doc.get("error"),
            _optional_time(doc.get("fetched_at"), f"{where} fetched_at"),
            findings,
            _reach(reach) if isinstance(reach, Mapping) else None,
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise CodecError(f"{where}: {exc}") from None


def snapshot_from_json(doc: Mapping[str, Any]) -> Snapshot:
    """The snapshot a ``Snapshot.to_json`` document was written from. Raises CodecError when it is not one."""
    if not isinstance(doc, Mapping):
        raise CodecError(f"a snapshot is a JSON object, not {type(doc).__name__}")
    account_id = doc.get("account_id")
    if not isinstance(account_id, str):
        raise CodecError("the snapshot has no account_id")
    tunnels = doc.get("tunnels")
    if not isinstance(tunnels, list):
        raise CodecError("the snapshot has no tunnel list")
    states: list[TunnelState] = []
    problems = [_problem(p) for p in doc.get("problems") or ()]
    for index, entry in enumerate(tunnels):
        try:
            states.append(state_from_json(entry, f"tunnel #{index + 1}"))
        except CodecError as exc:
            problems.append(RecordProblem(f"tunnel #{index + 1}", f"unreadable ({exc}); skipped"))
    local = doc.get("local")
    name = doc.get("account_name")
    return Snapshot(
        account_id,
        parse_time(doc.get("fetched_at"), "the snapshot's fetched_at"),
        tuple(states),
        tuple(problems),
        name if isinstance(name, str) else None,
        _local(local) if isinstance(local, Mapping) else None,
    )
