"""CLI contract for the active-learning commands: next --json, retrain --json, benchmark al."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qa0_label import cli
from qa0_label.store.db import get_engine
from tests.db.al_pool import label, make_pool

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _small_thresholds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QA0_MIN_LABELS", "20")
    monkeypatch.setenv("QA0_MODEL_DIR", str(tmp_path / "models"))


def _run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> object:
    assert cli.main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_next_json_has_the_contract_keys(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    make_pool(get_engine(db_url), 30)
    out = _run_json(capsys, ["--db", db_url, "next", "--labeler", "Ana", "--json"])
    assert isinstance(out, dict)
    assert {"uid", "strategy", "uncertainty", "proba"} <= set(out)
    assert out["uid"].startswith("uid://") and out["strategy"] == "cold-start"
    assert out["uncertainty"] is None and out["proba"] is None
    # Asking again (a rerun) hands back the same EB.
    assert _run_json(capsys, ["--db", db_url, "next", "--labeler", "Ana", "--json"])["uid"] == out["uid"]


def test_retrain_json_then_next_uses_the_model(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    engine = get_engine(db_url)
    truth = make_pool(engine, 120)
    ids = sorted(truth)
    chosen = [next(e for e in ids if truth[e] == v) for v in ("Pass", "SemiPass", "Fail")]
    label(engine, chosen + [e for e in ids if e not in chosen][:40], "ana", truth)
    out = _run_json(capsys, ["--db", db_url, "retrain", "--json"])
    assert out["version"] == 1 and out["n_labels"] == 43
    assert isinstance(out["metrics"]["macro_f1"], float) and isinstance(out["metrics"]["balanced_accuracy"], float)
    nxt = _run_json(capsys, ["--db", db_url, "next", "--labeler", "Bo", "--json", "--strategy", "entropy"])
    assert nxt["strategy"] in {"entropy", "overlap", "random"}
    assert set(nxt["proba"]) == {"Pass", "SemiPass", "Fail"}
    assert abs(sum(nxt["proba"].values()) - 1.0) < 1e-6 and isinstance(nxt["uncertainty"], float)


def test_retrain_refusal_is_a_user_error(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    engine = get_engine(db_url)
    truth = make_pool(engine, 10)
    label(engine, sorted(truth)[:3], "ana", truth)
    assert cli.main(["--db", db_url, "retrain", "--json"]) == 2
    err = capsys.readouterr().err
    assert "at least 20" in err and "Traceback" not in err


def test_unknown_strategy_fails_with_a_message(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    make_pool(get_engine(db_url), 3)
    assert cli.main(["--db", db_url, "next", "--labeler", "Ana", "--strategy", "psychic"]) != 0
    assert "unknown strategy" in capsys.readouterr().err


@pytest.mark.sqlite_only
def test_next_json_in_a_subprocess(db_url: str, tmp_path: Path) -> None:
    make_pool(get_engine(db_url), 5)
    proc = subprocess.run(
        [sys.executable, "-m", "qa0_label", "--db", db_url, "next", "--labeler", "Cy", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["uid"].startswith("uid://")


def test_benchmark_al_replays_the_app_beside_both_baselines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["benchmark", "al", "--dataset", "wine", "--seeds", "1", "--budget", "20", "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert "[100.0%]" in captured.err  # progress on stderr, the JSON alone on stdout
    assert {"dataset", "seeds", "budget", "arms", "ratios"} <= set(out)
    assert out["dataset"] == "wine" and out["seeds"] == 1 and out["budget"] == 20
    assert set(out["arms"]) == {"app", "random", "modal", "modal_same_features"}
    for arm in out["arms"].values():
        assert len(arm["auc"]) == len(arm["f1_at_budget"]) == len(arm["labels_to_98"]) == 1
        assert 0.0 <= arm["auc"][0] <= 1.0
    assert set(out["ratios"]) == {
        "auc_app_over_random",
        "auc_app_over_modal",
        "auc_app_over_modal_same_features",
        "labels_to_98_random_over_app",
        "labels_to_98_random_over_app_at_least",
    }
    assert len(out["full_pool_f1"]) == len(out["full_pool_fail_recall"]) == 1
    assert set(out["ceilings"]) == {"auc_full_pool_over_random", "auc_perfect_over_random"}
    med = out["medians"]
    assert out["ratios"]["auc_app_over_modal"] == pytest.approx(med["app"]["auc"] / med["modal"]["auc"], abs=1e-3)
    # The app arm went through next_for: cold-start picks first, then the model's queue and random picks.
    picks = out["app_picks"][0]
    given = out["arms"]["app"]["curves"][0][-1][0]  # the arm stops once settled, at most at the horizon
    assert sum(picks.values()) == given and 20 <= given <= out["horizon"] and picks.get("cold-start", 0) >= 1
    assert picks.get("margin-diverse", 0) >= 1
    assert list(tmp_path.iterdir()) == []  # nothing written outside the temporary database


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--seeds", "0"], "argument --seeds: must be at least 1, got 0"),
        (["--csv", "missing.csv", "--label-column", "qa0"], "missing.csv: no such file"),
        (["--csv", "archive.csv", "--label-column", "grade"], "label column 'grade' is missing"),
        (["--csv", "archive.csv", "--label-column", "qa0"], "column 'qa0' has values other than"),
        (["--csv", "archive.csv"], "--label-column COL is needed"),
        (["--dataset", "iris"], "invalid choice"),
    ],
)
def test_benchmark_al_bad_input_exits_2_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], needle: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "archive.csv").write_text("qa0,a\nPass,1\nmaybe,2\n")
    assert cli.main(["benchmark", "al", *argv]) == 2
    assert needle in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive.csv"]
