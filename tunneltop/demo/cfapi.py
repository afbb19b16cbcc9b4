"""A pure request handler that answers like the Cloudflare API v4 does, over a `SimulatedAccount`.

No sockets here: `transport.DemoTransport` (in-process, for demo mode) and `server.LoopbackServer`
(real HTTP on 127.0.0.1, for tests) both feed requests to `FakeCloudflare.handle`.

What it reproduces, because tunneltop has to cope with it: Cloudflare's envelope, paging and filters,
its auth errors (9106 missing, 6003/6111 malformed, 10000 wrong token, 9103 wrong key pair), 7003/7000
for ids and paths that don't route, the `Ratelimit` headers and the 5-minute 429 block (code 971), and
injectable faults (5xx, HTML gateway pages, truncated bodies, `success: false` with HTTP 200, hangs).
It never keeps a credential: accepted ones are held as SHA-256 digests and the request log records
only which auth scheme was used.

One module (over ~400 lines) because it mirrors one API surface, endpoint by endpoint, with the envelope and
errors they share; tests/test_demo_cfapi.py checks it against the spec.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

from tunneltop.demo.simulator import STATUSES, SimulatedAccount

API_PREFIX = "/client/v4"
JSON_TYPE = "application/json"

RATE_LIMIT_CODE = 971
RATE_LIMIT_MESSAGE = "Please wait and consider throttling your request speed"

_ACCOUNT_ID = re.compile(r"[0-9a-fA-F]{32}")
# RFC 7235 token68: Cloudflare answers 6003/6111 to anything else (stray spaces, quotes, newlines).
_BEARER = re.compile(r"[Bb]earer ([A-Za-z0-9\-._~+/]+=*)")
_GLOBAL_KEY = re.compile(r"[0-9a-fA-F]{37}")

_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Temporarily Unavailable",
            504: "Gateway Time-out", 520: "Unknown Error", 521: "Web Server Is Down",
            522: "Connection Timed Out"}


@dataclass
class FakeResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    delay: float = 0.0  # seconds the carrier should wait before answering (hang simulation)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class LoggedRequest:
    """One request as seen by the fake. Header values are never kept; `auth` names only the scheme
    (\"bearer\", \"api_key\" or \"none\")."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    time: datetime
    auth: str


@dataclass
class Fault:
    """Something to go wrong with a request. Fields combine; the defaults mean "answer normally".

    - `status` alone: a JSON error envelope with `code`/`message` (e.g. 500, 502, 503, 504).
    - `html=True`: Cloudflare's HTML error page (default status 502), content-type text/html.
    - `body`: sent verbatim (e.g. truncated JSON), with `status` (default 200) and `content_type`.
    - `success_false=True`: HTTP 200 (unless `status`) with `success: false` and `code`/`message`.
    - `retry_after`: a 429 (code 971) carrying this Retry-After.
    - `delay`: seconds to wait before answering (longer than a client timeout = a hang); on its own
      it delays the normal answer.
    - `headers`: extra response headers (override the usual ones).
    """

    status: int | None = None
    code: int | None = None
    message: str | None = None
    html: bool = False
    body: bytes | str | None = None
    content_type: str | None = None
    success_false: bool = False
    retry_after: int | None = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def error(cls, status: int, code: int = 10001, message: str | None = None) -> Fault:
        return cls(status=status, code=code, message=message)

    @classmethod
    def html_page(cls, status: int = 502) -> Fault:
        return cls(status=status, html=True)

    @classmethod
    def raw(cls, body: bytes | str, status: int = 200, content_type: str = JSON_TYPE) -> Fault:
        return cls(status=status, body=body, content_type=content_type)

    @classmethod
    def unsuccessful(cls, code: int = 10001, message: str = "An unknown error has occurred") -> Fault:
        return cls(success_false=True, code=code, message=message)

    @classmethod
    def rate_limited(cls, retry_after: int = 300) -> Fault:
        return cls(retry_after=retry_after)

    @classmethod
    def hang(cls, seconds: float) -> Fault:
        return cls(delay=seconds)

    @property
    def replaces_answer(self) -> bool:
        return (self.status is not None or self.html or self.body is not None or self.success_false
                or self.retry_after is not None)


@dataclass
class _Armed:
    fault: Fault
    path_contains: str | None
    remaining: int


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def envelope(result: Any, result_info: dict[str, Any] | None = None,
             messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": True, "errors": [], "messages": messages or [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return body


def failure(*errors: dict[str, Any]) -> dict[str, Any]:
    return {"success": False, "errors": list(errors), "messages": [], "result": None}


def error_item(code: int, message: str, chain: list[tuple[int, str]] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"code": code, "message": message}
    if chain:
        item["error_chain"] = [{"code": c, "message": m} for c, m in chain]
    return item


def html_error_page(status: int) -> bytes:
    """The bare page Cloudflare's API edge returns for gateway errors (not JSON)."""
    title = f"{status} {_REASONS.get(status, 'Error')}"
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
            "</body>\r\n</html>\r\n").encode()


class FakeCloudflare:
    """Answers GET requests for the tunnel API the way api.cloudflare.com does."""

    def __init__(
        self,
        sim: SimulatedAccount,
        *,
        tokens: Iterable[str] = (),
        key_pairs: Iterable[tuple[str, str]] = (),
        require_auth: bool = True,
        clock: Callable[[], datetime] = _utcnow,
        rate_limit: int = 1200,
        rate_window: int = 300,
    ) -> None:
        self.sim = sim
        self.require_auth = require_auth
        self.clock = clock
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        # When set, /accounts answers with exactly these (0, 1 or several); their ids also route.
        self.accounts: list[dict[str, Any]] | None = None
        # Routes listed without their virtual network's name (older answers): the client must look it up.
        self.route_names = True
        self.requests: list[LoggedRequest] = []
        self._token_digests = [_digest(t) for t in tokens]
        self._pair_digests = [_digest(f"{email}\n{key}") for email, key in key_pairs]
        self._faults: list[_Armed] = []
        self._window_start: datetime | None = None
        self._window_count = 0
        self._ray = 0
        self._lock = threading.Lock()  # the loopback server calls in from several threads

    @property
    def lock(self) -> threading.Lock:
        """Held while a request is answered: whoever else reads the simulation (the local /ready stand-in) holds it
        too."""
        return self._lock

    # ------------------------------------------------------------------ test controls

    def inject(self, fault: Fault, *, path_contains: str | None = None, times: int = 1) -> None:
        """Arm a fault for the next `times` requests whose path contains `path_contains` (any if None)."""
        with self._lock:
            self._faults.append(_Armed(fault, path_contains, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset_rate_limit(self) -> None:
        with self._lock:
            self._window_start, self._window_count = None, 0

    @property
    def non_get_requests(self) -> list[LoggedRequest]:
        """tunneltop is read-only: tests assert this stays empty."""
        return [r for r in self.requests if r.method != "GET"]

    # ------------------------------------------------------------------ entry point

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> FakeResponse:
        with self._lock:
            now = self.clock()
            self.sim.advance(now)
            method = method.upper()
            path, items = self._split(path, query)
            lowered = {k.lower(): v for k, v in (headers or {}).items()}
            self.requests.append(LoggedRequest(method, path, tuple(items), now, self._scheme(lowered)))
            remaining, reset = self._count(now)
            rate_headers = {
                "Ratelimit": f'"default";r={remaining};t={reset}',
                "Ratelimit-Policy": f'"default";q={self.rate_limit};w={self.rate_window}',
            }
            if self._window_count > self.rate_limit:
                # Cloudflare blocks every call for the rest of the window, and says how long.
                response = self._json(429, failure(error_item(RATE_LIMIT_CODE, RATE_LIMIT_MESSAGE)))
                response.headers["Retry-After"] = str(reset)
            else:
                fault = self._take_fault(path)
                if fault is not None and fault.replaces_answer:
                    response = self._fault_response(fault)
                else:
                    response = self._dispatch(method, path, dict(reversed(items)), lowered)
                if fault is not None:
                    response.delay = fault.delay
                    response.headers.update(fault.headers)
            self._ray += 1
            response.headers = {**rate_headers, "CF-RAY": f"{self._ray:016x}-SJC", **response.headers}
            return response

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _split(path: str,
               query: Mapping[str, str] | Iterable[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
        items = list(query.items()) if isinstance(query, Mapping) else [(str(k), str(v)) for k, v in query]
        if "?" in path:
            path, _, raw = path.partition("?")
            items += parse_qsl(raw, keep_blank_values=True)
        return path, items

    @staticmethod
    def _scheme(headers: Mapping[str, str]) -> str:
        if "authorization" in headers:
            return "bearer"
        if "x-auth-key" in headers or "x-auth-email" in headers:
            return "api_key"
        return "none"

    def _count(self, now: datetime) -> tuple[int, int]:
        """Fixed window from the first request; returns (remaining, seconds until reset)."""
        if self._window_start is None or (now - self._window_start).total_seconds() >= self.rate_window:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        left = self.rate_window - (now - self._window_start).total_seconds()
        return max(0, self.rate_limit - self._window_count), max(1, math.ceil(left))

    def _take_fault(self, path: str) -> Fault | None:
        for armed in self._faults:
            if armed.path_contains is None or armed.path_contains in path:
                armed.remaining -= 1
                if armed.remaining <= 0:
                    self._faults.remove(armed)
                return armed.fault
        return None

    def _fault_response(self, fault: Fault) -> FakeResponse:
        if fault.retry_after is not None:
            body = failure(error_item(RATE_LIMIT_CODE, RATE_LIMIT_MESSAGE))
            response = self._json(fault.status or 429, body)
            response.headers["Retry-After"] = str(fault.retry_after)
            return response
        if fault.body is not None:
            body = fault.body.encode() if isinstance(fault.body, str) else fault.body
            return FakeResponse(fault.status or 200, {"Content-Type": fault.content_type or JSON_TYPE}, body)
        if fault.html:
            status = fault.status or 502
            return FakeResponse(status, {"Content-Type": "text/html"}, html_error_page(status))
        status = fault.status or 200
        code = fault.code or 10001
        message = fault.message or ("An unknown error has occurred" if status < 500
                                    else f"{_REASONS.get(status, 'Internal Server Error')}")
        return self._json(status, failure(error_item(code, message)))

    @staticmethod
    def _json(status: int, payload: dict[str, Any]) -> FakeResponse:
        return FakeResponse(status, {"Content-Type": JSON_TYPE},
                            json.dumps(payload, separators=(",", ":")).encode())

    @staticmethod
    def _no_route(path: str) -> FakeResponse:
        # What Cloudflare says for an id that doesn't exist or a path it has no route for.
        return FakeCloudflare._json(404, failure(
            error_item(7003, f"Could not route to {path}, perhaps your object identifier is invalid?"),
            error_item(7000, "No route for that URI"),
        ))

    # ------------------------------------------------------------------ auth

    def _authenticate(self, h: Mapping[str, str]) -> FakeResponse | None:
        """None when the request may proceed, else Cloudflare's answer to its credentials."""
        if not self.require_auth:
            return None
        authorization = h.get("authorization")
        if authorization is not None:
            match = _BEARER.fullmatch(authorization)
            if match is None:
                return self._json(400, failure(error_item(
                    6003, "Invalid request headers", [(6111, "Invalid format for Authorization header")])))
            if self._known(self._token_digests, match.group(1)):
                return None
            return self._json(403, failure(error_item(10000, "Authentication error")))
        email, key = h.get("x-auth-email"), h.get("x-auth-key")
        if email is None and key is None:
            return self._json(400, failure(error_item(
                9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")))
        if email is not None and key is not None and self._known(self._pair_digests, f"{email}\n{key}"):
            return None
        if email is None or "@" not in email:
            return self._json(400, failure(error_item(
                6003, "Invalid request headers", [(6102, "Invalid format for X-Auth-Email header")])))
        if key is None or _GLOBAL_KEY.fullmatch(key) is None:
            return self._json(400, failure(error_item(
                6003, "Invalid request headers", [(6103, "Invalid format for X-Auth-Key header")])))
        return self._json(403, failure(error_item(9103, "Unknown X-Auth-Key or X-Auth-Email")))

    @staticmethod
    def _known(digests: list[bytes], value: str) -> bool:
        candidate = _digest(value)
        return any(hmac.compare_digest(candidate, d) for d in digests)

    def _verify_token(self, h: Mapping[str, str]) -> FakeResponse:
        token_id = "4f7b1a3c9e2d4b6a8c0e1f2a3b4c5d6e"
        if self.require_auth:
            authorization = h.get("authorization")
            if authorization is None and not (h.get("x-auth-key") or h.get("x-auth-email")):
                return self._json(400, failure(error_item(
                    9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")))
            match = _BEARER.fullmatch(authorization) if authorization is not None else None
            if authorization is not None and match is None:
                return self._json(400, failure(error_item(
                    6003, "Invalid request headers", [(6111, "Invalid format for Authorization header")])))
            if match is None or not self._known(self._token_digests, match.group(1)):
                # Only an API token can be verified: a key pair or an unknown token gets this.
                return self._json(401, failure(error_item(1000, "Invalid API Token")))
            # A stable id per token, without keeping the token itself.
            token_id = hashlib.sha256(b"token-id:" + _digest(match.group(1))).hexdigest()[:32]
        return self._json(200, envelope(
            {"id": token_id, "status": "active"},
            messages=[{"code": 10000, "message": "This API Token is valid and active", "type": None}]))

    # ------------------------------------------------------------------ routes

    def _account_ids(self) -> set[str]:
        ids = {self.sim.account_id}
        ids.update(str(a.get("id")) for a in self.accounts or () if isinstance(a, dict))
        return ids

    def _dispatch(self, method: str, path: str, q: dict[str, str], h: Mapping[str, str]) -> FakeResponse:
        route = unquote(path)
        if route.startswith(API_PREFIX + "/") or route == API_PREFIX:
            route = route[len(API_PREFIX):]
        route = route.rstrip("/") or "/"
        parts = route.strip("/").split("/")
        if method != "GET":
            # The project never writes; anything else is refused (and logged for the tests).
            return self._json(405, failure(error_item(7001, "Method not allowed")))
        if parts == ["user", "tokens", "verify"]:
            return self._verify_token(h)
        if parts[0] != "accounts":
            return self._no_route(route)
        if len(parts) == 4 and parts[2:] == ["tokens", "verify"] and _ACCOUNT_ID.fullmatch(parts[1]):
            return self._verify_token(h)  # account-owned token check: token auth only, like the user one
        denied = self._authenticate(h)
        if denied is not None:
            return denied
        if len(parts) == 1:
            return self._list_accounts(q)
        account = parts[1]
        if _ACCOUNT_ID.fullmatch(account) is None:
            return self._no_route(route)
        if account not in self._account_ids():
            return self._json(403, failure(error_item(9109, "Unauthorized to access requested resource")))
        rest = parts[2:]
        if rest == ["teamnet", "routes"]:
            return self._list_routes(account, q)
        if rest == ["teamnet", "virtual_networks"]:
            return self._list_virtual_networks(account, q)
        if not rest or rest[0] != "cfd_tunnel":
            return self._no_route(route)
        if len(rest) == 1:
            return self._list_tunnels(account, q)
        tunnel_id = rest[1]
        if account != self.sim.account_id or not self.sim.has_tunnel(tunnel_id):
            return self._no_route(route)
        tail = rest[2:]
        if not tail:
            return self._json(200, envelope(next(t for t in self.sim.iter_tunnels() if t["id"] == tunnel_id)))
        if tail == ["connections"]:
            return self._json(200, envelope(self.sim.live_clients(tunnel_id)))
        if len(tail) == 2 and tail[0] == "connectors":
            for client in self.sim.live_clients(tunnel_id):
                if isinstance(client, dict) and client.get("id") == tail[1]:
                    return self._json(200, envelope(client))
            return self._no_route(route)
        if tail == ["configurations"]:
            return self._json(200, envelope(self.sim.configuration(tunnel_id)))
        return self._no_route(route)

    @staticmethod
    def _paging(q: Mapping[str, str], default: int, low: int, high: int) -> tuple[int, int]:
        # Out-of-range or junk values fall back or clamp rather than erroring; result_info tells the
        # client what it really got.
        def number(name: str, fallback: int) -> int:
            try:
                return int(float(q.get(name, fallback)))
            except ValueError:
                return fallback

        return max(1, number("page", 1)), min(high, max(low, number("per_page", default)))

    @staticmethod
    def _page(items: list[Any], page: int, per_page: int) -> tuple[list[Any], dict[str, Any]]:
        chunk = items[(page - 1) * per_page: page * per_page]
        return chunk, {"page": page, "per_page": per_page, "count": len(chunk), "total_count": len(items),
                       "total_pages": math.ceil(len(items) / per_page)}

    def _list_accounts(self, q: Mapping[str, str]) -> FakeResponse:
        accounts = self.accounts if self.accounts is not None else self.sim.accounts()
        if "name" in q:
            accounts = [a for a in accounts if a.get("name") == q["name"]]
        page, per_page = self._paging(q, 20, 5, 50)
        chunk, info = self._page(list(accounts), page, per_page)
        return self._json(200, envelope(chunk, info))

    def _list_tunnels(self, account: str, q: Mapping[str, str]) -> FakeResponse:
        page, per_page = self._paging(q, 20, 1, 1000)
        tunnels = list(self.sim.iter_tunnels()) if account == self.sim.account_id else []
        deleted = q.get("is_deleted", "").lower()
        if deleted == "true":
            tunnels = [t for t in tunnels if t.get("deleted_at") is not None]
        elif deleted == "false":
            tunnels = [t for t in tunnels if t.get("deleted_at") is None]
        if "name" in q:
            tunnels = [t for t in tunnels if t.get("name") == q["name"]]
        if "uuid" in q:
            tunnels = [t for t in tunnels if t.get("id") == q["uuid"]]
        if q.get("status") in STATUSES:
            tunnels = [t for t in tunnels if t.get("status") == q["status"]]
        elif "status" in q:
            tunnels = []
        if "include_prefix" in q:
            tunnels = [t for t in tunnels if str(t.get("name", "")).startswith(q["include_prefix"])]
        if "exclude_prefix" in q:
            tunnels = [t for t in tunnels if not str(t.get("name", "")).startswith(q["exclude_prefix"])]
        chunk, info = self._page(tunnels, page, per_page)
        return self._json(200, envelope(chunk, info))

    @staticmethod
    def _deleted_filter(items: list[dict[str, Any]], q: Mapping[str, str]) -> list[dict[str, Any]]:
        deleted = q.get("is_deleted", "").lower()
        if deleted == "true":
            return [i for i in items if i.get("deleted_at") is not None]
        if deleted == "false":
            return [i for i in items if i.get("deleted_at") is None]
        return items

    def _list_routes(self, account: str, q: Mapping[str, str]) -> FakeResponse:
        page, per_page = self._paging(q, 20, 1, 1000)
        routes = self.sim.routes() if account == self.sim.account_id else []
        routes = self._deleted_filter(routes, q)
        for key in ("tunnel_id", "virtual_network_id"):
            if key in q:
                routes = [r for r in routes if r.get(key) == q[key]]
        if not self.route_names:
            routes = [{k: v for k, v in r.items() if k != "virtual_network_name"} for r in routes]
        chunk, info = self._page(routes, page, per_page)
        return self._json(200, envelope(chunk, info))

    def _list_virtual_networks(self, account: str, q: Mapping[str, str]) -> FakeResponse:
        page, per_page = self._paging(q, 20, 1, 1000)
        vnets = list(self.sim.virtual_networks()) if account == self.sim.account_id else []
        vnets = self._deleted_filter(vnets, q)
        if "name" in q:
            vnets = [v for v in vnets if v.get("name") == q["name"]]
        if q.get("is_default", "").lower() in ("true", "false"):
            wanted = q["is_default"].lower() == "true"
            vnets = [v for v in vnets if v.get("is_default_network") is wanted]
        chunk, info = self._page(vnets, page, per_page)
        return self._json(200, envelope(chunk, info))
