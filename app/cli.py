"""Command line: ``python -m app load``, ``python -m app export`` and the demo generator.

Errors an analyst can fix (a catalogue mistake, a missing file, an unreadable boundary file)
print one clear message and exit non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.catalog import CatalogError

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CATALOG = REPO / "data" / "catalog.toml"
DEFAULT_DB = REPO / "data" / "warehouse.duckdb"


def _terminal_progress(stream=sys.stderr):
    """A one-line progress bar when stderr is a terminal; silent otherwise (logs, CI)."""
    if not stream.isatty():
        return None

    def show(message: str, fraction: float) -> None:
        width = 30
        filled = round(fraction * width)
        stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%} {message:<40}")
        if fraction >= 1:
            stream.write("\n")
        stream.flush()

    return show


def format_report(report: dict) -> str:
    sa = report.get("study_area", {})
    pop = sa.get("population")
    lines = [
        f"Study area: {sa.get('name')} - {sa.get('wards')} wards"
        + (f", {pop:,.0f} residents" if pop else "")
        + (f", {sa.get('area_km2'):,.1f} km²" if sa.get("area_km2") else ""),
    ]
    lines += [f"  boundaries: {n}" for n in sa.get("notes", [])]
    header = f"{'dataset':<28} {'status':<9} {'read':>10} {'loaded':>10} {'quarantined':>12}  period"
    lines += ["", header, "-" * len(header)]
    for d in report["datasets"]:
        period = ""
        if d.get("time_min"):
            period = f"{d['time_min'][:10]} .. {d['time_max'][:10]}"
        lines.append(
            f"{d['id']:<28} {d.get('status', ''):<9} {d.get('rows_read', 0):>10,} "
            f"{d.get('rows_loaded', 0):>10,} {d.get('rows_quarantined', 0):>12,}  {period}"
        )
        for reason, n in d.get("quarantined_by_reason", {}).items():
            lines.append(f"{'':<30}{reason:<28} {n:>10,}")
        if d.get("category_unknown"):
            lines.append(f"{'':<30}{'(empty category -> unknown)':<28} {d['category_unknown']:>10,}")
        if d.get("error"):
            kept = " (previous version kept)" if d.get("previous_version_kept") else ""
            lines.append(f"  ERROR{kept}: {d['error']}")
    t = report["totals"]
    lines += [
        "-" * len(header),
        f"{'total':<28} {'':<9} {t['rows_read']:>10,} {t['rows_loaded']:>10,} {t['rows_quarantined']:>12,}",
        f"load time {report['load_seconds']:.2f} s",
    ]
    return "\n".join(lines)


def cmd_load(args: argparse.Namespace) -> int:
    from app.ingest import LoadError, load

    try:
        report = load(args.catalog, args.db, progress=_terminal_progress(), force=args.force)
    except (CatalogError, LoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2, default=str) if args.json else format_report(report))
    return 1 if report["totals"]["datasets_failed"] else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from app.demo_city import generate

    summary = generate(Path(args.out), events=args.events, seed=args.seed)
    print(json.dumps(summary, indent=2))
    return 0


def _date(text: str):
    import datetime as dt

    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def cmd_export(args: argparse.Namespace) -> int:
    from app import export
    from app.filters import Filter, FilterError
    from app.warehouse import OutdatedWarehouse, open_readonly

    try:
        f = Filter(
            datasets=tuple(args.dataset or ()),
            categories=tuple(args.category or ()),
            start=args.date_from,
            end=args.date_to,
        )
        with open_readonly(args.db) as con:
            result = export.build(con, args.what, f, res=args.res, k=args.k, step=args.step)
            sidecar = export.write(con, result, args.format, Path(args.out))
    except (FilterError, ValueError, FileNotFoundError, OutdatedWarehouse) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(result.frame):,} rows to {args.out} (metadata: {sidecar})")
    for warning in result.metadata["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="Common Ground command line")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("load", help="load or refresh the warehouse from a catalogue")
    p.add_argument("--catalog", default=str(DEFAULT_CATALOG), help="catalogue TOML file")
    p.add_argument("--db", default=str(DEFAULT_DB), help="warehouse DuckDB file")
    p.add_argument("--json", action="store_true", help="print the load report as JSON")
    p.add_argument("--force", action="store_true", help="reload every dataset even if unchanged")
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("export", help="export hex, ward, hotspot or emerging-hotspot tables")
    p.add_argument("what", choices=["hexes", "wards", "hotspots", "emerging"])
    p.add_argument("--res", type=int, default=8, help="H3 resolution, 5 to 11 (not used for wards)")
    p.add_argument("--dataset", action="append", help="dataset id (repeat for several; default all)")
    p.add_argument("--category", action="append", help="category (repeat for several; default all)")
    p.add_argument("--from", dest="date_from", type=_date, help="first day, YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", type=_date, help="last day, YYYY-MM-DD")
    p.add_argument("--k", type=int, default=1, help="Gi* neighbourhood: rings of cells (default 1)")
    p.add_argument("--step", choices=["month", "week"], default="month", help="emerging: time step")
    p.add_argument("--format", choices=["csv", "geojson", "parquet"], default="csv")
    p.add_argument("--db", default=str(DEFAULT_DB), help="warehouse DuckDB file")
    p.add_argument("--out", required=True, help="file to write; its metadata goes beside it as .json")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("demo", help="write the fictional demo city's files")
    p.add_argument("--out", default=str(REPO / "data" / "demo"), help="output folder")
    p.add_argument("--events", type=int, default=1_000_000, help="about how many records")
    p.add_argument("--seed", type=int, default=2026, help="random seed")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
