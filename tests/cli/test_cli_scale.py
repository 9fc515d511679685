"""`benchmark scale`: the JSON contract on a tiny pool, the concurrent phase's correctness checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa0_label import cli
from qa0_label.bench import scale as B


@pytest.fixture(autouse=True)
def _small_thresholds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QA0_MIN_LABELS", "20")
    monkeypatch.setenv("QA0_MODEL_DIR", str(tmp_path / "models"))


def test_scale_json_contract_and_reuse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'scale.sqlite'}"
    argv = [
        "--db",
        url,
        "benchmark",
        "scale",
        "--pool",
        "120",
        "--details-for",
        "15",
        "--labels",
        "90",
        "--calls",
        "6",
        "--json",
    ]
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pool"] == 120 and out["ebs"] == 120 and out["reused"] is False
    for key in ("next_ms", "label_ms", "detail_ms"):
        assert set(out[key]) >= {"p50", "p95"} and out[key]["n"] > 0
    assert out["retrain_s"] > 0 and out["detail_ebs"] == 15 and out["detail_rows"] > 15 * 100
    assert "ix_eb_detail_eb" in out["detail_plan"]  # the review page's query uses the eb_id index
    # A second run reuses the pool instead of adding EBs.
    assert cli.main([*argv, "--no-retrain"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["reused"] is True and again["ebs"] == 120 and "retrain_s" not in again


def test_bad_scale_arguments_exit_2(tmp_path: Path) -> None:
    assert cli.main(["--db", f"sqlite:///{tmp_path / 'x.sqlite'}", "benchmark", "scale", "--pool", "0"]) == 2


def test_concurrent_threads_phase_checks_hold(db_url: str) -> None:
    from qa0_label.sim.simulate import simulate
    from qa0_label.store.db import get_engine

    engine = get_engine(db_url)
    simulate(engine=engine, n=60, seed=1, details_for=0)
    r = B.writers_phase(engine=engine, url=db_url, writers=4, iterations=3, mode="threads", seed=5)
    assert r["errors"] == 0, r["error_samples"]
    assert r["labels_written"] == r["labels_stored"] == r["label_rows_added"] == 12, r
    assert r["labels_lost"] == 0 and r["errors"] == 0 and r["double_leases"] == 0


def test_double_lease_check() -> None:
    ok_overlap = [  # b got the EB only after a began to label it (overlap routing): fine
        {"who": "a", "holds": [(7, 0.0, 0.1, 0.2, 0.3)]},
        {"who": "b", "holds": [(7, 0.15, 0.25, 0.4, 0.5)]},
    ]
    assert B._check_holds(ok_overlap) == 0
    clash = [  # both held it before either began to label
        {"who": "a", "holds": [(7, 0.0, 0.1, 0.3, 0.4)]},
        {"who": "b", "holds": [(7, 0.05, 0.2, 0.5, 0.6)]},
    ]
    assert B._check_holds(clash) == 1


def test_think_time_paces_each_aod(db_url: str) -> None:
    from qa0_label.sim.simulate import simulate
    from qa0_label.store.db import get_engine

    engine = get_engine(db_url)
    simulate(engine=engine, n=40, seed=2, details_for=0)
    r = B.writers_phase(engine=engine, url=db_url, writers=2, iterations=3, mode="threads", seed=7, think_ms=200)
    assert r["think_ms"] == 200 and r["errors"] == 0 and r["labels_lost"] == 0 and r["labels_written"] == 6
    # Three labels per AoD with at least 0.5 x 200 ms after each: the phase cannot end sooner.
    assert r["wall_s"] >= 0.3


def test_negative_think_time_is_bad_input(tmp_path: Path) -> None:
    argv = ["--db", f"sqlite:///{tmp_path / 'x.sqlite'}", "benchmark", "scale", "--pool", "10", "--think-ms", "-1"]
    assert cli.main(argv) == 2
