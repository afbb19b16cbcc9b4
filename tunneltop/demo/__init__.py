"""An honest stand-in for the Cloudflare API: a simulated account, a request handler that answers like
Cloudflare, an in-process httpx transport (demo mode) and a loopback HTTP server (tests).

Modules: `simulator` (SimulatedAccount), `cfapi` (FakeCloudflare, Fault), `transport` (DemoTransport,
demo_transport, DEMO_BASE_URL), `server` (LoopbackServer). No Textual here.
"""

from tunneltop.demo.cfapi import FakeCloudflare, FakeResponse, Fault, LoggedRequest
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID, DEMO_TUNNELS, SimulatedAccount

__all__ = [
    "DEMO_ACCOUNT_ID",
    "DEMO_TUNNELS",
    "FakeCloudflare",
    "FakeResponse",
    "Fault",
    "LoggedRequest",
    "SimulatedAccount",
]
