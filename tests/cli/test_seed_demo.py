"""`python -m qa0_label seed-demo`: what `make run` does before the server listens (same function as the app)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from qa0_label import cli
from qa0_label.sim import demo as sim
from qa0_label.store.db import get_engine


def _counts(db_url: str) -> tuple[int, int, list[tuple[str, str]]]:
    with get_engine(db_url).connect() as conn:
        ebs = conn.execute(text("SELECT COUNT(*) FROM execution_block")).scalar_one()
        labels = conn.execute(text("SELECT COUNT(*) FROM label")).scalar_one()
        leads = conn.execute(text("SELECT name, role FROM labeler WHERE role = 'lead'")).fetchall()
    return int(ebs), int(labels), [tuple(r) for r in leads]


@pytest.fixture
def small_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real demo is 3,000 EBs (~10 s); the command and the idempotence are the same at 40.
    monkeypatch.setattr(sim, "DEMO_EBS", 40)
    monkeypatch.setattr(sim, "DEMO_LABELS", 30)
    monkeypatch.delenv("QA0_SEED_DEMO", raising=False)


def test_seed_demo_seeds_once_with_a_progress_bar(
    db_url: str, small_demo: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--db", db_url, "seed-demo"]) == 0
    err = capsys.readouterr().err
    assert "100%" in err and "[" + "#" * 30 + "]" in err, "a terminal progress bar reaches 100 %"
    ebs, labels, leads = _counts(db_url)
    assert ebs == 40 and labels == 30
    assert leads == [(sim.LEAD_NAME, "lead")]
    assert cli.main(["--db", db_url, "seed-demo"]) == 0
    assert "nothing to do" in capsys.readouterr().err
    assert _counts(db_url) == (ebs, labels, leads), "a second run changes nothing"


def test_seed_demo_respects_qa0_seed_demo_off(
    db_url: str, small_demo: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QA0_SEED_DEMO", "0")
    assert cli.main(["--db", db_url, "seed-demo"]) == 0
    assert "off" in capsys.readouterr().err
    assert _counts(db_url)[0] == 0
    assert cli.main(["--db", db_url, "seed-demo", "--force", "--quiet"]) == 0
    assert _counts(db_url)[0] == 40
