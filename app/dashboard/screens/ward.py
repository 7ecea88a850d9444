"""Ward profile (councillors): headline figures, trends per agency, categories, hotspots and
their coverage, overlapping agencies, and a printable profile to download."""

from __future__ import annotations

import streamlit as st

from app import profile
from app.dashboard import cached, ui
from app.disclosure import DEFAULT_RULE

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

selected = cached.selected_datasets(version, f)
kind = profile.headline_kind(f.kinds, set(selected["kind"]))
head_filter = f.with_(kinds=(kind,))
wards = cached.wards(version, head_filter)
head = profile.headline(wards, code, kind)
measure = head["measure"]
period = f"{wards['period_start'].iloc[0]} to {wards['period_end'].iloc[0]}"
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
ui.trend_chart(trend, key="ward-series")
trend_note = cached.coverage_note(version, f)
if trend_note:
    st.caption(ui.plain(trend_note))

table, coverage = profile.hotspots_in_ward(
    cached.hotspot_cells(version, f, view.res, view.k)[0],
    cached.classes(version, f, view.res, view.k),
    cached.emerging_cells(version, f, view.res, view.k),
    shapes.set_index("ward_code").loc[code, "geojson"],
)

st.subheader("Hotspots in this ward")
if len(table):
    ui.hotspot_table(table, key="ward_hotspots")
    if note := cached.coverage_note(version, f):
        st.warning(note)
else:
    st.info(
        "No hotspot lies in this ward: neither the selected records together nor any agency's own "
        "demand is significantly concentrated (95 %) here."
    )
patterns = profile.patterns_in_ward(
    cached.emerging_cells(version, f, view.res, view.k), shapes.set_index("ward_code").loc[code, "geojson"]
)
if patterns:
    listed = "; ".join(f"{name}: {n} {'cell' if n == 1 else 'cells'}" for name, n in patterns.items())
    st.markdown(f"**Patterns over time here:** {ui.plain(listed)}")
agencies = (
    cached.ward_agencies(version, f, view.res, view.k).set_index("ward_code").loc[code, "hot_demand_agencies"]
)
st.markdown(f"**Agencies whose demand is hot here:** {ui.plain(agencies or 'none')}")
interventions = "intervention" in set(selected["kind"])
cover = profile.coverage_sentence(coverage, interventions)
st.markdown(f"**Intervention coverage of its hotspots:** {ui.plain(cover)}")

st.subheader("Categories")
cats = cached.categories(version, f, ward=code)
cats["records"] = [DEFAULT_RULE.label(v, s) for v, s in zip(cats["count"], cats["suppressed"], strict=True)]
cats = cats[["agency", "title", "kind", "category", "records"]].rename(columns={"title": "dataset"})
st.dataframe(cats, hide_index=True, width="stretch")

ward_profile = profile.WardProfile(
    code, head, agencies, trend, cats, table, coverage, period, trend_note or "", interventions
)
page = profile.to_html(ward_profile)
st.download_button(
    "Download printable profile (HTML)",
    page,
    file_name=f"ward-profile-{code}.html",
    mime="text/html",
    key="profile_download",
)
st.download_button(
    "Download profile data (JSON)",
    profile.to_json(ward_profile),
    file_name=f"ward-profile-{code}.json",
    mime="application/json",
    key="profile_json",
)
ui.provenance(ui.warehouse(), view, ["ward profile"])
