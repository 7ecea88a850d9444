"""The catalogue: which agencies' files make up the warehouse, and how to read each one.

A catalogue is a TOML file with one ``[study_area]`` table and any number of ``[[datasets]]``.
Every mistake in it is reported at once, each naming the catalogue, the dataset and the key, so
that an analyst can fix a partner agency's entry without a round trip per typo.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import re
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

log = logging.getLogger(__name__)

KINDS = ("demand", "intervention")
SHARING = ("open", "partners", "restricted")
FORMATS = ("csv", "parquet", "geojson", "gpkg", "shp")
GEO_FORMATS = ("geojson", "gpkg", "shp")
EXTENSION_FORMATS = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".geojson": "geojson",
    ".json": "geojson",
    ".gpkg": "gpkg",
    ".shp": "shp",
}
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# A dataset added in the browser by a signed-in person has an id in their agency's own space,
# AGENCY__NAME (``app.uploads.upload_id``); the catalogue's ids never hold "__", so an id
# chosen in the browser can clash only with the same agency's datasets, which that person
# sees, and the answer "already used" never tells of another agency's dataset.
UPLOAD_SEPARATOR = "__"

STUDY_AREA_KEYS = {
    "name",
    "boundaries",
    "code_field",
    "name_field",
    "population_field",
    "layer",
    "crs",
    "vintage",
    "attribution",
    "places",  # optional gazetteer of named places (app/places.py says which files fit)
    "postcodes",  # optional postcode lookup in the ONS Postcode Directory layout
}
DATASET_KEYS = {
    "id",
    "title",
    "agency",
    "agency_column",
    "kind",
    "path",
    "format",
    "lat",
    "lon",
    "x",
    "y",
    "crs",
    "point",
    "time",
    "time_format",
    "time_of_day",
    "time_of_day_format",
    "category",
    "weight",
    "record_id",
    "sharing",
    "licence",
    "attribution",
    "owner",
    "description",
    "delimiter",
    "encoding",
    "layer",
    "thousands",
    "null_values",
    "ward_column",
    "repeated_record_id",
}
REPEATS = ("keep", "quarantine")  # what a row that repeats an earlier row's record_id is
REQUIRED_DATASET_KEYS = ("id", "title", "agency", "kind", "path", "time", "category", "sharing")


class CatalogError(ValueError):
    """A catalogue that cannot be used; ``problems`` lists every mistake found."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class StudyArea:
    name: str
    boundaries: Path
    code_field: str
    name_field: str
    population_field: str | None = None
    layer: str | None = None
    crs: str | None = None
    vintage: str | None = None
    attribution: str | None = None
    places: Path | None = None  # gazetteer: named points or areas (app/places.py)
    postcodes: Path | None = None  # postcode lookup, ONS Postcode Directory layout


@dataclass(frozen=True)
class Dataset:
    """One agency dataset as the catalogue describes it; paths are already resolved."""

    id: str
    title: str
    agency: str
    kind: str
    path: str
    files: tuple[Path, ...]
    format: str
    time: str
    category: str
    sharing: str
    lat: str | None = None
    lon: str | None = None
    x: str | None = None
    y: str | None = None
    crs: str | None = None
    point: str | None = None
    time_format: tuple[str, ...] = ()
    time_of_day: str | None = None
    time_of_day_format: str | None = None
    weight: str | None = None
    record_id: str | None = None
    agency_column: str | None = None
    licence: str = ""
    attribution: str = ""
    owner: str = ""
    description: str = ""
    delimiter: str = ","
    encoding: str = "utf-8"
    layer: str | None = None
    thousands: str | None = None
    null_values: tuple[str, ...] = ()
    ward_column: str | None = None  # the source's own ward (code or name), used instead of the point's
    # "quarantine": a row whose record_id an earlier row of the dataset already loaded is the
    # same record again (one row per victim of one shooting) and is quarantined, not counted.
    repeated_record_id: str = "keep"

    @property
    def location_mode(self) -> str:
        """How the records are placed: ``latlon``, ``xy``, ``point`` text or file ``geometry``."""
        if self.lat:
            return "latlon"
        if self.x:
            return "xy"
        if self.point:
            return "point"
        return "geometry"

    def source_columns(self) -> dict[str, str]:
        """The catalogue keys that name columns of the file, with the column each names."""
        keys = ("lat", "lon", "x", "y", "point", "time", "time_of_day", "category", "weight")
        cols = {k: getattr(self, k) for k in (*keys, "record_id", "agency_column", "ward_column")}
        return {k: v for k, v in cols.items() if v}

    def entry_hash(self) -> str:
        """A digest of how the dataset is read: a change to any key forces a reload. Files are
        absolute (see ``_resolve``), so the digest does not depend on how the catalogue's own
        path was spelled."""
        entry = asdict(self)
        entry["files"] = [str(f) for f in self.files]
        return hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Catalog:
    path: Path
    study_area: StudyArea
    datasets: tuple[Dataset, ...] = field(default_factory=tuple)
    skipped: tuple[str, ...] = ()  # datasets added through the dashboard that could not be used

    def dataset(self, dataset_id: str) -> Dataset:
        for d in self.datasets:
            if d.id == dataset_id:
                return d
        raise KeyError(f"{self.path}: no dataset with id '{dataset_id}'")


def infer_format(path: str) -> str | None:
    lowered = path.lower()
    for ext in sorted(EXTENSION_FORMATS, key=len, reverse=True):
        if lowered.endswith(ext):
            return EXTENSION_FORMATS[ext]
    return None


def _resolve(base: Path, value: str) -> Path:
    """An absolute, normalised path: the same file reads the same whichever way the catalogue
    was named (``data/catalog.toml`` or its absolute path), so its identity does not change."""
    p = Path(value).expanduser()
    return Path(os.path.abspath(p if p.is_absolute() else base / p))


def _as_str(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def load_catalog(path: str | Path, uploads: str | Path | None = None) -> Catalog:
    """Read and validate a catalogue, plus the datasets added through the dashboard (a file of
    [[datasets]] entries, paths relative to it); raise CatalogError listing every problem of
    the catalogue. An added dataset that cannot be used is skipped, never fatal: it is logged
    and listed in ``Catalog.skipped``, naming the uploads list and the entry."""
    path = Path(path)
    catalog = parse_catalog(_read_toml(path), path)
    if uploads is None or not Path(uploads).exists():
        return catalog
    added, skipped = _parse_uploads(Path(uploads), catalog)
    for line in skipped:
        log.warning("skipped: %s", line)
    return replace(catalog, datasets=catalog.datasets + added, skipped=tuple(skipped))


def _parse_uploads(uploads: Path, catalog: Catalog) -> tuple[tuple[Dataset, ...], list[str]]:
    """The usable entries of the uploads list, and one line for each entry that is not."""
    try:
        raw = _read_toml(uploads)
    except CatalogError as exc:
        return (), [
            f"{problem}; no dataset added through the dashboard was loaded" for problem in exc.problems
        ]
    skipped = [
        f"{uploads}: only [[datasets]] entries belong here, not '{key}'" for key in raw if key != "datasets"
    ]
    entries = raw.get("datasets", [])
    if not isinstance(entries, list):
        return (), [*skipped, f"{uploads}: 'datasets' must be an array of tables ([[datasets]])"]
    added: list[Dataset] = []
    seen = {d.id for d in catalog.datasets}
    for i, entry in enumerate(entries):
        problems: list[str] = []
        ds = _parse_dataset(entry, i, uploads, uploads.parent, problems, added=True)
        if ds is not None and ds.id in seen:
            problems.append(f"{uploads}: dataset '{ds.id}': key 'id': already used by another dataset")
        if problems:
            skipped.extend(problems)
            continue
        seen.add(ds.id)
        added.append(ds)
    return tuple(added), skipped


def _read_toml(path: Path) -> dict:
    if not path.exists():
        raise CatalogError([f"{path}: catalogue file not found"])
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CatalogError([f"{path}: not valid TOML: {exc}"]) from exc


def entry_toml(entry: dict) -> str:
    """One [[datasets]] table as TOML text (strings and lists of strings only), valid for any
    text: an emoji, quotes, backslashes or new lines in a title must never break the list."""
    lines = ["[[datasets]]"]
    for key, value in entry.items():
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, list):
            lines.append(f"{_toml_key(key)} = [{', '.join(toml_string(str(v)) for v in value)}]")
        else:
            lines.append(f"{_toml_key(key)} = {toml_string(str(value))}")
    return "\n".join(lines) + "\n"


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_string(text: str) -> str:
    """A TOML basic string: characters outside ASCII are written as they are (TOML files are
    UTF-8), only quotes, backslashes and control characters are escaped."""
    out = []
    for ch in text:
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else toml_string(key)


def parse_catalog(raw: dict, path: Path, added: bool = False) -> Catalog:
    """The catalogue ``raw`` (read from ``path``); ``added``: its datasets were added in the
    browser, whose ids may hold an agency's space (``UPLOAD_SEPARATOR``)."""
    base = path.parent
    problems: list[str] = []
    for key in raw:
        if key not in ("study_area", "datasets"):
            problems.append(f"{path}: unknown top-level key '{key}'")
    study_area = _parse_study_area(raw.get("study_area"), path, base, problems)
    datasets: list[Dataset] = []
    seen: set[str] = set()
    entries = raw.get("datasets", [])
    if not isinstance(entries, list):
        problems.append(f"{path}: 'datasets' must be an array of tables ([[datasets]])")
        entries = []
    for i, entry in enumerate(entries):
        ds = _parse_dataset(entry, i, path, base, problems, added)
        if ds is None:
            continue
        if ds.id in seen:
            problems.append(f"{path}: dataset '{ds.id}': key 'id': duplicate id")
            continue
        seen.add(ds.id)
        datasets.append(ds)
    if problems or study_area is None:
        raise CatalogError(problems or [f"{path}: no [study_area]"])
    return Catalog(path=path, study_area=study_area, datasets=tuple(datasets))


def _parse_study_area(sa: object, path: Path, base: Path, problems: list[str]) -> StudyArea | None:
    where = f"{path}: [study_area]"
    if not isinstance(sa, dict):
        problems.append(f"{where}: missing; it must name the ward boundaries file")
        return None
    for key in sa:
        if key not in STUDY_AREA_KEYS:
            problems.append(f"{where}: unknown key '{key}'")
    for key in ("name", "boundaries", "code_field", "name_field"):
        if not _as_str(sa.get(key)):
            problems.append(f"{where}: key '{key}': required, a non-empty string")
    for key in STUDY_AREA_KEYS - {"name", "boundaries", "code_field", "name_field"}:
        if key in sa and not _as_str(sa[key]):
            problems.append(f"{where}: key '{key}': must be a non-empty string")
    boundaries = _as_str(sa.get("boundaries"))
    if boundaries and not _resolve(base, boundaries).exists():
        problems.append(f"{where}: key 'boundaries': file not found: {_resolve(base, boundaries)}")
    _check_place_files(sa, where, base, problems)
    if any(p.startswith(where) for p in problems):
        return None
    return StudyArea(
        name=sa["name"],
        boundaries=_resolve(base, sa["boundaries"]),
        code_field=sa["code_field"],
        name_field=sa["name_field"],
        population_field=sa.get("population_field"),
        layer=sa.get("layer"),
        crs=sa.get("crs"),
        vintage=sa.get("vintage"),
        attribution=sa.get("attribution"),
        places=_resolve(base, sa["places"]) if _as_str(sa.get("places")) else None,
        postcodes=_resolve(base, sa["postcodes"]) if _as_str(sa.get("postcodes")) else None,
    )


def _check_place_files(sa: dict, where: str, base: Path, problems: list[str]) -> None:
    """The optional gazetteer and postcode files: present, and with the columns they need."""
    from app.places import check_places_file, check_postcodes_file

    for key, check in (("places", check_places_file), ("postcodes", check_postcodes_file)):
        value = _as_str(sa.get(key))
        if not value:
            continue
        full = _resolve(base, value)
        if not full.is_file():
            problems.append(f"{where}: key '{key}': file not found: {full}")
        elif why := check(full):
            problems.append(f"{where}: key '{key}': {why}")


def _parse_dataset(
    entry: object, index: int, path: Path, base: Path, problems: list[str], added: bool = False
) -> Dataset | None:
    if not isinstance(entry, dict):
        problems.append(f"{path}: datasets[{index}]: must be a table")
        return None
    ident = entry.get("id")
    where = f"{path}: dataset '{ident}'" if _as_str(ident) else f"{path}: datasets[{index}]"
    before = len(problems)

    def bad(key: str, why: str) -> None:
        problems.append(f"{where}: key '{key}': {why}")

    for key in entry:
        if key not in DATASET_KEYS:
            bad(key, "unknown key")
    for key in REQUIRED_DATASET_KEYS:
        if not _as_str(entry.get(key)):
            bad(key, "required, a non-empty string")
    not_text = (*REQUIRED_DATASET_KEYS, "time_format", "null_values")
    for key, value in entry.items():
        if key in DATASET_KEYS and key not in not_text and not _as_str(value):
            bad(key, "must be a non-empty string")
    if _as_str(ident) and not ID_PATTERN.match(ident):
        bad("id", "use lower-case letters, digits and underscores, starting with a letter")
    elif _as_str(ident) and UPLOAD_SEPARATOR in ident and not added:
        bad("id", f"'{UPLOAD_SEPARATOR}' is kept for datasets added in the browser; use a single underscore")
    if _as_str(entry.get("kind")) and entry["kind"] not in KINDS:
        bad("kind", f"must be one of {', '.join(KINDS)}, not '{entry['kind']}'")
    if _as_str(entry.get("sharing")) and entry["sharing"] not in SHARING:
        bad("sharing", f"must be one of {', '.join(SHARING)}, not '{entry['sharing']}'")

    time_format = entry.get("time_format", [])
    if isinstance(time_format, str):
        time_format = [time_format]
    if not isinstance(time_format, list) or not all(_as_str(f) for f in time_format):
        bad("time_format", "must be a strptime format or a list of them")
        time_format = []

    files: list[Path] = []
    fmt = entry.get("format")
    pattern = _as_str(entry.get("path"))
    if pattern:
        full = _resolve(base, pattern)
        files = sorted(Path(p) for p in glob.glob(str(full)))
        if not files:
            bad("path", f"no file matches {full}")
        if fmt is None:
            fmt = infer_format(pattern)
            if fmt is None:
                bad("format", f"cannot tell the format of '{pattern}'; name one of {FORMATS}")
    if fmt is not None and fmt not in FORMATS:
        bad("format", f"must be one of {', '.join(FORMATS)}, not '{fmt}'")

    has = {k: k in entry for k in ("lat", "lon", "x", "y", "crs", "point")}
    if has["lat"] != has["lon"]:
        bad("lat" if not has["lat"] else "lon", "lat and lon go together")
    if has["x"] != has["y"]:
        bad("x" if not has["x"] else "y", "x and y go together")
    if has["x"] and not has["crs"]:
        bad("crs", "x and y need a crs, e.g. 'EPSG:27700'")
    modes = sum([has["lat"], has["x"], has["point"]])
    if modes > 1:
        bad("lat", "give one of lat+lon, x+y+crs or point, not several")
    if modes == 0 and fmt in ("csv", "parquet"):
        bad("lat", "a CSV or Parquet dataset needs lat+lon, x+y+crs or point columns")
    if has["crs"] and not has["x"] and fmt not in GEO_FORMATS:
        bad("crs", "crs only applies to x and y columns or a geometry file")
    if "time_of_day_format" in entry and "time_of_day" not in entry:
        bad("time_of_day_format", "needs a time_of_day column")
    delimiter = entry.get("delimiter", ",")
    if isinstance(delimiter, str) and len(delimiter) != 1:
        bad("delimiter", "must be a single character")
    thousands = entry.get("thousands")
    if isinstance(thousands, str) and (len(thousands) != 1 or thousands in "0123456789.-+eE"):
        bad("thousands", "must be one character that is not a digit, sign or decimal point")
    repeats = entry.get("repeated_record_id", "keep")
    if _as_str(repeats) and repeats not in REPEATS:
        bad("repeated_record_id", f"must be one of {', '.join(REPEATS)}, not '{repeats}'")
    if repeats == "quarantine" and not _as_str(entry.get("record_id")):
        bad("repeated_record_id", "needs a record_id column to tell repeated records by")
    null_values = entry.get("null_values", [])
    if not isinstance(null_values, list) or not all(isinstance(v, str) for v in null_values):
        bad("null_values", 'must be a list of strings, e.g. ["NULL", "N/A"]')
        null_values = []

    if len(problems) > before:
        return None
    return Dataset(
        id=entry["id"],
        title=entry["title"],
        agency=entry["agency"],
        kind=entry["kind"],
        path=entry["path"],
        files=tuple(files),
        format=fmt,
        time=entry["time"],
        category=entry["category"],
        sharing=entry["sharing"],
        lat=entry.get("lat"),
        lon=entry.get("lon"),
        x=entry.get("x"),
        y=entry.get("y"),
        crs=entry.get("crs"),
        point=entry.get("point"),
        time_format=tuple(time_format),
        time_of_day=entry.get("time_of_day"),
        time_of_day_format=entry.get("time_of_day_format"),
        weight=entry.get("weight"),
        record_id=entry.get("record_id"),
        agency_column=entry.get("agency_column"),
        licence=entry.get("licence", ""),
        attribution=entry.get("attribution", ""),
        owner=entry.get("owner", ""),
        description=entry.get("description", ""),
        delimiter=delimiter,
        encoding=entry.get("encoding", "utf-8"),
        layer=entry.get("layer"),
        thousands=entry.get("thousands"),
        null_values=tuple(null_values),
        ward_column=entry.get("ward_column"),
        repeated_record_id=repeats,
    )
