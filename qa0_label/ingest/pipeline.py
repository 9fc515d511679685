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
- Files stream in blocks of DEFAULT_CHUNK_ROWS rows (validated, then spooled to a temp file), so memory
  does not grow with the file; rules about the whole file (repeated uids, numeric extra columns, unknown
  detail uids) are checked across blocks, and only a file without problems is written. A refusal keeps
  the first MAX_KEPT_PROBLEMS problems and counts the rest.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import pickle
import re
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
from sqlalchemy import Table, delete, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from qa0_label.store import labels as labels_mod
from qa0_label.store.db import bulk_insert, retry_locked, writer
from qa0_label.store.models import EBDetail, ExecutionBlock, Label, Labeler, utcnow
from qa0_label.store.uids import canonical_uid

__all__ = [
    "ARCHIVE_LABELER",
    "LINE_COLUMN",
    "ImportRefused",
    "Problem",
    "export_labels",
    "export_labels_frame",
    "import_file",
    "import_frames",
    "read_chunks",
    "read_table",
    "spreadsheet_safe",
    "upload_problem",
    "validate_details",
    "validate_ebs",
]

Progress = Callable[[float, str], None]

ARCHIVE_LABELER = "archive"
LINE_COLUMN = "__line__"
"""Column read_table adds: the CSV line (header = line 1) or Parquet row (1-based) each row came from."""

MAX_LISTED_PROBLEMS = 20
MAX_KEPT_PROBLEMS = 1_000  # problems kept per file (the rest are counted): a file of bad rows stays small
DEFAULT_CHUNK_ROWS = 50_000  # rows read, validated and written per block: memory stays flat (300k rows: 0.66 GB peak vs 0.95 GB at 100k, same CPU)
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
    """The input cannot be imported; nothing was written. `.problems` lists the reasons in file order.

    `.omitted` counts further problems of a very bad file that were counted but not kept.
    """

    def __init__(self, problems: Iterable[Problem], *, omitted: int = 0) -> None:
        self.problems: list[Problem] = list(problems)
        self.omitted = int(omitted)
        super().__init__(self.problems)

    def __str__(self) -> str:
        lines = [str(p) for p in self.problems[:MAX_LISTED_PROBLEMS]]
        extra = len(self.problems) + self.omitted - MAX_LISTED_PROBLEMS
        if extra > 0:
            lines.append(f"... and {extra} more problem{'s' if extra != 1 else ''}")
        return "\n".join(lines)


def upload_problem(*, name: str, size: int | None, limit_mb: float) -> Problem | None:
    """The problem with an upload of SIZE bytes over LIMIT_MB (MiB), or None when it fits."""
    limit = int(limit_mb * 1024 * 1024)
    if size is None or size <= limit:
        return None
    return Problem(
        name,
        None,
        None,
        f"the file is {size / 1024 / 1024:,.1f} MB; uploads are limited to {limit_mb:g} MB (import larger files "
        "with the command line: python -m qa0_label import PATH)",
    )


def _row_word(name: str) -> str:
    return "row" if name.lower().endswith(".parquet") else "line"


def _refuse(name: str, message: str, *, row: int | None = None, column: str | None = None) -> ImportRefused:
    return ImportRefused([Problem(name, row, column, message)])


# --- reading -----------------------------------------------------------------------------------

Chunk = tuple[pd.DataFrame | None, list[Problem]]
"""A block of rows from a file (None when every row of the block was refused) and the reading problems in it."""


def _suffix(source: Path | BinaryIO | str, name: str) -> str:
    """'.csv' or '.parquet' from NAME (or the path's own name); ImportRefused for anything else."""
    suffix = Path(name).suffix.lower()
    if suffix not in (".csv", ".parquet") and isinstance(source, (str, Path)):
        suffix = Path(source).suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise _refuse(name, f"unsupported file type '{suffix or '(no extension)'}'; use .csv or .parquet")
    return suffix


@contextmanager
def _open_binary(source: Path | BinaryIO | str, name: str) -> Iterator[tuple[BinaryIO, int | None]]:
    """A binary stream positioned at the start and its size (None when unknown); the file is closed after."""
    if isinstance(source, (str, Path)):
        try:
            handle = open(source, "rb")  # noqa: SIM115 - closed in the finally below
        except FileNotFoundError:
            raise _refuse(name, "no such file") from None
        except IsADirectoryError:
            raise _refuse(name, "is a directory, not a file") from None
        except PermissionError:
            raise _refuse(name, "permission denied") from None
        except OSError as exc:
            raise _refuse(name, f"cannot read the file ({exc.strerror or exc})") from None
        try:
            yield handle, os.fstat(handle.fileno()).st_size
        finally:
            handle.close()
        return
    try:
        if getattr(source, "seekable", lambda: False)():
            source.seek(0)  # an upload read once before (a page rerun) must not look empty
            stream: BinaryIO = source
        else:
            stream = io.BytesIO(source.read())
        probe = stream.read(0)
        if isinstance(probe, str):  # a text stream: the rest of the pipeline reads bytes
            stream = io.BytesIO(stream.read().encode("utf-8"))
        size: int | None = None
        if stream.seekable():
            here = stream.tell()
            size = stream.seek(0, io.SEEK_END)
            stream.seek(here)
    except (OSError, ValueError) as exc:
        raise _refuse(name, f"cannot read the upload ({exc})") from None
    yield stream, size


def _is_blank(stream: BinaryIO) -> bool:
    """True for an empty or whitespace-only file (only the first 64 KiB are read; the stream is rewound)."""
    head = stream.read(1 << 16)
    blank = not head.strip() and (len(head) < 1 << 16 and not stream.read(1))
    stream.seek(0)
    return blank


def _stream_chunks(stream: BinaryIO, *, suffix: str, name: str, chunk_rows: int) -> Iterator[Chunk]:
    if _is_blank(stream):
        raise _refuse(name, "the file is empty")
    if suffix == ".csv":
        return _csv_chunks(stream, name, chunk_rows)
    return _parquet_chunks(stream, name, chunk_rows)


def read_chunks(
    source: Path | BinaryIO,
    *,
    name: str,
    chunk_rows: int = 0,
    on_bytes: Callable[[int, int | None], None] | None = None,
) -> Iterator[Chunk]:
    """Stream a CSV (raw text) or Parquet file in blocks of CHUNK_ROWS rows (0: the default size).

    Each block has a LINE_COLUMN; rows a reader refuses (ragged CSV lines) come back as problems beside
    it. ImportRefused for an unreadable file or header. on_bytes(read, size) follows the file position.
    """
    chunk_rows = int(chunk_rows) or DEFAULT_CHUNK_ROWS
    suffix = _suffix(source, name)
    with _open_binary(source, name) as (stream, size):
        for chunk in _stream_chunks(stream, suffix=suffix, name=name, chunk_rows=chunk_rows):
            if on_bytes is not None:
                try:
                    on_bytes(stream.tell(), size)
                except (OSError, ValueError):
                    pass
            yield chunk


def read_table(source: Path | BinaryIO, *, name: str) -> pd.DataFrame:
    """Read a CSV (as raw text) or Parquet file into a frame with a LINE_COLUMN; ImportRefused if unreadable."""
    frames: list[pd.DataFrame] = []
    problems: list[Problem] = []
    for frame, more in read_chunks(source, name=name, chunk_rows=2**62):
        problems += more
        if frame is not None:
            frames.append(frame)
    if problems:
        raise ImportRefused(problems)
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    frame.attrs.update(frames[0].attrs)
    return frame


def _utf8_refusal(stream: BinaryIO, name: str) -> ImportRefused:
    """Find the first byte that is not UTF-8 (block by block) and name its line."""
    stream.seek(0)
    carry, line = b"", 1
    while True:
        block = stream.read(1 << 20)
        data = carry + block
        if not data:
            break
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if block and exc.end == len(data) and exc.reason == "unexpected end of data":
                # A character cut by the block boundary: finish it with the next block.
                line += data[: exc.start].count(b"\n")
                carry = data[exc.start :]
                continue
            line += data[: exc.start].count(b"\n")
            return _refuse(
                name, f"byte 0x{data[exc.start]:02x} is not valid UTF-8; save the file as UTF-8 (CSV UTF-8)", row=line
            )
        line += data.count(b"\n")
        carry = b""
        if not block:
            break
    return _refuse(name, "the file is not valid UTF-8; save the file as UTF-8 (CSV UTF-8)")


def _csv_frame(rows: list[list[str]], lines: list[int], names: list[str], header_line: int) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=names, dtype=object)
    frame[LINE_COLUMN] = np.asarray(lines, dtype=np.int64)
    frame.attrs["header_line"] = header_line
    return frame


def _csv_chunks(stream: BinaryIO, name: str, chunk_rows: int) -> Iterator[Chunk]:
    # utf-8-sig reads plain UTF-8 too and drops the byte-order mark that Excel writes.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")  # type: ignore[type-var]
    try:
        reader = csv.reader(text)
        names: list[str] | None = None
        header_line = 1
        rows: list[list[str]] = []
        lines: list[int] = []
        problems: list[Problem] = []
        n_rows = n_problems = 0
        end = 0
        try:
            for record in reader:
                start, end = end + 1, reader.line_num
                if not "".join(record).strip():
                    continue  # blank lines and rows of bare commas (spreadsheet leftovers)
                if names is None:
                    header_line = start
                    names, header_problems = _normalize_names(record, name, header_line)
                    if header_problems:
                        raise ImportRefused(header_problems)
                    continue
                n = len(names)
                if len(record) > n and not "".join(record[n:]).strip():
                    record = record[:n]  # trailing empty fields
                if len(record) != n:
                    problems.append(
                        Problem(name, start, None, f"this line has {len(record)} fields but the header has {n}")
                    )
                    n_problems += 1
                    continue
                rows.append(record)
                lines.append(start)
                if len(rows) >= chunk_rows:
                    n_rows += len(rows)
                    yield _csv_frame(rows, lines, names, header_line), problems
                    rows, lines, problems = [], [], []
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise _refuse(
                    name,
                    f"a cell is longer than {csv.field_size_limit():,} characters (a quote that is never closed?)",
                    row=end + 1,
                ) from None
            raise _refuse(name, f"not a readable CSV file ({exc})", row=end + 1) from None
        except UnicodeDecodeError:
            raise _utf8_refusal(stream, name) from None
        if names is None:
            raise _refuse(name, "the file is empty")
        n_rows += len(rows)
        if n_rows == 0 and n_problems == 0:
            raise _refuse(name, "the file has a header but no data rows", row=header_line)
        if rows or problems:
            yield (_csv_frame(rows, lines, names, header_line) if rows else None), problems
    finally:
        text.detach()  # the caller owns (and closes) the binary stream


def _parquet_chunks(stream: BinaryIO, name: str, chunk_rows: int) -> Iterator[Chunk]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(stream)
        raw_names = parquet.schema_arrow.names
        n_rows = parquet.metadata.num_rows
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a corrupt file
        raise _refuse(name, f"not a readable Parquet file ({exc})") from None
    names, problems = _normalize_names(raw_names, name, None)
    if problems:
        raise ImportRefused(problems)
    if n_rows == 0 or not names:
        raise _refuse(name, "the file has no data rows")
    first = 1
    batches = parquet.iter_batches(batch_size=chunk_rows)
    while True:
        try:
            batch = next(batches, None)
            if batch is None:
                return
            # ignore_metadata: a named pandas index comes back as an ordinary column instead of vanishing.
            frame = pa.Table.from_batches([batch]).to_pandas(ignore_metadata=True)
        except Exception as exc:  # noqa: BLE001
            raise _refuse(name, f"cannot convert the Parquet columns ({exc})") from None
        frame.columns = names
        frame[LINE_COLUMN] = np.arange(first, first + len(frame), dtype=np.int64)
        first += len(frame)
        yield frame, []


def _frame_chunks(frame: pd.DataFrame, name: str, chunk_rows: int) -> Iterator[Chunk]:
    """An in-memory frame in blocks, numbered as read_table would (CSV line from 2, Parquet row from 1)."""
    if LINE_COLUMN not in frame.columns:
        frame = frame.copy()
        start = 1 if name.lower().endswith(".parquet") else int(frame.attrs.get("header_line", 1)) + 1
        frame[LINE_COLUMN] = np.arange(start, start + len(frame), dtype=np.int64)
    if len(frame) <= chunk_rows:
        yield frame, []
        return
    for begin in range(0, len(frame), chunk_rows):
        part = frame.iloc[begin : begin + chunk_rows]
        part.attrs = dict(frame.attrs)
        yield part, []


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
                    name,
                    header_line,
                    col,
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
        names, self.problems = _normalize_names([c for c in frame.columns if c != LINE_COLUMN], name, self.header_line)
        self.ok_columns = not self.problems
        data = frame.drop(columns=[LINE_COLUMN]) if LINE_COLUMN in frame.columns else frame
        self.columns = names
        self.text: dict[str, pd.Series] = {}
        self.nested: dict[str, int] = {}  # column -> first row holding a list / struct (Parquet)
        if self.ok_columns:
            for col, raw in zip(names, data.columns, strict=True):
                self.text[col] = _as_text(data[raw], self.nested, col)
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

    def refuse_nested(self, known: Collection[str]) -> None:
        """A known column must hold one plain value per cell: a list or struct there is a problem."""
        for column, i in self.nested.items():
            if column in known:
                self.add(
                    i, column, "holds lists or structs (a nested Parquet column); expected one plain value per cell"
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

    def extras(
        self, skip: Collection[str], numeric: Collection[str] | None = None
    ) -> tuple[dict[str, pd.Series], list[str]]:
        """Unknown columns: numeric ones (kept) and the names of the others (ignored).

        NUMERIC, when given, is the decision taken over the whole file (a block of a large file must not
        decide on its own); otherwise this frame's cells decide.
        """
        kept: dict[str, pd.Series] = {}
        ignored: list[str] = []
        for column in self.columns:
            if column in skip:
                continue
            text = self.text[column]
            present = _present(text)
            n_present = int(present.sum())
            if numeric is not None and column in numeric:
                kept[column] = self.numbers(column, NumberRule())
                continue
            if _IGNORED_NAME_RE.match(column) or n_present == 0 or numeric is not None:
                if n_present:
                    ignored.append(column)
                continue
            if not _mostly_numbers(text, present):
                ignored.append(column)  # free text (comments, flags): not a feature
                continue
            # Mostly numbers: a stray word is a mistake to fix (numbers() reports it), not free text.
            kept[column] = self.numbers(column, NumberRule())
        if len(kept) > MAX_EXTRA_COLUMNS:
            self.add_header("(extra)", f"{len(kept)} extra numeric columns; at most {MAX_EXTRA_COLUMNS} are accepted")
        return kept, ignored


def _number_counts(text: pd.Series, present: np.ndarray) -> tuple[int, int]:
    """(present cells, cells that are numbers or NaN/inf words) of an unknown column."""
    values = _floats(text)
    numberish = present & (~np.isnan(values) | text.str.lower().isin(_NAN_WORDS).to_numpy())
    return int(present.sum()), int(numberish.sum())


def _mostly_numbers(text: pd.Series, present: np.ndarray) -> bool:
    n_present, n_numbers = _number_counts(text, present)
    return n_numbers * 2 > n_present


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


_NESTED = (list, tuple, dict, np.ndarray)


def _as_text(series: pd.Series, nested: dict[str, int] | None = None, column: str = "") -> pd.Series:
    """Cells as trimmed strings (object dtype), None for missing or empty; typed input is rendered first.

    NESTED, when given, receives COLUMN -> position of its first list / struct cell (nested Parquet types).
    """
    raw = series.to_numpy(dtype=object)
    try:
        # Fast path: a CSV column is all strings.
        cells = [str.strip(c) or None for c in raw]
    except TypeError:  # numbers, bytes, lists... (str.strip refuses anything but str)
        cells = [_cell_text(c) for c in raw]
        if nested is not None:
            first = next((i for i, c in enumerate(raw) if isinstance(c, _NESTED)), None)
            if first is not None:
                nested[column] = first
    return pd.Series(cells, index=range(len(cells)), dtype=object)


def _cell_text(cell: Any) -> str | None:
    if cell is None or (not isinstance(cell, (str, bytes, list, tuple, dict, np.ndarray)) and pd.isna(cell)):
        return None
    if isinstance(cell, bytes):  # a Parquet binary column: its text when it is UTF-8, else its repr
        try:
            cell = cell.decode("utf-8")
        except UnicodeDecodeError:
            pass
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
        checker.add(int(i), "band", f"unknown band {text.iat[i]!r} (expected 1-10, e.g. 3, B3, Band 3, ALMA_RB_03)")
    return pd.Series(pd.array(bands, dtype="Int64"))


def _parse_times(checker: _Checker, text: pd.Series) -> pd.Series:
    # Naive times are UTC; offsets are converted to UTC (DESIGN.md import format).
    times = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = _present(text) & times.isna().to_numpy()
    for i in np.flatnonzero(bad):
        checker.add(
            int(i),
            "start_time",
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
                i,
                STATUS_COLUMN,
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
                int(positions[j]),
                key[0],
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


def validate_ebs(
    frame: pd.DataFrame, *, name: str, numeric_extras: Collection[str] | None = None
) -> tuple[pd.DataFrame, list[Problem]]:
    """Check an EB frame against the import contract; return the typed, de-duplicated rows and the problems.

    The clean frame has uid, source, band (Int64), start_time (UTC), the known optional columns present,
    qa0_status (when present), extra (dict or None) and LINE_COLUMN; attrs hold extra_columns and
    ignored_columns. NUMERIC_EXTRAS: which unknown columns are numeric, decided over a whole file that is
    validated block by block (None: this frame decides).
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
    checker.refuse_nested(known)
    reserved = [c for c in EB_RESERVED if c in checker.text and checker.text[c].notna().any()]
    kept, ignored = checker.extras(skip=known | set(EB_RESERVED), numeric=numeric_extras)
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
    frame: pd.DataFrame,
    *,
    name: str,
    known_uids: Collection[str],
    unknown_out: dict[str, list[int]] | None = None,
) -> tuple[pd.DataFrame, list[Problem]]:
    """Check a details frame (uid, antenna, spw, scan + measurements); every uid must be in KNOWN_UIDS.

    The clean frame has uid, antenna, spw, scan (Int64), the measurements present (flagged as bool) and
    LINE_COLUMN; attrs hold ignored_columns. UNKNOWN_OUT, when given, collects uid -> [first line, rows]
    across the blocks of a large file instead of reporting them here (one problem per uid, whole-file count).
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
        if unknown_out is not None:
            for i in np.flatnonzero(unknown):
                checker.bad_rows.add(int(i))
                seen = unknown_out.setdefault(uid.iat[i], [int(checker.lines[i]), 0])
                seen[1] += 1
            unknown[:] = False
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
            checker.numbers(column, DETAIL_NUMBERS[column]) if text is not None else pd.Series([None] * n, dtype=object)
        )
    for column in DETAIL_MEASUREMENTS:
        if column in checker.text:
            data[column] = (
                checker.booleans(column) if column == "flagged" else checker.numbers(column, DETAIL_NUMBERS[column])
            )
    known_cols = {*REQUIRED_DETAIL, *DETAIL_MEASUREMENTS, *DETAIL_RESERVED}
    checker.refuse_nested({*REQUIRED_DETAIL, *DETAIL_MEASUREMENTS})
    ignored = [c for c in checker.columns if c not in known_cols and checker.text[c].notna().any()]
    ignored += [c for c in DETAIL_RESERVED if c in checker.text and checker.text[c].notna().any()]
    data[LINE_COLUMN] = pd.Series(checker.lines, dtype=np.int64)
    clean = pd.DataFrame(data)
    clean = _deduplicate(
        checker,
        clean,
        ["uid", "antenna", "spw", "scan"],
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
    t = _table(ExecutionBlock)
    if len(uids) > FULL_SCAN_OVER and int(conn.execute(select(func.count()).select_from(t)).scalar_one()) <= 2 * len(
        uids
    ):
        # One scan beats hundreds of IN (...) queries when the table is not much larger than the file.
        wanted = set(uids)
        rows = conn.exec_driver_sql("SELECT uid, id FROM execution_block").fetchall()
        return {uid: int(eb_id) for uid, eb_id in rows if uid in wanted}
    found: dict[str, int] = {}
    for chunk in _chunks(list(uids), CHUNK):
        for uid, eb_id in conn.execute(select(t.c.uid, t.c.id).where(t.c.uid.in_(chunk))):
            found[uid] = int(eb_id)
    return found


def _new_ids(conn: Connection, after_id: int, uids: Collection[str]) -> dict[str, int]:
    """Ids of the EBs among UIDS with an id above AFTER_ID (rows this transaction just inserted)."""
    if not uids:
        return {}
    t = _table(ExecutionBlock)
    wanted = set(uids)
    rows = conn.execute(select(t.c.uid, t.c.id).where(t.c.id > after_id))
    return {uid: int(eb_id) for uid, eb_id in rows if uid in wanted}


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
    conn: Connection, clean: pd.DataFrame, *, file_extras: Collection[str], lookup: bool
) -> tuple[dict[str, int], set[int], int, int]:
    """Insert new EBs and update existing ones; returns (uid -> id, ids inserted, inserted, updated).

    lookup=False: the table was empty when the import began, so every uid is new (no look-ups).
    """
    t = _table(ExecutionBlock)
    uids: list[str] = clean["uid"].tolist()
    existing = _uid_ids(conn, uids) if lookup else {}
    columns = [c for c in clean.columns if c in t.c and c != "extra"]
    to_time = _binder(conn, ExecutionBlock, "start_time")
    to_json = _binder(conn, ExecutionBlock, "extra")
    values = {c: _py(clean[c]) for c in columns}
    values["start_time"] = [to_time(v) for v in values["start_time"]]
    now = to_time(utcnow())
    extras: list[dict[str, float] | None] = clean["extra"].tolist()
    is_new = [uid not in existing for uid in uids]

    new_idx = [i for i, new in enumerate(is_new) if new]
    insert_cols = [*columns, "extra", "imported_at"]
    new_rows = [(*(values[c][i] for c in columns), to_json(extras[i]), now) for i in new_idx]
    before = int(conn.execute(select(func.coalesce(func.max(t.c.id), 0))).scalar_one()) if new_rows else 0
    for chunk in _chunks(new_rows, WRITE_CHUNK):
        bulk_insert(conn, "execution_block", insert_cols, chunk)

    old_idx = [i for i, new in enumerate(is_new) if not new]
    file_extras = set(file_extras)
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
    quote = conn.dialect.identifier_preparer.quote
    sql = f"UPDATE execution_block SET {', '.join(f'{quote(c)} = ?' for c in set_cols)} WHERE id = ?"
    for chunk in _chunks(upd_rows, WRITE_CHUNK):
        _executemany(conn, sql, chunk)

    # Rows inserted here got ids above the largest id before the insert: one range read, no IN lists.
    inserted = _new_ids(conn, before, [uids[i] for i in new_idx])
    ids = {**existing, **inserted}
    return ids, set(inserted.values()), len(new_rows), len(upd_rows)


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


def _write_archive_labels(
    conn: Connection, clean: pd.DataFrame, ids: dict[str, int], new_ids: Collection[int], cache: dict[str, int]
) -> int:
    """Append an archive label where the file's qa0_status differs from archive's current one.

    EBs inserted by this import (NEW_IDS) have no labels yet, so only the others are looked up.
    """
    if STATUS_COLUMN not in clean.columns:
        return 0
    wanted = [(uid, v) for uid, v in zip(clean["uid"], clean[STATUS_COLUMN], strict=True) if v is not None]
    if not wanted:
        return 0
    if "archive_id" not in cache:
        session = Session(bind=conn)
        try:
            archive = labels_mod.get_or_create_labeler(session=session, name=ARCHIVE_LABELER)
            session.flush()
            cache["archive_id"] = int(archive.id)  # type: ignore[arg-type]
        finally:
            session.close()
    archive_id = cache["archive_id"]
    eb_ids = [ids[uid] for uid, _ in wanted]
    fresh = set(new_ids)
    state = _archive_state(conn, archive_id, [e for e in eb_ids if e not in fresh])
    now = _binder(conn, Label, "created_at")(utcnow())
    events: list[tuple[Any, ...]] = []
    for (uid, value), eb_id in zip(wanted, eb_ids, strict=True):
        old_value, n = state.get(eb_id, (None, 0))
        if old_value == value:
            continue  # unchanged status: a re-import adds nothing
        events.append((eb_id, archive_id, value, "review", now, _archive_event_id(uid, value, n + 1)))
    taken = _taken_event_ids(conn, archive_id, [e[5] for e in events if e[0] not in fresh])
    events = [e for e in events if e[5] not in taken]
    columns = ["eb_id", "labeler_id", "value", "kind", "created_at", "client_event_id"]
    for chunk in _chunks(events, WRITE_CHUNK):
        bulk_insert(conn, "label", columns, chunk)
    return len(events)


def _delete_details(conn: Connection, eb_ids: Sequence[int]) -> None:
    """Drop the detail rows of these EBs (a details file replaces an EB's rows as a whole)."""
    dt = _table(EBDetail)
    for chunk in _chunks(list(eb_ids), CHUNK):
        conn.execute(delete(dt).where(dt.c.eb_id.in_(chunk)))


def _insert_details(conn: Connection, clean: pd.DataFrame, ids: dict[str, int]) -> int:
    """Insert one block of validated detail rows."""
    columns = ["eb_id", "antenna", "spw", "scan"] + [c for c in DETAIL_MEASUREMENTS if c in clean.columns]
    values = [[ids[u] for u in clean["uid"]]] + [_py(clean[c]) for c in columns[1:]]
    if "flagged" not in clean.columns:
        columns.append("flagged")
        values.append([False] * len(clean))
    rows = list(zip(*values, strict=True))
    done = 0
    for chunk in _chunks(rows, WRITE_CHUNK * 4):
        done += bulk_insert(conn, "eb_detail", columns, chunk)
    return done


def _quiet(_fraction: float, _message: str) -> None:
    return None


# --- streaming import --------------------------------------------------------------------------
#
# A file is read, validated and spooled block by block (DEFAULT_CHUNK_ROWS rows), so memory stays flat
# however large it is. What a block cannot decide alone is decided over the whole file: whether an unknown
# column is numeric (a first pass counts its cells, only for multi-block files that have such columns),
# duplicate keys across blocks (a sorted index of key hashes), and unknown detail uids (counted per uid).
# Only a file without any problem is written, from the spool, in one transaction.

_HASH_MIX = np.uint64(0x100000001B3)


def _hash_column(values: pd.Series) -> np.ndarray:
    """A 64-bit hash per cell (equal cells, equal hashes; missing cells hash alike)."""
    return pd.util.hash_pandas_object(values, index=False).to_numpy(dtype=np.uint64)


def _combine(hashes: np.ndarray) -> np.ndarray:
    out = np.zeros(hashes.shape[0], dtype=np.uint64)
    for j in range(hashes.shape[1]):
        out = (out * _HASH_MIX) ^ hashes[:, j]
    return out


@dataclass
class _FileCheck:
    """Problems, cross-block duplicate index and spooled clean blocks of one input file."""

    name: str
    key: list[str]
    describe: Callable[[pd.Series], str]
    spool_dir: Path
    header_line: int | None = None
    kept: list[Problem] = field(default_factory=list)
    total: int = 0
    extra_columns: list[str] = field(default_factory=list)
    ignored: dict[str, None] = field(default_factory=dict)
    n_rows: int = 0
    skip: set[int] = field(default_factory=set)
    _header_seen: set[tuple[Any, ...]] = field(default_factory=set)
    _order: dict[str, int] = field(default_factory=dict)
    _columns: list[str] | None = None
    _keys: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))
    _key_pos: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    _starts: list[int] = field(default_factory=list)
    _lines: list[np.ndarray] = field(default_factory=list)
    _row_hashes: list[np.ndarray] = field(default_factory=list)
    _col_hashes: list[np.ndarray] = field(default_factory=list)
    _spool: Any = None
    _spool_path: Path | None = None

    def _sort_key(self, p: Problem) -> tuple[int, int]:
        return (-1 if p.row is None else p.row, self._order.get(p.column or "", -1))

    def add(self, problems: Iterable[Problem]) -> None:
        """Count problems (header problems once, however many blocks repeat them); keep the first ones."""
        for p in problems:
            if p.row is None or (self.header_line is not None and p.row <= self.header_line):
                seen = (p.row, p.column, p.message)
                if seen in self._header_seen:
                    continue
                self._header_seen.add(seen)
            self.total += 1
            if len(self.kept) < MAX_KEPT_PROBLEMS:
                self.kept.append(p)
            self._close_spool()  # a refused file is never written: stop spooling

    def block(self, clean: pd.DataFrame, problems: list[Problem]) -> None:
        """Take one validated block: duplicates against earlier blocks, its problems, then the spool."""
        if not self._order:
            self._order = {c: i for i, c in enumerate(clean.columns)}
        bad_lines = np.fromiter((p.row for p in problems if p.row is not None), dtype=np.int64)
        comparable = clean.drop(columns=[LINE_COLUMN])
        if "extra" in comparable.columns:
            # Every block builds its dicts in the same key order, so repr compares them (and beats JSON).
            comparable["extra"] = [None if d is None else repr(d) for d in comparable["extra"]]
        if self._columns is None:
            self._columns = list(comparable.columns)
        cols = self._columns
        n = len(clean)
        col_h = (
            np.column_stack([_hash_column(comparable[c]) for c in cols]) if n else np.zeros((0, len(cols)), np.uint64)
        )
        row_h = _combine(col_h)
        key_h = _combine(col_h[:, [cols.index(k) for k in self.key]])
        lines = clean[LINE_COLUMN].to_numpy(dtype=np.int64)
        good = ~np.isin(lines, bad_lines) & clean[self.key].notna().all(axis=1).to_numpy()
        pos = self.n_rows + np.arange(n, dtype=np.int64)
        more: list[Problem] = []
        hit = np.zeros(n, dtype=bool)
        if len(self._keys):
            at = np.minimum(np.searchsorted(self._keys, key_h), len(self._keys) - 1)
            hit = good & (self._keys[at] == key_h)
            for i in np.flatnonzero(hit):
                base = int(self._key_pos[at[i]])
                b = int(np.searchsorted(self._starts, base, side="right")) - 1
                r = base - self._starts[b]
                if self._row_hashes[b][r] == row_h[i]:
                    self.skip.add(int(pos[i]))  # the same row again in a later block: imported once
                    continue
                mine = col_h[i].astype(np.uint32)
                differs = [c for c, x, y in zip(cols, self._col_hashes[b][r], mine, strict=True) if x != y]
                more.append(
                    Problem(
                        self.name,
                        int(lines[i]),
                        self.key[0],
                        f"{self.describe(clean.iloc[i])} also appears on {_row_word(self.name)} "
                        f"{int(self._lines[b][r])} with different values (in {', '.join(differs)})",
                    )
                )
        new = good & ~hit
        if new.any():
            keys = np.concatenate([self._keys, key_h[new]])
            at_pos = np.concatenate([self._key_pos, pos[new]])
            order = np.argsort(keys, kind="stable")
            self._keys, self._key_pos = keys[order], at_pos[order]
        self._starts.append(self.n_rows)
        self._lines.append(lines)
        self._row_hashes.append(row_h)
        self._col_hashes.append(col_h.astype(np.uint32))  # enough to name the differing columns
        self.n_rows += n
        self.add(sorted(problems + more, key=self._sort_key))
        if self.total == 0:
            if self._spool is None and self._spool_path is None:
                fd, path = tempfile.mkstemp(prefix="block-", suffix=".pickle", dir=self.spool_dir)
                self._spool, self._spool_path = os.fdopen(fd, "wb"), Path(path)
            if self._spool is not None:
                pickle.dump((int(pos[0]) if n else self.n_rows, clean), self._spool, protocol=pickle.HIGHEST_PROTOCOL)

    def note_columns(self, clean: pd.DataFrame) -> None:
        """Remember the extra and ignored columns a block reported (in first-seen order)."""
        for c in clean.attrs.get("extra_columns", []):
            if c not in self.extra_columns:
                self.extra_columns.append(c)
        for c in clean.attrs.get("ignored_columns", []):
            self.ignored.setdefault(c, None)

    def finish(self, deferred: Iterable[Problem] = ()) -> None:
        """Add whole-file problems found after the last block; close the spool."""
        deferred = list(deferred)
        if deferred:
            self.total += len(deferred)
            self.kept = sorted(self.kept + deferred, key=self._sort_key)[:MAX_KEPT_PROBLEMS]
            self._close_spool()
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def _close_spool(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        if self._spool_path is not None:
            self._spool_path.unlink(missing_ok=True)

    @property
    def omitted(self) -> int:
        """Problems counted but not kept."""
        return self.total - len(self.kept)

    def blocks(self) -> Iterator[pd.DataFrame]:
        """The clean blocks from the spool, without rows that repeat an earlier block."""
        if self._spool_path is None or not self._spool_path.exists():
            return
        with open(self._spool_path, "rb") as f:
            while True:
                try:
                    start, block = pickle.load(f)
                except EOFError:
                    return
                if self.skip:
                    drop = [i for i in range(len(block)) if start + i in self.skip]
                    if drop:
                        block = block.drop(index=block.index[drop]).reset_index(drop=True)
                yield block


@dataclass
class _Input:
    """One file to import: a path, an upload stream or an in-memory frame, and the name problems use."""

    source: Path | BinaryIO | pd.DataFrame
    name: str

    def chunks(self, chunk_rows: int, on_fraction: Callable[[float], None] | None = None) -> Iterator[Chunk]:
        """Blocks of rows (with LINE_COLUMN) and the reading problems beside them."""
        if isinstance(self.source, pd.DataFrame):
            total = max(1, len(self.source))
            done = 0
            for frame, problems in _frame_chunks(self.source, self.name, chunk_rows):
                done += len(frame) if frame is not None else 0
                if on_fraction is not None:
                    on_fraction(done / total)
                yield frame, problems
            return

        def on_bytes(read: int, size: int | None) -> None:
            if on_fraction is not None and size:
                on_fraction(min(1.0, read / size))

        yield from read_chunks(self.source, name=self.name, chunk_rows=chunk_rows, on_bytes=on_bytes)


def _unknown_eb_columns(columns: Iterable[str]) -> list[str]:
    known = {*REQUIRED_EB, *EB_TEXTS, *EB_NUMBERS, STATUS_COLUMN, *EB_RESERVED, LINE_COLUMN}
    return [c for c in columns if c not in known and not _IGNORED_NAME_RE.match(c)]


def _numeric_extras(blocks: Iterable[Chunk], columns: list[str]) -> set[str]:
    """Which unknown columns hold numbers in more than half of their non-empty cells, over the whole file."""
    counts = {c: [0, 0] for c in columns}
    for frame, _ in blocks:
        if frame is None:
            continue
        for c in columns:
            if c in frame.columns and isinstance(frame[c], pd.Series):
                text = _as_text(frame[c])
                n_present, n_numbers = _number_counts(text, _present(text))
                counts[c][0] += n_present
                counts[c][1] += n_numbers
    return {c for c, (n_present, n_numbers) in counts.items() if n_present and n_numbers * 2 > n_present}


def _header_line_of(frame: pd.DataFrame, name: str) -> int | None:
    return None if name.lower().endswith(".parquet") else int(frame.attrs.get("header_line", 1))


def _check_ebs(
    inp: _Input,
    *,
    spool_dir: Path,
    chunk_rows: int,
    report: Progress,
    span: tuple[float, float],
    keep_uids: set[str] | None,
) -> _FileCheck:
    """Validate an EB file block by block; KEEP_UIDS (when given) collects its uids for the details check."""
    check = _FileCheck(inp.name, ["uid"], lambda row: f"uid {row['uid']!r}", spool_dir)
    lo, hi = span
    rows = 0

    read = [0.0]  # share of the file read so far

    def moved(fraction: float) -> None:
        read[0] = fraction

    stream = inp.chunks(chunk_rows, moved)
    try:
        with closing(stream):  # type: ignore[type-var]
            first = next(stream, None)
            second = next(stream, None) if first is not None else None
            numeric: set[str] | None = None
            if second is not None:
                sample = first[0] if first[0] is not None else second[0]
                unknown = _unknown_eb_columns(sample.columns) if sample is not None else []
                if unknown:
                    with closing(inp.chunks(chunk_rows)) as again:  # type: ignore[type-var]
                        numeric = _numeric_extras(again, unknown)
            head = [c for c in (first, second) if c is not None]
            for frame, problems in _chain(head, stream):
                if frame is None:
                    check.add(sorted(problems, key=check._sort_key))
                    continue
                check.header_line = _header_line_of(frame, inp.name)
                clean, more = validate_ebs(frame, name=inp.name, numeric_extras=numeric)
                rows += len(frame)
                report(lo + (hi - lo) * read[0], f"checked {rows:,} rows of {Path(inp.name).name}")
                if clean.empty and not len(clean.columns):  # the header itself is wrong
                    check.add(problems + more)
                    continue
                check.block(clean, problems + more)
                check.note_columns(clean)
                if keep_uids is not None:
                    keep_uids.update(u for u in clean["uid"] if isinstance(u, str))
    except ImportRefused as exc:
        check.add(exc.problems)
    check.finish()
    return check


def _chain(head: list[Chunk], rest: Iterator[Chunk]) -> Iterator[Chunk]:
    yield from head
    yield from rest


def _check_details(
    inp: _Input,
    *,
    engine: Engine,
    spool_dir: Path,
    chunk_rows: int,
    report: Progress,
    span: tuple[float, float],
    eb_uids: set[str],
    detail_uids: set[str],
) -> _FileCheck:
    """Validate a details file block by block; every uid must be in the EB file (EB_UIDS) or the database."""
    check = _FileCheck(
        inp.name,
        ["uid", "antenna", "spw", "scan"],
        lambda r: f"uid {r['uid']!r} antenna {r['antenna']} spw {r['spw']} scan {r['scan']}",
        spool_dir,
    )
    lo, hi = span
    rows = 0
    in_db: set[str] = set()
    looked_up: set[str] = set()
    unknown: dict[str, list[int]] = {}

    read = [0.0]  # share of the file read so far

    def moved(fraction: float) -> None:
        read[0] = fraction

    stream = inp.chunks(chunk_rows, moved)
    try:
        with closing(stream):  # type: ignore[type-var]
            for frame, problems in stream:
                if frame is None:
                    check.add(sorted(problems, key=check._sort_key))
                    continue
                check.header_line = _header_line_of(frame, inp.name)
                asked = _detail_uids(frame)
                ask_db = sorted(asked - eb_uids - looked_up)
                if ask_db:
                    with engine.connect() as conn:
                        in_db.update(_uid_ids(conn, ask_db))
                    looked_up.update(ask_db)
                known = {u for u in asked if u in eb_uids or u in in_db}
                clean, more = validate_details(frame, name=inp.name, known_uids=known, unknown_out=unknown)
                rows += len(frame)
                report(lo + (hi - lo) * read[0], f"checked {rows:,} rows of {Path(inp.name).name}")
                if clean.empty and not len(clean.columns):
                    check.add(problems + more)
                    continue
                check.block(clean, problems + more)
                check.note_columns(clean)
                detail_uids.update(u for u in clean["uid"] if isinstance(u, str))
    except ImportRefused as exc:
        check.add(exc.problems)
    deferred = []
    for uid, (line, n) in unknown.items():
        tail = f" ({n - 1} more rows with this uid)" if n > 1 else ""
        deferred.append(Problem(inp.name, line, "uid", f"no EB with uid {uid!r} in the EB file or the database{tail}"))
    check.finish(deferred)
    return check


def _detail_uids(details: pd.DataFrame) -> set[str]:
    for raw in details.columns:
        if _normalize_name(raw) == "uid":
            column = details[raw]
            if isinstance(column, pd.DataFrame):  # duplicate header: validation reports it
                return set()
            return {canonical_uid(u) for u in _as_text(column) if u is not None}
    return set()


def _import(
    *, engine: Engine, ebs: _Input, details: _Input | None, progress: Progress | None, chunk_rows: int
) -> dict[str, Any]:
    report = progress or _quiet
    chunk_rows = int(chunk_rows) or DEFAULT_CHUNK_ROWS
    report(0.0, "validating")
    # Validation ends at CHECKED; writing the EBs at EBS_DONE; the details fill the rest.
    checked = 0.25 if details is None else 0.35
    ebs_done = 0.99 if details is None else 0.7
    with tempfile.TemporaryDirectory(prefix="qa0-import-") as tmp:
        spool_dir = Path(tmp)
        eb_uids: set[str] | None = set() if details is not None else None
        eb_check = _check_ebs(
            ebs,
            spool_dir=spool_dir,
            chunk_rows=chunk_rows,
            report=report,
            span=(0.0, 0.2 if details is not None else checked),
            keep_uids=eb_uids,
        )
        checks = [eb_check]
        detail_uids: set[str] = set()
        det_check: _FileCheck | None = None
        if details is not None and not eb_check.total:
            det_check = _check_details(
                details,
                engine=engine,
                spool_dir=spool_dir,
                chunk_rows=chunk_rows,
                report=report,
                span=(0.2, checked),
                eb_uids=eb_uids or set(),
                detail_uids=detail_uids,
            )
            checks.append(det_check)
        if any(c.total for c in checks):
            report(1.0, "refused: nothing was written")
            raise ImportRefused([p for c in checks for p in c.kept], omitted=sum(c.omitted for c in checks))

        n_ebs = max(1, eb_check.n_rows - len(eb_check.skip))
        n_details = max(1, det_check.n_rows - len(det_check.skip)) if det_check is not None else 1

        def write() -> tuple[int, int, int, int]:
            inserted = updated = labels_added = detail_rows = 0
            cache: dict[str, int] = {}
            with writer(engine).begin() as conn:
                report(checked, "writing")
                table_rows = int(conn.execute(select(func.count()).select_from(_table(ExecutionBlock))).scalar_one())
                for block in eb_check.blocks():
                    ids, new_ids, ins, upd = _write_ebs(
                        conn, block, file_extras=eb_check.extra_columns, lookup=table_rows > 0
                    )
                    inserted, updated = inserted + ins, updated + upd
                    fraction = checked + (ebs_done - checked) * (inserted + updated) / n_ebs
                    report(fraction, f"wrote {inserted + updated:,} of {n_ebs:,} EBs")
                    report(fraction, "labels")
                    labels_added += _write_archive_labels(conn, block, ids, new_ids, cache)
                if det_check is not None:
                    report(ebs_done, "detail rows")
                    ids = _uid_ids(conn, sorted(detail_uids))
                    _delete_details(conn, list(ids.values()))
                    for block in det_check.blocks():
                        detail_rows += _insert_details(conn, block, ids)
                        fraction = ebs_done + (0.99 - ebs_done) * detail_rows / n_details
                        report(fraction, f"wrote {detail_rows:,} of {n_details:,} detail rows")
            return inserted, updated, labels_added, detail_rows

        try:
            inserted, updated, labels_added, detail_rows = retry_locked(write)
        except (IntegrityError, engine.dialect.dbapi.IntegrityError):  # raw cursors raise the driver's own
            # Another process inserted one of these uids (or archive events) after we looked: the
            # transaction rolled back, and a second pass sees their rows and updates instead.
            inserted, updated, labels_added, detail_rows = retry_locked(write)
    ignored = list(eb_check.ignored)
    if det_check is not None:
        ignored += [f"{details.name}:{c}" for c in det_check.ignored]  # type: ignore[union-attr]
    report(1.0, "done")
    return {
        "inserted": inserted,
        "updated": updated,
        "labels_added": labels_added,
        "detail_rows": detail_rows,
        "extra_columns": list(eb_check.extra_columns),
        "ignored_columns": ignored,
    }


def import_frames(
    *,
    engine: Engine,
    ebs: pd.DataFrame,
    details: pd.DataFrame | None = None,
    ebs_name: str = "upload",
    details_name: str | None = None,
    progress: Progress | None = None,
    chunk_rows: int = 0,
) -> dict[str, Any]:
    """Validate EB (and detail) frames, then write them in one transaction; ImportRefused if anything is wrong."""
    return _import(
        engine=engine,
        ebs=_Input(ebs, ebs_name),
        details=_Input(details, details_name or "details") if details is not None else None,
        progress=progress,
        chunk_rows=chunk_rows,
    )


def import_file(
    *,
    engine: Engine,
    path: Path | BinaryIO,
    details_path: Path | BinaryIO | None = None,
    progress: Progress | None = None,
    chunk_rows: int = 0,
    name: str | None = None,
    details_name: str | None = None,
) -> dict[str, Any]:
    """Import an EB file (and optional details file), CSV or Parquet by extension; all or nothing.

    PATH / DETAILS_PATH are paths or binary streams (an upload; then NAME / DETAILS_NAME give the file
    names). Files are streamed in blocks of CHUNK_ROWS rows (0: DEFAULT_CHUNK_ROWS): memory stays flat.
    """
    ebs_name = name or str(path)
    problems: list[Problem] = []
    for source, label in ((path, ebs_name), (details_path, details_name or str(details_path))):
        if source is None:
            continue
        try:
            _suffix(source if isinstance(source, (str, Path)) else label, label)
        except ImportRefused as exc:
            problems += exc.problems
    if problems:
        raise ImportRefused(problems)
    return _import(
        engine=engine,
        ebs=_Input(path if not isinstance(path, str) else Path(path), ebs_name),
        details=(
            _Input(
                details_path if not isinstance(details_path, str) else Path(details_path),
                details_name or str(details_path),
            )
            if details_path is not None
            else None
        ),
        progress=progress,
        chunk_rows=chunk_rows,
    )


# --- export ------------------------------------------------------------------------------------


def _iso_z(values: pd.Series) -> pd.Series:
    """Times as ISO 8601 UTC with Z (the database stores UTC; naive values are UTC)."""
    times = (
        pd.to_datetime(values, utc=True, format="ISO8601")
        if values.dtype == object
        else pd.to_datetime(values, utc=True)
    )
    return times.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").astype(object).where(times.notna(), None)


def export_labels_frame(*, engine: Engine, current: bool = False) -> pd.DataFrame:
    """Label events in id order (or, with current=True, each labeler's current label per EB)."""
    lt, et, bt = _table(Label), _table(ExecutionBlock), _table(Labeler)
    stmt = (
        select(
            lt.c.id,
            et.c.uid,
            bt.c.name,
            bt.c.role,
            lt.c.value,
            lt.c.comment,
            lt.c.reason,
            lt.c.kind,
            lt.c.seconds_on_eb,
            lt.c.created_at,
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
