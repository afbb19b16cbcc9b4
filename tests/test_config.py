"""Where credentials and the API base URL come from, and what is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tunneltop.config import (
    DEFAULT_BASE_URL,
    ConfigError,
    resolve_base_url,
    resolve_credentials,
)
from tunneltop.profiles import Profile, merge_settings

TOKEN = "cfut_C0nfigT0ken-9e8d7c6b5a"
KEY = "cfk_C0nfigGl0balKey-1234567890"
EMAIL = "ops@example.com"


def token_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "token"
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


def test_token_from_the_environment_is_sent_as_bearer():
    creds, notices = resolve_credentials({"CLOUDFLARE_API_TOKEN": f"  {TOKEN}\n"})
    assert creds.scheme == "token"
    assert creds.headers() == {"Authorization": f"Bearer {TOKEN}"}
    assert creds.source == "CLOUDFLARE_API_TOKEN"
    assert notices == []


def test_email_and_key_from_the_environment():
    creds, notices = resolve_credentials({"CLOUDFLARE_EMAIL": EMAIL, "CLOUDFLARE_API_KEY": KEY})
    assert creds.scheme == "key"
    assert creds.headers() == {"X-Auth-Email": EMAIL, "X-Auth-Key": KEY}
    assert notices == []


def test_a_token_wins_over_a_key_pair_and_says_so():
    env = {"CLOUDFLARE_API_TOKEN": TOKEN, "CLOUDFLARE_EMAIL": EMAIL, "CLOUDFLARE_API_KEY": KEY}
    creds, notices = resolve_credentials(env)
    assert creds.headers() == {"Authorization": f"Bearer {TOKEN}"}
    assert len(notices) == 1
    assert "CLOUDFLARE_API_TOKEN" in notices[0]
    assert "ignoring CLOUDFLARE_EMAIL + CLOUDFLARE_API_KEY" in notices[0]
    assert TOKEN not in notices[0] and KEY not in notices[0]


def test_a_blank_token_falls_back_to_the_key_pair():
    env = {"CLOUDFLARE_API_TOKEN": "   ", "CLOUDFLARE_EMAIL": EMAIL, "CLOUDFLARE_API_KEY": KEY}
    creds, notices = resolve_credentials(env)
    assert creds.scheme == "key"
    assert notices == []


@pytest.mark.parametrize(
    ("env", "missing"),
    [({"CLOUDFLARE_API_KEY": KEY}, "CLOUDFLARE_EMAIL"), ({"CLOUDFLARE_EMAIL": EMAIL}, "CLOUDFLARE_API_KEY")],
)
def test_half_a_key_pair_is_an_error_naming_the_missing_half(env, missing):
    with pytest.raises(ConfigError) as info:
        resolve_credentials(env)
    assert str(info.value).startswith(f"{missing} is not set")
    assert KEY not in str(info.value)


def test_no_credentials_says_what_to_set():
    with pytest.raises(ConfigError) as info:
        resolve_credentials({})
    message = str(info.value)
    for hint in ("CLOUDFLARE_API_TOKEN", "Cloudflare Tunnel Read", "--token-file", "CLOUDFLARE_EMAIL", "--demo"):
        assert hint in message


def test_a_token_with_spaces_is_refused_without_quoting_it():
    with pytest.raises(ConfigError) as info:
        resolve_credentials({"CLOUDFLARE_API_TOKEN": f"{TOKEN} extra"})
    assert TOKEN not in str(info.value)
    assert "CLOUDFLARE_API_TOKEN" in str(info.value)


def test_token_file_is_read_and_stripped(tmp_path):
    path = token_file(tmp_path, f"\n  {TOKEN}  \n\n")
    creds, notices = resolve_credentials({}, path)
    assert creds.headers() == {"Authorization": f"Bearer {TOKEN}"}
    assert creds.source == f"--token-file {path}"
    assert notices == []


def test_token_file_wins_over_the_environment(tmp_path):
    path = token_file(tmp_path, TOKEN)
    env = {"CLOUDFLARE_API_TOKEN": "cfut_other", "CLOUDFLARE_EMAIL": EMAIL, "CLOUDFLARE_API_KEY": KEY}
    creds, notices = resolve_credentials(env, path)
    assert creds.headers() == {"Authorization": f"Bearer {TOKEN}"}
    assert any("ignoring CLOUDFLARE_EMAIL + CLOUDFLARE_API_KEY" in n for n in notices)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_token_file_readable_by_others_warns(tmp_path, mode):
    path = token_file(tmp_path, TOKEN, mode)
    creds, notices = resolve_credentials({}, path)
    assert creds.scheme == "token"
    assert len(notices) == 1
    assert notices[0].startswith("warning: token file")
    assert f"chmod 600 {path}" in notices[0]
    assert f"{mode:o}" in notices[0]
    assert TOKEN not in notices[0]


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_token_file_does_not_warn(tmp_path, mode):
    _, notices = resolve_credentials({}, token_file(tmp_path, TOKEN, mode))
    assert notices == []


@pytest.mark.parametrize("text", ["", "\n", "   \n\t\n"])
def test_empty_token_file_is_an_error(tmp_path, text):
    path = token_file(tmp_path, text)
    with pytest.raises(ConfigError, match="is empty"):
        resolve_credentials({}, path)


def test_missing_token_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        resolve_credentials({}, tmp_path / "nope")
    assert "cannot read token file" in str(info.value)
    assert "nope" in str(info.value)


def test_token_file_with_two_lines_is_refused_without_quoting(tmp_path):
    path = token_file(tmp_path, f"{TOKEN}\n{TOKEN}\n")
    with pytest.raises(ConfigError) as info:
        resolve_credentials({}, path)
    assert TOKEN not in str(info.value)


# -- base URL ----------------------------------------------------------------------------------------------------


def test_default_base_url():
    assert resolve_base_url({}) == DEFAULT_BASE_URL == "https://api.cloudflare.com/client/v4"


def test_sdk_name_comes_first_then_wranglers():
    both = {"CLOUDFLARE_BASE_URL": "https://a.example/client/v4", "CLOUDFLARE_API_BASE_URL": "https://b.example/v4"}
    assert resolve_base_url(both) == "https://a.example/client/v4"
    assert resolve_base_url({"CLOUDFLARE_API_BASE_URL": "https://b.example/v4/"}) == "https://b.example/v4"
    blank_first = {"CLOUDFLARE_BASE_URL": "  ", "CLOUDFLARE_API_BASE_URL": "https://b.example/v4"}
    assert resolve_base_url(blank_first) == "https://b.example/v4"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8787/client/v4",
        "http://localhost:8080/client/v4",
        "http://[::1]:9000/client/v4",
        "http://127.9.9.9/client/v4",
    ],
)
def test_plain_http_is_allowed_for_loopback(url):
    assert resolve_base_url({"CLOUDFLARE_BASE_URL": url}) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://api.cloudflare.com/client/v4",
        "http://10.0.0.5:8080/client/v4",
        "http://localhost.evil.example/client/v4",
        "http://127.0.0.1.nip.io/client/v4",
    ],
)
def test_plain_http_is_refused_elsewhere(url):
    with pytest.raises(ConfigError) as info:
        resolve_base_url({"CLOUDFLARE_API_BASE_URL": url})
    assert "refusing plain http://" in str(info.value)
    assert "loopback" in str(info.value)


@pytest.mark.parametrize("url", ["ftp://example.com", "api.cloudflare.com/client/v4", "https://", "file:///etc"])
def test_non_http_urls_are_refused(url):
    with pytest.raises(ConfigError, match="not an http"):
        resolve_base_url({"CLOUDFLARE_BASE_URL": url})


def test_settings_put_it_together(tmp_path):
    env = {
        "CLOUDFLARE_API_TOKEN": TOKEN,
        "CLOUDFLARE_ACCOUNT_ID": " 0123456789abcdef0123456789abcdef ",
        "CLOUDFLARE_BASE_URL": "http://127.0.0.1:1/client/v4",
    }
    settings = merge_settings(Profile(), env)
    assert settings.account_id == "0123456789abcdef0123456789abcdef"
    assert settings.base_url == "http://127.0.0.1:1/client/v4"
    assert settings.credentials.scheme == "token"
    assert merge_settings(Profile(), env, account="fedcba").account_id == "fedcba"
    assert merge_settings(Profile(), {"CLOUDFLARE_API_TOKEN": TOKEN}).account_id is None


def test_settings_read_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "abc")
    settings = merge_settings(Profile())
    assert settings.account_id == "abc"
    assert settings.credentials.headers()["Authorization"] == f"Bearer {TOKEN}"
