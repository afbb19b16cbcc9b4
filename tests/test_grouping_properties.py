"""Property tests of the failover grouping (``changes.grouping``) and of ``first_by_id``: what the fast paths make
equals what the pairing rule, written plainly here with Counters, makes, for random runs of connection events."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from tunneltop.changes.diff import first_by_id
from tunneltop.changes.event import ChangeEvent
from tunneltop.changes.grouping import group
from tunneltop.changes.kinds import EventKind, Severity
from tunneltop.model.records import Connection

DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, max_examples=300)
AT = datetime(2026, 12, 1, tzinfo=UTC)
RANK = {Severity.INFO: 0, Severity.OK: 1, Severity.WARNING: 2, Severity.ERROR: 3}
DROPS = (EventKind.CONN_CLOSED, EventKind.CONN_PENDING)


def _conn(cid: str, colo: str | None, pending: bool | None) -> Connection:
    return Connection(id=cid, colo_name=colo, is_pending_reconnect=pending, origin_ip="203.0.113.7")


@st.composite
def runs(draw: st.DrawFn) -> list[ChangeEvent]:
    """One diff's connection events over a few connectors: closes, drops to pending, opens and other changes, in
    any order, colos from a small pool (and none), some already pending before."""
    colos = st.sampled_from(["DFW", "LAX", "ORD", "", None])
    events = []
    for n in range(draw(st.integers(0, 24))):
        connector = draw(st.sampled_from(["k1", "k2", "k3"]))
        tunnel = draw(st.sampled_from(["t1", "t2"]))
        kind = draw(st.sampled_from([*DROPS, EventKind.CONN_OPENED, EventKind.CONN_OPENED, EventKind.CONN_CHANGED]))
        cid = f"c{n}"
        colo = draw(colos)
        before = after = None
        if kind is EventKind.CONN_OPENED:
            after = _conn(cid, colo, False)
        else:
            before = _conn(cid, colo, draw(st.sampled_from([False, True, None])))
            if kind is not EventKind.CONN_CLOSED:
                after = _conn(cid, draw(colos), kind is EventKind.CONN_PENDING)
        severity = draw(st.sampled_from(list(Severity)))
        events.append(ChangeEvent(AT, kind, severity, tunnel, tunnel.upper(), connector, cid, colo, before, after))
    return events


def _pick(indexes: list[int], quota: Counter[str], count: int, colo_of: dict[int, str]) -> list[int]:
    left = Counter(quota)
    out: list[int] = []
    for i in indexes:
        if len(out) < count and left[colo_of[i]] > 0:
            left[colo_of[i]] -= 1
            out.append(i)
    return out


def reference(events: list[ChangeEvent]) -> list[ChangeEvent]:
    """The pairing rule as grouping.py's docstring states it, with Counters and no shortcut."""
    buckets: dict[tuple[str | None, str | None], tuple[list[int], list[int]]] = {}
    colo_of: dict[int, str] = {}
    for i, e in enumerate(events):
        if e.kind in DROPS and e.before.colo_name and e.before.is_pending_reconnect is not True:
            buckets.setdefault((e.tunnel_id, e.connector_id), ([], []))[0].append(i)
            colo_of[i] = e.before.colo_name
        elif e.kind is EventKind.CONN_OPENED and e.after.colo_name:
            buckets.setdefault((e.tunnel_id, e.connector_id), ([], []))[1].append(i)
            colo_of[i] = e.after.colo_name
    made: dict[int, ChangeEvent] = {}
    taken: set[int] = set()
    for closes, opens in buckets.values():
        closed = Counter(colo_of[i] for i in closes)
        opened = Counter(colo_of[i] for i in opens)
        lost, gained = closed - opened, opened - closed
        moved = min(lost.total(), gained.total())
        if not moved:
            continue
        picked = sorted(_pick(closes, lost, moved, colo_of) + _pick(opens, gained, moved, colo_of))
        parts = [events[i] for i in picked]
        went = Counter(colo_of[i] for i in picked if events[i].kind in DROPS)
        came = Counter(colo_of[i] for i in picked if events[i].kind is EventKind.CONN_OPENED)
        first = parts[0]
        made[picked[0]] = ChangeEvent(
            first.at,
            EventKind.COLO_MOVED,
            max((p.severity for p in parts), key=RANK.__getitem__),
            first.tunnel_id,
            first.tunnel_name,
            first.connector_id,
            colo=next(iter(came)) if len(came) == 1 else None,
            before=dict(sorted(went.items())),
            after=dict(sorted(came.items())),
            parts=tuple(parts),
        )
        taken.update(picked)
    out = []
    for i, event in enumerate(events):
        if i in made:
            out.append(made[i])
        if i not in taken:
            out.append(event)
    return out


@DETERMINISTIC
@given(runs())
def test_failovers_are_grouped_as_the_pairing_rule_says(events: list[ChangeEvent]) -> None:
    grouped = group(list(events), {}, {})
    expected = reference(events)
    assert grouped == expected
    # The colo counts in the order a reader sees them (the event's line and JSON).
    assert [(list(e.before.items()), list(e.after.items())) for e in grouped if e.kind is EventKind.COLO_MOVED] == [
        (list(e.before.items()), list(e.after.items())) for e in expected if e.kind is EventKind.COLO_MOVED
    ]
    assert [e.describe() for e in grouped] == [e.describe() for e in expected]


@DETERMINISTIC
@given(st.lists(st.tuples(st.sampled_from("abcde"), st.integers()), max_size=12))
def test_first_by_id_keeps_each_ids_first_item_in_order(items: list[tuple[str, int]]) -> None:
    expected: dict[str, tuple[str, int]] = {}
    for item in items:
        expected.setdefault(item[0], item)
    found = first_by_id(items, lambda item: item[0])
    assert list(found.items()) == list(expected.items())
    assert list(first_by_id(iter(items), lambda item: item[0]).items()) == list(expected.items())
