"""Benchmarks run from the CLI (active-learning efficiency, scale)."""

AL_DATASETS: tuple[str, ...] = ("qa0-sim", "qa0-sim-rule", "breast_cancer", "wine", "digits")
"""`benchmark al --dataset` names (here, not in bench.datasets, so the CLI's parser needs no pandas import)."""
