"""Large synthetic pools for the speed benchmarks (EB rows whose QA0 follows from their columns, no detail rows)."""

from __future__ import annotations

from typing import Any

import numpy as np


def synthetic_pool(engine: Any, *, n: int, n_labels: int, seed: int = 0, aods: int = 4) -> dict[str, Any]:
    """Bulk-insert n EB rows (no detail rows) and n_labels labels from `aods` AoDs, fast enough for 100k EBs.

    The simulator with its ~1,500 detail rows per EB would need hours and gigabytes for 100k EBs; the speed
    benchmarks of `next` and `retrain` only need EB rows whose QA0 follows from their columns.
    """
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import func, insert
    from sqlalchemy import select as sa_select

    from qa0_label.review.limits import REFERENCE_FREQ_GHZ
    from qa0_label.store.db import bulk_insert, session_scope
    from qa0_label.store.models import ExecutionBlock, Labeler, table_of

    rng = np.random.default_rng(seed)
    sources = [f"J{h:02d}{m:02d}-{d:02d}{s:02d}" for h, m, d, s in rng.integers(0, 24, (40, 4))]
    bands = np.array([3, 4, 6, 7])
    band = rng.choice(bands, n, p=[0.45, 0.12, 0.2, 0.23])
    is12 = rng.random(n) < 0.55
    n_ant = np.where(is12, rng.integers(40, 51, n), rng.integers(9, 13, n))
    few = rng.random(n) < 0.02
    n_ant = np.where(few, np.maximum(3, (n_ant * rng.uniform(0.2, 0.8, n)).astype(int)), n_ant)
    execf = np.where(rng.random(n) < 0.03, rng.uniform(0.15, 0.9, n).round(3), 1.0)
    pwv = np.exp(rng.normal(0.0, 0.6, n)).round(3)
    el = rng.uniform(20, 85, n).round(2)
    phase = (rng.gamma(2.0, 4.0, n) * np.where(rng.random(n) < 0.02, 6.0, 1.0)).round(2)
    freq = np.array([REFERENCE_FREQ_GHZ[int(b)] for b in bands])[np.searchsorted(bands, band)]
    expected = rng.uniform(0.8, 15.0, n).round(4)
    off = np.where(rng.random(n) < 0.03, rng.choice([-1, 1], n) * rng.uniform(0.1, 0.5, n), rng.normal(0, 0.03, n))
    flux = (expected * np.exp(off)).round(4)
    bad = (n_ant < np.where(is12, 16, 4)) | (execf < 0.3) | (np.abs(off) > 0.3) | (phase > 60)
    meh = (n_ant < np.where(is12, 30, 7)) | (execf < 0.7) | (np.abs(off) > 0.12) | (phase > 35)
    truth = np.where(bad, "Fail", np.where(meh, "SemiPass", "Pass"))
    t0 = datetime(2023, 1, 1, tzinfo=timezone.utc)
    starts = [t0 + timedelta(minutes=int(m)) for m in np.sort(rng.integers(0, 2 * 365 * 24 * 60, n))]
    with session_scope(engine, write=True) as s:
        conn = s.connection()
        sqlite = conn.dialect.name == "sqlite"

        def when(t: datetime) -> Any:
            return t.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else t

        first = int(conn.execute(sa_select(func.coalesce(func.max(ExecutionBlock.id), 0))).scalar() or 0)
        cols = [
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
            "tsys_median_k",
            "flagged_fraction",
            "freq_ghz",
            "flux_jy",
            "flux_err_jy",
            "expected_flux_jy",
            "expected_flux_err_jy",
            "spectral_index",
            "spectral_index_err",
            "imported_at",
        ]
        src = rng.integers(0, len(sources), n)
        alpha = rng.normal(-0.6, 0.1, n).round(3)
        rows = [
            (
                f"uid://A002/Xb{seed:x}{first + i:x}/X{i:x}",
                sources[src[i]],
                int(band[i]),
                "12m" if is12[i] else "7m",
                when(starts[i]),
                int(n_ant[i]),
                float(pwv[i]),
                float(el[i]),
                float(execf[i]),
                float(phase[i]),
                float(60 + 40 * (band[i] - 3)),
                0.01,
                float(freq[i]),
                float(flux[i]),
                float(0.02 * flux[i]),
                float(expected[i]),
                float(0.05 * expected[i]),
                float(alpha[i]),
                0.05,
                when(starts[i]),
            )
            for i in range(n)
        ]
        for start in range(0, n, 20_000):
            bulk_insert(conn, "execution_block", cols, rows[start : start + 20_000])
        eb_id = table_of(ExecutionBlock).c.id
        ids = np.asarray([int(r[0]) for r in conn.execute(sa_select(eb_id).where(eb_id > first).order_by(eb_id))])
        created = datetime.now(timezone.utc)
        now = when(created)
        lab_ids = []
        for a in range(aods):
            name = f"bench-aod-{seed}-{a}"
            new = conn.execute(insert(Labeler).values(name=name, role="aod", active=True, created_at=created))
            key = new.inserted_primary_key
            assert key is not None  # an INSERT of one row
            lab_ids.append(int(key[0]))
        chosen = rng.choice(n, size=min(n_labels, n), replace=False)
        label_rows = [
            (int(ids[i]), lab_ids[j % aods], str(truth[i]), now, "review", f"bench-{seed}-{first}-{i}")
            for j, i in enumerate(chosen)
        ]
        bulk_insert(
            conn, "label", ["eb_id", "labeler_id", "value", "created_at", "kind", "client_event_id"], label_rows
        )
    shares = {v: float((truth == v).mean()) for v in ("Pass", "SemiPass", "Fail")}
    return {"n_ebs": n, "n_labels": len(label_rows), "labelers": lab_ids, "shares": shares}
