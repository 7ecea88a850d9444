"""The Spark engine against the DuckDB engine: the demo city and Bath's real files loaded by both
give the same events, quarantine, wards, cells, keys and load reports, and exports from the two
stores are byte for byte the same, released (perturbed, rounded) figures included.

One Spark session (``local[2]``) serves the module: starting one costs seconds.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import CATALOGS

# Fields of a load report that measure the run, not the data.
_TIMING = {"load_seconds", "rows_per_second", "loaded_at"}
# Fields of an export's sidecar that say when it was made.
_WHEN = {"created", "loaded_at"}
EXPORTS = [
    *(("hexes", ["--res", str(r)]) for r in (7, 8, 9, 10)),
    ("wards", []),
    ("hotspots", ["--res", "8"]),
    ("emerging", ["--res", "8"]),
]


@pytest.fixture(scope="module")
def spark():
    from app.spark import SparkUnavailable, check_spark
    from app.spark.session import get_session

    try:
        check_spark()
    except SparkUnavailable as exc:
        if os.environ.get("SPARK_REQUIRED"):  # CI: Java is installed, so this is a failure
            raise
        pytest.skip(str(exc))
    session = get_session("local[2]", app_name="common-ground-tests")
    yield session
    session.stop()


def _both_engines(
    spark, catalog: Path, folder: Path, duckdb_db: Path | None = None
) -> tuple[Path, Path, dict]:
    """The catalogue loaded by DuckDB (a warehouse, written out as a store) and by Spark (a
    store); returns both stores and Spark's load report."""
    from app.ingest import load
    from app.spark import load_on_spark
    from app.store.layout import write_store
    from app.warehouse import open_readonly

    if duckdb_db is None:
        duckdb_db = folder / "w.duckdb"
        load(catalog, duckdb_db)
    with open_readonly(duckdb_db) as con:
        write_store(con, folder / "duckdb_store")
    report = load_on_spark(catalog, folder / "spark_store", spark=spark)
    return folder / "duckdb_store", folder / "spark_store", report


def _rows(con, sql: str) -> list[tuple]:
    return sorted(con.execute(sql).fetchall(), key=lambda r: tuple((v is None, str(v)) for v in r))


def _assert_same_tables(duck: Path, spark_store: Path) -> None:
    from app.store.duckdb import open_store
    from app.store.layout import read_manifest

    assert read_manifest(spark_store)["engine"] == "spark"
    a, b = open_store(duck), open_store(spark_store)
    try:
        for name, sql in [
            ("meta", "SELECT key, value FROM meta"),
            ("wards", "SELECT * FROM wards"),
            ("ward_index", "SELECT * FROM ward_index"),
            ("datasets", "SELECT * EXCLUDE (report_json, loaded_at) FROM datasets"),
            ("quarantine", "SELECT * FROM quarantine"),
            ("events", "SELECT * FROM events"),
            ("cube", "SELECT * FROM cube"),
            ("rollup", "SELECT * FROM rollup"),
        ]:
            assert _rows(a, sql) == _rows(b, sql), f"{name} differs between the engines"
        per_dataset = (
            "SELECT dataset, count(*), count(DISTINCT ward_code), count(DISTINCT h3) FROM events GROUP BY 1"
        )
        assert _rows(a, per_dataset) == _rows(b, per_dataset)
        # The gazetteer, where the catalogue names one: both stores carry it alike.
        named = [set(read_manifest(s)["tables"]) & {"places", "postcodes"} for s in (duck, spark_store)]
        assert named[0] == named[1]
        for name in sorted(named[0]):
            assert _rows(a, f"SELECT * FROM {name}") == _rows(b, f"SELECT * FROM {name}"), name
        reports = [
            {
                i: _without(json.loads(r), _TIMING)
                for i, r in con.execute("SELECT id, report_json FROM datasets").fetchall()
            }
            for con in (a, b)
        ]
        assert reports[0] == reports[1]
    finally:
        a.close()
        b.close()


def _without(d, keys: set[str]):
    """``d`` without ``keys`` at any depth."""
    if isinstance(d, dict):
        return {k: _without(v, keys) for k, v in d.items() if k not in keys}
    if isinstance(d, list):
        return [_without(v, keys) for v in d]
    return d


def _assert_same_exports(stores: dict[str, Path], out: Path, datasets: list[str] | None = None) -> None:
    """Every export, from every store, byte for byte the same; sidecars the same but for when."""
    from app.cli import main

    for what, extra in EXPORTS:
        files = {}
        for name, db in stores.items():
            target = out / name / f"{what}{'_'.join(extra)}.csv"
            args = ["export", what, *extra, "--db", str(db), "--out", str(target)]
            for d in datasets or []:
                args += ["--dataset", d]
            assert main(args) == 0, f"export {what} {extra} from {name} failed"
            files[name] = target
        first, *others = files.values()
        for other in others:
            assert first.read_bytes() == other.read_bytes(), f"{what} {extra}: {first} != {other}"
            sides = [json.loads(p.with_name(p.name + ".json").read_text()) for p in (first, other)]
            assert _without(sides[0], _WHEN) == _without(sides[1], _WHEN)


@pytest.mark.slow
def test_demo_city_same_in_both_engines(spark, small_demo, small_demo_db, tmp_path):
    db, duck_report = small_demo_db
    duck, spark_store, report = _both_engines(spark, small_demo / "catalog.toml", tmp_path, db)
    assert report["engine"] == "spark"
    assert report["totals"] == duck_report["totals"]
    for ours, theirs in zip(report["datasets"], duck_report["datasets"], strict=True):
        assert _without(ours, _TIMING) == _without(theirs, _TIMING)
    _assert_same_tables(duck, spark_store)
    _assert_same_exports({"duckdb": duck, "spark": spark_store}, tmp_path / "exports")


@pytest.mark.slow
@pytest.mark.realdata
def test_bath_same_in_both_engines(spark, tmp_path):
    duck, spark_store, report = _both_engines(spark, CATALOGS / "bath-banes.toml", tmp_path)
    assert report["totals"]["datasets_failed"] == 0
    assert report["totals"]["rows_quarantined"] > 0  # Bath's files have rows outside, bad dates...
    _assert_same_tables(duck, spark_store)
    _assert_same_exports({"duckdb": duck, "spark": spark_store}, tmp_path / "exports")


@pytest.mark.slow
def test_repeated_records_same_in_both_engines(spark, small_demo, tmp_path):
    """A dataset that counts each record once, in two files: a row of the second file that
    repeats one of the first is quarantined by Spark as by DuckDB, though Spark loads each
    file in a task of its own."""
    from test_repeated_records import city_with_repeats

    catalog, expected = city_with_repeats(small_demo, tmp_path / "city")
    duck, spark_store, report = _both_engines(spark, catalog, tmp_path)
    (ds,) = report["datasets"]
    assert ds["quarantined_by_reason"]["repeated_record"] == sum(map(len, expected["repeats"].values()))
    _assert_same_tables(duck, spark_store)


@pytest.mark.slow
def test_failed_dataset_reported_as_duckdb_does(spark, small_demo, tmp_path):
    """A dataset none of whose rows load (a time format that matches nothing) and one whose file
    cannot be read (it is empty) fail with the DuckDB engine's words; the other loads."""
    from app.ingest import load
    from app.spark import load_on_spark

    root = tmp_path / "city"
    shutil.copytree(small_demo / "demo", root / "demo")
    head, *blocks = (small_demo / "catalog.toml").read_text().split("[[datasets]]")
    kept = [
        b
        for b in blocks
        if any(f'id = "{i}"' in b for i in ("police_crime", "police_asb", "outreach_visits"))
    ]
    (root / "catalog.toml").write_text("[[datasets]]".join([head, *kept]))
    catalog = root / "catalog.toml"
    _break_catalog(catalog, root)
    duck = load(catalog, tmp_path / "w.duckdb")
    ours = load_on_spark(catalog, tmp_path / "store", spark=spark)
    failed = {d["id"]: d["error"] for d in duck["datasets"] if d["status"] == "failed"}
    assert len(failed) == 2
    assert {d["id"]: d["error"] for d in ours["datasets"] if d["status"] == "failed"} == failed
    assert ours["totals"] == duck["totals"]


def _break_catalog(catalog: Path, root: Path) -> None:
    """Give police_crime a time format none of its rows match, and empty police_asb's file."""
    text = catalog.read_text()
    good = 'time_format = "%Y-%m-%d %H:%M:%S"'
    assert text.index(good) < text.index('id = "police_asb"')  # police_crime's own
    catalog.write_text(text.replace(good, 'time_format = "%d.%m.%Y"', 1))
    (root / "demo" / "police_asb.csv").write_text("")


def test_spark_needs_java(monkeypatch):
    """Without Java, the Spark engine says what to install, in one sentence."""
    from app.spark import SparkUnavailable, check_spark

    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(SparkUnavailable, match="needs Java 17"):
        check_spark()


def test_master_from_environment(monkeypatch):
    """``local[*]`` unless the usual settings name a master."""
    from app.spark.session import chosen_master

    for name in (
        "SPARK_MASTER",
        "PYSPARK_SUBMIT_ARGS",
        "PYSPARK_GATEWAY_PORT",
        "SPARK_CONF_DIR",
        "SPARK_HOME",
    ):
        monkeypatch.delenv(name, raising=False)
    assert chosen_master() is None
    monkeypatch.setenv("SPARK_MASTER", "spark://head:7077")
    assert chosen_master() == "spark://head:7077"
    monkeypatch.delenv("SPARK_MASTER")
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--master yarn pyspark-shell")
    assert chosen_master() == ""


def test_engine_option():
    from app.cli import build_parser

    args = build_parser().parse_args(["load", "--engine", "spark", "--db", "store"])
    assert args.engine == "spark"
    assert build_parser().parse_args(["load"]).engine == "duckdb"
