"""Writing validated blocks: EBs inserted or updated, archive labels appended, detail rows replaced."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import JSON, Table, bindparam, delete, func, select, update
from sqlalchemy.engine import Connection
from sqlmodel import Session

from qa0_label.ingest.columns import (
    CHUNK,
    DETAIL_MEASUREMENTS,
    FULL_SCAN_OVER,
    STATUS_COLUMN,
    WRITE_CHUNK,
)
from qa0_label.store import labels as labels_mod
from qa0_label.store.db import bulk_insert
from qa0_label.store.models import ARCHIVE_LABELER, EBDetail, ExecutionBlock, Label, utcnow


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _table(model: Any) -> Table:
    return model.__table__


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
        rows = conn.execute(select(t.c.uid, t.c.id)).fetchall()
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
    imported_at = utcnow()
    now = to_time(imported_at)
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
    set_cols = [c for c in columns if c != "uid"]
    if file_extras:
        old = _old_extras(conn, [existing[uids[i]] for i in old_idx])
    raw_time = _py(clean["start_time"])
    upd_rows: list[dict[str, Any]] = []
    for i in old_idx:
        eb_id = existing[uids[i]]
        row = {f"v_{c}": values[c][i] for c in set_cols}
        row.update(v_start_time=raw_time[i], v_imported_at=imported_at, v_id=eb_id)
        if file_extras:
            # Extra columns in this file replace their old values; extra columns it lacks are kept.
            kept = {k: v for k, v in (old.get(eb_id) or {}).items() if k not in file_extras}
            row["v_extra"] = {**kept, **(extras[i] or {})} or None
        upd_rows.append(row)
    if upd_rows:
        sets = {c: bindparam(f"v_{c}", type_=t.c[c].type) for c in [*set_cols, "imported_at"]}
        if file_extras:
            # SQL NULL, not JSON 'null', for an EB left without extras (as the insert writes it).
            sets["extra"] = bindparam("v_extra", type_=JSON(none_as_null=True))
        stmt = update(t).where(t.c.id == bindparam("v_id")).values(sets)
        for chunk in _chunks(upd_rows, WRITE_CHUNK):
            conn.execute(stmt, list(chunk))

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
            archive = labels_mod.get_or_create_labeler(session=session, name=ARCHIVE_LABELER, system=True)
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
