"""The load on Apache Spark: the same readers, validation, placement and record keys as the
DuckDB engine, run by Spark's workers one file per task, writing the store folder layout of
``app.store.layout`` (events, quarantine and the aggregate cube as Parquet, and a manifest).

Only ``python -m app load --engine spark`` imports this package; pyspark is needed nowhere else.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

from app.ingest import LoadError, Progress


class SparkUnavailable(LoadError):
    """Spark cannot start here: pyspark or Java is missing."""


def check_spark() -> None:
    """Refuse, in one sentence, to start Spark where it cannot run."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SparkUnavailable(
            "the Spark engine needs pyspark: install it with `pip install -r requirements.txt`"
        ) from None
    java_home = os.environ.get("JAVA_HOME")
    if not shutil.which("java") and not (java_home and (Path(java_home) / "bin" / "java").exists()):
        raise SparkUnavailable(
            "the Spark engine needs Java 17: install it (Debian: apt-get install openjdk-17-jre-headless) "
            "or set JAVA_HOME"
        )


def load_on_spark(
    catalog_path: str | Path,
    out_dir: str | Path,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
    spark=None,
) -> dict:
    """Load the catalogue on Spark into the store folder ``out_dir`` (``app.spark.load``); a
    failure of Spark itself is one sentence (``LoadError``), never a Java or Python trace."""
    check_spark()
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    from app.spark.load import load

    try:
        return load(catalog_path, out_dir, progress=progress, now=now, spark=spark)
    except (PySparkException, Py4JError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        cause = next((line for line in reversed(lines) if "Error" in line or "Exception" in line), "")
        raise LoadError(
            f"the Spark load failed: {cause or (lines[0] if lines else type(exc).__name__)}"
        ) from exc
