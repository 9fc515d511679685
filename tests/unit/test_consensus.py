"""Vectorised consensus agrees with the per-EB rule (majority_value, adjudication wins) on random data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qa0_label.store.labels import consensus_from_frames, majority_value
from qa0_label.store.models import LABEL_VALUES


def _random_frames(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rows = []
    for eb in rng.choice(1000, size=60, replace=False):
        for labeler in rng.choice(6, size=rng.integers(1, 5), replace=False):
            rows.append((int(eb), f"aod{labeler}", str(rng.choice(LABEL_VALUES))))
    current = pd.DataFrame(rows, columns=["eb_id", "labeler", "value"])
    some = rng.choice(current["eb_id"].unique(), size=8, replace=False).tolist() + [5000]  # 5000: no AoD label
    adjudicated = pd.DataFrame({"eb_id": some, "value": [str(rng.choice(LABEL_VALUES)) for _ in some]})
    return current, adjudicated


@pytest.mark.parametrize("seed", range(5))
def test_matches_the_per_eb_rule(seed: int) -> None:
    current, adjudicated = _random_frames(seed)
    got = consensus_from_frames(current, adjudicated).set_index("eb_id")
    adj = dict(zip(adjudicated["eb_id"], adjudicated["value"]))
    expected_ids = sorted(set(current["eb_id"]) | set(adj))
    assert got.index.tolist() == expected_ids
    for eb in expected_ids:
        values = current.loc[current["eb_id"] == eb, "value"].tolist()
        row = got.loc[eb]
        assert row["n_labels"] == len(values)
        if eb in adj:
            assert (row["value"], row["source"]) == (adj[eb], "adjudication")
        else:
            assert row["value"] == majority_value(values)
            assert row["source"] == ("unanimous" if len(set(values)) == 1 else "majority")


def test_cautious_tie_and_empty_inputs() -> None:
    tie = pd.DataFrame({"eb_id": [1, 1, 2, 2], "value": ["Pass", "SemiPass", "Fail", "Pass"]})
    got = consensus_from_frames(tie, pd.DataFrame(columns=["eb_id", "value"]))
    assert got["value"].tolist() == ["SemiPass", "Fail"] and set(got["source"]) == {"majority"}
    empty = consensus_from_frames(pd.DataFrame(columns=["eb_id", "value"]), pd.DataFrame(columns=["eb_id", "value"]))
    assert empty.empty and list(empty.columns) == ["eb_id", "value", "source", "n_labels"]
