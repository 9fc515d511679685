"""Import validation without a database: every refusal rule, the messy-but-valid forms, file reading."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa0_label.ingest import ImportRefused, Problem, read_table, validate_details, validate_ebs
from qa0_label.ingest import columns as ingest
from qa0_label.store.models import EBDetail, ExecutionBlock

COLUMNS = [
    "uid",
    "source",
    "band",
    "start_time",
    "sb_name",
    "array",
    "duration_s",
    "n_antennas",
    "pwv_mm",
    "elevation_deg",
    "flagged_fraction",
    "exec_fraction",
    "freq_ghz",
    "flux_jy",
    "flux_err_jy",
    "qa0_status",
]


def good_row(i: int = 1, **override: str) -> dict[str, str]:
    """A valid EB row as raw CSV text; keyword arguments replace cells."""
    row = {
        "uid": f"uid://A002/X10d9399/X{i:x}",
        "source": "J1256-0547",
        "band": "3",
        "start_time": "2024-05-01T03:12:00Z",
        "sb_name": "J1256-0547_a_03_TM1",
        "array": "12m",
        "duration_s": "1800",
        "n_antennas": "43",
        "pwv_mm": "0.9",
        "elevation_deg": "55.5",
        "flagged_fraction": "0.05",
        "exec_fraction": "1.0",
        "freq_ghz": "97.5",
        "flux_jy": "13.6",
        "flux_err_jy": "0.4",
        "qa0_status": "Pass",
    }
    row.update(override)
    return row


def csv_bytes(rows: list[dict[str, str]], columns: list[str] | None = None) -> bytes:
    """Rows written as CSV text (properly quoted), header first."""
    columns = columns or list(rows[0])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns])
    return buf.getvalue().encode("utf-8")


def check(data: bytes, name: str = "ebs.csv") -> tuple[pd.DataFrame, list[Problem]]:
    """read_table then validate_ebs, as the importer does."""
    return validate_ebs(read_table(io.BytesIO(data), name=name), name=name)


def refused(data: bytes, name: str = "ebs.csv") -> list[Problem]:
    """The problems of a file that must be refused (by the reader or the validator)."""
    try:
        _, problems = check(data, name)
    except ImportRefused as exc:
        return exc.problems
    assert problems, "expected the file to be refused"
    return problems


# --- the contract follows the data model -----------------------------------------------------


def test_known_columns_cover_every_execution_block_field() -> None:
    fields = set(ExecutionBlock.__table__.columns.keys())
    known = set(ingest.REQUIRED_EB) | set(ingest.EB_NUMBERS) | set(ingest.EB_TEXTS) | set(ingest.EB_RESERVED)
    assert fields - {"eb_id"} == known - {"eb_id"}


def test_detail_columns_cover_every_ebdetail_field() -> None:
    fields = set(EBDetail.__table__.columns.keys())
    known = set(ingest.REQUIRED_DETAIL) | set(ingest.DETAIL_MEASUREMENTS) | set(ingest.DETAIL_RESERVED)
    assert fields == (known - {"uid"}) | {"eb_id"}


# --- one test per refusal rule ---------------------------------------------------------------


@pytest.mark.parametrize(
    "column,value,fragment",
    [
        ("band", "X12", "unknown band 'X12' (expected 1-10, e.g. 3, B3, Band 3, ALMA_RB_03)"),
        ("band", "11", "unknown band"),
        ("band", "B0", "unknown band"),
        ("band", "ALMA_RB_13", "unknown band"),
        ("start_time", "yesterday", "ISO 8601"),
        ("start_time", "01/05/2024 03:12", "ISO 8601"),
        ("start_time", "2024-13-01T00:00:00", "ISO 8601"),
        ("pwv_mm", "abc", "'abc' is not a number"),
        ("pwv_mm", "1,5", "is not a number"),
        ("pwv_mm", "-0.1", "must not be negative"),
        ("pwv_mm", "nan", "not a finite number"),
        ("flux_jy", "inf", "not a finite number"),
        ("flux_jy", "-Infinity", "not a finite number"),
        ("n_antennas", "-1", "must not be negative"),
        ("n_antennas", "43.5", "not a whole number"),
        ("n_antennas", "many", "not a number"),
        ("elevation_deg", "90.5", "between 0 and 90"),
        ("elevation_deg", "-3", "between 0 and 90"),
        ("flagged_fraction", "1.2", "between 0 and 1"),
        ("exec_fraction", "-0.1", "between 0 and 1"),
        ("duration_s", "-5", "must not be negative"),
        ("flux_err_jy", "-0.1", "must not be negative"),
        ("freq_ghz", "0", "greater than 0"),
        ("qa0_status", "Maybe", "unknown qa0_status 'Maybe'"),
        ("qa0_status", "QA0_PASS?", "unknown qa0_status"),
        ("uid", "u" * 65, "65 characters long; at most 64"),
        ("source", "J" * 65, "at most 64"),
        ("sb_name", "x" * 300, "at most 256"),
        ("array", "12m-and-more", "at most 8"),
        ("uid", "", "required value is empty"),
        ("source", "   ", "required value is empty"),
        ("band", "", "required value is empty"),
        ("start_time", "", "required value is empty"),
        ("uid", "uid://A\x07/X1", "control characters"),
    ],
)
def test_each_refusal_names_file_line_and_column(column: str, value: str, fragment: str) -> None:
    data = csv_bytes([good_row(1), good_row(2, **{column: value}), good_row(3)])
    problems = refused(data)
    assert len(problems) == 1, problems
    (p,) = problems
    assert (p.file, p.row, p.column) == ("ebs.csv", 3, column)  # header = line 1, bad row = line 3
    assert fragment in p.message
    assert str(p).startswith(f"ebs.csv: line 3, column {column}: ")


@pytest.mark.parametrize("missing", ["uid", "source", "band", "start_time"])
def test_missing_required_column_is_refused_at_the_header(missing: str) -> None:
    columns = [c for c in COLUMNS if c != missing]
    problems = refused(csv_bytes([good_row(1)], columns))
    assert [(p.row, p.column) for p in problems] == [(1, missing)]
    assert f"required column '{missing}' is missing" in problems[0].message


def test_semicolon_file_gets_a_hint() -> None:
    problems = refused(b"uid;source;band;start_time\nu1;J1;3;2024-01-01\n")
    assert all("does not look comma-separated" in p.message for p in problems)


def test_same_uid_with_different_contents_is_refused() -> None:
    data = csv_bytes([good_row(1), good_row(2), good_row(1, pwv_mm="2.5")])
    (p,) = refused(data)
    assert (p.row, p.column) == (4, "uid")
    assert "also appears on line 2" in p.message and "pwv_mm" in p.message


def test_identical_duplicates_are_imported_once_even_when_spelled_differently() -> None:
    rows = [
        good_row(1),
        good_row(1),
        good_row(1, band="B3", start_time="2024-05-01 03:12:00", qa0_status="PASS", pwv_mm=" 0.90 "),
    ]
    clean, problems = check(csv_bytes(rows))
    assert problems == []
    assert len(clean) == 1


def test_mostly_numeric_extra_column_with_a_word_is_refused() -> None:
    rows = [good_row(i, wind_ms=str(i)) for i in range(1, 5)] + [good_row(5, wind_ms="n/a")]
    (p,) = refused(csv_bytes(rows))
    assert (p.row, p.column) == (6, "wind_ms")
    assert "not a number" in p.message


def test_infinite_value_in_extra_column_is_refused() -> None:
    rows = [good_row(1, wind_ms="3"), good_row(2, wind_ms="inf")]
    (p,) = refused(csv_bytes(rows))
    assert (p.row, p.column) == (3, "wind_ms")


def test_every_problem_of_a_file_is_reported_in_line_order() -> None:
    rows = [good_row(1, band="X"), good_row(2, pwv_mm="-1", elevation_deg="100"), good_row(3, start_time="?")]
    problems = refused(csv_bytes(rows))
    assert [(p.row, p.column) for p in problems] == [
        (2, "band"),
        (3, "pwv_mm"),
        (3, "elevation_deg"),
        (4, "start_time"),
    ]


def test_refusal_message_lists_at_most_20_problems() -> None:
    rows = [good_row(i, band="X12") for i in range(1, 26)]
    exc = ImportRefused(refused(csv_bytes(rows)))
    lines = str(exc).splitlines()
    assert len(exc.problems) == 25
    assert len(lines) == 21
    assert lines[0] == (
        "ebs.csv: line 2, column band: unknown band 'X12' (expected 1-10, e.g. 3, B3, Band 3, ALMA_RB_03)"
    )
    assert lines[-1] == "... and 5 more problems"
    assert len(str(ImportRefused(exc.problems[:20])).splitlines()) == 20


# --- messy but valid -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw,band",
    [
        ("3", 3),
        ("B3", 3),
        ("b3", 3),
        ("Band 3", 3),
        ("band3", 3),
        ("BAND_3", 3),
        ("ALMA_RB_03", 3),
        ("alma_rb_3", 3),
        (" 3 ", 3),
        ("B03", 3),
        ("3.0", 3),
        ("1", 1),
        ("10", 10),
        ("ALMA_RB_10", 10),
        ("Band 7", 7),
    ],
)
def test_band_spellings(raw: str, band: int) -> None:
    clean, problems = check(csv_bytes([good_row(1, band=raw)]))
    assert problems == []
    assert int(clean["band"].iloc[0]) == band


@pytest.mark.parametrize(
    "raw",
    [
        "2024-05-01T03:12:00Z",
        "2024-05-01T03:12:00",
        "2024-05-01 03:12:00",
        "2024-05-01T03:12:00.000Z",
        "2024-05-01T05:12:00+02:00",
        "2024-04-30T22:12:00-05:00",
        "2024-05-01T03:12Z",
        " 2024-05-01T03:12:00Z ",
    ],
)
def test_times_are_utc_with_or_without_zone(raw: str) -> None:
    clean, problems = check(csv_bytes([good_row(1, start_time=raw)]))
    assert problems == []
    assert clean["start_time"].iloc[0] == pd.Timestamp("2024-05-01T03:12:00", tz="UTC")


@pytest.mark.parametrize(
    "raw,value",
    [
        ("pass", "Pass"),
        ("PASS", "Pass"),
        (" Pass ", "Pass"),
        ("semipass", "SemiPass"),
        ("SEMI-PASS", "SemiPass"),
        ("Semi Pass", "SemiPass"),
        ("fail", "Fail"),
        ("", None),
        ("Unset", None),
        ("pending", None),
    ],
)
def test_status_spellings(raw: str, value: str | None) -> None:
    clean, problems = check(csv_bytes([good_row(1, qa0_status=raw)]))
    assert problems == []
    assert clean["qa0_status"].iloc[0] == value


def test_whitespace_header_case_and_empty_optional_cells() -> None:
    row = good_row(1, uid="  uid://A002/X1/X9  ", source=" J0319+4130 ", pwv_mm="", n_antennas=" ", sb_name="")
    data = csv_bytes([row], COLUMNS).replace(b"uid,source,band", b" UID , Source,BAND", 1)
    clean, problems = check(data)
    assert problems == []
    first = clean.iloc[0]
    assert (first["uid"], first["source"], int(first["band"])) == ("uid://A002/X1/X9", "J0319+4130", 3)
    assert np.isnan(first["pwv_mm"]) and pd.isna(first["n_antennas"]) and first["sb_name"] is None
    assert first["elevation_deg"] == pytest.approx(55.5)


def test_array_spellings_are_normalised() -> None:
    rows = [good_row(1, array="12M"), good_row(2, array="7 m"), good_row(3, array="tp"), good_row(4, array="")]
    clean, problems = check(csv_bytes(rows))
    assert problems == []
    assert clean["array"].tolist() == ["12m", "7m", "TP", None]


def test_unknown_numeric_columns_go_to_extra_and_text_columns_are_ignored() -> None:
    rows = [
        good_row(1, wind_ms="3.5", seeing="", notes="windy"),
        good_row(2, wind_ms="", seeing="0.8", notes="12"),
        good_row(3, wind_ms="-1e2", seeing="1", notes="ok"),
    ]
    clean, problems = check(csv_bytes(rows, [*COLUMNS, "wind_ms", "seeing", "notes"]))
    assert problems == []
    assert clean["extra"].tolist() == [{"wind_ms": 3.5}, {"seeing": 0.8}, {"wind_ms": -100.0, "seeing": 1.0}]
    assert clean.attrs["extra_columns"] == ["wind_ms", "seeing"]
    assert clean.attrs["ignored_columns"] == ["notes"]


def test_index_columns_and_our_own_columns_are_not_features() -> None:
    rows = [good_row(i, **{"": str(i), "id": str(100 + i), "imported_at": "2020-01-01"}) for i in range(1, 3)]
    clean, problems = check(csv_bytes(rows, ["", *COLUMNS, "id", "imported_at"]))
    assert problems == []
    assert clean["extra"].tolist() == [None, None]
    assert set(clean.attrs["ignored_columns"]) == {"unnamed: 0", "id", "imported_at"}


def test_bom_crlf_blank_lines_and_multiline_cells_keep_true_line_numbers() -> None:
    text = (
        "\ufeffuid,source,band,start_time,sb_name\r\n"
        "u1,J1,3,2024-01-01,plain\r\n"
        "\r\n"
        ",,,,\r\n"
        'u2,J1,3,2024-01-01,"two\r\nlines"\r\n'
        "u3,J1,X,2024-01-01,x\r\n"
    )
    problems = refused(text.encode("utf-8"))
    # u2's record spans lines 5-6 (and its newline is a control character), u3 is on line 7.
    assert [(p.row, p.column) for p in problems] == [(5, "sb_name"), (7, "band")]


def test_trailing_empty_fields_are_accepted() -> None:
    data = b"uid,source,band,start_time\nu1,J1,3,2024-01-01,,\n"
    clean, problems = check(data)
    assert problems == [] and clean["uid"].tolist() == ["u1"]


def test_in_memory_frame_is_numbered_like_a_csv() -> None:
    frame = pd.DataFrame([good_row(1), good_row(2, band="Z")])
    _, problems = validate_ebs(frame, name="upload")
    assert [(p.row, p.column) for p in problems] == [(3, "band")]


# --- reading files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,data,fragment",
    [
        ("ebs.txt", b"uid\n1\n", "unsupported file type '.txt'"),
        ("ebs", b"uid\n1\n", "unsupported file type"),
        ("ebs.csv", b"", "the file is empty"),
        ("ebs.csv", b"\n \n", "the file is empty"),
        ("ebs.csv", b"uid,source,band,start_time\n", "no data rows"),
        ("ebs.csv", b"uid,source\nJ1,\xff\xfe\n", "not valid UTF-8"),
        ("ebs.parquet", b"uid,source\n1,2\n", "not a readable Parquet file"),
    ],
)
def test_unreadable_files_are_refused_without_traceback(name: str, data: bytes, fragment: str) -> None:
    with pytest.raises(ImportRefused) as info:
        read_table(io.BytesIO(data), name=name)
    assert any(fragment in p.message and p.file == name for p in info.value.problems), info.value.problems


def test_undecodable_byte_names_its_line() -> None:
    with pytest.raises(ImportRefused) as info:
        read_table(io.BytesIO(b"uid,source\nu1,J1\nu2,J\xe9\n"), name="ebs.csv")
    assert info.value.problems[0].row == 3


def test_duplicate_header_names_are_refused() -> None:
    with pytest.raises(ImportRefused) as info:
        read_table(io.BytesIO(b"uid,Band,source,band \nu1,3,J1,3\n"), name="ebs.csv")
    (p,) = info.value.problems
    assert (p.row, p.column) == (1, "band") and "appears twice (columns 2 and 4)" in p.message


def test_row_with_wrong_number_of_fields_is_refused() -> None:
    with pytest.raises(ImportRefused) as info:
        read_table(io.BytesIO(b"uid,source,band,start_time\nu1,J1,3,2024-01-01\nu2,J1,3\n"), name="ebs.csv")
    (p,) = info.value.problems
    assert p.row == 3 and "3 fields but the header has 4" in p.message


def test_missing_file_and_directory_are_refused(tmp_path: Path) -> None:
    for path, fragment in ((tmp_path / "nope.csv", "no such file"), (tmp_path, "directory")):
        target = path if path.suffix else tmp_path / "dir.csv"
        if not path.suffix:
            target.mkdir()
        with pytest.raises(ImportRefused) as info:
            read_table(target, name=str(target))
        assert fragment in info.value.problems[0].message


def test_reads_from_a_path_and_keeps_raw_text(tmp_path: Path) -> None:
    path = tmp_path / "ebs.csv"
    path.write_bytes(csv_bytes([good_row(1, pwv_mm="0.90", qa0_status="NA")]))
    frame = read_table(path, name=str(path))
    # Raw text: no numeric conversion and no "NA" -> missing guessing.
    assert frame["pwv_mm"].iloc[0] == "0.90" and frame["qa0_status"].iloc[0] == "NA"
    assert frame[ingest.LINE_COLUMN].tolist() == [2]


def test_parquet_rows_are_numbered_from_one_and_typed_columns_validate() -> None:
    frame = pd.DataFrame(
        {
            "uid": ["u1", "u2", "u3"],
            "source": ["J1", "J1", "J2"],
            "band": [3, 6, 7],
            "start_time": pd.to_datetime(["2024-01-01T00:00:00Z"] * 3, utc=True),
            "n_antennas": [43, 44, 45],
            "pwv_mm": [0.5, np.nan, 1.0],
            "elevation_deg": [45.0, 91.0, 60.0],
            "wind": [1, 2, 3],
        }
    )
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    buf.seek(0)
    problems = refused(buf.getvalue(), name="ebs.parquet")
    assert [str(p) for p in problems] == ["ebs.parquet: row 2, column elevation_deg: 91.0 must be between 0 and 90"]
    frame.loc[1, "elevation_deg"] = 50.0
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    clean, problems = check(buf.getvalue(), name="ebs.parquet")
    assert problems == []
    assert clean["band"].tolist() == [3, 6, 7]
    assert np.isnan(clean["pwv_mm"].iloc[1])
    assert clean["extra"].tolist() == [{"wind": 1.0}, {"wind": 2.0}, {"wind": 3.0}]


# --- details ---------------------------------------------------------------------------------


def details_bytes(rows: list[tuple[str, ...]], header: str = "uid,antenna,spw,scan,tsys_k,flagged") -> bytes:
    return (header + "\n" + "\n".join(",".join(r) for r in rows) + "\n").encode("utf-8")


def check_details(data: bytes, known: set[str]) -> tuple[pd.DataFrame, list[Problem]]:
    return validate_details(read_table(io.BytesIO(data), name="det.csv"), name="det.csv", known_uids=known)


def test_valid_details_are_typed() -> None:
    data = details_bytes(
        [
            ("u1", "DA41", "0", "1", "80.5", ""),
            ("u1", " DV02 ", "1", "1", "", "TRUE"),
            ("u1", "DV02", "1", "1", "", "yes"),
        ]
    )
    clean, problems = check_details(data, {"u1"})
    assert problems == []
    assert clean["antenna"].tolist() == ["DA41", "DV02"]  # the identical repeat is dropped
    assert clean["spw"].tolist() == [0, 1] and clean["flagged"].tolist() == [False, True]


@pytest.mark.parametrize(
    "row,column,fragment",
    [
        (("u9", "DA41", "0", "2", "80", ""), "uid", "no EB with uid 'u9' in the EB file or the database"),
        (("u1", "DA41", "0.5", "2", "80", ""), "spw", "not a whole number"),
        (("u1", "DA41", "0", "-1", "80", ""), "scan", "must not be negative"),
        (("u1", "DA41", "0", "2", "-80", ""), "tsys_k", "must not be negative"),
        (("u1", "DA41", "0", "2", "80", "maybe"), "flagged", "not true/false"),
        (("u1", "DA4100000", "0", "2", "80", ""), "antenna", "at most 8"),
        (("u1", "", "0", "2", "80", ""), "antenna", "required value is empty"),
        (("u1", "DA41", "0", "1", "70", ""), "uid", "also appears on line 2 with different values (in tsys_k)"),
    ],
)
def test_each_detail_refusal_names_line_and_column(row: tuple[str, ...], column: str, fragment: str) -> None:
    data = details_bytes([("u1", "DA41", "0", "1", "80", ""), row])
    _, problems = check_details(data, {"u1"})
    assert [(p.row, p.column) for p in problems] == [(3, column)]
    assert fragment in problems[0].message


def test_unknown_detail_uid_is_reported_once_with_a_count() -> None:
    data = details_bytes([("u9", "DA41", "0", str(s), "80", "") for s in range(1, 6)])
    _, problems = check_details(data, {"u1"})
    assert len(problems) == 1 and "(4 more rows with this uid)" in problems[0].message


def test_details_missing_required_column() -> None:
    data = details_bytes([("u1", "DA41", "1", "80")], header="uid,antenna,scan,tsys_k")
    _, problems = check_details(data, {"u1"})
    assert [(p.row, p.column) for p in problems] == [(1, "spw")]


# --- no input makes the reader crash ---------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cells=st.lists(
        st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=12), min_size=0, max_size=6),
        min_size=0,
        max_size=5,
    ),
    header=st.sampled_from(["uid,source,band,start_time", "uid,source,band,start_time,pwv_mm,qa0_status,x", "a,a"]),
)
def test_arbitrary_csv_is_imported_or_refused_never_crashes(cells: list[list[str]], header: str) -> None:
    buf = io.StringIO()
    buf.write(header + "\n")
    csv.writer(buf, lineterminator="\n").writerows(cells)
    try:
        frame = read_table(io.BytesIO(buf.getvalue().encode("utf-8")), name="f.csv")
    except ImportRefused as exc:
        assert exc.problems and all(isinstance(p, Problem) for p in exc.problems)
        return
    clean, problems = validate_ebs(frame, name="f.csv")
    if not problems:
        assert clean["uid"].is_unique and clean["band"].between(1, 10).all()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300), name=st.sampled_from(["f.csv", "f.parquet"]))
def test_arbitrary_bytes_are_refused_or_read(data: bytes, name: str) -> None:
    try:
        frame = read_table(io.BytesIO(b"uid,band\n" + data if name == "f.csv" else data), name=name)
    except ImportRefused as exc:
        assert exc.problems and str(exc)
        return
    validate_ebs(frame, name=name)
