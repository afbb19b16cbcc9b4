"""Turning API calls into snapshots: which account, which tunnels, and what one poll costs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tunneltop.api import (
    AuthError,
    CloudflareClient,
    Credentials,
    NotFoundError,
    RateLimitedError,
    RetryPolicy,
    UsageError,
)
from tunneltop.model import Account, Health
from tunneltop.model.records import Connection, Connector, Tunnel
from tunneltop.poll.source import (
    FETCH_CONCURRENCY,
    STALE_LIMIT,
    AccountChoiceNeeded,
    TunnelSource,
    resolve_account,
)

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
    ) as c:
        yield c


# -- account ---------------------------------------------------------------------------------------------------


async def test_a_named_account_needs_no_request(api, client):
    account = await resolve_account(client, ACCOUNT)
    assert account == Account(id=ACCOUNT)
    assert api.requests == []


async def test_the_only_account_is_used(api, client):
    account = await resolve_account(client, None)
    assert (account.id, account.name) == (ACCOUNT, "Acme")


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
    source = TunnelSource(client, Account(id=ACCOUNT, name="Acme"), now=lambda: NOW)
    snapshot = await source.poll()
    assert snapshot.account_id == ACCOUNT and snapshot.account_name == "Acme"
    assert snapshot.fetched_at == NOW
    by_name = {t.tunnel.name: t for t in snapshot.tunnels}
    assert by_name["web"].health is Health.HEALTHY
    assert by_name["db"].health is Health.DEGRADED
    assert by_name["db"].pending_count == 1
    assert [p.where for p in by_name["db"].problems] == ["connector #2"]
    assert by_name["new"].health is Health.INACTIVE
    assert snapshot.health is Health.INACTIVE
    # The never-run tunnel costs no connections request.
    assert sorted(api.paths) == sorted(["cfd_tunnel", f"cfd_tunnel/{WEB}/connections", f"cfd_tunnel/{DB}/connections"])


async def test_an_unchanged_poll_hands_back_the_same_tunnels(api, client):
    # Later stages (rows, tree, colo counts) skip a poll that changed nothing by comparing one tuple's identity.
    source = TunnelSource(client, Account(id=ACCOUNT), now=lambda: NOW)
    first = await source.poll()
    second = await source.poll()
    assert second is not first and second.tunnels is first.tunnels
    api.clients[WEB][0]["conns"].append(conn("e", "AMS"))
    third = await source.poll()
    assert third.tunnels is not second.tunnels
    by_id = {t.tunnel.id: t for t in third.tunnels}
    assert by_id[DB] is {t.tunnel.id: t for t in second.tunnels}[DB], "the unchanged tunnel is still the same object"
    assert by_id[WEB].active_count == 3


async def test_a_failed_connections_fetch_spoils_one_tunnel(api, client):
    api.overrides[f"{DB}/connections"] = httpx.Response(502, content=b"<html>502 Bad Gateway</html>")
    snapshot = await TunnelSource(client, Account(id=ACCOUNT)).poll()
    by_name = {t.tunnel.name: t for t in snapshot.tunnels}
    assert by_name["web"].health is Health.HEALTHY
    assert by_name["db"].connectors is None
    assert by_name["db"].health is Health.UNKNOWN
    assert "HTTP 502" in by_name["db"].error


async def test_a_failed_refresh_keeps_the_last_connections_stale_for_a_while(api, client):
    at = [NOW]
    source = TunnelSource(client, Account(id=ACCOUNT), now=lambda: at[0])
    first = {t.tunnel.id: t for t in (await source.poll()).tunnels}
    api.overrides[f"{DB}/connections"] = httpx.Response(502, content=b"<html>502 Bad Gateway</html>")
    at[0] = NOW + timedelta(minutes=1)
    db = {t.tunnel.id: t for t in (await source.poll()).tunnels}[DB]
    assert db.connectors is first[DB].connectors and db.health is Health.DEGRADED, "the last read, as it was"
    assert "HTTP 502" in db.error and db.fetched_at == NOW
    at[0] = NOW + STALE_LIMIT + timedelta(seconds=1)
    db = {t.tunnel.id: t for t in (await source.poll()).tunnels}[DB]
    assert db.connectors is None and db.health is Health.UNKNOWN, "too old to show: unknown"
    del api.overrides[f"{DB}/connections"]
    db = {t.tunnel.id: t for t in (await source.poll()).tunnels}[DB]
    assert db.error is None and db.fetched_at is None and db.pending_count == 1


async def test_a_tunnel_gone_between_list_and_connections(api, client):
    api.overrides[f"{WEB}/connections"] = httpx.Response(
        404, json={"success": False, "errors": [{"code": 7003, "message": "no route"}]}
    )
    snapshot = await TunnelSource(client, Account(id=ACCOUNT)).poll()
    web = next(t for t in snapshot.tunnels if t.tunnel.name == "web")
    assert web.health is Health.UNKNOWN
    assert "not found" in web.error


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(403, json={"success": False, "errors": [{"code": 10000, "message": "auth"}]}), AuthError),
        (httpx.Response(429, headers={"Retry-After": "300"}, json={"success": False, "errors": []}), RateLimitedError),
    ],
)
async def test_account_wide_failures_raise(api, client, response, error):
    api.overrides["connections"] = response
    with pytest.raises(error):
        await TunnelSource(client, Account(id=ACCOUNT)).poll()


async def test_named_tunnels_resolve_once_then_are_reread_by_id(api, client):
    source = TunnelSource(client, Account(id=ACCOUNT), ["web", NEW])
    first = await source.poll()
    assert [t.tunnel.name for t in first.tunnels] == ["web", "new"]
    # A named inactive tunnel is still read (it was asked for).
    assert first.tunnels[1].health is Health.INACTIVE
    api.requests.clear()
    api.tunnels[WEB] = {**api.tunnels[WEB], "name": "web-renamed", "status": "down"}
    api.clients[WEB] = []
    second = await source.poll()
    assert [t.tunnel.name for t in second.tunnels] == ["web-renamed", "new"]
    assert second.tunnels[0].health is Health.DOWN
    assert "cfd_tunnel" not in api.paths  # no list request after the first poll
    assert sorted(api.paths) == sorted(
        [f"cfd_tunnel/{WEB}", f"cfd_tunnel/{WEB}/connections", f"cfd_tunnel/{NEW}", f"cfd_tunnel/{NEW}/connections"]
    )


async def test_an_unknown_name_fails_the_poll(api, client):
    with pytest.raises(NotFoundError, match="did you mean: web"):
        await TunnelSource(client, Account(id=ACCOUNT), ["webb"]).poll()


async def test_a_duplicated_name_fails_the_poll(api, client):
    api.tunnels[DB] = {**api.tunnels[DB], "name": "web"}
    with pytest.raises(UsageError):
        await TunnelSource(client, Account(id=ACCOUNT), ["web"]).poll()


async def test_only_get_requests(api, client):
    await resolve_account(client, None)
    await TunnelSource(client, Account(id=ACCOUNT)).poll()
    await TunnelSource(client, Account(id=ACCOUNT), ["db", WEB]).poll()
    assert len(api.requests) >= 8
    assert {r.method for r in api.requests} == {"GET"}


class _SlowClient:
    """Answers each tunnel's connections after a pause, counting how many are asked for at once."""

    def __init__(self, tunnels: int, fail_at: int | None = None) -> None:
        self.tunnels = [Tunnel(id=f"t{n:03d}", name=f"t{n:03d}", status="healthy") for n in range(tunnels)]
        self.in_flight = self.most = self.asked = 0
        self.fail_at = fail_at

    async def list_tunnels(self, account_id: str, cache: object = None) -> tuple[list[Tunnel], list[object]]:
        return list(self.tunnels), []

    async def list_connectors(self, account_id: str, tunnel_id: str, cache: object = None) -> tuple[list, list]:
        self.asked += 1
        if self.asked == self.fail_at:
            raise AuthError("refused", status=403)
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await asyncio.sleep(0)
        self.in_flight -= 1
        return [Connector(id=f"k-{tunnel_id}", conns=[Connection(id=f"c-{tunnel_id}", is_pending_reconnect=False)])], []


async def test_a_poll_fetches_a_few_tunnels_at_a_time_and_keeps_their_order():
    slow = _SlowClient(50)
    snapshot = await TunnelSource(slow, Account(id=ACCOUNT)).poll()  # type: ignore[arg-type]
    assert [t.tunnel.id for t in snapshot.tunnels] == [t.id for t in slow.tunnels]
    assert slow.asked == 50 and slow.most == FETCH_CONCURRENCY
    assert all(t.health is Health.HEALTHY for t in snapshot.tunnels)


async def test_an_auth_error_stops_the_other_fetches():
    slow = _SlowClient(50, fail_at=10)
    with pytest.raises(AuthError):
        await TunnelSource(slow, Account(id=ACCOUNT)).poll()  # type: ignore[arg-type]
    assert slow.asked < 10 + FETCH_CONCURRENCY, "the workers stop instead of asking for every tunnel"
