"""The live view takes a large heap out of the cyclic collector's sight once it is built (ui/lifecycle.py)."""

from __future__ import annotations

import gc
import platform
from collections.abc import Iterator
from pathlib import Path

import pytest

from tunneltop.ui.lifecycle import HeapFreezer, MemoryTrim


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test process collects as before


def test_the_heap_is_frozen_once_large_then_again_only_when_it_has_doubled(unfrozen: None) -> None:
    heap = HeapFreezer(min_rows=1_000)
    assert not heap.after_poll(999) and gc.get_freeze_count() == 0  # a small view: the collector sees everything
    assert heap.after_poll(1_000) and gc.get_freeze_count() > 0
    frozen = gc.get_freeze_count()
    kept = [[] for _ in range(100)]  # containers the collector tracks, made since: not frozen yet
    # Polls that keep the view about its size (a failover replaces records, the heap does not grow) freeze nothing.
    assert not heap.after_poll(1_500) and not heap.after_poll(1_999) and gc.get_freeze_count() == frozen
    assert heap.after_poll(2_000) and gc.get_freeze_count() >= frozen + len(kept)
    assert heap.frozen_at == 2_000


def test_tunnels_count_like_rows_so_an_account_of_many_small_tunnels_is_frozen_too(unfrozen: None) -> None:
    heap = HeapFreezer(min_rows=1_000)
    assert not heap.after_poll(450, tunnels=549) and gc.get_freeze_count() == 0
    assert heap.after_poll(450, tunnels=1_302) and gc.get_freeze_count() > 0  # few rows, many tunnel records
    assert heap.frozen_at == 1_752
    assert not heap.after_poll(3_000, tunnels=0)  # not yet twice what was held at the freeze
    assert heap.after_poll(2_200, tunnels=1_304)


def test_records_replaced_after_a_freeze_are_freed_by_reference_counting(unfrozen: None) -> None:
    import weakref

    class Record:  # like a connection record: no reference cycle
        pass

    record = Record()
    gone = weakref.ref(record)
    HeapFreezer(min_rows=1).after_poll(1)
    del record  # the next poll replaced it
    assert gone() is None


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_memory_trim_gives_back_what_glibc_keeps_of_freed_memory() -> None:
    trim = MemoryTrim()
    assert trim.available
    # Blocks too large for Python's own allocator and too small for mmap: glibc's heap, kept when freed.
    blocks = [bytearray(4096) for _ in range(20_000)]
    del blocks[::2]  # holes among live blocks: freed, but not at the heap's top
    del blocks[: len(blocks) // 2]
    before = _rss_kb()
    trim()
    assert _rss_kb() < before
    del blocks


def test_memory_trim_is_harmless_where_there_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.platform", "darwin")
    trim = MemoryTrim()
    assert not trim.available
    trim()  # nothing, and no error
