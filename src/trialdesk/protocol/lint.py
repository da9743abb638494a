"""Protocol lint: problems a protocol author should see before a patient is screened.

* ``overlap`` (warning) — an inclusion bound and an exclusion bound on the same fact that
  were meant as complements but share values (NB-NK-2026: LVEF ≥ 55% to include, LVEF ≤
  55% to exclude; a patient at exactly 55% is both). Screening still applies the text
  literally; lint makes the ambiguity visible.
* ``never-met`` (error) — a criterion no patient can meet.
* ``arm-overlap`` (error) / ``arm-gap`` (warning) — assignment rules that can put a patient
  in two arms, or leave a patient who could be eligible in none.
* ``unreached`` (warning) — a declared attestation or look-back setting no rule uses.
* ``unconfirmed`` (warning) — a clinical parameter whose value is not confirmed, including
  toxicity and stopping rules (and their thresholds) not checked against their source.
* ``dose-not-set`` (warning) — an administration without a dose amount.

Satisfiability is checked by trying every combination of representative values (each
boundary, just inside and just outside it, each allowed value); a rule over too many
facts for that is reported as ``not-checked`` (info) instead of guessed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from trialdesk.criteria.ast import (
    And,
    Between,
    Compare,
    Contains,
    Expr,
    In,
    Literal,
    Not,
    Or,
    Within,
    facts_of,
    number_text,
)
from trialdesk.criteria.evaluate import evaluate
from trialdesk.facts.dictionary import FactDef, FactDictionary, FactType
from trialdesk.facts.model import FactSet, FactValue, Value
from trialdesk.protocol.load import CompiledProtocol
from trialdesk.protocol.model import CourseStep, Dose, Param, ProductSpec, TimedStep

MAX_COMBINATIONS = 20_000
_AS_OF = datetime(2000, 1, 1)


@dataclass(frozen=True)
class Finding:
    level: str  # "error", "warning" or "info"
    code: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: [{self.code}] {self.message}"


# ---------------------------------------------------------------------------
# Representative values


def _walk(expr: Expr) -> Iterator[Expr]:
    yield expr
    if isinstance(expr, (And, Or)):
        for o in expr.operands:
            yield from _walk(o)
    elif isinstance(expr, Not):
        yield from _walk(expr.operand)


def _literals(exprs: list[Expr], fact: str) -> list[Literal]:
    out: list[Literal] = []
    for e in exprs:
        for node in _walk(e):
            if getattr(node, "fact", None) != fact:
                continue
            if isinstance(node, Compare) and not node.count:
                out.append(node.value)
            elif isinstance(node, Between):
                out += [node.low, node.high]
            elif isinstance(node, (In,)):
                out += list(node.values)
            elif isinstance(node, Contains):
                out.append(node.value)
    return out


def _candidates(fact: FactDef, exprs: list[Expr]) -> list[Value]:
    lits = _literals(exprs, fact.name)
    if fact.type is FactType.BOOLEAN:
        return [True, False]
    if fact.type is FactType.STRING:
        values: list[Value] = [*(fact.values or ()), *(str(lit.effective) for lit in lits)]
        return [*dict.fromkeys(values), "\u0000other"]
    if fact.type is FactType.SET:
        items = sorted({str(lit.effective) for lit in lits})
        sets = [frozenset(), frozenset(items)] + [frozenset([i]) for i in items]
        counts = [int(float(n.value.effective)) for e in exprs for n in _walk(e)
                  if isinstance(n, Compare) and n.count and n.fact == fact.name]
        sets += [frozenset(f"item{i}" for i in range(c + d)) for c in counts for d in (-1, 0, 1)
                 if c + d >= 0]
        return list(dict.fromkeys(sets))
    if fact.type is FactType.DATE:
        days = [n.days for e in exprs for n in _walk(e)
                if isinstance(n, Within) and n.fact == fact.name and n.days is not None]
        offsets = {-1, 0} | {d for d in days} | {d + 1 for d in days}
        return [_AS_OF.date() - timedelta(days=o) for o in sorted(offsets)]
    points: set[float] = set()
    step = 1.0 if fact.type is FactType.INTEGER else None
    for lit in lits:
        v = float(lit.effective)
        delta = step or max(abs(v) * 1e-6, 1e-6)
        points |= {v - delta, v, v + delta}
    if fact.minimum is not None:
        points.add(float(fact.minimum))
    if fact.maximum is not None:
        points.add(float(fact.maximum))
    if not points:
        points = {0.0, 1.0}
    if fact.type is FactType.INTEGER:
        whole = {float(math.floor(p)) for p in points} | {float(math.ceil(p)) for p in points}
        return sorted(whole)
    return sorted(points)


def _assignments(facts: list[FactDef], exprs: list[Expr]) -> Iterator[FactSet] | None:
    choices = [_candidates(f, exprs) for f in facts]
    total = math.prod(len(c) for c in choices)
    if total > MAX_COMBINATIONS:
        return None

    def gen() -> Iterator[FactSet]:
        for combo in itertools.product(*choices):
            values = {f.name: FactValue(f.name, v, f.unit)
                      for f, v in zip(facts, combo, strict=True)}
            yield FactSet(_AS_OF, values)

    return gen()


def _fact_defs(names: list[str], dictionary: FactDictionary) -> list[FactDef]:
    return [d for n in names if (d := dictionary.get(n)) is not None]


# ---------------------------------------------------------------------------
# Intervals for the inclusion/exclusion overlap check


@dataclass(frozen=True)
class _Interval:
    lo: float
    lo_incl: bool
    hi: float
    hi_incl: bool

    def intersect(self, other: _Interval) -> _Interval | None:
        lo, lo_incl = max((self.lo, not self.lo_incl), (other.lo, not other.lo_incl))
        hi, hi_incl = min((self.hi, self.hi_incl), (other.hi, other.hi_incl))
        lo_incl = not lo_incl
        if lo > hi or (lo == hi and not (lo_incl and hi_incl)):
            return None
        return _Interval(lo, lo_incl, hi, hi_incl)

    def covers_all_with(self, other: _Interval) -> bool:
        """Do the two intervals together cover every value (meant as complements)?"""
        low, high = (self, other) if self.lo == -math.inf else (other, self)
        if low.lo != -math.inf or high.hi != math.inf:
            return False
        return low.hi > high.lo or (low.hi == high.lo and (low.hi_incl or high.lo_incl))


def _intervals(expr: Expr, positive: bool = True) -> Iterator[tuple[str, _Interval, Expr]]:
    inf = math.inf
    match expr:
        case Compare(fact=f, op=op, value=lit, count=False) if positive and op not in ("==", "!="):
            if isinstance(lit.effective, (bool, str)):
                return
            v = float(lit.effective)
            yield f, {
                "<": _Interval(-inf, False, v, False), "<=": _Interval(-inf, False, v, True),
                ">": _Interval(v, False, inf, False), ">=": _Interval(v, True, inf, False),
            }[op], expr
        case Between(fact=f, low=lo, high=hi) if positive:
            yield f, _Interval(float(lo.effective), True, float(hi.effective), True), expr
        case And(operands=ops) | Or(operands=ops):
            for o in ops:
                yield from _intervals(o, positive)
        case Not(operand=o):
            yield from _intervals(o, not positive)


def _describe(fact: FactDef, iv: _Interval) -> str:
    unit = f" {fact.unit}" if fact.unit and fact.unit != "ULN" else ""
    if iv.lo == iv.hi:
        return f"{fact.name} = {number_text(iv.lo)}{unit}"
    lo = "" if iv.lo == -math.inf else f"{number_text(iv.lo)}{'≤' if iv.lo_incl else '<'} "
    hi = "" if iv.hi == math.inf else f" {'≤' if iv.hi_incl else '<'}{number_text(iv.hi)}"
    return f"{lo}{fact.name}{hi}{unit}"


# ---------------------------------------------------------------------------


def lint(compiled: CompiledProtocol) -> list[Finding]:
    """Every finding for one protocol, errors first."""
    p = compiled.protocol
    src = compiled.path or p.id
    d = p.dictionary
    out: list[Finding] = []

    inclusions = [(c.id, compiled.rules[c.id]) for c in p.eligibility.inclusion]
    exclusions = [(c.id, compiled.rules[c.id]) for c in p.eligibility.exclusion]

    for inc_id, inc in inclusions:
        for exc_id, exc in exclusions:
            for f_i, iv_i, _ in _intervals(inc):
                for f_e, iv_e, _ in _intervals(exc):
                    if f_i != f_e or not iv_i.covers_all_with(iv_e):
                        continue
                    both = iv_i.intersect(iv_e)
                    fact = d.get(f_i)
                    if both is not None and fact is not None:
                        out.append(Finding(
                            "warning", "overlap", f"{src}: {inc_id} / {exc_id}",
                            f"a patient with {_describe(fact, both)} meets inclusion {inc_id} "
                            f"and exclusion {exc_id}; screening applies both literally "
                            "(ineligible)"))

    for cid, expr in inclusions + exclusions:
        sat = _satisfiable(expr, d)
        if sat is None:
            out.append(Finding("info", "not-checked", f"{src}: {cid}",
                               "too many facts to check satisfiability exhaustively"))
        elif not sat:
            out.append(Finding("error", "never-met", f"{src}: {cid}",
                               "no patient can meet this criterion"))

    for cid, expr in inclusions + exclusions:
        for name in sorted(facts_of(expr)):
            fact = d.get(name)
            if fact is not None and fact.per_patient:
                out.append(Finding(
                    "info", "per-patient-only", f"{src}: {cid}",
                    f"{name} is derived from patient-file entries population screening does "
                    "not read: screening a population leaves it unknown"))

    out += _arm_findings(compiled, src)
    out += _unreached(compiled, src)
    out += _registry_ages(compiled, src)
    out += _unreviewed(compiled, src)
    out += _unconfirmed(compiled, src)
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(out, key=lambda f: order[f.level])


def _components(operands: tuple[Expr, ...]) -> list[list[Expr]]:
    """Group conjuncts that share facts; groups over disjoint facts are independent."""
    groups: list[tuple[set[str], list[Expr]]] = []
    for o in operands:
        names = set(facts_of(o))
        joined = [g for g in groups if g[0] & names]
        merged_names, merged = set(names), [o]
        for g in joined:
            merged_names |= g[0]
            merged = g[1] + merged
            groups.remove(g)
        groups.append((merged_names, merged))
    return [g[1] for g in groups]


def _satisfiable(expr: Expr, d: FactDictionary) -> bool | None:
    """Can some patient make ``expr`` true? ``None`` when too large to enumerate."""
    if isinstance(expr, And):
        parts = _components(expr.operands)
        if len(parts) > 1:
            results = [_satisfiable(And(tuple(p)) if len(p) > 1 else p[0], d) for p in parts]
            if any(r is False for r in results):
                return False
            return None if any(r is None for r in results) else True
    assignments = _assignments(_fact_defs(facts_of(expr), d), [expr])
    if assignments is None:
        return None
    return any(evaluate(expr, fs) is True for fs in assignments)


def _arm_findings(compiled: CompiledProtocol, src: str) -> list[Finding]:
    p = compiled.protocol
    rules = compiled.arm_rules
    if not rules:
        return []
    d = p.dictionary
    names = list(dict.fromkeys(n for e in rules.values() for n in facts_of(e)))
    facts = _fact_defs(names, d)
    exprs = list(rules.values()) + list(compiled.rules.values())
    assignments = _assignments(facts, exprs)
    if assignments is None:
        return [Finding("info", "not-checked", f"{src}: arms",
                        "too many facts to check the assignment rules exhaustively")]
    out: list[Finding] = []
    overlaps: set[tuple[str, ...]] = set()
    gap: str | None = None
    inclusions = [compiled.rules[c.id] for c in p.eligibility.inclusion]
    for fs in assignments:
        met = tuple(a for a, e in rules.items() if evaluate(e, fs) is True)
        if len(met) > 1:
            overlaps.add(met)
        elif gap is None and all(evaluate(e, fs) is False for e in rules.values()) and all(
            evaluate(inc, fs) is not False for inc in inclusions
        ):
            gap = ", ".join(f"{k} = {v.value!r}" for k, v in fs.values.items())
    for met in sorted(overlaps):
        out.append(Finding("error", "arm-overlap", f"{src}: arms {', '.join(met)}",
                           "a patient can meet the assignment rules of several arms"))
    if gap is not None:
        out.append(Finding("warning", "arm-gap", f"{src}: arms",
                           f"a patient with {gap} may be eligible but no arm's rule applies"))
    return out


def _registry_ages(compiled: CompiledProtocol, src: str) -> list[Finding]:
    """The registry's age range is display text; only criteria screen. Say when none does."""
    ages = compiled.protocol.registry.eligibility
    if ages.minimum_age is None and ages.maximum_age is None:
        return []
    used = {n for e in compiled.rules.values() for n in facts_of(e)}
    if used & {"age_years", "age_months"}:
        return []
    shown = f"{ages.minimum_age or '—'} to {ages.maximum_age or '—'}"
    return [Finding("warning", "registry-age", f"{src}: registry.eligibility",
                    f"the registry gives ages {shown} but no criterion uses age_years or "
                    "age_months, so screening does not check age")]


def _unreviewed(compiled: CompiledProtocol, src: str) -> list[Finding]:
    """An imported protocol screens only once a person has reviewed every draft."""
    pending = compiled.protocol.unreviewed
    if not pending:
        return []
    return [Finding("warning", "draft", f"{src}: eligibility",
                    f"{len(pending)} criteria await review ({', '.join(pending)}); "
                    "the protocol is a draft and cannot screen")]


def _unreached(compiled: CompiledProtocol, src: str) -> list[Finding]:
    p = compiled.protocol
    used = {n for e in list(compiled.rules.values()) + list(compiled.arm_rules.values())
            for n in facts_of(e)}
    out = []
    for a in p.eligibility.attestations:
        if a.fact_name not in used:
            out.append(Finding("warning", "unreached", f"{src}: attestation {a.id}",
                               "declared but no criterion or arm rule uses it"))
    for name in p.eligibility.lookback.by_fact:
        if name not in p.dictionary:
            out.append(Finding("error", "unknown-fact", f"{src}: lookback.by_fact.{name}",
                               "not a fact of the dictionary"))
        elif name not in used:
            out.append(Finding("warning", "unreached", f"{src}: lookback.by_fact.{name}",
                               "no criterion uses this fact"))
    return out


def _unconfirmed(compiled: CompiledProtocol, src: str) -> list[Finding]:
    p = compiled.protocol
    out: list[Finding] = []

    def note(where: str, what: str, source: str) -> None:
        verb = "are" if what.endswith("s") else "is"
        out.append(Finding("warning", "unconfirmed", f"{src}: {where}",
                           f"{what} {verb} unconfirmed (source: {source})"))

    lb = p.eligibility.lookback
    if lb.unconfirmed:
        note("eligibility.lookback", "the look-back window", lb.source)
    gd2 = p.biomarkers.gd2
    if gd2 is not None and gd2.threshold_percent.unconfirmed:
        note("biomarkers.gd2", f"the GD2 threshold {gd2.threshold().shown()}",
             gd2.threshold_percent.source)
    for name, param in p.parameters.items():
        if param.unconfirmed:
            note(f"parameters.{name}", f"{name} = {param.shown()}", param.source)
    for course in p.courses:
        if course.length_days.unconfirmed:
            note(f"courses.{course.id}.length_days", "the course length",
                 course.length_days.source)
        for adm in course.administrations:
            _dose(out, f"{src}: courses.{course.id}", adm.agent, adm.dose)
    for arm in p.arms:
        for step in arm.plan:
            if isinstance(step, TimedStep):
                if step.within_hours.unconfirmed:
                    note(f"arms.{arm.id}.{step.timed}", "the time limit", step.within_hours.source)
                if step.administration is not None:
                    _dose(out, f"{src}: arms.{arm.id}", step.administration.agent,
                          step.administration.dose)
            elif isinstance(step, CourseStep):
                pass
        for assessment in arm.assessments:
            if assessment.unconfirmed:
                note(f"arms.{arm.id}.assessments", assessment.name, assessment.source or "")
        for sampling in arm.sampling:
            if sampling.unconfirmed:
                note(f"arms.{arm.id}.sampling", "the sampling days", sampling.source)
    for r in p.randomisations:
        if r.unconfirmed:
            note(f"randomisations.{r.id}", "the randomisation settings", r.source)
    for rule in p.toxicity_rules:
        if rule.unconfirmed:
            note(f"toxicity_rules.{rule.id}", f"toxicity rule {rule.id} ({rule.title})", rule.source)
        for lab, minimum in getattr(rule.when, "minimums", {}).items():
            if minimum.unconfirmed:
                note(f"toxicity_rules.{rule.id}.when.minimums.{lab}",
                     f"the {lab} minimum {minimum.shown()}", minimum.source)
    for stop in p.stopping_rules:
        if stop.unconfirmed:
            note(f"stopping_rules.{stop.id}", f"stopping rule {stop.id} ({stop.title})", stop.source)
        if stop.threshold.unconfirmed:
            note(f"stopping_rules.{stop.id}.threshold", f"the threshold {stop.threshold.shown()}",
                 stop.threshold.source)
    for product in p.products:
        if product.unconfirmed:
            note(f"products.{product.id}", f"product {product.id} ({product.name})", product.source)
        _product_limits(out, src, product)
    return out


def _product_limits(out: list[Finding], src: str, product: ProductSpec) -> None:
    """A product's dose, shelf life and release limits: unconfirmed, or not set at all."""
    limits = [("dose_per_kg", "the dose per kg", product.dose_per_kg),
              ("dose_per_unit", "the dose per unit", product.dose_per_unit),
              ("shelf_life_hours", "the shelf life", product.shelf_life_hours)]
    limits += [(f"release_tests.{t.id}", f"the {t.label} limit", t.limit)
               for t in product.release_tests]
    for name, what, limit in limits:
        if limit is None:
            continue
        where = f"{src}: products.{product.id}.{name}"
        if not limit.is_set:
            out.append(Finding("warning", "limit-not-set", where,
                               f"{what} is not set ({limit.note or limit.source})"))
        if limit.unconfirmed:
            out.append(Finding("warning", "unconfirmed", where,
                               f"{what} {limit.shown()} is unconfirmed (source: {limit.source})"))


def _dose(out: list[Finding], where: str, agent: str, dose: Dose) -> None:
    if dose.amount is None:
        out.append(Finding("warning", "dose-not-set", f"{where}: {agent}",
                           f"no dose amount ({dose.note or dose.source})"))
    if dose.unconfirmed:
        out.append(Finding("warning", "unconfirmed", f"{where}: {agent}",
                           f"dose {dose.shown()} is unconfirmed (source: {dose.source})"))


__all__ = ["Finding", "Param", "lint"]
