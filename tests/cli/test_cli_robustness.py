"""CLI robustness: bad --db URLs, output and input paths, number ranges, non-UTF-8 arguments, closed pipes and
Ctrl-C during an import all end with a one-line message and the documented exit code, never a traceback or a
bare exception class name."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from qa0_label import cli
from qa0_label.store.db import dispose_engines, get_engine, session_scope
from qa0_label.store.models import ExecutionBlock

ROOT = Path(__file__).resolve().parents[2]
UID = "uid://A002/X10d9399/Xae5e"
GOOD = (
    "uid,source,band,start_time,qa0_status\n"
    "uid://A002/X1/X1,J1256-0547,B3,2024-05-01T03:12:00Z,Pass\n"
    "uid://A002/X1/X2,J0319+4130,Band 6,2024-05-01 04:00:00,SemiPass\n"
)
CLASS_NAME = re.compile(r"\b[A-Z]\w*(Error|Exception|Refused|Running)\b")


def _seed(db_url: str) -> None:
    with session_scope(get_engine(db_url)) as s:
        s.add(
            ExecutionBlock(uid=UID, source="J1256-0547", band=3, start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
        )


def _count(db_url: str, table: str) -> int:
    with get_engine(db_url).connect() as conn:
        return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    """Run ARGV in-process: exit 2, every needle in stderr, no traceback and no exception class name."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err
    assert "Traceback" not in err and not CLASS_NAME.search(err), err
    return err


# --- --db -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("db", "needle"),
    [
        ("bogus://x", "--db bogus://x: not a SQLite or PostgreSQL URL (sqlite:///path or postgresql+psycopg://"),
        ("notaurl", "--db notaurl: not a database URL (sqlite:///path or postgresql+psycopg://"),
        ("mysql://ana@host/qa0", "--db mysql://ana@host/qa0: not a SQLite or PostgreSQL URL"),
        ("postgresql+nosuchdriver://ana@host/qa0", "unknown database driver 'postgresql+nosuchdriver'"),
        ("", "argument --db: must not be empty"),
        ("sqlite:///DIR", "is a directory, not a database file"),
        ("sqlite:///DIR/notes.txt", "cannot open it as a SQLite database (file is not a database)"),
    ],
)
@pytest.mark.parametrize("command", [["show", UID], ["simulate", "--n", "1", "--quiet"]], ids=["show", "simulate"])
def test_a_bad_db_url_exits_2_naming_db(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db: str, needle: str, command: list[str]
) -> None:
    (tmp_path / "notes.txt").write_text("not a database\n")
    db = db.replace("DIR", str(tmp_path))
    _refused(capsys, ["--db", db, *command], needle)
    assert (tmp_path / "notes.txt").read_text() == "not a database\n"


def test_a_new_database_whose_path_runs_through_a_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("")
    db = f"sqlite:///{tmp_path / 'notes.txt' / 'x.sqlite'}"
    _refused(capsys, ["--db", db, "simulate", "--n", "1", "--quiet"], "a part of the path is a file, not a folder")


def test_a_db_url_names_its_environment_variable_and_hides_the_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QA0_DATABASE_URL", "oracle://ana:secret@host/qa0")
    err = _refused(capsys, ["show", UID], "$QA0_DATABASE_URL oracle://ana:***@host/qa0: not a SQLite or PostgreSQL")
    assert "secret" not in err


@pytest.mark.parametrize(
    "argv",
    [["retrain", "--quiet"], ["backup", "--out", "OUT/b.sqlite"], ["role", "Ana"], ["role", "Ana", "aod"]],
    ids=lambda a: " ".join(a[:3]),
)
def test_more_commands_refuse_a_missing_database_and_create_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    missing = tmp_path / "no" / "such" / "x.sqlite"
    argv = [a.replace("OUT", str(tmp_path)) for a in argv]
    _refused(capsys, ["--db", f"sqlite:///{missing}", *argv], f"no database at {missing}")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_role_lead_still_starts_a_new_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'new' / 'qa0.sqlite'}"
    assert cli.main(["--db", db, "role", "Lena", "lead"]) == 0
    assert cli.main(["--db", db, "role", "Lena"]) == 0
    assert capsys.readouterr().out.splitlines() == ["Lena: lead", "Lena: lead"]


# --- output paths -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["export", "backup"])
def test_an_output_path_that_cannot_be_written_exits_2_naming_out(
    db_url: str, backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    if backend != "sqlite" and command == "backup":
        pytest.skip("backup copies SQLite files")
    _seed(db_url)
    name = "x.csv" if command == "export" else "x.sqlite"
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "file").write_text("")
    for out, needle in [
        (tmp_path / "folder.csv", "is a directory; give a file name"),
        (tmp_path / "file" / name, f"{tmp_path / 'file'} is a file, not a folder"),
    ]:
        _refused(capsys, ["--db", db_url, command, "--out", str(out)], f"argument --out: {out}: {needle}")
    if Path("/proc/self").is_dir():  # a folder no one can create files in, even root
        _refused(capsys, ["--db", db_url, command, "--out", f"/proc/{name}"], f"--out /proc/{name}: cannot create")


def _failing_write(code: int) -> Callable[..., int]:
    def write(frame: object, out: Path) -> int:
        # What writing beside OUT raises: the OSError names the hidden temp file, not OUT.
        raise OSError(code, os.strerror(code), str(out.with_name(f".{out.name}.1.partial")))

    return write


@pytest.mark.parametrize(
    ("code", "exit_code", "reason"),
    [(errno.EACCES, 2, "permission denied"), (errno.EROFS, 2, "read-only file system"), (errno.ENOSPC, 1, "no space")],
)
def test_a_failed_export_names_out_not_its_temp_file(
    db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    code: int,
    exit_code: int,
    reason: str,
) -> None:
    _seed(db_url)
    monkeypatch.setattr("qa0_label.ingest.export.write_frame", _failing_write(code))
    out = tmp_path / "labels.csv"
    assert cli.main(["--db", db_url, "export", "--out", str(out)]) == exit_code
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {out}: {reason}") and ".partial" not in err, err
    assert not CLASS_NAME.search(err)


# --- input paths ------------------------------------------------------------------------------


def test_predict_uids_that_cannot_be_read_exit_2_naming_uids(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(db_url)
    _refused(capsys, ["--db", db_url, "predict", "--uids", str(tmp_path)], f"--uids {tmp_path}: is a directory")
    locked = tmp_path / "uids.txt"
    locked.write_text(UID + "\n")

    def unreadable(engine: object, path: Path) -> list[int]:  # what open() raises for a file without read access
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr("qa0_label.automation.predict.check_uids", unreadable)
    _refused(capsys, ["--db", db_url, "predict", "--uids", str(locked)], f"--uids {locked}: permission denied")


def test_import_refuses_an_empty_details_path(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ebs = tmp_path / "ebs.csv"
    ebs.write_text(GOOD)
    _refused(capsys, ["--db", db_url, "import", str(ebs), "--details", "", "--quiet"], "argument --details: empty path")
    _refused(capsys, ["--db", db_url, "import", "", "--quiet"], "argument path: empty path")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--first-seed", "-1"], "argument --first-seed: must be at least 0, got -1"),
        (["--budget", "0"], "argument --budget: must be at least 1, got 0"),
        (["--horizon", "0"], "argument --horizon: must be at least 1, got 0"),
        (["--budget", "x"], "argument --budget: 'x' is not a whole number"),
        (["--csv", "DIR", "--label-column", "qa0"], "is a directory, not a file"),
    ],
)
def test_benchmark_al_out_of_range_numbers_and_unreadable_csv_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    # wine and one seed: without the checks a wrong value runs a short benchmark (exit 0) instead of an hour's.
    base = ["benchmark", "al", "--quiet", "--dataset", "wine", "--seeds", "1"]
    _refused(capsys, [*base, *[a.replace("DIR", str(tmp_path)) for a in argv]], needle)


def test_benchmark_al_unreadable_csv_says_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qa0_label.bench.datasets import BenchInputError, csv_table

    def unreadable(path: Path, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr("pandas.read_csv", unreadable)
    with pytest.raises(BenchInputError, match="archive.csv: permission denied"):
        csv_table(tmp_path / "archive.csv", "qa0")


def test_benchmark_al_budget_zero_is_not_the_default(tmp_path: Path) -> None:
    from qa0_label.bench.al import run_benchmark
    from qa0_label.bench.datasets import BenchInputError

    with pytest.raises(BenchInputError, match="--budget must be positive"):
        run_benchmark(dataset="wine", seeds=1, budget=0)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--labels", "-1"], "argument --labels: must be at least 0, got -1"),
        (["--aods", "-1"], "argument --aods: must be at least 1, got -1"),
        (["--aods", "0", "--labels", "5000"], "argument --aods: must be at least 1, got 0"),
        (["--think-ms", "nan"], "argument --think-ms: must be a number >= 0"),
        (["--seed", "-3"], "argument --seed: must be at least 0"),
    ],
)
def test_benchmark_scale_out_of_range_numbers_exit_2_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    _refused(
        capsys, ["--db", f"sqlite:///{tmp_path / 's.sqlite'}", "benchmark", "scale", "--pool", "10", *argv], needle
    )
    assert list(tmp_path.iterdir()) == []


def test_benchmark_scale_without_labels_to_train_on_exits_2_on_a_line_of_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QA0_MODEL_DIR", str(tmp_path / "models"))
    argv = ["--db", f"sqlite:///{tmp_path / 's.sqlite'}", "benchmark", "scale", "--pool", "30", "--labels", "0"]
    err = _refused(capsys, [*argv, "--details-for", "0", "--calls", "1"], "(give --labels N, or --no-retrain)")
    assert any(line.startswith("error: only 0 labelled EBs") for line in err.split("\n")), repr(err)


# --- other arguments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["label", UID, "--labeler", "Ana", "--value", "pass", "--comment", "bad\udcff"], "--comment: not UTF-8 text"),
        (["show", "uid\udcff"], "uid: not UTF-8 text (byte 0xff at position 4)"),
        (["label", UID, "--labeler", "An\udce9", "--value", "pass"], "--labeler: not UTF-8 text (byte 0xe9"),
    ],
)
def test_an_argument_that_is_not_utf8_exits_2_naming_it(
    db_url: str, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    _seed(db_url)
    _refused(capsys, ["--db", db_url, *argv], needle)
    assert _count(db_url, "label") == 0


def test_export_alpha_is_checked_and_goes_with_predictions_only(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(db_url)
    out = tmp_path / "labels.csv"
    _refused(capsys, ["--db", db_url, "export", "--out", str(out), "--alpha", "0.9"], "--alpha: alpha must be in")
    _refused(
        capsys, ["--db", db_url, "export", "--out", str(out), "--alpha", "0.1"], "--alpha applies to --predictions"
    )
    assert not out.exists()


def test_export_predictions_without_a_model_exits_2_and_writes_nothing(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(db_url)
    out = tmp_path / "p.csv"
    err = _refused(capsys, ["--db", db_url, "export", "--predictions", "--out", str(out)], "no model yet: run retrain")
    assert "vNone" not in err and not out.exists()
    assert cli.main(["--db", db_url, "predict"]) == 0
    assert capsys.readouterr().out.startswith("no model yet, alpha")


# --- closed pipes and Ctrl-C ------------------------------------------------------------------


@pytest.mark.sqlite_only
@pytest.mark.parametrize("argv", [["show", UID, "--json"], ["agreement", "--json"]], ids=["show", "agreement"])
def test_a_closed_output_pipe_ends_quietly_with_exit_1(db_url: str, backend: str, argv: list[str]) -> None:
    _seed(db_url)
    dispose_engines()
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes (`| true` that already exited)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "qa0_label", "--db", db_url, *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    finally:
        os.close(write_end)
    assert done.returncode == 1
    assert done.stderr == ""


def _interrupt_at(message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C when the import reports MESSAGE (after the progress line shows it)."""
    real = cli._progress_printer

    def printer(quiet: bool) -> Callable[[float, str], None]:
        show = real(False)
        assert show is not None

        def report(fraction: float, text: str) -> None:
            show(fraction, text)
            if text.startswith(message):
                raise KeyboardInterrupt

        return report

    monkeypatch.setattr(cli, "_progress_printer", printer)


@pytest.mark.parametrize("at", ["checked", "writing", "wrote"])
def test_ctrl_c_during_an_import_ends_the_progress_line_and_says_nothing_was_imported(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, at: str
) -> None:
    ebs = tmp_path / "ebs.csv"
    ebs.write_text(GOOD)
    _interrupt_at(at, monkeypatch)
    assert cli.main(["--db", db_url, "import", str(ebs)]) == 1
    lines = capsys.readouterr().err.split("\n")
    assert lines[-2:] == ["interrupted: nothing was imported", ""]
    assert at in lines[-3]  # the progress line, ended before the message
    assert _count(db_url, "execution_block") == 0 and _count(db_url, "label") == 0


def test_ctrl_c_after_the_commit_says_the_import_was_written(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ebs = tmp_path / "ebs.csv"
    ebs.write_text(GOOD)
    _interrupt_at("done", monkeypatch)
    assert cli.main(["--db", db_url, "import", str(ebs)]) == 1
    assert "\ninterrupted after the import was written" in capsys.readouterr().err
    assert _count(db_url, "execution_block") == 2


def test_ctrl_c_during_simulate_says_nothing_was_added(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from qa0_label.sim.database import CHUNK_EBS

    assert cli.main(["--db", db_url, "simulate", "--n", "20", "--quiet"]) == 0
    capsys.readouterr()
    _interrupt_at(f"{CHUNK_EBS}/", monkeypatch)  # after the first batch was committed
    assert cli.main(["--db", db_url, "simulate", "--n", str(CHUNK_EBS + 50), "--details-for", "0"]) == 1
    lines = capsys.readouterr().err.split("\n")
    assert lines[-2:] == ["interrupted: nothing was added (the EBs written so far were removed)", ""]
    assert _count(db_url, "execution_block") == 20
