"""The engines by name: DuckDB embedded (default), Spark (pyspark and a Java runtime,
imported only when asked for) and PostgreSQL (where the OMOP data lives)."""

from __future__ import annotations

from typing import Any

from trialdesk.errors import ScreeningError
from trialdesk.screening.engine import DuckDBEngine, Engine

ENGINES = ("duckdb", "spark", "postgres")


def make_engine(name: str, **options: Any) -> Engine:
    """An engine by name: ``duckdb``, ``spark`` (needs pyspark and a Java runtime) or ``postgres``
    (runs inside the PostgreSQL database given by ``url``)."""
    if name == "duckdb":
        return DuckDBEngine(**{k: v for k, v in options.items()
                               if k in ("threads", "memory_limit", "temp_directory")})
    if name == "spark":
        from trialdesk.screening.spark import SparkEngine

        return SparkEngine(**{k: v for k, v in options.items() if k in ("threads", "memory")})
    if name == "postgres":
        from trialdesk.screening.postgres import PostgresEngine

        return PostgresEngine(str(options.get("url") or ""))
    raise ScreeningError(f"unknown engine '{name}'; choose one of: {', '.join(ENGINES)}")
