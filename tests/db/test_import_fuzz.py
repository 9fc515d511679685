"""Fuzzed import: random and malformed CSV / Parquet files thrown at import_file and at the CLI `import`.

Property: every file is either imported or cleanly refused (ImportRefused naming the file / CLI exit 2 with
that message on stderr, never a traceback, never exit 1), and a refusal leaves the database as it was.
Hypothesis runs derandomized with modest example counts, so the file is fast and CI is not flaky.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from qa0_label import cli
from qa0_label.ingest import ImportRefused, import_file
from tests.db.test_import_export import snapshot

ROOT = Path(__file__).resolve().parents[2]
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

NAMES = [
    "uid",
    "source",
    "band",
    "start_time",
    "pwv_mm",
    "n_antennas",
    "elevation_deg",
    "qa0_status",
    "array",
    "sb_name",
    "flagged_fraction",
    "wind_ms",
    "comment",
    " Band ",
    "UID",
    "",
    "__line__",
    "id",
    "extra",
    "x" * 120,
]
GOOD_CELLS = {
    "source": ["J1256-0547", "J0319+4130"],
    "band": ["3", "B6", "Band 7", "ALMA_RB_03"],
    "start_time": ["2024-05-01T03:12:00Z", "2024-05-01 04:00:00", "2024-05-01T03:12:00+02:00"],
    "qa0_status": ["Pass", "semipass", "FAIL", "", "Pending"],
    "pwv_mm": ["0.9", "", "2"],
    "n_antennas": ["43", "12"],
    "elevation_deg": ["55", "80.5"],
    "array": ["12m", "7-m", "TP"],
    "sb_name": ["J1256-0547_a_03_TM1", ""],
    "flagged_fraction": ["0.1", "0"],
    "wind_ms": ["3.5", "", "7"],
    "comment": ["fine", "", "DV12 Tsys spike"],
}
VALID_NAMES = list(GOOD_CELLS)
ODD_CELLS = [
    "",
    " ",
    "NA",
    "nan",
    "inf",
    "-1",
    "1e309",
    "0",
    "12.5",
    "abc",
    "TRUE",
    "2024-13-45",
    "B99",
    "\x00",
    "a\x00b",
    "tab\there",
    "line\nbreak",
    "é",
    "日本",
    '"quoted"',
    "=cmd|' /C calc'!A0",
    "9" * 40,
    "-0",
    "1,5",
    "\ufeff",
]


def _cell(draw: Any, column: str, row: int = 0, hostile: bool = True) -> str:
    """A cell for COLUMN: mostly a valid value; an odd one (wrong type, control characters...) at times."""
    column = column.strip().lower()
    odd = draw(st.integers(0, 3 if hostile else 24)) == 0
    if column == "uid" and not odd:
        return f"uid://A002/X1/X{row:x}"
    pool = GOOD_CELLS.get(column)
    if pool and not odd:
        return draw(st.sampled_from(pool))
    return draw(st.one_of(st.sampled_from(ODD_CELLS), st.text(max_size=12)))


@st.composite
def csv_files(draw: Any) -> bytes:
    """CSV bytes: mostly-valid files with a few odd cells, or hostile ones (odd names, ragged rows, encodings)."""
    hostile = draw(st.integers(0, 2)) == 0
    if hostile:
        header = draw(st.lists(st.sampled_from(NAMES), min_size=0, max_size=9))
    else:
        header = [
            "uid",
            "source",
            "band",
            "start_time",
            *draw(st.lists(st.sampled_from(VALID_NAMES[3:]), unique=True, max_size=6)),
        ]
    n_rows = draw(st.integers(0 if hostile else 1, 6))
    lines = [header]
    for r in range(n_rows):
        width = len(header) + (draw(st.sampled_from([0, 0, 0, -1, 1, 3])) if hostile else 0)
        lines.append([_cell(draw, header[i] if i < len(header) else "", r, hostile) for i in range(max(0, width))])
    buf = io.StringIO()
    import csv

    csv.writer(buf, lineterminator=draw(st.sampled_from(["\n", "\r\n", "\r"]))).writerows(lines)
    text = buf.getvalue()
    encoding = draw(st.sampled_from(["latin-1", "utf-16", "cp1252", "utf-8-sig"])) if hostile else "utf-8"
    data = text.encode(encoding, errors="replace")
    if hostile and draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\x00" * draw(st.integers(1, 3)) + data[at:]
    return data


def _arrow_column(draw: Any, n: int) -> pa.Array:
    kind = draw(st.sampled_from(["int", "float", "str", "bool", "list", "struct", "bytes", "time", "null", "dict"]))
    if kind == "int":
        return pa.array(
            draw(st.lists(st.integers(-(2**63), 2**63 - 1) | st.none(), min_size=n, max_size=n)), pa.int64()
        )
    if kind == "float":
        return pa.array(draw(st.lists(st.floats(allow_nan=True) | st.none(), min_size=n, max_size=n)), pa.float64())
    if kind == "str":
        return pa.array([_cell(draw, "") for _ in range(n)], pa.string())
    if kind == "bool":
        return pa.array(draw(st.lists(st.booleans() | st.none(), min_size=n, max_size=n)), pa.bool_())
    if kind == "list":
        return pa.array(draw(st.lists(st.lists(st.integers(0, 9), max_size=3) | st.none(), min_size=n, max_size=n)))
    if kind == "struct":
        return pa.array([{"a": draw(st.integers(0, 9)), "b": _cell(draw, "")} for _ in range(n)])
    if kind == "bytes":
        return pa.array(draw(st.lists(st.binary(max_size=8), min_size=n, max_size=n)), pa.binary())
    if kind == "time":
        return pa.array(
            draw(st.lists(st.integers(0, 2**40) | st.none(), min_size=n, max_size=n)), pa.timestamp("ms", tz="UTC")
        )
    if kind == "dict":
        return pa.array([_cell(draw, "") for _ in range(n)]).dictionary_encode()
    return pa.nulls(n)


@st.composite
def parquet_files(draw: Any) -> bytes:
    """Parquet bytes: text columns of mostly valid values, or any column type (nested, binary, timestamps)."""
    n = draw(st.integers(0, 5))
    hostile = draw(st.integers(0, 1)) == 0
    names = ["uid", "source", "band", "start_time"]
    names += draw(st.lists(st.sampled_from(NAMES if hostile else VALID_NAMES[3:]), max_size=6, unique=not hostile))
    columns = []
    for name in names:
        if name in GOOD_CELLS or name == "uid" or not draw(st.integers(0, 3)):
            columns.append(pa.array([_cell(draw, name, r, hostile) for r in range(n)], pa.string()))
        else:
            columns.append(_arrow_column(draw, n))
    if hostile and draw(st.booleans()):
        i = draw(st.integers(0, len(columns) - 1))
        columns[i] = _arrow_column(draw, n)  # a known column of the wrong type
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(columns, names=names), buf)
    return buf.getvalue()


def _library_outcome(engine: Engine, path: Path) -> str:
    """Import through the library: 'ok', or 'refused' after checking the refusal is clean."""
    try:
        import_file(engine=engine, path=path)
    except ImportRefused as exc:
        assert exc.problems, "a refusal names at least one problem"
        assert all(p.file == str(path) for p in exc.problems)
        assert str(exc).startswith(str(path))
        return "refused"
    return "ok"


def _cli_outcome(db_url: str, path: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["--db", db_url, "import", str(path), "--quiet"])
    return code, err.getvalue()


def _check(engine: Engine, db_url: str, path: Path) -> None:
    before = snapshot(engine)
    outcome = _library_outcome(engine, path)
    if outcome == "refused":
        assert snapshot(engine) == before
    code, err = _cli_outcome(db_url, path)
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert err.startswith(str(path)), err
    # The same file gets the same answer from both doors (a re-import of an accepted file is accepted).
    assert (code == 0) == (outcome == "ok"), err


@FUZZ
@given(data=csv_files())
def test_random_csv_is_imported_or_cleanly_refused(engine: Engine, db_url: str, tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)
    _check(engine, db_url, path)


@FUZZ
@given(data=parquet_files())
def test_random_parquet_is_imported_or_cleanly_refused(
    engine: Engine, db_url: str, tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "fuzz.parquet"
    path.write_bytes(data)
    _check(engine, db_url, path)


@settings(FUZZ, max_examples=30)
@given(data=st.binary(max_size=2_000), suffix=st.sampled_from([".csv", ".parquet"]))
def test_binary_garbage_is_refused(engine: Engine, db_url: str, tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(data)
    _check(engine, db_url, path)


HEADER = "uid,source,band,start_time,comment\n"
ROW = "uid://A002/X1/X1,J1256-0547,3,2024-05-01T03:12:00Z,"


def _nested_parquet() -> bytes:
    buf = io.BytesIO()
    table = pa.table(
        {
            "uid": ["uid://A002/X1/X1", "uid://A002/X1/X2"],
            "source": [["J1256-0547"], ["J0319+4130"]],  # a list where text belongs
            "band": pa.array([{"n": 3}, {"n": 6}]),  # a struct where a band belongs
            "start_time": pa.array([1.5, 2.5]),  # a float where a time belongs
            "pwv_mm": ["wet", "dry"],  # text where a number belongs
        }
    )
    pq.write_table(table, buf)
    return buf.getvalue()


def _typed_parquet() -> bytes:
    frame = pd.DataFrame(
        {
            "uid": ["uid://A002/X1/X1"],
            "source": ["J1256-0547"],
            "band": [3],
            "start_time": pd.to_datetime(["2024-05-01T03:12:00Z"]),
            "n_antennas": [np.int64(2**40)],
            "flagged": [True],
        }
    )
    buf = io.BytesIO()
    frame.to_parquet(buf)
    return buf.getvalue()


def _eb_csv(
    *,
    start: str = "2024-05-01T03:12:00Z",
    source: str = "J1256-0547",
    sep: str = ",",
    extra: tuple[str, str] | None = None,
) -> bytes:
    names = ["uid", "source", "band", "start_time"] + ([extra[0]] if extra else [])
    values = ["uid://A002/X1/X1", source, "3", start] + ([extra[1]] if extra else [])
    return (sep.join(names) + "\n" + sep.join(values) + "\n").encode("utf-8")


def _days_ahead(days: float) -> str:
    return (pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _wide_csv(n: int) -> bytes:
    names = ["uid", "source", "band", "start_time"] + [f"m{i}" for i in range(n)]
    values = ["uid://A002/X1/X1", "J1256-0547", "3", "2024-05-01T03:12:00Z"] + ["1.5"] * n
    return (",".join(names) + "\n" + ",".join(values) + "\n").encode()


def _ts(day: str) -> pa.Array:
    return pa.array(pd.to_datetime([day], utc=True))


def _eb_parquet(**columns: Any) -> bytes:
    table = {"uid": ["uid://A002/X1/X1"], "source": ["J1256-0547"], "band": [3], "start_time": ["2024-05-01T03:12:00Z"]}
    table.update(columns)
    buf = io.BytesIO()
    pq.write_table(pa.table(table), buf)
    return buf.getvalue()


CASES: list[tuple[str, str, bytes, str | None]] = [
    ("empty", ".csv", b"", "the file is empty"),
    ("header only", ".csv", HEADER.encode(), "no data rows"),
    ("1 MB cell", ".csv", (HEADER + ROW + "x" * 1_000_000 + "\n").encode(), "line 2: a cell is longer than 131,072"),
    ("100 kB uid", ".csv", (HEADER + "u" * 100_000 + ",J1,3,2024-05-01,\n").encode(), "at most 64 allowed"),
    ("latin-1", ".csv", (HEADER + ROW + "café\n").encode("latin-1"), "line 2: byte 0xe9 is not valid UTF-8"),
    ("UTF-16 with BOM", ".csv", (HEADER + ROW + "\n").encode("utf-16"), "line 1: byte 0xff is not valid UTF-8"),
    ("UTF-8 BOM", ".csv", ("\ufeff" + HEADER + ROW + "ok\n").encode(), None),
    ("NUL bytes", ".csv", (HEADER + ROW.replace("J1256", "J\x001256") + "\n").encode(), "control characters"),
    ("NUL in an ignored column", ".csv", (HEADER + ROW + "a\x00b\n").encode(), None),
    ("duplicate headers", ".csv", b"uid,source,band,start_time,Band\nu,J1,3,2024-05-01,3\n", "appears twice"),
    ("ragged rows", ".csv", (HEADER + ROW + "x,y,z\n" + "u2,J1\n").encode(), "fields but the header has 5"),
    ("binary garbage", ".csv", bytes(range(256)) * 4, "not valid UTF-8"),
    ("unclosed quote", ".csv", (HEADER + ROW + '"never closed\n').encode(), None),
    ("binary as parquet", ".parquet", b"PAR1" + os.urandom(200) + b"PAR1", "not a readable Parquet file"),
    ("CSV named parquet", ".parquet", (HEADER + ROW + "\n").encode(), "not a readable Parquet file"),
    ("nested parquet columns", ".parquet", _nested_parquet(), "row 1"),
    ("typed parquet columns", ".parquet", _typed_parquet(), "too large"),
    # Issue 15's hostile kinds: each refused with line (row) and column, or accepted for the reason given.
    ("start_time in 1900", ".csv", _eb_csv(start="1900-01-01T00:00:00Z"), "line 2, column start_time: '1900-01-01"),
    ("start_time in 2100", ".csv", _eb_csv(start="2100-01-01T00:00:00Z"), "outside the accepted range"),
    ("start_time before 2010", ".csv", _eb_csv(start="2009-12-31T23:59:59Z"), "line 2, column start_time"),
    ("start_time 3 days ahead", ".csv", _eb_csv(start=_days_ahead(3)), "outside the accepted range"),
    # Clocks differ by minutes between sites: half a day ahead is accepted (the bound is one day).
    ("start_time 12 h ahead", ".csv", _eb_csv(start=_days_ahead(0.5)), None),
    ("semicolon delimiter", ".csv", _eb_csv(sep=";"), "line 1, column uid: required column 'uid' is missing"),
    ("tab delimiter", ".csv", _eb_csv(sep="\t"), "does not look comma-separated"),
    ("NaN in a number", ".csv", _eb_csv(extra=("pwv_mm", "NaN")), "line 2, column pwv_mm: 'NaN' is not a finite"),
    ("inf in a number", ".csv", _eb_csv(extra=("pwv_mm", "inf")), "line 2, column pwv_mm: 'inf' is not a finite"),
    ("-inf in an extra number", ".csv", _eb_csv(extra=("wind_ms", "-inf")), "column wind_ms: '-inf'"),
    ("bidi override in source", ".csv", _eb_csv(source="J1256\u202e-0547"), "line 2, column source: text contains"),
    ("zero-width space in source", ".csv", _eb_csv(source="J1256\u200b-0547"), "invisible / bidi"),
    ("bidi isolate in sb_name", ".csv", _eb_csv(extra=("sb_name", "ab\u2066c")), "column sb_name"),
    ("ANSI escape in project", ".csv", _eb_csv(extra=("project", "\x1b[31m2023.1\x1b[0m")), "column project"),
    # A text column the contract does not know is ignored (listed in the summary), so nothing of it is stored.
    ("ANSI escape in an ignored column", ".csv", _eb_csv(extra=("note", "\x1b[31mred")), None),
    ("10 MB cell", ".csv", (HEADER + ROW + "x" * 10_000_000 + "\n").encode(), "line 2: a cell is longer"),
    ("250 numeric columns", ".csv", _wide_csv(250), "250 extra numeric columns; at most 200"),
    ("200 numeric columns", ".csv", _wide_csv(200), None),  # within the stated bound: kept as extras
    ("parquet band 3.5", ".parquet", _eb_parquet(band=pa.array([3.5])), "row 1, column band: unknown band"),
    ("parquet epoch-seconds time", ".parquet", _eb_parquet(start_time=pa.array([1714533120])), "column start_time"),
    ("parquet 1900 timestamp", ".parquet", _eb_parquet(start_time=_ts("1900-01-01")), "outside the accepted range"),
    ("parquet inf float", ".parquet", _eb_parquet(pwv_mm=pa.array([float("inf")])), "row 1, column pwv_mm: 'inf'"),
    # A float NaN is how pandas and Arrow write a missing value into Parquet: it is read as empty.
    ("parquet NaN float", ".parquet", _eb_parquet(pwv_mm=pa.array([float("nan")])), None),
]


@pytest.mark.parametrize("what,suffix,data,needle", CASES, ids=[c[0] for c in CASES])
def test_malformed_files(
    engine: Engine, db_url: str, tmp_path: Path, what: str, suffix: str, data: bytes, needle: str | None
) -> None:
    path = tmp_path / f"case{suffix}"
    path.write_bytes(data)
    before = snapshot(engine)
    try:
        import_file(engine=engine, path=path)
    except ImportRefused as exc:
        assert needle is not None, f"{what}: refused unexpectedly: {exc}"
        assert needle in str(exc), str(exc)
        assert snapshot(engine) == before
    else:
        assert needle is None, f"{what}: accepted, expected a refusal with {needle!r}"
    _check(engine, db_url, path)


def test_cli_subprocess_refuses_nested_parquet_with_exit_2(tmp_path: Path) -> None:
    """The real entry point on a typed, nested Parquet file: exit 2, the file named, no traceback."""
    path = tmp_path / "nested.parquet"
    path.write_bytes(_nested_parquet())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "qa0_label",
            "--db",
            f"sqlite:///{tmp_path / 'x.sqlite'}",
            "import",
            str(path),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"{path}: row 1, column source") and "Traceback" not in done.stderr
