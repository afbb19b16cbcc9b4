"""`tunneltop --help` (environment, examples, keys, exit statuses; readable at 80 columns) and `-V`."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tunneltop import __version__, config, profiles, report
from tunneltop.cli import EPILOG, build_parser, main

README = Path(__file__).resolve().parent.parent / "README.md"


def _help(capsys, monkeypatch, columns: int = 80) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


def test_help_names_the_environment_variables(capsys, monkeypatch):
    out = _help(capsys, monkeypatch)
    assert "CLOUDFLARE_BASE_URL" in out and "TUNNELTOP_BUDGET" in out
    # Every name config.py and profiles.py read, so a new one cannot be left out of --help.
    names = [config.ENV_TOKEN, config.ENV_KEY, config.ENV_EMAIL, config.ENV_ACCOUNT, *config.ENV_BASE_URLS]
    names += [profiles.ENV_PROFILE, profiles.ENV_INTERVAL, profiles.ENV_BUDGET, profiles.ENV_XDG]
    missing = [name for name in names if name not in out]
    assert not missing
    assert "$XDG_CONFIG_HOME/tunneltop/config.toml" in out


def test_help_gives_examples_keys_and_exit_statuses(capsys, monkeypatch):
    out = _help(capsys, monkeypatch)
    assert "examples:" in out
    assert "  tunneltop web-prod api-staging " in out
    assert "tunneltop --once -o json | jq ." in out
    assert "tunneltop --watch | jq -c" in out
    keys = out[out.index("keys in the live view") :]
    for key, what in [
        ("?", "help"),
        ("/", "filter"),
        ("q", "quit"),
        ("e", "event log"),
        ("r", "refresh"),
        ("p", "pause"),
        ("v", "switch views"),
        ("enter", "drill"),
        ("esc", "back"),
    ]:
        assert re.search(rf"(^|\s){re.escape(key)}\s+{what}", keys), key
    for status in (report.EXIT_OK, report.EXIT_DEGRADED, report.EXIT_DOWN, report.EXIT_UNKNOWN, report.EXIT_USAGE):
        assert re.search(rf"^ +{status} \S", out, re.MULTILINE), status


def test_help_reads_at_80_columns(capsys, monkeypatch):
    assert max(map(len, EPILOG.splitlines())) <= 78  # argparse wraps the rest at COLUMNS - 2
    out = _help(capsys, monkeypatch, 80)
    assert [line for line in out.splitlines() if len(line) > 80] == []


def test_help_lists_the_new_flags(capsys, monkeypatch):
    out = _help(capsys, monkeypatch)
    assert "--version, -V" in out
    assert "--completion SHELL" in out
    assert "--completion-profiles" not in out  # the helper of the completion scripts stays hidden


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(capsys, flag):
    with pytest.raises(SystemExit) as info:
        main([flag])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"tunneltop {__version__}\n"


def test_version_from_the_command_line():
    done = subprocess.run([sys.executable, "-m", "tunneltop", "-V"], capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"tunneltop {__version__}\n", "")


def test_every_flag_is_in_the_readme_flag_table():
    table = README.read_text(encoding="utf-8").split("| flag | meaning |", 1)[1].split("\n\n", 1)[0]
    missing = [
        option
        for action in build_parser()._actions
        if action.help != argparse.SUPPRESS and action.dest != "help"
        for option in action.option_strings
        if f"`{option}" not in table and f"({option})" not in table and f"(`{option}`)" not in table
    ]
    assert not missing
