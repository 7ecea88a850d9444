"""What every page shares: the warehouse connection, the sidebar filter kept in the URL, the
legend and the provenance note. Reads widgets and draws; all figures come from the engine."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from app import quality
from app.access import AccessContext
from app.briefing import category_label
from app.dashboard.access_ui import current_access
from app.db import version, warehouse_path
from app.disclosure import DEFAULT_RULE
from app.filters import Filter, category_scope, data_period, dataset_categories, period_words
from app.store.layout import NotAStore
from app.warehouse import NotAWarehouse, OutdatedWarehouse, open_readonly, session

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MAX_HEXES = 50_000
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def plain(text: object) -> str:
    """A name from a file or a catalogue (agency, ward, dataset, attribution) made safe to put
    inside Markdown: every character Markdown or HTML would act on is escaped, so the name is
    shown as the text it is, never rendered as a link, a heading or markup."""
    return _MARKDOWN.sub(r"\\\1", str(text)).replace("\n", " ")


_PIN_KEY = "_warehouse_pin"  # (version, connection) this run reads, set when the run begins


class _Moved(RuntimeError):
    """A load renamed a new warehouse into place while a connection was being opened."""


@st.cache_resource(max_entries=2)
def _connection(path: str, stamp: tuple[int, int]):
    """A connection on the warehouse file whose version is ``stamp``, taken from the path just
    before the call. A load may rename a new file into place in between; if the version differs
    just after opening, the connection may be on either file, so it is refused (and not cached)
    and the caller tries again: a connection is only ever cached under the version it reads."""
    con = open_readonly(path)
    if version(Path(path)) != tuple(stamp):
        con.close()
        raise _Moved(path)
    return con


def _pin() -> tuple[tuple[int, int], object]:
    """Resolve, once per run, the warehouse version and the connection that reads it; every
    figure of the run, cached or not, and its provenance line then come from that one file,
    even when a load renames a new one into place while the page is being drawn."""
    path = warehouse_path()
    if not path.exists():
        st.error("No warehouse has been loaded yet. Run `make run` (or `python -m app load`) first.")
        st.stop()
    try:
        for _ in range(5):
            stamp = version(path)
            try:
                pinned = (stamp, _connection(str(path), stamp))
                break
            except _Moved:
                continue
        else:
            st.error("The warehouse is being reloaded right now; refresh the page in a moment.")
            st.stop()
    except (OutdatedWarehouse, NotAWarehouse, NotAStore) as exc:
        # The reason and what to do, without the server's paths.
        st.error(str(exc).replace(f"{path}: ", "The warehouse file "))
        st.stop()
    st.session_state[_PIN_KEY] = pinned
    return pinned


def pin_version() -> tuple[int, int]:
    """At the start of a run (the sidebar): the warehouse version the whole run reads."""
    return _pin()[0]


def db_version() -> tuple[int, int]:
    """The warehouse version this run reads: pinned when the run began, so a page's cache keys
    and its provenance line never name two versions."""
    pinned = st.session_state.get(_PIN_KEY)
    return (pinned or _pin())[0]


def warehouse(stamp: tuple[int, int] | None = None):
    """A cursor (each session thread gets its own) on the warehouse this run reads. A cached
    call passes ``stamp``, the version it is keyed by, so that a cache miss runs on exactly that
    version and never on a file a load has put in place since the run began."""
    pinned = st.session_state.get(_PIN_KEY) or _pin()
    if stamp is not None and tuple(stamp) != pinned[0]:
        try:
            pinned = (tuple(stamp), _connection(str(warehouse_path()), tuple(stamp)))
        except _Moved:  # that version is gone: draw the page again on the current one
            st.rerun()
    return session(pinned[1].cursor())


@dataclass(frozen=True)
class View:
    """The shared filter plus the map settings, as the sidebar (and the URL) hold them."""

    filter: Filter
    res: int
    k: int


@st.cache_data(ttl=600)
def catalogue_frame(stamp: tuple[int, int], ctx: AccessContext) -> pd.DataFrame:
    """The datasets with the label the sidebar shows. A file whose rows name several agencies
    (``agency_column``) has one catalogue agency; its label also names the agencies its records
    belong to, most records first, so a service manager finds their agency's records in it."""
    con = warehouse(stamp)
    frame = quality.catalogue(con, ctx)[["id", "title", "agency", "kind", "sharing"]]
    named = quality.dataset_agencies(con, access=ctx)
    labels = []
    for r in frame.itertuples():
        agencies = named.get(r.id, [])
        if len(agencies) < 2:
            labels.append(f"{r.agency}: {r.title}")
            continue
        shown = agencies[:3] if len(agencies) > 3 else agencies[:-1]
        rest = f"{len(agencies) - 3} more" if len(agencies) > 3 else agencies[-1]
        labels.append(f"{r.agency}: {r.title} ({', '.join(shown)} and {rest})")
    frame["label"] = labels
    return frame.sort_values(["agency", "id"], ignore_index=True)


@st.cache_data(ttl=600)
def released_categories(stamp: tuple[int, int], ctx: AccessContext) -> dict[str, list[str]]:
    """Each dataset's released categories (``filters.dataset_categories``, a count of every
    record), read once per warehouse version and viewer, not once per choice in the sidebar."""
    return dataset_categories(warehouse(stamp), access=ctx)


def categories_of(stamp: tuple[int, int], datasets: tuple[str, ...], ctx: AccessContext) -> list[str]:
    """The released categories of ``datasets``, sorted (``filters.categories_in``)."""
    found = released_categories(stamp, ctx)
    return sorted({c for d in datasets for c in found.get(d, [])})


def category_scope_of(
    stamp: tuple[int, int], categories: tuple[str, ...], ctx: AccessContext
) -> tuple[str, ...]:
    """The datasets a category choice narrows (the others are shown whole)."""
    return category_scope(released_categories(stamp, ctx), categories)


@st.cache_data(ttl=600)
def period_of(stamp: tuple[int, int], ctx: AccessContext) -> tuple[dt.date, dt.date] | None:
    return data_period(warehouse(stamp), Filter(access=ctx))


def _param_list(
    name: str, allowed: Collection[str] | None = None, ignored: list[str] | None = None, what: str = ""
) -> list[str]:
    """The comma-separated values of a URL parameter. With ``allowed``, only those values are
    kept and the others are named (as ``what``) in ``ignored``: a hand-edited or stale link then
    opens with a note instead of failing."""
    value = st.query_params.get(name)
    values = [v for v in value.split(",") if v] if value else []
    if allowed is None:
        return values
    dropped = [v for v in values if v not in allowed]
    if dropped and ignored is not None:
        ignored.append(f"{what or name} {', '.join(dropped)}")
    return [v for v in values if v in allowed]


def _init(key: str, value) -> None:
    if key not in st.session_state:
        st.session_state[key] = value


_VIEW_KEY = "_shared_view"
_SPAN_KEY = "_f_span"  # the data's period the session's period was last drawn against
_FILTER_KEYS = ("f_kinds", "f_datasets", "f_categories", "f_period", "f_weekdays", "f_hours", "f_res")


def sidebar() -> View:
    """The shared filter. Its whole state is written to the URL, so a copied link reopens
    the same view for someone else."""
    # Streamlit forgets a widget's value when a run does not draw it (a page that stops early,
    # say). Writing the values back before the widgets are drawn keeps the filter as the user
    # left it.
    for key in _FILTER_KEYS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
    ctx = current_access()  # draws the sign-in or refusal page and stops when not let in
    version_now = pin_version()
    cat = catalogue_frame(version_now, ctx)
    span = period_of(version_now, ctx)
    if span is None:
        st.info(
            "The warehouse holds no records yet. Run `python -m app load` and read its report: "
            "a dataset that could not be loaded says why."
        )
        st.stop()
    first, last = span
    ids = cat["id"].tolist()
    # Option labels of a multiselect are shown as text, never as Markdown: names stay as written.
    label = dict(zip(cat["id"], cat["label"], strict=True))

    # A link's values are checked before any widget takes them: what the dashboard cannot show
    # is left out and named in one note, never a traceback.
    ignored: list[str] = []
    _init("f_kinds", _param_list("kinds", ("demand", "intervention"), ignored, "record kind"))
    _init("f_datasets", _param_list("ds", ids, ignored, "dataset (not in this warehouse)"))
    linked = st.query_params.get_all("cat")
    known = (
        set(categories_of(version_now, tuple(st.session_state["f_datasets"] or ids), ctx))
        if linked
        else set()
    )
    if unknown := [c for c in linked if c not in known]:
        ignored.append(f"category (not in these datasets) {', '.join(unknown)}")
    _init("f_categories", [c for c in linked if c in known])
    _init("f_period", _period(first, last, ignored))
    _follow_span(first, last)
    days = _param_list("dow", [str(d) for d in range(1, 8)], ignored, "day of the week (1 to 7)")
    _init("f_weekdays", [WEEKDAYS[int(d) - 1] for d in days])
    hours = [int(h) for h in _param_list("hr", [str(h) for h in range(24)], ignored, "hour (0 to 23)")]
    _init("f_hours", (min(hours), max(hours)) if hours else (0, 23))
    res = _param_list("res", [str(r) for r in range(5, 12)], ignored, "hexagon resolution (5 to 11)")
    _init("f_res", int(res[0]) if res else 8)
    if ignored:
        st.warning(f"Left out of this link, as the dashboard cannot show it: {plain('; '.join(ignored))}.")

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
        options = categories_of(version_now, chosen, ctx)
        st.session_state["f_categories"] = [c for c in st.session_state["f_categories"] if c in options]
        categories = st.multiselect(
            "Categories",
            options,
            key="f_categories",
            placeholder="All categories",
            format_func=category_label,  # the stored "unknown" reads "Not recorded"; the URL keeps it
        )
        if categories:
            narrowed = [
                label.get(d, d) for d in category_scope_of(version_now, tuple(categories), ctx) if d in chosen
            ]
            kept = [label.get(d, d) for d in chosen if label.get(d, d) not in narrowed]
            st.caption(
                plain(f"The categories narrow {', '.join(narrowed) or 'no dataset'}")
                + (plain(f"; shown whole, as they hold none of them: {', '.join(kept)}") if kept else "")
                + "."
            )
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
        # The scope ``filters.validate`` would work out, from the released categories read once
        # per warehouse version and viewer: otherwise every engine call of the run counted each
        # dataset's categories again to find it. The choices offered are released categories,
        # as validate asks.
        category_scope=category_scope_of(version_now, tuple(categories), ctx) if categories else None,
        access=ctx,
    )
    _write_url(datasets, kinds, categories, f, res, hours)
    view = View(filter=f, res=int(res), k=1)
    st.session_state[_VIEW_KEY] = view
    return view


def _follow_span(first: dt.date, last: dt.date) -> None:
    """Keep the session's period true to the data when a reload changes the data's period.

    An end the user left at the data's first or last day follows the new first or last day:
    someone looking at "everything" keeps seeing everything, not a period that froze at the
    day of the old load (and whose change on the previous period then reads n/a). An end they
    chose stays, kept within the new period; a period wholly outside it gives way to the whole
    of it. Without this, a session's period could also lie outside the date picker's new
    bounds, which Streamlit refuses with an error."""
    old = st.session_state.get(_SPAN_KEY)
    st.session_state[_SPAN_KEY] = (first, last)
    period = st.session_state.get("f_period")
    if old is None or old == (first, last) or not isinstance(period, tuple | list) or not period:
        return
    if len(period) == 1:  # a period being picked: its first day only, kept within the data
        st.session_state["f_period"] = (min(max(period[0], first), last),)
        return
    start, end = period
    start = first if start == old[0] else max(start, first)
    end = last if end == old[1] else min(end, last)
    st.session_state["f_period"] = (start, end) if start <= end else (first, last)


def _date(text: str | None, default: dt.date, ignored: list[str] | None = None, what: str = "") -> dt.date:
    """A day from the URL, or ``default`` (noted in ``ignored``) when it is not a YYYY-MM-DD date."""
    try:
        return dt.date.fromisoformat(text) if text else default
    except ValueError:
        if ignored is not None:
            ignored.append(f"{what or 'date'} {text} (not a YYYY-MM-DD date)")
        return default


def _period(first: dt.date, last: dt.date, ignored: list[str]) -> tuple[dt.date, dt.date]:
    """The link's period kept within the data's; a reversed period, or one wholly outside the
    data, gives way to the whole period with a note."""
    start = _date(st.query_params.get("from"), first, ignored, "first day")
    end = _date(st.query_params.get("to"), last, ignored, "last day")
    if start > last or end < first:
        ignored.append(f"period {start} to {end} (the data run from {first} to {last})")
        return first, last
    if start > end:
        ignored.append(f"period {start} to {end} (it ends before it starts)")
        return first, last
    return max(start, first), min(end, last)


# The query parameters the shared filter owns. Pages own their own (layers, view, ward, ...):
# the filter writes and clears only these, so a page's parameters survive a filter change.
FILTER_PARAMS = ("kinds", "ds", "cat", "from", "to", "dow", "hr", "res")


def _write_url(datasets, kinds, categories, f: Filter, res: int, hours) -> None:
    params: dict = {}
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
    for key in FILTER_PARAMS:
        if key in params:
            value = params[key]
            current = st.query_params.get_all(key) if isinstance(value, list) else st.query_params.get(key)
            if current != value:
                st.query_params[key] = value
        elif key in st.query_params:
            del st.query_params[key]


def current_view() -> View:
    """The view the entry point's sidebar built for this run (the sidebar is drawn once, there)."""
    # Taken, not read: a view left from an earlier run must never stand in for this run's.
    view = st.session_state.pop(_VIEW_KEY, None)
    if view is None:  # a page run on its own, without the entry point (tests): draw it here
        view = sidebar()
        st.session_state.pop(_VIEW_KEY, None)
    return view


def trend_chart(
    trend: pd.DataFrame, key: str, freq: str = "month", windows: list | None = None, narrow: bool = False
) -> None:
    """Records per dataset (``trends.agency_trend``), grouped by agency in the legend, demand
    solid and interventions dashed. A period whose figure is suppressed is a gap with its "<5",
    never a misleading zero; a line with no released figure at all is not drawn, and is named
    under the chart rather than left in the legend with nothing to show. ``windows``
    (``profile.window_groups``: each compared year and the year before, with the datasets
    compared over them) are shaded behind the lines; where datasets end at different dates,
    each pair is named for its datasets. ``narrow``: drawn in a narrow column (beside the map),
    with the legend under the plot rather than beside it, where it would leave the plot no room."""
    import html

    import plotly.graph_objects as go
    from plotly.colors import qualitative

    if not len(trend):
        st.info("No records under this filter.")
        return
    drawn = trend["line"].isin(set(trend.loc[trend["count"].notna(), "line"]))
    chart = go.Figure()
    palette = qualitative.Plotly + qualitative.D3
    shown = trend[drawn]
    for i, (_, line) in enumerate(shown.groupby(["agency", "title", "dataset"], sort=True)):
        first = line.iloc[0]
        kind = " (interventions)" if first["kind"] == "intervention" else ""
        name = html.escape(str(first["title"])) + kind
        chart.add_trace(
            go.Scatter(
                x=line["period"],
                y=line["count"],
                mode="lines+markers",
                name=name,
                legendgroup=str(first["agency"]),
                legendgrouptitle_text=html.escape(str(first["agency"])),
                line={"dash": "dash" if first["kind"] == "intervention" else "solid"},
                marker={"color": palette[i % len(palette)]},
                connectgaps=False,
                customdata=line["label"],
                hovertemplate=f"<b>{html.escape(str(first['line']))}</b><br>%{{x|%d %b %Y}}: "
                "%{customdata}<extra></extra>",
            )
        )
    several = len(windows or ()) > 1
    for current, previous, titles in windows or ():
        for (start, end), colour, label in (
            (current, "#fdae6b", "compared year"),
            (previous, "#fee6ce", "year before"),
        ):
            if several:  # each pair said once, on its compared year, for its datasets
                label = f"{', '.join(titles)}: compared year" if colour == "#fdae6b" else ""
            chart.add_vrect(
                x0=pd.Timestamp(start) - pd.Timedelta(days=14),
                x1=pd.Timestamp(end).replace(day=1) + pd.Timedelta(days=14),
                fillcolor=colour,
                opacity=0.35,
                line_width=0,
                layer="below",
                annotation_text=html.escape(f"{label}: {period_words(start, end)}") if label else None,
                annotation_position="top left",
            )
    protected = (trend["sharing"] != "open").any()
    legend_rows = 40 * len(chart.data) + 20 * shown["agency"].nunique()
    chart.update_layout(
        yaxis_title="Records (partners' figures protected)" if protected else "Records",
        xaxis_title=freq.capitalize(),
        legend={"groupclick": "toggleitem"},
        height=max(420, 60 + legend_rows),  # the whole legend
    )
    if narrow:  # the legend under the plot, each line a row: the plot keeps the column's width
        chart.update_layout(
            legend={"groupclick": "toggleitem", "orientation": "h", "yanchor": "top", "y": -0.25, "x": 0},
            height=320 + legend_rows,
            margin={"l": 10, "r": 10},
        )
    st.plotly_chart(chart, width="stretch", key=key)
    notes = ["One line per dataset, never added up: datasets of one agency count different things."]
    if windows:
        from app.profile import windows_note

        notes.append(plain(windows_note(windows)))
    if (trend["suppressed_datasets"] > 0).any():
        notes.append(
            f"A gap is a {freq} whose figure is suppressed (below {DEFAULT_RULE.threshold}, zero "
            "included); the tooltip reads it."
        )
    if (trend["datasets"] == 0).any():
        notes.append(f'A gap that reads "no data" is a {freq} that the dataset does not cover.')
    if hidden := sorted(set(trend.loc[~drawn, "line"])):
        listed = "; ".join(plain(h) for h in hidden)
        notes.append(f"Not drawn, as every {freq} of it is suppressed: {listed}.")
    st.caption(" ".join(notes))


def hotspot_table(table: pd.DataFrame, key: str, extra: dict | None = None) -> None:
    """A ``hotspots.ranked_hotspots`` table, as the hotspot page and the ward profile show it;
    ``extra``: the settings of columns a page adds (the ward profile's links to the map)."""
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        key=key,
        column_config={
            **(extra or {}),
            "h3_cell": "H3 cell",
            "p_fdr": st.column_config.NumberColumn("p (FDR)", format="%.1e"),
            "z": st.column_config.NumberColumn("z", format="%.2f"),
            "bin": "Gi* bin",
            "hot_demand_agencies": "hot demand of",
            "intervention_agencies": "interventions concentrated",
            "intervention status": "intervention status",
        },
    )


def legend(title: str, items) -> None:
    """A map layer's colour key. Its labels can be names from files (agencies, datasets), so
    they are escaped: shown as the text they are, never as markup. The key is one block of
    HTML, inside which Markdown is not read, so HTML's escaping is the one that applies (a
    Markdown escape would show its backslashes)."""

    def text(value: object) -> str:
        return html.escape(str(value), quote=True)

    rows = "".join(
        f'<div style="display:flex;align-items:center;gap:6px;margin:2px 0">'
        f'<span style="display:inline-block;width:14px;height:14px;border:1px solid #555;'
        f'background:rgb{tuple(i.color)}"></span><span>{text(i.label)}</span></div>'
        for i in items
    )
    st.markdown(f"<div class='cg-legend'><b>{text(title)}</b>{rows}</div>", unsafe_allow_html=True)


def provenance(con, view: View, shown: list[str], note: str = "", res: int | None = None) -> None:
    """Under every map and table: what is shown, at which resolution (``res``, the one drawn,
    when the map stepped down from the one asked for), from what, under which rule, and how
    precise each coarse dataset's locations are. Names from files are escaped (``plain``)."""
    reports = quality.load_report(con, view.filter.access)
    report = pd.DataFrame(reports)
    if view.filter.datasets:
        report = report[report["id"].isin(view.filter.datasets)]
    area = quality.study_area(con)
    attributions = sorted({a for a in quality.catalogue(con, view.filter.access)["attribution"] if a})
    boundaries = area.get("vintage") or area.get("boundaries", "")
    lines = [
        f"**Shown:** {', '.join(plain(s) for s in shown) or 'nothing'} · resolution {res or view.res}"
        + (f" · {plain(note)}" if note else ""),
        f"**Datasets:** {', '.join(plain(i) for i in report['id'])} · rows loaded "
        f"{int(report['rows_loaded'].sum()):,}, quarantined {int(report['rows_quarantined'].sum()):,}",
        f"**Boundaries:** {plain(boundaries)} · {area.get('wards', 0)} wards",
        f"**Disclosure:** {DEFAULT_RULE.describe()}",
        f"**Attribution:** {'; '.join(plain(a) for a in attributions) or 'none given'}",
    ]
    for r in reports:  # a warehouse loaded before location precision was reported has none
        precision = r.get("location_precision") or {}
        if r["id"] in set(report["id"]) and precision.get("coarse"):
            lines.append(
                f"**Locations of {plain(r.get('title') or r['id'])}:** {plain(precision.get('note', ''))}"
            )
    st.caption("  \n".join(lines))
