"""Type-check an expression against the fact dictionary and bind its literals.

Binding converts every literal to the fact's canonical unit (through pint), so the
per-patient evaluator and the SQL compiler compare the very same numbers. A numeric
literal compared with a fact that has a unit must state its unit: a bare ``2000`` for a
neutrophil count could mean /mm³ or ×10⁹/L, and guessing would change a verdict.
"""

from __future__ import annotations

import difflib
import math

from trialdesk.clinical import units
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
from trialdesk.errors import CriteriaError, UnitError
from trialdesk.facts.dictionary import BASE, FactDef, FactDictionary, FactType

_UNITLESS = {None, "ULN"}


def _where(where: str | None, node: Expr) -> str | None:
    pos = node.pos
    if pos is None:
        return where
    loc = f"line {pos[0]}, column {pos[1]}"
    return f"{where}, {loc}" if where else loc


def _fact(name: str, node: Expr, dictionary: FactDictionary, where: str | None) -> FactDef:
    fact = dictionary.get(name)
    if fact is None:
        close = difflib.get_close_matches(name, dictionary.names(), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise CriteriaError(f"unknown fact '{name}'{hint}", where=_where(where, node))
    return fact


def _number(lit: Literal, fact: FactDef, node: Expr, where: str | None) -> Literal:
    if isinstance(lit.value, bool) or not isinstance(lit.value, float):
        raise CriteriaError(
            f"'{fact.name}' is a number; compare it with a number, not {lit.value!r}",
            where=_where(where, node),
        )
    if fact.unit in _UNITLESS:
        if lit.unit is not None and lit.unit != fact.unit:
            raise CriteriaError(
                f"'{fact.name}' has no unit but the value is given in [{lit.unit}]",
                where=_where(where, node),
            )
        return Literal(lit.value, lit.unit, lit.value)
    if lit.unit is None:
        raise CriteriaError(
            f"'{fact.name}' is measured in [{fact.unit}]; give the value's unit, "
            f"e.g. {lit.value:g} [{fact.unit}]",
            where=_where(where, node),
        )
    target = str(fact.unit)
    try:
        canonical = units.convert(lit.value, lit.unit, target, substance=fact.substance)
    except UnitError as exc:
        raise CriteriaError(
            f"unit [{lit.unit}] does not fit '{fact.name}' (measured in [{fact.unit}]): "
            f"{exc.reason}",
            where=_where(where, node),
        ) from None
    return Literal(lit.value, lit.unit, canonical)


def _text(lit: Literal, fact: FactDef, node: Expr, where: str | None) -> Literal:
    if not isinstance(lit.value, str):
        raise CriteriaError(
            f"'{fact.name}' is text; compare it with a 'quoted value'", where=_where(where, node)
        )
    if fact.values is not None and lit.value not in fact.values:
        close = difflib.get_close_matches(lit.value, fact.values, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise CriteriaError(
            f"'{lit.value}' is not a value of '{fact.name}'{hint}; allowed: "
            + ", ".join(fact.values),
            where=_where(where, node),
        )
    return Literal(lit.value, None, lit.value)


def _bool(lit: Literal, fact: FactDef, node: Expr, where: str | None) -> Literal:
    if not isinstance(lit.value, bool):
        raise CriteriaError(
            f"'{fact.name}' is yes/no; compare it with true or false", where=_where(where, node)
        )
    return Literal(lit.value, None, lit.value)


def _value(lit: Literal, fact: FactDef, node: Expr, where: str | None) -> Literal:
    if fact.is_numeric:
        return _number(lit, fact, node, where)
    if fact.type in (FactType.STRING, FactType.SET):
        return _text(lit, fact, node, where)
    if fact.type is FactType.BOOLEAN:
        return _bool(lit, fact, node, where)
    raise CriteriaError(
        f"'{fact.name}' is a date; use '{fact.name} within N [days]'", where=_where(where, node)
    )


def bind(expr: Expr, dictionary: FactDictionary = BASE, *, where: str | None = None) -> Expr:
    """Check ``expr`` against ``dictionary`` and return it with canonical literal values.

    >>> from trialdesk.criteria.parser import parse
    >>> bound = bind(parse("anc <= 1 [10^9/L]"))
    >>> bound.value.canonical
    1000.0
    """
    d = dictionary
    match expr:
        case Compare(fact=name, op=op, value=lit, count=True):
            fact = _fact(name, expr, d, where)
            if fact.type is not FactType.SET:
                raise CriteriaError(
                    f"count() needs a set fact; '{name}' is a {fact.type}", where=_where(where, expr)
                )
            if isinstance(lit.value, bool) or not isinstance(lit.value, float) or lit.unit:
                raise CriteriaError("count() is compared with a plain number",
                                    where=_where(where, expr))
            return Compare(name, op, Literal(lit.value, None, lit.value), True, pos=expr.pos)
        case Compare(fact=name, op=op, value=lit):
            fact = _fact(name, expr, d, where)
            if fact.type is FactType.SET:
                raise CriteriaError(
                    f"'{name}' is a set; use 'contains' or count({name})", where=_where(where, expr)
                )
            if not fact.is_numeric and op not in ("==", "!="):
                raise CriteriaError(
                    f"'{name}' is a {fact.type}; only == and != apply", where=_where(where, expr)
                )
            return Compare(name, op, _value(lit, fact, expr, where), pos=expr.pos)
        case Between(fact=name, low=lo, high=hi):
            fact = _fact(name, expr, d, where)
            if not fact.is_numeric:
                raise CriteriaError(f"'{name}' is not a number; 'between' needs one",
                                    where=_where(where, expr))
            blo, bhi = _number(lo, fact, expr, where), _number(hi, fact, expr, where)
            assert isinstance(blo.canonical, float) and isinstance(bhi.canonical, float)
            if blo.canonical > bhi.canonical:
                raise CriteriaError(f"empty range for '{name}': low end above high end",
                                    where=_where(where, expr))
            return Between(name, blo, bhi, pos=expr.pos)
        case In(fact=name, values=vals):
            fact = _fact(name, expr, d, where)
            if fact.type in (FactType.SET, FactType.DATE, FactType.BOOLEAN):
                raise CriteriaError(f"'in' does not apply to the {fact.type} fact '{name}'",
                                    where=_where(where, expr))
            return In(name, tuple(_value(v, fact, expr, where) for v in vals), pos=expr.pos)
        case Contains(fact=name, value=lit):
            fact = _fact(name, expr, d, where)
            if fact.type is not FactType.SET:
                raise CriteriaError(f"'contains' needs a set fact; '{name}' is a {fact.type}",
                                    where=_where(where, expr))
            return Contains(name, _text(lit, fact, expr, where), pos=expr.pos)
        case Within(fact=name, amount=amount, unit=unit):
            fact = _fact(name, expr, d, where)
            if fact.type is not FactType.DATE:
                raise CriteriaError(f"'within' needs a date fact; '{name}' is a {fact.type}",
                                    where=_where(where, expr))
            try:
                days = units.convert(amount, unit, "day")
            except UnitError:
                raise CriteriaError(f"[{unit}] is not a length of time",
                                    where=_where(where, expr)) from None
            if days < 0 or not math.isclose(days, round(days)):
                raise CriteriaError(f"'within' needs a whole number of days, got {days:g}",
                                    where=_where(where, expr))
            return Within(name, amount, unit, round(days), pos=expr.pos)
        case Known(fact=name):
            _fact(name, expr, d, where)
            return expr
        case Truthy(fact=name):
            fact = _fact(name, expr, d, where)
            if fact.type is not FactType.BOOLEAN:
                raise CriteriaError(
                    f"'{name}' is a {fact.type}, not yes/no; compare it with a value",
                    where=_where(where, expr),
                )
            return expr
        case Not(operand=o):
            return Not(bind(o, d, where=where), pos=expr.pos)
        case And(operands=ops):
            return And(tuple(bind(o, d, where=where) for o in ops), pos=expr.pos)
        case Or(operands=ops):
            return Or(tuple(bind(o, d, where=where) for o in ops), pos=expr.pos)
    raise TypeError(f"not an expression node: {expr!r}")
