"""The serving model run: the newest finished ("done") run. The one home of that rule.

Its scores and queues are complete, so the queue, the pages, auto-QA0 and the reports all read this run; a
running or failed run is never served.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from qa0_label.store.models import ModelRun


def is_done() -> ColumnElement[bool]:
    """Runs that finished (status 'done')."""
    return col(ModelRun.status) == "done"


def serving_select(*columns: Any) -> Select[Any]:
    """SELECT COLUMNS of the serving run (Core; join other tables onto ModelRun as needed)."""
    return sa_select(*columns).where(is_done()).order_by(col(ModelRun.version).desc()).limit(1)


def serving_run(session: Session) -> ModelRun | None:
    """The serving run as an ORM object, or None before the first finished retrain."""
    return session.exec(select(ModelRun).where(is_done()).order_by(col(ModelRun.version).desc()).limit(1)).first()


def done_runs(session: Session) -> list[ModelRun]:
    """Every finished run, oldest first (model history)."""
    return list(session.exec(select(ModelRun).where(is_done()).order_by(col(ModelRun.version))).all())
