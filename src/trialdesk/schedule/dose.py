"""Doses from body size: BSA by the protocol's formula, the small-child rule, caps, rounding.

Every computed dose keeps its working (weight, height, BSA and formula, the basis and
every step) and the list of unconfirmed parameters it used, so that whoever signs it off
sees how it was reached. A dose whose amount the protocol does not set (NB-NK-2026's
autologous NK cells) is *not set*: it is never computed or guessed.

The numbers come from the protocol (:class:`~trialdesk.protocol.model.Dosing`): the BSA
formula and its rounding, the small-child rule (FACTS.md §1g: its cut-off and divisor
are protocol parameters), the rounding rule per agent and the weight change after which
doses are recomputed. The formulas are :mod:`trialdesk.clinical.body`.

>>> from trialdesk.protocol.model import Dose, Dosing
>>> d = Dose(amount=50, unit="mg", basis="per_m2", source="example")
>>> body = BodyMeasurement(on=date(2026, 11, 16), weight_kg=21.4, height_cm=118)
>>> result = compute_dose("irinotecan", d, body, Dosing())
>>> result.amount, result.bsa
(42.0, 0.84)
>>> result.working
'BSA 0.84 m² (Mosteller, 21.4 kg, 118 cm, to 2 decimals) × 50 mg/m² = 42 mg'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from functools import lru_cache, reduce
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from trialdesk.clinical.body import bsa, check_height_cm, check_weight_kg, parse_formula, round_bsa
from trialdesk.errors import ScheduleError
from trialdesk.protocol.model import Dose, DoseBasis, Dosing, Param, RoundingRule, SmallChildRule

__all__ = [
    "BodyMeasurement",
    "ComputedDose",
    "compute_dose",
    "format_amount",
    "rounding_rule",
    "small_child_rule",
    "weight_change_percent",
]

_FORMULA_NAME = {"mosteller": "Mosteller", "dubois": "DuBois", "haycock": "Haycock",
                 "gehan_george": "Gehan–George"}
_PER_BASIS = {"fixed": "", "per_m2": "/m²", "per_kg": "/kg"}


class BodyMeasurement(BaseModel):
    """Weight and/or height measured on one day.

    Impossible values are refused with a :class:`~trialdesk.errors.ClinicalError` naming
    the field (the plausibility guards of :mod:`trialdesk.clinical.body`).

    >>> BodyMeasurement(on=date(2026, 1, 5), weight_kg=400)
    Traceback (most recent call last):
    ...
    trialdesk.errors.ClinicalError: weight_kg: 400.0 kg is above the plausibility limit of 350 kg; \
check the unit (pounds?) and the digits
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    on: date
    weight_kg: float | None = None
    height_cm: float | None = None
    source: str | None = None

    @model_validator(mode="after")
    def _plausible(self) -> BodyMeasurement:
        if self.weight_kg is None and self.height_cm is None:
            raise ScheduleError("give a weight, a height or both", where="body")
        if self.weight_kg is not None:
            check_weight_kg(self.weight_kg)
        if self.height_cm is not None:
            check_height_cm(self.height_cm)
        return self


@dataclass(frozen=True)
class ComputedDose:
    """One administration's dose for one patient, with its working.

    ``amount`` is per ``per`` (a day, an administration or a course) after the
    small-child rule, the cap and the rounding; ``each`` is one of ``divided_into``
    equal doses. ``amount`` is None when the protocol does not set the dose.
    """

    agent: str
    prescribed: str
    unit: str
    per: str
    basis: str
    amount: float | None
    amount_max: float | None
    each: float | None
    divided_into: int
    working: str
    weight_kg: float | None
    height_cm: float | None
    bsa: float | None
    bsa_formula: str | None
    measured_on: date | None
    capped: bool
    rounding: str | None
    unconfirmed: tuple[str, ...]

    @property
    def not_set(self) -> bool:
        return self.amount is None

    def shown(self) -> str:
        """The dose as a nurse reads it: "42.0 mg", "71 × 10⁶ – 142 × 10⁶ cells", "not set"."""
        if self.amount is None:
            return self.prescribed  # "not set (cells/kg) [unconfirmed]"
        text = format_amount(self.amount, self.unit, self._places)
        if self.amount_max is not None:
            text = (f"{format_amount(self.amount, '', self._places).strip()} – "
                    f"{format_amount(self.amount_max, self.unit, self._places)}")
        if self.per != "administration":
            text += f"/{self.per}"
        if self.divided_into > 1 and self.each is not None:
            text += f" ({self.divided_into} × {format_amount(self.each, self.unit, self._places)})"
        return text

    @property
    def _places(self) -> int | None:
        return _places_of(self.rounding)

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent, "prescribed": self.prescribed, "unit": self.unit,
            "per": self.per, "basis": self.basis, "amount": self.amount,
            "amount_max": self.amount_max, "each": self.each,
            "divided_into": self.divided_into, "shown": self.shown(), "working": self.working,
            "weight_kg": self.weight_kg, "height_cm": self.height_cm, "bsa": self.bsa,
            "bsa_formula": self.bsa_formula,
            "measured_on": self.measured_on.isoformat() if self.measured_on else None,
            "capped": self.capped, "rounding": self.rounding,
            "unconfirmed": list(self.unconfirmed),
        }


def _places_of(rounding: str | None) -> int | None:
    # "to 0.1 mg" → 1 decimal shown; anything else is shown as computed.
    if rounding and rounding.startswith("to ") and rounding[3:].split(" ")[0][:1].isdigit():
        step = rounding[3:].split(" ")[0]
        return len(step.split(".")[1]) if "." in step else 0
    return None


def format_amount(value: float, unit: str, places: int | None = None) -> str:
    """An amount for reading: thousands grouped, millions as × 10⁶.

    >>> format_amount(400000, "IU"), format_amount(71e6, "cells"), format_amount(42, "mg", 1)
    ('400 000 IU', '71 × 10⁶ cells', '42.0 mg')
    >>> format_amount(5.04e6, "IU"), format_amount(15.0000001, "mg")
    ('5.04 × 10⁶ IU', '15 mg')
    """
    suffix = f" {unit}" if unit else ""
    if abs(value) >= 1e6:
        return f"{_trim(value / 1e6, 3)} × 10⁶{suffix}"
    text = f"{value:,.{places}f}" if places is not None else _group(_trim(value, 4))
    return text.replace(",", " ") + suffix


def _group(text: str) -> str:
    whole, _, fraction = text.partition(".")
    grouped = f"{int(whole):,}" if whole.lstrip("-").isdigit() else whole
    return grouped + (f".{fraction}" if fraction else "")


def _trim(value: float, places: int) -> str:
    text = f"{value:.{places}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _num(value: float) -> str:
    return _trim(value, 4)


def _param_number(param: Param, what: str) -> float:
    if isinstance(param.value, bool) or not isinstance(param.value, (int, float)):
        raise ScheduleError(f"must be a number, got {param.value!r}", where=what)
    return float(param.value)


def weight_change_percent(dosing: Dosing) -> float:
    """The protocol's weight change (in %) above which doses are recomputed."""
    value = _param_number(dosing.weight_change_percent, "dosing.weight_change_percent")
    if value <= 0:
        raise ScheduleError(f"must be above 0, got {value:g}", where="dosing.weight_change_percent")
    return value


def small_child_rule(dosing: Dosing, agent: str) -> SmallChildRule | None:
    """The small-child rule that names ``agent``, else one that names no agent."""
    key = agent.casefold()
    named = [r for r in dosing.small_child if key in {a.casefold() for a in r.agents}]
    general = [r for r in dosing.small_child if not r.agents]
    found = named or general
    return found[0] if found else None


def rounding_rule(dosing: Dosing, agent: str) -> RoundingRule | None:
    """The rounding rule that names ``agent``, else the one that names no agent."""
    key = agent.casefold()
    for rule in dosing.rounding:
        if key in {a.casefold() for a in rule.agents}:
            return rule
    return next((r for r in dosing.rounding if not r.agents), None)


def _applies(rule: SmallChildRule, weight: float) -> tuple[bool, str]:
    cutoff = _param_number(rule.weight_cutoff, "dosing.small_child.weight_cutoff")
    hit = weight <= cutoff if rule.at_or_below else weight < cutoff
    sign = "≤" if rule.at_or_below else "<"
    return hit, f"{_num(weight)} kg {sign} {_num(cutoff)} kg"


def compute_dose(
    agent: str,
    dose: Dose,
    body: BodyMeasurement | None,
    dosing: Dosing,
    bsa_formula: str = "mosteller",
) -> ComputedDose:
    """Compute one dose for one body (see the module docstring).

    Refused with a :class:`~trialdesk.errors.ScheduleError` naming the field: a per-kg or
    per-m² dose without a weight, a per-m² dose without a height (unless the small-child
    rule doses it per kg).
    """
    unconfirmed: list[str] = []
    per_basis = _PER_BASIS[dose.basis.value]
    prescribed = dose.shown()
    if dose.unconfirmed:
        unconfirmed.append(f"{agent} {_amount_text(dose)} {dose.unit}{per_basis}"
                           if dose.amount is not None else f"{agent} dose not set")
    weight = body.weight_kg if body else None
    height = body.height_cm if body else None
    base: dict[str, Any] = {
        "agent": agent, "prescribed": prescribed, "unit": dose.unit, "per": dose.per,
        "divided_into": dose.divided_into, "measured_on": body.on if body else None,
        "weight_kg": weight, "height_cm": height, "bsa": None, "bsa_formula": None,
    }
    if dose.amount is None:
        return ComputedDose(**base, basis=dose.basis.value, amount=None, amount_max=None,
                            each=None, working=f"not set in the protocol (source: {dose.source})",
                            capped=False, rounding=None, unconfirmed=tuple(unconfirmed))
    amounts = [dose.amount] + ([dose.amount_max] if dose.amount_max else [])
    basis = dose.basis.value
    if dose.basis is DoseBasis.FIXED:
        raw = amounts
        working = f"fixed dose {_amount_text(dose)} {dose.unit}"
    else:
        if weight is None:
            raise ScheduleError(
                f"no weight recorded; {agent} is dosed {_amount_text(dose)} {dose.unit}"
                f"{per_basis}", where="weight_kg")
        rule = small_child_rule(dosing, agent) if dose.basis is DoseBasis.PER_M2 else None
        hit, comparison = _applies(rule, weight) if rule else (False, "")
        if dose.basis is DoseBasis.PER_KG:
            raw = [a * weight for a in amounts]
            working = f"{_amount_text(dose)} {dose.unit}/kg × {_num(weight)} kg"
        elif rule is not None and hit:
            basis = "per_kg (small-child rule)"
            if rule.unconfirmed:
                unconfirmed.append(f"small-child rule ({comparison})")
            if rule.weight_cutoff.unconfirmed:
                unconfirmed.append(f"small-child cut-off {rule.weight_cutoff.shown()}")
            if rule.mode == "divide":
                assert rule.divisor is not None  # by the model's validator
                divisor = _param_number(rule.divisor, "dosing.small_child.divisor")
                if rule.divisor.unconfirmed:
                    unconfirmed.append(f"small-child divisor ÷{_num(divisor)}")
                per_kg = [a / divisor for a in amounts]
                working = (f"small-child rule ({comparison}): {_amount_text(dose)} {dose.unit}/m² "
                           f"÷ {_num(divisor)} = {_range(per_kg)} {dose.unit}/kg × {_num(weight)} kg")
            else:
                assert rule.amount_per_kg is not None  # by the model's validator
                per_kg_amount = _param_number(rule.amount_per_kg, "dosing.small_child.amount_per_kg")
                if rule.amount_per_kg.unconfirmed:
                    unconfirmed.append(f"small-child dose {rule.amount_per_kg.shown()}")
                per_kg = [per_kg_amount]
                working = (f"small-child rule ({comparison}): {_num(per_kg_amount)} {dose.unit}/kg "
                           f"instead of {_amount_text(dose)} {dose.unit}/m², × {_num(weight)} kg")
            raw = [a * weight for a in per_kg]
        else:
            if height is None:
                raise ScheduleError(
                    f"no height recorded; {agent} is dosed {_amount_text(dose)} {dose.unit}/m² "
                    "and the BSA needs height and weight", where="height_cm")
            formula = parse_formula(bsa_formula)
            area = round_bsa(bsa(height, weight, formula), dosing.bsa_places)
            base["bsa"], base["bsa_formula"] = area, formula.value
            raw = [a * area for a in amounts]
            working = (f"BSA {area:.{dosing.bsa_places}f} m² ({_FORMULA_NAME[formula.value]}, "
                       f"{_num(weight)} kg, {_num(height)} cm, to {dosing.bsa_places} decimals) × "
                       f"{_amount_text(dose)} {dose.unit}/m²")
    raw = [_clean(x) for x in raw]
    if dose.basis is not DoseBasis.FIXED:
        working += f" = {_range(raw)} {dose.unit}"
    capped = False
    if dose.cap is not None and any(x > dose.cap for x in raw):
        capped = True
        raw = [min(x, dose.cap) for x in raw]
        working += f"; capped at {_num(dose.cap)} {dose.unit}"
    n = dose.divided_into
    each = [_clean(x / n) for x in raw]
    if n > 1:
        working += f"; in {n} equal doses of {_range(each)} {dose.unit}"
    rounding_text: str | None = None
    rule_r = rounding_rule(dosing, agent)
    if rule_r is not None:
        rounded, hows, note = zip(
            *(_round(x, rule_r, dose.cap / n if dose.cap else None, dose.unit) for x in each),
            strict=True)
        each = list(rounded)
        rounding_text = hows[0]
        if rule_r.unconfirmed:
            unconfirmed.append(f"{agent} rounding {rounding_text}")
        notes = "; ".join(dict.fromkeys(x for x in note if x))
        places = _places_of(rounding_text)
        working += f"; rounded {rounding_text}: {_range(each, places)} {dose.unit}"
        if n > 1:
            working += " each"
        if notes:
            working += f" ({notes})"
    final = [_clean(x * n) for x in each]
    if n > 1 and rule_r is not None:
        working += f" = {_range(final, _places_of(rounding_text))} {dose.unit}/{dose.per}"
    return ComputedDose(
        **base, basis=basis, amount=final[0], amount_max=final[1] if len(final) > 1 else None,
        each=each[0] if n > 1 else None, working=working, capped=capped, rounding=rounding_text,
        unconfirmed=tuple(unconfirmed))


def _amount_text(dose: Dose) -> str:
    assert dose.amount is not None
    first = _amount_number(dose.amount)
    return first + (f"–{_amount_number(dose.amount_max)}" if dose.amount_max else "")


def _amount_number(value: float) -> str:
    if value >= 1e6:
        return f"{_trim(value / 1e6, 3)} × 10⁶"
    return f"{value:,.4f}".rstrip("0").rstrip(".").replace(",", " ")


def _range(values: list[float], places: int | None = None) -> str:
    return "–".join(_amount_number(v) if v >= 1e6 else f"{v:.{places}f}" if places is not None
                    else _num(v) for v in values)


def _clean(value: float) -> float:
    # Remove binary noise (0.84 × 50 = 42.00000000000001) without rounding anything a
    # dose sheet would see: 10 significant digits.
    return float(f"{value:.10g}")


def _round(value: float, rule: RoundingRule, cap: float | None, unit: str
           ) -> tuple[float, str, str]:
    """Round one dose by ``rule``; returns (amount, how, note)."""
    down_text = " (down)" if rule.direction == "down" else ""
    if rule.step is not None:
        how = f"to {_trim(rule.step, 6)} {unit}{down_text}"
        out = _to_step(value, rule.step, rule.direction)
        if cap is not None and out > cap:
            out = _to_step(value, rule.step, "down")
        return out, how, ""
    strengths = tuple(sorted(rule.strengths))
    how = f"to whole units of {', '.join(_num(s) for s in strengths)} {unit}{down_text}"
    down, up = _achievable(value, strengths)
    if down == 0 and value < strengths[0] / 2:
        return value, how, (f"not rounded: below half the smallest strength "
                            f"({_num(strengths[0])}); prepare individually")
    nearer_down = (value - down) < (up - value)  # a tie rounds up
    out = down if (rule.direction == "down" and down > 0) or nearer_down else up
    if cap is not None and out > cap and down > 0:
        out = down
    return out, how, _composition(out, strengths)


def _to_step(value: float, step: float, direction: str) -> float:
    q = Decimal(repr(step))
    n = (Decimal(repr(value)) / q).quantize(Decimal(1), ROUND_FLOOR if direction == "down"
                                            else ROUND_HALF_UP)
    return float(n * q)


def _units(strengths: tuple[float, ...]) -> tuple[int, tuple[int, ...]]:
    # Strengths in thousandths, divided by their greatest common divisor.
    milli = tuple(round(s * 1000) for s in strengths)
    g = reduce(math.gcd, milli)
    return g, tuple(m // g for m in milli)


def _achievable(value: float, strengths: tuple[float, ...]) -> tuple[float, float]:
    """The largest amount ≤ value and the smallest ≥ value made of whole units."""
    g, units = _units(strengths)
    target = math.floor(value * 1000 / g + 1e-9)
    reach = _reachable(units, target + max(units))
    lower = max((t for t in range(target + 1) if reach[t]), default=0)
    exact = math.isclose(lower * g / 1000, value, abs_tol=1e-9)
    upper = lower if exact else min(t for t in range(target + 1, len(reach)) if reach[t])
    return lower * g / 1000, upper * g / 1000


@lru_cache(maxsize=256)
def _reachable(units: tuple[int, ...], limit: int) -> tuple[bool, ...]:
    reach = [False] * (limit + 1)
    reach[0] = True
    for t in range(1, limit + 1):
        reach[t] = any(t >= u and reach[t - u] for u in units)
    return tuple(reach)


def _composition(amount: float, strengths: tuple[float, ...]) -> str:
    """Fewest units making ``amount``: "1 × 140 + 2 × 5"."""
    g, units = _units(strengths)
    target = round(amount * 1000 / g)
    best: list[tuple[int, ...] | None] = [()] + [None] * target
    for t in range(1, target + 1):
        options = [best[t - u] + (u,) for u in units  # type: ignore[operator]
                   if t >= u and best[t - u] is not None]
        best[t] = min(options, key=len) if options else None
    chosen = best[target]
    if not chosen:
        return ""
    counts: dict[int, int] = {}
    for u in chosen:
        counts[u] = counts.get(u, 0) + 1
    return " + ".join(f"{c} × {_num(u * g / 1000)}" for u, c in sorted(counts.items(), reverse=True))
