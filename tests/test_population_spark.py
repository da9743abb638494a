"""The Spark engine runs the same compiled plan: results identical to DuckDB's, row for row.

Spark needs pyspark and a Java runtime. Without them the tests are skipped with the
reason; in CI (``CI=true``) the Java runtime is installed here (Debian's openjdk) and a
skip is a failure.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from conftest import IN_CI, unavailable
from test_population import edge_cases, rows_of
from trialdesk.errors import FactError
from trialdesk.protocol.load import CompiledProtocol, default_protocol_dir, load_directory
from trialdesk.screening.engine import DuckDBEngine, Engine
from trialdesk.screening.run import screen_population, write_tables
from trialdesk.screening.spark import java_runtime
from trialdesk.screening.synth import synthesise

ON = date(2026, 11, 21)


def _install_java() -> None:
    """CI only: Debian's Java runtime, as the project's CI machine needs it."""
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                     "openjdk-17-jre-headless"]):
        subprocess.run(command, check=False, capture_output=True, timeout=900)


@pytest.fixture(scope="module")
def spark() -> Iterator[Engine]:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        unavailable("pyspark is not installed (pip install pyspark)")
    if java_runtime() is None and IN_CI:
        _install_java()
    if java_runtime() is None:
        unavailable("no Java runtime for Spark (apt-get install openjdk-17-jre-headless)")
    from trialdesk.screening.spark import SparkEngine

    engine = SparkEngine(threads=2, memory="2g")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def protocols() -> list[CompiledProtocol]:
    return list(load_directory(default_protocol_dir()).values())


def _both(spark: Engine, data: Path, tmp: Path, trials: list[CompiledProtocol],
          as_of: datetime) -> tuple[Path, Path]:
    duck, spark_out = tmp / "duckdb", tmp / "spark"
    with DuckDBEngine(memory_limit="1GB") as engine:
        screen_population(engine, data=data, out=duck, protocols=trials, as_of=as_of)
    screen_population(spark, data=data, out=spark_out, protocols=trials, as_of=as_of)
    return duck, spark_out


def test_spark_equals_duckdb_on_a_sample_population(spark: Engine, tmp_path: Path,
                                                    protocols: list[CompiledProtocol]) -> None:
    data = tmp_path / "data"
    write_tables(data, synthesise(400, seed=7, on=ON, trials=protocols))
    duck, spark_out = _both(spark, data, tmp_path, protocols, datetime(2026, 11, 21, 1, 0))
    rows = rows_of(duck)
    assert len(rows) == 1600
    assert rows_of(spark_out) == rows
    assert json.loads((spark_out / "summary.json").read_text()) == json.loads(
        (duck / "summary.json").read_text())
    manifest = json.loads((spark_out / "manifest.json").read_text())
    assert manifest["engine"] == "spark"


def test_spark_equals_duckdb_on_edge_cases(spark: Engine, tmp_path: Path,
                                           protocols: list[CompiledProtocol]) -> None:
    edge_cases(tmp_path / "data")
    duck, spark_out = _both(spark, tmp_path / "data", tmp_path, protocols,
                            datetime(2026, 11, 21, 8, 0))
    assert rows_of(spark_out) == rows_of(duck)
    assert {r[0] for r in rows_of(spark_out)} == {1, 2, 3, 5}


def test_spark_reports_bad_input_like_duckdb(spark: Engine, tmp_path: Path,
                                             protocols: list[CompiledProtocol]) -> None:
    import pyarrow.parquet as pq

    data = tmp_path / "data"
    edge_cases(data)
    table = pq.read_table(data / "measurement.parquet").to_pylist()
    table[0]["unit_source_value"] = "blorps"
    from test_population import MEASUREMENT, write

    write(data, "measurement", table, MEASUREMENT)
    messages = []
    with DuckDBEngine(memory_limit="1GB") as duck:
        for engine in (duck, spark):
            with pytest.raises(FactError) as info:
                screen_population(engine, data=data, out=tmp_path / "out", protocols=protocols,
                                  as_of=datetime(2026, 11, 21))
            messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert "unknown unit 'blorps'" in messages[0]


def test_spark_equals_duckdb_on_coded_omop_data(spark: Engine, tmp_path: Path,
                                                protocols: list[CompiledProtocol]) -> None:
    """Synthea27Nj: concept ids, DECIMAL values, vocabulary rows — translated the same way."""
    from test_population_omop import unzip_synthea

    data = unzip_synthea(tmp_path / "synthea")
    duck, spark_out = _both(spark, data, tmp_path, protocols, datetime(2022, 10, 10))
    rows = rows_of(duck)
    assert len(rows) == 28 * len(protocols)
    assert rows_of(spark_out) == rows
