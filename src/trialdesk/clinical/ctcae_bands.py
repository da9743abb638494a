"""CTCAE v5.0 band tables: edges as data, and the three-valued evaluation over them.

A band is an interval of values written as in the CTCAE text, ``"[1.0, 1.5)"`` or
``"(3.0xULN, 5.0xULN]"``: ``[`` ``]`` inclusive, ``(`` ``)`` exclusive; an edge is a
number, a multiple of a reference value (LLN, ULN, baseline), or a multiple plus an
offset (``"1xULN+20"``). A band may also need a clinical fact (symptoms, anticoagulation);
when that fact or a reference value is not given, the evaluation keeps every grade still
possible and names what is missing instead of guessing.

>>> table = BandTable("count", (band(1, "[1.5, 1xLLN)"), band(2, "(-inf, 1.5)")), "not below LLN")
>>> sorted(evaluate(table, Decimal("1.7"), {Ref.ABSOLUTE: Decimal(1)}, {}, {}).possible)
[0, 1]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

__all__ = [
    "Band",
    "BandTable",
    "Bound",
    "Outcome",
    "Ref",
    "band",
    "evaluate",
    "union",
]


class Ref(StrEnum):
    """What a band edge is a multiple of."""

    ABSOLUTE = "absolute"
    LLN = "lln"
    ULN = "uln"
    BASELINE = "baseline"


@dataclass(frozen=True)
class Bound:
    """One edge of a band: ``multiple`` x the reference value + ``offset``."""

    multiple: Decimal
    ref: Ref
    inclusive: bool
    offset: Decimal = Decimal(0)


def _edge(text: str, inclusive: bool) -> Bound | None:
    text = text.strip()
    if text in ("-inf", "inf"):
        return None
    text, plus, offset = text.partition("+")
    number, _, ref = text.partition("x")
    return Bound(
        Decimal(number),
        Ref(ref.casefold()) if ref else Ref.ABSOLUTE,
        inclusive,
        Decimal(offset) if plus else Decimal(0),
    )


@dataclass(frozen=True)
class Band:
    """The values that give ``grade``: ``lower`` < (or <=) value < (or <=) ``upper``.

    ``interval`` is the band as written in the table. ``condition`` is a clinical fact the
    band also needs, e.g. ``("symptomatic", True)``. ``text`` overrides the grade's
    definition when one grade has several bands. ``also_above`` is a second lower edge the
    value must also pass (Eosinophilia: ">ULN and >Baseline").
    """

    grade: int
    interval: str
    lower: Bound | None
    upper: Bound | None
    condition: tuple[str, bool] | None = None
    text: str | None = None
    also_above: Bound | None = None

    def _bounds(self) -> tuple[tuple[Bound, bool], ...]:
        pairs = ((self.lower, True), (self.upper, False), (self.also_above, True))
        return tuple((b, is_lower) for b, is_lower in pairs if b is not None)

    def contains(self, value: Decimal, refs: Mapping[Ref, Decimal], flags: Mapping[str, bool]) -> bool | None:
        """True or False, or None when a reference value it needs is missing."""
        if self.condition is not None and flags[self.condition[0]] != self.condition[1]:
            return False
        undecided = False
        for bound, is_lower in self._bounds():
            ref = refs.get(bound.ref)
            if ref is None:
                undecided = True
                continue
            edge = bound.multiple * ref + bound.offset
            if is_lower:
                inside = value >= edge if bound.inclusive else value > edge
            else:
                inside = value <= edge if bound.inclusive else value < edge
            if not inside:
                return False
        return None if undecided else True

    def refs_needed(self) -> set[Ref]:
        return {b.ref for b, _ in self._bounds()} - {Ref.ABSOLUTE}


def band(
    grade: int,
    interval: str,
    text: str | None = None,
    when: tuple[str, bool] | None = None,
    above: str | None = None,
) -> Band:
    """A band from interval notation: ``[`` ``]`` inclusive, ``(`` ``)`` exclusive.

    ``above`` is an extra exclusive lower edge, e.g. ``"1xbaseline"``.
    """
    low, high = interval[1:-1].split(",")
    lower = _edge(low, inclusive=interval[0] == "[")
    upper = _edge(high, inclusive=interval[-1] == "]")
    extra = _edge(above, inclusive=False) if above else None
    return Band(grade, interval, lower, upper, when, text, extra)


@dataclass(frozen=True)
class BandTable:
    """The bands of one grading rule; a value in no band is grade 0 (``zero_text``)."""

    label: str
    bands: tuple[Band, ...]
    zero_text: str


def table(label: str, zero_text: str, *bands: Band) -> BandTable:
    return BandTable(label, bands, zero_text)


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Outcome:
    """Grades still possible under one rule, the rule text when only one is, and why not."""

    possible: frozenset[int]
    text: str | None
    missing: frozenset[str] = field(default_factory=frozenset)


def union(a: Outcome, b: Outcome, *, decides: str | None = None) -> Outcome:
    """Either outcome may hold; ``decides`` is the fact that would choose between them."""
    possible = a.possible | b.possible
    if len(possible) == 1:
        return Outcome(possible, a.text or b.text)
    extra = {decides} if decides and a.possible != b.possible else set()
    return Outcome(possible, None, a.missing | b.missing | extra)


def _describe(found: Band, rule: BandTable, definitions: Mapping[int, str]) -> str:
    text = found.text or definitions.get(found.grade, "")
    return f"grade {found.grade}: {text} [{rule.label}: {found.interval}]"


def evaluate(
    rule: BandTable,
    value: Decimal,
    refs: Mapping[Ref, Decimal],
    flags: Mapping[str, bool | None],
    definitions: Mapping[int, str],
) -> Outcome:
    """Grade ``value`` by ``rule``; the highest band it falls in counts."""
    for candidate in rule.bands:
        if candidate.condition is not None and flags.get(candidate.condition[0]) is None:
            # Grade both ways; the fact only matters if the two answers differ.
            name = candidate.condition[0]
            yes = evaluate(rule, value, refs, {**flags, name: True}, definitions)
            no = evaluate(rule, value, refs, {**flags, name: False}, definitions)
            return union(yes, no, decides=name)
    known_flags = {k: v for k, v in flags.items() if v is not None}
    hits: list[Band] = []
    open_bands: list[Band] = []
    for candidate in rule.bands:
        inside = candidate.contains(value, refs, known_flags)
        if inside:
            hits.append(candidate)
        elif inside is None:
            open_bands.append(candidate)
    if hits:
        best = max(hits, key=lambda b: b.grade)
        higher = [b for b in open_bands if b.grade > best.grade]
        if not higher:
            return Outcome(frozenset({best.grade}), _describe(best, rule, definitions))
        missing = {r.value for b in higher for r in b.refs_needed() if r not in refs}
        return Outcome(frozenset({best.grade, *(b.grade for b in higher)}), None, frozenset(missing))
    if not open_bands:
        return Outcome(frozenset({0}), f"grade 0: {rule.zero_text} [{rule.label}]")
    missing = {r.value for b in open_bands for r in b.refs_needed() if r not in refs}
    return Outcome(frozenset({0, *(b.grade for b in open_bands)}), None, frozenset(missing))
