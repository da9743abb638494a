"""RECIST 1.1: target selection, time-point response and best overall response.

Source: Eisenhauer EA, Therasse P, Bogaerts J et al. New response evaluation criteria
in solid tumours: revised RECIST guideline (version 1.1). Eur J Cancer 2009;45:228–47.
Section titles and table numbers in the comments refer to that paper.

Sizes are millimetres: the longest diameter of a non-nodal lesion, the short axis of a
lymph node. A lesion that has disappeared is entered as 0 mm; one the radiologist calls
"too small to measure" is entered as 5 mm (Eisenhauer 2009, special notes on the
assessment of target lesions). ``day`` counts days from the start of treatment, which is
when the baseline assessment stands.

>>> base = Baseline(targets=(
...     Lesion("L1", "liver", LesionKind.NON_NODAL, Method.CT, 40),
...     Lesion("N1", "mediastinal node", LesionKind.LYMPH_NODE, Method.CT, 20),
... ))
>>> results = assess_series(base, [
...     TimePoint(day=42, targets={"L1": 20, "N1": 12}, new_lesions=False),
...     TimePoint(day=84, targets={"L1": 0, "N1": 9}, new_lesions=False),
... ])
>>> [r.overall.value for r in results]
['PR', 'CR']
>>> rule = BorRule(confirmation_required=True, min_confirmation_days=28, min_sd_days=42)
>>> best_overall_response(results, rule).response.value
'PR'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from itertools import pairwise

from trialdesk.errors import ResponseError

# --- thresholds -------------------------------------------------------------------
# Eisenhauer 2009, "Measurable" (tumour lesions): at least 10 mm by CT (slice
# thickness no greater than 5 mm; otherwise twice the slice thickness), 10 mm by
# caliper, 20 mm by chest X-ray.
MEASURABLE_CT_MM = Fraction(10)
MAX_SLICE_FOR_10_MM = Fraction(5)
MEASURABLE_CALIPER_MM = Fraction(10)
MEASURABLE_CHEST_XRAY_MM = Fraction(20)
# Eisenhauer 2009, "Malignant lymph nodes": measurable when >=15 mm in short axis;
# 10 to <15 mm is pathological but non-measurable; <10 mm is normal.
MEASURABLE_NODE_SHORT_AXIS_MM = Fraction(15)
NORMAL_NODE_SHORT_AXIS_MM = Fraction(10)
# Eisenhauer 2009, "Target lesions": a maximum of two lesions per organ and five in total.
MAX_TARGETS = 5
MAX_TARGETS_PER_ORGAN = 2
# Eisenhauer 2009, "Evaluation of target lesions": PR is at least a 30% decrease of the
# sum against the baseline sum; PD is at least a 20% increase against the smallest sum
# on study (the baseline sum included) and an absolute increase of at least 5 mm.
PR_DECREASE = Fraction(30, 100)
PD_INCREASE = Fraction(20, 100)
PD_MIN_ABSOLUTE_MM = Fraction(5)


def _exact(value: float) -> Fraction:
    """A measurement as an exact fraction, so that 30.0% is 30% and not 29.999…%."""
    return Fraction(repr(float(value)))


def _mm(value: Fraction | float) -> str:
    number = float(value)
    return f"{number:g} mm"


def _pct(value: Fraction) -> str:
    return f"{float(value * 100):.1f}%"


class LesionKind(StrEnum):
    """Non-nodal lesions are measured by longest diameter, lymph nodes by short axis."""

    NON_NODAL = "non_nodal"
    LYMPH_NODE = "lymph_node"


class Method(StrEnum):
    """How a lesion is measured (Eisenhauer 2009, "Specifications by methods")."""

    CT = "ct"
    MRI = "mri"
    CALIPER = "caliper"
    CHEST_XRAY = "chest_xray"
    ULTRASOUND = "ultrasound"
    OTHER = "other"


class NonTargetStatus(StrEnum):
    """What is seen of one non-target lesion at a time point.

    ``ABSENT`` also covers a lymph node whose short axis is back below 10 mm.
    """

    ABSENT = "absent"
    PRESENT = "present"
    UNEQUIVOCAL_PROGRESSION = "unequivocal_progression"
    NOT_EVALUATED = "not_evaluated"


class TargetResponse(StrEnum):
    CR = "CR"
    PR = "PR"
    SD = "SD"
    PD = "PD"
    NE = "NE"


class NonTargetResponse(StrEnum):
    CR = "CR"
    NON_CR_NON_PD = "non-CR/non-PD"
    PD = "PD"
    NE = "NE"


class Response(StrEnum):
    """Overall response at a time point, and best overall response."""

    CR = "CR"
    PR = "PR"
    SD = "SD"
    NON_CR_NON_PD = "non-CR/non-PD"
    PD = "PD"
    NE = "NE"


@dataclass(frozen=True)
class Lesion:
    """One lesion recorded at baseline.

    >>> Lesion("N2", "axillary node", LesionKind.LYMPH_NODE, Method.CT, 12).size_mm
    12
    """

    lesion_id: str
    organ: str
    kind: LesionKind
    method: Method
    size_mm: float | None = None
    slice_thickness_mm: float | None = None

    def __post_init__(self) -> None:
        where = f"lesion {self.lesion_id!r}"
        if not self.lesion_id.strip():
            raise ResponseError("a lesion needs a non-empty id", where="lesion")
        if not self.organ.strip():
            raise ResponseError("organ must not be empty", where=where)
        if self.size_mm is not None and self.size_mm < 0:
            raise ResponseError(f"size must not be negative, got {self.size_mm}", where=where)
        if self.slice_thickness_mm is not None and self.slice_thickness_mm <= 0:
            raise ResponseError("slice thickness must be positive", where=where)


def measurable_minimum_mm(lesion: Lesion) -> float | None:
    """Smallest size at which ``lesion`` is measurable by its method, or None if never.

    >>> measurable_minimum_mm(Lesion("L1", "lung", LesionKind.NON_NODAL, Method.CT, 12))
    10.0
    >>> measurable_minimum_mm(Lesion("L2", "lung", LesionKind.NON_NODAL, Method.ULTRASOUND))
    """
    if lesion.kind is LesionKind.LYMPH_NODE:
        # Eisenhauer 2009, "Malignant lymph nodes": short axis by cross-sectional imaging.
        if lesion.method in (Method.CT, Method.MRI):
            return float(MEASURABLE_NODE_SHORT_AXIS_MM)
        return None
    if lesion.method in (Method.CT, Method.MRI):
        minimum = MEASURABLE_CT_MM
        if lesion.slice_thickness_mm is not None:
            slice_mm = _exact(lesion.slice_thickness_mm)
            if slice_mm > MAX_SLICE_FOR_10_MM:
                minimum = 2 * slice_mm
        return float(minimum)
    if lesion.method is Method.CALIPER:
        return float(MEASURABLE_CALIPER_MM)
    if lesion.method is Method.CHEST_XRAY:
        return float(MEASURABLE_CHEST_XRAY_MM)
    # Eisenhauer 2009: ultrasound should not be used to measure lesions.
    return None


def validate_targets(targets: Sequence[Lesion]) -> None:
    """Check a baseline choice of target lesions; raise :class:`ResponseError` if wrong.

    Every target must be measurable, and there may be at most five in total and two per
    organ (Eisenhauer 2009, "Target lesions"). The error names the offending lesion.

    >>> validate_targets([Lesion("L1", "liver", LesionKind.NON_NODAL, Method.CT, 9)])
    Traceback (most recent call last):
    ...
    trialdesk.errors.ResponseError: target lesion 'L1': not measurable: 9 mm on ct, \
RECIST 1.1 needs at least 10 mm
    """
    per_organ: dict[str, list[str]] = {}
    for index, lesion in enumerate(targets):
        where = f"target lesion {lesion.lesion_id!r}"
        minimum = measurable_minimum_mm(lesion)
        if minimum is None:
            raise ResponseError(
                f"a {lesion.kind.value.replace('_', '-')} lesion measured by "
                f"{lesion.method.value} is not measurable under RECIST 1.1",
                where=where,
            )
        if lesion.size_mm is None:
            raise ResponseError("a target lesion needs its baseline size", where=where)
        if _exact(lesion.size_mm) < _exact(minimum):
            axis = "short axis" if lesion.kind is LesionKind.LYMPH_NODE else ""
            size = f"{_mm(lesion.size_mm)} {axis}".rstrip()
            raise ResponseError(
                f"not measurable: {size} on {lesion.method.value}, "
                f"RECIST 1.1 needs at least {_mm(minimum)}",
                where=where,
            )
        if index >= MAX_TARGETS:
            raise ResponseError(
                f"RECIST 1.1 allows at most {MAX_TARGETS} target lesions in total", where=where
            )
        organ = lesion.organ.strip().casefold()
        per_organ.setdefault(organ, []).append(lesion.lesion_id)
        if len(per_organ[organ]) > MAX_TARGETS_PER_ORGAN:
            others = ", ".join(per_organ[organ][:-1])
            raise ResponseError(
                f"RECIST 1.1 allows at most {MAX_TARGETS_PER_ORGAN} target lesions per organ; "
                f"{lesion.organ} already has {others}",
                where=where,
            )


@dataclass(frozen=True)
class Baseline:
    """Target and non-target lesions recorded before treatment; validated on creation."""

    targets: tuple[Lesion, ...]
    non_targets: tuple[Lesion, ...] = ()

    def __post_init__(self) -> None:
        if not self.targets and not self.non_targets:
            raise ResponseError("no lesion recorded at baseline", where="baseline")
        validate_targets(self.targets)
        seen: set[str] = set()
        for lesion in (*self.targets, *self.non_targets):
            if lesion.lesion_id in seen:
                raise ResponseError("lesion id used twice", where=f"lesion {lesion.lesion_id!r}")
            seen.add(lesion.lesion_id)

    @property
    def sum_mm(self) -> float | None:
        """Baseline sum of diameters, or None when there is no target lesion."""
        if not self.targets:
            return None
        return float(sum((_exact(t.size_mm or 0) for t in self.targets), Fraction(0)))


@dataclass(frozen=True, kw_only=True)
class TimePoint:
    """Findings at one assessment.

    ``targets`` maps target lesion ids to their size now (None or absent: not measured);
    ``non_targets`` maps non-target ids to a :class:`NonTargetStatus` (absent from the
    mapping: not evaluated). ``new_lesions`` says whether an unequivocal new lesion was
    seen.
    """

    day: int
    new_lesions: bool
    targets: Mapping[str, float | None] = field(default_factory=dict)
    non_targets: Mapping[str, NonTargetStatus] = field(default_factory=dict)


@dataclass(frozen=True)
class TimePointResult:
    """Response at one time point, with each step of the reasoning as a sentence."""

    day: int
    target: TargetResponse | None
    non_target: NonTargetResponse | None
    new_lesions: bool
    overall: Response
    sum_mm: float | None
    nadir_mm: float | None
    reasoning: tuple[str, ...]


def _check_ids(baseline: Baseline, time_point: TimePoint) -> None:
    where = f"time point day {time_point.day}"
    target_ids = {t.lesion_id for t in baseline.targets}
    non_target_ids = {t.lesion_id for t in baseline.non_targets}
    for lesion_id, size in time_point.targets.items():
        if lesion_id not in target_ids:
            raise ResponseError(f"{lesion_id!r} is not a baseline target lesion", where=where)
        if size is not None and size < 0:
            raise ResponseError(f"size of {lesion_id!r} must not be negative", where=where)
    for lesion_id in time_point.non_targets:
        if lesion_id not in non_target_ids:
            raise ResponseError(f"{lesion_id!r} is not a baseline non-target lesion", where=where)


def _target_response(
    baseline: Baseline, time_point: TimePoint, nadir: Fraction
) -> tuple[TargetResponse, Fraction | None, list[str]]:
    reasons: list[str] = []
    base_sum = _exact(baseline.sum_mm or 0)
    measured: dict[str, Fraction] = {}
    missing: list[str] = []
    for lesion in baseline.targets:
        size = time_point.targets.get(lesion.lesion_id)
        if size is None:
            missing.append(lesion.lesion_id)
        else:
            measured[lesion.lesion_id] = _exact(size)
    total = sum(measured.values(), Fraction(0))
    pd_floor = max(nadir * (1 + PD_INCREASE), nadir + PD_MIN_ABSOLUTE_MM)
    if missing:
        # Eisenhauer 2009, "Missing assessments and inevaluable designation": NE unless
        # the missing lesions cannot change the response, which holds for PD because
        # they could only add to the sum.
        if total >= pd_floor:
            reasons.append(
                f"Targets {', '.join(missing)} were not measured, but the measured ones "
                f"alone sum to {_mm(total)}, at least 20% and 5 mm above the nadir of "
                f"{_mm(nadir)}: target PD."
            )
            return TargetResponse.PD, None, reasons
        reasons.append(
            f"Targets {', '.join(missing)} were not measured: target response not evaluable."
        )
        return TargetResponse.NE, None, reasons

    nodes_normal = all(
        measured[t.lesion_id] < NORMAL_NODE_SHORT_AXIS_MM
        for t in baseline.targets
        if t.kind is LesionKind.LYMPH_NODE
    )
    non_nodal_gone = all(
        measured[t.lesion_id] == 0 for t in baseline.targets if t.kind is LesionKind.NON_NODAL
    )
    reasons.append(
        f"Sum of target diameters {_mm(total)} (baseline {_mm(base_sum)}, nadir {_mm(nadir)})."
    )
    # Eisenhauer 2009, "Evaluation of target lesions". CR is tested first: nodes below
    # 10 mm are normal, so their short axes count in the sum without being disease.
    if non_nodal_gone and nodes_normal:
        reasons.append(
            "All non-nodal targets have disappeared and every target node is below 10 mm "
            "short axis: target CR."
        )
        return TargetResponse.CR, total, reasons
    increase = total - nadir
    if nadir > 0:
        relative = increase / nadir
        rise = f"{_pct(relative)} and {_mm(increase)} above the nadir"
    else:
        relative = Fraction(1) if increase > 0 else Fraction(0)
        rise = f"{_mm(increase)} above a nadir of 0 mm"
    if relative >= PD_INCREASE and increase >= PD_MIN_ABSOLUTE_MM:
        reasons.append(f"The sum is {rise} (PD needs at least 20% and 5 mm): target PD.")
        return TargetResponse.PD, total, reasons
    change = (total - base_sum) / base_sum
    if -change >= PR_DECREASE:
        reasons.append(
            f"The sum is {_pct(-change)} below baseline (PR needs at least 30%): target PR."
        )
        return TargetResponse.PR, total, reasons
    direction = "below" if change < 0 else "above"
    reasons.append(
        f"The sum is {_pct(abs(change))} {direction} baseline and {rise}: "
        "neither PR nor PD, target SD."
    )
    return TargetResponse.SD, total, reasons


def _non_target_response(
    baseline: Baseline, time_point: TimePoint
) -> tuple[NonTargetResponse, list[str]]:
    statuses = {
        lesion.lesion_id: time_point.non_targets.get(
            lesion.lesion_id, NonTargetStatus.NOT_EVALUATED
        )
        for lesion in baseline.non_targets
    }
    progressed = [k for k, v in statuses.items() if v is NonTargetStatus.UNEQUIVOCAL_PROGRESSION]
    unseen = [k for k, v in statuses.items() if v is NonTargetStatus.NOT_EVALUATED]
    present = [k for k, v in statuses.items() if v is NonTargetStatus.PRESENT]
    # Eisenhauer 2009, "Evaluation of non-target lesions".
    if progressed:
        return NonTargetResponse.PD, [
            f"Non-target {', '.join(progressed)} progressed unequivocally: non-target PD."
        ]
    if unseen:
        return NonTargetResponse.NE, [
            f"Non-target {', '.join(unseen)} not evaluated: non-target response not evaluable."
        ]
    if present:
        return NonTargetResponse.NON_CR_NON_PD, [
            f"Non-target {', '.join(present)} persists: non-target non-CR/non-PD."
        ]
    return NonTargetResponse.CR, [
        "All non-target lesions have disappeared and non-target nodes are below 10 mm: "
        "non-target CR."
    ]


def _overall(
    target: TargetResponse | None, non_target: NonTargetResponse | None, new_lesions: bool
) -> tuple[Response, str]:
    if new_lesions:
        return Response.PD, "A new lesion denotes progression: overall PD."
    if target is TargetResponse.PD or non_target is NonTargetResponse.PD:
        return Response.PD, "Progression in target or non-target disease: overall PD."
    if target is None:
        # Eisenhauer 2009, Table 2 (non-target disease only).
        if non_target is NonTargetResponse.NE:
            return Response.NE, "Non-target disease not evaluated: overall NE (Table 2)."
        if non_target is NonTargetResponse.CR:
            return Response.CR, "Non-target CR and no new lesion: overall CR (Table 2)."
        return Response.NON_CR_NON_PD, (
            "Non-target disease persists, no new lesion: overall non-CR/non-PD (Table 2)."
        )
    # Eisenhauer 2009, Table 1 (target disease, with or without non-target disease).
    if target is TargetResponse.NE:
        return Response.NE, "Targets not all evaluated and no progression: overall NE (Table 1)."
    if target is TargetResponse.CR:
        if non_target in (None, NonTargetResponse.CR):
            return Response.CR, "Target CR, no remaining non-target disease: overall CR (Table 1)."
        return Response.PR, (f"Target CR with non-target {non_target}: overall PR (Table 1).")
    if target is TargetResponse.PR:
        return Response.PR, "Target PR without progression elsewhere: overall PR (Table 1)."
    return Response.SD, "Target SD without progression elsewhere: overall SD (Table 1)."


def assess_time_point(
    baseline: Baseline, time_point: TimePoint, nadir_mm: float | None = None
) -> TimePointResult:
    """Time-point response (Eisenhauer 2009, Tables 1 and 2).

    ``nadir_mm`` is the smallest sum of target diameters recorded before this time point,
    baseline included; it defaults to the baseline sum. :func:`assess_series` keeps it.

    >>> base = Baseline(targets=(Lesion("L1", "lung", LesionKind.NON_NODAL, Method.CT, 50),))
    >>> tp = TimePoint(day=56, targets={"L1": 35}, new_lesions=False)
    >>> assess_time_point(base, tp).overall.value
    'PR'
    """
    _check_ids(baseline, time_point)
    reasons: list[str] = []
    target: TargetResponse | None = None
    total: Fraction | None = None
    nadir: Fraction | None = None
    if baseline.targets:
        nadir = _exact(nadir_mm) if nadir_mm is not None else _exact(baseline.sum_mm or 0)
        if nadir > _exact(baseline.sum_mm or 0):
            raise ResponseError(
                "the nadir cannot exceed the baseline sum", where=f"time point day {time_point.day}"
            )
        target, total, target_reasons = _target_response(baseline, time_point, nadir)
        reasons.extend(target_reasons)
    non_target: NonTargetResponse | None = None
    if baseline.non_targets:
        non_target, non_target_reasons = _non_target_response(baseline, time_point)
        reasons.extend(non_target_reasons)
    reasons.append("A new lesion was seen." if time_point.new_lesions else "No new lesion.")
    overall, sentence = _overall(target, non_target, time_point.new_lesions)
    reasons.append(sentence)
    return TimePointResult(
        day=time_point.day,
        target=target,
        non_target=non_target,
        new_lesions=time_point.new_lesions,
        overall=overall,
        sum_mm=float(total) if total is not None else None,
        nadir_mm=float(nadir) if nadir is not None else None,
        reasoning=tuple(reasons),
    )


def assess_series(
    baseline: Baseline, time_points: Iterable[TimePoint]
) -> tuple[TimePointResult, ...]:
    """Assess time points in order of ``day``, carrying the nadir from one to the next.

    The nadir is the smallest complete sum on study, the baseline sum included
    (Eisenhauer 2009, "Evaluation of target lesions").
    """
    ordered = sorted(time_points, key=lambda tp: tp.day)
    _check_days([tp.day for tp in ordered])
    nadir = baseline.sum_mm
    results: list[TimePointResult] = []
    for time_point in ordered:
        result = assess_time_point(baseline, time_point, nadir)
        results.append(result)
        if result.sum_mm is not None and nadir is not None and result.sum_mm < nadir:
            nadir = result.sum_mm
    return tuple(results)


def _check_days(days: Sequence[int]) -> None:
    for earlier, later in pairwise(days):
        if later == earlier:
            raise ResponseError("two assessments on the same day", where=f"day {later}")
    if days and days[0] <= 0:
        raise ResponseError("assessments come after baseline (day > 0)", where=f"day {days[0]}")


@dataclass(frozen=True, kw_only=True)
class BorRule:
    """How best overall response is derived; the protocol sets every value.

    Eisenhauer 2009, "Confirmation": in non-randomised trials with response as the
    primary endpoint, confirmation of PR and CR is required; in randomised trials or
    where SD or progression is the primary endpoint it is not. The interval before a
    confirming assessment (commonly 4 weeks, 28 days) and the minimum time on study for
    SD ("in general not less than 6–8 weeks", defined in the protocol) are protocol
    parameters.
    """

    confirmation_required: bool
    min_sd_days: int
    min_confirmation_days: int | None = None

    def __post_init__(self) -> None:
        if self.min_sd_days < 0:
            raise ResponseError("must not be negative", where="bor_rule.min_sd_days")
        if self.confirmation_required and self.min_confirmation_days is None:
            raise ResponseError(
                "confirmation is required, so the protocol must set the minimum interval",
                where="bor_rule.min_confirmation_days",
            )
        if self.min_confirmation_days is not None and self.min_confirmation_days <= 0:
            raise ResponseError("must be positive", where="bor_rule.min_confirmation_days")


@dataclass(frozen=True)
class BestOverallResponse:
    """Best overall response, the day of the time point it rests on, and why."""

    response: Response
    day: int | None
    reasoning: tuple[str, ...]


_RESPONDING = (Response.CR, Response.PR)
_STABLE = (Response.SD, Response.NON_CR_NON_PD)


def _confirmed_level(
    results: Sequence[TimePointResult], index: int, interval: int
) -> tuple[Response, int] | None:
    """Confirmed level of the response at ``index``, and the confirming day, if any.

    A later time point at least ``interval`` days on, with no SD or worse in between,
    confirms it; the confirmed level is the lower of the two (Eisenhauer 2009, Table 3).
    """
    first = results[index]
    for later in results[index + 1 :]:
        if later.overall is Response.NE:
            continue
        if later.overall not in _RESPONDING:
            return None
        if later.day - first.day >= interval:
            both_cr = first.overall is Response.CR and later.overall is Response.CR
            return (Response.CR if both_cr else Response.PR), later.day
    return None


def best_overall_response(results: Sequence[TimePointResult], rule: BorRule) -> BestOverallResponse:
    """Best response from the start of treatment until progression.

    >>> base = Baseline(targets=(Lesion("L1", "lung", LesionKind.NON_NODAL, Method.CT, 50),))
    >>> rs = assess_series(base, [TimePoint(day=d, targets={"L1": s}, new_lesions=False)
    ...                           for d, s in [(42, 30), (70, 30), (84, 70)]])
    >>> rule = BorRule(confirmation_required=True, min_confirmation_days=28, min_sd_days=42)
    >>> best_overall_response(rs, rule).response.value
    'PR'
    """
    ordered = sorted(results, key=lambda r: r.day)
    _check_days([r.day for r in ordered])
    reasons: list[str] = []
    stop = next((i for i, r in enumerate(ordered) if r.overall is Response.PD), None)
    on_study = ordered if stop is None else ordered[:stop]
    if stop is not None:
        reasons.append(f"Progression on day {ordered[stop].day}; later time points do not count.")

    interval = rule.min_confirmation_days or 0  # set whenever confirmation is required
    best: tuple[int, Response, int] | None = None  # (rank, response, day)

    def consider(rank: int, response: Response, day: int) -> None:
        nonlocal best
        if best is None or rank > best[0]:
            best = (rank, response, day)

    for index, result in enumerate(on_study):
        if result.overall in _RESPONDING:
            if not rule.confirmation_required:
                consider(3 if result.overall is Response.CR else 2, result.overall, result.day)
                continue
            confirmed = _confirmed_level(on_study, index, interval)
            if confirmed is not None:
                level, confirming_day = confirmed
                reasons.append(
                    f"{result.overall} on day {result.day} confirmed as {level} on day "
                    f"{confirming_day}, at least {interval} days later."
                )
                consider(3 if level is Response.CR else 2, level, result.day)
                continue
            reasons.append(
                f"{result.overall} on day {result.day} is not confirmed; it counts as "
                "stable disease at most (Table 3)."
            )
        if result.overall in _RESPONDING or result.overall in _STABLE:
            label = result.overall if result.overall is Response.NON_CR_NON_PD else Response.SD
            if result.day >= rule.min_sd_days:
                consider(1, label, result.day)
            else:
                reasons.append(
                    f"{label} on day {result.day} is before the minimum of "
                    f"{rule.min_sd_days} days for stable disease."
                )

    if best is not None:
        _, response, day = best
        reasons.append(f"Best overall response: {response} (day {day}).")
        return BestOverallResponse(response, day, tuple(reasons))
    if stop is not None:
        day = ordered[stop].day
        reasons.append("No qualifying response before progression: best overall response PD.")
        return BestOverallResponse(Response.PD, day, tuple(reasons))
    reasons.append("No time point qualifies: best overall response NE.")
    return BestOverallResponse(Response.NE, None, tuple(reasons))


__all__ = [
    "MAX_TARGETS",
    "MAX_TARGETS_PER_ORGAN",
    "Baseline",
    "BestOverallResponse",
    "BorRule",
    "Lesion",
    "LesionKind",
    "Method",
    "NonTargetResponse",
    "NonTargetStatus",
    "Response",
    "TargetResponse",
    "TimePoint",
    "TimePointResult",
    "assess_series",
    "assess_time_point",
    "best_overall_response",
    "measurable_minimum_mm",
    "validate_targets",
]
