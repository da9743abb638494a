"""The JSON API of the patient journey, safety, response and outcomes (under ``/api``).

Every body is a pydantic model that refuses unknown fields; a refused value answers 422 in
the one error shape with the field as a JSON path (``$.body.amount``), whether pydantic or
the clinical core refused it. Downloads (iCalendar, Kaplan–Meier PNG, SDTM zip, FHIR
Bundle, DSMB PDF) are plain responses with their media type.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import Field, StringConstraints

from trialdesk.safety.adverse_event import (
    ActionTaken,
    Attribution,
    Expectedness,
    Outcome,
    Seriousness,
)
from trialdesk.services import biomarkers, journeys, outcomes, responses, safety
from trialdesk.web.deps import WebContext, context, csrf
from trialdesk.web.params import INT32, Reason, StudyNumber, TrialId, Who, _In, body_fields, query_fields

router = APIRouter(prefix="/api")

Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
EventId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128,
                                           pattern=r"^[a-z0-9][a-z0-9.\-]*$")]
Password = Annotated[str, Field(min_length=1, max_length=1024)]
RowId = Annotated[int, Path(ge=1, le=INT32)]
Status = Literal["given", "partly_given", "withheld", "done", "not_done", "continue", "stop"]
Signer = Literal["patient", "parent", "guardian", "legal_representative"]
Mass = Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)]
Length = Annotated[float, Field(gt=0, le=300, allow_inf_nan=False)]
Amount = Annotated[float, Field(gt=0, le=1e15, allow_inf_nan=False)]
Number = Annotated[float, Field(allow_inf_nan=False, ge=-1e12, le=1e12)]


# ---------------------------------------------------------------------------- bodies


class ConsentIn(_In):
    version: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                              max_length=64)]
    signed_on: date
    signed_by: Signer
    assent: bool | None = None
    reason: Reason


class SettingsIn(_In):
    version: int = Field(ge=1, le=INT32)
    start: date | None = None
    anchors: dict[Short, datetime] = Field(default_factory=dict, max_length=10)
    reason: Reason


class BodyIn(_In):
    on: date
    weight_kg: Mass | None = None
    height_cm: Length | None = None
    reason: Reason


class RecordIn(_In):
    event_id: EventId
    status: Status
    at: datetime
    amount: Amount | None = None
    unit: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                           max_length=32)] | None = None
    by: Short | None = None
    why: Text | None = None
    reason: Reason


class DelayIn(_In):
    course: int = Field(ge=1, le=100)
    days: int = Field(ge=1, le=365)
    why: Text
    by: Short | None = None
    reason: Reason


class DoseSignIn(_In):
    event_id: EventId
    password: Password
    reason: Reason


class AttributionIn(_In):
    agent: Short
    attribution: Attribution


class LabIn(_In):
    term: Short
    value: Number
    unit: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
    lln: Number | None = None
    uln: Number | None = None
    baseline: Number | None = None
    symptomatic: bool | None = None
    anticoagulation: bool | None = None
    physiologic_consequences: bool | None = None
    bleeding: bool | None = None


class AdverseEventIn(_In):
    term: Short | None = None
    grade: int | None = Field(default=None, ge=1, le=5)
    onset: date
    meddra_term: Short | None = None
    meddra_code: Annotated[str, StringConstraints(pattern=r"^\d{8}$")] | None = None
    course_number: int | None = Field(default=None, ge=1, le=100)
    seriousness: list[Seriousness] = Field(default_factory=list, max_length=7)
    attributions: list[AttributionIn] = Field(default_factory=list, max_length=20)
    expectedness: Expectedness | None = None
    action_taken: ActionTaken | None = None
    outcome: Outcome | None = None
    resolution: date | None = None
    sponsor_aware_on: date | None = None
    lab: LabIn | None = None
    reason: Reason

    def event(self) -> dict[str, Any]:
        return {"term": self.term, "grade": self.grade, "onset": self.onset,
                "meddra_term": self.meddra_term, "meddra_code": self.meddra_code,
                "seriousness": set(self.seriousness),
                "attributions": [a.model_dump() for a in self.attributions],
                "expectedness": self.expectedness, "action_taken": self.action_taken,
                "outcome": self.outcome, "resolution": self.resolution,
                "sponsor_aware_on": self.sponsor_aware_on}


class AdverseEventUpdate(_In):
    version: int = Field(ge=1, le=INT32)
    resolution: date | None = None
    outcome: Outcome | None = None
    action_taken: ActionTaken | None = None
    expectedness: Expectedness | None = None
    sponsor_aware_on: date | None = None
    reason: Reason


class ConfirmIn(_In):
    version: int = Field(ge=1, le=INT32)
    password: Password
    accept_unconfirmed: bool = False
    days: int | None = Field(default=None, ge=1, le=365)
    percent: float | None = Field(default=None, gt=0, lt=100)
    condition_holds: bool | None = None
    reason: Reason


class ResponseIn(_In):
    criteria: Literal["INRC", "RECIST"]
    kind: Literal["time_point", "baseline"] = "time_point"
    assessed_on: date
    document: dict[str, Any]
    reason: Reason


class FollowUpIn(_In):
    kind: Literal["last_contact", "death", "second_malignancy"]
    occurred_on: date
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] = ""
    reason: Reason


class AllocationListIn(_In):
    seed: int | None = Field(default=None, ge=0, le=2**62)
    size: int | None = Field(default=None, ge=1, le=100_000)
    reason: Reason


def _ctx(request: Request) -> WebContext:
    return context(request)


Csrf = [Depends(csrf)]


# ---------------------------------------------------------------------------- journey


@router.post("/patients/{study_number}/consents", tags=["journey"], status_code=201,
             dependencies=Csrf)
def consent(request: Request, study_number: StudyNumber, body: ConsentIn, who: Who
            ) -> dict[str, Any]:
    """Record a signed informed consent (checked against the protocol's consent rules)."""
    with body_fields():
        return {"ok": True, **journeys.record_consent(
            _ctx(request), who, study_number, version=body.version, signed_on=body.signed_on,
            signed_by=body.signed_by, assent=body.assent, reason=body.reason)}


@router.get("/patients/{study_number}/calendar", tags=["journey"])
def calendar(request: Request, study_number: StudyNumber, who: Who) -> dict[str, Any]:
    """The calendar (``trialdesk.calendar/1``): events, dates, doses with their working."""
    return {"ok": True, **journeys.calendar_json(_ctx(request), who, study_number)}


@router.get("/patients/{study_number}/calendar.ics", tags=["journey"],
            response_class=Response)
def calendar_ics(request: Request, study_number: StudyNumber, who: Who) -> Response:
    body = journeys.calendar_ics(_ctx(request), who, study_number)
    return Response(body, media_type="text/calendar", headers={
        "content-disposition": f'attachment; filename="{study_number}.ics"'})


@router.put("/patients/{study_number}/calendar", tags=["journey"], dependencies=Csrf)
def calendar_settings(request: Request, study_number: StudyNumber, body: SettingsIn, who: Who
                      ) -> dict[str, Any]:
    """Set day 1 and the clinical anchor times; refused with 409 on a stale ``version``."""
    with body_fields():
        return {"ok": True, **journeys.update_settings(
            _ctx(request), who, study_number, version=body.version, start=body.start,
            anchors={k: v.replace(tzinfo=None) for k, v in body.anchors.items()},
            reason=body.reason)}


@router.post("/patients/{study_number}/body", tags=["journey"], status_code=201,
             dependencies=Csrf)
def body_measurement(request: Request, study_number: StudyNumber, body: BodyIn, who: Who
                     ) -> dict[str, Any]:
    with body_fields():
        return {"ok": True, **journeys.record_body(
            _ctx(request), who, study_number, on=body.on, weight_kg=body.weight_kg,
            height_cm=body.height_cm, reason=body.reason)}


@router.post("/patients/{study_number}/records", tags=["journey"], status_code=201,
             dependencies=Csrf)
def event_record(request: Request, study_number: StudyNumber, body: RecordIn, who: Who
                 ) -> dict[str, Any]:
    """What happened to one calendar event: given, partly given, withheld (with the actual
    dose and unit), done, not done, continue or stop."""
    with body_fields():
        return {"ok": True, **journeys.record_event(
            _ctx(request), who, study_number, event_id=body.event_id, status=body.status,
            at=body.at.replace(tzinfo=None), amount=body.amount, unit=body.unit, by=body.by,
            reason=body.why, note=body.reason)}


@router.post("/patients/{study_number}/delays", tags=["journey"], status_code=201,
             dependencies=Csrf)
def course_delay(request: Request, study_number: StudyNumber, body: DelayIn, who: Who
                 ) -> dict[str, Any]:
    with body_fields():
        return {"ok": True, **journeys.record_delay(
            _ctx(request), who, study_number, course=body.course, days=body.days, why=body.why,
            by=body.by, reason=body.reason)}


@router.post("/patients/{study_number}/dose-signatures", tags=["journey"], status_code=201,
             dependencies=Csrf)
def dose_signature(request: Request, study_number: StudyNumber, body: DoseSignIn, who: Who
                   ) -> dict[str, Any]:
    """Sign off a computed dose (the password again), bound to the dose's digest."""
    with body_fields():
        return {"ok": True, **journeys.sign_dose(_ctx(request), who, study_number,
                                                 event_id=body.event_id, password=body.password,
                                                 reason=body.reason)}


# ---------------------------------------------------------------------------- safety


@router.get("/patients/{study_number}/adverse-events", tags=["safety"])
def adverse_events(request: Request, study_number: StudyNumber, who: Who) -> dict[str, Any]:
    page = safety.adverse_events_page(_ctx(request), who, study_number)
    return {"ok": True, "items": page["items"], "total": len(page["items"]), "offset": 0,
            "limit": len(page["items"]), "next": None}


@router.post("/patients/{study_number}/adverse-events", tags=["safety"], status_code=201,
             dependencies=Csrf)
def adverse_event(request: Request, study_number: StudyNumber, body: AdverseEventIn, who: Who
                  ) -> dict[str, Any]:
    """An adverse event: CTCAE v5.0 grade validated (or graded from the lab), the protocol's
    toxicity rules evaluated, the actions they propose returned."""
    with body_fields():
        return {"ok": True, **safety.record_adverse_event(
            _ctx(request), who, study_number, event=body.event(),
            lab=body.lab.model_dump() if body.lab else None, course_number=body.course_number,
            reason=body.reason)}


@router.put("/patients/{study_number}/adverse-events/{ae_id}", tags=["safety"],
            dependencies=Csrf)
def adverse_event_update(request: Request, study_number: StudyNumber, ae_id: RowId,
                         body: AdverseEventUpdate, who: Who) -> dict[str, Any]:
    with body_fields():
        return {"ok": True, **safety.update_adverse_event(
            _ctx(request), who, study_number, ae_id, version=body.version,
            changes=body.model_dump(exclude={"version", "reason"}), reason=body.reason)}


@router.post("/patients/{study_number}/actions/{action_id}/confirmation", tags=["safety"],
             status_code=201, dependencies=Csrf)
def action_confirmation(request: Request, study_number: StudyNumber, action_id: RowId,
                        body: ConfirmIn, who: Who) -> dict[str, Any]:
    """Confirm a proposed toxicity action with an e-signature; it is applied to the calendar."""
    with body_fields():
        return {"ok": True, **safety.confirm_action(
            _ctx(request), who, study_number, action_id, version=body.version,
            password=body.password, accept_unconfirmed=body.accept_unconfirmed, days=body.days,
            percent=body.percent, reason=body.reason, condition_holds=body.condition_holds)}


# ---------------------------------------------------------------------------- response


@router.get("/patients/{study_number}/responses", tags=["response"])
def response_list(request: Request, study_number: StudyNumber, who: Who) -> dict[str, Any]:
    page = responses.responses_page(_ctx(request), who, study_number)
    return {"ok": True, "items": page["items"], "follow_ups": page["follow_ups"],
            "total": len(page["items"]), "offset": 0, "limit": len(page["items"]),
            "next": None}


@router.post("/patients/{study_number}/responses", tags=["response"], status_code=201,
             dependencies=Csrf)
def response_assessment(request: Request, study_number: StudyNumber, body: ResponseIn,
                        who: Who) -> dict[str, Any]:
    """A response assessment (INRC 2017 or RECIST 1.1) with its reasoning."""
    with body_fields():
        return {"ok": True, **responses.record_response(
            _ctx(request), who, study_number, criteria=body.criteria, kind=body.kind,
            assessed_on=body.assessed_on, document=body.document, reason=body.reason)}


@router.post("/patients/{study_number}/follow-ups", tags=["response"], status_code=201,
             dependencies=Csrf)
def follow_up(request: Request, study_number: StudyNumber, body: FollowUpIn, who: Who
              ) -> dict[str, Any]:
    with body_fields():
        return {"ok": True, **responses.record_follow_up(
            _ctx(request), who, study_number, kind=body.kind, occurred_on=body.occurred_on,
            note=body.note, reason=body.reason)}


# ---------------------------------------------------------------------------- trials


@router.get("/trials/{trial_id}/randomisation", tags=["trials"])
def randomisation(request: Request, trial_id: TrialId, who: Who) -> dict[str, Any]:
    """The sealed list's digest and size, and the verification of every allocation made."""
    return {"ok": True, **journeys.randomisation_status(_ctx(request), who, trial_id)}


@router.post("/trials/{trial_id}/randomisation", tags=["trials"], status_code=201,
             dependencies=Csrf)
def randomisation_list(request: Request, trial_id: TrialId, body: AllocationListIn, who: Who
                       ) -> dict[str, Any]:
    """Generate and seal the allocation list (administrator); its entries are never shown."""
    with body_fields():
        return {"ok": True, **journeys.generate_allocation_list(
            _ctx(request), who, trial_id, seed=body.seed, size=body.size, reason=body.reason)}


@router.get("/trials/{trial_id}/outcomes", tags=["outcomes"])
def trial_outcomes(request: Request, trial_id: TrialId, who: Who) -> dict[str, Any]:
    """Endpoints per arm (de-identified): ORR, OS, PFS, RFS or N-day mortality."""
    return {"ok": True, **outcomes.outcomes_page(_ctx(request), who, trial_id),
            "biomarkers": biomarkers.outcomes_section(_ctx(request), who, trial_id)}


@router.get("/trials/{trial_id}/outcomes/km.png", tags=["outcomes"], response_class=Response)
def km_plot(request: Request, trial_id: TrialId, who: Who,
            endpoint: Annotated[Literal["OS", "PFS", "EFS", "RFS"], Query()] = "OS"
            ) -> Response:
    return Response(outcomes.km_png(_ctx(request), who, trial_id, endpoint),
                    media_type="image/png")


@router.get("/trials/{trial_id}/exports/sdtm.zip", tags=["outcomes"], response_class=Response)
def sdtm(request: Request, trial_id: TrialId, who: Who,
         country: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None) -> Response:
    """SDTM DM, AE, SUPPAE, EX, RS (CSV, checked against SDTMIG v3.4) in one zip.

    ``country``: the sites' country, ISO 3166-1 alpha-3 (SDTM DM requires it).
    """
    with query_fields():
        body = outcomes.sdtm_zip(_ctx(request), who, trial_id, country=country)
    return Response(body,
                    media_type="application/zip", headers={
                        "content-disposition": f'attachment; filename="{trial_id}-sdtm.zip"'})


@router.get("/trials/{trial_id}/exports/fhir.json", tags=["outcomes"], response_class=Response)
def fhir(request: Request, trial_id: TrialId, who: Who) -> Response:
    """A FHIR R5 collection Bundle (ResearchStudy, Patient, ResearchSubject, …)."""
    return Response(biomarkers.fhir_json(_ctx(request), who, trial_id),
                    media_type="application/fhir+json", headers={
                        "content-disposition": f'attachment; filename="{trial_id}-fhir.json"'})


@router.get("/trials/{trial_id}/reports/dsmb.pdf", tags=["outcomes"], response_class=Response)
def dsmb(request: Request, trial_id: TrialId, who: Who) -> Response:
    return Response(biomarkers.dsmb_pdf(_ctx(request), who, trial_id),
                    media_type="application/pdf", headers={
                        "content-disposition": f'attachment; filename="{trial_id}-dsmb.pdf"'})
