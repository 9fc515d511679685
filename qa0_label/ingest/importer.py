"""CSV / Parquet import of EBs and detail rows: validated, all or nothing, in blocks of rows.

Import contract (docs/import-format.md): one row per EB with `uid`, `source`, `band`, `start_time`;
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

import os
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from qa0_label.ingest.columns import (
    _IGNORED_NAME_RE,
    DEFAULT_CHUNK_ROWS,
    EB_NUMBERS,
    EB_RESERVED,
    EB_TEXTS,
    LINE_COLUMN,
    MAX_KEPT_PROBLEMS,
    REQUIRED_EB,
    STATUS_COLUMN,
    Progress,
)
from qa0_label.ingest.problems import ImportInterrupted, ImportRefused, Problem, _row_word
from qa0_label.ingest.read import Chunk, _frame_chunks, _normalize_name, _suffix, read_chunks
from qa0_label.ingest.spool import spool_directory
from qa0_label.ingest.validate import _as_text, _number_counts, _present, validate_details, validate_ebs
from qa0_label.ingest.write import (
    _delete_details,
    _insert_details,
    _quiet,
    _table,
    _uid_ids,
    _write_archive_labels,
    _write_ebs,
)
from qa0_label.store.db import retry_locked, writer
from qa0_label.store.models import ExecutionBlock
from qa0_label.store.uids import canonical_uid

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
            if first is not None and second is not None:
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
    # Whether the one write transaction has committed, so that an interrupt can say truthfully whether the
    # import is in the database (ImportInterrupted.committed). Only the write transaction writes: validation
    # reads, and the spool is temporary files.
    written: list[bool] = []
    try:
        return _validate_and_write(
            engine=engine, ebs=ebs, details=details, progress=progress, chunk_rows=chunk_rows, written=written
        )
    except KeyboardInterrupt as exc:
        raise ImportInterrupted(committed=bool(written)) from exc


def _validate_and_write(
    *,
    engine: Engine,
    ebs: _Input,
    details: _Input | None,
    progress: Progress | None,
    chunk_rows: int,
    written: list[bool],
) -> dict[str, Any]:
    report = progress or _quiet
    chunk_rows = int(chunk_rows) or DEFAULT_CHUNK_ROWS
    report(0.0, "validating")
    # Validation ends at CHECKED; writing the EBs at EBS_DONE; the details fill the rest.
    checked = 0.25 if details is None else 0.35
    ebs_done = 0.99 if details is None else 0.7
    with spool_directory() as tmp:  # removed on every exit path; kill -9 leftovers are swept at start-up
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
            # Marked as soon as the commit returns: nothing after it (removing the spool) undoes the import.
            written.append(True)
            return inserted, updated, labels_added, detail_rows

        driver_integrity_error = getattr(engine.dialect.dbapi, "IntegrityError", IntegrityError)
        try:
            inserted, updated, labels_added, detail_rows = retry_locked(write)
        except (IntegrityError, driver_integrity_error):  # raw cursors raise the driver's own
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
