"""An honest stand-in for the Cloudflare API: a simulated account (more pieces follow). No Textual here."""

from tunneltop.demo.simulator import DEMO_ACCOUNT_ID, DEMO_TUNNELS, SimulatedAccount

__all__ = ["DEMO_ACCOUNT_ID", "DEMO_TUNNELS", "SimulatedAccount"]
