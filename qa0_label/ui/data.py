"""Data page: import EBs (CSV / Parquet, all or nothing), download labels, browse EBs and open one for review."""

from __future__ import annotations

import functools
import os
from datetime import date
from typing import Any

import pandas as pd
import streamlit as st

from qa0_label.access.authz import Requester
from qa0_label.access.visibility import label_scope, visible_export
from qa0_label.review.browse import LABEL_STATES, BrowseFilter, browse_ebs, filter_options
from qa0_label.store.db import session_scope
from qa0_label.ui import widgets as w

MAX_UPLOAD_MB = 200  # also server.maxUploadSize in .streamlit/config.toml (the browser refuses above it)
BROWSE_LIMIT = 500
K_IMPORT_RESULT = "qa0_import_result"


def _problems_frame(problems: list[Any]) -> pd.DataFrame:
    rows = [
        {
            "file": getattr(p, "file", None),
            "row": getattr(p, "row", None),
            "column": getattr(p, "column", None),
            "reason": getattr(p, "message", str(p)),
        }
        for p in problems
    ]
    return pd.DataFrame(rows, columns=["file", "row", "column", "reason"])


def import_section(ctx: w.PageContext) -> None:
    """Upload an EB table (and optionally its detail rows) and import it through ingest, all or nothing."""
    st.subheader("Import EBs")
    st.caption(
        "One row per EB. Required columns: uid, source, band, start_time. qa0_status, when present, is "
        "imported as a label by 'archive'. Re-importing the same uids updates them. Nothing is imported if "
        f"any row is invalid. Files up to {upload_limit_mb():g} MB; import larger ones with the command line "
        "(`python -m qa0_label import PATH`)."
    )
    with st.form("qa0-import", clear_on_submit=False, border=True):
        c1, c2 = st.columns(2)
        ebs_file = c1.file_uploader(
            "EB table (CSV or Parquet)", type=["csv", "parquet"], key="qa0-up-ebs", max_upload_size=MAX_UPLOAD_MB
        )
        details_file = c2.file_uploader(
            "Detail rows (optional: uid, antenna, spw, scan, …)",
            type=["csv", "parquet"],
            key="qa0-up-details",
            max_upload_size=MAX_UPLOAD_MB,
        )
        submitted = st.form_submit_button("Import", type="primary", icon=":material/upload:")
    if submitted:
        if ebs_file is None:
            st.warning("Choose an EB table first.")
        else:
            _run_import(ctx, ebs_file, details_file)
            if st.session_state.get(K_IMPORT_RESULT, ("",))[0] == "ok":
                # The Browse section above was drawn before the import: draw the page again so its count and
                # rows include the new EBs (the result waits in the session state).
                st.rerun()


IMPORT_SUMMARY_TITLES = {
    "inserted": "new EBs",
    "updated": "EBs updated",
    "labels_added": "labels added",
    "detail_rows": "detail rows",
    "extra_columns": "extra columns kept",
    "ignored_columns": "columns ignored",
}
"""Headings of the import summary (the importer's keys are for the CLI's JSON)."""


def import_result_section() -> None:
    """The last import's summary, or why nothing was imported: a full-width table of every problem."""
    result = st.session_state.get(K_IMPORT_RESULT)
    if not result:
        return
    kind, payload = result
    if kind == "ok":
        st.success("Import finished.")
        st.dataframe(
            w.blanks_empty(pd.DataFrame([payload])),
            hide_index=True,
            width="stretch",
            column_config={key: title for key, title in IMPORT_SUMMARY_TITLES.items()},
        )
        return
    problems, omitted = payload
    total = len(problems) + omitted
    more = f" (the first {len(problems):,} are listed)" if omitted else ""
    st.error(f"Nothing was imported: {total:,} problem{'s' if total != 1 else ''} found{more}.")
    st.dataframe(
        w.blanks_empty(pd.DataFrame(problems, columns=["file", "row", "column", "reason"])),
        hide_index=True,
        width="stretch",
        key="qa0-import-problems",
        column_config={
            "file": st.column_config.TextColumn("file", width="medium"),
            "row": st.column_config.NumberColumn("line / row", format="%d", width="small"),
            "column": st.column_config.TextColumn("column", width="medium"),
            "reason": st.column_config.TextColumn("reason", width="large"),
        },
    )


def upload_limit_mb() -> float:
    """The upload limit the page enforces: QA0_MAX_UPLOAD_MB (default MAX_UPLOAD_MB), never above the server's."""
    try:
        wanted = float(os.environ.get("QA0_MAX_UPLOAD_MB") or MAX_UPLOAD_MB)
    except ValueError:
        wanted = MAX_UPLOAD_MB
    server = st.get_option("server.maxUploadSize")
    return min(wanted, float(server)) if server else wanted


def _run_import(ctx: w.PageContext, ebs_file: Any, details_file: Any) -> None:
    from qa0_label.ingest import ImportRefused, import_file, upload_problem

    files = [f for f in (ebs_file, details_file) if f is not None]
    limit = upload_limit_mb()
    too_big = [p for f in files if (p := upload_problem(name=f.name, size=getattr(f, "size", None), limit_mb=limit))]
    if too_big:
        st.session_state[K_IMPORT_RESULT] = ("refused", (_problems_frame(too_big).to_dict("records"), 0))
        return
    bar = st.progress(0.0, text="Reading…")

    def progress(fraction: float, message: str) -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=w.md_escape(message))

    try:
        # The same streaming import as the command line: same validation, same messages, all or nothing.
        summary = import_file(
            engine=ctx.engine,
            path=ebs_file,
            details_path=details_file,
            name=ebs_file.name,
            details_name=details_file.name if details_file is not None else None,
            progress=progress,
        )
    except ImportRefused as exc:
        st.session_state[K_IMPORT_RESULT] = (
            "refused",
            (_problems_frame(list(exc.problems)).to_dict("records"), int(getattr(exc, "omitted", 0))),
        )
    except Exception as exc:  # noqa: BLE001 - an unreadable file is a user error, not a crash
        st.session_state[K_IMPORT_RESULT] = (
            "refused",
            ([{"file": ebs_file.name, "row": None, "column": None, "reason": f"{type(exc).__name__}: {exc}"}], 0),
        )
    else:
        st.session_state[K_IMPORT_RESULT] = ("ok", summary_row(summary))
        st.cache_data.clear()
    finally:
        bar.empty()


def summary_row(summary: dict[str, Any]) -> dict[str, Any]:
    """The import summary as one table row: lists (extra / ignored columns) joined, other values as they are."""
    row: dict[str, Any] = {}
    for key, value in dict(summary).items():
        if isinstance(value, (list, tuple, set)):
            row[key] = ", ".join(str(v) for v in value) or "—"
        elif isinstance(value, (str, int, float, bool)) or value is None:
            row[key] = value
    return row


def export_section(ctx: w.PageContext) -> None:
    """Download label events or each labeler's current label as CSV."""
    st.subheader("Download labels")
    which = st.radio(
        "What",
        ["All label events", "Current label per EB and labeler"],
        horizontal=True,
        key="qa0-export-which",
        label_visibility="collapsed",
    )
    current = which.startswith("Current")
    url = ctx.settings.database_url
    requester = ctx.requester
    everyone = ctx.lead
    if not everyone:
        st.caption("You download your own labels; team leads (unlocked) download everyone's.")

    st.download_button(
        "Download CSV" if everyone else "Download my labels (CSV)",
        data=functools.partial(labels_csv, url, requester, current),
        file_name="qa0_labels_current.csv" if current else "qa0_label_events.csv",
        mime="text/csv",
        icon=":material/download:",
        key="qa0-download",
        on_click="ignore",
    )


def labels_csv(url: str, requester: Requester, current: bool) -> bytes:
    """The label download as CSV bytes: everyone's for an authorized lead, else the requester's own labels."""
    from qa0_label.ingest import export_labels_frame

    engine = w.engine_for(url)
    frame = export_labels_frame(engine=engine, current=current)
    with session_scope(engine) as session:  # decided when the file is built, not when the page was drawn
        scope = label_scope(session=session, requester=requester)
    return _csv_bytes(visible_export(frame, scope))


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    from qa0_label.ingest import spreadsheet_safe

    return spreadsheet_safe(frame).to_csv(index=False).encode("utf-8")


@st.cache_data(ttl=30, show_spinner=False, max_entries=8)
def _options(url: str) -> dict[str, Any]:
    with session_scope(w.engine_for(url)) as session:
        return filter_options(session=session)


def browse_section(ctx: w.PageContext) -> None:
    """Filter EBs by source, band, date and label state; open one in the read-only review view."""
    st.subheader("Browse EBs")
    opts = _options(ctx.settings.database_url)
    c1, c2, c3, c4, c5 = st.columns([2, 1, 2, 1.4, 2])
    source = c1.selectbox("Source", ["All"] + opts["sources"], key="qa0-f-source")
    band = c2.selectbox("Band", ["All"] + [f"B{b}" for b in opts["bands"]], key="qa0-f-band")
    first: date | None = opts["first"]
    last: date | None = opts["last"]
    span = c3.date_input(
        "Observed between",
        value=[first, last] if first and last else [],
        min_value=first,
        max_value=last,
        key="qa0-f-dates",
    )
    state = c4.selectbox("Label state", list(LABEL_STATES), key="qa0-f-state")
    uid_part = c5.text_input("uid contains", key="qa0-f-uid", max_chars=64)
    start, end = (span[0], span[1]) if isinstance(span, (tuple, list)) and len(span) == 2 else (None, None)
    flt = BrowseFilter(
        source=None if source == "All" else source,
        band=None if band == "All" else int(str(band)[1:]),
        start=start,
        end=end,
        label_state=state,
        uid_contains=uid_part or None,
    )
    with session_scope(ctx.engine) as session:
        # Blind review: counts, summaries and label-state filters see only what this viewer may see.
        scope = label_scope(session=session, requester=ctx.requester)
        frame, total = browse_ebs(session=session, flt=flt, limit=BROWSE_LIMIT, scope=scope)
    st.caption(f"{total:,} EBs match" + (f"; showing the newest {BROWSE_LIMIT}" if total > BROWSE_LIMIT else ""))
    event = st.dataframe(
        w.blanks_empty(frame.drop(columns=["eb_id"])),
        hide_index=True,
        width="stretch",
        height=420,
        key="qa0-browse",
        on_select="rerun",
        selection_mode="single-row",
        column_config={
            "uid": st.column_config.TextColumn("uid", width="medium"),
            "start_time": w.time_column("observed", width="medium"),
            "n_antennas": st.column_config.NumberColumn("antennas", format="%d"),
            "n_labels": st.column_config.NumberColumn("labels", format="%d"),
            "pwv_mm": st.column_config.NumberColumn("PWV mm", format="%.2f"),
            "elevation_deg": st.column_config.NumberColumn("elev °", format="%.1f"),
            "exec_fraction": st.column_config.NumberColumn("exec frac", format="%.2f"),
        },
    )
    rows = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    if rows and rows[0] < len(frame):
        uid = str(frame.iloc[rows[0]]["uid"])
        st.page_link(
            "qa0_label/ui/label.py",
            label="Open the selected EB in the review view",
            icon=":material/open_in_new:",
            query_params={"eb": uid},
        )
    else:
        st.caption("Select a row to open that EB in the review view (read-only, with its labels).")


def render() -> None:
    """Draw the Data page."""
    ctx = w.page_setup(title="Data")
    with st.sidebar:
        w.model_status_panel(ctx)
    w.show_flash()
    st.title("Data")
    browse_section(ctx)
    left, right = st.columns([3, 2], gap="large")
    with left:
        import_section(ctx)
    with right:
        export_section(ctx)
    import_result_section()


if __name__ == "__main__":
    render()
