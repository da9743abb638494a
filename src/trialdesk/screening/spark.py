"""The Spark engine: the same compiled plan, run by Spark SQL (pyspark).

pyspark is imported only when this engine is made; it needs a Java runtime (17 or newer,
e.g. Debian's ``openjdk-17-jre-headless``). Without either, making the engine raises one
clear error saying what to install. Local mode (``local[N]``) runs on one machine; point
``spark.master`` elsewhere through the usual Spark configuration to go beyond it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trialdesk.errors import ScreeningError, TrialdeskError
from trialdesk.screening.engine import Engine, engine_error


def java_runtime() -> str | None:
    """The ``java`` executable Spark would use, or None."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        return os.path.join(home, "bin", "java")
    return shutil.which("java")


class SparkEngine(Engine):
    """Spark SQL through pyspark (local mode unless configured otherwise)."""

    name = "spark"

    def __init__(self, *, threads: int | None = None, memory: str = "4g") -> None:
        super().__init__()
        try:
            from pyspark import StorageLevel
            from pyspark.sql import SparkSession
        except ImportError:
            raise ScreeningError("the spark engine needs pyspark: pip install pyspark") from None
        if java_runtime() is None:
            raise ScreeningError("the spark engine needs a Java runtime (17 or newer), e.g. "
                                 "apt-get install openjdk-17-jre-headless; or set JAVA_HOME")
        self._storage = StorageLevel.MEMORY_AND_DISK
        cores = threads or os.cpu_count() or 2
        builder = (
            SparkSession.builder.master(os.environ.get("TRIALDESK_SPARK_MASTER", f"local[{cores}]"))
            .appName("trialdesk population screening")
            # Date-times are read and compared in UTC: no daylight-saving hour appears or
            # disappears between a septic-shock onset and the screening moment.
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.ansi.enabled", "false")
            .config("spark.sql.shuffle.partitions", str(max(2, 2 * cores)))
            .config("spark.driver.memory", memory)
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.parquet.compression.codec", "zstd")
        )
        try:
            self.spark = builder.getOrCreate()
        except Exception as exc:
            raise ScreeningError(f"spark did not start: {str(exc).splitlines()[0]}") from None
        self.spark.sparkContext.setLogLevel("ERROR")
        self._cached: dict[str, Any] = {}

    def _sql(self, sql: str) -> Any:
        try:
            return self.spark.sql(sql)
        except Exception as exc:
            raise engine_error("spark", exc, sql) from None

    def register_files(self, view: str, files: Sequence[Path]) -> None:
        try:
            frame = self.spark.read.option("mergeSchema", "true").parquet(*map(str, files))
        except Exception as exc:
            raise engine_error("spark", exc, f"read parquet {files[0]}") from None
        frame.createOrReplaceTempView(view)

    def execute(self, sql: str) -> None:
        self._sql(sql)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        try:
            return [tuple(r) for r in self._sql(sql).collect()]
        except TrialdeskError:
            raise
        except Exception as exc:
            raise engine_error("spark", exc, sql) from None

    def dicts(self, sql: str) -> list[dict[str, Any]]:
        try:
            return [r.asDict() for r in self._sql(sql).collect()]
        except TrialdeskError:
            raise
        except Exception as exc:
            raise engine_error("spark", exc, sql) from None

    def materialise(self, name: str, sql: str) -> None:
        old = self._cached.pop(name, None)
        frame = self._sql(sql).persist(self._storage)
        try:
            frame.count()
        except Exception as exc:
            raise engine_error("spark", exc, sql) from None
        frame.createOrReplaceTempView(name)
        self._cached[name] = frame
        if old is not None:
            old.unpersist()

    def write(self, sql: str, directory: Path) -> None:
        try:
            self._sql(sql).write.mode("overwrite").parquet(str(directory))
        except TrialdeskError:
            raise
        except Exception as exc:
            raise engine_error("spark", exc, sql) from None

    def close(self) -> None:
        for frame in self._cached.values():
            frame.unpersist()
        self._cached.clear()
        self.spark.stop()


__all__ = ["SparkEngine", "java_runtime"]
