"""FakeCloudflare: spec conformance of every answer, paging, filters, auth, rate limits, faults, the log."""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.support.clock import FakeClock
from tunneltop.demo.cfapi import FakeCloudflare, FakeResponse, Fault
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID, DEMO_TUNNELS, SimulatedAccount

START = datetime(2026, 8, 20, 12, 0, tzinfo=UTC)
TOKEN = "cfut_Sn3lZJTBX6kkg7OdcBUAxOO963GEIyGQqnFTOFYY"
EMAIL, KEY = "ops@example.com", "c2547eb745079dac9320b638f5e225cf483cc"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
A = DEMO_ACCOUNT_ID
WEB = DEMO_TUNNELS["web-prod"]


@pytest.fixture
def clock() -> FakeClock:
    """Moved by hand (``advance``); the stand-in reads its wall clock, START at first."""
    return FakeClock(wall_start=START)


@pytest.fixture
def fake(clock: FakeClock) -> FakeCloudflare:
    sim = SimulatedAccount(start=START)
    return FakeCloudflare(sim, tokens=[TOKEN], key_pairs=[(EMAIL, KEY)], clock=clock.wall)


def get(fake: FakeCloudflare, path: str, query: Any = (),
        headers: dict[str, str] | None = None) -> FakeResponse:
    return fake.handle("GET", "/client/v4" + path, query, AUTH if headers is None else headers)


def errors_of(response: FakeResponse) -> list[int]:
    return [e["code"] for e in response.json()["errors"]]


# ================================================================ spec conformance

SPEC = json.loads((Path(__file__).parent / "data" / "cloudflare-tunnel-openapi.json").read_text())
SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]

# The spec's prose says these are null when unset ("If `null`, the tunnel is inactive") but types them as
# plain strings; Cloudflare sends null and cloudflared decodes them as optional. Make type and prose agree.
NULLABLE_IN_PROSE = {"tunnel_deleted_at", "tunnel_conns_active_at", "tunnel_conns_inactive_at"}
# Fields newer than the 2024 spec, listed in its x-known-deltas (config_src on tunnels).
KNOWN_NEW_FIELDS = {"tunnel_cfd_tunnel": {"config_src"}}

_SCHEMA_MAPS = ("properties", "patternProperties", "definitions")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_ONE = ("items", "not", "additionalProperties")


def to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: inline `#/components/schemas` refs, turn `nullable: true` into
    a null type (and a null enum member), drop the OpenAPI-only `nullable`."""
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].removeprefix("#/components/schemas/")
        target = dict(SCHEMAS[name])
        if name in NULLABLE_IN_PROSE:
            target["nullable"] = True
        resolved = to_jsonschema(target)
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return {"allOf": [resolved, to_jsonschema(rest)]} if rest else resolved
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "nullable":
            continue
        if key in _SCHEMA_MAPS:
            out[key] = {name: to_jsonschema(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS:
            out[key] = [to_jsonschema(sub) for sub in value]
        elif key in _SCHEMA_ONE:
            out[key] = to_jsonschema(value)
        else:
            out[key] = value
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        if "type" not in out:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


FORMATS = jsonschema.FormatChecker(formats=())
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


@FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not RFC3339.fullmatch(value):
        return False
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


@FORMATS.checks("uuid", raises=ValueError)
def _is_uuid(value: object) -> bool:
    if isinstance(value, str):
        uuid.UUID(value)
    return True


def validator(schema: Any) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(to_jsonschema(schema), format_checker=FORMATS)


def response_schema(spec_path: str, status: str = "200") -> Any:
    return SPEC["paths"][spec_path]["get"]["responses"][status]["content"]["application/json"]["schema"]


def failure_schema(spec_path: str) -> Any:
    # The spec's 4XX schema is allOf[<success schema>, <common-failure>]: the first branch requires
    # success == true, the second success == false, so nothing can satisfy it (Cloudflare's own
    # contradiction). Validate failures against the common-failure half, which is what they really are.
    prefix = "iam" if spec_path in ("/accounts", "/user/tokens/verify") else "tunnel"
    return {"$ref": f"#/components/schemas/{prefix}_api-response-common-failure"}


ROUTE_SPECS = [
    (re.compile(r"/accounts"), "/accounts"),
    (re.compile(r"/accounts/[0-9a-f]{32}/cfd_tunnel"), "/accounts/{account_id}/cfd_tunnel"),
    (re.compile(r"/accounts/[0-9a-f]{32}/cfd_tunnel/[^/]+"), "/accounts/{account_id}/cfd_tunnel/{tunnel_id}"),
    (re.compile(r"/accounts/[0-9a-f]{32}/cfd_tunnel/[^/]+/connections"),
     "/accounts/{account_id}/cfd_tunnel/{tunnel_id}/connections"),
    (re.compile(r"/accounts/[0-9a-f]{32}/cfd_tunnel/[^/]+/connectors/[^/]+"),
     "/accounts/{account_id}/cfd_tunnel/{tunnel_id}/connectors/{connector_id}"),
    (re.compile(r"/accounts/[0-9a-f]{32}/cfd_tunnel/[^/]+/configurations"),
     "/accounts/{account_id}/cfd_tunnel/{tunnel_id}/configurations"),
    (re.compile(r"/user/tokens/verify"), "/user/tokens/verify"),
    # Newer than the spec (x-known-deltas): same result shape as the user-token check.
    (re.compile(r"/accounts/[0-9a-f]{32}/tokens/verify"), "/user/tokens/verify"),
]


def spec_path_for(path: str) -> str:
    for pattern, spec_path in ROUTE_SPECS:
        if pattern.fullmatch(path):
            return spec_path
    raise AssertionError(f"no spec route for {path}")


def assert_no_invented_fields(body: dict[str, Any]) -> None:
    """The spec allows extra fields, so validation alone would miss a made-up one: check entity keys."""
    allowed = {name: set(SCHEMAS[name]["properties"]) | KNOWN_NEW_FIELDS.get(name, set())
               for name in ("tunnel_cfd_tunnel", "tunnel_tunnel_client", "tunnel_schemas-connection")}

    def check_client(client: dict[str, Any]) -> None:
        assert set(client) <= allowed["tunnel_tunnel_client"], set(client) - allowed["tunnel_tunnel_client"]
        for conn in client["conns"]:
            assert set(conn) <= allowed["tunnel_schemas-connection"]

    result = body["result"]
    items = result if isinstance(result, list) else [result]
    for item in items:
        if isinstance(item, dict) and "tun_type" in item:
            assert set(item) <= allowed["tunnel_cfd_tunnel"], set(item) - allowed["tunnel_cfd_tunnel"]
        elif isinstance(item, dict) and "conns" in item:
            check_client(item)


def assert_conforms(path: str, response: FakeResponse) -> None:
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    spec_path = spec_path_for(path)
    if response.status < 400 and body["success"]:
        validator(response_schema(spec_path)).validate(body)
        assert_no_invented_fields(body)
    else:
        schema = copy.deepcopy(to_jsonschema(failure_schema(spec_path)))
        if response.status == 429:
            # Cloudflare's real rate-limit code is 971, below the spec's `minimum: 1000` for error codes.
            del schema["properties"]["errors"]["allOf"][0]["items"]["properties"]["code"]["minimum"]
        jsonschema.Draft7Validator(schema, format_checker=FORMATS).validate(body)
        assert body["errors"], "a failure always names at least one error"


def success_paths(sim: SimulatedAccount) -> Iterator[str]:
    yield "/accounts"
    yield f"/accounts/{A}/cfd_tunnel"
    yield "/user/tokens/verify"
    yield f"/accounts/{A}/tokens/verify"
    for tunnel in sim.list_tunnels():
        base = f"/accounts/{A}/cfd_tunnel/{tunnel['id']}"
        yield base
        yield base + "/connections"
        yield base + "/configurations"
        for client in sim.clients(tunnel["id"]):
            yield f"{base}/connectors/{client['id']}"


@pytest.mark.parametrize("minutes", [0, 7])
def test_every_success_answer_matches_the_spec(fake: FakeCloudflare, clock: FakeClock, minutes: int) -> None:
    clock.advance(minutes * 60)  # also after evolution: pending connections, new connectors, restarts
    fake.sim.advance(clock.wall())
    paths = list(success_paths(fake.sim))
    assert len(paths) > 30
    for path in paths:
        response = get(fake, path)
        assert response.status == 200, (path, response.body)
        assert_conforms(path, response)
    for query in ({"is_deleted": "true"}, {"is_deleted": "false", "per_page": "2", "page": "2"}):
        assert_conforms(f"/accounts/{A}/cfd_tunnel", get(fake, f"/accounts/{A}/cfd_tunnel", query))


def test_scale_answers_match_the_spec(clock: FakeClock) -> None:
    fake = FakeCloudflare(SimulatedAccount(start=START, tunnels=30), require_auth=False, clock=clock.wall)
    clock.advance(300)
    for path in list(success_paths(fake.sim))[:60]:
        assert_conforms(path, get(fake, path))


def failing_requests(fake: FakeCloudflare) -> Iterator[tuple[str, FakeResponse]]:
    tunnels = f"/accounts/{A}/cfd_tunnel"
    yield "/accounts", get(fake, "/accounts", headers={})
    yield "/accounts", get(fake, "/accounts", headers={"Authorization": "Bearer"})
    yield "/accounts", get(fake, "/accounts", headers={"Authorization": "Bearer wrong-token"})
    yield "/accounts", get(fake, "/accounts", headers={"X-Auth-Email": EMAIL, "X-Auth-Key": "0" * 37})
    yield "/accounts", get(fake, "/accounts", headers={"X-Auth-Email": "nobody", "X-Auth-Key": KEY})
    yield "/user/tokens/verify", get(fake, "/user/tokens/verify", headers={"Authorization": "Bearer nope"})
    yield tunnels, get(fake, f"/accounts/{'f' * 32}/cfd_tunnel")
    yield f"/accounts/{A}/cfd_tunnel/x", get(fake, f"{tunnels}/{uuid.UUID(int=1)}")
    yield f"{tunnels}/x/connectors/y", get(fake, f"{tunnels}/{WEB}/connectors/{uuid.UUID(int=2)}")
    yield tunnels, fake.handle("DELETE", "/client/v4" + tunnels, {}, AUTH)
    for fault in (Fault.error(500), Fault.error(502, 10002, "Bad gateway"), Fault.error(503),
                  Fault.error(504), Fault.unsuccessful(), Fault.rate_limited(120)):
        fake.inject(fault)
        yield tunnels, get(fake, tunnels)


def test_every_failure_answer_matches_the_spec(fake: FakeCloudflare) -> None:
    seen = set()
    for path, response in failing_requests(fake):
        assert not response.json()["success"]
        assert_conforms(path, response)
        seen.add(response.status)
    assert seen == {200, 400, 401, 403, 404, 405, 429, 500, 502, 503, 504}


def test_rate_limit_answer_conforms_except_for_the_code_minimum(clock: FakeClock) -> None:
    fake = FakeCloudflare(SimulatedAccount(start=START), require_auth=False, clock=clock.wall, rate_limit=1)
    get(fake, "/accounts")
    response = get(fake, "/accounts")
    assert response.status == 429
    assert_conforms("/accounts", response)
    with pytest.raises(jsonschema.ValidationError):
        validator(failure_schema("/accounts")).validate(response.json())  # 971 < minimum 1000


def test_the_validator_is_not_vacuous(fake: FakeCloudflare) -> None:
    """The checks above must catch drift: mutate good answers and watch them fail."""
    path = f"/accounts/{A}/cfd_tunnel/{WEB}/connections"
    good = get(fake, path).json()
    check = validator(response_schema(spec_path_for(path)))
    check.validate(good)
    for mutate in (
        lambda b: b["result"][0]["conns"][0].__setitem__("is_pending_reconnect", "no"),
        lambda b: b["result"][0]["conns"][0].__setitem__("opened_at", "2026-08-20 12:00:00"),
        lambda b: b["result"][0].__setitem__("config_version", "3"),
        lambda b: b["result"][0].__setitem__("id", "not-a-uuid"),
        lambda b: b.__setitem__("success", False),
        lambda b: b.pop("messages"),
    ):
        bad = copy.deepcopy(good)
        mutate(bad)
        with pytest.raises(jsonschema.ValidationError):
            check.validate(bad)
    tunnel = get(fake, f"/accounts/{A}/cfd_tunnel/{WEB}").json()
    tunnel["result"]["status"] = "sleeping"
    with pytest.raises(jsonschema.ValidationError):
        validator(response_schema("/accounts/{account_id}/cfd_tunnel/{tunnel_id}")).validate(tunnel)
    tunnel["result"]["status"] = "healthy"
    tunnel["result"]["made_up"] = 1
    with pytest.raises(AssertionError):
        assert_no_invented_fields(tunnel)


def test_to_jsonschema_handles_nullable() -> None:
    assert to_jsonschema({"type": "object", "nullable": True, "enum": [None]}) == {
        "type": ["object", "null"], "enum": [None]}
    assert to_jsonschema({"type": "string", "enum": ["a"], "nullable": True})["enum"] == ["a", None]
    converted = to_jsonschema({"$ref": "#/components/schemas/tunnel_deleted_at"})
    jsonschema.Draft7Validator(converted).validate(None)


# ================================================================ envelope, routes, paging, filters


def test_envelope_and_result_info_shape(fake: FakeCloudflare) -> None:
    body = get(fake, f"/accounts/{A}/cfd_tunnel").json()
    assert set(body) == {"success", "errors", "messages", "result", "result_info"}
    assert body["success"] is True and body["errors"] == [] and body["messages"] == []
    assert body["result_info"] == {"page": 1, "per_page": 20, "count": 7, "total_count": 7, "total_pages": 1}
    single = get(fake, f"/accounts/{A}/cfd_tunnel/{WEB}").json()
    assert "result_info" not in single and single["result"]["name"] == "web-prod"
    clients = get(fake, f"/accounts/{A}/cfd_tunnel/{WEB}/connections").json()
    assert "result_info" not in clients, "the connections endpoint is not paged"
    assert clients["result"] == fake.sim.clients(WEB)


def test_paging_45_tunnels(clock: FakeClock) -> None:
    fake = FakeCloudflare(SimulatedAccount(start=START, tunnels=45), require_auth=False, clock=clock.wall)
    seen: list[str] = []
    for page, count in ((1, 20), (2, 20), (3, 5)):
        body = get(fake, f"/accounts/{A}/cfd_tunnel", {"per_page": "20", "page": str(page)}).json()
        assert body["result_info"] == {"page": page, "per_page": 20, "count": count, "total_count": 45,
                                       "total_pages": 3}
        seen += [t["id"] for t in body["result"]]
    assert seen == fake.sim.tunnel_ids() and len(set(seen)) == 45
    beyond = get(fake, f"/accounts/{A}/cfd_tunnel", {"per_page": "20", "page": "4"}).json()
    assert beyond["result"] == [] and beyond["result_info"]["count"] == 0


@pytest.mark.parametrize(("asked", "got"), [("0", 1), ("5000", 1000), ("junk", 20), ("7", 7), ("1000", 1000)])
def test_tunnel_per_page_is_clamped_to_1_to_1000(fake: FakeCloudflare, asked: str, got: int) -> None:
    info = get(fake, f"/accounts/{A}/cfd_tunnel", {"per_page": asked}).json()["result_info"]
    assert info["per_page"] == got


@pytest.mark.parametrize("count", [0, 1, 7])
def test_accounts_override_and_paging(fake: FakeCloudflare, count: int) -> None:
    fake.accounts = [{"id": f"{i:032x}", "name": f"Account {i}", "type": "standard"} for i in range(count)]
    body = get(fake, "/accounts", {"per_page": "5"}).json()
    assert body["result_info"]["total_count"] == count and body["result_info"]["per_page"] == 5
    assert [a["name"] for a in body["result"]] == [f"Account {i}" for i in range(min(count, 5))]
    if count:
        other = get(fake, f"/accounts/{0:032x}/cfd_tunnel").json()
        assert other["success"] and other["result"] == [], "an extra account routes but holds no tunnels"


def test_accounts_per_page_is_5_to_50_default_20(fake: FakeCloudflare) -> None:
    fake.accounts = [{"id": f"{i:032x}", "name": f"Account {i}"} for i in range(60)]
    assert get(fake, "/accounts").json()["result_info"]["per_page"] == 20
    assert get(fake, "/accounts", {"per_page": "1"}).json()["result_info"]["per_page"] == 5
    assert get(fake, "/accounts", {"per_page": "500"}).json()["result_info"]["per_page"] == 50


def names(response: FakeResponse) -> list[str]:
    return [t["name"] for t in response.json()["result"]]


def test_tunnel_filters(fake: FakeCloudflare) -> None:
    path = f"/accounts/{A}/cfd_tunnel"
    everything = names(get(fake, path))
    assert "old-blog" in everything and len(everything) == 7
    assert "old-blog" not in names(get(fake, path, {"is_deleted": "false"}))
    assert names(get(fake, path, {"is_deleted": "true"})) == ["old-blog"]
    assert names(get(fake, path, {"name": "home-lab"})) == ["home-lab"]
    assert names(get(fake, path, {"name": "home"})) == []
    assert names(get(fake, path, {"uuid": WEB})) == ["web-prod"]
    assert names(get(fake, path, {"status": "inactive"})) == ["office-router-new"]
    assert names(get(fake, path, {"status": "down", "is_deleted": "false"})) == ["batch-etl"]
    assert names(get(fake, path, {"status": "bogus"})) == []
    fake.sim.add_tunnel("web-canary", status="healthy")
    assert names(get(fake, path, {"include_prefix": "web-"})) == ["web-prod", "web-canary"]
    assert "web-prod" not in names(get(fake, path, {"exclude_prefix": "web-"}))
    assert names(get(fake, path, [("include_prefix", "web-"), ("exclude_prefix", "web-c")])) == ["web-prod"]


def test_query_may_come_as_mapping_list_or_in_the_path(fake: FakeCloudflare) -> None:
    path = f"/accounts/{A}/cfd_tunnel"
    assert names(get(fake, path, {"name": "home-lab"})) == ["home-lab"]
    assert names(get(fake, path, [("name", "home-lab")])) == ["home-lab"]
    assert names(fake.handle("GET", f"/client/v4{path}?name=home-lab", {}, AUTH)) == ["home-lab"]


def test_prefix_is_optional_and_trailing_slash_ignored(fake: FakeCloudflare) -> None:
    assert fake.handle("GET", "/accounts", {}, AUTH).status == 200
    assert get(fake, "/accounts/").status == 200


@pytest.mark.parametrize(
    "path",
    [
        "/zones",
        "/",
        f"/accounts/{A}",
        f"/accounts/{A}/tunnels/extra",
        f"/accounts/{A}/cfd_tunnel/{uuid.UUID(int=5)}",
        f"/accounts/{A}/cfd_tunnel/{uuid.UUID(int=5)}/connections",
        f"/accounts/{A}/cfd_tunnel/{WEB}/connectors/{uuid.UUID(int=6)}",
        f"/accounts/{A}/cfd_tunnel/{WEB}/nonsense",
        "/accounts/not-an-account-id/cfd_tunnel",
    ],
)
def test_what_does_not_route_is_404_7003(fake: FakeCloudflare, path: str) -> None:
    response = get(fake, path)
    assert response.status == 404
    body = response.json()
    assert errors_of(response) == [7003, 7000]
    route = path.rstrip("/") or "/"
    message = f"Could not route to {route}, perhaps your object identifier is invalid?"
    assert body["errors"][0]["message"] == message
    assert body["result"] is None and body["success"] is False


def test_an_account_the_credentials_cannot_see_is_403_9109(fake: FakeCloudflare) -> None:
    response = get(fake, f"/accounts/{'a' * 32}/cfd_tunnel")
    assert response.status == 403 and errors_of(response) == [9109]


def test_deleted_tunnel_still_answers_by_id(fake: FakeCloudflare) -> None:
    old = DEMO_TUNNELS["old-blog"]
    assert get(fake, f"/accounts/{A}/cfd_tunnel/{old}").json()["result"]["deleted_at"] is not None
    assert get(fake, f"/accounts/{A}/cfd_tunnel/{old}/connections").json()["result"] == []


def test_connector_and_configuration_routes(fake: FakeCloudflare) -> None:
    client = fake.sim.clients(WEB)[1]
    body = get(fake, f"/accounts/{A}/cfd_tunnel/{WEB}/connectors/{client['id']}").json()
    assert body["result"] == client
    config = get(fake, f"/accounts/{A}/cfd_tunnel/{WEB}/configurations").json()["result"]
    assert config["tunnel_id"] == WEB and config["source"] == "cloudflare" and config["config"]["ingress"]


def test_hostile_records_are_served_verbatim(fake: FakeCloudflare) -> None:
    hostile = [{"id": "x", "conns": [{"colo_name": "\x1b[31mDFW", "extra": [1, 2]}]}, 42, None]
    fake.sim.set_clients(WEB, hostile)
    assert get(fake, f"/accounts/{A}/cfd_tunnel/{WEB}/connections").json()["result"] == hostile


def test_each_request_advances_the_simulation(fake: FakeCloudflare, clock: FakeClock) -> None:
    path = f"/accounts/{A}/cfd_tunnel/{DEMO_TUNNELS['api-staging']}/connections"
    first = get(fake, path).json()["result"]
    clock.advance(120)
    assert get(fake, path).json()["result"] != first


# ================================================================ auth


def test_bearer_token_and_key_pair_are_accepted(fake: FakeCloudflare) -> None:
    assert get(fake, "/accounts").status == 200
    assert get(fake, "/accounts", headers={"authorization": f"bearer {TOKEN}"}).status == 200
    assert get(fake, "/accounts", headers={"X-Auth-Email": EMAIL, "X-Auth-Key": KEY}).status == 200


@pytest.mark.parametrize(
    ("headers", "status", "code", "chain"),
    [
        ({}, 400, 9106, None),
        ({"Authorization": "Bearer"}, 400, 6003, 6111),
        ({"Authorization": "Bearer "}, 400, 6003, 6111),
        ({"Authorization": f"Bearer  {TOKEN}"}, 400, 6003, 6111),
        ({"Authorization": f"Bearer {TOKEN}\n"}, 400, 6003, 6111),
        ({"Authorization": f'Bearer "{TOKEN}"'}, 400, 6003, 6111),
        ({"Authorization": f"Token {TOKEN}"}, 400, 6003, 6111),
        ({"Authorization": f"Bearer {TOKEN}x"}, 403, 10000, None),
        ({"X-Auth-Email": EMAIL, "X-Auth-Key": "f" * 37}, 403, 9103, None),
        ({"X-Auth-Email": EMAIL, "X-Auth-Key": "short"}, 400, 6003, 6103),
        ({"X-Auth-Email": "no-at-sign", "X-Auth-Key": KEY}, 400, 6003, 6102),
        ({"X-Auth-Key": KEY}, 400, 6003, 6102),
    ],
)
def test_auth_failures(fake: FakeCloudflare, headers: dict[str, str], status: int, code: int,
                       chain: int | None) -> None:
    response = get(fake, f"/accounts/{A}/cfd_tunnel", headers=headers)
    assert response.status == status
    error = response.json()["errors"][0]
    assert error["code"] == code
    if chain is None:
        assert "error_chain" not in error
    else:
        assert [c["code"] for c in error["error_chain"]] == [chain]
    if code == 6003:
        assert error["message"] == "Invalid request headers"


def test_auth_not_required_in_demo_mode(clock: FakeClock) -> None:
    fake = FakeCloudflare(SimulatedAccount(start=START), require_auth=False, clock=clock.wall)
    for headers in ({}, {"Authorization": "Bearer whatever"}, {"Authorization": "garbage"}):
        assert get(fake, f"/accounts/{A}/cfd_tunnel", headers=headers).status == 200
    assert get(fake, "/user/tokens/verify", headers={}).json()["result"]["status"] == "active"


def test_token_verify(fake: FakeCloudflare) -> None:
    for path in ("/user/tokens/verify", f"/accounts/{A}/tokens/verify"):
        body = get(fake, path).json()
        assert body["result"]["status"] == "active" and re.fullmatch(r"[0-9a-f]{32}", body["result"]["id"])
        assert body["messages"][0]["message"] == "This API Token is valid and active"
        wrong = get(fake, path, headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401 and errors_of(wrong) == [1000]
        pair = get(fake, path, headers={"X-Auth-Email": EMAIL, "X-Auth-Key": KEY})
        assert pair.status == 401, "only an API token can be verified"
    assert get(fake, "/user/tokens/verify").json()["result"]["id"] == get(
        fake, "/user/tokens/verify").json()["result"]["id"]


# ================================================================ read-only


@pytest.mark.parametrize("method", ["DELETE", "POST", "PUT", "PATCH", "HEAD"])
def test_anything_but_get_is_405_and_recorded(fake: FakeCloudflare, method: str) -> None:
    path = f"/client/v4/accounts/{A}/cfd_tunnel/{WEB}/connections"
    response = fake.handle(method, path, {}, AUTH)
    assert response.status == 405 and errors_of(response) == [7001]
    assert [(r.method, r.path) for r in fake.non_get_requests] == [(method, path)]
    assert fake.sim.clients(WEB), "nothing was cleaned up"


def test_get_requests_leave_no_trace_in_non_get_requests(fake: FakeCloudflare) -> None:
    get(fake, "/accounts")
    assert fake.non_get_requests == [] and len(fake.requests) == 1


# ================================================================ rate limiting


def parse_ratelimit(response: FakeResponse) -> tuple[int, int]:
    match = re.fullmatch(r'"default";r=(\d+);t=(\d+)', response.headers["Ratelimit"])
    assert match, response.headers["Ratelimit"]
    return int(match[1]), int(match[2])


def test_ratelimit_headers_on_every_answer(fake: FakeCloudflare, clock: FakeClock) -> None:
    first = get(fake, "/accounts")
    assert first.headers["Ratelimit-Policy"] == '"default";q=1200;w=300'
    assert parse_ratelimit(first) == (1199, 300)
    clock.advance(100)
    assert parse_ratelimit(get(fake, "/nope")) == (1198, 200)
    assert parse_ratelimit(get(fake, "/accounts", headers={})) == (1197, 200)
    fake.inject(Fault.html_page())
    assert parse_ratelimit(get(fake, "/accounts")) == (1196, 200)


def test_over_the_limit_blocks_for_the_rest_of_the_window(clock: FakeClock) -> None:
    fake = FakeCloudflare(SimulatedAccount(start=START), require_auth=False, clock=clock.wall,
                          rate_limit=3, rate_window=300)
    for _ in range(3):
        assert get(fake, "/accounts").status == 200
    clock.advance(40)
    blocked = get(fake, "/accounts")
    assert blocked.status == 429
    assert blocked.headers["Retry-After"] == "260"
    assert errors_of(blocked) == [971]
    assert blocked.json()["errors"][0]["message"] == "Please wait and consider throttling your request speed"
    assert parse_ratelimit(blocked) == (0, 260)
    clock.advance(250)
    assert get(fake, "/accounts").headers["Retry-After"] == "10", "still blocked, and it counts down"
    clock.advance(10)
    fresh = get(fake, "/accounts")
    assert fresh.status == 200 and parse_ratelimit(fresh) == (2, 300)


def test_reset_rate_limit(clock: FakeClock) -> None:
    fake = FakeCloudflare(SimulatedAccount(start=START), require_auth=False, clock=clock.wall, rate_limit=1)
    get(fake, "/accounts")
    assert get(fake, "/accounts").status == 429
    fake.reset_rate_limit()
    assert get(fake, "/accounts").status == 200


# ================================================================ faults


def test_fault_json_error_statuses(fake: FakeCloudflare) -> None:
    for status in (500, 502, 503, 504):
        fake.inject(Fault.error(status, code=10013, message="Service unavailable"))
        response = get(fake, "/accounts")
        assert response.status == status and response.json()["errors"] == [
            {"code": 10013, "message": "Service unavailable"}]
    assert get(fake, "/accounts").status == 200, "consumed"


def test_fault_html_gateway_page(fake: FakeCloudflare) -> None:
    fake.inject(Fault.html_page(502))
    response = get(fake, "/accounts")
    assert response.status == 502 and response.headers["Content-Type"] == "text/html"
    assert b"<title>502 Bad Gateway</title>" in response.body and b"cloudflare" in response.body
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_fault_raw_truncated_body(fake: FakeCloudflare) -> None:
    fake.inject(Fault.raw('{"success": true, "errors": [], "result": [{"id": "1b'))
    response = get(fake, f"/accounts/{A}/cfd_tunnel")
    assert response.status == 200 and response.headers["Content-Type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        response.json()
    fake.inject(Fault.raw(b"\xff\xfe", status=200, content_type="application/octet-stream"))
    assert get(fake, "/accounts").body == b"\xff\xfe"


def test_fault_success_false_with_http_200(fake: FakeCloudflare) -> None:
    fake.inject(Fault.unsuccessful(code=1002, message="Something went wrong"))
    response = get(fake, "/accounts")
    assert response.status == 200
    assert response.json() == {"success": False, "messages": [], "result": None,
                               "errors": [{"code": 1002, "message": "Something went wrong"}]}


def test_fault_429_with_retry_after(fake: FakeCloudflare) -> None:
    fake.inject(Fault.rate_limited(retry_after=287))
    response = get(fake, "/accounts")
    assert response.status == 429 and response.headers["Retry-After"] == "287"
    assert errors_of(response) == [971]


def test_fault_delay_keeps_the_normal_answer(fake: FakeCloudflare) -> None:
    fake.inject(Fault.hang(30.0))
    response = get(fake, "/accounts")
    assert response.status == 200 and response.delay == 30.0 and response.json()["success"]
    assert get(fake, "/accounts").delay == 0.0
    fake.inject(Fault(status=504, delay=2.5))
    slow_error = get(fake, "/accounts")
    assert slow_error.status == 504 and slow_error.delay == 2.5


def test_fault_extra_headers(fake: FakeCloudflare) -> None:
    fake.inject(Fault(headers={"Ratelimit": '"default";r=0;t=42', "X-Extra": "1"}))
    response = get(fake, "/accounts")
    assert response.status == 200 and response.headers["Ratelimit"] == '"default";r=0;t=42'
    assert response.headers["X-Extra"] == "1"


def test_faults_are_consumed_in_order_by_path_and_times(fake: FakeCloudflare) -> None:
    fake.inject(Fault.error(500), path_contains="/connections", times=2)
    fake.inject(Fault.error(503))
    fake.inject(Fault.error(502))
    connections = f"/accounts/{A}/cfd_tunnel/{WEB}/connections"
    assert get(fake, "/accounts").status == 503, "the /connections fault does not match /accounts"
    assert get(fake, connections).status == 500
    assert get(fake, connections).status == 500
    assert get(fake, connections).status == 502
    assert get(fake, connections).status == 200
    fake.inject(Fault.error(500), times=5)
    fake.clear_faults()
    assert get(fake, "/accounts").status == 200


# ================================================================ the request log


def test_request_log_records_the_scheme_but_never_a_credential(fake: FakeCloudflare, clock: FakeClock) -> None:
    get(fake, "/accounts", {"page": "1"})
    clock.advance(5)
    get(fake, "/accounts", headers={"X-Auth-Email": EMAIL, "X-Auth-Key": KEY})
    get(fake, "/accounts", headers={"Authorization": "Bearer wrong-but-secret-ish"})
    get(fake, "/accounts", headers={})
    log = fake.requests
    assert [r.auth for r in log] == ["bearer", "api_key", "bearer", "none"]
    assert (log[0].method, log[0].path, log[0].query) == ("GET", "/client/v4/accounts", (("page", "1"),))
    assert log[1].time == START + timedelta(seconds=5)
    everything = repr(log) + repr(vars(fake)) + repr(vars(fake.sim))
    for secret in (TOKEN, KEY, EMAIL, "wrong-but-secret-ish"):
        assert secret not in everything


# ================================================================ private networks (teamnet) and configurations

TEAMNET = json.loads((Path(__file__).parent / "data" / "cloudflare-teamnet-routes.json").read_text())
HOME = DEMO_TUNNELS["home-lab"]


def teamnet_check(path: str) -> jsonschema.Draft7Validator:
    schema = TEAMNET["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    return jsonschema.Draft7Validator(schema, format_checker=FORMATS)


def teamnet_fields(path: str) -> set[str]:
    schema = TEAMNET["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    return set(schema["properties"]["result"]["items"]["properties"])


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/accounts/{account_id}/teamnet/routes", {}),
        ("/accounts/{account_id}/teamnet/routes", {"tunnel_id": WEB, "is_deleted": "false"}),
        ("/accounts/{account_id}/teamnet/routes", {"is_deleted": "true"}),
        ("/accounts/{account_id}/teamnet/virtual_networks", {}),
        ("/accounts/{account_id}/teamnet/virtual_networks", {"is_default": "true"}),
    ],
)
def test_teamnet_answers_match_their_spec(fake: FakeCloudflare, path: str, query: dict[str, str]) -> None:
    response = get(fake, path.replace("{account_id}", A), query)
    assert response.status == 200 and response.headers["Content-Type"] == "application/json"
    body = response.json()
    teamnet_check(path).validate(body)
    assert set(body) == {"success", "errors", "messages", "result", "result_info"}
    assert set(body["result_info"]) == {"page", "per_page", "count", "total_count", "total_pages"}
    assert body["result"], "the demo account has some"
    for item in body["result"]:
        assert set(item) <= teamnet_fields(path), set(item) - teamnet_fields(path)


def test_the_teamnet_check_is_not_vacuous(fake: FakeCloudflare) -> None:
    path = "/accounts/{account_id}/teamnet/routes"
    good = get(fake, f"/accounts/{A}/teamnet/routes").json()
    for mutate in (
        lambda b: b["result"][0].__setitem__("network", 10),
        lambda b: b["result"][0].__setitem__("created_at", "yesterday"),
        lambda b: b.__setitem__("result", {}),
        lambda b: b.__setitem__("success", "yes"),
    ):
        bad = copy.deepcopy(good)
        mutate(bad)
        with pytest.raises(jsonschema.ValidationError):
            teamnet_check(path).validate(bad)


def test_routes_filter_by_tunnel_deleted_and_virtual_network(fake: FakeCloudflare) -> None:
    path = f"/accounts/{A}/teamnet/routes"
    everything = get(fake, path).json()["result"]
    assert {r["tunnel_id"] for r in everything} >= {WEB, HOME}
    web = get(fake, path, {"tunnel_id": WEB, "is_deleted": "false"}).json()["result"]
    assert [r["network"] for r in web] == ["10.10.0.0/16", "10.11.0.0/24"]
    assert all(r["tunnel_name"] == "web-prod" and r["virtual_network_name"] == "default" for r in web)
    deleted = get(fake, path, {"is_deleted": "true"}).json()["result"]
    assert [r["network"] for r in deleted] == ["10.12.0.0/24"] and deleted[0]["deleted_at"]
    home = get(fake, path, {"tunnel_id": HOME}).json()["result"]
    vnet = home[0]["virtual_network_id"]
    assert [r["network"] for r in get(fake, path, {"virtual_network_id": vnet}).json()["result"]] == ["192.168.1.0/24"]
    assert get(fake, path, {"tunnel_id": str(uuid.UUID(int=9))}).json()["result"] == []
    fake.route_names = False
    assert all("virtual_network_name" not in r for r in get(fake, path).json()["result"])


def test_routes_page_like_the_tunnel_list(fake: FakeCloudflare) -> None:
    for i in range(12):
        fake.sim.add_route(WEB, f"10.100.{i}.0/24")
    path = f"/accounts/{A}/teamnet/routes"
    seen = []
    for page, count in ((1, 5), (2, 5), (3, 4)):
        body = get(fake, path, {"tunnel_id": WEB, "is_deleted": "false", "per_page": "5", "page": str(page)}).json()
        assert body["result_info"] == {"page": page, "per_page": 5, "count": count, "total_count": 14,
                                       "total_pages": 3}
        seen += [r["id"] for r in body["result"]]
    assert len(set(seen)) == 14


def test_virtual_networks_and_their_filters(fake: FakeCloudflare) -> None:
    path = f"/accounts/{A}/teamnet/virtual_networks"
    names = [v["name"] for v in get(fake, path).json()["result"]]
    assert names == ["default", "home"]
    assert [v["name"] for v in get(fake, path, {"is_default": "true"}).json()["result"]] == ["default"]
    assert [v["name"] for v in get(fake, path, {"name": "home"}).json()["result"]] == ["home"]
    other = get(fake, f"/accounts/{'0' * 32}/teamnet/virtual_networks")
    assert other.status == 403 and errors_of(other) == [9109]


@pytest.mark.parametrize("path", ["/teamnet/routes", "/teamnet/virtual_networks"])
def test_teamnet_needs_credentials_and_only_gets(fake: FakeCloudflare, path: str) -> None:
    response = get(fake, f"/accounts/{A}{path}", headers={"Authorization": "Bearer wrong"})
    assert response.status == 403 and errors_of(response) == [10000]
    assert_conforms(f"/accounts/{A}/cfd_tunnel", response)  # the common failure envelope
    refused = fake.handle("POST", f"/client/v4/accounts/{A}{path}", {}, AUTH)
    assert refused.status == 405


def test_each_running_demo_tunnel_has_a_remote_config_but_home_lab(fake: FakeCloudflare) -> None:
    # The newer spec's typed configuration (x-known-deltas): {account_id, config{ingress[...]}, created_at, source,
    # tunnel_id, version}; the last ingress rule is the catch-all.
    for name, tid in DEMO_TUNNELS.items():
        if name == "old-blog":
            continue
        result = get(fake, f"/accounts/{A}/cfd_tunnel/{tid}/configurations").json()["result"]
        assert set(result) == {"account_id", "config", "created_at", "source", "tunnel_id", "version"}
        if name == "home-lab":
            assert (result["source"], result["config"]) == ("local", None)
            continue
        assert result["source"] == "cloudflare" and isinstance(result["version"], int)
        rules = result["config"]["ingress"]
        assert "hostname" not in rules[-1] and rules[-1]["service"].startswith("http_status:")
        assert all(set(rule) <= {"hostname", "service", "path", "originRequest"} for rule in rules)
        tunnel = get(fake, f"/accounts/{A}/cfd_tunnel/{tid}").json()["result"]
        assert tunnel["config_src"] == "cloudflare" and tunnel["remote_config"] is True
        if name != "office-router-new":
            assert 1 <= sum(1 for rule in rules if "hostname" in rule) <= 4


def test_scenario_drift_leaves_one_connector_behind(fake: FakeCloudflare) -> None:
    before = get(fake, f"/accounts/{A}/cfd_tunnel/{WEB}/configurations").json()["result"]["version"]
    fake.sim.scenario("drift")
    after = get(fake, f"/accounts/{A}/cfd_tunnel/{WEB}/configurations").json()["result"]["version"]
    clients = get(fake, f"/accounts/{A}/cfd_tunnel/{WEB}/connections").json()["result"]
    assert after == before + 1
    assert sorted(c["config_version"] for c in clients) == [before, after]
    with pytest.raises(ValueError, match="remotely managed"):
        fake.sim.scenario("drift", HOME)
    with pytest.raises(ValueError, match="no scenario"):
        fake.sim.scenario("meteor")


def test_scenario_lost_redundancy_is_one_connector_in_one_colo_still_healthy(
    fake: FakeCloudflare, clock: FakeClock
) -> None:
    fake.sim.scenario("lost-redundancy")
    clock.advance(60)
    clients = get(fake, f"/accounts/{A}/cfd_tunnel/{WEB}/connections").json()["result"]
    assert len(clients) == 1 and len({c["colo_name"] for c in clients[0]["conns"]}) == 1
    assert get(fake, f"/accounts/{A}/cfd_tunnel/{WEB}").json()["result"]["status"] == "healthy"
