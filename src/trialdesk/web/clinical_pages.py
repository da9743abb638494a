"""The pages of the patient journey, safety, response and outcomes.

Each form is validated with pydantic; a refused value (by pydantic or by the clinical
core) re-renders the page with the field and the reason (422), a wrong signature password
with 401, a stale version with 409. Success redirects (303) to the page that shows the
change. Downloads link to the API routes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field, ValidationError

from trialdesk.errors import AccessError, NotFoundError, ResponseError, TrialdeskError
from trialdesk.services import biomarkers, calendar_view, journeys, outcomes, overview, responses
from trialdesk.web.api import StudyNumber, TrialId
from trialdesk.web.deps import context, csrf, principal
from trialdesk.web.errors import status_of
from trialdesk.web.pages import _domain_errors, _errors, _Form, _json, _redirect, render
from trialdesk.web.params import INT32, Reason
from trialdesk.web.security import Principal

router = APIRouter(include_in_schema=False)
Who = Annotated[Principal, Depends(principal)]
Csrf = [Depends(csrf)]


async def _multi_form(request: Request) -> dict[str, Any]:
    """The form's fields; a field given several times (checkboxes) is a list."""
    limit = context(request).settings.max_upload_bytes
    form = await request.form(max_part_size=limit)
    out: dict[str, Any] = {}
    for key in form:
        values = form.getlist(key)
        out[key] = values if len(values) > 1 or key in ("seriousness", "optional") else values[0]
    return out


def _form_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic's errors named by the form's field names (``amount``, not ``$.amount``)."""
    return [{**e, "field": e["field"].removeprefix("$.")} for e in _errors(exc)]


def _shown(form: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in form.items() if k not in ("password", "csrf_token")}


#: The submitted form's fields, read before the page's function runs: the function itself is
#: a plain ``def`` (run in the server's thread pool), so its database work never holds up
#: the event loop and the other requests on it.
Fields = Annotated[dict[str, Any], Depends(_multi_form)]


def _submit(form: dict[str, Any], model: type[BaseModel], run: Callable[[Any], Any],
            page: Callable[..., Response], success: str) -> Response:
    """Validate the form with ``model``, run the change, or re-render ``page`` with errors."""
    return _apply(form, model, run, page, success)


def _apply(form: dict[str, Any], model: type[BaseModel], run: Callable[[Any], Any],
           page: Callable[..., Response], success: str) -> Response:
    try:
        run(model.model_validate(form))
    except ValidationError as exc:
        return page(errors=_form_errors(exc), status=422, form=_shown(form))
    except TrialdeskError as exc:
        if isinstance(exc, NotFoundError) or (isinstance(exc, AccessError)
                                              and exc.status == 403):
            raise
        return page(errors=_domain_errors(exc), status=status_of(exc), form=_shown(form))
    return _redirect(success)


# ---------------------------------------------------------------------------- consent


class ConsentForm(_Form):
    version: str = Field(min_length=1, max_length=64)
    signed_on: date
    signed_by: Literal["patient", "parent", "guardian", "legal_representative"]
    assent: Literal["yes", "no"] | None = None
    reason: Reason


def _patient_page(request: Request, who: Principal, study_number: str) -> Callable[..., Response]:
    def page(errors: list[dict[str, str]], status: int, form: dict[str, Any]) -> Response:
        return render(request, "patient.html", status=status, errors=errors, form=form,
                      p=overview.patient_page(context(request), who, study_number))
    return page


@router.post("/patients/{study_number}/consent", response_class=HTMLResponse,
             dependencies=Csrf)
def consent(request: Request, study_number: StudyNumber, who: Who, fields: Fields) -> Response:
    ctx = context(request)

    def run(d: ConsentForm) -> None:
        journeys.record_consent(ctx, who, study_number, version=d.version,
                                signed_on=d.signed_on, signed_by=d.signed_by,
                                assent=None if d.assent is None else d.assent == "yes",
                                reason=d.reason)

    return _submit(fields, ConsentForm, run, _patient_page(request, who, study_number),
                         f"/patients/{study_number}#consent")


class EnrolForm(_Form):
    screening_id: int = Field(ge=1, le=INT32)
    password: str = Field(min_length=1, max_length=1024)
    reason: Reason
    start: date | None = None
    override_reason: str | None = Field(default=None, max_length=1000)
    override_arm: str | None = Field(default=None, max_length=64)
    optional: list[str] = Field(default_factory=list, max_length=20)


def _prefixed(form: dict[str, Any], prefix: str) -> dict[str, str]:
    return {k[len(prefix):]: v for k, v in form.items()
            if k.startswith(prefix) and isinstance(v, str) and v.strip()}


@router.post("/patients/{study_number}/enrol", response_class=HTMLResponse, dependencies=Csrf)
def enrol(request: Request, study_number: StudyNumber, who: Who, form: Fields) -> Response:
    """Confirm eligibility with the e-signature and enrol (calendar settings optional)."""
    ctx = context(request)
    page = _patient_page(request, who, study_number)
    try:
        data = EnrolForm.model_validate(form)
        anchors: dict[str, datetime] = {}
        for name, value in _prefixed(form, "anchor_").items():
            try:
                anchors[name] = datetime.fromisoformat(value)
            except ValueError:
                return page(errors=[{"field": f"anchor_{name}",
                                     "reason": "not a date and time"}], status=422,
                            form=_shown(form))
        journeys.enrol_patient(
            ctx, who, study_number, screening_id=data.screening_id, password=data.password,
            reason=data.reason, start=data.start, override_reason=data.override_reason,
            override_arm=data.override_arm, variants=_prefixed(form, "variant_"),
            optional=data.optional, anchors=anchors, factors=_prefixed(form, "factor_"))
    except ValidationError as exc:
        return page(errors=_form_errors(exc), status=422, form=_shown(form))
    except TrialdeskError as exc:
        if isinstance(exc, NotFoundError) or (isinstance(exc, AccessError)
                                              and exc.status == 403):
            raise
        return page(errors=_enrol_errors(exc), status=status_of(exc), form=_shown(form))
    return _redirect(f"/patients/{study_number}#enrolment")


# What a refused enrolment names, in the words of the page and what to do.
_ENROL_WORDS = {
    "weight_kg": ("Weight", "; leave Calendar day 1 empty to enrol now, then record the "
                            "weight and day 1 on the calendar"),
    "screening_id": ("Screening", " (Screen now, then sign)"),
    "consent": ("Informed consent", ""),
}


def _enrol_errors(exc: TrialdeskError) -> list[dict[str, str]]:
    out = []
    for e in _domain_errors(exc):
        label, then = _ENROL_WORDS.get(e["field"], (e["field"], ""))
        out.append({"field": label, "reason": e["reason"] + then})
    return out


# ---------------------------------------------------------------------------- calendar


def _calendar_page(request: Request, who: Principal, study_number: str
                   ) -> Callable[..., Response]:
    def page(errors: list[dict[str, str]] | None = None, status: int = 200,
             form: dict[str, Any] | None = None) -> Response:
        return render(request, "calendar.html", status=status, errors=errors, form=form or {},
                      c=calendar_view.calendar_page(context(request), who, study_number))
    return page


@router.get("/patients/{study_number}/calendar", response_class=HTMLResponse)
def calendar(request: Request, study_number: StudyNumber, who: Who) -> Response:
    who.require_user()
    delay = request.query_params.get("delay", "")
    return _calendar_page(request, who, study_number)(
        form={"course": delay} if delay.isdigit() and len(delay) < 4 else None)


class SettingsForm(_Form):
    version: int = Field(ge=1, le=INT32)
    start: date | None = None
    reason: Reason


@router.post("/patients/{study_number}/calendar/settings", response_class=HTMLResponse,
             dependencies=Csrf)
def settings(request: Request, study_number: StudyNumber, who: Who, form: Fields) -> Response:
    ctx = context(request)
    anchors = {}
    for name, value in _prefixed(form, "anchor_").items():
        try:
            anchors[name] = datetime.fromisoformat(value)
        except ValueError:
            return _calendar_page(request, who, study_number)(
                errors=[{"field": f"anchor_{name}", "reason": "not a date and time"}],
                status=422, form=_shown(form))

    def run(d: SettingsForm) -> None:
        journeys.update_settings(ctx, who, study_number, version=d.version, start=d.start,
                                 anchors=anchors or None, reason=d.reason)

    return _apply(form, SettingsForm, run, _calendar_page(request, who, study_number),
                  f"/patients/{study_number}/calendar")


class BodyForm(_Form):
    on: date
    weight_kg: float | None = Field(default=None, gt=0, le=1000, allow_inf_nan=False)
    height_cm: float | None = Field(default=None, gt=0, le=300, allow_inf_nan=False)
    reason: Reason


@router.post("/patients/{study_number}/body", response_class=HTMLResponse, dependencies=Csrf)
def body(request: Request, study_number: StudyNumber, who: Who, fields: Fields) -> Response:
    ctx = context(request)

    def run(d: BodyForm) -> None:
        journeys.record_body(ctx, who, study_number, on=d.on, weight_kg=d.weight_kg,
                             height_cm=d.height_cm, reason=d.reason)

    return _submit(fields, BodyForm, run, _calendar_page(request, who, study_number),
                         f"/patients/{study_number}/calendar")


class RecordForm(_Form):
    event_id: str = Field(min_length=1, max_length=128, pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    status: Literal["given", "partly_given", "withheld", "done", "not_done", "continue", "stop"]
    at: datetime
    amount: float | None = Field(default=None, gt=0, le=1e15, allow_inf_nan=False)
    unit: str | None = Field(default=None, max_length=32)
    by: str | None = Field(default=None, max_length=200)
    why: str | None = Field(default=None, max_length=1000)
    reason: Reason


@router.post("/patients/{study_number}/records", response_class=HTMLResponse,
             dependencies=Csrf)
def record(request: Request, study_number: StudyNumber, who: Who, fields: Fields) -> Response:
    """Record an administration (given / partly given / withheld, the actual dose) or
    another calendar event."""
    ctx = context(request)

    def run(d: RecordForm) -> None:
        journeys.record_event(ctx, who, study_number, event_id=d.event_id, status=d.status,
                              at=d.at.replace(tzinfo=None), amount=d.amount, unit=d.unit,
                              by=d.by, reason=d.why, note=d.reason)

    return _submit(fields, RecordForm, run, _calendar_page(request, who, study_number),
                         f"/patients/{study_number}/calendar#events")


class DelayForm(_Form):
    course: int = Field(ge=1, le=100)
    days: int = Field(ge=1, le=365)
    why: str = Field(min_length=1, max_length=1000)
    by: str | None = Field(default=None, max_length=200)
    reason: Reason


@router.post("/patients/{study_number}/delays", response_class=HTMLResponse, dependencies=Csrf)
def delay(request: Request, study_number: StudyNumber, who: Who, fields: Fields) -> Response:
    ctx = context(request)

    def run(d: DelayForm) -> None:
        journeys.record_delay(ctx, who, study_number, course=d.course, days=d.days, why=d.why,
                              by=d.by, reason=d.reason)

    return _submit(fields, DelayForm, run, _calendar_page(request, who, study_number),
                         f"/patients/{study_number}/calendar")


class DoseSignForm(_Form):
    event_id: str = Field(min_length=1, max_length=128, pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    password: str = Field(min_length=1, max_length=1024)
    reason: Reason


@router.post("/patients/{study_number}/doses/sign", response_class=HTMLResponse,
             dependencies=Csrf)
def sign_dose(request: Request, study_number: StudyNumber, who: Who, fields: Fields) -> Response:
    ctx = context(request)

    def run(d: DoseSignForm) -> None:
        journeys.sign_dose(ctx, who, study_number, event_id=d.event_id, password=d.password,
                           reason=d.reason)

    return _submit(fields, DoseSignForm, run,
                         _calendar_page(request, who, study_number),
                         f"/patients/{study_number}/calendar#events")


# Adverse events and the decisions on proposed actions: web/safety_pages.py


# ---------------------------------------------------------------------------- response


def _responses_page(request: Request, who: Principal, study_number: str
                    ) -> Callable[..., Response]:
    def page(errors: list[dict[str, str]] | None = None, status: int = 200,
             form: dict[str, Any] | None = None) -> Response:
        return render(request, "responses.html", status=status, errors=errors, form=form or {},
                      r=responses.responses_page(context(request), who, study_number))
    return page


@router.get("/patients/{study_number}/responses", response_class=HTMLResponse)
def response_list(request: Request, study_number: StudyNumber, who: Who) -> Response:
    who.require_user()
    return _responses_page(request, who, study_number)()


class ResponseForm(_Form):
    criteria: Literal["INRC", "RECIST"]
    kind: Literal["time_point", "baseline"] = "time_point"
    assessed_on: date
    document: str = Field(min_length=2, max_length=100_000)
    reason: Reason


@router.post("/patients/{study_number}/responses", response_class=HTMLResponse,
             dependencies=Csrf)
def response_assessment(request: Request, study_number: StudyNumber, who: Who,
                        fields: Fields) -> Response:
    ctx = context(request)

    def run(d: ResponseForm) -> None:
        doc = _json(d.document, "document")
        if not isinstance(doc, dict):
            raise ResponseError("the assessment is a JSON object", where="document")
        responses.record_response(ctx, who, study_number, criteria=d.criteria, kind=d.kind,
                                  assessed_on=d.assessed_on, document=doc, reason=d.reason)

    return _submit(fields, ResponseForm, run,
                         _responses_page(request, who, study_number),
                         f"/patients/{study_number}/responses#latest")


class FollowUpForm(_Form):
    kind: Literal["last_contact", "death", "second_malignancy"]
    occurred_on: date
    note: str | None = Field(default=None, max_length=1000)
    reason: Reason


@router.post("/patients/{study_number}/follow-ups", response_class=HTMLResponse,
             dependencies=Csrf)
def follow_up(request: Request, study_number: StudyNumber, who: Who, fields: Fields) -> Response:
    ctx = context(request)

    def run(d: FollowUpForm) -> None:
        responses.record_follow_up(ctx, who, study_number, kind=d.kind,
                                   occurred_on=d.occurred_on, note=d.note or "",
                                   reason=d.reason)

    return _submit(fields, FollowUpForm, run,
                         _responses_page(request, who, study_number),
                         f"/patients/{study_number}/responses#follow-up")


# ---------------------------------------------------------------------------- trials


@router.get("/trials/{trial_id}/outcomes", response_class=HTMLResponse)
def trial_outcomes(request: Request, trial_id: TrialId, who: Who) -> Response:
    who.require_user()
    return render(request, "outcomes.html",
                  o=outcomes.outcomes_page(context(request), who, trial_id),
                  bio=biomarkers.outcomes_section(context(request), who, trial_id))


class AllocationListForm(_Form):
    seed: int | None = Field(default=None, ge=0, le=2**62)
    size: int | None = Field(default=None, ge=1, le=100_000)
    reason: Reason


@router.post("/trials/{trial_id}/randomisation", response_class=HTMLResponse,
             dependencies=Csrf)
def randomisation_list(request: Request, trial_id: TrialId, who: Who, fields: Fields) -> Response:
    """Generate the sealed allocation list (administrator)."""
    ctx = context(request)
    who.require_user()

    def page(errors: list[dict[str, str]], status: int, form: dict[str, Any]) -> Response:
        return render(request, "dashboard.html", status=status, errors=errors,
                      board=overview.dashboard(ctx, who, trial_id),
                      randomisation=journeys.randomisation_status(ctx, who, trial_id))

    def run(d: AllocationListForm) -> None:
        journeys.generate_allocation_list(ctx, who, trial_id, seed=d.seed, size=d.size,
                                          reason=d.reason)

    return _submit(fields, AllocationListForm, run, page,
                         f"/trials/{trial_id}/dashboard#randomisation")


__all__ = ["router"]
