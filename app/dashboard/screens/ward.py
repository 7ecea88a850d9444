"""Ward profile (councillors): a briefing first (rank, what rose or fell, what is more common
here, hotspot areas and whether interventions reach them), then the headline figures, the
trend with the compared years marked, the ranking of all wards, and the analyst's detail folded
away; and a profile to print."""

from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from app import areas, briefing, early_warning, profile
from app.dashboard import access_ui, cached, map_links, ui
from app.disclosure import DEFAULT_RULE
from app.filters import Filter, period_words

OWN, PERIOD = "own", "period"
COMPARE = {
    OWN: "Each dataset's last 12 months against the 12 before",
    PERIOD: "The filter's period against the one just before it",
}


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def ward_briefing(stamp, f: Filter, code: str, res: int, k: int, own: bool) -> briefing.Briefing:
    inputs = cached.briefing_inputs(stamp, f, own)
    return briefing.ward_briefing_from(
        inputs,
        briefing.ward_inputs(ui.warehouse(stamp), inputs, code),
        areas=cached.demand_areas(stamp, f, res, k),
    )


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def cell_split(stamp, f: Filter, cells: tuple[int, ...], code: str) -> pd.DataFrame:
    return areas.cell_ward_split(ui.warehouse(), f, list(cells), code)


def ranking_chart(table: pd.DataFrame, code: str, key: str) -> None:
    """Every ranked ward's rate as a bar, the chosen ward in orange."""
    import plotly.graph_objects as go

    ranked = table.dropna(subset=["Demand per 1,000 residents"])
    if ranked.empty:
        return
    colours = ["#e6550d" if c == code else "#9e9ac8" for c in ranked["ward_code"]]
    chart = go.Figure(
        go.Bar(
            x=ranked["Demand per 1,000 residents"],
            y=[html.escape(n) for n in ranked["Ward"]],
            orientation="h",
            marker_color=colours,
            hovertemplate="%{y}: %{x:,.1f} per 1,000<extra></extra>",
        )
    )
    chart.update_layout(
        yaxis={"autorange": "reversed"},
        xaxis_title="Demand per 1,000 residents",
        height=max(300, 18 * len(ranked) + 80),
        margin={"l": 10, "r": 10, "t": 10, "b": 40},
    )
    st.plotly_chart(chart, width="stretch", key=key)


def change_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The changes tested, with plain headers: calls first, then the largest."""
    if frame.empty:
        return pd.DataFrame()
    out = frame.assign(
        what=[briefing.unit_words(r) for r in frame.itertuples()],
        size=(frame["current"] - frame["previous"]).abs(),
        called=frame["verdict"].isin(["rising", "falling"]),
    ).sort_values(["called", "size"], ascending=[False, False])
    return pd.DataFrame(
        {
            "What": out["what"],
            "Verdict": out["verdict"],
            "Records": out["current_label"],
            "Year before": out["previous_label"],
            "Change": [
                briefing.pct_words(b, a) if t else ""
                for a, b, t in zip(out["current"], out["previous"], out["tested"], strict=True)
            ],
            "Window": [period_words(*w) for w in out["current_window"]],
            "Kind": out["kind"],
        }
    ).reset_index(drop=True)


ctx = access_ui.require("ward")  # every role may open it; a viewer not let in is stopped here
view = ui.current_view()
version = ui.db_version()
f = view.filter
shapes = cached.ward_shapes(version)
codes = shapes.sort_values("ward_name")["ward_code"].tolist()
names = dict(zip(shapes["ward_code"], shapes["ward_name"], strict=True))
wanted = st.query_params.get("ward")
code = st.selectbox(
    "Ward",
    codes,
    index=codes.index(wanted) if wanted in codes else 0,
    format_func=lambda c: profile.ward_label(c, names[c]),
    key="ward_pick",
)
if wanted and wanted not in codes:
    st.warning(f"No ward has the code {ui.plain(wanted)}: showing {ui.plain(names[code])} instead.")
st.query_params["ward"] = code
st.title(f"Ward profile: {ui.plain(profile.ward_label(code, names[code]))}")
ward_geojson = shapes.set_index("ward_code").loc[code, "geojson"]

has_period = f.start is not None or f.end is not None
compare = st.selectbox(
    "Compare",
    [OWN, PERIOD] if has_period else [OWN],
    format_func=COMPARE.get,
    key="ward_compare",
    help="The summary's changes, and the years the trend marks. Choose a period in the filter to "
    "compare it with the one just before it instead.",
)
brief = ward_briefing(version, f, code, view.res, view.k, compare == OWN)

st.subheader("Summary")
sentences = [s.text for s in brief.sentences]
if warning := early_warning.ward_sentence(ui.warehouse(), code, flags=cached.ward_warnings(version, f)):
    sentences.append(warning)
st.markdown("\n".join(f"- {ui.plain(s)}" for s in sentences))
with st.expander("How these sentences are worked out"):
    st.caption(ui.plain(brief.method))

selected = cached.selected_datasets(version, f)
kind = profile.headline_kind(f.kinds, set(selected["kind"]))
head_filter = f.with_(kinds=(kind,))
wards = cached.wards(version, head_filter)
head = profile.headline(wards, code, kind)
measure = head["measure"]
period = f"{wards['period_start'].iloc[0]} to {wards['period_end'].iloc[0]}"
st.subheader("Headline figures")
st.caption(
    f"Period {period}. Headline figures count {measure.lower()} only"
    + (" (choose Interventions under Records to see those)." if kind == "demand" else ".")
    + " Figures of partners' and restricted datasets are protected."
)
c1, c2, c3 = st.columns(3)
c1.metric(profile.RECORDS[measure], DEFAULT_RULE.label(head["count"], head["suppressed"]))
if head["rates"]:
    rate = head["rate_per_1000"]
    city = head["city_rate_per_1000"]
    c2.metric(
        f"{measure} per 1,000 residents",
        f"{rate:,.1f}" if rate == rate else "n/a",
        delta=f"{rate - city:+,.1f} against the city" if city and rate == rate else None,
        delta_color="off",
        help=None if rate == rate else "The boundary file gives no population for this ward.",
    )
c3.metric(
    "Change on the previous period",
    profile.change_text(head),
    help="Against the same length of time just before, over months that every selected dataset "
    "covers in both periods. Without a period in the filter: the last twelve months of data "
    "against the twelve before.",
)
st.caption(ui.plain(f"Change on the previous period: {profile.change_sentence(head)}"))
if head["rates"] and head["rate_per_1000"] != head["rate_per_1000"]:
    st.caption("No rate: the boundary file gives no population for this ward.")
if head_note := cached.coverage_note(version, head_filter):
    st.caption(ui.plain(head_note))

st.subheader("Trend per dataset")
trend = cached.trend(version, f, "month", ward=code)
groups = profile.window_groups(brief.windows)
ui.trend_chart(trend, key="ward-series", windows=groups)
trend_note = cached.coverage_note(version, f)
if trend_note:
    st.caption(ui.plain(trend_note))

st.subheader("What changed")
changed = change_table(brief.changes)
if len(changed):
    st.dataframe(changed, hide_index=True, width="stretch", key="ward_changes")
else:
    st.info("No change could be tested under this filter.")

st.subheader("All wards ranked")
if len(brief.ranking) and brief.ranking["rank"].notna().any():
    measures = list(dict.fromkeys(brief.ranking["measure"]))
    chosen = st.selectbox("Rank by", measures, key="ward_rank_by", format_func=lambda m: f"Demand: {m}")
    ranked = profile.ranking_table(brief.ranking, chosen)
    ranking_chart(ranked, code, key="ward-ranking")
    st.dataframe(
        ranked.style.apply(
            lambda row: ["background-color: #fdd0a2" if row["ward_code"] == code else ""] * len(row), axis=1
        ),
        hide_index=True,
        width="stretch",
        key="ward_ranking",
        column_order=["Rank", "Ward", "Demand per 1,000 residents", "Demand records"],
        column_config={"Demand per 1,000 residents": st.column_config.NumberColumn(format="%.1f")},
    )
    st.caption("Click a column's header to sort by it. The chosen ward is highlighted.")
else:
    st.info(ui.plain(" ".join(s.text for s in brief.sentences if s.topic == "rank")))

st.subheader("More common here than across the city")
more = brief.quotients[brief.quotients["more_common"]]
if len(more):
    st.dataframe(
        pd.DataFrame(
            {
                "Category": more["category"].map(briefing.category_label),
                "Dataset": more["title"],
                "Share here": [briefing.share_words(v) for v in more["share_here"]],
                "Share across the city": [briefing.share_words(v) for v in more["share_city"]],
                "Times as common": more["lq"].round(1),
            }
        ),
        hide_index=True,
        width="stretch",
        key="ward_quotients",
    )
else:
    st.info("No category is clearly more common here than across the city.")

st.subheader("Hotspot areas")
agencies = (
    cached.ward_agencies(version, f, view.res, view.k).set_index("ward_code").loc[code, "hot_demand_agencies"]
)
interventions = "intervention" in set(selected["kind"])
filter_params = map_links.current_filter_params()
area_layers = map_links.area_layers(ctx)
if len(brief.areas):
    # The printed profile has no links: the column is added here, beside each area's name.
    shown_areas = profile.area_table(brief.areas)
    shown_areas.insert(
        1,
        map_links.LINK_HEADER,
        [map_links.map_link(r, filter_params, area_layers) for _, r in brief.areas.iterrows()],
    )
    st.dataframe(
        shown_areas,
        hide_index=True,
        width="stretch",
        key="ward_areas",
        column_config={map_links.LINK_HEADER: map_links.link_column()},
    )
else:
    # The areas are where all the selected demand together concentrates; one agency's demand
    # alone can still be hot in some of the ward's hexagons (listed below): said so, not denied.
    alone = (
        f" The demand of {agencies} is hot on its own in some of its hexagons (below)." if agencies else ""
    )
    st.info(
        "No area where the selected demand, all together, concentrates (95 % confidence) touches "
        "this ward." + ui.plain(alone)
    )

table, coverage = profile.hotspots_in_ward(
    cached.hotspot_cells(version, f, view.res, view.k)[0],
    cached.classes(version, f, view.res, view.k),
    cached.emerging_cells(version, f, view.res, view.k),
    ward_geojson,
)
st.markdown(f"**Agencies whose demand is hot here:** {ui.plain(agencies or 'none')}")
cover = profile.coverage_sentence(coverage, interventions)
st.markdown(f"**Intervention coverage of its hotspot cells:** {ui.plain(cover)}")

with st.expander("Analyst detail: hotspot cells, z-scores and the tests"):
    if len(table):
        split = cell_split(version, f, tuple(int(h, 16) for h in table["h3_cell"]), code)
        split = split.set_index("h3_cell")
        detail = table.assign(
            in_ward=[split.loc[h, "in_ward_label"] for h in table["h3_cell"]],
            other_wards=[", ".join(split.loc[h, "other_wards"]) for h in table["h3_cell"]],
        ).rename(columns={"records": "records in the cell", "in_ward": "records in this ward",
                          "other_wards": "cell also in"})  # fmt: skip
        # A hexagon is named by the hotspot area it lies in, else by this ward (its centre is in it):
        # never by its id, which says nothing on the map.
        mine = brief.areas if len(brief.areas) else pd.DataFrame({"name": [], "h3_cells": []})
        in_area = {c: str(n) for n, cells in zip(mine["name"], mine["h3_cells"], strict=True) for c in cells}
        detail[map_links.LINK_HEADER] = [
            map_links.place_link(
                f"hexagon in {in_area.get(h, names[code])}",
                map_links.cells_view([h]),
                filter_params,
                area_layers,
            )
            for h in table["h3_cell"]
        ]
        order = [
            "h3_cell",
            map_links.LINK_HEADER,
            "records in this ward",
            "records in the cell",
            "cell also in",
        ]
        ui.hotspot_table(
            detail[order + [c for c in detail.columns if c not in order]],
            key="ward_hotspots",
            extra={map_links.LINK_HEADER: map_links.link_column()},
        )
        st.caption(
            "A cell that reaches into other wards shows the records inside this ward beside the cell's "
            "total; each figure is released on its own."
        )
        if note := cached.coverage_note(version, f):
            st.warning(note)
    else:
        st.info(
            "No hotspot cell lies in this ward: neither the selected records together nor any agency's own "
            "demand is significantly concentrated (95 %) here."
        )
    patterns = profile.patterns_in_ward(cached.emerging_cells(version, f, view.res, view.k), ward_geojson)
    if patterns:
        listed = "; ".join(f"{name}: {n} {'cell' if n == 1 else 'cells'}" for name, n in patterns.items())
        st.markdown(f"**Patterns over time here:** {ui.plain(listed)}")
    if len(brief.changes):
        st.markdown("**Every change tested** (p: conditional binomial test; q: Benjamini-Hochberg)")
        st.dataframe(
            brief.changes.drop(columns=["current_window", "previous_window"]).assign(
                window=[period_words(*w) for w in brief.changes["current_window"]]
            ),
            hide_index=True,
            width="stretch",
            key="ward_tests",
        )
    if len(brief.quotients):
        st.markdown("**Location quotients** (one-sided binomial test against the rest of the city)")
        st.dataframe(brief.quotients, hide_index=True, width="stretch", key="ward_lq")

st.subheader("Categories")
cats = cached.categories(version, f, ward=code)
cats["records"] = [DEFAULT_RULE.label(v, s) for v, s in zip(cats["count"], cats["suppressed"], strict=True)]
cats = cats[["agency", "title", "kind", "category", "records"]].rename(columns={"title": "dataset"})
cats["category"] = cats["category"].map(briefing.category_label)
st.dataframe(cats, hide_index=True, width="stretch")

ward_profile = profile.WardProfile(
    code,
    head,
    agencies,
    trend,
    cats,
    table,
    coverage,
    period,
    trend_note or "",
    interventions,
    briefing=brief,
    ward_geojson=ward_geojson,
    neighbours=tuple(
        (str(r.ward_name), r.geojson) for r in shapes[shapes["ward_code"] != code].itertuples() if r.geojson
    ),
)
# Made when fetched, and recorded in the audit trail with the ward and the filter.
access_ui.download_button(
    "Download printable profile (HTML, prints on A4)",
    lambda: profile.to_html(ward_profile),
    file_name=f"ward-profile-{code}.html",
    mime="text/html",
    key="profile_download",
    what=f"ward profile {code} (printable)",
    filter=f.describe(),
)
access_ui.download_button(
    "Download profile data (JSON)",
    lambda: profile.to_json(ward_profile),
    file_name=f"ward-profile-{code}.json",
    mime="application/json",
    key="profile_json",
    what=f"ward profile {code} (data)",
    filter=f.describe(),
)
ui.provenance(ui.warehouse(), view, ["ward profile"])
