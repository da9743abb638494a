"""Evaluate a bound expression for one patient, with three-valued (Kleene) logic.

``True`` and ``False`` are known answers; ``None`` is *unknown*: a fact the
expression needs is missing. ``unknown and false`` is false, ``unknown or true`` is
true, ``not unknown`` is unknown: exactly SQL's NULL logic, which is why the SQL
compiler and this evaluator agree (a property test holds them to it).
"""

from __future__ import annotations

from datetime import date

from trialdesk.criteria.ast import (
    And,
    Between,
    Compare,
    Contains,
    Expr,
    In,
    Known,
    Not,
    Or,
    Truthy,
    Within,
)
from trialdesk.facts.model import FactSet

Tri = bool | None


def _cmp(value: object, op: str, other: object) -> bool:
    if op == "==":
        return value == other
    if op == "!=":
        return value != other
    # Numeric comparisons only reach here after type-checking.
    a, b = float(value), float(other)  # type: ignore[arg-type]
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    if op == ">=":
        return a >= b
    raise ValueError(f"unknown operator {op}")


def evaluate(expr: Expr, facts: FactSet) -> Tri:
    """Evaluate ``expr`` (bound by :func:`~trialdesk.criteria.typecheck.bind`).

    >>> from datetime import datetime
    >>> from trialdesk.criteria.parser import parse
    >>> from trialdesk.criteria.typecheck import bind
    >>> from trialdesk.facts.model import FactSet, FactValue
    >>> fs = FactSet(datetime(2026, 1, 1), {"lvef": FactValue("lvef", 60.0, "%")})
    >>> evaluate(bind(parse("lvef >= 55 [%] and consent_signed")), fs) is None
    True
    """
    match expr:
        case Compare(fact=name, op=op, value=lit, count=is_count):
            fv = facts.get(name)
            if fv is None:
                return None
            if is_count:
                return _cmp(len(fv.value), op, lit.effective)  # type: ignore[arg-type]
            return _cmp(fv.value, op, lit.effective)
        case Between(fact=name, low=lo, high=hi):
            fv = facts.get(name)
            if fv is None:
                return None
            v = float(fv.value)  # type: ignore[arg-type]
            return float(lo.effective) <= v <= float(hi.effective)
        case In(fact=name, values=vals):
            fv = facts.get(name)
            if fv is None:
                return None
            return any(_cmp(fv.value, "==", v.effective) for v in vals)
        case Contains(fact=name, value=lit):
            fv = facts.get(name)
            if fv is None:
                return None
            return lit.effective in fv.value  # type: ignore[operator]
        case Within(fact=name, days=days):
            fv = facts.get(name)
            if fv is None or days is None:
                return None
            if not isinstance(fv.value, date):
                return None
            elapsed = (facts.on - fv.value).days
            return 0 <= elapsed <= days
        case Known(fact=name, negated=negated):
            return (name not in facts) if negated else (name in facts)
        case Truthy(fact=name):
            fv = facts.get(name)
            return None if fv is None else bool(fv.value)
        case Not(operand=o):
            r = evaluate(o, facts)
            return None if r is None else not r
        case And(operands=ops):
            result: Tri = True
            for o in ops:
                r = evaluate(o, facts)
                if r is False:
                    return False
                if r is None:
                    result = None
            return result
        case Or(operands=ops):
            result = False
            for o in ops:
                r = evaluate(o, facts)
                if r is True:
                    return True
                if r is None:
                    result = None
            return result
    raise TypeError(f"not an expression node: {expr!r}")
