"""Data page uploads (AppTest drives st.file_uploader): import, refusal shown as a table, size limit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from qa0_label.ingest import upload_problem
from qa0_label.store.db import dispose_engines, get_engine

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")
GOOD = (
    "uid,source,band,start_time,wind_ms,comment\n"
    "uid://A002/X1/X1,J1256-0547,B3,2024-05-01T03:12:00Z,3.5,fine\n"
    "uid://A002/X1/X2,J0319+4130,Band 6,2024-05-01 04:00:00,7,\n"
).encode()
BAD = (
    "uid,source,band,start_time,pwv_mm\n"
    "uid://A002/X1/X1,J1256-0547,B99,2024-05-01T03:12:00Z,0.9\n"
    "uid://A002/X1/X2,J0319+4130,3,yesterday,-1\n"
).encode()


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty database the app uses."""
    url = f"sqlite:///{tmp_path / 'app.sqlite'}"
    monkeypatch.setenv("QA0_DATABASE_URL", url)
    monkeypatch.setenv("QA0_SEED_DEMO", "0")
    monkeypatch.setenv("QA0_AUTO_RETRAIN", "0")
    monkeypatch.setenv("QA0_PREFETCH", "0")
    monkeypatch.setenv("QA0_MODEL_DIR", str(tmp_path / "models"))
    yield url
    dispose_engines()


def _upload(name: str, data: bytes) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.query_params["labeler"] = "t_aod"
    at.session_state["qa0_confirmed_new_name"] = "t_aod"  # as if 'Yes, create' was clicked
    at.switch_page("qa0_label/ui/data.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.file_uploader(key="qa0-up-ebs").set_value((name, data, "text/csv"))
    next(b for b in at.button if b.label == "Import").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _count(url: str) -> int:
    with get_engine(url).connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM execution_block")).scalar_one())


def test_upload_imports_and_lists_extra_and_ignored_columns(db_url: str) -> None:
    at = _upload("ebs.csv", GOOD)
    assert [s.value for s in at.success] == ["Import finished."]
    summary = at.dataframe[-1].value
    assert summary["inserted"].tolist() == [2]
    assert summary["extra_columns"].tolist() == ["wind_ms"] and summary["ignored_columns"].tolist() == ["comment"]
    assert _count(db_url) == 2
    # The Browse section, drawn above the form, already counts the new EBs (no stale "0 EBs match").
    assert "2 EBs match" in [c.value for c in at.caption], [c.value for c in at.caption]


def test_refused_upload_shows_every_problem_as_a_table(db_url: str) -> None:
    at = _upload("bad.csv", BAD)
    assert [e.value for e in at.error] == ["Nothing was imported: 3 problems found."]
    problems = at.dataframe[-1].value
    assert problems[["row", "column"]].values.tolist() == [[2, "band"], [3, "start_time"], [3, "pwv_mm"]]
    assert set(problems["file"]) == {"bad.csv"} and "unknown band 'B99'" in problems["reason"].iloc[0]
    assert _count(db_url) == 0
    # Full width: the table sits in the page's main block, not in the upload form's column.
    top_level = [n for n in at.main.children.values() if type(n).__name__ == "Dataframe"]
    assert any("reason" in n.value.columns for n in top_level), "the problem table is a top-level element"


def test_oversized_upload_is_refused_before_reading(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA0_MAX_UPLOAD_MB", "0.0001")  # about 100 bytes
    at = _upload("ebs.csv", GOOD)
    assert [e.value for e in at.error] == ["Nothing was imported: 1 problem found."]
    reason = at.dataframe[-1].value["reason"].iloc[0]
    assert "uploads are limited to 0.0001 MB" in reason and "python -m qa0_label import" in reason
    assert _count(db_url) == 0


def test_upload_problem_names_size_and_limit() -> None:
    assert upload_problem(name="a.csv", size=10, limit_mb=1) is None
    assert upload_problem(name="a.csv", size=None, limit_mb=1) is None
    problem = upload_problem(name="a.csv", size=3 * 1024 * 1024, limit_mb=2)
    assert problem is not None and str(problem) == (
        "a.csv: the file is 3.0 MB; uploads are limited to 2 MB (import larger files with the command line: "
        "python -m qa0_label import PATH)"
    )
