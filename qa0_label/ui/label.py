"""Label page: one EB's metadata and plots, and Pass / SemiPass / Fail with one key (P / S / F).

Saving a label and fetching the next EB happen in the button's on_click callback, keyed by a client event id
generated for the displayed EB: a double click, a second key press or a rerun never stores two labels.
With ?eb=UID in the URL the page shows that EB read-only, with the labels the viewer may see.
"""

from __future__ import annotations

import math
import os
import time
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from qa0_label.access.visibility import label_scope
from qa0_label.queue.lookahead import reserve_next
from qa0_label.review import limits
from qa0_label.review.browse import eb_id_for_uid, eb_labels, uid_of
from qa0_label.review.bundle import BundleCache, ReviewBundle, likely_next
from qa0_label.review.charts import review_panel
from qa0_label.store.db import get_engine, session_scope
from qa0_label.store.labels import MAX_COMMENT_CHARS, LabelError, record_label, record_skip, undo_last_action
from qa0_label.ui import auto as auto_ui
from qa0_label.ui import keys
from qa0_label.ui import widgets as w

K_ASSIGN = "qa0_assignment"  # plain dict from assign.next_for (+ "labeler"): ids and numbers only
K_EVENT = "qa0_event_id"
K_SHOWN = "qa0_shown_at"
K_COMMENT = "qa0_comment"
K_HEAT = "qa0_heat_metric"

HEAT_METRICS: dict[str, str] = {"Tsys": "tsys_k", "Amplitude": "amplitude", "Phase": "phase_deg"}
VALUE_KEYS: dict[str, str] = {"Pass": "P", "SemiPass": "S", "Fail": "F"}
KEY_BUTTONS: dict[str, str] = {
    # key -> widget key of its button; ui/keys.py holds a key pressed while the page updates (one line per key)
    "P": "qa0-btn-pass",
    "S": "qa0-btn-semipass",
    "F": "qa0-btn-fail",
    "K": "qa0-btn-skip",
    "U": "qa0-btn-undo",
    "A": "qa0-btn-accept",  # shown only when the model may decide the EB (ui/auto.py)
}
COMMENT_PLACEHOLDER = "Comment · Enter saves · Esc leaves"  # fits the 310 px box
MIN_DWELL_S = 0.4
"""A press within this time of an EB appearing is a double click or key repeat meant for the previous EB."""

# Header metrics in two rows: (field, label, format). Warnings from review.eb_header() name these fields.
TILE_ROWS: tuple[tuple[tuple[str, str, str], ...], ...] = (
    (
        ("band", "Band", "band"),
        ("freq_ghz", "Rep. frequency", "{:.1f} GHz"),
        ("array", "Array", "{}"),
        ("n_antennas", "Antennas", "{:d}"),
        ("pwv_mm", "PWV", "{:.2f} mm"),
        ("elevation_deg", "Elevation", "{:.1f}°"),
    ),
    (
        ("exec_fraction", "Exec. fraction", "{:.2f}"),
        ("flux_jy", "Flux", "{:.2f} Jy"),
        ("tsys_median_k", "Tsys median", "{:.0f} K"),
        ("phase_rms_deg", "Phase RMS", "{:.1f}°"),
        ("flagged_fraction", "Flagged", "{:.0%}"),
        ("spectral_index", "Spectral index", "{:+.2f}"),
    ),
)


# --- data: review bundles (header + chart specs) are cached per EB and prefetched ---------------------


PREFETCH_ENV = "QA0_PREFETCH"
"""thread (default): build upcoming EBs in a thread of the server; process: in a worker process; 0: none.

A thread measured as fast as a worker process per key press (the build runs while the AoD looks at the EB)
and keeps the app ~240 MB smaller, which keeps a 100k-pool app under 1 GB during a retrain."""
LOOKAHEAD_ENV = "QA0_LOOKAHEAD"
"""1 (default): reserve each AoD's next EB while they look at the current one (lookahead.py); 0: only guess."""
AUTO_SUGGEST_ENV = "QA0_AUTO_SUGGEST"
"""1 (default): the Label page shows the model's auto-QA0 call, its reasons and key A; 0: hidden (a site that
wants every AoD call made without seeing the model's first)."""
_OFF = ("0", "off", "no", "false")


def _suggestions_on() -> bool:
    return os.environ.get(AUTO_SUGGEST_ENV, "1").strip().lower() not in _OFF


def _prefetch_mode() -> str:
    return os.environ.get(PREFETCH_ENV, "thread").strip().lower()


@st.cache_resource(show_spinner=False)
def bundle_cache() -> BundleCache:
    """The process-wide cache of review bundles (shared by every session of this server)."""
    return BundleCache(get_engine, processes=_prefetch_mode() == "process")


def _prefetch_next(url: str, who: str, eb_id: int) -> None:
    if _prefetch_mode() in _OFF:
        return
    strategy = w.kept(w.K_STRATEGY, None)
    engine = w.engine_for(url)
    settings = w.settings()
    reserve = os.environ.get(LOOKAHEAD_ENV, "1").strip().lower() not in _OFF

    def choose() -> list[int]:
        # Decide (and lease) the EB after this one now, so whatever route the queue takes for it, its plots
        # are built before the key press; the queue head is only a guess when nothing could be reserved.
        ahead = (
            reserve_next(engine=engine, labeler=who, current_eb_id=eb_id, strategy=strategy, settings=settings)
            if reserve
            else None
        )
        return [ahead] if ahead is not None else likely_next(engine=engine, labeler=who, strategy=strategy)

    bundle_cache().prefetch_later(url, choose)


# --- actions (callbacks run before the page is drawn again) --------------------------------------


def _set_assignment(assignment: dict[str, Any] | None, who: str) -> None:
    if assignment is None:
        st.session_state.pop(K_ASSIGN, None)
        return
    plain = {k: assignment.get(k) for k in ("eb_id", "uid", "strategy", "reason", "uncertainty", "model_version")}
    proba = assignment.get("proba")
    plain["proba"] = {k: float(v) for k, v in proba.items()} if proba else None
    plain["labeler"] = who
    st.session_state[K_ASSIGN] = plain
    st.session_state[K_EVENT] = w.new_event_id()
    st.session_state[K_SHOWN] = time.time()


def fetch_next(url: str, who: str) -> dict[str, Any] | None:
    """Ask assign.next_for for this AoD's EB (the same leased EB until it is labelled or skipped)."""
    from qa0_label.queue.assign import next_for

    strategy = w.kept(w.K_STRATEGY, None)
    assignment = next_for(engine=w.engine_for(url), labeler=who, strategy=strategy, settings=w.settings())
    _set_assignment(assignment, who)
    return st.session_state.get(K_ASSIGN)


def press_is_current(
    *,
    current: dict[str, Any] | None,
    event: str | None,
    shown_at: float | None,
    eb_id: int,
    event_id: str,
    who: str,
    now: float,
    min_dwell_s: float = MIN_DWELL_S,
) -> bool:
    """True when a press belongs to the EB on screen and came after it had been visible for min_dwell_s.

    A double click or a held key sends a second press that the server may bind to the next EB before the AoD
    ever saw it; such presses are ignored (the first press was stored, nothing is lost).
    """
    if not current or current.get("eb_id") != eb_id or current.get("labeler") != who or event != event_id:
        return False
    return shown_at is None or now - shown_at >= min_dwell_s


def _is_current(eb_id: int, event_id: str, who: str) -> bool:
    ok = press_is_current(
        current=st.session_state.get(K_ASSIGN),
        event=st.session_state.get(K_EVENT),
        shown_at=st.session_state.get(K_SHOWN),
        eb_id=eb_id,
        event_id=event_id,
        who=who,
        now=time.time(),
    )
    if not ok:
        w.flash("info", "Press ignored: it arrived as the EB changed (double click or held key?)")
    return ok


def on_label(value: str, eb_id: int, event_id: str, who: str, url: str, accepted_from: int | None = None) -> None:
    """Button callback: store the label (idempotent by event id), then fetch the next EB.

    accepted_from (a model run id): the label is the AoD accepting that run's auto-QA0 suggestion (key A).
    """
    if not _is_current(eb_id, event_id, who):
        return
    seconds = max(0.0, time.time() - float(st.session_state.get(K_SHOWN) or time.time()))
    comment = str(st.session_state.get(K_COMMENT) or "").strip() or None
    try:
        with w.timed("record_label"), session_scope(w.engine_for(url), write=True) as session:
            event = record_label(
                session=session,
                eb_id=eb_id,
                labeler=who,
                value=value,
                comment=comment,
                seconds_on_eb=round(seconds, 2),
                client_event_id=event_id,
            )
            if accepted_from is not None:
                auto_ui.mark_accepted(session, event, accepted_from, value)
    except (LabelError, Exception) as exc:  # noqa: BLE001 - keep the EB on screen, say what went wrong
        w.flash("error", f"Label not saved: {exc}")
        return
    w.record_seconds(seconds)
    st.session_state[K_COMMENT] = ""
    w.maybe_auto_retrain(url)
    with w.timed("next_for"):
        _advance(url, who)


def on_skip(eb_id: int, event_id: str, who: str, url: str) -> None:
    """Button callback: move on without a label and release the lease."""
    if not _is_current(eb_id, event_id, who):
        return
    try:
        with session_scope(w.engine_for(url), write=True) as session:
            record_skip(session=session, eb_id=eb_id, labeler=who)
    except Exception as exc:  # noqa: BLE001
        w.flash("error", f"Skip failed: {exc}")
        return
    st.session_state[K_COMMENT] = ""
    _advance(url, who)


def on_undo(eb_id: int, event_id: str, who: str, url: str) -> None:
    """Button callback: take back the AoD's last action (a label: a new event; a skip) and show that EB again."""
    if _is_current(eb_id, event_id, who):
        _undo(who, url, f"undo-{event_id}")


def on_undo_at_end(event_id: str, who: str, url: str) -> None:
    """Undo from the "nothing left" screen: only while that screen is still what the AoD sees."""
    if st.session_state.get(K_ASSIGN) is None and st.session_state.get(K_EVENT) == event_id:
        _undo(who, url, f"undo-{event_id}")


def _undo(who: str, url: str, client_event_id: str) -> None:
    try:
        with session_scope(w.engine_for(url), write=True) as session:
            done = undo_last_action(
                session=session,
                labeler=who,
                client_event_id=client_event_id,
                lease_minutes=w.settings().lease_minutes,
            )
            target = None if done is None else (done[0], done[1], uid_of(session=session, eb_id=done[1]))
    except Exception as exc:  # noqa: BLE001
        w.flash("error", f"Undo failed: {exc}")
        return
    if target is None:
        w.flash("info", "Nothing to undo")
        return
    what, eb_id, uid = target
    if what == "label":
        w.forget_last_seconds()
    _set_assignment(
        {
            "eb_id": eb_id,
            "uid": uid,
            "strategy": "undo",
            "reason": f"You undid your {what} of this EB: label it now" + ("." if what == "skip" else " again."),
            "uncertainty": None,
            "proba": None,
        },
        who,
    )
    w.flash("info", f"{'Label on' if what == 'label' else 'Skip of'} {uid} undone")


def _advance(url: str, who: str) -> None:
    try:
        fetch_next(url, who)
    except Exception as exc:  # noqa: BLE001 - the label is saved; the next EB comes on the next rerun
        st.session_state.pop(K_ASSIGN, None)
        w.flash("warning", f"Could not fetch the next EB yet: {exc}")


def back_to_queue() -> None:
    """Leave the read-only view (?eb=...) and return to the labelling queue."""
    if "eb" in st.query_params:
        del st.query_params["eb"]


# --- drawing ------------------------------------------------------------------------------------


def _format(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    try:
        if fmt == "band":
            return f"B{int(value)}"
        if fmt == "{:d}":
            return str(int(value))
        return fmt.format(value)
    except (TypeError, ValueError):
        return str(value)


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    try:
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M UTC")
    except (TypeError, ValueError):
        return "–"


def draw_header(header: dict[str, Any], uid: str) -> None:
    """The EB's identity line, its metrics (each one with a warning marked ⚠ in colour) and the warnings."""
    # Few elements on purpose: the browser redraws every element of this page for each EB, at a few ms each.
    warnings: dict[str, str] = header.get("warnings") or {}  # review.eb_header: {field: message}
    with st.container(key="qa0-title"):
        with st.container(key="qa0-uid"):
            st.text(uid)
        with st.container(key="qa0-subtitle"):
            st.text(subtitle_line(header))
    with st.container(key="qa0-tiles"):
        st.markdown(metrics_table(header, warnings))
    # Always one element here, so the elements after it keep their place in the page from EB to EB (a shifted
    # element is drawn from scratch by the browser, not updated).
    with st.container(key="qa0-warnings" if warnings else "qa0-no-warnings"):
        st.text(warning_lines(warnings) if warnings else "✓ No metric crosses an AoD limit")


def subtitle_line(header: dict[str, Any]) -> str:
    """Source · band · start time · project · SB name (plain text, shown under the uid)."""
    parts = [
        str(header.get("source") or "?"),
        str(header.get("band_name") or _format(header.get("band"), "band")),
        _when(header.get("start_time")),
    ]
    parts += [str(header[k]) for k in ("project", "sb_name") if header.get(k)]
    return "  ·  ".join(parts)


def warning_lines(warnings: dict[str, str]) -> str:
    """One '⚠ Check: message' line per warning (plain text, one element however many there are)."""
    lines = []
    for field, message in warnings.items():
        name = limits.CHECK_TITLES.get(field) or field.replace("_", " ").capitalize()
        if message and message.casefold().startswith(name.casefold()):
            lines.append(f"⚠ {message[0].upper()}{message[1:]}")  # the sentence names its check: no title twice
        else:
            lines.append(f"⚠ {name}: {message}" if message else f"⚠ {name}")
    return "\n".join(lines)


_LEVEL_COLOR = {"warn": "orange", "bad": "red"}


def metrics_table(header: dict[str, Any], warnings: dict[str, str]) -> str:
    """The header metrics as a two-row-block markdown table; a metric with a warning is marked ⚠ in colour.

    Values are numbers formatted here; any text from the database is escaped, so nothing in it can become
    markdown (or break the table).
    """
    levels = header.get("warning_levels") or {}
    blocks = []
    for row in TILE_ROWS:
        heads, values = [], []
        for field, label, fmt in row:
            value = w.md_escape(_format(header.get(field), fmt))
            note = _tile_note(header, field)
            if note:
                value += f" · {w.md_escape(note)}"
            if field in warnings:
                color = _LEVEL_COLOR.get(str(levels.get(field, "warn")), "orange")
                heads.append(f":{color}[**⚠ {label}**]")
                values.append(f":{color}-background[{value}]")
            else:
                heads.append(label)
                values.append(value)
        blocks.append("| " + " | ".join(heads) + " |\n|" + "---|" * len(row) + "\n| " + " | ".join(values) + " |")
    return "\n\n".join(blocks)


def _tile_note(header: dict[str, Any], field: str) -> str | None:
    # The reference an AoD compares the value with, shown small under it.
    if field == "pwv_mm" and header.get("pwv_limit_mm"):
        return f"limit {float(header['pwv_limit_mm']):.2f}"
    if field == "flux_jy" and header.get("expected_flux_jy"):
        return f"exp. {float(header['expected_flux_jy']):.2f}"
    if field == "freq_ghz" and header.get("n_spw"):
        return f"{int(header['n_spw'])} spw"
    if field == "n_antennas" and header.get("n_scans"):
        return f"{int(header['n_scans'])} scans"
    if field == "tsys_median_k":
        # How Tsys compares with what this band, PWV and elevation predict (typical receivers).
        parts = [f"{float(header['tsys_vs_expected']):.1f}x exp."] if header.get("tsys_vs_expected") else []
        if header.get("tsys_outliers"):
            parts.append(f"{len(header['tsys_outliers'])} outlier ant.")
        return " · ".join(parts) or None
    if field == "phase_rms_deg" and header.get("phase_rms_warn_deg"):
        return f"limit {float(header['phase_rms_warn_deg']):.0f}"
    return None


def draw_why(assignment: dict[str, Any], extra: str | None = None) -> None:
    """Why the queue chose this EB: strategy, reason, the model's class probabilities and uncertainty (+ EXTRA)."""
    with st.container(border=True, key="qa0-why"):
        st.markdown(why_markdown(assignment) + (f"\n\n{extra}" if extra else ""))


_BAR_COLOR = {"Pass": "green", "SemiPass": "orange", "Fail": "red"}
BAR_CELLS = 12


def why_markdown(assignment: dict[str, Any]) -> str:
    """The "Why this EB" box as one markdown block: pick type, reason, probability bars, uncertainty.

    One element instead of a text, a caption and three progress bars; the reason is escaped (it may quote
    uids or names), everything else is formatted here from numbers and fixed words.
    """
    strategy = str(assignment.get("strategy") or "–")
    version = assignment.get("model_version")
    # Compact (the box sits beside the header and must not push the charts below the fold): the title and
    # the pick type share a line, the uncertainty heads the bar column.
    lines = ["**Why this EB**  ·  " + w.md_escape(strategy + (f"  ·  model v{version}" if version else ""))]
    if assignment.get("reason"):
        lines.append(f":gray[{w.md_escape(assignment['reason'])}]")
    proba = assignment.get("proba")
    if proba:
        unc = assignment.get("uncertainty")
        head = f"uncertainty {float(unc):.3f}" if unc is not None else ""
        rows = [f"| QA0 | p | {head} |", "|---|--:|---|"]
        for value in ("Pass", "SemiPass", "Fail"):
            p = min(max(float(proba.get(value, 0.0)), 0.0), 1.0)
            full = int(round(p * BAR_CELLS))
            bar = f":{_BAR_COLOR[value]}[{'█' * full}]" if full else ""
            rest = f":gray[{'░' * (BAR_CELLS - full)}]" if full < BAR_CELLS else ""
            rows.append(f"| {value} | {p:.2f} | {bar}{rest} |")
        lines.append("\n".join(rows))
    elif strategy != "undo":
        lines.append(":gray[No model prediction for this EB yet.]")
    return "\n\n".join(lines)


_NO_DATA = {
    "spectrum": "Spectrum: no detail rows for this EB.",
    "light_curve": "Flux history: no other measurement of this source in this band.",
    "heatmap": "Heatmap: no detail rows for this EB.",
    "context": "Context: no labelled EBs to compare with yet.",
}


def heat_selector() -> str:
    """The heatmap metric control (Tsys / Amplitude / Phase); returns the choice."""
    metrics = list(HEAT_METRICS)
    keep = w.keep_across_pages(K_HEAT, "Tsys", allowed=metrics)
    return st.segmented_control("Antenna × scan heatmap of", metrics, required=True, **keep) or "Tsys"


def draw_plots(url: str, bundle: ReviewBundle, *, selector: bool = True) -> None:
    """The four review charts as one view (charts.review_panel), the heatmap metric selector and the notes.

    Without SELECTOR the page has drawn heat_selector() elsewhere (the label page: beside the header, so the
    charts start higher on the screen).
    """
    with st.container(key="qa0-plots"):
        choice = heat_selector() if selector else str(w.kept(K_HEAT, "Tsys"))
        heat, _n = bundle_cache().heatmap(url, bundle.eb_id, HEAT_METRICS[choice])
        specs = {**bundle.specs, "heatmap": heat}
        panel = review_panel(specs)
        if panel is not None:
            # Faceted context rows have a fixed cell width: the panel keeps its own width.
            st.vega_lite_chart(spec=panel, width="content")
        notes = [f"Spectrum: {bundle.notes['spectrum']}"] if bundle.notes.get("spectrum") else []
        notes += [_NO_DATA[kind] for kind in _NO_DATA if specs.get(kind) is None]
        # One caption for all notes; the spectrum note quotes numbers only, escaped all the same.
        st.caption("  \n".join(w.md_escape(n) for n in notes) if notes else "")


def draw_actions(assignment: dict[str, Any], who: str, url: str) -> None:
    """Pass / SemiPass / Fail (P/S/F), an optional comment, Skip (K) and Undo (U)."""
    args_common = (int(assignment["eb_id"]), str(st.session_state.get(K_EVENT)), who, url)
    with st.container(key="qa0-actions", horizontal=True, vertical_alignment="bottom", gap="small"):
        for value, key in VALUE_KEYS.items():
            st.button(
                value,
                key=f"qa0-btn-{value.lower()}",
                shortcut=key,
                on_click=on_label,
                args=(value, *args_common),
                type="primary" if value == "Pass" else "secondary",
                help=f"Record QA0 = {value} and go to the next EB",
            )
        st.text_input(
            "Comment (optional)",
            key=K_COMMENT,
            max_chars=MAX_COMMENT_CHARS,
            placeholder=COMMENT_PLACEHOLDER,
            label_visibility="collapsed",
            width=310,
        )
        st.button(
            "Skip",
            key="qa0-btn-skip",
            shortcut="K",
            on_click=on_skip,
            args=args_common,
            type="tertiary",
            help="Move on without a label (releases the EB)",
        )
        st.button(
            "Undo",
            key="qa0-btn-undo",
            shortcut="U",
            on_click=on_undo,
            args=args_common,
            type="tertiary",
            help="Take back your last label or skip and show that EB again",
        )


def sidebar(ctx: w.PageContext) -> None:
    """Label-page sidebar: query strategy and model status."""
    from qa0_label.learning.strategies import strategy_names

    names = list(strategy_names())
    if names:
        keep = w.keep_across_pages(w.K_STRATEGY, names[0], allowed=names)  # the first is the queue's default
        st.selectbox("Query strategy", names, help="Used for your next EB", **keep)
    st.divider()
    w.model_status_panel(ctx)


def readonly_view(ctx: w.PageContext, uid: str) -> None:
    """?eb=UID: the EB's review view without actions, plus the labels the viewer may see."""
    url = ctx.settings.database_url
    st.button("← Back to my queue", on_click=back_to_queue, key="qa0-back")
    with session_scope(ctx.engine) as session:
        eb_id = eb_id_for_uid(session=session, uid=uid)
        labels, withheld = (
            eb_labels(session=session, eb_id=eb_id, scope=label_scope(session=session, requester=ctx.requester))
            if eb_id is not None
            else (pd.DataFrame(), False)
        )
    if eb_id is None:
        st.error("No EB with this uid:")
        st.text(uid)
        return
    bundle = bundle_cache().get(url, eb_id)
    st.info("Read-only view: no label is recorded from this page.", icon=":material/visibility:")
    draw_header(bundle.header, str(bundle.header.get("uid") or uid))
    with st.container(border=True, key="qa0-labels"):
        st.markdown("**Labels**")
        if labels.empty:
            st.caption(
                "No labels yet." if not withheld else "Labels are hidden until you give your own (blind review)."
            )
        else:
            st.dataframe(
                w.blanks_empty(
                    labels[["created_at", "labeler", "kind", "value", "comment", "reason", "seconds_on_eb"]]
                ),
                hide_index=True,
                width="stretch",
                column_config=w.label_table_columns(),
            )
            if withheld:
                st.caption("Other labelers' labels are hidden until you give your own (blind review).")
    draw_plots(url, bundle)


def render() -> None:
    """Draw the Label page."""
    with w.timed("label page"):
        _render()


def _render() -> None:
    with w.timed("page_setup"):
        ctx = w.page_setup(title="Label")
    with st.sidebar:
        sidebar(ctx)
    if ctx.who is None:
        w.show_flash()
        st.title("QA0 labelling")
        st.info("Pick your name in the sidebar (or open the app with ?labeler=YOUR_NAME) to start labelling.")
        return
    view_uid = st.query_params.get("eb")
    if view_uid:
        w.show_flash()
        readonly_view(ctx, str(view_uid))
        return
    keys.install(
        key_buttons=KEY_BUTTONS, comment_key=K_COMMENT, release_focus=st.session_state.pop(w.K_RELEASE_FOCUS, None)
    )
    review_area(ctx.settings.database_url, ctx.who)


@st.fragment
def review_area(url: str, who: str) -> None:
    """The EB under review and its actions. A fragment: a label press reruns only this, not the sidebar."""
    if w.retrain_started_here():
        st.rerun(scope="app")  # the sidebar starts showing the retrain's progress
    with w.timed("review fragment"):
        w.show_flash()
        assignment = st.session_state.get(K_ASSIGN)
        if not assignment or assignment.get("labeler") != who:
            assignment = fetch_next(url, who)
        if assignment is None:
            draw_queue_end(who, url)
            return
        eb_id = int(assignment["eb_id"])
        with w.timed(f"bundle {eb_id} ({'hit' if bundle_cache().peek(url, eb_id) else 'miss'})"):
            bundle = bundle_cache().get(url, eb_id)
        head, why = st.columns([3, 1.25], gap="medium")
        with head:
            draw_header(bundle.header, str(assignment.get("uid") or bundle.header.get("uid")))
            draw_actions(assignment, who, url)
        with why:
            # Auto-QA0's call and reasons share the "Why this EB" box: one element less per key press.
            item, suggested = auto_ui.suggestion_for(url, assignment) if _suggestions_on() else (None, None)
            draw_why(assignment, suggested)
            if item:
                auto_ui.draw_accept(item, url, assignment, who, on_label)  # key A
            draw_session_counter()
            heat_selector()
        draw_plots(url, bundle, selector=False)
        # While the AoD looks at this EB, reserve and build the one the queue hands out next.
        _prefetch_next(url, who, eb_id)


def draw_queue_end(who: str, url: str) -> None:
    """Nothing left for this AoD: say so, and keep Undo (U) for the last label or skip."""
    st.session_state.setdefault(K_EVENT, w.new_event_id())  # what a stale press of this screen's Undo is checked by
    st.title("QA0 labelling")
    st.success("Nothing left for you to review right now. Thank you!")
    st.caption(
        "New EBs appear here as they are imported or simulated (Data page). EBs you skipped are not offered to "
        "you again; Undo (U) takes back your last label or skip."
    )
    st.button(
        "Undo",
        key="qa0-btn-undo",
        shortcut="U",
        on_click=on_undo_at_end,
        args=(str(st.session_state[K_EVENT]), who, url),
        help="Take back your last label or skip and show that EB again",
    )


def draw_session_counter() -> None:
    """Labels given in this browser session and the median time per EB (EB shown -> key press)."""
    n, median = w.session_counts()
    # One text element: two metric widgets in columns were five elements for the browser to redraw per EB.
    with st.container(key="qa0-counter"):
        st.markdown(f"Labelled this session **{n}**  ·  median **{'–' if median is None else f'{median:.1f}'} s** / EB")


if __name__ == "__main__":
    render()
