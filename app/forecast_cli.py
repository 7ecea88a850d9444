"""Command line for forecasts: ``python -m app forecast --backtest`` and the ``forecast`` export.

``add_parsers(sub)`` adds the ``forecast`` sub-command to the main parser; ``export_forecast``
serves ``python -m app export forecast``. Errors print one line and exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import sys
from pathlib import Path

import duckdb
import pandas as pd

from app import forecast as fc
from app.access import LOCAL, AccessContext
from app.aggregate import cell_month_counts, dataset_units, ward_month_counts
from app.disclosure import DEFAULT_RULE, PROTECTED, Rule
from app.filters import Filter, FilterError, datasets_in, validate

DEFAULT_DB = Path(__file__).resolve().parent.parent / "data" / "warehouse.duckdb"
CELL_COLUMNS = ["h3_cell", "resolution", "cell_lat", "cell_lng"]
WARD_COLUMNS = ["ward_code", "ward_name"]
FORECAST_COLUMNS = [
    "dataset",
    "agency",
    "horizon",
    "period_start",
    "period_end",
    "expected",
    "lower",
    "upper",
    "suppressed",
    "method",
]


def add_parsers(sub) -> None:
    """Add ``forecast`` to the command line's sub-commands."""
    p = sub.add_parser("forecast", help="score forecasting methods on past months (--backtest)")
    p.add_argument("--backtest", action="store_true", required=True, help="run the rolling-origin backtest")
    p.add_argument("--dataset", required=True, help="demand dataset id")
    p.add_argument("--res", type=int, default=9, help="H3 resolution, 5 to 11 (default 9)")
    p.add_argument("--wards", action="store_true", help="score forecasts per ward instead of per cell")
    p.add_argument("--months", type=int, default=60, help="monthly origins to score (default 60)")
    p.add_argument("--no-model", action="store_true", help="score the simple baselines only")
    p.add_argument("--db", default=str(DEFAULT_DB), help="warehouse DuckDB file")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")
    p.set_defaults(func=cmd_forecast)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _open(db: str):
    from app.warehouse import open_readonly

    return open_readonly(db)


def cmd_forecast(args: argparse.Namespace) -> int:
    from app.warehouse import OutdatedWarehouse

    if args.months < 1:
        return _fail("--months must be 1 or more")
    access = getattr(args, "access", LOCAL)
    try:
        with _open(args.db) as con:
            viewer_units(con, args.dataset, access)
            series = viewer_series(con, args.dataset, None if args.wards else args.res, None, access)
            result = fc.backtest(series, args.months, with_model=not args.no_model)
    except (fc.ForecastError, FilterError, ValueError, FileNotFoundError, OutdatedWarehouse) as exc:
        return _fail(str(exc))
    except (OSError, duckdb.Error) as exc:
        return _fail(f"{args.db}: {exc}")
    summary = backtest_summary(args.dataset, None if args.wards else args.res, result)
    print(json.dumps(summary) if args.json else backtest_table(result, series.note))
    return 0


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 3)


def backtest_summary(dataset: str, res: int | None, result: fc.Backtest) -> dict:
    """The backtest as the one JSON line the command prints: the chosen method's figures, and
    every baseline's, model's and comparator's."""
    chosen = result.scores[result.method]
    measures = ("pai_1", "pai_5", "pei_1", "pei_5", "hit_1", "hit_5", "rri_1", "rri_5")

    def pick(name: str) -> dict:
        return {m: _number(result.scores[name][m]) for m in measures}

    return {
        "dataset": dataset,
        "res": res,
        "places": "wards" if res is None else "cells",
        "origins": len(result.origins),
        "first_origin": result.origins[0],
        "last_origin": result.origins[-1],
        "method": result.method,
        "why": result.why,
        **{m: _number(chosen[m]) for m in measures},
        "baselines": {name: pick(name) for name in fc.BASELINES},
        "model": {fc.MODEL: pick(fc.MODEL)} if fc.MODEL in result.scores else {},
        "comparators": {name: pick(name) for name in fc.COMPARATORS},
    }


def backtest_table(result: fc.Backtest, note: str | None = None) -> str:
    """A readable table of every method's scores, the chosen one marked."""
    header = (
        f"{'method':<18} {'PAI 1%':>7} {'PAI 5%':>7} {'PEI 1%':>7} {'PEI 5%':>7} {'hit 1%':>7} {'RRI 1%':>7}"
    )
    lines = [
        f"Next-month forecasts from {len(result.origins)} monthly origins, "
        f"{result.origins[0]} to {result.origins[-1]}",
        "",
        header,
        "-" * len(header),
    ]
    for name, s in result.scores.items():
        mark = " *" if name == result.method else ""
        cells = " ".join(f"{s[m]:>7.2f}" for m in ("pai_1", "pai_5", "pei_1", "pei_5", "hit_1", "rri_1"))
        lines.append(f"{name + mark:<18} {cells}")
    lines += ["", f"* {result.why}"]
    lines += [f"note: {note}"] if note else []
    return "\n".join(lines)


# What one viewer may forecast ----------------------------------------------------------------


def viewer_units(con: duckdb.DuckDBPyConnection, dataset: str, access: AccessContext) -> pd.DataFrame:
    """The (dataset, agency) pairs of ``dataset`` as ``access`` sees them. A dataset the viewer
    may not see is refused in the words of one that does not exist (checked before anything
    else, so not even the "not a demand dataset" answer tells that it does)."""
    try:
        f = validate(con, Filter(datasets=(dataset,), access=access))
    except FilterError as exc:
        raise fc.ForecastError(str(exc)) from None
    fc.units_of(con, dataset)  # a demand dataset, or why not
    return dataset_units(con, f)


def viewer_series(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    res: int | None,
    agency: str | None,
    access: AccessContext,
    rule: Rule = DEFAULT_RULE,
    frame: fc.Series | None = None,
) -> fc.Series:
    """Monthly counts of ``dataset`` (one ``agency`` of it, or all) per place as ``access`` sees
    them: exact where the viewer's agency owns a protected dataset, released otherwise.

    Without ``frame`` this is ``fc.load_series`` for the viewer. With it (the places, months
    and neighbours an export already has for the dataset's first agency), only the counts are
    read, under the viewer's filter, whose ``sharing`` says whether they see the dataset exactly."""
    if frame is None:
        return fc.load_series(con, dataset, res, agency, rule, access)
    f = validate(con, Filter(datasets=(dataset,), agencies=(agency,) if agency else (), access=access))
    sharing = datasets_in(con, f).iloc[0]["sharing"]
    if res is None:
        counts = ward_month_counts(con, f).rename(columns={"ward_code": "place"})
    else:
        counts = cell_month_counts(con, f, res).rename(columns={"h3": "place"})
        counts["place"] = counts["place"].astype("uint64")
    protected = sharing in PROTECTED
    values = fc._matrix(counts, frame.places, frame.months, protected, rule)
    return dataclasses.replace(frame, values=values, protected=protected)


# The export ---------------------------------------------------------------------------------


def build_forecast_export(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    res: int | None,
    months: int = 60,
    rule: Rule = DEFAULT_RULE,
    access: AccessContext = LOCAL,
):
    """Forecasts of every cell at ``res`` (or every ward, with ``res`` None) for each agency of
    the dataset, and metadata as the other exports carry, with each agency's method and
    backtest score; as ``access`` (the viewer) sees the dataset: exact for its owner, released
    for a partner, and for anyone else a dataset that does not exist."""
    from app.export import Export
    from app.grid import cell_frame

    units = viewer_units(con, dataset, access)
    several = len(units) > 1
    frames, methods, notes = [], [], []
    shape = None
    for unit in units.itertuples():
        agency = unit.agency if several else None
        series = viewer_series(con, dataset, res, agency, access, rule, shape)
        shape = series
        result = fc.backtest(series, months)
        table = fc.forecast(series, result, rule).assign(
            dataset=dataset, agency=unit.agency, method=result.method
        )
        frames.append(table)
        methods.append(
            {
                "agency": unit.agency,
                **backtest_summary(dataset, res, result),
                "dispersion": _dispersion(result),
            }
        )
        notes += [series.note] if series.note else []
    frame = pd.concat(frames, ignore_index=True)
    if res is None:
        names = dict(con.execute("SELECT code, name FROM wards").fetchall())
        frame = frame.assign(ward_code=frame["place"], ward_name=frame["place"].map(names))
        frame, geometry = frame[[*WARD_COLUMNS, *FORECAST_COLUMNS]], "ward"
    else:
        grid = cell_frame(series.places, res).rename(columns={"h3": "place"})
        frame = frame.merge(grid, on="place", how="left")
        frame, geometry = frame[[*CELL_COLUMNS, *FORECAST_COLUMNS]], "hex"
    metadata = _metadata(con, dataset, res, rule, frame, methods, notes, access, series.protected)
    return Export(frame.reset_index(drop=True), metadata, geometry)


def _dispersion(result: fc.Backtest) -> float | None:
    return _number(result.dispersion.get(result.method, 0.0))


def _metadata(
    con,
    dataset: str,
    res: int | None,
    rule: Rule,
    frame,
    methods: list,
    notes: list,
    access: AccessContext = LOCAL,
    protected: bool = True,
) -> dict:
    """The sidecar's contents, in the shape of the other exports' (``app.export.build``): only
    the datasets the viewer may see, each at the sharing level they see it."""
    from app.export import _vintage
    from app.quality import load_report

    f = Filter(datasets=(dataset,), access=access)
    selected = datasets_in(con, f)
    keys = ("id", "title", "agency", "kind", "sharing", "rows_read", "rows_loaded", "rows_quarantined")
    return {
        "export": "forecast",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "filters": f.describe(),
        "resolution": res,
        "places": "wards" if res is None else "cells",
        "rows": len(frame),
        "datasets": selected["id"].tolist(),
        "dataset_spans": [
            {"id": r.id, "from": _day(r.time_min), "to": _day(r.time_max)} for r in selected.itertuples()
        ],
        "forecast": {
            "horizons": list(fc.HORIZONS),
            "interval": (
                f"central {fc.INTERVAL:.0%} prediction interval of a negative-binomial count whose "
                "dispersion is estimated from the method's own backtest errors (Poisson where they "
                "show none)"
            ),
            "methods": methods,
            "protected": (
                "Forecasts of partners' and restricted datasets are trained on released monthly "
                "figures only and released like counts: an expected value below the threshold is "
                "suppressed with its interval, others rounded to the base. Every place is listed."
                if protected
                else "Exact: trained on exact monthly counts and given to two decimals (an open "
                "dataset, or one the viewer's agency owns). Every place is listed."
            ),
            "supports": ("Expected demand for places and periods only; no prediction about any person."),
        },
        "suppression": rule.as_dict(),
        "data_vintage": _vintage(con),
        "load_report": [
            {k: d.get(k) for k in (*keys, "time_min", "time_max")} for d in load_report(con, access)
        ],
        "attribution": sorted(
            {
                a
                for (i, a) in con.execute("SELECT id, attribution FROM datasets").fetchall()
                if a and access.may_see(i)
            }
        ),
        "warnings": notes,
    }


def _attribution(con: duckdb.DuckDBPyConnection) -> list[str]:
    return sorted({a for (a,) in con.execute("SELECT attribution FROM datasets").fetchall() if a})


def _day(value) -> str | None:
    return None if pd.isna(value) else pd.Timestamp(value).date().isoformat()


def export_forecast(args: argparse.Namespace) -> int:
    """``python -m app export forecast --dataset ID --res N --out FILE [--wards] [--months M]
    [--format F] [--db PATH]``: the forecasts and their JSON sidecar."""
    from app.export import write
    from app.warehouse import OutdatedWarehouse

    datasets = args.dataset if isinstance(args.dataset, list) else [args.dataset] if args.dataset else []
    if len(datasets) != 1:
        return _fail("name one demand dataset to forecast with --dataset")
    out = Path(args.out)
    if out.is_dir():
        return _fail(f"--out {out}: is a folder; name the file to write, e.g. {out / 'forecast.csv'}")
    try:
        with _open(args.db) as con:
            res = None if getattr(args, "wards", False) else args.res
            access = getattr(args, "access", LOCAL)
            result = build_forecast_export(con, datasets[0], res, getattr(args, "months", 60), access=access)
            sidecar = write(con, result, getattr(args, "format", "csv"), out)
    except (fc.ForecastError, FilterError, ValueError, FileNotFoundError, OutdatedWarehouse) as exc:
        return _fail(str(exc))
    except (OSError, duckdb.Error) as exc:
        return _fail(str(exc))
    print(f"wrote {len(result.frame):,} rows to {out} (metadata: {sidecar})")
    return 0
