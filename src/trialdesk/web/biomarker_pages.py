"""The pages of biomarker samples: "Record sample" for a sampling event of the calendar and
"Record result" for a sample (the result's field typed from the fact dictionary: its label,
the units it may be entered in, its allowed values). Both work on a plain submit; the
result form first asks which result (a GET form), then shows that fact's field.

Every refused value is shown with the field's label and the reason in words.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import Field, ValidationError

from trialdesk.errors import AccessError, NotFoundError, TrialdeskError
from trialdesk.services import biomarkers
from trialdesk.web.biomarker_api import SamplePath
from trialdesk.web.clinical_pages import Fields, Who, _form_errors, _shown
from trialdesk.web.deps import context, csrf
from trialdesk.web.errors import status_of
from trialdesk.web.pages import _domain_errors, _Form, _redirect, render
from trialdesk.web.params import INT32, StudyNumber

router = APIRouter(include_in_schema=False)
Csrf = [Depends(csrf)]

LABELS = {
    "event_id": "Sampling event", "sample_id": "Sample identifier",
    "collected_at": "Collected at (date and time)", "specimen": "Specimen", "tube": "Tube",
    "processing": "Processing", "storage": "Storage location", "by": "Taken by",
    "fact": "Result", "unit": "Unit", "method": "Method", "site": "Lesion or site",
    "effector_target_ratio": "Effector:target ratio", "reported_at": "Reported at",
    "reason": "Reason for the correction", "corrects": "Revision corrected",
    "revision": "Revision corrected", "version": "Sample version", "$": "Sample",
}


def _labelled(errors: list[dict[str, str]], value_label: str = "Result value"
              ) -> list[dict[str, str]]:
    labels = {**LABELS, "value": value_label}
    return [{**e, "field": labels.get(e["field"], e["field"].replace("_", " "))} for e in errors]


def _refused(exc: TrialdeskError) -> bool:
    return isinstance(exc, NotFoundError) or (isinstance(exc, AccessError) and exc.status == 403)


class SampleForm(_Form):
    event_id: str = Field(min_length=1, max_length=128)
    sample_id: str = Field(min_length=1, max_length=64)
    collected_at: datetime
    specimen: str | None = Field(default=None, max_length=200)
    tube: str | None = Field(default=None, max_length=200)
    processing: str | None = Field(default=None, max_length=1000)
    storage: str | None = Field(default=None, max_length=200)
    by: str | None = Field(default=None, max_length=200)


class ResultForm(_Form):
    fact: str = Field(min_length=1, max_length=64)
    value: str = Field(min_length=1, max_length=200)
    unit: str | None = Field(default=None, max_length=32)
    method: str | None = Field(default=None, max_length=200)
    site: str | None = Field(default=None, max_length=200)
    effector_target_ratio: str | None = Field(default=None, max_length=16)
    reported_at: datetime | None = None
    corrects: int | None = Field(default=None, ge=1, le=INT32)
    reason: str | None = Field(default=None, max_length=500)


def _sample_page(request: Request, who: Who, study_number: str, event_id: str, *,
                 status: int = 200, errors: list[dict[str, str]] | None = None,
                 form: dict[str, Any] | None = None) -> Response:
    f = biomarkers.sample_form(context(request), who, study_number, event_id)
    return render(request, "biomarker_sample.html", status=status, f=f,
                  errors=_labelled(errors or []), form=form or {})


@router.get("/patients/{study_number}/samples/new", response_class=HTMLResponse)
def new_sample(request: Request, study_number: StudyNumber, who: Who,
               event: str = Query(min_length=1, max_length=128)) -> Response:
    return _sample_page(request, who, study_number, event)


@router.post("/patients/{study_number}/samples", response_class=HTMLResponse, dependencies=Csrf)
def record_sample(request: Request, study_number: StudyNumber, who: Who,
                  form: Fields) -> Response:
    event_id = str(form.get("event_id") or "")
    try:
        d = SampleForm.model_validate(form)
        biomarkers.record_sample(context(request), who, study_number, event_id=d.event_id,
                                 sample_id=d.sample_id, collected_at=d.collected_at,
                                 specimen=d.specimen, tube=d.tube, processing=d.processing,
                                 storage=d.storage, by=d.by)
    except ValidationError as exc:
        return _sample_page(request, who, study_number, event_id, status=422,
                            errors=_form_errors(exc), form=_shown(form))
    except TrialdeskError as exc:
        if _refused(exc) and exc.where in (None, "$"):
            raise
        return _sample_page(request, who, study_number, event_id, status=status_of(exc),
                            errors=_domain_errors(exc), form=_shown(form))
    return _redirect(f"/patients/{study_number}/calendar#ev-{event_id}")


def _result_page(request: Request, who: Who, sample_id: str, fact: str | None, *,
                 status: int = 200, errors: list[dict[str, str]] | None = None,
                 form: dict[str, Any] | None = None) -> Response:
    f = biomarkers.result_form(context(request), who, sample_id, fact)
    label = f["field"]["label"] if f["field"] else "Result value"
    return render(request, "biomarker_result.html", status=status, f=f,
                  errors=_labelled(errors or [], label), form=form or {})


@router.get("/samples/{sample_id}/results/new", response_class=HTMLResponse)
def new_result(request: Request, sample_id: SamplePath, who: Who,
               fact: str | None = Query(default=None, max_length=64)) -> Response:
    try:
        return _result_page(request, who, sample_id, fact or None)
    except TrialdeskError as exc:
        if _refused(exc) or exc.where != "fact":
            raise
        return _result_page(request, who, sample_id, None, status=status_of(exc),
                            errors=_domain_errors(exc))


@router.post("/samples/{sample_id}/results", response_class=HTMLResponse, dependencies=Csrf)
def record_result(request: Request, sample_id: SamplePath, who: Who, form: Fields) -> Response:
    fact = str(form.get("fact") or "") or None
    try:
        d = ResultForm.model_validate(form)
        saved = biomarkers.record_result(
            context(request), who, sample_id, fact=d.fact, value=d.value, unit=d.unit,
            method=d.method, site=d.site, effector_target_ratio=d.effector_target_ratio,
            reported_at=d.reported_at, corrects=d.corrects, reason=d.reason)
    except ValidationError as exc:
        return _result_page(request, who, sample_id, fact, status=422, errors=_form_errors(exc),
                            form=_shown(form))
    except TrialdeskError as exc:
        if _refused(exc) and exc.where in (None, "$"):
            raise
        return _result_page(request, who, sample_id, fact, status=status_of(exc),
                            errors=_domain_errors(exc), form=_shown(form))
    return _redirect(f"/patients/{saved['study_number']}/calendar#ev-{saved['event_id']}")
