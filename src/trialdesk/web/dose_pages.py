"""Doses on the calendar: what happened to one dose, recorded from its calendar row (given,
partly given, withheld; delayed goes to the course delay) and corrected from the same page
with a reason, and the pharmacist's sign-off of a whole course on one page; the same
through the API.

The pages work with a plain submit (no JavaScript). A weight beyond the protocol's
weight-change threshold first shows the recomputed dose (a preview step) and is saved only
when recorded again from it; a refused form comes back with every problem named by its
field's label and what was typed kept.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import Field

from trialdesk.errors import TrialdeskError
from trialdesk.forms.parse import unit_text
from trialdesk.services import administrations, course_signoff, journeys
from trialdesk.web.deps import context, csrf
from trialdesk.web.form_pages import Submitted, _refused
from trialdesk.web.pages import render
from trialdesk.web.params import StudyNumber, Who, _In, body_fields

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api", tags=["journey"])

DoseId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[a-z0-9][a-z0-9.\-]*$")]
CourseNumber = Annotated[int, Path(ge=1, le=100)]
Status = Literal["given", "partly_given", "withheld"]
_KEEP = ("csrf_token", "action", "confirmed_weight", "reason")


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------- administration


def _dose_page(request: Request, study_number: str, dose_id: str, values: dict[str, str],
               status: int = 200, **more: Any) -> HTMLResponse:
    ctx = context(request)
    who = ctx.auth.principal(request)
    form = administrations.administration_form(ctx, who, study_number, dose_id)
    moment = journeys.now(ctx)
    return render(request, "dose_record.html", status=status, f=form, values=values,
                  unit_text=unit_text, today=moment.date().isoformat(),
                  now=moment.isoformat(timespec="minutes"),
                  action=f"/patients/{study_number}/calendar/doses/{dose_id}", **more)


@router.get("/patients/{study_number}/calendar/doses/{dose_id}", response_class=HTMLResponse)
def dose_form(request: Request, study_number: StudyNumber, dose_id: DoseId, who: Who,
              status: Status = "given") -> Response:
    """The form of one calendar dose, opened from its row with what happened chosen."""
    who.require_user()
    return _dose_page(request, study_number, dose_id, {"status": status})


@router.post("/patients/{study_number}/calendar/doses/{dose_id}", response_class=HTMLResponse,
             dependencies=[Depends(csrf)])
def dose_submit(request: Request, study_number: StudyNumber, dose_id: DoseId,
                who: Who, data: Submitted) -> Response:
    ctx = context(request)
    values = {k: v for k, v in data.items() if k not in _KEEP}
    if data.get("action") == "edit":
        return _dose_page(request, study_number, dose_id, values)
    try:
        confirmed = _number(data.get("confirmed_weight"))
        try:
            administrations.record_administration(
                ctx, who, study_number, dose_id, values, confirmed_weight=confirmed,
                reason=data.get("reason", "").strip()[:500])
        except TrialdeskError as exc:
            preview = administrations.preview_administration(ctx, who, study_number, dose_id,
                                                             values)
            weight = preview["weight"]
            if weight is not None and weight["exceeded"] and confirmed != weight["to_kg"]:
                return _dose_page(request, study_number, dose_id, values, preview=preview)
            raise exc
    except TrialdeskError as exc:
        problems, code = _refused(exc)
        return _dose_page(request, study_number, dose_id, values, status=code,
                          form_errors=problems)
    return RedirectResponse(f"/patients/{study_number}/calendar#ev-{dose_id}", status_code=303)


@router.post("/patients/{study_number}/calendar/doses/{dose_id}/correction",
             response_class=HTMLResponse, dependencies=[Depends(csrf)])
def dose_correction(request: Request, study_number: StudyNumber, dose_id: DoseId,
                    who: Who, data: Submitted) -> Response:
    """A recorded dose corrected with a reason; a refused correction comes back on the
    page with what was typed."""
    values = {k: v for k, v in data.items() if k not in _KEEP}
    try:
        administrations.correct_administration(
            context(request), who, study_number, dose_id, values,
            reason=data.get("reason", ""))
    except TrialdeskError as exc:
        problems, code = _refused(exc)
        return _dose_page(request, study_number, dose_id, {}, status=code,
                          form_errors=problems, correction=values,
                          correction_reason=data.get("reason", ""))
    return RedirectResponse(f"/patients/{study_number}/calendar#ev-{dose_id}", status_code=303)


class AdministrationIn(_In):
    values: dict[str, str] = Field(
        max_length=40, description="the form's text keyed by field name: status, amount, at, "
        "stopped_at, duration_hours, rate_ml_h, volume_ml, route, lot, by, weight_kg, "
        "height_cm, measured_on, why")


class RecordAdministrationIn(AdministrationIn):
    confirmed_weight: float | None = Field(
        default=None, allow_inf_nan=False,
        description="the weight (kg) whose recomputed dose was seen (the preview); needed "
                    "when the weight changed by more than the protocol's threshold")
    reason: str = Field(default="", max_length=500)


@api_router.get("/patients/{study_number}/calendar/doses/{dose_id}")
def dose_definition(request: Request, study_number: StudyNumber, dose_id: DoseId,
                    who: Who) -> dict[str, Any]:
    """The form of one calendar dose: the planned dose with its working, the route and
    infusion planned, the protocol's weight-change threshold (with its source) and the
    fields (label, type, unit, choices, possible range)."""
    form = administrations.administration_form(context(request), who, study_number, dose_id)
    return {"ok": True, **{k: v for k, v in form.items() if k != "fields"},
            "fields": [f.to_json() for f in form["fields"]]}


@api_router.post("/patients/{study_number}/calendar/doses/{dose_id}/preview",
                 dependencies=[Depends(csrf)])
def dose_preview(request: Request, study_number: StudyNumber, dose_id: DoseId,
                 body: AdministrationIn, who: Who) -> dict[str, Any]:
    """The record the values give and the weight check (the recomputed dose when the weight
    changed by more than the protocol's threshold); nothing is stored."""
    return {"ok": True, **administrations.preview_administration(
        context(request), who, study_number, dose_id, body.values)}


@api_router.post("/patients/{study_number}/calendar/doses/{dose_id}", status_code=201,
                 dependencies=[Depends(csrf)])
def dose_record(request: Request, study_number: StudyNumber, dose_id: DoseId,
                body: RecordAdministrationIn, who: Who) -> dict[str, Any]:
    """Record what happened to one calendar dose (given, partly given, withheld) with its
    infusion details and the weight and height on the day."""
    # Problems are named by the form's labels, as on the page.
    return {"ok": True, **administrations.record_administration(
        context(request), who, study_number, dose_id, body.values,
        confirmed_weight=body.confirmed_weight, reason=body.reason)}


class CorrectAdministrationIn(AdministrationIn):
    reason: str = Field(min_length=1, max_length=500,
                        description="why the record is corrected (kept in the audit trail)")


@api_router.put("/patients/{study_number}/calendar/doses/{dose_id}", dependencies=[Depends(csrf)])
def dose_correct(request: Request, study_number: StudyNumber, dose_id: DoseId,
                 body: CorrectAdministrationIn, who: Who) -> dict[str, Any]:
    """Correct a recorded dose with a reason: ``values`` as when it was recorded (status,
    amount, at, stopped_at, duration_hours, rate_ml_h, volume_ml, route, lot, by, why); the
    weight and height of the day stay as recorded; the audit keeps the old values."""
    # Problems are named by the form's labels, as on the page.
    return {"ok": True, **administrations.correct_administration(
        context(request), who, study_number, dose_id, body.values, reason=body.reason)}


# ---------------------------------------------------------------------------- course sign-off


def _signoff_page(request: Request, study_number: str, number: int, status: int = 200,
                  **more: Any) -> HTMLResponse:
    ctx = context(request)
    who = ctx.auth.principal(request)
    page = course_signoff.signoff_page(ctx, who, study_number, number)
    return render(request, "course_signoff.html", status=status, s=page, **more)


@router.get("/patients/{study_number}/courses/{number}/sign-off", response_class=HTMLResponse)
def signoff(request: Request, study_number: StudyNumber, number: CourseNumber,
            who: Who) -> Response:
    """All the doses of one course with their working, to sign with one signature."""
    who.require_user()
    return _signoff_page(request, study_number, number)


@router.post("/patients/{study_number}/courses/{number}/sign-off",
             response_class=HTMLResponse, dependencies=[Depends(csrf)])
def signoff_submit(request: Request, study_number: StudyNumber, number: CourseNumber,
                   who: Who, data: Submitted) -> Response:
    ctx = context(request)
    scope = data.get("scope", "course")
    reason = data.get("reason", "").strip()[:500]
    try:
        if scope == "course":
            course_signoff.sign_course(ctx, who, study_number, number,
                                       password=data.get("password", ""), reason=reason)
        else:
            journeys.sign_dose(ctx, who, study_number, event_id=scope[:128],
                               password=data.get("password", ""),
                               reason=reason or "dose checked and signed off")
    except TrialdeskError as exc:
        problems, code = _refused(exc)
        return _signoff_page(request, study_number, number, status=code, form_errors=[
            p.replace("event_id: ", "What you sign: ") for p in problems])
    return RedirectResponse(f"/patients/{study_number}/courses/{number}/sign-off#signed",
                            status_code=303)


class CourseSignIn(_In):
    password: str = Field(min_length=1, max_length=1024)
    reason: str = Field(default="", max_length=500)


@api_router.get("/patients/{study_number}/courses/{number}/sign-off")
def course_doses(request: Request, study_number: StudyNumber, number: CourseNumber,
                 who: Who) -> dict[str, Any]:
    """A course's doses with their working (BSA or weight used and when measured, formula,
    rounding, capsules) and signatures, the course signatures and whether they still match."""
    return {"ok": True, **course_signoff.signoff_page(context(request), who, study_number,
                                                      number)}


@api_router.post("/patients/{study_number}/courses/{number}/signatures", status_code=201,
                 dependencies=[Depends(csrf)])
def course_signature(request: Request, study_number: StudyNumber, number: CourseNumber,
                     body: CourseSignIn, who: Who) -> dict[str, Any]:
    """Sign off all the doses of a course with one e-signature (the password again); the
    signature is bound to the digest of all of them."""
    with body_fields():
        return {"ok": True, **course_signoff.sign_course(
            context(request), who, study_number, number, password=body.password,
            reason=body.reason)}
