"""Parsing Cloudflare's ``Ratelimit``/``Ratelimit-Policy`` and ``Retry-After`` headers, junk included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from tunneltop.api.ratelimit import RateLimit, parse_ratelimit, parse_retry_after

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def headers(**values: str) -> httpx.Headers:
    return httpx.Headers({k.replace("_", "-"): v for k, v in values.items()})


def test_both_headers():
    parsed = parse_ratelimit(headers(ratelimit='"default";r=50;t=30', ratelimit_policy='"default";q=1200;w=300'))
    assert parsed == RateLimit(remaining=50, reset=30, quota=1200, window=300)


def test_header_names_are_case_insensitive():
    parsed = parse_ratelimit(httpx.Headers({"RateLimit": '"default";r=7;t=12'}))
    assert parsed == RateLimit(remaining=7, reset=12)


def test_state_without_policy_and_policy_without_state():
    assert parse_ratelimit(headers(ratelimit='"default";r=0;t=30')) == RateLimit(remaining=0, reset=30)
    assert parse_ratelimit(headers(ratelimit_policy='"default";q=1200;w=300')) == RateLimit(quota=1200, window=300)


def test_no_headers_means_none():
    assert parse_ratelimit(httpx.Headers({"content-type": "application/json"})) is None


def test_spaces_quotes_and_key_case_are_tolerated():
    parsed = parse_ratelimit(headers(ratelimit=' "default" ; R = 3 ; T="9" '))
    assert parsed == RateLimit(remaining=3, reset=9)


def test_only_the_first_list_member_counts():
    parsed = parse_ratelimit(headers(ratelimit='"default";r=10;t=20, "burst";r=0;t=1'))
    assert parsed == RateLimit(remaining=10, reset=20)


@pytest.mark.parametrize(
    "value",
    ["", "garbage", '"default"', '"default";r', '"default";r=;t=', '"default";r=abc;t=xyz', ";;;==;", "r=1;t=2"],
)
def test_junk_is_tolerated(value):
    parsed = parse_ratelimit(headers(ratelimit=value))
    assert parsed is None or isinstance(parsed, RateLimit)


def test_partly_junk_keeps_what_is_readable():
    parsed = parse_ratelimit(headers(ratelimit='"default";r=oops;t=30', ratelimit_policy='"default";q=-5;w=300'))
    assert parsed == RateLimit(remaining=None, reset=30, quota=None, window=300)


@pytest.mark.parametrize("number", ["inf", "-inf", "nan", "1e400", "Infinity"])
def test_non_finite_numbers_are_ignored(number):
    parsed = parse_ratelimit(headers(ratelimit=f'"default";r={number};t={number}', ratelimit_policy='"d";q=10;w=60'))
    assert parsed == RateLimit(quota=10, window=60)


def test_fractional_remaining_is_truncated():
    assert parse_ratelimit(headers(ratelimit='"default";r=2.9;t=0.5')) == RateLimit(remaining=2, reset=0.5)


def test_retry_after_seconds():
    assert parse_retry_after("300", NOW) == 300
    assert parse_retry_after(" 17 ", NOW) == 17
    assert parse_retry_after("0", NOW) == 0


def test_retry_after_http_date():
    assert parse_retry_after(format_datetime(NOW + timedelta(seconds=90), usegmt=True), NOW) == 90
    assert parse_retry_after("Sat, 01 Mar 2025 12:05:00 GMT", NOW) == 300


def test_retry_after_date_in_the_past_means_no_wait():
    assert parse_retry_after("Sat, 01 Mar 2025 11:00:00 GMT", NOW) == 0


def test_retry_after_date_without_zone_is_taken_as_utc():
    assert parse_retry_after("Sat, 01 Mar 2025 12:01:00 -0000", NOW) == 60


@pytest.mark.parametrize("value", [None, "", "soon", "-1", "nan", "inf", "Mon, 99 Foo 2025"])
def test_retry_after_junk_falls_back_to_the_default(value):
    assert parse_retry_after(value, NOW) == 60
    assert parse_retry_after(value, NOW, default=5) == 5
