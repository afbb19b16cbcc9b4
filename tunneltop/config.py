"""Where tunneltop's settings come from: flags, then the environment (Cloudflare's own variable names).

No flag takes a secret's value, since argv is visible to every user of the machine.
"""

from __future__ import annotations

import ipaddress
import stat
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from tunneltop.api.auth import Credentials

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"

ENV_TOKEN = "CLOUDFLARE_API_TOKEN"
ENV_KEY = "CLOUDFLARE_API_KEY"
ENV_EMAIL = "CLOUDFLARE_EMAIL"
ENV_ACCOUNT = "CLOUDFLARE_ACCOUNT_ID"
ENV_BASE_URLS = ("CLOUDFLARE_BASE_URL", "CLOUDFLARE_API_BASE_URL")


class ConfigError(Exception):
    """The configuration cannot work; the message says what to change."""


def read_token_file(path: Path) -> tuple[str, list[str]]:
    notices: list[str] = []
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read token file {path}: {exc.strerror or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        notices.append(
            f"warning: token file {path} is readable by other users (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )
    token = text.strip()
    if not token:
        raise ConfigError(f"token file {path} is empty")
    return token, notices


def resolve_credentials(env: Mapping[str, str], token_file: Path | None = None) -> tuple[Credentials, list[str]]:
    """A token wins over an email + key pair, and we say so (Cloudflare's Python SDK silently does the reverse)."""
    notices: list[str] = []
    email, key = env.get(ENV_EMAIL, "").strip(), env.get(ENV_KEY, "").strip()
    try:
        if token_file is not None:
            token, notices = read_token_file(token_file)
            creds = Credentials.token(token, source=f"--token-file {token_file}")
        elif env.get(ENV_TOKEN, "").strip():
            creds = Credentials.token(env[ENV_TOKEN], source=ENV_TOKEN)
        elif email and key:
            return Credentials.global_key(email, key, source=f"{ENV_EMAIL} + {ENV_KEY}"), notices
        elif key or email:
            missing = ENV_EMAIL if key else ENV_KEY
            raise ConfigError(f"{missing} is not set: a global API key needs both {ENV_EMAIL} and {ENV_KEY}")
        else:
            raise ConfigError(
                f"no credentials: set {ENV_TOKEN} (an API token with the 'Cloudflare Tunnel Read' permission), "
                f"or pass --token-file PATH, or set {ENV_EMAIL} + {ENV_KEY}; or try --demo"
            )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if email and key:
        notices.append(f"using the API token from {creds.source}; ignoring {ENV_EMAIL} + {ENV_KEY}")
    return creds, notices


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_base_url(env: Mapping[str, str]) -> str:
    raw = next((env[name].strip() for name in ENV_BASE_URLS if env.get(name, "").strip()), DEFAULT_BASE_URL)
    parts = urlsplit(raw)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"API base URL {raw!r} is not an http(s) URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"refusing plain http:// for {parts.hostname}: credentials would travel unencrypted "
            "(http is allowed only for loopback hosts)"
        )
    return raw.rstrip("/")
