"""Writing simulated batches to the database: EBs, detail rows, reference outcomes, simulated AoD labels.

simulate() generates batches of CHUNK_EBS EBs in a background thread (and, for EBs that keep no detail
rows, in worker processes) while the calling thread writes the previous batch, one transaction per batch.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import String, bindparam, delete, func, select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col

from qa0_label.learning import features
from qa0_label.sim.aods import aod_profiles, simulate_aod_labels
from qa0_label.sim.atmosphere import EPOCH
from qa0_label.sim.catalogue import ANT_OBJ as _ANT_OBJ
from qa0_label.sim.generate import EB_COLUMNS, SimulatedBatch, generate, make_uids
from qa0_label.store import db
from qa0_label.store.models import LABEL_VALUES, ExecutionBlock, table_of

ProgressFn = Callable[[float, str], None]

CHUNK_EBS = 1000


def _sql_times(conn: Connection, values: pd.Series | pd.DatetimeIndex) -> list[Any]:
    """Times as the ORM stores them: naive-UTC text on SQLite, aware datetimes elsewhere."""
    idx = pd.DatetimeIndex(values)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    idx = idx.tz_convert("UTC")
    if conn.dialect.name == "sqlite":
        return list(idx.strftime("%Y-%m-%d %H:%M:%S.%f"))
    return list(idx.to_pydatetime())


def _clean(values: np.ndarray) -> list[Any]:
    """Python values for the DB-API, NaN -> NULL."""
    out = values.tolist()
    if values.dtype.kind == "f" and np.isnan(values).any():
        return [None if (isinstance(x, float) and math.isnan(x)) else x for x in out]
    return out


DETAIL_DB_COLUMNS: tuple[str, ...] = (
    "eb_id",
    "antenna",
    "spw",
    "scan",
    "freq_ghz",
    "time_s",
    "tsys_k",
    "amplitude",
    "phase_deg",
    "bp_ripple_db",
    "flagged",
)
_ROWS_PER_STATEMENT = 500
_ROWS_PER_PART = 100_000


@dataclass
class _Part:
    """Detail rows ready for the database: SQLite multi-row parameter lists, column 0 = EB position."""

    full: list[list[Any]]  # each inner list holds _ROWS_PER_STATEMENT rows
    rest: list[Any]  # the remaining rows, flattened
    n_rows: int


def _detail_parts(details: pd.DataFrame, positions: np.ndarray) -> Iterator[_Part]:
    """Convert detail rows to Python parameter lists, a part at a time (bounded memory)."""
    arrays = [
        positions,
        _ANT_OBJ[details["antenna"].cat.codes.to_numpy()],
        details["spw"].to_numpy(),
        details["scan"].to_numpy(),
        *(details[c].to_numpy() for c in DETAIL_DB_COLUMNS[4:-1]),
        # 0/1 rather than bool: sqlite3 binds exact ints directly but looks bools up in its adapter table.
        details["flagged"].to_numpy().astype(np.int64),
    ]
    ncol = len(arrays)
    n = len(details)
    for lo in range(0, n, _ROWS_PER_PART):
        hi = min(n, lo + _ROWS_PER_PART)
        obj = np.empty((hi - lo, ncol), dtype=object)
        for j, arr in enumerate(arrays):
            obj[:, j] = arr[lo:hi]  # numpy hands out plain Python int/float/bool/str objects
        full = (hi - lo) // _ROWS_PER_STATEMENT * _ROWS_PER_STATEMENT
        yield _Part(
            full=obj[:full].reshape(-1, ncol * _ROWS_PER_STATEMENT).tolist() if full else [],
            rest=obj[full:].ravel().tolist(),
            n_rows=hi - lo,
        )


def _insert_part(conn: Connection, part: _Part, ids: np.ndarray) -> None:
    """Insert one part on SQLite with many rows per statement (executemany of single rows costs ~2x).

    Column 0 holds the EB's position in its batch; ids are the database ids in batch order. When they are
    consecutive (always, inside our write transaction) the id is base + position, computed by SQLite.
    """
    ncol = len(DETAIL_DB_COLUMNS)
    base = int(ids[0]) if ids.size else 0
    consecutive = bool(ids.size) and bool(np.all(ids == base + np.arange(ids.size)))
    if not consecutive:
        id_list = ids.tolist()
        for group in part.full:
            group[0::ncol] = [id_list[p] for p in group[0::ncol]]
        part.rest[0::ncol] = [id_list[p] for p in part.rest[0::ncol]]
    plus = base if consecutive else None
    db.bulk_insert_packed(
        conn, "eb_detail", DETAIL_DB_COLUMNS, part.full, rows_each=_ROWS_PER_STATEMENT, first_plus=plus
    )
    if part.rest:
        db.bulk_insert_packed(
            conn, "eb_detail", DETAIL_DB_COLUMNS, [part.rest], rows_each=len(part.rest) // ncol, first_plus=plus
        )


_EB = table_of(ExecutionBlock)
_UIDS = bindparam("uids", type_=String(), expanding=True)
_Q_TAKEN_UIDS = select(_EB.c.uid).where(_EB.c.uid.in_(_UIDS))
_Q_IDS_OF_UIDS = select(_EB.c.id, _EB.c.uid).where(_EB.c.uid.in_(_UIDS))
_Q_EB_COUNT = select(func.count()).select_from(_EB)


def _unique_uids(conn: Connection, ebs: pd.DataFrame, seed: int) -> list[str]:
    """The batch's uids, re-derived deterministically where one is already taken (or repeats in the batch)."""
    uids = ebs["uid"].tolist()
    day = ((ebs["start_time"] - pd.Timestamp(EPOCH)).dt.days).to_numpy()
    index = ebs.index.to_numpy()
    for attempt in range(1, 50):
        taken = {r[0] for r in conn.execute(_Q_TAKEN_UIDS, {"uids": uids})}
        seen: set[str] = set()
        bad = []
        for i, u in enumerate(uids):
            if u in taken or u in seen:
                bad.append(i)
            seen.add(u)
        if not bad:
            return uids
        fresh = make_uids(seed=seed, index=index[bad], day=day[bad], attempt=attempt)
        for i, u in zip(bad, fresh):
            uids[i] = u
    raise RuntimeError("could not find unused uids")


def _insert_ebs(conn: Connection, ebs: pd.DataFrame, seed: int) -> np.ndarray:
    """Insert the EB rows (uids made unique first); returns their database ids in batch order."""
    ebs = ebs.copy()
    ebs["uid"] = _unique_uids(conn, ebs, seed)
    cols = [c for c in EB_COLUMNS if c != "extra"]
    arrays: list[list[Any]] = []
    for c in cols:
        if c in ("start_time", "imported_at"):
            arrays.append(_sql_times(conn, ebs[c]))
        elif ebs[c].dtype.kind == "f":
            arrays.append(_clean(ebs[c].to_numpy()))
        else:
            arrays.append(ebs[c].tolist())
    # Quoted: "array" is a reserved word in PostgreSQL.
    db.bulk_insert(conn, "execution_block", list(cols), list(zip(*arrays)))
    id_of = {u: i for i, u in conn.execute(_Q_IDS_OF_UIDS, {"uids": ebs["uid"].tolist()})}
    return np.array([id_of[u] for u in ebs["uid"]], dtype=np.int64)


def _insert_outcomes(conn: Connection, outcomes: pd.DataFrame, ids: np.ndarray) -> None:
    db.bulk_insert(
        conn,
        "reference_outcome",
        ["eb_id", "value", "reasons"],
        list(zip(ids.tolist(), outcomes["value"].tolist(), outcomes["reasons"].tolist())),
    )


def write_batch(*, conn: Connection, batch: SimulatedBatch, seed: int = 0) -> np.ndarray:
    """Insert one generated batch (EBs, details, outcomes) on an open connection; returns the EB ids."""
    ids = _insert_ebs(conn, batch.ebs, seed)
    pos = pd.Index(batch.ebs.index).get_indexer(batch.details["eb"].to_numpy())
    if conn.dialect.name == "sqlite":
        for part in _detail_parts(batch.details, pos):
            _insert_part(conn, part, ids)
    else:
        d = batch.details
        cols = [ids[pos], _ANT_OBJ[d["antenna"].cat.codes.to_numpy()]] + [
            d[c].to_numpy() for c in DETAIL_DB_COLUMNS[2:]
        ]
        db.bulk_insert(conn, "eb_detail", DETAIL_DB_COLUMNS, list(zip(*[c.tolist() for c in cols])))
    _insert_outcomes(conn, batch.outcomes, ids)
    return ids


def _count_ebs(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(_Q_EB_COUNT).scalar_one())


def _write_labels(engine: Engine, frame: pd.DataFrame, id_of_eb: dict[int, int], aods: int) -> int:
    """Create the simulated AoDs and bulk-insert their review events in one transaction."""
    from qa0_label.store.labels import get_or_create_labeler

    with db.session_scope(engine, write=True) as session:
        ids = {
            i: int(get_or_create_labeler(session=session, name=p.name, role="aod").id or 0)
            for i, p in enumerate(aod_profiles(aods))
        }
        if frame.empty:
            return 0
        conn = session.connection()
        eb_ids = [id_of_eb[int(e)] for e in frame["eb"]]
        lab_ids = [ids[int(a)] for a in frame["aod"]]
        # Unique per (EB, labeler): a re-run can never collide with an earlier simulated label.
        client = [f"sim-{e}-{a}" for e, a in zip(eb_ids, lab_ids)]
        rows = list(
            zip(
                eb_ids,
                lab_ids,
                frame["value"].tolist(),
                frame["comment"].tolist(),
                frame["seconds_on_eb"].tolist(),
                _sql_times(conn, frame["created_at"]),
                ["review"] * len(frame),
                client,
            )
        )
        return db.bulk_insert(
            conn,
            "label",
            ["eb_id", "labeler_id", "value", "comment", "seconds_on_eb", "created_at", "kind", "client_event_id"],
            rows,
        )


_DONE = object()


def _store_cache(conn: Connection, batch: SimulatedBatch, ids: np.ndarray, det: pd.DataFrame | None) -> None:
    """Cache rows of the batch's detail features (inside the batch's transaction, so they match its rows)."""
    if det is None or det.empty:
        return
    id_of = dict(zip(batch.ebs.index.tolist(), ids.tolist()))
    det = det.set_axis(pd.Index([id_of[int(e)] for e in det.index], name="eb_id"))
    sig = features.detail_signatures(conn, det.index.tolist())
    features.store_detail_cache(conn, det, sig, verified=True)


def _write_sqlite_batch(
    conn: Connection, batch: SimulatedBatch, q: queue.Queue[Any], seed: int, det: pd.DataFrame | None = None
) -> np.ndarray:
    """One SQLite transaction: the batch's EBs, then its detail parts as the producer hands them over."""
    # The parents are inserted a moment earlier in the same transaction; checking the foreign key of each
    # of ~1.5 million detail rows against them costs ~8 % of the write.
    with db.sqlite_foreign_keys_off(conn):
        with conn.begin():
            ids = _insert_ebs(conn, batch.ebs, seed)
            while True:
                kind, part, _ = q.get()
                if kind == "part":
                    _insert_part(conn, part, ids)
                    continue
                if kind == "error":
                    raise part
                break  # "end"
            _insert_outcomes(conn, batch.outcomes, ids)
            _store_cache(conn, batch, ids, det)
    return ids


def _generate_light(seed: int, first: int, size: int) -> SimulatedBatch:
    """A batch without detail rows (runs in a worker process: only the small frames travel back)."""
    batch = generate(n=size, seed=seed, first_index=first)
    return replace(batch, details=batch.details.iloc[:0], antennas=None)


def _batches(seed: int, first: int, n: int, details_for: int, stop: threading.Event) -> Iterator[SimulatedBatch]:
    """The generated batches in order; detail rows only for the first DETAILS_FOR EBs.

    Batches whose EBs keep no details are generated in worker processes (the numpy work for the detail
    grid is the cost even when the rows are dropped), so a million EB rows take minutes, not half an hour.
    """
    done = 0
    while done < n and done < details_for and not stop.is_set():
        size = min(CHUNK_EBS, n - done)
        batch = generate(n=size, seed=seed, first_index=first + done)
        keep = details_for - done
        if keep < size:
            d = batch.details
            batch = replace(batch, details=d[d["eb"].to_numpy() < first + done + keep])
        yield batch
        done += size
    if done >= n or stop.is_set():
        return
    import multiprocessing
    from concurrent.futures import Future, ProcessPoolExecutor

    workers = max(1, min(LIGHT_WORKERS, (n - done + CHUNK_EBS - 1) // CHUNK_EBS))
    # spawn, not fork: this runs in a thread of a process that may hold locks (numpy, SQLite, logging).
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: list[Future[SimulatedBatch]] = []
        while (done < n or pending) and not stop.is_set():
            while done < n and len(pending) < 2 * workers:
                size = min(CHUNK_EBS, n - done)
                pending.append(pool.submit(_generate_light, seed, first + done, size))
                done += size
            yield pending.pop(0).result()
        for f in pending:
            f.cancel()


LIGHT_WORKERS = 2
"""Worker processes generating batches whose detail rows are dropped (simulate with details_for < n)."""


def _producer(
    out: queue.Queue[Any], stop: threading.Event, seed: int, first: int, n: int, sqlite: bool, details_for: int
) -> None:
    """Generate batches (and, for SQLite, their parameter lists) ahead of the writer."""

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    try:
        for batch in _batches(seed, first, n, details_for, stop):
            counts = batch.details.groupby("eb", sort=False).size().to_numpy()
            details = batch.details
            pos = pd.Index(batch.ebs.index).get_indexer(details["eb"].to_numpy())
            light = replace(batch, details=details.iloc[:0]) if sqlite else batch
            # The detail-feature cache rows, computed here from the frame (no SQL pass over the new rows).
            det = features.detail_features(*features._detail_aggregates_pandas(details)) if len(details) else None
            if not put(("batch", light, (counts, det))):
                return
            if sqlite:
                del batch, light
                for part in _detail_parts(details, pos):
                    if not put(("part", part, None)):
                        return
            if not put(("end", None, None)):
                return
    except BaseException as exc:  # handed to the writer, which re-raises it
        put(("error", exc, None))
    finally:
        put((_DONE, None, None))


MAX_SIMULATED_EBS = 1_000_000
"""Most EBs one simulate call adds (the largest pool the README measures); more is run in several calls."""


def _remove_ebs(engine: Engine, ids: list[int], progress: ProgressFn | None) -> None:
    if not ids:
        return
    if progress:
        progress(0.0, f"stopping: removing the {len(ids):,} EBs written so far")
    with db.writer(engine).begin() as conn:
        for start in range(0, len(ids), 900):
            conn.execute(delete(ExecutionBlock).where(col(ExecutionBlock.id).in_(ids[start : start + 900])))


def simulate(
    *,
    engine: Engine,
    n: int,
    seed: int = 0,
    aods: int = 0,
    labeled: int = 0,
    details_for: int | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Add N simulated EBs (+ details, reference outcomes) and LABELED labels from AODS simulated AoDs.

    Each batch of CHUNK_EBS EBs is one transaction; a background thread generates the next batch while
    this one is written. Global EB indices continue from the number of EBs already in the table, so a
    second run with the same seed appends new EBs (uids are checked and re-derived if taken).
    details_for=M keeps detail rows for the first M new EBs only (big pools: ~1,400 rows per EB would make
    a million EBs a 100 GB database); the simulated AoDs then label EBs that have details, as real AoDs
    review EBs with their plots, unless the labels need more EBs than that.
    """
    if n < 0 or aods < 0 or labeled < 0 or (details_for is not None and details_for < 0):
        raise ValueError("n, aods, labeled and details_for must not be negative")
    if n > MAX_SIMULATED_EBS:
        raise ValueError(
            f"n = {n:,} is more than {MAX_SIMULATED_EBS:,} EBs at once (a typo?); run simulate again to add more"
        )
    details_for = n if details_for is None else min(details_for, n)
    if labeled and not aods:
        raise ValueError("labels need at least one simulated AoD (aods > 0)")
    if labeled > n * aods:
        raise ValueError(f"{labeled} labels cannot come from {aods} AoDs on {n} new EBs (at most {n * aods})")
    t0 = time.perf_counter()
    existing = _count_ebs(engine)
    sqlite = db.is_sqlite(engine)
    counts: list[np.ndarray] = []
    keep_ebs: list[pd.DataFrame] = []
    keep_sev: list[pd.DataFrame] = []
    keep_out: list[pd.DataFrame] = []
    id_of_eb: dict[int, int] = {}
    if progress:
        progress(0.0, f"simulating {n} EBs")
    q: queue.Queue[Any] = queue.Queue(maxsize=4)
    stop = threading.Event()
    worker = threading.Thread(target=_producer, args=(q, stop, seed, existing, n, sqlite, details_for), daemon=True)
    worker.start()
    written = 0
    n_labels = 0
    try:
        try:
            while True:
                kind, batch, info = q.get()
                if kind is _DONE:
                    break
                if kind == "error":
                    raise batch
                assert kind == "batch"
                extra, det = info
                with db.writer(engine).connect() as conn:
                    if sqlite:
                        ids = _write_sqlite_batch(conn, batch, q, seed, det)
                    else:
                        with conn.begin():
                            ids = write_batch(conn=conn, batch=batch, seed=seed)
                            _store_cache(conn, batch, ids, det)
                        kind, _, _ = q.get()  # "end"
                id_of_eb.update(zip(batch.ebs.index.tolist(), ids.tolist()))
                counts.append(extra)
                if labeled:
                    # Labels go to EBs with details when those can carry them all (see the docstring).
                    mine = batch.ebs.index.to_numpy() < existing + (details_for if labeled <= details_for * aods else n)
                    keep_ebs.append(batch.ebs.loc[mine, ["start_time", "duration_s"]])
                    keep_sev.append(batch.severity.loc[mine])
                keep_out.append(
                    batch.outcomes[["eb", "value", "reasons"]] if labeled else batch.outcomes[["eb", "value"]]
                )
                written += len(batch.ebs)
                if progress:
                    progress(written / max(n, 1) * (0.97 if labeled else 1.0), f"{written}/{n} EBs written")
        finally:
            stop.set()
            worker.join(timeout=30)
        if aods:
            frame = pd.DataFrame()
            if labeled:
                frame = simulate_aod_labels(
                    ebs=pd.concat(keep_ebs),
                    severity=pd.concat(keep_sev),
                    outcomes=pd.concat(keep_out, ignore_index=True),
                    aods=aods,
                    labeled=labeled,
                    seed=seed,
                )
            n_labels = _write_labels(engine, frame, id_of_eb, aods)
    except BaseException:
        # All or nothing, like an import: an interrupted or failed run takes back the EBs it wrote (their
        # details, reference outcomes and labels go with them: ON DELETE CASCADE), then says why it stopped.
        _remove_ebs(engine, list(id_of_eb.values()), progress)
        raise
    per_eb = np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64)
    values = pd.concat(keep_out, ignore_index=True)["value"] if keep_out else pd.Series([], dtype=object)
    shares = {v: (round(float((values == v).mean()), 4) if len(values) else 0.0) for v in LABEL_VALUES}
    summary = {
        "n_ebs": int(written),
        "n_ebs_with_details": int(per_eb.size),
        "n_detail_rows": int(per_eb.sum()),
        "detail_rows_per_eb": {
            "mean": round(float(per_eb.mean()), 1) if per_eb.size else 0.0,
            "min": int(per_eb.min()) if per_eb.size else 0,
            "max": int(per_eb.max()) if per_eb.size else 0,
        },
        "n_labels": int(n_labels),
        "reference_shares": shares,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if progress:
        progress(1.0, f"{written} EBs, {n_labels} labels")
    return summary
