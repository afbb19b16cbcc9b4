"""benchmarks.once's instruction count: read from cachegrind's summary whichever way a release spaces it."""

from __future__ import annotations

import shutil

import pytest

from benchmarks import once


def test_the_count_is_read_from_either_spelling_of_the_summary() -> None:
    old = "==41== Cachegrind, a high-precision tracing profiler\n==41== \n==41== I   refs:      2,137,120,400\n"
    new = "==7== I refs:        1,170,812,093\n==7== \n"
    assert once.instruction_count(old) == 2_137_120_400
    assert once.instruction_count(new) == 1_170_812_093
    assert once.instruction_count("==7== D refs: 5\nTraceback (most recent call last):\n") is None


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind")
def test_instructions_are_counted_for_both_programs() -> None:
    figures = once.run(50, rounds=1, instructions=True)
    counts = figures["instructions_m"]
    assert counts["floor"] > 0 and counts["tunneltop"] > 0
    assert figures["instructions_ratio"] == pytest.approx(counts["tunneltop"] / counts["floor"], rel=1e-3)
    # Each start counted alone is a part of its whole run; the run is the rest.
    starts, runs = figures["start_instructions_m"], figures["run_instructions_m"]
    for name in ("floor", "tunneltop"):
        assert 0 < starts[name] < counts[name]
        assert starts[name] + runs[name] == pytest.approx(counts[name], abs=0.2)
    assert figures["run_instructions_ratio"] == pytest.approx(runs["tunneltop"] / runs["floor"], rel=1e-3)
    # pydantic's least use costs something over the floor's start, and bounds the ratio any such program reaches.
    assert starts["pydantic"] > starts["floor"]
    bound = (counts["floor"] + starts["pydantic"] - starts["floor"]) / counts["floor"]
    assert figures["pydantic_bound"] == pytest.approx(bound, rel=1e-3)
    assert 1 < figures["pydantic_bound"] < figures["instructions_ratio"]
