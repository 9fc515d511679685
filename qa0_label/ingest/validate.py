"""Validation of EB and detail frames: every cell checked against the column rules, clean frames out."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from typing import Any

import numpy as np
import pandas as pd

from qa0_label.ingest.columns import (
    _ARRAY_RE,
    _BAND_RE,
    _CONTROL,
    _FALSE,
    _IGNORED_NAME_RE,
    _NAN_WORDS,
    _TRUE,
    _UNDECIDED,
    DETAIL_MEASUREMENTS,
    DETAIL_NUMBERS,
    DETAIL_RESERVED,
    EB_NUMBERS,
    EB_REQUIRED_TEXTS,
    EB_RESERVED,
    EB_TEXTS,
    INT_MAX,
    LINE_COLUMN,
    MAX_EXTRA_COLUMNS,
    MAX_UID,
    REQUIRED_DETAIL,
    REQUIRED_EB,
    STATUS_COLUMN,
    NumberRule,
)
from qa0_label.ingest.problems import Problem, _row_word
from qa0_label.ingest.read import _normalize_names
from qa0_label.store import labels as labels_mod
from qa0_label.store.uids import canonical_uid


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
            self.add(int(i), column, "text contains control characters or invisible / bidi formatting characters")
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
        for i in np.flatnonzero(_present(text) & np.equal(np.array(flags, dtype=object), _NONE)):
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


_NONE = np.array(None, dtype=object)  # np.equal(cells, _NONE): which object cells are None, elementwise


def _present(text: pd.Series) -> np.ndarray:
    """Which cells of a text column (str or None) hold a value."""
    return ~np.equal(text.to_numpy(dtype=object), _NONE)


def _floats(text: pd.Series) -> np.ndarray:
    """Cells as float64, NaN for empty or unreadable ones (callers tell those apart)."""
    cells = text.to_numpy(dtype=object)
    try:
        # Fast path: numpy's cast calls float() in C, about twice as fast as pandas' coercing parser.
        return np.where(np.equal(cells, _NONE), "nan", cells).astype(np.float64)
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
    for i in np.flatnonzero(_present(text) & np.equal(np.array(bands, dtype=object), _NONE)):
        checker.add(int(i), "band", f"unknown band {text.iat[i]!r} (expected 1-10, e.g. 3, B3, Band 3, ALMA_RB_03)")
    return pd.Series(pd.array(bands, dtype="Int64"))


EARLIEST_START = pd.Timestamp("2010-01-01", tz="UTC")
"""start_time bounds: nothing before 2010-01-01 (before ALMA's first science), nothing over a day in the future."""


def _parse_times(checker: _Checker, text: pd.Series) -> pd.Series:
    # Naive times are UTC; offsets are converted to UTC (docs/import-format.md).
    times = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = _present(text) & times.isna().to_numpy()
    for i in np.flatnonzero(bad):
        checker.add(
            int(i),
            "start_time",
            f"cannot read {_show(text.iat[i])} as an ISO 8601 time (e.g. 2024-05-01T03:12:00Z; UTC when no zone)",
        )
    # A 1900 or 2100 time is a unit or format error upstream, not an observation: refuse it, do not store it.
    latest = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1)
    outside = ~bad & times.notna().to_numpy() & ((times < EARLIEST_START) | (times > latest)).to_numpy()
    for i in np.flatnonzero(outside):
        checker.add(
            int(i),
            "start_time",
            f"{_show(text.iat[i])} is outside the accepted range ({EARLIEST_START:%Y-%m-%d} to one day from now, UTC)",
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
                seen[k] = int(j)
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
