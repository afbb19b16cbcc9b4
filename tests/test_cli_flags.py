"""Flag combinations of the CLI that choose between the live view, --once and --watch."""

from __future__ import annotations

import pytest

from tunneltop import cli


@pytest.mark.parametrize(
    "argv",
    [
        ["--watch", "--once"],
        ["--watch", "-o", "json"],
        ["-o", "jsonl", "--once"],
        ["--ghost-seconds", "-1"],
        ["--output", "yaml"],
    ],
)
def test_conflicting_or_bad_flags_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--demo", *argv])
    assert exit_info.value.code == 64
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--watch"], ["-o", "jsonl"], ["--watch", "-o", "jsonl"]])
def test_watch_and_jsonl_choose_the_stream(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import tunneltop.stream

    calls: list[float] = []
    monkeypatch.setattr(
        tunneltop.stream, "run_watch", lambda target, interval, budget_per_minute: calls.append(interval) or 0
    )
    assert cli.main(["--demo", "--interval", "2", *argv]) == 0
    assert calls == [2.0]


def test_live_view_gets_its_options(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import tunneltop.ui.app

    seen: dict[str, object] = {}

    def fake_run_app(target, **options):
        seen.update(options, demo=target.demo)
        return 0

    monkeypatch.setattr(tunneltop.ui.app, "run_app", fake_run_app)
    assert cli.main(["--demo", "--ghost-seconds", "5", "--bell", "--export-dir", str(tmp_path), "-n", "3"]) == 0
    assert seen == {
        "interval": 3.0,
        "ghost_seconds": 5.0,
        "bell": True,
        "export_dir": tmp_path,
        "budget_per_minute": 60,
        "demo": True,
    }


def test_profile_file_env_and_flags_in_order(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import tunneltop.ui.app

    config = tmp_path / "tunneltop" / "config.toml"
    config.parent.mkdir()
    token = tmp_path / "prod.token"
    token.write_text("profile-token-123\n")
    token.chmod(0o600)
    config.write_text(
        f'default_profile = "prod"\n[profiles.prod]\naccount_id = "{"a" * 32}"\ntoken_file = "{token}"\n'
        'interval = 10\nbudget_per_minute = 30\ntunnels = ["web-prod"]\n'
    )
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    seen: dict[str, object] = {}

    def fake_run_app(target, **options):
        seen.update(options, account=target.account_id, refs=target.refs, creds=repr(target.credentials))
        return 0

    monkeypatch.setattr(tunneltop.ui.app, "run_app", fake_run_app)
    assert cli.main([]) == 0
    assert (seen["interval"], seen["budget_per_minute"], seen["account"]) == (10.0, 30, "a" * 32)
    assert seen["refs"] == ["web-prod"] and "profile-token-123" not in str(seen["creds"])
    monkeypatch.setenv("TUNNELTOP_INTERVAL", "7")  # the environment beats the file
    assert cli.main([]) == 0 and seen["interval"] == 7.0
    assert cli.main(["-n", "2", "--budget", "90", "api-staging"]) == 0  # flags beat both
    assert (seen["interval"], seen["budget_per_minute"], seen["refs"]) == (2.0, 90, ["api-staging"])


def test_unknown_profile_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "tunneltop").mkdir()
    (tmp_path / "tunneltop" / "config.toml").write_text("[profiles.prod]\ninterval = 5\n")
    assert cli.main(["--profile", "staging", "--once"]) == 3
    err = capsys.readouterr().err
    assert "staging" in err and "prod" in err


@pytest.mark.parametrize("value", ["0", "241", "many"])
def test_budget_out_of_range_is_a_usage_error(value: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--demo", "--budget", value])
    assert exit_info.value.code == 64


def test_once_on_an_account_larger_than_the_budget_reads_only_the_list(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["--demo", "--once", "--budget", "3", "-o", "json"])
    out = capsys.readouterr().out
    import json

    document = json.loads(out)
    assert any("not fetched" in p and "budget of 3" in p for p in document["problems"])
    assert all(t["clients"] is None or t["status"] == "inactive" for t in document["tunnels"])
    assert {t["health"] for t in document["tunnels"]} >= {"healthy", "degraded", "down"}  # from the list's status
    assert code == 2
