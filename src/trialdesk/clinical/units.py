"""Units of measure, through pint.

Clinical units are written many ways (``10^9/L``, ``x10^9/L``, ``G/L``, ``/mm3``,
``µmol/L``, ``mL/min/1.73m2``). :func:`normalise_unit` turns the common spellings into
pint expressions; :func:`convert` converts between compatible units, and between mass
and molar concentrations for the substances whose molar mass is listed in
:data:`MOLAR_MASS_G_PER_MOL` (pint's ``chemistry`` context does the arithmetic).

Every converted value is rounded to 12 significant digits so that binary floating-point
noise never moves a value across a clinical boundary: 10⁹/L → /mm³ gives
999.9999999999998 in raw floating point, and "≤ 1 × 10⁹/L" must still include 1000/mm³.

>>> convert(1.0, "10^9/L", "/mm3")
1000.0
>>> round(convert(1.0, "mg/dL", "umol/L", substance="creatinine"), 1)
88.4
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

from trialdesk.errors import UnitError

if TYPE_CHECKING:  # pragma: no cover
    import pint

#: Molar masses used for mass ↔ molar concentration conversion.
MOLAR_MASS_G_PER_MOL: dict[str, float] = {
    # Creatinine C4H7N3O, 113.12 g/mol (PubChem CID 588); gives the usual
    # 1 mg/dL = 88.4 µmol/L (FACTS.md §2, §9).
    "creatinine": 113.12,
    # Bilirubin C33H36N4O6, 584.66 g/mol (PubChem CID 5280352); 1 mg/dL = 17.1 µmol/L.
    "bilirubin": 584.66,
}

SIGNIFICANT_DIGITS = 12

# Spellings seen in laboratory reports, mapped to pint expressions. Order matters:
# longer patterns first.
_SPELLINGS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^\s*(?:x|×|\*)?\s*10\s*(?:\^|\*\*|e)?\s*(?:9|⁹)\s*/\s*l\s*$", re.I), "1/nL"),
    (re.compile(r"^\s*(?:x|×|\*)?\s*10\s*(?:\^|\*\*|e)?\s*(?:12|¹²)\s*/\s*l\s*$", re.I), "1/pL"),
    (re.compile(r"^\s*(?:x|×|\*)?\s*10\s*(?:\^|\*\*|e)?\s*(?:3|³)\s*/\s*(?:µl|ul|μl)\s*$", re.I),
     "1/nL"),
    (re.compile(r"^\s*(?:x|×|\*)?\s*10\s*(?:\^|\*\*|e)?\s*(?:6|⁶)\s*/\s*(?:µl|ul|μl)\s*$", re.I),
     "1/pL"),
    (re.compile(r"^\s*g\s*/\s*l\s*$"), "g/L"),
    (re.compile(r"^\s*G\s*/\s*L\s*$"), "1/nL"),
    (re.compile(r"^\s*(?:cells\s*)?/\s*(?:mm3|mm³|mm\^3|µl|ul|μl)\s*$", re.I), "1/mm**3"),
    (re.compile(r"^\s*ml\s*/\s*min\s*/\s*1\.73\s*m(?:2|²|\^2)\s*$", re.I), "mL/min/BSA173"),
    (re.compile(r"^\s*%\s*$"), "percent"),
    (re.compile(r"^\s*(?:iu|IU|ME)\s*$"), "IU"),
    (re.compile(r"^\s*(?:x\s*)?ULN\s*$", re.I), "ULN"),
    # Thousands and millions per microlitre, as analysers print them (K/uL, thou/uL, M/uL).
    (re.compile(r"^\s*(?:k|thou|thous)\s*/\s*(?:µl|ul|μl|mm3|mm³)\s*$", re.I), "tenpow3/uL"),
    (re.compile(r"^\s*(?:m|mil|mill)\s*/\s*(?:µl|ul|μl|mm3|mm³)\s*$", re.I), "tenpow6/uL"),
]

# Any other power of ten per volume: 10^3/mL, x10E3/uL, 10*3/mm3, ×10⁶/µL. The exponent
# needs its operator (or superscript digits), so "109/L" is never read as 10^9/L here.
_POWER_PER_VOLUME = re.compile(
    r"^\s*(?:x|×|\*)?\s*10\s*(?:(?:\^|\*\*|\*|e)\s*(\d{1,2})|([⁰¹²³⁴⁵⁶⁷⁸⁹]{1,2}))"
    r"\s*/\s*(l|dl|ml|µl|ul|μl|nl|pl|mm3|mm³|mm\^3)\s*$",
    re.I,
)
_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")
_VOLUME = {"l": "L", "dl": "dL", "ml": "mL", "µl": "uL", "ul": "uL", "μl": "uL", "nl": "nL", "pl": "pL",
           "mm3": "mm**3", "mm³": "mm**3", "mm^3": "mm**3"}


@lru_cache(maxsize=1)
def registry() -> pint.UnitRegistry:
    """The shared unit registry, built on first use (no work at import time)."""
    import pint

    ureg: pint.UnitRegistry = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    ureg.define("BSA173 = 1.73 * meter ** 2")
    # International units of biological activity have no SI equivalent: their own dimension.
    ureg.define("IU = [international_unit]")
    # "× upper limit of normal" is a pure ratio.
    ureg.define("ULN = [] = xULN")
    ureg.define("cell = [] = cells")
    # Powers of ten as dimensionless units, so that "10^3/mL" is a unit and not a number
    # times a unit (pint refuses scaling factors in unit expressions).
    for exponent in range(1, 19):
        ureg.define(f"tenpow{exponent} = 1e{exponent}")
    return ureg


def normalise_unit(text: str) -> str:
    """Turn a clinical unit spelling into a pint expression (unchanged if not known).

    >>> normalise_unit("x10^9/L")
    '1/nL'
    >>> normalise_unit("µmol/L")
    'umol/L'
    """
    for pattern, replacement in _SPELLINGS:
        if pattern.match(text):
            return replacement
    power = _POWER_PER_VOLUME.match(text)
    if power:
        exponent = int((power.group(1) or power.group(2)).translate(_SUPERSCRIPT))
        volume = _VOLUME[power.group(3).casefold()]
        return f"tenpow{exponent}/{volume}" if exponent else f"1/{volume}"
    plain = text.strip().replace("µ", "u").replace("μ", "u").replace("^", "**")
    return f"1{plain}" if plain.startswith("/") else plain


def parse_unit(text: str, *, where: str | None = None) -> pint.Unit:
    """Parse a unit, raising :class:`UnitError` naming the unit when pint does not know it."""
    ureg = registry()
    try:
        return ureg.parse_units(normalise_unit(text))
    except Exception as exc:  # pint raises several unrelated exception types
        raise UnitError(f"unknown unit {text!r}", where=where) from exc


def _round(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def compatible(from_unit: str, to_unit: str, *, substance: str | None = None) -> bool:
    """Whether a value in ``from_unit`` can be expressed in ``to_unit``."""
    try:
        convert(1.0, from_unit, to_unit, substance=substance)
    except UnitError:
        return False
    return True


# Conversions done, by (value, from, to, substance): type-checking a rule converts its
# literals, and the same rules recur (imported registry drafts). Failures are not kept.
_CONVERTED: dict[tuple[float, str, str, str | None], float] = {}
_CONVERTED_MAX = 65536


def convert(
    value: float,
    from_unit: str,
    to_unit: str,
    *,
    substance: str | None = None,
    where: str | None = None,
) -> float:
    """Convert ``value`` from one unit to another.

    ``substance`` allows mass ↔ molar conversion for the substances in
    :data:`MOLAR_MASS_G_PER_MOL`.

    >>> convert(2000, "/mm3", "10^9/L")
    2.0
    """
    key = (value, from_unit, to_unit, substance)
    done = _CONVERTED.get(key)
    if done is None:
        done = _convert(value, from_unit, to_unit, substance=substance, where=where)
        if len(_CONVERTED) < _CONVERTED_MAX:
            _CONVERTED[key] = done
    return done


def _convert(
    value: float, from_unit: str, to_unit: str, *, substance: str | None, where: str | None
) -> float:
    ureg = registry()
    src = parse_unit(from_unit, where=where)
    dst = parse_unit(to_unit, where=where)
    quantity = ureg.Quantity(value, src)
    try:
        return _round(float(quantity.to(dst).magnitude))
    except Exception as exc:
        molar_mass = MOLAR_MASS_G_PER_MOL.get(substance or "")
        if molar_mass is None:
            raise UnitError(
                f"cannot convert {from_unit!r} to {to_unit!r}", where=where
            ) from exc
        try:
            converted = quantity.to(dst, "chemistry", mw=molar_mass * ureg("g/mol"))
        except Exception as exc2:
            raise UnitError(
                f"cannot convert {from_unit!r} to {to_unit!r} for {substance}", where=where
            ) from exc2
        return _round(float(converted.magnitude))
