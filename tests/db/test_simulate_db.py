"""simulate / seed_demo_if_empty against a real database: row counts, round trip, appending, demo seeding."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from qa0_label.sim import demo
from qa0_label.sim import simulate as sim
from qa0_label.store import labels
from qa0_label.store.db import session_scope
from qa0_label.store.models import ExecutionBlock, Labeler


def _count(engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def test_simulate_writes_everything_and_reports(engine) -> None:
    seen: list[float] = []
    summary = sim.simulate(engine=engine, n=120, seed=4, aods=3, labeled=50, progress=lambda f, _m: seen.append(f))
    json.dumps(summary)  # JSON-able
    assert summary["n_ebs"] == 120 and summary["n_labels"] == 50
    assert _count(engine, "execution_block") == 120
    assert _count(engine, "reference_outcome") == 120
    assert _count(engine, "eb_detail") == summary["n_detail_rows"]
    assert _count(engine, "label") == 50
    rows = summary["detail_rows_per_eb"]
    assert rows["min"] <= rows["mean"] <= rows["max"] <= 3000
    assert summary["n_detail_rows"] == pytest.approx(rows["mean"] * 120, rel=1e-3)
    assert sum(summary["reference_shares"].values()) == pytest.approx(1.0, abs=1e-3)
    assert summary["seconds"] >= 0
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    with session_scope(engine) as session:
        people = session.exec(select(Labeler)).all()
        assert sorted(p.name for p in people) == sorted(p.name for p in sim.aod_profiles(3))
        assert {p.role for p in people} == {"aod"}
        current = labels.current_labels(session)
        assert len(current) == 50
        assert current.groupby("eb_id").size().max() >= 2  # some EBs have two AoDs' labels
        events = session.connection().execute(text("SELECT kind, client_event_id FROM label")).fetchall()
        assert {k for k, _ in events} == {"review"}
        assert len({c for _, c in events}) == 50


def test_database_rows_are_the_generated_batch(engine) -> None:
    sim.simulate(engine=engine, n=40, seed=8)
    batch = sim.generate(n=40, seed=8, first_index=0)
    with session_scope(engine) as session:
        ebs = session.exec(select(ExecutionBlock).order_by(ExecutionBlock.id)).all()
        assert [e.uid for e in ebs] == batch.ebs["uid"].tolist()
        first = ebs[0]
        expected = batch.ebs.iloc[0]
        assert first.start_time == expected["start_time"].to_pydatetime()
        assert first.start_time.tzinfo is not None
        for col in ("band", "n_antennas", "pwv_mm", "flux_jy", "spectral_index", "expected_flux_jy", "tsys_median_k"):
            assert getattr(first, col) == pytest.approx(expected[col]), col
        conn = session.connection()
        got = pd.DataFrame(
            conn.execute(
                text(
                    "SELECT eb_id, antenna, spw, scan, freq_ghz, time_s, tsys_k, amplitude, phase_deg, bp_ripple_db,"
                    " flagged FROM eb_detail ORDER BY id"
                )
            ).fetchall(),
            columns=list(sim.DETAIL_DB_COLUMNS),
        )
        outcomes = conn.execute(text("SELECT eb_id, value, reasons FROM reference_outcome ORDER BY eb_id")).fetchall()
    ids = {i: e.id for i, e in enumerate(ebs)}
    want = batch.details
    assert len(got) == len(want)
    assert (got["eb_id"].to_numpy() == want["eb"].map(ids).to_numpy()).all()
    assert (got["antenna"].to_numpy() == want["antenna"].astype(str).to_numpy()).all()
    for col in ("spw", "scan", "freq_ghz", "time_s", "tsys_k", "amplitude", "phase_deg", "bp_ripple_db"):
        np.testing.assert_allclose(got[col].to_numpy(dtype=float), want[col].to_numpy(dtype=float), err_msg=col)
    assert (got["flagged"].astype(bool).to_numpy() == want["flagged"].to_numpy()).all()
    assert [o[1] for o in outcomes] == batch.outcomes["value"].tolist()
    assert [o[2] for o in outcomes] == batch.outcomes["reasons"].tolist()


def test_running_twice_appends_without_collisions(engine) -> None:
    first = sim.simulate(engine=engine, n=30, seed=0, aods=2, labeled=10)
    second = sim.simulate(engine=engine, n=30, seed=0, aods=2, labeled=10)
    assert first["n_ebs"] == second["n_ebs"] == 30
    assert _count(engine, "execution_block") == 60
    assert _count(engine, "reference_outcome") == 60
    assert _count(engine, "label") == 20
    assert _count(engine, "labeler") == 2  # the same simulated AoDs, not new ones
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(DISTINCT uid) FROM execution_block")).scalar_one() == 60
        per_eb = conn.execute(text("SELECT eb_id, COUNT(*) FROM eb_detail GROUP BY eb_id")).fetchall()
    assert len(per_eb) == 60


def test_taken_uid_is_replaced(engine) -> None:
    # With one EB already in the table, simulate continues at global index 1, i.e. generate(first_index=1):
    # occupy the uid it would hand out first.
    wanted = sim.generate(n=3, seed=5, first_index=1).ebs["uid"].tolist()
    with session_scope(engine) as session:
        session.add(
            ExecutionBlock(
                uid=wanted[0],
                source="J1256-0547",
                band=3,
                start_time=pd.Timestamp("2024-01-01", tz="UTC").to_pydatetime(),
            )
        )
    sim.simulate(engine=engine, n=3, seed=5)
    with engine.connect() as conn:
        uids = [r[0] for r in conn.execute(text("SELECT uid FROM execution_block ORDER BY id"))]
    assert len(uids) == 4 and len(set(uids)) == 4
    assert uids[0] == wanted[0]
    assert uids[1] != wanted[0] and uids[2:] == wanted[1:]
    assert re.fullmatch(r"uid://A002/X[0-9a-f]+/X[0-9a-f]+", uids[1])


def test_bad_arguments_are_refused_and_zero_is_harmless(engine) -> None:
    with pytest.raises(ValueError):
        sim.simulate(engine=engine, n=-1)
    with pytest.raises(ValueError):
        sim.simulate(engine=engine, n=5, labeled=3)
    with pytest.raises(ValueError):
        sim.simulate(engine=engine, n=2, aods=1, labeled=3)
    summary = sim.simulate(engine=engine, n=0)
    assert summary["n_ebs"] == 0 and summary["n_detail_rows"] == 0
    json.dumps(summary)
    assert _count(engine, "execution_block") == 0


def test_seed_demo_once(engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real demo is ~3,000 EBs; a smaller one exercises the same path quickly.
    monkeypatch.setattr(demo, "DEMO_EBS", 90)
    monkeypatch.setattr(demo, "DEMO_LABELS", 40)
    assert sim.seed_demo_if_empty(engine=engine) is True
    assert _count(engine, "execution_block") == 90
    assert _count(engine, "label") == 40
    with session_scope(engine) as session:
        people = {p.name: p.role for p in session.exec(select(Labeler)).all()}
        assert people.pop(sim.LEAD_NAME) == "lead"
        assert len(people) == sim.DEMO_AODS and set(people.values()) == {"aod"}
        current = labels.current_labels(session)
        assert sim.LEAD_NAME not in set(current["labeler"])
        assert (current.groupby("eb_id").size() >= 2).any()
    assert sim.seed_demo_if_empty(engine=engine) is False
    assert _count(engine, "execution_block") == 90
    assert _count(engine, "label") == 40


@pytest.mark.sqlite_only
def test_foreign_keys_are_back_on_after_the_bulk_write(engine) -> None:
    sim.simulate(engine=engine, n=5, seed=2)
    # The pool hands back the connection simulate used: it must enforce foreign keys again.
    for _ in range(2):
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
    with pytest.raises(IntegrityError):
        with session_scope(engine) as session:
            session.connection().execute(
                text("INSERT INTO reference_outcome (eb_id, value, reasons) VALUES (999999, 'Pass', '')")
            )


def test_seed_demo_skips_a_database_with_ebs(engine) -> None:
    sim.simulate(engine=engine, n=5, seed=1)
    assert sim.seed_demo_if_empty(engine=engine) is False
    assert _count(engine, "execution_block") == 5


def test_an_absurd_n_is_refused_before_anything_is_written(engine) -> None:
    def started(fraction: float, message: str) -> None:  # a regression fails here instead of running for hours
        raise AssertionError(f"simulate started: {message}")

    with pytest.raises(ValueError, match="more than 1,000,000 EBs"):
        sim.simulate(engine=engine, n=99_999_999_999, progress=started)
    assert _count(engine, "execution_block") == 0


@pytest.mark.parametrize("stop_at", ["ebs", "labels"], ids=["while-writing-ebs", "after-the-labels"])
def test_an_interrupted_simulate_takes_back_what_it_wrote(
    engine, stop_at: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qa0_label.sim import database

    sim.simulate(engine=engine, n=30, seed=1, aods=2, labeled=20)  # what was there before stays
    before = {t: _count(engine, t) for t in ("execution_block", "eb_detail", "reference_outcome", "label")}

    def ctrl_c(fraction: float, message: str) -> None:  # right after the first batch of EBs is committed
        if stop_at == "ebs" and message.startswith(f"{sim.CHUNK_EBS}/"):
            raise KeyboardInterrupt

    real = database._write_labels

    def labels_then_ctrl_c(*args, **kwargs) -> int:  # the labels are committed, then Ctrl-C
        real(*args, **kwargs)
        raise KeyboardInterrupt

    if stop_at == "labels":
        monkeypatch.setattr(database, "_write_labels", labels_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        sim.simulate(engine=engine, n=sim.CHUNK_EBS + 200, seed=2, aods=2, labeled=300, details_for=40, progress=ctrl_c)
    assert {t: _count(engine, t) for t in before} == before
