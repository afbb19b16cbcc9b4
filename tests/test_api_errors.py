"""Every failure the client can meet becomes a typed ApiError whose message tells the operator what to do."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tunneltop.api import (
    AuthError,
    CloudflareClient,
    Credentials,
    InvalidResponseError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    RequestFailedError,
    RetryPolicy,
    ServerError,
)
from tunneltop.api.errors import READ_PERMISSION

ACCOUNT = "699d98642c564d2e855e9661899b7252"
TUNNEL = "f70ff985-a4ef-4643-bbbc-4a0ed4fc8415"

CLOUDFLARE_502_PAGE = b"""<!DOCTYPE html>
<!--[if lt IE 7]> <html class="no-js ie6 oldie" lang="en-US"> <![endif]-->
<head><title>api.cloudflare.com | 502: Bad gateway</title></head>
<body><div id="cf-error-details"><h1>Bad gateway</h1><span>Error code 502</span>
<p>Visit <a href="https://www.cloudflare.com/">cloudflare.com</a> for more information.</p></div></body></html>
"""


def failure(*errors: dict, **extra: object) -> dict:
    return {"success": False, "errors": list(errors), "messages": [], "result": None, **extra}


def make_client(handler, clock, **options) -> CloudflareClient:
    options.setdefault("retry", RetryPolicy(retries=0))
    return CloudflareClient(
        Credentials.token("cfut_test-token"),
        "https://api.cloudflare.test/client/v4",
        transport=httpx.MockTransport(handler),
        sleep=clock.sleep,
        clock=clock,
        **options,
    )


async def fail_with(clock, response: httpx.Response, path: str = f"accounts/{ACCOUNT}/cfd_tunnel"):
    async with make_client(lambda request: response, clock) as client:
        with pytest.raises(Exception) as info:
            await client.get(path)
    return info.value


@pytest.mark.parametrize("status", [401, 403])
async def test_http_401_and_403_are_auth_errors_naming_the_permission(clock, status):
    body = failure({"code": 10000, "message": "Authentication error"})
    error = await fail_with(clock, httpx.Response(status, json=body))
    assert type(error) is AuthError
    assert error.status == status
    assert error.codes == (10000,)
    assert f"HTTP {status}" in error.message
    assert f"'{READ_PERMISSION}'" in error.message
    assert READ_PERMISSION == "Cloudflare Tunnel Read"
    assert "10000: Authentication error" in error.message


@pytest.mark.parametrize(
    ("code", "text"),
    [(10000, "Authentication error"), (9109, "Unauthorized to access requested resource")],
)
async def test_auth_codes_make_an_auth_error_even_with_http_400(clock, code, text):
    error = await fail_with(clock, httpx.Response(400, json=failure({"code": code, "message": text})))
    assert isinstance(error, AuthError)
    assert code in error.codes
    assert READ_PERMISSION in error.message
    assert text in error.message


async def test_malformed_auth_header_6003_with_error_chain_6111(clock):
    body = failure(
        {
            "code": 6003,
            "message": "Invalid request headers",
            "error_chain": [{"code": 6111, "message": "Invalid format for Authorization header"}],
        }
    )
    error = await fail_with(clock, httpx.Response(400, json=body))
    assert isinstance(error, AuthError)
    assert error.codes == (6003, 6111)
    assert "Invalid format for Authorization header" in error.message
    assert READ_PERMISSION in error.message


async def test_top_level_error_chain_is_read_too(clock):
    body = failure(error_chain=[{"code": 6111, "message": "Invalid format for Authorization header"}])
    error = await fail_with(clock, httpx.Response(400, json=body))
    assert isinstance(error, AuthError)
    assert 6111 in error.codes


async def test_1001_on_accounts_says_to_name_the_account(clock):
    body = failure({"code": 1001, "message": "Account-owned tokens cannot list accounts"})
    async with make_client(lambda request: httpx.Response(403, json=body), clock) as client:
        with pytest.raises(AuthError) as info:
            await client.list_accounts()
    assert "--account" in info.value.message
    assert "CLOUDFLARE_ACCOUNT_ID" in info.value.message
    assert 1001 in info.value.codes


async def test_1001_elsewhere_is_a_plain_auth_error(clock):
    body = failure({"code": 1001, "message": "nope"})
    error = await fail_with(clock, httpx.Response(403, json=body))
    assert isinstance(error, AuthError)
    assert "--account" not in error.message
    assert READ_PERMISSION in error.message


async def test_7003_no_route_is_not_found_and_names_the_path(clock):
    path = f"accounts/{ACCOUNT}/cfd_tunnel/{TUNNEL}"
    body = failure({"code": 7003, "message": f"Could not route to /{path}, perhaps your object identifier is invalid?"})
    error = await fail_with(clock, httpx.Response(400, json=body), path)
    assert type(error) is NotFoundError
    assert TUNNEL in error.message
    assert error.path == path
    assert error.codes == (7003,)


async def test_http_404_without_body_is_not_found(clock):
    path = f"accounts/{ACCOUNT}/cfd_tunnel/{TUNNEL}/connections"
    error = await fail_with(clock, httpx.Response(404, content=b""), path)
    assert isinstance(error, NotFoundError)
    assert path in error.message
    assert "HTTP 404" in error.message


async def test_429_is_rate_limited_with_retry_after(clock):
    response = httpx.Response(
        429,
        headers={"Retry-After": "300"},
        json=failure({"code": 971, "message": "Please wait and consider throttling your request speed"}),
    )
    error = await fail_with(clock, response)
    assert type(error) is RateLimitedError
    assert error.retry_after == 300
    assert error.status == 429
    assert "300 s" in error.message


async def test_429_with_an_html_body_is_still_rate_limited(clock):
    response = httpx.Response(429, headers={"Retry-After": "120", "Content-Type": "text/html"}, content=b"<html>")
    error = await fail_with(clock, response)
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 120


async def test_5xx_with_a_json_envelope(clock):
    body = failure({"code": 10001, "message": "service temporarily unavailable"})
    error = await fail_with(clock, httpx.Response(503, json={**body, "errors": [{"code": 1002, "message": "oops"}]}))
    assert type(error) is ServerError
    assert error.transient
    assert "HTTP 503" in error.message
    assert "1002: oops" in error.message
    assert "temporary" in error.message


async def test_5xx_with_cloudflares_html_502_page(clock):
    response = httpx.Response(502, headers={"Content-Type": "text/html; charset=UTF-8"}, content=CLOUDFLARE_502_PAGE)
    error = await fail_with(clock, response)
    assert type(error) is ServerError
    assert "HTTP 502" in error.message
    assert "HTML" in error.message
    # The page itself is not dumped into the message.
    assert "cf-error-details" not in error.message


async def test_html_page_without_content_type_is_recognised(clock):
    error = await fail_with(clock, httpx.Response(504, content=CLOUDFLARE_502_PAGE))
    assert isinstance(error, ServerError)
    assert "HTML" in error.message


async def test_html_on_http_200_is_a_failure(clock):
    response = httpx.Response(200, headers={"Content-Type": "text/html"}, content=CLOUDFLARE_502_PAGE)
    error = await fail_with(clock, response)
    assert isinstance(error, ServerError)
    assert "HTTP 200" in error.message


async def test_success_false_with_http_200_is_a_failure(clock):
    body = failure({"code": 1234, "message": "something else went wrong"})
    error = await fail_with(clock, httpx.Response(200, json=body))
    assert type(error) is RequestFailedError
    assert not error.transient
    assert "HTTP 200" in error.message
    assert "1234: something else went wrong" in error.message


async def test_success_false_without_errors_says_no_reason(clock):
    error = await fail_with(clock, httpx.Response(400, json=failure()))
    assert type(error) is RequestFailedError
    assert "no reason given" in error.message


async def test_success_must_be_exactly_true(clock):
    body = {"success": "true", "errors": [], "messages": [], "result": []}
    error = await fail_with(clock, httpx.Response(200, json=body))
    assert isinstance(error, RequestFailedError)


@pytest.mark.parametrize("content", [b'{"success": true, "result": [{"id": "abc', b"", b"not json at all", b"\xff\xfe"])
async def test_invalid_or_truncated_json(clock, content):
    error = await fail_with(clock, httpx.Response(200, headers={"Content-Type": "application/json"}, content=content))
    assert type(error) is InvalidResponseError
    assert error.transient
    assert "not valid JSON" in error.message
    assert f"{len(content)} bytes" in error.message


async def test_truncated_json_on_a_5xx_is_not_called_an_html_page(clock):
    response = httpx.Response(500, headers={"Content-Type": "application/json"}, content=b'{"success": fal')
    error = await fail_with(clock, response)
    assert isinstance(error, ServerError)
    assert "HTTP 500" in error.message
    assert "HTML" not in error.message


@pytest.mark.parametrize("body", [[{"id": "x"}], {"result": []}, "ok", 42, None])
async def test_json_without_the_envelope(clock, body):
    error = await fail_with(clock, httpx.Response(200, content=json.dumps(body).encode()))
    assert type(error) is InvalidResponseError
    assert "envelope" in error.message


async def test_json_without_envelope_on_a_4xx_is_classified_by_status(clock):
    error = await fail_with(clock, httpx.Response(403, json={"message": "forbidden"}))
    assert isinstance(error, AuthError)


@pytest.mark.parametrize(
    "exc",
    [httpx.ReadTimeout("read timed out"), httpx.ConnectTimeout("connect timed out"), httpx.PoolTimeout("pool")],
)
async def test_httpx_timeouts_are_network_errors(clock, exc):
    def handler(request):
        raise exc

    async with make_client(handler, clock) as client:
        with pytest.raises(NetworkError) as info:
            await client.get("user/tokens/verify")
    assert "did not answer in time" in info.value.message
    assert info.value.transient


async def test_the_whole_request_deadline_is_enforced(clock):
    async def handler(request):
        await asyncio.sleep(30)
        return httpx.Response(200, json={"success": True, "result": None})

    async with make_client(handler, clock, request_deadline=0.05) as client:
        with pytest.raises(NetworkError) as info:
            await client.get("user/tokens/verify")
    assert "did not answer in time" in info.value.message


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ConnectError("[Errno -2] Name or service not known"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset by peer"),
    ],
)
async def test_connection_errors_are_network_errors(clock, exc):
    def handler(request):
        raise exc

    async with make_client(handler, clock) as client:
        with pytest.raises(NetworkError) as info:
            await client.get("accounts")
    assert info.value.message.startswith("could not reach the Cloudflare API")
    assert type(exc).__name__ in info.value.message
    assert str(exc) in info.value.message
    assert info.value.__cause__ is None


async def test_success_envelope_is_unwrapped(clock):
    body = {
        "success": True,
        "errors": [],
        "messages": [{"code": 10500, "message": "deprecated field"}],
        "result": [{"id": "a"}],
        "result_info": {"page": 1, "per_page": 20, "count": 1, "total_count": 1},
    }
    async with make_client(lambda request: httpx.Response(200, json=body), clock) as client:
        response = await client.get("accounts")
    assert response.result == [{"id": "a"}]
    assert response.result_info == {"page": 1, "per_page": 20, "count": 1, "total_count": 1}
    assert [str(m) for m in response.messages] == ["10500: deprecated field"]


@pytest.mark.parametrize("code", [10000, 10001, 9109, 7003])
async def test_a_5xx_is_a_server_error_whatever_codes_it_carries(clock, code):
    body = failure({"code": code, "message": "Internal Server Error"})
    error = await fail_with(clock, httpx.Response(500, json=body))
    assert type(error) is ServerError
    assert error.transient
    assert READ_PERMISSION not in error.message
