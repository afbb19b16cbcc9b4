"""An answer whose bytes are those of the last one for the same tunnel is not decoded again: the very same connector
objects come back (what later stages read as "nothing changed"), with the same problems; the request and its gate
token are spent as always, and any other byte decodes afresh."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.clock import FakeClock
from tunneltop.api import client as client_module
from tunneltop.api import jsondecode
from tunneltop.api.client import CloudflareClient
from tunneltop.api.gate import RequestGate
from tunneltop.demo.cfapi import FakeCloudflare, Fault
from tunneltop.demo.simulator import SimulatedAccount
from tunneltop.demo.transport import DEMO_BASE_URL, DemoTransport
from tunneltop.model.parse import RecordCache
from tunneltop.poll.engine import PollEngine

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def conn(cid: str, colo: str = "DFW", **fields: Any) -> dict[str, Any]:
    return {"id": cid, "colo_name": colo, "origin_ip": "192.0.2.1", "is_pending_reconnect": False, **fields}


def clients() -> list[dict[str, Any]]:
    return [
        {"id": "k1", "version": "2025.1.0", "conns": [conn("a"), conn("b", "LAX")]},
        # An odd record: its problem is reported on every poll, decoded or not.
        {"id": "k2", "version": "2025.1.0", "conns": [conn("c", opened_at="not a time")]},
    ]


class Stand:
    """One frozen tunnel behind the in-process stand-in, and a client whose decoding is counted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sim = SimulatedAccount(seed=3, start=T0, tunnels=0)
        self.tunnel_id = self.sim.add_tunnel("web", clients=clients())["id"]
        self.sim.freeze()
        self.cloudflare = FakeCloudflare(self.sim, require_auth=False, clock=lambda: T0)
        self.clock = FakeClock()
        self.gate = RequestGate(240, clock=self.clock)
        self.decoded = 0
        self.parsed = 0

        decode = jsondecode.loads

        def loads(data: Any, **options: Any) -> Any:
            self.decoded += 1
            return decode(data, **options)

        def counting(parse: Callable[..., Any]) -> Callable[..., Any]:
            def parse_counted(*args: Any) -> Any:
                self.parsed += 1
                return parse(*args)

            return parse_counted

        monkeypatch.setattr(jsondecode, "loads", loads)
        monkeypatch.setattr(client_module, "parse_connectors", counting(client_module.parse_connectors))

    def client(self) -> CloudflareClient:
        return CloudflareClient(
            None,
            DEMO_BASE_URL,
            transport=DemoTransport(self.cloudflare),
            gate=self.gate,
            clock=self.clock,
            sleep=self.clock.sleep,
            rng=random.Random(1),
        )

    def connection_requests(self) -> int:
        return sum(1 for r in self.cloudflare.requests if r.path.endswith("/connections"))


async def test_an_unchanged_body_is_the_same_objects_and_problems_without_a_decode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stand = Stand(monkeypatch)
    cache = RecordCache()
    async with stand.client() as client:
        first, problems = await client.list_connectors(stand.sim.account_id, stand.tunnel_id, cache)
        decoded, parsed, spent = stand.decoded, stand.parsed, client.stats.requests
        again, problems_again = await client.list_connectors(stand.sim.account_id, stand.tunnel_id, cache)
    assert (stand.decoded, stand.parsed) == (decoded, parsed), "not decoded, not validated"
    assert client.stats.requests == spent + 1 and stand.connection_requests() == 2, "but asked for all the same"
    assert len(again) == len(first) == 2 and all(a is b for a, b in zip(first, again, strict=True))
    assert [str(p) for p in problems] == [str(p) for p in problems_again] != [], "the odd record reported again"


async def test_a_changed_body_decodes_and_reuses_what_did_not_change(monkeypatch: pytest.MonkeyPatch) -> None:
    stand = Stand(monkeypatch)
    cache = RecordCache()
    async with stand.client() as client:
        first, _ = await client.list_connectors(stand.sim.account_id, stand.tunnel_id, cache)
        changed = clients()
        changed[0]["conns"][1]["colo_name"] = "AMS"
        stand.sim.set_clients(stand.tunnel_id, copy.deepcopy(changed))
        decoded, parsed = stand.decoded, stand.parsed
        second, _ = await client.list_connectors(stand.sim.account_id, stand.tunnel_id, cache)
        assert (stand.decoded, stand.parsed) == (decoded + 1, parsed + 1)
        assert second[0] is not first[0] and second[0].conns[1].colo_name == "AMS"
        assert second[0].conns[0] is first[0].conns[0], "the unchanged connection is the same object still"
        # Back to the first answer's bytes: not the answer before last, so decoded again, to equal models.
        stand.sim.set_clients(stand.tunnel_id, clients())
        third, _ = await client.list_connectors(stand.sim.account_id, stand.tunnel_id, cache)
    assert stand.decoded == decoded + 2 and third[0].conns[1].colo_name == "LAX"


async def test_a_broken_answer_between_two_equal_ones_fails_and_the_next_is_not_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stand = Stand(monkeypatch)
    truncated = Fault.raw(b'{"success": true, "result": [{"id"')
    async with stand.client() as client:
        engine = PollEngine(client, stand.sim.account_id, ["web"], min_burst=240)

        async def poll() -> Any:
            outcome = await engine.poll()
            stand.clock.advance(max(5.0, engine.next_poll_delay()))
            return outcome

        first = await poll()
        assert first.snapshot is not None
        [state] = first.snapshot.tunnels
        parsed = stand.parsed
        # Truncated once: the retry's answer is the same bytes as the first poll's, so not decoded.
        stand.cloudflare.inject(truncated, path_contains="/connections")
        retried = await poll()
        assert retried.snapshot is not None and client.stats.retries == 1
        # Truncated on every try: the poll fails as before (never taken for "unchanged").
        stand.cloudflare.inject(truncated, path_contains="/connections", times=10)
        failed = await poll()
        assert "not valid JSON" in str(failed.error or failed.snapshot.tunnels[0].error)
        stand.cloudflare.clear_faults()
        recovered = await poll()
    assert stand.parsed == parsed, "no answer validated after the first"
    for outcome in (retried, recovered):
        assert outcome.snapshot is not None
        [again] = outcome.snapshot.tunnels
        assert again.error is None and again.connectors is not None
        assert all(a is b for a, b in zip(state.connectors or (), again.connectors, strict=True))
        assert [str(p) for p in again.problems] == [str(p) for p in state.problems] != []
