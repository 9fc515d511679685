"""The queue's one rule from auto-QA0: a model pick never goes to an EB the model may decide alone.

Overlap, gold and random picks do not use it, so AoDs still check a sample of what the model decides alone.
Kept apart from the calibration code so that `next` imports no scientific library.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists

from qa0_label.store.models import AutoDecision


def not_auto_decided(eb_col: Any, run_param: Any) -> Any:
    """SQL condition: the EB is not one the run's model may decide alone (for the queue's candidate queries)."""
    return ~exists().where(AutoDecision.run_id == run_param, AutoDecision.eb_id == eb_col)
