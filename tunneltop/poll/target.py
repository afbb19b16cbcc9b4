"""What to watch and how to reach it: resolved once from flags and environment, used by every front end."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tunneltop.api.auth import Credentials
from tunneltop.api.budget import DEFAULT_LIMIT_PER_MINUTE
from tunneltop.api.client import CloudflareClient
from tunneltop.api.gate import RequestGate, shared_ledger
from tunneltop.api.ledger import SharedLedger
from tunneltop.model.expect import Expectations
from tunneltop.poll.local import LocalReadyProbe


@dataclass
class Target:
    base_url: str
    credentials: Credentials | None
    account_id: str | None = None
    refs: list[str] = field(default_factory=list)
    demo: bool = False
    transport: httpx.AsyncBaseTransport | None = None
    notices: list[str] = field(default_factory=list)
    budget_per_minute: int = DEFAULT_LIMIT_PER_MINUTE
    ledger_path: Path | None = None
    expectations: Expectations = field(default_factory=Expectations)  # the config file's [expect]
    local: LocalReadyProbe | None = None  # cloudflared's /ready on this host (--local-metrics; None: not looked for)

    def share_budget(self, env: Mapping[str, str] = os.environ) -> None:
        """Share the request budget, through a file, with every tunneltop process on this machine that uses the
        same credential (the demo, with no credential, keeps its own). Says so in ``notices`` if it cannot."""
        if self.ledger_path is None and self.credentials is not None:
            self.ledger_path, why = shared_ledger(self.credentials.identity(self.base_url), env)
            if why is not None:
                self.notices.append(why)

    def gate(self, *, clock: Callable[[], float] = time.monotonic) -> RequestGate:
        """The one request budget of this run (see ``share_budget``). The ledger runs on wall time; a test that
        fakes the monotonic clock fakes the ledger's with it, so that waiting on one passes the other."""
        if self.ledger_path is None:
            return RequestGate(self.budget_per_minute, clock=clock)
        wall = time.time if clock is time.monotonic else clock
        ledger = SharedLedger(self.ledger_path, clock=wall)
        return RequestGate(self.budget_per_minute, ledger=ledger, clock=clock, wall=wall)

    def client(self, *, gate: RequestGate | None = None, **options: Any) -> CloudflareClient:
        if gate is None:
            clock = options.get("clock", time.monotonic)
            gate = self.gate(clock=clock)
        return CloudflareClient(self.credentials, self.base_url, transport=self.transport, gate=gate, **options)
