"""Early warning page (service managers): places and agencies whose latest whole month ran
higher than a forecast made without it expected, filterable and downloadable. All figures come
from ``app.early_warning``; this page only draws them. Only the datasets the viewer may see are
judged (their access context goes into every call and every cache key), so the agency picker,
the table and the file list nothing else; the file is recorded in the audit trail when fetched."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import early_warning as ew
from app.dashboard import access_ui, ui
from app.filters import Filter

DOWNLOAD_COLUMNS = [c for c in ew.COLUMNS if c != "h3_cells"]


LATEST = "Latest whole month"


@st.cache_data(ttl=600)
def months(stamp, f: Filter) -> list[str]:
    return ew.months_available(ui.warehouse(stamp), f)


@st.cache_data(ttl=600, show_spinner="Comparing each place's month with its forecast…")
def flagged(stamp, f: Filter, month: str | None) -> pd.DataFrame:
    return ew.warnings(ui.warehouse(stamp), f, month=month)


def main() -> None:
    ctx = access_ui.require("early_warning")
    ui.current_view()  # the shared sidebar's view: this page judges every dataset the viewer sees
    f = Filter(access=ctx)
    st.title("Early warning")
    st.caption(
        "Places whose latest whole month ran higher than expected. Expected figures are "
        "estimates from each place's own history, with their prediction interval."
    )
    stamp = ui.db_version()
    choice = st.selectbox(
        "Month",
        [LATEST, *months(stamp, f)],
        key="ew_month",
        format_func=lambda m: m if m == LATEST else f"{pd.Timestamp(m):%B %Y}",
        help="Each dataset's latest whole month, or an earlier month judged against the months before it.",
    )
    try:
        frame = flagged(stamp, f, None if choice == LATEST else choice)
    except ValueError as exc:
        st.error(f"Early warning could not be worked out: {exc}")
        return
    with st.expander("How a place comes to be flagged"):
        st.caption(ew.describe())
    if frame.empty:
        st.success("No place ran higher than expected in that month.")
        return
    left, right = st.columns(2)
    agencies = sorted(frame["agency"].unique())
    chosen = left.multiselect("Agencies", agencies, default=agencies, key="ew_agencies")
    kinds = right.multiselect(
        "Places", list(ew.KINDS.values()), default=list(ew.KINDS.values()), key="ew_kinds"
    )
    kind_keys = [k for k, label in ew.KINDS.items() if label in kinds]
    shown = frame[frame["agency"].isin(chosen) & frame["place_kind"].isin(kind_keys)]
    st.markdown(f"**{len(shown)}** place and agency pairs higher than expected.")
    table = pd.DataFrame(
        {
            "Place": shown["place_name"],
            "Kind": shown["place_kind"].map(ew.KINDS),
            "Data": shown["dataset_title"],
            "Agency": shown["agency"],
            "What happened": shown["sentence"],
        }
    )
    st.dataframe(table, hide_index=True, width="stretch")
    access_ui.download_button(
        "Download the list (CSV)",
        lambda: shown[DOWNLOAD_COLUMNS].to_csv(index=False),
        file_name="higher_than_expected.csv",
        mime="text/csv",
        key="ew_download",
        what=f"early warning: {choice}",
        filter=f.with_(agencies=tuple(chosen)).describe(),
        rows=len(shown),
        ctx=ctx,
    )
    with st.expander("Analyst detail"):
        st.dataframe(shown[DOWNLOAD_COLUMNS], hide_index=True, width="stretch")


main()
