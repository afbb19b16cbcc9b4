"""An httpx transport that serves requests from `FakeCloudflare` in-process, for demo mode and tests.

No sockets: `httpx.AsyncClient(transport=demo_transport(), base_url=DEMO_BASE_URL)` talks to the
simulated account directly. The `.invalid` host (RFC 2606) guarantees that a mistake can never send
a demo request to a real server.
"""

from __future__ import annotations

import asyncio

import httpx

from tunneltop.demo.cfapi import FakeCloudflare
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID, DEMO_TUNNELS, SimulatedAccount

__all__ = ["DEMO_ACCOUNT_ID", "DEMO_BASE_URL", "DEMO_TUNNELS", "DemoTransport", "demo_transport"]

DEMO_BASE_URL = "https://demo.tunneltop.invalid/client/v4"


class DemoTransport(httpx.AsyncBaseTransport):
    """Feeds each request to a FakeCloudflare and turns its answer into an httpx.Response."""

    def __init__(self, cloudflare: FakeCloudflare) -> None:
        self.cloudflare = cloudflare

    @property
    def sim(self) -> SimulatedAccount:
        return self.cloudflare.sim

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()  # drain any body, as a server would
        answer = self.cloudflare.handle(
            request.method,
            request.url.path,
            request.url.params.multi_items(),
            request.headers,
        )
        if answer.delay > 0:
            # Without a socket httpx enforces no timeout, so honour the request's read timeout here:
            # a hang longer than it becomes the ReadTimeout a real connection would give.
            timeout = request.extensions.get("timeout", {}).get("read")
            if timeout is not None and answer.delay > timeout:
                await asyncio.sleep(timeout)
                raise httpx.ReadTimeout("simulated hang exceeded the read timeout", request=request)
            await asyncio.sleep(answer.delay)
        return httpx.Response(answer.status, headers=answer.headers, content=answer.body, request=request)


def demo_transport(seed: int = 7) -> DemoTransport:
    """Demo mode: the hand-made scenario, evolving in real time, with no credentials needed."""
    return DemoTransport(FakeCloudflare(SimulatedAccount(seed=seed), require_auth=False))
