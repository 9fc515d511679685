"""Small hand-made EB pools for the active-learning tests (fast: EB rows only, no detail rows)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy.engine import Engine

from qa0_label.store import labels
from qa0_label.store.db import bulk_insert, session_scope

SOURCES = ("J1256-0547", "J0319+4130", "J1924-2914", "J2253+1608")
BANDS = (3, 4, 6, 7)
_COLS = [
    "uid",
    "source",
    "band",
    "array",
    "start_time",
    "n_antennas",
    "pwv_mm",
    "elevation_deg",
    "exec_fraction",
    "phase_rms_deg",
    "flux_jy",
    "flux_err_jy",
    "expected_flux_jy",
    "freq_ghz",
    "imported_at",
]
_FREQ = {3: 97.5, 4: 145.0, 6: 233.0, 7: 343.5}


def truth_of(n_antennas: int, exec_fraction: float, phase_rms: float) -> str:
    """The rule the hand-made pool's 'AoDs' apply."""
    if n_antennas < 30 or exec_fraction < 0.4:
        return "Fail"
    if phase_rms > 30 or exec_fraction < 0.8:
        return "SemiPass"
    return "Pass"


def make_pool(engine: Engine, n: int, *, seed: int = 0, blocked_head: int = 0) -> dict[int, str]:
    """Insert n EBs; returns {eb_id: true value}. blocked_head: the first rows all share one band and source."""
    rng = np.random.default_rng(seed)
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    rows, truths = [], []
    for i in range(n):
        if i < blocked_head:
            source, band = SOURCES[0], BANDS[0]
        else:
            source, band = SOURCES[int(rng.integers(len(SOURCES)))], BANDS[int(rng.integers(len(BANDS)))]
        n_ant = int(rng.integers(20, 50))
        execf = float(rng.choice([1.0, 1.0, 1.0, 0.7, 0.3]))
        phase = float(rng.gamma(2.0, 8.0))
        truths.append(truth_of(n_ant, execf, phase))
        start = t0 + timedelta(hours=7 * i)
        rows.append(
            (
                f"uid://A002/X{seed:x}/X{i:x}",
                source,
                band,
                "12m",
                start,
                n_ant,
                float(rng.uniform(0.3, 2.0)),
                float(rng.uniform(30, 80)),
                execf,
                phase,
                2.0,
                0.05,
                2.0,
                _FREQ[band],
                start,
            )
        )
    with session_scope(engine, write=True) as s:
        conn = s.connection()
        first = conn.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM execution_block").scalar()
        if conn.dialect.name == "sqlite":
            # SQLite stores datetimes as text in SQLAlchemy's format.
            rows = [
                r[:4] + (r[4].strftime("%Y-%m-%d %H:%M:%S.%f"),) + r[5:14] + (r[14].strftime("%Y-%m-%d %H:%M:%S.%f"),)
                for r in rows
            ]
        bulk_insert(conn, "execution_block", _COLS, rows)
        ids = [
            int(r[0])
            for r in conn.exec_driver_sql(f"SELECT id FROM execution_block WHERE id > {int(first)} ORDER BY id")
        ]
    return dict(zip(ids, truths))


def label(engine: Engine, eb_ids: list[int], labeler: str, truth: dict[int, str], **kw: object) -> None:
    """Record the true value for each EB as this labeler."""
    with session_scope(engine, write=True) as s:
        for eb in eb_ids:
            labels.record_label(session=s, eb_id=eb, labeler=labeler, value=truth[eb], **kw)  # type: ignore[arg-type]


def planned_rows(engine: Engine, sql: str) -> float:
    """PostgreSQL's row estimate for a query (what its plan is built on)."""
    with engine.connect() as conn:
        plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}").scalar()
    return float((plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]["Plan Rows"])
