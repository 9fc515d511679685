"""`agreement [--json]`: the docs/cli.md contract, over each labeler's current label, archive excluded."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from qa0_label import cli
from qa0_label.store import labels
from qa0_label.store.db import get_engine, session_scope
from qa0_label.store.models import ExecutionBlock


def _seed(db_url: str, rows: list[tuple[int, str, str]]) -> None:
    with session_scope(get_engine(db_url), write=True) as s:
        ebs = [
            ExecutionBlock(
                uid=f"uid://A002/Xcli/X{i}",
                source="J0522-3627",
                band=6,
                start_time=datetime(2024, 2, 1, i, tzinfo=timezone.utc),
            )
            for i in range(4)
        ]
        s.add_all(ebs)
        s.flush()
        for i, who, value in rows:
            labels.record_label(session=s, eb_id=ebs[i].id, labeler=who, value=value, system=who == "archive")


ANA_AND_BOB = [
    (0, "ana", "Pass"),
    (0, "bob", "Pass"),
    (1, "ana", "Fail"),
    (1, "bob", "SemiPass"),
    (2, "ana", "Pass"),
    (2, "bob", "Pass"),
    (2, "archive", "Fail"),
    (3, "ana", "Fail"),
    (3, "ana", "Pass"),  # ana's revision on EB 3 leaves it with one labeler
]


def test_agreement_json_contract(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(db_url, ANA_AND_BOB)
    assert cli.main(["--db", db_url, "agreement", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_items"] == 3
    assert [(p["a"], p["b"], p["n"]) for p in report["cohen_kappa"]] == [("ana", "bob", 3)]
    assert isinstance(report["cohen_kappa"][0]["kappa"], float)
    for key in ("fleiss_kappa", "krippendorff_alpha_nominal", "krippendorff_alpha_ordinal"):
        assert isinstance(report[key], float)


@pytest.mark.parametrize("rows", [[], [(0, "ana", "Pass"), (0, "bob", "Pass")]], ids=["empty", "all-same"])
def test_agreement_text_and_json_survive_undefined_statistics(
    db_url: str, capsys: pytest.CaptureFixture[str], rows: list[tuple[int, str, str]]
) -> None:
    _seed(db_url, rows)
    assert cli.main(["--db", db_url, "agreement"]) == 0
    assert "n/a" in capsys.readouterr().out
    assert cli.main(["--db", db_url, "agreement", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fleiss_kappa"] is None and report["notes"]


def test_accepted_suggestions_are_left_out_unless_asked(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from sqlmodel import select

    from qa0_label.automation import accept
    from qa0_label.store.models import Label, Labeler

    _seed(db_url, [(0, "ana", "Pass"), (0, "bob", "Pass"), (1, "ana", "Fail"), (1, "bob", "Fail")])
    with session_scope(get_engine(db_url), write=True) as s:
        eb = s.exec(select(ExecutionBlock).where(ExecutionBlock.uid == "uid://A002/Xcli/X1")).one()
        bob = s.exec(select(Labeler).where(Labeler.name == "bob")).one()
        bobs = s.exec(select(Label).where(Label.eb_id == eb.id, Label.labeler_id == bob.id)).one()
        accept.mark_accepted(session=s, label_id=int(bobs.id or 0), run_id=None, suggested="Fail")
    assert cli.main(["--db", db_url, "agreement", "--json"]) == 0
    own = json.loads(capsys.readouterr().out)
    assert own["n_items"] == 1 and own["accepted_suggestions_left_out"] == 1
    assert cli.main(["--db", db_url, "agreement", "--json", "--include-accepted"]) == 0
    every = json.loads(capsys.readouterr().out)
    assert every["n_items"] == 2 and every["accepted_suggestions_left_out"] == 0
    assert cli.main(["--db", db_url, "agreement"]) == 0
    assert "left out: 1 accepted model suggestions" in capsys.readouterr().out


def _strict_json(text: str) -> dict:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_agreement_gives_the_lead_pages_per_aod_figures(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(db_url, ANA_AND_BOB)
    assert cli.main(["--db", db_url, "agreement", "--json"]) == 0
    report = _strict_json(capsys.readouterr().out)  # no NaN: nothing to compare is null
    rows = {r["labeler"]: r for r in report["per_aod"]}
    assert set(rows) == {"ana", "bob"}  # the archive's system labels are not an AoD
    ana = rows["ana"]
    assert (ana["n_labels"], ana["n_vs_consensus"]) == (4, 3)
    assert ana["agreement_with_consensus"] == pytest.approx(2 / 3)
    assert ana["share_pass"] == pytest.approx(3 / 4)
    assert ana["gold_n"] == 0 and ana["gold_accuracy"] is None and ana["agreement_with_model"] is None
    assert report["per_aod_model_version"] is None
    assert cli.main(["--db", db_url, "agreement"]) == 0
    assert "ana: 4 labels, 67% agree with the others' majority over 3 EBs" in capsys.readouterr().out
