"""Known-answer tests for INRC 2017 (trialdesk.response.inrc)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from trialdesk.errors import ResponseError
from trialdesk.response.inrc import (
    NOT_INVOLVED,
    UNCONFIRMED_NOTES,
    BoneMarrow,
    Component,
    ComponentResponse,
    FdgBone,
    InrcCriteria,
    InrcTimePoint,
    MibgBone,
    MibgScale,
    NewLesions,
    OverallResponse,
    PrimaryTumour,
    SoftTissueMetastases,
    assess,
)

R = ComponentResponse
OV = OverallResponse


def soft(
    baseline: float = 40,
    nadir: float = 40,
    current: float = 40,
    nodes: tuple[float, ...] | None = (),
    lesions: tuple[float, ...] | None = (),
    uptake: bool | None = False,
) -> SoftTissueMetastases:
    return SoftTissueMetastases(
        baseline_sum_mm=baseline,
        nadir_sum_mm=nadir,
        current_sum_mm=current,
        node_short_axes_mm=nodes,
        lesion_diameters_mm=lesions,
        uptake_resolved=uptake,
    )


# A time point where every component is involved and stable; tests replace parts of it.
STABLE = InrcTimePoint(
    primary=PrimaryTumour(baseline_mm=50, nadir_mm=50, current_mm=50, uptake_resolved=False),
    soft_tissue=soft(lesions=(20,)),
    bone=MibgBone(scale=MibgScale.CURIE, baseline_score=10, current_score=10),
    marrow=BoneMarrow(baseline_pct=30, current_pct=30),
    new_lesions=NewLesions(),
)


def response_of(tp: InrcTimePoint, which: Component, criteria: InrcCriteria | None = None) -> R:
    result = assess(tp, criteria) if criteria else assess(tp)
    return result.component(which).response


# --- primary tumour ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("baseline", "nadir", "current", "uptake", "expected"),
    [
        (60, 60, 8, True, R.CR),  # < 10 mm and uptake resolved
        (60, 60, 8, False, R.PR),  # < 10 mm but uptake persists: not CR
        (60, 60, 10, True, R.PR),  # 10 mm is not < 10 mm
        (60, 60, 42, False, R.PR),  # exactly 30% smaller
        (60, 60, 42.1, False, R.SD),  # 29.8% smaller
        (40, 40, 50, False, R.PD),  # 25% and 10 mm above nadir
        (30, 25, 30, False, R.SD),  # exactly 20% and 5 mm: INRC needs more than 20%
        (24, 24, 29.04, False, R.PD),  # 21% and 5.04 mm
        (25, 20, 24.9, False, R.SD),  # 24.5% but only 4.9 mm
        (60, 20, 26, False, R.PD),  # PD by the nadir although 57% below baseline
        (60, 60, 8, None, R.NE),  # CR turns on uptake that was not assessed
        (60, 60, 30, None, R.PR),  # uptake irrelevant when the tumour is 10 mm or more
    ],
)
def test_primary_tumour(
    baseline: float, nadir: float, current: float, uptake: bool | None, expected: R
) -> None:
    primary = PrimaryTumour(
        baseline_mm=baseline, nadir_mm=nadir, current_mm=current, uptake_resolved=uptake
    )
    assert response_of(replace(STABLE, primary=primary), Component.PRIMARY) is expected


@pytest.mark.parametrize(
    ("primary", "expected", "missing"),
    [
        (NOT_INVOLVED, R.NI, ()),
        (None, R.NE, ("primary tumour assessment",)),
        (
            PrimaryTumour(baseline_mm=50, nadir_mm=50, current_mm=None, uptake_resolved=False),
            R.NE,
            ("primary tumour current diameter",),
        ),
    ],
)
def test_primary_not_involved_or_missing(
    primary: PrimaryTumour | None, expected: R, missing: tuple[str, ...]
) -> None:
    result = assess(replace(STABLE, primary=primary)).component(Component.PRIMARY)
    assert (result.response, result.missing) == (expected, missing)


# --- soft tissue and bone metastases --------------------------------------------------


@pytest.mark.parametrize(
    ("soft_tissue", "criteria", "expected"),
    [
        # CR: lesions < 10 mm, target nodes below the node threshold, uptake resolved.
        (soft(40, 20, 8, nodes=(9.9,), lesions=(5,), uptake=True), None, R.CR),
        (soft(40, 20, 8, nodes=(10,), lesions=(5,), uptake=True), None, R.PR),
        (soft(40, 20, 12, nodes=(12,), uptake=True), InrcCriteria(node_cr_short_axis_mm=15), R.CR),
        (soft(40, 20, 8, nodes=(5,), lesions=(10,), uptake=True), None, R.PR),
        (soft(40, 20, 8, nodes=(5,), lesions=(5,), uptake=False), None, R.PR),
        # PR: at least 30% below the baseline sum.
        (soft(50, 35, 35), None, R.PR),
        (soft(50, 35, 35.1), None, R.SD),
        # PD: more than 20% and at least 5 mm above the smallest sum on study.
        (soft(40, 25, 30), None, R.SD),  # exactly 20% and 5 mm
        (soft(40, 25, 30.1), None, R.PD),  # 20.4% and 5.1 mm
        (soft(30, 20, 24.9), None, R.SD),  # 24.5% but 4.9 mm
        (soft(100, 30, 40), None, R.PD),  # by the nadir; 60% below baseline
    ],
)
def test_soft_tissue(
    soft_tissue: SoftTissueMetastases, criteria: InrcCriteria | None, expected: R
) -> None:
    tp = replace(STABLE, soft_tissue=soft_tissue, bone=NOT_INVOLVED)
    assert response_of(tp, Component.METASTASES, criteria) is expected


@pytest.mark.parametrize(
    ("bone", "criteria", "expected"),
    [
        (MibgBone(scale=MibgScale.CURIE, baseline_score=10, current_score=12), None, R.PD),
        (MibgBone(scale=MibgScale.CURIE, baseline_score=10, current_score=11.9), None, R.SD),
        (MibgBone(scale=MibgScale.CURIE, baseline_score=10, current_score=5), None, R.PR),
        (MibgBone(scale=MibgScale.CURIE, baseline_score=10, current_score=5.1), None, R.SD),
        (MibgBone(scale=MibgScale.CURIE, baseline_score=10, current_score=0), None, R.CR),
        (MibgBone(scale=MibgScale.SIOPEN, baseline_score=0, current_score=3), None, R.PD),
        (MibgBone(scale=MibgScale.SIOPEN, baseline_score=40, current_score=48), None, R.PD),
        (MibgBone(scale=MibgScale.SIOPEN, baseline_score=20, current_score=1), None, R.PR),
        (
            MibgBone(scale=MibgScale.SIOPEN, baseline_score=20, current_score=1),
            InrcCriteria(mibg_pr_min_relative=0.1),
            R.SD,
        ),
        (
            MibgBone(scale=MibgScale.SIOPEN, baseline_score=20, current_score=2),
            InrcCriteria(mibg_pr_min_relative=0.1),
            R.PR,
        ),
        (FdgBone(baseline_lesions=4, current_lesions=2), None, R.PR),
        (FdgBone(baseline_lesions=4, current_lesions=3), None, R.SD),
        (FdgBone(baseline_lesions=4, current_lesions=0), None, R.CR),
        (FdgBone(baseline_lesions=4, current_lesions=5), None, R.PD),
    ],
)
def test_bone(bone: MibgBone | FdgBone, criteria: InrcCriteria | None, expected: R) -> None:
    tp = replace(STABLE, soft_tissue=NOT_INVOLVED, bone=bone)
    assert response_of(tp, Component.METASTASES, criteria) is expected


@pytest.mark.parametrize(
    "new_lesions",
    [
        NewLesions(soft_tissue=True),
        NewLesions(mibg_bone_site=True),
        NewLesions(fdg_bone_site=True),
    ],
)
def test_new_lesion_is_pd(new_lesions: NewLesions) -> None:
    tp = replace(STABLE, new_lesions=new_lesions)
    assert response_of(tp, Component.METASTASES) is R.PD
    assert assess(tp).overall is OV.PD


@pytest.mark.parametrize(
    ("soft_tissue", "bone", "expected"),
    [
        (soft(40, 20, 20), MibgBone(MibgScale.CURIE, 10, 10), R.SD),  # PR + SD
        (soft(40, 5, 5, uptake=True), MibgBone(MibgScale.CURIE, 10, 4), R.PR),  # CR + PR
        (soft(40, 5, 5, uptake=True), MibgBone(MibgScale.CURIE, 10, 0), R.CR),  # CR + CR
        (NOT_INVOLVED, NOT_INVOLVED, R.NI),
        (NOT_INVOLVED, MibgBone(MibgScale.CURIE, 0, 0), R.NI),
    ],
)
def test_soft_tissue_and_bone_together(
    soft_tissue: SoftTissueMetastases, bone: MibgBone, expected: R
) -> None:
    tp = replace(STABLE, soft_tissue=soft_tissue, bone=bone)
    assert response_of(tp, Component.METASTASES) is expected


@pytest.mark.parametrize(
    ("changes", "missing"),
    [
        ({"bone": None}, ("bone scan (MIBG, or FDG-PET if MIBG-non-avid)",)),
        ({"new_lesions": None}, ("review for new lesions",)),
        ({"soft_tissue": None}, ("non-primary soft-tissue lesions",)),
        (
            {"bone": MibgBone(MibgScale.SIOPEN, 20, None)},
            ("current SIOPEN score",),
        ),
        (
            {"soft_tissue": soft(40, 20, 5, nodes=None, lesions=(5,), uptake=True)},
            ("short axes of target lymph nodes",),
        ),
    ],
)
def test_metastases_missing_data_is_ne(
    changes: dict[str, object], missing: tuple[str, ...]
) -> None:
    result = assess(replace(STABLE, **changes))  # type: ignore[arg-type]
    component = result.component(Component.METASTASES)
    assert component.response is R.NE
    assert component.missing == missing
    assert result.overall is OV.NE
    assert result.missing == missing


def test_missing_data_that_cannot_change_cr_is_not_asked_for() -> None:
    # A 15 mm lesion rules CR out, so the missing node list does not matter.
    tp = replace(STABLE, soft_tissue=soft(40, 20, 20, nodes=None, lesions=(15,)), bone=NOT_INVOLVED)
    assert response_of(tp, Component.METASTASES) is R.PR


# --- bone marrow -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("baseline", "current", "expected"),
    [
        (30, 0, R.CR),
        (0, 0, R.NI),
        (0, 3, R.MD),
        (0, 5, R.MD),  # 5% is minimal disease, not PD
        (0, 5.1, R.PD),  # negative marrow now above 5%
        (3, 3, R.MD),
        (30, 3, R.MD),
        (30, 20, R.SD),
        (10, 21, R.PD),  # more than twofold and above 20%
        (10, 20, R.SD),  # exactly twofold and not above 20%
        (15, 30, R.SD),  # exactly twofold
        (12, 25, R.PD),
        (8, 17, R.SD),  # more than twofold but not above 20%
    ],
)
def test_bone_marrow(baseline: float, current: float, expected: R) -> None:
    marrow = BoneMarrow(baseline_pct=baseline, current_pct=current)
    assert response_of(replace(STABLE, marrow=marrow), Component.BONE_MARROW) is expected


# --- overall response ----------------------------------------------------------------

P_CR = PrimaryTumour(baseline_mm=50, nadir_mm=5, current_mm=5, uptake_resolved=True)
P_PR = PrimaryTumour(baseline_mm=50, nadir_mm=30, current_mm=30, uptake_resolved=False)
P_SD = PrimaryTumour(baseline_mm=50, nadir_mm=45, current_mm=45, uptake_resolved=False)
P_PD = PrimaryTumour(baseline_mm=50, nadir_mm=30, current_mm=40, uptake_resolved=False)
BONE_CR = MibgBone(MibgScale.CURIE, 10, 0)
BONE_PR = MibgBone(MibgScale.CURIE, 10, 4)
BONE_SD = MibgBone(MibgScale.CURIE, 10, 8)
M_CR = BoneMarrow(baseline_pct=30, current_pct=0)
M_MD = BoneMarrow(baseline_pct=30, current_pct=2)
M_SD = BoneMarrow(baseline_pct=30, current_pct=25)


@pytest.mark.parametrize(
    ("primary", "bone", "marrow", "expected"),
    [
        (P_CR, BONE_CR, M_CR, OV.CR),
        (NOT_INVOLVED, BONE_CR, NOT_INVOLVED, OV.CR),
        (P_PR, BONE_CR, M_MD, OV.PR),
        (P_CR, BONE_CR, M_MD, OV.PR),  # minimal marrow disease keeps CR elsewhere at PR
        (P_PR, BONE_PR, M_CR, OV.PR),
        (P_PR, BONE_SD, M_CR, OV.MR),
        (P_SD, BONE_CR, M_SD, OV.MR),
        (P_SD, NOT_INVOLVED, M_SD, OV.SD),
        (P_SD, BONE_SD, M_MD, OV.SD),  # MD is not a CR or PR, so no MR
        (P_PD, BONE_CR, M_CR, OV.PD),
        (P_CR, BONE_CR, BoneMarrow(baseline_pct=0, current_pct=6), OV.PD),
        (P_CR, MibgBone(MibgScale.CURIE, 10, 12), M_CR, OV.PD),
    ],
)
def test_overall_response(
    primary: PrimaryTumour,
    bone: MibgBone,
    marrow: BoneMarrow,
    expected: OverallResponse,
) -> None:
    tp = InrcTimePoint(
        primary=primary,
        soft_tissue=NOT_INVOLVED,
        bone=bone,
        marrow=marrow,
        new_lesions=NewLesions(),
    )
    result = assess(tp)
    assert result.overall is expected
    assert result.reasoning
    assert all(sentence.endswith(".") for sentence in result.reasoning)


def test_missing_component_makes_time_point_ne_and_names_it() -> None:
    result = assess(replace(STABLE, marrow=None))
    assert result.overall is OV.NE
    assert result.missing == ("bone marrow assessment",)
    assert any("bone marrow assessment" in sentence for sentence in result.reasoning)


def test_pd_elsewhere_decides_despite_missing_component() -> None:
    result = assess(replace(STABLE, primary=P_PD, marrow=None))
    assert result.overall is OV.PD
    assert result.missing == ("bone marrow assessment",)


def test_nothing_involved_is_an_error() -> None:
    tp = InrcTimePoint(
        primary=NOT_INVOLVED,
        soft_tissue=NOT_INVOLVED,
        bone=NOT_INVOLVED,
        marrow=NOT_INVOLVED,
        new_lesions=NewLesions(),
    )
    with pytest.raises(ResponseError):
        assess(tp)


# --- criteria and input checks ----------------------------------------------------------


def test_exact_20_percent_is_pd_only_when_the_protocol_says_so() -> None:
    primary = PrimaryTumour(baseline_mm=30, nadir_mm=25, current_mm=30, uptake_resolved=False)
    tp = replace(STABLE, primary=primary)
    assert response_of(tp, Component.PRIMARY) is R.SD
    inclusive = InrcCriteria(pd_increase_inclusive=True)
    assert response_of(tp, Component.PRIMARY, inclusive) is R.PD


@pytest.mark.parametrize(
    "build",
    [
        lambda: InrcCriteria(pd_min_absolute_mm=-1),
        lambda: InrcCriteria(pr_decrease=0),
        lambda: InrcCriteria(unconfirmed=("no_such_threshold",)),
    ],
)
def test_bad_criteria_are_refused(build: Callable[[], object]) -> None:
    with pytest.raises(ResponseError):
        build()


def test_unconfirmed_thresholds_are_reported() -> None:
    result = assess(STABLE)
    assert "node_cr_short_axis_mm" in result.unconfirmed
    assert set(result.unconfirmed) <= set(UNCONFIRMED_NOTES)
    assert assess(STABLE, InrcCriteria(unconfirmed=())).unconfirmed == ()


@pytest.mark.parametrize(
    ("build", "where"),
    [
        (lambda: PrimaryTumour(50, 60, 40, False), "primary.nadir_mm"),
        (lambda: PrimaryTumour(0, 0, 0, False), "primary.baseline_mm"),
        (lambda: PrimaryTumour(50, 50, -1, False), "primary.current_mm"),
        (lambda: soft(40, 50, 40), "soft_tissue.nadir_sum_mm"),
        (lambda: soft(40, 40, 40, nodes=(-1,)), "soft_tissue.node_short_axes_mm"),
        (lambda: MibgBone(MibgScale.CURIE, 31, 0), "bone.baseline_score"),
        (lambda: MibgBone(MibgScale.SIOPEN, 10, 73), "bone.current_score"),
        (lambda: FdgBone(-1, 0), "bone.baseline_lesions"),
        (lambda: BoneMarrow(baseline_pct=101, current_pct=0), "marrow.baseline_pct"),
    ],
)
def test_bad_input_names_the_field(build: Callable[[], object], where: str) -> None:
    with pytest.raises(ResponseError) as caught:
        build()
    assert caught.value.where == where
