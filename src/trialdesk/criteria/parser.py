"""Parse eligibility expressions (lark, LALR).

The language, by example::

    consent_signed
    age_months >= 18 and age_years <= 18
    alt_x_uln < 5 and ast_x_uln < 5
    gfr > 60 [mL/min/1.73m2]
    pti between 70 [%] and 120 [%]
    anc <= 1 [10^9/L]
    disease_status in ['relapsed', 'progressive']
    last_immunotherapy_date within 6 [weeks]
    count(prior_therapy_categories) >= 2
    prior_therapy_categories contains 'immunotherapy'
    pregnant is known
    not (risk_group in ['low', 'intermediate'])

Units go in square brackets after a number. ``and`` binds tighter than ``or``; ``not``
tighter than both. Missing facts make a comparison *unknown* (three-valued logic).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedEOF, UnexpectedInput, VisitError

from trialdesk.criteria.ast import (
    FLIPPED,
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
from trialdesk.errors import CriteriaError

GRAMMAR = r"""
?start: expr
?expr: or_expr
?or_expr: and_expr
        | and_expr (_OR and_expr)+      -> or_
?and_expr: not_expr
         | not_expr (_AND not_expr)+    -> and_
?not_expr: _NOT not_expr                 -> not_
         | atom
?atom: "(" expr ")"                      -> group
     | subject OP literal                -> compare
     | literal OP FACT                   -> compare_rev
     | FACT _BETWEEN literal _AND literal -> between
     | FACT _IN "[" literal ("," literal)* "]" -> in_
     | FACT _CONTAINS literal            -> contains
     | FACT _WITHIN NUMBER UNIT          -> within
     | FACT _IS _KNOWN                   -> known
     | FACT _IS _UNKNOWN                 -> unknown
     | FACT                              -> truthy
subject: FACT                            -> plain
       | _COUNT "(" FACT ")"             -> count
literal: NUMBER UNIT?                    -> number
       | STRING                          -> string
       | _TRUE                           -> true
       | _FALSE                          -> false

OP: "<=" | ">=" | "==" | "!=" | "<" | ">"
UNIT: /\[[^\[\]]+\]/
NUMBER: /[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/
STRING: /'(\\.|[^'\\])*'/
FACT.-1: /[a-z_][a-z0-9_]*(\.[a-z0-9_]+)*/
_OR.2: /or\b/
_AND.2: /and\b/
_NOT.2: /not\b/
_BETWEEN.2: /between\b/
_IN.2: /in\b/
_CONTAINS.2: /contains\b/
_WITHIN.2: /within\b/
_IS.2: /is\b/
_KNOWN.2: /known\b/
_UNKNOWN.2: /unknown\b/
_COUNT.2: /count\b/
_TRUE.2: /true\b/
_FALSE.2: /false\b/
%import common.WS
%ignore WS
"""

_READABLE = {
    "OP": "a comparison (< <= > >= == !=)",
    "NUMBER": "a number",
    "STRING": "a 'quoted text'",
    "FACT": "a fact name",
    "UNIT": "a [unit]",
    "LPAR": "(",
    "RPAR": ")",
    "LSQB": "[",
    "RSQB": "]",
    "COMMA": ",",
    "$END": "end of expression",
}

KEYWORDS = frozenset(
    ["or", "and", "not", "between", "in", "contains", "within", "is", "known", "unknown", "count",
     "true", "false"]
)


def _pos(token: Any) -> tuple[int, int] | None:
    line = getattr(token, "line", None)
    column = getattr(token, "column", None)
    return (line, column) if line is not None and column is not None else None


def _unquote(text: str) -> str:
    body = text[1:-1]
    out = []
    i = 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            out.append(body[i + 1])
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


@v_args(inline=True)
class _Build(Transformer[Token, Expr]):
    def number(self, num: Token, unit: Token | None = None) -> Literal:
        return Literal(float(num), unit[1:-1].strip() if unit else None)

    def string(self, s: Token) -> Literal:
        return Literal(_unquote(str(s)))

    def true(self) -> Literal:
        return Literal(True)

    def false(self) -> Literal:
        return Literal(False)

    def plain(self, fact: Token) -> tuple[str, bool, Any]:
        return (str(fact), False, fact)

    def count(self, fact: Token) -> tuple[str, bool, Any]:
        return (str(fact), True, fact)

    def compare(self, subject: tuple[str, bool, Any], op: Token, lit: Literal) -> Compare:
        fact, is_count, tok = subject
        return Compare(fact, str(op), lit, is_count, pos=_pos(tok))

    def compare_rev(self, lit: Literal, op: Token, fact: Token) -> Compare:
        return Compare(str(fact), FLIPPED[str(op)], lit, pos=_pos(fact))

    def between(self, fact: Token, low: Literal, high: Literal) -> Between:
        return Between(str(fact), low, high, pos=_pos(fact))

    def in_(self, fact: Token, *values: Literal) -> In:
        return In(str(fact), tuple(values), pos=_pos(fact))

    def contains(self, fact: Token, value: Literal) -> Contains:
        return Contains(str(fact), value, pos=_pos(fact))

    def within(self, fact: Token, amount: Token, unit: Token) -> Within:
        return Within(str(fact), float(amount), unit[1:-1].strip(), pos=_pos(fact))

    def known(self, fact: Token) -> Known:
        return Known(str(fact), pos=_pos(fact))

    def unknown(self, fact: Token) -> Known:
        return Known(str(fact), negated=True, pos=_pos(fact))

    def truthy(self, fact: Token) -> Truthy:
        name = str(fact)
        if name in KEYWORDS:
            raise CriteriaError(f"'{name}' is a keyword, not a fact")
        return Truthy(name, pos=_pos(fact))

    def not_(self, operand: Expr) -> Not:
        return Not(operand)

    def and_(self, *operands: Expr) -> Expr:
        return And(tuple(operands))

    def or_(self, *operands: Expr) -> Expr:
        return Or(tuple(operands))

    def group(self, inner: Expr) -> Expr:
        return inner


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)


@lru_cache(maxsize=4096)
def parse(text: str, *, where: str | None = None) -> Expr:
    """Parse an expression; a syntax error names the line, column and what was expected.

    >>> parse("lvef >= 55 [%]")
    Compare(fact='lvef', op='>=', value=Literal(value=55.0, unit='%', canonical=None), count=False)
    """
    try:
        tree = _parser().parse(text)
        return _Build().transform(tree)
    except UnexpectedInput as exc:
        token = getattr(exc, "token", None)
        at_end = isinstance(exc, UnexpectedEOF) or getattr(token, "type", None) == "$END"
        lines = text.splitlines() or [""]
        line = len(lines) if at_end else exc.line
        column = len(lines[-1]) + 1 if at_end else exc.column
        snippet = lines[line - 1] if line and line > 0 else text
        pointer = " " * max(column - 1, 0) + "^"
        raw = getattr(exc, "expected", None) or getattr(exc, "allowed", None) or []
        expected = sorted({_READABLE.get(name, name.lstrip("_").lower()) for name in raw})
        hint = f"; expected one of {', '.join(expected[:8])}" if expected else ""
        raise CriteriaError(
            f"syntax error at line {line}, column {column}"
            f"{' (unexpected end of expression)' if at_end else ''}{hint}\n  {snippet}\n"
            f"  {pointer}",
            where=where,
        ) from None
    except VisitError as exc:
        if isinstance(exc.orig_exc, CriteriaError):
            raise CriteriaError(exc.orig_exc.reason, where=where) from None
        raise
