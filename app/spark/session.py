"""The Spark session a load runs in: ``local[*]`` unless a master is already chosen.

A cluster is chosen the usual ways, and each wins over the default: ``spark-submit --master``
(the driver then runs inside a JVM spark-submit started, with its configuration), ``--master``
in ``PYSPARK_SUBMIT_ARGS``, ``spark.master`` in ``spark-defaults.conf``, or ``SPARK_MASTER``.
"""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

DEFAULT_MASTER = "local[*]"

# Settings every load assumes: times are UTC wall clock (the warehouse's TIMESTAMP has no zone),
# Arrow moves batches between the JVM and the Python workers, and no web UI is served.
_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "65536",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.compression.codec": "zstd",
    # Spark's own files beside the Parquet (success markers) are not part of a store.
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    "spark.log.level": "ERROR",
}
# In local mode the driver's JVM is every worker's too: room for the cached rows of a load
# (SPARK_DRIVER_MEMORY, or spark.driver.memory from spark-submit, wins).
_LOCAL_DRIVER_MEMORY = "4g"


def chosen_master() -> str | None:
    """The master the environment names, or None when nothing does (then ``local[*]``)."""
    if os.environ.get("SPARK_MASTER"):
        return os.environ["SPARK_MASTER"]
    if "--master" in os.environ.get("PYSPARK_SUBMIT_ARGS", ""):
        return ""  # pyspark passes it to the JVM it starts
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        return ""  # started by spark-submit: its configuration holds the master
    conf_dir = os.environ.get("SPARK_CONF_DIR") or (
        os.path.join(os.environ["SPARK_HOME"], "conf") if os.environ.get("SPARK_HOME") else None
    )
    if conf_dir and os.path.exists(os.path.join(conf_dir, "spark-defaults.conf")):
        with open(os.path.join(conf_dir, "spark-defaults.conf"), encoding="utf-8") as handle:
            if any(line.split()[:1] == ["spark.master"] for line in handle):
                return ""
    return None


def get_session(master: str | None = None, app_name: str = "common-ground-load") -> SparkSession:
    """A Spark session (an existing one is reused: a JVM holds one context at a time).

    ``master`` overrides the environment; without either, ``local[*]``. Workers run this
    interpreter unless ``PYSPARK_PYTHON`` names another, so they import the same ``app``."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    found = chosen_master()
    if master:
        builder = builder.master(master)
    elif found is None:
        builder = builder.master(DEFAULT_MASTER)
    elif found:
        builder = builder.master(found)
    for key, value in _SETTINGS.items():
        builder = builder.config(key, value)
    if found is None and not master and not os.environ.get("SPARK_DRIVER_MEMORY"):
        builder = builder.config("spark.driver.memory", _LOCAL_DRIVER_MEMORY)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
