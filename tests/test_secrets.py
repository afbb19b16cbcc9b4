"""The token never shows: not on the terminal, not in output, not in a debug log, not in exception text, not in a
screenshot or an export, even when a broken proxy echoes it back. A token file other users can read draws a warning.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import sys
import traceback
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from tests.support.clock import no_sleep
from tests.support.live import ANSWERED, HOME, SIZE, TOKEN, WEB, live_app, make_fake, wait_until
from tests.support.terminal import drain, kill, read_to_close, read_until, spawn, wait_exit
from tests.support.ui import make_app
from tunneltop.api.auth import Credentials
from tunneltop.api.client import CloudflareClient, RetryPolicy
from tunneltop.api.errors import ApiError
from tunneltop.cli import main
from tunneltop.demo.cfapi import FakeCloudflare, Fault
from tunneltop.demo.server import LoopbackServer
from tunneltop.demo.simulator import DEMO_ACCOUNT_ID
from tunneltop.poll.target import Target

SECRET = TOKEN.encode()
# A proxy or a broken endpoint that quotes the Authorization header back in its error message.
ECHO = Fault.error(400, 6003, f"Invalid request headers: Authorization: Bearer {TOKEN}")


@pytest.fixture
def fake() -> FakeCloudflare:
    return make_fake()


@pytest.fixture
def once_env(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> LoopbackServer:
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", server.base_url)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    original = Target.client

    def client(self: Target, **options: object):
        options.update(timeout=httpx.Timeout(0.25), request_deadline=0.5, sleep=no_sleep)
        return original(self, **options)

    monkeypatch.setattr(Target, "client", client)
    return server


def token_file(directory: Path, mode: int = 0o600) -> Path:
    path = directory / "cf-token"
    path.write_text(TOKEN + "\n")
    path.chmod(mode)
    return path


def all_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses a Linux pty")
@pytest.mark.slow  # a real process end to end: run with pytest -m slow (CI does)
def test_the_real_program_never_shows_or_writes_the_token(
    fake: FakeCloudflare, server: LoopbackServer, tmp_path: Path
) -> None:
    """On a pty, with Textual's debug log on, a proxy echoing the token, a screenshot (w) and an export (x)."""
    secret_file = token_file(tmp_path)
    exports = tmp_path / "exports"
    debug_log = tmp_path / "textual.log"
    pid, master = spawn(
        [
            sys.executable,
            "-m",
            "tunneltop",
            "--token-file",
            str(secret_file),
            "--export-dir",
            str(exports),
            "-n",
            "1",
            WEB,
            HOME,
        ],
        extra_env={"CLOUDFLARE_BASE_URL": server.base_url, "TEXTUAL_LOG": str(debug_log)},
    )
    try:
        screen = read_until(master, b"web-prod")
        fake.inject(ECHO, times=10**6)
        screen += read_until(master, b"[redacted]")
        for key in (b"w", b"x", b"e"):  # screenshot, export, event log
            os.write(master, key)
            screen += drain(master, 0.15)
        os.write(master, b"q")
        screen += read_to_close(master)  # until it exits and the terminal closes
        _, code, _ = wait_exit(pid)
    finally:
        kill(pid)
        os.close(master)
    assert code == 0
    assert b"Bearer [redacted]" in screen, "the echoed error did reach the screen, scrubbed"
    assert SECRET not in screen
    written = sorted(p.name for p in exports.iterdir())
    assert any(n.endswith(".svg") for n in written) and any(n.endswith(".json") for n in written), written
    assert SECRET not in all_bytes(exports)
    log = debug_log.read_bytes()
    assert b"PollFailed" in log or b"poll" in log.lower(), "the debug log was written"
    assert SECRET not in log


def test_no_log_record_holds_the_token(
    fake: FakeCloudflare, once_env: LoopbackServer, caplog: pytest.LogCaptureFixture, capsys
) -> None:
    """Every logger at DEBUG (httpx, httpcore, asyncio and ours) through good runs and every failure."""
    caplog.set_level(logging.DEBUG)
    faults = [None, ECHO, *(f for n, (f, _) in ANSWERED.items() if n != "hang"), Fault.rate_limited(300)]
    for index, fault in enumerate(faults):
        fake.clear_faults()
        fake.reset_rate_limit()
        if fault is not None:
            fake.inject(fault, times=10**6)
        main(["--once", "-o", ("table", "json")[index % 2]])
    out, err = capsys.readouterr()
    assert "HTTP Request: GET" in caplog.text, "debug logging was on"
    assert "[redacted]" in err
    assert TOKEN not in caplog.text
    assert TOKEN not in out + err


async def test_exception_text_never_holds_the_token(fake: FakeCloudflare, server: LoopbackServer) -> None:
    credentials = Credentials.token(TOKEN, source="test")
    faults = {**{n: f for n, (f, _) in ANSWERED.items()}, "echo": ECHO, "429": Fault.rate_limited(300)}
    raised: list[BaseException] = []
    async with CloudflareClient(
        credentials,
        server.base_url,
        timeout=httpx.Timeout(0.25),
        request_deadline=0.5,
        retry=RetryPolicy(retries=0),
        sleep=no_sleep,
    ) as client:
        for fault in faults.values():
            fake.clear_faults()
            client.blocked_until = None
            fake.inject(fault, times=10**6)
            with pytest.raises(ApiError) as info:
                await client.list_tunnels(DEMO_ACCOUNT_ID)
            raised.append(info.value)
        for holder in (client, credentials, Target(server.base_url, credentials)):
            assert TOKEN not in repr(holder) and TOKEN not in str(holder)
    base_url = server.base_url
    server.stop()  # refused
    async with CloudflareClient(credentials, base_url, retry=RetryPolicy(retries=0)) as client:
        with pytest.raises(ApiError) as info:
            await client.list_tunnels(DEMO_ACCOUNT_ID)
        raised.append(info.value)
    assert len(raised) == len(faults) + 1
    assert "[redacted]" in str(raised[list(faults).index("echo")])
    for exc in raised:
        printed = "".join(traceback.format_exception(exc))
        assert TOKEN not in printed and TOKEN not in repr(exc) and TOKEN not in repr(exc.args)
        assert all(TOKEN not in e.message for e in exc.errors)
    with pytest.raises(TypeError):
        pickle.dumps(credentials)


async def test_screen_screenshot_and_export_of_the_live_app(
    fake: FakeCloudflare, server: LoopbackServer, tmp_path: Path
) -> None:
    app = live_app(server.base_url, export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.poll_count >= 1)  # the first poll
        fake.inject(ECHO, times=10**6)
        await wait_until(pilot, lambda: app.last_error is not None)  # the echoed error
        assert "Bearer [redacted]" in app.status.message
        await pilot.press("w", "x")
        await pilot.pause()
        assert TOKEN not in app.export_screenshot()
        assert all(TOKEN not in e.describe() for e in app.session.log)
    assert len(list(tmp_path.iterdir())) == 4  # the SVG, the JSON and two CSVs
    assert SECRET not in all_bytes(tmp_path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o666])
def test_a_token_file_other_users_can_read_draws_a_warning(mode: int, once_env, monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN")
    path = token_file(tmp_path, mode)
    code = main(["--once", "--token-file", str(path), "web-prod"])
    out, err = capsys.readouterr()
    assert code == 0
    assert f"warning: token file {path} is readable by other users (mode {mode:o}); run: chmod 600 {path}" in err
    assert TOKEN not in out + err


def test_a_private_token_file_draws_no_warning(once_env, monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN")
    path = token_file(tmp_path, 0o600)
    code = main(["--once", "--token-file", str(path), "web-prod"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert TOKEN not in out


@pytest.mark.parametrize("pasted", ["\u2019", "\u2013", "\u00a0"])  # a curly quote, an en dash, a no-break space
def test_a_token_with_a_pasted_non_ascii_character_is_a_clear_error(pasted: str, once_env, monkeypatch, capsys):
    token = TOKEN[:10] + pasted + TOKEN[10:]
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", token)
    code = main(["--once"])
    out, err = capsys.readouterr()
    assert code == 3
    assert out.startswith("TUNNELTOP UNKNOWN - the credential from CLOUDFLARE_API_TOKEN is empty or has spaces")
    assert err.startswith("tunneltop: the credential from CLOUDFLARE_API_TOKEN is empty or has spaces")
    assert token not in out and TOKEN[:10] not in out
    assert "Traceback" not in err and token not in err and TOKEN[:10] not in err


async def test_a_crash_report_shows_no_local_variables() -> None:
    # Textual's own report prints every frame's locals; a frame of the client holds the request headers.
    app, _ = make_app()

    def crash() -> None:
        authorization = f"Bearer {TOKEN}"  # what a client frame holds
        raise RuntimeError("boom " + str(len(authorization)))

    printed = io.StringIO()
    app.error_console = Console(file=printed, width=200)  # where Textual prints the report at exit
    with pytest.raises(RuntimeError, match="boom"):
        async with app.run_test() as pilot:
            app.call_later(crash)
            await pilot.pause()
    report = printed.getvalue()
    assert "RuntimeError" in report and "boom" in report
    assert TOKEN not in report and "locals" not in report
