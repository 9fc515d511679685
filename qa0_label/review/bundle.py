"""Everything the review view draws for one EB, ready to send to the browser, cached and prefetched.

Building an EB's plots costs far more than drawing them (queries plus Altair's chart construction and
serialisation, hundreds of milliseconds), while an AoD looks at each EB for many seconds. So the bundle of
one EB (header + Vega-Lite specs) is built once, kept in a small process-wide LRU cache, and the EBs the queue
will most likely hand out next are built in a background thread while the AoD looks at the current one.
No Streamlit here: the page only looks bundles up.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from qa0_label.store.db import session_scope

log = logging.getLogger(__name__)

HEATMAP_DEFAULT = "tsys_k"
CACHE_SIZE = 128


@dataclass
class ReviewBundle:
    """Header dict and Vega-Lite specs (plain dicts with inline datasets) of one EB; None = nothing to draw."""

    eb_id: int
    header: dict[str, Any]
    specs: dict[str, dict[str, Any] | None]
    heatmaps: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    n_antennas: int = 0
    notes: dict[str, str | None] = field(default_factory=dict)  # per-EB text shown beside a chart


def _parts_spec(parts: Any) -> dict[str, Any] | None:
    """A review chart's Vega-Lite dict (cached template + this EB's dataset as Arrow bytes); None = no data."""
    if parts is None:
        return None
    spec = parts.spec()
    spec["datasets"] = {name: _frame_arrow(frame) for name, frame in spec["datasets"].items()}
    return spec


def _frame_arrow(frame: Any) -> Any:
    """A DataFrame as Arrow IPC stream bytes (what Streamlit sends to the browser); anything else unchanged."""
    import pandas as pd
    import pyarrow as pa

    if not isinstance(frame, pd.DataFrame):
        return frame
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.RecordBatchStreamWriter(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def heatmap_spec(*, session: Any, eb_id: int, metric: str) -> tuple[dict[str, Any] | None, int]:
    """Vega-Lite spec of the antenna x scan heatmap of one metric, and the number of antennas in it."""
    from qa0_label.review import charts
    from qa0_label.review import view as review

    frame = review.heatmap(session=session, eb_id=eb_id, metric=metric)
    if frame.empty:
        return None, 0
    frame["outlier"] = frame["antenna"].isin(review.heatmap_outliers(frame, metric))
    return _parts_spec(charts.heatmap_parts(frame, metric)), int(frame["antenna"].nunique())


def build_bundle(*, engine: Engine, eb_id: int) -> ReviewBundle:
    """Query one EB's review data and turn it into Vega-Lite specs (one read-only session)."""
    from qa0_label.review import charts
    from qa0_label.review import view as review

    with session_scope(engine) as session:
        header = review.eb_header(session=session, eb_id=eb_id)
        spectrum = review.spectrum(session=session, eb_id=eb_id)
        curve = review.light_curve(session=session, eb_id=eb_id)
        ctx = review.context_summary(session=session, eb_id=eb_id)
        heat, n_ant = heatmap_spec(session=session, eb_id=eb_id, metric=HEATMAP_DEFAULT)
    spectrum_parts = charts.spectrum_parts(spectrum)
    specs = {
        "spectrum": _parts_spec(spectrum_parts),
        "light_curve": _parts_spec(charts.light_curve_parts(curve)),
        "context": _parts_spec(charts.context_parts(ctx)),
    }
    notes = {"spectrum": spectrum_parts.subtitle if spectrum_parts is not None else None}
    return ReviewBundle(
        eb_id=int(eb_id), header=header, specs=specs, heatmaps={HEATMAP_DEFAULT: heat}, n_antennas=n_ant, notes=notes
    )


def _build_in_worker(url: str, eb_id: int) -> ReviewBundle:
    """Process-pool entry point: build one bundle with this process's own engine."""
    from qa0_label.store.db import get_engine

    return build_bundle(engine=get_engine(url), eb_id=eb_id)


WORKER_NICE = 5
"""Scheduling priority offset of the prefetch worker: after a key press the server and the browser drawing
the new EB come first; the next EB's bundle is built with whatever CPU they leave."""
PREFETCH_DELAY_S = 0.3
"""Wait this long after a page run before building the next bundle, so that build does not compete with the
browser drawing the EB that was just sent (an AoD looks at each EB for seconds)."""


def _warm_worker() -> None:
    import os

    try:
        os.nice(WORKER_NICE)
    except (AttributeError, OSError):  # not on this platform: same priority as the server
        pass
    # Import the heavy modules while nobody waits for a result.
    from qa0_label.review import charts  # noqa: F401


class BundleCache:
    """Thread-safe LRU of review bundles keyed by (database URL, EB id), with background prefetch.

    Prefetched bundles are built in one worker thread (they are built while the AoD looks at the current EB,
    so they rarely compete with a page run); with processes=True, in one worker process, which never holds
    the server's GIL but costs ~240 MB. A request for a bundle
    whose prefetch is in flight waits for it instead of building it twice; any other miss is built inline.
    """

    def __init__(self, engine_for: Callable[[str], Engine], *, size: int = CACHE_SIZE, processes: bool = False) -> None:
        self._engine_for = engine_for
        self._size = size
        self._items: OrderedDict[tuple[str, int], ReviewBundle] = OrderedDict()
        self._pending: dict[tuple[str, int], Future[ReviewBundle]] = {}
        self._lock = threading.Lock()
        self._chooser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qa0-prefetch")
        self._processes = processes
        self.delay_s = PREFETCH_DELAY_S
        self._workers: Executor | None = None
        self.hits = 0
        self.misses = 0

    def _worker_pool(self) -> Executor:
        with self._lock:
            if self._workers is None:
                if self._processes:
                    # spawn: a fresh interpreter, never a fork of a threaded server.
                    self._workers = ProcessPoolExecutor(
                        max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_warm_worker
                    )
                else:
                    self._workers = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qa0-build")
            return self._workers

    def peek(self, url: str, eb_id: int) -> ReviewBundle | None:
        """The cached bundle, or None (never builds)."""
        with self._lock:
            item = self._items.get((url, int(eb_id)))
            if item is not None:
                self._items.move_to_end((url, int(eb_id)))
            return item

    def get(self, url: str, eb_id: int) -> ReviewBundle:
        """The bundle of EB eb_id: from the cache, from a prefetch in flight, or built now."""
        key = (url, int(eb_id))
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return item
            pending = self._pending.get(key)
        if pending is not None:
            try:
                item = pending.result(timeout=30)
                with self._lock:
                    self.hits += 1
                return item
            except Exception:  # noqa: BLE001 - a failed prefetch is retried in the foreground
                log.debug("prefetch of EB %s failed; building again", eb_id, exc_info=True)
        item = build_bundle(engine=self._engine_for(url), eb_id=int(eb_id))
        with self._lock:
            self.misses += 1
            self._store(key, item)
        return item

    def heatmap(self, url: str, eb_id: int, metric: str) -> tuple[dict[str, Any] | None, int]:
        """The heatmap spec of one metric (built on first request, then kept with the bundle)."""
        bundle = self.get(url, eb_id)
        if metric in bundle.heatmaps:
            return bundle.heatmaps[metric], bundle.n_antennas
        with session_scope(self._engine_for(url)) as session:
            spec, n_ant = heatmap_spec(session=session, eb_id=int(eb_id), metric=metric)
        with self._lock:
            bundle.heatmaps[metric] = spec
        return spec, n_ant

    def prefetch_later(self, url: str, choose: Callable[[], Iterable[int]]) -> None:
        """In the background: ask CHOOSE which EBs to prefetch, then build them (keeps the page thread free)."""

        def job() -> None:
            try:
                eb_ids = list(choose())
                time.sleep(self.delay_s)
                self.prefetch(url, eb_ids)
            except Exception:  # noqa: BLE001 - a cache hint must never break anything
                log.debug("choosing EBs to prefetch failed", exc_info=True)

        self._chooser.submit(job)

    def prefetch(self, url: str, eb_ids: Iterable[int]) -> int:
        """Queue background builds for EBs not cached or in flight; returns how many were queued."""
        queued = 0
        for eb_id in eb_ids:
            key = (url, int(eb_id))
            with self._lock:
                if key in self._items or key in self._pending:
                    continue
            pool = self._worker_pool()
            if self._processes:
                future = pool.submit(_build_in_worker, url, int(eb_id))
            else:
                future = pool.submit(self._build_here, key)
            with self._lock:
                self._pending[key] = future
            future.add_done_callback(functools.partial(self._done, key))
            queued += 1
        return queued

    def _build_here(self, key: tuple[str, int]) -> ReviewBundle:
        return build_bundle(engine=self._engine_for(key[0]), eb_id=key[1])

    def _done(self, key: tuple[str, int], future: Future[ReviewBundle]) -> None:
        with self._lock:
            self._pending.pop(key, None)
            if not future.cancelled() and future.exception() is None:
                self._store(key, future.result())
            else:
                log.debug("prefetch of %s failed: %s", key, future.exception())

    def _store(self, key: tuple[str, int], item: ReviewBundle) -> None:
        self._items[key] = item
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def forget(self, url: str | None = None) -> None:
        """Drop cached bundles (of one database, or all), e.g. after an import changed EBs."""
        with self._lock:
            for key in [k for k in self._items if url is None or k[0] == url]:
                del self._items[key]

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Block until queued prefetches finished (tests and benchmarks)."""
        self._chooser.submit(lambda: None).result(timeout=timeout)
        with self._lock:
            pending = list(self._pending.values())
        for future in pending:
            try:
                future.result(timeout=timeout)
            except Exception:  # noqa: BLE001
                pass

    def close(self) -> None:
        """Stop the background workers."""
        self._chooser.shutdown(wait=False, cancel_futures=True)
        if self._workers is not None:
            self._workers.shutdown(wait=False, cancel_futures=True)


# --- which EBs to prefetch -------------------------------------------------------------------------


def likely_next(*, engine: Engine, labeler: str, strategy: str | None, k: int = 1) -> list[int]:
    """EBs the queue will most probably hand this AoD next: assign.peek_next, the queue's own answer."""
    from qa0_label.queue import assign

    return assign.peek_next(engine=engine, labeler=labeler, strategy=strategy, k=k)
