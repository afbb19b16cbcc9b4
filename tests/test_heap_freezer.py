"""The live view takes a large heap out of the cyclic collector's sight once it is built (ui/lifecycle.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tunneltop.ui.lifecycle import HeapFreezer


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


def test_records_replaced_after_a_freeze_are_freed_by_reference_counting(unfrozen: None) -> None:
    import weakref

    class Record:  # like a connection record: no reference cycle
        pass

    record = Record()
    gone = weakref.ref(record)
    HeapFreezer(min_rows=1).after_poll(1)
    del record  # the next poll replaced it
    assert gone() is None
