"""CSV / Parquet import of EBs and detail rows (validated, all or nothing) and export of labels.

Import contract (DESIGN.md "Import format"): one row per EB with `uid`, `source`, `band`, `start_time`;
known optional columns are ExecutionBlock fields; `qa0_status` becomes a label by labeler `archive`;
other numeric columns go to `extra`. Everything is validated before anything is written, and the write
is one transaction, so a refused file leaves the database as it was.

Choices the contract leaves open:
- Column names are compared trimmed and case-insensitively (`" Band "` is `band`).
- Only an empty cell is missing; `NA`, `nan`, `null` in a numeric column are refused, not guessed.
- `qa0_status` `Unset` / `Pending` (the observatory's "not decided yet") import as no label.
- An unknown column is numeric (kept in `extra`) when more than half of its non-empty cells are numbers;
  its other cells are then refused. Otherwise it is ignored and named in the summary.
- Re-import updates only the columns the file has (a column it lacks keeps its stored values); an
  `extra` key the file lacks is kept, an empty cell in a file's extra column removes that key.
- An archive label is appended only when the file's status differs from archive's current label for
  that EB; its client_event_id is deterministic (`archive:<uid>:<value>[:<revision>]`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
from sqlalchemy import Table, delete, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from qa0_label import labels as labels_mod
from qa0_label.db import bulk_insert, retry_locked, writer
from qa0_label.models import EBDetail, ExecutionBlock, Label, Labeler, utcnow
from qa0_label.uids import canonical_uid

__all__ = [
    "ARCHIVE_LABELER",
    "LINE_COLUMN",
    "ImportRefused",
    "Problem",
    "export_labels",
    "export_labels_frame",
    "import_file",
    "import_frames",
    "read_table",
    "spreadsheet_safe",
    "validate_details",
    "validate_ebs",
]

Progress = Callable[[float, str], None]

ARCHIVE_LABELER = "archive"
LINE_COLUMN = "__line__"
"""Column read_table adds: the CSV line (header = line 1) or Parquet row (1-based) each row came from."""

MAX_LISTED_PROBLEMS = 20
MAX_UID = 64
MAX_COLUMN_NAME = 100
MAX_EXTRA_COLUMNS = 200
INT_MAX = 2**31 - 1  # PostgreSQL INTEGER
CHUNK = 500  # ids per IN (...) list: well under every backend's bind-parameter limit
WRITE_CHUNK = 5_000  # rows per executemany, so progress moves on large files
FULL_SCAN_OVER = 5_000  # look-ups of more keys than this read the whole (narrow) column once

REQUIRED_EB = ("uid", "source", "band", "start_time")
REQUIRED_DETAIL = ("uid", "antenna", "spw", "scan")
STATUS_COLUMN = "qa0_status"
EXPORT_COLUMNS = ["uid", "labeler", "role", "value", "comment", "reason", "kind", "seconds_on_eb", "created_at"]
# Cells a spreadsheet would run as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class NumberRule:
    """What a numeric column may hold."""

    integer: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the value must be strictly above `low`

    def describe(self) -> str:
        """Human wording of the allowed range."""
        if self.low is not None and self.high is not None:
            return f"must be between {self.low:g} and {self.high:g}"
        if self.low == 0:
            return "must be greater than 0" if self.low_open else "must not be negative"
        return "is out of range"


# Known optional ExecutionBlock columns (tests check this matches models.ExecutionBlock).
EB_NUMBERS: dict[str, NumberRule] = {
    "duration_s": NumberRule(low=0),
    "n_antennas": NumberRule(integer=True, low=0),
    "pwv_mm": NumberRule(low=0),
    "elevation_deg": NumberRule(low=0, high=90),
    "tsys_median_k": NumberRule(low=0),
    "phase_rms_deg": NumberRule(low=0),
    "flagged_fraction": NumberRule(low=0, high=1),
    "exec_fraction": NumberRule(low=0, high=1),
    "freq_ghz": NumberRule(low=0, low_open=True),
    "flux_jy": NumberRule(),
    "flux_err_jy": NumberRule(low=0),
    "spectral_index": NumberRule(),
    "spectral_index_err": NumberRule(low=0),
    "expected_flux_jy": NumberRule(),
    "expected_flux_err_jy": NumberRule(low=0),
}
EB_TEXTS: dict[str, int] = {"sb_name": 256, "project": 64, "array": 8}
EB_REQUIRED_TEXTS: dict[str, int] = {"uid": MAX_UID, "source": 64}
# Columns of ExecutionBlock that a file must not set (ours to manage); present ones are ignored.
EB_RESERVED = ("id", "eb_id", "extra", "imported_at")

DETAIL_NUMBERS: dict[str, NumberRule] = {
    "spw": NumberRule(integer=True, low=0),
    "scan": NumberRule(integer=True, low=0),
    "freq_ghz": NumberRule(low=0, low_open=True),
    "time_s": NumberRule(),
    "tsys_k": NumberRule(low=0),
    "amplitude": NumberRule(low=0),
    "phase_deg": NumberRule(),
    "bp_ripple_db": NumberRule(low=0),
}
DETAIL_MEASUREMENTS = ("freq_ghz", "time_s", "tsys_k", "amplitude", "phase_deg", "bp_ripple_db", "flagged")
DETAIL_RESERVED = ("id", "eb_id")

_BAND_RE = re.compile(r"^(?:alma[\s_-]*rb[\s_-]*|rb[\s_-]*|band[\s_-]*|b[\s_-]*)?0*(\d{1,2})(?:\.0+)?$")
_ARRAY_RE = re.compile(r"^(12|7)[\s_-]*m$", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAN_WORDS = frozenset({"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})
_TRUE = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "0.0"})
# The observatory's "not decided yet" statuses carry no QA0 value: imported as no label.
_UNDECIDED = frozenset({"unset", "pending"})
_IGNORED_NAME_RE = re.compile(r"^(?:unnamed: ?\d+|__index_level_\d+__)$")


# --- problems ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One reason a file is refused: where (file, CSV line or Parquet row, column) and what."""

    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"{_row_word(self.file)} {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        return ": ".join([self.file, *([", ".join(where)] if where else []), self.message])


class ImportRefused(Exception):
    """The input cannot be imported; nothing was written. `.problems` lists every reason."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        lines = [str(p) for p in self.problems[:MAX_LISTED_PROBLEMS]]
        extra = len(self.problems) - MAX_LISTED_PROBLEMS
        if extra > 0:
            lines.append(f"... and {extra} more problem{'s' if extra != 1 else ''}")
        return "\n".join(lines)


def _row_word(name: str) -> str:
    return "row" if name.lower().endswith(".parquet") else "line"


def _refuse(name: str, message: str, *, row: int | None = None, column: str | None = None) -> ImportRefused:
    return ImportRefused([Problem(name, row, column, message)])


# --- reading -----------------------------------------------------------------------------------


def read_table(source: Path | BinaryIO, *, name: str) -> pd.DataFrame:
    """Read a CSV (as raw text) or Parquet file into a frame with a LINE_COLUMN; ImportRefused if unreadable."""
    suffix = Path(name).suffix.lower()
    if suffix not in (".csv", ".parquet") and isinstance(source, Path):
        suffix = source.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise _refuse(name, f"unsupported file type '{suffix or '(no extension)'}'; use .csv or .parquet")
    data = _read_bytes(source, name)
    if not data.strip():
        raise _refuse(name, "the file is empty")
    return _read_csv(data, name) if suffix == ".csv" else _read_parquet(data, name)


def _read_bytes(source: Path | BinaryIO, name: str) -> bytes:
    if isinstance(source, (str, Path)):
        try:
            return Path(source).read_bytes()
        except FileNotFoundError:
            raise _refuse(name, "no such file") from None
        except IsADirectoryError:
            raise _refuse(name, "is a directory, not a file") from None
        except PermissionError:
            raise _refuse(name, "permission denied") from None
        except OSError as exc:
            raise _refuse(name, f"cannot read the file ({exc.strerror or exc})") from None
    try:
        if getattr(source, "seekable", lambda: False)():
            source.seek(0)  # an upload read once before (a page rerun) must not look empty
        data = source.read()
    except (OSError, ValueError) as exc:
        raise _refuse(name, f"cannot read the upload ({exc})") from None
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def _read_csv(data: bytes, name: str) -> pd.DataFrame:
    try:
        # utf-8-sig reads plain UTF-8 too and drops the byte-order mark that Excel writes.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _refuse(
            name, f"byte 0x{data[exc.start]:02x} is not valid UTF-8; save the file as UTF-8 (CSV UTF-8)", row=line
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    header_line = 1
    rows: list[list[str]] = []
    lines: list[int] = []
    problems: list[Problem] = []
    end = 0
    try:
        for record in reader:
            start, end = end + 1, reader.line_num
            if not "".join(record).strip():
                continue  # blank lines and rows of bare commas (spreadsheet leftovers)
            if header is None:
                header, header_line = record, start
                continue
            n = len(header)
            if len(record) > n and not "".join(record[n:]).strip():
                record = record[:n]  # trailing empty fields
            if len(record) != n:
                problems.append(
                    Problem(name, start, None, f"this line has {len(record)} fields but the header has {n}")
                )
                continue
            rows.append(record)
            lines.append(start)
    except csv.Error as exc:
        raise _refuse(name, f"not a readable CSV file ({exc})", row=end + 1) from None
    if header is None:
        raise _refuse(name, "the file is empty")
    names, header_problems = _normalize_names(header, name, header_line)
    problems = header_problems + problems
    if problems:
        raise ImportRefused(problems)
    if not rows:
        raise _refuse(name, "the file has a header but no data rows", row=header_line)
    frame = pd.DataFrame(rows, columns=names, dtype=object)
    frame[LINE_COLUMN] = np.asarray(lines, dtype=np.int64)
    frame.attrs["header_line"] = header_line
    return frame


def _read_parquet(data: bytes, name: str) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a corrupt file
        raise _refuse(name, f"not a readable Parquet file ({exc})") from None
    names, problems = _normalize_names(table.column_names, name, None)
    if problems:
        raise ImportRefused(problems)
    try:
        # ignore_metadata: a named pandas index comes back as an ordinary column instead of vanishing.
        frame = table.to_pandas(ignore_metadata=True)
    except Exception as exc:  # noqa: BLE001
        raise _refuse(name, f"cannot convert the Parquet columns ({exc})") from None
    frame.columns = names
    if frame.empty:
        raise _refuse(name, "the file has no data rows")
    frame[LINE_COLUMN] = np.arange(1, len(frame) + 1, dtype=np.int64)
    return frame


def _normalize_name(raw: Any) -> str:
    return str(raw).strip().lower()


def _normalize_names(raw: Sequence[Any], name: str, header_line: int | None) -> tuple[list[str], list[Problem]]:
    """Trimmed, lower-case column names; an empty name becomes 'unnamed: i' (ignored later)."""
    names: list[str] = []
    problems: list[Problem] = []
    first_seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        col = _normalize_name(item) or f"unnamed: {i}"
        if col == LINE_COLUMN:
            problems.append(Problem(name, header_line, col, "this column name is reserved; rename the column"))
        elif len(col) > MAX_COLUMN_NAME:
            problems.append(
                Problem(name, header_line, col[:40] + "...", f"column name longer than {MAX_COLUMN_NAME} characters")
            )
        elif col in first_seen:
            problems.append(
                Problem(
                    name, header_line, col,
                    f"column name appears twice (columns {first_seen[col] + 1} and {i + 1}); names are compared "
                    "ignoring case and surrounding spaces",
                )
            )
        first_seen.setdefault(col, i)
        names.append(col)
    return names, problems


# --- validation helpers ------------------------------------------------------------------------


class _Checker:
    """Collects problems for one frame and converts its columns, with the line of every row."""

    def __init__(self, frame: pd.DataFrame, name: str) -> None:
        self.name = name
        self.problems: list[Problem] = []
        self.bad_rows: set[int] = set()  # positions that already have a problem
        parquet = name.lower().endswith(".parquet")
        if LINE_COLUMN in frame.columns:
            self.lines = pd.to_numeric(frame[LINE_COLUMN], errors="coerce").fillna(-1).astype(np.int64).to_numpy()
        else:
            # A frame built in memory: number rows as a CSV would (header = line 1) or as Parquet rows.
            self.lines = np.arange(len(frame), dtype=np.int64) + (1 if parquet else 2)
        self.header_line: int | None = None if parquet else int(frame.attrs.get("header_line", 1))
        names, self.problems = _normalize_names(
            [c for c in frame.columns if c != LINE_COLUMN], name, self.header_line
        )
        self.ok_columns = not self.problems
        data = frame.drop(columns=[LINE_COLUMN]) if LINE_COLUMN in frame.columns else frame
        self.columns = names
        self.text: dict[str, pd.Series] = {}
        if self.ok_columns:
            for col, raw in zip(names, data.columns, strict=True):
                self.text[col] = _as_text(data[raw])
        self.n = len(frame)
        if self.n == 0:
            self.add(None, None, "no data rows")

    def add(self, row_index: int | None, column: str | None, message: str) -> None:
        """Record a problem at a row position (None: the whole file or its header)."""
        row = int(self.lines[row_index]) if row_index is not None else None
        if row_index is not None:
            self.bad_rows.add(int(row_index))
        self.problems.append(Problem(self.name, row, column, message))

    def add_header(self, column: str, message: str) -> None:
        """Record a problem with the header itself."""
        self.problems.append(Problem(self.name, self.header_line, column, message))

    def sorted_problems(self) -> list[Problem]:
        """Problems in file order: header first, then by line and column position."""
        order = {c: i for i, c in enumerate(self.columns)}
        return sorted(
            self.problems,
            key=lambda p: (-1 if p.row is None else p.row, order.get(p.column or "", -1)),
        )

    def required(self, column: str) -> pd.Series | None:
        """The text of a required column, with a problem for a missing column or each empty cell."""
        if column not in self.text:
            if self.ok_columns:
                shown = ", ".join(self.columns[:12]) + (", ..." if len(self.columns) > 12 else "")
                hint = ""
                if len(self.columns) == 1 and any(sep in self.columns[0] for sep in (";", "\t", "|")):
                    hint = "; the file does not look comma-separated"
                self.add_header(column, f"required column '{column}' is missing (the header has: {shown}){hint}")
            return None
        text = self.text[column]
        for i in np.flatnonzero(~_present(text)):
            self.add(int(i), column, "required value is empty")
        return text

    def texts(self, column: str, limit: int) -> pd.Series:
        """Text cells no longer than LIMIT and free of control characters (None stays None)."""
        text = self.text[column]
        cells = [c for c in text if c is not None]
        # Fast path: one check over the whole column; cell by cell only when something is wrong.
        if (not cells or max(map(len, cells)) <= limit) and not _CONTROL.search("".join(cells)):
            return text
        present = _present(text)
        lengths = text.str.len().fillna(0).to_numpy()
        for i in np.flatnonzero(present & (lengths > limit)):
            self.add(int(i), column, f"text is {int(lengths[i])} characters long; at most {limit} allowed")
        control = text.str.contains(_CONTROL, na=False).to_numpy()
        for i in np.flatnonzero(control & (lengths <= limit)):
            self.add(int(i), column, "text contains control characters (tab, newline, ...)")
        return text

    def numbers(self, column: str, rule: NumberRule) -> pd.Series:
        """Numbers of a numeric column (NaN for empty or bad cells), with a problem for each bad cell."""
        text = self.text[column]
        present = _present(text)
        values = _floats(text)
        bad = present & np.isnan(values)
        for i in np.flatnonzero(bad):
            raw = text.iat[i]
            if raw.lower() in _NAN_WORDS:
                self.add(int(i), column, f"{raw!r} is not a finite number (leave the cell empty for a missing value)")
            else:
                self.add(int(i), column, f"{_show(raw)} is not a number")
        infinite = np.isinf(values)
        for i in np.flatnonzero(infinite):
            self.add(int(i), column, f"{text.iat[i]!r} is not a finite number")
        finite = present & np.isfinite(values)
        wrong = np.zeros(len(values), dtype=bool)
        if rule.integer:
            fractional = finite & (np.floor(np.where(finite, values, 0)) != np.where(finite, values, 0))
            for i in np.flatnonzero(fractional):
                self.add(int(i), column, f"{text.iat[i]} is not a whole number")
            too_big = finite & ~fractional & (np.abs(np.where(finite, values, 0)) > INT_MAX)
            for i in np.flatnonzero(too_big):
                self.add(int(i), column, f"{text.iat[i]} is too large")
            wrong |= fractional | too_big
        with np.errstate(invalid="ignore"):
            out = np.zeros(len(values), dtype=bool)
            if rule.low is not None:
                out |= finite & ((values <= rule.low) if rule.low_open else (values < rule.low))
            if rule.high is not None:
                out |= finite & (values > rule.high)
        for i in np.flatnonzero(out & ~wrong):
            self.add(int(i), column, f"{text.iat[i]} {rule.describe()}")
        clean = np.where(finite & ~wrong & ~out, values, np.nan)
        if rule.integer:
            return pd.Series(pd.array(np.where(np.isnan(clean), 0, clean).astype(np.int64), dtype="Int64")).mask(
                np.isnan(clean)
            )
        return pd.Series(clean, dtype=np.float64)

    def booleans(self, column: str) -> pd.Series:
        """True/false cells (yes/no, 1/0, any case); an empty cell is False."""
        text = self.text[column]
        flags = _per_value(text, lambda raw: True if raw.lower() in _TRUE else False if raw.lower() in _FALSE else None)
        for i in np.flatnonzero(_present(text) & np.equal(np.array(flags, dtype=object), None)):
            self.add(int(i), column, f"{_show(text.iat[i])} is not true/false (also accepted: yes/no, 1/0)")
        return pd.Series([flag is True for flag in flags], dtype=bool)

    def extras(self, skip: Collection[str]) -> tuple[dict[str, pd.Series], list[str]]:
        """Unknown columns: numeric ones (kept) and the names of the others (ignored)."""
        kept: dict[str, pd.Series] = {}
        ignored: list[str] = []
        for column in self.columns:
            if column in skip:
                continue
            text = self.text[column]
            present = _present(text)
            n_present = int(present.sum())
            if _IGNORED_NAME_RE.match(column) or n_present == 0:
                if n_present:
                    ignored.append(column)
                continue
            values = _floats(text)
            numberish = present & (~np.isnan(values) | text.str.lower().isin(_NAN_WORDS).to_numpy())
            n_numbers = int(numberish.sum())
            if n_numbers * 2 <= n_present:
                ignored.append(column)  # free text (comments, flags): not a feature
                continue
            # Mostly numbers: a stray word is a mistake to fix (numbers() reports it), not free text.
            kept[column] = self.numbers(column, NumberRule())
        if len(kept) > MAX_EXTRA_COLUMNS:
            self.add_header(
                "(extra)", f"{len(kept)} extra numeric columns; at most {MAX_EXTRA_COLUMNS} are accepted"
            )
        return kept, ignored


def _present(text: pd.Series) -> np.ndarray:
    """Which cells of a text column (str or None) hold a value."""
    return ~np.equal(text.to_numpy(dtype=object), None)


def _floats(text: pd.Series) -> np.ndarray:
    """Cells as float64, NaN for empty or unreadable ones (callers tell those apart)."""
    cells = text.to_numpy(dtype=object)
    try:
        # Fast path: numpy's cast calls float() in C, about twice as fast as pandas' coercing parser.
        return np.where(np.equal(cells, None), "nan", cells).astype(np.float64)
    except (ValueError, TypeError):
        return pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)


def _show(raw: str) -> str:
    return repr(raw if len(raw) <= 40 else raw[:37] + "...")


def _as_text(series: pd.Series) -> pd.Series:
    """Cells as trimmed strings (object dtype), None for missing or empty; typed input is rendered first."""
    raw = series.to_numpy(dtype=object)
    try:
        # Fast path: a CSV column is all strings.
        cells = [c.strip() or None for c in raw]
    except AttributeError:
        cells = [_cell_text(c) for c in raw]
    return pd.Series(cells, index=range(len(cells)), dtype=object)


def _cell_text(cell: Any) -> str | None:
    if cell is None or (not isinstance(cell, (str, list, tuple, dict, np.ndarray)) and pd.isna(cell)):
        return None
    return str(cell).strip() or None


def _per_value(text: pd.Series, fn: Callable[[str], Any]) -> list[Any]:
    """fn of every present cell (None for empty ones), computed once per distinct value."""
    cache: dict[str, Any] = {}
    out: list[Any] = []
    for cell in text:
        if cell is None:
            out.append(None)
            continue
        if cell not in cache:
            cache[cell] = fn(cell)
        out.append(cache[cell])
    return out


def _band_number(raw: str) -> int | None:
    match = _BAND_RE.match(raw.lower())
    band = int(match.group(1)) if match else 0
    return band if 1 <= band <= 10 else None


def _parse_bands(checker: _Checker, text: pd.Series) -> pd.Series:
    bands = _per_value(text, _band_number)
    for i in np.flatnonzero(_present(text) & np.equal(np.array(bands, dtype=object), None)):
        checker.add(
            int(i), "band", f"unknown band {text.iat[i]!r} (expected 1-10, e.g. 3, B3, Band 3, ALMA_RB_03)"
        )
    return pd.Series(pd.array(bands, dtype="Int64"))


def _parse_times(checker: _Checker, text: pd.Series) -> pd.Series:
    # Naive times are UTC; offsets are converted to UTC (DESIGN.md import format).
    times = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = _present(text) & times.isna().to_numpy()
    for i in np.flatnonzero(bad):
        checker.add(
            int(i), "start_time",
            f"cannot read {_show(text.iat[i])} as an ISO 8601 time (e.g. 2024-05-01T03:12:00Z; UTC when no zone)",
        )
    return times.dt.floor("us").reset_index(drop=True)


def _status_value(raw: str) -> str | bool:
    """The QA0 value, False for an unknown status, True for 'not decided yet' (no label)."""
    if re.sub(r"[\s_-]+", "", raw.lower()) in _UNDECIDED:
        return True
    try:
        return labels_mod.normalize_value(raw)
    except labels_mod.LabelError:
        return False


def _parse_status(checker: _Checker, text: pd.Series) -> pd.Series:
    values = _per_value(text, _status_value)
    for i, value in enumerate(values):
        if value is False:
            checker.add(
                i, STATUS_COLUMN,
                f"unknown qa0_status {_show(text.iat[i])} (expected Pass, SemiPass or Fail, any case; "
                "empty for no label)",
            )
    return pd.Series([v if isinstance(v, str) else None for v in values], dtype=object)


def _normalize_array(text: pd.Series) -> pd.Series:
    def fix(value: str | None) -> str | None:
        if value is None:
            return None
        match = _ARRAY_RE.match(value)
        if match:
            return f"{match.group(1)}m"
        return "TP" if value.lower() == "tp" else value

    return pd.Series(_per_value(text, fix), dtype=object)


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """A hashable view of a clean frame (dicts as canonical JSON) for duplicate detection."""
    out = frame.drop(columns=[LINE_COLUMN]).reset_index(drop=True)
    if "extra" in out.columns:
        out["extra"] = [None if d is None else json.dumps(d, sort_keys=True) for d in out["extra"]]
    return out


def _deduplicate(
    checker: _Checker, clean: pd.DataFrame, key: list[str], describe: Callable[[pd.Series], str]
) -> pd.DataFrame:
    """Drop identical repeated rows; a repeated KEY with different contents is a problem."""
    repeated = clean.duplicated(subset=key, keep=False).to_numpy()
    if not repeated.any():
        return clean
    # Only rows whose key repeats need the (slower) full comparison.
    comparable = _comparable(clean)
    first = np.ones(len(clean), dtype=bool)
    first[repeated] = ~comparable[repeated].duplicated(keep="first").to_numpy()
    unique = clean[first]
    # Rows already refused for a bad cell would only add noise as "different values".
    clean_rows = np.ones(len(clean), dtype=bool)
    clean_rows[list(checker.bad_rows)] = False
    clean_rows &= clean[key].notna().all(axis=1).to_numpy()
    keyed = unique[clean_rows[first]]
    conflicts = np.zeros(len(unique), dtype=bool)
    conflicts[clean_rows[first]] = keyed.duplicated(subset=key, keep=False).to_numpy()
    if conflicts.any():
        cmp_unique = comparable[first]
        positions = np.flatnonzero(first)
        seen: dict[tuple[Any, ...], int] = {}
        for j in np.flatnonzero(conflicts):
            row = cmp_unique.iloc[j]
            k = tuple(row[c] for c in key)
            if k not in seen:
                seen[k] = j
                continue
            base = cmp_unique.iloc[seen[k]]
            differs = [c for c in cmp_unique.columns if not _same(base[c], row[c])]
            checker.add(
                int(positions[j]), key[0],
                f"{describe(row)} also appears on {_row_word(checker.name)} {int(checker.lines[positions[seen[k]]])} "
                f"with different values (in {', '.join(differs)})",
            )
    return unique.reset_index(drop=True)


def _same(a: Any, b: Any) -> bool:
    a_na, b_na = bool(pd.isna(a)), bool(pd.isna(b))
    return (a_na and b_na) or (not a_na and not b_na and a == b)


def _extra_dicts(kept: dict[str, pd.Series], n: int) -> list[dict[str, float] | None]:
    if not kept:
        return [None] * n
    names = list(kept)
    matrix = np.column_stack([kept[c].to_numpy(dtype=np.float64) for c in names])
    gaps = np.isnan(matrix).any(axis=1)
    out: list[dict[str, float] | None] = []
    for row, gap in zip(matrix.tolist(), gaps.tolist(), strict=True):
        if gap:  # leave out empty cells (NaN is not JSON)
            d = {c: v for c, v in zip(names, row, strict=True) if v == v}
            out.append(d or None)
        else:
            out.append(dict(zip(names, row, strict=True)))
    return out


# --- validation --------------------------------------------------------------------------------


def validate_ebs(frame: pd.DataFrame, *, name: str) -> tuple[pd.DataFrame, list[Problem]]:
    """Check an EB frame against the import contract; return the typed, de-duplicated rows and the problems.

    The clean frame has uid, source, band (Int64), start_time (UTC), the known optional columns present,
    qa0_status (when present), extra (dict or None) and LINE_COLUMN; attrs hold extra_columns and
    ignored_columns.
    """
    checker = _Checker(frame, name)
    if not checker.ok_columns:
        return pd.DataFrame(), checker.sorted_problems()
    n = checker.n
    data: dict[str, Any] = {}
    for column in REQUIRED_EB:
        text = checker.required(column)
        if text is None:
            data[column] = pd.Series([None] * n, dtype=object)
        elif column == "band":
            data[column] = _parse_bands(checker, text)
        elif column == "start_time":
            data[column] = _parse_times(checker, text)
        else:
            data[column] = checker.texts(column, EB_REQUIRED_TEXTS[column])
    for column, limit in EB_TEXTS.items():
        if column in checker.text:
            text = checker.texts(column, limit)
            data[column] = _normalize_array(text) if column == "array" else text
    for column, rule in EB_NUMBERS.items():
        if column in checker.text:
            data[column] = checker.numbers(column, rule)
    if STATUS_COLUMN in checker.text:
        data[STATUS_COLUMN] = _parse_status(checker, checker.text[STATUS_COLUMN])
    known = {*REQUIRED_EB, *EB_TEXTS, *EB_NUMBERS, STATUS_COLUMN}
    reserved = [c for c in EB_RESERVED if c in checker.text and checker.text[c].notna().any()]
    kept, ignored = checker.extras(skip=known | set(EB_RESERVED))
    data["extra"] = pd.Series(_extra_dicts(kept, n), dtype=object)
    data[LINE_COLUMN] = pd.Series(checker.lines, dtype=np.int64)
    clean = pd.DataFrame(data)
    if "uid" in clean:
        clean["uid"] = clean["uid"].map(lambda u: canonical_uid(u) if isinstance(u, str) else u)
    clean = _deduplicate(checker, clean, ["uid"], lambda row: f"uid {row['uid']!r}")
    clean.attrs["extra_columns"] = list(kept)
    clean.attrs["ignored_columns"] = reserved + ignored
    return clean, checker.sorted_problems()


def validate_details(
    frame: pd.DataFrame, *, name: str, known_uids: Collection[str]
) -> tuple[pd.DataFrame, list[Problem]]:
    """Check a details frame (uid, antenna, spw, scan + measurements); every uid must be in KNOWN_UIDS.

    The clean frame has uid, antenna, spw, scan (Int64), the measurements present (flagged as bool) and
    LINE_COLUMN; attrs hold ignored_columns.
    """
    checker = _Checker(frame, name)
    if not checker.ok_columns:
        return pd.DataFrame(), checker.sorted_problems()
    n = checker.n
    data: dict[str, Any] = {}
    uid = checker.required("uid")
    if uid is not None:
        uid = checker.texts("uid", MAX_UID).map(lambda u: canonical_uid(u) if isinstance(u, str) else u)
        known = set(known_uids)
        unknown = _present(uid) & ~uid.isin(known).to_numpy()
        counts = uid[unknown].value_counts()
        reported: set[str] = set()
        for i in np.flatnonzero(unknown):
            if uid.iat[i] in reported:
                continue  # one problem per unknown uid, not one per detail row
            reported.add(uid.iat[i])
            more = int(counts[uid.iat[i]]) - 1
            tail = f" ({more} more rows with this uid)" if more else ""
            checker.add(int(i), "uid", f"no EB with uid {uid.iat[i]!r} in the EB file or the database{tail}")
    data["uid"] = uid if uid is not None else pd.Series([None] * n, dtype=object)
    antenna = checker.required("antenna")
    data["antenna"] = checker.texts("antenna", 8) if antenna is not None else pd.Series([None] * n, dtype=object)
    for column in ("spw", "scan"):
        text = checker.required(column)
        data[column] = (
            checker.numbers(column, DETAIL_NUMBERS[column]) if text is not None
            else pd.Series([None] * n, dtype=object)
        )
    for column in DETAIL_MEASUREMENTS:
        if column in checker.text:
            data[column] = checker.booleans(column) if column == "flagged" else checker.numbers(
                column, DETAIL_NUMBERS[column]
            )
    known_cols = {*REQUIRED_DETAIL, *DETAIL_MEASUREMENTS, *DETAIL_RESERVED}
    ignored = [c for c in checker.columns if c not in known_cols and checker.text[c].notna().any()]
    ignored += [c for c in DETAIL_RESERVED if c in checker.text and checker.text[c].notna().any()]
    data[LINE_COLUMN] = pd.Series(checker.lines, dtype=np.int64)
    clean = pd.DataFrame(data)
    clean = _deduplicate(
        checker, clean, ["uid", "antenna", "spw", "scan"],
        lambda r: f"uid {r['uid']!r} antenna {r['antenna']} spw {r['spw']} scan {r['scan']}",
    )
    clean.attrs["ignored_columns"] = ignored
    return clean, checker.sorted_problems()


# --- writing -----------------------------------------------------------------------------------


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _table(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]


def _uid_ids(conn: Connection, uids: Sequence[str]) -> dict[str, int]:
    """Database ids of the EBs among UIDS that exist."""
    if not uids:
        return {}
    if len(uids) > FULL_SCAN_OVER:
        # One scan beats hundreds of IN (...) queries for a large file.
        wanted = set(uids)
        rows = conn.exec_driver_sql("SELECT uid, id FROM execution_block").fetchall()
        return {uid: int(eb_id) for uid, eb_id in rows if uid in wanted}
    t = _table(ExecutionBlock)
    found: dict[str, int] = {}
    for chunk in _chunks(list(uids), CHUNK):
        for uid, eb_id in conn.execute(select(t.c.uid, t.c.id).where(t.c.uid.in_(chunk))):
            found[uid] = int(eb_id)
    return found


def _executemany(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run a parameterised statement (qmark style) for many rows through the DB-API cursor."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        sql = sql.replace("?", "%s")
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, rows)
    finally:
        cursor.close()


def _binder(conn: Connection, model: Any, column: str) -> Callable[[Any], Any]:
    """The dialect's own conversion for a column (datetime text on SQLite, Json on psycopg), None kept."""
    col_type = _table(model).c[column].type
    process = col_type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    if process is None:
        return lambda value: value
    return lambda value: None if value is None else process(value)


def _py(series: pd.Series) -> list[Any]:
    """Column values as plain Python objects, None for missing (what DB-API drivers accept)."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        objects = np.array(series.dt.to_pydatetime(), dtype=object)
        objects[series.isna().to_numpy()] = None
        return objects.tolist()
    return series.astype(object).where(series.notna(), None).tolist()


def _write_ebs(
    conn: Connection, clean: pd.DataFrame, report: Progress, span: tuple[float, float]
) -> tuple[dict[str, int], int, int]:
    """Insert new EBs and update existing ones; returns (uid -> id, inserted, updated)."""
    t = _table(ExecutionBlock)
    uids: list[str] = clean["uid"].tolist()
    existing = _uid_ids(conn, uids)
    columns = [c for c in clean.columns if c in t.c and c != "extra"]
    to_time = _binder(conn, ExecutionBlock, "start_time")
    to_json = _binder(conn, ExecutionBlock, "extra")
    values = {c: _py(clean[c]) for c in columns}
    values["start_time"] = [to_time(v) for v in values["start_time"]]
    now = to_time(utcnow())
    extras: list[dict[str, float] | None] = clean["extra"].tolist()
    is_new = [uid not in existing for uid in uids]
    lo, hi = span
    total = max(1, len(uids))

    new_idx = [i for i, new in enumerate(is_new) if new]
    insert_cols = [*columns, "extra", "imported_at"]
    new_rows = [(*(values[c][i] for c in columns), to_json(extras[i]), now) for i in new_idx]
    done = 0
    for chunk in _chunks(new_rows, WRITE_CHUNK):
        done += bulk_insert(conn, "execution_block", insert_cols, chunk)
        report(lo + (hi - lo) * done / total, f"inserted {done:,} of {len(new_rows):,} new EBs")

    old_idx = [i for i, new in enumerate(is_new) if not new]
    file_extras = set(clean.attrs.get("extra_columns", []))
    set_cols = [c for c in columns if c != "uid"] + ["imported_at"]
    if file_extras:
        set_cols.append("extra")
        old = _old_extras(conn, [existing[uids[i]] for i in old_idx])
    upd_rows: list[tuple[Any, ...]] = []
    for i in old_idx:
        eb_id = existing[uids[i]]
        row: list[Any] = [values[c][i] for c in columns if c != "uid"] + [now]
        if file_extras:
            # Extra columns in this file replace their old values; extra columns it lacks are kept.
            kept = {k: v for k, v in (old.get(eb_id) or {}).items() if k not in file_extras}
            row.append(to_json({**kept, **(extras[i] or {})} or None))
        upd_rows.append((*row, eb_id))
    sql = f"UPDATE execution_block SET {', '.join(f'{c} = ?' for c in set_cols)} WHERE id = ?"
    updated = 0
    for chunk in _chunks(upd_rows, WRITE_CHUNK):
        _executemany(conn, sql, chunk)
        updated += len(chunk)
        report(lo + (hi - lo) * (done + updated) / total, f"updated {updated:,} of {len(upd_rows):,} EBs")

    ids = dict(existing)
    ids.update(_uid_ids(conn, [uids[i] for i in new_idx]))
    return ids, len(new_rows), len(upd_rows)


def _old_extras(conn: Connection, ids: Sequence[int]) -> dict[int, dict[str, Any] | None]:
    t = _table(ExecutionBlock)
    out: dict[int, dict[str, Any] | None] = {}
    for chunk in _chunks(list(ids), CHUNK):
        for eb_id, extra in conn.execute(select(t.c.id, t.c.extra).where(t.c.id.in_(chunk))):
            out[int(eb_id)] = extra
    return out


def _archive_event_id(uid: str, value: str, revision: int) -> str:
    """Deterministic client_event_id: the same status imported twice is the same event."""
    suffix = f":{revision}" if revision > 1 else ""
    key = f"archive:{uid}:{value}{suffix}"
    if len(key) <= 64:  # the column's width
        return key
    digest = hashlib.sha256(uid.encode("utf-8")).hexdigest()[:40]
    return f"archive#{digest}:{value}{suffix}"


def _archive_state(conn: Connection, archive_id: int, eb_ids: Sequence[int]) -> dict[int, tuple[str | None, int]]:
    """Per EB: archive's current value and how many archive events it already has."""
    lt = _table(Label)

    def query(chunk: Sequence[int] | None) -> Any:
        where = [lt.c.labeler_id == archive_id, lt.c.kind.in_(("review", "undo"))]
        if chunk is not None:
            where.append(lt.c.eb_id.in_(chunk))
        newest = (
            select(lt.c.eb_id, func.max(lt.c.id).label("mid"), func.count().label("n"))
            .where(*where)
            .group_by(lt.c.eb_id)
            .subquery()
        )
        return select(newest.c.eb_id, lt.c.value, newest.c.n).join(lt, lt.c.id == newest.c.mid)

    state: dict[int, tuple[str | None, int]] = {}
    chunks: Iterable[Sequence[int] | None] = [None] if len(eb_ids) > FULL_SCAN_OVER else _chunks(eb_ids, CHUNK)
    for chunk in chunks:
        for eb_id, value, n in conn.execute(query(chunk)):
            state[int(eb_id)] = (value, int(n))
    return state


def _taken_event_ids(conn: Connection, archive_id: int, keys: Sequence[str]) -> set[str]:
    lt = _table(Label)
    if len(keys) > FULL_SCAN_OVER:
        rows = conn.execute(select(lt.c.client_event_id).where(lt.c.labeler_id == archive_id))
        wanted = set(keys)
        return {r[0] for r in rows if r[0] in wanted}
    taken: set[str] = set()
    for chunk in _chunks(list(keys), CHUNK):
        taken.update(r[0] for r in conn.execute(select(lt.c.client_event_id).where(lt.c.client_event_id.in_(chunk))))
    return taken


def _write_archive_labels(conn: Connection, clean: pd.DataFrame, ids: dict[str, int]) -> int:
    """Append an archive label where the file's qa0_status differs from archive's current one."""
    if STATUS_COLUMN not in clean.columns:
        return 0
    wanted = [(uid, v) for uid, v in zip(clean["uid"], clean[STATUS_COLUMN], strict=True) if v is not None]
    if not wanted:
        return 0
    session = Session(bind=conn)
    try:
        archive = labels_mod.get_or_create_labeler(session=session, name=ARCHIVE_LABELER)
        session.flush()
        archive_id = int(archive.id)  # type: ignore[arg-type]
    finally:
        session.close()
    eb_ids = [ids[uid] for uid, _ in wanted]
    state = _archive_state(conn, archive_id, eb_ids)
    now = _binder(conn, Label, "created_at")(utcnow())
    events: list[tuple[Any, ...]] = []
    for (uid, value), eb_id in zip(wanted, eb_ids, strict=True):
        old_value, n = state.get(eb_id, (None, 0))
        if old_value == value:
            continue  # unchanged status: a re-import adds nothing
        events.append((eb_id, archive_id, value, "review", now, _archive_event_id(uid, value, n + 1)))
    taken = _taken_event_ids(conn, archive_id, [e[5] for e in events])
    events = [e for e in events if e[5] not in taken]
    columns = ["eb_id", "labeler_id", "value", "kind", "created_at", "client_event_id"]
    for chunk in _chunks(events, WRITE_CHUNK):
        bulk_insert(conn, "label", columns, chunk)
    return len(events)


def _write_details(
    conn: Connection, clean: pd.DataFrame, ids: dict[str, int], report: Progress, span: tuple[float, float]
) -> int:
    """Replace the detail rows of every uid in the details file."""
    uids = list(dict.fromkeys(clean["uid"].tolist()))
    missing = [u for u in uids if u not in ids]
    if missing:
        ids = {**ids, **_uid_ids(conn, missing)}
    dt = _table(EBDetail)
    for chunk in _chunks([ids[u] for u in uids], CHUNK):
        conn.execute(delete(dt).where(dt.c.eb_id.in_(chunk)))
    columns = ["eb_id", "antenna", "spw", "scan"] + [c for c in DETAIL_MEASUREMENTS if c in clean.columns]
    values = [[ids[u] for u in clean["uid"]]] + [_py(clean[c]) for c in columns[1:]]
    if "flagged" not in clean.columns:
        columns.append("flagged")
        values.append([False] * len(clean))
    rows = list(zip(*values, strict=True))
    lo, hi = span
    done = 0
    for chunk in _chunks(rows, WRITE_CHUNK * 4):
        done += bulk_insert(conn, "eb_detail", columns, chunk)
        report(lo + (hi - lo) * done / max(1, len(rows)), f"wrote {done:,} of {len(rows):,} detail rows")
    return done


def _quiet(_fraction: float, _message: str) -> None:
    return None


def import_frames(
    *,
    engine: Engine,
    ebs: pd.DataFrame,
    details: pd.DataFrame | None = None,
    ebs_name: str = "upload",
    details_name: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Validate EB (and detail) frames, then write them in one transaction; ImportRefused if anything is wrong."""
    report = progress or _quiet
    report(0.0, "validating")
    clean, problems = validate_ebs(ebs, name=ebs_name)
    clean_details: pd.DataFrame | None = None
    if details is not None:
        details_name = details_name or "details"
        file_uids = set(clean["uid"].dropna()) if "uid" in clean.columns else set()
        asked = _detail_uids(details) - file_uids
        with engine.connect() as conn:
            in_db = set(_uid_ids(conn, sorted(asked))) if asked else set()
        clean_details, more = validate_details(details, name=details_name, known_uids=file_uids | in_db)
        problems += more
    if problems:
        report(1.0, "refused: nothing was written")
        raise ImportRefused(problems)

    def write() -> tuple[int, int, int, int]:
        with writer(engine).begin() as conn:
            report(0.1, "writing")
            ids, inserted, updated = _write_ebs(conn, clean, report, (0.1, 0.6))
            report(0.6, "labels")
            labels_added = _write_archive_labels(conn, clean, ids)
            detail_rows = 0
            if clean_details is not None:
                detail_rows = _write_details(conn, clean_details, ids, report, (0.65, 0.99))
        return inserted, updated, labels_added, detail_rows

    try:
        inserted, updated, labels_added, detail_rows = retry_locked(write)
    except (IntegrityError, engine.dialect.dbapi.IntegrityError):  # raw cursors raise the driver's own
        # Another process inserted one of these uids (or archive events) after we looked: the
        # transaction rolled back, and a second pass sees their rows and updates instead.
        inserted, updated, labels_added, detail_rows = retry_locked(write)
    ignored = list(clean.attrs.get("ignored_columns", []))
    if clean_details is not None:
        ignored += [f"{details_name}:{c}" for c in clean_details.attrs.get("ignored_columns", [])]
    report(1.0, "done")
    return {
        "inserted": inserted,
        "updated": updated,
        "labels_added": labels_added,
        "detail_rows": detail_rows,
        "extra_columns": list(clean.attrs.get("extra_columns", [])),
        "ignored_columns": ignored,
    }


def _detail_uids(details: pd.DataFrame) -> set[str]:
    for raw in details.columns:
        if _normalize_name(raw) == "uid":
            column = details[raw]
            if isinstance(column, pd.DataFrame):  # duplicate header: validation reports it
                return set()
            return {u for u in _as_text(column) if u is not None}
    return set()


def import_file(
    *, engine: Engine, path: Path, details_path: Path | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    """Import an EB file (and optional details file), CSV or Parquet by extension; all or nothing."""
    problems: list[Problem] = []
    frames: list[pd.DataFrame | None] = []
    for p in (path, details_path):
        if p is None:
            frames.append(None)
            continue
        try:
            frames.append(read_table(Path(p), name=str(p)))
        except ImportRefused as exc:
            problems += exc.problems
            frames.append(None)
    if problems:
        raise ImportRefused(problems)
    assert frames[0] is not None
    return import_frames(
        engine=engine,
        ebs=frames[0],
        details=frames[1],
        ebs_name=str(path),
        details_name=str(details_path) if details_path is not None else None,
        progress=progress,
    )


# --- export ------------------------------------------------------------------------------------


def _iso_z(values: pd.Series) -> pd.Series:
    """Times as ISO 8601 UTC with Z (the database stores UTC; naive values are UTC)."""
    times = pd.to_datetime(values, utc=True, format="ISO8601") if values.dtype == object else pd.to_datetime(
        values, utc=True
    )
    return times.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").astype(object).where(times.notna(), None)


def export_labels_frame(*, engine: Engine, current: bool = False) -> pd.DataFrame:
    """Label events in id order (or, with current=True, each labeler's current label per EB)."""
    lt, et, bt = _table(Label), _table(ExecutionBlock), _table(Labeler)
    stmt = (
        select(
            lt.c.id, et.c.uid, bt.c.name, bt.c.role, lt.c.value, lt.c.comment, lt.c.reason, lt.c.kind,
            lt.c.seconds_on_eb, lt.c.created_at,
        )
        .join(et, et.c.id == lt.c.eb_id)
        .join(bt, bt.c.id == lt.c.labeler_id)
        .order_by(lt.c.id)
    )
    with Session(engine) as session:
        rows = session.connection().execute(stmt).fetchall()
        keep = set(labels_mod.current_labels(session)["event_id"].astype(int)) if current else None
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["id", *EXPORT_COLUMNS])
    if keep is not None:
        frame = frame[frame["id"].isin(keep)]
    frame = frame.drop(columns=["id"]).reset_index(drop=True)
    frame["seconds_on_eb"] = pd.to_numeric(frame["seconds_on_eb"], errors="coerce").astype(np.float64)
    frame["created_at"] = _iso_z(frame["created_at"]) if len(frame) else pd.Series([], dtype=object)
    for column in ("uid", "labeler", "role", "value", "comment", "reason", "kind", "created_at"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame[EXPORT_COLUMNS]


def _neutralise(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells cannot run as spreadsheet formulas (leading = + - @ tab CR get a quote)."""
    safe = frame.copy()
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]) and not pd.api.types.is_bool_dtype(safe[column]):
            safe[column] = safe[column].map(_neutralise)
    return safe


def export_labels(*, engine: Engine, out: Path, current: bool = False) -> int:
    """Write label events (or current labels) to CSV or Parquet (by extension); returns the row count."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"{out}: the output must end in .csv or .parquet")
    frame = export_labels_frame(engine=engine, current=current)
    out.parent.mkdir(parents=True, exist_ok=True)
    # A reader never sees a half-written file: write beside the target, then rename over it.
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        if suffix == ".csv":
            spreadsheet_safe(frame).to_csv(tmp, index=False, encoding="utf-8")
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return len(frame)
