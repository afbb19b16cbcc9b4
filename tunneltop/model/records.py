"""Pydantic models of what the Cloudflare API returns: accounts, tunnels, connectors and connections.

Field names are the API's own. Every model keeps unknown fields (``extra="allow"``) so that a field Cloudflare
adds tomorrow survives into ``--output json``, and every field but the identity is optional, because the API's
shape drifts (``is_pending_reconnect`` has come and gone five times in Cloudflare's own SDKs).
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from itertools import chain, compress, repeat
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, model_validator


def _as_utc(value: datetime) -> datetime | None:
    if value.year == 1:
        return None  # Go's zero time (0001-01-01T00:00:00Z): cloudflared's "unset", not a moment 2,000 years ago
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# A time without a zone is taken as UTC (the API's own zone), so ages can always be computed against now; Go's zero
# time is unknown (None). Connections and connectors do the same in their model validator (see Connection._settled).
UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]

# The tunnel list's deprecated copy of each tunnel's connections: read from the connections endpoint instead, so
# dropped at decode (nothing keeps, compares or diffs it; at 10k connections it is half a poll's bytes).
DEPRECATED_TUNNEL_FIELDS = frozenset({"connections"})


_FIELDS_SET = "__pydantic_fields_set__"
_EXTRA = "__pydantic_extra__"
_set_slot = object.__setattr__
# Set straight through the slots' descriptors where it is done for every record validated (see Connection._settled):
# fewer instructions than object.__setattr__.
_fields_set_put = BaseModel.__dict__[_FIELDS_SET].__set__
_extra_put = BaseModel.__dict__[_EXTRA].__set__


class _ApiRecord(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    def api_dict(self) -> dict[str, Any]:
        """The record as the API's JSON would spell it (dates back to RFC 3339 strings, unknown fields kept)."""
        return self.model_dump(mode="json", exclude_none=False)


class Account(_ApiRecord):
    id: str
    name: str | None = None


class Connection(_ApiRecord):
    """One connection between a cloudflared connector and a Cloudflare data centre (colo)."""

    id: str
    uuid: str | None = None
    client_id: str | None = None
    client_version: str | None = None
    colo_name: str | None = None
    origin_ip: str | None = None
    opened_at: datetime | None = None  # as UtcDatetime (see _settled)
    # None means the API did not say: unknown, never assumed active.
    # Strict: "no", 0 or "false" from a drifting API is a wrong type (shown as unknown), not a guess.
    is_pending_reconnect: StrictBool | None = None

    @model_validator(mode="after")
    def _settled(self) -> Self:
        """Its time as UtcDatetime's, and its bookkeeping shared. Pydantic gives each record a set of the fields it
        was given (728 bytes for a connection's 8) and a dict of its unknown fields: at 100,000 connections, 80 MB
        of equal sets and empty dicts, more than the connections' values. A record with no unknown field shares one
        empty dict, and one given every field its model's set (which holds the unknown fields' names too: with none,
        a set as long as the model's is the model's); see share_bookkeeping for the rest. Done as each is
        validated, so that the memory freed is reused by the next one (afterwards, the sets would have made the
        process that much bigger first). Neither is ever changed in place: the records are frozen, and pydantic
        copies both before it updates a copy's (``model_copy``).

        One validator, written out, for all of it: run for every record (125,000 at 100,000 connections), where
        each call pydantic makes from Rust, each call of a function or a method (looked up through BaseModel's
        __getattr__) cost about as much as the work (an AfterValidator for the time and a validator calling a
        shared method were 7% of a --once's instructions)."""
        fields = self.__dict__
        at = fields["opened_at"]
        if at is not None and (at.tzinfo is None or at.year == 1):
            fields["opened_at"] = _as_utc(at)
        if not self.__pydantic_extra__:
            _extra_put(self, _NO_EXTRA)
            if len(self.__pydantic_fields_set__) == _CONNECTION_FIELD_COUNT:
                _fields_set_put(self, _CONNECTION_FIELDS)
        return self

    @property
    def state(self) -> str:
        """``active``, ``pending`` (the edge holds it for a reconnect) or ``unknown``."""
        if self.is_pending_reconnect is None:
            return "unknown"
        return "pending" if self.is_pending_reconnect else "active"


class Connector(_ApiRecord):
    """A cloudflared process holding connections to the edge (the API calls it a "client")."""

    id: str
    arch: str | None = None
    version: str | None = None
    run_at: datetime | None = None  # as UtcDatetime (see _settled)
    config_version: int | None = None
    features: list[str] = Field(default_factory=list)
    conns: list[Connection] = Field(default_factory=list)

    @model_validator(mode="after")
    def _settled(self) -> Self:
        """As Connection._settled."""
        fields = self.__dict__
        at = fields["run_at"]
        if at is not None and (at.tzinfo is None or at.year == 1):
            fields["run_at"] = _as_utc(at)
        if not self.__pydantic_extra__:
            _extra_put(self, _NO_EXTRA)
            if len(self.__pydantic_fields_set__) == _CONNECTOR_FIELD_COUNT:
                _fields_set_put(self, _CONNECTOR_FIELDS)
        return self


class Tunnel(_ApiRecord):
    id: str
    name: str | None = None
    status: str | None = None
    created_at: UtcDatetime | None = None
    deleted_at: UtcDatetime | None = None
    conns_active_at: UtcDatetime | None = None
    conns_inactive_at: UtcDatetime | None = None
    tun_type: str | None = None
    remote_config: bool | None = None
    config_src: str | None = None
    account_tag: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_deprecated(cls, data: Any) -> Any:
        if isinstance(data, dict) and not DEPRECATED_TUNNEL_FIELDS.isdisjoint(data):
            return {k: v for k, v in data.items() if k not in DEPRECATED_TUNNEL_FIELDS}
        return data

    @property
    def label(self) -> str:
        return self.name or self.id


class TokenStatus(_ApiRecord):
    id: str | None = None
    status: str | None = None
    expires_on: UtcDatetime | None = None


# What records share (see Connection._settled): set once here, never changed.
_CONNECTION_FIELDS = set(Connection.model_fields)
_CONNECTOR_FIELDS = set(Connector.model_fields)
_CONNECTION_FIELD_COUNT = len(_CONNECTION_FIELDS)
_CONNECTOR_FIELD_COUNT = len(_CONNECTOR_FIELDS)
_NO_EXTRA: dict[str, Any] = {}
_fields_set_of = operator.attrgetter(_FIELDS_SET)
_conns_of = operator.attrgetter("conns")
# The set each model's records share when given every field and no other (see Connection._settled), by model.
_MODEL_FIELDS: dict[type[BaseModel], set[str]] = {Connection: _CONNECTION_FIELDS, Connector: _CONNECTOR_FIELDS}
_extra_of = operator.attrgetter(_EXTRA)


def share_bookkeeping(records: Sequence[_ApiRecord], pool: dict[frozenset[str], set[str]] | None = None) -> None:
    """What validation could not share (records given other fields than their model's, as when the API adds one):
    records with equal field sets share one (``pool``'s, when it has one: the caller's, shared across calls), those
    with no unknown field one empty dict. Cheap when there is nothing left to share (an identity check per record,
    at C speed): a record whose fields set is its model's (_MODEL_FIELDS) shares the empty dict too, as validation
    shares the set only then, so that their dicts are not even read (each read of a record's attribute is hundreds
    of instructions, through BaseModel's __getattr__)."""
    pool = {} if pool is None else pool
    sets = list(map(_fields_set_of, records))
    if not sets:
        return
    model_set = _MODEL_FIELDS.get(type(records[0]))
    if model_set is not None and sets[0] is model_set and all(map(operator.is_, sets, repeat(model_set))):
        return  # every one validated with its model's fields and no other: all shared already
    first = pool.setdefault(frozenset(sets[0]), sets[0])
    if first is not sets[0] or not all(map(operator.is_, sets, repeat(first))):
        for record, fields in zip(records, sets, strict=True):
            shared = pool.setdefault(frozenset(fields), fields)
            if shared is not fields:
                _set_slot(record, _FIELDS_SET, shared)
    extras = list(map(_extra_of, records))
    if not all(map(operator.is_, extras, repeat(_NO_EXTRA))):
        empty = list(map(operator.not_, extras))
        deque(map(_set_slot, compress(records, empty), repeat(_EXTRA), repeat(_NO_EXTRA)), maxlen=0)


def share_connectors(
    connectors: Iterable[Connector], known: Iterable[Connector] = (), pool: dict[frozenset[str], set[str]] | None = None
) -> None:
    """``share_bookkeeping`` for the connectors not in ``known`` (the last poll's: done already) and their
    connections."""
    pool = {} if pool is None else pool
    seen = set(map(id, known))
    new = [c for c in connectors if id(c) not in seen] if seen else list(connectors)
    share_bookkeeping(new, pool)
    share_bookkeeping(list(chain.from_iterable(map(_conns_of, new))), pool)
