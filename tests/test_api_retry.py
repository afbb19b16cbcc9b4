"""Retries, back-off and the rate-limit gate, all on a fake clock: no test here really sleeps."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from tunneltop.api import (
    ApiError,
    AuthError,
    CloudflareClient,
    Credentials,
    InvalidResponseError,
    NetworkError,
    NotFoundError,
    OverBudgetError,
    RateLimitedError,
    RequestFailedError,
    RequestGate,
    RetryPolicy,
    ServerError,
)

OK = {"success": True, "errors": [], "messages": [], "result": {"id": "t", "status": "active"}}


class MaxRng(random.Random):
    """Jitter that always picks the top of its range, so the back-off schedule is visible."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Script:
    """A MockTransport handler that answers from a list (the last answer repeats) and records every request."""

    def __init__(self, clock, *answers):
        self.clock = clock
        self.answers = list(answers)
        self.sent: list[tuple[str, str, float]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path, self.clock()))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def times(self) -> list[float]:
        return [t for _, _, t in self.sent]


def client_for(script: Script, clock, **options) -> CloudflareClient:
    return CloudflareClient(
        Credentials.token("cfut_retry-token"),
        "https://api.cloudflare.test/client/v4",
        transport=httpx.MockTransport(script),
        sleep=clock.sleep,
        clock=clock,
        **options,
    )


def ok(headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, json=OK, headers=headers or {})


def too_many(retry_after: str | None = "300") -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    body = {"success": False, "errors": [{"code": 971, "message": "Please wait"}], "messages": [], "result": None}
    return httpx.Response(429, json=body, headers=headers)


TRANSIENT = [
    pytest.param(lambda: httpx.Response(502, content=b"<html>bad gateway</html>"), id="html-502"),
    pytest.param(lambda: httpx.Response(503, json={"success": False, "errors": []}), id="json-503"),
    pytest.param(lambda: httpx.Response(200, content=b'{"success": tr'), id="truncated"),
    pytest.param(lambda: httpx.ConnectError("refused"), id="connect"),
    pytest.param(lambda: httpx.ReadTimeout("timeout"), id="timeout"),
]


@pytest.mark.parametrize("make", TRANSIENT)
async def test_transient_failure_is_retried_then_succeeds(clock, make):
    script = Script(clock, make(), make(), ok())
    async with client_for(script, clock, rng=random.Random(1)) as client:
        response = await client.get("user/tokens/verify")
    assert response.result["status"] == "active"
    assert len(script.sent) == 3
    assert len(clock.sleeps) == 2
    assert client.stats.retries == 2


async def test_back_off_grows_and_is_capped(clock):
    script = Script(clock, httpx.Response(503, json={"success": False, "errors": []}))
    policy = RetryPolicy(retries=6, base=0.5, cap=4.0)
    async with client_for(script, clock, retry=policy, rng=MaxRng()) as client:
        with pytest.raises(ServerError):
            await client.get("user/tokens/verify")
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert len(script.sent) == 7
    # Each request went out only after the preceding back-off had passed.
    gaps = [b - a for a, b in zip(script.times, script.times[1:], strict=False)]
    assert gaps == clock.sleeps


async def test_jittered_back_off_stays_within_its_bounds(clock):
    script = Script(clock, httpx.ConnectError("refused"))
    policy = RetryPolicy(retries=8, base=0.5, cap=3.0)
    async with client_for(script, clock, retry=policy, rng=random.Random(42)) as client:
        with pytest.raises(NetworkError):
            await client.get("accounts")
    assert len(clock.sleeps) == 8
    for attempt, delay in enumerate(clock.sleeps):
        assert 0 <= delay <= min(policy.cap, policy.base * 2**attempt)
    assert sum(clock.sleeps) <= 8 * policy.cap


def test_retry_policy_delay_bounds():
    policy = RetryPolicy(retries=3, base=1.0, cap=5.0)
    rng = random.Random(0)
    for attempt in range(12):
        for _ in range(50):
            assert 0 <= policy.delay(attempt, rng) <= min(5.0, 2**attempt)
    assert [policy.delay(a, MaxRng()) for a in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


async def test_default_policy_gives_up_after_three_retries(clock):
    script = Script(clock, httpx.Response(500, json={"success": False, "errors": []}))
    async with client_for(script, clock) as client:
        with pytest.raises(ServerError):
            await client.get("accounts")
    assert len(script.sent) == 4
    assert len(clock.sleeps) == 3
    assert all(0 <= s <= RetryPolicy().cap for s in clock.sleeps)


@pytest.mark.parametrize("make", TRANSIENT)
async def test_a_retry_the_budget_has_no_token_for_fails_as_the_try_before_it(clock, make):
    # A retry without a token is not sent; the request then fails with what it failed with (a 5xx, a timeout), not
    # with "budget spent": the caller must hear that Cloudflare failed, and a poll must not read it as "no token".
    script = Script(clock, make())
    gate = RequestGate(1, clock=clock)
    gate.burst = 1
    async with client_for(script, clock, gate=gate) as client:
        with pytest.raises(ApiError) as raised:
            await client.get("accounts")
    assert not isinstance(raised.value, OverBudgetError) and raised.value.transient, raised.value
    assert len(script.sent) == 1 and gate.refused == 1
    with pytest.raises(OverBudgetError):  # with no try at all, it is the budget's
        await client_for(script, clock, gate=gate).get("accounts")


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(401, json={"success": False, "errors": [{"code": 10000, "message": "auth"}]}), AuthError),
        (httpx.Response(403, json={"success": False, "errors": [{"code": 9109, "message": "no"}]}), AuthError),
        (httpx.Response(404, json={"success": False, "errors": [{"code": 7003, "message": "route"}]}), NotFoundError),
        (httpx.Response(200, json={"success": False, "errors": [{"code": 1234, "message": "x"}]}), RequestFailedError),
        (httpx.Response(400, json={"success": False, "errors": []}), RequestFailedError),
    ],
)
async def test_permanent_failures_are_not_retried(clock, response, error):
    script = Script(clock, response, ok())
    async with client_for(script, clock, retry=RetryPolicy(retries=5)) as client:
        with pytest.raises(error):
            await client.get("accounts")
    assert len(script.sent) == 1
    assert clock.sleeps == []
    assert client.stats.retries == 0


async def test_invalid_envelope_is_retried_as_transient(clock):
    script = Script(clock, httpx.Response(200, json=[1, 2, 3]), ok())
    async with client_for(script, clock) as client:
        await client.get("accounts")
    assert len(script.sent) == 2
    with pytest.raises(InvalidResponseError):
        async with client_for(Script(clock, httpx.Response(200, json=[1])), clock) as client:
            await client.get("accounts")


# -- Retry-After -------------------------------------------------------------------------------------------------


async def test_429_without_permission_to_wait_raises_at_once_and_sends_nothing_until_it_passes(clock):
    script = Script(clock, too_many("300"), ok())
    start = clock()
    async with client_for(script, clock, max_rate_limit_wait=30) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.get("accounts/a/cfd_tunnel")
        assert info.value.retry_after == 300
        assert len(script.sent) == 1
        assert clock.sleeps == []
        assert client.blocked_for == 300

        # Every call inside the 300 s raises without a request going out.
        for elapsed in (0, 1, 150, 269.5):
            clock.now = start + elapsed
            with pytest.raises(RateLimitedError) as again:
                await client.get("accounts/a/cfd_tunnel/x/connections")
            assert again.value.retry_after == pytest.approx(300 - elapsed)
            assert "no request is sent" in again.value.message
        assert len(script.sent) == 1

        # With 15 s left (within the 30 s it may wait) it sleeps them out, and sends at exactly 300 s.
        clock.now = start + 285
        await client.get("accounts/a/cfd_tunnel")
        assert client.blocked_for == 0
    assert clock.sleeps == [15]
    assert script.times == [start, start + 300]
    assert client.stats.rate_limited == 1


async def test_429_with_a_long_enough_wait_sleeps_the_full_value_then_retries(clock):
    script = Script(clock, too_many("300"), ok())
    start = clock()
    async with client_for(script, clock, max_rate_limit_wait=600) as client:
        response = await client.get("accounts")
    assert response.result["id"] == "t"
    assert clock.sleeps == [300]
    assert script.times == [start, start + 300]
    assert all(t - start >= 300 for t in script.times[1:])


async def test_429_retries_are_bounded(clock):
    script = Script(clock, too_many("5"))
    async with client_for(script, clock, max_rate_limit_wait=60, retry=RetryPolicy(retries=2)) as client:
        with pytest.raises(RateLimitedError):
            await client.get("accounts")
    assert len(script.sent) == 3
    assert clock.sleeps == [5, 5]
    gaps = [b - a for a, b in zip(script.times, script.times[1:], strict=False)]
    assert gaps == [5, 5]


async def test_429_without_retry_after_waits_a_default_minute(clock):
    script = Script(clock, too_many(None))
    async with client_for(script, clock) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.get("accounts")
    assert info.value.retry_after == 60
    assert client.blocked_for == 60


async def test_retry_after_as_an_http_date(clock):
    when = datetime.now(UTC) + timedelta(seconds=120)
    script = Script(clock, too_many(format_datetime(when, usegmt=True)))
    async with client_for(script, clock) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.get("accounts")
    assert 100 < info.value.retry_after <= 120
    assert 100 < client.blocked_for <= 120


async def test_ratelimit_header_out_of_quota_blocks_the_next_send(clock):
    script = Script(clock, ok({"Ratelimit": '"default";r=0;t=30', "Ratelimit-Policy": '"default";q=1200;w=300'}), ok())
    start = clock()
    async with client_for(script, clock) as client:
        await client.get("accounts")
        assert client.ratelimit.remaining == 0
        assert client.ratelimit.quota == 1200
        assert client.blocked_for == 30
        with pytest.raises(RateLimitedError) as info:
            await client.get("accounts")
        assert info.value.retry_after == 30
        assert len(script.sent) == 1
        clock.advance(30)
        await client.get("accounts")
    assert script.times == [start, start + 30]


async def test_ratelimit_header_wait_is_slept_out_when_allowed(clock):
    script = Script(clock, ok({"Ratelimit": '"default";r=0;t=30'}), ok())
    start = clock()
    async with client_for(script, clock, max_rate_limit_wait=60) as client:
        await client.get("accounts")
        await client.get("accounts")
    assert clock.sleeps == [30]
    assert script.times == [start, start + 30]


async def test_remaining_quota_does_not_block(clock):
    script = Script(clock, ok({"Ratelimit": '"default";r=5;t=30'}))
    async with client_for(script, clock) as client:
        await client.get("accounts")
        await client.get("accounts")
        assert client.blocked_for == 0
        assert client.ratelimit.remaining == 5
    assert len(script.sent) == 2
    assert clock.sleeps == []


@pytest.mark.parametrize("value", ["inf", "1e400", "nan", "-5", "soon"])
async def test_junk_retry_after_falls_back_to_a_finite_wait(clock, value):
    script = Script(clock, too_many(value))
    async with client_for(script, clock) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.get("accounts")
    assert info.value.retry_after == 60
    assert client.blocked_for == 60
