"""The engines by name: DuckDB embedded (default) and Spark (pyspark and a Java runtime,
imported only when asked for)."""

from __future__ import annotations

from typing import Any

from trialdesk.errors import ScreeningError
from trialdesk.screening.engine import DuckDBEngine, Engine

ENGINES = ("duckdb", "spark")


def make_engine(name: str, **options: Any) -> Engine:
    """An engine by name: ``duckdb`` or ``spark`` (needs pyspark and a Java runtime)."""
    if name == "duckdb":
        return DuckDBEngine(**{k: v for k, v in options.items()
                               if k in ("threads", "memory_limit", "temp_directory")})
    if name == "spark":
        from trialdesk.screening.spark import SparkEngine

        return SparkEngine(**{k: v for k, v in options.items() if k in ("threads", "memory")})
    raise ScreeningError(f"unknown engine '{name}'; choose one of: {', '.join(ENGINES)}")
