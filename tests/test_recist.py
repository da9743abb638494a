"""Known-answer tests for RECIST 1.1 (trialdesk.response.recist)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from trialdesk.errors import ResponseError
from trialdesk.response.recist import (
    Baseline,
    BorRule,
    Lesion,
    LesionKind,
    Method,
    NonTargetResponse,
    NonTargetStatus,
    Response,
    TargetResponse,
    TimePoint,
    TimePointResult,
    assess_series,
    assess_time_point,
    best_overall_response,
    validate_targets,
)

NODAL = LesionKind.LYMPH_NODE
NON_NODAL = LesionKind.NON_NODAL
T = TargetResponse
NT = NonTargetStatus


def lesion(
    lesion_id: str,
    size: float | None,
    organ: str = "liver",
    kind: LesionKind = NON_NODAL,
    method: Method = Method.CT,
    slice_mm: float | None = None,
) -> Lesion:
    return Lesion(lesion_id, organ, kind, method, size, slice_mm)


# --- target selection -------------------------------------------------------------------


@pytest.mark.parametrize(
    "targets",
    [
        [lesion("L1", 10)],  # exactly 10 mm on CT
        [lesion("N1", 15, "node", NODAL)],  # exactly 15 mm short axis
        [lesion("X1", 20, "lung", method=Method.CHEST_XRAY)],
        [lesion("S1", 10, "skin", method=Method.CALIPER)],
        [lesion("L1", 16, slice_mm=8)],  # twice an 8 mm slice
        [
            lesion("L1", 30, "liver"),
            lesion("L2", 20, "liver"),
            lesion("P1", 15, "lung"),
            lesion("P2", 12, "lung"),
            lesion("N1", 18, "node", NODAL),
        ],
    ],
)
def test_valid_target_selection(targets: list[Lesion]) -> None:
    validate_targets(targets)


@pytest.mark.parametrize(
    ("targets", "where", "reason_part"),
    [
        ([lesion("L1", 9.9)], "target lesion 'L1'", "needs at least 10 mm"),
        ([lesion("N1", 14.9, "node", NODAL)], "target lesion 'N1'", "needs at least 15 mm"),
        ([lesion("X1", 19, "lung", method=Method.CHEST_XRAY)], "target lesion 'X1'", "20 mm"),
        ([lesion("L1", 12, slice_mm=8)], "target lesion 'L1'", "needs at least 16 mm"),
        ([lesion("U1", 30, method=Method.ULTRASOUND)], "target lesion 'U1'", "not measurable"),
        ([lesion("L1", None)], "target lesion 'L1'", "baseline size"),
        (
            [lesion("L1", 30), lesion("L2", 20), lesion("L3", 15)],
            "target lesion 'L3'",
            "at most 2 target lesions per organ",
        ),
        (
            [
                lesion("L1", 30, "liver"),
                lesion("P1", 20, "lung"),
                lesion("B1", 20, "brain"),
                lesion("K1", 20, "kidney"),
                lesion("A1", 20, "adrenal"),
                lesion("S1", 20, "spleen"),
            ],
            "target lesion 'S1'",
            "at most 5 target lesions in total",
        ),
    ],
)
def test_invalid_target_selection_names_the_lesion(
    targets: list[Lesion], where: str, reason_part: str
) -> None:
    with pytest.raises(ResponseError) as caught:
        validate_targets(targets)
    assert caught.value.where == where
    assert reason_part in caught.value.reason


def test_baseline_rejects_duplicate_ids_and_empty_disease() -> None:
    with pytest.raises(ResponseError):
        Baseline(targets=(lesion("L1", 20),), non_targets=(lesion("L1", None),))
    with pytest.raises(ResponseError):
        Baseline(targets=())


# --- target response -----------------------------------------------------------------

# Baseline sum 70 mm: a 50 mm liver lesion and a node of 20 mm short axis.
LIVER_AND_NODE = Baseline(targets=(lesion("L1", 50), lesion("N1", 20, "node", NODAL)))


@pytest.mark.parametrize(
    ("l1", "n1", "nadir", "expected", "total"),
    [
        (0, 9, None, T.CR, 9),  # node at 9 mm is normal for CR, yet counts in the sum
        (0, 10, None, T.PR, 10),  # node at 10 mm is not normal: no CR
        (30, 19, None, T.PR, 49),  # exactly 30% below baseline
        (30.1, 19, None, T.SD, 49.1),  # 29.9% below baseline
        (20, 16, 30, T.PD, 36),  # 20% and 6 mm above the nadir, 49% below baseline
        (50, 20, None, T.SD, 70),
    ],
)
def test_target_response(
    l1: float, n1: float, nadir: float | None, expected: TargetResponse, total: float
) -> None:
    tp = TimePoint(day=42, targets={"L1": l1, "N1": n1}, new_lesions=False)
    result = assess_time_point(LIVER_AND_NODE, tp, nadir)
    assert result.target is expected
    assert result.sum_mm == pytest.approx(total)


@pytest.mark.parametrize(
    ("baseline", "nadir", "current", "expected"),
    [
        (25, 25, 30, T.PD),  # exactly 20% and exactly 5 mm
        (25, 25, 29.9, T.SD),  # 19.6%
        (24.5, 24.5, 29.4, T.SD),  # exactly 20% but 4.9 mm
        (50, 10, 15, T.PD),  # 50% and 5 mm above the nadir, still 70% below baseline
        (50, 10, 14.9, T.PR),  # 4.9 mm above the nadir
    ],
)
def test_progression_is_measured_from_the_nadir(
    baseline: float, nadir: float, current: float, expected: TargetResponse
) -> None:
    base = Baseline(targets=(lesion("L1", baseline),))
    tp = TimePoint(day=42, targets={"L1": current}, new_lesions=False)
    assert assess_time_point(base, tp, nadir).target is expected


def test_missing_target_measurement_is_ne_unless_already_pd() -> None:
    missing = TimePoint(day=42, targets={"L1": 40, "N1": None}, new_lesions=False)
    assert assess_time_point(LIVER_AND_NODE, missing).overall is Response.NE
    # Against a nadir of 30 mm, 40 mm from L1 alone is already 33% and 10 mm more.
    assert assess_time_point(LIVER_AND_NODE, missing, 30).overall is Response.PD


def test_series_carries_the_nadir() -> None:
    base = Baseline(targets=(lesion("L1", 50),))
    results = assess_series(
        base,
        [
            TimePoint(day=84, targets={"L1": 36}, new_lesions=False),
            TimePoint(day=42, targets={"L1": 30}, new_lesions=False),
        ],
    )
    assert [r.day for r in results] == [42, 84]
    assert [r.overall for r in results] == [Response.PR, Response.PD]
    assert results[1].nadir_mm == 30


# --- overall time-point response (Eisenhauer 2009, Tables 1 and 2) ---------------------

WITH_NON_TARGET = Baseline(
    targets=(lesion("L1", 50),),
    non_targets=(lesion("B1", None, "bone", method=Method.OTHER),),
)


@pytest.mark.parametrize(
    ("l1", "b1", "new", "overall"),
    [
        (0, NT.ABSENT, False, Response.CR),
        (0, NT.PRESENT, False, Response.PR),
        (0, NT.NOT_EVALUATED, False, Response.PR),
        (30, NT.PRESENT, False, Response.PR),
        (30, NT.NOT_EVALUATED, False, Response.PR),
        (45, NT.PRESENT, False, Response.SD),
        (30, NT.UNEQUIVOCAL_PROGRESSION, False, Response.PD),  # PD by non-target
        (0, NT.ABSENT, True, Response.PD),  # PD by new lesion
        (None, NT.PRESENT, False, Response.NE),
    ],
)
def test_time_point_table_1(l1: float | None, b1: NT, new: bool, overall: Response) -> None:
    tp = TimePoint(day=42, targets={"L1": l1}, non_targets={"B1": b1}, new_lesions=new)
    result = assess_time_point(WITH_NON_TARGET, tp)
    assert result.overall is overall
    assert all(sentence.endswith(".") for sentence in result.reasoning)


NON_TARGET_ONLY = Baseline(
    targets=(), non_targets=(lesion("E1", None, "pleura", method=Method.OTHER),)
)


@pytest.mark.parametrize(
    ("e1", "new", "non_target", "overall"),
    [
        (NT.ABSENT, False, NonTargetResponse.CR, Response.CR),
        (NT.PRESENT, False, NonTargetResponse.NON_CR_NON_PD, Response.NON_CR_NON_PD),
        (NT.NOT_EVALUATED, False, NonTargetResponse.NE, Response.NE),
        (NT.UNEQUIVOCAL_PROGRESSION, False, NonTargetResponse.PD, Response.PD),
        (NT.PRESENT, True, NonTargetResponse.NON_CR_NON_PD, Response.PD),
    ],
)
def test_time_point_table_2(
    e1: NT, new: bool, non_target: NonTargetResponse, overall: Response
) -> None:
    tp = TimePoint(day=42, non_targets={"E1": e1}, new_lesions=new)
    result = assess_time_point(NON_TARGET_ONLY, tp)
    assert (result.target, result.non_target, result.overall) == (None, non_target, overall)


@pytest.mark.parametrize(
    "tp",
    [
        TimePoint(day=42, targets={"X9": 10}, new_lesions=False),
        TimePoint(day=42, targets={"L1": -1}, new_lesions=False),
        TimePoint(day=42, targets={"L1": 10}, non_targets={"Z1": NT.ABSENT}, new_lesions=False),
    ],
)
def test_unknown_or_impossible_measurements_are_errors(tp: TimePoint) -> None:
    with pytest.raises(ResponseError):
        assess_time_point(WITH_NON_TARGET, tp)


# --- best overall response -------------------------------------------------------------


def at(day: int, response: Response) -> TimePointResult:
    return TimePointResult(day, None, None, False, response, None, None, ())


CR, PR, SD, PD, NE = Response.CR, Response.PR, Response.SD, Response.PD, Response.NE
NO_CONFIRMATION = BorRule(confirmation_required=False, min_sd_days=42)
CONFIRMATION = BorRule(confirmation_required=True, min_confirmation_days=28, min_sd_days=42)


@pytest.mark.parametrize(
    ("rule", "series", "expected"),
    [
        (NO_CONFIRMATION, [(42, PR), (84, PD)], PR),
        (NO_CONFIRMATION, [(42, CR), (70, CR)], CR),
        (NO_CONFIRMATION, [(42, SD)], SD),  # SD exactly at the minimum duration
        (NO_CONFIRMATION, [(28, SD)], NE),  # SD too early, nothing after
        (NO_CONFIRMATION, [(28, SD), (56, PD)], PD),  # SD too early, then progression
        (NO_CONFIRMATION, [(42, PD), (84, PR)], PD),  # nothing counts after PD
        (NO_CONFIRMATION, [(42, Response.NON_CR_NON_PD)], Response.NON_CR_NON_PD),
        (NO_CONFIRMATION, [(42, NE)], NE),
        (CONFIRMATION, [(42, PR), (70, PR)], PR),  # confirmed exactly 28 days later
        (CONFIRMATION, [(42, PR), (69, PR)], SD),  # 27 days: unconfirmed, counts as SD
        (CONFIRMATION, [(42, CR), (70, CR)], CR),
        (CONFIRMATION, [(42, PR), (70, CR)], PR),  # the later CR is unconfirmed
        (CONFIRMATION, [(42, CR), (70, PR)], PR),
        (CONFIRMATION, [(42, PR), (56, SD), (84, PR)], SD),  # SD in between breaks it
        (CONFIRMATION, [(42, PR), (56, NE), (84, PR)], PR),  # NE in between does not
        (CONFIRMATION, [(42, PR), (70, PD)], SD),
        (CONFIRMATION, [(28, PR), (56, PD)], PD),  # unconfirmed and too early for SD
        (CONFIRMATION, [(42, CR), (84, PR), (126, PR)], PR),
    ],
)
def test_best_overall_response(
    rule: BorRule, series: list[tuple[int, Response]], expected: Response
) -> None:
    result = best_overall_response([at(day, response) for day, response in series], rule)
    assert result.response is expected
    assert result.reasoning


def test_bor_from_assessed_series() -> None:
    base = Baseline(targets=(lesion("L1", 50),))
    results = assess_series(
        base,
        [
            TimePoint(day=42, targets={"L1": 30}, new_lesions=False),
            TimePoint(day=70, targets={"L1": 25}, new_lesions=False),
            TimePoint(day=112, targets={"L1": 40}, new_lesions=False),
        ],
    )
    assert [r.overall for r in results] == [PR, PR, PD]
    bor = best_overall_response(results, CONFIRMATION)
    assert (bor.response, bor.day) == (PR, 42)


@pytest.mark.parametrize(
    "build",
    [
        lambda: BorRule(confirmation_required=True, min_sd_days=42),
        lambda: BorRule(confirmation_required=False, min_sd_days=-1),
        lambda: BorRule(confirmation_required=True, min_confirmation_days=0, min_sd_days=42),
    ],
)
def test_bor_rule_needs_protocol_values(build: Callable[[], object]) -> None:
    with pytest.raises(ResponseError):
        build()


def test_bor_rejects_two_assessments_on_one_day() -> None:
    with pytest.raises(ResponseError):
        best_overall_response([at(42, PR), at(42, SD)], NO_CONFIRMATION)
