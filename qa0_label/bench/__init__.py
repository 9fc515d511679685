"""Benchmarks run from the CLI (active-learning efficiency, scale)."""
