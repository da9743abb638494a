"""PostgreSQL as an engine: the same compiled plan inside PostgreSQL gives, row for row, the
facts and the results DuckDB gives — on a synthetic population and on Synthea27Nj."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from test_population_omop import unzip_synthea
from trialdesk.cli import app
from trialdesk.errors import TrialdeskError
from trialdesk.protocol.load import CompiledProtocol, default_protocol_dir, load_directory
from trialdesk.screening.engine import DuckDBEngine, Engine
from trialdesk.screening.postgres import PostgresEngine, parse_url, redacted
from trialdesk.screening.run import screen_population, select_trials, write_tables
from trialdesk.screening.synth import synthesise

AS_OF = datetime(2026, 11, 21, 9, 30)
SEED = 20261204
TABLES = ("person", "condition_occurrence", "measurement", "observation", "drug_exposure",
          "observation_period", "concept", "concept_ancestor", "concept_relationship")
runner = CliRunner()


#: Arrow type tests → PostgreSQL column types, in order (int64 before the other integers).
_PG_TYPES = ((pa.types.is_int64, "bigint"), (pa.types.is_integer, "integer"),
             (pa.types.is_floating, "double precision"), (pa.types.is_date, "date"),
             (pa.types.is_timestamp, "timestamp"), (pa.types.is_boolean, "boolean"))


def _pg_type(t: pa.DataType) -> str:
    if pa.types.is_decimal(t):
        return f"numeric({t.precision},{t.scale})"
    return next((name for test, name in _PG_TYPES if test(t)), "text")


def load_schema(url: str, schema: str, folder: Path) -> None:
    """Copy a folder of Parquet tables into a PostgreSQL schema, types kept."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f'CREATE SCHEMA "{schema}"')
        for name in TABLES:
            single = folder / f"{name}.parquet"
            files = [single] if single.exists() else sorted((folder / name).glob("*.parquet"))
            if not files:
                continue
            table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
            cols = ", ".join(f'"{f.name}" {_pg_type(f.type)}' for f in table.schema)
            con.execute(f'CREATE TABLE "{schema}"."{name}" ({cols})')
            with con.cursor() as cur, cur.copy(f'COPY "{schema}"."{name}" FROM STDIN') as copy:
                for row in zip(*(c.to_pylist() for c in table.columns), strict=True):
                    copy.write_row(row)


@pytest.fixture(scope="module")
def protocols() -> dict[str, CompiledProtocol]:
    return load_directory(default_protocol_dir())


@pytest.fixture
def database(postgres_url: str) -> str:
    """A fresh database on the test server (conftest.py), as a plain psycopg URL."""
    return postgres_url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="module")
def synthetic_folder(tmp_path_factory: pytest.TempPathFactory,
                     protocols: dict[str, CompiledProtocol]) -> Path:
    """400 synthetic patients (fixed seed) as Parquet."""
    data = tmp_path_factory.mktemp("synthetic") / "data"
    write_tables(data, synthesise(400, seed=SEED, on=AS_OF.date(), trials=list(protocols.values())))
    return data


@pytest.fixture(scope="module")
def synthea_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return unzip_synthea(tmp_path_factory.mktemp("synthea"))


@pytest.fixture
def synthetic(synthetic_folder: Path, database: str) -> tuple[Path, str]:
    load_schema(database, "syn", synthetic_folder)
    return synthetic_folder, f"{database}?schema=syn"


@pytest.fixture
def synthea(synthea_folder: Path, database: str) -> tuple[Path, str]:
    load_schema(database, "synthea", synthea_folder)
    return synthea_folder, f"{database}?schema=synthea"


def _run(engine: Engine, data: Path | str, out: Path, trials: list[CompiledProtocol],
         as_of: datetime) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]]]:
    """(result rows, td_facts rows), both sorted."""
    with engine:
        screen_population(engine, data=data, out=out, protocols=trials, as_of=as_of)
        facts = sorted(engine.dicts("SELECT * FROM td_facts"), key=lambda r: r["person_id"])
    rows = duckdb.sql(
        f"SELECT person_id, trial_id, verdict, arm, met, unknown, absent_facts FROM "
        f"read_parquet('{out}/screening/*/*.parquet') ORDER BY trial_id, person_id").fetchall()
    return rows, facts


def _same_facts(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    """The facts of DuckDB (``a``) and of PostgreSQL (``b``). PostgreSQL keeps a column per
    distinct look-back window of a fact (``lvef#3``) in td_facts; DuckDB applies the windows
    in the trials' queries instead (those columns agree through the results)."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        windowed = y.keys() - x.keys()
        assert x.keys() <= y.keys() and all("#" in k for k in windowed), windowed
        for key in x:
            left, right = x[key], y[key]
            if isinstance(left, list | tuple) or isinstance(right, list | tuple):
                left, right = list(left or []), list(right or [])
            assert left == right, (x["person_id"], key, left, right)


@pytest.mark.parametrize("which", ["synthetic", "synthea"])
def test_postgres_equals_duckdb_row_for_row(which: str, request: pytest.FixtureRequest,
                                            tmp_path: Path, protocols: dict[str, Any]) -> None:
    folder, url = request.getfixturevalue(which)
    trials = select_trials(protocols, "all")
    as_of = AS_OF if which == "synthetic" else datetime(2022, 10, 10)
    rows_duck, facts_duck = _run(DuckDBEngine(memory_limit="2GB"), folder, tmp_path / "d", trials, as_of)
    rows_pg, facts_pg = _run(PostgresEngine(url), url, tmp_path / "p", trials, as_of)
    assert rows_pg == rows_duck
    assert len(rows_duck) == len(facts_duck) * len(trials)
    _same_facts(facts_duck, facts_pg)
    # Not a trivial agreement: the synthetic population has every verdict.
    if which == "synthetic":
        assert {r[2] for r in rows_duck} == {"eligible", "ineligible", "undetermined"}


def test_cli_postgres_with_data_end(synthea: tuple[Path, str], tmp_path: Path) -> None:
    import json

    _, url = synthea
    out = tmp_path / "out"
    result = runner.invoke(app, ["population", "screen", "--engine", "postgres", "--data", url,
                                 "--out", str(out), "--on", "data-end", "--trials", "all"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["engine"], manifest["persons"]) == ("postgres", 28)
    assert manifest["as_of"].startswith("2022-10-10")


def test_postgres_errors_are_one_line(database: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["population", "screen", "--engine", "postgres", "--data",
                                 f"{database}?schema=nothing_here", "--out", str(tmp_path / "o"),
                                 "--on", "2026-11-21"])
    assert result.exit_code == 1
    assert "no person table in schema nothing_here" in result.output
    assert not (tmp_path / "o").exists()
    with pytest.raises(TrialdeskError, match="cannot connect"):
        PostgresEngine("postgresql://nobody@127.0.0.1:1/none?schema=cdm")


def test_url_parsing_and_redaction() -> None:
    assert parse_url("postgresql://u:pw@h:5/db?schema=cdm&sslmode=require") == \
        ("postgresql://u:pw@h:5/db?sslmode=require", "cdm")
    assert redacted("postgresql://u:secret@h/db?schema=x") == "postgresql://u:…@h/db?schema=x"


def test_coverage_on_postgres_equals_duckdb(synthea: tuple[Path, str]) -> None:
    import json

    folder, url = synthea
    docs = []
    for data in (str(folder), url):
        result = runner.invoke(app, ["population", "coverage", "--data", data, "--trials", "all",
                                     "--json"])
        assert result.exit_code == 0, result.output
        docs.append(json.loads(result.output))
    assert docs[0] == docs[1]
    assert docs[1]["facts"]["platelets"] == 28  # as counted in test_population_omop
