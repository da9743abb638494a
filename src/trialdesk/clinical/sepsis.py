"""Critical-care calculators: PaO₂/FiO₂, SOFA, ventilation- and RRT-free days.

SOFA: Vincent JL et al., "The SOFA (Sepsis-related Organ Failure Assessment) score to
describe organ dysfunction/failure", Intensive Care Med 1996;22:707–710, Table 1, as
reproduced in Singer M et al., Sepsis-3, JAMA 2016;315:801, Table 1 ("adapted from
Vincent et al."; PMC4968574). The bands below are that table's rows; where the table
prints closed ranges with a gap (bilirubin "1.2–1.9", "2.0–5.9"), each band here runs up
to the next band's lower edge, so every value has one score. Cardiovascular doses are
µg/kg/min given for at least 1 hour; dopamine ≤ 5 scores 2 and > 5 scores 3 as in
Vincent 1996 (Sepsis-3 prints "< 5" and "5.1–15").

A missing component is never scored as normal: :func:`sofa` returns the organ scores it
could compute, names the missing ones, and gives a total only when all six are known.

Free days: Schoenfeld DA, Bernard GR, ARDS Network, "Statistical evaluation of
ventilator-free days as an efficacy measure in clinical trials of treatments for acute
respiratory distress syndrome", Crit Care Med 2002;30:1772–1777 (as discussed in Yehya N
et al., Am J Respir Crit Care Med 2019;200:828, PMC6812447): a patient who dies within the
window has 0 free days; a survivor has the window's days minus the days on support.

>>> pao2_fio2(80, 0.40)
200.0
>>> sofa(SofaInputs(platelets=140)).organs["coagulation"]
1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date
from typing import Final

from trialdesk.errors import ClinicalError

SOFA_SOURCE: Final = "Vincent 1996, Intensive Care Med 22:707, Table 1 (Sepsis-3 JAMA 2016 Table 1)"
FREE_DAYS_SOURCE: Final = "Schoenfeld & Bernard 2002, Crit Care Med 30:1772"


def pao2_fio2(pao2_mmhg: float, fio2: float) -> float:
    """PaO₂ (mmHg) ÷ FiO₂ (a fraction, 0.21–1.0; a percentage is refused as ambiguous).

    >>> pao2_fio2(95, 0.21)
    452.4
    """
    if pao2_mmhg < 0:
        raise ClinicalError(f"must be ≥ 0 mmHg, got {pao2_mmhg:g}", where="pao2")
    if not 0.21 <= fio2 <= 1.0:
        raise ClinicalError(f"must be a fraction from 0.21 to 1.0, got {fio2:g}", where="fio2")
    return round(pao2_mmhg / fio2, 1)


# --------------------------------------------------------------------------- SOFA

#: (score, lower bound inclusive) per "higher is worse" organ: the highest score whose
#: bound the value reaches. Units: bilirubin and creatinine mg/dL (Vincent 1996 Table 1).
_RISING: Final[dict[str, tuple[tuple[int, float], ...]]] = {
    "bilirubin": ((1, 1.2), (2, 2.0), (3, 6.0), (4, 12.0)),
    "creatinine": ((1, 1.2), (2, 2.0), (3, 3.5), (4, 5.0)),
}
#: (score, upper bound exclusive) per "lower is worse" organ: the highest score whose
#: bound the value is below. Platelets ×10³/µL; PaO₂/FiO₂ mmHg; GCS points (GCS 13–14
#: is "< 15", 10–12 "< 13", 6–9 "< 10", < 6).
_FALLING: Final[dict[str, tuple[tuple[int, float], ...]]] = {
    "platelets": ((1, 150), (2, 100), (3, 50), (4, 20)),
    "pao2_fio2": ((1, 400), (2, 300), (3, 200), (4, 100)),
    "glasgow_coma_scale": ((1, 15), (2, 13), (3, 10), (4, 6)),
}


@dataclass(frozen=True)
class SofaInputs:
    """The SOFA components; None = not recorded. Units as in :class:`SofaAssessment`."""

    pao2_fio2: float | None = None
    respiratory_support: bool | None = None
    platelets: float | None = None
    bilirubin: float | None = None
    mean_arterial_pressure: float | None = None
    dopamine: float | None = None
    dobutamine: float | None = None
    epinephrine: float | None = None
    norepinephrine: float | None = None
    glasgow_coma_scale: int | None = None
    creatinine: float | None = None
    urine_output: float | None = None


@dataclass(frozen=True)
class SofaScore:
    organs: dict[str, int]  # organ → 0–4, only the organs that could be scored
    missing: dict[str, str]  # organ → what is missing
    source: str = SOFA_SOURCE

    @property
    def total(self) -> int | None:
        return sum(self.organs.values()) if not self.missing else None


def _rising(name: str, value: float) -> int:
    return max((s for s, lo in _RISING[name] if value >= lo), default=0)


def _falling(name: str, value: float) -> int:
    return max((s for s, hi in _FALLING[name] if value < hi), default=0)


def _respiration(i: SofaInputs) -> int | str:
    if i.pao2_fio2 is None:
        return "PaO₂/FiO₂"
    score = _falling("pao2_fio2", i.pao2_fio2)
    if score >= 3:
        # Scores 3 and 4 need respiratory support; without it the ratio scores 2.
        if i.respiratory_support is None:
            return "whether the patient is on respiratory support"
        if not i.respiratory_support:
            return 2
    return score


def _cardiovascular(i: SofaInputs) -> int | str:
    doses = (i.dopamine, i.dobutamine, i.epinephrine, i.norepinephrine)
    if all(d is None for d in doses) and i.mean_arterial_pressure is None:
        return "mean arterial pressure and vasopressor doses"
    dop, dob, epi, nor = (d or 0.0 for d in doses)
    if dop > 15 or epi > 0.1 or nor > 0.1:
        return 4
    if dop > 5 or epi > 0 or nor > 0:
        return 3
    if dop > 0 or dob > 0:
        return 2
    if any(d is None for d in doses):
        return "vasopressor doses (0 if none)"
    if i.mean_arterial_pressure is None:
        return "mean arterial pressure"
    return 1 if i.mean_arterial_pressure < 70 else 0


def _renal(i: SofaInputs) -> int | str:
    if i.creatinine is None and i.urine_output is None:
        return "creatinine or urine output"
    by_creatinine = _rising("creatinine", i.creatinine) if i.creatinine is not None else 0
    by_urine = 0
    if i.urine_output is not None:
        by_urine = 4 if i.urine_output < 200 else 3 if i.urine_output < 500 else 0
    if i.creatinine is None and by_urine < 3:
        return "creatinine"  # a normal urine output alone does not give scores 0–2
    return max(by_creatinine, by_urine)


def sofa(inputs: SofaInputs) -> SofaScore:
    """The SOFA organ scores and total (None while any organ is missing).

    >>> s = sofa(SofaInputs(pao2_fio2=180, respiratory_support=True, platelets=160,
    ...     bilirubin=1.0, mean_arterial_pressure=75, dopamine=0, dobutamine=0,
    ...     epinephrine=0, norepinephrine=0, glasgow_coma_scale=15, creatinine=1.0))
    >>> s.organs["respiration"], s.total
    (3, 3)
    """
    organs: dict[str, int] = {}
    missing: dict[str, str] = {}
    results: dict[str, int | str] = {
        "respiration": _respiration(inputs),
        "coagulation": (_falling("platelets", inputs.platelets)
                        if inputs.platelets is not None else "platelets"),
        "liver": (_rising("bilirubin", inputs.bilirubin)
                  if inputs.bilirubin is not None else "bilirubin"),
        "cardiovascular": _cardiovascular(inputs),
        "cns": (_falling("glasgow_coma_scale", inputs.glasgow_coma_scale)
                if inputs.glasgow_coma_scale is not None else "Glasgow Coma Scale"),
        "renal": _renal(inputs),
    }
    for organ, result in results.items():
        if isinstance(result, str):
            missing[organ] = result
        else:
            organs[organ] = result
    return SofaScore(organs, missing)


def sofa_inputs(source: object) -> SofaInputs:
    """The SOFA inputs read from any object with the same attribute names (a form, a record)."""
    return SofaInputs(**{f.name: getattr(source, f.name, None) for f in fields(SofaInputs)})


# --------------------------------------------------------------------------- free days


def free_days(start: date, episodes: Sequence[tuple[date, date | None]], *,
              death: date | None = None, window: int = 28) -> int:
    """Days alive and free of a support (ventilation, RRT) from day 1 to day ``window``.

    ``start`` is day 1; ``episodes`` are (first day, last day or None if ongoing) on
    support; ``death`` the date of death if any. Death on or before the last day of the
    window gives 0 (Schoenfeld & Bernard 2002); otherwise the window's days minus the days
    of the window touched by an episode.

    >>> from datetime import timedelta
    >>> d1 = date(2026, 1, 1)
    >>> free_days(d1, [(d1, d1 + timedelta(days=19))])  # on support days 1–20, off from day 21
    8
    >>> free_days(d1, [], death=d1 + timedelta(days=27))
    0
    """
    if window < 1:
        raise ClinicalError(f"must be ≥ 1 day, got {window}", where="window")
    last = date.fromordinal(start.toordinal() + window - 1)
    if death is not None:
        if death < start:
            raise ClinicalError(f"death {death} is before day 1 ({start})", where="death")
        if death <= last:
            return 0
    on: set[int] = set()
    for i, (first, end) in enumerate(episodes):
        if end is not None and end < first:
            raise ClinicalError(f"ends {end} before it starts {first}", where=f"episodes[{i}]")
        stop = min(end or last, last)
        on.update(range(max(first, start).toordinal(), stop.toordinal() + 1))
    return window - len(on)


__all__ = [
    "FREE_DAYS_SOURCE",
    "SOFA_SOURCE",
    "SofaInputs",
    "SofaScore",
    "free_days",
    "pao2_fio2",
    "sofa",
    "sofa_inputs",
]
