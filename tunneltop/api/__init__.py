"""The Cloudflare API as tunneltop reads it. The only package that speaks HTTP; it never imports Textual."""

from tunneltop.api.auth import Credentials
from tunneltop.api.client import ApiResponse, CloudflareClient, RetryPolicy
from tunneltop.api.errors import (
    ApiError,
    AuthError,
    InvalidResponseError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    RequestFailedError,
    ServerError,
    UsageError,
)

__all__ = [
    "ApiError",
    "ApiResponse",
    "AuthError",
    "CloudflareClient",
    "Credentials",
    "InvalidResponseError",
    "NetworkError",
    "NotFoundError",
    "RateLimitedError",
    "RequestFailedError",
    "RetryPolicy",
    "ServerError",
    "UsageError",
]
