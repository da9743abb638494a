"""Known answers for PaO₂/FiO₂, SOFA and free days (trialdesk.clinical.sepsis).

SOFA bands: Vincent JL et al., Intensive Care Med 1996;22:707, Table 1, as reproduced in
Singer M et al., JAMA 2016;315:801, Table 1 (PMC4968574). Free days: Schoenfeld DA,
Bernard GR, Crit Care Med 2002;30:1772.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from trialdesk.clinical.sepsis import SofaInputs, free_days, pao2_fio2, sofa
from trialdesk.errors import ClinicalError


def test_pao2_fio2_known_answers() -> None:
    assert pao2_fio2(80, 0.40) == 200.0  # the example
    assert pao2_fio2(95, 0.21) == 452.4
    assert pao2_fio2(60, 1.0) == 60.0
    for fio2 in (0.2, 1.01, 40):
        with pytest.raises(ClinicalError) as err:
            pao2_fio2(80, fio2)
        assert err.value.where == "fio2"


NORMAL = SofaInputs(pao2_fio2=450, respiratory_support=False, platelets=200, bilirubin=0.8,
                    mean_arterial_pressure=80, dopamine=0, dobutamine=0, epinephrine=0,
                    norepinephrine=0, glasgow_coma_scale=15, creatinine=0.8, urine_output=1500)


def organ(organ_name: str, **changes: object) -> int:
    return sofa(replace(NORMAL, **changes)).organs[organ_name]  # type: ignore[arg-type]


def test_a_normal_patient_scores_zero() -> None:
    score = sofa(NORMAL)
    assert score.total == 0 and not score.missing


@pytest.mark.parametrize(("value", "support", "expected"), [
    (400, False, 0), (399.9, False, 1), (300, False, 1), (299.9, False, 2),
    (200, True, 2), (199.9, True, 3), (100, True, 3), (99.9, True, 4),
    # Scores 3 and 4 need respiratory support: without it < 200 stays 2.
    (199.9, False, 2), (50, False, 2),
])
def test_respiration_boundaries(value: float, support: bool, expected: int) -> None:
    assert organ("respiration", pao2_fio2=value, respiratory_support=support) == expected


def test_respiration_needs_the_support_status_only_below_200() -> None:
    assert organ("respiration", pao2_fio2=250, respiratory_support=None) == 2
    score = sofa(replace(NORMAL, pao2_fio2=150, respiratory_support=None))
    assert "respiration" in score.missing and score.total is None


@pytest.mark.parametrize(("value", "expected"), [
    (150, 0), (149, 1), (100, 1), (99, 2), (50, 2), (49, 3), (20, 3), (19, 4), (0, 4)])
def test_coagulation_boundaries(value: float, expected: int) -> None:
    assert organ("coagulation", platelets=value) == expected  # ×10³/µL


@pytest.mark.parametrize(("value", "expected"), [
    (1.19, 0), (1.2, 1), (1.9, 1), (1.99, 1), (2.0, 2), (5.9, 2), (6.0, 3), (11.9, 3),
    (12.0, 4), (20, 4)])
def test_liver_boundaries(value: float, expected: int) -> None:
    assert organ("liver", bilirubin=value) == expected  # mg/dL


@pytest.mark.parametrize(("changes", "expected"), [
    ({"mean_arterial_pressure": 70}, 0),
    ({"mean_arterial_pressure": 69.9}, 1),
    ({"dopamine": 5}, 2), ({"dobutamine": 2.5}, 2),
    ({"dopamine": 5.1}, 3), ({"dopamine": 15}, 3), ({"epinephrine": 0.1}, 3),
    ({"norepinephrine": 0.1}, 3),
    ({"dopamine": 15.1}, 4), ({"epinephrine": 0.11}, 4), ({"norepinephrine": 0.11}, 4),
])
def test_cardiovascular_boundaries(changes: dict[str, float], expected: int) -> None:
    assert organ("cardiovascular", **changes) == expected  # µg/kg/min


def test_cardiovascular_missing_doses_are_not_assumed_zero() -> None:
    score = sofa(replace(NORMAL, mean_arterial_pressure=65, dopamine=None))
    assert "cardiovascular" in score.missing
    # A dose that already decides the worst band needs no other.
    assert organ("cardiovascular", norepinephrine=0.3, dopamine=None) == 4


@pytest.mark.parametrize(("gcs", "expected"), [
    (15, 0), (14, 1), (13, 1), (12, 2), (10, 2), (9, 3), (6, 3), (5, 4), (3, 4)])
def test_cns_boundaries(gcs: int, expected: int) -> None:
    assert organ("cns", glasgow_coma_scale=gcs) == expected


@pytest.mark.parametrize(("creatinine", "urine", "expected"), [
    (1.19, 1500, 0), (1.2, 1500, 1), (1.9, 1500, 1), (2.0, 1500, 2), (3.4, 1500, 2),
    (3.5, 1500, 3), (4.9, 1500, 3), (5.0, 1500, 4),
    (1.0, 499, 3), (1.0, 500, 0), (1.0, 199, 4), (1.0, 200, 3), (None, 150, 4),
])
def test_renal_boundaries(creatinine: float | None, urine: float, expected: int) -> None:
    assert organ("renal", creatinine=creatinine, urine_output=urine) == expected


def test_renal_needs_creatinine_unless_urine_decides() -> None:
    score = sofa(replace(NORMAL, creatinine=None, urine_output=1500))
    assert score.missing == {"renal": "creatinine"}


def test_total_only_when_complete() -> None:
    score = sofa(SofaInputs(platelets=40, glasgow_coma_scale=9))
    assert score.organs == {"coagulation": 3, "cns": 3}
    assert score.total is None
    assert set(score.missing) == {"respiration", "liver", "cardiovascular", "renal"}


DAY1 = date(2026, 1, 1)


def day(n: int) -> date:
    return DAY1 + timedelta(days=n - 1)


def test_free_days_known_answers() -> None:
    # The example: on support from day 1, alive and off from day 21 of 28 → 8.
    assert free_days(DAY1, [(day(1), day(20))]) == 8
    assert free_days(DAY1, [(day(1), day(20))], death=day(27)) == 0  # died: 0
    assert free_days(DAY1, [(day(1), day(20))], death=day(28)) == 0  # died on day 28: 0
    assert free_days(DAY1, [(day(1), day(20))], death=day(29)) == 8  # died after the window
    assert free_days(DAY1, []) == 28
    assert free_days(DAY1, [(day(1), None)]) == 0  # still on support on day 28
    # Two episodes (reintubation), overlapping days counted once.
    assert free_days(DAY1, [(day(2), day(5)), (day(5), day(9))]) == 20
    # An episode started before day 1 counts only from day 1.
    assert free_days(DAY1, [(day(-3), day(3))]) == 25


def test_free_days_refuses_impossible_input() -> None:
    with pytest.raises(ClinicalError) as err:
        free_days(DAY1, [(day(5), day(3))])
    assert err.value.where == "episodes[0]"
    with pytest.raises(ClinicalError) as err:
        free_days(DAY1, [], death=day(0))
    assert err.value.where == "death"
