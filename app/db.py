"""Where the dashboard finds the warehouse and catalogue, and how it notices a reload."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def warehouse_path() -> Path:
    return Path(os.environ.get("COMMON_GROUND_DB", REPO / "data" / "warehouse.duckdb"))


def catalog_path() -> Path:
    return Path(os.environ.get("COMMON_GROUND_CATALOG", REPO / "data" / "catalog.toml"))


def version(path: Path) -> tuple[int, int]:
    """Changes whenever a load renames a new warehouse into place."""
    st = path.stat()
    return st.st_ino, st.st_mtime_ns
