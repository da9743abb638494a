"""Response assessments on the web (INRC 2017 for NB-NK-2026, RECIST 1.1 for Refnot R-2) with
the reasoning shown, and the follow-up facts the outcomes need (last contact, death,
second malignancy).

The criteria are the protocol's: an assessment by other criteria is refused. A RECIST 1.1
time point is assessed against the patient's baseline and every earlier time point (the
nadir carries over); its day counts from the calendar's start (day 1), where the baseline
stands (Eisenhauer 2009).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from trialdesk.errors import ResponseError, TrialdeskError
from trialdesk.response import inrc, recist
from trialdesk.response.documents import inrc_time_point, recist_series
from trialdesk.services.accounts import Principal
from trialdesk.services.context import Services
from trialdesk.services.journeys import load_journey
from trialdesk.services.roles import Permission

P = Permission
CRITERIA = {"INRC": "INRC 2017", "RECIST": "RECIST 1.1"}
FOLLOW_UP_KINDS = ("last_contact", "death", "second_malignancy")
# The shapes of the findings (``trialdesk.response.documents``), shown beside the form.
EXAMPLES = {
    "INRC 2017 time point": {
        "primary": {"baseline_mm": 60, "nadir_mm": 60, "current_mm": 40,
                    "uptake_resolved": False},
        "soft_tissue": "not_involved",
        "bone": {"mibg": {"scale": "curie", "baseline_score": 12, "current_score": 4}},
        "marrow": {"baseline_pct": 30, "current_pct": 3},
        "new_lesions": {"soft_tissue": False, "mibg_bone_site": False, "fdg_bone_site": False}},
    "RECIST 1.1 baseline": {
        "targets": [{"id": "L1", "organ": "liver", "kind": "non_nodal", "method": "ct",
                     "size_mm": 40}],
        "non_targets": [{"id": "B1", "organ": "bone", "kind": "non_nodal", "method": "other"}]},
    "RECIST 1.1 time point": {"targets": {"L1": 30}, "non_targets": {"B1": "present"},
                              "new_lesions": False},
}


def protocol_criteria(protocol: Any, arm: str | None) -> list[str]:
    """The response criteria the protocol's assessments name (``INRC``, ``RECIST``)."""
    named = {x.criteria for a in protocol.arms if arm in (None, a.id) for x in a.assessments
             if x.criteria}
    return sorted(k for k, v in CRITERIA.items() if any(k in c.upper() for c in named))


def _error(exc: TrialdeskError) -> ResponseError:
    where = exc.where or "document"
    if where.startswith("document: "):
        where = "document" + where[len("document: "):].removeprefix("$")
    return ResponseError(exc.reason, where=where)


def _inrc_result(result: inrc.InrcResult) -> dict[str, Any]:
    return {"overall": result.overall.value,
            "components": [{"component": c.component.value, "response": c.response.value,
                            "reasoning": list(c.reasoning), "missing": list(c.missing)}
                           for c in result.components],
            "reasoning": list(result.reasoning), "missing": list(result.missing),
            "unconfirmed": [{"name": n, "note": inrc.UNCONFIRMED_NOTES.get(n, "")}
                            for n in result.unconfirmed]}


def _tp_result(r: recist.TimePointResult) -> dict[str, Any]:
    return {"day": r.day, "overall": r.overall.value,
            "target": r.target.value if r.target else None,
            "non_target": r.non_target.value if r.non_target else None,
            "sum_mm": r.sum_mm, "nadir_mm": r.nadir_mm, "reasoning": list(r.reasoning)}


def _series(baseline: dict[str, Any], points: list[dict[str, Any]]) -> dict[str, Any]:
    return {"baseline": baseline, "time_points": points}


def assess_response(ctx: Services, who: Principal, study_number: str, *, criteria: str,
                    kind: str, assessed_on: date, document: dict[str, Any],
                    permission: Permission = P.RESPONSE_RECORD) -> dict[str, Any]:
    """Assess one response assessment without storing it: the document as it would be
    stored, the result with its reasoning, the overall response and the record version."""
    loaded = load_journey(ctx, who, study_number, permission)
    allowed = protocol_criteria(loaded.protocol, loaded.journey.arm)
    if allowed and criteria not in allowed:
        raise ResponseError(f"{loaded.protocol.id} assesses response by "
                            f"{', '.join(CRITERIA[c] for c in allowed)}", where="criteria")
    if assessed_on > ctx.store.now().date():
        raise ResponseError(f"{assessed_on.isoformat()} is in the future", where="assessed_on")
    earlier = ctx.store.responses(study_number)
    overall: str | None
    if criteria == "INRC":
        if kind != "time_point":
            raise ResponseError("INRC 2017 assesses time points; there is no separate baseline "
                                "entry (each component carries its baseline)", where="kind")
        try:
            result = _inrc_result(inrc.assess(inrc_time_point(document, source="document")))
        except TrialdeskError as exc:
            raise _error(exc) from None
        overall = result["overall"]
    else:
        baselines = [r for r in earlier if r.criteria == "RECIST" and r.kind == "baseline"]
        if kind == "baseline":
            if baselines:
                raise ResponseError("the RECIST 1.1 baseline is already recorded",
                                    where="kind")
            try:
                base, _, _ = recist_series(_series(document, [{"day": 1, "new_lesions": False}]),
                                           source="document")
            except TrialdeskError as exc:
                raise _error(exc) from None
            result = {"sum_mm": base.sum_mm, "targets": len(base.targets),
                      "non_targets": len(base.non_targets),
                      "reasoning": [f"Baseline: {len(base.targets)} target lesion(s), sum of "
                                    f"diameters {base.sum_mm:g} mm." if base.sum_mm is not None
                                    else "Baseline: no target lesion."]}
            overall = None
        else:
            if not baselines:
                raise ResponseError("record the RECIST 1.1 baseline first", where="kind")
            start = loaded.journey.start
            if start is None:
                raise ResponseError("the calendar has no start date (day 1) to count from",
                                    where="assessed_on")
            day = (assessed_on - start).days
            points = [r.document for r in earlier if r.criteria == "RECIST"
                      and r.kind == "time_point"] + [{**document, "day": day}]
            try:
                base, tps, _ = recist_series(_series(baselines[0].document, points),
                                             source="document")
                results = recist.assess_series(base, tps)
            except TrialdeskError as exc:
                raise _error(exc) from None
            result = _tp_result(next(r for r in results if r.day == day))
            document = {**document, "day": day}
            overall = result["overall"]
    return {"criteria": criteria, "criteria_name": CRITERIA[criteria], "kind": kind,
            "assessed_on": assessed_on.isoformat(), "overall": overall, "document": document,
            "result": result, "version": loaded.version}


def record_response(ctx: Services, who: Principal, study_number: str, *, criteria: str,
                    kind: str, assessed_on: date, document: dict[str, Any],
                    reason: str) -> dict[str, Any]:
    """Assess and store one response assessment; the result carries the reasoning."""
    done = assess_response(ctx, who, study_number, criteria=criteria, kind=kind,
                           assessed_on=assessed_on, document=document)
    row = ctx.store.add_response(study_number, criteria=criteria, kind=kind,
                                 assessed_on=assessed_on.isoformat(), overall=done["overall"],
                                 document=done["document"], result=done["result"],
                                 expected_version=done["version"], actor=who.username,
                                 reason=reason)
    return response_view(row)


def response_view(row: Any) -> dict[str, Any]:
    return {"id": row.id, "criteria": row.criteria, "criteria_name": CRITERIA[row.criteria],
            "kind": row.kind, "assessed_on": row.assessed_on, "overall": row.overall,
            "document": row.document, "result": row.result, "recorded_at": row.recorded_at,
            "recorded_by": row.recorded_by}


def record_follow_up(ctx: Services, who: Principal, study_number: str, *, kind: str,
                     occurred_on: date, note: str, reason: str) -> dict[str, Any]:
    loaded = load_journey(ctx, who, study_number, P.PATIENT_WRITE)
    if occurred_on > ctx.store.now().date():
        raise ResponseError(f"{occurred_on.isoformat()} is in the future", where="occurred_on")
    enrolled = date.fromisoformat(loaded.row.enrolled_at[:10])
    if occurred_on < enrolled:
        raise ResponseError(f"{occurred_on.isoformat()} is before the enrolment "
                            f"({enrolled.isoformat()})", where="occurred_on")
    if kind == "death":
        if any(f.kind == "death" for f in ctx.store.follow_ups(study_number)):
            raise ResponseError("a death is already recorded", where="kind")
        later = [a.onset for a in ctx.store.adverse_events(study_number)
                 if a.onset > occurred_on.isoformat()]
        if later:
            raise ResponseError(f"an adverse event began on {max(later)}, after this date",
                                where="occurred_on")
    row = ctx.store.add_follow_up(study_number, kind=kind, occurred_on=occurred_on.isoformat(),
                                  note=note, expected_version=loaded.version,
                                  actor=who.username, reason=reason)
    return {"id": row.id, "kind": row.kind, "occurred_on": row.occurred_on, "note": row.note,
            "recorded_at": row.recorded_at, "recorded_by": row.recorded_by}


def responses_page(ctx: Services, who: Principal, study_number: str) -> dict[str, Any]:
    loaded = load_journey(ctx, who, study_number, P.CLINICAL_READ)
    trial, site = loaded.row.trial_id, loaded.row.site
    items = [response_view(r) for r in ctx.store.responses(study_number)]
    criteria = protocol_criteria(loaded.protocol, loaded.journey.arm)
    return {"study_number": study_number, "trial_id": trial, "version": loaded.version,
            "header": loaded.journey.header(), "items": items,
            "criteria": criteria or list(CRITERIA), "start": loaded.row.start,
            "has_recist_baseline": any(i["criteria"] == "RECIST" and i["kind"] == "baseline"
                                       for i in items),
            "follow_ups": [{"kind": f.kind, "occurred_on": f.occurred_on, "note": f.note,
                            "recorded_by": f.recorded_by, "recorded_at": f.recorded_at}
                           for f in ctx.store.follow_ups(study_number)],
            "follow_up_kinds": list(FOLLOW_UP_KINDS),
            "examples": {k: v for k, v in EXAMPLES.items()
                         if any(k.startswith(CRITERIA[c]) for c in criteria or CRITERIA)},
            "can_record": who.can(P.RESPONSE_RECORD, trial, site),
            "can_follow_up": who.can(P.PATIENT_WRITE, trial, site)}


# ---------------------------------------------------------------------------- typed forms

_RECIST_SECTIONS = (("targets", "Target lesions"), ("non_targets", "Non-target lesions"),
                    ("new", "New lesions"))


def _recist_baseline_row(ctx: Services, study_number: str) -> Any:
    return next((r for r in ctx.store.responses(study_number)
                 if r.criteria == "RECIST" and r.kind == "baseline"), None)


def response_form(ctx: Services, who: Principal, study_number: str,
                  criteria: str) -> dict[str, Any]:
    """The typed form of the next assessment by ``criteria``: an INRC 2017 time point, the
    RECIST 1.1 baseline, or a RECIST 1.1 time point of the recorded baseline's lesions
    (with each lesion's size at every earlier time point)."""
    from trialdesk.forms.response import (
        INRC_FIELDS,
        INRC_SECTIONS,
        recist_baseline_fields,
        recist_time_point_fields,
    )

    loaded = load_journey(ctx, who, study_number, P.RESPONSE_RECORD)
    allowed = protocol_criteria(loaded.protocol, loaded.journey.arm)
    if criteria not in CRITERIA or (allowed and criteria not in allowed):
        raise ResponseError(f"{loaded.protocol.id} assesses response by "
                            f"{', '.join(CRITERIA[c] for c in allowed or CRITERIA)}",
                            where="criteria")
    page: dict[str, Any] = {"study_number": study_number, "trial_id": loaded.row.trial_id,
                            "criteria": criteria, "criteria_name": CRITERIA[criteria],
                            "header": loaded.journey.header(), "history": None}
    if criteria == "INRC":
        return {**page, "kind": "time_point", "fields": INRC_FIELDS, "sections": INRC_SECTIONS}
    baseline = _recist_baseline_row(ctx, study_number)
    if baseline is None:
        return {**page, "kind": "baseline", "fields": recist_baseline_fields(),
                "sections": _RECIST_SECTIONS[:2]}
    points = [r for r in ctx.store.responses(study_number)
              if r.criteria == "RECIST" and r.kind == "time_point"]
    history = {"dates": [baseline.assessed_on] + [p.assessed_on for p in points],
               "rows": [[t["id"], t["organ"], *[_mm_text(v) for v in [t.get("size_mm")] + [
                   p.document.get("targets", {}).get(t["id"]) for p in points]]]
                        for t in baseline.document.get("targets", [])]}
    return {**page, "kind": "time_point", "fields": recist_time_point_fields(baseline.document),
            "sections": _RECIST_SECTIONS, "history": history}


def _mm_text(value: Any) -> str:
    return "—" if value is None else f"{value:g} mm"


def preview_from_form(ctx: Services, who: Principal, study_number: str, criteria: str,
                      values: dict[str, str]) -> dict[str, Any]:
    """The response the typed ``values`` give, with its reasoning; nothing stored. Every
    problem is a :class:`~trialdesk.forms.parse.FormError` naming the field by its label."""
    from trialdesk.forms.parse import FormError, _Reader
    from trialdesk.forms.response import (
        field_label,
        inrc_document,
        recist_baseline,
        recist_time_point,
    )

    page = response_form(ctx, who, study_number, criteria)
    r = _Reader(values, ctx.store.now().date())
    assessed_on = r.date("assessed_on", "Date of the assessment")
    if assessed_on is None and not r.problems:
        r.bad("Date of the assessment", "enter the date of the assessment, such as 2026-11-20")
    problems = list(r.problems)
    document: dict[str, Any] = {}
    try:
        if criteria == "INRC":
            earlier = [x.document for x in ctx.store.responses(study_number)
                       if x.criteria == "INRC"]
            document = inrc_document(values, earlier=earlier)
        elif page["kind"] == "baseline":
            document = recist_baseline(values)
        else:
            document = recist_time_point(values, _recist_baseline_row(ctx, study_number).document)
    except FormError as exc:
        problems += exc.problems
    if problems or assessed_on is None:
        raise FormError(problems)
    try:
        done = assess_response(ctx, who, study_number, criteria=criteria, kind=page["kind"],
                               assessed_on=assessed_on, document=document)
    except ResponseError as exc:
        label = field_label(exc.where or "") or (
            "Date of the assessment" if exc.where == "assessed_on" else "Assessment")
        raise FormError([f"{label}: {exc.reason}"]) from None
    return {**page, **done}


def record_from_form(ctx: Services, who: Principal, study_number: str, criteria: str,
                     values: dict[str, str], *, password: str, reason: str) -> dict[str, Any]:
    """Sign and record the assessment the typed ``values`` give: the investigator's
    password again (re-authentication, as for every signature), then the same assessment
    the preview showed, stored with its reasoning."""
    from trialdesk.errors import AccessError
    from trialdesk.forms.parse import FormError

    preview = preview_from_form(ctx, who, study_number, criteria, values)
    try:
        ctx.accounts.confirm_password(who, password)
    except AccessError as exc:
        if exc.status != 401:
            raise
        raise FormError([f"Your password: {exc.reason}"]) from None
    return record_response(ctx, who, study_number, criteria=criteria, kind=preview["kind"],
                           assessed_on=date.fromisoformat(preview["assessed_on"]),
                           document={k: v for k, v in preview["document"].items()
                                     if k != "day"},
                           reason=reason.strip() or f"{CRITERIA[criteria]} assessment signed")
