"""Known-answer tests for ASTCT CRS and ICANS grading (Lee DW et al., BBMT 2019;25:625)."""

from __future__ import annotations

import doctest

import pytest

from trialdesk.clinical import astct
from trialdesk.clinical.astct import (
    CerebralOedema,
    Consciousness,
    Hypotension,
    Hypoxia,
    OxygenDevice,
    Seizure,
    grade_crs,
    grade_icans,
    hypoxia_category,
)
from trialdesk.errors import ClinicalError

NONE_P, NO_VASO, ONE_VASO, MULTI_VASO = tuple(Hypotension)
NONE_O, LOW, HIGH, PP = tuple(Hypoxia)


def test_doctests() -> None:
    assert doctest.testmod(astct).failed == 0


# --------------------------------------------------------------------------- CRS


@pytest.mark.parametrize(
    ("fever", "hypotension", "hypoxia", "masked", "expected"),
    [
        (True, NONE_P, NONE_O, False, 1),
        (True, NO_VASO, NONE_O, False, 2),
        (True, NONE_P, LOW, False, 2),
        (True, ONE_VASO, NONE_O, False, 3),
        (True, NONE_P, HIGH, False, 3),
        (True, MULTI_VASO, NONE_O, False, 4),
        (True, NONE_P, PP, False, 4),
        # the worse of hypotension and hypoxia
        (True, NO_VASO, HIGH, False, 3),
        (True, ONE_VASO, PP, False, 4),
        (True, MULTI_VASO, LOW, False, 4),
        (True, NO_VASO, LOW, False, 2),
        # no fever, no antipyretic/anti-cytokine therapy: not CRS
        (False, NONE_P, NONE_O, False, 0),
        (False, ONE_VASO, HIGH, False, 0),
        # fever masked by tocilizumab or steroids: hypotension/hypoxia drive the grade
        (False, ONE_VASO, NONE_O, True, 3),
        (False, NONE_P, LOW, True, 2),
        (False, NO_VASO, PP, True, 4),
        (True, NONE_P, NONE_O, True, 1),
    ],
)
def test_crs_grades(
    fever: bool, hypotension: Hypotension, hypoxia: Hypoxia, masked: bool, expected: int
) -> None:
    result = grade_crs(fever, hypotension, hypoxia, antipyretics_or_anticytokine_given=masked)
    assert result.grade == expected
    assert result.possible_grades == (expected,)
    assert result.missing == ()
    assert "Lee" in result.source


def test_crs_accepts_category_names() -> None:
    assert grade_crs(True, "one_vasopressor", "low_flow").grade == 3


@pytest.mark.parametrize(
    ("fever", "hypotension", "hypoxia", "possible", "missing"),
    [
        (None, NONE_P, NONE_O, (0, 1), ("fever",)),
        (None, MULTI_VASO, NONE_O, (0, 4), ("fever",)),
        (True, None, NONE_O, (1, 2, 3, 4), ("hypotension",)),
        (True, ONE_VASO, None, (3, 4), ("hypoxia",)),
        (None, None, None, (0, 1, 2, 3, 4), ("fever", "hypotension", "hypoxia")),
    ],
)
def test_crs_unknown_names_missing_inputs(
    fever: bool | None,
    hypotension: Hypotension | None,
    hypoxia: Hypoxia | None,
    possible: tuple[int, ...],
    missing: tuple[str, ...],
) -> None:
    result = grade_crs(fever, hypotension, hypoxia)
    assert result.grade is None
    assert result.possible_grades == possible
    assert result.missing == missing
    for name in missing:
        assert name in result.rule


def test_crs_known_when_missing_input_cannot_matter() -> None:
    # Positive pressure is already grade 4, the top grade.
    assert grade_crs(True, None, PP).grade == 4


def test_crs_masked_fever_without_organ_support_is_a_clinical_call() -> None:
    result = grade_crs(False, NONE_P, NONE_O, antipyretics_or_anticytokine_given=True)
    assert result.grade is None
    assert result.possible_grades == (0, 1)
    assert result.missing == ()
    assert "clinical judgement" in result.rule


@pytest.mark.parametrize(
    ("fever", "hypotension", "hypoxia", "where"),
    [
        (True, "pressors", NONE_O, "hypotension"),
        (True, NONE_P, "cpap", "hypoxia"),
        ("yes", NONE_P, NONE_O, "fever"),
    ],
)
def test_crs_bad_input(fever: object, hypotension: object, hypoxia: object, where: str) -> None:
    with pytest.raises(ClinicalError) as caught:
        grade_crs(fever, hypotension, hypoxia)  # type: ignore[arg-type]
    assert caught.value.where == where


@pytest.mark.parametrize(
    ("device", "flow", "expected"),
    [
        (OxygenDevice.NONE, None, NONE_O),
        (OxygenDevice.NASAL_CANNULA, 1, LOW),
        (OxygenDevice.NASAL_CANNULA, 6, LOW),
        (OxygenDevice.NASAL_CANNULA, 6.5, HIGH),
        (OxygenDevice.BLOW_BY, None, LOW),
        (OxygenDevice.FACE_MASK, None, HIGH),
        (OxygenDevice.NON_REBREATHER, None, HIGH),
        (OxygenDevice.VENTURI_MASK, None, HIGH),
        (OxygenDevice.CPAP, None, PP),
        (OxygenDevice.BIPAP, None, PP),
        ("mechanical_ventilation", None, PP),
    ],
)
def test_hypoxia_category(device: OxygenDevice | str, flow: float | None, expected: Hypoxia) -> None:
    assert hypoxia_category(device, flow) is expected


@pytest.mark.parametrize(("device", "flow", "where"), [
    (OxygenDevice.NASAL_CANNULA, None, "flow_l_min"),
    (OxygenDevice.NASAL_CANNULA, 0, "flow_l_min"),
    ("oxygen tent", None, "device"),
])  # fmt: skip
def test_hypoxia_category_bad_input(device: str, flow: float | None, where: str) -> None:
    with pytest.raises(ClinicalError) as caught:
        hypoxia_category(device, flow)
    assert caught.value.where == where


# --------------------------------------------------------------------------- ICANS

NORMAL = {
    "consciousness": Consciousness.ALERT,
    "seizure": Seizure.NONE,
    "motor_weakness": False,
    "cerebral_oedema": CerebralOedema.NONE,
}


@pytest.mark.parametrize(
    ("ice", "changes", "expected"),
    [
        # ICE score alone: 10 normal, 7-9 G1, 3-6 G2, 0-2 G3
        (10, {}, 0),
        (9, {}, 1),
        (7, {}, 1),
        (6, {}, 2),
        (3, {}, 2),
        (2, {}, 3),
        (0, {}, 3),  # awake with global aphasia
        (0, {"consciousness": Consciousness.UNAROUSABLE}, 4),
        # depressed level of consciousness
        (10, {"consciousness": Consciousness.AWAKENS_SPONTANEOUSLY}, 1),
        (10, {"consciousness": Consciousness.AWAKENS_TO_VOICE}, 2),
        (10, {"consciousness": Consciousness.AWAKENS_TO_TACTILE_STIMULUS}, 3),
        (10, {"consciousness": "unarousable"}, 4),
        # seizures, motor findings, raised ICP / cerebral oedema
        (10, {"seizure": Seizure.RESOLVES_RAPIDLY}, 3),
        (10, {"seizure": Seizure.PROLONGED_OR_REPETITIVE}, 4),
        (10, {"motor_weakness": True}, 4),
        (10, {"cerebral_oedema": CerebralOedema.FOCAL}, 3),
        (10, {"cerebral_oedema": CerebralOedema.DIFFUSE}, 4),
        # Lee 2019 example: ICE 3 with a generalised seizure is grade 3
        (3, {"seizure": Seizure.RESOLVES_RAPIDLY}, 3),
        (8, {"consciousness": Consciousness.AWAKENS_TO_VOICE}, 2),
    ],
)
def test_icans_adult(ice: int, changes: dict[str, object], expected: int) -> None:
    result = grade_icans(30, ice_score=ice, **{**NORMAL, **changes})  # type: ignore[arg-type]
    assert result.grade == expected
    assert result.instrument == "ICE"
    assert result.unconfirmed is False
    assert result.missing == ()


@pytest.mark.parametrize(
    ("capd", "unable", "changes", "expected", "unconfirmed"),
    [
        # CAPD <9 fits grades 1-2; consciousness tells them apart
        (0, False, {}, 0, False),
        (8, False, {}, 0, False),
        (8, False, {"consciousness": Consciousness.AWAKENS_SPONTANEOUSLY}, 1, False),
        (8, False, {"consciousness": Consciousness.AWAKENS_TO_VOICE}, 2, False),
        # CAPD >=9 -> 3 and unable to perform -> 4 rest on unconfirmed thresholds
        (9, False, {}, 3, True),
        (20, False, {"consciousness": Consciousness.AWAKENS_TO_VOICE}, 3, True),
        (None, True, {}, 4, True),
        # ... unless another domain gives the same grade anyway
        (9, False, {"consciousness": Consciousness.AWAKENS_TO_TACTILE_STIMULUS}, 3, False),
        (12, False, {"consciousness": Consciousness.UNAROUSABLE}, 4, False),
        (None, True, {"cerebral_oedema": CerebralOedema.DIFFUSE}, 4, False),
        (3, False, {"seizure": Seizure.PROLONGED_OR_REPETITIVE}, 4, False),
    ],
)
def test_icans_child_uses_capd(
    capd: int | None, unable: bool, changes: dict[str, object], expected: int, unconfirmed: bool
) -> None:
    result = grade_icans(
        6,
        capd_score=capd,
        capd_unable_to_perform=unable,
        **{**NORMAL, **changes},  # type: ignore[arg-type]
    )
    assert result.grade == expected
    assert result.instrument == "CAPD"
    assert result.unconfirmed is unconfirmed


@pytest.mark.parametrize(("age", "instrument"), [(12, "CAPD"), (12.5, "ICE"), (13, "ICE"), (1, "CAPD")])
def test_icans_instrument_by_age(age: float, instrument: str) -> None:
    assert grade_icans(age, **NORMAL).instrument == instrument  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("age", "inputs", "possible", "missing"),
    [
        (30, NORMAL, (0, 1, 2, 3), ("ice_score",)),
        (6, NORMAL, (0, 3, 4), ("capd_score",)),
        (30, {"ice_score": 5}, (2, 3, 4), ("consciousness", "seizure", "motor_weakness",
                                           "cerebral_oedema")),
        (30, {**NORMAL, "ice_score": 10, "seizure": None}, (0, 3, 4), ("seizure",)),
        (6, {**NORMAL, "capd_score": 10, "motor_weakness": None}, (3, 4), ("motor_weakness",)),
    ],
)  # fmt: skip
def test_icans_unknown_names_missing_inputs(
    age: float, inputs: dict[str, object], possible: tuple[int, ...], missing: tuple[str, ...]
) -> None:
    result = grade_icans(age, **inputs)  # type: ignore[arg-type]
    assert result.grade is None
    assert result.possible_grades == possible
    assert result.missing == missing
    assert all(name in result.rule for name in missing)


def test_icans_known_when_one_domain_is_already_grade_4() -> None:
    result = grade_icans(40, consciousness=Consciousness.UNAROUSABLE)
    assert result.grade == 4
    assert ("consciousness", 4) in result.domains


def test_icans_partial_child_result_keeps_the_unconfirmed_mark() -> None:
    result = grade_icans(6, capd_score=10, consciousness=Consciousness.ALERT)
    assert result.grade is None
    assert result.unconfirmed is True


@pytest.mark.parametrize(
    ("age", "inputs", "where"),
    [
        (30, {"capd_score": 5}, "capd_score"),
        (30, {"capd_unable_to_perform": True}, "capd_score"),
        (8, {"ice_score": 8}, "ice_score"),
        (8, {"capd_score": 5, "capd_unable_to_perform": True}, "capd_score"),
        (8, {"capd_score": 33}, "capd_score"),
        (30, {"ice_score": 11}, "ice_score"),
        (30, {"ice_score": -1}, "ice_score"),
        (30, {"ice_score": 7.5}, "ice_score"),
        (-1, {}, "age_years"),
        ("6", {}, "age_years"),
        (30, {"consciousness": "drowsy"}, "consciousness"),
        (30, {"seizure": "absence"}, "seizure"),
        (30, {"cerebral_oedema": "mild"}, "cerebral_oedema"),
        (30, {"motor_weakness": "yes"}, "motor_weakness"),
    ],
)
def test_icans_bad_input(age: object, inputs: dict[str, object], where: str) -> None:
    with pytest.raises(ClinicalError) as caught:
        grade_icans(age, **inputs)  # type: ignore[arg-type]
    assert caught.value.where == where
