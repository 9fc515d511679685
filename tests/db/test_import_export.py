"""Import into a real database (all or nothing, re-import, archive labels, details) and label export."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, select

import qa0_label.ingest as ingest
from qa0_label.ingest import (
    ImportRefused,
    columns,
    export_labels,
    export_labels_frame,
    import_file,
    import_frames,
    write,
)
from qa0_label.store import labels
from qa0_label.store.db import session_scope
from qa0_label.store.models import EBDetail, ExecutionBlock, Label, Labeler


def eb_row(i: int, **override: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "uid": f"uid://A002/X10d9399/X{i:x}",
        "source": "J1256-0547",
        "band": "B3",
        "start_time": f"2024-05-01T03:{i % 60:02d}:00",
        "pwv_mm": "0.9",
        "n_antennas": "43",
        "elevation_deg": "55",
        "qa0_status": "pass",
    }
    row.update(override)
    return row


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> Path:
    columns = columns or list(rows[0])
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row.get(c, "") for c in columns])
    return path


def detail_rows(uid: str, n_ant: int = 3, tsys: float = 80.0) -> list[dict[str, Any]]:
    return [
        {"uid": uid, "antenna": f"DA{41 + a}", "spw": str(s), "scan": "1", "tsys_k": str(tsys + a), "flagged": ""}
        for a in range(n_ant)
        for s in range(2)
    ]


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order: 'unchanged' means this is equal."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            order = ", ".join(c.name for c in table.primary_key.columns)
            out[table.name] = [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table.name} ORDER BY {order}"))]
    return out


def ebs_by_uid(engine: Engine) -> dict[str, ExecutionBlock]:
    with session_scope(engine) as s:
        return {eb.uid: eb for eb in s.exec(select(ExecutionBlock)).all()}


def archive_events(engine: Engine) -> list[tuple[str, str]]:
    with session_scope(engine) as s:
        rows = s.exec(
            select(ExecutionBlock.uid, Label.value)
            .join(Label, Label.eb_id == ExecutionBlock.id)
            .join(Labeler, Labeler.id == Label.labeler_id)
            .where(Labeler.name == "archive")
            .order_by(Label.id)
        ).all()
    return [(u, v) for u, v in rows]


# --- importing -------------------------------------------------------------------------------


def test_import_stores_typed_values_extras_and_archive_labels(engine: Engine, tmp_path: Path) -> None:
    rows = [
        eb_row(1, start_time="2024-05-01T05:12:00+02:00", wind_ms="3.5", notes="gusty"),
        eb_row(2, band="ALMA_RB_07", qa0_status="SEMIPASS", pwv_mm="", wind_ms="", notes=""),
        eb_row(3, qa0_status=""),
    ]
    summary = import_file(engine=engine, path=write_csv(tmp_path / "ebs.csv", rows))
    assert summary == {
        "inserted": 3,
        "updated": 0,
        "labels_added": 2,
        "detail_rows": 0,
        "extra_columns": ["wind_ms"],
        "ignored_columns": ["notes"],
    }
    ebs = ebs_by_uid(engine)
    first, second = ebs[rows[0]["uid"]], ebs[rows[1]["uid"]]
    assert first.start_time == datetime(2024, 5, 1, 3, 12, tzinfo=timezone.utc)
    assert (first.band, second.band) == (3, 7)
    assert first.extra == {"wind_ms": 3.5} and second.extra is None
    assert second.pwv_mm is None and first.pwv_mm == pytest.approx(0.9) and first.n_antennas == 43
    assert archive_events(engine) == [(rows[0]["uid"], "Pass"), (rows[1]["uid"], "SemiPass")]
    with session_scope(engine) as s:
        archive = s.exec(select(Labeler).where(Labeler.name == "archive")).one()
        assert {e.kind for e in s.exec(select(Label)).all()} == {"review"}
        assert archive.role == "aod"
    with engine.connect() as conn:
        # An EB without extras holds SQL NULL, not the JSON text 'null'.
        assert conn.execute(text("SELECT COUNT(*) FROM execution_block WHERE extra IS NULL")).scalar() == 2


def test_identical_duplicate_rows_are_imported_once(engine: Engine, tmp_path: Path) -> None:
    rows = [eb_row(1), eb_row(1, band="3"), eb_row(2)]
    summary = import_file(engine=engine, path=write_csv(tmp_path / "ebs.csv", rows))
    assert (summary["inserted"], summary["labels_added"]) == (2, 2)
    assert len(ebs_by_uid(engine)) == 2


@pytest.mark.parametrize(
    "bad",
    [
        {"band": "X12"},
        {"start_time": "not a time"},
        {"pwv_mm": "-1"},
        {"qa0_status": "Maybe"},
        {"uid": "u" * 65},
    ],
)
def test_refused_file_leaves_the_database_unchanged(engine: Engine, tmp_path: Path, bad: dict[str, str]) -> None:
    import_file(engine=engine, path=write_csv(tmp_path / "first.csv", [eb_row(1), eb_row(2)]))
    before = snapshot(engine)
    rows = [eb_row(1, pwv_mm="2.0", qa0_status="fail"), eb_row(3), eb_row(4, **bad)]
    with pytest.raises(ImportRefused) as info:
        import_file(engine=engine, path=write_csv(tmp_path / "second.csv", rows))
    assert info.value.problems[0].row == 4
    assert snapshot(engine) == before


def test_bad_details_file_refuses_the_eb_file_too(engine: Engine, tmp_path: Path) -> None:
    before = snapshot(engine)
    ebs = write_csv(tmp_path / "ebs.csv", [eb_row(1)])
    details = write_csv(tmp_path / "det.csv", detail_rows(eb_row(1)["uid"]) + detail_rows("uid://nowhere", 1))
    with pytest.raises(ImportRefused) as info:
        import_file(engine=engine, path=ebs, details_path=details)
    (p,) = info.value.problems
    assert (p.file, p.row, p.column) == (str(details), 8, "uid")
    assert snapshot(engine) == before


def test_failure_while_writing_rolls_everything_back(engine: Engine, tmp_path: Path) -> None:
    import_file(engine=engine, path=write_csv(tmp_path / "first.csv", [eb_row(1)]))
    before = snapshot(engine)

    def explode(fraction: float, message: str) -> None:
        if message == "labels":  # EB rows are written by now, the labels are not
            raise RuntimeError("disk full")

    rows = [eb_row(1, pwv_mm="5"), eb_row(2), eb_row(3)]
    with pytest.raises(RuntimeError, match="disk full"):
        import_file(engine=engine, path=write_csv(tmp_path / "second.csv", rows), progress=explode)
    assert snapshot(engine) == before


def test_reimport_updates_rows_without_duplicates(engine: Engine, tmp_path: Path) -> None:
    rows = [eb_row(1, wind_ms="1", seeing="0.5"), eb_row(2, wind_ms="2", seeing="0.6")]
    import_file(engine=engine, path=write_csv(tmp_path / "a.csv", rows))
    ids_before = {u: eb.id for u, eb in ebs_by_uid(engine).items()}
    # The second file changes values, drops pwv_mm and seeing, and empties one wind value.
    again = [eb_row(1, source="J0319+4130", wind_ms=""), eb_row(2, n_antennas="40", wind_ms="7"), eb_row(3)]
    columns = ["uid", "source", "band", "start_time", "n_antennas", "elevation_deg", "qa0_status", "wind_ms"]
    summary = import_file(engine=engine, path=write_csv(tmp_path / "b.csv", again, columns))
    assert (summary["inserted"], summary["updated"]) == (1, 2)
    ebs = ebs_by_uid(engine)
    assert len(ebs) == 3
    assert {u: ebs[u].id for u in ids_before} == ids_before
    one, two = ebs[rows[0]["uid"]], ebs[rows[1]["uid"]]
    assert one.source == "J0319+4130" and two.n_antennas == 40
    assert one.pwv_mm == pytest.approx(0.9)  # a column the new file lacks keeps its value
    assert one.extra == {"seeing": 0.5}  # wind_ms emptied, seeing kept
    assert two.extra == {"seeing": 0.6, "wind_ms": 7.0}


def test_archive_labels_are_not_duplicated_and_revisions_append(engine: Engine, tmp_path: Path) -> None:
    uid = eb_row(1)["uid"]
    path = write_csv(tmp_path / "ebs.csv", [eb_row(1), eb_row(2, qa0_status="Fail")])
    assert import_file(engine=engine, path=path)["labels_added"] == 2
    assert import_file(engine=engine, path=path)["labels_added"] == 0
    assert len(archive_events(engine)) == 2
    changed = write_csv(tmp_path / "changed.csv", [eb_row(1, qa0_status="SemiPass"), eb_row(2, qa0_status="")])
    assert import_file(engine=engine, path=changed)["labels_added"] == 1
    back = write_csv(tmp_path / "back.csv", [eb_row(1, qa0_status="PASS")])
    assert import_file(engine=engine, path=back)["labels_added"] == 1
    assert import_file(engine=engine, path=back)["labels_added"] == 0
    assert [v for u, v in archive_events(engine) if u == uid] == ["Pass", "SemiPass", "Pass"]
    with session_scope(engine) as s:
        current = labels.current_labels(s)
        ids = s.exec(select(Label.client_event_id).order_by(Label.id)).all()
    assert sorted(current["value"]) == ["Fail", "Pass"]
    assert len(set(ids)) == len(ids)
    assert ids[0] == f"archive:{uid}:Pass"


def test_long_uid_keeps_event_id_within_the_column(engine: Engine, tmp_path: Path) -> None:
    uid = "uid://" + "X" * 58
    import_file(engine=engine, path=write_csv(tmp_path / "ebs.csv", [eb_row(1, uid=uid, qa0_status="semipass")]))
    with session_scope(engine) as s:
        (event_id,) = s.exec(select(Label.client_event_id)).all()
    assert event_id is not None and len(event_id) <= 64 and event_id.endswith(":SemiPass")


def test_details_are_imported_and_replaced_per_uid(engine: Engine, tmp_path: Path) -> None:
    u1, u2 = eb_row(1)["uid"], eb_row(2)["uid"]
    ebs = write_csv(tmp_path / "ebs.csv", [eb_row(1), eb_row(2)])
    det = write_csv(tmp_path / "det.csv", detail_rows(u1, 3) + detail_rows(u2, 2))
    assert import_file(engine=engine, path=ebs, details_path=det)["detail_rows"] == 10
    # New details for u1 only: u1's rows are replaced, u2's stay. The EB file may name only u1 ...
    det2 = write_csv(tmp_path / "det2.csv", detail_rows(u1, 1, tsys=200.0))
    summary = import_file(engine=engine, path=write_csv(tmp_path / "one.csv", [eb_row(1)]), details_path=det2)
    assert summary["detail_rows"] == 2
    # ... or another EB entirely: a detail uid may be one already in the database.
    det3 = write_csv(tmp_path / "det3.csv", detail_rows(u2, 1, tsys=300.0))
    import_file(engine=engine, path=write_csv(tmp_path / "three.csv", [eb_row(3)]), details_path=det3)
    with session_scope(engine) as s:
        ids = {eb.uid: eb.id for eb in s.exec(select(ExecutionBlock)).all()}
        rows = s.exec(select(EBDetail).order_by(EBDetail.id)).all()
    by_eb: dict[int, list[float | None]] = {}
    for r in rows:
        by_eb.setdefault(r.eb_id, []).append(r.tsys_k)
    assert by_eb == {ids[u1]: [200.0, 200.0], ids[u2]: [300.0, 300.0]}
    assert all(r.flagged is False and r.antenna == "DA41" for r in rows)


def test_parquet_import_matches_csv_import(engine: Engine, tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "uid": ["p1", "p2"],
            "source": ["J1924-2914", "J1924-2914"],
            "band": [6, 7],
            "start_time": pd.to_datetime(["2024-02-01T00:00:00", "2024-02-01T01:00:00"]),
            "n_antennas": [45, 46],
            "pwv_mm": [0.4, None],
            "qa0_status": ["Pass", None],
            "wind": [1.5, 2.5],
        }
    )
    frame.to_parquet(tmp_path / "ebs.parquet", index=False)
    details = pd.DataFrame(
        {
            "uid": ["p1", "p1"],
            "antenna": ["DV01", "DV02"],
            "spw": [0, 0],
            "scan": [1, 1],
            "amplitude": [5.5, 5.6],
            "flagged": [False, True],
        }
    )
    details.to_parquet(tmp_path / "det.parquet", index=False)
    summary = import_file(engine=engine, path=tmp_path / "ebs.parquet", details_path=tmp_path / "det.parquet")
    assert (summary["inserted"], summary["labels_added"], summary["detail_rows"]) == (2, 1, 2)
    ebs = ebs_by_uid(engine)
    assert ebs["p1"].start_time == datetime(2024, 2, 1, tzinfo=timezone.utc)
    assert (ebs["p1"].band, ebs["p2"].band, ebs["p2"].pwv_mm) == (6, 7, None)
    assert ebs["p2"].extra == {"wind": 2.5}
    with session_scope(engine) as s:
        assert [d.flagged for d in s.exec(select(EBDetail).order_by(EBDetail.id)).all()] == [False, True]


def test_import_frames_reports_progress_and_accepts_in_memory_frames(engine: Engine) -> None:
    seen: list[tuple[float, str]] = []
    frame = pd.DataFrame([eb_row(i) for i in range(1, 6)])
    summary = import_frames(engine=engine, ebs=frame, progress=lambda f, m: seen.append((f, m)))
    assert summary["inserted"] == 5
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and seen[-1] == (1.0, "done")
    with pytest.raises(ImportRefused) as info:
        import_frames(engine=engine, ebs=pd.DataFrame([eb_row(9, band="B99")]), ebs_name="upload.csv")
    assert str(info.value).startswith("upload.csv: line 2, column band: unknown band 'B99'")


def test_large_file_takes_the_bulk_paths(engine: Engine, tmp_path: Path) -> None:
    n = columns.FULL_SCAN_OVER + 500
    rows = [eb_row(i, qa0_status=("Pass", "Fail", "SemiPass", "")[i % 4]) for i in range(n)]
    path = write_csv(tmp_path / "big.csv", rows)
    first = import_file(engine=engine, path=path)
    assert (first["inserted"], first["labels_added"]) == (n, n - n // 4)
    again = import_file(engine=engine, path=path)
    assert (again["inserted"], again["updated"], again["labels_added"]) == (0, n, 0)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM execution_block")).scalar() == n


# --- exporting -------------------------------------------------------------------------------


def _labelled(engine: Engine, tmp_path: Path) -> list[str]:
    rows = [eb_row(1), eb_row(2, qa0_status="")]
    import_file(engine=engine, path=write_csv(tmp_path / "ebs.csv", rows))
    uids = [r["uid"] for r in rows]
    with session_scope(engine) as s:
        eb1 = labels.eb_id_for_uid(session=s, uid=uids[0])
        eb2 = labels.eb_id_for_uid(session=s, uid=uids[1])
        labels.record_label(session=s, eb_id=eb1, labeler="ana", value="Fail", comment='=HYPERLINK("http://x","y")')
        labels.record_label(
            session=s, eb_id=eb1, labeler="ana", value="SemiPass", comment="-2 dB ripple", seconds_on_eb=42.5
        )
        labels.record_label(session=s, eb_id=eb2, labeler="bo", value="Pass", comment="@home")
        labels.undo_last(session=s, labeler="bo")
    return uids


def test_export_events_and_current_labels(engine: Engine, tmp_path: Path) -> None:
    uids = _labelled(engine, tmp_path)
    events = export_labels_frame(engine=engine)
    assert list(events.columns) == ingest.EXPORT_COLUMNS
    assert events[["uid", "labeler", "value", "kind"]].values.tolist() == [
        [uids[0], "archive", "Pass", "review"],
        [uids[0], "ana", "Fail", "review"],
        [uids[0], "ana", "SemiPass", "review"],
        [uids[1], "bo", "Pass", "review"],
        [uids[1], "bo", None, "undo"],
    ]
    assert events["created_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z").all()
    assert events["seconds_on_eb"].iloc[2] == 42.5
    current = export_labels_frame(engine=engine, current=True)
    assert current[["uid", "labeler", "value"]].values.tolist() == [
        [uids[0], "archive", "Pass"],
        [uids[0], "ana", "SemiPass"],
    ]


def test_csv_export_neutralises_formulas_and_parquet_keeps_text(engine: Engine, tmp_path: Path) -> None:
    _labelled(engine, tmp_path)
    out = tmp_path / "out" / "labels.csv"
    assert export_labels(engine=engine, out=out) == 5
    back = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert back["comment"].tolist() == ["", '\'=HYPERLINK("http://x","y")', "'-2 dB ripple", "'@home", ""]
    assert not any(c.startswith(("=", "+", "-", "@")) for col in back.columns for c in back[col])
    parquet = tmp_path / "labels.parquet"
    assert export_labels(engine=engine, out=parquet, current=True) == 2
    frame = pd.read_parquet(parquet)
    assert list(frame.columns) == ingest.EXPORT_COLUMNS
    assert pd.isna(frame["comment"].iloc[0]) and frame["comment"].iloc[1] == "-2 dB ripple"
    assert sorted(p.name for p in tmp_path.rglob("*partial*")) == []


def test_export_of_an_empty_database(engine: Engine, tmp_path: Path) -> None:
    out = tmp_path / "none.csv"
    assert export_labels(engine=engine, out=out) == 0
    assert out.read_text().strip() == ",".join(ingest.EXPORT_COLUMNS)


def test_export_refuses_other_extensions(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        export_labels(engine=engine, out=tmp_path / "labels.xlsx")


def test_spreadsheet_safe_only_touches_leading_formula_characters() -> None:
    frame = pd.DataFrame({"t": ["=1+1", "+x", "-y", "@z", "\tq", "\rr", "a=b", None], "n": [-1, 2, 3, 4, 5, 6, 7, 8]})
    safe = ingest.spreadsheet_safe(frame)
    assert safe["t"].tolist()[:7] == ["'=1+1", "'+x", "'-y", "'@z", "'\tq", "'\rr", "a=b"]
    assert pd.isna(safe["t"].iloc[7])
    assert safe["n"].tolist() == frame["n"].tolist()
    assert frame["t"].iloc[0] == "=1+1"  # the input is not modified


def test_created_at_is_utc_iso(engine: Engine, tmp_path: Path) -> None:
    _labelled(engine, tmp_path)
    with session_scope(engine) as s:
        newest = s.exec(select(Label).order_by(Label.id.desc())).first()
        assert newest is not None
        expected = newest.created_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert export_labels_frame(engine=engine)["created_at"].iloc[-1] == expected


def test_reading_an_upload_stream(engine: Engine) -> None:
    buf = io.BytesIO()
    pd.DataFrame([eb_row(1)]).to_csv(buf, index=False)
    buf.seek(0)
    frame = ingest.read_table(buf, name="upload.csv")
    assert import_frames(engine=engine, ebs=frame, ebs_name="upload.csv")["inserted"] == 1


def test_uid_inserted_by_another_process_meanwhile_is_updated_not_duplicated(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_file(engine=engine, path=write_csv(tmp_path / "first.csv", [eb_row(1)]))
    real = write._uid_ids
    calls = {"n": 0}

    def stale(conn: Any, uids: Any) -> dict[str, int]:
        # The first look-up inside the write misses the row, as if another import committed it just after.
        calls["n"] += 1
        return {} if calls["n"] == 1 else real(conn, uids)

    monkeypatch.setattr(write, "_uid_ids", stale)
    summary = import_file(engine=engine, path=write_csv(tmp_path / "again.csv", [eb_row(1, pwv_mm="3"), eb_row(2)]))
    assert (summary["inserted"], summary["updated"]) == (1, 1)
    ebs = ebs_by_uid(engine)
    assert len(ebs) == 2 and ebs[eb_row(1)["uid"]].pwv_mm == 3.0


def test_on_disk_uid_spelling_updates_the_same_eb(engine, tmp_path) -> None:
    first = tmp_path / "a.csv"
    first.write_text("uid,source,band,start_time\nuid://A002/X10d9399/Xae5e,J1256-0547,3,2024-01-01T00:00:00Z\n")
    second = tmp_path / "b.csv"
    second.write_text(
        "uid,source,band,start_time,pwv_mm\nuid___A002_X10d9399_Xae5e,J1256-0547,B3,2024-01-01T00:00:00,0.8\n"
    )
    ingest.import_file(engine=engine, path=first)
    summary = ingest.import_file(engine=engine, path=second)
    assert summary["updated"] == 1 and summary["inserted"] == 0
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT uid, pwv_mm FROM execution_block")).fetchall()
    assert [tuple(r) for r in rows] == [("uid://A002/X10d9399/Xae5e", 0.8)]
