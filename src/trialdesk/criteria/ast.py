"""The syntax tree of an eligibility expression, and its canonical text.

Nodes are frozen dataclasses. :func:`to_text` prints the canonical form, which parses
back to an equal tree (a round-trip the tests hold).

A bound tree (after :func:`trialdesk.criteria.typecheck.bind`) carries each literal's
value converted to the fact's canonical unit in ``Literal.canonical``; the evaluator and
the SQL compiler only ever compare canonical values, so they see the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

Scalar = float | str | bool


@dataclass(frozen=True)
class Literal:
    value: Scalar
    unit: str | None = None
    canonical: Scalar | None = field(default=None, compare=False)

    @property
    def effective(self) -> Scalar:
        return self.value if self.canonical is None else self.canonical


@dataclass(frozen=True)
class Node:
    pos: tuple[int, int] | None = field(default=None, compare=False, kw_only=True, repr=False)


@dataclass(frozen=True)
class Compare(Node):
    """``fact OP literal``; with ``count`` the number of items in a set fact."""

    fact: str
    op: str
    value: Literal
    count: bool = False


@dataclass(frozen=True)
class Between(Node):
    """``fact between low and high``, both ends included."""

    fact: str
    low: Literal
    high: Literal


@dataclass(frozen=True)
class In(Node):
    fact: str
    values: tuple[Literal, ...]


@dataclass(frozen=True)
class Contains(Node):
    """A set fact contains a value."""

    fact: str
    value: Literal


@dataclass(frozen=True)
class Within(Node):
    """A date fact lies within ``amount unit`` before the screening date (both ends included)."""

    fact: str
    amount: float
    unit: str
    days: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Known(Node):
    """Whether a fact has a value. Two-valued: never unknown itself."""

    fact: str
    negated: bool = False


@dataclass(frozen=True)
class Truthy(Node):
    """A boolean fact on its own."""

    fact: str


@dataclass(frozen=True)
class Not(Node):
    operand: Expr


@dataclass(frozen=True)
class And(Node):
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Or(Node):
    operands: tuple[Expr, ...]


Expr = Compare | Between | In | Contains | Within | Known | Truthy | Not | And | Or

OPS = ("<", "<=", ">", ">=", "==", "!=")
FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def facts_of(expr: Expr) -> list[str]:
    """The fact names an expression refers to, in order of first appearance."""
    seen: dict[str, None] = {}

    def walk(node: Expr) -> None:
        if isinstance(node, (And, Or)):
            for child in node.operands:
                walk(child)
        elif isinstance(node, Not):
            walk(node.operand)
        else:
            seen.setdefault(node.fact, None)

    walk(expr)
    return list(seen)


def literal_text(lit: Literal) -> str:
    """Canonical text of a literal."""
    v = lit.value
    if isinstance(v, bool):
        text = "true" if v else "false"
    elif isinstance(v, str):
        text = "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    else:
        text = number_text(v)
    return f"{text} [{lit.unit}]" if lit.unit else text


def number_text(v: float) -> str:
    if math.isfinite(v) and v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


def to_text(expr: Expr) -> str:
    """Print an expression in canonical form.

    >>> to_text(And((Compare("lvef", ">=", Literal(55.0, "%")), Truthy("consent_signed"))))
    'lvef >= 55 [%] and consent_signed'
    """
    match expr:
        case Compare(fact=f, op=op, value=v, count=c):
            subject = f"count({f})" if c else f
            return f"{subject} {op} {literal_text(v)}"
        case Between(fact=f, low=lo, high=hi):
            return f"{f} between {literal_text(lo)} and {literal_text(hi)}"
        case In(fact=f, values=vs):
            return f"{f} in [{', '.join(literal_text(v) for v in vs)}]"
        case Contains(fact=f, value=v):
            return f"{f} contains {literal_text(v)}"
        case Within(fact=f, amount=a, unit=u):
            return f"{f} within {number_text(a)} [{u}]"
        case Known(fact=f, negated=n):
            return f"{f} is {'unknown' if n else 'known'}"
        case Truthy(fact=f):
            return f
        case Not(operand=o):
            inner = to_text(o)
            return f"not ({inner})" if isinstance(o, (And, Or, Not)) else f"not {inner}"
        case And(operands=ops):
            return " and ".join(
                f"({to_text(o)})" if isinstance(o, (Or, And)) else to_text(o) for o in ops
            )
        case Or(operands=ops):
            return " or ".join(
                f"({to_text(o)})" if isinstance(o, (Or, And)) else to_text(o) for o in ops
            )
    raise TypeError(f"not an expression node: {expr!r}")


def sql_date(d: date) -> str:
    return f"DATE '{d.isoformat()}'"
