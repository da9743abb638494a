"""International Neuroblastoma Response Criteria (INRC 2017), one time point at a time.

Source: Park JR, Bagatell R, Cohn SL et al. Revisions to the International
Neuroblastoma Response Criteria: a consensus statement from the National Cancer
Institute Clinical Trials Planning Meeting. J Clin Oncol 2017;35:2580–7 (PMC5676955).
Park's abstract fixes the frame: overall response integrates the primary tumour, soft
tissue and bone metastases, and bone marrow; soft tissue is measured by RECIST; bone by
¹²³I-MIBG, or ¹⁸F-FDG-PET when the tumour is MIBG-non-avid; "bone marrow with ≤ 5%
tumor involvement will be classified as minimal disease"; overall response is CR, PR,
MR, SD or PD.

The numbers inside the component tables (Park Tables 2–5) are taken from the NCI PDQ
summary of INRC 2017 ("Neuroblastoma Treatment, Health Professional Version",
"Revised International Neuroblastoma Response Criteria") and RECIST 1.1, which INRC
adopts; they were not read in Park's tables themselves. :class:`InrcCriteria` holds them
as parameters, names the source of each, and lists the ones still open in
``unconfirmed``; every :class:`InrcResult` carries that list.

An infant first staged L1/L2 (INSS 1/2) who develops a 4S pattern of metastases is
not PD (NCI PDQ); record such disease accordingly rather than as new lesions.

Missing data never becomes a guess: a component without the data it needs is NE and
makes the time point NE, naming what is missing; only PD found in another component
overrides it, because nothing missing could undo PD.

>>> tp = InrcTimePoint(
...     primary=PrimaryTumour(baseline_mm=60, nadir_mm=60, current_mm=40,
...                           uptake_resolved=False),
...     soft_tissue=NOT_INVOLVED,
...     bone=MibgBone(scale=MibgScale.CURIE, baseline_score=12, current_score=4),
...     marrow=BoneMarrow(baseline_pct=30, current_pct=3),
...     new_lesions=NewLesions(),
... )
>>> result = assess(tp)
>>> result.overall.value, [c.response.value for c in result.components]
('PR', ['PR', 'PR', 'MD'])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from types import MappingProxyType

from trialdesk.errors import ResponseError


def _exact(value: float) -> Fraction:
    """A measurement as an exact fraction, so that 30.0% is 30% and not 29.999…%."""
    return Fraction(repr(float(value)))


def _num(value: Fraction | float) -> str:
    return f"{float(value):g}"


def _pct(value: Fraction) -> str:
    return f"{float(value * 100):.1f}%"


class MibgScale(StrEnum):
    """Semi-quantitative MIBG skeletal scores (NCI PDQ; Lewington et al., EJNMMI 2017)."""

    CURIE = "curie"  # 9 skeletal segments + 1 soft-tissue region, 0–3 each: 0–30
    SIOPEN = "siopen"  # 12 skeletal segments, 0–6 each: 0–72


MIBG_SCALE_MAX: Mapping[MibgScale, int] = MappingProxyType(
    {MibgScale.CURIE: 30, MibgScale.SIOPEN: 72}
)


class Component(StrEnum):
    PRIMARY = "primary tumour"
    METASTASES = "soft tissue and bone metastases"
    BONE_MARROW = "bone marrow"


class ComponentResponse(StrEnum):
    """Response of one component. MD exists for bone marrow only."""

    CR = "CR"
    PR = "PR"
    MD = "MD"
    SD = "SD"
    PD = "PD"
    NI = "NI"  # not involved at baseline and not involved now
    NE = "NE"  # data needed for the component is missing


class OverallResponse(StrEnum):
    CR = "CR"
    PR = "PR"
    MR = "MR"
    SD = "SD"
    PD = "PD"
    NE = "NE"


# --- criteria ----------------------------------------------------------------------

UNCONFIRMED_NOTES: Mapping[str, str] = MappingProxyType(
    {
        "node_cr_short_axis_mm": (
            "Lymph-node short axis for CR: 10 mm follows RECIST 1.1, which INRC 2017 "
            "adopts for soft tissue; the NCI PDQ summary of INRC 2017 says 15 mm. "
            "Park 2017 Table 3 not read."
        ),
        "mibg_pr_min_relative": (
            "A floor of 0.1 on the relative MIBG score for PR is recalled from Park 2017 "
            "Table 3 but not read there; no floor is applied unless the protocol sets one."
        ),
        "marrow_pd_from_negative_pct": (
            "Marrow that was negative: PD above 5% follows the abstract's '≤ 5% is minimal "
            "disease'; the NCI PDQ summary says 'at least 5%'. Park 2017 Table 4 not read."
        ),
        "pd_increase_inclusive": (
            "PD needs more than 20% (as recalled from Park 2017 Tables 2–3); the NCI PDQ "
            "summary says 'by 20%' and RECIST 1.1 'at least 20%'. Exactly 20% is not PD "
            "unless the protocol sets pd_increase_inclusive."
        ),
        "primary_pd_reference": (
            "Primary-tumour PD is measured against the smallest diameter on study, as in "
            "RECIST 1.1; Park 2017 Table 2 not read."
        ),
        "component_tables": (
            "The other component thresholds (30% PR, more than 20% and 5 mm PD, relative "
            "MIBG score ≥ 1.2, 50% MIBG or FDG-PET bone PR, marrow twofold and > 20%) and "
            "the overall combinations come from the NCI PDQ summary of Park 2017, not from "
            "Park's Tables 2–5."
        ),
    }
)


@dataclass(frozen=True)
class InrcCriteria:
    """Thresholds of INRC 2017. A protocol that has checked them may clear ``unconfirmed``.

    >>> InrcCriteria().node_cr_short_axis_mm
    10.0
    """

    # Primary CR: "less than 10 mm remaining" at the primary site (NCI PDQ, INRC 2017).
    primary_cr_max_mm: float = 10.0
    # PR: at least 30% decrease of the primary longest diameter and of the sum of
    # non-primary target lesions, against baseline (NCI PDQ, INRC 2017; RECIST 1.1).
    pr_decrease: float = 0.30
    # PD: more than 20% increase against the smallest value on study with at least 5 mm
    # absolute increase (NCI PDQ, INRC 2017: "by 20% with at least 5 mm"; RECIST 1.1).
    pd_increase: float = 0.20
    pd_min_absolute_mm: float = 5.0
    # Whether exactly 20% already counts as PD (see UNCONFIRMED_NOTES).
    pd_increase_inclusive: bool = False
    # Metastatic CR: non-primary lesions below 10 mm (NCI PDQ, INRC 2017; RECIST 1.1).
    lesion_cr_max_mm: float = 10.0
    # Metastatic CR: target lymph nodes below this short axis. RECIST 1.1: 10 mm;
    # NCI PDQ summary of INRC 2017: 15 mm. Unconfirmed against Park Table 3.
    node_cr_short_axis_mm: float = 10.0
    # Bone PR: at least 50% fall of the absolute MIBG score, i.e. relative score ≤ 0.5,
    # or at least 50% fewer FDG-PET-avid bone lesions (NCI PDQ, INRC 2017).
    mibg_pr_max_relative: float = 0.5
    fdg_pr_decrease: float = 0.50
    # Bone PR floor on the relative MIBG score (0.1 recalled from Park Table 3). None: none.
    mibg_pr_min_relative: float | None = None
    # Bone PD: relative MIBG score at least 1.2 (NCI PDQ, INRC 2017).
    mibg_pd_min_relative: float = 1.2
    # Marrow MD: at most 5% tumour (Park 2017 abstract).
    marrow_md_max_pct: float = 5.0
    # Marrow PD from negative: more than this percentage (see UNCONFIRMED_NOTES).
    marrow_pd_from_negative_pct: float = 5.0
    # Marrow PD from positive: more than twofold and more than 20% (NCI PDQ, INRC 2017).
    marrow_pd_fold: float = 2.0
    marrow_pd_min_pct: float = 20.0
    unconfirmed: tuple[str, ...] = field(default=tuple(UNCONFIRMED_NOTES))

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, float | int) and not isinstance(value, bool) and value < 0:
                raise ResponseError(f"must not be negative, got {value}", where=f"criteria.{name}")
        for name in ("pr_decrease", "fdg_pr_decrease"):
            if not 0 < getattr(self, name) <= 1:
                raise ResponseError("must lie in (0, 1]", where=f"criteria.{name}")
        unknown = [name for name in self.unconfirmed if name not in UNCONFIRMED_NOTES]
        if unknown:
            raise ResponseError(
                f"unknown names {unknown}; known: {sorted(UNCONFIRMED_NOTES)}",
                where="criteria.unconfirmed",
            )


DEFAULT_CRITERIA = InrcCriteria()


# --- inputs ------------------------------------------------------------------------


@dataclass(frozen=True)
class NotInvolved:
    """Marks a component, or part of one, that had no disease at baseline."""


NOT_INVOLVED = NotInvolved()


def _check_mm(where: str, **values: float | None) -> None:
    for name, value in values.items():
        if value is not None and value < 0:
            raise ResponseError(f"must not be negative, got {value}", where=f"{where}.{name}")


@dataclass(frozen=True)
class PrimaryTumour:
    """Primary tumour: longest diameter (mm) and MIBG/FDG uptake at the primary site.

    ``nadir_mm`` is the smallest diameter on study before this time point, baseline
    included. ``None`` in any field means it was not assessed.
    """

    baseline_mm: float | None
    nadir_mm: float | None
    current_mm: float | None
    uptake_resolved: bool | None

    def __post_init__(self) -> None:
        _check_mm(
            "primary",
            baseline_mm=self.baseline_mm,
            nadir_mm=self.nadir_mm,
            current_mm=self.current_mm,
        )
        if self.baseline_mm is not None and self.baseline_mm == 0:
            raise ResponseError(
                "a primary tumour of 0 mm at baseline is not involved; use NOT_INVOLVED",
                where="primary.baseline_mm",
            )
        if (
            self.baseline_mm is not None
            and self.nadir_mm is not None
            and self.nadir_mm > self.baseline_mm
        ):
            raise ResponseError("the nadir cannot exceed baseline", where="primary.nadir_mm")


@dataclass(frozen=True)
class SoftTissueMetastases:
    """Non-primary soft-tissue disease, measured as in RECIST 1.1.

    Sums are of the non-primary target lesions (longest diameter, or short axis for a
    node): at baseline, the smallest on study before now (nadir), and now.
    ``node_short_axes_mm`` are today's short axes of the target lymph nodes;
    ``lesion_diameters_mm`` are today's longest diameters of every other non-primary
    lesion, target or not. ``uptake_resolved`` says whether MIBG (or FDG-PET) uptake of
    the non-primary soft-tissue lesions has gone. ``None``: not assessed.
    """

    baseline_sum_mm: float | None
    nadir_sum_mm: float | None
    current_sum_mm: float | None
    node_short_axes_mm: tuple[float, ...] | None
    lesion_diameters_mm: tuple[float, ...] | None
    uptake_resolved: bool | None

    def __post_init__(self) -> None:
        _check_mm(
            "soft_tissue",
            baseline_sum_mm=self.baseline_sum_mm,
            nadir_sum_mm=self.nadir_sum_mm,
            current_sum_mm=self.current_sum_mm,
        )
        for name in ("node_short_axes_mm", "lesion_diameters_mm"):
            sizes = getattr(self, name)
            if sizes is not None and any(size < 0 for size in sizes):
                raise ResponseError("sizes must not be negative", where=f"soft_tissue.{name}")
        if self.baseline_sum_mm is not None and self.baseline_sum_mm == 0:
            raise ResponseError(
                "no measurable soft-tissue disease at baseline; use NOT_INVOLVED",
                where="soft_tissue.baseline_sum_mm",
            )
        if (
            self.baseline_sum_mm is not None
            and self.nadir_sum_mm is not None
            and self.nadir_sum_mm > self.baseline_sum_mm
        ):
            raise ResponseError(
                "the nadir cannot exceed baseline", where="soft_tissue.nadir_sum_mm"
            )


@dataclass(frozen=True)
class MibgBone:
    """MIBG skeletal score (Curie or SIOPEN) at baseline and now."""

    scale: MibgScale
    baseline_score: float | None
    current_score: float | None

    def __post_init__(self) -> None:
        top = MIBG_SCALE_MAX[self.scale]
        for name in ("baseline_score", "current_score"):
            score = getattr(self, name)
            if score is not None and not 0 <= score <= top:
                raise ResponseError(
                    f"a {self.scale.value} score lies between 0 and {top}, got {score}",
                    where=f"bone.{name}",
                )


@dataclass(frozen=True)
class FdgBone:
    """Number of FDG-PET-avid bone lesions, for MIBG-non-avid disease."""

    baseline_lesions: int | None
    current_lesions: int | None

    def __post_init__(self) -> None:
        for name in ("baseline_lesions", "current_lesions"):
            count = getattr(self, name)
            if count is not None and count < 0:
                raise ResponseError("must not be negative", where=f"bone.{name}")


@dataclass(frozen=True)
class NewLesions:
    """New disease since baseline; each one is PD of the metastatic component.

    ``soft_tissue``: a new soft-tissue lesion that is MIBG- or FDG-avid, or
    biopsy-proven. ``mibg_bone_site``: a new MIBG-avid bone site. ``fdg_bone_site``: a
    new FDG-avid bone site in MIBG-non-avid disease (NCI PDQ, INRC 2017).
    """

    soft_tissue: bool = False
    mibg_bone_site: bool = False
    fdg_bone_site: bool = False

    @property
    def any(self) -> bool:
        return self.soft_tissue or self.mibg_bone_site or self.fdg_bone_site


@dataclass(frozen=True)
class BoneMarrow:
    """Percentage of tumour infiltration in bone marrow at baseline and now."""

    baseline_pct: float | None
    current_pct: float | None

    def __post_init__(self) -> None:
        for name in ("baseline_pct", "current_pct"):
            pct = getattr(self, name)
            if pct is not None and not 0 <= pct <= 100:
                raise ResponseError(
                    f"must lie between 0 and 100, got {pct}", where=f"marrow.{name}"
                )

    @property
    def involved_at_baseline(self) -> bool | None:
        """Whether marrow held tumour at baseline (None if the baseline value is missing)."""
        return None if self.baseline_pct is None else self.baseline_pct > 0


@dataclass(frozen=True, kw_only=True)
class InrcTimePoint:
    """Everything INRC 2017 needs at one time point.

    Each component is its data, :data:`NOT_INVOLVED`, or None when not assessed.
    """

    primary: PrimaryTumour | NotInvolved | None
    soft_tissue: SoftTissueMetastases | NotInvolved | None
    bone: MibgBone | FdgBone | NotInvolved | None
    marrow: BoneMarrow | NotInvolved | None
    new_lesions: NewLesions | None


# --- results -----------------------------------------------------------------------


@dataclass(frozen=True)
class ComponentResult:
    """Response of one component, why, and what data it lacked."""

    component: Component
    response: ComponentResponse
    reasoning: tuple[str, ...]
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class InrcResult:
    """Overall and component responses, the reasoning, what is missing, what is open."""

    overall: OverallResponse
    components: tuple[ComponentResult, ...]
    reasoning: tuple[str, ...]
    missing: tuple[str, ...]
    unconfirmed: tuple[str, ...]

    def component(self, which: Component) -> ComponentResult:
        return next(c for c in self.components if c.component is which)


# --- components --------------------------------------------------------------------

_R = ComponentResponse
# One finding: its response, the sentences saying why, and what was missing.
_Finding = tuple[ComponentResponse, tuple[str, ...], tuple[str, ...]]


def _ne(*missing: str) -> _Finding:
    return _R.NE, (), missing


def _is_pd(current: Fraction, nadir: Fraction, c: InrcCriteria) -> bool:
    increase = current - nadir
    if increase < _exact(c.pd_min_absolute_mm):
        return False
    if nadir == 0:
        return True
    relative, threshold = increase / nadir, _exact(c.pd_increase)
    return relative >= threshold if c.pd_increase_inclusive else relative > threshold


def _above_nadir(current: Fraction, nadir: Fraction) -> str:
    increase = current - nadir
    relative = f"{_pct(increase / nadir)}, " if nadir else ""
    return f"{relative}{_num(increase)} mm above the nadir of {_num(nadir)} mm"


def _primary(data: PrimaryTumour | NotInvolved | None, c: InrcCriteria) -> _Finding:
    if data is None:
        return _ne("primary tumour assessment")
    if isinstance(data, NotInvolved):
        return _R.NI, ("No primary tumour at baseline.",), ()
    if data.baseline_mm is None or data.nadir_mm is None or data.current_mm is None:
        values = {"baseline": data.baseline_mm, "nadir": data.nadir_mm, "current": data.current_mm}
        return _ne(*(f"primary tumour {k} diameter" for k, v in values.items() if v is None))
    base, nadir, now = _exact(data.baseline_mm), _exact(data.nadir_mm), _exact(data.current_mm)
    said = f"Primary tumour {_num(now)} mm against {_num(base)} mm at baseline"
    # PD: more than 20% and at least 5 mm above the smallest diameter on study.
    if _is_pd(now, nadir, c):
        return _R.PD, (f"{said}, {_above_nadir(now, nadir)}: PD.",), ()
    # CR: residual soft tissue below 10 mm and MIBG/FDG uptake at the primary resolved.
    if now < _exact(c.primary_cr_max_mm):
        if data.uptake_resolved is None:
            return _ne("MIBG/FDG uptake at the primary site")
        if data.uptake_resolved:
            return (
                _R.CR,
                (f"{said}, below {_num(c.primary_cr_max_mm)} mm, uptake resolved: CR.",),
                (),
            )
    change = (now - base) / base
    # PR: at least 30% smaller than at baseline.
    if -change >= _exact(c.pr_decrease):
        return _R.PR, (f"{said}, {_pct(-change)} smaller: PR.",), ()
    return _R.SD, (f"{said} ({_pct(change)}), {_above_nadir(now, nadir)}: SD.",), ()


def _soft_tissue(data: SoftTissueMetastases | NotInvolved | None, c: InrcCriteria) -> _Finding:
    if data is None:
        return _ne("non-primary soft-tissue lesions")
    if isinstance(data, NotInvolved):
        return _R.NI, ("No non-primary soft-tissue disease at baseline.",), ()
    sums = {
        "baseline": data.baseline_sum_mm,
        "nadir": data.nadir_sum_mm,
        "current": data.current_sum_mm,
    }
    if data.nadir_sum_mm is not None and data.current_sum_mm is not None:
        nadir, now = _exact(data.nadir_sum_mm), _exact(data.current_sum_mm)
        # PD: sum more than 20% and at least 5 mm above the smallest sum on study.
        if _is_pd(now, nadir, c):
            said = f"Sum of non-primary target lesions {_num(now)} mm"
            return _R.PD, (f"{said}, {_above_nadir(now, nadir)}: soft tissue PD.",), ()
    if data.baseline_sum_mm is None or data.current_sum_mm is None or data.nadir_sum_mm is None:
        return _ne(
            *(f"{k} sum of non-primary target lesions" for k, v in sums.items() if v is None)
        )
    base, now = _exact(data.baseline_sum_mm), _exact(data.current_sum_mm)
    node_limit, lesion_limit = _exact(c.node_cr_short_axis_mm), _exact(c.lesion_cr_max_mm)
    nodes, lesions = data.node_short_axes_mm, data.lesion_diameters_mm
    # CR conditions, each True, False, or None when its data is missing.
    conditions: dict[str, bool | None] = {
        "short axes of target lymph nodes": None
        if nodes is None
        else all(_exact(n) < node_limit for n in nodes),
        "diameters of non-primary lesions": None
        if lesions is None
        else all(_exact(d) < lesion_limit for d in lesions),
        "MIBG/FDG uptake of non-primary soft-tissue lesions": data.uptake_resolved,
    }
    if all(conditions.values()):
        return (
            _R.CR,
            (
                f"Non-primary lesions below {_num(lesion_limit)} mm, target nodes below "
                f"{_num(node_limit)} mm short axis, uptake resolved: soft tissue CR.",
            ),
            (),
        )
    if False not in conditions.values():
        # CR is still possible; it turns on data that is missing.
        return _ne(*(k for k, v in conditions.items() if v is None))
    change = (now - base) / base
    said = f"Sum of non-primary target lesions {_pct(abs(change))}"
    if -change >= _exact(c.pr_decrease):
        return _R.PR, (f"{said} below baseline: soft tissue PR.",), ()
    direction = "below" if change < 0 else "above"
    return _R.SD, (f"{said} {direction} baseline: soft tissue SD.",), ()


def _mibg(data: MibgBone, c: InrcCriteria) -> _Finding:
    scale = "Curie" if data.scale is MibgScale.CURIE else "SIOPEN"
    if data.baseline_score is None or data.current_score is None:
        values = {"baseline": data.baseline_score, "current": data.current_score}
        return _ne(*(f"{k} {scale} score" for k, v in values.items() if v is None))
    base, now = _exact(data.baseline_score), _exact(data.current_score)
    if base == 0:
        if now > 0:
            return _R.PD, (f"{scale} score {_num(now)} from 0: new MIBG-avid bone site, PD.",), ()
        return _R.NI, (f"{scale} score 0 at baseline and now: bone not involved.",), ()
    relative = now / base
    said = (
        f"{scale} score {_num(now)} against {_num(base)} at baseline "
        f"(relative score {float(relative):.2f})"
    )
    if relative >= _exact(c.mibg_pd_min_relative):
        return _R.PD, (f"{said}, at least {_num(c.mibg_pd_min_relative)}: bone PD.",), ()
    if now == 0:
        return _R.CR, (f"{said}: MIBG uptake resolved, bone CR.",), ()
    floor = c.mibg_pr_min_relative
    if relative <= _exact(c.mibg_pr_max_relative):
        if floor is None or relative >= _exact(floor):
            return _R.PR, (f"{said}, at most {_num(c.mibg_pr_max_relative)}: bone PR.",), ()
        return _R.SD, (f"{said}, below the PR floor of {_num(floor)}: bone SD.",), ()
    return _R.SD, (f"{said}: neither PR nor PD, bone SD.",), ()


def _fdg(data: FdgBone, c: InrcCriteria) -> _Finding:
    if data.baseline_lesions is None or data.current_lesions is None:
        values = {"baseline": data.baseline_lesions, "current": data.current_lesions}
        return _ne(
            *(f"{k} number of FDG-avid bone lesions" for k, v in values.items() if v is None)
        )
    base, now = data.baseline_lesions, data.current_lesions
    said = f"{now} FDG-avid bone lesions against {base} at baseline"
    if now > base:
        return _R.PD, (f"{said}: a new FDG-avid bone site, bone PD.",), ()
    if base == 0:
        return _R.NI, ("No FDG-avid bone lesion at baseline or now.",), ()
    if now == 0:
        return _R.CR, (f"{said}: FDG uptake resolved, bone CR.",), ()
    if Fraction(base - now, base) >= _exact(c.fdg_pr_decrease):
        return _R.PR, (f"{said}, at least {_pct(_exact(c.fdg_pr_decrease))} fewer: bone PR.",), ()
    return _R.SD, (f"{said}: bone SD.",), ()


def _bone(data: MibgBone | FdgBone | NotInvolved | None, c: InrcCriteria) -> _Finding:
    if data is None:
        return _ne("bone scan (MIBG, or FDG-PET if MIBG-non-avid)")
    if isinstance(data, NotInvolved):
        return _R.NI, ("No bone disease at baseline.",), ()
    return _mibg(data, c) if isinstance(data, MibgBone) else _fdg(data, c)


def _new_lesions(new: NewLesions | None) -> _Finding:
    if new is None:
        return _ne("review for new lesions")
    kinds = [
        text
        for flag, text in (
            (new.soft_tissue, "a new MIBG/FDG-avid or biopsy-proven soft-tissue lesion"),
            (new.mibg_bone_site, "a new MIBG-avid bone site"),
            (new.fdg_bone_site, "a new FDG-avid bone site"),
        )
        if flag
    ]
    if kinds:
        return _R.PD, (f"New disease: {', '.join(kinds)}: PD.",), ()
    return _R.NI, ("No new lesion.",), ()


def _metastases(tp: InrcTimePoint, c: InrcCriteria) -> _Finding:
    """Soft tissue and bone together (new lesions, soft-tissue sum, bone score)."""
    parts = [_new_lesions(tp.new_lesions), _soft_tissue(tp.soft_tissue, c), _bone(tp.bone, c)]
    sentences = tuple(s for _, part_sentences, _ in parts for s in part_sentences)
    missing = tuple(m for _, _, part_missing in parts for m in part_missing)
    responses = [r for r, _, _ in parts]
    if _R.PD in responses:
        return _R.PD, sentences, missing
    if missing:
        return _R.NE, sentences, missing
    # responses[0] is the new-lesion review, NI when nothing new was seen.
    involved = [r for r in responses[1:] if r is not _R.NI]
    if not involved:
        return _R.NI, sentences, ()
    if all(r is _R.CR for r in involved):
        return _R.CR, sentences, ()
    # PR needs PR or better in every involved part, and no new lesion.
    if all(r in (_R.CR, _R.PR) for r in involved):
        return _R.PR, sentences, ()
    return _R.SD, sentences, ()


def _marrow(data: BoneMarrow | NotInvolved | None, c: InrcCriteria) -> _Finding:
    if data is None:
        return _ne("bone marrow assessment")
    if isinstance(data, NotInvolved):
        return _R.NI, ("Bone marrow not involved at baseline.",), ()
    if data.baseline_pct is None or data.current_pct is None:
        values = {"baseline": data.baseline_pct, "current": data.current_pct}
        return _ne(*(f"{k} marrow tumour percentage" for k, v in values.items() if v is None))
    base, now = _exact(data.baseline_pct), _exact(data.current_pct)
    said = f"Marrow tumour {_num(now)}% against {_num(base)}% at baseline"
    md_max = _exact(c.marrow_md_max_pct)
    if base == 0:
        # PD: negative marrow now above 5% (see UNCONFIRMED_NOTES).
        if now > _exact(c.marrow_pd_from_negative_pct):
            limit = _num(c.marrow_pd_from_negative_pct)
            return _R.PD, (f"{said}: negative marrow now above {limit}%, PD.",), ()
        if now == 0:
            return _R.NI, (f"{said}: marrow not involved.",), ()
        return _R.MD, (f"{said}: at most {_num(md_max)}%, MD.",), ()
    # PD: positive marrow more than twofold and above 20%.
    if now > base * _exact(c.marrow_pd_fold) and now > _exact(c.marrow_pd_min_pct):
        fold, floor = _num(c.marrow_pd_fold), _num(c.marrow_pd_min_pct)
        return _R.PD, (f"{said}: more than {fold}-fold and above {floor}%, PD.",), ()
    if now == 0:
        return _R.CR, (f"{said}: no tumour, CR.",), ()
    if now <= md_max:
        return _R.MD, (f"{said}: at most {_num(md_max)}%, MD.",), ()
    return _R.SD, (f"{said}: above {_num(md_max)}% without PD, SD.",), ()


def _result(component: Component, finding: _Finding) -> ComponentResult:
    response, sentences, missing = finding
    if missing:
        name, listed = str(component).capitalize(), ", ".join(missing)
        if response is _R.NE:
            sentences = (*sentences, f"{name} not evaluable: {listed} missing.")
        else:
            sentences = (*sentences, f"{name}: {listed} not assessed.")
    return ComponentResult(component, response, sentences, missing)


# --- overall -----------------------------------------------------------------------


def _overall(components: tuple[ComponentResult, ...]) -> tuple[OverallResponse, str]:
    """Combine component responses (NCI PDQ summary of Park 2017, overall response)."""
    by_response = {c.component: c.response for c in components}
    responses = list(by_response.values())
    if _R.PD in responses:
        pd = [str(k) for k, v in by_response.items() if v is _R.PD]
        return OverallResponse.PD, f"PD in {', '.join(pd)}: overall PD."
    if _R.NE in responses:
        ne = [str(k) for k, v in by_response.items() if v is _R.NE]
        return OverallResponse.NE, f"{', '.join(ne).capitalize()} not evaluable: overall NE."
    involved = [r for r in responses if r is not _R.NI]
    if not involved:
        raise ResponseError(
            "no component was involved at baseline; INRC response needs disease to follow",
            where="time point",
        )
    if all(r is _R.CR for r in involved):
        return OverallResponse.CR, "Every involved component is in CR: overall CR."
    if all(r in (_R.CR, _R.PR, _R.MD) for r in involved):
        return OverallResponse.PR, (
            "Every involved component is CR, PR or (marrow) MD, not all CR: overall PR."
        )
    if any(r in (_R.CR, _R.PR) for r in involved):
        return OverallResponse.MR, (
            "At least one component in CR or PR, another in SD, none in PD: overall MR."
        )
    return OverallResponse.SD, (
        "SD with nothing better than SD or marrow MD elsewhere, none in PD: overall SD."
    )


def assess(time_point: InrcTimePoint, criteria: InrcCriteria = DEFAULT_CRITERIA) -> InrcResult:
    """INRC 2017 component and overall response at one time point.

    >>> tp = InrcTimePoint(primary=None, soft_tissue=NOT_INVOLVED, bone=NOT_INVOLVED,
    ...                    marrow=BoneMarrow(baseline_pct=10, current_pct=0),
    ...                    new_lesions=NewLesions())
    >>> r = assess(tp)
    >>> r.overall.value, r.missing
    ('NE', ('primary tumour assessment',))
    """
    components = (
        _result(Component.PRIMARY, _primary(time_point.primary, criteria)),
        _result(Component.METASTASES, _metastases(time_point, criteria)),
        _result(Component.BONE_MARROW, _marrow(time_point.marrow, criteria)),
    )
    overall, sentence = _overall(components)
    reasoning: list[str] = []
    for component in components:
        reasoning.extend(component.reasoning)
    reasoning.append(sentence)
    missing = tuple(m for c in components for m in c.missing)
    if overall is OverallResponse.PD and missing:
        reasoning.append(
            f"Not assessed: {', '.join(missing)}; PD elsewhere decides the time point."
        )
    return InrcResult(
        overall=overall,
        components=components,
        reasoning=tuple(reasoning),
        missing=missing,
        unconfirmed=tuple(criteria.unconfirmed),
    )


__all__ = [
    "DEFAULT_CRITERIA",
    "NOT_INVOLVED",
    "UNCONFIRMED_NOTES",
    "BoneMarrow",
    "Component",
    "ComponentResponse",
    "ComponentResult",
    "FdgBone",
    "InrcCriteria",
    "InrcResult",
    "InrcTimePoint",
    "MibgBone",
    "MibgScale",
    "NewLesions",
    "NotInvolved",
    "OverallResponse",
    "PrimaryTumour",
    "SoftTissueMetastases",
    "assess",
]
