"""The shared request budget: one file-locked ledger per credential, consulted by every tunneltop process.

Every wait here is on an event (a child's line on a pipe, a child's exit), never on the wall clock; the ledger's
own clock is the injected fake one, or a constant in the child processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clock import FakeClock
from tunneltop.api.ledger import (
    WINDOW,
    Ledger,
    LedgerUnavailable,
    LocalLedger,
    SharedLedger,
    ledger_dir,
    ledger_name,
)

IDENTITY = "api-token:Xk9-s3cr3t-t0ken-value-for-tests|account:0123456789abcdef"
SECRET = "Xk9-s3cr3t-t0ken-value-for-tests"
OTHER_PID = 1  # init: always alive (os.kill(1, 0) succeeds as root, PermissionError otherwise)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "tunneltop" / ledger_name(IDENTITY)


@pytest.fixture
def umask() -> Iterator[None]:
    """A permissive umask, so only the ledger's own chmods can make the modes strict."""
    old = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(old)


def dead_pid() -> int:
    """A pid that surely belongs to no process: a child that has already exited and been reaped."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    return int(done.stdout)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


# --- where the ledger lives -------------------------------------------------------------------------------------------


def test_ledger_dir_prefers_an_absolute_runtime_dir() -> None:
    env = {"XDG_RUNTIME_DIR": "/run/user/1000", "XDG_STATE_HOME": "/s", "HOME": "/h"}
    assert ledger_dir(env) == Path("/run/user/1000/tunneltop")


def test_ledger_dir_falls_back_to_state_home_then_home() -> None:
    assert ledger_dir({"XDG_RUNTIME_DIR": "relative/run", "XDG_STATE_HOME": "/s", "HOME": "/h"}) == Path("/s/tunneltop")
    assert ledger_dir({"XDG_STATE_HOME": "", "HOME": "/h"}) == Path("/h/.local/state/tunneltop")
    assert ledger_dir({"XDG_STATE_HOME": "relative", "HOME": "/h"}) == Path("/h/.local/state/tunneltop")
    assert ledger_dir({}) == Path.home() / ".local" / "state" / "tunneltop"


def test_ledger_name_is_a_domain_separated_hash_with_nothing_of_the_identity() -> None:
    name = ledger_name(IDENTITY)
    assert re.fullmatch(r"budget-[0-9a-f]{32}\.json", name)
    assert name == ledger_name(IDENTITY)
    assert name != ledger_name(IDENTITY + "x")
    expected = hashlib.sha256(b"tunneltop-ledger-v1\0" + IDENTITY.encode()).hexdigest()[:32]
    assert name == f"budget-{expected}.json"
    assert hashlib.sha256(IDENTITY.encode()).hexdigest()[:32] not in name  # not the bare hash of the token
    for part in re.split(r"[:|-]", IDENTITY):
        assert len(part) < 4 or part not in name
    assert ledger_name("\udcff lone surrogate from os.environ")  # never raises on undecodable environment bytes


# --- permissions and secrecy ------------------------------------------------------------------------------------------


def test_new_directory_is_0700_and_file_0600_whatever_the_umask(path: Path, clock: FakeClock, umask: None) -> None:
    SharedLedger(path, clock=clock).close()
    assert mode(path.parent) == 0o700
    assert mode(path) == 0o600


def test_looser_existing_directory_is_left_but_the_file_is_still_0600(tmp_path: Path, clock: FakeClock) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    directory.chmod(0o755)
    loose = directory / ledger_name(IDENTITY)
    loose.write_text("")
    loose.chmod(0o644)
    SharedLedger(loose, clock=clock).reserve(10)
    assert mode(directory) == 0o755
    assert mode(loose) == 0o600


def test_the_identity_is_never_written(path: Path, clock: FakeClock) -> None:
    ledger = SharedLedger(path, clock=clock)
    assert ledger.reserve(10)
    ledger.block_until(clock() + 30)
    ledger.view()
    ledger.close()
    written = [p.name for p in path.parent.parent.rglob("*")] + [path.read_text()]
    for text in written:
        assert IDENTITY not in text
        assert SECRET not in text
    assert os.listdir(path.parent) == [ledger_name(IDENTITY)]


# --- the shared budget ------------------------------------------------------------------------------------------------


def test_reserve_refuses_the_limit_plus_first_send_across_processes(path: Path, clock: FakeClock) -> None:
    a = SharedLedger(path, pid=os.getpid(), clock=clock)
    b = SharedLedger(path, pid=OTHER_PID, clock=clock)
    assert a.reserve(3)
    clock.advance(1)
    assert b.reserve(3)
    assert a.reserve(3)
    assert not b.reserve(3)
    assert not a.reserve(3)
    seen = a.view()
    assert seen.sent == (1000.0, 1001.0, 1001.0)
    assert (seen.own, b.view().own) == (2, 1)
    clock.advance(WINDOW - 1)  # exactly WINDOW (a minute and the gate's slack) after the first send: it has left
    assert b.reserve(3)
    assert not a.reserve(3)
    clock.advance(1.5)  # past the window for the rest
    assert a.reserve(3)
    assert a.reserve(3)
    assert a.view().sent == (1000 + WINDOW, 1001.5 + WINDOW, 1001.5 + WINDOW)


def test_reserve_of_several_is_all_or_nothing(path: Path, clock: FakeClock) -> None:
    ledger = SharedLedger(path, clock=clock)
    assert ledger.reserve(5, count=3)
    assert not ledger.reserve(5, count=3)
    assert ledger.view().own == 3
    assert ledger.reserve(5, count=2)
    assert not ledger.reserve(5)
    with pytest.raises(ValueError):
        ledger.reserve(5, count=0)
    assert not ledger.reserve(0)


def test_a_block_is_shared_and_a_later_one_stays(path: Path, clock: FakeClock) -> None:
    a = SharedLedger(path, pid=os.getpid(), clock=clock)
    b = SharedLedger(path, pid=OTHER_PID, clock=clock)
    a.block_until(clock() + 30)
    b.block_until(clock() + 10)  # an earlier end does not shorten the block already recorded
    assert b.view().blocked_until == 1030.0
    assert not b.reserve(100)
    assert not a.reserve(100)
    clock.advance(30)
    assert a.view().blocked_until is None
    assert b.reserve(100)
    a.block_until(clock() - 5)  # already over: nothing to record
    assert b.view().blocked_until is None


def test_an_over_long_block_is_capped_and_an_absurd_recorded_one_ignored(path: Path, clock: FakeClock) -> None:
    ledger = SharedLedger(path, clock=clock)
    ledger.block_until(clock() + 7200)
    assert ledger.view().blocked_until == clock() + 3600
    ledger.block_until(float("inf"))
    assert ledger.view().blocked_until == clock() + 3600
    path.write_text(json.dumps({"version": 1, "sent": [], "procs": {}, "blocked_until": clock() + 86400}))
    assert ledger.view().blocked_until is None
    assert ledger.reserve(1)


def test_dead_and_stale_processes_are_pruned_and_senders_counted(path: Path, clock: FakeClock) -> None:
    gone = SharedLedger(path, pid=dead_pid(), clock=clock)
    assert gone.reserve(10)
    me = SharedLedger(path, pid=os.getpid(), clock=clock)
    seen = me.view()
    assert seen.processes == 1  # the dead pid's registration is gone...
    assert seen.senders == 2  # ...but its send still spends the budget
    assert seen.own == 0
    other = SharedLedger(path, pid=OTHER_PID, clock=clock)
    assert other.reserve(10)
    assert (me.view().processes, me.view().senders) == (2, 3)
    clock.advance(601)  # other has not been heard from in over 10 minutes
    assert me.view().processes == 1
    assert me.view().senders == 1  # every send has left the window; this process always counts


def test_close_unregisters_is_idempotent_and_never_raises(path: Path, clock: FakeClock, tmp_path: Path) -> None:
    me = SharedLedger(path, pid=os.getpid(), clock=clock)
    other = SharedLedger(path, pid=OTHER_PID, clock=clock)
    assert me.view().processes == 2
    other.close()
    other.close()
    assert me.view().processes == 1
    assert other.view().processes == 2  # counts itself, but a view after close does not register it again
    assert me.view().processes == 1
    other.register()
    assert me.view().processes == 2
    path.unlink()
    path.parent.rmdir()
    path.parent.parent.rmdir()
    path.parent.parent.write_text("the directory's place is now a file")
    other.close()  # unusable ledger: still no exception


def test_view_refreshes_a_stale_registration(path: Path, clock: FakeClock) -> None:
    me = SharedLedger(path, pid=os.getpid(), clock=clock)
    other = SharedLedger(path, pid=OTHER_PID, clock=clock)
    for _ in range(12):  # 12 x 55 s: past the 10-minute expiry, kept alive only by view()'s heartbeat
        clock.advance(55)
        other.view()
    assert me.view().processes == 2
    assert json.loads(path.read_text())["procs"].keys() == {str(os.getpid()), str(OTHER_PID)}


# --- bad file contents ------------------------------------------------------------------------------------------------

GOOD = {"version": 1, "sent": [[990.0, 1]], "procs": {"1": 990.0}, "blocked_until": None}
BAD_CONTENTS = [
    b"",
    b"garbage",
    b'{"version": 1, "sent": [[10',  # truncated mid-write
    json.dumps(GOOD).encode() + b"]]}",  # trailing bytes after a complete object
    b"\xff\xfe\x00binary",
    b"[" * 100_000,
    b"[]",
    b"null",
    json.dumps({**GOOD, "version": 2}).encode(),
    json.dumps({**GOOD, "version": True}).encode(),
    json.dumps({**GOOD, "sent": {"a": 1}}).encode(),
    json.dumps({**GOOD, "sent": [["990", 1]]}).encode(),
    json.dumps({**GOOD, "sent": [[990.0, "1"]]}).encode(),
    json.dumps({**GOOD, "sent": [[990.0, True]]}).encode(),
    json.dumps({**GOOD, "sent": [[990.0, 0]]}).encode(),  # pid 0 would signal our own process group
    json.dumps({**GOOD, "sent": [[990.0, -1]]}).encode(),
    json.dumps({**GOOD, "sent": [[990.0, 1, 2]]}).encode(),
    json.dumps({**GOOD, "procs": {"init": 990.0}}).encode(),
    json.dumps({**GOOD, "procs": {"-1": 990.0}}).encode(),
    json.dumps({**GOOD, "procs": {"1": None}}).encode(),
    json.dumps({**GOOD, "procs": []}).encode(),
    json.dumps({**GOOD, "blocked_until": "soon"}).encode(),
    b'{"version": 1, "sent": [[NaN, 1]], "procs": {}, "blocked_until": null}',
    b'{"version": 1, "sent": [[1e400, 1]], "procs": {}, "blocked_until": null}',
    b'{"version": 1, "sent": [], "procs": {}, "blocked_until": Infinity}',
    b'{"version": 1, "sent": [[990, 99999999999999999999999999999]], "procs": {}, "blocked_until": null}',
]


@pytest.mark.parametrize("contents", BAD_CONTENTS, ids=range(len(BAD_CONTENTS)))
def test_bad_contents_are_an_empty_ledger_and_get_rewritten(path: Path, clock: FakeClock, contents: bytes) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(contents)
    ledger = SharedLedger(path, clock=clock)
    assert ledger.view().sent == ()
    assert ledger.reserve(1)
    assert json.loads(path.read_text())["sent"] == [[1000.0, os.getpid()]]


def test_future_dated_and_expired_sends_are_dropped(path: Path, clock: FakeClock) -> None:
    now = clock()
    path.parent.mkdir(parents=True)
    sends = [[now + 3600, 1], [now + 4, 1], [now - 10, 1], [now - WINDOW - 1, 1], [now + 5.5, 1]]
    path.write_text(json.dumps({"version": 1, "sent": sends, "procs": {}, "blocked_until": None}))
    ledger = SharedLedger(path, clock=clock)
    assert ledger.view().sent == (now - 10, now + 4)
    assert ledger.reserve(3)
    assert not ledger.reserve(3)


# --- real processes ---------------------------------------------------------------------------------------------------

RACER = """
import sys
from pathlib import Path
from tunneltop.api.ledger import SharedLedger

timeout = None if sys.argv[2] == "none" else float(sys.argv[2])
ledger = SharedLedger(Path(sys.argv[1]), clock=lambda: 1000.0, lock_timeout=timeout)
print("ready", flush=True)
sys.stdin.readline()  # the starting gun: every racer is loaded before any of them sends
granted = sum(ledger.reserve(50) for _ in range(40))
ledger.close()
print(granted, flush=True)
"""


def test_four_processes_racing_get_exactly_the_limit(path: Path) -> None:
    timeouts = ["none", "30", "none", "30"]  # both the blocking lock and the polling one
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(path), timeout],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for timeout in timeouts
    ]
    for racer in racers:
        assert racer.stdout is not None
        assert racer.stdout.readline() == "ready\n"
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.close()
    granted = []
    for racer in racers:
        assert racer.stdout is not None
        granted.append(int(racer.stdout.read()))
        racer.stdout.close()
        assert racer.wait() == 0
    assert sum(granted) == 50
    assert max(granted) <= 40
    seen = SharedLedger(path, clock=lambda: 1000.0).view()
    assert len(seen.sent) == 50
    assert seen.senders >= 3  # at least two racers sent (40 each at most), plus this process
    assert seen.processes == 1  # the racers have exited


HOLDER = """
import fcntl, os, signal, sys

fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)  # the ledger's own rewrite: truncate, then write...
os.write(fd, b'{"version":1,"sent":[[1000.0,')  # ...but only half of it, then hang holding the lock
print("locked", flush=True)
while True:
    signal.pause()
"""


def test_kill_9_of_the_lock_holder_mid_write_blocks_no_one(path: Path, clock: FakeClock) -> None:
    ledger = SharedLedger(path, clock=clock, lock_timeout=0)
    assert ledger.reserve(5)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    assert holder.stdout.readline() == "locked\n"
    with pytest.raises(LedgerUnavailable, match="locked by another process"):
        ledger.reserve(5)  # the lock really is held (a zero timeout: one try, no waiting)
    holder.kill()
    assert holder.wait() == -signal.SIGKILL
    holder.stdout.close()
    assert ledger.reserve(5)
    assert ledger.view().sent == (1000.0,)  # the half-written file counted as empty; this is the one new send
    assert json.loads(path.read_text())["sent"] == [[1000.0, os.getpid()]]


# --- an unusable ledger -----------------------------------------------------------------------------------------------


def test_a_directory_that_cannot_be_created_is_unavailable_naming_it(tmp_path: Path, clock: FakeClock) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    directory = blocker / "tunneltop"
    with pytest.raises(LedgerUnavailable) as caught:
        SharedLedger(directory / ledger_name(IDENTITY), clock=clock)
    assert isinstance(caught.value, OSError)
    message = str(caught.value)
    assert str(directory) in message
    assert IDENTITY not in message
    assert SECRET not in message


def test_a_ledger_that_goes_away_later_is_unavailable_from_any_method(path: Path, clock: FakeClock) -> None:
    ledger = SharedLedger(path, clock=clock)
    path.unlink()
    path.mkdir()  # something else now sits where the file was
    for call in (ledger.view, lambda: ledger.reserve(1), lambda: ledger.block_until(2000.0), ledger.register):
        with pytest.raises(LedgerUnavailable, match=re.escape(str(path.parent))):
            call()


def test_a_removed_directory_is_created_again(path: Path, clock: FakeClock) -> None:
    ledger = SharedLedger(path, clock=clock)
    path.unlink()
    path.parent.rmdir()  # e.g. the runtime dir was cleaned at logout
    assert ledger.reserve(1)
    assert mode(path.parent) == 0o700


def test_a_symlink_or_fifo_in_the_ledgers_place_is_refused(path: Path, tmp_path: Path, clock: FakeClock) -> None:
    path.parent.mkdir(parents=True)
    target = tmp_path / "elsewhere"
    target.write_text("keep me")
    path.symlink_to(target)
    with pytest.raises(LedgerUnavailable):
        SharedLedger(path, clock=clock)
    assert target.read_text() == "keep me"
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(LedgerUnavailable, match="not a regular file"):
        SharedLedger(path, clock=clock)


# --- the in-process ledger --------------------------------------------------------------------------------------------


def test_local_ledger_has_the_same_limit_semantics(clock: FakeClock) -> None:
    ledger = LocalLedger(clock=clock)
    assert ledger.reserve(3)
    clock.advance(1)
    assert ledger.reserve(3, count=2)
    assert not ledger.reserve(3)
    seen = ledger.view()
    assert seen.sent == (1000.0, 1001.0, 1001.0)
    assert (seen.own, seen.processes, seen.senders) == (3, 1, 1)
    clock.advance(WINDOW - 1)
    assert ledger.reserve(3)
    assert not ledger.reserve(3)
    clock.advance(1.5)
    assert ledger.reserve(3, count=2)
    with pytest.raises(ValueError):
        ledger.reserve(3, count=0)


def test_local_ledger_blocks_like_the_shared_one(clock: FakeClock) -> None:
    ledger = LocalLedger(clock=clock)
    ledger.block_until(clock() + 30)
    ledger.block_until(clock() + 10)
    assert ledger.view().blocked_until == 1030.0
    assert not ledger.reserve(10)
    clock.advance(30)
    assert ledger.view().blocked_until is None
    assert ledger.reserve(10)
    ledger.block_until(clock() + 7200)
    assert ledger.view().blocked_until == clock() + 3600
    ledger.register()
    ledger.close()
    ledger.close()


def test_both_ledgers_satisfy_the_protocol(path: Path, clock: FakeClock) -> None:
    ledgers: list[Ledger] = [SharedLedger(path, clock=clock), LocalLedger(clock=clock)]
    assert all(isinstance(ledger, Ledger) for ledger in ledgers)
