"""The overview's data: rows per tunnel, the notices above them, and how the poll engine merges a whole account's
polls."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.clock import FakeClock
from tunneltop.api import CloudflareClient, RateLimitedError, RequestGate, ServerError
from tunneltop.demo.cfapi import FakeCloudflare, Fault
from tunneltop.demo.simulator import DEMO_TUNNELS, SimulatedAccount
from tunneltop.demo.transport import DEMO_BASE_URL, DemoTransport
from tunneltop.model import Connection, Connector, Health, RecordProblem, Snapshot, Tunnel, TunnelState
from tunneltop.model.findings import Finding, Severity
from tunneltop.poll.engine import REFUSED, PollEngine, PollOutcome
from tunneltop.views.overview import NO_TUNNELS, OverviewRows, coverage, notices, oldest_version, summaries

START = datetime(2025, 3, 1, tzinfo=UTC)
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def conn(cid: str, colo: str, pending: bool | None = False) -> Connection:
    return Connection(id=cid, colo_name=colo, is_pending_reconnect=pending)


def connector(cid: str, version: str | None, *conns: Connection) -> Connector:
    return Connector(id=cid, version=version, conns=list(conns))


def tunnel(name: str, status: str, tid: str | None = None, **extra: object) -> Tunnel:
    return Tunnel(id=tid or f"id-{name}", name=name, status=status, **extra)


# -- rows --------------------------------------------------------------------------------------------------------


def test_a_row_per_tunnel_with_counts_edges_oldest_version_and_age() -> None:
    active_at = T0 - timedelta(days=2)
    state = TunnelState(
        tunnel("web", "degraded", conns_active_at=active_at),
        (
            connector("k1", "2024.10.1", conn("a", "DFW"), conn("b", "LAX"), conn("c", "DFW", pending=True)),
            connector("k2", "2024.9.0", conn("d", "DFW"), conn("e", "DFW", pending=None)),
        ),
        fetched_at=T0 - timedelta(seconds=90),
    )
    [row] = summaries(Snapshot("acc", T0, (state,)))
    assert (row.id, row.label, row.health, row.status) == ("id-web", "web", Health.DEGRADED, "degraded")
    assert (row.connectors, row.active, row.pending) == (2, 3, 1)
    assert row.edges == "3xDFW, 1xLAX"  # the pending one left out, as cloudflared prints it
    assert row.oldest_version == "2024.9.0"  # numerically older than 2024.10.1
    assert row.conns_active_at == active_at and row.last_change == active_at
    assert row.fetched_at == T0 - timedelta(seconds=90)
    assert row.age == timedelta(seconds=90)
    later = summaries(Snapshot("acc", T0, (state,)), now=T0 + timedelta(minutes=1))
    assert later[0].age == timedelta(seconds=150)


def test_oldest_version_compares_numbers_and_ignores_unknowns() -> None:
    mixed = [connector("a", "2025.1.0"), connector("b", None), connector("c", "2024.12.2")]
    assert oldest_version(mixed) == "2024.12.2"
    assert oldest_version([connector("a", None)]) is None
    assert oldest_version([]) is None


def test_rows_go_worst_health_first_then_by_name() -> None:
    healthy = (connector("k", "2025.1.0", conn("a", "DFW")),)
    states = (
        TunnelState(tunnel("b-ok", "healthy"), healthy),
        TunnelState(tunnel("A-ok", "healthy"), healthy),
        TunnelState(tunnel("lost", "healthy"), None, (), "Cloudflare answered HTTP 502"),
        TunnelState(tunnel("new", "inactive"), ()),
        TunnelState(tunnel("gone", "down"), ()),
        TunnelState(tunnel("flaky", "degraded"), None),  # not fetched yet: the list's word
    )
    rows = summaries(Snapshot("acc", T0, states))
    # Inactive (never run) is neutral: last, below healthy, never above an incident.
    assert [r.name for r in rows] == ["lost", "gone", "flaky", "A-ok", "b-ok", "new"]
    assert [r.health for r in rows] == [
        Health.UNKNOWN,
        Health.DOWN,
        Health.DEGRADED,
        Health.HEALTHY,
        Health.HEALTHY,
        Health.INACTIVE,
    ]


def test_findings_rank_a_row_between_degraded_and_healthy_or_with_degraded() -> None:
    healthy = (connector("k", "2025.1.0", conn("a", "DFW")),)
    warn = Finding("old_release", Severity.WARNING, "old", "upgrade")
    crit = Finding("origin_ips", Severity.CRITICAL, "stranger", "look")
    states = (
        TunnelState(tunnel("a-ok", "healthy"), healthy),
        TunnelState(tunnel("b-warn", "healthy"), healthy, findings=(warn,)),
        TunnelState(tunnel("c-crit", "healthy"), healthy, findings=(crit, warn)),
        TunnelState(tunnel("d-degraded", "degraded"), None),
        TunnelState(tunnel("e-required", "inactive"), (), findings=(crit,)),
        TunnelState(tunnel("f-idle", "inactive"), ()),
    )
    rows = summaries(Snapshot("acc", T0, states))
    assert [r.name for r in rows] == ["c-crit", "d-degraded", "e-required", "b-warn", "a-ok", "f-idle"]
    assert rows[0].findings == (crit, warn)


def test_a_tunnel_not_fetched_yet_has_the_lists_health_and_no_counts() -> None:
    state = TunnelState(tunnel("web", "healthy"), None)
    assert state.health is Health.HEALTHY
    [row] = summaries(Snapshot("acc", T0, (state,)))
    assert (row.connectors, row.active, row.pending, row.age, row.error) == (None, None, None, None, None)
    assert row.edges == ""
    # A fetch that failed is another matter: nothing confirms the list's word.
    assert TunnelState(tunnel("web", "healthy"), None, (), "HTTP 502").health is Health.UNKNOWN
    assert TunnelState(tunnel("odd", "sideways"), None).health is Health.UNKNOWN


def test_rows_from_a_one_shot_snapshot_are_as_old_as_the_snapshot() -> None:
    state = TunnelState(tunnel("web", "healthy"), (connector("k", "2025.1.0", conn("a", "DFW")),))
    [row] = summaries(Snapshot("acc", T0, (state,)))
    assert (row.fetched_at, row.age) == (T0, timedelta(0))


def test_live_rows_keep_each_tunnels_counts_for_its_state_and_forget_tunnels_that_went() -> None:
    web = TunnelState(tunnel("web", "healthy"), (connector("k", "2025.1.0", conn("a", "DFW")),), fetched_at=T0)
    db = TunnelState(tunnel("db", "degraded"), (connector("k", "2024.9.0", conn("b", "LAX")),), fetched_at=T0)
    live, other = OverviewRows(), OverviewRows()
    first = live.summaries(Snapshot("acc", T0, (web, db)))
    assert first == summaries(Snapshot("acc", T0, (web, db)))  # the same rows as worked out afresh
    counted = live._counted["id-web"][1]
    # The same state object: its counts are not worked out again (the very same tuple), only its age moves on.
    later = live.summaries(Snapshot("acc", T0, (web, db)), now=T0 + timedelta(minutes=1))
    assert live._counted["id-web"][1] is counted
    assert [r.age for r in later] == [timedelta(minutes=1)] * 2
    assert later == summaries(Snapshot("acc", T0, (web, db)), now=T0 + timedelta(minutes=1))
    # A new state of the same tunnel is counted afresh.
    web2 = TunnelState(web.tunnel, (connector("k", "2025.1.0", conn("a", "DFW"), conn("c", "LAX")),))
    [_, row] = live.summaries(Snapshot("acc", T0, (web2, db)))
    assert row.edges == "1xDFW, 1xLAX" and live._counted["id-web"][0] is web2
    # A tunnel that went is forgotten with the next call, and one that came is remembered.
    new = TunnelState(tunnel("new", "inactive"), ())
    live.summaries(Snapshot("acc", T0, (db, new)))
    assert set(live._counted) == {"id-db", "id-new"}
    live.summaries(Snapshot("acc", T0, ()))
    assert live._counted == {}
    # Two overviews share nothing; the plain function keeps nothing.
    assert other._counted == {}
    other.summaries(Snapshot("acc", T0, (web,)))
    assert set(other._counted) == {"id-web"} and live._counted == {}


# -- notices -----------------------------------------------------------------------------------------------------


def test_an_empty_account_says_so_and_names_the_permission() -> None:
    assert notices(Snapshot("acc", T0, ())) == [NO_TUNNELS]
    assert "Cloudflare Tunnel Read" in NO_TUNNELS


def test_a_list_that_may_be_partial_says_why() -> None:
    refused = TunnelState(tunnel("x", "healthy"), None, (), REFUSED + "Cloudflare refused the credentials (HTTP 403)")
    ok = TunnelState(tunnel("y", "healthy"), (connector("k", "2025.1.0", conn("a", "DFW")),))
    said = notices(Snapshot("acc", T0, (refused, ok), problems=(RecordProblem("tunnel #3", "id: missing"),)))
    assert any("1 tunnel record(s)" in n for n in said)
    assert any("refused the connections of 1 tunnel(s)" in n and "may be partial" in n for n in said)
    assert notices(Snapshot("acc", T0, (), problems=(RecordProblem("tunnel #1", "id: missing"),))) != [NO_TUNNELS]


def test_warm_up_is_explained_until_every_running_tunnel_has_details() -> None:
    fetched = TunnelState(tunnel("a", "healthy"), (), fetched_at=T0 - timedelta(minutes=3))
    waiting = TunnelState(tunnel("b", "healthy"), None)
    never_ran = TunnelState(tunnel("c", "inactive"), ())
    snap = Snapshot("acc", T0, (fetched, waiting, never_ran))
    assert coverage(snap).__dict__ == {
        "tunnels": 3,
        "need_connections": 2,
        "with_connections": 1,
        "oldest": timedelta(minutes=3),
    }
    assert notices(snap) == [
        "connection details for 1 of 2 tunnels so far (fetched a few at a time within the request budget); "
        "health of the others is from the tunnel list"
    ]
    assert notices(Snapshot("acc", T0, (fetched, never_ran))) == []


# -- the poll engine, account-wide ------------------------------------------------------------------------------------


class Demo:
    """The hand-made demo account, frozen, behind FakeCloudflare, polled on a fake clock."""

    def __init__(self, sim: SimulatedAccount | None = None, interval: float = 5.0) -> None:
        self.clock = FakeClock(0.0)
        self.sim = sim or SimulatedAccount(start=START)
        self.sim.freeze()
        self.cf = FakeCloudflare(self.sim, require_auth=False, clock=self.wall)
        self.client = CloudflareClient(
            None,
            DEMO_BASE_URL,
            transport=DemoTransport(self.cf),
            clock=self.clock,
            sleep=self.clock.sleep,
            rng=random.Random(2),
            gate=RequestGate(60, clock=self.clock),
        )
        self.engine = PollEngine(
            self.client, self.sim.account_id, interval=interval, now=self.wall, account_name="Demo"
        )
        self.interval = interval

    def wall(self) -> datetime:
        return START + timedelta(seconds=self.clock.now)

    async def outcome(self) -> PollOutcome:
        outcome = await self.engine.poll()
        self.clock.advance(self.interval)
        return outcome

    async def poll(self) -> Snapshot:
        outcome = await self.outcome()
        assert outcome.error is None and outcome.snapshot is not None, outcome
        return outcome.snapshot

    def connection_paths(self, since: int = 0, until: int | None = None) -> list[str]:
        return [r.path.split("/")[-2] for r in self.cf.requests[since:until] if r.path.endswith("/connections")]


def by_name(snapshot: Snapshot) -> dict[str, TunnelState]:
    return {s.tunnel.name or "": s for s in snapshot.tunnels}


async def test_the_first_poll_lists_every_tunnel_and_fetches_what_the_budget_allows() -> None:
    demo = Demo()
    snap = await demo.poll()
    names = by_name(snap)
    assert set(names) == set(DEMO_TUNNELS) - {"old-blog"}  # deleted tunnels are not shown
    assert snap.account_name == "Demo"
    assert len(demo.cf.requests) == 5  # the list, then four tunnels' connections (a 5-request burst)
    assert "cfd_tunnel" in demo.cf.requests[0].path and demo.cf.requests[0].path.endswith("cfd_tunnel")
    # Worst first: the down and degraded tunnels' details come before the healthy ones'.
    assert demo.connection_paths()[:2] == [DEMO_TUNNELS["batch-etl"], DEMO_TUNNELS["api-staging"]]
    # Never run: no request, and inactive.
    assert DEMO_TUNNELS["office-router-new"] not in demo.connection_paths()
    assert names["office-router-new"].health is Health.INACTIVE
    # Every tunnel has a health at once: fetched ones from their connections, the others from the list.
    assert Health.UNKNOWN not in {s.health for s in snap.tunnels}
    waiting = [s for s in snap.tunnels if s.connectors is None]
    assert len(waiting) == 1 and waiting[0].error is None and waiting[0].fetched_at is None
    # Read by this very poll: "as of the snapshot" (the engine's None), which the row shows as the snapshot's time.
    assert names["batch-etl"].fetched_at is None
    assert {r.name: r.fetched_at for r in summaries(snap)}["batch-etl"] == START
    assert demo.cf.non_get_requests == []


async def test_later_polls_keep_what_was_fetched_and_unchanged_tunnels_keep_their_state_object() -> None:
    demo = Demo()
    first = await demo.poll()
    second = await demo.poll()
    assert coverage(second).with_connections == coverage(second).need_connections == 5
    assert notices(second) == []
    read_first, read_now = set(demo.connection_paths(until=5)), set(demo.connection_paths(since=5))
    pairs = list(zip(first.tunnels, second.tunnels, strict=True))
    never_ran = [(old, new) for old, new in pairs if old.tunnel.status == "inactive"]
    reread = [(old, new) for old, new in pairs if old.tunnel.id in read_first & read_now]
    kept = [(old, new) for old, new in pairs if old.tunnel.id in read_first - read_now]
    assert never_ran and reread and kept
    for old, new in never_ran + reread:
        assert new is old  # nothing to read, or read again and found unchanged: the change engine skips it by identity
    # Changed on purpose: a tunnel read by a poll is "as of the snapshot" (fetched_at None); the next poll that
    # does not read it gives it a new state saying when its connections were read (the very same ones).
    for old, new in kept:
        assert new.connectors is old.connectors and (old.fetched_at, new.fetched_at) == (None, START)
    rows = summaries(second, now=START + timedelta(seconds=5))
    aged = {r.name: r.age for r in rows if r.age is not None and r.age > timedelta(0)}  # older data says how old
    assert aged == {new.tunnel.name: timedelta(seconds=5) for _, new in kept}


async def test_a_deleted_tunnel_leaves_with_the_next_list() -> None:
    demo = Demo()
    await demo.poll()
    demo.sim.delete_tunnel(DEMO_TUNNELS["home-lab"])
    snap = await demo.poll()
    assert "home-lab" not in by_name(snap)


async def test_a_failed_refresh_keeps_the_older_connections_and_says_why() -> None:
    demo = Demo()
    await demo.poll()
    await demo.poll()
    web = DEMO_TUNNELS["web-prod"]
    demo.cf.inject(Fault.error(500), path_contains=f"{web}/connections", times=100)
    snaps = [await demo.poll() for _ in range(3)]
    state = by_name(snaps[-1])["web-prod"]
    assert state.connectors and state.error is not None and "HTTP 500" in state.error
    assert state.health is Health.HEALTHY  # from the connections last seen
    assert state.fetched_at is not None and state.fetched_at < demo.wall() - timedelta(seconds=5)


async def test_a_refused_tunnel_is_marked_for_the_partial_list_notice() -> None:
    demo = Demo()
    home = DEMO_TUNNELS["home-lab"]
    demo.cf.inject(Fault.error(403, code=10000, message="Authentication error"), path_contains=home, times=100)
    await demo.poll()
    snap = await demo.poll()
    state = by_name(snap)["home-lab"]
    assert state.error is not None and state.error.startswith(REFUSED) and state.health is Health.UNKNOWN
    assert any("permissions look narrow" in n for n in notices(snap))


async def test_a_tunnel_whose_list_entry_changed_is_refetched_first() -> None:
    demo = Demo(interval=30.0)
    await demo.poll()  # 30 s: everything fetched at once
    seen = len(demo.cf.requests)
    home = DEMO_TUNNELS["home-lab"]
    demo.sim.set_clients(home, [], status="down")
    snap = await demo.poll()
    assert demo.connection_paths(since=seen)[0] == home
    assert by_name(snap)["home-lab"].health is Health.DOWN


async def test_an_empty_account() -> None:
    demo = Demo(SimulatedAccount(start=START, tunnels=0))
    snap = await demo.poll()
    assert snap.tunnels == () and notices(snap) == [NO_TUNNELS]
    assert len(demo.cf.requests) == 1


async def test_a_first_poll_while_rate_limited_sends_nothing_and_says_how_long() -> None:
    demo = Demo()
    demo.client.gate.observe(None, retry_after=120)  # a 429's Retry-After, seen before this engine's first poll
    outcome = await demo.engine.poll()
    assert outcome.snapshot is None and isinstance(outcome.error, RateLimitedError)
    assert outcome.retry_after == pytest.approx(120)
    assert demo.cf.requests == []


async def test_a_failed_list_raises_and_the_next_poll_recovers_with_the_data_kept() -> None:
    demo = Demo()
    first = await demo.poll()
    demo.cf.inject(Fault.html_page(502), path_contains="cfd_tunnel", times=4)
    failed = await demo.outcome()
    assert failed.snapshot is None and isinstance(failed.error, ServerError) and not failed.permanent
    snap = await demo.poll()
    assert {s.tunnel.id for s in snap.tunnels} == {s.tunnel.id for s in first.tunnels}
    assert demo.engine.list_fetched_at == demo.wall() - timedelta(seconds=5)


async def test_the_interval_can_change_while_running() -> None:
    demo = Demo()
    demo.engine.interval = 30
    assert demo.engine.planner.interval == 30.0
    await demo.poll()
    assert len(demo.cf.requests) == 6  # one 30 s interval's worth: the list and all five
