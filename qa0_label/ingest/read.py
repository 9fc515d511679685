"""Reading CSV and Parquet files in blocks of rows, with column names normalised and the line of each row."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from qa0_label.ingest.columns import DEFAULT_CHUNK_ROWS, LINE_COLUMN, MAX_COLUMN_NAME
from qa0_label.ingest.problems import ImportRefused, Problem, _refuse

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
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
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
