"""What every page shares: the warehouse connection, the sidebar filter kept in the URL, the
legend and the provenance note. Reads widgets and draws; all figures come from the engine."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from app import quality
from app.db import version, warehouse_path
from app.disclosure import DEFAULT_RULE
from app.filters import Filter, categories_in, data_period
from app.warehouse import OutdatedWarehouse, open_readonly, session

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MAX_HEXES = 50_000
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def plain(text: object) -> str:
    """A name from a file or a catalogue (agency, ward, dataset, attribution) made safe to put
    inside Markdown: every character Markdown or HTML would act on is escaped, so the name is
    shown as the text it is, never rendered as a link, a heading or markup."""
    return _MARKDOWN.sub(r"\\\1", str(text)).replace("\n", " ")


@st.cache_resource(max_entries=2)
def _connection(path: str, stamp: tuple[int, int]):
    return open_readonly(path)


def warehouse():
    """A cursor on the current warehouse (each session thread gets its own cursor)."""
    path = warehouse_path()
    if not path.exists():
        st.error(f"No warehouse at {path}. Run `make run` (or `python -m app load`) first.")
        st.stop()
    try:
        return session(_connection(str(path), version(path)).cursor())
    except OutdatedWarehouse as exc:
        st.error(str(exc))
        st.stop()


def db_version() -> tuple[int, int]:
    path = warehouse_path()
    if not path.exists():
        warehouse()  # says what to do, and stops the page
    return version(path)


@dataclass(frozen=True)
class View:
    """The shared filter plus the map settings, as the sidebar (and the URL) hold them."""

    filter: Filter
    res: int
    k: int


@st.cache_data(ttl=600)
def catalogue_frame(stamp: tuple[int, int]) -> pd.DataFrame:
    frame = quality.catalogue(warehouse())[["id", "title", "agency", "kind", "sharing"]]
    return frame.sort_values(["agency", "id"], ignore_index=True)


@st.cache_data(ttl=600)
def categories_of(stamp: tuple[int, int], datasets: tuple[str, ...]) -> list[str]:
    return categories_in(warehouse(), datasets)


@st.cache_data(ttl=600)
def period_of(stamp: tuple[int, int]) -> tuple[dt.date, dt.date] | None:
    return data_period(warehouse(), Filter())


def _param_list(name: str) -> list[str]:
    value = st.query_params.get(name)
    return [v for v in value.split(",") if v] if value else []


def _init(key: str, value) -> None:
    if key not in st.session_state:
        st.session_state[key] = value


_FILTER_KEYS = ("f_kinds", "f_datasets", "f_categories", "f_period", "f_weekdays", "f_hours", "f_res")


def sidebar() -> View:
    """The shared filter. Its whole state is written to the URL, so a copied link reopens
    the same view for someone else."""
    # Each page draws the sidebar, and Streamlit takes a widget on another page for a new one:
    # it would show its default (resolution 5, say) while the filter held the old value. Writing
    # the values back before the widgets are drawn keeps the filter as the user left it.
    for key in _FILTER_KEYS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
    version_now = db_version()
    cat = catalogue_frame(version_now)
    span = period_of(version_now)
    if span is None:
        st.info(
            "The warehouse holds no records yet. Run `python -m app load` and read its report: "
            "a dataset that could not be loaded says why."
        )
        st.stop()
    first, last = span
    ids = cat["id"].tolist()
    label = {r.id: f"{r.agency}: {r.title}" for r in cat.itertuples()}

    _init("f_kinds", [k for k in _param_list("kinds") if k in ("demand", "intervention")])
    _init("f_datasets", [d for d in _param_list("ds") if d in ids])
    _init("f_categories", [c for c in st.query_params.get_all("cat")])
    start = _date(st.query_params.get("from"), first)
    end = _date(st.query_params.get("to"), last)
    _init("f_period", (max(start, first), min(end, last)))
    _init(
        "f_weekdays", [WEEKDAYS[int(d) - 1] for d in _param_list("dow") if d.isdigit() and 1 <= int(d) <= 7]
    )
    hours = [int(h) for h in _param_list("hr") if h.isdigit()]
    _init("f_hours", (min(hours), max(hours)) if hours else (0, 23))
    _init(
        "f_res", int(st.query_params.get("res", 8)) if str(st.query_params.get("res", "8")).isdigit() else 8
    )

    with st.sidebar:
        st.header("Filter")
        kinds = st.pills(
            "Records",
            ["demand", "intervention"],
            selection_mode="multi",
            key="f_kinds",
            format_func=lambda k: {"demand": "Demand", "intervention": "Interventions"}[k],
        )
        offered = [d for d in ids if not kinds or cat.set_index("id").loc[d, "kind"] in kinds]
        st.session_state["f_datasets"] = [d for d in st.session_state["f_datasets"] if d in offered]
        datasets = st.multiselect(
            "Datasets (by agency)",
            offered,
            key="f_datasets",
            format_func=label.get,
            placeholder="All datasets",
        )
        chosen = tuple(datasets or offered)
        options = categories_of(version_now, chosen)
        st.session_state["f_categories"] = [c for c in st.session_state["f_categories"] if c in options]
        categories = st.multiselect("Categories", options, key="f_categories", placeholder="All categories")
        period = st.date_input("Period", key="f_period", min_value=first, max_value=last, format="YYYY-MM-DD")
        weekdays = st.multiselect("Days of the week", WEEKDAYS, key="f_weekdays", placeholder="Every day")
        hours = st.slider("Hours of the day", 0, 23, key="f_hours")
        res = st.slider(
            "Hexagon resolution (H3)",
            5,
            11,
            key="f_res",
            help="5 is about 250 km² a cell, 8 about 0.7 km², 11 about 2,000 m².",
        )
        st.caption(DEFAULT_RULE.describe())

    p_start, p_end = period if isinstance(period, tuple) and len(period) == 2 else (first, last)
    f = Filter(
        datasets=tuple(datasets) if datasets else (tuple(offered) if kinds else ()),
        kinds=tuple(kinds),
        categories=tuple(categories),
        start=p_start if p_start != first else None,
        end=p_end if p_end != last else None,
        weekdays=tuple(WEEKDAYS.index(w) + 1 for w in weekdays),
        hours=tuple(range(hours[0], hours[1] + 1)) if tuple(hours) != (0, 23) else (),
    )
    _write_url(datasets, kinds, categories, f, res, hours)
    return View(filter=f, res=int(res), k=1)


def _date(text: str | None, default: dt.date) -> dt.date:
    try:
        return dt.date.fromisoformat(text) if text else default
    except ValueError:
        return default


def _write_url(datasets, kinds, categories, f: Filter, res: int, hours) -> None:
    keep = {k: v for k, v in st.query_params.to_dict().items() if k in ("layers", "metric", "ward")}
    params: dict = dict(keep)
    if kinds:
        params["kinds"] = ",".join(kinds)
    if datasets:
        params["ds"] = ",".join(datasets)
    if categories:
        params["cat"] = list(categories)
    if f.start:
        params["from"] = f.start.isoformat()
    if f.end:
        params["to"] = f.end.isoformat()
    if f.weekdays:
        params["dow"] = ",".join(str(d) for d in f.weekdays)
    if tuple(hours) != (0, 23):
        params["hr"] = f"{hours[0]},{hours[1]}"
    if res != 8:
        params["res"] = str(res)
    if params != st.query_params.to_dict():
        st.query_params.from_dict(params)


def trend_chart(trend: pd.DataFrame, key: str, freq: str = "month") -> None:
    """Records per agency (``trends.agency_trend``), demand solid and interventions dashed:
    a period whose every figure is suppressed is a gap with its "<5", never a misleading zero."""
    import plotly.express as px

    if not len(trend):
        st.info("No records under this filter.")
        return
    chart = px.line(
        trend,
        x="period",
        y="count",
        color="agency",
        line_dash="kind",
        category_orders={"kind": ["demand", "intervention"]},
        markers=True,
        custom_data=["label", "kind"],
        labels={"count": "Records (protected)", "period": freq.capitalize()},
    )
    hover = "<b>%{fullData.name}</b><br>%{x|%d %b %Y}: %{customdata[0]}<extra></extra>"
    chart.update_traces(connectgaps=False, hovertemplate=hover)
    chart.update_layout(legend_title_text="agency, kind")
    st.plotly_chart(chart, width="stretch", key=key)
    notes = []
    if (trend["suppressed_datasets"] > 0).any():
        notes.append(
            f"A gap is a {freq} when every figure of an agency is suppressed (below "
            f"{DEFAULT_RULE.threshold}, zero included); where only some are, the line shows the others "
            "and the tooltip says so."
        )
    if (trend["datasets"] == 0).any():
        notes.append(f'A gap that reads "no data" is a {freq} that none of the agency\'s datasets covers.')
    if notes:
        st.caption(" ".join(notes))


def hotspot_table(table: pd.DataFrame, key: str) -> None:
    """A ``hotspots.ranked_hotspots`` table, as the hotspot page and the ward profile show it."""
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        key=key,
        column_config={
            "h3_cell": "H3 cell",
            "p_fdr": st.column_config.NumberColumn("p (FDR)", format="%.1e"),
            "z": st.column_config.NumberColumn("z", format="%.2f"),
            "hot_demand_agencies": "hot demand of",
            "intervention_agencies": "interventions concentrated",
        },
    )


def legend(title: str, items) -> None:
    rows = "".join(
        f'<div style="display:flex;align-items:center;gap:6px;margin:2px 0">'
        f'<span style="display:inline-block;width:14px;height:14px;border:1px solid #555;'
        f'background:rgb{tuple(i.color)}"></span><span>{i.label}</span></div>'
        for i in items
    )
    st.markdown(f"<div class='cg-legend'><b>{title}</b>{rows}</div>", unsafe_allow_html=True)


def provenance(con, view: View, shown: list[str], note: str = "") -> None:
    """Under every map and table: what is shown, from what, under which rule."""
    report = pd.DataFrame(quality.load_report(con))
    if view.filter.datasets:
        report = report[report["id"].isin(view.filter.datasets)]
    area = quality.study_area(con)
    attributions = sorted({a for a in quality.catalogue(con)["attribution"] if a})
    lines = [
        f"**Shown:** {', '.join(shown) or 'nothing'} · resolution {view.res}"
        + (f" · {note}" if note else ""),
        f"**Datasets:** {', '.join(report['id'])} · rows loaded {int(report['rows_loaded'].sum()):,}, "
        f"quarantined {int(report['rows_quarantined'].sum()):,}",
        f"**Boundaries:** {area.get('vintage') or area.get('boundaries', '')} · {area.get('wards', 0)} wards",
        f"**Disclosure:** {DEFAULT_RULE.describe()}",
        f"**Attribution:** {'; '.join(attributions) or 'none given'}",
    ]
    st.caption("  \n".join(lines))
