"""Known-answer tests for the pure clinical calculators: BSA, renal, RIFLE, SOFA, performance.

Expected values are recomputed here from the published constants, and a few are checked
against worked examples published elsewhere (cited next to them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from trialdesk.clinical import performance
from trialdesk.clinical.body import (
    HEIGHT_MAX_CM,
    HEIGHT_MIN_CM,
    WEIGHT_MAX_KG,
    BsaFormula,
    bsa,
    parse_formula,
    round_bsa,
)
from trialdesk.clinical.performance import (
    ECOG,
    KARNOFSKY,
    KARNOFSKY_TO_ECOG_CONVENTIONAL,
    LANSKY,
    PerformanceScale,
    age_appropriate_scale,
    describe,
    parse_scale,
    validate_ecog,
    validate_karnofsky,
    validate_lansky,
)
from trialdesk.clinical.renal import (
    NO_VASOPRESSORS,
    SOFA_COMPONENTS,
    RifleClass,
    SofaResult,
    Vasopressors,
    cockcroft_gault,
    creatinine_mg_dl_to_umol,
    creatinine_umol_to_mg_dl,
    rifle_class,
    schwartz_applicable,
    schwartz_bedside,
    sofa_score,
)
from trialdesk.errors import ClinicalError

# --- BSA ----------------------------------------------------------------------------

# Published equations, written out again here so the test does not reuse the code.
REFERENCE_BSA = {
    # Mosteller NEJM 1987;317:1098
    BsaFormula.MOSTELLER: lambda h, w: math.sqrt(h * w / 3600),
    # DuBois Arch Intern Med 1916;17:863
    BsaFormula.DUBOIS: lambda h, w: 0.007184 * h**0.725 * w**0.425,
    # Haycock J Pediatr 1978;93:62
    BsaFormula.HAYCOCK: lambda h, w: 0.024265 * h**0.3964 * w**0.5378,
    # Gehan & George Cancer Chemother Rep 1970;54:225
    BsaFormula.GEHAN_GEORGE: lambda h, w: 0.0235 * h**0.42246 * w**0.51456,
}
BODIES = [(180, 80), (170, 70), (110, 18), (50, 3.5), (150, 45.5), (20, 0.5), (272, 350)]


@pytest.mark.parametrize("formula", list(BsaFormula))
@pytest.mark.parametrize(("height", "weight"), BODIES)
def test_bsa_matches_published_equation(formula: BsaFormula, height: float, weight: float) -> None:
    assert bsa(height, weight, formula) == pytest.approx(
        REFERENCE_BSA[formula](height, weight), rel=1e-12
    )


@pytest.mark.parametrize(
    ("height", "weight", "formula", "expected", "places"),
    [
        # √(180 × 80 / 3600) = √4 exactly.
        (180, 80, BsaFormula.MOSTELLER, 2.00, 2),
        # A child of 110 cm and 18 kg: √(1980 / 3600) = √0.55 = 0.7416.
        (110, 18, BsaFormula.MOSTELLER, 0.7416, 4),
        # medicalequations.com/body-surface-area, worked example: 170 cm, 70 kg → 1.818 m².
        (170, 70, BsaFormula.MOSTELLER, 1.818, 3),
        # ehow.co.uk "calculate dosage based on height and weight": 61 in, 90.7 kg → 1.98 m².
        (61 * 2.54, 90.7, BsaFormula.MOSTELLER, 1.98, 2),
        # Same bodies under the other formulas (arithmetic from the published constants).
        (180, 80, BsaFormula.DUBOIS, 1.9964, 4),
        (180, 80, BsaFormula.HAYCOCK, 2.0066, 4),
        (180, 80, BsaFormula.GEHAN_GEORGE, 2.0095, 4),
        (110, 18, BsaFormula.DUBOIS, 0.7411, 4),
        (110, 18, BsaFormula.HAYCOCK, 0.7401, 4),
        (110, 18, BsaFormula.GEHAN_GEORGE, 0.7575, 4),
    ],
)
def test_bsa_worked_values(
    height: float, weight: float, formula: BsaFormula, expected: float, places: int
) -> None:
    assert round_bsa(bsa(height, weight, formula), places) == expected


def test_bsa_defaults_to_mosteller() -> None:
    assert bsa(110, 18) == bsa(110, 18, BsaFormula.MOSTELLER)


@pytest.mark.parametrize(
    ("name", "formula"),
    [
        ("mosteller", BsaFormula.MOSTELLER),
        ("DuBois", BsaFormula.DUBOIS),
        (" haycock ", BsaFormula.HAYCOCK),
        ("gehan_george", BsaFormula.GEHAN_GEORGE),
        ("Gehan-George", BsaFormula.GEHAN_GEORGE),
    ],
)
def test_bsa_formula_names(name: str, formula: BsaFormula) -> None:
    assert parse_formula(name) is formula
    assert bsa(150, 45, name) == bsa(150, 45, formula)


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [(1.005, 2, 1.01), (0.745, 2, 0.75), (0.744999, 2, 0.74), (2.0, 2, 2.0), (0.74162, 3, 0.742)],
)
def test_round_bsa_half_up(value: float, places: int, expected: float) -> None:
    assert round_bsa(value, places) == expected


@pytest.mark.parametrize(
    ("height", "weight", "field"),
    [
        (0, 70, "height_cm"),
        (-170, 70, "height_cm"),
        (HEIGHT_MIN_CM - 0.1, 3, "height_cm"),
        (HEIGHT_MAX_CM + 0.1, 70, "height_cm"),
        (1700, 70, "height_cm"),
        (math.nan, 70, "height_cm"),
        (math.inf, 70, "height_cm"),
        ("170", 70, "height_cm"),
        (True, 70, "height_cm"),
        (170, 0, "weight_kg"),
        (170, -70, "weight_kg"),
        (170, WEIGHT_MAX_KG + 0.1, "weight_kg"),
        (170, 400, "weight_kg"),
        (170, math.nan, "weight_kg"),
        (170, None, "weight_kg"),
    ],
)
def test_bsa_rejects_impossible_body_size(height: Any, weight: Any, field: str) -> None:
    with pytest.raises(ClinicalError) as caught:
        bsa(height, weight)
    assert caught.value.where == field
    assert field in str(caught.value)


def test_bsa_plausibility_bounds_are_inclusive() -> None:
    assert bsa(HEIGHT_MIN_CM, 0.5) > 0
    assert bsa(HEIGHT_MAX_CM, WEIGHT_MAX_KG) > 0


@pytest.mark.parametrize("formula", ["boyd", "", 3])
def test_bsa_rejects_unknown_formula(formula: Any) -> None:
    with pytest.raises(ClinicalError) as caught:
        bsa(170, 70, formula)
    assert caught.value.where == "formula"


@pytest.mark.parametrize(
    ("value", "places", "field"), [(0, 2, "bsa"), (-1.2, 2, "bsa"), (1.2, -1, "places")]
)
def test_round_bsa_rejects_bad_input(value: float, places: int, field: str) -> None:
    with pytest.raises(ClinicalError) as caught:
        round_bsa(value, places)
    assert caught.value.where == field


# --- Schwartz, Cockcroft–Gault, creatinine units ----------------------------------------------


@pytest.mark.parametrize(
    ("height", "creatinine", "expected"),
    [
        (120, 0.5, 99.12),  # 0.413 × 120 / 0.5
        (100, 0.4, 103.25),  # doctaverse.pages.dev bedside-Schwartz worked example: "103"
        (150, 1.0, 61.95),
        (75, 0.3, 103.25),
    ],
)
def test_schwartz_bedside(height: float, creatinine: float, expected: float) -> None:
    assert schwartz_bedside(height, creatinine) == pytest.approx(expected, abs=1e-9)
    assert schwartz_bedside(height, creatinine) == pytest.approx(0.413 * height / creatinine)


@pytest.mark.parametrize(
    ("height", "creatinine", "field"),
    [
        (0, 0.5, "height_cm"),
        (-120, 0.5, "height_cm"),
        (400, 0.5, "height_cm"),
        (120, 0, "creatinine_mg_dl"),
        (120, -0.5, "creatinine_mg_dl"),
        (120, math.nan, "creatinine_mg_dl"),
    ],
)
def test_schwartz_rejects_bad_input(height: float, creatinine: float, field: str) -> None:
    with pytest.raises(ClinicalError) as caught:
        schwartz_bedside(height, creatinine)
    assert caught.value.where == field
    assert field in str(caught.value)


@pytest.mark.parametrize(
    ("age", "applicable"),
    [
        (0, False),
        (0.99, False),
        (1, True),
        (8, True),
        (16, True),
        (16.99, True),
        (17, False),
        (40, False),
    ],
)
def test_schwartz_applicable_ages_1_to_16(age: float, applicable: bool) -> None:
    assert schwartz_applicable(age) is applicable


@pytest.mark.parametrize("age", [-1, math.nan, 200])
def test_schwartz_applicable_rejects_bad_age(age: float) -> None:
    with pytest.raises(ClinicalError) as caught:
        schwartz_applicable(age)
    assert caught.value.where == "age_years"


@pytest.mark.parametrize(
    ("age", "weight", "creatinine", "sex", "expected"),
    [
        # (140 − 40) × 70 / (72 × 1.0) = 97.22; × 0.85 = 82.64
        (40, 70, 1.0, "male", 97.2222),
        (40, 70, 1.0, "female", 82.6389),
        # (140 − 68) × 72 / (72 × 1.0) = 72 exactly; × 0.85 = 61.2
        (68, 72, 1.0, "M", 72.0),
        (68, 72, 1.0, "F", 61.2),
        # (140 − 80) × 60 / (72 × 2.0) = 25; × 0.85 = 21.25
        (80, 60, 2.0, "Male", 25.0),
        (80, 60, 2.0, " Female ", 21.25),
    ],
)
def test_cockcroft_gault(
    age: float, weight: float, creatinine: float, sex: str, expected: float
) -> None:
    assert cockcroft_gault(age, weight, creatinine, sex) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    ("age", "weight", "creatinine", "sex", "field"),
    [
        (-1, 70, 1.0, "male", "age_years"),
        (130, 70, 1.0, "male", "age_years"),
        (40, 0, 1.0, "male", "weight_kg"),
        (40, -70, 1.0, "male", "weight_kg"),
        (40, 400, 1.0, "male", "weight_kg"),
        (40, 70, 0, "male", "creatinine_mg_dl"),
        (40, 70, -1.0, "male", "creatinine_mg_dl"),
        (40, 70, 1.0, "x", "sex"),
        (40, 70, 1.0, "", "sex"),
        (40, 70, 1.0, None, "sex"),
    ],
)
def test_cockcroft_gault_rejects_bad_input(
    age: float, weight: float, creatinine: float, sex: Any, field: str
) -> None:
    with pytest.raises(ClinicalError) as caught:
        cockcroft_gault(age, weight, creatinine, sex)
    assert caught.value.where == field
    assert field in str(caught.value)


@pytest.mark.parametrize(
    ("umol", "mg_dl"),
    [(88.4, 1.0), (44.2, 0.5), (354, 354 / 88.4), (176.8, 2.0), (442, 5.0), (26.52, 0.3)],
)
def test_creatinine_conversion_both_ways(umol: float, mg_dl: float) -> None:
    assert creatinine_umol_to_mg_dl(umol) == pytest.approx(mg_dl)
    assert creatinine_mg_dl_to_umol(mg_dl) == pytest.approx(umol)
    assert creatinine_mg_dl_to_umol(creatinine_umol_to_mg_dl(umol)) == pytest.approx(umol)


@pytest.mark.parametrize(
    ("function", "field"),
    [
        (creatinine_umol_to_mg_dl, "creatinine_umol_l"),
        (creatinine_mg_dl_to_umol, "creatinine_mg_dl"),
    ],
)
@pytest.mark.parametrize("value", [0, -1.0, math.nan, "1.0"])
def test_creatinine_conversion_rejects_bad_input(
    function: Callable[[Any], float], field: str, value: Any
) -> None:
    with pytest.raises(ClinicalError) as caught:
        function(value)
    assert caught.value.where == field


# --- RIFLE (Bellomo, Crit Care 2004;8:R204) ---------------------------------------------

RISK, INJURY, FAILURE = RifleClass.RISK, RifleClass.INJURY, RifleClass.FAILURE


@pytest.mark.parametrize(
    ("baseline", "current", "gfr_fall", "expected"),
    [
        (1.0, 1.0, None, None),
        (1.0, 1.49, None, None),
        (1.0, 1.5, None, RISK),  # SCr × 1.5
        (1.0, 1.99, None, RISK),
        (1.0, 2.0, None, INJURY),  # SCr × 2
        (1.0, 2.99, None, INJURY),
        (1.0, 3.0, None, FAILURE),  # SCr × 3
        (0.4, 0.3, None, None),  # falling creatinine
        # SCr ≥ 4 mg/dL with an acute rise ≥ 0.5 mg/dL is Failure whatever the ratio.
        (3.5, 4.0, None, FAILURE),
        (3.6, 4.0, None, None),  # rise 0.4
        (3.5, 3.99, None, None),  # below 4
        (2.1, 4.0, None, FAILURE),  # ratio 1.9 alone would be Risk
        # GFR fall: > 25% Risk, > 50% Injury, > 75% Failure (strictly greater).
        (1.0, 1.0, 0.25, None),
        (1.0, 1.0, 0.26, RISK),
        (1.0, 1.0, 0.50, RISK),
        (1.0, 1.0, 0.51, INJURY),
        (1.0, 1.0, 0.75, INJURY),
        (1.0, 1.0, 0.76, FAILURE),
        (1.0, 1.0, -0.2, None),  # GFR rose
        # The worse of creatinine ratio and GFR fall decides.
        (1.0, 2.0, 0.3, INJURY),
        (1.0, 1.5, 0.8, FAILURE),
    ],
)
def test_rifle_by_creatinine_and_gfr(
    baseline: float, current: float, gfr_fall: float | None, expected: RifleClass | None
) -> None:
    result = rifle_class(baseline, current, gfr_fall_fraction=gfr_fall)
    assert result.category == expected
    assert result.by_creatinine == expected
    assert result.by_urine_output is None
    assert result.reason


@pytest.mark.parametrize(
    ("rate", "hours", "anuria", "expected"),
    [
        (0.6, 24, None, None),
        (0.5, 24, None, None),  # not < 0.5
        (0.49, 5.9, None, None),
        (0.49, 6, None, RISK),  # < 0.5 for 6 h
        (0.49, 11.9, None, RISK),
        (0.49, 12, None, INJURY),  # < 0.5 for 12 h
        (0.3, 24, None, INJURY),  # not < 0.3
        (0.29, 23.9, None, INJURY),
        (0.29, 24, None, FAILURE),  # < 0.3 for 24 h
        (0.0, 12, None, FAILURE),  # a rate of 0 is anuria
        (0.0, 11, None, RISK),  # anuria under 12 h is still < 0.5 for ≥ 6 h
        (None, None, 11.9, None),
        (None, None, 12, FAILURE),  # anuria for 12 h
    ],
)
def test_rifle_by_urine_output(
    rate: float | None, hours: float | None, anuria: float | None, expected: RifleClass | None
) -> None:
    result = rifle_class(
        1.0, 1.0, urine_output_ml_kg_h=rate, urine_hours=hours, anuria_hours=anuria
    )
    assert result.category == expected
    assert result.by_urine_output == expected
    assert result.by_creatinine is None


@pytest.mark.parametrize(
    ("current", "rate", "hours", "expected", "by_scr", "by_uo", "decided_by"),
    [
        (1.5, 0.4, 12, INJURY, RISK, INJURY, "urine output"),
        (3.0, 0.4, 6, FAILURE, FAILURE, RISK, "creatinine/GFR"),
        (2.0, 0.2, 24, FAILURE, INJURY, FAILURE, "urine output"),
        (2.0, 0.4, 12, INJURY, INJURY, INJURY, "both criteria"),
        (1.2, 0.4, 6, RISK, None, RISK, "urine output"),
    ],
)
def test_rifle_takes_the_worse_criterion(
    current: float,
    rate: float,
    hours: float,
    expected: RifleClass,
    by_scr: RifleClass | None,
    by_uo: RifleClass,
    decided_by: str,
) -> None:
    result = rifle_class(1.0, current, urine_output_ml_kg_h=rate, urine_hours=hours)
    assert (result.category, result.by_creatinine, result.by_urine_output) == (
        expected,
        by_scr,
        by_uo,
    )
    assert result.reason.startswith(f"{expected.value} by {decided_by}")


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (10, FAILURE),  # a short failure leaves the class to the criteria
        (28, FAILURE),  # exactly 4 weeks is not "> 4 weeks"
        (28.5, RifleClass.LOSS),
        (91, RifleClass.LOSS),
        (92, RifleClass.ESKD),  # > 3 months
        (400, RifleClass.ESKD),
    ],
)
def test_rifle_loss_and_eskd_need_failure_duration(days: float, expected: RifleClass) -> None:
    assert rifle_class(1.0, 3.5, failure_duration_days=days).category == expected


def test_rifle_classes_are_strings() -> None:
    result = rifle_class(1.0, 2.0)
    assert result.category == "injury"
    assert [c.value for c in RifleClass] == ["risk", "injury", "failure", "loss", "eskd"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"baseline_creatinine": 0, "current_creatinine": 1.0}, "baseline_creatinine"),
        ({"baseline_creatinine": -1.0, "current_creatinine": 1.0}, "baseline_creatinine"),
        ({"baseline_creatinine": 1.0, "current_creatinine": 0}, "current_creatinine"),
        (
            {"baseline_creatinine": 1.0, "current_creatinine": 1.0, "gfr_fall_fraction": 30},
            "gfr_fall_fraction",
        ),
        (
            {"baseline_creatinine": 1.0, "current_creatinine": 1.0, "urine_output_ml_kg_h": 0.4},
            "urine_hours",
        ),
        (
            {"baseline_creatinine": 1.0, "current_creatinine": 1.0, "urine_hours": 6},
            "urine_output_ml_kg_h",
        ),
        (
            {
                "baseline_creatinine": 1.0,
                "current_creatinine": 1.0,
                "urine_output_ml_kg_h": -0.1,
                "urine_hours": 6,
            },
            "urine_output_ml_kg_h",
        ),
        (
            {
                "baseline_creatinine": 1.0,
                "current_creatinine": 1.0,
                "urine_output_ml_kg_h": 0.1,
                "urine_hours": 0,
            },
            "urine_hours",
        ),
        (
            {"baseline_creatinine": 1.0, "current_creatinine": 1.0, "anuria_hours": -1},
            "anuria_hours",
        ),
        (
            {"baseline_creatinine": 1.0, "current_creatinine": 1.0, "failure_duration_days": -1},
            "failure_duration_days",
        ),
    ],
)
def test_rifle_rejects_bad_input(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ClinicalError) as caught:
        rifle_class(**kwargs)
    assert caught.value.where == field
    assert field in str(caught.value)


# --- SOFA (Vincent 1996; Sepsis-3 Table 1) ------------------------------------------------


def _component(result: SofaResult, name: str) -> int | None:
    return result.scores[name]


@pytest.mark.parametrize(
    ("ratio", "support", "expected"),
    [
        (450, None, 0),
        (400, None, 0),
        (399.9, None, 1),
        (300, None, 1),
        (299.9, None, 2),
        (200, None, 2),
        (199.9, None, None),  # < 200: support must be stated
        (199.9, False, 2),
        (150, True, 3),
        (100, True, 3),
        (99.9, True, 4),
        (50, False, 2),
        (350, True, 1),
    ],
)
def test_sofa_respiration(ratio: float, support: bool | None, expected: int | None) -> None:
    result = sofa_score(pao2_fio2_mmhg=ratio, respiratory_support=support)
    assert _component(result, "respiration") == expected


@pytest.mark.parametrize(
    ("platelets", "expected"),
    [
        (300, 0),
        (150, 0),
        (149.9, 1),
        (100, 1),
        (99.9, 2),
        (50, 2),
        (49.9, 3),
        (20, 3),
        (19.9, 4),
        (0, 4),
    ],
)
def test_sofa_coagulation(platelets: float, expected: int) -> None:
    assert _component(sofa_score(platelets_10e3_ul=platelets), "coagulation") == expected


@pytest.mark.parametrize(
    ("bilirubin", "expected"),
    [
        (0, 0),
        (1.19, 0),
        (1.2, 1),
        (1.9, 1),
        (1.95, 1),  # between the table's 1.9 and 2.0
        (2.0, 2),
        (5.9, 2),
        (5.95, 2),
        (6.0, 3),
        (11.9, 3),
        (11.95, 3),
        (12.0, 4),  # 12.0 mg/dL ≈ 205 µmol/L > 204
        (20, 4),
    ],
)
def test_sofa_liver(bilirubin: float, expected: int) -> None:
    assert _component(sofa_score(bilirubin_mg_dl=bilirubin), "liver") == expected


@pytest.mark.parametrize(
    ("map_mmhg", "drugs", "expected"),
    [
        (70, NO_VASOPRESSORS, 0),
        (90, NO_VASOPRESSORS, 0),
        (69.9, NO_VASOPRESSORS, 1),
        (80, Vasopressors(dobutamine=2.5), 2),
        (80, Vasopressors(dopamine=3), 2),
        (80, Vasopressors(dopamine=5), 2),  # Vincent 1996 "≤ 5"
        (80, Vasopressors(dopamine=5.05), 3),
        (80, Vasopressors(dopamine=15), 3),
        (80, Vasopressors(dopamine=15.1), 4),
        (80, Vasopressors(adrenaline=0.05), 3),
        (80, Vasopressors(adrenaline=0.1), 3),
        (80, Vasopressors(adrenaline=0.11), 4),
        (80, Vasopressors(noradrenaline=0.1), 3),
        (80, Vasopressors(noradrenaline=0.11), 4),
        (80, Vasopressors(dopamine=3, noradrenaline=0.2), 4),  # worst agent decides
        (None, Vasopressors(noradrenaline=0.05), 3),  # vasopressors alone are enough
        (55, Vasopressors(dobutamine=5), 2),  # vasopressors outrank a low MAP
        (80, None, None),  # vasopressor use unknown
        (None, NO_VASOPRESSORS, None),  # MAP unknown, nothing given
        (None, None, None),
    ],
)
def test_sofa_cardiovascular(
    map_mmhg: float | None, drugs: Vasopressors | None, expected: int | None
) -> None:
    result = sofa_score(map_mmhg=map_mmhg, vasopressors=drugs)
    assert _component(result, "cardiovascular") == expected


@pytest.mark.parametrize(
    ("gcs", "expected"),
    [(15, 0), (14, 1), (13, 1), (12, 2), (10, 2), (9, 3), (6, 3), (5, 4), (3, 4)],
)
def test_sofa_cns(gcs: int, expected: int) -> None:
    assert _component(sofa_score(gcs=gcs), "cns") == expected


@pytest.mark.parametrize(
    ("creatinine", "urine", "expected"),
    [
        (0.5, None, 0),
        (1.19, None, 0),
        (1.2, None, 1),
        (1.9, None, 1),
        (1.95, None, 1),
        (2.0, None, 2),
        (3.4, None, 2),
        (3.45, None, 2),
        (3.5, None, 3),
        (4.9, None, 3),
        (4.95, None, 3),  # still "3.5–4.9"; the next band starts at 5.0
        (5.0, None, 4),  # 5.0 mg/dL = 442 µmol/L > 440
        (8.0, None, 4),
        (None, 1500, 0),
        (None, 500, 0),
        (None, 499, 3),
        (None, 200, 3),
        (None, 199, 4),
        (None, 0, 4),
        (1.0, 300, 3),  # the worse of creatinine and urine output
        (5.0, 600, 4),
        (2.5, 150, 4),
        (None, None, None),
    ],
)
def test_sofa_renal(creatinine: float | None, urine: float | None, expected: int | None) -> None:
    result = sofa_score(creatinine_mg_dl=creatinine, urine_output_ml_day=urine)
    assert _component(result, "renal") == expected


def test_sofa_complete_total() -> None:
    result = sofa_score(
        pao2_fio2_mmhg=180,
        respiratory_support=True,  # 3
        platelets_10e3_ul=45,  # 3
        bilirubin_mg_dl=2.4,  # 2
        map_mmhg=62,
        vasopressors=Vasopressors(noradrenaline=0.15),  # 4
        gcs=11,  # 2
        creatinine_mg_dl=1.6,  # 1
    )
    assert result.complete
    assert result.missing == ()
    assert result.total == 15
    assert result.upper_bound == 15
    assert result.scores == {
        "respiration": 3,
        "coagulation": 3,
        "liver": 2,
        "cardiovascular": 4,
        "cns": 2,
        "renal": 1,
    }


def test_sofa_all_missing_is_not_zero() -> None:
    result = sofa_score()
    assert result.missing == SOFA_COMPONENTS
    assert not result.complete
    assert result.total == 0
    assert result.upper_bound == 24
    assert all(component.reason for component in result.components)


def test_sofa_missing_components_are_listed_not_counted() -> None:
    result = sofa_score(platelets_10e3_ul=90, gcs=14, pao2_fio2_mmhg=150)
    assert result.missing == ("respiration", "liver", "cardiovascular", "renal")
    assert result.scores["respiration"] is None
    assert not result.complete
    assert result.total == 3  # a lower bound: coagulation 2 + CNS 1
    assert result.upper_bound == 3 + 4 * 4


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"pao2_fio2_mmhg": 0}, "pao2_fio2_mmhg"),
        ({"pao2_fio2_mmhg": -100}, "pao2_fio2_mmhg"),
        ({"pao2_fio2_mmhg": 150, "respiratory_support": "yes"}, "respiratory_support"),
        ({"platelets_10e3_ul": -1}, "platelets_10e3_ul"),
        ({"bilirubin_mg_dl": -0.1}, "bilirubin_mg_dl"),
        ({"map_mmhg": 0}, "map_mmhg"),
        ({"map_mmhg": -60}, "map_mmhg"),
        ({"vasopressors": {"dopamine": 5}}, "vasopressors"),
        ({"gcs": 2}, "gcs"),
        ({"gcs": 16}, "gcs"),
        ({"gcs": 0}, "gcs"),
        ({"gcs": 14.5}, "gcs"),
        ({"gcs": True}, "gcs"),
        ({"creatinine_mg_dl": 0}, "creatinine_mg_dl"),
        ({"creatinine_mg_dl": -1.0}, "creatinine_mg_dl"),
        ({"urine_output_ml_day": -5}, "urine_output_ml_day"),
    ],
)
def test_sofa_rejects_bad_input(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ClinicalError) as caught:
        sofa_score(**kwargs)
    assert caught.value.where == field
    assert field in str(caught.value)


@pytest.mark.parametrize("agent", ["dopamine", "dobutamine", "adrenaline", "noradrenaline"])
@pytest.mark.parametrize("dose", [-0.01, math.nan])
def test_vasopressor_doses_are_checked(agent: str, dose: float) -> None:
    with pytest.raises(ClinicalError) as caught:
        Vasopressors(**{agent: dose})
    assert caught.value.where == f"vasopressors.{agent}"


# --- performance scales ---------------------------------------------------------------------


@pytest.mark.parametrize("score", range(0, 101, 10))
def test_lansky_and_karnofsky_accept_multiples_of_ten(score: int) -> None:
    assert validate_lansky(score) == score
    assert validate_karnofsky(score) == score
    assert validate_karnofsky(float(score)) == score


@pytest.mark.parametrize("score", [-10, 5, 75, 105, 110, 70.5, math.nan, True, "70", None])
@pytest.mark.parametrize(
    ("validator", "field"), [(validate_lansky, "lansky"), (validate_karnofsky, "karnofsky")]
)
def test_lansky_and_karnofsky_reject_bad_scores(
    validator: Callable[[Any], int], field: str, score: Any
) -> None:
    with pytest.raises(ClinicalError) as caught:
        validator(score)
    assert caught.value.where == field
    assert field in str(caught.value)


@pytest.mark.parametrize("grade", range(6))
def test_ecog_accepts_0_to_5(grade: int) -> None:
    assert validate_ecog(grade) == grade


@pytest.mark.parametrize("grade", [-1, 6, 10, 1.5, True, "1", None])
def test_ecog_rejects_bad_grades(grade: Any) -> None:
    with pytest.raises(ClinicalError) as caught:
        validate_ecog(grade)
    assert caught.value.where == "ecog"


def test_scale_tables_are_complete() -> None:
    assert sorted(LANSKY) == list(range(0, 101, 10))
    assert sorted(KARNOFSKY) == list(range(0, 101, 10))
    assert sorted(ECOG) == list(range(6))


@pytest.mark.parametrize(
    ("scale", "score", "expected"),
    [
        ("lansky", 100, "Fully active, normal"),
        ("lansky", 0, "Unresponsive"),
        ("karnofsky", 0, "Dead"),
        ("karnofsky", 10, "Moribund; fatal processes progressing rapidly"),
        ("ecog", 5, "Dead"),
        ("WHO", 5, "Dead"),
        ("zubrod", 0, ECOG[0]),
        (PerformanceScale.LANSKY, 40, "Mostly in bed; participates in quiet activities"),
    ],
)
def test_describe(scale: PerformanceScale | str, score: int, expected: str) -> None:
    assert describe(scale, score) == expected


def test_describe_validates_the_score() -> None:
    with pytest.raises(ClinicalError) as caught:
        describe("karnofsky", 75)
    assert caught.value.where == "karnofsky"


@pytest.mark.parametrize("scale", ["kps", "", 3])
def test_unknown_scale(scale: Any) -> None:
    with pytest.raises(ClinicalError) as caught:
        parse_scale(scale)
    assert caught.value.where == "scale"


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (0, "lansky"),
        (1, "lansky"),
        (15, "lansky"),
        (15.99, "lansky"),
        (16, "karnofsky"),
        (45, "karnofsky"),
    ],
)
def test_age_appropriate_scale_lansky_under_16(age: float, expected: str) -> None:
    assert age_appropriate_scale(age) == expected


def test_age_appropriate_scale_cut_off_belongs_to_the_protocol() -> None:
    assert age_appropriate_scale(16.5, lansky_below_years=17) == "lansky"


@pytest.mark.parametrize("age", [-1, math.nan, "10"])
def test_age_appropriate_scale_rejects_bad_age(age: Any) -> None:
    with pytest.raises(ClinicalError) as caught:
        age_appropriate_scale(age)
    assert caught.value.where == "age_years"


def test_karnofsky_ecog_mapping_is_documentation_only() -> None:
    mapping = KARNOFSKY_TO_ECOG_CONVENTIONAL
    assert mapping.conventional is True
    assert "no formal published mapping" in mapping.note
    assert sorted(mapping.table) == sorted(KARNOFSKY)
    assert set(mapping.table.values()) == set(ECOG)
    assert mapping.table[70] == 1 and mapping.table[60] == 2
    # No function converts between the scales for a decision.
    assert not [
        name
        for name in dir(performance)
        if "to_ecog" in name and callable(getattr(performance, name))
    ]
