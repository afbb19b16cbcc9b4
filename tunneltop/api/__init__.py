"""The Cloudflare API as tunneltop reads it. The only package that speaks HTTP; it never imports Textual."""

from tunneltop.api.auth import Credentials
from tunneltop.api.client import ApiResponse, CloudflareClient, RetryPolicy
from tunneltop.api.errors import (
    ApiError,
    AuthError,
    InvalidResponseError,
    NetworkError,
    NotFoundError,
    OverBudgetError,
    RateLimitedError,
    RequestFailedError,
    ServerError,
    UsageError,
)
from tunneltop.api.gate import BudgetStatus, RequestGate

__all__ = [
    "ApiError",
    "ApiResponse",
    "AuthError",
    "BudgetStatus",
    "CloudflareClient",
    "Credentials",
    "InvalidResponseError",
    "NetworkError",
    "NotFoundError",
    "OverBudgetError",
    "RateLimitedError",
    "RequestFailedError",
    "RequestGate",
    "RetryPolicy",
    "ServerError",
    "UsageError",
]
