"""The Cloudflare API client: the only code in tunneltop that speaks HTTP, and it only ever sends GET.

Every request it sends (each page, each retry) first takes a token from its ``RequestGate``, and every answer's
``Ratelimit`` and ``Retry-After`` go back to the gate. It unwraps Cloudflare's envelope, pages through
collections, turns every failure into a typed ``ApiError``, and retries transient failures with bounded, jittered
exponential back-off, each retry only if the gate has a token for it.

One module (over ~400 lines): it is the single door for HTTP, which tests/test_readonly.py checks by counting it.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from tunneltop import __version__
from tunneltop.api import jsondecode
from tunneltop.api.auth import Credentials
from tunneltop.api.errors import (
    AUTH_CODES,
    NOT_FOUND_CODES,
    READ_PERMISSION,
    ApiError,
    AuthError,
    CloudflareError,
    InvalidResponseError,
    NetworkError,
    NotFoundError,
    OverBudgetError,
    RateLimitedError,
    RequestFailedError,
    ServerError,
)
from tunneltop.api.gate import RequestGate
from tunneltop.api.ratelimit import RateLimit, parse_ratelimit, parse_retry_after
from tunneltop.model.parse import (
    RecordCache,
    RecordProblem,
    connectors_from_json,
    parse_connectors,
    parse_many,
    validate_record,
)
from tunneltop.model.records import DEPRECATED_TUNNEL_FIELDS, Account, Connector, TokenStatus, Tunnel
from tunneltop.model.remote import RemoteConfig, RouteRecord, parse_configuration, parse_routes, parse_virtual_networks

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
USER_AGENT = f"tunneltop/{__version__} (read-only Cloudflare Tunnel monitor)"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
# How long an idle connection is kept for the next request: past the default interval (5 s) and most others.
KEEPALIVE_S = 60.0
# Bound on one request including retries of its parts (httpx timeouts are per read, not per request).
DEFAULT_REQUEST_DEADLINE = 20.0
MAX_PAGES = 1000
TUNNEL_PAGE_SIZE = 1000
ACCOUNT_PAGE_SIZE = 50
# Private network routes and virtual networks: a tunnel rarely has more than a page of them.
TEAMNET_PAGE_SIZE = 1000


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential back-off with full jitter for transient failures."""

    retries: int = 3
    base: float = 0.5
    cap: float = 8.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.cap, self.base * 2**attempt))


# Reads a successful answer's bytes whole (see CloudflareClient.get): what it made of them, or None to leave them to
# the usual decode.
Reader = Callable[[bytes], Any]


@dataclass(frozen=True)
class ApiResponse:
    result: Any
    result_info: Mapping[str, Any] | None
    ratelimit: RateLimit | None
    messages: tuple[CloudflareError, ...] = ()
    # Asked for with ``get(..., hash_body=True)``: the hash of the answer's bytes (see body_digest), and whether they
    # were those of ``unchanged_from``, in which case nothing was decoded and ``result`` is None.
    digest: bytes | None = None
    unchanged: bool = False
    # What the ``whole`` reader given to ``get`` made of a success's bytes (then nothing was decoded: ``result`` is
    # None); None when it was given none or it left the answer to the usual decode.
    whole: Any = None


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # failed requests by error class (serve's /metrics)


def _errors_of(body: Any) -> tuple[CloudflareError, ...]:
    out: list[CloudflareError] = []
    if isinstance(body, dict):
        for key in ("errors", "error_chain"):
            items = body.get(key)
            if isinstance(items, list):
                for item in items:
                    if isinstance(item, dict):
                        code = item.get("code")
                        out.append(
                            CloudflareError(code if isinstance(code, int) else None, str(item.get("message", "")))
                        )
                        chain = item.get("error_chain")
                        if isinstance(chain, list):
                            out.extend(_errors_of({"errors": chain}))
    return tuple(out)


def _cf_text(errors: tuple[CloudflareError, ...]) -> str:
    return "; ".join(str(e) for e in errors[:3]) if errors else ""


def body_digest(content: bytes) -> bytes:
    """The hash an answer's bytes are known by: SHA-256, as a 33 MB answer (100,000 connections) hashes in about
    20 ms (hardware-assisted; BLAKE2b took 30) against about 0.35 s to decode it, without holding the bytes."""
    return hashlib.sha256(content).digest()


def _looks_like_html(response: httpx.Response) -> bool:
    ctype = response.headers.get("content-type", "")
    return "html" in ctype or response.content[:200].lstrip().lower().startswith((b"<!doctype", b"<html"))


def classify_failure(status: int, body: Any, *, path: str, is_html: bool = False) -> ApiError:
    """Map an HTTP status and Cloudflare's error codes to a typed error with an actionable message."""
    errors = _errors_of(body)
    codes = {e.code for e in errors}
    detail = _cf_text(errors)
    said = f" (Cloudflare said: {detail})" if detail else ""
    # A 5xx is Cloudflare failing, whatever codes ride along: transient, never "fix your token".
    server_failed = status >= 500
    if not server_failed and (status in (401, 403) or codes & AUTH_CODES):
        if 1001 in codes and ("/" + path.strip("/")).endswith("/accounts"):
            return AuthError(
                "these credentials cannot list accounts (an account-owned token can't); "
                "name the account with --account ID or CLOUDFLARE_ACCOUNT_ID" + said,
                status=status,
                errors=errors,
                path=path,
            )
        return AuthError(
            f"Cloudflare refused the credentials (HTTP {status}){said}. Check that the token is active and "
            f"has the '{READ_PERMISSION}' permission on this account",
            status=status,
            errors=errors,
            path=path,
        )
    if not server_failed and (status == 404 or codes & NOT_FOUND_CODES):
        return NotFoundError(
            f"not found: {path} (HTTP {status}){said}. Check the account and tunnel ids",
            status=status,
            errors=errors,
            path=path,
        )
    if server_failed or is_html:
        kind = "an HTML error page" if is_html else "an error"
        return ServerError(
            f"Cloudflare answered HTTP {status} with {kind}{said}; it is usually temporary",
            status=status,
            errors=errors,
            path=path,
        )
    return RequestFailedError(
        f"Cloudflare refused the request (HTTP {status}){said or ' with no reason given'}",
        status=status,
        errors=errors,
        path=path,
    )


class CloudflareClient:
    """Async, read-only client for the Cloudflare Tunnel API."""

    def __init__(
        self,
        credentials: Credentials | None,
        base_url: str = DEFAULT_BASE_URL,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        request_deadline: float = DEFAULT_REQUEST_DEADLINE,
        retry: RetryPolicy | None = None,
        max_rate_limit_wait: float = 0.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        gate: RequestGate | None = None,
        one_shot: bool = False,
    ) -> None:
        """``one_shot``: a client read once by a process no other thread of which waits on the GIL (``--once``):
        a connections answer is then decoded and validated whole from its bytes (see list_connectors)."""
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if credentials is not None:
            headers.update(credentials.headers())
        self._credentials = credentials
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            # httpx closes a connection idle for 5 s, and the default interval is 5 s: every poll made a new one
            # (a TLS handshake to Cloudflare). One the server closed meanwhile is seen and not reused.
            limits=httpx.Limits(keepalive_expiry=KEEPALIVE_S),
        )
        self._deadline = request_deadline
        self._retry = retry or RetryPolicy()
        self._max_wait = max_rate_limit_wait
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        # Every request takes a token from the gate. A client made without one (a library caller's) keeps the
        # default budget, a minute's worth of which may go at once.
        if gate is None:
            gate = RequestGate(clock=clock)
            gate.burst = gate.limit_per_minute
        self.gate = gate
        self._one_shot = one_shot
        self.ratelimit: RateLimit | None = None
        self.stats = ClientStats()

    def __repr__(self) -> str:
        return f"CloudflareClient(base_url={str(self._http.base_url)!r}, credentials={self._credentials!r})"

    async def __aenter__(self) -> CloudflareClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        self.gate.close()

    @property
    def blocked_for(self) -> float:
        """Seconds until a request may be sent again (0 when not rate limited)."""
        return self.gate.blocked_for()

    # -- one request -------------------------------------------------------------------------------------------

    async def _wait_if_blocked(self) -> None:
        # A loop, not one sleep: another request's 429 may extend the block while this one waits. Longer blocks
        # than ``max_rate_limit_wait`` are the gate's to refuse.
        while 0 < (wait := self.blocked_for) <= self._max_wait:
            await self._sleep(wait)

    async def _send_once(
        self,
        path: str,
        params: Mapping[str, Any] | None,
        hash_body: bool = False,
        unchanged_from: bytes | None = None,
        whole: Reader | None = None,
        elements: jsondecode.Elements | None = None,
    ) -> ApiResponse:
        await self._wait_if_blocked()
        ticket = self.gate.acquire(path)  # raises, and nothing is sent, without a token
        try:
            return await self._exchange(path, params, hash_body, unchanged_from, whole, elements)
        except ApiError as exc:
            self.stats.errors[type(exc).__name__] += 1
            raise
        finally:
            self.gate.answered(ticket)

    async def _exchange(
        self,
        path: str,
        params: Mapping[str, Any] | None,
        hash_body: bool,
        unchanged_from: bytes | None,
        whole: Reader | None = None,
        elements: jsondecode.Elements | None = None,
    ) -> ApiResponse:
        self.stats.requests += 1
        try:
            async with asyncio.timeout(self._deadline):
                # GET is the only verb this client knows: tunneltop is read-only by construction.
                response = await self._http.get(path.lstrip("/"), params=params)
        except (httpx.TimeoutException, TimeoutError):
            raise NetworkError(f"Cloudflare did not answer in time ({path})", path=path) from None
        except httpx.TransportError as exc:
            reason = type(exc).__name__
            text = str(exc)
            if self._credentials is not None:
                text = self._credentials.scrub(text)
            raise NetworkError(f"could not reach the Cloudflare API: {reason}: {text}"[:300], path=path) from None
        except httpx.DecodingError:
            # An answer came, but its Content-Encoding (gzip, deflate…) was broken: garbage, like truncated JSON.
            raise InvalidResponseError(
                f"Cloudflare's answer could not be decoded (broken Content-Encoding) ({path})", path=path
            ) from None
        try:
            return self._parse(response, path, hash_body, unchanged_from, whole, elements)
        except ApiError as exc:
            raise self._scrubbed(exc) from None
        finally:
            # httpx's Response and its stream refer to each other (BoundAsyncStream): a reference cycle with the
            # body in it (33 MB at 100,000 connections) that only the collector frees, and a large poll's cycle
            # outlives the young collections, so it waited for a full one. The body has been read and the
            # response closed: without that stream, the last reference dropped frees it at once.
            response.stream = httpx.ByteStream(b"")

    def _scrubbed(self, exc: ApiError) -> ApiError:
        """The error without the secret, should the answer have echoed it (a proxy's or a broken endpoint's)."""
        if self._credentials is not None:
            scrub = self._credentials.scrub
            exc.message = scrub(exc.message)
            exc.args = (exc.message,)
            exc.errors = tuple(CloudflareError(e.code, scrub(e.message)) for e in exc.errors)
        return exc

    def _parse(
        self,
        response: httpx.Response,
        path: str,
        hash_body: bool = False,
        unchanged_from: bytes | None = None,
        whole: Reader | None = None,
        elements: jsondecode.Elements | None = None,
    ) -> ApiResponse:
        ratelimit = parse_ratelimit(response.headers)
        if ratelimit is not None:
            self.ratelimit = ratelimit
        # Out of quota (remaining 0) holds every process back until the reset: the next request would be a 429.
        self.gate.observe(ratelimit)
        status = response.status_code
        digest = body_digest(response.content) if hash_body and 200 <= status < 300 else None
        if digest is not None and digest == unchanged_from:
            # The very bytes of an answer its caller decoded before (only a success's digest is handed back), so the
            # very same result: not decoded again.
            return ApiResponse(result=None, result_info=None, ratelimit=ratelimit, digest=digest, unchanged=True)
        if whole is not None and 200 <= status < 300:
            read = whole(response.content)  # None: anything odd, which the usual way below says
            if read is not None:
                return ApiResponse(result=None, result_info=None, ratelimit=ratelimit, digest=digest, whole=read)
        is_json = True
        try:
            # In pieces when large (api/jsondecode.py): one json.loads of 100,000 connections holds the GIL, and so
            # freezes the live view's thread, for a third of a second.
            body: Any = jsondecode.loads(response.content, elements=elements if 200 <= status < 300 else None)
        except (ValueError, UnicodeDecodeError):
            body, is_json = None, False
            if status < 400 and not _looks_like_html(response):
                raise InvalidResponseError(
                    f"Cloudflare's answer was not valid JSON (HTTP {status}, {len(response.content)} bytes; "
                    "truncated?)",
                    status=status,
                    path=path,
                ) from None
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
            self.gate.observe(None, retry_after)
            self.stats.rate_limited += 1
            return_error = RateLimitedError(
                f"rate limited by Cloudflare (HTTP 429): no request may be sent for {retry_after:.0f} s (Retry-After)",
                retry_after=retry_after,
                status=status,
                errors=_errors_of(body),
                path=path,
            )
            raise return_error
        if not is_json:
            raise classify_failure(status, None, path=path, is_html=_looks_like_html(response))
        if not isinstance(body, dict) or "success" not in body:
            if status >= 400:
                raise classify_failure(status, body, path=path)
            raise InvalidResponseError(
                f"Cloudflare's answer had no envelope (HTTP {status}): expected 'success' and 'result'",
                status=status,
                path=path,
            )
        if status >= 400 or body.get("success") is not True:
            raise classify_failure(status, body, path=path)
        info = body.get("result_info")
        return ApiResponse(
            result=body.get("result"),
            result_info=info if isinstance(info, dict) else None,
            ratelimit=ratelimit,
            messages=_errors_of({"errors": body.get("messages")}),
            digest=digest,
        )

    async def get(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        hash_body: bool = False,
        unchanged_from: bytes | None = None,
        whole: Reader | None = None,
        elements: jsondecode.Elements | None = None,
    ) -> ApiResponse:
        """One GET with retries: transient failures back off; a 429 waits only if allowed to wait that long.

        ``hash_body``: a successful answer carries its body's digest; and when that is ``unchanged_from`` (the digest
        of an answer decoded before), it is not decoded: ``unchanged`` is set and ``result`` is None. ``whole``: reads
        a successful answer's bytes itself (``whole`` is then what it made of them); None from it, the usual way.
        ``elements``: given a successful answer's ``result`` elements a run at a time as they are decoded, and what it
        gives back kept in their place (see jsondecode.loads).

        Each retry takes its own token from the gate; with none left the request fails: with the transient failure
        the retry was for (the request did fail, and that is what its caller must hear), else ``OverBudgetError``."""
        attempt = 0
        failed: ApiError | None = None
        while True:
            try:
                return await self._send_once(path, params, hash_body, unchanged_from, whole, elements)
            except OverBudgetError:
                if failed is not None:
                    raise failed from None  # no token to retry: not "budget spent", but the 5xx/timeout it was
                raise
            except RateLimitedError as exc:
                if exc.retry_after > self._max_wait or attempt >= self._retry.retries:
                    raise
            except ApiError as exc:
                if not exc.transient or attempt >= self._retry.retries:
                    raise
                failed = exc
                await self._sleep(self._retry.delay(attempt, self._rng))
            attempt += 1
            self.stats.retries += 1

    async def get_all_pages(
        self, path: str, params: Mapping[str, Any] | None = None, *, per_page: int = TUNNEL_PAGE_SIZE
    ) -> list[Any]:
        """Every page of a collection: stop when a page comes back short or the total is reached."""
        items: list[Any] = []
        for page in range(1, MAX_PAGES + 1):
            response = await self.get(path, {**(params or {}), "page": page, "per_page": per_page})
            result = response.result or []
            if not isinstance(result, list):
                raise InvalidResponseError(f"expected a list from {path}, got {type(result).__name__}", path=path)
            items.extend(result)
            info = response.result_info or {}
            total_pages, total = info.get("total_pages"), info.get("total_count")
            got = info.get("count", len(result))
            page_size = info.get("per_page")
            if not isinstance(page_size, int | float):
                page_size = per_page
            if not result or not isinstance(got, int | float) or got < page_size:
                break
            if isinstance(total_pages, int | float) and page >= total_pages:
                break
            if isinstance(total, int | float) and len(items) >= total:
                break
        return items

    # -- the endpoints tunneltop reads ------------------------------------------------------------------------

    async def list_accounts(self) -> tuple[list[Account], list[RecordProblem]]:
        raw = await self.get_all_pages("accounts", per_page=ACCOUNT_PAGE_SIZE)
        return parse_many(Account, raw, "account")

    async def verify_token(self, account_id: str | None = None) -> TokenStatus:
        path = f"accounts/{account_id}/tokens/verify" if account_id else "user/tokens/verify"
        response = await self.get(path)
        status, _ = validate_record(TokenStatus, response.result or {}, "token")
        return status or TokenStatus()

    async def list_tunnels(
        self,
        account_id: str,
        *,
        name: str | None = None,
        uuid: str | None = None,
        include_deleted: bool | None = False,
        cache: dict[str, tuple[dict[str, Any], Tunnel]] | None = None,
    ) -> tuple[list[Tunnel], list[RecordProblem]]:
        """Every tunnel of the account (all pages), or those ``name``/``uuid`` pick. ``include_deleted=None``
        sends no ``is_deleted`` filter (deleted tunnels come too). With ``cache``, unchanged ones are last poll's
        models."""
        params: dict[str, Any] = {}
        if include_deleted is not None:
            params["is_deleted"] = "true" if include_deleted else "false"
        if name is not None:
            params["name"] = name
        if uuid is not None:
            params["uuid"] = uuid
        raw = await self.get_all_pages(f"accounts/{account_id}/cfd_tunnel", params)
        for item in raw:
            # The deprecated copy of each tunnel's connections (the model drops it): not compared with the cache's
            # nor kept in it (at 100,000 connections in a tunnel, 24 ms to compare and the size of the connections
            # answer to keep), and freed a slice at a time.
            if isinstance(item, dict):
                for name in DEPRECATED_TUNNEL_FIELDS:
                    jsondecode.release(item.pop(name, None))
        try:
            return parse_many(Tunnel, raw, "tunnel", cache)
        finally:
            jsondecode.release(raw)

    async def get_tunnel(self, account_id: str, tunnel_id: str) -> Tunnel:
        response = await self.get(f"accounts/{account_id}/cfd_tunnel/{tunnel_id}")
        tunnel, problems = validate_record(Tunnel, response.result, "tunnel")
        if tunnel is None:
            raise InvalidResponseError(f"tunnel {tunnel_id}: {problems[0].message if problems else 'no result'}")
        return tunnel

    async def list_connectors(
        self, account_id: str, tunnel_id: str, cache: RecordCache | None = None
    ) -> tuple[list[Connector], list[RecordProblem]]:
        """``cache``: that tunnel's records from the last poll, reused where the API sent them unchanged; an answer
        whose bytes are those of the last one is not decoded at all: its connectors are the same objects again."""
        path = f"accounts/{account_id}/cfd_tunnel/{tunnel_id}/connections"
        if self._one_shot:
            # Read once (--once): no thread to let run, no next poll to keep anything for. Decoded and validated whole
            # from the bytes, or, when anything in them is odd, the usual way, which says what.
            response = await self.get(path, whole=connectors_from_json)
            if response.whole is not None:
                return list(response.whole[0]), []
            try:
                return parse_connectors(response.result, cache)
            finally:
                jsondecode.release(response.result)
        if cache is None:
            response = await self.get(path)
            try:
                return parse_connectors(response.result)
            finally:
                jsondecode.release(response.result)  # the decoded records, freed a slice at a time
        last = cache.last
        # A connector whose JSON text is that of one the cache holds is not decoded: it is that one (RecordCache).
        read = cache.reading()
        response = await self.get(
            path, hash_body=True, unchanged_from=last[0] if last is not None else None, elements=read
        )
        if response.unchanged and last is not None:
            _, connectors, problems = last
        else:
            connectors, problems = parse_connectors(response.result, cache, read)
            cache.last = (response.digest, connectors, problems) if response.digest is not None else None
            jsondecode.release(response.result)  # the connectors read, a slice at a time
        return list(connectors), list(problems)

    async def get_connector(self, account_id: str, tunnel_id: str, connector_id: str) -> Connector:
        response = await self.get(f"accounts/{account_id}/cfd_tunnel/{tunnel_id}/connectors/{connector_id}")
        connectors, problems = parse_connectors([response.result])
        if not connectors:
            raise InvalidResponseError(f"connector {connector_id}: {problems[0].message if problems else 'no result'}")
        return connectors[0]

    async def get_configuration(self, account_id: str, tunnel_id: str) -> tuple[RemoteConfig, list[RecordProblem]]:
        """A remotely managed tunnel's configuration: its ingress rules' public hostnames and its version."""
        response = await self.get(f"accounts/{account_id}/cfd_tunnel/{tunnel_id}/configurations")
        return parse_configuration(response.result)

    async def list_routes(self, account_id: str, tunnel_id: str) -> tuple[list[RouteRecord], list[RecordProblem]]:
        """The private network routes a tunnel carries (every page; deleted ones left out)."""
        raw = await self.get_all_pages(
            f"accounts/{account_id}/teamnet/routes",
            {"tunnel_id": tunnel_id, "is_deleted": "false"},
            per_page=TEAMNET_PAGE_SIZE,
        )
        return parse_routes(raw, tunnel_id)

    async def list_virtual_networks(self, account_id: str) -> dict[str, str]:
        """The account's virtual networks: id -> name (to name a route's network when the route does not)."""
        raw = await self.get_all_pages(
            f"accounts/{account_id}/teamnet/virtual_networks", {"is_deleted": "false"}, per_page=TEAMNET_PAGE_SIZE
        )
        return parse_virtual_networks(raw)
