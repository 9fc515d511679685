"""Chunked (streaming) import: blocks join into exactly what a one-block import writes, whole-file rules
(duplicate uids, numeric extra columns, unknown detail uids) hold across blocks, and a problem in the last
block rolls every block back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from qa0_label.ingest import ImportRefused, import_file
from qa0_label.ingest import columns as ingest
from qa0_label.store.db import init_db, make_engine
from tests.db.test_import_export import detail_rows, eb_row, snapshot, write_csv

N_BIG = 50_000
TINY = 3_001  # rows per block: 17 blocks, the last one short


def _contents(engine: Engine) -> list[tuple[Any, ...]]:
    """EB rows and archive labels without ids and import times (those differ between two databases)."""
    with engine.connect() as conn:
        ebs = conn.execute(
            text(
                "SELECT uid, source, band, start_time, pwv_mm, n_antennas, elevation_deg, extra "
                "FROM execution_block ORDER BY uid"
            )
        ).fetchall()
        labels = conn.execute(
            text(
                "SELECT e.uid, l.value, l.client_event_id FROM label l JOIN execution_block e ON e.id = l.eb_id "
                "ORDER BY e.uid, l.id"
            )
        ).fetchall()
    return [tuple(r) for r in ebs] + [tuple(r) for r in labels]


def _big_rows(n: int) -> list[dict[str, Any]]:
    statuses = ("Pass", "Fail", "SemiPass", "")
    return [eb_row(i, qa0_status=statuses[i % 4], wind_ms=str(i % 17), note="n" if i % 3 else "") for i in range(n)]


def test_many_small_blocks_write_what_one_block_writes(db_url: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "big.csv", _big_rows(N_BIG))
    seen: list[tuple[float, str]] = []
    chunked = make_engine(db_url)
    init_db(chunked)
    summary = import_file(engine=chunked, path=path, chunk_rows=TINY, progress=lambda f, m: seen.append((f, m)))
    assert (summary["inserted"], summary["updated"], summary["labels_added"]) == (N_BIG, 0, N_BIG - N_BIG // 4)
    assert summary["extra_columns"] == ["wind_ms"] and summary["ignored_columns"] == ["note"]
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and seen[-1] == (1.0, "done")
    assert sum(m.startswith("checked") for _, m in seen) >= N_BIG // TINY  # progress moves per block
    if not db_url.startswith("sqlite"):
        return  # the one-block reference database below is a second SQLite file
    whole = make_engine(f"sqlite:///{tmp_path / 'whole.sqlite'}")
    init_db(whole)
    import_file(engine=whole, path=path, chunk_rows=10 * N_BIG)
    assert _contents(chunked) == _contents(whole)
    # A re-import in blocks updates every row and adds no label.
    again = import_file(engine=chunked, path=path, chunk_rows=TINY)
    assert (again["inserted"], again["updated"], again["labels_added"]) == (0, N_BIG, 0)
    assert _contents(chunked) == _contents(whole)


def test_problem_in_the_last_block_rolls_every_block_back(engine: Engine, tmp_path: Path) -> None:
    import_file(engine=engine, path=write_csv(tmp_path / "first.csv", [eb_row(1), eb_row(2, pwv_mm="1.5")]))
    before = snapshot(engine)
    rows = _big_rows(N_BIG // 5)
    rows[-1]["band"] = "B99"
    path = write_csv(tmp_path / "big.csv", rows)
    with pytest.raises(ImportRefused) as info:
        import_file(engine=engine, path=path, chunk_rows=TINY)
    (p,) = info.value.problems
    assert (p.row, p.column) == (len(rows) + 1, "band") and "unknown band 'B99'" in p.message
    assert snapshot(engine) == before


def test_failure_while_writing_a_late_block_rolls_back(engine: Engine, tmp_path: Path) -> None:
    before = snapshot(engine)
    calls = {"n": 0}

    def explode(fraction: float, message: str) -> None:
        if message == "labels":
            calls["n"] += 1
            if calls["n"] == 3:  # two blocks are written by now
                raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        import_file(
            engine=engine, path=write_csv(tmp_path / "b.csv", _big_rows(1_000)), chunk_rows=300, progress=explode
        )
    assert snapshot(engine) == before


def test_duplicate_uid_across_blocks(engine: Engine, tmp_path: Path) -> None:
    rows = [eb_row(i) for i in range(1, 31)]
    same = [*rows, dict(rows[2])]  # line 33 repeats line 4 exactly, 3 blocks later
    summary = import_file(engine=engine, path=write_csv(tmp_path / "same.csv", same), chunk_rows=10)
    assert summary["inserted"] == 30
    before = snapshot(engine)
    differs = [*rows, eb_row(3, pwv_mm="2.5", n_antennas="40")]
    with pytest.raises(ImportRefused) as info:
        import_file(engine=engine, path=write_csv(tmp_path / "differs.csv", differs), chunk_rows=10)
    (p,) = info.value.problems
    assert str(p) == (
        f"{tmp_path / 'differs.csv'}: line 32, column uid: uid 'uid://A002/X10d9399/X3' also appears on line 4 "
        "with different values (in n_antennas, pwv_mm)"
    )
    assert snapshot(engine) == before


def test_numeric_extra_column_is_decided_over_the_whole_file(engine: Engine, tmp_path: Path) -> None:
    # The first block has only words in wind_ms; the file as a whole is mostly numbers: the words are refused,
    # exactly as in a one-block import.
    rows = [eb_row(i, wind_ms="calm" if i <= 10 else str(i)) for i in range(1, 31)]
    path = write_csv(tmp_path / "wind.csv", rows)
    messages = []
    for chunk_rows in (10, 1_000):
        with pytest.raises(ImportRefused) as info:
            import_file(engine=engine, path=path, chunk_rows=chunk_rows)
        messages.append(str(info.value))
        assert len(info.value.problems) == 10
    assert messages[0] == messages[1]
    assert messages[0].startswith(f"{path}: line 2, column wind_ms: 'calm' is not a number")
    # Empty in the first block, numbers later: kept as a feature for every row.
    rows = [eb_row(i, seeing="" if i <= 10 else f"0.{i}") for i in range(1, 31)]
    summary = import_file(engine=engine, path=write_csv(tmp_path / "seeing.csv", rows), chunk_rows=10)
    assert summary["extra_columns"] == ["seeing"] and summary["inserted"] == 30


def test_unknown_detail_uid_is_counted_over_the_whole_file(engine: Engine, tmp_path: Path) -> None:
    ebs = write_csv(tmp_path / "ebs.csv", [eb_row(1), eb_row(2)])
    rows = detail_rows(eb_row(1)["uid"]) + detail_rows("uid://A002/X9/X9", n_ant=10) + detail_rows(eb_row(2)["uid"])
    details = write_csv(tmp_path / "det.csv", rows)
    with pytest.raises(ImportRefused) as info:
        import_file(engine=engine, path=ebs, details_path=details, chunk_rows=7)
    (p,) = info.value.problems
    assert str(p) == (
        f"{details}: line 8, column uid: no EB with uid 'uid://A002/X9/X9' in the EB file or the database "
        "(19 more rows with this uid)"
    )
    good = write_csv(tmp_path / "good.csv", detail_rows(eb_row(1)["uid"], n_ant=20) + detail_rows(eb_row(2)["uid"]))
    summary = import_file(engine=engine, path=ebs, details_path=good, chunk_rows=7)
    assert summary["detail_rows"] == 46
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM eb_detail")).scalar_one() == 46


def test_bad_rows_of_a_huge_file_are_counted_not_all_kept(engine: Engine, tmp_path: Path) -> None:
    rows = [eb_row(i, band="X") for i in range(1, ingest.MAX_KEPT_PROBLEMS + 301)]
    with pytest.raises(ImportRefused) as info:
        import_file(engine=engine, path=write_csv(tmp_path / "bad.csv", rows), chunk_rows=500)
    exc = info.value
    assert len(exc.problems) == ingest.MAX_KEPT_PROBLEMS and exc.omitted == 300
    assert [p.row for p in exc.problems[:3]] == [2, 3, 4]
    assert str(exc).splitlines()[-1] == f"... and {ingest.MAX_KEPT_PROBLEMS + 300 - 20} more problems"
