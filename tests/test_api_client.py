"""The client's wire behaviour: the headers it sends, GET only, and a secret that never leaks."""

from __future__ import annotations

import pickle
import traceback

import httpx
import pytest

from tunneltop.api import ApiError, CloudflareClient, Credentials, NetworkError, RetryPolicy
from tunneltop.api.client import USER_AGENT

SECRET = "cfut_Zq8sEcReT-4f7a1c9e0b2d6h3k"
KEY = "cfk_G1obalKeyS3cret0000aaaa1111"
ACCOUNT = "0123456789abcdef0123456789abcdef"
TUNNEL = "f70ff985-a4ef-4643-bbbc-4a0ed4fc8415"
CONNECTOR = "1bedc527-3b72-4b6b-8f1c-8a8c1d3f2e10"

CONNECTOR_JSON = {
    "id": CONNECTOR,
    "arch": "linux_amd64",
    "version": "2025.2.0",
    "run_at": "2025-03-01T10:00:00Z",
    "config_version": 3,
    "features": ["ha-origin"],
    "conns": [
        {"id": "c1", "colo_name": "DFW", "origin_ip": "203.0.113.5", "is_pending_reconnect": False},
    ],
}


class Recorder:
    """A Cloudflare-shaped MockTransport handler that records every request it sees."""

    def __init__(self):
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/client/v4/")
        result: object
        if path == "accounts":
            result = [{"id": ACCOUNT, "name": "Acme"}]
        elif path.endswith("tokens/verify"):
            result = {"id": "tok", "status": "active"}
        elif path.endswith("/connections") or path.endswith(f"/connectors/{CONNECTOR}"):
            result = [CONNECTOR_JSON] if path.endswith("/connections") else CONNECTOR_JSON
        elif path.endswith("cfd_tunnel"):
            result = [{"id": TUNNEL, "name": "web", "status": "healthy"}]
        else:
            result = {"id": TUNNEL, "name": "web", "status": "healthy"}
        return httpx.Response(200, json={"success": True, "errors": [], "messages": [], "result": result})


def client_for(handler, credentials: Credentials | None = None, **options) -> CloudflareClient:
    return CloudflareClient(
        credentials or Credentials.token(SECRET, source="CLOUDFLARE_API_TOKEN"),
        "https://api.cloudflare.test/client/v4/",
        transport=httpx.MockTransport(handler),
        **options,
    )


async def exercise_everything(client: CloudflareClient) -> None:
    await client.list_accounts()
    await client.verify_token()
    await client.verify_token(ACCOUNT)
    await client.list_tunnels(ACCOUNT)
    await client.list_tunnels(ACCOUNT, name="web", include_deleted=True)
    await client.get_tunnel(ACCOUNT, TUNNEL)
    await client.list_connectors(ACCOUNT, TUNNEL)
    await client.get_connector(ACCOUNT, TUNNEL, CONNECTOR)
    await client.list_tunnels(ACCOUNT, uuid=TUNNEL, include_deleted=None)
    await client.get(f"accounts/{ACCOUNT}/cfd_tunnel/{TUNNEL}/configurations")
    await client.get_all_pages(f"accounts/{ACCOUNT}/cfd_tunnel")


async def test_every_request_is_a_get():
    recorder = Recorder()
    async with client_for(recorder) as client:
        await exercise_everything(client)
    assert len(recorder.requests) >= 11
    assert {r.method for r in recorder.requests} == {"GET"}
    assert all(not r.content for r in recorder.requests)


def test_the_client_has_no_verb_but_get():
    verbs = {"post", "put", "patch", "delete", "request", "send"}
    assert verbs.isdisjoint(name.lower() for name in dir(CloudflareClient))


async def test_paths_and_query_parameters():
    recorder = Recorder()
    async with client_for(recorder) as client:
        await exercise_everything(client)
    paths = [r.url.path for r in recorder.requests]
    base = f"/client/v4/accounts/{ACCOUNT}/cfd_tunnel"
    assert paths[:8] == [
        "/client/v4/accounts",
        "/client/v4/user/tokens/verify",
        f"/client/v4/accounts/{ACCOUNT}/tokens/verify",
        base,
        base,
        f"{base}/{TUNNEL}",
        f"{base}/{TUNNEL}/connections",
        f"{base}/{TUNNEL}/connectors/{CONNECTOR}",
    ]
    assert recorder.requests[3].url.params["is_deleted"] == "false"
    assert "name" not in recorder.requests[3].url.params
    assert recorder.requests[4].url.params["is_deleted"] == "true"
    assert recorder.requests[4].url.params["name"] == "web"
    assert all(r.url.host == "api.cloudflare.test" and r.url.scheme == "https" for r in recorder.requests)


async def test_endpoint_results_are_models():
    async with client_for(Recorder()) as client:
        accounts, _ = await client.list_accounts()
        token = await client.verify_token()
        connectors, problems = await client.list_connectors(ACCOUNT, TUNNEL)
        connector = await client.get_connector(ACCOUNT, TUNNEL, CONNECTOR)
        tunnel = await client.get_tunnel(ACCOUNT, TUNNEL)
    assert accounts[0].name == "Acme"
    assert token.status == "active"
    assert problems == []
    assert connectors[0].conns[0].colo_name == "DFW"
    assert connector.id == CONNECTOR and connector.version == "2025.2.0"
    assert tunnel.name == "web"


async def test_bearer_token_header_is_sent():
    recorder = Recorder()
    async with client_for(recorder) as client:
        await client.verify_token()
    headers = recorder.requests[0].headers
    assert headers["authorization"] == f"Bearer {SECRET}"
    assert "x-auth-key" not in headers and "x-auth-email" not in headers
    assert headers["user-agent"] == USER_AGENT
    assert headers["accept"] == "application/json"


async def test_email_and_global_key_headers_are_sent():
    recorder = Recorder()
    creds = Credentials.global_key(" ops@example.com ", f" {KEY}\n", source="env")
    async with client_for(recorder, creds) as client:
        await client.list_accounts()
    headers = recorder.requests[0].headers
    assert headers["x-auth-email"] == "ops@example.com"
    assert headers["x-auth-key"] == KEY
    assert "authorization" not in headers


async def test_no_credentials_sends_no_auth_headers():
    recorder = Recorder()
    client = CloudflareClient(None, "http://127.0.0.1:9/client/v4", transport=httpx.MockTransport(recorder))
    async with client:
        await client.list_accounts()
    headers = recorder.requests[0].headers
    assert not {"authorization", "x-auth-key", "x-auth-email"} & set(headers.keys())


# -- redaction ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("creds", [Credentials.token(SECRET, "env"), Credentials.global_key("a@b.c", SECRET, "env")])
def test_credentials_never_show_the_secret(creds):
    for text in (repr(creds), str(creds), f"{creds}", creds.describe(), repr([creds]), repr({"c": creds})):
        assert SECRET not in text
    assert not hasattr(creds, "__dict__")
    with pytest.raises(TypeError):
        pickle.dumps(creds)


def test_credentials_describe_their_kind_and_source():
    assert Credentials.token(SECRET, "CLOUDFLARE_API_TOKEN").describe() == "API token from CLOUDFLARE_API_TOKEN"
    assert Credentials.global_key("a@b.c", KEY).describe() == "email + global API key"


@pytest.mark.parametrize("bad", ["", "   ", f"{SECRET} {SECRET}", f"{SECRET}\x00", f"tab\t{SECRET}"])
def test_a_malformed_secret_is_refused_without_being_quoted(bad):
    with pytest.raises(ValueError) as info:
        Credentials.token(bad, source="CLOUDFLARE_API_TOKEN")
    assert SECRET not in str(info.value)
    assert "CLOUDFLARE_API_TOKEN" in str(info.value)


def test_scrub_replaces_the_secret():
    creds = Credentials.token(SECRET)
    assert creds.scrub(f"Authorization: Bearer {SECRET} failed") == "Authorization: Bearer [redacted] failed"


def test_client_repr_hides_the_secret():
    client = client_for(Recorder())
    assert SECRET not in repr(client) and SECRET not in str(client)
    assert "api.cloudflare.test" in repr(client)


def all_text_of(error: BaseException) -> str:
    parts = [str(error), repr(error), repr(error.args), "".join(traceback.format_exception(error))]
    if isinstance(error, ApiError):
        parts += [error.message, repr(error.errors), str(error.path)]
    return "\n".join(parts)


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError(f"proxy refused CONNECT with header Authorization: Bearer {SECRET}"),
        httpx.ReadTimeout(f"timed out sending {SECRET}"),
        httpx.ProxyError(f"407 for {SECRET}"),
    ],
)
async def test_network_errors_never_carry_the_secret(exc):
    def handler(request):
        raise exc

    async with client_for(handler, retry=RetryPolicy(retries=0)) as client:
        with pytest.raises(NetworkError) as info:
            await client.get("accounts")
    assert SECRET not in all_text_of(info.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 500, 200])
async def test_an_api_answer_echoing_the_secret_does_not_leak_it(status):
    """A proxy or a misbehaving endpoint may echo request headers back in its error text."""
    body = {"success": False, "errors": [{"code": 6003, "message": f"bad header 'Bearer {SECRET}'"}], "result": None}

    def handler(request):
        return httpx.Response(status, json=body)

    async with client_for(handler, retry=RetryPolicy(retries=0)) as client:
        with pytest.raises(ApiError) as info:
            await client.get("accounts")
    assert SECRET not in all_text_of(info.value)


async def test_global_key_never_leaks_from_errors():
    def handler(request):
        raise httpx.ConnectError(f"X-Auth-Key: {KEY}")

    creds = Credentials.global_key("ops@example.com", KEY)
    async with client_for(handler, creds, retry=RetryPolicy(retries=0)) as client:
        with pytest.raises(NetworkError) as info:
            await client.get("accounts")
    assert KEY not in all_text_of(info.value)
    assert KEY not in repr(client)


async def test_an_answer_is_freed_when_read_not_left_for_the_cyclic_collector():
    # httpx's Response and its stream refer to each other: the body (33 MB at 100,000 connections) waited for the
    # cyclic collector, and a large poll's outlived the young collections, so it waited for a full one.
    import gc
    import weakref

    answers: list[weakref.ref[httpx.Response]] = []
    recorder = Recorder()

    def handler(request: httpx.Request) -> httpx.Response:
        response = recorder(request)
        answers.append(weakref.ref(response))
        return response

    client = client_for(handler)
    collecting = gc.isenabled()
    gc.disable()
    try:
        await client.list_connectors(ACCOUNT, TUNNEL)
        await client.get_tunnel(ACCOUNT, TUNNEL)
        assert len(answers) == 2 and all(answer() is None for answer in answers)
    finally:
        if collecting:
            gc.enable()
        await client.aclose()
