"""simulate(details_for=M): big pools with detail rows for a subset only (scale benchmarks)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from qa0_label.sim import database
from qa0_label.sim import simulate as sim


def test_details_only_for_the_first_m_and_labels_on_them(engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small chunks so the run has full-detail, split and detail-free (worker process) batches.
    monkeypatch.setattr(database, "CHUNK_EBS", 20)
    summary = sim.simulate(engine=engine, n=70, seed=6, aods=2, labeled=30, details_for=25)
    assert summary["n_ebs"] == 70 and summary["n_ebs_with_details"] == 25
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM execution_block ORDER BY id"))]
        with_details = [r[0] for r in conn.execute(text("SELECT DISTINCT eb_id FROM eb_detail ORDER BY eb_id"))]
        labelled = {r[0] for r in conn.execute(text("SELECT eb_id FROM label"))}
        n_rows = conn.execute(text("SELECT COUNT(*) FROM eb_detail")).scalar_one()
        uids = [r[0] for r in conn.execute(text("SELECT uid FROM execution_block ORDER BY id"))]
        outcomes = conn.execute(text("SELECT COUNT(*) FROM reference_outcome")).scalar_one()
    assert with_details == ids[:25]
    assert n_rows == summary["n_detail_rows"] > 25 * 200
    assert labelled and labelled <= set(ids[:25])  # AoDs review EBs they can see plots for
    assert outcomes == 70
    # The EB rows are the same EBs a full run would make (details only dropped, never different EBs).
    pd_uids = [sim.generate(n=min(20, 70 - i), seed=6, first_index=i).ebs["uid"].tolist() for i in range(0, 70, 20)]
    assert uids == [u for chunk in pd_uids for u in chunk][:70]


def test_labels_spill_over_when_detailed_ebs_cannot_carry_them(engine) -> None:
    summary = sim.simulate(engine=engine, n=30, seed=2, aods=1, labeled=12, details_for=5)
    assert summary["n_labels"] == 12 and summary["n_ebs_with_details"] == 5


def test_negative_details_for_is_refused(engine) -> None:
    with pytest.raises(ValueError):
        sim.simulate(engine=engine, n=3, details_for=-1)
