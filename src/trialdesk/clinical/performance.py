"""Performance status scales: Lansky, Karnofsky and ECOG/WHO/Zubrod.

Sources:

- Lansky SB, List MA, Lansky LL, Ritter-Sterr C, Miller DR. The measurement of
  performance in childhood cancer patients. Cancer 1987;60:1651–6.
- Karnofsky DA, Burchenal JH. The clinical evaluation of chemotherapeutic agents in
  cancer. In: MacLeod CM, ed. Evaluation of Chemotherapeutic Agents. Columbia University
  Press, 1949:191–205.
- Oken MM, Creech RH, Tormey DC et al. Toxicity and response criteria of the Eastern
  Cooperative Oncology Group. Am J Clin Oncol 1982;5:649–55 (ECOG; the same grades are
  used as the WHO and Zubrod scales).

No formal published mapping between Karnofsky and ECOG exists (hemonc.org), so this
module never converts one into the other for a decision. The conventional table is
available as documentation in :data:`KARNOFSKY_TO_ECOG_CONVENTIONAL`.

>>> describe("lansky", 70)
'Both greater restriction of, and less time spent in, play activity'
>>> age_appropriate_scale(8)
'lansky'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from trialdesk.errors import ClinicalError


class PerformanceScale(StrEnum):
    """The performance scales trialdesk knows. WHO and Zubrod are names for ECOG."""

    LANSKY = "lansky"
    KARNOFSKY = "karnofsky"
    ECOG = "ecog"


# Lansky et al., Cancer 1987;60:1651 (play-performance scale for children).
LANSKY: Mapping[int, str] = MappingProxyType(
    {
        100: "Fully active, normal",
        90: "Minor restrictions in physically strenuous activity",
        80: "Active, but tires more quickly",
        70: "Both greater restriction of, and less time spent in, play activity",
        60: "Up and around, but minimal active play; keeps busy with quieter activities",
        50: "Gets dressed, but lies around much of the day; no active play; "
        "able to participate in all quiet play and activities",
        40: "Mostly in bed; participates in quiet activities",
        30: "In bed; needs assistance even for quiet play",
        20: "Often sleeping; play entirely limited to very passive activities",
        10: "No play; does not get out of bed",
        0: "Unresponsive",
    }
)

# Karnofsky & Burchenal 1949 (Karnofsky performance status).
KARNOFSKY: Mapping[int, str] = MappingProxyType(
    {
        100: "Normal; no complaints; no evidence of disease",
        90: "Able to carry on normal activity; minor signs or symptoms of disease",
        80: "Normal activity with effort; some signs or symptoms of disease",
        70: "Cares for self; unable to carry on normal activity or to do active work",
        60: "Requires occasional assistance, but is able to care for most personal needs",
        50: "Requires considerable assistance and frequent medical care",
        40: "Disabled; requires special care and assistance",
        30: "Severely disabled; hospital admission is indicated although death not imminent",
        20: "Very sick; hospital admission necessary; active supportive treatment necessary",
        10: "Moribund; fatal processes progressing rapidly",
        0: "Dead",
    }
)

# Oken et al., Am J Clin Oncol 1982;5:649 (ECOG performance status = WHO = Zubrod).
ECOG: Mapping[int, str] = MappingProxyType(
    {
        0: "Fully active, able to carry on all pre-disease performance without restriction",
        1: "Restricted in physically strenuous activity but ambulatory and able to carry out "
        "work of a light or sedentary nature",
        2: "Ambulatory and capable of all self-care but unable to carry out any work "
        "activities; up and about more than 50% of waking hours",
        3: "Capable of only limited self-care; confined to bed or chair more than 50% of "
        "waking hours",
        4: "Completely disabled; cannot carry on any self-care; totally confined to bed or chair",
        5: "Dead",
    }
)

# Lansky for children under 16, Karnofsky from 16 (MDCalc, Lansky Play-Performance Scale:
# "for patients < 16 years old"; Lansky 1987 validated the scale in children aged 1–16).
LANSKY_BELOW_AGE_YEARS = 16.0

_ALIASES = {"who": PerformanceScale.ECOG, "zubrod": PerformanceScale.ECOG}


@dataclass(frozen=True)
class ConventionalMapping:
    """A mapping between scales that is convention, not a published equivalence.

    For display and documentation only; eligibility must be judged on the scale the
    protocol names.
    """

    source_scale: PerformanceScale
    target_scale: PerformanceScale
    table: Mapping[int, int]
    conventional: bool
    note: str


# The usual Karnofsky → ECOG pairing (ECOG-ACRIN performance status table, after Oken 1982).
# hemonc.org: no formal published mapping exists.
KARNOFSKY_TO_ECOG_CONVENTIONAL = ConventionalMapping(
    source_scale=PerformanceScale.KARNOFSKY,
    target_scale=PerformanceScale.ECOG,
    table=MappingProxyType(
        {100: 0, 90: 0, 80: 1, 70: 1, 60: 2, 50: 2, 40: 3, 30: 3, 20: 4, 10: 4, 0: 5}
    ),
    conventional=True,
    note=(
        "Conventional pairing only; no formal published mapping exists (hemonc.org). "
        "Not for eligibility decisions."
    ),
)


def validate_lansky(score: float) -> int:
    """Return a Lansky score (a multiple of 10 from 0 to 100) or raise ClinicalError.

    >>> validate_lansky(70)
    70
    """
    return _tens(score, "lansky")


def validate_karnofsky(score: float) -> int:
    """Return a Karnofsky score (a multiple of 10 from 0 to 100) or raise ClinicalError.

    >>> validate_karnofsky(90.0)
    90
    """
    return _tens(score, "karnofsky")


def validate_ecog(grade: float) -> int:
    """Return an ECOG/WHO/Zubrod grade (a whole number from 0 to 5) or raise ClinicalError.

    >>> validate_ecog(1)
    1
    """
    value = _whole(grade, "ecog")
    if not 0 <= value <= 5:
        raise ClinicalError(f"must be a whole number from 0 to 5, got {grade!r}", where="ecog")
    return value


def parse_scale(scale: PerformanceScale | str) -> PerformanceScale:
    """Read a scale name; "WHO" and "Zubrod" are the ECOG scale.

    >>> parse_scale("Zubrod")
    <PerformanceScale.ECOG: 'ecog'>
    """
    if isinstance(scale, PerformanceScale):
        return scale
    if isinstance(scale, str):
        key = scale.strip().lower()
        if key in _ALIASES:
            return _ALIASES[key]
        try:
            return PerformanceScale(key)
        except ValueError:
            pass
    raise ClinicalError(
        f"unknown performance scale {scale!r}; use lansky, karnofsky, ecog, who or zubrod",
        where="scale",
    )


def validate(scale: PerformanceScale | str, score: float) -> int:
    """Validate ``score`` on ``scale``.

    >>> validate("who", 2)
    2
    """
    chosen = parse_scale(scale)
    if chosen is PerformanceScale.LANSKY:
        return validate_lansky(score)
    if chosen is PerformanceScale.KARNOFSKY:
        return validate_karnofsky(score)
    return validate_ecog(score)


def describe(scale: PerformanceScale | str, score: float) -> str:
    """The published wording for ``score`` on ``scale``.

    >>> describe("ecog", 5)
    'Dead'
    """
    chosen = parse_scale(scale)
    value = validate(chosen, score)
    table = {
        PerformanceScale.LANSKY: LANSKY,
        PerformanceScale.KARNOFSKY: KARNOFSKY,
        PerformanceScale.ECOG: ECOG,
    }[chosen]
    return table[value]


def age_appropriate_scale(
    age_years: float, *, lansky_below_years: float = LANSKY_BELOW_AGE_YEARS
) -> Literal["lansky", "karnofsky"]:
    """Lansky for patients younger than 16 years, Karnofsky from 16.

    Source: MDCalc, Lansky Play-Performance Scale ("for patients < 16 years old"), after
    Lansky et al., Cancer 1987;60:1651. Protocols that draw the line elsewhere pass their
    own ``lansky_below_years``.

    >>> age_appropriate_scale(15.9), age_appropriate_scale(16)
    ('lansky', 'karnofsky')
    """
    age = _real(age_years, "age_years")
    if age < 0:
        raise ClinicalError(f"must not be negative, got {age_years!r}", where="age_years")
    limit = _real(lansky_below_years, "lansky_below_years")
    return "lansky" if age < limit else "karnofsky"


def _tens(score: object, field: str) -> int:
    value = _whole(score, field)
    if not 0 <= value <= 100 or value % 10:
        raise ClinicalError(f"must be a multiple of 10 from 0 to 100, got {score!r}", where=field)
    return value


def _whole(value: object, field: str) -> int:
    """An int, or a float with no fractional part; bools and strings are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ClinicalError(f"must be a whole number, got {value!r}", where=field)
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ClinicalError(f"must be a whole number, got {value!r}", where=field)
    return int(value)


def _real(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ClinicalError(f"must be a number, got {value!r}", where=field)
    if not math.isfinite(value):
        raise ClinicalError(f"must be a finite number, got {value!r}", where=field)
    return float(value)
