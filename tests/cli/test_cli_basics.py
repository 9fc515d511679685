"""CLI contract: exit codes, messages without tracebacks, label command, backup, fast start."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from qa0_label import cli
from qa0_label.store.db import get_engine, session_scope
from qa0_label.store.models import ExecutionBlock


def _seed_one(db_url: str) -> str:
    uid = "uid://A002/X10d9399/Xae5e"
    with session_scope(get_engine(db_url)) as s:
        s.add(
            ExecutionBlock(uid=uid, source="J1256-0547", band=3, start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
        )
    return uid


def test_label_records_case_insensitive_value(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    uid = _seed_one(db_url)
    assert cli.main(["--db", db_url, "label", uid, "--labeler", "Ana", "--value", "semipass", "--comment", "=1+1"]) == 0
    assert "SemiPass" in capsys.readouterr().out
    with get_engine(db_url).connect() as conn:
        rows = conn.execute(
            text("SELECT l.value, l.comment, b.name, b.role FROM label l JOIN labeler b ON b.id = l.labeler_id")
        ).fetchall()
    assert [tuple(r) for r in rows] == [("SemiPass", "=1+1", "Ana", "aod")]


def test_commands_in_one_process_do_not_share_options(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # main() reuses one parser per process: options of one command must not leak into the next.
    uid = _seed_one(db_url)
    assert cli.main(["--db", db_url, "label", uid, "--labeler", "Ana", "--value", "Pass", "--comment", "first"]) == 0
    assert cli.main(["label", uid, "--labeler", "Bo", "--value", "Fail", "--db", db_url]) == 0
    assert cli.main(["--db", db_url, "label", "uid://none", "--labeler", "Ana", "--value", "Pass"]) == 2
    assert "recorded Fail" in capsys.readouterr().out
    with get_engine(db_url).connect() as conn:
        rows = conn.execute(
            text("SELECT b.name, l.value, l.comment FROM label l JOIN labeler b ON b.id = l.labeler_id ORDER BY l.id")
        ).fetchall()
    assert [tuple(r) for r in rows] == [("Ana", "Pass", "first"), ("Bo", "Fail", None)]


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["label", "uid://none", "--labeler", "Ana", "--value", "Pass"], "no EB with uid"),
        (["label", "UID", "--labeler", "Ana", "--value", "Maybe"], "unknown QA0 value"),
        (["label", "UID", "--labeler", "  ", "--value", "Pass"], "labeler name is empty"),
        (["export", "--out", "labels.txt"], "must end in .csv or .parquet"),
        (["simulate", "--n", "-1"], "must not be negative"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_message(
    db_url: str, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    uid = _seed_one(db_url)
    argv = [uid if a == "UID" else a for a in argv]
    assert cli.main(["--db", db_url, *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err


def test_db_flag_after_command_is_honoured(db_url: str) -> None:
    uid = _seed_one(db_url)
    assert cli.main(["label", uid, "--labeler", "Bo", "--value", "fail", "--db", db_url]) == 0


def test_label_subprocess_starts_without_sklearn(db_url: str, tmp_path: Path) -> None:
    uid = _seed_one(db_url)
    code = (
        "import sys; from qa0_label.cli import main; rc = main(sys.argv[1:]); "
        "assert 'sklearn' not in sys.modules and 'modAL' not in sys.modules, 'heavy import'; sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "--db", db_url, "label", uid, "--labeler", "Ana", "--value", "Pass"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.sqlite_only
def test_backup_makes_a_consistent_copy(db_url: str, tmp_path: Path) -> None:
    uid = _seed_one(db_url)
    assert cli.main(["--db", db_url, "label", uid, "--labeler", "Ana", "--value", "Pass"]) == 0
    out = tmp_path / "copy" / "backup.sqlite"
    assert cli.main(["--db", db_url, "backup", "--out", str(out)]) == 0
    copy = sqlite3.connect(out)
    assert copy.execute("SELECT value FROM label").fetchall() == [("Pass",)]
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert not out.with_name(out.name + ".partial").exists()


@pytest.mark.sqlite_only
def test_backup_refuses_to_overwrite_live_database(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _seed_one(db_url)
    assert cli.main(["--db", db_url, "backup", "--out", db_url.removeprefix("sqlite:///")]) == 2
    assert "must not overwrite" in capsys.readouterr().err


def test_backup_of_postgres_points_to_pg_dump(
    db_url: str, backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if backend == "sqlite":
        pytest.skip("PostgreSQL only")
    assert cli.main(["--db", db_url, "backup", "--out", str(tmp_path / "x.sqlite")]) == 2
    assert "pg_dump" in capsys.readouterr().err


def test_simulate_asking_for_impossible_labels_is_bad_input(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--db", db_url, "simulate", "--n", "2", "--aods", "1", "--labeled", "5", "--quiet"]) == 2
    assert "cannot come from" in capsys.readouterr().err


def test_role_sets_and_shows_and_refuses_unknown(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--db", db_url, "role", "  Carolina   Méndez ", "lead"]) == 0  # the first lead starts a database
    assert capsys.readouterr().out.strip() == "Carolina Méndez: lead"
    assert cli.main(["--db", db_url, "role", "Nobody Yet"]) == 2
    assert "no labeler named" in capsys.readouterr().err
    assert cli.main(["--db", db_url, "role", "Carolina Méndez"]) == 0
    assert capsys.readouterr().out.strip() == "Carolina Méndez: lead"
    assert cli.main(["--db", db_url, "role", "Carolina Méndez", "aod"]) == 2  # the only lead stays one
    assert "Carolina Méndez is the last lead" in capsys.readouterr().err
    assert cli.main(["--db", db_url, "role", "Ana Rojas", "lead"]) == 0
    assert cli.main(["--db", db_url, "role", "Carolina Méndez", "aod"]) == 0
    with session_scope(get_engine(db_url)) as s:
        roles = s.connection().execute(text("SELECT name, role FROM labeler ORDER BY id")).fetchall()
    assert [tuple(r) for r in roles] == [("Carolina Méndez", "aod"), ("Ana Rojas", "lead")]
    assert cli.main(["--db", db_url, "role", "x", "admin"]) == 2  # argparse refuses an unknown role
