"""`benchmark scale`: next / label / retrain / detail-query latency on a pool of N EBs, alone and with many AoDs.

The pool is built with the simulator (detail rows for a subset, see simulate(details_for=...)) or reused
when the database already holds at least N EBs. Phases:
- retrain: one full retrain + rescoring (the detail-feature cache is brought up to date first and timed apart);
- sequential: AoDs in turn ask for their next EB and label it (the app's hot path, one user at a time);
- detail: one EB's detail rows, the query the review page runs (and the plan, to show it uses the index);
- writers (--writers W > 0): W threads, then W processes, each an AoD doing next + label back to back
  (threads through the library, processes through the CLI's own command functions); afterwards it checks
  that no label was lost, no error (such as "database is locked") reached a caller, and no EB was leased to
  two AoDs at once.
Figures are milliseconds (p50 / p95 / max) and seconds; the run prints one JSON object.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Integer, bindparam, func
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from qa0_label.store.models import EBDetail, ExecutionBlock, Label, Labeler, table_of

_DET = table_of(EBDetail).c
_DETAIL_READ = ("antenna", "spw", "scan", "freq_ghz", "time_s", "tsys_k", "amplitude", "phase_deg", "bp_ripple_db")
DETAIL_STMT = sa_select(*(_DET[c] for c in _DETAIL_READ), _DET.flagged).where(
    _DET.eb_id == bindparam("id", type_=Integer())
)
"""One EB's detail rows, as the review view reads them for the plots."""

Progress = Callable[[float, str], None]


def _pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "max": float("nan"), "n": 0}
    a = np.asarray(values, dtype=float)
    return {
        "p50": round(float(np.percentile(a, 50)), 2),
        "p95": round(float(np.percentile(a, 95)), 2),
        "max": round(float(a.max()), 2),
        "n": int(a.size),
    }


def _count(engine: Engine, model: type[SQLModel]) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa_select(func.count()).select_from(table_of(model))).scalar_one() or 0)


def _db_mb(engine: Engine) -> float | None:
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        if not path or path == ":memory:":
            return None
        size = sum(Path(path + suffix).stat().st_size for suffix in ("", "-wal") if Path(path + suffix).exists())
        return round(size / 1e6, 1)
    with engine.connect() as conn:
        size = conn.execute(sa_select(func.pg_database_size(func.current_database()))).scalar_one()
        return round(int(size) / 1e6, 1)


def _detail_plan(engine: Engine, eb_id: int) -> str:
    """The query plan of DETAIL_STMT (shows whether the eb_id index is used)."""
    stmt = DETAIL_STMT.params(id=int(eb_id)).compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        # Raw SQL: Core has no EXPLAIN construct (the id is an int rendered by the compiler).
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {stmt}").fetchall()
            return "; ".join(str(r[-1]) for r in rows)
        rows = conn.exec_driver_sql(f"EXPLAIN {stmt}").fetchall()
        return "; ".join(str(r[0]).strip() for r in rows)


def _label(engine: Engine, eb_id: int, who: str, value: str) -> int:
    from qa0_label.store.db import session_scope
    from qa0_label.store.labels import record_label

    with session_scope(engine, write=True) as s:
        return int(record_label(session=s, eb_id=eb_id, labeler=who, value=value).id or 0)


_VALUES = ("Pass", "Pass", "Pass", "SemiPass", "Fail")


# --- phases --------------------------------------------------------------------------------------


def build_pool(
    *, engine: Engine, pool: int, details_for: int, aods: int, labels: int, seed: int, progress: Progress | None
) -> dict[str, Any]:
    """Simulate EBs up to POOL (reusing what is there); returns what was built and how long it took."""
    from qa0_label.sim.simulate import simulate

    have = _count(engine, ExecutionBlock)
    if have >= pool:
        return {"reused": True, "build_s": 0.0}
    n = pool - have
    t = time.perf_counter()
    summary = simulate(
        engine=engine,
        n=n,
        seed=seed,
        aods=aods,
        labeled=min(labels, n * aods),
        details_for=max(0, min(details_for, n)),
        progress=progress,
    )
    return {"reused": False, "build_s": round(time.perf_counter() - t, 1), "simulate": summary}


def retrain_phase(*, engine: Engine, settings: Any) -> dict[str, Any]:
    """Bring the detail-feature cache up to date, then time one retrain + rescoring of the whole pool."""
    from qa0_label.learning import features, training

    t = time.perf_counter()
    cache = features.ensure_detail_cache(engine=engine)
    cache_s = time.perf_counter() - t
    marks: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    c0 = time.process_time()
    result = training.retrain(
        engine=engine,
        settings=settings,
        trigger="bench",
        progress=lambda f, m: marks.append((time.perf_counter() - t0, m)),
    )
    total = time.perf_counter() - t0
    cpu = time.process_time() - c0
    steps: dict[str, float] = {}
    prev, prev_msg = 0.0, "start"
    for at, msg in marks:
        steps[prev_msg] = round(at - prev, 2)
        prev, prev_msg = at, msg
    return {
        "retrain_s": round(total, 2),
        # CPU seconds of this process (all threads): what the retrain costs when it does not wait for a core.
        "retrain_cpu_s": round(cpu, 2),
        "detail_cache_s": round(cache_s, 2),
        "detail_cache": cache,
        "retrain_labels": result["n_labels"],
        "retrain_steps_s": steps,
        "macro_f1": result["metrics"].get("macro_f1"),
    }


def sequential_phase(*, engine: Engine, settings: Any, calls: int, aods: int, seed: int) -> dict[str, Any]:
    """AoDs in turn: next (timed), label it (timed). Returns next_ms and label_ms."""
    from qa0_label.queue.assign import next_for

    rng = random.Random(seed)
    names = [f"scale-aod-{i}" for i in range(aods)]
    next_ms: list[float] = []
    label_ms: list[float] = []
    next_cpu: list[float] = []
    label_cpu: list[float] = []
    for call in range(calls):
        who = names[call % aods]
        t, c = time.perf_counter(), time.thread_time()
        pick = next_for(engine=engine, labeler=who, settings=settings)
        next_ms.append((time.perf_counter() - t) * 1000)
        next_cpu.append((time.thread_time() - c) * 1000)
        if pick is None:
            break
        t, c = time.perf_counter(), time.thread_time()
        _label(engine, int(pick["eb_id"]), who, rng.choice(_VALUES))
        label_ms.append((time.perf_counter() - t) * 1000)
        label_cpu.append((time.thread_time() - c) * 1000)
    # CPU milliseconds of the calling thread: the latency without waiting for a core (the host is shared).
    return {
        "next_ms": _pct(next_ms),
        "label_ms": _pct(label_ms),
        "next_cpu_ms": _pct(next_cpu),
        "label_cpu_ms": _pct(label_cpu),
    }


def detail_phase(*, engine: Engine, samples: int, seed: int) -> dict[str, Any]:
    """Time DETAIL_STMT for random EBs that have details; report the plan and the table size."""
    from qa0_label.learning.features import detail_eb_ids
    from qa0_label.store.db import session_scope

    with session_scope(engine) as s:
        ids = detail_eb_ids(session=s)
    if not ids:
        return {"detail_ms": _pct([]), "detail_ebs": 0}
    rng = random.Random(seed)
    picks = [rng.choice(ids) for _ in range(samples)]
    ms: list[float] = []
    cpu: list[float] = []
    rows: list[int] = []
    with engine.connect() as conn:
        stmt = DETAIL_STMT
        for eb in picks:
            t, c = time.perf_counter(), time.thread_time()
            got = conn.execute(stmt, {"id": eb}).fetchall()
            ms.append((time.perf_counter() - t) * 1000)
            cpu.append((time.thread_time() - c) * 1000)
            rows.append(len(got))
            conn.rollback()  # each read in its own transaction, like a page render
    return {
        "detail_ms": _pct(ms),
        "detail_cpu_ms": _pct(cpu),
        "detail_rows_per_eb": round(float(np.mean(rows)), 1),
        "detail_ebs": len(ids),
        "detail_rows": _count(engine, EBDetail),
        "detail_plan": _detail_plan(engine, picks[0]),
    }


# --- many AoDs at once ---------------------------------------------------------------------------


def _worker_loop(
    *,
    do_next: Callable[[str], int | None],
    do_label: Callable[[int, str, str], int],
    who: str,
    iterations: int,
    seed: int,
    start_at: float,
    think_ms: float = 0.0,
) -> dict[str, Any]:
    """One AoD: next, label, next, label ... Records timings, events, lease intervals and errors.

    THINK_MS > 0 pauses 0.5-1.5 x THINK_MS after each label (an AoD looks at an EB before the next key
    press); 0 is the stress case where every AoD writes back to back.
    """
    rng = random.Random(seed)
    out: dict[str, Any] = {"who": who, "next_ms": [], "label_ms": [], "events": [], "holds": [], "errors": []}
    while time.time() < start_at:  # everyone starts together
        time.sleep(0.001)
    for _ in range(iterations):
        try:
            t0 = time.time()
            eb = do_next(who)
            t1 = time.time()
            out["next_ms"].append((t1 - t0) * 1000)
            if eb is None:
                break
            t2 = time.time()
            event = do_label(eb, who, rng.choice(_VALUES))
            t3 = time.time()
            out["label_ms"].append((t3 - t2) * 1000)
            out["events"].append(event)
            # Lease taken within [t0, t1], released within [t2, t3].
            out["holds"].append((eb, t0, t1, t2, t3))
            if think_ms > 0:
                time.sleep(think_ms / 1000 * rng.uniform(0.5, 1.5))
        except Exception as exc:  # noqa: BLE001 - counted: any error here is one an AoD would see
            out["errors"].append(f"{type(exc).__name__}: {exc}"[:300])
    return out


def _library_worker(
    url: str, who: str, iterations: int, seed: int, start_at: float, think_ms: float = 0.0
) -> dict[str, Any]:
    """A thread (or process) using the library directly, as the Streamlit app does."""
    from qa0_label.config import load_settings
    from qa0_label.queue.assign import next_for
    from qa0_label.store.db import get_engine

    engine = get_engine(url)
    settings = load_settings(url)

    def do_next(name: str) -> int | None:
        pick = next_for(engine=engine, labeler=name, settings=settings)
        return None if pick is None else int(pick["eb_id"])

    return _worker_loop(
        do_next=do_next,
        do_label=lambda eb, name, v: _label(engine, eb, name, v),
        who=who,
        iterations=iterations,
        seed=seed,
        start_at=start_at,
        think_ms=think_ms,
    )


CliMain = Callable[[list[str]], int]
"""The CLI's entry point (qa0_label.cli.main), handed in by the CLI: this module does not import the CLI."""


def _cli_worker(
    cli_main: CliMain, url: str, who: str, iterations: int, seed: int, start_at: float, think_ms: float = 0.0
) -> dict[str, Any]:
    """A process driving the CLI's command functions (`next --json`, `label`) in-process."""
    from qa0_label.queue import assign  # noqa: F401 - imported before the clock starts, as in a warm CLI
    from qa0_label.store.db import get_engine

    engine = get_engine(url)
    uid_to_id: dict[str, int] = {}
    id_to_uid: dict[int, str] = {}

    def run(argv: list[str]) -> str:
        buf, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
            code = cli_main(["--db", url, *argv])
        if code != 0:
            raise RuntimeError(f"exit {code}: {err.getvalue().strip()}")
        return buf.getvalue()

    def do_next(name: str) -> int | None:
        result = json.loads(run(["next", "--labeler", name, "--json"]))
        if result is None:
            return None
        eb = int(result["eb_id"]) if "eb_id" in result else _id_of(result["uid"])
        id_to_uid[eb] = result["uid"]
        return eb

    def _id_of(uid: str) -> int:
        if uid not in uid_to_id:
            with engine.connect() as conn:
                ebs = table_of(ExecutionBlock).c
                uid_to_id[uid] = int(conn.execute(sa_select(ebs.id).where(ebs.uid == uid)).scalar_one())
        return uid_to_id[uid]

    def do_label(eb: int, name: str, value: str) -> int:
        out = run(["label", id_to_uid[eb], "--labeler", name, "--value", value])
        return int(out.rsplit("(event ", 1)[1].split(")")[0])

    return _worker_loop(
        do_next=do_next,
        do_label=do_label,
        who=who,
        iterations=iterations,
        seed=seed,
        start_at=start_at,
        think_ms=think_ms,
    )


def _check_holds(results: list[dict[str, Any]]) -> int:
    """Number of EB hand-outs that certainly overlapped another AoD's lease on the same EB (must be 0).

    Each hold is known only within bounds: taken in [t0, t1], released in [t2, t3]. Two holds certainly
    overlapped when each was taken (t1) before the other began to label (t2). An EB may go to a second AoD
    after the first labelled it (overlap routing): that is not a clash.
    """
    by_eb: dict[int, list[tuple[float, float, float, float, str]]] = {}
    for r in results:
        for eb, t0, t1, t2, t3 in r["holds"]:
            by_eb.setdefault(int(eb), []).append((t0, t1, t2, t3, r["who"]))
    clashes = 0
    for holds in by_eb.values():
        for i, a in enumerate(holds):
            for b in holds[i + 1 :]:
                if a[4] != b[4] and a[1] < b[2] and b[1] < a[2]:
                    clashes += 1
    return clashes


def writers_phase(
    *,
    engine: Engine,
    url: str,
    writers: int,
    iterations: int,
    mode: str,
    seed: int,
    think_ms: float = 0.0,
    cli_main: CliMain | None = None,
) -> dict[str, Any]:
    """W concurrent AoDs (threads via the library, or processes via CLI_MAIN, the CLI) doing next + label."""
    tag = f"{mode}-{seed}-{uuid.uuid4().hex[:6]}"  # fresh AoDs each run: counts below are theirs only
    names = [f"scale-{tag}-{i}" for i in range(writers)]
    before = _count(engine, Label)
    start_at = time.time() + (1.0 if mode == "threads" else 8.0)  # processes need time to import
    t = time.perf_counter()
    if mode == "threads":
        results: list[dict[str, Any]] = [{} for _ in names]

        def run(i: int) -> None:
            results[i] = _library_worker(url, names[i], iterations, seed + i, start_at, think_ms)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    else:
        if cli_main is None:
            raise ValueError("mode 'processes' drives the CLI: pass cli_main")
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(writers) as pool:
            # cli_main is pickled by reference: each process imports the CLI itself.
            args = [(cli_main, url, names[i], iterations, seed + i, start_at, think_ms) for i in range(writers)]
            results = pool.starmap(_cli_worker, args)
    wall = time.perf_counter() - t
    after = _count(engine, Label)
    events = [e for r in results for e in r["events"]]
    with engine.connect() as conn:
        labels, labelers = table_of(Label), table_of(Labeler)
        stored = conn.execute(
            sa_select(func.count())
            .select_from(labels.join(labelers, labelers.c.id == labels.c.labeler_id))
            .where(labelers.c.name.like(f"scale-{tag}-%"))
        ).scalar_one()
    errors = [e for r in results for e in r["errors"]]
    return {
        "writers": writers,
        "mode": mode,
        "think_ms": think_ms,
        "next_ms": _pct([x for r in results for x in r["next_ms"]]),
        "label_ms": _pct([x for r in results for x in r["label_ms"]]),
        "labels_written": len(events),
        "labels_stored": int(stored),
        "labels_lost": len(events) - int(stored),
        "label_rows_added": after - before,
        "duplicate_events": len(events) - len(set(events)),
        "errors": len(errors),
        "locked_errors": sum("locked" in e.lower() for e in errors),
        "error_samples": errors[:3],
        "double_leases": _check_holds(results),
        "wall_s": round(wall, 2),
    }


# --- the whole benchmark -------------------------------------------------------------------------


def run_scale_benchmark(
    *,
    url: str,
    pool: int,
    details_for: int = 7500,
    aods: int = 4,
    labels: int = 5000,
    calls: int = 300,
    detail_samples: int = 200,
    writers: int = 0,
    writer_iterations: int = 30,
    think_ms: float = 0.0,
    retrain: bool = True,
    seed: int = 100,
    progress: Progress | None = None,
    cli_main: CliMain | None = None,
) -> dict[str, Any]:
    """Build or reuse a pool of POOL EBs and measure every phase; returns the figures (JSON-able).

    The concurrent phase runs threads through the library and, when CLI_MAIN is given, processes through it.
    """
    from qa0_label.config import load_settings
    from qa0_label.store.db import get_engine

    engine = get_engine(url)
    settings = load_settings(url)

    def say(fraction: float, message: str) -> None:
        if progress:
            progress(fraction, message)

    say(0.0, f"pool of {pool} EBs")
    out: dict[str, Any] = {"pool": pool}
    out.update(
        build_pool(
            engine=engine, pool=pool, details_for=details_for, aods=aods, labels=labels, seed=seed, progress=None
        )
    )
    out["ebs"] = _count(engine, ExecutionBlock)
    out["labels"] = _count(engine, Label)
    out["backend"] = engine.dialect.name
    out["cpus"] = os.cpu_count()
    out["load_before"] = round(os.getloadavg()[0], 2)
    if retrain:
        say(0.3, "retrain")
        out.update(retrain_phase(engine=engine, settings=settings))
    say(0.5, "next + label, one AoD at a time")
    out.update(sequential_phase(engine=engine, settings=settings, calls=calls, aods=aods, seed=seed))
    say(0.6, "detail rows of one EB")
    out.update(detail_phase(engine=engine, samples=detail_samples, seed=seed))
    if writers > 0:
        conc = {}
        modes = ("threads", "processes") if cli_main is not None else ("threads",)
        for i, mode in enumerate(modes):
            say(0.7 + 0.15 * i, f"{writers} concurrent AoDs ({mode})")
            conc[mode] = writers_phase(
                engine=engine,
                url=url,
                writers=writers,
                iterations=writer_iterations,
                mode=mode,
                seed=seed * 1000 + int(time.time()) % 1000 + i,
                think_ms=think_ms,
                cli_main=cli_main,
            )
        out["concurrent"] = conc
    out["db_mb"] = _db_mb(engine)
    out["load_after"] = round(os.getloadavg()[0], 2)
    say(1.0, "done")
    return out
