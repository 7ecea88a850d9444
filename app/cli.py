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
        if d.get("ward_column_unmatched"):
            lines.append(f"{'':<30}{'(ward column unmatched)':<28} {d['ward_column_unmatched']:>10,}")
        for warning in d.get("warnings", []):
            lines.append(f"  WARNING: {warning}")
        if (d.get("location_precision") or {}).get("coarse"):
            lines.append(f"  LOCATIONS: {d['location_precision']['note']}")
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


def _os_error(exc: OSError) -> str:
    """An operating-system error in words an analyst can act on, naming the file."""
    import errno

    reason = {
        errno.EISDIR: "is a folder, not a file",
        errno.ELOOP: "is a symbolic link that leads back to itself (a link loop)",
        errno.ENOENT: "not found",
        errno.EACCES: "permission denied",
    }.get(exc.errno, (exc.strerror or str(exc)).lower())
    return f"{exc.filename}: {reason}" if exc.filename else reason


def _fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def cmd_load(args: argparse.Namespace) -> int:
    from app.ingest import LoadError, load
    from app.warehouse import NotAWarehouse

    try:
        report = load(args.catalog, args.db, progress=_terminal_progress(), force=args.force)
    except (CatalogError, LoadError, NotAWarehouse) as exc:
        return _fail(str(exc))
    except OSError as exc:  # a path in the catalogue that cannot be opened: nothing was loaded
        return _fail(f"{args.catalog}: {_os_error(exc)}; nothing was loaded")
    print(json.dumps(report, indent=2, default=str) if args.json else format_report(report))
    for line in report.get("skipped_uploads", []):
        print(f"warning: skipped: {line}", file=sys.stderr)
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

    if problem := _unwritable(Path(args.out)):
        return _fail(problem)
    if args.what == "forecast":
        from app.forecast_cli import export_forecast

        return export_forecast(args)
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
        return _fail(str(exc))
    except OSError as exc:
        return _fail(_os_error(exc))
    print(f"wrote {len(result.frame):,} rows to {args.out} (metadata: {sidecar})")
    for warning in result.metadata["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _unwritable(out: Path) -> str | None:
    """Why ``--out`` cannot take the export, checked before any work is done."""
    if out.is_dir():
        return f"--out {out}: is a folder; name the file to write, e.g. {out / 'export.csv'}"
    existing = next((p for p in out.parents if p.exists()), None)  # missing folders are made
    if existing is not None and not existing.is_dir():
        return f"--out {out}: {existing} is a file, not a folder"
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="Common Ground command line")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("load", help="load or refresh the warehouse from a catalogue")
    p.add_argument("--catalog", default=str(DEFAULT_CATALOG), help="catalogue TOML file")
    p.add_argument("--db", default=str(DEFAULT_DB), help="warehouse DuckDB file")
    p.add_argument("--json", action="store_true", help="print the load report as JSON")
    p.add_argument("--force", action="store_true", help="reload every dataset even if unchanged")
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("export", help="export hex, ward, hotspot, emerging-hotspot or forecast tables")
    p.add_argument("what", choices=["hexes", "wards", "hotspots", "emerging", "forecast"])
    p.add_argument("--res", type=int, default=8, help="H3 resolution, 5 to 11 (not used for wards)")
    p.add_argument("--wards", action="store_true", help="forecast: every ward instead of every cell")
    p.add_argument("--months", type=int, default=60, help="forecast: monthly origins of the backtest")
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

    from app.forecast_cli import add_parsers

    add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # the last resort: one line, never a traceback
        return _fail(f"{type(exc).__name__}: {exc}")
