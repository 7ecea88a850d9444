"""Priorities page (service managers): places ranked by the demand expected next month across
the agencies chosen, with weights, against the interventions already there. All figures come
from ``app.priorities``; this page only draws them. Only the datasets the viewer may see take
part (their access context goes into every call and every cache key), and the file offered is
recorded in the audit trail when it is fetched."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import priorities as pr
from app.access import AccessContext
from app.dashboard import access_ui, cached, map_links, ui
from app.filters import Filter

KINDS = {"Wards": "ward", "Hotspot areas": "area"}
SCORE_FORMAT = "%,.1f"  # 12,345.6


@st.cache_data(ttl=600)
def agencies(stamp, ctx: AccessContext) -> list[str]:
    return pr.demand_agencies(ui.warehouse(stamp), ctx)


@st.cache_data(ttl=600, show_spinner="Forecasting each place's demand…")
def ranking(
    stamp, weights: tuple[tuple[str, float], ...], kind: str, horizon: str, ctx: AccessContext
) -> pr.Ranking:
    return pr.rank(ui.warehouse(stamp), dict(weights), kind=kind, horizon=horizon, access=ctx)


def place_links(
    frame: pd.DataFrame, stamp, ctx: AccessContext, datasets: tuple[str, ...]
) -> list[str | None]:
    """Each ranked place's link to the map: a hotspot area centred on its cells with the
    hotspot layer (or the records' density, for a role without hotspot layers), a ward fitted
    whole with the ward figures and outlines. An area was found in the ranked agencies' demand
    datasets (``datasets``) over their whole period: its link opens the map on those, so the
    hotspot layer there shows the area's own hot cells."""
    filter_params = map_links.current_filter_params()
    if (frame["place_kind"] == "area").any():
        views = [map_links.cells_view(cells) for cells in frame["h3_cells"]]
        layers = map_links.area_layers(ctx)
        filter_params = {"ds": ",".join(datasets)}
    else:
        outlines = cached.ward_shapes(stamp).set_index("ward_code")["geojson"].to_dict()
        views = [map_links.shape_view(outlines.get(p)) for p in frame["place_id"]]
        layers = map_links.WARD_MAP_LAYERS
    return [
        map_links.place_link(str(name), view, filter_params, layers)
        for name, view in zip(frame["place_name"], views, strict=True)
    ]


def weight_key(agency: str) -> str:
    """The widget key of an agency's weight."""
    return f"pr_w_{agency}"


def main() -> None:
    ctx = access_ui.require("priorities")
    ui.current_view()  # the shared sidebar's view: this page ranks on its own choices below
    st.title("Priorities")
    st.caption("Where to send resources first: places ranked by the demand expected next, as estimates.")
    stamp = ui.db_version()
    known = agencies(stamp, ctx)
    if not known:
        st.info("No demand data is loaded: there is nothing to forecast.")
        return
    # Every demand agency counts, each as much as the others, until the manager says otherwise:
    # a first view that ranks on one agency's demand alone would pass for the whole picture.
    picked = st.multiselect("Agencies whose demand counts", known, default=known, key="pr_agencies")
    weights = {}
    if picked:
        columns = st.columns(min(len(picked), 4))
        for i, agency in enumerate(picked):
            # Keyed by the agency, so a weight stays with its agency when another is removed.
            weights[agency] = columns[i % len(columns)].number_input(
                f"Weight: {agency}",
                min_value=0.0,
                max_value=10.0,
                value=1.0,
                step=0.5,
                key=weight_key(agency),
            )
    left, right = st.columns(2)
    kind = KINDS[left.radio("Places", list(KINDS), horizontal=True, key="pr_kind")]
    horizon = right.radio("Period", ["next month", "next quarter"], horizontal=True, key="pr_horizon")
    if not any(w > 0 for w in weights.values()):
        st.info("Choose at least one agency with a weight above zero.")
        return
    try:
        result = ranking(stamp, tuple(sorted(weights.items())), kind, horizon, ctx)
    except ValueError as exc:
        st.error(f"The ranking could not be made: {exc}")
        return
    st.info(result.description)
    frame = result.frame
    ranked_datasets = tuple(sorted(set(result.units["dataset"])))  # where the areas were found
    counted = tuple(a for a, w in sorted(weights.items()) if w > 0)
    table = pd.DataFrame(
        {
            "Rank": frame["rank"],
            "Place": frame["place_name"],
            map_links.LINK_HEADER: place_links(frame, stamp, ctx, ranked_datasets),
            "Weighted expected demand": frame["score"],
            "Expected (estimate, 80 % interval)": frame["expected_demand"],
            "Interventions": frame["intervention_status"],
            "What each agency did here (last 12 months)": frame["interventions"],
        }
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            # Read with thousands separators; the download keeps the plain number.
            "Weighted expected demand": st.column_config.NumberColumn(format=SCORE_FORMAT),
            map_links.LINK_HEADER: map_links.link_column(),
        },
    )
    access_ui.download_button(
        "Download for tasking (CSV)",
        lambda: frame.drop(columns="h3_cells").to_csv(index=False),
        file_name="priorities.csv",
        mime="text/csv",
        key="pr_download",
        what=f"priorities: {kind}s, {horizon}",
        filter=Filter(agencies=counted).describe(),
        rows=len(frame),
        ctx=ctx,
    )
    with st.expander("How good are these forecasts? (backtest)"):
        units = result.units
        for r in units.itertuples():
            st.markdown(
                f"**{ui.plain(r.title)} ({ui.plain(r.agency)})**, weight {r.weight:g}: {ui.plain(r.why)} "
                f"Forecast for {pd.Timestamp(r.period_start):%d %B %Y} to "
                f"{pd.Timestamp(r.period_end):%d %B %Y}."
            )


main()
