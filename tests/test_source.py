"""The poll engine over a small fake API: which account, which tunnels, and what each poll costs.

The client takes every request's token from a ``RequestGate`` on a fake clock, so what reaches the fake API is
exactly what the engine planned within the budget.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.clock import FakeClock
from tunneltop.api import (
    ApiError,
    AuthError,
    CloudflareClient,
    Credentials,
    NotFoundError,
    RateLimitedError,
    RequestGate,
    RetryPolicy,
    UsageError,
)
from tunneltop.changes.events import EventKind
from tunneltop.model import Account, Health, Snapshot
from tunneltop.model.records import Connection, Connector, Tunnel
from tunneltop.poll.account import AccountChoiceNeeded, resolve_account
from tunneltop.poll.engine import FETCH_CONCURRENCY, GONE, REFUSED, STALE_LIMIT, PollEngine

ACCOUNT = "0123456789abcdef0123456789abcdef"
WEB = "11111111-1111-4111-8111-111111111111"
DB = "22222222-2222-4222-8222-222222222222"
NEW = "33333333-3333-4333-8333-333333333333"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def conn(cid: str, colo: str = "DFW", pending: bool = False) -> dict:
    return {"id": cid, "colo_name": colo, "origin_ip": "203.0.113.5", "is_pending_reconnect": pending}


class FakeApi:
    """Enough of Cloudflare for the source: accounts, tunnel list/get, connections; records every request."""

    def __init__(self) -> None:
        self.accounts = [{"id": ACCOUNT, "name": "Acme"}]
        self.tunnels = {
            WEB: {"id": WEB, "name": "web", "status": "healthy"},
            DB: {"id": DB, "name": "db", "status": "degraded"},
            NEW: {"id": NEW, "name": "new", "status": "inactive"},
        }
        self.clients = {
            WEB: [{"id": "k1", "conns": [conn("a"), conn("b", "LAX")]}],
            DB: [{"id": "k2", "conns": [conn("c"), conn("d", pending=True)]}, {"conns": []}],
            NEW: [],
        }
        self.overrides: dict[str, httpx.Response] = {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/client/v4/")
        for fragment, response in self.overrides.items():
            if fragment in path:
                return response
        parts = path.split("/")
        if parts == ["accounts"]:
            return self.ok(self.accounts)
        if parts[:3] == ["accounts", ACCOUNT, "cfd_tunnel"]:
            if len(parts) == 3:
                name = request.url.params.get("name")
                rows = [t for t in self.tunnels.values() if name is None or t["name"] == name]
                return self.ok(rows, {"page": 1, "per_page": 1000, "count": len(rows), "total_count": len(rows)})
            if parts[3] in self.tunnels:
                if len(parts) == 4:
                    return self.ok(self.tunnels[parts[3]])
                if parts[4:] == ["connections"]:
                    return self.ok(self.clients[parts[3]])
        return httpx.Response(404, json={"success": False, "errors": [{"code": 7003, "message": "no route"}]})

    @staticmethod
    def ok(result: object, info: dict | None = None) -> httpx.Response:
        body = {"success": True, "errors": [], "messages": [], "result": result}
        if info:
            body["result_info"] = info
        return httpx.Response(200, json=body)

    @property
    def paths(self) -> list[str]:
        return [r.url.path.removeprefix(f"/client/v4/accounts/{ACCOUNT}/") for r in self.requests]


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
async def client(api, clock):
    async with CloudflareClient(
        Credentials.token("cfut_source"),
        "https://api.cloudflare.test/client/v4",
        transport=httpx.MockTransport(api),
        retry=RetryPolicy(retries=1),
        sleep=clock.sleep,
        clock=clock,
        gate=RequestGate(60, clock=clock),
    ) as c:
        yield c


def wall(clock: FakeClock) -> Callable[[], datetime]:
    """The engine's wall clock: NOW when the test starts, then moving with the fake monotonic clock."""
    start = clock.now
    return lambda: NOW + timedelta(seconds=clock.now - start)


def engine(client: CloudflareClient, clock: FakeClock, refs: tuple[str, ...] = (), **options) -> PollEngine:
    return PollEngine(client, ACCOUNT, refs, now=wall(clock), **options)


async def polled(source: PollEngine) -> Snapshot:
    outcome = await source.poll()
    assert outcome.error is None and outcome.holding is None and outcome.snapshot is not None, outcome
    return outcome.snapshot


def by_id(snapshot: Snapshot) -> dict:
    return {t.tunnel.id: t for t in snapshot.tunnels}


# -- account ---------------------------------------------------------------------------------------------------


async def test_a_named_account_needs_no_request(api, client):
    account = await resolve_account(client, ACCOUNT)
    assert account == Account(id=ACCOUNT)
    assert api.requests == []


async def test_the_only_account_is_used(api, client):
    account = await resolve_account(client, None)
    assert (account.id, account.name) == (ACCOUNT, "Acme")
    assert client.gate.sent == 1, "the look-up takes its token from the budget like any request"


async def test_several_accounts_need_a_choice(api, client):
    api.accounts = [{"id": "a" * 32, "name": "One"}, {"id": "b" * 32, "name": "Two"}]
    with pytest.raises(AccountChoiceNeeded) as info:
        await resolve_account(client, None)
    assert [a.name for a in info.value.accounts] == ["One", "Two"]
    assert "2 accounts" in str(info.value) and "--account" in str(info.value)


async def test_no_account_is_not_found(api, client):
    api.accounts = []
    with pytest.raises(NotFoundError, match="--account"):
        await resolve_account(client, None)


# -- polling ---------------------------------------------------------------------------------------------------


async def test_poll_every_tunnel(api, client):
    source = PollEngine(client, ACCOUNT, account_name="Acme", now=lambda: NOW)
    snapshot = await polled(source)
    assert snapshot.account_id == ACCOUNT and snapshot.account_name == "Acme"
    assert snapshot.fetched_at == NOW
    by_name = {t.tunnel.name: t for t in snapshot.tunnels}
    assert by_name["web"].health is Health.HEALTHY
    assert by_name["db"].health is Health.DEGRADED
    assert by_name["db"].pending_count == 1
    assert [p.where for p in by_name["db"].problems] == ["connector #2"]
    assert by_name["new"].health is Health.INACTIVE
    assert snapshot.health is Health.DEGRADED  # the worst: a never-run tunnel is neutral, below an incident
    # The never-run tunnel costs no connections request.
    assert sorted(api.paths) == sorted(["cfd_tunnel", f"cfd_tunnel/{WEB}/connections", f"cfd_tunnel/{DB}/connections"])


async def test_an_unchanged_poll_hands_back_the_same_tunnels(api, client, clock):
    # Later stages (rows, tree, colo counts) skip a poll that changed nothing by comparing one tuple's identity.
    source = engine(client, clock)
    first = await polled(source)
    clock.advance(source.interval)  # everything is due again: read afresh, and found unchanged
    api.requests.clear()
    second = await polled(source)
    assert sorted(api.paths) == sorted(["cfd_tunnel", f"cfd_tunnel/{WEB}/connections", f"cfd_tunnel/{DB}/connections"])
    assert second is not first and second.tunnels is first.tunnels
    api.clients[WEB][0]["conns"].append(conn("e", "AMS"))
    clock.advance(source.interval)
    third = await polled(source)
    assert third.tunnels is not second.tunnels
    assert by_id(third)[DB] is by_id(second)[DB], "the unchanged tunnel is still the same object"
    assert by_id(third)[WEB].active_count == 3


async def test_a_failed_connections_fetch_spoils_one_tunnel(api, client, clock):
    api.overrides[f"{DB}/connections"] = httpx.Response(502, content=b"<html>502 Bad Gateway</html>")
    snapshot = await polled(engine(client, clock))
    by_name = {t.tunnel.name: t for t in snapshot.tunnels}
    assert by_name["web"].health is Health.HEALTHY
    assert by_name["db"].connectors is None
    assert by_name["db"].health is Health.UNKNOWN
    assert "HTTP 502" in by_name["db"].error


async def test_a_failed_refresh_keeps_the_last_connections_stale_for_a_while(api, client, clock):
    start = clock.now
    source = engine(client, clock)
    first = by_id(await polled(source))
    api.overrides[f"{DB}/connections"] = httpx.Response(502, content=b"<html>502 Bad Gateway</html>")
    clock.now = start + 60
    db = by_id(await polled(source))[DB]
    assert db.connectors is first[DB].connectors and db.health is Health.DEGRADED, "the last read, as it was"
    assert "HTTP 502" in db.error and db.fetched_at == NOW
    clock.now = start + STALE_LIMIT.total_seconds() + 1
    db = by_id(await polled(source))[DB]
    assert db.connectors is None and db.health is Health.UNKNOWN, "too old to show: unknown"
    del api.overrides[f"{DB}/connections"]
    clock.advance(source.interval)
    db = by_id(await polled(source))[DB]
    assert db.error is None and db.fetched_at is None and db.pending_count == 1


async def test_every_named_tunnel_failing_is_a_failed_poll_even_beside_a_never_run_one(api, client, clock):
    # A named tunnel that never ran (status inactive) has no connections to read: it cannot keep the poll from
    # failing when every tunnel that has them fails the same passing way (the screen keeps the last good data).
    source = engine(client, clock, ("web", "db", "new"))
    await polled(source)
    api.overrides["connections"] = httpx.Response(502, content=b"<html>502 Bad Gateway</html>")
    clock.advance(source.effective_interval)
    outcome = await source.poll()
    assert outcome.snapshot is None and "HTTP 502" in str(outcome.error) and not outcome.permanent
    assert [e.kind for e in outcome.events] == [EventKind.POLL_FAILED]


async def test_a_poll_that_sends_nothing_does_not_end_a_failure_streak(api, client, clock):
    source = engine(client, clock, ("web", "db"))
    await polled(source)
    api.overrides["connections"] = httpx.Response(502, content=b"<html>502 Bad Gateway</html>")
    clock.advance(source.effective_interval)
    assert (await source.poll()).events[0].kind is EventKind.POLL_FAILED
    del api.overrides["connections"]
    sent = len(api.requests)
    client.gate.budget.burst = 0.0  # no token yet: nothing is read, so nothing shows the API is back
    waiting = await source.poll()
    assert len(api.requests) == sent
    assert waiting.snapshot is None and waiting.holding and waiting.events == [] and source.failing
    client.gate.budget.burst = 2.0
    clock.advance(source.effective_interval)
    recovered = await source.poll()
    assert len(api.requests) > sent and recovered.snapshot is not None
    assert recovered.events[0].kind is EventKind.POLL_RECOVERED and not source.failing


async def test_a_tunnel_gone_between_list_and_connections(api, client, clock):
    api.overrides[f"{WEB}/connections"] = httpx.Response(
        404, json={"success": False, "errors": [{"code": 7003, "message": "no route"}]}
    )
    snapshot = await polled(engine(client, clock))
    web = next(t for t in snapshot.tunnels if t.tunnel.name == "web")
    assert web.health is Health.UNKNOWN
    assert web.error == GONE and "not found" in web.error


async def test_a_tunnel_gone_after_a_good_read_keeps_no_connections(api, client, clock):
    # A 404 is no passing failure to ride out on the last connections read: the tunnel has none, and a deleted
    # tunnel must not look healthy for STALE_LIMIT.
    source = engine(client, clock)
    assert by_id(await polled(source))[WEB].health is Health.HEALTHY
    api.overrides[f"{WEB}/connections"] = httpx.Response(
        404, json={"success": False, "errors": [{"code": 7003, "message": "no route"}]}
    )
    clock.advance(source.effective_interval)
    web = by_id(await polled(source))[WEB]
    assert web.error == GONE and web.connectors is None and web.health is Health.UNKNOWN


async def test_a_tunnel_read_as_deleted_shows_no_connections(api, client, clock):
    # Read by id (deleted ones included), a deleted tunnel is not read again: what was read of its connections
    # before went with it, and it must not look healthy.
    source = engine(client, clock, ("web", "db"))
    assert by_id(await polled(source))[WEB].health is Health.HEALTHY
    api.tunnels[WEB] = {**api.tunnels[WEB], "status": "down", "deleted_at": "2025-03-01T12:00:30Z"}
    clock.advance(source.effective_interval)
    web = by_id(await polled(source))[WEB]
    assert web.tunnel.deleted_at is not None and web.connectors == () and web.health is Health.DOWN


async def test_a_429_fails_the_poll_and_nothing_is_sent_until_retry_after(api, client, clock):
    # Changed on purpose: the block is the client's gate's, so the polls that follow send nothing at all.
    api.overrides["connections"] = httpx.Response(
        429, headers={"Retry-After": "300"}, json={"success": False, "errors": []}
    )
    source = engine(client, clock)
    outcome = await source.poll()
    assert outcome.snapshot is None and isinstance(outcome.error, RateLimitedError) and not outcome.permanent
    assert outcome.retry_after == 300
    assert [e.kind for e in outcome.events] == [EventKind.POLL_FAILED]
    sent = len(api.requests)
    clock.advance(10)
    again = await source.poll()
    assert len(api.requests) == sent, "blocked: not even the tunnel list is asked for"
    assert isinstance(again.error, RateLimitedError) and again.retry_after == pytest.approx(290)
    assert again.events == [], "the same failure a few seconds on is no news"
    del api.overrides["connections"]
    clock.advance(300)
    recovered = await source.poll()
    assert recovered.snapshot is not None and len(api.requests) > sent
    assert EventKind.POLL_RECOVERED in [e.kind for e in recovered.events]


async def test_refused_connections_mark_the_tunnels_not_the_poll(api, client, clock):
    # Changed on purpose: a 403 on one tunnel's connections is that tunnel's (a sign of narrow permissions, which
    # the overview's notice explains), no longer a failure of the whole poll.
    api.overrides["connections"] = httpx.Response(
        403, json={"success": False, "errors": [{"code": 10000, "message": "Authentication error"}]}
    )
    snapshot = await polled(engine(client, clock))
    refused = {t.tunnel.name: t for t in snapshot.tunnels if t.error is not None}
    assert set(refused) == {"web", "db"}
    assert all(t.error.startswith(REFUSED) and t.health is Health.UNKNOWN for t in refused.values())


async def test_named_tunnels_resolve_against_the_list_once_then_follow_their_ids(api, client, clock):
    # Changed on purpose: the names are matched against one read of the tunnel list (no name look-up), and later
    # polls read the list again instead of GET cfd_tunnel/{id} per tunnel; a never-run tunnel, named or not, has
    # no connections to read.
    source = engine(client, clock, ("web", NEW))
    first = await polled(source)
    assert [t.tunnel.name for t in first.tunnels] == ["web", "new"]
    assert first.tunnels[1].health is Health.INACTIVE
    assert api.paths == ["cfd_tunnel", f"cfd_tunnel/{WEB}/connections"]
    assert "name" not in api.requests[0].url.params
    api.requests.clear()
    api.tunnels[WEB] = {**api.tunnels[WEB], "name": "web-renamed", "status": "down"}
    api.clients[WEB] = []
    clock.advance(source.effective_interval)
    second = await polled(source)
    assert [t.tunnel.name for t in second.tunnels] == ["web-renamed", "new"]  # followed by id through the rename
    assert second.tunnels[0].health is Health.DOWN
    assert api.paths == ["cfd_tunnel", f"cfd_tunnel/{WEB}/connections"]
    assert source.usage_errors == []


async def test_an_unknown_name_fails_the_poll(api, client, clock):
    source = engine(client, clock, ("webb",))
    outcome = await source.poll()
    assert outcome.snapshot is None and isinstance(outcome.error, UsageError) and outcome.permanent
    assert "'webb'" in outcome.error.message and "did you mean: web" in outcome.error.message
    assert api.paths == ["cfd_tunnel"], "matched against the list: no look-up by name"


async def test_an_unknown_name_beside_a_known_one_is_a_usage_error_and_the_rest_is_polled(api, client, clock):
    source = engine(client, clock, ("webb", "db"))
    snapshot = await polled(source)
    assert [t.tunnel.name for t in snapshot.tunnels] == ["db"]
    [error] = source.usage_errors
    assert "'webb'" in error.message and "did you mean: web" in error.message
    assert sorted(api.paths) == sorted(["cfd_tunnel", f"cfd_tunnel/{DB}/connections"])


async def test_a_duplicated_name_fails_the_poll(api, client, clock):
    api.tunnels[DB] = {**api.tunnels[DB], "name": "web"}
    outcome = await engine(client, clock, ("web",)).poll()
    assert isinstance(outcome.error, UsageError) and outcome.permanent
    assert "several tunnels are named 'web'" in outcome.error.message
    # Named by its id instead, either one is found.
    clock.advance(60)
    assert [t.tunnel.id for t in (await polled(engine(client, clock, (DB,)))).tunnels] == [DB]


async def test_only_get_requests(api, client, clock):
    await resolve_account(client, None)
    await polled(engine(client, clock))
    clock.advance(60)
    await polled(engine(client, clock, ("db", WEB)))
    assert len(api.requests) == 7  # /accounts, then twice the list and the two running tunnels' connections
    assert {r.method for r in api.requests} == {"GET"}


class _SlowClient:
    """Answers each tunnel's connections after a pause, counting how many are asked for at once."""

    def __init__(self, tunnels: int, fail_at: int | None = None, failure: ApiError | None = None) -> None:
        self.tunnels = [Tunnel(id=f"t{n:03d}", name=f"t{n:03d}", status="healthy") for n in range(tunnels)]
        self.in_flight = self.most = self.asked = 0
        self.fail_at = fail_at
        self.failure = failure
        # The planner's budget (this client sends nothing, so it takes no tokens): room for every tunnel at once.
        self.gate = RequestGate(60, clock=FakeClock())

    async def list_tunnels(self, account_id: str, cache: object = None) -> tuple[list[Tunnel], list[object]]:
        return list(self.tunnels), []

    async def list_connectors(self, account_id: str, tunnel_id: str, cache: object = None) -> tuple[list, list]:
        self.asked += 1
        if self.asked == self.fail_at and self.failure is not None:
            raise self.failure
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await asyncio.sleep(0)
        self.in_flight -= 1
        return [Connector(id=f"k-{tunnel_id}", conns=[Connection(id=f"c-{tunnel_id}", is_pending_reconnect=False)])], []


def slow_engine(slow: _SlowClient) -> PollEngine:
    return PollEngine(slow, ACCOUNT, min_burst=60)  # type: ignore[arg-type]


async def test_a_poll_fetches_a_few_tunnels_at_a_time_and_keeps_their_order():
    slow = _SlowClient(50)
    snapshot = await polled(slow_engine(slow))
    assert [t.tunnel.id for t in snapshot.tunnels] == [t.id for t in slow.tunnels]
    assert slow.asked == 50 and slow.most == FETCH_CONCURRENCY
    assert all(t.health is Health.HEALTHY for t in snapshot.tunnels)


async def test_a_429_stops_the_other_fetches():
    slow = _SlowClient(50, fail_at=10, failure=RateLimitedError("rate limited", retry_after=300, status=429))
    outcome = await slow_engine(slow).poll()
    assert isinstance(outcome.error, RateLimitedError) and outcome.snapshot is None
    assert slow.asked < 10 + FETCH_CONCURRENCY, "the workers stop instead of asking for every tunnel"


async def test_a_refusal_is_one_tunnels_and_the_other_fetches_go_on():
    # Changed on purpose (was: an auth error stops the other fetches): see test_refused_connections_mark_...
    slow = _SlowClient(50, fail_at=10, failure=AuthError("refused", status=403))
    snapshot = await polled(slow_engine(slow))
    assert slow.asked == 50
    assert [t.error for t in snapshot.tunnels if t.error is not None] == [REFUSED + "refused"]
