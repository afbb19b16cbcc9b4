"""The benchmark's stand-in serves the very answers FakeCloudflare would, encoded once per change of the account."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from benchmarks.standin import EncodedOnce, build_account, failover
from tunneltop.demo.cfapi import FakeCloudflare

START = datetime(2026, 1, 1, tzinfo=UTC)


def _get(fake: FakeCloudflare, path: str) -> tuple[int, bytes]:
    answer = fake.handle("GET", f"/client/v4/accounts/{fake.sim.account_id}/{path}")
    return answer.status, answer.body


def test_connections_are_the_bytes_fakecloudflare_sends_before_and_after_a_failover() -> None:
    account = build_account(40, "huge", START)
    plain = FakeCloudflare(account.sim, require_auth=False, rate_limit=10**9)
    once = EncodedOnce(account.sim, require_auth=False, rate_limit=10**9)
    once.encode(account.sim.tunnel_ids())
    path = f"cfd_tunnel/{account.tunnel_id}/connections"
    before = _get(plain, path)
    assert before[0] == 200
    assert _get(once, path) == before

    moved = failover(account.sim, account.tunnel_id, 0.25, START + timedelta(seconds=30))
    assert moved == 10
    # Not encoded again yet: the answer is the one made when the account last changed.
    assert _get(once, path) == before
    once.encode([account.tunnel_id])
    after = _get(plain, path)
    assert after != before
    assert _get(once, path) == after


def test_other_answers_are_made_as_before() -> None:
    account = build_account(40, "huge", START)
    plain = FakeCloudflare(account.sim, require_auth=False, rate_limit=10**9)
    once = EncodedOnce(account.sim, require_auth=False, rate_limit=10**9)
    once.encode(account.sim.tunnel_ids())
    for path in ("cfd_tunnel", f"cfd_tunnel/{account.tunnel_id}", "cfd_tunnel/nope/connections"):
        assert _get(once, path) == _get(plain, path), path


def test_a_refused_request_gets_no_connections() -> None:
    account = build_account(40, "huge", START)
    once = EncodedOnce(account.sim, tokens=["right"], rate_limit=10**9)
    once.encode(account.sim.tunnel_ids())
    answer = once.handle(
        "GET",
        f"/client/v4/accounts/{account.sim.account_id}/cfd_tunnel/{account.tunnel_id}/connections",
        headers={"Authorization": "Bearer wrong"},
    )
    assert answer.status in (401, 403)
    assert b"conns" not in answer.body
