"""The label-efficiency replay: argument checks and its bookkeeping on a small dataset."""

from __future__ import annotations

import numpy as np
import pytest

from qa0_label.bench import al as B


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        B.run_benchmark(dataset="iris", strategy="margin")
    with pytest.raises(ValueError, match="unknown strategy"):
        B.run_benchmark(dataset="wine", strategy="psychic")
    with pytest.raises(ValueError, match="seeds"):
        B.run_benchmark(dataset="wine", strategy="margin", seeds=0)
    with pytest.raises(ValueError, match="ordinal"):
        B.run_benchmark(dataset="wine", strategy="margin", seeds=1, estimator="ordinal")


@pytest.mark.slow
def test_replay_bookkeeping_on_wine() -> None:
    seen: list[float] = []
    out = B.run_benchmark(dataset="wine", strategy="margin", seeds=1, progress=lambda f, m: seen.append(f))
    assert seen[0] == 0.0 and seen[-1] == 1.0
    curve = out["curves"][0]
    counts = [p[0] for p in curve["strategy"]]
    assert counts[0] == B.PLANS["wine"].n_initial and np.all(np.diff(counts) == B.PLANS["wine"].batch)
    assert out["strategy_labels_needed_median"] in counts
    assert out["label_efficiency"] == pytest.approx(
        out["random_labels_needed_median"] / out["strategy_labels_needed_median"]
    )
    target = out["full_pool_macro_f1_median"] * B.TARGET_SHARE
    reached = dict((p[0], p[1]) for p in curve["strategy"])
    assert reached[int(out["strategy_labels_needed_median"])] >= target
