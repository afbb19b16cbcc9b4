"""Typed failures of the Cloudflare API, each with a message an operator can act on.

Messages are built from Cloudflare's codes and our own words; the caller sanitises them before display since
Cloudflare's ``message`` text is untrusted. No error ever carries request headers, so no credential can leak
through ``str()`` or ``repr()`` of an exception.
"""

from __future__ import annotations

from dataclasses import dataclass

READ_PERMISSION = "Cloudflare Tunnel Read"

# 10001 is left out on purpose: Cloudflare also sends it as "An unknown error has occurred", and calling that an
# auth failure sends the operator to check a token that is fine.
AUTH_CODES = frozenset({10000, 9103, 9106, 9107, 9109, 6003, 6111, 6102, 6103, 1001})
NOT_FOUND_CODES = frozenset({7003, 1003})


@dataclass(frozen=True)
class CloudflareError:
    """One entry of the envelope's ``errors`` list."""

    code: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.code is not None else self.message


class ApiError(Exception):
    """Base of every failure the client raises. ``transient`` failures are worth retrying."""

    transient = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: tuple[CloudflareError, ...] = (),
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors
        self.path = path

    @property
    def codes(self) -> tuple[int, ...]:
        return tuple(e.code for e in self.errors if e.code is not None)

    def __str__(self) -> str:
        return self.message


class AuthError(ApiError):
    """Credentials rejected, or they lack the permission to read tunnels."""


class NotFoundError(ApiError):
    """The account, tunnel or connector named does not exist (or the credentials cannot see it)."""


class RateLimitedError(ApiError):
    """Cloudflare answered 429. Nothing may be sent before ``retry_after`` seconds have passed."""

    def __init__(self, message: str, *, retry_after: float, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class OverBudgetError(ApiError):
    """tunneltop's own request budget has no token now: the request was not sent (not Cloudflare's doing)."""

    def __init__(self, message: str, *, retry_after: float, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ServerError(ApiError):
    """Cloudflare or a gateway in front of it failed (5xx, HTML error pages)."""

    transient = True


class InvalidResponseError(ApiError):
    """The body was not the JSON envelope Cloudflare promises (truncated, HTML on 200, wrong shape)."""

    transient = True


class RequestFailedError(ApiError):
    """Cloudflare answered ``success: false`` (possibly with HTTP 200) for a reason not classified above."""


class NetworkError(ApiError):
    """No answer: connection refused, DNS failure, TLS failure, or a timeout."""

    transient = True


class UsageError(ApiError):
    """The request could not be made as asked (bad configuration, ambiguous tunnel name)."""
