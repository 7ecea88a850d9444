"""Adding a dataset from the dashboard: save the file, check the analyst's column mapping, and
load it through the same engine as the command line, without harming what is loaded.

An upload's catalogue entry goes into the uploads list beside the warehouse (see
``app.ingest.uploads_path``), which every load reads with the catalogue. If the new dataset
cannot be loaded, its entry is taken out again and the warehouse is as it was.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from pathlib import Path

import pandas as pd

from app.catalog import Catalog, CatalogError, Dataset, entry_toml, load_catalog, parse_catalog
from app.ingest import dry_run, load, uploads_path

ALLOWED = (".csv", ".parquet", ".geojson", ".json")


def save_upload(db_path: str | Path, filename: str, data: bytes) -> Path:
    """Keep the uploaded bytes under the warehouse's uploads folder with a safe, unique name."""
    suffix = Path(filename).suffix.lower()
    if suffix not in ALLOWED:
        raise ValueError(f"{filename}: upload a CSV, Parquet or GeoJSON file")
    if not data:
        raise ValueError(f"{filename}: the file is empty")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(filename).stem).strip("_")[:60] or "upload"
    digest = hashlib.sha256(data).hexdigest()[:10]
    folder = Path(db_path).parent / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}-{digest}{suffix}"
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def raw_preview(path: Path, rows: int = 20) -> pd.DataFrame:
    """The file's first rows as they are, for the analyst to map columns from."""
    import duckdb

    if path.suffix in (".geojson", ".json"):
        import geopandas as gpd

        frame = gpd.read_file(path, rows=rows)
        return pd.DataFrame(frame.drop(columns="geometry")).assign(geometry=frame.geometry.to_wkt())
    con = duckdb.connect()
    try:
        if path.suffix == ".parquet":
            return con.execute("SELECT * FROM read_parquet($p) LIMIT $n", {"p": str(path), "n": rows}).df()
        return con.execute(
            "SELECT * FROM read_csv($p, all_varchar = true, header = true) LIMIT $n",
            {"p": str(path), "n": rows},
        ).df()
    finally:
        con.close()


def check(catalog_path: str | Path, db_path: str | Path, entry: dict) -> tuple[Dataset, dict, pd.DataFrame]:
    """Validate an entry as the catalogue would, then read the file as a load would: raises
    CatalogError (mistakes in the mapping) or SourceError (an unreadable file)."""
    catalog = load_catalog(catalog_path, uploads_path(db_path))
    if entry.get("id") in {d.id for d in catalog.datasets}:
        raise CatalogError([f"dataset '{entry['id']}': key 'id': already used; choose another id"])
    raw = tomllib.loads(Path(catalog_path).read_text(encoding="utf-8"))
    proposed = {"study_area": raw["study_area"], "datasets": [entry]}
    parsed: Catalog = parse_catalog(proposed, Path(catalog_path))
    ds = parsed.datasets[0]
    counts, preview = dry_run(ds, ds.files[0])
    return ds, counts, preview


def add(catalog_path: str | Path, db_path: str | Path, entry: dict) -> dict:
    """Append the entry to the uploads list and load; on failure take it out again."""
    check(catalog_path, db_path, entry)
    uploads = uploads_path(db_path)
    before = uploads.read_text(encoding="utf-8") if uploads.exists() else ""
    _write(uploads, before + ("\n" if before else "") + entry_toml(entry))
    report = load(catalog_path, db_path)
    mine = next(d for d in report["datasets"] if d["id"] == entry["id"])
    if mine.get("status") != "loaded":
        _write(uploads, before)
        load(catalog_path, db_path)  # drops nothing: the failed dataset never replaced anything
    return mine


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
