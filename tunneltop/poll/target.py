"""What to watch and how to reach it: resolved once from flags and environment, used by every front end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from tunneltop.api.auth import Credentials
from tunneltop.api.client import CloudflareClient


@dataclass
class Target:
    base_url: str
    credentials: Credentials | None
    account_id: str | None = None
    refs: list[str] = field(default_factory=list)
    demo: bool = False
    transport: httpx.AsyncBaseTransport | None = None
    notices: list[str] = field(default_factory=list)

    def client(self, **options: Any) -> CloudflareClient:
        return CloudflareClient(self.credentials, self.base_url, transport=self.transport, **options)
