"""Paging through collections and resolving a tunnel by UUID or by name."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tunneltop.api import CloudflareClient, Credentials, RetryPolicy, UsageError
from tunneltop.poll.engine import resolve_refs

ACCOUNT = "0123456789abcdef0123456789abcdef"


def tunnel(n: int, name: str | None = None) -> dict:
    return {"id": str(uuid.UUID(int=n)), "name": name or f"tunnel-{n:05d}", "status": "healthy"}


class TunnelList:
    """Serves ``GET /accounts/{id}/cfd_tunnel`` from a list, paged as asked; ``info`` chooses result_info's keys."""

    def __init__(self, tunnels: list[dict], info: tuple[str, ...] = ("page", "per_page", "count", "total_count")):
        self.tunnels = tunnels
        self.info = info
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        prefix = f"/client/v4/accounts/{ACCOUNT}/cfd_tunnel"
        if path == prefix:
            q = request.url.params
            matching = [t for t in self.tunnels if "name" not in q or t["name"] == q["name"]]
            page, per_page = int(q.get("page", 1)), int(q.get("per_page", 20))
            chunk = matching[(page - 1) * per_page : page * per_page]
            full = {
                "page": page,
                "per_page": per_page,
                "count": len(chunk),
                "total_count": len(matching),
                "total_pages": -(-len(matching) // per_page),
            }
            info = {k: v for k, v in full.items() if k in self.info}
            return httpx.Response(200, json={"success": True, "errors": [], "result": chunk, "result_info": info})
        found = [t for t in self.tunnels if path == f"{prefix}/{t['id']}"]
        if found:
            return httpx.Response(200, json={"success": True, "errors": [], "result": found[0]})
        return httpx.Response(404, json={"success": False, "errors": [{"code": 7003, "message": "no route"}]})

    @property
    def pages(self) -> list[int]:
        return [int(r.url.params["page"]) for r in self.requests]


def client_for(handler) -> CloudflareClient:
    return CloudflareClient(
        Credentials.token("cfut_paging"),
        "https://api.cloudflare.test/client/v4",
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(retries=0),
    )


async def test_2500_tunnels_at_1000_per_page_take_three_requests():
    api = TunnelList([tunnel(n) for n in range(2500)])
    async with client_for(api) as client:
        tunnels, problems = await client.list_tunnels(ACCOUNT)
    assert len(tunnels) == 2500
    assert problems == []
    assert [t.name for t in tunnels[:2]] == ["tunnel-00000", "tunnel-00001"]
    assert len({t.id for t in tunnels}) == 2500
    assert api.pages == [1, 2, 3]
    assert {r.url.params["per_page"] for r in api.requests} == {"1000"}
    assert {r.url.params["is_deleted"] for r in api.requests} == {"false"}


async def test_stops_on_a_short_page_without_totals():
    api = TunnelList([tunnel(n) for n in range(2500)], info=("page", "per_page", "count"))
    async with client_for(api) as client:
        tunnels, _ = await client.list_tunnels(ACCOUNT)
    assert len(tunnels) == 2500
    assert api.pages == [1, 2, 3]


async def test_stops_on_total_count():
    api = TunnelList([tunnel(n) for n in range(2000)], info=("page", "per_page", "count", "total_count"))
    async with client_for(api) as client:
        tunnels, _ = await client.list_tunnels(ACCOUNT)
    assert len(tunnels) == 2000
    assert api.pages == [1, 2]


async def test_stops_on_total_pages():
    api = TunnelList([tunnel(n) for n in range(2000)], info=("page", "per_page", "count", "total_pages"))
    async with client_for(api) as client:
        tunnels, _ = await client.list_tunnels(ACCOUNT)
    assert len(tunnels) == 2000
    assert api.pages == [1, 2]


async def test_without_any_totals_an_empty_page_ends_it():
    api = TunnelList([tunnel(n) for n in range(2000)], info=())
    async with client_for(api) as client:
        tunnels, _ = await client.list_tunnels(ACCOUNT)
    assert len(tunnels) == 2000
    assert api.pages == [1, 2, 3]


@pytest.mark.parametrize(
    "info",
    [
        {"page": "one", "per_page": "lots", "count": None, "total_count": "many", "total_pages": []},
        {"page": 1, "per_page": "1000", "count": 3, "total_count": "3"},
        {"per_page": None, "count": "3", "total_pages": "1"},
        [1, 2, 3],
    ],
)
async def test_junk_result_info_does_not_break_paging(info):
    def handler(request):
        page = int(request.url.params["page"])
        result = [tunnel(n) for n in range(3)] if page == 1 else []
        return httpx.Response(200, json={"success": True, "errors": [], "result": result, "result_info": info})

    async with client_for(handler) as client:
        tunnels, _ = await client.list_tunnels(ACCOUNT)
    assert [t.name for t in tunnels] == ["tunnel-00000", "tunnel-00001", "tunnel-00002"]


async def test_accounts_are_paged_at_fifty():
    accounts = [{"id": f"{n:032x}", "name": f"Account {n}"} for n in range(120)]
    seen: list[tuple[str, str]] = []

    def handler(request):
        q = request.url.params
        seen.append((q["page"], q["per_page"]))
        page, per_page = int(q["page"]), int(q["per_page"])
        chunk = accounts[(page - 1) * per_page : page * per_page]
        info = {"page": page, "per_page": per_page, "count": len(chunk), "total_count": len(accounts)}
        return httpx.Response(200, json={"success": True, "errors": [], "result": chunk, "result_info": info})

    async with client_for(handler) as client:
        found, problems = await client.list_accounts()
    assert [a.name for a in found] == [a["name"] for a in accounts]
    assert problems == []
    assert seen == [("1", "50"), ("2", "50"), ("3", "50")]


async def test_a_bad_record_in_a_page_is_reported_not_fatal():
    rows = [tunnel(1), {"name": "no id"}, "junk", tunnel(2)]

    def handler(request):
        return httpx.Response(200, json={"success": True, "errors": [], "result": rows, "result_info": {}})

    async with client_for(handler) as client:
        tunnels, problems = await client.list_tunnels(ACCOUNT)
    assert [t.name for t in tunnels] == ["tunnel-00001", "tunnel-00002"]
    assert [p.where for p in problems] == ["tunnel #2", "tunnel #3"]


# -- resolving a tunnel reference (against one read of the list: no request per name) ----------------------------


async def _resolve(api: object, *refs: str) -> tuple[dict[str, str], list[UsageError]]:
    async with client_for(api) as client:
        tunnels, _ = await client.list_tunnels(ACCOUNT)
    return resolve_refs(list(refs), tunnels)


async def test_a_uuid_is_found_in_the_list():
    wanted = tunnel(7, "web")
    api = TunnelList([tunnel(1, "db"), wanted])
    found, errors = await _resolve(api, wanted["id"])
    assert found == {wanted["id"]: wanted["id"]} and errors == []
    assert len(api.requests) == 1 and api.requests[0].url.params["is_deleted"] == "false"


async def test_an_unknown_uuid_is_a_usage_error():
    api = TunnelList([tunnel(1, "db")])
    missing = str(uuid.UUID(int=999))
    found, errors = await _resolve(api, missing)
    assert found == {}
    assert missing in errors[0].message and "no tunnel with the id" in errors[0].message


async def test_an_exact_name_is_matched_exactly():
    """A list with near names resolves only the exact one (case counts)."""
    api = TunnelList([tunnel(1, "WEB"), tunnel(2, "web"), tunnel(3, "web2")])
    found, errors = await _resolve(api, "web")
    assert found == {tunnel(2)["id"]: "web"} and errors == []


async def test_an_unknown_name_lists_near_matches():
    api = TunnelList([tunnel(1, "web-prod"), tunnel(2, "web-staging"), tunnel(3, "database"), tunnel(4, "webb")])
    _, errors = await _resolve(api, "web")
    message = errors[0].message
    assert "no tunnel with the name 'web'" in message
    assert "did you mean" in message
    assert "webb" in message and "web-prod" in message
    assert "database" not in message


async def test_an_unknown_name_with_nothing_close():
    api = TunnelList([tunnel(1, "alpha")])
    _, errors = await _resolve(api, "zzz")
    assert "did you mean" not in errors[0].message


async def test_a_duplicated_name_is_a_usage_error_listing_the_ids():
    api = TunnelList([tunnel(1, "web"), tunnel(2, "web"), tunnel(3, "db")])
    found, errors = await _resolve(api, "web", "db")
    assert found == {tunnel(3)["id"]: "db"}
    message = errors[0].message
    assert tunnel(1)["id"] in message
    assert tunnel(2)["id"] in message
    assert "by its id" in message
