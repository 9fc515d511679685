"""build_features (SQL GROUP BY over eb_detail) computes the same matrix as features_from_frames (pandas)."""

from __future__ import annotations

import numpy as np

from qa0_label.learning import features as F
from qa0_label.sim import simulate
from qa0_label.store.db import session_scope


def test_sql_and_pandas_paths_agree(engine) -> None:
    batch = simulate.generate(n=8, seed=5)
    with engine.begin() as conn:
        ids = simulate.write_batch(conn=conn, batch=batch, seed=5)
    id_of = dict(zip(batch.ebs.index.tolist(), [int(i) for i in ids]))
    expected = F.features_from_frames(batch.ebs, batch.details)
    expected.index = [id_of[i] for i in expected.index]
    with session_scope(engine) as s:
        got = F.build_features(session=s)
        subset = F.build_features(session=s, eb_ids=[id_of[3], id_of[1]])
    got = got.loc[expected.index]
    assert list(got.columns) == list(expected.columns)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-6, atol=1e-9, equal_nan=True)
    # A subset keeps the requested order and the same values (history still sees every EB).
    assert subset.index.tolist() == [id_of[3], id_of[1]]
    np.testing.assert_allclose(subset.to_numpy(), got.loc[[id_of[3], id_of[1]]].to_numpy(), equal_nan=True)


def test_ebs_without_details_get_nan_detail_features(engine) -> None:
    from tests.db.al_pool import make_pool

    truth = make_pool(engine, 5)
    with session_scope(engine) as s:
        feats = F.build_features(session=s)
    assert sorted(feats.index) == sorted(truth)
    assert feats["dead_frac"].isna().all() and feats["n_antennas"].notna().all()
