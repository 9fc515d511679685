"""CLI of auto-QA0: predict --json, export --predictions / --catalogue, and the bad input the issue lists."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from qa0_label import cli
from qa0_label.store.db import dispose_engines, get_engine, session_scope
from tests.db import auto_pool


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return auto_pool.build(tmp_path_factory.mktemp("auto-cli") / "auto.sqlite")


@pytest.fixture
def url(template: Path, tmp_path: Path):
    u = auto_pool.copy(template, tmp_path)
    yield u
    dispose_engines()


def _uids(url: str, n: int) -> list[str]:
    with session_scope(get_engine(url)) as s:
        return [
            str(r[0])
            for r in s.connection().execute(text("SELECT uid FROM execution_block ORDER BY id LIMIT :n"), {"n": n})
        ]


def test_predict_json_is_one_object_per_eb(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--db", url, "predict", "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert len(items) == 600
    for item in items:
        assert set(item) >= {"uid", "decision", "proba", "set", "top_reasons"}
        assert item["decision"] in ("Pass", "SemiPass", "Fail", "needs_aod")
        assert set(item["proba"]) == {"Pass", "SemiPass", "Fail"}
        assert (len(item["set"]) == 1) == (item["decision"] != "needs_aod")
    assert {i["decision"] for i in items} - {"needs_aod"}


def test_predict_uids_file_and_alpha(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uids = _uids(url, 5)
    f = tmp_path / "uids.txt"
    f.write_text("# wanted\n" + "\n".join(uids[::-1]) + "\n\n")
    assert cli.main(["--db", url, "predict", "--uids", str(f), "--alpha", "0.01", "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert [i["uid"] for i in items] == uids[::-1]


def test_unknown_uid_exits_2_naming_the_line(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "uids.txt"
    f.write_text(_uids(url, 1)[0] + "\nuid://nope/X1\n")
    assert cli.main(["--db", url, "predict", "--uids", str(f), "--json"]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "uid://nope/X1" in err and "Traceback" not in err


@pytest.mark.parametrize("alpha", ["0", "0.5", "-1", "abc", "0.7"])
def test_alpha_outside_range_exits_2_naming_the_flag(url: str, alpha: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--db", url, "predict", "--alpha", alpha, "--json"]) == 2
    assert "--alpha" in capsys.readouterr().err
    assert cli.main(["--db", url, "export", "--predictions", "--alpha", alpha, "--out", "x.csv"]) == 2


def test_export_predictions_csv_and_parquet(url: str, tmp_path: Path) -> None:
    assert cli.main(["--db", url, "export", "--predictions", "--out", str(tmp_path / "p.csv")]) == 0
    assert cli.main(["--db", url, "export", "--predictions", "--out", str(tmp_path / "p.parquet")]) == 0
    a = pd.read_csv(tmp_path / "p.csv")
    b = pd.read_parquet(tmp_path / "p.parquet")
    assert len(a) == len(b) == 600 and list(a.columns) == list(b.columns)
    assert set(a["decision"]) <= {"Pass", "SemiPass", "Fail", "needs_aod"}


def test_catalogue_export_is_spreadsheet_safe(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine = get_engine(url)
    with session_scope(engine, write=True) as s:
        s.connection().execute(text("UPDATE execution_block SET source = '=HYPERLINK(\"x\")'"))
    out = tmp_path / "cat.csv"
    assert cli.main(["--db", url, "export", "--catalogue", "--out", str(out)]) == 0
    assert "Pass EBs" in capsys.readouterr().out
    frame = pd.read_csv(out)
    assert list(frame.columns) == [
        "uid",
        "source",
        "band",
        "freq_ghz",
        "flux_jy",
        "flux_err_jy",
        "spectral_index",
        "observed_at",
        "qa0",
        "qa0_basis",
    ]
    assert len(frame) and all(str(v).startswith("'=") for v in frame["source"])
    assert set(frame["qa0_basis"]) <= {"consensus", "adjudication", "auto"}


def test_export_refuses_two_kinds_at_once(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--db", url, "export", "--predictions", "--catalogue", "--out", str(tmp_path / "x.csv")]) == 2


def test_too_few_labels_say_why_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = auto_pool.build(tmp_path / "few.sqlite", n=150, labelled=50, alpha=None)
    assert cli.main(["--db", f"sqlite:///{path}", "predict", "--json"]) == 0
    out = capsys.readouterr()
    assert {i["decision"] for i in json.loads(out.out)} == {"needs_aod"}
    assert "too few held-out labels" in out.err and "114" in out.err
