"""Read response-assessment documents (JSON) into the INRC 2017 and RECIST 1.1 inputs.

Examples are in ``examples/response/``. A key that is absent (or ``null``) means the
component or measurement was not assessed: the cores then make the time point NE and
name what is missing. ``"not_involved"`` marks a component with no disease at baseline.
Errors name the JSON path and the reason.

>>> tp = inrc_time_point({"primary": "not_involved", "marrow": {"baseline_pct": 10,
...                       "current_pct": 0}, "new_lesions": {}})
>>> tp.soft_tissue is None, tp.marrow
(True, BoneMarrow(baseline_pct=10.0, current_pct=0.0))
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trialdesk.documents import as_json_text, plain_reason
from trialdesk.errors import ResponseError, TrialdeskError
from trialdesk.response import inrc, recist


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


NotInvolvedText = Literal["not_involved"]


class _Primary(_Doc):
    baseline_mm: float | None = None
    nadir_mm: float | None = None
    current_mm: float | None = None
    uptake_resolved: bool | None = None


class _SoftTissue(_Doc):
    baseline_sum_mm: float | None = None
    nadir_sum_mm: float | None = None
    current_sum_mm: float | None = None
    node_short_axes_mm: list[float] | None = None
    lesion_diameters_mm: list[float] | None = None
    uptake_resolved: bool | None = None


class _Mibg(_Doc):
    scale: inrc.MibgScale
    baseline_score: float | None = None
    current_score: float | None = None


class _Fdg(_Doc):
    baseline_lesions: int | None = None
    current_lesions: int | None = None


class _Bone(_Doc):
    mibg: _Mibg | None = None
    fdg: _Fdg | None = None


class _Marrow(_Doc):
    baseline_pct: float | None = None
    current_pct: float | None = None


class _NewLesions(_Doc):
    soft_tissue: bool = False
    mibg_bone_site: bool = False
    fdg_bone_site: bool = False


class InrcDocument(_Doc):
    """One INRC 2017 time point."""

    primary: _Primary | NotInvolvedText | None = None
    soft_tissue: _SoftTissue | NotInvolvedText | None = None
    bone: _Bone | NotInvolvedText | None = None
    marrow: _Marrow | NotInvolvedText | None = None
    new_lesions: _NewLesions | None = None


def _path(loc: tuple[int | str, ...]) -> str:
    parts = [p for p in loc if not (isinstance(p, str) and (p[:1] == "_" or "[" in p or p == "literal"))]
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _validate(model: type[_Doc], data: Any, source: str) -> Any:
    if not isinstance(data, dict):
        raise ResponseError("a response document is a JSON object", where=source)
    try:
        return model.model_validate_json(as_json_text(data, ResponseError, where=source), strict=True)
    except ValidationError as exc:
        errors = exc.errors()
        first = max(errors, key=lambda e: len(e["loc"]))
        raise ResponseError(plain_reason(first), where=f"{source}: {_path(first['loc'])}") from None


def inrc_time_point(data: Any, *, source: str = "<document>") -> inrc.InrcTimePoint:
    """An :class:`~trialdesk.response.inrc.InrcTimePoint` from a JSON document."""
    doc: InrcDocument = _validate(InrcDocument, data, source)
    try:
        primary = _component(doc.primary, lambda p: inrc.PrimaryTumour(
            p.baseline_mm, p.nadir_mm, p.current_mm, p.uptake_resolved))
        soft = _component(doc.soft_tissue, lambda s: inrc.SoftTissueMetastases(
            s.baseline_sum_mm, s.nadir_sum_mm, s.current_sum_mm,
            None if s.node_short_axes_mm is None else tuple(s.node_short_axes_mm),
            None if s.lesion_diameters_mm is None else tuple(s.lesion_diameters_mm),
            s.uptake_resolved))
        bone = _component(doc.bone, _bone)
        marrow = _component(doc.marrow, lambda m: inrc.BoneMarrow(m.baseline_pct, m.current_pct))
    except TrialdeskError as exc:
        raise ResponseError(exc.reason, where=f"{source}: {exc.where}") from None
    new = doc.new_lesions
    return inrc.InrcTimePoint(
        primary=primary, soft_tissue=soft, bone=bone, marrow=marrow,
        new_lesions=None if new is None else inrc.NewLesions(new.soft_tissue, new.mibg_bone_site,
                                                             new.fdg_bone_site),
    )


def _component(value: Any, build: Any) -> Any:
    if value is None:
        return None
    if value == "not_involved":
        return inrc.NOT_INVOLVED
    return build(value)


def _bone(b: _Bone) -> inrc.MibgBone | inrc.FdgBone:
    if (b.mibg is None) == (b.fdg is None):
        raise ResponseError("give exactly one of 'mibg' or 'fdg'", where="bone")
    if b.mibg is not None:
        return inrc.MibgBone(b.mibg.scale, b.mibg.baseline_score, b.mibg.current_score)
    assert b.fdg is not None  # by the check above
    return inrc.FdgBone(b.fdg.baseline_lesions, b.fdg.current_lesions)


# --------------------------------------------------------------------------- RECIST


class _Lesion(_Doc):
    id: str
    organ: str
    kind: recist.LesionKind
    method: recist.Method
    size_mm: float | None = None
    slice_thickness_mm: float | None = None

    def lesion(self) -> recist.Lesion:
        return recist.Lesion(self.id, self.organ, self.kind, self.method, self.size_mm,
                             self.slice_thickness_mm)


class _Baseline(_Doc):
    targets: list[_Lesion] = []
    non_targets: list[_Lesion] = []


class _TimePoint(_Doc):
    day: int
    new_lesions: bool
    targets: dict[str, float | None] = {}
    non_targets: dict[str, recist.NonTargetStatus] = {}


class _BorRule(_Doc):
    confirmation_required: bool
    min_sd_days: int
    min_confirmation_days: int | None = None


class RecistDocument(_Doc):
    """A RECIST 1.1 series: baseline, time points and, optionally, the BOR rule."""

    baseline: _Baseline
    time_points: list[_TimePoint] = Field(min_length=1)
    best_overall_response: _BorRule | None = None


def recist_series(
    data: Any, *, source: str = "<document>"
) -> tuple[recist.Baseline, tuple[recist.TimePoint, ...], recist.BorRule | None]:
    """Baseline, time points and BOR rule from a JSON document."""
    doc: RecistDocument = _validate(RecistDocument, data, source)
    try:
        baseline = recist.Baseline(
            targets=tuple(t.lesion() for t in doc.baseline.targets),
            non_targets=tuple(t.lesion() for t in doc.baseline.non_targets),
        )
        points = tuple(
            recist.TimePoint(day=tp.day, new_lesions=tp.new_lesions, targets=dict(tp.targets),
                             non_targets=dict(tp.non_targets))
            for tp in doc.time_points
        )
        rule = None
        if doc.best_overall_response is not None:
            r = doc.best_overall_response
            rule = recist.BorRule(confirmation_required=r.confirmation_required,
                                  min_sd_days=r.min_sd_days,
                                  min_confirmation_days=r.min_confirmation_days)
    except TrialdeskError as exc:
        raise ResponseError(exc.reason, where=f"{source}: {exc.where}") from None
    return baseline, points, rule


__all__ = ["InrcDocument", "RecistDocument", "inrc_time_point", "recist_series"]
