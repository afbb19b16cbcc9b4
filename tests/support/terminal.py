"""A real process on a real pseudo-terminal, and waits on what it does: a marker on its screen, its terminal
closing, its exit. None has a deadline of its own (pytest-timeout is the hang guard): on a loaded machine a wait
only takes longer."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import termios
import time
from pathlib import Path


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


def _read(master: int) -> bytes:
    """The next bytes the process writes (waiting for them), or b"" once its terminal has closed."""
    select.select([master], [], [])
    try:
        return os.read(master, 65536)
    except OSError:  # EIO: every process on the terminal has gone
        return b""


def read_until(master: int, marker: bytes) -> bytes:
    """Everything the process writes to its terminal until ``marker`` shows (or the terminal closes)."""
    out = b""
    while marker not in out:
        chunk = _read(master)
        if not chunk:
            break
        out += chunk
    return out


def read_to_close(master: int) -> bytes:
    """Everything the process writes to its terminal until the terminal closes (every process on it has gone)."""
    out = b""
    while chunk := _read(master):
        out += chunk
    return out


def drain(master: int, seconds: float) -> bytes:
    """What the process writes in the next ``seconds`` (pacing keys, never deciding a test)."""
    out = b""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([master], [], [], left)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


def settle(pid: int, master: int, quiet: float = 0.05, window: float = 0.5) -> None:
    """Until the process is idle (its start-up done: the first polls, the frames that draw them), reading what it
    writes meanwhile; so the CPU counted afterwards is what the test provokes. However long a slow machine takes."""
    while True:
        before = cpu_seconds(pid)
        drain(master, window)
        if cpu_seconds(pid) - before < quiet:
            return


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_exit(pid: int) -> tuple[float, int, float]:
    """Wait for the process to exit: (seconds it took, its exit code, its total CPU seconds)."""
    began = time.monotonic()
    _, status, usage = os.wait4(pid, 0)
    return time.monotonic() - began, os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
