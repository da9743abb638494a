"""Known-answer tests for CTCAE v5.0 grading (FACTS.md §3; admiral ncictcaev5.json edges)."""

from __future__ import annotations

import doctest
import math

import pytest

from trialdesk.clinical import ctcae
from trialdesk.clinical.ctcae import (
    canonical_term,
    grade_definitions,
    grade_fever,
    grade_lab,
    lab_terms,
    term_definition,
    validate_grade,
)
from trialdesk.errors import ClinicalError, SafetyError

NEUTROPHILS = "Neutrophil count decreased"
PLATELETS = "Platelet count decreased"
ALT = "Alanine aminotransferase increased"
AST = "Aspartate aminotransferase increased"
ALP = "Alkaline phosphatase increased"
BILIRUBIN = "Blood bilirubin increased"
CREATININE = "Creatinine increased"
APTT = "Activated partial thromboplastin time prolonged"


def test_doctests() -> None:
    assert doctest.testmod(ctcae).failed == 0


# --------------------------------------------------------------------------- lab bands
# Each row: term, value, unit, keyword inputs, expected grade. Rows walk every edge:
# just inside, on, and just outside.

LAB_ROWS = [
    # Neutrophils, 10^9/L, LLN 2.0: G1 [1.5, LLN), G2 [1.0, 1.5), G3 [0.5, 1.0), G4 <0.5
    (NEUTROPHILS, 2.1, "10^9/L", {"lln": 2.0}, 0),
    (NEUTROPHILS, 2.0, "10^9/L", {"lln": 2.0}, 0),
    (NEUTROPHILS, 1.99, "10^9/L", {"lln": 2.0}, 1),
    (NEUTROPHILS, 1.5, "10^9/L", {"lln": 2.0}, 1),
    (NEUTROPHILS, 1.49, "10^9/L", {"lln": 2.0}, 2),
    (NEUTROPHILS, 1.0, "10^9/L", {"lln": 2.0}, 2),
    (NEUTROPHILS, 0.99, "10^9/L", {"lln": 2.0}, 3),
    (NEUTROPHILS, 0.5, "10^9/L", {"lln": 2.0}, 3),
    (NEUTROPHILS, 0.49, "10^9/L", {"lln": 2.0}, 4),
    (NEUTROPHILS, 0, "10^9/L", {"lln": 2.0}, 4),
    # the same edges in cells/mm3 (x 10^-3) and other spellings of the unit
    (NEUTROPHILS, 1500, "/mm3", {"lln": 2000}, 1),
    (NEUTROPHILS, 1499, "/mm3", {"lln": 2000}, 2),
    (NEUTROPHILS, 1000, "cells/uL", {"lln": 2000}, 2),
    (NEUTROPHILS, 999, "/µL", {"lln": 2000}, 3),
    (NEUTROPHILS, 500, "/mm3", {"lln": 2000}, 3),
    (NEUTROPHILS, 499, "/mm3", {"lln": 2000}, 4),
    (NEUTROPHILS, 0.8, "×10^9/L", {"lln": 2.0}, 3),
    (NEUTROPHILS, 0.8, "10^3/uL", {"lln": 2.0}, 3),
    # an LLN below 1.5 leaves no grade 1 band: the absolute grade 2 band applies
    (NEUTROPHILS, 1.45, "10^9/L", {"lln": 1.4}, 2),
    # absolute bands need no LLN
    (NEUTROPHILS, 1.2, "10^9/L", {}, 2),
    (NEUTROPHILS, 0.3, "10^9/L", {}, 4),
    # Platelets, 10^9/L, LLN 150: G1 [75, LLN), G2 [50, 75), G3 [25, 50), G4 <25
    (PLATELETS, 150, "10^9/L", {"lln": 150}, 0),
    (PLATELETS, 149.9, "10^9/L", {"lln": 150}, 1),
    (PLATELETS, 75, "10^9/L", {"lln": 150}, 1),
    (PLATELETS, 74.9, "10^9/L", {"lln": 150}, 2),
    (PLATELETS, 50, "10^9/L", {"lln": 150}, 2),
    (PLATELETS, 49.9, "10^9/L", {"lln": 150}, 3),
    (PLATELETS, 25, "10^9/L", {"lln": 150}, 3),
    (PLATELETS, 24.9, "10^9/L", {"lln": 150}, 4),
    (PLATELETS, 75000, "/mm3", {"lln": 150000}, 1),
    (PLATELETS, 74999, "/mm3", {"lln": 150000}, 2),
    (PLATELETS, 24999, "/mm3", {"lln": 150000}, 4),
    # Anemia, g/L, LLN 120: G1 [100, LLN), G2 [80, 100), G3 <80
    ("Anemia", 121, "g/L", {"lln": 120}, 0),
    ("Anemia", 120, "g/L", {"lln": 120}, 0),
    ("Anemia", 119, "g/L", {"lln": 120}, 1),
    ("Anemia", 100, "g/L", {"lln": 120}, 1),
    ("Anemia", 99.9, "g/L", {"lln": 120}, 2),
    ("Anemia", 80, "g/L", {"lln": 120}, 2),
    ("Anemia", 79.9, "g/L", {"lln": 120}, 3),
    ("Anemia", 40, "g/L", {"lln": 120}, 3),
    # Anemia in g/dL (x 10): 10.0 g/dL is grade 1, 8.0 g/dL grade 2
    ("Anemia", 12.0, "g/dL", {"lln": 12.0}, 0),
    ("Anemia", 10.0, "g/dL", {"lln": 12.0}, 1),
    ("Anemia", 9.9, "g/dL", {"lln": 12.0}, 2),
    ("Anemia", 8.0, "g/dL", {"lln": 12.0}, 2),
    ("Anemia", 7.9, "g/dL", {"lln": 12.0}, 3),
    # ALT, normal baseline (ULN 40, baseline 30): >1-3, >3-5, >5-20, >20 x ULN
    (ALT, 40, "U/L", {"uln": 40, "baseline": 30}, 0),
    (ALT, 40.1, "U/L", {"uln": 40, "baseline": 30}, 1),
    (ALT, 120, "U/L", {"uln": 40, "baseline": 30}, 1),
    (ALT, 120.1, "U/L", {"uln": 40, "baseline": 30}, 2),
    (ALT, 200, "U/L", {"uln": 40, "baseline": 30}, 2),
    (ALT, 200.1, "U/L", {"uln": 40, "baseline": 30}, 3),
    (ALT, 800, "U/L", {"uln": 40, "baseline": 30}, 3),
    (ALT, 800.1, "U/L", {"uln": 40, "baseline": 30}, 4),
    # a baseline exactly at ULN is normal
    (ALT, 41, "U/L", {"uln": 40, "baseline": 40}, 1),
    # ALT, abnormal baseline (ULN 40, baseline 60): 1.5-3, >3-5, >5-20, >20 x baseline
    (ALT, 50, "U/L", {"uln": 40, "baseline": 60}, 0),
    (ALT, 89.9, "U/L", {"uln": 40, "baseline": 60}, 0),
    (ALT, 90, "U/L", {"uln": 40, "baseline": 60}, 1),
    (ALT, 180, "U/L", {"uln": 40, "baseline": 60}, 1),
    (ALT, 180.1, "U/L", {"uln": 40, "baseline": 60}, 2),
    (ALT, 300, "U/L", {"uln": 40, "baseline": 60}, 2),
    (ALT, 300.1, "U/L", {"uln": 40, "baseline": 60}, 3),
    (ALT, 1200, "U/L", {"uln": 40, "baseline": 60}, 3),
    (ALT, 1200.1, "U/L", {"uln": 40, "baseline": 60}, 4),
    # AST shares the rule
    (AST, 96, "IU/L", {"uln": 32, "baseline": 20}, 1),
    (AST, 96.1, "IU/L", {"uln": 32, "baseline": 20}, 2),
    (AST, 74.9, "U/L", {"uln": 32, "baseline": 50}, 0),
    (AST, 75, "U/L", {"uln": 32, "baseline": 50}, 1),
    # ALP, normal baseline (ULN 100): >1-2.5, >2.5-5, >5-20, >20 x ULN
    (ALP, 100, "U/L", {"uln": 100, "baseline": 80}, 0),
    (ALP, 100.1, "U/L", {"uln": 100, "baseline": 80}, 1),
    (ALP, 250, "U/L", {"uln": 100, "baseline": 80}, 1),
    (ALP, 250.1, "U/L", {"uln": 100, "baseline": 80}, 2),
    (ALP, 500, "U/L", {"uln": 100, "baseline": 80}, 2),
    (ALP, 500.1, "U/L", {"uln": 100, "baseline": 80}, 3),
    (ALP, 2000, "U/L", {"uln": 100, "baseline": 80}, 3),
    (ALP, 2000.1, "U/L", {"uln": 100, "baseline": 80}, 4),
    # ALP, abnormal baseline (ULN 100, baseline 200): 2.0-2.5, >2.5-5, >5-20, >20 x baseline
    (ALP, 399.9, "U/L", {"uln": 100, "baseline": 200}, 0),
    (ALP, 400, "U/L", {"uln": 100, "baseline": 200}, 1),
    (ALP, 500, "U/L", {"uln": 100, "baseline": 200}, 1),
    (ALP, 500.1, "U/L", {"uln": 100, "baseline": 200}, 2),
    (ALP, 1000, "U/L", {"uln": 100, "baseline": 200}, 2),
    (ALP, 1000.1, "U/L", {"uln": 100, "baseline": 200}, 3),
    (ALP, 4000, "U/L", {"uln": 100, "baseline": 200}, 3),
    (ALP, 4000.1, "U/L", {"uln": 100, "baseline": 200}, 4),
    # Bilirubin, normal baseline (ULN 1.2 mg/dL): >1-1.5, >1.5-3, >3-10, >10 x ULN.
    # 1.8 = 1.5 x 1.2 exactly: decimal arithmetic keeps it grade 1.
    (BILIRUBIN, 1.2, "mg/dL", {"uln": 1.2, "baseline": 0.8}, 0),
    (BILIRUBIN, 1.21, "mg/dL", {"uln": 1.2, "baseline": 0.8}, 1),
    (BILIRUBIN, 1.8, "mg/dL", {"uln": 1.2, "baseline": 0.8}, 1),
    (BILIRUBIN, 1.81, "mg/dL", {"uln": 1.2, "baseline": 0.8}, 2),
    (BILIRUBIN, 3.6, "mg/dL", {"uln": 1.2, "baseline": 0.8}, 2),
    (BILIRUBIN, 3.61, "mg/dL", {"uln": 1.2, "baseline": 0.8}, 3),
    (BILIRUBIN, 12.0, "mg/dL", {"uln": 1.2, "baseline": 0.8}, 3),
    (BILIRUBIN, 12.01, "mg/dL", {"uln": 1.2, "baseline": 0.8}, 4),
    (BILIRUBIN, 31.5, "µmol/L", {"uln": 21, "baseline": 10}, 1),
    (BILIRUBIN, 31.6, "umol/L", {"uln": 21, "baseline": 10}, 2),
    # Bilirubin, abnormal baseline (ULN 1.2, baseline 2.0): >1-1.5, >1.5-3, >3-10, >10 x base
    (BILIRUBIN, 2.0, "mg/dL", {"uln": 1.2, "baseline": 2.0}, 0),
    (BILIRUBIN, 2.01, "mg/dL", {"uln": 1.2, "baseline": 2.0}, 1),
    (BILIRUBIN, 3.0, "mg/dL", {"uln": 1.2, "baseline": 2.0}, 1),
    (BILIRUBIN, 3.01, "mg/dL", {"uln": 1.2, "baseline": 2.0}, 2),
    (BILIRUBIN, 6.0, "mg/dL", {"uln": 1.2, "baseline": 2.0}, 2),
    (BILIRUBIN, 6.01, "mg/dL", {"uln": 1.2, "baseline": 2.0}, 3),
    (BILIRUBIN, 20.0, "mg/dL", {"uln": 1.2, "baseline": 2.0}, 3),
    (BILIRUBIN, 20.01, "mg/dL", {"uln": 1.2, "baseline": 2.0}, 4),
    # Creatinine, x ULN (ULN 1.0, baseline = ULN so the x baseline rule stays lower)
    (CREATININE, 1.0, "mg/dL", {"uln": 1.0, "baseline": 1.0}, 0),
    (CREATININE, 1.01, "mg/dL", {"uln": 1.0, "baseline": 1.0}, 1),
    (CREATININE, 1.5, "mg/dL", {"uln": 1.0, "baseline": 1.0}, 1),
    (CREATININE, 1.51, "mg/dL", {"uln": 1.0, "baseline": 1.0}, 2),
    (CREATININE, 3.0, "mg/dL", {"uln": 1.0, "baseline": 1.0}, 2),
    (CREATININE, 3.01, "mg/dL", {"uln": 1.0, "baseline": 1.0}, 3),
    (CREATININE, 6.0, "mg/dL", {"uln": 1.0, "baseline": 1.0}, 3),
    (CREATININE, 6.01, "mg/dL", {"uln": 1.0, "baseline": 1.0}, 4),
    # Creatinine, x baseline (ULN 1.0, baseline 0.3): >1.5-3 -> 2, >3 -> 3; worse counts
    (CREATININE, 0.45, "mg/dL", {"uln": 1.0, "baseline": 0.3}, 0),
    (CREATININE, 0.46, "mg/dL", {"uln": 1.0, "baseline": 0.3}, 2),
    (CREATININE, 0.9, "mg/dL", {"uln": 1.0, "baseline": 0.3}, 2),
    (CREATININE, 0.91, "mg/dL", {"uln": 1.0, "baseline": 0.3}, 3),
    (CREATININE, 6.1, "mg/dL", {"uln": 1.0, "baseline": 0.3}, 4),
    # a child: ULN 0.4, baseline 0.3 -> 0.5 is 1.25 x ULN (G1) but 1.67 x baseline (G2)
    (CREATININE, 0.5, "mg/dL", {"uln": 0.4, "baseline": 0.3}, 2),
    (CREATININE, 133, "µmol/L", {"uln": 88, "baseline": 88}, 2),
    # Hyponatremia, LLN 135: G1 [130, LLN); 125-129 G2 asymptomatic / G3 symptomatic;
    # 120-124 G3; <120 G4
    ("Hyponatremia", 135, "mmol/L", {"lln": 135}, 0),
    ("Hyponatremia", 134, "mmol/L", {"lln": 135}, 1),
    ("Hyponatremia", 130, "mmol/L", {"lln": 135}, 1),
    ("Hyponatremia", 129, "mmol/L", {"lln": 135, "symptomatic": False}, 2),
    ("Hyponatremia", 129, "mmol/L", {"lln": 135, "symptomatic": True}, 3),
    ("Hyponatremia", 125, "mmol/L", {"lln": 135, "symptomatic": False}, 2),
    ("Hyponatremia", 125, "mEq/L", {"lln": 135, "symptomatic": True}, 3),
    ("Hyponatremia", 124.9, "mmol/L", {"lln": 135, "symptomatic": False}, 3),
    ("Hyponatremia", 122, "mmol/L", {"lln": 135}, 3),
    ("Hyponatremia", 120, "mmol/L", {"lln": 135}, 3),
    ("Hyponatremia", 119.9, "mmol/L", {"lln": 135}, 4),
    # Hypokalemia, LLN 3.5: [3.0, LLN) G1 asymptomatic / G2 symptomatic; [2.5, 3.0) G3
    ("Hypokalemia", 3.5, "mmol/L", {"lln": 3.5}, 0),
    ("Hypokalemia", 3.4, "mmol/L", {"lln": 3.5, "symptomatic": False}, 1),
    ("Hypokalemia", 3.4, "mmol/L", {"lln": 3.5, "symptomatic": True}, 2),
    ("Hypokalemia", 3.0, "mmol/L", {"lln": 3.5, "symptomatic": False}, 1),
    ("Hypokalemia", 2.99, "mmol/L", {"lln": 3.5}, 3),
    ("Hypokalemia", 2.5, "mmol/L", {"lln": 3.5}, 3),
    ("Hypokalemia", 2.49, "mmol/L", {"lln": 3.5}, 4),
    # aPTT, ULN 35 s: >1-1.5, >1.5-2.5, >2.5 x ULN
    (APTT, 35, "s", {"uln": 35}, 0),
    (APTT, 35.1, "s", {"uln": 35}, 1),
    (APTT, 52.5, "s", {"uln": 35}, 1),
    (APTT, 52.6, "s", {"uln": 35}, 2),
    (APTT, 87.5, "s", {"uln": 35}, 2),
    (APTT, 87.6, "sec", {"uln": 35}, 3),
    # INR not on anticoagulation (absolute): >1.2-1.5, >1.5-2.5, >2.5
    ("INR increased", 1.2, "", {"anticoagulation": False}, 0),
    ("INR increased", 1.21, "", {"anticoagulation": False}, 1),
    ("INR increased", 1.5, "ratio", {"anticoagulation": False}, 1),
    ("INR increased", 1.51, "1", {"anticoagulation": False}, 2),
    ("INR increased", 2.5, "", {"anticoagulation": False}, 2),
    ("INR increased", 2.51, "", {"anticoagulation": False}, 3),
]


@pytest.mark.parametrize(("term", "value", "unit", "inputs", "expected"), LAB_ROWS)
def test_lab_grade_bands(
    term: str, value: float, unit: str, inputs: dict[str, float | bool], expected: int
) -> None:
    result = grade_lab(term, value, unit, **inputs)  # type: ignore[arg-type]
    assert result.grade == expected, result.rule
    assert result.possible_grades == (expected,)
    assert result.ctcae_version == "5.0"
    assert result.missing == ()
    assert result.term == term


# Each row: term, value, unit, keyword inputs, grades still possible, inputs named missing.
UNKNOWN_ROWS = [
    # grade 1 needs the LLN; grades 2-4 do not
    (NEUTROPHILS, 1.6, "10^9/L", {}, (0, 1), ("lln",)),
    (NEUTROPHILS, 5.0, "10^9/L", {}, (0, 1), ("lln",)),
    (PLATELETS, 100, "10^9/L", {}, (0, 1), ("lln",)),
    ("Anemia", 110, "g/L", {}, (0, 1), ("lln",)),
    # x ULN terms without ULN
    (ALT, 100, "U/L", {"baseline": 30}, (0, 1, 2, 3, 4), ("uln",)),
    (APTT, 40, "s", {}, (0, 1, 2, 3), ("uln",)),
    (BILIRUBIN, 2.0, "mg/dL", {}, (0, 1, 2, 3, 4), ("baseline", "uln")),
    # baseline missing: an abnormal baseline could only lower the grade
    (ALT, 100, "U/L", {"uln": 40}, (0, 1), ("baseline",)),
    (ALT, 250, "U/L", {"uln": 40}, (0, 1, 2, 3), ("baseline",)),
    (ALT, 900, "U/L", {"uln": 40}, (0, 1, 2, 3, 4), ("baseline",)),
    (ALP, 300, "U/L", {"uln": 100}, (0, 1, 2), ("baseline",)),
    (BILIRUBIN, 1.5, "mg/dL", {"uln": 1.2}, (0, 1), ("baseline",)),
    # creatinine: the x baseline rule can raise the grade above the x ULN one
    (CREATININE, 0.3, "mg/dL", {"uln": 0.4}, (0, 2, 3), ("baseline",)),
    (CREATININE, 1.8, "mg/dL", {"uln": 1.2}, (1, 2, 3), ("baseline",)),
    (CREATININE, 1.0, "mg/dL", {"baseline": 0.3}, (3, 4), ("uln",)),
    # symptoms decide
    ("Hyponatremia", 127, "mmol/L", {"lln": 135}, (2, 3), ("symptomatic",)),
    ("Hyponatremia", 129.9, "mmol/L", {"lln": 135}, (2, 3), ("symptomatic",)),
    ("Hypokalemia", 3.0, "mmol/L", {"lln": 3.5}, (1, 2), ("symptomatic",)),
    ("Hyponatremia", 132, "mmol/L", {}, (0, 1), ("lln",)),
    ("Hypokalemia", 3.2, "mmol/L", {}, (0, 1, 2), ("lln", "symptomatic")),
]


@pytest.mark.parametrize(("term", "value", "unit", "inputs", "possible", "missing"), UNKNOWN_ROWS)
def test_lab_grade_unknown_when_an_input_is_missing(
    term: str,
    value: float,
    unit: str,
    inputs: dict[str, float],
    possible: tuple[int, ...],
    missing: tuple[str, ...],
) -> None:
    result = grade_lab(term, value, unit, **inputs)  # type: ignore[arg-type]
    assert result.grade is None
    assert not result.known
    assert result.possible_grades == possible
    assert result.missing == missing
    assert "one of " + ", ".join(map(str, possible)) in result.rule
    for name in missing:
        assert name in result.rule


@pytest.mark.parametrize(
    ("term", "value", "unit", "inputs", "expected"),
    [
        # the other inputs already settle the grade, so nothing is missing
        (ALT, 35, "U/L", {"uln": 40}, 0),
        (CREATININE, 3.5, "mg/dL", {"uln": 1.0}, 3),
        (CREATININE, 6.1, "mg/dL", {"uln": 1.0}, 4),
        ("Hyponatremia", 127, "mmol/L", {"symptomatic": False}, 2),
        ("Hypokalemia", 2.7, "mmol/L", {}, 3),
    ],
)
def test_lab_grade_known_without_unneeded_inputs(
    term: str, value: float, unit: str, inputs: dict[str, float | bool], expected: int
) -> None:
    assert grade_lab(term, value, unit, **inputs).grade == expected  # type: ignore[arg-type]


def test_lab_result_carries_rule_source_and_canonical_unit() -> None:
    result = grade_lab(NEUTROPHILS, 800, "/mm3", lln=1800)
    assert (result.value, result.unit) == (0.8, "10^9/L")
    assert "<1000 - 500/mm3" in result.rule and "[0.5, 1.0)" in result.rule
    assert "CTCAE v5.0" in result.source
    abnormal = grade_lab(ALT, 200, "U/L", uln=40, baseline=60)
    assert "baseline abnormal" in abnormal.rule
    inr = grade_lab("INR increased", 1.3, "")
    assert "anticoagulation" in inr.rule


def test_lab_aliases_return_the_ctcae_name() -> None:
    assert grade_lab("ALT increased", 130, "U/L", uln=40, baseline=30).term == ALT
    assert grade_lab("aptt prolonged", 40, "s", uln=35).term == APTT


def test_v6_thresholds_are_not_used() -> None:
    # v6.0 would make 1200/mm3 grade 1 and call platelets "Thrombocytopenia".
    assert grade_lab(NEUTROPHILS, 1200, "/mm3", lln=2000).grade == 2
    assert canonical_term("Thrombocytopenia") is None


@pytest.mark.parametrize(
    ("call", "where"),
    [
        (lambda: grade_lab("Thrombocytopenia", 40, "10^9/L"), "term"),
        (lambda: grade_lab(NEUTROPHILS, 1.0, "g/L"), "unit"),
        (lambda: grade_lab(NEUTROPHILS, 1.0, "mg/dL"), "unit"),
        (lambda: grade_lab("Anemia", 6.0, "umol", lln=7.5), "unit"),
        (lambda: grade_lab(ALT, 50, "mg/dL", uln=40), "unit"),
        (lambda: grade_lab(NEUTROPHILS, -0.1, "10^9/L"), "value"),
        (lambda: grade_lab(NEUTROPHILS, math.nan, "10^9/L"), "value"),
        (lambda: grade_lab(NEUTROPHILS, math.inf, "10^9/L"), "value"),
        (lambda: grade_lab(NEUTROPHILS, True, "10^9/L"), "value"),
        (lambda: grade_lab(NEUTROPHILS, "1.2", "10^9/L"), "value"),  # type: ignore[arg-type]
        (lambda: grade_lab(ALT, 50, "U/L", uln=0), "uln"),
        (lambda: grade_lab(NEUTROPHILS, 1.0, "10^9/L", lln=-2), "lln"),
        (lambda: grade_lab(ALT, 50, "U/L", uln=40, baseline=0), "baseline"),
    ],
)
def test_lab_bad_input_is_refused_naming_the_field(call: object, where: str) -> None:
    with pytest.raises(ClinicalError) as caught:
        call()  # type: ignore[operator]
    assert caught.value.where == where


def test_every_lab_term_is_gradeable() -> None:
    # The full list, one per CTCAE v5.0 term graded from a value (ionized calcium and the
    # 24-hour urine protein have names of their own); see tests/test_ctcae_lab.py.
    assert set(lab_terms()) >= {
        NEUTROPHILS, PLATELETS, "Anemia", ALT, AST, ALP, BILIRUBIN, CREATININE, "Hyponatremia",
        "Hypokalemia", APTT, "INR increased", "Hyperkalemia", "Hypercalcemia", "Hypocalcemia",
        "Hypercalcemia (ionized calcium)", "Hypocalcemia (ionized calcium)", "Hypermagnesemia",
        "Hypomagnesemia", "Hypernatremia", "Hypoglycemia", "Hypoalbuminemia", "GGT increased",
        "Lipase increased", "Serum amylase increased", "CPK increased", "Fibrinogen decreased",
        "Haptoglobin decreased", "Lymphocyte count decreased", "Lymphocyte count increased",
        "White blood cell decreased", "Leukocytosis", "Cholesterol high", "Hypertriglyceridemia",
        "Hyperuricemia", "Hemoglobin increased", "CD4 lymphocytes decreased", "Acidosis", "Alkalosis",
    }  # fmt: skip


# --------------------------------------------------------------------------- definitions

ALLOWED_GRADES = [
    ("Pain", (1, 2, 3)),
    ("Neuralgia", (1, 2, 3)),
    ("Peripheral sensory neuropathy", (1, 2, 3, 4)),
    ("Fever", (1, 2, 3, 4, 5)),
    ("Allergic reaction", (1, 2, 3, 4, 5)),
    ("Anaphylaxis", (3, 4, 5)),
    ("Infusion related reaction", (1, 2, 3, 4, 5)),
    ("Capillary leak syndrome", (2, 3, 4, 5)),
    ("Hypotension", (1, 2, 3, 4, 5)),
    ("Diarrhea", (1, 2, 3, 4, 5)),
    ("Sepsis", (3, 4, 5)),
    ("Catheter related infection", (2, 3, 4, 5)),
    ("Cytokine release syndrome", (1, 2, 3, 4, 5)),
    ("Febrile neutropenia", (3, 4, 5)),
    (NEUTROPHILS, (1, 2, 3, 4)),
    (PLATELETS, (1, 2, 3, 4)),
    ("Anemia", (1, 2, 3, 4, 5)),
    (ALT, (1, 2, 3, 4)),
    (AST, (1, 2, 3, 4)),
    (ALP, (1, 2, 3, 4)),
    (BILIRUBIN, (1, 2, 3, 4)),
    (CREATININE, (1, 2, 3, 4)),
    ("Hyponatremia", (1, 2, 3, 4, 5)),
    ("Hypokalemia", (1, 2, 3, 4, 5)),
    (APTT, (1, 2, 3)),
    ("INR increased", (1, 2, 3)),
]


@pytest.mark.parametrize(("term", "allowed"), ALLOWED_GRADES)
def test_grade_definitions_hold_only_existing_grades(term: str, allowed: tuple[int, ...]) -> None:
    definitions = grade_definitions(term)
    assert tuple(definitions) == allowed
    assert all(text.strip() for text in definitions.values())
    for grade in allowed:
        assert validate_grade(term, grade) == grade


@pytest.mark.parametrize(
    ("term", "grade"),
    [
        ("Capillary leak syndrome", 1),
        ("Pain", 4),
        ("Pain", 5),
        ("Neuralgia", 4),
        ("Peripheral sensory neuropathy", 5),
        ("Anaphylaxis", 1),
        ("Anaphylaxis", 2),
        ("Sepsis", 2),
        ("Catheter related infection", 1),
        ("Febrile neutropenia", 2),
        (NEUTROPHILS, 5),
        (APTT, 4),
        ("INR increased", 4),
        ("Fever", 0),
        ("Fever", 6),
    ],
)
def test_impossible_grades_are_refused(term: str, grade: int) -> None:
    with pytest.raises(SafetyError) as caught:
        validate_grade(term, grade)
    message = str(caught.value)
    assert caught.value.where == "grade"
    assert term in message
    allowed = ", ".join(map(str, term_definition(term).allowed_grades))
    assert f"allowed grades: {allowed}" in message


def test_validate_grade_refuses_unknown_terms_and_non_integers() -> None:
    with pytest.raises(SafetyError) as caught:
        validate_grade("Tumour flare", 2)
    assert caught.value.where == "term"
    with pytest.raises(SafetyError):
        validate_grade("Pain", 2.0)  # type: ignore[arg-type]
    with pytest.raises(SafetyError):
        validate_grade("Pain", True)


def test_term_lookup_ignores_case_and_spacing() -> None:
    assert canonical_term("  capillary   LEAK syndrome ") == "Capillary leak syndrome"
    assert canonical_term("tumour flare") is None
    assert validate_grade("cytokine release syndrome", 4) == 4


@pytest.mark.parametrize(
    ("term", "unconfirmed"),
    [
        ("Hypotension", (1, 2, 3, 4, 5)),
        ("Capillary leak syndrome", (2, 3, 4, 5)),
        ("Anaphylaxis", (3, 4, 5)),
        ("Sepsis", (3, 4, 5)),
        ("Catheter related infection", (2, 3, 4, 5)),
        ("Peripheral sensory neuropathy", (1, 2, 3, 4)),
        ("Febrile neutropenia", (4, 5)),
        ("Pain", ()),
        ("Fever", ()),
        ("Infusion related reaction", ()),
        (NEUTROPHILS, ()),
    ],
)
def test_unconfirmed_wording_is_marked(term: str, unconfirmed: tuple[int, ...]) -> None:
    marked = tuple(d.grade for d in term_definition(term).grades if d.unconfirmed)
    assert marked == unconfirmed


@pytest.mark.parametrize(
    ("term", "grade", "text"),
    [
        # verbatim from the CTCAE v5.0 sheet (domain/ctcae-v5/ctcae_v5.csv)
        (ALT, 1, ">ULN - 3.0 x ULN if baseline was normal; 1.5 - 3.0 x baseline if baseline "
         "was abnormal"),
        (ALP, 1, ">ULN - 2.5 x ULN if baseline was normal; 2.0 - 2.5 x baseline if baseline "
         "was abnormal"),
        (BILIRUBIN, 1, ">ULN - 1.5 x ULN if baseline was normal; > 1.0 - 1.5 x baseline if "
         "baseline was abnormal"),
        (BILIRUBIN, 4, ">10.0 x ULN if baseline was normal; >10.0 x baseline if baseline was "
         "abnormal"),
        (CREATININE, 3, ">3.0 x baseline; >3.0 - 6.0 x ULN"),
        ("Hyponatremia", 2, "125-129 mmol/L and asymptomatic"),
        ("Fever", 3, ">40.0 degrees C for <=24 hrs"),
    ],
)  # fmt: skip
def test_definition_wording(term: str, grade: int, text: str) -> None:
    assert grade_definitions(term)[grade] == text


def test_unknown_term_definitions_are_refused() -> None:
    with pytest.raises(SafetyError, match=r"unknown CTCAE v5\.0 term"):
        grade_definitions("Thrombocytopenia")


# --------------------------------------------------------------------------- fever


@pytest.mark.parametrize(
    ("temperature", "hours", "expected"),
    [
        (37.9, None, 0),
        (38.0, None, 1),
        (38.5, None, 1),
        (39.0, None, 1),
        (39.1, None, 2),
        (40.0, None, 2),
        (40.1, 0, 3),
        (40.1, 24, 3),
        (40.1, 24.5, 4),
        (41.5, 30, 4),
        (38.4, 30, 1),  # hours above 40 do not matter below 40
    ],
)
def test_fever_grades(temperature: float, hours: float | None, expected: int) -> None:
    result = grade_fever(temperature, hours)
    assert result.grade == expected
    assert result.term == "Fever"
    assert result.ctcae_version == "5.0"


def test_fever_above_40_without_duration_is_unknown() -> None:
    result = grade_fever(40.5)
    assert result.grade is None
    assert result.possible_grades == (3, 4)
    assert result.missing == ("hours_above_40",)


@pytest.mark.parametrize(
    ("temperature", "hours", "where"),
    [
        (101.3, None, "temperature_c"),  # Fahrenheit
        (20.0, None, "temperature_c"),
        (40.5, -1, "hours_above_40"),
        ("39", None, "temperature_c"),
    ],
)
def test_fever_bad_input(temperature: object, hours: float | None, where: str) -> None:
    with pytest.raises(ClinicalError) as caught:
        grade_fever(temperature, hours)  # type: ignore[arg-type]
    assert caught.value.where == where
