"""Where the tables come from: a folder of Parquet or CSV files, or a DuckDB database file.

Every table found is registered on the engine as the view ``omop_<table>`` with lower-case
column names (OMOP databases often use upper case), whatever the file format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trialdesk.errors import FactError
from trialdesk.screening.cdm import EXTRA_TABLES
from trialdesk.screening.engine import Engine
from trialdesk.screening.omop import TABLES

WANTED = (*TABLES, *EXTRA_TABLES)
DUCKDB_SUFFIXES = (".duckdb", ".ddb", ".db")


@dataclass(frozen=True)
class Source:
    """One registered table: where it is (for messages) and its column families."""

    name: str
    where: str
    families: Mapping[str, str]


def family(sql_type: str) -> str:
    """The family of an SQL type name as DuckDB or Spark describes it.

    >>> family("DECIMAL(18,3)"), family("VARCHAR"), family("bigint"), family('"NULL"')
    ('decimal', 'string', 'integer', 'null')
    """
    t = sql_type.lower().strip('"')
    if t.startswith(("decimal", "numeric")):
        return "decimal"
    if t.startswith("timestamp"):
        return "timestamp"
    if t in ("null", "void"):
        return "null"
    for name, kinds in (("integer", ("tinyint", "smallint", "integer", "int", "bigint", "hugeint",
                                     "utinyint", "usmallint", "uinteger", "ubigint", "long")),
                        ("floating", ("double", "float", "real", "double precision")),
                        ("string", ("varchar", "string", "text", "character varying",
                                    "character")),
                        ("date", ("date",)), ("boolean", ("boolean", "bool"))):
        if t in kinds:
            return name
    return t


def families_of(engine: Engine, view: str) -> dict[str, str]:
    return {name: family(kind) for name, kind in engine.columns(view)}


def _lower_view(engine: Engine, view: str, source_sql: str) -> None:
    """``view`` over ``source_sql`` with every column name in lower case."""
    engine.view(f"{view}_cased", source_sql)
    names = [name for name, _ in engine.columns(f"{view}_cased")]
    q = engine.flavour.q
    seen: set[str] = set()
    cols = []
    for name in names:
        if name.lower() in seen:
            continue
        seen.add(name.lower())
        cols.append(f"{q(name)} AS {q(name.lower())}")
    engine.view(view, f"SELECT {', '.join(cols)} FROM {view}_cased")


def _check_parquet(files: Sequence[Path]) -> None:
    import pyarrow.parquet as pq

    for path in files:
        try:
            pq.read_schema(path)
        except Exception as exc:  # pyarrow raises several kinds for a broken file
            raise FactError(f"not a readable Parquet file: {str(exc).splitlines()[0]}",
                            where=str(path)) from None


def _folder_tables(data: Path) -> dict[str, tuple[str, list[Path]]]:
    """table → (format, files), matching names case-insensitively."""
    entries = {p.name.lower(): p for p in data.iterdir()}
    found: dict[str, tuple[str, list[Path]]] = {}
    for name in WANTED:
        for kind in ("parquet", "csv"):
            single = entries.get(f"{name}.{kind}")
            folder = entries.get(name)
            files = [single] if single is not None and single.is_file() else (
                sorted(p for p in folder.rglob(f"*.{kind}") if not p.name.startswith("."))
                if folder is not None and folder.is_dir() else [])
            if files:
                found[name] = (kind, files)
                break
    return found


def register_file(engine: Engine, name: str, path: Path) -> Source:
    """One table from one Parquet or CSV file, as ``omop_<name>``."""
    kind = path.suffix.lower().lstrip(".")
    if not path.is_file() or kind not in ("parquet", "csv"):
        raise FactError("not a Parquet or CSV file", where=str(path))
    _register(engine, name, kind, [path])
    return Source(name, str(path), families_of(engine, f"omop_{name}"))


def _register(engine: Engine, name: str, kind: str, files: list[Path]) -> None:
    if kind == "parquet":
        _check_parquet(files)
        engine.register_files(f"omop_{name}_files", files)
        source = f"SELECT * FROM omop_{name}_files"
    else:
        if engine.name != "duckdb":
            raise FactError("CSV tables are read with --engine duckdb", where=str(files[0]))
        paths = ", ".join("'" + str(p).replace("'", "''") + "'" for p in files)
        source = f"SELECT * FROM read_csv([{paths}], header = true, union_by_name = true)"
    _lower_view(engine, f"omop_{name}", source)


def is_url(data: Path | str) -> bool:
    return isinstance(data, str) and data.startswith(("postgresql://", "postgres://"))


def register(engine: Engine, data: Path | str) -> dict[str, Source]:
    """Register the tables of ``data`` (folder, DuckDB file, or the PostgreSQL schema the
    engine is connected to) as ``omop_<table>`` views."""
    out: dict[str, Source] = {}
    if is_url(data):
        schema = getattr(engine, "schema", None)
        if schema is None:
            raise FactError("a PostgreSQL database is screened with --engine postgres",
                            where=str(data))
        literal = "'" + str(schema).replace("'", "''") + "'"
        tables = {str(r[0]).lower(): str(r[0]) for r in engine.rows(
            f"SELECT table_name FROM information_schema.tables WHERE table_schema = {literal}")}
        q = engine.flavour.q
        for name in WANTED:
            if name in tables:
                _lower_view(engine, f"omop_{name}", f"SELECT * FROM {q(schema)}.{q(tables[name])}")
                out[name] = Source(name, f"{schema}.{tables[name]}", families_of(engine, f"omop_{name}"))
        if "person" not in out:
            raise FactError(f"no person table in schema {schema}", where=str(data))
        return out
    data = Path(data)
    if data.is_file() and data.suffix.lower() in DUCKDB_SUFFIXES:
        if engine.name != "duckdb":
            raise FactError("a DuckDB database file is read with --engine duckdb", where=str(data))
        path = str(data).replace("'", "''")
        engine.execute("DETACH DATABASE IF EXISTS td_source")
        engine.execute(f"ATTACH '{path}' AS td_source (READ_ONLY)")
        in_file = {str(r[0]).lower(): (str(r[1]), str(r[0])) for r in engine.rows(
            "SELECT table_name, table_schema FROM information_schema.tables "
            "WHERE table_catalog = 'td_source'")}
        for name in WANTED:
            if name in in_file:
                schema, real = in_file[name]
                _lower_view(engine, f"omop_{name}", f'SELECT * FROM td_source."{schema}"."{real}"')
                out[name] = Source(name, f"{data}: {real}", families_of(engine, f"omop_{name}"))
    elif data.is_dir():
        for name, (kind, files) in _folder_tables(data).items():
            _register(engine, name, kind, files)
            where = str(files[0] if len(files) == 1 else files[0].parent)
            out[name] = Source(name, where, families_of(engine, f"omop_{name}"))
    else:
        raise FactError("not a directory of tables nor a DuckDB database file", where=str(data))
    if "person" not in out:
        raise FactError("table 'person' not found (person.parquet, person/*.parquet, person.csv, "
                        "or a person table in a DuckDB file)", where=str(data))
    return out


def has_rows(engine: Engine, view: str) -> bool:
    return bool(engine.rows(f"SELECT 1 FROM {view} LIMIT 1"))


def data_end(engine: Engine, data: Path | str) -> Any:
    """The data's own latest date: the last ``observation_period_end_date``."""
    found = register(engine, data)
    if "observation_period" not in found:
        raise FactError("--on data-end needs the observation_period table", where=str(data))
    end = engine.rows("SELECT max(CAST(observation_period_end_date AS DATE)) FROM omop_observation_period")
    if not end or end[0][0] is None:
        raise FactError("observation_period has no end date", where=found["observation_period"].where)
    return end[0][0]


__all__ = ["Source", "data_end", "families_of", "family", "has_rows", "is_url", "register", "register_file"]
