"""Retrains started from the app run in a worker process, not in a thread of the app.

Python threads share one interpreter lock: a retrain thread inside the Streamlit server slows every page
rerun (measured: median key-press-to-next-EB doubled during a retrain). A separate process leaves the server
alone. training.retrain does the work and its database claim keeps one retrain at a time across processes;
training.status reads progress from the ModelRun row, so the sidebar shows it as for any other retrain.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from sqlalchemy.engine import Engine

from qa0_label.config import Settings

log = logging.getLogger(__name__)


def _retrain_job(url: str, trigger: str) -> dict[str, Any]:
    """Worker-process entry point: one retrain on the database at URL; refusals come back as started=False."""
    from qa0_label.config import load_settings
    from qa0_label.learning.training import RetrainRefused, retrain
    from qa0_label.store.db import get_engine

    try:
        result = retrain(engine=get_engine(url), settings=load_settings(url), trigger=trigger)
    except RetrainRefused as exc:
        return {"started": False, "message": str(exc)}
    return {
        "started": True,
        "version": result.get("version"),
        "message": f"model version {result.get('version')} trained on {result.get('n_labels')} labels",
    }


def should_auto_retrain(*, engine: Engine, settings: Settings) -> bool:
    """True when auto_retrain_every labels arrived since the last finished run and no retrain is running."""
    from qa0_label.learning import training

    every = int(settings.auto_retrain_every)
    if every <= 0:
        return False
    status = training.status(engine=engine)
    return not status.get("running") and int(status.get("labels_since") or 0) >= every


def _lower_priority() -> None:
    """Retrain worker start-up: yield the CPU to the page server (a key press must not wait for a fit)."""
    try:
        os.nice(10)
    except OSError:  # not permitted on this platform: run at normal priority
        pass


class RetrainRunner:
    """A worker process per retrain (spawned on request, gone when it ends); retrains run one after another."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._last: dict[str, dict[str, Any]] = {}
        self._requested: dict[str, float] = {}

    def submit(self, *, url: str, trigger: str) -> Future[dict[str, Any]]:
        """Queue a retrain of the database at URL; the future resolves when it has finished or was refused.

        A worker that died (kill -9, out of memory) breaks its pool for good: the pool is replaced here, so the
        next retrain runs in a fresh worker without restarting the server.
        """
        with self._lock:
            self._requested[url] = time.time()
            try:
                future = self._fresh_pool().submit(_retrain_job, url, trigger)
            except (BrokenProcessPool, RuntimeError):
                log.warning("retrain worker pool was broken; starting a new worker", exc_info=True)
                self._drop_pool()
                future = self._fresh_pool().submit(_retrain_job, url, trigger)
        future.add_done_callback(lambda f: self._remember(url, f))
        return future

    def _fresh_pool(self) -> ProcessPoolExecutor:
        # Called with the lock held. A pool whose worker died is marked broken by the executor itself.
        if self._pool is not None and getattr(self._pool, "_broken", False):
            self._drop_pool()
        if self._pool is None:
            # A fresh worker per retrain: a finished one would keep ~0.5 GB of a 100k-pool fit resident in
            # the app; the spawn costs a few seconds of a background job.
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                max_tasks_per_child=1,
                initializer=_lower_priority,
            )
        return self._pool

    def _drop_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                pool.shutdown(wait=False, cancel_futures=True)
            except Exception:  # noqa: BLE001 - a broken pool may fail to shut down cleanly; it is gone anyway
                log.debug("shutting down a broken retrain pool failed", exc_info=True)

    def worker_pids(self) -> list[int]:
        """Process ids of the live retrain worker(s) (for fault tests and diagnostics)."""
        with self._lock:
            procs = getattr(self._pool, "_processes", None) or {}
            return [int(p) for p in procs]

    def _remember(self, url: str, future: Future[dict[str, Any]]) -> None:
        try:
            outcome = future.result()
        except Exception as exc:  # noqa: BLE001 - a crashed worker is reported like a refusal
            outcome = {"started": False, "message": f"retrain failed: {type(exc).__name__}: {exc}"}
            log.warning("retrain worker failed", exc_info=True)
            if isinstance(exc, BrokenProcessPool):
                with self._lock:
                    self._drop_pool()  # the next request starts a new worker
        with self._lock:
            self._last[url] = {**outcome, "at": time.time()}

    def starting(self, url: str, *, within_s: float = 120.0) -> bool:
        """True between a request and its end, for at most WITHIN_S (the worker may still be importing)."""
        with self._lock:
            asked = self._requested.get(url)
            done = self._last.get(url, {}).get("at", 0.0)
        return asked is not None and done < asked and time.time() - asked < within_s

    def last_outcome(self, url: str) -> dict[str, Any] | None:
        """What the newest finished request for URL ended with (trained, or why it was refused)."""
        with self._lock:
            return self._last.get(url)

    def close(self) -> None:
        """Stop the worker process (a running retrain is left to finish)."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
