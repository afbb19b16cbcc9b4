"""Property tests of the session's rows made ahead (``Session.prepare``): for any run of polls, where the source
hands back unchanged tunnels and connectors as the same objects (and ids may be listed twice, or hold a "/"), the
marks, ghosts and rows a poll leaves are those of a session that takes each poll as it comes (rows keyed and
compared by identity, one by one). A connection is listed once in its tunnel (where one is listed twice, which of
the two a ghost shows is not defined either way)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from textual.app import App, ComposeResult

from tunneltop.changes.events import diff
from tunneltop.model.records import Connection, Connector, Tunnel
from tunneltop.model.snapshot import Snapshot, TunnelState
from tunneltop.ui.conn_table import COLUMNS, ConnectionsTable
from tunneltop.views.rows import ChangedRows, ConnRow
from tunneltop.views.session import Session

DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, max_examples=400)
T0 = datetime(2026, 12, 1, tzinfo=UTC)
TUNNEL_IDS = st.sampled_from(["t1", "t2", "t3", "t4", "t", "t/1"])
CONNECTOR_IDS = st.sampled_from([f"k{n}" for n in range(1, 12)] + ["1/k1"])
PLAIN_TUNNEL_IDS = st.sampled_from(["t1", "t2", "t3", "t4", "t"])
PLAIN_CONNECTOR_IDS = st.sampled_from([f"k{n}" for n in range(1, 12)])
CONN_IDS = st.sampled_from(["a", "b", "c", "d", "e", "f"])


@st.composite
def connectors(draw: st.DrawFn, taken: set[str], ids: st.SearchStrategy[str] = CONNECTOR_IDS) -> Connector:
    """A connector whose connections' ids are not among ``taken`` (its tunnel's): an id may come back in a later
    poll, as a connection that closed and returns."""
    conns = []
    for cid in draw(st.lists(CONN_IDS, max_size=4, unique=True)):
        if cid not in taken:
            taken.add(cid)
            colo, pending = draw(st.sampled_from(["DFW", "ORD"])), draw(st.booleans())
            conns.append(Connection(id=cid, colo_name=colo, is_pending_reconnect=pending))
    return Connector(id=draw(ids), conns=conns)


@st.composite
def polls(draw: st.DrawFn, plain: bool = False) -> list[Snapshot]:
    """Polls where each tunnel state and each connector is either the last poll's very object (unchanged) or new;
    a tunnel or connector id may be listed twice, or hold a "/" (``plain``: none holds one, and a tunnel is listed
    once)."""
    tunnel_ids, connector_ids = (PLAIN_TUNNEL_IDS, PLAIN_CONNECTOR_IDS) if plain else (TUNNEL_IDS, CONNECTOR_IDS)
    out: list[Snapshot] = []
    last: dict[str, TunnelState] = {}
    for n in range(draw(st.integers(1, 6))):
        states = []
        taken_in: dict[str, set[str]] = {}
        for tunnel_id in draw(st.lists(tunnel_ids, max_size=3, unique=plain)):
            # A connection id once per tunnel: a row's key is one row's, but where an id holds a "/" ("t/1" and
            # "t" with "1/k1"), two rows' keys may read the same.
            taken = taken_in.setdefault(tunnel_id, set())
            before = last.get(tunnel_id)
            if before is not None and draw(st.booleans()):
                ids = [c.id for k in before.connectors or () for c in k.conns]
                if taken.isdisjoint(ids):
                    taken.update(ids)
                    states.append(before)  # the same object: unchanged
                    continue
            kept = []
            for connector in (before.connectors or ()) if before is not None else ():
                ids = [c.id for c in connector.conns]
                if draw(st.booleans()) and taken.isdisjoint(ids):
                    taken.update(ids)
                    kept.append(connector)  # the same object: unchanged
            made = [draw(connectors(taken, connector_ids)) for _ in range(draw(st.integers(0, 3)))]
            found = None if draw(st.integers(0, 7)) == 0 else tuple(kept + made)
            states.append(TunnelState(Tunnel(id=tunnel_id, name=tunnel_id), found, (), None if found else "failed"))
        out.append(Snapshot("acc", T0 + timedelta(seconds=5 * n), tuple(states)))
        last = {s.tunnel.id: s for s in states}
    return out


@DETERMINISTIC
@given(polls())
def test_rows_made_ahead_leave_the_marks_and_ghosts_of_rows_compared_one_by_one(runs: list[Snapshot]) -> None:
    ahead, plain = Session(ghost_seconds=60), Session(ghost_seconds=60)
    last = None
    for n, poll in enumerate(runs):
        now = T0 + timedelta(seconds=5 * n)
        events = diff(last, poll)
        ahead.prepare(poll, events)
        ahead.on_snapshot(poll, now, events)
        plain.on_snapshot(poll, now, events)
        assert ahead.marks == plain.marks
        assert ahead.ghosts == plain.ghosts
        rows = Counter((r.key, r.state, id(r.conn)) for r in ahead.rows(poll))
        assert rows == Counter((r.key, r.state, id(r.conn)) for r in plain.rows(poll))
        last = poll


def _conn(cid: str, colo: str = "DFW") -> Connection:
    return Connection(id=cid, colo_name=colo, is_pending_reconnect=False)


def _same_as_plain(runs: list[Snapshot]) -> Session:
    ahead, plain = Session(ghost_seconds=60), Session(ghost_seconds=60)
    last = None
    for n, poll in enumerate(runs):
        events = diff(last, poll)
        ahead.prepare(poll, events)
        ahead.on_snapshot(poll, T0 + timedelta(seconds=5 * n), events)
        plain.on_snapshot(poll, T0 + timedelta(seconds=5 * n), events)
        assert ahead.ghosts == plain.ghosts
        last = poll
    return ahead


def test_keys_that_read_alike_across_tunnels_leave_no_ghost_over_a_live_row() -> None:
    # "t/1" + "k1" + "a" and "t" + "1/k1" + "a" make the same key: the row that stays keeps it, no ghost doubles it.
    stays = TunnelState(Tunnel(id="t", name="t"), (Connector(id="1/k1", conns=[_conn("a")]),))
    first = Snapshot("acc", T0, (TunnelState(Tunnel(id="t/1"), (Connector(id="k1", conns=[_conn("a")]),)), stays))
    second = Snapshot("acc", T0, (TunnelState(Tunnel(id="t/1"), (Connector(id="k1", conns=[]),)), stays))
    assert _same_as_plain([first, second]).ghosts == {}


def test_a_connector_listed_twice_in_a_tunnel_kept_as_it_was_still_leaves_its_ghosts() -> None:
    twice = TunnelState(
        Tunnel(id="t"), (Connector(id="k1", conns=[_conn("a")]), Connector(id="k1", conns=[_conn("b")]))
    )
    other = TunnelState(Tunnel(id="u"), (Connector(id="k2", conns=[_conn("c")]),))
    polls = [
        Snapshot("acc", T0, (twice, other)),
        Snapshot("acc", T0, (twice, TunnelState(Tunnel(id="u"), (Connector(id="k2", conns=[_conn("d")]),)))),
        Snapshot("acc", T0, (TunnelState(Tunnel(id="t"), ()), other)),
    ]
    assert set(_same_as_plain(polls).ghosts) == {"u/k2/d", "t/k1/a", "t/k1/b"}  # c came back


def _told_right(before: list[ConnRow], rows: ChangedRows[ConnRow]) -> None:
    """``rows`` tells what came since ``before`` (by identity) and the keys that went (no row holds them now)."""
    was, now = {id(r): r for r in before}, {id(r): r for r in rows}
    assert sorted(map(id, rows.came)) == sorted(now.keys() - was.keys())
    assert sorted(rows.left) == sorted({r.key for r in before} - {r.key for r in rows})
    assert len({r.key for r in rows}) == len(rows)  # told only where a key is one row's


def _odd_ids(poll: Snapshot) -> bool:
    ids = [s.tunnel.id for s in poll.tunnels]
    by_tunnel = [[k.id for k in s.connectors or ()] for s in poll.tunnels]
    slashed = any("/" in i for i in ids + [k for connectors in by_tunnel for k in connectors])
    return slashed or len(set(ids)) < len(ids) or any(len(set(k)) < len(k) for k in by_tunnel)


@DETERMINISTIC
@given(st.booleans().flatmap(polls), st.lists(st.booleans(), min_size=6, max_size=6))
def test_each_list_of_rows_tells_what_came_and_left_since_the_one_before(
    runs: list[Snapshot], expiring: list[bool]
) -> None:
    session = Session(ghost_seconds=7)  # ghosts go after a poll or two: the lists also lose ghosts
    last: Snapshot | None = None
    handed: ChangedRows[ConnRow] | None = None
    for n, poll in enumerate(runs):
        now = T0 + timedelta(seconds=5 * n)
        events = diff(last, poll)
        session.prepare(poll, events)
        session.on_snapshot(poll, now, events)
        for _ in range(2 if expiring[n] else 1):  # rows asked for again, after marks and ghosts expire (a tick)
            rows = session.rows(poll)
            assert isinstance(rows, ChangedRows) and rows.told
            if rows is handed:
                continue  # nothing changed: the very list handed out last time
            if rows.since is not None:
                assert handed is not None and rows.since is handed.token
                _told_right(handed, rows)
            else:
                # Not told only for the first list, or where an id is listed twice or holds a "/" (then keys may read
                # alike), in this poll or the one before.
                assert handed is None or _odd_ids(poll) or (last is not None and _odd_ids(last))
            handed = rows
            session.expire(now + timedelta(seconds=4))
        last = poll


class _Tables(App[None]):
    def compose(self) -> ComposeResult:
        yield ConnectionsTable(show_tunnel=True, id="told")
        yield ConnectionsTable(show_tunnel=True, id="fresh")


async def test_a_table_shown_the_lists_a_session_tells_ends_as_one_worked_out_from_scratch() -> None:
    async with _Tables().run_test(size=(160, 30)) as pilot:
        told = pilot.app.query_one("#told", ConnectionsTable)
        fresh = pilot.app.query_one("#fresh", ConnectionsTable)

        @settings(derandomize=True, database=None, deadline=None, max_examples=150)
        @given(st.booleans().flatmap(polls), st.lists(st.booleans(), min_size=6, max_size=6))
        def check(runs: list[Snapshot], planned: list[bool]) -> None:
            session = Session(ghost_seconds=7)
            told.show([], T0)
            last = None
            for n, poll in enumerate(runs):
                now = T0 + timedelta(seconds=5 * n)
                events = diff(last, poll)
                session.prepare(poll, events)
                session.on_snapshot(poll, now, events)
                rows, marks = session.rows(poll), dict(session.marks)
                if planned[n]:
                    assert told.adopt(told.plan(rows, marks), now)
                else:
                    told.show(rows, now, marks)
                fresh.show([], now)
                assert fresh.adopt(fresh.plan(list(rows), marks), now)
                assert [told.coordinate_to_cell_key((i, 0)).row_key.value for i in range(told.row_count)] == [
                    fresh.coordinate_to_cell_key((i, 0)).row_key.value for i in range(fresh.row_count)
                ]
                assert told.rows_by_key == fresh.rows_by_key
                for key in fresh.rows_by_key:
                    assert [told.get_cell(key, c) for c in COLUMNS] == [fresh.get_cell(key, c) for c in COLUMNS]
                session.expire(now + timedelta(seconds=4))
                last = poll

        check()


def _counted(states: tuple[TunnelState, ...]) -> tuple[Counter[str], Counter[str]]:
    conns = [c for s in states for k in s.connectors or () for c in k.conns]
    active = Counter(c.colo_name or "?" for c in conns if c.is_pending_reconnect is False)
    return active, Counter(c.colo_name or "?" for c in conns if c.is_pending_reconnect is True)


@st.composite
def _colo_polls(draw: st.DrawFn) -> list[Snapshot]:
    """Polls as ``polls`` makes them (each tunnel listed once), with connections in no colo ("" or None) and of no
    known state (None)."""
    runs = draw(polls(plain=True))
    odd = draw(st.lists(st.sampled_from(["", None, "NRT"]), min_size=1, max_size=4))
    out = []
    for n, poll in enumerate(runs):
        states = []
        for i, state in enumerate(poll.tunnels):
            if state.connectors is None or (n + i) % 3:
                states.append(state)  # kept (the same object as before, where it was)
                continue
            conn = Connection(id="z", colo_name=odd[(n + i) % len(odd)], is_pending_reconnect=None if i % 2 else True)
            states.append(TunnelState(state.tunnel, (*state.connectors, Connector(id="kz", conns=[conn]))))
        out.append(Snapshot("acc", poll.fetched_at, tuple(states)))
    return out


@DETERMINISTIC
@given(_colo_polls())
def test_colo_and_connection_counts_are_those_of_every_connection_counted(runs: list[Snapshot]) -> None:
    session = Session()
    last = None
    for n, poll in enumerate(runs):
        events = diff(last, poll)
        if n % 2:
            session.prepare(poll, events)
        session.on_snapshot(poll, T0 + timedelta(seconds=5 * n), events)
        active, pending = _counted(poll.tunnels)
        shown = session.colo_counts(poll)
        assert {c.colo: c.active for c in shown if c.active} == active
        assert {c.colo: c.pending for c in shown if c.pending} == pending
        for state in poll.tunnels:
            mine_active, mine_pending = _counted((state,))
            assert (state.active_count, state.pending_count) == (mine_active.total(), mine_pending.total())
            counts = session.tunnel_colo_counts(state)
            assert {c.colo: c.active for c in counts if c.active} == mine_active
            assert {c.colo: c.pending for c in counts if c.pending} == mine_pending
        last = poll
