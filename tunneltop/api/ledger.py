"""One API request budget per credential, shared by every tunneltop process on the machine.

Cloudflare counts requests per *user*, not per process: three tunneltops on one token spend one budget. Each
process therefore consults a small JSON ledger of recent send times before it sends, under an exclusive
``fcntl.flock`` of the file, so "check the budget and record the send" is one atomic step across processes.

The lock is the kernel's: a process that dies, even by ``kill -9`` mid-write, releases it, and whatever it left in
the file is either valid or treated as empty. Nothing in the file can block anyone for long: sends expire after
``WINDOW``, future-dated entries are dropped, dead processes are forgotten, and a 429 block is capped at an hour.

``LocalLedger`` is the same budget for one process, in memory: the demo, and the fallback when the shared ledger
raises ``LedgerUnavailable``.

One module (over ~400 lines): the file format, the lock and the pruning are one protocol between processes;
split, a reader could drift from the writer.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from tunneltop.api.budget import COUNTED

__all__ = [
    "WINDOW",
    "Ledger",
    "LedgerUnavailable",
    "LedgerView",
    "LocalLedger",
    "SharedLedger",
    "ledger_dir",
    "ledger_name",
]

WINDOW = COUNTED  # seconds: the budget is per minute, with the gate's slack for the way to the server
FUTURE_SLACK = 5.0  # a send dated later than this is from a clock that jumped (or a boot ago): it must not block
PROC_TTL = 600.0  # a registration not refreshed for 10 minutes is a process that hung or lost its pid
HEARTBEAT = 60.0  # view() rewrites this process's registration only when it is older than this
MAX_BLOCK = 3600.0  # a 429 block further ahead than this is a broken clock or file, not Cloudflare
_MAX_FILE = 8 << 20  # an honest ledger is a few KB; a bigger file is garbage and is not read into memory
_LOCK_POLL = 0.005  # seconds between lock attempts while another process holds the lock
_DOMAIN = b"tunneltop-ledger-v1\0"  # separates these hashes from any other sha256 of the same credential
_VERSION = 1


class LedgerUnavailable(OSError):
    """The shared ledger cannot be used (directory not creatable, read-only, disk full, lock stuck)."""


@dataclass(frozen=True)
class LedgerView:
    sent: tuple[float, ...]  # send times (wall clock, seconds) of every process within the last WINDOW, sorted
    own: int  # how many of them this process sent
    processes: int  # live tunneltop processes registered on this ledger, this one included (>= 1)
    senders: int  # distinct processes that sent within the last WINDOW, this one always counted (>= 1)
    blocked_until: float | None  # wall time until which a 429's Retry-After (seen by any process) blocks every request


@runtime_checkable
class Ledger(Protocol):
    """What the request path needs from a budget; ``SharedLedger`` and ``LocalLedger`` both provide it."""

    def reserve(self, limit_per_minute: int, count: int = 1) -> bool: ...

    def view(self) -> LedgerView: ...

    def block_until(self, until: float) -> None: ...

    def register(self) -> None: ...

    def close(self) -> None: ...


def ledger_dir(env: Mapping[str, str]) -> Path:
    """``$XDG_RUNTIME_DIR/tunneltop`` (tmpfs, per user, cleared at logout) or else ``$XDG_STATE_HOME/tunneltop``."""
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / "tunneltop"
    state = env.get("XDG_STATE_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored, as for XDG_RUNTIME_DIR above.
    if state and os.path.isabs(state):
        return Path(state) / "tunneltop"
    home = env.get("HOME", "")
    return (Path(home) if home else Path.home()) / ".local" / "state" / "tunneltop"


def ledger_name(identity: str) -> str:
    """The ledger's file name for one credential: ``budget-<32 hex>.json``.

    ``identity`` is whatever the caller says makes two processes share a budget, and may contain the API token
    itself. Only this one-way, domain-separated hash of it ever leaves memory: it is not written into the file,
    not logged, and not part of any error message (those name the directory).
    """
    digest = hashlib.sha256(_DOMAIN + identity.encode("utf-8", "surrogatepass")).hexdigest()
    return f"budget-{digest[:32]}.json"


@dataclass
class _State:
    sent: list[tuple[float, int]] = field(default_factory=list)  # (time, pid)
    procs: dict[int, float] = field(default_factory=dict)  # pid -> last seen
    blocked_until: float | None = None


def _time(value: object) -> float | None:
    # bool is an int to Python but never a time; 1e400 parses as inf and would never expire.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _pid(value: object) -> int | None:
    # pid 0 and negatives would make os.kill signal a whole process group: never let them out of the file.
    return value if type(value) is int and 0 < value < 2**31 else None


def _reject_constant(name: str) -> float:
    raise ValueError(name)  # NaN / Infinity are not JSON and not a time


def _decode(raw: bytes) -> _State:
    """The file's state; anything that is not exactly the expected shape is an empty ledger, never an error."""
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return _State()
    if not isinstance(doc, dict) or _pid(doc.get("version")) != _VERSION:
        return _State()
    sent, procs, blocked = doc.get("sent"), doc.get("procs"), doc.get("blocked_until")
    if not isinstance(sent, list) or not isinstance(procs, dict):
        return _State()
    state = _State()
    for item in sent:
        if not isinstance(item, list) or len(item) != 2:
            return _State()
        when, pid = _time(item[0]), _pid(item[1])
        if when is None or pid is None:
            return _State()
        state.sent.append((when, pid))
    for key, seen in procs.items():
        pid = int(key) if key.isascii() and key.isdigit() and len(key) < 11 else None
        when = _time(seen)
        pid = _pid(pid)
        if pid is None or when is None:
            return _State()
        state.procs[pid] = when
    if blocked is not None:
        state.blocked_until = _time(blocked)
        if state.blocked_until is None:
            return _State()
    return state


def _encode(state: _State) -> bytes:
    doc = {
        "version": _VERSION,
        "sent": [[when, pid] for when, pid in state.sent],
        "procs": {str(pid): seen for pid, seen in state.procs.items()},
        "blocked_until": state.blocked_until,
    }
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, just not ours to signal
    except (OverflowError, ValueError):
        return False
    except OSError:
        return True  # unknown: keep it; PROC_TTL forgets it in the end
    return True


def _prune(state: _State, now: float, me: int, alive: Callable[[int], bool]) -> None:
    """Forget everything that must not count any more; run on every read, so no old file can block anyone."""
    state.sent = sorted((when, pid) for when, pid in state.sent if now - WINDOW < when <= now + FUTURE_SLACK)
    state.procs = {
        pid: seen
        for pid, seen in state.procs.items()
        if now - PROC_TTL <= seen <= now + FUTURE_SLACK and (pid == me or alive(pid))
    }
    if state.blocked_until is not None and not now < state.blocked_until <= now + MAX_BLOCK:
        state.blocked_until = None


def _admit(state: _State, now: float, me: int, limit_per_minute: int, count: int) -> bool:
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")  # raised before any write: nothing recorded
    # After _prune a surviving block is in the future; the sends are exactly those of the last WINDOW.
    if state.blocked_until is not None or len(state.sent) + count > limit_per_minute:
        return False
    state.sent.extend((now, me) for _ in range(count))
    return True


def _block(state: _State, now: float, until: float) -> None:
    if not math.isfinite(until) or until <= now:
        return
    # Cap rather than drop an over-long Retry-After: _prune would otherwise discard the whole block.
    until = min(until, now + MAX_BLOCK)
    if state.blocked_until is None or until > state.blocked_until:
        state.blocked_until = until


def _view(state: _State, me: int) -> LedgerView:
    return LedgerView(
        sent=tuple(when for when, _ in state.sent),
        own=sum(1 for _, pid in state.sent if pid == me),
        processes=len(state.procs.keys() | {me}),
        senders=len({pid for _, pid in state.sent} | {me}),
        blocked_until=state.blocked_until,
    )


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks: list[bytes] = []
    size = 0
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
        size += len(chunk)
        if size > _MAX_FILE:
            return b""  # garbage: treated as empty and overwritten
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    # In place, not write-and-rename: the lock lives on this inode, and a new inode would split the ledger.
    # Truncate first: a crash part-way then leaves an empty file or a prefix of one JSON object, which never
    # parses, and so counts as empty. (Writing over the old bytes first could splice old and new into valid JSON.)
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _make_dir(directory: Path) -> None:
    """Create the directory 0o700 (and any missing parents); an existing one is left as it is."""
    missing: list[Path] = []
    probe = directory
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue  # another process won the race: its directory, its permissions
        if path == directory:
            os.chmod(path, 0o700)  # the umask may have taken bits we need (e.g. 0o277)


class SharedLedger:
    """The budget ledger in one file, shared by every process that opens the same path.

    Each call opens the file, takes the lock, reads, prunes, (writes,) and closes: no descriptor outlives a call,
    so a ``fork`` or a deleted-and-recreated file cannot leave this process counting against a stale inode.
    ``pid`` defaults to the calling process's pid at each call, so a forked child counts as itself. Two ledgers
    in one process with the same pid share one registration: ``close`` on either unregisters it.

    ``lock_timeout`` bounds the wait for another process's lock (held for well under a millisecond normally; a
    process stopped with SIGSTOP inside that moment would hold it indefinitely): after that many seconds the call
    raises ``LedgerUnavailable`` rather than hang the caller. ``None`` waits forever.
    """

    def __init__(
        self,
        path: Path,
        *,
        pid: int | None = None,
        clock: Callable[[], float] = time.time,
        lock_timeout: float | None = 2.0,
    ) -> None:
        self.path = Path(path)
        self._pid = pid
        self._clock = clock
        self._lock_timeout = lock_timeout
        self._live = False
        self.register()

    @property
    def pid(self) -> int:
        return self._pid if self._pid is not None else os.getpid()

    def reserve(self, limit_per_minute: int, count: int = 1) -> bool:
        """Record ``count`` sends now if the whole machine's last minute leaves room and no 429 block holds."""
        with self._session(exclusive=True) as (state, now):
            self._heartbeat(state, now)
            return _admit(state, now, self.pid, limit_per_minute, count)

    def view(self) -> LedgerView:
        """The ledger as it stands, read under a shared lock; rewritten only to refresh a stale registration."""
        me = self.pid
        with self._session(exclusive=False) as (state, now):
            seen = state.procs.get(me)
            if not self._live or (seen is not None and now - seen < HEARTBEAT):
                return _view(state, me)
        # The heartbeat needs a write, and a shared lock cannot be upgraded atomically: start over exclusively.
        with self._session(exclusive=True) as (state, now):
            self._heartbeat(state, now)
            return _view(state, me)

    def block_until(self, until: float) -> None:
        """Block every process's requests until wall time ``until`` (a 429's Retry-After); a later block wins."""
        with self._session(exclusive=True) as (state, now):
            self._heartbeat(state, now)
            _block(state, now, until)

    def register(self) -> None:
        """Count this process as live on the ledger (``reserve``, ``view`` and ``block_until`` keep it fresh)."""
        self._live = True
        with self._session(exclusive=True) as (state, now):
            self._heartbeat(state, now)

    def close(self) -> None:
        """Unregister this process. Idempotent, and never raises: it runs on the way out, often after an error."""
        self._live = False
        with suppress(Exception), self._session(exclusive=True) as (state, _now):
            state.procs.pop(self.pid, None)

    def _heartbeat(self, state: _State, now: float) -> None:
        if self._live:
            state.procs[self.pid] = now

    @contextmanager
    def _session(self, *, exclusive: bool) -> Iterator[tuple[_State, float]]:
        """The pruned state under the lock; written back when the lock is exclusive. OSError -> LedgerUnavailable."""
        try:
            fd = self._open()
        except LedgerUnavailable:
            raise
        except OSError as err:
            raise self._unavailable(err) from err
        try:
            self._lock(fd, exclusive)
            now = self._clock()  # read under the lock, so every process's times are in lock order
            state = _decode(_read_all(fd))
            _prune(state, now, self.pid, _alive)
            yield state, now
            if exclusive:
                _write_all(fd, _encode(state))
        except LedgerUnavailable:
            raise
        except OSError as err:
            raise self._unavailable(err) from err
        finally:
            with suppress(OSError):
                os.close(fd)  # also releases the lock

    def _open(self) -> int:
        # O_NOFOLLOW: a symlink planted where the ledger should be is refused, not followed.
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o600)
        except FileNotFoundError:
            _make_dir(self.path.parent)  # first use, or the runtime dir was cleaned since
            fd = os.open(self.path, flags, 0o600)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise LedgerUnavailable(f"budget ledger in {self.path.parent} is not a regular file")
            if stat.S_IMODE(info.st_mode) != 0o600:
                os.fchmod(fd, 0o600)  # whatever the umask, or an older file's mode, said
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _lock(self, fd: int, exclusive: bool) -> None:
        operation = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        if self._lock_timeout is None:
            fcntl.flock(fd, operation)
            return
        deadline = time.monotonic() + self._lock_timeout
        while True:
            try:
                fcntl.flock(fd, operation | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LedgerUnavailable(
                        f"budget ledger in {self.path.parent} stayed locked by another process for more than "
                        f"{self._lock_timeout:g} s"
                    ) from None
                time.sleep(_LOCK_POLL)

    def _unavailable(self, err: OSError) -> LedgerUnavailable:
        # Name the directory, never the identity (the file name is only its hash, but the directory is what to fix).
        reason = err.strerror or type(err).__name__
        return LedgerUnavailable(f"cannot use the budget ledger in {self.path.parent}: {reason}")


class LocalLedger:
    """The same budget for this process alone, in memory: for the demo, and when the shared file is unusable."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._state = _State()
        self._lock = threading.Lock()  # reserve's check-then-record must be atomic here too

    def reserve(self, limit_per_minute: int, count: int = 1) -> bool:
        with self._lock:
            now = self._prune()
            return _admit(self._state, now, 0, limit_per_minute, count)

    def view(self) -> LedgerView:
        with self._lock:
            self._prune()
            return _view(self._state, 0)

    def block_until(self, until: float) -> None:
        with self._lock:
            _block(self._state, self._prune(), until)

    def register(self) -> None:
        """Nothing to do: this process is the only one."""

    def close(self) -> None:
        """Nothing to release."""

    def _prune(self) -> float:
        now = self._clock()
        _prune(self._state, now, 0, lambda _pid: True)
        return now
