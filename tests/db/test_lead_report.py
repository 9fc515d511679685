"""lead_report on a real database: cache keys move with every change, archive stays out, model runs and gold."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from qa0_label.lead import adjudication as adj
from qa0_label.lead import agreement
from qa0_label.lead import report as lead_report
from qa0_label.store import labels
from qa0_label.store.db import session_scope
from qa0_label.store.models import ExecutionBlock, ModelRun, utcnow


def _add_ebs(engine, n: int) -> list[int]:
    start = datetime(2024, 5, 1, 3, 0, tzinfo=timezone.utc)
    with session_scope(engine) as s:
        ebs = [
            ExecutionBlock(
                uid=f"uid://A002/Xlead/X{i:x}", source="J1924-2914", band=3, start_time=start + timedelta(hours=i)
            )
            for i in range(n)
        ]
        s.add_all(ebs)
        s.flush()
        return [int(eb.id) for eb in ebs]


def _label(engine, eb: int, who: str, value: str, seconds: float | None = None) -> None:
    with session_scope(engine, write=True) as s:
        labels.record_label(
            session=s, eb_id=eb, labeler=who, system=who == "archive", value=value, seconds_on_eb=seconds
        )


def _state(engine) -> tuple[int, tuple[int, str], int]:
    with session_scope(engine) as s:
        return (
            lead_report.newest_label_id(session=s),
            lead_report.gold_state(session=s),
            lead_report.latest_done_version(session=s),
        )


def _add_run(engine, version: int, status: str, metrics: dict | None, n_labels: int = 10) -> None:
    with session_scope(engine, write=True) as s:
        s.add(ModelRun(version=version, status=status, metrics=metrics, n_labels=n_labels, finished_at=utcnow()))


@pytest.fixture
def team(engine):
    """Six EBs and a lead 'lena'; returns (engine, eb ids)."""
    ebs = _add_ebs(engine, 6)
    with session_scope(engine) as s:
        labels.set_role(session=s, name="lena", role="lead", create=True)
    return engine, ebs


def test_empty_database_gives_empty_answers(engine) -> None:
    assert _state(engine) == (0, (0, ""), 0)
    with session_scope(engine) as s:
        overview = lead_report.agreement_overview(session=s, n_boot=50)
        per_aod = lead_report.per_aod_table(session=s)
        assert lead_report.model_vs_aods(session=s) is None
        assert lead_report.model_history(session=s).empty
    assert overview["report"]["n_items"] == 0
    assert overview["report"]["fleiss_kappa"] is None
    assert overview["report"]["notes"], "the n/a is explained"
    assert overview["trend"].empty and overview["labels"].empty and overview["labelers"] == []
    assert per_aod["table"].empty and not per_aod["has_model_predictions"]
    assert lead_report.summary_table(overview["report"])["value"].isna().all()
    assert lead_report.kappa_pairs(overview["report"]).empty


def test_state_keys_move_with_labels_undo_adjudication_and_gold(team) -> None:
    engine, (e1, e2, *_) = team
    seen = [_state(engine)]
    _label(engine, e1, "ana", "Pass")
    seen.append(_state(engine))
    with session_scope(engine, write=True) as s:
        labels.undo_last(session=s, labeler="ana")
    seen.append(_state(engine))
    with session_scope(engine, write=True) as s:
        adj.adjudicate(session=s, eb_id=e1, lead="lena", value="Fail", reason="spw 3 ripple")
    seen.append(_state(engine))
    label_ids = [x[0] for x in seen]
    assert label_ids == sorted(label_ids) and len(set(label_ids)) == 4

    gold_states = [_state(engine)[1]]
    with session_scope(engine, write=True) as s:
        adj.mark_gold(session=s, eb_id=e1, lead="lena", value="Fail", reason="r")
    gold_states.append(_state(engine)[1])
    with session_scope(engine, write=True) as s:
        adj.mark_gold(session=s, eb_id=e1, lead="lena", value="Pass", reason="changed my mind")
    gold_states.append(_state(engine)[1])
    with session_scope(engine, write=True) as s:
        adj.unmark_gold(session=s, eb_id=e1, lead="lena")
    gold_states.append(_state(engine)[1])
    assert len(set(gold_states[:3])) == 3, "marking and changing a gold value change the key"
    assert gold_states[3] != gold_states[2] and gold_states[3][0] == 0
    assert _state(engine)[0] == label_ids[-1], "gold changes leave the label key alone"


def test_overview_uses_current_labels_without_archive(team) -> None:
    engine, (e1, e2, e3, *_) = team
    for eb, a, b in ((e1, "Pass", "Fail"), (e2, "Pass", "Pass"), (e3, "SemiPass", "Fail")):
        _label(engine, eb, "ana", a)
        _label(engine, eb, "bob", b)
    _label(engine, e1, "ana", "Fail")  # a revision replaces, it does not add
    _label(engine, e2, "archive", "Fail")  # the importer is no rater
    with session_scope(engine) as s:
        overview = lead_report.agreement_overview(session=s, n_boot=50)
    report = overview["report"]
    assert report["n_items"] == 3 and report["n_labelers"] == 2
    assert overview["labelers"] == ["ana", "bob"]
    assert report["percent_agreement"] == pytest.approx(2 / 3)
    (pair,) = report["cohen_kappa"]
    assert pair["kappa"] == pytest.approx(agreement.cohen_kappa(["Fail", "Pass", "SemiPass"], ["Fail", "Pass", "Fail"]))
    assert "comment" not in overview["labels"].columns
    table = lead_report.summary_table(report)
    assert table.set_index("statistic").loc["Percent agreement", "value"] == pytest.approx(2 / 3)
    trend = lead_report.alpha_trend_frame(overview["trend"])
    assert list(trend.columns) == ["week", "alpha_nominal", "alpha_ordinal", "low", "high", "n"]
    assert int(trend["n"].sum()) == 3


def test_per_aod_table_scores_gold_and_speed(team) -> None:
    engine, (e1, e2, e3, *_) = team
    _label(engine, e1, "ana", "Pass", seconds=10)
    _label(engine, e2, "ana", "Fail", seconds=30)
    _label(engine, e3, "ana", "Fail", seconds=50)
    _label(engine, e1, "bob", "Fail", seconds=20)
    with session_scope(engine, write=True) as s:
        adj.mark_gold(session=s, eb_id=e1, lead="lena", value="Fail", reason="dead antennas")
        adj.mark_gold(session=s, eb_id=e2, lead="lena", value="Fail", reason="Tsys")
    with session_scope(engine) as s:
        data = lead_report.per_aod_table(session=s)
    table = data["table"].set_index("labeler")
    assert table.loc["ana", "n_labels"] == 3
    assert table.loc["ana", "median_seconds"] == pytest.approx(30.0)
    assert table.loc["ana", "share_fail"] == pytest.approx(2 / 3)
    assert (table.loc["ana", "gold_n"], table.loc["ana", "gold_accuracy"]) == (2, pytest.approx(0.5))
    assert (table.loc["bob", "gold_n"], table.loc["bob", "gold_accuracy"]) == (1, pytest.approx(1.0))
    assert table.loc["ana", "agreement_with_consensus"] == pytest.approx(0.0)  # on e1 bob said Fail
    assert np.isnan(table.loc["ana", "agreement_with_model"]) and not data["has_model_predictions"]


def test_model_history_and_latest_run_from_stored_metrics(team) -> None:
    engine, _ = team
    m1 = [[8, 1, 1], [2, 3, 1], [1, 0, 3]]
    m2 = [[9, 1, 0], [1, 5, 0], [0, 0, 4]]
    _add_run(engine, 1, "done", {"confusion_matrix": m1, "labels": ["Pass", "SemiPass", "Fail"], "macro_f1": 0.6})
    _add_run(engine, 2, "failed", None)
    _add_run(
        engine,
        3,
        "done",
        {
            "confusion_matrix": m2,
            "labels": ["Pass", "SemiPass", "Fail"],
            "per_class_recall": {"Pass": 0.9, "SemiPass": 5 / 6, "Fail": 1.0},
        },
        n_labels=20,
    )
    _add_run(engine, 4, "running", None)
    assert _state(engine)[2] == 3
    with session_scope(engine) as s:
        history = lead_report.model_history(session=s)
        latest = lead_report.model_vs_aods(session=s)
    assert history["version"].tolist() == [1, 3], "only finished runs, oldest first"
    assert history["kappa"].tolist() == pytest.approx(
        [lead_report.kappa_from_confusion(m1), lead_report.kappa_from_confusion(m2)]
    )
    assert history.loc[0, "recall_fail"] == pytest.approx(3 / 4), "recall derived from the matrix when not stored"
    assert history.loc[1, "macro_f1"] != history.loc[1, "macro_f1"], "NaN when the run did not store it"
    assert latest is not None and latest["version"] == 3 and latest["n_labels"] == 20
    assert latest["kappa"] == pytest.approx(lead_report.kappa_from_confusion(m2))
    assert latest["n"] == 20 and latest["accuracy"] == pytest.approx(18 / 20)
    assert latest["per_class_recall"]["SemiPass"] == pytest.approx(5 / 6)
    assert "confusion matrix" in latest["source"]


def test_out_of_fold_predictions_fill_the_model_columns(team) -> None:
    engine, (e1, e2, e3, e4, *_) = team
    for eb, value in ((e1, "Pass"), (e2, "Fail"), (e3, "SemiPass"), (e4, "Pass")):
        _label(engine, eb, "ana", value)
    _label(engine, e1, "bob", "Pass")
    oof = {str(e1): "Pass", str(e2): "Pass", str(e3): "SemiPass"}  # JSON object keys are strings
    _add_run(engine, 1, "done", {"confusion_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "oof_predictions": oof})
    with session_scope(engine) as s:
        data = lead_report.per_aod_table(session=s)
        latest = lead_report.model_vs_aods(session=s)
        cons = labels.consensus(s)
    table = data["table"].set_index("labeler")
    assert data["has_model_predictions"] and data["model_version"] == 1
    assert table.loc["ana", "n_vs_model"] == 3
    assert table.loc["ana", "agreement_with_model"] == pytest.approx(2 / 3)
    assert table.loc["bob", "agreement_with_model"] == pytest.approx(1.0)
    expected = agreement.model_vs_consensus(
        cons[["eb_id", "value"]], pd.Series({e1: "Pass", e2: "Pass", e3: "SemiPass"})
    )
    assert latest is not None and "out-of-fold predictions" in latest["source"]
    assert latest["n"] == 3 and latest["accuracy"] == pytest.approx(expected["accuracy"])
    assert latest["kappa"] == pytest.approx(expected["kappa"])
