"""SQL flavours: the few places where DuckDB, Spark SQL and PostgreSQL differ, and SQL literals.

>>> Flavour("spark").arg_max("x", "k"), Flavour("duckdb").arg_max("x", "k")
('max_by(x, k)', 'arg_max(x, k)')
>>> number_sql(0.1)
'0.1e0'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from trialdesk.criteria.sql import DUCKDB, SPARK, Dialect
from trialdesk.screening.omop import Tie

#: Ids below this fit the compact ordering key (date × 2⁴⁰ + id).
SMALL_ID_LIMIT = 1 << 40


@dataclass(frozen=True)
class PostgresDialect(Dialect):
    """The criteria compiler's SQL for PostgreSQL: arrays instead of DuckDB's lists."""

    name: str = "postgres"

    def list_contains(self, column: str, value: str) -> str:
        return f"({value} = ANY({column}))"

    def list_len(self, column: str) -> str:
        return f"cardinality({column})"


POSTGRES = PostgresDialect()


@dataclass(frozen=True)
class Flavour:
    """The SQL differences between the engines the plan runs on (``duckdb``, ``spark`` or
    ``postgres``).

    PostgreSQL runs with a small schema of helpers (``trialdesk_compat``: the type name
    DOUBLE, ``year``/``month``/``day``, ``count_if``, ``last_day``, ``round(double, int)``,
    ``%`` on DOUBLE; :mod:`trialdesk.screening.postgres`), so most statements read the same.
    """

    name: str = "duckdb"

    @property
    def pg(self) -> bool:
        return self.name == "postgres"

    @property
    def dialect(self) -> Dialect:
        return SPARK if self.name == "spark" else POSTGRES if self.pg else DUCKDB

    def q(self, ident: str) -> str:
        return self.dialect.quote(ident)

    def arg_max(self, value: str, key: str) -> str:
        if self.pg:
            return (f"(array_agg({value} ORDER BY {key} DESC) FILTER (WHERE {value} IS NOT NULL "
                    f"AND {key} IS NOT NULL))[1]")
        return f"max_by({value}, {key})" if self.name == "spark" else f"arg_max({value}, {key})"

    def arg_max_null(self, value: str, key: str) -> str:
        """Like :meth:`arg_max`, but a NULL value of the latest row stays NULL."""
        if self.pg:
            return f"(array_agg({value} ORDER BY {key} DESC) FILTER (WHERE {key} IS NOT NULL))[1]"
        return f"max_by({value}, {key})" if self.name == "spark" else f"arg_max_null({value}, {key})"

    def arg_max_fields(self, alias: str, fields: Mapping[str, str], key: str
                       ) -> tuple[str, dict[str, str]]:
        """Aggregate: several values of the row with the largest ``key``, NULLs kept (as
        :meth:`arg_max_null`), for a query one level up.

        Returns the select-list text and, per field, the column expression that reads it
        (to be qualified with the subquery's alias). DuckDB and Spark take one ``arg_max``
        of a struct of the fields — one aggregate state instead of one per field;
        PostgreSQL takes one aggregate per field.

        >>> Flavour("duckdb").arg_max_fields("r", {"n": "x.n", "s": "x.s"}, "k")
        ("arg_max({'n': x.n, 's': x.s}, k) AS r", {'n': 'r.n', 's': 'r.s'})
        >>> Flavour("postgres").arg_max_fields("r", {"n": "x.n"}, "k")[1]
        {'n': 'r_n'}
        """
        if self.pg:
            items = ", ".join(f"{self.arg_max_null(value, key)} AS {alias}_{name}"
                              for name, value in fields.items())
            return items, {name: f"{alias}_{name}" for name in fields}
        # A struct is never NULL itself: the latest row wins even when its fields are NULL.
        return (f"{self.arg_max(self.struct(fields), key)} AS {alias}",
                {name: f"{alias}.{name}" for name in fields})

    def label(self, value: str | None, choices: Sequence[str]) -> str:
        """A text literal (or NULL) that is one of ``choices``, for a column of results.

        DuckDB gets an ENUM: written to Parquet as the same strings (read back as VARCHAR),
        but without hashing every row's text to build the column's dictionary.
        """
        if self.name != "duckdb" or not choices:
            return text_sql(value) if value is not None else f"CAST(NULL AS {self.text()})"
        kind = "ENUM(" + ", ".join(text_sql(c) for c in dict.fromkeys(choices)) + ")"
        return f"CAST({text_sql(value) if value is not None else 'NULL'} AS {kind})"

    def pick(self, value: str, condition: str) -> str:
        """Aggregate: the value of the one row of the group that meets ``condition``.

        (Faster in DuckDB than a FILTER clause, which is evaluated per aggregate.)
        """
        return f"max(CASE WHEN {condition} THEN {value} END)"

    def shift_left(self, x: str, n: str) -> str:
        """``x`` × 2ⁿ for a BIGINT ``x``."""
        return (f"shiftleft({x}, CAST({n} AS INT))" if self.name == "spark"
                else f"({x} << CAST({n} AS INT))")

    def shift_right(self, x: str, n: str) -> str:
        """``x`` ÷ 2ⁿ rounded down, for a BIGINT ``x``."""
        return (f"shiftright({x}, CAST({n} AS INT))" if self.name == "spark"
                else f"({x} >> CAST({n} AS INT))")

    def int_div(self, x: str, n: int) -> str:
        if self.pg:
            return f"({x} / {n})"
        return f"({x} div {n})" if self.name == "spark" else f"({x} // {n})"

    def struct(self, fields: Mapping[str, str]) -> str:
        if self.pg:
            return "ROW(" + ", ".join(fields.values()) + ")"
        if self.name == "spark":
            return "named_struct(" + ", ".join(f"'{k}', {v}" for k, v in fields.items()) + ")"
        return "{" + ", ".join(f"'{k}': {v}" for k, v in fields.items()) + "}"

    def days(self, later: str, earlier: str) -> str:
        """Whole days from ``earlier`` to ``later`` (two DATE expressions)."""
        if self.name == "spark":
            return f"datediff({later}, {earlier})"
        return f"({later} - {earlier})"

    def seconds(self, later: str, earlier: str) -> str:
        """Seconds from ``earlier`` to ``later`` (two TIMESTAMP expressions), as DOUBLE."""
        if self.name == "spark":
            return f"CAST(unix_micros({later}) - unix_micros({earlier}) AS DOUBLE) / 1000000.0"
        if self.pg:
            return f"CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) AS DOUBLE)"
        return f"(epoch({later}) - epoch({earlier}))"

    def epoch_us(self, x: str) -> str:
        """Microseconds since 1970 of a TIMESTAMP, as DOUBLE (exact: an integer below 2⁵³)."""
        if self.name == "spark":
            return f"CAST(unix_micros({x}) AS DOUBLE)"
        if self.pg:
            return f"CAST(EXTRACT(EPOCH FROM {x}) * 1000000 AS DOUBLE)"
        return f"CAST(epoch_us({x}) AS DOUBLE)"

    def from_epoch_us(self, x: str) -> str:
        """The TIMESTAMP of :meth:`epoch_us`."""
        if self.name == "spark":
            return f"timestamp_micros(CAST({x} AS BIGINT))"
        if self.pg:
            return f"(TIMESTAMP '1970-01-01' + CAST({x} AS BIGINT) * INTERVAL '1 microsecond')"
        return f"make_timestamp(CAST({x} AS BIGINT))"

    def round12(self, x: str) -> str:
        """Round to 12 significant digits, as :mod:`trialdesk.clinical.units` does."""
        if self.name == "spark":
            return f"CAST(format_string('%.12g', {x}) AS DOUBLE)"
        if self.pg:  # numeric rounding at 12 significant digits
            n = f"CAST({x} AS numeric)"
            return (f"(CASE WHEN {x} = 0 THEN {x} ELSE CAST(round({n}, 11 - CAST(floor(log(abs({n}))) "
                    "AS INT)) AS DOUBLE) END)")
        return f"CAST(format('{{:.12g}}', {x}) AS DOUBLE)"

    def sorted_set(self, x: str) -> str:
        """Aggregate: the distinct non-NULL values of ``x``, sorted, as a list."""
        if self.name == "spark":
            return f"array_sort(collect_set({x}))"
        if self.pg:
            return f"coalesce(array_agg(DISTINCT {x} ORDER BY {x}) FILTER (WHERE {x} IS NOT NULL), " \
                   f"{self.empty_text_list()})"
        return f"list_sort(list_distinct(list({x})))"

    def empty_text_list(self) -> str:
        if self.pg:
            return "CAST(ARRAY[] AS VARCHAR[])"
        return "CAST(array() AS ARRAY<STRING>)" if self.name == "spark" else "CAST([] AS VARCHAR[])"

    def text(self) -> str:
        return "STRING" if self.name == "spark" else "VARCHAR"

    def try_date(self, x: str) -> str:
        if self.pg:
            return (f"(CASE WHEN {x} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}' "
                    f"THEN CAST(substr({x}, 1, 10) AS DATE) END)")
        return f"try_cast({x} AS DATE)" if self.name == "spark" else f"TRY_CAST({x} AS DATE)"

    def try_timestamp(self, x: str) -> str:
        if self.pg:
            return (f"(CASE WHEN {x} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}([ T][0-9]{{2}}:[0-9]{{2}}"
                    f"(:[0-9]{{2}}(\\.[0-9]+)?)?)?$' THEN CAST({x} AS TIMESTAMP) END)")
        return (f"try_cast({x} AS TIMESTAMP)" if self.name == "spark"
                else f"TRY_CAST({x} AS TIMESTAMP)")

    def non_finite(self, x: str) -> str:
        """True when the DOUBLE ``x`` is NaN or ±infinity (each engine's own test: a range
        comparison can be pruned by column statistics that leave NaN out)."""
        if self.pg:
            return (f"({x} = CAST('NaN' AS float8) OR {x} = CAST('Infinity' AS float8) "
                    f"OR {x} = CAST('-Infinity' AS float8))")
        if self.name == "spark":
            return f"(isnan({x}) OR abs({x}) = double('Infinity'))"
        return f"(isnan({x}) OR isinf({x}))"

    def try_number(self, x: str) -> str:
        """A text as DOUBLE, NULL when it is not a number."""
        if self.pg:
            return (f"(CASE WHEN trim({x}) ~ '^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$' "
                    f"THEN CAST(trim({x}) AS DOUBLE) END)")
        return f"try_cast(trim({x}) AS DOUBLE)" if self.name == "spark" else \
            f"TRY_CAST(trim({x}) AS DOUBLE)"

    def row_hash(self, columns: Sequence[str]) -> str:
        cols = ", ".join(columns)
        if self.pg:
            return f"hashtextextended(CAST(ROW({cols}) AS TEXT), 0)"
        return f"xxhash64({cols})" if self.name == "spark" else f"hash({cols})"

    def hash_total(self, hashes: str) -> str:
        """Aggregate: an order-independent fingerprint of a group's row hashes, as text."""
        if self.pg:
            return f"CAST(sum(CAST({hashes} AS numeric)) AS VARCHAR)"
        if self.name == "spark":
            return f"CAST(sum(CAST({hashes} AS DECIMAL(38, 0))) AS STRING)"
        return f"CAST(sum({hashes}) AS VARCHAR)"

    def order_key(self, date_sql: str, id_sql: str, tie: Tie | str, small_ids: bool) -> str:
        """A key whose maximum is the latest row, ties broken by id as ``tie`` says."""
        if small_ids:
            base = f"CAST({self.days(date_sql, 'DATE ' + repr('1970-01-01'))} AS BIGINT) * {SMALL_ID_LIMIT}"
            if tie == Tie.LAST:
                return f"({base} + {id_sql})"
            return f"({base} + {SMALL_ID_LIMIT - 1} - {id_sql})"
        sign = "" if tie == Tie.LAST else "-"
        return self.struct({"d": date_sql, "i": f"{sign}{id_sql}"})


def date_sql(d: date) -> str:
    return f"DATE '{d.isoformat()}'"


def timestamp_sql(t: datetime) -> str:
    return f"TIMESTAMP '{t.replace(tzinfo=None).isoformat(sep=' ')}'"


def text_sql(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def number_sql(x: float) -> str:
    text = repr(float(x))
    return text if "e" in text or "inf" in text or "nan" in text else f"{text}e0"


def values_sql(rows: Sequence[Sequence[str]], columns: Sequence[str], alias: str) -> str:
    """An inline table; ``rows`` hold SQL literals."""
    body = ", ".join("(" + ", ".join(r) + ")" for r in rows)
    return f"(VALUES {body}) AS {alias}({', '.join(columns)})"


__all__ = ["POSTGRES", "SMALL_ID_LIMIT", "Flavour", "PostgresDialect", "date_sql", "number_sql",
           "text_sql", "timestamp_sql", "values_sql"]
