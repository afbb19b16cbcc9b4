"""Profiles in the TOML config file, and flags > environment > file for every setting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tunneltop.config import ConfigError
from tunneltop.profiles import (
    DEFAULT_BUDGET,
    DEFAULT_INTERVAL,
    Profile,
    config_path,
    load_profile,
    merge_settings,
)

TOKEN = "tok_" + "a" * 36
ACCOUNT = "0123456789abcdef0123456789abcdef"

CONFIG = """
default_profile = "prod"

[profiles.prod]
account_id = "0123456789abcdef0123456789abcdef"
token_file = "prod.token"
interval = 10
budget_per_minute = 30
tunnels = ["web-prod", "api"]
base_url = "https://api.example.test/client/v4"

[profiles.staging]
token_env = "STAGING_CF_TOKEN"
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


@pytest.fixture
def config(home: Path) -> Path:
    path = write(home / ".config" / "tunneltop" / "config.toml", CONFIG, 0o644)
    write(path.parent / "prod.token", TOKEN + "\n")
    return path


def env_of(home: Path, **more: str) -> dict[str, str]:
    return {"HOME": str(home), **more}


# -- where the file is -------------------------------------------------------------------------------------------


def test_the_file_lives_in_the_xdg_config_dir(home: Path, tmp_path: Path) -> None:
    assert config_path({"HOME": str(home)}) == home / ".config" / "tunneltop" / "config.toml"
    xdg = tmp_path / "xdg"
    assert config_path({"HOME": str(home), "XDG_CONFIG_HOME": str(xdg)}) == xdg / "tunneltop" / "config.toml"
    # A relative XDG_CONFIG_HOME is invalid by the spec and ignored.
    assert config_path({"HOME": str(home), "XDG_CONFIG_HOME": "rel"}) == home / ".config" / "tunneltop" / "config.toml"


def test_no_file_and_no_profile_asked_for_is_fine(home: Path) -> None:
    assert load_profile(None, None, env_of(home)) == Profile()


def test_a_profile_asked_for_without_a_file_says_where_it_looked(home: Path) -> None:
    with pytest.raises(ConfigError, match=r"--profile 'prod': there is no config file at .*config\.toml"):
        load_profile("prod", None, env_of(home))


# -- reading profiles --------------------------------------------------------------------------------------------


def test_the_default_profile_with_every_setting(config: Path, home: Path) -> None:
    profile = load_profile(None, None, env_of(home))
    assert profile == Profile(
        name="prod",
        path=config,
        account_id=ACCOUNT,
        token_file=config.parent / "prod.token",  # relative to the config file
        interval=10.0,
        budget_per_minute=30,
        tunnels=("web-prod", "api"),
        base_url="https://api.example.test/client/v4",
    )


def test_a_named_profile_and_the_environment_variable(config: Path, home: Path) -> None:
    assert load_profile("staging", config, env_of(home)).token_env == "STAGING_CF_TOKEN"
    assert load_profile(None, config, env_of(home, TUNNELTOP_PROFILE="staging")).name == "staging"
    assert load_profile("prod", config, env_of(home, TUNNELTOP_PROFILE="staging")).name == "prod"  # the flag wins


def test_an_unknown_profile_lists_the_known_ones(config: Path, home: Path) -> None:
    with pytest.raises(ConfigError, match=r"--profile 'dev': no such profile in .* \(profiles there: prod, staging\)"):
        load_profile("dev", config, env_of(home))
    with pytest.raises(ConfigError, match="TUNNELTOP_PROFILE 'qa'"):
        load_profile(None, config, env_of(home, TUNNELTOP_PROFILE="qa"))


def test_a_default_profile_that_does_not_exist_is_named(home: Path) -> None:
    path = write(home / "c.toml", 'default_profile = "gone"\n[profiles.prod]\n')
    with pytest.raises(ConfigError, match=r"default_profile 'gone': no such profile .* \(profiles there: prod\)"):
        load_profile(None, path, env_of(home))


def test_no_default_and_no_name_uses_no_profile(home: Path) -> None:
    path = write(home / "c.toml", '[profiles.prod]\naccount_id = "x"\n')
    assert load_profile(None, path, env_of(home)) == Profile(path=path)


def test_home_relative_token_file(home: Path) -> None:
    path = write(home / "c.toml", '[profiles.p]\ntoken_file = "~/secrets/cf.token"\n')
    assert load_profile("p", path, env_of(home)).token_file == home / "secrets" / "cf.token"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("interval = 'ten'", r"\[profiles\.p\] interval must be a number of seconds, not 'ten'"),
        ("interval = 0.5", r"\[profiles\.p\] interval must be between 1 and 3600 seconds, not 0\.5"),
        ("interval = true", r"\[profiles\.p\] interval must be a number of seconds, not bool True"),
        ("budget_per_minute = 12.5", r"budget_per_minute must be a whole number of requests per minute, not float"),
        ("budget_per_minute = 500", r"budget_per_minute must be between 1 and 120 requests per minute"),
        ("budget_per_minute = 121", r"budget_per_minute must be between 1 and 120 requests per minute .*, not 121$"),
        ("budget_per_minute = 0", r"budget_per_minute must be between 1 and 120"),
        ("tunnels = 'web'", r"\[profiles\.p\] tunnels must be a list of tunnel names or ids, not str 'web'"),
        ("tunnels = ['web', 3]", r"tunnels must be a list of tunnel names or ids"),
        ("account_id = 42", r"\[profiles\.p\] account_id must be a non-empty string, not int 42"),
        ("base_url = ''", r"\[profiles\.p\] base_url must be a non-empty string"),
        ("intervall = 5", r"unknown setting '\[profiles\.p\] intervall'; did you mean 'interval'\?"),
        ("colour = 'red'", r"unknown setting '\[profiles\.p\] colour' \(known: account_id, token_file"),
        ("token_file = 'a'\ntoken_env = 'B'", r"names its token more than once \(token_file, token_env\): keep one"),
    ],
)
def test_bad_settings_say_which_key_and_why(home: Path, body: str, message: str) -> None:
    path = write(home / "c.toml", f"[profiles.p]\n{body}\n")
    with pytest.raises(ConfigError, match=message) as caught:
        load_profile("p", path, env_of(home))
    assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[profiles.p\n", r"is not valid TOML: .*line 1"),
        ("profiles = 3\n", r"'profiles' must hold \[profiles\.NAME\] tables"),
        ("default_profile = 3\n", r"default_profile must be a profile's name"),
        ("colour = 1\n", r"unknown top-level setting 'colour'"),
        ("[profiles]\np = 3\n", r"\[profiles\.p\] must be a table of settings, not int 3"),
    ],
)
def test_a_broken_file_says_where_and_what(home: Path, text: str, message: str) -> None:
    path = write(home / "c.toml", text)
    with pytest.raises(ConfigError, match=message):
        load_profile("p", path, env_of(home))


def test_unreadable_and_non_utf8_files(home: Path) -> None:
    binary = home / "b.toml"
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_bytes(b"\xff\xfe[profiles.p]\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_profile("p", binary, env_of(home))
    directory = home / "dir.toml"
    directory.mkdir()
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_profile("p", directory, env_of(home))


# -- an inline token ---------------------------------------------------------------------------------------------


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_an_inline_token_only_in_a_private_file(home: Path) -> None:
    text = f'[profiles.p]\ntoken = "{TOKEN}"\n'
    private = write(home / "private.toml", text, 0o600)
    assert load_profile("p", private, env_of(home)).token == TOKEN
    shared = write(home / "shared.toml", text, 0o644)
    with pytest.raises(ConfigError, match=r"other users can read the file \(mode 644\): run chmod 600") as caught:
        load_profile("p", shared, env_of(home))
    assert TOKEN not in str(caught.value)


def test_a_profile_never_shows_its_token() -> None:
    assert TOKEN not in repr(Profile(name="p", token=TOKEN))


# -- merging: flags > environment > file -------------------------------------------------------------------------


def test_the_file_alone(config: Path, home: Path) -> None:
    settings = merge_settings(load_profile(None, config, env_of(home)), env_of(home))
    assert settings.credentials.scheme == "token"
    assert "prod.token" in settings.credentials.source and "profile 'prod'" in settings.credentials.source
    assert settings.account_id == ACCOUNT
    assert settings.base_url == "https://api.example.test/client/v4"
    assert (settings.interval, settings.budget_per_minute) == (10.0, 30)
    assert settings.tunnels == ["web-prod", "api"]
    assert settings.profile == "prod"
    assert settings.notices == []


def test_the_environment_beats_the_file(config: Path, home: Path) -> None:
    env = env_of(
        home,
        CLOUDFLARE_API_TOKEN=TOKEN,
        CLOUDFLARE_ACCOUNT_ID="f" * 32,
        CLOUDFLARE_BASE_URL="http://127.0.0.1:8080/client/v4",
        TUNNELTOP_INTERVAL="20",
        TUNNELTOP_BUDGET="45",
    )
    settings = merge_settings(load_profile(None, config, env), env)
    assert settings.credentials.source == "CLOUDFLARE_API_TOKEN"
    assert settings.account_id == "f" * 32
    assert settings.base_url == "http://127.0.0.1:8080/client/v4"
    assert (settings.interval, settings.budget_per_minute) == (20.0, 45)
    assert settings.notices == [
        f"using the credentials from CLOUDFLARE_API_TOKEN; ignoring those of profile 'prod' ({config})"
    ]


def test_flags_beat_the_environment(config: Path, home: Path, tmp_path: Path) -> None:
    flag_token = write(tmp_path / "flag.token", TOKEN)
    env = env_of(home, CLOUDFLARE_API_TOKEN=TOKEN, CLOUDFLARE_ACCOUNT_ID="f" * 32, TUNNELTOP_INTERVAL="20")
    settings = merge_settings(
        load_profile(None, config, env),
        env,
        account="e" * 32,
        token_file=flag_token,
        interval=2.5,
        budget=90,
        tunnels=["db"],
    )
    assert settings.credentials.source == f"--token-file {flag_token}"
    assert settings.account_id == "e" * 32
    assert (settings.interval, settings.budget_per_minute) == (2.5, 90)
    assert settings.tunnels == ["db"]
    assert any("ignoring those of profile 'prod'" in n for n in settings.notices)


def test_defaults_without_any_file(home: Path) -> None:
    env = env_of(home, CLOUDFLARE_API_TOKEN=TOKEN)
    settings = merge_settings(load_profile(None, None, env), env)
    assert (settings.interval, settings.budget_per_minute) == (DEFAULT_INTERVAL, DEFAULT_BUDGET) == (5.0, 60)
    assert settings.base_url == "https://api.cloudflare.com/client/v4"
    assert settings.account_id is None and settings.tunnels == [] and settings.profile is None


def test_a_profiles_token_env(config: Path, home: Path) -> None:
    env = env_of(home, STAGING_CF_TOKEN=TOKEN)
    settings = merge_settings(load_profile("staging", config, env), env)
    assert settings.credentials.source == "STAGING_CF_TOKEN (profile 'staging')"
    with pytest.raises(ConfigError, match="environment variable STAGING_CF_TOKEN, which is not set"):
        merge_settings(load_profile("staging", config, env_of(home)), env_of(home))


def test_an_email_alone_in_the_environment_does_not_hide_the_profiles_token(config: Path, home: Path) -> None:
    env = env_of(home, CLOUDFLARE_EMAIL="ops@example.com")
    assert merge_settings(load_profile(None, config, env), env).credentials.scheme == "token"


def test_no_credentials_anywhere_mentions_the_config_file(home: Path) -> None:
    with pytest.raises(ConfigError, match=r"no credentials: .*or name a token in a profile of .*config\.toml"):
        merge_settings(Profile(), env_of(home))


def test_a_missing_token_file_is_an_error_naming_it(home: Path) -> None:
    path = write(home / "c.toml", '[profiles.p]\ntoken_file = "nope.token"\n')
    with pytest.raises(ConfigError, match=r"cannot read token file .*nope\.token"):
        merge_settings(load_profile("p", path, env_of(home)), env_of(home))


def test_a_profiles_base_url_is_checked_like_the_environments(home: Path) -> None:
    path = write(home / "c.toml", '[profiles.p]\nbase_url = "http://api.example.test"\n')
    env = env_of(home, CLOUDFLARE_API_TOKEN=TOKEN)
    with pytest.raises(ConfigError, match=r"profile 'p' .*base_url: refusing plain http:// for api\.example\.test"):
        merge_settings(load_profile("p", path, env), env)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TUNNELTOP_INTERVAL": "soon"}, r"TUNNELTOP_INTERVAL must be a number of seconds, not 'soon'"),
        ({"TUNNELTOP_BUDGET": "lots"}, r"TUNNELTOP_BUDGET must be a whole number of requests per minute"),
        ({"TUNNELTOP_BUDGET": "1000"}, r"TUNNELTOP_BUDGET must be between 1 and 120"),
        ({"TUNNELTOP_BUDGET": "121"}, r"TUNNELTOP_BUDGET must be between 1 and 120"),
    ],
)
def test_bad_environment_values_name_the_variable(home: Path, env: dict[str, str], message: str) -> None:
    full = env_of(home, CLOUDFLARE_API_TOKEN=TOKEN, **env)
    with pytest.raises(ConfigError, match=message):
        merge_settings(Profile(), full)


def test_bad_flag_values_name_the_flag(home: Path) -> None:
    env = env_of(home, CLOUDFLARE_API_TOKEN=TOKEN)
    # At most 120 per minute: half the user's quota (the dashboard and other tools share the rest).
    with pytest.raises(ConfigError, match="--budget must be between 1 and 120 requests per minute"):
        merge_settings(Profile(), env, budget=241)
    with pytest.raises(ConfigError, match=r"--budget must be between 1 and 120 requests per minute .*, not 121$"):
        merge_settings(Profile(), env, budget=121)
    assert merge_settings(Profile(), env, budget=120).budget_per_minute == 120
    with pytest.raises(ConfigError, match="--interval must be between 1 and 3600"):
        merge_settings(Profile(), env, interval=0.1)
