"""`show UID [--json]`: the review page's header values and warnings for one EB, from the same library call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from qa0_label import cli
from qa0_label.review import view
from qa0_label.sim.simulate import simulate
from qa0_label.store.db import get_engine, session_scope


@pytest.fixture
def seeded(db_url: str) -> str:
    simulate(engine=get_engine(db_url), n=40, seed=4)
    return db_url


def _uid_with(db_url: str, value: str) -> str:
    with get_engine(db_url).connect() as conn:
        return str(
            conn.execute(
                text(
                    "SELECT e.uid FROM execution_block e JOIN reference_outcome r ON r.eb_id = e.id "
                    "WHERE r.value = :v ORDER BY e.id LIMIT 1"
                ),
                {"v": value},
            ).scalar_one()
        )


def test_show_json_is_the_page_header_and_its_warnings(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    uid = _uid_with(seeded, "Fail")
    assert cli.main(["--db", seeded, "show", uid, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    with session_scope(get_engine(seeded)) as session:
        eb_id = session.connection().execute(text("SELECT id FROM execution_block WHERE uid = :u"), {"u": uid}).scalar()
        page = view.eb_header(session=session, eb_id=eb_id)
    assert out["uid"] == uid and out["band"] == page["band"] and out["n_antennas"] == page["n_antennas"]
    assert out["tsys_vs_expected"] == page["tsys_vs_expected"] and out["tsys_expected_k"] > 0
    assert out["phase_rms_warn_deg"] == page["phase_rms_warn_deg"]
    assert out["start_time"] == page["start_time"].isoformat()
    # Exactly the warnings the page shows, in its order, as {field, level, text}.
    assert out["warnings"] == [
        {"field": f, "level": page["warning_levels"][f], "text": t} for f, t in page["warnings"].items()
    ]
    assert all(set(w) == {"field", "level", "text"} and w["level"] in ("warn", "bad") for w in out["warnings"])
    assert "warning_levels" not in out and "warning_list" not in out


def test_show_text_lists_values_and_warnings(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    uid = _uid_with(seeded, "Pass")
    assert cli.main(["--db", seeded, "show", uid]) == 0
    out = capsys.readouterr().out
    assert f"uid: {uid}" in out and "tsys_vs_expected:" in out and "pwv_limit_mm:" in out
    assert "warnings: none" in out or any(line.startswith(("WARN", "BAD")) for line in out.splitlines())


def test_show_unknown_uid_exits_2_naming_it(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--db", seeded, "show", "uid://A002/X1/Xdead", "--json"]) == 2
    err = capsys.readouterr().err
    assert "uid://A002/X1/Xdead" in err and "Traceback" not in err


def test_show_runs_as_a_module(seeded: str, tmp_path: Path) -> None:
    if not seeded.startswith("sqlite"):
        pytest.skip("one backend is enough for the subprocess round trip")
    uid = _uid_with(seeded, "Pass")
    done = subprocess.run(
        [sys.executable, "-m", "qa0_label", "--db", seeded, "show", uid, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["uid"] == uid
