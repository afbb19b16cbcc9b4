"""An honest stand-in for the Cloudflare API: a simulated account and a request handler that answers like
Cloudflare (more pieces follow). No Textual here."""

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
