"""The app's retrain worker runs below the page server's CPU priority."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

from qa0_label.learning import retrain_process


def _niceness() -> int:
    return os.nice(0)


def test_worker_initializer_lowers_priority() -> None:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=retrain_process._lower_priority) as pool:
        assert pool.submit(_niceness).result(timeout=60) >= min(19, os.nice(0) + 10)
