"""The fault suite: every way the Cloudflare API can fail, injected through a real HTTP server on 127.0.0.1 while the
live app (and ``--once``) run against it, through the real client code.

For each fault the live app must not crash, must say clearly what is wrong, must keep the last good data on screen
marked STALE, must recover by itself when the server does (no key pressed), and must keep the session's history:
every event seen before the fault is still in the log, followed by one ``poll_failed`` for the streak and one
``poll_recovered``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from textual.pilot import Pilot

from tests.support.clock import FakeClock, no_sleep
from tests.support.live import (
    ANSWERED,
    HANG_TIMEOUT,
    HOME,
    SIZE,
    START,
    TOKEN,
    WEB,
    MovingClock,
    Warped,
    live_app,
    make_fake,
    record_notifications,
    wait_until,
)
from tests.support.ui import plain
from tunneltop.changes.events import ChangeEvent, EventKind
from tunneltop.cli import main
from tunneltop.demo.cfapi import FakeCloudflare, Fault
from tunneltop.demo.server import LoopbackServer
from tunneltop.demo.simulator import SimulatedAccount
from tunneltop.model.snapshot import TunnelState
from tunneltop.poll.engine import GONE
from tunneltop.poll.target import Target
from tunneltop.ui.app import TunneltopApp
from tunneltop.ui.detail import DetailPane


def log_oldest_first(app: TunneltopApp) -> list[ChangeEvent]:
    return list(reversed(list(app.session.log)))


def state_of(app: TunneltopApp, tunnel_id: str) -> TunnelState:
    assert app.snapshot is not None
    return next(t for t in app.snapshot.tunnels if t.tunnel.id == tunnel_id)


# One tunnel's refresh failing (its last connections kept, marked stale) and later succeeding again. The engine
# reads the named tunnels in budgeted cycles, so a fault can meet one tunnel's fetch before every tunnel has failed
# (the poll then succeeds, that tunnel alone marked stale), and the poll that recovers may not re-read them all.
PER_TUNNEL = frozenset({EventKind.TUNNEL_STALE, EventKind.TUNNEL_REFRESHED})


def poll_kinds(events: list[ChangeEvent]) -> list[EventKind]:
    """The events' kinds less the per-tunnel stale/refreshed notes: callers compare what is left exactly, so no
    other event may come."""
    return [e.kind for e in events if e.kind not in PER_TUNNEL]


def assert_last_data_kept(app: TunneltopApp) -> None:
    """Every watched tunnel still shows connections: a failed refresh keeps the last ones read (marked stale)."""
    assert app.snapshot is not None
    assert all(t.connectors for t in app.snapshot.tunnels), [(t.tunnel.name, t.error) for t in app.snapshot.tunnels]


@pytest.fixture
def fake() -> FakeCloudflare:
    return make_fake()


async def start_with_history(
    pilot: Pilot, app: TunneltopApp, fake: FakeCloudflare, mono: FakeClock | None = None
) -> list[ChangeEvent]:
    """Two good polls with a change between them (a connection closes), so the session has a history to keep.
    ``mono``: the app's hand-moved monotonic clock, moved on a second at a time until a poll has read the change
    (the budget paces the fetches: a cycle may read the tunnels' configurations and routes before their
    connections)."""
    await wait_until(pilot, lambda: app.poll_count >= 1)  # the first poll
    clients = fake.sim.clients(WEB)
    clients[0]["conns"].pop()
    fake.sim.set_clients(WEB, clients)

    def closed() -> bool:
        if mono is not None:
            mono.advance(1.0)
        return any(e.kind is EventKind.CONN_CLOSED for e in app.session.log)

    await wait_until(pilot, closed)  # the closed connection

    def all_read() -> bool:
        # A poll may leave a tunnel's connections for the next one when the budget has no token (a loaded machine).
        if mono is not None:
            mono.advance(1.0)
        tunnels = app.snapshot.tunnels if app.snapshot is not None else ()
        shown = {r.tunnel.id for r in app.table.rows_by_key.values()}
        return bool(tunnels) and all(t.connectors and t.tunnel.id in shown for t in tunnels)

    await wait_until(pilot, all_read)  # every watched tunnel's connections, on screen
    assert app.last_error is None and not app.header.stale
    return log_oldest_first(app)


async def assert_fault_handled(
    pilot: Pilot,
    app: TunneltopApp,
    history: list[ChangeEvent],
    expected: str,
    notes: list[tuple[str, str, object]],
) -> tuple[set[str], object]:
    """The fault is showing: clear message, last good data kept and marked STALE, nothing crashed."""
    rows = set(app.table.rows_by_key)
    await wait_until(pilot, lambda: app.last_error is not None)  # the failure to show
    # Changed on purpose: a poll that met the fault in one tunnel's fetch only (the budget's cycle had not reached
    # the others) succeeded, with that tunnel's last connections kept and marked stale; from the first failed poll
    # on, the screen keeps the last good snapshot.
    snapshot = app.snapshot
    failures = app.failures
    await wait_until(pilot, lambda: app.failures >= failures + 1)  # it keeps trying
    assert app.is_running
    message = app.status.message
    assert app.status.error
    assert expected.lower() in message.lower(), f"{message!r} does not say {expected!r}"
    assert message.endswith("showing the last good data")
    assert app.header.stale and "STALE" in str(app.header.render())
    assert app.snapshot is snapshot, "the last good snapshot stays"
    assert_last_data_kept(app)
    assert set(app.table.rows_by_key) == rows and rows, "the last good rows stay on screen"
    assert app.client_tree.node_for(WEB) is not None
    api_notes = [n for n in notes if n[0] == "Cloudflare API"]
    assert api_notes, "the failure is notified"
    assert all(markup is False for _, _, markup in api_notes)
    assert len(api_notes) == 1, "a failure streak with one message notifies once, not every poll"
    assert TOKEN not in message and all(TOKEN not in text for _, text, _ in notes)
    # History: everything from before, then one poll_failed for the whole streak.
    log = log_oldest_first(app)
    assert log[: len(history)] == history
    assert poll_kinds(log[len(history) :]) == [EventKind.POLL_FAILED]
    return rows, snapshot


async def assert_recovered(
    pilot: Pilot, app: TunneltopApp, history: list[ChangeEvent], rows: set[str], failed_polls: int = 2
) -> None:
    """The server is well again: the app notices by itself, clears STALE and keeps its history (a streak of at
    least ``failed_polls`` failed polls)."""
    polls = app.poll_count
    await wait_until(pilot, lambda: app.poll_count > polls)  # automatic recovery
    assert app.last_error is None and not app.status.error
    assert "last good data" not in app.status.message  # "recovered: …", then "updated …" on the next poll
    assert not app.header.stale and "STALE" not in str(app.header.render())
    assert_last_data_kept(app)
    assert set(app.table.rows_by_key) == rows
    # The tunnels the recovering poll did not re-read stay marked stale until the next polls read them.
    await wait_until(pilot, lambda: all(t.error is None for t in app.snapshot.tunnels))  # every tunnel read again
    assert set(app.table.rows_by_key) == rows
    log = log_oldest_first(app)
    assert log[: len(history)] == history, "the history from before the fault is intact"
    assert poll_kinds(log[len(history) :]) == [EventKind.POLL_FAILED, EventKind.POLL_RECOVERED]
    recovered = next(e for e in log[len(history) :] if e.kind is EventKind.POLL_RECOVERED)
    assert recovered.after["failed_polls"] >= failed_polls
    assert f"{recovered.after['failed_polls']} failed poll" in recovered.describe()
    assert app.is_running


# -- faults the server answers with ------------------------------------------------------------------------------



async def test_live_app_survives_and_recovers_from_each_fault_in_turn(
    fake: FakeCloudflare, server: LoopbackServer
) -> None:
    """One session through every answered fault: each is shown, kept STALE, recovered from, and logged once."""
    app = live_app(server.base_url, monotonic=Warped())
    notes = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        history = await start_with_history(pilot, app, fake)
        for name, (fault, expected) in ANSWERED.items():
            notes.clear()
            fake.inject(fault, times=10**6)
            rows, _ = await assert_fault_handled(pilot, app, history, expected, notes)
            fake.clear_faults()
            await assert_recovered(pilot, app, history, rows)
            added = log_oldest_first(app)[len(history) :]
            assert poll_kinds(added) == [EventKind.POLL_FAILED, EventKind.POLL_RECOVERED], name
            history = log_oldest_first(app)


async def test_connection_refused_then_the_server_comes_back(fake: FakeCloudflare) -> None:
    server = LoopbackServer(fake).start()
    port = server.port
    app = live_app(server.base_url)
    notes = record_notifications(app)
    try:
        async with app.run_test(size=SIZE) as pilot:
            history = await start_with_history(pilot, app, fake)
            server.stop()
            rows, _ = await assert_fault_handled(pilot, app, history, "could not reach the Cloudflare API", notes)
            assert "ConnectError" in app.status.message
            server = LoopbackServer(fake, port=port).start()
            await assert_recovered(pilot, app, history, rows)
    finally:
        server.stop()


async def test_token_revoked_mid_session_then_restored(fake: FakeCloudflare, server: LoopbackServer) -> None:
    # The live view keeps polling (within the budget) while the credentials are refused: a token fixed in the
    # dashboard is picked up with no key pressed. (--once and --watch exit 3 at once instead.)
    app = live_app(server.base_url)
    notes = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        history = await start_with_history(pilot, app, fake)
        accepted = list(fake._token_digests)
        fake._token_digests.clear()  # the token expires, or is rolled, while tunneltop watches
        expected = "Cloudflare refused the credentials (HTTP 403)"
        rows, _ = await assert_fault_handled(pilot, app, history, expected, notes)
        assert "Cloudflare Tunnel Read" in app.status.message  # says what to check
        assert "polling stopped" not in app.status.message
        fake._token_digests.extend(accepted)
        await assert_recovered(pilot, app, history, rows)


async def test_rate_limit_sends_nothing_until_retry_after_and_counts_down(
    fake: FakeCloudflare, server: LoopbackServer
) -> None:
    mono = FakeClock(5000.0)  # the app's countdown and the client's Retry-After gate, moved by hand
    app = live_app(server.base_url, monotonic=mono)
    notes = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        history = await start_with_history(pilot, app, fake, mono)
        rows = set(app.table.rows_by_key)
        app.paused = True  # so the 429 is the first answer of a poll (and a poll in flight ends first)
        await app.workers.wait_for_complete()
        before = len(fake.requests)
        fake.inject(Fault.rate_limited(300))
        mono.now += 10  # what is on screen is due again, and the budget has tokens for it
        app.paused = False
        await wait_until(pilot, lambda: app.last_error is not None)  # the 429
        sent = len(fake.requests)
        # The 429 stopped the poll: besides it, only what was already on its way (at most a poll's worth, two
        # requests per named tunnel); from here on nothing is sent (below).
        assert sent - before <= 4
        assert "rate limited" in app.status.message and "300 s" in app.status.message
        assert app.header.stale and set(app.table.rows_by_key) == rows
        assert [n[0] for n in notes] == ["Cloudflare API"]
        # The next poll is armed for when Retry-After ends, not the 1 s interval; the header counts down to it.
        assert app._next_poll_at == pytest.approx(mono.now + 300)
        app._tick()
        assert "next 300s" in str(app.header.render())
        mono.now += 120
        app._tick()
        assert "next 180s" in str(app.header.render())
        # Asking for a refresh, many times, sends nothing while the block lasts. Changed on purpose: r waits for
        # the budget (a reorder, never a bypass), so it re-arms the poll for the block's end instead of polling.
        failures = app.failures
        for _ in range(3):
            await pilot.press("r")
        assert "refreshing when the request budget allows (180 s)" in app.status.message
        await pilot.pause()
        assert len(fake.requests) == sent, "no request may be sent before Retry-After has passed"
        assert app.failures == failures and app.header.stale
        assert app._next_poll_at == pytest.approx(mono.now + 180), "refreshing did not shorten the wait"
        # Time passes; the armed poll fires (fired by hand: its Textual timer runs on real time) and recovers.
        mono.now += 181
        app._start_poll()
        await assert_recovered(pilot, app, history, rows, failed_polls=1)  # the refreshes were no polls
        assert len(fake.requests) > sent


# -- faults in the data ------------------------------------------------------------------------------------------


async def test_tunnel_deleted_mid_session(fake: FakeCloudflare, server: LoopbackServer) -> None:
    """Watched by id in a small account: one read of the tunnel list shows every watched tunnel, and a deleted one
    leaves it. Changed on purpose: named tunnels are read from the list (no GET cfd_tunnel/{id}), so a watched
    tunnel the list no longer shows turns unknown, "tunnel not found" (with more list pages than named tunnels,
    each is read by id, deleted ones included: next test)."""
    app = live_app(server.base_url)
    notes = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        history = await start_with_history(pilot, app, fake)
        home_rows = {k for k, r in app.table.rows_by_key.items() if r.tunnel.id == HOME}
        assert home_rows
        fake.sim.delete_tunnel(HOME)
        await wait_until(pilot, lambda: state_of(app, HOME).error == GONE)  # the deletion
        assert app.is_running and app.last_error is None and not app.status.error  # the poll did not fail
        state = state_of(app, HOME)
        assert state.connectors is None and state.health.value == "unknown", "gone: no connections, not fine"
        assert GONE == "tunnel not found: deleted, or no longer visible to these credentials"
        assert any(
            e.kind is EventKind.TUNNEL_FETCH_FAILED and e.tunnel_id == HOME and GONE in e.describe()
            for e in app.session.log
        )
        worse = [m for title, m, markup in notes if title == "Health worsened" and markup is False]
        assert any(m.startswith("home-lab: health healthy -> ") for m in worse), notes
        # Its connections stay a while as "gone" ghosts, so the loss is seen; the other tunnel stays live.
        assert {app.table.rows_by_key[k].state for k in home_rows} == {"gone"}
        assert any(r.tunnel.id == WEB and r.state == "active" for r in app.table.rows_by_key.values())
        assert log_oldest_first(app)[: len(history)] == history


async def test_tunnel_deleted_mid_session_read_by_id() -> None:
    """Fewer named tunnels than the tunnel list has pages: each is read with a ``uuid`` filter, deleted ones
    included, so a tunnel deleted while watched comes with ``deleted_at`` and the tree says DELETED."""
    sim = SimulatedAccount(start=START, tunnels=1001)  # two pages of the list, one tunnel watched
    sim.freeze()
    fake = FakeCloudflare(sim, tokens=[TOKEN], clock=lambda: START)
    watched = next(t for t in sim.list_tunnels() if t["status"] == "healthy")
    tid, name = watched["id"], watched["name"]
    with LoopbackServer(fake) as server:
        app = live_app(server.base_url, refs=[tid])
        notes = record_notifications(app)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.table.row_count > 0)  # the first poll with connections
            rows = set(app.table.rows_by_key)
            fake.sim.delete_tunnel(tid)
            await wait_until(pilot, lambda: state_of(app, tid).tunnel.deleted_at is not None)  # the deletion to be read
            assert app.is_running and app.last_error is None
            assert any("uuid" in dict(r.query) for r in fake.requests), "read by id"
            changed = next(e for e in app.session.log if e.kind is EventKind.TUNNEL_CHANGED and e.tunnel_id == tid)
            assert "deleted_at - -> 2026-11-28T12:00:00Z" in changed.describe()
            assert ("Health worsened", f"{name}: health healthy -> down", False) in notes
            assert {app.table.rows_by_key[k].state for k in rows} == {"gone"}
            assert app.client_tree.node_for(tid).label.plain.endswith(" DELETED")


async def test_tunnel_deleted_from_the_account_wide_view(fake: FakeCloudflare, server: LoopbackServer) -> None:
    """Watching the whole account: a deleted tunnel leaves the list, and that is logged as its removal."""
    # A budget of Cloudflare's whole quota, so that the list is read again within a tenth of a second.
    app = live_app(server.base_url, refs=None, clock=MovingClock(), budget_per_minute=1200)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.snapshot is not None)  # the first poll
        assert HOME in {t.tunnel.id for t in app.snapshot.tunnels}
        fake.sim.delete_tunnel(HOME)
        await wait_until(pilot, lambda: HOME not in {t.tunnel.id for t in app.snapshot.tunnels})  # the tunnel to go
        assert app.is_running and app.last_error is None
        removed = [e for e in app.session.log if e.kind is EventKind.TUNNEL_REMOVED]
        assert [e.tunnel_id for e in removed] == [HOME]
        assert removed[0].describe() == "home-lab: tunnel removed (deleted, or no longer visible)"


async def test_tunnel_watched_by_id_deleted_mid_session(fake: FakeCloudflare, server: LoopbackServer) -> None:
    """Deleted between the list and its connections fetch (or watched by id): a 404 for that tunnel alone."""
    app = live_app(server.base_url, refs=[HOME, WEB])
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.poll_count >= 1)
        fake.inject(Fault.error(404, 7003, "Could not route"), path_contains=f"{HOME}/connections", times=10**6)
        polls = app.poll_count
        await wait_until(pilot, lambda: app.poll_count > polls + 1)  # polls with the 404
        assert app.is_running and app.last_error is None  # the other tunnel is still fine
        state = next(t for t in app.snapshot.tunnels if t.tunnel.id == HOME)
        assert state.error == GONE and "deleted, or no longer visible" in state.error
        assert state.connectors is None and state.health.value == "unknown", "not its last connections: it has none"
        assert any(e.kind is EventKind.TUNNEL_FETCH_FAILED and e.tunnel_id == HOME for e in app.session.log)
        assert any(r.tunnel.id == WEB for r in app.table.rows_by_key.values())
        fake.clear_faults()
        await wait_until(
            pilot,
            lambda: any(e.kind is EventKind.TUNNEL_FETCH_RECOVERED for e in app.session.log),
        )  # the fetch to recover


def _drifted_clients(fake: FakeCloudflare) -> list[object]:
    """Per-record drift: fields missing, extra, null or of the wrong type, and records that are not records."""
    clients = fake.sim.clients(HOME)
    good = clients[0]
    conns = good["conns"]
    conns[0].pop("is_pending_reconnect")  # missing
    conns[0]["brand_new_field"] = {"nested": [1, None, "x"]}  # extra
    conns[1]["colo_name"] = None  # null
    conns[1]["opened_at"] = None
    conns[2]["is_pending_reconnect"] = "no"  # wrong type
    conns[2]["origin_ip"] = 203
    conns[3]["opened_at"] = "yesterday"
    conns.append({"colo_name": "NOID"})  # identity missing
    conns.append(["not", "a", "record"])
    good["features"] = "ha-origin"  # a string where a list belongs
    good["config_version"] = "twelve"
    good["run_at"] = "last tuesday"
    return [good, {"arch": "linux_amd64"}, None, 42, {"id": 7, "conns": []}, {"id": "k-null", "conns": None}]


async def test_schema_drift_per_record_spoils_only_that_record(fake: FakeCloudflare, server: LoopbackServer) -> None:
    app = live_app(server.base_url)
    async with app.run_test(size=SIZE) as pilot:
        history = await start_with_history(pilot, app, fake)
        drifted = _drifted_clients(fake)
        good_id = drifted[0]["id"]  # type: ignore[index]
        fake.sim.set_clients(HOME, drifted)
        await wait_until(
            pilot,
            lambda: any(t.tunnel.id == HOME and t.problems for t in (app.snapshot.tunnels if app.snapshot else ())),
        )  # the drifted poll
        assert app.is_running and app.last_error is None and not app.status.error
        assert "odd record(s) skipped or shown as unknown" in app.status.message
        state = next(t for t in app.snapshot.tunnels if t.tunnel.id == HOME)
        assert [c.id for c in state.connectors] == [good_id, "k-null"]
        good = state.connectors[0]
        assert (good.features, good.config_version, good.run_at) == ([], None, None)
        assert [c.state for c in good.conns] == ["unknown", "active", "unknown", "active"]
        assert good.conns[1].colo_name is None and good.conns[2].origin_ip is None
        assert good.conns[0].api_dict()["brand_new_field"] == {"nested": [1, None, "x"]}
        assert len(state.problems) >= 9
        rows = {k: r for k, r in app.table.rows_by_key.items() if r.tunnel.id == HOME and r.state != "gone"}
        assert len(rows) == 4
        assert {app.table.get_cell(k, "state").plain for k in rows} >= {"? unknown"}
        # Every other tunnel is untouched, and the history goes on.
        assert any(r.tunnel.id == WEB and r.state == "active" for r in app.table.rows_by_key.values())
        assert log_oldest_first(app)[: len(history)] == history
        # The tree and the detail pane show the odd records too.
        node = app.client_tree.node_for(f"{HOME}/{good_id}")
        assert node is not None
        app.client_tree.focus()
        app.client_tree.select_ref(HOME)
        await pilot.pause()
        assert "data problem" in plain(app.main_screen.query_one(DetailPane).shown)


async def test_tunnel_list_drift_and_duplicate_tunnels(fake: FakeCloudflare, server: LoopbackServer) -> None:
    """The whole account's tunnel list drifts: a tunnel listed twice, records without a usable id, a status of the
    wrong type."""
    # A budget of Cloudflare's whole quota, so that the list is read again within a tenth of a second.
    app = live_app(server.base_url, refs=None, clock=MovingClock(), budget_per_minute=1200)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.snapshot is not None)  # the first poll
        before = sorted(t.tunnel.id for t in app.snapshot.tunnels)
        listing = [t for t in fake.sim.list_tunnels() if t["deleted_at"] is None]
        web = next(t for t in listing if t["id"] == WEB)
        odd = [*listing, dict(web, name="web-prod-copy"), {"name": "no-id"}, dict(web, id=None), dict(web, id=17)]
        next(t for t in odd if t["id"] == HOME)["status"] = {"not": "a string"}
        fake.sim.iter_tunnels = lambda: iter(odd)  # type: ignore[method-assign]
        await wait_until(pilot, lambda: app.snapshot.problems)  # the drifted list
        assert app.is_running and app.last_error is None
        snapshot = app.snapshot
        ids = [t.tunnel.id for t in snapshot.tunnels]
        assert sorted(ids) == before, "one state per tunnel id: the later copy is skipped"
        assert next(t for t in snapshot.tunnels if t.tunnel.id == WEB).tunnel.name == "web-prod"
        assert next(t for t in snapshot.tunnels if t.tunnel.id == HOME).tunnel.status is None  # unknown, kept
        problems = [str(p) for p in snapshot.problems]
        assert len(problems) == 5
        assert any("duplicate tunnel id; later copy skipped" in p for p in problems)
        assert sum(n for _, n in app.header.tunnel_counts) == len(before), "the header counts each tunnel once"
        assert "odd record(s)" in app.status.message


async def test_duplicate_connector_and_connection_ids(fake: FakeCloudflare, server: LoopbackServer) -> None:
    app = live_app(server.base_url)
    async with app.run_test(size=SIZE) as pilot:
        history = await start_with_history(pilot, app, fake)
        rows = set(app.table.rows_by_key)
        clients = fake.sim.clients(WEB)
        clients[0]["conns"].append(dict(clients[0]["conns"][0], colo_name="DUP"))
        clients.append(dict(clients[0], arch="dup"))
        fake.sim.set_clients(WEB, clients)
        await wait_until(
            pilot,
            lambda: any(t.problems for t in app.snapshot.tunnels if t.tunnel.id == WEB),
        )  # the poll with duplicates
        assert app.is_running and app.last_error is None
        problems = [p.message for t in app.snapshot.tunnels for p in t.problems]
        assert sorted(problems) == [
            "duplicate connection id; later copy skipped",
            "duplicate connector id; later copy skipped",
        ]
        assert set(app.table.rows_by_key) == rows
        web_rows = [r for r in app.table.rows_by_key.values() if r.tunnel.id == WEB]
        assert "DUP" not in {r.conn.colo_name for r in web_rows}, "the later copy of a duplicate is skipped"
        assert "dup" not in {r.connector.arch for r in web_rows}
        assert log_oldest_first(app)[: len(history)] == history


# -- enormous ----------------------------------------------------------------------------------------------------

HUGE_CONNECTORS = 25_000  # x 4 connections = 100,000 connections in one response


def _huge_clients(fake: FakeCloudflare) -> list[dict[str, object]]:
    template = fake.sim.clients(WEB)[0]
    conn = template["conns"][0]
    clients = []
    for i in range(HUGE_CONNECTORS):
        cid = f"{i:08x}-0000-4000-8000-000000000000"
        clients.append(
            dict(
                template,
                id=cid,
                conns=[
                    dict(conn, id=f"{i:08x}-{j:04x}-4000-8000-{i:012x}", colo_name=("DFW", "LAX", "AMS", "SIN")[j])
                    for j in range(4)
                ],
            )
        )
    return clients


@pytest.mark.slow  # a real process end to end: run with pytest -m slow (CI does)
def test_once_with_100k_connections_in_one_response(
    fake: FakeCloudflare, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.sim.set_clients(WEB, _huge_clients(fake), status="healthy")
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", server.base_url)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    began = time.perf_counter()
    code = main(["--once", "web-prod"])
    took = time.perf_counter() - began
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert "health=healthy  active=100000  pending=0" in out
    rows = [line for line in out.splitlines() if line.endswith("1xAMS, 1xDFW, 1xLAX, 1xSIN  0")]
    assert len(rows) == HUGE_CONNECTORS
    print(f"--once, 100,000 connections in one response: {took:.1f} s")  # about 2.5 s here (-o json: 4 s)


# -- --once: every fault is exit 3 with a clear line on stderr, and the next run after recovery is fine ----------


@pytest.fixture
def once_env(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> LoopbackServer:
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", server.base_url)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    original = Target.client

    def client(self: Target, **options: object):
        options.update(timeout=httpx.Timeout(HANG_TIMEOUT), request_deadline=HANG_TIMEOUT * 2, sleep=no_sleep)
        return original(self, **options)

    monkeypatch.setattr(Target, "client", client)
    return server


ONCE_FAULTS = {
    **ANSWERED,
    "429": (Fault.rate_limited(300), "rate limited"),
    "token-rejected": (Fault.error(403, 10000, "Authentication error"), "Cloudflare Tunnel Read"),
}


# Every fault with both outputs; the hang (the slow one) with one.
ONCE_CASES = [(n, o) for n in sorted(ONCE_FAULTS) for o in ("table", "json") if (n, o) != ("hang", "json")]


@pytest.mark.parametrize(("name", "output"), ONCE_CASES)
def test_once_fails_cleanly_then_recovers(
    name: str,
    output: str,
    fake: FakeCloudflare,
    once_env: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    fault, expected = ONCE_FAULTS[name]
    fake.inject(fault, times=10**6)
    code = main(["--once", "-o", output])
    out, err = capsys.readouterr()
    assert code == 3
    # Nothing half-written on stdout: the JSON has nothing, the table the monitoring plugin's one status line.
    assert out == "" if output == "json" else out.startswith("TUNNELTOP UNKNOWN - ") and out.count("\n") == 1
    assert err.startswith("tunneltop: ") and err.count("\n") == 1
    assert expected.lower() in err.lower(), err
    assert TOKEN not in err
    fake.clear_faults()
    fake.reset_rate_limit()
    if name == "429":
        # Changed on purpose: a 429 holds back every tunneltop process on the credential (the budget's shared
        # ledger), so a run right after it sends nothing and says so. Once Retry-After has passed (here: a ledger
        # without the block, as a later run would find) the next run is fine.
        sent = len(fake.requests)
        code = main(["--once", "-o", output, "web-prod"])
        out, err = capsys.readouterr()
        assert code == 3 and (out == "" if output == "json" else out.startswith("TUNNELTOP UNKNOWN - rate limited"))
        assert "rate limited" in err.lower() and err.count("\n") == 1, err
        assert len(fake.requests) == sent, "nothing is sent while the 429's Retry-After lasts"
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    code = main(["--once", "-o", output, "web-prod"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "web-prod" in out


def test_once_connection_refused(fake: FakeCloudflare, once_env: LoopbackServer, capsys) -> None:
    once_env.stop()
    code = main(["--once"])
    out, err = capsys.readouterr()
    assert code == 3
    assert out.startswith("TUNNELTOP UNKNOWN - could not reach the Cloudflare API") and out.count("\n") == 1
    assert "could not reach the Cloudflare API: ConnectError" in err and TOKEN not in err


def test_once_drift_and_duplicates_are_problems_not_failures(fake: FakeCloudflare, once_env, capsys) -> None:
    drifted = _drifted_clients(fake)
    drifted.append(dict(drifted[0]))  # a duplicated connector
    fake.sim.set_clients(HOME, drifted, status="healthy")
    code = main(["--once", "-o", "json", "home-lab"])
    doc = json.loads(capsys.readouterr().out)
    [tunnel] = doc["tunnels"]
    assert [c["id"] for c in tunnel["clients"]] == [drifted[0]["id"], "k-null"]
    assert any("duplicate connector id" in p for p in tunnel["problems"])
    assert tunnel["clients"][0]["conns"][0]["brand_new_field"] == {"nested": [1, None, "x"]}
    assert code in (0, 1, 2)
    code = main(["--once", "home-lab"])
    out = capsys.readouterr().out
    assert "problem: connector" in out
