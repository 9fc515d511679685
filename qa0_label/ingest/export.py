"""Export of labels (all events or the current label of each EB and labeler), spreadsheet-safe."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from qa0_label.ingest.columns import EXPORT_COLUMNS, FORMULA_PREFIXES
from qa0_label.ingest.write import _table
from qa0_label.store import labels as labels_mod
from qa0_label.store.models import ExecutionBlock, Label, Labeler


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
    _check_suffix(Path(out))
    return write_frame(export_labels_frame(engine=engine, current=current), out)


def _check_suffix(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"{out}: the output must end in .csv or .parquet")
    return suffix


def write_frame(frame: pd.DataFrame, out: Path) -> int:
    """Write FRAME to CSV (spreadsheet-safe cells) or Parquet by extension, atomically; returns the row count."""
    out = Path(out)
    suffix = _check_suffix(out)
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
