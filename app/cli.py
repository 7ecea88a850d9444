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


def _terminal_progress(stream=None):
    """A one-line progress bar when stderr is a terminal; silent otherwise (logs, CI). The
    stream is looked up when called, not when the module was imported (it may be replaced)."""
    stream = stream or sys.stderr
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
        if args.engine == "spark":  # a store folder, written by Spark (app.spark)
            from app.spark import load_on_spark

            report = load_on_spark(args.catalog, args.db, progress=_terminal_progress())
        else:
            report = load(args.catalog, args.db, progress=_terminal_progress(), force=args.force)
    except (CatalogError, LoadError, NotAWarehouse) as exc:
        return _fail(str(exc))
    except OSError as exc:  # a path in the catalogue that cannot be opened: nothing was loaded
        return _fail(f"{args.catalog}: {_os_error(exc)}; nothing was loaded")
    print(json.dumps(report, indent=2, default=str) if args.json else format_report(report))
    for line in report.get("skipped_uploads", []):
        print(f"warning: skipped: {line}", file=sys.stderr)
    from app import audit

    try:
        audit.record_load(audit.audit_path(args.db), report, args.catalog)
    except audit.AuditError as exc:
        return _fail(f"loaded, but {exc}")
    return 1 if report["totals"]["datasets_failed"] else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from app.demo_city import generate

    summary = generate(Path(args.out), events=args.events, seed=args.seed)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_store(args: argparse.Namespace) -> int:
    from app.store.layout import NotAStore, write_store
    from app.warehouse import NotAWarehouse, OutdatedWarehouse, open_readonly

    if problem := _unwritable(Path(args.out)):
        return _fail(problem)
    try:
        with open_readonly(args.db) as con:
            made = write_store(con, Path(args.out))
    except (FileNotFoundError, NotAWarehouse, NotAStore, OutdatedWarehouse) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(_os_error(exc))
    rows = made["tables"]["events"]["rows"]
    print(f"wrote a store of {rows:,} records to {args.out} (cube: {made['tables']['cube']['rows']:,} rows)")
    return 0


def _date(text: str):
    import datetime as dt

    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def cmd_export(args: argparse.Namespace) -> int:
    from app import export
    from app.access import restrict
    from app.filters import Filter, FilterError
    from app.warehouse import OutdatedWarehouse, open_readonly

    if problem := _unwritable(Path(args.out)):
        return _fail(problem)
    if (ctx := _viewer(args)) is None:
        return 2
    if args.what == "forecast":
        from app.forecast_cli import export_forecast

        code = export_forecast(args)
        return code or _audit_export(args, ctx, {"datasets": list(args.dataset or ())}, None)
    try:
        f = restrict(
            Filter(
                datasets=tuple(args.dataset or ()),
                categories=tuple(args.category or ()),
                start=args.date_from,
                end=args.date_to,
            ),
            ctx,
        )
        with open_readonly(args.db) as con:
            result = export.build(con, args.what, f, res=args.res, k=args.k, step=args.step)
            sidecar = export.write(con, result, args.format, Path(args.out))
    except (FilterError, ValueError, FileNotFoundError, OutdatedWarehouse) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(_os_error(exc))
    if code := _audit_export(args, ctx, f.describe(), len(result.frame)):
        return code
    print(f"wrote {len(result.frame):,} rows to {args.out} (metadata: {sidecar})")
    for warning in result.metadata["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _viewer(args: argparse.Namespace):
    """The run's access context (``--user`` through the access file), or None after saying
    why not. A dataset the person may not see is refused as if it did not exist."""
    from app.access import AccessDenied, AccessError, cli_context
    from app.warehouse import OutdatedWarehouse

    try:
        ctx = cli_context(args.db, getattr(args, "user", None))
    except (AccessError, AccessDenied, FileNotFoundError, OutdatedWarehouse) as exc:
        _fail(str(exc))
        return None
    named = args.dataset if isinstance(args.dataset, list) else [args.dataset] if args.dataset else []
    hidden = [d for d in named if not ctx.may_see(d)]
    if hidden:
        known = ", ".join(sorted(ctx.visible or ()))
        _fail(f"unknown dataset {', '.join(repr(d) for d in hidden)}; known: {known}")
        return None
    args.access = ctx
    return ctx


def _audit_export(args: argparse.Namespace, ctx, described: dict, rows: int | None) -> int:
    """Record a written export; when the record cannot be written, the export is taken back."""
    from app import audit

    out = Path(args.out)
    try:
        entry = audit.file_entry(out.name, rows, audit.sha256_of(out))
        trail = audit.audit_path(args.db)
        audit.record(trail, "export", ctx, what=args.what, filter=described, files=[entry])
    except (audit.AuditError, OSError) as exc:
        for written in (out, out.with_name(out.name + ".json")):
            written.unlink(missing_ok=True)
        return _fail(f"nothing was exported: {exc}")
    return 0


def _as_user(func):
    """``forecast`` run as ``--user``: refused when denied or the dataset is not theirs to see."""

    def run(args: argparse.Namespace) -> int:
        return func(args) if _viewer(args) is not None else 2

    return run


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
    p.add_argument(
        "--engine",
        choices=["duckdb", "spark"],
        default="duckdb",
        help="duckdb: a warehouse file (default); spark: load on Apache Spark into a store folder --db",
    )
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
    p.add_argument("--user", help="export what this person (an email in the access file) may see")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("audit", help="print the audit trail (who loaded and exported what, and when)")
    p.add_argument("--db", default=str(DEFAULT_DB), help="warehouse whose trail to print")
    p.add_argument("--verify", action="store_true", help="check the hash chain; exit 1 if it is broken")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("store", help="write a warehouse as a store folder: Parquet files and a manifest")
    p.add_argument("--db", default=str(DEFAULT_DB), help="warehouse DuckDB file (or a store folder)")
    p.add_argument("--out", required=True, help="store folder to write (replaced whole when complete)")
    p.set_defaults(func=cmd_store)

    p = sub.add_parser("profile", help="write a ward's printable profile (HTML for A4, and PDF)")
    p.add_argument("--ward", required=True, help="the ward's code, e.g. E05900012")
    p.add_argument("--out", help="HTML file to write (prints on A4, opens offline)")
    p.add_argument("--pdf", help="PDF file to print with the machine's headless Chromium")
    p.add_argument("--dataset", action="append", help="dataset id (repeat for several; default all)")
    p.add_argument("--from", dest="date_from", type=_date, help="first day, YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", type=_date, help="last day, YYYY-MM-DD")
    p.add_argument("--res", type=int, default=8, help="H3 resolution of the hotspot areas, 5 to 11")
    p.add_argument("--k", type=int, default=1, help="Gi* neighbourhood: rings of cells (default 1)")
    p.add_argument("--db", default=str(DEFAULT_DB), help="warehouse DuckDB file")
    p.add_argument("--user", help="write what this person (an email in the access file) may see")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("demo", help="write the fictional demo city's files")
    p.add_argument("--out", default=str(REPO / "data" / "demo"), help="output folder")
    p.add_argument("--events", type=int, default=1_000_000, help="about how many records")
    p.add_argument("--seed", type=int, default=2026, help="random seed")
    p.set_defaults(func=cmd_demo)

    from app.forecast_cli import add_parsers

    add_parsers(sub)
    p = sub.choices["forecast"]
    p.add_argument("--user", help="run as this person (an email in the access file)")
    p.set_defaults(func=_as_user(p.get_default("func")))
    return parser


def cmd_profile(args: argparse.Namespace) -> int:
    """A ward's printable profile as the ward page downloads it, and optionally as a PDF."""
    from app import profile
    from app.access import restrict
    from app.filters import Filter, FilterError
    from app.warehouse import OutdatedWarehouse, open_readonly

    outs = [Path(p) for p in (args.out, args.pdf) if p]
    if not outs:
        return _fail("name the file to write: --out profile.html, --pdf profile.pdf, or both")
    for out in outs:
        if problem := _unwritable(out):
            return _fail(problem)
    if (ctx := _viewer(args)) is None:
        return 2
    try:
        f = restrict(Filter(datasets=tuple(args.dataset or ()), start=args.date_from, end=args.date_to), ctx)
        with open_readonly(args.db) as con:
            page = profile.to_html(profile.build(con, f, args.ward, res=args.res, k=args.k))
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(page, encoding="utf-8")
        if args.pdf:
            profile.print_pdf(page, Path(args.pdf))
    except (FilterError, ValueError, FileNotFoundError, OutdatedWarehouse, profile.PrintError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(_os_error(exc))
    for out in outs:
        record = argparse.Namespace(db=args.db, out=str(out), what="profile")
        if code := _audit_export(record, ctx, f.describe() | {"ward": args.ward}, None):
            return code
        print(f"wrote {out}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from app import audit

    try:
        return audit.print_trail(audit.audit_path(args.db), check=args.verify, as_json=args.json)
    except OSError as exc:
        return _fail(_os_error(exc))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # the last resort: one line, never a traceback
        return _fail(f"{type(exc).__name__}: {exc}")
