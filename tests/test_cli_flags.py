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
    monkeypatch.setattr(tunneltop.stream, "run_watch", lambda target, interval: calls.append(interval) or 0)
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
    assert seen == {"interval": 3.0, "ghost_seconds": 5.0, "bell": True, "export_dir": tmp_path, "demo": True}
