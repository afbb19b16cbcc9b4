"""Benchmarks: scripts that print figures (run from the repository root: python -m benchmarks.bench)."""
