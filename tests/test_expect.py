"""The config file's [expect]: every key, how tables combine per tunnel, and errors that name the key and the file."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from tunneltop.config import ConfigError
from tunneltop.model.expect import BUILT_IN, Expectations, ExpectError, TunnelExpect
from tunneltop.model.findings import Severity
from tunneltop.poll.target import Target
from tunneltop.profiles import load_profile, merge_settings

TOKEN = "tok_" + "a" * 36


def parse(*tables: tuple[dict, str]) -> Expectations:
    return Expectations.parse(list(tables))


def test_no_table_is_the_built_in_checks():
    expectations = Expectations()
    assert expectations.for_tunnel("web", "id") is BUILT_IN
    assert (BUILT_IN.min_colos, BUILT_IN.min_active_per_connector, BUILT_IN.severity) == (2, 4, Severity.WARNING)
    assert (BUILT_IN.min_connectors, BUILT_IN.max_versions, BUILT_IN.origin_ips, BUILT_IN.colos) == (None,) * 4
    assert BUILT_IN.required is False and BUILT_IN.ignore == frozenset()


def test_every_key():
    raw = {
        "min_connectors": 2,
        "min_colos": 3,
        "min_active_per_connector": 2,
        "max_versions": 1,
        "origin_ips": ["203.0.113.0/24", "2001:db8::1", "198.51.100.7"],
        "colos": ["dfw", "LAX"],
        "required": True,
        "severity": "critical",
        "ignore": ["old_release"],
    }
    expect = parse((raw, "[expect]")).for_tunnel("web", "id")
    assert expect == TunnelExpect(
        min_connectors=2,
        min_colos=3,
        min_active_per_connector=2,
        max_versions=1,
        origin_ips=(
            ipaddress.ip_network("203.0.113.0/24"),
            ipaddress.ip_network("2001:db8::1/128"),
            ipaddress.ip_network("198.51.100.7/32"),
        ),
        colos=frozenset({"DFW", "LAX"}),
        required=True,
        severity=Severity.CRITICAL,
        ignore=frozenset({"old_release"}),
    )


def test_later_wins_key_by_key_top_then_profile_then_globs_in_file_order():
    top = {
        "min_connectors": 1,
        "min_colos": 2,
        "tunnels": {"prod-*": {"min_connectors": 3, "severity": "critical"}, "prod-web": {"min_connectors": 4}},
    }
    profile = {"min_colos": 1, "tunnels": {"prod-w*": {"min_connectors": 5}}}
    expectations = parse((top, "[expect]"), (profile, "[profiles.prod.expect]"))
    web = expectations.for_tunnel("prod-web", "id1")
    assert (web.min_connectors, web.min_colos, web.severity) == (5, 1, Severity.CRITICAL)
    api = expectations.for_tunnel("prod-api", "id2")
    assert (api.min_connectors, api.min_colos, api.severity) == (3, 1, Severity.CRITICAL)
    dev = expectations.for_tunnel("dev", "id3")
    assert (dev.min_connectors, dev.min_colos, dev.severity) == (1, 1, Severity.WARNING)
    # Globs are case-sensitive (tunnel names are), match the whole name, and may name a tunnel by its id.
    assert expectations.for_tunnel("PROD-web", "id4").min_connectors == 1
    assert parse(({"tunnels": {"id5": {"required": True}}}, "[expect]")).for_tunnel(None, "id5").required


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"min_conectors": 2}, "unknown setting 'min_conectors' in [expect]; did you mean 'min_connectors'?"),
        ({"zzz": 1}, "unknown setting 'zzz' in [expect] (known: min_connectors"),
        ({"min_connectors": "2"}, "[expect] min_connectors must be a whole number, 0 or more, not str '2'"),
        ({"min_colos": -1}, "[expect] min_colos must be a whole number, 0 or more, not int -1"),
        ({"min_active_per_connector": True}, "[expect] min_active_per_connector must be a whole number"),
        ({"max_versions": 0}, "[expect] max_versions must be a whole number, 1 or more, not int 0"),
        ({"min_connectors": 1.5}, "[expect] min_connectors must be a whole number, 0 or more, not float 1.5"),
        ({"origin_ips": "203.0.113.0/24"}, "[expect] origin_ips must be a list of non-empty strings"),
        ({"origin_ips": ["203.0.113.0/33"]}, "[expect] origin_ips: '203.0.113.0/33' is not an IP address or CIDR"),
        ({"colos": ["DFW", ""]}, "[expect] colos must be a list of non-empty strings"),
        ({"required": "yes"}, "[expect] required must be true or false, not str 'yes'"),
        ({"severity": "fatal"}, '[expect] severity must be "warning" or "critical", not str \'fatal\''),
        ({"ignore": ["old_releases"]}, "[expect] ignore: no check is called 'old_releases' (checks: required"),
        ({"tunnels": ["prod-*"]}, '[expect] tunnels must hold [expect.tunnels."GLOB"] tables'),
        ({"tunnels": {"prod-*": 3}}, '[expect.tunnels."prod-*"] must be a table of expectations, not int 3'),
        ({"tunnels": {"prod-*": {"min_connectors": "x"}}}, '[expect.tunnels."prod-*"] min_connectors must be'),
        ({"tunnels": {"a": {"tunnels": {}}}}, "unknown setting 'tunnels' in [expect.tunnels.\"a\"]"),
        ({"tunnels": {" ": {}}}, "[expect] tunnels: a tunnel glob cannot be empty"),
    ],
)
def test_wrong_keys_and_types_name_the_table_and_key(raw, message):
    with pytest.raises(ExpectError) as err:
        parse((raw, "[expect]"))
    assert message in str(err.value)


def test_a_table_that_is_no_table():
    with pytest.raises(ExpectError, match=r"\[expect\] must be a table of expectations, not int 3"):
        parse((3, "[expect]"))


# -- through the config file --------------------------------------------------------------------------------------


def write(home: Path, text: str) -> Path:
    path = home / ".config" / "tunneltop" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


CONFIG = """
default_profile = "prod"

[expect]
min_connectors = 2
min_colos = 2

[expect.tunnels."prod-*"]
min_connectors = 3
origin_ips = ["203.0.113.0/24"]

[profiles.prod]
token_env = "PROD_TOKEN"

[profiles.prod.expect]
required = true

[profiles.prod.expect.tunnels."prod-db"]
min_connectors = 4

[profiles.dev]
token_env = "DEV_TOKEN"
"""


def test_the_files_expect_reaches_the_profile_the_settings_and_the_target(tmp_path: Path):
    home = tmp_path / "home"
    write(home, CONFIG)
    env = {"HOME": str(home), "PROD_TOKEN": TOKEN, "DEV_TOKEN": TOKEN}
    profile = load_profile(None, None, env)
    expectations = profile.expectations
    db, web, other = (expectations.for_tunnel(n, n) for n in ("prod-db", "prod-web", "dev-x"))
    assert (db.min_connectors, db.required, db.origin_ips) == (4, True, (ipaddress.ip_network("203.0.113.0/24"),))
    assert (web.min_connectors, web.required) == (3, True)
    assert (other.min_connectors, other.required, other.origin_ips) == (2, True, None)
    settings = merge_settings(profile, env)
    assert settings.expectations is expectations
    target = Target(settings.base_url, settings.credentials, expectations=settings.expectations)
    assert target.expectations is expectations
    # Another profile: the top-level [expect] alone.
    dev = load_profile("dev", None, env).expectations
    assert (dev.for_tunnel("prod-db", "x").min_connectors, dev.for_tunnel("prod-db", "x").required) == (3, False)
    assert Target("https://x", None).expectations == Expectations()


def test_without_a_profile_the_top_level_expect_still_applies(tmp_path: Path):
    home = tmp_path / "home"
    write(home, "[expect]\nmin_connectors = 2\n")
    profile = load_profile(None, None, {"HOME": str(home)})
    assert profile.name is None
    assert profile.expectations.for_tunnel("a", "a").min_connectors == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[expect]\nmin_conectors = 2\n", "unknown setting 'min_conectors' in [expect]; did you mean"),
        ('[expect.tunnels."x"]\nmin_colos = "2"\n', '[expect.tunnels."x"] min_colos must be a whole number'),
        (
            '[profiles.p]\ntoken_env = "T"\n[profiles.p.expect]\nseverity = 1\n',
            '[profiles.p.expect] severity must be "warning" or "critical", not int 1',
        ),
        (
            '[profiles.p]\ntoken_env = "T"\n[profiles.p.expect.tunnels."db"]\nrequired = 1\n',
            '[profiles.p.expect.tunnels."db"] required must be true or false',
        ),
        ("expect = 3\n", "[expect] must be a table of expectations, not int 3"),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path: Path, text: str, message: str):
    home = tmp_path / "home"
    path = write(home, text)
    with pytest.raises(ConfigError) as err:
        load_profile("p" if "profiles.p" in text else None, None, {"HOME": str(home)})
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)
