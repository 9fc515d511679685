"""A small pool where auto-QA0 can certify something: simulated EBs, labels equal to the hidden reference."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import text

from qa0_label.config import Settings
from qa0_label.learning.training import retrain
from qa0_label.store.db import dispose_engines, get_engine, session_scope
from qa0_label.store.labels import get_or_create_labeler, record_label

LEAD = "t_lead"
ALPHA = 0.1


def build(path: Path, *, n: int = 600, labelled: int = 420, alpha: float | None = ALPHA) -> Path:
    """Simulate N EBs, label LABELLED of them with their reference value (one AoD), set alpha, retrain."""
    from qa0_label.automation import runs
    from qa0_label.sim.simulate import simulate

    url = f"sqlite:///{path}"
    engine = get_engine(url)
    simulate(engine=engine, n=n, seed=11, details_for=n)
    with session_scope(engine, write=True) as s:
        rows = s.connection().execute(text("SELECT eb_id, value FROM reference_outcome ORDER BY eb_id")).all()
        get_or_create_labeler(session=s, name=LEAD, role="lead")
        for eb_id, value in rows[:labelled]:
            record_label(session=s, eb_id=int(eb_id), labeler="t_truth", value=str(value))
    if alpha is not None:
        runs.change_alpha(engine=engine, lead=LEAD, alpha=alpha)
    settings = Settings(database_url=url, model_dir=path.parent / "models")
    retrain(engine=engine, settings=settings, trigger="test")
    engine.dispose()
    dispose_engines()
    return path


def copy(template: Path, dest_dir: Path) -> str:
    """A private copy of a built pool (database and model files); returns its URL."""
    dest = dest_dir / template.name
    shutil.copyfile(template, dest)
    shutil.copytree(template.parent / "models", dest_dir / "models", dirs_exist_ok=True)
    return f"sqlite:///{dest}"
