"""Review-view data from the database: header and warnings, spectrum fit, light curve, heatmap, context."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from sqlalchemy.engine import Engine

from qa0_label.review import limits
from qa0_label.review import view as review
from qa0_label.store import labels
from qa0_label.store.db import bulk_insert, session_scope
from qa0_label.store.models import ExecutionBlock

T0 = datetime(2024, 3, 1, 4, 30, tzinfo=timezone.utc)
SPW_FREQ = (91.5, 93.5, 101.5, 103.5)
ANTENNAS = tuple(f"DA{n}" for n in range(41, 47)) + tuple(f"DV{n:02d}" for n in range(1, 7))
DETAIL_COLS = (
    "eb_id",
    "antenna",
    "spw",
    "scan",
    "freq_ghz",
    "time_s",
    "tsys_k",
    "amplitude",
    "phase_deg",
    "bp_ripple_db",
    "flagged",
)

GOOD: dict[str, Any] = dict(
    source="J1256-0547",
    band=3,
    array="12m",
    duration_s=900.0,
    n_antennas=45,
    pwv_mm=1.2,
    elevation_deg=65.0,
    tsys_median_k=60.0,
    phase_rms_deg=12.0,
    flagged_fraction=0.03,
    exec_fraction=1.0,
    freq_ghz=97.5,
    flux_jy=13.6,
    flux_err_jy=0.3,
    spectral_index=-0.55,
    spectral_index_err=0.05,
    expected_flux_jy=13.4,
    expected_flux_err_jy=0.4,
)


def add_eb(
    engine: Engine,
    uid: str,
    *,
    start: datetime = T0,
    details: bool = True,
    s0: float = 13.6,
    alpha: float = -0.55,
    seed: int = 0,
    tsys_factor: dict[str, float] | None = None,
    ripple_spw: dict[int, float] | None = None,
    flag_antenna: str | None = None,
    **fields: Any,
) -> int:
    """Insert one EB (GOOD metrics unless overridden) and, optionally, antenna x spw x scan detail rows."""
    values = {**GOOD, **fields}
    with session_scope(engine) as session:
        eb = ExecutionBlock(uid=uid, start_time=start, **values)
        session.add(eb)
        session.flush()
        eb_id = int(eb.id)
        if details:
            rng = np.random.default_rng(seed)
            rows = []
            for ant in ANTENNAS:
                for spw, freq in enumerate(SPW_FREQ):
                    for scan in range(1, 6):
                        flux = s0 * (freq / 97.5) ** alpha * (1 + 0.01 * rng.standard_normal())
                        tsys = 55.0 * (1 + 0.05 * spw) * (1 + 0.03 * rng.standard_normal())
                        tsys *= (tsys_factor or {}).get(ant, 1.0)
                        ripple = (ripple_spw or {}).get(spw, 0.6) + 0.1 * rng.standard_normal()
                        flagged = ant == flag_antenna
                        rows.append(
                            (
                                eb_id,
                                ant,
                                spw,
                                scan,
                                freq,
                                60.0 * scan,
                                tsys,
                                1000.0 if flagged else flux,
                                float(rng.normal(0, 5)),
                                ripple,
                                flagged,
                            )
                        )
            bulk_insert(session.connection(), "eb_detail", DETAIL_COLS, rows)
    return eb_id


def label(engine: Engine, eb_id: int, *votes: tuple[str, str]) -> None:
    with session_scope(engine, write=True) as session:
        for who, value in votes:
            labels.record_label(session=session, eb_id=eb_id, labeler=who, value=value)


# --- header ------------------------------------------------------------------------------------------


def test_header_has_typed_fields_and_no_warnings_for_a_good_eb(engine) -> None:
    eb = add_eb(engine, "uid://A002/X10d9399/Xae5e")
    with session_scope(engine) as s:
        h = review.eb_header(session=s, eb_id=eb)
    assert h["uid"] == "uid://A002/X10d9399/Xae5e"
    assert h["band"] == 3 and isinstance(h["band"], int) and h["band_name"] == "Band 3"
    assert h["start_time"] == T0 and h["start_time"].utcoffset() == timedelta(0)
    assert h["freq_ghz"] == pytest.approx(97.5)
    assert h["n_antennas"] == 45 and h["array"] == "12m"
    assert h["flux_deviation_sigma"] == pytest.approx((13.6 - 13.4) / math.hypot(0.3, 0.4))
    assert h["n_spw"] == 4 and h["n_scans"] == 5 and h["n_detail_antennas"] == len(ANTENNAS)
    assert h["pwv_limit_mm"] == pytest.approx(limits.pwv_limit_mm(3, 97.5))
    assert h["warnings"] == {} and h["tsys_outliers"] == {} and h["warning_list"] == []
    # The header says how Tsys compares with what the band, PWV and elevation predict.
    assert h["tsys_expected_k"] == pytest.approx(
        limits.expected_tsys_k(3, h["pwv_mm"], h["elevation_deg"], 97.5), abs=0.1
    )
    assert h["tsys_vs_expected"] == pytest.approx(h["tsys_median_k"] / h["tsys_expected_k"], abs=0.01)
    assert (h["phase_rms_warn_deg"], h["phase_rms_bad_deg"]) == pytest.approx(
        limits.phase_rms_limits_deg(3, "12m", 97.5), abs=0.1
    )


def test_header_warns_for_every_metric_past_its_limit(engine) -> None:
    eb = add_eb(
        engine,
        "uid://A002/X1/Xbad",
        pwv_mm=9.0,
        elevation_deg=18.0,
        n_antennas=25,
        exec_fraction=0.6,
        flux_jy=9.0,
        flux_err_jy=0.3,
        phase_rms_deg=70.0,
        flagged_fraction=0.5,
        tsys_factor={"DV03": 3.0},
        ripple_spw={2: 4.5},
    )
    with session_scope(engine) as s:
        h = review.eb_header(session=s, eb_id=eb)
    w = h["warnings"]
    assert set(w) == {
        "pwv_mm",
        "elevation_deg",
        "n_antennas",
        "exec_fraction",
        "flux_jy",
        "phase_rms_deg",
        "flagged_fraction",
        "tsys_outliers",
        "bp_ripple_db",
    }
    assert "DV03" in w["tsys_outliers"] and list(h["tsys_outliers"]) == ["DV03"]
    assert h["tsys_outliers"]["DV03"] == pytest.approx(3.0, rel=0.1)
    assert "spw 2" in w["bp_ripple_db"] and "spw 1" not in w["bp_ripple_db"]
    assert "below" in w["flux_jy"]
    assert h["warning_levels"]["elevation_deg"] == "bad"
    # The same warnings as a list in the page's order (what `show --json` prints).
    assert [(x["field"], x["level"], x["text"]) for x in h["warning_list"]] == [
        (k, h["warning_levels"][k], w[k]) for k in w
    ]


def test_header_falls_back_to_spw_frequency_and_parses_extra(engine) -> None:
    eb = add_eb(engine, "uid://A002/X1/X2", freq_ghz=None, extra={"wind_ms": 7.5})
    with session_scope(engine) as s:
        h = review.eb_header(session=s, eb_id=eb)
    assert h["freq_ghz"] == pytest.approx(np.mean(SPW_FREQ))
    assert h["extra"] == {"wind_ms": 7.5}


def test_unknown_eb_is_a_lookup_error(engine) -> None:
    with session_scope(engine) as s:
        for fn in (review.eb_header, review.spectrum, review.light_curve, review.context):
            with pytest.raises(review.EBNotFound):
                fn(session=s, eb_id=12345)


# --- spectrum ----------------------------------------------------------------------------------------


def test_spectrum_recovers_the_power_law_and_ignores_flagged_rows(engine) -> None:
    eb = add_eb(engine, "uid://A002/X1/X3", s0=5.0, alpha=-0.8, flag_antenna="DA41")
    with session_scope(engine) as s:
        sp = review.spectrum(session=s, eb_id=eb)
    assert list(sp.spw.columns[:4]) == ["spw", "freq_ghz", "flux_jy", "flux_err_jy"]
    assert sp.spw["freq_ghz"].tolist() == pytest.approx(list(SPW_FREQ))
    # The flagged antenna carries 1000 Jy; were it averaged in, every spw would be far above 5 Jy.
    expected = [5.0 * (f / 97.5) ** -0.8 for f in SPW_FREQ]
    assert sp.spw["flux_jy"].tolist() == pytest.approx(expected, rel=0.01)
    assert (sp.spw["n"] == (len(ANTENNAS) - 1) * 5).all()
    assert (sp.spw["flux_err_jy"] > 0).all() and (sp.spw["flux_err_jy"] < 0.05 * sp.spw["flux_jy"]).all()
    assert sp.alpha == pytest.approx(-0.8, abs=0.05)
    assert sp.alpha_err is not None and 0 < sp.alpha_err < 0.1
    assert abs(sp.alpha + 0.8) < 4 * sp.alpha_err + 0.01
    lo, hi = limits.BAND_EDGES_GHZ[3]
    assert sp.fit["freq_ghz"].min() == pytest.approx(lo) and sp.fit["freq_ghz"].max() == pytest.approx(hi)
    assert sp.fit["flux_jy"].is_monotonic_decreasing


def test_expected_band_is_anchored_at_the_eb_frequency_and_widens_away(engine) -> None:
    eb = add_eb(engine, "uid://A002/X1/X4", expected_flux_jy=10.0, expected_flux_err_jy=0.5)
    with session_scope(engine) as s:
        sp = review.spectrum(session=s, eb_id=eb)
    assert sp.expected_alpha == pytest.approx(review.GRID_SOURCE_ALPHA["J1256-0547"])
    e = sp.expected
    at_ref = np.interp(97.5, e["freq_ghz"], e["flux_jy"])
    assert at_ref == pytest.approx(10.0, rel=1e-3)
    width = (e["high"] - e["low"]) / e["flux_jy"]
    assert width.min() == pytest.approx(0.1, rel=0.02)
    assert width.iloc[0] > width.min() and width.iloc[-1] > width.min()
    assert (e["low"] <= e["flux_jy"]).all() and (e["flux_jy"] <= e["high"]).all()


def test_expected_alpha_comes_from_the_sources_history(engine) -> None:
    for i, a in enumerate((-0.3, -0.35, -0.25)):
        add_eb(engine, f"uid://A002/X1/Xh{i}", details=False, spectral_index=a, start=T0 - timedelta(days=10 + i))
    add_eb(engine, "uid://A002/X1/Xother", details=False, source="J0319+4130", spectral_index=-1.0)
    eb = add_eb(engine, "uid://A002/X1/X5")
    with session_scope(engine) as s:
        sp = review.spectrum(session=s, eb_id=eb)
    assert sp.expected_alpha == pytest.approx(-0.3)
    assert sp.expected_alpha_err == pytest.approx(0.05)


def test_spectrum_without_details_or_expectation_is_empty_not_an_error(engine) -> None:
    eb = add_eb(engine, "uid://A002/X1/X6", details=False, expected_flux_jy=None)
    with session_scope(engine) as s:
        sp = review.spectrum(session=s, eb_id=eb)
    assert sp.spw.empty and sp.fit.empty and sp.expected.empty and sp.alpha is None


# --- light curve -------------------------------------------------------------------------------------


def test_light_curve_window_labels_and_blindness(engine) -> None:
    ids = {
        "old": add_eb(engine, "uid://A002/X2/X1", details=False, start=T0 - timedelta(days=400)),
        "pass": add_eb(engine, "uid://A002/X2/X2", details=False, start=T0 - timedelta(days=100)),
        "split": add_eb(engine, "uid://A002/X2/X3", details=False, start=T0 - timedelta(days=50)),
        "adj": add_eb(engine, "uid://A002/X2/X4", details=False, start=T0 - timedelta(days=20)),
        "undone": add_eb(engine, "uid://A002/X2/X5", details=False, start=T0 - timedelta(days=10)),
        "band7": add_eb(engine, "uid://A002/X2/X6", details=False, start=T0 - timedelta(days=5), band=7),
        "other": add_eb(engine, "uid://A002/X2/X7", details=False, start=T0 - timedelta(days=5), source="J1924-2914"),
        "later": add_eb(engine, "uid://A002/X2/X8", details=False, start=T0 + timedelta(days=30)),
    }
    cur = add_eb(engine, "uid://A002/X2/X9", details=False, flux_jy=11.0)
    label(engine, ids["pass"], ("ana", "Pass"), ("ben", "Pass"), ("eva", "Fail"))
    label(engine, ids["split"], ("ana", "Pass"), ("ben", "SemiPass"))
    label(engine, ids["adj"], ("ana", "Pass"))
    label(engine, ids["undone"], ("ana", "Fail"))
    label(engine, cur, ("ana", "Fail"))
    with session_scope(engine, write=True) as s:
        labels.set_role(session=s, name="lead", role="lead", create=True)
        labels.record_label(session=s, eb_id=ids["adj"], labeler="lead", value="Fail", kind="adjudication", reason="x")
        labels.undo_last(session=s, labeler="ana")  # withdraws ana's newest label: the one on `cur`
        labels.undo_last(session=s, labeler="ana")  # then the one on `undone`
    with session_scope(engine) as s:
        lc = review.light_curve(session=s, eb_id=cur, days=365)
    assert list(lc.columns) == list(review.LIGHT_CURVE_COLUMNS)
    assert lc["eb_id"].tolist() == [ids["pass"], ids["split"], ids["adj"], ids["undone"], cur, ids["later"]]
    by_id = dict(zip(lc["eb_id"], lc["label"]))
    assert by_id[ids["pass"]] == "Pass"
    assert by_id[ids["split"]] == "SemiPass"  # a tie goes to the more cautious value
    assert by_id[ids["adj"]] == "Fail"
    assert by_id[ids["undone"]] == "unlabelled" and by_id[ids["later"]] == "unlabelled"
    assert by_id[cur] == "this EB" and lc["is_current"].sum() == 1
    # Only consensus-Pass measurements are catalogue quality; unlabelled, SemiPass and Fail are the rest.
    series = dict(zip(lc["eb_id"], lc["series"]))
    assert series[ids["pass"]] == "catalogue" and series[cur] == "this EB"
    assert {series[ids[k]] for k in ("split", "adj", "undone", "later")} == {"other"}
    assert str(lc["start_time"].dt.tz) == "UTC"
    row = lc[lc["is_current"]].iloc[0]
    assert row["flux_jy"] == 11.0 and row["low"] == pytest.approx(13.0) and row["high"] == pytest.approx(13.8)
    with session_scope(engine) as s:
        short = review.light_curve(session=s, eb_id=cur, days=15)
    assert set(short["eb_id"]) == {ids["undone"], cur}


def test_current_eb_label_never_shows_in_the_light_curve(engine) -> None:
    cur = add_eb(engine, "uid://A002/X3/X1", details=False)
    label(engine, cur, ("ana", "Pass"), ("ben", "Pass"))
    with session_scope(engine) as s:
        lc = review.light_curve(session=s, eb_id=cur)
    assert lc["label"].tolist() == ["this EB"]


# --- heatmap -----------------------------------------------------------------------------------------


def test_tsys_heatmap_has_one_cell_per_antenna_and_scan_and_shows_the_bad_antenna(engine) -> None:
    eb = add_eb(engine, "uid://A002/X4/X1", tsys_factor={"DA44": 2.5})
    with session_scope(engine) as s:
        hm = review.heatmap(session=s, eb_id=eb, metric="tsys_k")
        per_spw = review.heatmap(session=s, eb_id=eb, metric="tsys_k", by_spw=True)
    assert list(hm.columns) == ["antenna", "scan", "value", "vs_array", "n", "flagged_fraction"]
    assert len(hm) == len(ANTENNAS) * 5 and (hm["n"] == 4).all()
    assert hm["antenna"].drop_duplicates().tolist() == sorted(ANTENNAS)
    worst = hm.groupby("antenna")["vs_array"].median()
    assert worst.idxmax() == "DA44" and worst["DA44"] == pytest.approx(2.5, rel=0.1)
    assert worst.drop("DA44").max() < 1.2
    assert len(per_spw) == len(ANTENNAS) * 5 * 4 and "spw" in per_spw.columns


def test_phase_heatmap_averages_on_the_circle(engine) -> None:
    eb = add_eb(engine, "uid://A002/X4/X2", details=False)
    rows = [
        (eb, "DA41", spw, 1, 100.0, 0.0, 50.0, 1.0, ph, 0.5, False)
        for spw, ph in enumerate((179.0, -179.0, 177.0, -177.0))
    ]
    rows += [(eb, "DA42", spw, 1, 100.0, 0.0, 50.0, 1.0, 10.0, 0.5, spw == 0) for spw in range(4)]
    rows += [(eb, "DA43", spw, 1, 100.0, 0.0, 50.0, 1.0, 0.0, 0.5, False) for spw in range(4)]
    with session_scope(engine) as s:
        bulk_insert(s.connection(), "eb_detail", DETAIL_COLS, rows)
    with session_scope(engine) as s:
        hm = review.heatmap(session=s, eb_id=eb, metric="phase_deg").set_index("antenna")
    assert abs(abs(hm.loc["DA41", "value"]) - 180.0) < 0.5
    assert hm.loc["DA42", "flagged_fraction"] == pytest.approx(0.25)
    assert hm.loc["DA43", "vs_array"] == pytest.approx(-10.0)


def test_heatmap_refuses_unknown_metrics_and_is_empty_without_details(engine) -> None:
    eb = add_eb(engine, "uid://A002/X4/X3", details=False)
    with session_scope(engine) as s:
        with pytest.raises(ValueError):
            review.heatmap(session=s, eb_id=eb, metric="amplitude; DROP TABLE label")
        empty = review.heatmap(session=s, eb_id=eb, metric="amplitude")
    assert empty.empty and {"antenna", "scan", "value"} <= set(empty.columns)


# --- context -----------------------------------------------------------------------------------------


def _context_fixture(engine: Engine) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {"Pass": [], "Fail": [], "none": []}
    for i in range(6):
        eb = add_eb(
            engine, f"uid://A002/X5/Xp{i}", details=False, pwv_mm=1.0 + 0.1 * i, start=T0 - timedelta(days=i + 1)
        )
        label(engine, eb, ("ana", "Pass"))
        out["Pass"].append(eb)
    for i in range(3):
        eb = add_eb(
            engine,
            f"uid://A002/X5/Xf{i}",
            details=False,
            pwv_mm=8.0 + i,
            band=7,
            freq_ghz=343.5,
            start=T0 - timedelta(days=i + 1),
        )
        label(engine, eb, ("ana", "Fail"), ("ben", "Fail"))
        out["Fail"].append(eb)
    out["none"].append(add_eb(engine, "uid://A002/X5/Xn", details=False, pwv_mm=50.0))
    return out


def test_context_places_this_eb_among_labelled_groups(engine) -> None:
    groups = _context_fixture(engine)
    cur = add_eb(engine, "uid://A002/X5/Xcur", details=False, pwv_mm=3.0)
    label(engine, cur, ("ana", "Fail"))
    with session_scope(engine) as s:
        ctx = review.context(session=s, eb_id=cur, metrics=("pwv_mm", "pwv_over_limit", "flux_deviation_sigma"))
    assert list(ctx.columns) == ["eb_id", "metric", "value", "group"]
    pwv = ctx[ctx["metric"] == "pwv_mm"]
    assert set(pwv.loc[pwv["group"] == "Pass", "eb_id"]) == set(groups["Pass"])
    assert set(pwv.loc[pwv["group"] == "Fail", "eb_id"]) == set(groups["Fail"])
    assert pwv.loc[pwv["group"] == "this EB", "eb_id"].tolist() == [cur]
    assert groups["none"][0] not in set(ctx["eb_id"])  # unlabelled EBs are no context
    ratio = ctx[(ctx["metric"] == "pwv_over_limit") & (ctx["eb_id"] == groups["Fail"][0])]["value"].item()
    assert ratio == pytest.approx(8.0 / limits.pwv_limit_mm(7, 343.5))
    dev = ctx[(ctx["metric"] == "flux_deviation_sigma") & (ctx["group"] == "this EB")]["value"].item()
    assert dev == pytest.approx(0.2 / 0.5)
    with session_scope(engine) as s:
        capped = review.context(session=s, eb_id=cur, metrics=("pwv_mm",), cap_per_class=2)
        banded = review.context(session=s, eb_id=cur, metrics=("pwv_mm",), same_band=True)
    assert capped["group"].value_counts().to_dict() == {"this EB": 1, "Pass": 2, "Fail": 2}
    assert set(banded["group"]) == {"this EB", "Pass"}


def test_context_refuses_unknown_metrics(engine) -> None:
    eb = add_eb(engine, "uid://A002/X5/X1", details=False)
    with session_scope(engine) as s:
        with pytest.raises(ValueError):
            review.context(session=s, eb_id=eb, metrics=("pwv_mm", "1; DROP TABLE label"))


def test_context_groups_follow_labels_consensus_on_random_labels(engine) -> None:
    rng = np.random.default_rng(5)
    ebs = [add_eb(engine, f"uid://A002/X6/X{i}", details=False, pwv_mm=1.0 + i / 10) for i in range(25)]
    with session_scope(engine, write=True) as s:
        labels.set_role(session=s, name="lead", role="lead", create=True)
        for eb in ebs:
            for who in rng.choice(["ana", "ben", "eva", "li"], size=int(rng.integers(0, 4)), replace=False):
                labels.record_label(
                    session=s, eb_id=eb, labeler=str(who), value=str(rng.choice(["Pass", "SemiPass", "Fail"]))
                )
            if rng.random() < 0.2:
                labels.record_label(
                    session=s, eb_id=eb, labeler="lead", value="SemiPass", kind="adjudication", reason="r"
                )
        labels.undo_last(session=s, labeler="ana")
        labels.undo_last(session=s, labeler="ben")
    cur = add_eb(engine, "uid://A002/X6/Xcur", details=False)
    with session_scope(engine) as s:
        expected = {int(e): v for e, v in zip(labels.consensus(s)["eb_id"], labels.consensus(s)["value"])}
        ctx = review.context(session=s, eb_id=cur, metrics=("pwv_mm",))
    got = {int(e): g for e, g in zip(ctx["eb_id"], ctx["group"]) if g != "this EB"}
    assert got == expected and len(got) > 10


def test_review_functions_on_simulated_ebs(engine) -> None:
    from qa0_label.sim.simulate import simulate

    simulate(engine=engine, n=50, seed=1, aods=2, labeled=40)
    with session_scope(engine) as s:
        ids = [
            int(i)
            for i in s.connection().exec_driver_sql("SELECT id FROM execution_block ORDER BY id LIMIT 8").scalars()
        ]
        for eb in ids:
            h = review.eb_header(session=s, eb_id=eb)
            assert h["start_time"].utcoffset() == timedelta(0) and h["band_name"] == f"Band {h['band']}"
            assert h["n_spw"] == 4 and set(h["warnings"]) == set(h["warning_levels"])
            sp = review.spectrum(session=s, eb_id=eb)
            assert len(sp.spw) == 4 and sp.alpha is not None
            # The simulator fits the same power law to the same spw means, so the indices agree.
            assert sp.alpha == pytest.approx(h["spectral_index"], abs=max(0.05, 2 * (sp.alpha_err or 0)))
            lc = review.light_curve(session=s, eb_id=eb)
            assert lc["is_current"].sum() == 1 and lc["start_time"].is_monotonic_increasing
            hm = review.heatmap(session=s, eb_id=eb, metric="tsys_k")
            assert hm["antenna"].nunique() == h["n_detail_antennas"] and hm["scan"].nunique() == h["n_scans"]
            assert len(hm) <= h["n_detail_antennas"] * h["n_scans"] and (hm["value"] > 0).all()
        ctx = review.context(session=s, eb_id=ids[0])
    assert {"this EB", "Pass"} <= set(ctx["group"])


def test_context_sees_new_labels_undo_and_adjudication_at_once(engine) -> None:
    cur = add_eb(engine, "uid://A002/X7/Xcur", details=False)
    other = add_eb(engine, "uid://A002/X7/Xo", details=False, pwv_mm=2.5)

    def groups() -> dict[int, str]:
        with session_scope(engine) as s:
            ctx = review.context(session=s, eb_id=cur, metrics=("pwv_mm",))
        return {int(e): g for e, g in zip(ctx["eb_id"], ctx["group"]) if g != "this EB"}

    assert groups() == {}
    label(engine, other, ("ana", "Pass"))
    assert groups() == {other: "Pass"}
    with session_scope(engine, write=True) as s:
        labels.set_role(session=s, name="lead", role="lead", create=True)
        labels.record_label(session=s, eb_id=other, labeler="lead", value="Fail", kind="adjudication", reason="x")
    assert groups() == {other: "Fail"}
    with session_scope(engine, write=True) as s:
        labels.undo_last(session=s, labeler="ana")
    assert groups() == {other: "Fail"}  # the adjudication still stands


def test_context_summary_equals_summarising_context_and_leaves_this_eb_out(engine) -> None:
    groups = _context_fixture(engine)
    cur = add_eb(engine, "uid://A002/X5/Xcur", details=False, pwv_mm=3.0)
    metrics = ("pwv_mm", "pwv_over_limit", "flux_deviation_sigma")
    with session_scope(engine) as s:
        fast = review.context_summary(session=s, eb_id=cur, metrics=metrics)
        slow = review.summarise_context(review.context(session=s, eb_id=cur, metrics=metrics))
    assert list(fast.columns) == list(review.SUMMARY_COLUMNS)
    assert fast.drop(columns="where").equals(slow.drop(columns="where")) and list(fast["where"]) == list(slow["where"])
    this = fast[(fast["group"] == "this EB") & (fast["metric"] == "pwv_mm")].iloc[0]
    assert this["value"] == 3.0 and this["where"] == "above 100% of Pass; above 0% of Fail"
    # A labelled EB under review (an overlap review) is never part of its own context, cached sample or not.
    passed = groups["Pass"][0]
    with session_scope(engine) as s:
        review.context_summary(session=s, eb_id=cur, metrics=("pwv_mm",))  # warm the cache
        own = review.context_summary(session=s, eb_id=passed, metrics=("pwv_mm",))
    pass_row = own[(own["group"] == "Pass")].iloc[0]
    assert pass_row["n"] == len(groups["Pass"]) - 1
    # A new label changes the database state: the next summary sees it.
    label(engine, cur, ("ben", "Pass"))
    other = add_eb(engine, "uid://A002/X5/Xnew", details=False)
    with session_scope(engine) as s:
        after = review.context_summary(session=s, eb_id=other, metrics=("pwv_mm",))
    assert after[after["group"] == "Pass"]["n"].item() == len(groups["Pass"]) + 1


def test_light_curve_keeps_the_nearest_ebs_around_this_one(engine) -> None:
    ids = [add_eb(engine, f"uid://A002/X8/X{i}", details=False, start=T0 + timedelta(days=i)) for i in range(-20, 21)]
    cur = ids[5]  # 15 days before T0: near the start of the history
    with session_scope(engine) as s:
        full = review.light_curve(session=s, eb_id=cur)
        capped = review.light_curve(session=s, eb_id=cur, max_points=9)
    assert len(full) == 41
    assert list(capped["eb_id"]) == ids[1:10], "a run of 9 centred on this EB"
    assert capped["is_current"].sum() == 1 and capped["start_time"].is_monotonic_increasing
    with session_scope(engine) as s:
        edge = review.light_curve(session=s, eb_id=ids[0], max_points=9)
    assert list(edge["eb_id"]) == ids[:9], "at the start of the history the run starts there"
