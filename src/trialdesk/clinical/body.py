"""Body surface area (BSA) from height and weight.

Four published formulas, all taking height in cm and weight in kg and giving m²:

- Mosteller RD. Simplified calculation of body-surface area. N Engl J Med 1987;317:1098.
- DuBois D, DuBois EF. A formula to estimate the approximate surface area if height and
  weight be known. Arch Intern Med 1916;17:863–71.
- Haycock GB, Schwartz GJ, Wisotsky DH. Geometric method for measuring body surface area:
  a height-weight formula validated in infants, children and adults. J Pediatr 1978;93:62–6.
- Gehan EA, George SL. Estimation of human body surface area from height and weight.
  Cancer Chemother Rep 1970;54:225–35.

Which formula a dose uses, and below which weight a protocol doses by kg instead of m²,
belong to the protocol, not to this module.

>>> round_bsa(bsa(180, 80))
2.0
>>> round_bsa(bsa(110, 18, "haycock"))
0.74
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from trialdesk.errors import ClinicalError

# Plausibility guards, not clinical thresholds: they catch values no patient can have
# (typing errors, wrong units), and say nothing about whether a patient may be treated.
# - 272 cm: Robert Wadlow (1918–1940), the tallest person with a reliable record (272 cm).
# - 20 cm: below the length of the smallest surviving preterm newborns (about 24 cm).
# - 350 kg: NOT the heaviest person on record (Jon Brower Minnoch, estimated ~635 kg).
#   It is a guard set well above any patient a trial here is expected to weigh, so that a
#   weight typed in pounds, or with an extra digit, is refused instead of being dosed.
HEIGHT_MIN_CM = 20.0
HEIGHT_MAX_CM = 272.0
WEIGHT_MAX_KG = 350.0


class BsaFormula(StrEnum):
    """The BSA formulas trialdesk knows (see the module docstring for citations)."""

    MOSTELLER = "mosteller"
    DUBOIS = "dubois"
    HAYCOCK = "haycock"
    GEHAN_GEORGE = "gehan_george"


def bsa(
    height_cm: float,
    weight_kg: float,
    formula: BsaFormula | str = BsaFormula.MOSTELLER,
) -> float:
    """Body surface area in m², unrounded.

    - Mosteller (NEJM 1987;317:1098): √(H × W / 3600)
    - DuBois (Arch Intern Med 1916;17:863): 0.007184 × H^0.725 × W^0.425
    - Haycock (J Pediatr 1978;93:62): 0.024265 × H^0.3964 × W^0.5378
    - Gehan & George (Cancer Chemother Rep 1970;54:225): 0.0235 × H^0.42246 × W^0.51456

    H is height in cm, W weight in kg. Raises :class:`ClinicalError` naming the field
    for a value that is not a number, not positive, or outside the plausibility guards.

    >>> round(bsa(180, 80), 4)
    2.0
    >>> round(bsa(180, 80, BsaFormula.DUBOIS), 4)
    1.9964
    """
    chosen = parse_formula(formula)
    height = check_height_cm(height_cm)
    weight = check_weight_kg(weight_kg)
    if chosen is BsaFormula.MOSTELLER:
        # Mosteller 1987: the square root of (cm × kg / 3600).
        return math.sqrt(height * weight / 3600.0)
    if chosen is BsaFormula.DUBOIS:
        # DuBois & DuBois 1916, with height in cm (0.007184 = 0.20247 × 100^-0.725).
        return 0.007184 * height**0.725 * weight**0.425
    if chosen is BsaFormula.HAYCOCK:
        # Haycock et al. 1978.
        return 0.024265 * height**0.3964 * weight**0.5378
    # Gehan & George 1970.
    return 0.0235 * height**0.42246 * weight**0.51456


def round_bsa(value: float, places: int = 2) -> float:
    """Round a BSA half up on its decimal digits (1.005 → 1.01), as dosing sheets do.

    Python's :func:`round` rounds half to even on the binary value, so ``round(1.005, 2)``
    gives 1.0; dose calculations should not depend on that.

    >>> round_bsa(1.005)
    1.01
    >>> round_bsa(0.74162, 3)
    0.742
    """
    number = _number(value, "bsa")
    if number <= 0:
        raise ClinicalError(f"must be greater than 0, got {value!r}", where="bsa")
    if isinstance(places, bool) or not isinstance(places, int) or places < 0:
        raise ClinicalError(f"must be a whole number ≥ 0, got {places!r}", where="places")
    quantum = Decimal(1).scaleb(-places)
    return float(Decimal(repr(number)).quantize(quantum, rounding=ROUND_HALF_UP))


def parse_formula(formula: BsaFormula | str) -> BsaFormula:
    """Read a formula name ("Mosteller", "gehan-george", …) into a :class:`BsaFormula`.

    >>> parse_formula("Gehan-George")
    <BsaFormula.GEHAN_GEORGE: 'gehan_george'>
    """
    if isinstance(formula, BsaFormula):
        return formula
    if isinstance(formula, str):
        key = formula.strip().lower().replace("-", "_").replace(" ", "_")
        try:
            return BsaFormula(key)
        except ValueError:
            pass
    known = ", ".join(f.value for f in BsaFormula)
    raise ClinicalError(f"unknown BSA formula {formula!r}; use one of {known}", where="formula")


def check_height_cm(value: float, field: str = "height_cm") -> float:
    """Return a height in cm as float, or raise :class:`ClinicalError` naming ``field``.

    >>> check_height_cm(120)
    120.0
    """
    height = _number(value, field)
    if height <= 0:
        raise ClinicalError(f"must be greater than 0 cm, got {value!r}", where=field)
    if height < HEIGHT_MIN_CM or height > HEIGHT_MAX_CM:
        raise ClinicalError(
            f"{value!r} cm is not a possible human height "
            f"(plausible range {HEIGHT_MIN_CM:g}–{HEIGHT_MAX_CM:g} cm); check the unit",
            where=field,
        )
    return height


def check_weight_kg(value: float, field: str = "weight_kg") -> float:
    """Return a weight in kg as float, or raise :class:`ClinicalError` naming ``field``.

    >>> check_weight_kg(18)
    18.0
    """
    weight = _number(value, field)
    if weight <= 0:
        raise ClinicalError(f"must be greater than 0 kg, got {value!r}", where=field)
    if weight > WEIGHT_MAX_KG:
        raise ClinicalError(
            f"{value!r} kg is above the plausibility limit of {WEIGHT_MAX_KG:g} kg; "
            "check the unit (pounds?) and the digits",
            where=field,
        )
    return weight


def _number(value: object, field: str) -> float:
    """A finite real number as float; bools, strings and NaN are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ClinicalError(f"must be a number, got {value!r}", where=field)
    number = float(value)
    if not math.isfinite(number):
        raise ClinicalError(f"must be a finite number, got {value!r}", where=field)
    return number
