"""Terminal loss, tested on a real pseudo-terminal: the real ``tunneltop --demo`` process draws its screen, then its
terminal goes away. It must exit within 2 s, and must not spin the CPU while it goes.

Two ways a terminal goes:

- SIGHUP: what the kernel sends the session leader when the terminal hangs up (an SSH connection dropping, a
  terminal window closing), and what a shell passes on to its jobs;
- no SIGHUP at all: tunneltop is not the session leader (run from a wrapper, a script, a shell that was killed),
  so all it sees is its stdin hung up. Textual's input thread then reads EOF in a busy loop.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and Linux pty semantics"),
    pytest.mark.slow,  # real processes on pseudo-terminals: run with pytest -m slow (CI does)
]

EXIT_WITHIN = 2.0  # seconds, as the issue states
# CPU the process may use from losing its terminal to its exit: a clean shutdown takes a small fraction of this,
# while a busy loop burns all of it (measured before the fix: ~1.0 s of CPU in ~1.1 s).
CPU_ALLOWED = 0.5
APP = [sys.executable, "-m", "tunneltop", "--demo"]
# Session leader that ignores SIGHUP and runs tunneltop as its child: tunneltop then gets no SIGHUP when the terminal
# hangs up. It reports the child's exit status and total CPU time to a file.
WRAPPER = """
import os, signal, sys
signal.signal(signal.SIGHUP, signal.SIG_IGN)
pid = os.fork()
if pid == 0:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1] + ".tmp", "w") as out:
    out.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_utime + usage.ru_stime}")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
"""


def spawn(argv: list[str], cols: int = 120, rows: int = 40, extra_env: dict[str, str] | None = None) -> tuple[int, int]:
    """``argv`` as the session leader of a new pty; returns (pid, master fd)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDFLARE_", "TEXTUAL"))}
    env.update(TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows), **(extra_env or {}))
    pid, master = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    return pid, master


def read_until(master: int, marker: bytes, limit: float = 15.0) -> bytes:
    """Everything the process writes to its terminal until ``marker`` shows (or ``limit`` seconds)."""
    out = b""
    deadline = time.monotonic() + limit
    while marker not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


def drain(master: int, seconds: float) -> bytes:
    out = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.02)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_exit(pid: int, limit: float) -> tuple[float | None, int | None, float | None]:
    """(seconds until it exited, exit code, its total CPU seconds) or Nones if it did not exit within ``limit``."""
    began = time.monotonic()
    while time.monotonic() - began < limit:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return time.monotonic() - began, os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime
        time.sleep(0.005)
    return None, None, None


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def started(master: int) -> bytes:
    screen = read_until(master, b"web-prod")
    assert b"web-prod" in screen, f"tunneltop did not draw its screen: {screen[-500:]!r}"
    return screen


def test_sighup_exits_within_2_s_without_spinning() -> None:
    pid, master = spawn(APP)
    try:
        started(master)
        before = cpu_seconds(pid)
        os.kill(pid, signal.SIGHUP)
        took, code, cpu = wait_exit(pid, EXIT_WITHIN)
        assert took is not None, "still running 2 s after SIGHUP"
        assert code == 0
        assert cpu - before < CPU_ALLOWED, f"used {cpu - before:.2f} s of CPU after SIGHUP"
    finally:
        kill(pid)
        os.close(master)


def test_terminal_closed_under_the_session_leader_exits_within_2_s() -> None:
    """Closing the terminal's master side (what sshd does when the connection drops)."""
    pid, master = spawn(APP)
    try:
        started(master)
        before = cpu_seconds(pid)
        os.close(master)
        master = -1
        took, code, cpu = wait_exit(pid, EXIT_WITHIN)
        assert took is not None, "still running 2 s after its terminal closed"
        assert code == 0
        assert cpu - before < CPU_ALLOWED, f"used {cpu - before:.2f} s of CPU after the terminal closed"
    finally:
        kill(pid)
        if master >= 0:
            os.close(master)


def test_stdin_hung_up_without_sighup_exits_within_2_s_without_spinning(tmp_path: Path) -> None:
    report = tmp_path / "exit"
    wrapper, master = spawn([sys.executable, "-c", WRAPPER, str(report), *APP])
    app = None
    try:
        started(master)
        children = Path(f"/proc/{wrapper}/task/{wrapper}/children").read_text().split()
        assert len(children) == 1
        app = int(children[0])
        before = cpu_seconds(app)
        os.close(master)  # stdin hangs up: reads return EOF; the wrapper, not tunneltop, is the session leader
        master = -1
        began = time.monotonic()
        while not report.exists() and time.monotonic() - began < EXIT_WITHIN:
            time.sleep(0.005)
        assert report.exists(), "still running 2 s after its stdin hung up"
        code, cpu = report.read_text().split()
        assert int(code) == 0
        assert float(cpu) - before < CPU_ALLOWED, f"spun: used {float(cpu) - before:.2f} s of CPU after the hang-up"
    finally:
        if app is not None:
            kill(app)
        kill(wrapper)
        if master >= 0:
            os.close(master)


def test_sigterm_restores_the_terminal_and_exits_0() -> None:
    """kill -TERM leaves the terminal as q does: the alternate screen left, mouse tracking off, the cursor shown
    (it used to exit 143 at once, leaving all three for the user to undo with `reset`)."""
    pid, master = spawn(APP)
    try:
        started(master)
        os.kill(pid, signal.SIGTERM)
        tail = read_until(master, b"\x1b[?1049l", limit=30.0)
        tail += drain(master, 0.3)
        took, code, _ = wait_exit(pid, 30.0)
        assert took is not None and code == 0, f"exit status {code}"
        assert b"\x1b[?1049l" in tail, "still in the alternate screen"
        assert b"\x1b[?1000l" in tail, "mouse tracking left on"
        assert b"\x1b[?25h" in tail, "cursor left hidden"
    finally:
        kill(pid)
        os.close(master)


def test_ctrl_c_quits_like_q() -> None:
    pid, master = spawn(APP)
    try:
        started(master)
        os.write(master, b"\x03")
        read_until(master, b"\x1b[?1049l", limit=30.0)
        took, code, _ = wait_exit(pid, 30.0)
        assert took is not None and code == 0, f"ctrl+c did not quit (status {code})"
    finally:
        kill(pid)
        os.close(master)
