"""The typed patient form: register a patient for a trial and edit a stored one without
JSON, and the same form through the API (its fields, and a submission as a flat object).

The pages work with a plain submit (no JavaScript); a refused form comes back with every
problem named by its field's label and what was typed kept.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import Field

from trialdesk.errors import AccessError, TrialdeskError
from trialdesk.forms.build import COURSE_GROUPS, course_rows
from trialdesk.forms.parse import FormError, unit_text
from trialdesk.services import forms as form_ops
from trialdesk.services import overview
from trialdesk.web.deps import context, csrf
from trialdesk.web.errors import status_of
from trialdesk.web.pages import render
from trialdesk.web.params import Reason, Site, StudyNumber, TrialId, Who, _In

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api", tags=["forms"])


def _refused(exc: TrialdeskError) -> tuple[list[str], int]:
    """The problems to show beside the form and the status; a refused login or role is
    not a form problem and goes to the one error page."""
    if isinstance(exc, AccessError) and exc.status in (401, 403):
        raise exc
    if isinstance(exc, FormError):
        return exc.problems, status_of(exc)
    return [f"{exc.where}: {exc.reason}" if exc.where else exc.reason], status_of(exc)


async def _submitted(request: Request) -> dict[str, str]:
    limit = context(request).settings.max_upload_bytes
    form = await request.form(max_part_size=limit)
    return {k: v for k, v in form.items() if isinstance(v, str)}


#: The submitted form's text fields, read before the page's function runs (a plain ``def``,
#: run in the thread pool: its database work never holds up the event loop).
Submitted = Annotated[dict[str, str], Depends(_submitted)]


def _page(request: Request, status: int = 200, add: str | None = None,
          **values: Any) -> HTMLResponse:
    today = context(request).store.now().date().isoformat()
    form = values["form"]
    rows = (course_rows(values.get("values") or {}, add=add)
            if form.has("chemo1.regimen") else {})
    return render(request, "patient_form.html", status=status, unit_text=unit_text,
                  today=today, course_rows=rows, course_groups=COURSE_GROUPS, **values)


def _added(data: dict[str, str]) -> str | None:
    """The disease-course group an "add another" button asked one more row for."""
    action = data.get("action", "")
    group = action.removeprefix("add:")
    return group if action.startswith("add:") and group in {g for g, _, _ in COURSE_GROUPS} \
        else None


_SITE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}")


def _registration(data: dict[str, str], sites: list[str]) -> tuple[str, dict[str, str], str]:
    """The site, the direct identifiers and the reason of a registration, checked."""
    site = data.get("site", "").strip() or (sites[0] if sites else "")
    name, number = data.get("name", "").strip(), data.get("hospital_number", "").strip()
    reason = data.get("reason", "").strip() or "new patient registered by form"
    problems = []
    if not _SITE.fullmatch(site):
        problems.append("Site: enter the site's name (letters, digits, spaces, '.', '_' or "
                        "'-', up to 64 characters)")
    for label, value, most in (("Name", name, 200), ("Hospital number", number, 64),
                               ("Reason for the entry", reason, 500)):
        if len(value) > most:
            problems.append(f"{label}: shorten it to {most} characters or fewer")
    if problems:
        raise FormError(problems)
    return site, {"name": name, "hospital_number": number}, reason


@router.get("/trials/{trial_id}/patients/new", response_class=HTMLResponse)
def new_patient(request: Request, trial_id: TrialId, who: Who) -> Response:
    page = form_ops.new_form(context(request), who, trial_id)
    return _page(request, heading=f"New patient for {trial_id}",
                 action=f"/trials/{trial_id}/patients", values={}, **page)


@router.post("/trials/{trial_id}/patients", response_class=HTMLResponse,
             dependencies=[Depends(csrf)])
def register(request: Request, trial_id: TrialId, who: Who, data: Submitted) -> Response:
    ctx = context(request)
    page = form_ops.new_form(ctx, who, trial_id)
    if (group := _added(data)) is not None:
        return _page(request, heading=f"New patient for {trial_id}", add=group,
                     action=f"/trials/{trial_id}/patients", values=data, **page)
    try:
        if data.get("action") == "check":
            return _page(request, heading=f"New patient for {trial_id}",
                         action=f"/trials/{trial_id}/patients", values=data, checked=True,
                         **{**page, **form_ops.check(ctx, who, trial_id, data)})
        site, identifiers, reason = _registration(data, page["sites"])
        row = form_ops.create_from_form(ctx, who, trial_id, site=site, data=data,
                                        reason=reason, identifiers=identifiers,
                                        screen=data.get("action") != "draft")
    except TrialdeskError as exc:
        problems, status = _refused(exc)
        return _page(request, status=status, heading=f"New patient for {trial_id}",
                     action=f"/trials/{trial_id}/patients", values=data,
                     form_errors=problems, **page)
    return RedirectResponse(f"/patients/{row.study_number}/form", status_code=303)


@router.get("/patients/{study_number}/form", response_class=HTMLResponse)
def patient_form(request: Request, study_number: StudyNumber, who: Who) -> Response:
    page = form_ops.form_page(context(request), who, study_number)
    return _page(request, heading=f"Patient {study_number}",
                 action=f"/patients/{study_number}/form", **page)


@router.post("/patients/{study_number}/form", response_class=HTMLResponse,
             dependencies=[Depends(csrf)])
def save_form(request: Request, study_number: StudyNumber, who: Who,
              data: Submitted) -> Response:
    ctx = context(request)
    page = form_ops.form_page(ctx, who, study_number)
    if (group := _added(data)) is not None:
        return _page(request, heading=f"Patient {study_number}", add=group,
                     action=f"/patients/{study_number}/form", **{**page, "values": data})
    try:
        if data.get("action") == "check":
            return _page(request, heading=f"Patient {study_number}", checked=True,
                         action=f"/patients/{study_number}/form",
                         **{**page, "values": data, **form_ops.check(
                             ctx, who, page["trial_id"], data, study_number=study_number)})
        version = data.get("version", "")
        if not version.isdigit():
            raise FormError(["Record version: reload the page and try again"])
        form_ops.update_from_form(ctx, who, study_number, version=int(version), data=data,
                                  reason=data.get("reason", ""),
                                  screen=data.get("action") != "draft")
    except TrialdeskError as exc:
        problems, status = _refused(exc)
        return _page(request, status=status, heading=f"Patient {study_number}",
                     action=f"/patients/{study_number}/form", form_errors=problems,
                     **{**page, "values": data})
    return RedirectResponse(f"/patients/{study_number}/form", status_code=303)


# ---------------------------------------------------------------------------- API


@api_router.get("/trials/{trial_id}/form")
def form_definition(request: Request, trial_id: TrialId) -> dict[str, Any]:
    """The trial's patient form: sections, fields (label, type, units, choices, possible
    range) and the criteria each section decides. Submit it with ``POST
    /api/trials/{trial_id}/form``: field names as keys, text values as a person types them;
    a dated field's date under ``<name>.date``, a unit under ``<name>.unit``, a lab's
    reference range under ``<name>.low`` and ``<name>.high``."""
    return {"ok": True, **form_ops.trial_form(context(request), trial_id).to_json()}


class FormIn(_In):
    site: Site
    values: dict[str, str] = Field(max_length=2000)
    identifiers: dict[str, str] = Field(default_factory=dict, max_length=2)
    reason: Reason
    screen: bool = True


@api_router.post("/trials/{trial_id}/form", status_code=201, dependencies=[Depends(csrf)])
def submit_form(request: Request, trial_id: TrialId, body: FormIn, who: Who) -> dict[str, Any]:
    """Register a patient from the form's values (the same checks and words as the page)."""
    ctx = context(request)
    row = form_ops.create_from_form(ctx, who, trial_id, site=body.site, data=body.values,
                                    identifiers={k: v for k, v in body.identifiers.items()
                                                 if k in ("name", "hospital_number")},
                                    reason=body.reason, screen=body.screen)
    return {"ok": True, **overview.patient_page(ctx, who, row.study_number)}
