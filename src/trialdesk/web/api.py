"""The JSON API under ``/api`` (OpenAPI at ``/api/openapi.json``).

Every answer is an object with ``ok``; lists are paginated (``offset``, ``limit``,
``total``, ``next``); every error has the one shape of :mod:`trialdesk.web.errors`.
Unsafe calls need the ``X-CSRF-Token`` header (the value of the ``td_csrf`` cookie, also
returned by ``POST /api/login``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field, StringConstraints

from trialdesk.facts.patient import PatientRecord
from trialdesk.services import overview
from trialdesk.services import patients as ops
from trialdesk.services.accounts import Principal
from trialdesk.services.catalogue import search, summary
from trialdesk.services.context import screening_moment
from trialdesk.web.deps import context, csrf
from trialdesk.web.params import (
    INT32,
    IdempotencyKey,
    Limit,
    Offset,
    Phase,
    Reason,
    Site,
    StatusCode,
    StudyNumber,
    TrialId,
    Who,
    _In,
    body_fields,
)

router = APIRouter(prefix="/api")


class LoginIn(_In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class Identifiers(_In):
    """Direct identifiers, shown only to investigators, coordinators and monitors."""

    name: str | None = Field(default=None, max_length=200)
    hospital_number: str | None = Field(default=None, max_length=64)


class ScreenIn(_In):
    patient: PatientRecord
    trial_id: str | None = Field(default=None, max_length=64)
    as_of: datetime | None = None


class PatientIn(_In):
    trial_id: str = Field(max_length=64)
    site: Site
    record: PatientRecord
    identifiers: Identifiers = Identifiers()
    reason: Reason


class PatientUpdate(_In):
    version: int = Field(ge=1, le=INT32)
    record: PatientRecord | None = None
    identifiers: Identifiers | None = None
    reason: Reason


class ScreeningIn(_In):
    as_of: datetime | None = None
    reason: Reason


class EnrolIn(_In):
    """Confirm eligibility (e-signature) and enrol; the calendar settings are optional.

    ``override_reason`` enrols an ineligible or undetermined patient (the signer is the
    overriding investigator; ``override_arm`` only when the protocol's rule cannot assign
    one); ``factors`` are stratification levels for a randomised trial.
    """

    screening_id: int = Field(ge=1, le=INT32)
    password: str = Field(min_length=1, max_length=1024)
    reason: Reason
    start: date | None = None
    override_reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                      max_length=1000)] | None = None
    override_arm: str | None = Field(default=None, max_length=64)
    variants: dict[Annotated[str, StringConstraints(max_length=64)],
                   Annotated[str, StringConstraints(max_length=64)]] = Field(
        default_factory=dict, max_length=20)
    optional: list[Annotated[str, StringConstraints(max_length=200)]] = Field(
        default_factory=list, max_length=20)
    anchors: dict[Annotated[str, StringConstraints(max_length=64)], datetime] = Field(
        default_factory=dict, max_length=10)
    factors: dict[Annotated[str, StringConstraints(max_length=64)],
                  Annotated[str, StringConstraints(max_length=64)]] = Field(
        default_factory=dict, max_length=20)


class ProtocolVersionIn(_In):
    document: dict[str, Any]
    reason: Reason


def _page(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    end = data["offset"] + len(data["items"])
    nxt = str(request.url.include_query_params(offset=end)) if end < data["total"] else None
    return {"ok": True, **data, "next": nxt}


def _ids(ident: Identifiers | None) -> dict[str, str] | None:
    if ident is None:
        return None
    return {k: v for k, v in ident.model_dump().items() if v}


# ---------------------------------------------------------------------------- session


@router.post("/login", tags=["session"])
def login(body: LoginIn, request: Request) -> Response:
    """Log in; sets the session and CSRF cookies and returns the CSRF token."""
    ctx = context(request)
    user = ctx.auth.authenticate(request, body.username, body.password)
    token = ctx.auth.start_session(user)
    from trialdesk.web.security import token_hash

    new = Principal(user, (), token_hash(token))
    csrf_token = ctx.auth.new_csrf(new)
    response = JSONResponse({"ok": True, "user": {"username": user.username,
                                                  "full_name": user.full_name},
                             "csrf_token": csrf_token})
    ctx.auth.set_cookies(response, session=token, csrf=csrf_token)
    return response


@router.post("/logout", tags=["session"], dependencies=[Depends(csrf)])
def logout(request: Request, who: Who) -> Response:
    ctx = context(request)
    user = who.require_user()
    if who.session_hash:
        ctx.store.end_session(who.session_hash, user.username)
    response = JSONResponse({"ok": True})
    ctx.auth.set_cookies(response, clear=True, csrf=ctx.auth.new_csrf(Principal(None)))
    return response


@router.get("/me", tags=["session"])
def me(who: Who) -> dict[str, Any]:
    user = who.require_user()
    return {"ok": True, "username": user.username, "full_name": user.full_name,
            "memberships": [{"trial_id": m.trial_id, "site": m.site, "role": m.role}
                            for m in who.memberships]}


# ---------------------------------------------------------------------------- trials


@router.get("/trials", tags=["trials"])
def trials(request: Request, q: Annotated[str | None, Query(max_length=200)] = None,
           condition: Annotated[str | None, Query(max_length=200)] = None,
           intervention: Annotated[str | None, Query(max_length=200)] = None,
           phase: Phase | None = None, status: StatusCode | None = None,
           age_years: Annotated[float | None, Query(ge=0, le=130)] = None,
           offset: Offset = 0, limit: Limit = 25) -> dict[str, Any]:
    """Search the registry by text, condition, intervention, phase, status and age."""
    found = search(context(request).catalogue.trials(), q=q, condition=condition,
                   intervention=intervention, phase=phase, status=status, age_years=age_years)
    items = [summary(e) for e in found[offset:offset + limit]]
    return _page(request, {"items": items, "total": len(found), "offset": offset,
                           "limit": limit})


@router.get("/trials/{trial_id}", tags=["trials"])
def trial(request: Request, trial_id: TrialId,
          version: Annotated[int | None, Query(ge=1, le=INT32)] = None) -> dict[str, Any]:
    """The registry page of a trial (latest protocol version unless ``version`` is given)."""
    return {"ok": True, **ops.trial_page(context(request), trial_id, version)}


@router.get("/trials/{trial_id}/versions", tags=["trials"])
def versions(request: Request, trial_id: TrialId) -> dict[str, Any]:
    rows = context(request).store.protocol_versions(trial_id)
    items = [{"number": v.number, "label": v.label, "digest": v.digest,
              "created_at": v.created_at, "created_by": v.created_by} for v in rows]
    return {"ok": True, "items": items, "total": len(items), "offset": 0, "limit": len(items),
            "next": None}


@router.get("/trials/{trial_id}/versions/{number}", tags=["trials"])
def version_document(request: Request, trial_id: TrialId,
                     number: Annotated[int, Path(ge=1, le=INT32)]) -> dict[str, Any]:
    v = context(request).store.protocol_version(trial_id, number)
    return {"ok": True, "trial_id": v.trial_id, "number": v.number, "label": v.label,
            "digest": v.digest, "document": v.document}


@router.post("/trials/{trial_id}/versions", tags=["trials"], status_code=201,
             dependencies=[Depends(csrf)])
def amend(request: Request, trial_id: TrialId, body: ProtocolVersionIn, who: Who
          ) -> dict[str, Any]:
    """Store an amended protocol as the trial's next version (administrator)."""
    return {"ok": True, **ops.add_protocol_version(context(request), who, trial_id,
                                                   body.document, body.reason)}


@router.get("/trials/{trial_id}/dashboard", tags=["trials"])
def dashboard(request: Request, trial_id: TrialId, who: Who) -> dict[str, Any]:
    return {"ok": True, **overview.dashboard(context(request), who, trial_id)}


@router.get("/trials/{trial_id}/export.csv", tags=["trials"], response_class=Response)
def export(request: Request, trial_id: TrialId, who: Who) -> Response:
    """De-identified patient table (statistician, administrator)."""
    body = ops.deidentified_export(context(request), who, trial_id)
    return Response(body, media_type="text/csv", headers={
        "content-disposition": f'attachment; filename="{trial_id}-deidentified.csv"'})


@router.get("/trials/{trial_id}/audit", tags=["audit"])
def trial_audit(request: Request, trial_id: TrialId, who: Who, offset: Offset = 0,
                limit: Limit = 50) -> dict[str, Any]:
    return _page(request, ops.audit_trail(context(request), who, trial_id=trial_id,
                                          offset=offset, limit=limit))


@router.get("/audit/verify", tags=["audit"])
def verify(request: Request, who: Who) -> dict[str, Any]:
    return {"ok": True, **ops.audit_verify(context(request), who)}


# ---------------------------------------------------------------------------- screening


@router.post("/screen", tags=["screening"])
def screen(request: Request, body: ScreenIn) -> dict[str, Any]:
    """Screen a patient record against one trial or every trial.

    Nothing is stored and nothing changes, so this needs neither a log-in nor a CSRF token
    (the registry's "which trials could this patient enter").
    """
    ctx = context(request)
    record = ops.checked_record(body.patient, today=ctx.store.now().date(), source="$.patient")
    moment = screening_moment(ctx, body.as_of)
    if body.trial_id:
        chosen = [ctx.catalogue.trial(body.trial_id)[1]]
    else:
        chosen = [e.compiled for e in ctx.catalogue.trials()]
    results = []
    for compiled in chosen:
        result = ops.screen_now(compiled, record, moment).to_json()
        results.append({**result, "hints": ops.resolution_hints(compiled, result)})
    return {"ok": True, "patient_id": record.patient_id, "results": results}


# ---------------------------------------------------------------------------- patients


@router.get("/patients", tags=["patients"])
def patients(request: Request, who: Who,
             trial_id: Annotated[str | None, Query(max_length=64)] = None,
             offset: Offset = 0, limit: Limit = 25) -> dict[str, Any]:
    """The patients of the caller's trials and sites, by study number."""
    return _page(request, ops.list_patients(context(request), who, trial_id=trial_id,
                                            offset=offset, limit=limit))


@router.post("/patients", tags=["patients"], status_code=201, dependencies=[Depends(csrf)])
def create_patient(request: Request, body: PatientIn, who: Who,
                   idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """Register a patient. A client that may retry sends an ``Idempotency-Key`` header (a
    new random value per patient): a retry with the same key and body answers with the
    patient the first request made, never a second one; the same key with another body is
    refused (409)."""
    ctx = context(request)
    row = ops.create_patient(ctx, who, trial_id=body.trial_id, site=body.site,
                             record=body.record, identifiers=_ids(body.identifiers) or {},
                             reason=body.reason, idempotency_key=idempotency_key)
    return {"ok": True, **overview.patient_page(ctx, who, row.study_number)}


@router.get("/patients/{study_number}", tags=["patients"])
def patient(request: Request, study_number: StudyNumber, who: Who) -> dict[str, Any]:
    return {"ok": True, **overview.patient_page(context(request), who, study_number)}


@router.put("/patients/{study_number}", tags=["patients"], dependencies=[Depends(csrf)])
def update_patient(request: Request, study_number: StudyNumber, body: PatientUpdate,
                   who: Who) -> dict[str, Any]:
    """Save changed facts; refused with 409 when ``version`` is not the stored version."""
    ctx = context(request)
    ops.update_patient(ctx, who, study_number, version=body.version, record=body.record,
                       identifiers=_ids(body.identifiers), reason=body.reason)
    return {"ok": True, **overview.patient_page(ctx, who, study_number)}


@router.get("/patients/{study_number}/screenings", tags=["patients"])
def screenings(request: Request, study_number: StudyNumber, who: Who) -> dict[str, Any]:
    return {"ok": True, "items": overview.patient_page(context(request), who,
                                                  study_number)["screenings"]}


@router.post("/patients/{study_number}/screenings", tags=["patients"], status_code=201,
             dependencies=[Depends(csrf)])
def screen_patient(request: Request, study_number: StudyNumber, body: ScreeningIn,
                   who: Who) -> dict[str, Any]:
    """Screen the stored patient against its trial's current protocol version; stored."""
    return {"ok": True, **ops.screen_patient(context(request), who, study_number,
                                             as_of=body.as_of, reason=body.reason)}


@router.post("/patients/{study_number}/enrolment", tags=["patients"], status_code=201,
             dependencies=[Depends(csrf)])
def enrol(request: Request, study_number: StudyNumber, body: EnrolIn, who: Who
          ) -> dict[str, Any]:
    """Confirm eligibility with an e-signature (password again) and enrol the patient."""
    from trialdesk.services import journeys

    ctx = context(request)
    with body_fields():
        journeys.enrol_patient(
            ctx, who, study_number, screening_id=body.screening_id, password=body.password,
            reason=body.reason, start=body.start, override_reason=body.override_reason,
            override_arm=body.override_arm, variants=body.variants, optional=body.optional,
            anchors={k: v.replace(tzinfo=None) for k, v in body.anchors.items()},
            factors=body.factors)
    return {"ok": True, **(ops.enrolment_view(ctx, study_number) or {})}


@router.get("/patients/{study_number}/audit", tags=["audit"])
def patient_audit(request: Request, study_number: StudyNumber, who: Who, offset: Offset = 0,
                  limit: Limit = 50) -> dict[str, Any]:
    ctx = context(request)
    row = ops.load_patient(ctx, who, study_number)
    return _page(request, ops.audit_trail(ctx, who, trial_id=row.trial_id, offset=offset,
                                          limit=limit, study_number=study_number))
