"""Compile a bound expression to a SQL boolean expression over a table of facts.

The table has one row per patient and one column per fact (named as the fact, in the
dictionary's canonical unit; sets as lists of text, dates as DATE). SQL's NULL logic
is Kleene logic, so ``NULL`` here means exactly what *unknown* means in
:mod:`trialdesk.criteria.evaluate`; a property test holds the two together.

>>> from trialdesk.criteria.parser import parse
>>> from trialdesk.criteria.typecheck import bind
>>> to_sql(bind(parse("anc <= 1 [10^9/L] and not pregnant")))
'(("anc" <= 1000.0e0) AND (NOT "pregnant"))'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from trialdesk.criteria.ast import (
    And,
    Between,
    Compare,
    Contains,
    Expr,
    In,
    Known,
    Literal,
    Not,
    Or,
    Truthy,
    Within,
)


@dataclass(frozen=True)
class Dialect:
    """The few places where SQL engines differ. DuckDB is the default."""

    name: str = "duckdb"

    def quote(self, ident: str) -> str:
        if self.name == "spark":
            return "`" + ident.replace("`", "``") + "`"
        return '"' + ident.replace('"', '""') + '"'

    def days_before(self, column: str, as_of: date) -> str:
        if self.name == "spark":
            return f"datediff(DATE '{as_of.isoformat()}', {column})"
        return f"(DATE '{as_of.isoformat()}' - {column})"

    def list_contains(self, column: str, value: str) -> str:
        if self.name == "spark":
            return f"array_contains({column}, {value})"
        return f"list_contains({column}, {value})"

    def list_len(self, column: str) -> str:
        if self.name == "spark":
            # size(NULL) is -1 in Spark's legacy mode; keep NULL as NULL.
            return f"(CASE WHEN {column} IS NULL THEN NULL ELSE size({column}) END)"
        return f"len({column})"


DUCKDB = Dialect("duckdb")
SPARK = Dialect("spark")

_SQL_OPS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "=", "!=": "<>"}


def sql_literal(lit: Literal) -> str:
    v = lit.effective
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    f = float(v)
    if not math.isfinite(f):
        raise ValueError("non-finite literal")
    text = repr(f)
    # A plain decimal like 0.1 is a DECIMAL in DuckDB; the exponent makes it a DOUBLE,
    # compared exactly as the Python evaluator compares floats.
    return text if "e" in text else f"{text}e0"


def to_sql(expr: Expr, dialect: Dialect = DUCKDB, *, as_of: date | None = None) -> str:
    """Compile ``expr``; ``as_of`` is needed only for ``within``."""
    q = dialect.quote
    match expr:
        case Compare(fact=name, op=op, value=lit, count=True):
            return f"({dialect.list_len(q(name))} {_SQL_OPS[op]} {sql_literal(lit)})"
        case Compare(fact=name, op=op, value=lit):
            return f"({q(name)} {_SQL_OPS[op]} {sql_literal(lit)})"
        case Between(fact=name, low=lo, high=hi):
            return f"({q(name)} BETWEEN {sql_literal(lo)} AND {sql_literal(hi)})"
        case In(fact=name, values=vals):
            return f"({q(name)} IN ({', '.join(sql_literal(v) for v in vals)}))"
        case Contains(fact=name, value=lit):
            return dialect.list_contains(q(name), sql_literal(lit))
        case Within(fact=name, days=days):
            if as_of is None:
                raise ValueError("'within' needs the screening date (as_of)")
            return f"({dialect.days_before(q(name), as_of)} BETWEEN 0 AND {days})"
        case Known(fact=name, negated=negated):
            return f"({q(name)} IS {'' if negated else 'NOT '}NULL)"
        case Truthy(fact=name):
            return q(name)
        case Not(operand=o):
            return f"(NOT {to_sql(o, dialect, as_of=as_of)})"
        case And(operands=ops):
            return "(" + " AND ".join(to_sql(o, dialect, as_of=as_of) for o in ops) + ")"
        case Or(operands=ops):
            return "(" + " OR ".join(to_sql(o, dialect, as_of=as_of) for o in ops) + ")"
    raise TypeError(f"not an expression node: {expr!r}")
