"""benchmarks.memory: the polls run through the real engine and session, and every holder is measured."""

from __future__ import annotations

from benchmarks import memory


def test_memory_measures_every_holder_over_the_real_polls() -> None:
    figures = memory.run(200)
    assert figures["connections"] == 200
    assert figures["failover_moved"] == 16 and figures["ghosts"] == 16
    assert figures["first_poll_cpu_s"] > 0 and figures["unchanged_poll_cpu_s"] > 0
    assert figures["peak_rss_mb"] >= figures["rss_mb"] > 0
    for key, rss in (("pymalloc_mb", "rss_mb"), ("pymalloc_after_failover_mb", "rss_after_failover_mb")):
        # The allocator's arenas hold the live objects, and are part of the RSS.
        assert figures[rss] > figures[key]["arenas"] >= figures[key]["in_use"] > 1
    # glibc's heaps trimmed (Linux): what they give back is part of the RSS, so it can only fall (give or take the
    # allocator statistics read in between).
    assert 0 < figures["rss_after_failover_trimmed_mb"] <= figures["rss_after_failover_mb"] + 1
    assert figures["malloc_trim_cpu_ms"] >= 0
    for key in ("bytes_per_connection", "bytes_per_connection_after_failover"):
        per_connection = figures[key]
        assert per_connection["Connection strings"] > 100
        # The cache keeps a digest of each connector's text, not the records it was decoded into (~420 bytes).
        assert 0 < per_connection["RecordCache (connectors, texts, loose)"] < 100
        assert per_connection["ConnRow objects"] > 0 and per_connection["row keys"] > 0
        parts = sum(size for name, size in per_connection.items() if name != "total")
        assert abs(per_connection["total"] - parts) < 1
        # One fields set and one empty extra dict for every connection, counted once: under a byte a connection
        # (each its own: 728 and 64 bytes).
        assert per_connection["Connection fields_set"] < 5 and per_connection["Connection extra"] < 5
