"""Early warning page (service managers): places and agencies whose latest whole month ran
higher than a forecast made without it expected (when none did, the page says so and opens on
the most recent month that has any), filterable and downloadable. All figures come
from ``app.early_warning``; this page only draws them. Only the datasets the viewer may see are
judged (their access context goes into every call and every cache key), so the agency picker,
the table and the file list nothing else; the file is recorded in the audit trail when fetched."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import early_warning as ew
from app.access import AccessContext
from app.dashboard import access_ui, cached, map_links, ui
from app.filters import Filter

DOWNLOAD_COLUMNS = [c for c in ew.COLUMNS if c != "h3_cells"]


LATEST = "Latest whole month"


@st.cache_data(ttl=600)
def months(stamp, f: Filter) -> list[str]:
    return ew.months_available(ui.warehouse(stamp), f)


@st.cache_data(ttl=600, show_spinner="Comparing each place's month with its forecast…")
def flagged(stamp, f: Filter, month: str | None) -> pd.DataFrame:
    return ew.warnings(ui.warehouse(stamp), f, month=month)


@st.cache_data(ttl=600, show_spinner="Comparing each place's recent months with their forecasts…")
def recent(stamp, f: Filter) -> ew.Recent:
    return ew.recent_warnings(ui.warehouse(stamp), f)


def opening(stamp, f: Filter) -> tuple[pd.DataFrame, str | None]:
    """The first view: the latest month's flags, or, when it has none, a sentence saying so and
    the most recent month that has some. Returns the flags and the month they belong to."""
    found = recent(stamp, f)
    if not found.latest:
        return found.frame, None
    if len(found.latest) == 1:
        latest = f"{ew.month_words(found.latest[0])}, the latest whole month"
    else:  # datasets ending in different months: each was judged in its own latest
        latest = "each dataset's latest whole month (" + ", ".join(map(ew.month_words, found.latest)) + ")"
    if found.month is not None and found.month in found.latest:
        return found.frame, found.month
    if found.month is None:
        before = found.searched - 1
        earlier = {0: "", 1: ", nor in the month before it"}.get(
            before, f", nor in the {before} months before it"
        )
        st.success(f"No place ran higher than expected in {latest}{earlier}.")
        return found.frame, None
    st.info(
        f"No place ran higher than expected in {latest}. Shown below: "
        f"{ew.month_words(found.month)}, the most recent month with places higher than expected "
        "(pick another month above)."
    )
    return found.frame, found.month


def place_links(flags: pd.DataFrame, stamp, ctx: AccessContext) -> list[str | None]:
    """Each flagged place's link to the map: a hotspot area centred on its cells with the
    hotspot layer (or the records' density, for a role without hotspot layers), a ward
    fitted whole with the ward figures and outlines. An area is its dataset's own (where that
    dataset's records concentrate over its whole period): its link opens the map on that
    dataset, so the hotspot layer there shows the area's own hot cells."""
    filter_params = map_links.current_filter_params()
    area_layers = map_links.area_layers(ctx)
    outlines = cached.ward_shapes(stamp).set_index("ward_code")["geojson"].to_dict()
    links = []
    for row in flags.itertuples():
        if row.place_kind == "area":
            view, layers, under = map_links.cells_view(row.h3_cells), area_layers, {"ds": row.dataset}
        else:
            view, layers = map_links.shape_view(outlines.get(row.place_id)), map_links.WARD_MAP_LAYERS
            under = filter_params
        links.append(map_links.place_link(str(row.place_name), view, under, layers))
    return links


def main() -> None:
    ctx = access_ui.require("early_warning")
    ui.current_view()  # the shared sidebar's view: this page judges every dataset the viewer sees
    f = Filter(access=ctx)
    st.title("Early warning")
    st.caption(
        "Places whose month ran higher than expected: the latest whole month, or when it has "
        "none the most recent month that has. Expected figures are "
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
        if choice == LATEST:
            frame, month = opening(stamp, f)
        else:
            frame, month = flagged(stamp, f, choice), choice
    except ValueError as exc:
        st.error(f"Early warning could not be worked out: {exc}")
        return
    with st.expander("How a place comes to be flagged"):
        st.caption(ew.describe())
    if frame.empty:
        if choice != LATEST:
            st.success(f"No place ran higher than expected in {ew.month_words(choice)}.")
        return
    shown_months = sorted({str(m)[:7] for m in frame["month"]}, reverse=True) or [month]
    st.subheader("Higher than expected in " + " and ".join(ew.month_words(m) for m in shown_months))
    left, right = st.columns(2)
    agencies = sorted(frame["agency"].unique())
    # Another month flags other agencies: its list opens whole again, not narrowed to the
    # agencies the previous month happened to flag.
    if st.session_state.get("_ew_offered") != agencies:
        st.session_state["_ew_offered"] = agencies
        st.session_state["ew_agencies"] = agencies
    chosen = left.multiselect("Agencies", agencies, key="ew_agencies")
    kinds = right.multiselect(
        "Places", list(ew.KINDS.values()), default=list(ew.KINDS.values()), key="ew_kinds"
    )
    kind_keys = [k for k, label in ew.KINDS.items() if label in kinds]
    shown = frame[frame["agency"].isin(chosen) & frame["place_kind"].isin(kind_keys)]
    pairs = "place and agency pair" if len(shown) == 1 else "place and agency pairs"
    st.markdown(f"**{len(shown):,}** {pairs} higher than expected.")
    table = pd.DataFrame(
        {
            "Place": shown["place_name"],
            map_links.LINK_HEADER: place_links(shown, stamp, ctx),
            # What a manager reads first, before it scrolls out of sight.
            "What happened": shown["sentence"],
            "Kind": shown["place_kind"].map(ew.KINDS),
            "Data": shown["dataset_title"],
            "Agency": shown["agency"],
        }
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={map_links.LINK_HEADER: map_links.link_column()},
    )
    access_ui.download_button(
        "Download the list (CSV)",
        lambda: shown[DOWNLOAD_COLUMNS].to_csv(index=False),
        file_name="higher_than_expected.csv",
        mime="text/csv",
        key="ew_download",
        what=f"early warning: {', '.join(shown_months)}",
        filter=f.with_(agencies=tuple(chosen)).describe(),
        rows=len(shown),
        ctx=ctx,
    )
    with st.expander("Analyst detail"):
        st.dataframe(
            shown[DOWNLOAD_COLUMNS],
            hide_index=True,
            width="stretch",
            # Figures read with thousands separators; the file keeps plain numbers.
            column_config={
                c: st.column_config.NumberColumn(format="%,.2f" if c == "expected" else "%,.0f")
                for c in ("observed", "expected", "lower", "upper")
            },
        )


main()
