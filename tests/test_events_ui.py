"""The live view shows the readable events (issue 13): a ghost's detail says gone, and a failover is one line of the
event log that a filter on its colo keeps."""

from __future__ import annotations

from datetime import timedelta

from textual.pilot import Pilot

from tests.support.ui import WallClock, make_app, plain, wait_for_poll
from tunneltop.changes.events import EventKind
from tunneltop.demo.simulator import DEMO_TUNNELS
from tunneltop.ui.app import TunneltopApp
from tunneltop.ui.detail import DetailPane
from tunneltop.views.filters import Filter

SIZE = (130, 44)
WEB = DEMO_TUNNELS["web-prod"]


async def _poll(pilot: Pilot[None], app: TunneltopApp, clock: WallClock) -> None:
    clock.now += timedelta(seconds=5)
    done = app.poll_count + app.failures
    await pilot.press("r")
    await wait_for_poll(pilot, app, count=done + 1)


async def test_a_ghost_of_a_pending_connection_says_gone_in_the_detail_pane() -> None:
    clock = WallClock()
    app, fake = make_app(clock=clock, ghost_seconds=60)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        clients = fake.sim.clients(WEB)
        clients[0]["conns"][0]["is_pending_reconnect"] = True
        fake.sim.set_clients(WEB, clients)
        await _poll(pilot, app, clock)
        clients = fake.sim.clients(WEB)
        gone = clients[0]["conns"].pop(0)
        fake.sim.set_clients(WEB, clients)
        await _poll(pilot, app, clock)
        key = f"{WEB}/{clients[0]['id']}/{gone['id']}"
        assert app.table.select_key(key), "the closed connection stays as a ghost row"
        app.table.focus()
        await pilot.pause()
        detail = plain(app.query_one(DetailPane).shown)
        assert "✖ gone" in detail and "PENDING" not in detail
        assert "it was pending a reconnect" in detail


async def test_a_failover_is_one_line_of_the_event_log_and_a_colo_filter_keeps_it() -> None:
    clock = WallClock()
    app, fake = make_app(clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_poll(pilot, app)
        clients = fake.sim.clients(WEB)
        conns = clients[0]["conns"]
        dfw = [c for c in conns if c["colo_name"] == "DFW"]
        clients[0]["conns"] = [c for c in conns if c not in dfw] + [
            {**c, "id": f"{c['id'][:-4]}beef", "colo_name": "ORD"} for c in dfw
        ]
        fake.sim.set_clients(WEB, clients)
        await _poll(pilot, app, clock)
        moved = [e for e in app.session.log if e.kind is EventKind.COLO_MOVED]
        assert len(moved) == 1 and "moved DFW→ORD" in moved[0].describe()
        assert not [e for e in app.session.log if e.kind in (EventKind.CONN_CLOSED, EventKind.CONN_OPENED)]
        app.filter = Filter.parse("colo:ORD")
        assert app.event_matches(moved[0]), "a filter on the colo it moved to keeps the failover line"
        app.filter = Filter.parse("colo:SEA")
        assert not app.event_matches(moved[0])
