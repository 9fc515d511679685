"""CLI side of issue 15: lead passphrases, names, rename / merge, missing databases, a running retrain."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from qa0_label import cli
from qa0_label.access.authz import try_unlock
from qa0_label.learning.training import HOST
from qa0_label.store.db import get_engine, session_scope
from qa0_label.store.models import ExecutionBlock, ModelRun, utcnow

UID = "uid://A002/X10d9399/Xae5e"


def _seed(db_url: str) -> None:
    with session_scope(get_engine(db_url)) as s:
        s.add(
            ExecutionBlock(uid=UID, source="J1256-0547", band=3, start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
        )


def test_set_passphrase_from_stdin_then_unlock(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(db_url)
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long lead passphrase\n"))
    assert cli.main(["--db", db_url, "role", "Lena", "lead", "--set-passphrase"]) == 0
    assert "Lena: lead (passphrase set)" in capsys.readouterr().out
    assert try_unlock(engine=get_engine(db_url), name="Lena", passphrase="a long lead passphrase").proof == "unlock"
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert cli.main(["--db", db_url, "role", "Lena", "lead", "--set-passphrase"]) == 2
    assert "at least" in capsys.readouterr().err
    assert cli.main(["--db", db_url, "role", "Ana", "aod", "--set-passphrase"]) == 2


@pytest.mark.parametrize(
    "bad", ["archive", "Model", "\x1b[31mred\x1b[0m", "a\u200bb", "evil\u202eman", "   "], ids=lambda b: repr(b)
)
def test_bad_names_exit_2_without_echoing_them(db_url: str, capsys: pytest.CaptureFixture[str], bad: str) -> None:
    _seed(db_url)
    for argv in (["label", UID, "--labeler", bad, "--value", "Pass"], ["next", "--labeler", bad], ["role", bad, "aod"]):
        assert cli.main(["--db", db_url, *argv]) == 2, argv
        err = capsys.readouterr().err
        assert "\x1b" not in err and "\u202e" not in err and "\u200b" not in err
    with session_scope(get_engine(db_url)) as s:
        assert s.connection().execute(text("SELECT COUNT(*) FROM label")).scalar_one() == 0


def test_names_differing_in_case_are_one_person(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(db_url)
    assert cli.main(["--db", db_url, "label", UID, "--labeler", "NewAoD", "--value", "Pass"]) == 0
    assert cli.main(["--db", db_url, "label", UID, "--labeler", "newaod", "--value", "Fail"]) == 0
    with session_scope(get_engine(db_url)) as s:
        assert s.connection().execute(text("SELECT name FROM labeler")).scalars().all() == ["NewAoD"]


def test_role_creates_only_a_lead_and_keeps_the_last_one(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(db_url)
    assert cli.main(["--db", db_url, "label", UID, "--labeler", "Kenji Tanaka", "--value", "Pass"]) == 0
    # A typo of an AoD is refused, not created; a new lead is how the owner starts a database (docs/security.md).
    assert cli.main(["--db", db_url, "role", "Kenji Tanka", "aod"]) == 2
    assert "no labeler named 'Kenji Tanka'" in capsys.readouterr().err
    assert cli.main(["--db", db_url, "role", "Lena", "lead"]) == 0
    assert cli.main(["--db", db_url, "role", "lena", "aod"]) == 2
    assert "Lena is the last lead: make someone else a lead first" in capsys.readouterr().err
    with session_scope(get_engine(db_url)) as s:
        roles = s.connection().execute(text("SELECT name, role FROM labeler ORDER BY id")).fetchall()
    assert [tuple(r) for r in roles] == [("Kenji Tanaka", "aod"), ("Lena", "lead")]


def test_merge_and_rename_need_a_lead(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(db_url)
    for who in ("Ana", "ana r"):
        assert cli.main(["--db", db_url, "label", UID, "--labeler", who, "--value", "Pass"]) == 0
    assert cli.main(["--db", db_url, "role", "Lena", "lead"]) == 0
    capsys.readouterr()
    # The matrix on the CLI: an unknown name or an AoD is refused; a lead named by the database owner is not.
    assert cli.main(["--db", db_url, "merge", "ana r", "Ana", "--lead", "Nobody"]) == 2
    assert cli.main(["--db", db_url, "merge", "ana r", "Ana", "--lead", "Ana"]) == 2
    assert "not a team lead" in capsys.readouterr().err
    assert cli.main(["--db", db_url, "merge", "ana r", "Ana", "--lead", "Lena"]) == 0
    assert "1 label events moved" in capsys.readouterr().out
    assert cli.main(["--db", db_url, "rename", "Ana", "Ana Rojas", "--lead", "lena"]) == 0
    with session_scope(get_engine(db_url)) as s:
        rows = s.connection().execute(
            text("SELECT kind, from_name, into_name, by_name FROM labeler_change ORDER BY id")
        )
        assert [tuple(r) for r in rows] == [("merge", "ana r", "Ana", "Lena"), ("rename", "Ana", "Ana Rojas", "Lena")]


@pytest.mark.parametrize(
    "argv",
    [
        ["next", "--labeler", "Ana"],
        ["export", "--out", "OUT/x.csv"],
        ["agreement"],
        ["label", UID, "--labeler", "Ana", "--value", "Pass"],
        ["predict", "--json"],
        ["export", "--out", "OUT/p.csv", "--predictions"],
        ["export", "--out", "OUT/c.csv", "--catalogue"],
        ["show", UID],
        ["retrain"],
        ["backup", "--out", "OUT/b.sqlite"],
        ["role", "Ana"],
    ],
    ids=lambda a: a[0],
)
def test_read_commands_refuse_a_missing_database_and_create_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "x.sqlite"
    argv = [a.replace("OUT", str(tmp_path)) for a in argv]
    assert cli.main(["--db", f"sqlite:///{missing}", *argv]) == 2
    err = capsys.readouterr().err
    assert f"no database at {missing}; create one with simulate or import" in err
    assert not (tmp_path / "no").exists()


def test_retrain_while_one_runs_is_refused_with_exit_2_naming_it(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    busy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = utcnow()
        with session_scope(get_engine(db_url), write=True) as s:
            s.add(
                ModelRun(version=7, status="running", started_at=started, heartbeat_at=started, pid=busy.pid, host=HOST)
            )
        assert cli.main(["--db", db_url, "retrain", "--quiet"]) == 2  # a refusal, as docs/cli.md says
        err = capsys.readouterr().err
        assert "already running (version 7, started " + started.strftime("%Y-%m-%d %H:%M") in err
    finally:
        busy.kill()
        busy.wait()
