"""Shell completion: the scripts `tunneltop --completion bash|zsh` prints, driven through a real bash."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tunneltop.cli import build_parser
from tunneltop.completion import PROFILES_FLAG, bash_script, describe, profile_names, zsh_script

BIN = Path(sys.executable).parent
TUNNELTOP = BIN / "tunneltop"
BASH = shutil.which("bash")
ZSH = shutil.which("zsh")

needs_bash = pytest.mark.skipif(BASH is None, reason="bash is not installed")
needs_entry_point = pytest.mark.skipif(
    not TUNNELTOP.exists(), reason=f"no tunneltop console script beside {sys.executable} (pip install -e .)"
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDFLARE_", "TUNNELTOP_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def _bash(script: str, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    assert BASH is not None
    return subprocess.run(
        [BASH, "--norc", "--noprofile", "-c", script, "bash", *args],
        capture_output=True,
        text=True,
        env=_env(**env),
        cwd=cwd,
    )


# Completes the command line given as arguments (the last one is the word under the cursor).
_COMPLETE = '_tunneltop; printf "%s\\n" "${COMPREPLY[@]}"'
_LOAD = "source <(tunneltop --completion bash) || exit 9; "
_SET = 'COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; '


def complete(*words: str, cwd: Path | None = None, **env: str) -> list[str]:
    """What `tunneltop --completion bash`, sourced into bash, offers for this command line."""
    done = _bash(_LOAD + _SET + _COMPLETE, *words, cwd=cwd, **env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return [line for line in done.stdout.splitlines() if line]


def complete_with(script: str, *words: str) -> list[str]:
    done = _bash(script + "\n" + _SET + _COMPLETE, *words)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


# -- bash --------------------------------------------------------------------------------------------------------


@needs_bash
@needs_entry_point
def test_bash_script_passes_bash_n(tmp_path):
    out = subprocess.run([TUNNELTOP, "--completion", "bash"], capture_output=True, text=True, env=_env(), check=True)
    path = tmp_path / "tunneltop.bash"
    path.write_text(out.stdout)
    done = subprocess.run([BASH, "-n", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@needs_bash
@needs_entry_point
def test_sourcing_registers_the_function_and_out_completes_to_output():
    done = _bash(_LOAD + "complete -p tunneltop")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "complete -F _tunneltop tunneltop"
    assert complete("tunneltop", "--out") == ["--output"]


@needs_bash
@needs_entry_point
@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("tunneltop", "-o", ""), ["table", "json", "jsonl"]),
        (("tunneltop", "--output", "js"), ["json", "jsonl"]),
        (("tunneltop", "--output", "=", "jsonl"), ["jsonl"]),  # --output=jsonl: bash splits at the =
        (("tunneltop", "--output", "="), ["table", "json", "jsonl"]),  # --output=
        (("tunneltop", "--completion", ""), ["bash", "zsh"]),
        (("tunneltop", "--budget", ""), []),  # a number: nothing to offer, not the flags
        (("tunneltop", "-n", ""), []),
        (("tunneltop", "--once", "--de"), ["--demo"]),
        (("tunneltop", "--ver"), ["--version"]),
        (("tunneltop", "web"), []),  # tunnel names are not known offline
    ],
)
def test_bash_completes(words, expected):
    assert complete(*words) == expected


@needs_bash
@needs_entry_point
def test_every_visible_flag_is_offered_and_the_hidden_helper_is_not():
    offered = complete("tunneltop", "-")
    flags, _ = describe(build_parser())
    assert offered == [option for flag in flags for option in flag.options]
    assert {"-V", "--version", "--completion", "-o", "--output", "--profile"} <= set(offered)
    assert PROFILES_FLAG not in offered


@needs_bash
@needs_entry_point
def test_paths_complete_to_files_and_to_directories(tmp_path):
    (tmp_path / "exports").mkdir()
    (tmp_path / "prod.token").write_text("x")
    assert sorted(complete("tunneltop", "--token-file", "", cwd=tmp_path)) == ["exports", "prod.token"]
    assert complete("tunneltop", "--export-dir", "", cwd=tmp_path) == ["exports"]
    assert complete("tunneltop", "--token-file", "pr", cwd=tmp_path) == ["prod.token"]


CONFIG = """\
default_profile = "prod"

[profiles.prod]
account_id = "0123456789abcdef0123456789abcdef"

[profiles.staging]
interval = 10

[profiles."$(touch PWNED)"]
interval = 10

[profiles."two words"]
interval = 10
"""


def _config(tmp_path: Path, text: str = CONFIG) -> Path:
    config = tmp_path / "xdg" / "tunneltop" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(text)
    return tmp_path / "xdg"


def test_profile_names_are_the_plain_words_of_the_config_file(tmp_path):
    xdg = _config(tmp_path)
    assert profile_names({"XDG_CONFIG_HOME": str(xdg), "HOME": str(tmp_path)}) == ["prod", "staging"]


@pytest.mark.parametrize("text", ["this is not toml [", "profiles = 3", "\xff\xfe", ""])
def test_profile_names_of_a_broken_or_empty_file_are_none(tmp_path, text):
    xdg = _config(tmp_path, text)
    assert profile_names({"XDG_CONFIG_HOME": str(xdg), "HOME": str(tmp_path)}) == []


def test_profile_names_without_a_config_file_are_none(tmp_path):
    assert profile_names({"XDG_CONFIG_HOME": str(tmp_path / "nowhere"), "HOME": str(tmp_path)}) == []


@needs_bash
@needs_entry_point
def test_profile_completes_from_the_config_file_at_completion_time(tmp_path):
    xdg = _config(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    assert complete("tunneltop", "--profile", "", cwd=work, XDG_CONFIG_HOME=str(xdg)) == ["prod", "staging"]
    assert complete("tunneltop", "--profile", "st", cwd=work, XDG_CONFIG_HOME=str(xdg)) == ["staging"]
    # The command as typed runs the helper, so a venv's tunneltop completes that venv's way.
    assert complete(str(TUNNELTOP), "--profile", "p", cwd=work, XDG_CONFIG_HOME=str(xdg)) == ["prod"]
    assert not (work / "PWNED").exists()
    assert not (tmp_path / "PWNED").exists()


@needs_entry_point
def test_the_hidden_helper_says_nothing_and_succeeds_on_a_broken_file(tmp_path):
    xdg = _config(tmp_path, "[profiles.prod\n")
    done = subprocess.run(
        [TUNNELTOP, PROFILES_FLAG], capture_output=True, text=True, env=_env(XDG_CONFIG_HOME=str(xdg))
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


@needs_bash
def test_a_new_flag_completes_without_touching_the_completion_code():
    parser = build_parser()
    parser.add_argument("--frobnicate", choices=("one", "two words", "$(touch PWNED)"), help="[x]: it's new")
    script = bash_script(parser)
    assert complete_with(script, "tunneltop", "--frob") == ["--frobnicate"]
    assert complete_with(script, "tunneltop", "--frobnicate", "") == ["one", "two words", "$(touch PWNED)"]
    assert complete_with(script, "tunneltop", "--frobnicate", "t") == ["two words"]
    assert "--frobnicate=[\\[x\\]\\: it'\\''s new]:frobnicate:(one two\\ words" in zsh_script(parser)


# -- zsh -------------------------------------------------------------------------------------------------------


def _zsh_specs(script: str) -> list[str]:
    start = script.index("  args=(\n") + len("  args=(\n")
    return script[start : script.index("\n  )\n", start)].splitlines()


def test_zsh_specs_are_one_quoted_word_each_for_every_visible_flag():
    parser = build_parser()
    script = zsh_script(parser, "0.0")
    assert script.startswith("#compdef tunneltop\n")
    specs = _zsh_specs(script)
    words = [shlex.split(line) for line in specs]
    assert all(len(w) == 1 for w in words), specs
    flags, positionals = describe(parser)
    options = [option for flag in flags for option in flag.options]
    assert len(specs) == len(options) + len(positionals)
    for option, (spec,) in zip(options, words, strict=False):
        assert option in spec
    output = "(--output -o)-o+[headless output\\: table or json (imply --once), jsonl (implies --watch)]"
    assert [output + ":output:(table json jsonl)"] in words
    assert [
        "--profile=[a \\[profiles.NAME\\] of the config file ($XDG_CONFIG_HOME/tunneltop/config.toml)]"
        ":name:_tunneltop_profiles"
    ] in words
    assert ["(- *)-V[print the version and exit]"] in words
    assert PROFILES_FLAG not in "".join(specs)


@pytest.mark.skipif(ZSH is None, reason="zsh is not installed (the zsh script is then checked only by the tests above)")
@needs_entry_point
def test_zsh_script_passes_zsh_n(tmp_path):
    out = subprocess.run([TUNNELTOP, "--completion", "zsh"], capture_output=True, text=True, env=_env(), check=True)
    path = tmp_path / "_tunneltop"
    path.write_text(out.stdout)
    assert ZSH is not None
    done = subprocess.run([ZSH, "-n", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@needs_entry_point
@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_prints_the_script_and_exits_0_whatever_else_is_on_the_line(shell):
    done = subprocess.run(
        [TUNNELTOP, "--once", "--completion", shell], capture_output=True, text=True, env=_env()
    )
    assert done.returncode == 0, done.stderr
    assert "tunneltop --completion " + shell in done.stdout
    assert done.stderr == ""


def test_an_unknown_shell_is_a_usage_error(capsys):
    from tunneltop.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--completion", "fish"])
    assert info.value.code == 64
    assert "invalid choice: 'fish'" in capsys.readouterr().err
