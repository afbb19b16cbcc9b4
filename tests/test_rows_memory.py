"""The rows a session hands the table, and the sort keys the table keeps of them, made once and shared: the same
rows and values as ``rows_of`` would make, in less memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tunneltop.changes.events import diff, without_first_sight
from tunneltop.model.records import Connection, Connector, Tunnel
from tunneltop.model.snapshot import Snapshot, TunnelState
from tunneltop.views.rows import SORT_KEYS, natural_key, rows_of
from tunneltop.views.session import Session

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def connector(cid: str, *conns: tuple[str, str]) -> Connector:
    return Connector(id=cid, conns=[Connection(id=n, colo_name=colo, is_pending_reconnect=False) for n, colo in conns])


def snapshot(*states: TunnelState, at: datetime = T0) -> Snapshot:
    return Snapshot(account_id="acct", fetched_at=at, tunnels=states)


def test_a_sessions_rows_are_rows_of_and_unchanged_connectors_keep_theirs() -> None:
    web, db = Tunnel(id="t-web", name="Web"), Tunnel(id="t-db", name="db")
    k1, k2, empty = connector("k1", ("a", "DFW"), ("b", "LAX")), connector("k2", ("c", "DFW")), connector("k3")
    first = snapshot(TunnelState(web, (k1, k2, empty)), TunnelState(db, (connector("k4", ("d", "NRT")),)))
    session = Session()
    session.on_snapshot(first, T0)
    before = {r.key: r for r in session.rows(first)}
    assert [r.key for r in session.rows(first)] == [r.key for r in rows_of(first)]
    # web's list entry read again (an equal, new object), one connector changed, db's connections changed
    k2_moved = connector("k2", ("c", "ORD"))
    db_now = connector("k4", ("d", "NRT"), ("e", "KIX"))
    second = snapshot(
        TunnelState(Tunnel(id="t-web", name="Web"), (k1, k2_moved, empty)), TunnelState(db, (db_now,)), at=T0
    )
    session.on_snapshot(second, T0 + timedelta(seconds=5))
    after = {r.key: r for r in session.rows(second)}
    assert [r.key for r in session.rows(second)] == [r.key for r in rows_of(second)]
    assert after["t-web/k1/a"] is before["t-web/k1/a"] and after["t-web/k1/b"] is before["t-web/k1/b"]
    assert after["t-web/k2/c"] is not before["t-web/k2/c"] and after["t-web/k2/c"].conn.colo_name == "ORD"
    assert after["t-db/k4/d"].connector is db_now and after["t-db/k4/e"].conn.colo_name == "KIX"


def test_without_ghosts_the_rows_are_one_list_and_with_them_they_follow_it() -> None:
    web = Tunnel(id="t-web", name="web")
    first = snapshot(TunnelState(web, (connector("k1", ("a", "DFW"), ("b", "LAX")),)))
    session = Session(ghost_seconds=60)
    session.on_snapshot(first, T0)
    assert session.rows(first) is session.rows(first)
    second = snapshot(TunnelState(web, (connector("k1", ("a", "DFW")),)), at=T0 + timedelta(seconds=5))
    session.on_snapshot(second, T0 + timedelta(seconds=5))
    rows = session.rows(second)
    assert [(r.key, r.state) for r in rows] == [("t-web/k1/a", "active"), ("t-web/k1/b", "gone")]
    assert session.rows(second) is not rows  # ghosts are added to a list of its own each time


def test_the_sort_keys_the_table_keeps_share_their_texts() -> None:
    tunnel = Tunnel(id="t", name="Prod-Web")
    rows = rows_of(snapshot(TunnelState(tunnel, (connector("k1", ("a", "DFW"), ("b", "DFW")),))))
    first, second = (natural_key(r) for r in rows)
    assert first[0] == "prod-web" and first[2] == "dfw"
    assert first[0] is second[0] and first[2] is second[2]
    assert SORT_KEYS["colo"](rows[0]) is SORT_KEYS["colo"](rows[1]) == "dfw"
    assert SORT_KEYS["tunnel"](rows[0]) is first[0]
    assert natural_key(rows[0]) < natural_key(rows[1])


def test_rows_prepared_ahead_are_the_rows_taken_and_marks_and_ghosts_follow_as_without() -> None:
    # The live view makes a poll's rows on a worker thread (Session.prepare) before the session takes the poll.
    web = Tunnel(id="t-web", name="web")
    polls = [
        snapshot(TunnelState(web, (connector("k1", ("a", "DFW"), ("b", "LAX")), connector("k2", ("c", "DFW"))))),
        snapshot(TunnelState(web, (connector("k1", ("a", "DFW"), ("x", "ORD")), connector("k2", ("c", "DFW"))))),
        snapshot(TunnelState(web, (connector("k2", ("c", "NRT")),))),
    ]
    polls.insert(2, Snapshot(account_id="acct", fetched_at=T0, tunnels=polls[1].tunnels))  # a poll with no change
    ahead, plain = Session(ghost_seconds=60), Session(ghost_seconds=60)
    last = None
    for n, poll in enumerate(polls):
        now = T0 + timedelta(seconds=5 * n)
        events = diff(last, poll)  # what the poll engine hands over with each snapshot
        ahead.prepare(poll, events)
        assert all(e._line is not None for e in without_first_sight(events))  # the event log's lines, made ahead
        prepared = ahead._prepared
        unchanged = n > 0 and poll.tunnels is polls[n - 1].tunnels  # nothing to make: the rows are the last ones
        assert (prepared is None) if unchanged else (prepared is not None and prepared[0] is poll)
        assert (ahead._prepared_changes is not None) == (n > 0 and not unchanged)  # after a first poll, its changes
        calls: list[object] = []

        def counted(*args: object, calls: list[object] = calls, work: object = ahead._changes) -> object:
            calls.append(args)
            return work(*args)  # type: ignore[operator]

        ahead._changes = counted  # type: ignore[method-assign,assignment]
        ahead.on_snapshot(poll, now, events)
        del ahead._changes
        assert calls == [] or n == 0  # taken as prepared, not worked out again
        plain.on_snapshot(poll, now, events)
        assert ahead._prepared_changes is None
        assert ahead.colo_counts(poll) == plain.colo_counts(poll)
        assert ahead._prepared_colos is None  # taken
        last = poll
        assert ahead._rows_seen is not None
        assert unchanged or (prepared is not None and ahead._rows_seen[1] is prepared[1])  # the very rows made ahead
        assert ahead._prepared is None  # taken, not kept
        assert [(r.key, r.state) for r in ahead.rows(poll)] == [(r.key, r.state) for r in plain.rows(poll)]
        assert ahead.marks == plain.marks and ahead.ghosts.keys() == plain.ghosts.keys()
    assert set(ahead.ghosts) == {"t-web/k1/b", "t-web/k1/a", "t-web/k1/x"}
    ahead.prepare(polls[-1])  # the same tunnels as the poll taken: nothing to make
    assert ahead._prepared is None
