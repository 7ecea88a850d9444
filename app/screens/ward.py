"""Ward profile (councillors): headline figures, trends per agency, categories, hotspots and
their coverage, overlapping agencies, and a printable profile to download."""

from __future__ import annotations

import streamlit as st

from app import profile, ui, views
from app.disclosure import DEFAULT_RULE

view = ui.sidebar()
version = ui.db_version()
f = view.filter
shapes = views.ward_shapes(version)
codes = shapes.sort_values("ward_name")["ward_code"].tolist()
names = dict(zip(shapes["ward_code"], shapes["ward_name"], strict=True))
wanted = st.query_params.get("ward")
code = st.selectbox(
    "Ward",
    codes,
    index=codes.index(wanted) if wanted in codes else 0,
    format_func=lambda c: f"{names[c]} ({c})",
    key="ward_pick",
)
st.query_params["ward"] = code
st.title(f"Ward profile: {names[code]}")

wards = views.wards(version, f)
head = profile.headline(wards, code)
period = f"{wards['period_start'].iloc[0]} to {wards['period_end'].iloc[0]}"
st.caption(f"Period {period}. Figures of partners' and restricted datasets are protected.")
c1, c2, c3 = st.columns(3)
c1.metric("Records", DEFAULT_RULE.label(head["count"], head["suppressed"]))
rate = head["rate_per_1000"]
city = head["city_rate_per_1000"]
c2.metric(
    "Rate per 1,000 residents",
    f"{rate:,.1f}" if rate == rate else "n/a",
    delta=f"{rate - city:+.1f} against the city" if city and rate == rate else None,
    delta_color="off",
)
c3.metric(
    "Change on the previous period",
    f"{head['change_pct']:+.0f} %" if head["change_pct"] == head["change_pct"] else "n/a",
    help="Against the same length of time just before the period. It reads n/a when there is "
    "nothing to compare with: the data does not reach back that far (as for a period that starts "
    "with the data; choose a later start in the filter), the earlier count is zero, or a count "
    "is suppressed.",
)

st.subheader("Trend per agency")
trend = views.trend(version, f, "month", ward=code)
ui.trend_chart(trend, key="ward-series")

table, coverage = profile.hotspots_in_ward(
    views.hotspot_cells(version, f, view.res, view.k)[0],
    views.classes(version, f, view.res, view.k),
    views.emerging_cells(version, f, view.res, view.k),
    shapes.set_index("ward_code").loc[code, "geojson"],
)

st.subheader("Hotspots in this ward")
if len(table):
    ui.hotspot_table(table, key="ward_hotspots")
    if note := views.coverage_note(version, f):
        st.warning(note)
else:
    st.info("No significant hotspot (95 %) of the selected records lies in this ward.")
agencies = (
    views.ward_agencies(version, f, view.res, view.k).set_index("ward_code").loc[code, "hot_demand_agencies"]
)
st.markdown(f"**Agencies whose demand is hot here:** {agencies or 'none'}")
st.markdown(
    "**Intervention coverage of its hotspots:** "
    + (", ".join(f"{k}: {v}" for k, v in coverage.items()) or "no hotspots")
)

st.subheader("Categories")
cats = views.categories(version, f, ward=code)
cats["records"] = [DEFAULT_RULE.label(v, s) for v, s in zip(cats["count"], cats["suppressed"], strict=True)]
cats = cats[["agency", "kind", "category", "records"]]
st.dataframe(cats, hide_index=True, width="stretch")

ward_profile = profile.WardProfile(code, head, agencies, trend, cats, table, coverage, period)
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
