"""PostgreSQL as an engine: the compiled plan runs inside the database that holds the OMOP data.

``--engine postgres --data postgresql://user@host:5432/db?schema=cdm`` reads the CDM tables of
``schema`` in place; the statements of the plan run as temporary views and tables of the
session, and only the compact results travel, into the output's Parquet files. The plan's
SQL is the DuckDB SQL with the differences :class:`~trialdesk.screening.flavour.Flavour`
knows, plus a few helpers created once in the schema ``trialdesk_compat`` (the session needs
the right to create it, or an administrator runs :data:`COMPAT_SQL` once).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from trialdesk.errors import ScreeningError
from trialdesk.screening.engine import Engine, engine_error

COMPAT = "trialdesk_compat"

#: Helpers that let DuckDB's spelling of a few functions and types run on PostgreSQL.
COMPAT_SQL = f"""
CREATE SCHEMA IF NOT EXISTS {COMPAT};
DO $$ BEGIN CREATE DOMAIN {COMPAT}.double AS double precision;
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE OR REPLACE FUNCTION {COMPAT}.year(date) RETURNS int LANGUAGE sql IMMUTABLE
  AS 'SELECT CAST(EXTRACT(YEAR FROM $1) AS int)';
CREATE OR REPLACE FUNCTION {COMPAT}.month(date) RETURNS int LANGUAGE sql IMMUTABLE
  AS 'SELECT CAST(EXTRACT(MONTH FROM $1) AS int)';
CREATE OR REPLACE FUNCTION {COMPAT}.day(date) RETURNS int LANGUAGE sql IMMUTABLE
  AS 'SELECT CAST(EXTRACT(DAY FROM $1) AS int)';
CREATE OR REPLACE FUNCTION {COMPAT}.last_day(date) RETURNS date LANGUAGE sql IMMUTABLE
  AS 'SELECT CAST(date_trunc(''month'', $1) + interval ''1 month - 1 day'' AS date)';
CREATE OR REPLACE FUNCTION {COMPAT}.round(double precision, integer) RETURNS double precision
  LANGUAGE sql IMMUTABLE AS 'SELECT CAST(round(CAST($1 AS numeric), $2) AS double precision)';
CREATE OR REPLACE FUNCTION {COMPAT}.count_if_step(bigint, boolean) RETURNS bigint
  LANGUAGE sql IMMUTABLE AS 'SELECT $1 + CASE WHEN $2 THEN 1 ELSE 0 END';
CREATE OR REPLACE AGGREGATE {COMPAT}.count_if(boolean)
  (SFUNC = {COMPAT}.count_if_step, STYPE = bigint, INITCOND = '0');
CREATE OR REPLACE FUNCTION {COMPAT}.bool_max_step(boolean, boolean) RETURNS boolean
  LANGUAGE sql IMMUTABLE STRICT AS 'SELECT $1 OR $2';
CREATE OR REPLACE AGGREGATE {COMPAT}.max(boolean)
  (SFUNC = {COMPAT}.bool_max_step, STYPE = boolean);
"""

#: PostgreSQL type OIDs → type names, for the columns of a query.
_TYPES = {16: "boolean", 20: "bigint", 21: "smallint", 23: "integer", 25: "text", 700: "real",
          701: "double", 1043: "varchar", 1042: "varchar", 1082: "date", 1114: "timestamp",
          1184: "timestamp", 1700: "decimal", 705: "null", 1009: "varchar[]", 1015: "varchar[]"}


def parse_url(url: str) -> tuple[str, str]:
    """(connection URL without ``schema``, schema) from ``postgresql://…/db?schema=cdm``.

    >>> parse_url("postgresql://u@h:5432/db?schema=cdm")
    ('postgresql://u@h:5432/db', 'cdm')
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
        raise ScreeningError("a PostgreSQL database is given as postgresql://user@host:port/db"
                             "?schema=cdm", where=url)
    query = parse_qs(parts.query)
    schema = (query.pop("schema", ["public"]) or ["public"])[0]
    rest = urlencode({k: v[0] for k, v in query.items()})
    return urlunsplit(("postgresql", parts.netloc, parts.path, rest, "")), schema


def redacted(url: str) -> str:
    """The URL without its password (for manifests and messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":…@")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


class PostgresEngine(Engine):
    """The plan inside PostgreSQL (psycopg); the CDM tables of ``schema`` are read in place."""

    name = "postgres"

    def __init__(self, url: str) -> None:
        super().__init__()
        try:
            import psycopg
        except ImportError:
            raise ScreeningError("the PostgreSQL engine needs psycopg: pip install 'psycopg[binary]'"
                                 ) from None
        self._psycopg = psycopg
        conninfo, self.schema = parse_url(url)
        try:
            self.con = psycopg.connect(conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise ScreeningError(f"cannot connect: {str(exc).strip().splitlines()[0]}",
                                 where=redacted(url)) from None
        self._run(COMPAT_SQL)
        self._run(f"SET search_path = {self.q(self.schema)}, {COMPAT}, public")
        self._type_names: dict[int, str] = dict(_TYPES)

    def q(self, ident: str) -> str:
        return self.flavour.q(ident)

    def _run(self, sql: str) -> Any:
        try:
            return self.con.execute(sql)
        except self._psycopg.Error as exc:
            raise engine_error("postgres", exc, sql) from None

    def register_files(self, view: str, files: Sequence[Path]) -> None:
        """Parquet files (earlier results) copied into a temporary table ``view``."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.concat_tables([pq.read_table(p) for p in files], promote_options="default")
        types = {pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.string(): "VARCHAR",
                 pa.large_string(): "VARCHAR", pa.float64(): "DOUBLE PRECISION",
                 pa.bool_(): "BOOLEAN", pa.date32(): "DATE"}
        cols = ", ".join(f"{self.q(f.name)} {types.get(f.type, 'VARCHAR')}" for f in table.schema)
        self._run(f"DROP VIEW IF EXISTS {view} CASCADE")
        self._run(f"DROP TABLE IF EXISTS {view} CASCADE")
        self._run(f"CREATE TEMP TABLE {view} ({cols})")
        names = ", ".join(self.q(n) for n in table.column_names)
        with self.con.cursor() as cur, cur.copy(f"COPY {view} ({names}) FROM STDIN") as copy:
            for row in zip(*(c.to_pylist() for c in table.columns), strict=True):
                copy.write_row(row)

    def execute(self, sql: str) -> None:
        self._run(sql)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._run(sql).fetchall()]

    def dicts(self, sql: str) -> list[dict[str, Any]]:
        cursor = self._run(sql)
        names = [d.name for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def columns(self, view: str) -> list[tuple[str, str]]:
        cursor = self._run(f"SELECT * FROM {view} LIMIT 0")
        out = []
        for d in cursor.description:
            if d.type_code not in self._type_names:
                found = self.rows(f"SELECT format_type(coalesce(nullif(typbasetype, 0), oid), NULL) "
                                  f"FROM pg_type WHERE oid = {int(d.type_code)}")
                self._type_names[d.type_code] = str(found[0][0]) if found else "unknown"
            out.append((d.name, self._type_names[d.type_code]))
        return out

    def view(self, name: str, sql: str) -> None:
        # PostgreSQL cannot replace a view whose columns change: drop it first.
        self._run(f"DROP VIEW IF EXISTS {name} CASCADE")
        self._run(f"CREATE TEMP VIEW {name} AS {sql}")

    def materialise(self, name: str, sql: str) -> None:
        self._run(f"DROP TABLE IF EXISTS {name} CASCADE")
        self._run(f"CREATE TEMP TABLE {name} AS {sql}")
        self._run(f"ANALYZE {name}")

    def write(self, sql: str, directory: Path) -> None:
        """The rows of ``sql`` into ``directory/part-0.parquet``, fetched in batches."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        directory.mkdir(parents=True, exist_ok=True)
        kinds = {"bigint": pa.int64(), "integer": pa.int32(), "smallint": pa.int16(),
                 "boolean": pa.bool_(), "double": pa.float64(), "date": pa.date32()}
        columns = self.columns(f"({sql}) w")
        schema = pa.schema([(n, kinds.get(t, pa.string())) for n, t in columns])
        writer = pq.ParquetWriter(str(directory / "part-0.parquet"), schema, compression="zstd")
        try:
            with self.con.cursor(name="td_write", withhold=True) as cur:
                try:
                    cur.execute(sql)
                except self._psycopg.Error as exc:
                    raise engine_error("postgres", exc, sql) from None
                while batch := cur.fetchmany(100_000):
                    data = list(zip(*batch, strict=True))
                    writer.write_table(pa.table([pa.array(c, type=f.type) for c, f in
                                                 zip(data, schema, strict=True)], schema=schema))
        finally:
            writer.close()

    def close(self) -> None:
        self.con.close()


__all__ = ["COMPAT", "COMPAT_SQL", "PostgresEngine", "parse_url", "redacted"]
