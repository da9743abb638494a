"""Count units as laboratories print them, converted through pint (clinical/units.py)."""

from __future__ import annotations

import pytest

from trialdesk.clinical.units import convert, normalise_unit
from trialdesk.errors import UnitError


@pytest.mark.parametrize(
    ("unit", "per_nanolitre"),
    [
        # 10^3/uL = 10^3 / 10^-6 L = 10^9/L = 1/nL
        ("10^3/uL", 1.0),
        ("10^3/µL", 1.0),
        ("x10E3/uL", 1.0),
        ("10*3/uL", 1.0),
        ("x10^3/mm3", 1.0),
        ("K/uL", 1.0),
        ("K/µL", 1.0),
        ("thou/uL", 1.0),
        ("G/L", 1.0),
        ("/nL", 1.0),
        ("10^9/L", 1.0),
        # 10^3/mL = 10^6/L = 1/uL = 10^-3 x 10^9/L
        ("10^3/mL", 0.001),
        ("/mm3", 0.001),
        ("cells/uL", 0.001),
        # 10^6/uL = 10^12/L; 10^4/uL = 10^10/L
        ("10^6/uL", 1000.0),
        ("M/uL", 1000.0),
        ("×10⁶/µL", 1000.0),
        ("10^12/L", 1000.0),
        ("10^4/uL", 10.0),
    ],
)
def test_count_units_convert_to_per_nanolitre(unit: str, per_nanolitre: float) -> None:
    assert convert(1.0, unit, "10^9/L") == per_nanolitre


def test_an_exponent_needs_its_operator() -> None:
    # "109/L" is not taken for 10^9/L by the general rule (only the long-standing 10^9 forms are)
    assert normalise_unit("10^3/mL") == "tenpow3/mL"
    assert normalise_unit("103/mL") == "103/mL"


def test_units_that_do_not_convert_are_refused() -> None:
    with pytest.raises(UnitError):
        convert(1.0, "g/L", "10^9/L")
    with pytest.raises(UnitError):
        convert(1.0, "K/L", "10^9/L")  # kelvin per litre
