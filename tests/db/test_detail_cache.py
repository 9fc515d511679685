"""The per-EB detail-feature cache (eb_detail_features): same features as the uncached path, recomputed when
the feature version or the EB's detail rows change."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from qa0_label.learning import features as F
from qa0_label.sim import simulate
from qa0_label.store.db import session_scope


def _pool(engine, n: int = 6, seed: int = 5) -> list[int]:
    batch = simulate.generate(n=n, seed=seed)
    with engine.begin() as conn:
        ids = simulate.write_batch(conn=conn, batch=batch, seed=seed)
    return [int(i) for i in ids]


def _features(engine, **kw) -> pd.DataFrame:
    with session_scope(engine) as s:
        return F.build_features(session=s, **kw)


def _cache_rows(engine) -> dict[int, str]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT eb_id, feature_version FROM eb_detail_features")).fetchall())


def test_cache_hit_gives_identical_features(engine) -> None:
    ids = _pool(engine)
    uncached = _features(engine, use_cache=False)
    assert _cache_rows(engine) == {}
    assert _features(engine).equals(uncached)  # nothing cached yet: aggregated on the fly, nothing written
    assert F.ensure_detail_cache(engine=engine) == {"cached": 0, "computed": len(ids), "stored": len(ids)}
    assert set(_cache_rows(engine)) == set(ids)
    pd.testing.assert_frame_equal(_features(engine), uncached)
    subset = _features(engine, eb_ids=[ids[2], ids[0]])
    pd.testing.assert_frame_equal(subset, uncached.loc[[ids[2], ids[0]]])
    # A second pass finds everything cached and aggregates nothing.
    assert F.ensure_detail_cache(engine=engine)["computed"] == 0


def test_cache_is_really_read(engine) -> None:
    ids = _pool(engine, n=3)
    F.ensure_detail_cache(engine=engine)
    with engine.begin() as conn:  # tamper with the cached value only (not the details)
        conn.execute(
            text("UPDATE eb_detail_features SET values_json = :v WHERE eb_id = :e"),
            {"v": "[" + ",".join(["7.0"] * len(F.DETAIL_FEATURES)) + "]", "e": ids[0]},
        )
    assert _features(engine).loc[ids[0], "dead_frac"] == 7.0


def test_old_feature_version_is_recomputed(engine) -> None:
    ids = _pool(engine, n=3)
    F.ensure_detail_cache(engine=engine)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE eb_detail_features SET feature_version = 'old', values_json = '[]' WHERE eb_id = :e"),
            {"e": ids[1]},
        )
    pd.testing.assert_frame_equal(_features(engine), _features(engine, use_cache=False))
    assert F.ensure_detail_cache(engine=engine)["computed"] == 1
    assert _cache_rows(engine) == {i: F.FEATURE_VERSION for i in ids}


def test_replaced_details_drop_the_cache_row(engine) -> None:
    ids = _pool(engine, n=4)
    F.ensure_detail_cache(engine=engine)
    before = _features(engine)
    # A re-import: delete the EB's rows and insert different ones (same count: SQLite may reuse the ids).
    with engine.begin() as conn:
        rows = conn.execute(
            text(
                "SELECT antenna, spw, scan, freq_ghz, time_s, tsys_k, amplitude, phase_deg, bp_ripple_db, flagged "
                "FROM eb_detail WHERE eb_id = :e ORDER BY id"
            ),
            {"e": ids[-1]},
        ).fetchall()
        conn.execute(text("DELETE FROM eb_detail WHERE eb_id = :e"), {"e": ids[-1]})
        dead = rows[0][0]
        for r in rows:
            amp = r[6] * 0.01 if r[0] == dead else r[6]
            conn.execute(
                text(
                    "INSERT INTO eb_detail (eb_id, antenna, spw, scan, freq_ghz, time_s, tsys_k, amplitude, phase_deg, "
                    "bp_ripple_db, flagged) VALUES (:e, :a, :s, :k, :f, :t, :y, :m, :p, :b, :g)"
                ),
                {
                    "e": ids[-1],
                    "a": r[0],
                    "s": r[1],
                    "k": r[2],
                    "f": r[3],
                    "t": r[4],
                    "y": r[5],
                    "m": amp,
                    "p": r[7],
                    "b": r[8],
                    "g": r[9],
                },
            )
    assert ids[-1] not in _cache_rows(engine)
    after = _features(engine)
    pd.testing.assert_frame_equal(after, _features(engine, use_cache=False))
    assert after.loc[ids[-1], "dead_antennas"] > before.loc[ids[-1], "dead_antennas"]
    assert F.ensure_detail_cache(engine=engine)["computed"] == 1


@pytest.mark.parametrize("change", ["append", "update"])
def test_added_or_edited_detail_rows_are_noticed(engine, change: str) -> None:
    ids = _pool(engine, n=3)
    F.ensure_detail_cache(engine=engine)
    with engine.begin() as conn:
        if change == "append":  # an extra scan for one antenna, with a huge Tsys
            conn.execute(
                text(
                    "INSERT INTO eb_detail (eb_id, antenna, spw, scan, tsys_k, amplitude, phase_deg, flagged) "
                    "SELECT eb_id, antenna, spw, 999, tsys_k * 50, amplitude, phase_deg, flagged FROM eb_detail "
                    "WHERE eb_id = :e AND scan = (SELECT MIN(scan) FROM eb_detail WHERE eb_id = :e)"
                ),
                {"e": ids[0]},
            )
        else:
            conn.execute(
                text(
                    "UPDATE eb_detail SET tsys_k = tsys_k * 50 WHERE eb_id = :e AND scan = "
                    "(SELECT MIN(scan) FROM eb_detail WHERE eb_id = :e)"
                ),
                {"e": ids[0]},
            )
    got = _features(engine)
    pd.testing.assert_frame_equal(got, _features(engine, use_cache=False))
    assert F.ensure_detail_cache(engine=engine)["computed"] == 1
    pd.testing.assert_frame_equal(_features(engine), got)


def test_deleted_eb_takes_its_cache_row_along(engine) -> None:
    ids = _pool(engine, n=2)
    F.ensure_detail_cache(engine=engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM execution_block WHERE id = :e"), {"e": ids[0]})
    assert set(_cache_rows(engine)) == {ids[1]}


def test_simulate_fills_the_cache_with_the_same_values(engine) -> None:
    simulate.simulate(engine=engine, n=8, seed=3, details_for=5)
    rows = _cache_rows(engine)
    assert len(rows) == 5 and set(rows.values()) == {F.FEATURE_VERSION}
    assert F.ensure_detail_cache(engine=engine)["computed"] == 0
    got, ref = _features(engine), _features(engine, use_cache=False)
    # Filled from the simulator's frame by pandas: equal to the SQL aggregates up to float summation order.
    np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=1e-9, atol=1e-12, equal_nan=True)
