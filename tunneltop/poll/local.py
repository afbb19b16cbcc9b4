"""Which connector runs on this host: cloudflared's own metrics server, asked ``GET /ready``.

cloudflared answers ``{"status": 200|503, "readyConnections": N, "connectorId": "<uuid>"}`` there (HTTP 200 when
N > 0, else 503; releases before 2022 leave out ``connectorId``). It listens on ``--metrics ADDR``, by default the
first free port of ``127.0.0.1:20241``-``20245``.

This is not Cloudflare's API and does not pass its request gate, but it is bounded all the same: a short timeout,
one request per poll (after one quiet look at the five default ports at start, when no address is given), never a
non-loopback address unless the user named it, never an environment proxy (``trust_env=False``: a loopback request
must not leave the host), and quiet when nothing answers: no cloudflared here is the common case.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from tunneltop.model.reach import LocalReady

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORTS = tuple(range(20241, 20246))
# cloudflared answers /ready from memory in well under a millisecond; more than this and it is not there (or too
# busy to be the reason a poll waits).
PROBE_TIMEOUT = 0.5
MAX_BODY = 4096  # /ready is one small JSON object
OFF = "off"  # --local-metrics off: do not look for cloudflared on this host


class LocalMetricsError(ValueError):
    """A ``--local-metrics`` value that is not HOST:PORT."""


def parse_address(value: str) -> str:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as given, checked; raises ``LocalMetricsError``."""
    text = value.strip()
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise LocalMetricsError(f"HOST:PORT (e.g. 127.0.0.1:20241) or {OFF!r} wanted, not {value!r}")
    if host.startswith("[") != host.endswith("]"):
        raise LocalMetricsError(f"an IPv6 address goes in brackets, [::1]:20241, not {value!r}")
    if ":" in host.strip("[]") and not host.startswith("["):
        raise LocalMetricsError(f"an IPv6 address goes in brackets, [::1]:20241, not {value!r}")
    return f"{host}:{int(port)}"


def probe_for(value: str | None, *, transport: httpx.AsyncBaseTransport | None = None) -> LocalReadyProbe | None:
    """The probe a ``--local-metrics`` value asks for: None for ``off``, the default ports for None, else that
    address; raises ``LocalMetricsError``."""
    if value is not None and value.strip().lower() == OFF:
        return None
    return LocalReadyProbe(value, transport=transport)


def parse_ready(address: str, status: int, body: bytes) -> LocalReady | None:
    """cloudflared's /ready answer, or None when it is not one (some other server on that port)."""
    try:
        data: Any = json.loads(body[:MAX_BODY])
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not ({"readyConnections", "status"} & data.keys()):
        return None
    ready = data.get("readyConnections")
    connector = data.get("connectorId")
    said = data.get("status")
    return LocalReady(
        address=address,
        connector_id=connector if isinstance(connector, str) and connector else None,
        ready_connections=ready if isinstance(ready, int) and not isinstance(ready, bool) and ready >= 0 else None,
        status=said if isinstance(said, int) and not isinstance(said, bool) else status,
    )


class LocalReadyProbe:
    """Reads cloudflared's /ready on this host, once per call. ``address``: HOST:PORT as the user gave it (None:
    look at the default ports once, at the first call, and keep the first that answers like cloudflared).
    ``transport``: an httpx transport instead of sockets (the demo's simulated cloudflared)."""

    def __init__(
        self,
        address: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = PROBE_TIMEOUT,
    ) -> None:
        self.address = parse_address(address) if address is not None else None
        self._candidates: tuple[str, ...] | None = (
            None if address is not None else tuple(f"{DEFAULT_HOST}:{port}" for port in DEFAULT_PORTS)
        )
        self._transport = transport
        self._timeout = timeout

    async def _ask(self, http: httpx.AsyncClient, address: str) -> LocalReady | None:
        try:
            response = await http.get(f"http://{address}/ready")
        except (httpx.HTTPError, OSError):
            return None
        return parse_ready(address, response.status_code, response.content)

    async def read(self) -> LocalReady | None:
        """This host's cloudflared as it answers now, or None (none found, or it does not answer)."""
        if self._candidates is None and self.address is None:
            return None
        # A client per read: nothing held open between polls, nothing for a front end to close. Only plain HTTP to
        # this host is asked (no redirects followed), so no TLS: verify=False spares loading the CA bundle, 28 ms
        # of CPU a poll (a sixth of --once at 10,000 connections, 0.6% of a core in the live view at 5 s).
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(self._timeout),
            transport=self._transport,
            trust_env=False,
            follow_redirects=False,
            verify=False,
        ) as http:
            if self._candidates is not None:
                candidates, self._candidates = self._candidates, None
                for address in candidates:  # in order: cloudflared takes the first free port
                    found = await self._ask(http, address)
                    if found is not None:
                        self.address = address
                        return found
                return None
            assert self.address is not None
            return await self._ask(http, self.address)
