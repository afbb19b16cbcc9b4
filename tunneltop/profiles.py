"""Named profiles in a TOML file, and how they combine with flags and the environment.

The file lives at ``$XDG_CONFIG_HOME/tunneltop/config.toml`` (``~/.config/tunneltop/config.toml`` by default)::

    default_profile = "prod"

    [profiles.prod]
    account_id = "0123456789abcdef0123456789abcdef"
    token_file = "~/.config/tunneltop/prod.token"   # or: token_env = "PROD_CF_TOKEN"
    interval = 10                                    # seconds between polls (1 to 3600)
    budget_per_minute = 60                           # tunneltop's own API requests per minute (1 to 240)
    tunnels = ["web-prod"]                           # default: every tunnel of the account
    base_url = "https://api.cloudflare.com/client/v4"
    local_metrics = "127.0.0.1:20241"                # cloudflared's /ready here (default: 20241-20245; "off")
    record = "~/.local/state/tunneltop/prod.db"      # --watch records every poll here (like --record FILE)

Credentials: name where the token is, not the token. ``token_file`` (a path; ``~`` and paths relative to the
config file work) or ``token_env`` (the name of an environment variable holding it). A ``token`` written in the
file itself is accepted only while the file is private to its owner (mode 600 or stricter): otherwise tunneltop
refuses to start and says how to fix it, because a config file is easily shared, backed up or made readable.

What each tunnel is expected to be (connectors, colos, origin IPs...): ``[expect]`` at the top level, for every
profile, and ``[profiles.NAME.expect]`` for one, each with ``[...expect.tunnels."GLOB"]`` overrides by tunnel name
(tunneltop/model/expect.py says which keys and how they combine).

Which profile: ``--profile NAME``, else ``TUNNELTOP_PROFILE``, else the file's ``default_profile``, else none (and a
missing file is then fine). Precedence for every setting: flags beat the environment, which beats the file.
Environment names: Cloudflare's own (``CLOUDFLARE_API_TOKEN``, ``CLOUDFLARE_EMAIL`` + ``CLOUDFLARE_API_KEY``,
``CLOUDFLARE_ACCOUNT_ID``, ``CLOUDFLARE_BASE_URL``), plus ``TUNNELTOP_INTERVAL`` and ``TUNNELTOP_BUDGET``.

One module (over ~400 lines): the config file's whole schema and its precedence rules in one place.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunneltop.api.auth import Credentials
from tunneltop.api.budget import DEFAULT_LIMIT_PER_MINUTE as DEFAULT_BUDGET
from tunneltop.api.gate import MAX_LIMIT_PER_MINUTE as MAX_BUDGET  # half the user's quota
from tunneltop.config import (
    ENV_ACCOUNT,
    ENV_BASE_URLS,
    ENV_KEY,
    ENV_TOKEN,
    ConfigError,
    read_token_file,
    resolve_base_url,
    resolve_credentials,
)
from tunneltop.model.expect import Expectations, ExpectError
from tunneltop.poll.planner import DEFAULT_INTERVAL

ENV_PROFILE = "TUNNELTOP_PROFILE"
ENV_INTERVAL = "TUNNELTOP_INTERVAL"
ENV_BUDGET = "TUNNELTOP_BUDGET"
ENV_XDG = "XDG_CONFIG_HOME"

MIN_INTERVAL, MAX_INTERVAL = 1.0, 3600.0

_TOP_KEYS = ("default_profile", "profiles", "keys", "expect")
_PROFILE_KEYS = (
    "account_id",
    "token_file",
    "token_env",
    "token",
    "interval",
    "budget_per_minute",
    "tunnels",
    "base_url",
    "expect",
    "local_metrics",
    "record",
)
_CREDENTIAL_KEYS = ("token_file", "token_env", "token")


@dataclass(frozen=True)
class Profile:
    """One profile as written in the file (no secret is read yet, except an inline ``token``)."""

    name: str | None = None
    path: Path | None = None
    account_id: str | None = None
    token_file: Path | None = None
    token_env: str | None = None
    token: str | None = field(default=None, repr=False)
    interval: float | None = None
    budget_per_minute: int | None = None
    tunnels: tuple[str, ...] = ()
    base_url: str | None = None
    local_metrics: str | None = None  # cloudflared's metrics server on this host, HOST:PORT ("off": don't look)
    record: Path | None = None  # the recording --watch writes to when no --record is given
    # The file's top-level [expect] and this profile's, combined (with no profile: the top-level one alone).
    expectations: Expectations = field(default_factory=Expectations)

    @property
    def label(self) -> str:
        return f"profile {self.name!r} ({self.path})" if self.name else "no profile"

    @property
    def has_credentials(self) -> bool:
        return any((self.token_file, self.token_env, self.token))


@dataclass
class RunSettings:
    """Everything a run needs, from flags, environment and profile, each setting from the strongest source."""

    credentials: Credentials
    base_url: str
    account_id: str | None
    interval: float
    budget_per_minute: int
    tunnels: list[str]
    profile: str | None = None
    notices: list[str] = field(default_factory=list)
    expectations: Expectations = field(default_factory=Expectations)


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME", "").strip()
    return Path(home) if home else Path.home()


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/tunneltop/config.toml``; ``~/.config`` when it is unset or not absolute (XDG spec)."""
    env = os.environ if env is None else env
    base = env.get(ENV_XDG, "").strip()
    root = Path(base) if base and Path(base).is_absolute() else _home(env) / ".config"
    return root / "tunneltop" / "config.toml"


def _where(name: str, key: str) -> str:
    return f"[profiles.{name}] {key}"


def _text(name: str, key: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{_where(name, key)} must be a non-empty string, not {_shown(value)}")
    return value.strip()


def _shown(value: object) -> str:
    kind = type(value).__name__
    text = repr(value)
    return f"{kind} {text}" if len(text) <= 40 else kind


def _path(value: str, config: Path, env: Mapping[str, str]) -> Path:
    if value == "~" or value.startswith("~/"):
        return _home(env) / value[2:]
    path = Path(value)
    return path if path.is_absolute() else config.parent / path


def parse_interval(value: object, where: str) -> float:
    """Seconds between polls: a number from 1 to 3600 (a string only from the environment)."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigError(f"{where} must be a number of seconds, not {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where} must be a number of seconds, not {_shown(value)}")
    if not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise ConfigError(f"{where} must be between {MIN_INTERVAL:g} and {MAX_INTERVAL:g} seconds, not {value:g}")
    return float(value)


def parse_budget(value: object, where: str) -> int:
    """tunneltop's own requests per minute: a whole number from 1 to MAX_BUDGET (half Cloudflare's limit)."""
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ConfigError(f"{where} must be a whole number of requests per minute, not {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be a whole number of requests per minute, not {_shown(value)}")
    if not 1 <= value <= MAX_BUDGET:
        raise ConfigError(
            f"{where} must be between 1 and {MAX_BUDGET} requests per minute (Cloudflare allows 1,200 per 5 "
            f"minutes per user, shared with the dashboard), not {value}"
        )
    return value


def _check_private(path: Path, name: str) -> None:
    """An inline token is accepted only in a file no one else can read."""
    if os.name == "nt":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path} holds a token ({_where(name, 'token')}) but other users can read the file (mode {mode:o}): "
            f"run chmod 600 {path}, or better, point token_file or token_env at it instead"
        )


def _expectations(path: Path, top: object, profile: tuple[str, object] | None = None) -> Expectations:
    """The top-level ``[expect]`` (when written) and the profile's, checked; errors name the file."""
    tables: list[tuple[object, str]] = [] if top is None else [(top, "[expect]")]
    if profile is not None and profile[1] is not None:
        tables.append((profile[1], f"[profiles.{profile[0]}.expect]"))
    try:
        return Expectations.parse(tables)
    except ExpectError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _profile(name: str, raw: object, path: Path, env: Mapping[str, str], top_expect: object = None) -> Profile:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [profiles.{name}] must be a table of settings, not {_shown(raw)}")
    unknown = [k for k in raw if k not in _PROFILE_KEYS]
    if unknown:
        key = unknown[0]
        import difflib

        near = difflib.get_close_matches(key, _PROFILE_KEYS, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else f" (known: {', '.join(_PROFILE_KEYS)})"
        raise ConfigError(f"{path}: unknown setting {_where(name, key)!r}{hint}")
    given = [k for k in _CREDENTIAL_KEYS if k in raw]
    if len(given) > 1:
        raise ConfigError(f"{path}: [profiles.{name}] names its token more than once ({', '.join(given)}): keep one")
    try:
        tunnels = raw.get("tunnels", [])
        if not isinstance(tunnels, list) or not all(isinstance(t, str) and t.strip() for t in tunnels):
            raise ConfigError(f"{_where(name, 'tunnels')} must be a list of tunnel names or ids, not {_shown(tunnels)}")
        profile = Profile(
            name=name,
            path=path,
            account_id=_text(name, "account_id", raw["account_id"]) if "account_id" in raw else None,
            token_file=_path(_text(name, "token_file", raw["token_file"]), path, env) if "token_file" in raw else None,
            token_env=_text(name, "token_env", raw["token_env"]) if "token_env" in raw else None,
            token=_text(name, "token", raw["token"]) if "token" in raw else None,
            interval=parse_interval(raw["interval"], _where(name, "interval")) if "interval" in raw else None,
            budget_per_minute=(
                parse_budget(raw["budget_per_minute"], _where(name, "budget_per_minute"))
                if "budget_per_minute" in raw
                else None
            ),
            tunnels=tuple(t.strip() for t in tunnels),
            base_url=_text(name, "base_url", raw["base_url"]) if "base_url" in raw else None,
            local_metrics=_text(name, "local_metrics", raw["local_metrics"]) if "local_metrics" in raw else None,
            record=_path(_text(name, "record", raw["record"]), path, env) if "record" in raw else None,
            expectations=_expectations(path, top_expect, (name, raw.get("expect"))),
        )
    except ConfigError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ConfigError(f"{path}: {exc}") from None
    if profile.token is not None:
        _check_private(path, name)
    return profile


def _read(path: Path) -> dict[str, Any]:
    import tomllib  # only with a config file: a run without one does not load the parser

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def load_profile(name: str | None = None, path: Path | None = None, env: Mapping[str, str] | None = None) -> Profile:
    """The profile to run with: ``name`` (``--profile``), else ``TUNNELTOP_PROFILE``, else ``default_profile``.

    With no name from any of those, or no config file and no name asked for, an empty ``Profile()``. A name that
    the file doesn't hold is an error that lists the profiles it does hold.
    """
    env = os.environ if env is None else env
    path = path if path is not None else config_path(env)
    asked = name or env.get(ENV_PROFILE, "").strip() or None
    how = "--profile" if name else ENV_PROFILE
    if not path.exists():
        if asked:
            raise ConfigError(f"{how} {asked!r}: there is no config file at {path}")
        return Profile()
    doc = _read(path)
    unknown = [k for k in doc if k not in _TOP_KEYS]
    if unknown:
        raise ConfigError(
            f"{path}: unknown top-level setting {unknown[0]!r} "
            "(known: default_profile, [keys], [expect] and [profiles.NAME] tables)"
        )
    profiles = doc.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: 'profiles' must hold [profiles.NAME] tables, not {_shown(profiles)}")
    default = doc.get("default_profile")
    if default is not None and (not isinstance(default, str) or not default.strip()):
        raise ConfigError(f"{path}: default_profile must be a profile's name, not {_shown(default)}")
    if not asked and default:
        asked, how = default.strip(), "default_profile"
    top_expect = doc.get("expect")
    if not asked:
        return Profile(path=path, expectations=_expectations(path, top_expect))
    if asked not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(f"{how} {asked!r}: no such profile in {path} (profiles there: {known})")
    return _profile(asked, profiles[asked], path, env, top_expect)


def load_keys(path: Path | None = None, env: Mapping[str, str] | None = None) -> dict[str, object]:
    """The config file's ``[keys]`` table (command id → key), as written; the live view checks the ids."""
    env = os.environ if env is None else env
    path = path if path is not None else config_path(env)
    if not path.exists():
        return {}
    keys = _read(path).get("keys", {})
    if not isinstance(keys, dict):
        raise ConfigError(f"{path}: [keys] must be a table of command = \"key\", not {_shown(keys)}")
    return keys


def _env_has_credentials(env: Mapping[str, str]) -> str | None:
    # An email alone is no credential (wrangler users often have one set): it doesn't hide a profile's token.
    for name in (ENV_TOKEN, ENV_KEY):
        if env.get(name, "").strip():
            return name
    return None


def _profile_credentials(profile: Profile, env: Mapping[str, str]) -> tuple[Credentials, list[str]]:
    where = f"profile {profile.name!r}"
    try:
        if profile.token_file is not None:
            token, notices = read_token_file(profile.token_file)
            return Credentials.token(token, source=f"token_file {profile.token_file} ({where})"), notices
        if profile.token_env is not None:
            value = env.get(profile.token_env, "").strip()
            if not value:
                raise ConfigError(
                    f"{where} reads its token from the environment variable {profile.token_env}, which is not set"
                )
            return Credentials.token(value, source=f"{profile.token_env} ({where})"), []
        assert profile.token is not None
        return Credentials.token(profile.token, source=f"{profile.path} ({where})"), []
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def merge_settings(
    profile: Profile,
    env: Mapping[str, str] | None = None,
    *,
    account: str | None = None,
    token_file: Path | None = None,
    interval: float | None = None,
    budget: int | None = None,
    tunnels: Sequence[str] = (),
) -> RunSettings:
    """Each setting from the strongest source that gives it: flags (the keyword arguments; None or empty when not
    given), then the environment, then the profile, then the default."""
    env = os.environ if env is None else env
    notices: list[str] = []
    # Credentials: --token-file, then the environment's, then the profile's.
    env_credential = _env_has_credentials(env)
    if token_file is not None or env_credential or not profile.has_credentials:
        try:
            credentials, found = resolve_credentials(env, token_file)
        except ConfigError as exc:
            if profile.has_credentials or token_file is not None or env_credential:
                raise
            raise ConfigError(f"{exc}; or name a token in a profile of {profile.path or config_path(env)}") from None
        notices += found
        if profile.has_credentials:
            winner = "--token-file" if token_file is not None else env_credential
            notices.append(f"using the credentials from {winner}; ignoring those of {profile.label}")
    else:
        credentials, found = _profile_credentials(profile, env)
        notices += found
    # Base URL: the environment's, then the profile's (checked the same way: https, or http only to loopback).
    if any(env.get(n, "").strip() for n in ENV_BASE_URLS) or profile.base_url is None:
        base_url = resolve_base_url(env)
    else:
        try:
            base_url = resolve_base_url({ENV_BASE_URLS[0]: profile.base_url})
        except ConfigError as exc:
            raise ConfigError(f"{profile.label}: base_url: {exc}") from None
    account_id = account or env.get(ENV_ACCOUNT, "").strip() or profile.account_id
    if interval is not None:
        seconds = parse_interval(interval, "--interval")
    elif env.get(ENV_INTERVAL, "").strip():
        seconds = parse_interval(env[ENV_INTERVAL], ENV_INTERVAL)
    else:
        seconds = profile.interval if profile.interval is not None else DEFAULT_INTERVAL
    if budget is not None:
        per_minute = parse_budget(budget, "--budget")
    elif env.get(ENV_BUDGET, "").strip():
        per_minute = parse_budget(env[ENV_BUDGET], ENV_BUDGET)
    else:
        per_minute = profile.budget_per_minute if profile.budget_per_minute is not None else DEFAULT_BUDGET
    return RunSettings(
        credentials=credentials,
        base_url=base_url,
        account_id=account_id or None,
        interval=seconds,
        budget_per_minute=per_minute,
        tunnels=list(tunnels) or list(profile.tunnels),
        profile=profile.name,
        notices=notices,
        expectations=profile.expectations,
    )
