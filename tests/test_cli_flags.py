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
    # --once (or -o table/json) is a monitoring plugin: its usage errors are UNKNOWN (3).
    once = "--once" in argv or argv[-2:] == ["-o", "json"]
    assert exit_info.value.code == (3 if once else 64)
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--watch"], ["-o", "jsonl"], ["--watch", "-o", "jsonl"]])
def test_watch_and_jsonl_choose_the_stream(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import tunneltop.stream

    calls: list[tuple[float, int]] = []
    # The budget travels on the target (target.budget_per_minute), not as an argument of its own.
    monkeypatch.setattr(
        tunneltop.stream, "run_watch", lambda target, interval: calls.append((interval, target.budget_per_minute)) or 0
    )
    assert cli.main(["--demo", "--interval", "2", "--budget", "45", *argv]) == 0
    assert calls == [(2.0, 45)]


def test_live_view_gets_its_options(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import tunneltop.ui.app

    seen: dict[str, object] = {}

    def fake_run_app(target, **options):
        seen.update(options, demo=target.demo, budget_per_minute=target.budget_per_minute)
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
        "keymap": {},
        "recorder": None,
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
        seen.update(
            options,
            account=target.account_id,
            refs=target.refs,
            creds=repr(target.credentials),
            budget_per_minute=target.budget_per_minute,
        )
        assert "budget_per_minute" not in options  # the budget travels on the target
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


@pytest.mark.parametrize("value", ["0", "121", "241", "many"])
def test_budget_out_of_range_is_a_usage_error(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    # At most 120 per minute: half of the user's quota, the rest is the dashboard's and other tools'.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--demo", "--budget", value])
    assert exit_info.value.code == 64
    assert "--budget" in capsys.readouterr().err


def test_budget_of_120_is_the_most_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert cli.main(["--demo", "--once", "--budget", "120", "-o", "json"]) == 2
    assert json.loads(capsys.readouterr().out)["api"]["limit_per_minute"] == 120


def test_once_on_an_account_larger_than_the_budget_reads_only_what_fits(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    # A budget of 3: the tunnel list, and the connections of two tunnels (worst status first); the others are
    # listed in not_fetched, with the list's status as their health.
    code = cli.main(["--demo", "--once", "--budget", "3", "-o", "json"])
    document = json.loads(capsys.readouterr().out)
    tunnels = {t["name"]: t for t in document["tunnels"]}
    assert document["api"]["limit_per_minute"] == 3
    assert document["api"]["used_per_minute"] <= 3
    running = {n for n, t in tunnels.items() if t["status"] != "inactive"}
    fetched = {n for n in running if tunnels[n]["clients"] is not None}
    assert fetched == {"batch-etl", "api-staging"}
    assert sorted(document["not_fetched"]) == sorted(tunnels[n]["id"] for n in running - fetched)
    for name in running - fetched:
        assert tunnels[name]["clients"] is None and tunnels[name]["error"] is None
    assert {t["health"] for t in document["tunnels"]} >= {"healthy", "degraded", "down"}  # from the list's status
    assert code == 2


def test_once_with_a_budget_of_one_reads_only_the_list(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    code = cli.main(["--demo", "--once", "--budget", "1", "-o", "json"])
    document = json.loads(capsys.readouterr().out)
    assert document["api"] == {"used_per_minute": 1, "limit_per_minute": 1, "blocked_for": 0.0, "processes": 1}
    running = [t for t in document["tunnels"] if t["status"] != "inactive"]
    assert running and all(t["clients"] is None for t in running)
    assert document["not_fetched"] == [t["id"] for t in running]
    assert code == 2


def test_once_table_says_on_each_tunnels_line_that_it_was_not_fetched(capsys: pytest.CaptureFixture[str]) -> None:
    from tunneltop.report import NOT_FETCHED

    code = cli.main(["--demo", "--once", "--budget", "3"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("TUNNELTOP CRITICAL - ")  # the plugin's status line
    assert lines[2].endswith("  (API 3/3 per min)")
    for name in ("web-prod", "k8s-ingress-eu", "home-lab"):
        [at] = [i for i, line in enumerate(lines) if line.startswith(f"{name}  ")]
        assert lines[at + 1] == f"  {NOT_FETCHED}"
    for name in ("api-staging", "batch-etl", "office-router-new"):
        [at] = [i for i, line in enumerate(lines) if line.startswith(f"{name}  ")]
        assert NOT_FETCHED not in lines[at + 1]
    assert code == 2
