"""CLI import/export: exit codes 0/2, messages naming file, line and column, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from qa0_label import cli
from qa0_label.store.db import get_engine

ROOT = Path(__file__).resolve().parents[2]
HEADER = "uid,source,band,start_time,pwv_mm,qa0_status,comment_text\n"
GOOD = (
    HEADER
    + "uid://A002/X1/X1,J1256-0547,B3,2024-05-01T03:12:00Z,0.9,Pass,fine\n"
    + "uid://A002/X1/X2,J0319+4130,Band 6,2024-05-01 04:00:00,,semipass,\n"
)
BAD = HEADER + "uid://A002/X1/X1,J1256-0547,B3,2024-05-01T03:12:00Z,0.9,Pass,\nuid://A002/X1/X3,J1,X12,2024-05-01,,,\n"


def run(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    """`python -m qa0_label` in a fresh process, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "qa0_label", "--db", db, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )


def count(db_url: str, table: str) -> int:
    with get_engine(db_url).connect() as conn:
        return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


# --- subprocess: the real entry point --------------------------------------------------------


def test_subprocess_import_then_export(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/x.sqlite"
    ebs = tmp_path / "ebs.csv"
    ebs.write_text(GOOD)
    done = run("import", str(ebs), "--quiet", db=db)
    assert done.returncode == 0, done.stderr
    assert "inserted: 2" in done.stdout and "labels_added: 2" in done.stdout
    assert "comment_text" in done.stdout  # an ignored column is mentioned
    out = tmp_path / "labels.csv"
    exported = run("export", "--out", str(out), db=db)
    assert exported.returncode == 0, exported.stderr
    assert "wrote 2 label events" in exported.stdout
    assert pd.read_csv(out)["value"].tolist() == ["Pass", "SemiPass"]


def test_subprocess_refused_import_exits_2_without_traceback(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/x.sqlite"
    ebs = tmp_path / "ebs.csv"
    ebs.write_text(BAD)
    done = run("import", str(ebs), db=db)
    assert done.returncode == 2
    assert f"{ebs}: line 3, column band: unknown band 'X12'" in done.stderr
    assert "Traceback" not in done.stderr
    assert count(db, "execution_block") == 0


def test_subprocess_missing_file_exits_2(tmp_path: Path) -> None:
    done = run("import", str(tmp_path / "absent.csv"), db=f"sqlite:///{tmp_path}/x.sqlite")
    assert done.returncode == 2
    assert "absent.csv: no such file" in done.stderr and "Traceback" not in done.stderr


# --- in-process: the rest --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,content,needle",
    [
        ("ebs.txt", GOOD, "unsupported file type '.txt'"),
        ("ebs.csv", "", "the file is empty"),
        ("ebs.csv", HEADER, "no data rows"),
        ("ebs.csv", "uid,source,band\nu1,J1,3\n", "line 1, column start_time: required column 'start_time' is missing"),
        ("ebs.csv", HEADER + "u1,J1,3,2024-01-01,-2,,\n", "line 2, column pwv_mm: -2 must not be negative"),
        ("ebs.csv", HEADER + "u1,J1,3,2024-01-01,,Unknown,\n", "line 2, column qa0_status: unknown qa0_status"),
        ("ebs.csv", HEADER + "u1,J1,3,2024-01-01,1,,\nu1,J1,3,2024-01-01,2,,\n", "line 3, column uid"),
    ],
)
def test_bad_input_exits_2(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: str, needle: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    assert cli.main(["--db", db_url, "import", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert count(db_url, "execution_block") == 0


def test_bad_details_exit_2_and_nothing_is_written(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ebs, det = tmp_path / "ebs.csv", tmp_path / "det.csv"
    ebs.write_text(GOOD)
    det.write_text("uid,antenna,spw,scan,tsys_k\nuid://A002/X1/X1,DA41,0,1,80\nuid://A002/X9/X9,DA41,0,1,80\n")
    assert cli.main(["--db", db_url, "import", str(ebs), "--details", str(det), "--quiet"]) == 2
    assert f"{det}: line 3, column uid: no EB with uid" in capsys.readouterr().err
    assert count(db_url, "execution_block") == 0


def test_import_with_details_and_reimport(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ebs, det = tmp_path / "ebs.csv", tmp_path / "det.csv"
    ebs.write_text(GOOD)
    det.write_text(
        "uid,antenna,spw,scan,tsys_k,flagged\nuid://A002/X1/X1,DA41,0,1,80,no\nuid://A002/X1/X1,DA42,0,1,95,yes\n"
    )
    argv = ["--db", db_url, "import", str(ebs), "--details", str(det), "--quiet"]
    assert cli.main(argv) == 0
    assert "detail_rows: 2" in capsys.readouterr().out
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "inserted: 0" in out and "updated: 2" in out and "labels_added: 0" in out
    assert (count(db_url, "execution_block"), count(db_url, "eb_detail"), count(db_url, "label")) == (2, 2, 2)


def test_export_current_and_parquet(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ebs = tmp_path / "ebs.csv"
    ebs.write_text(GOOD)
    assert cli.main(["--db", db_url, "import", str(ebs), "--quiet"]) == 0
    assert (
        cli.main(
            [
                "--db",
                db_url,
                "label",
                "uid://A002/X1/X1",
                "--labeler",
                "ana",
                "--value",
                "fail",
                "--comment",
                "=cmd|' /C calc'!A0",
            ]
        )
        == 0
    )
    assert cli.main(["--db", db_url, "label", "uid://A002/X1/X1", "--labeler", "ana", "--value", "pass"]) == 0
    capsys.readouterr()
    events, current = tmp_path / "events.parquet", tmp_path / "current.csv"
    assert cli.main(["--db", db_url, "export", "--out", str(events)]) == 0
    assert cli.main(["--db", db_url, "export", "--out", str(current), "--current"]) == 0
    assert "wrote 3 current labels" in capsys.readouterr().out
    assert len(pd.read_parquet(events)) == 4
    frame = pd.read_csv(current, dtype=str, keep_default_na=False)
    assert frame[["labeler", "value"]].values.tolist() == [
        ["archive", "Pass"],
        ["archive", "SemiPass"],
        ["ana", "Pass"],
    ]
    raw = tmp_path / "all.csv"
    assert cli.main(["--db", db_url, "export", "--out", str(raw)]) == 0
    assert "'=cmd|' /C calc'!A0" in raw.read_text()
