"""The JSON API of biomarker samples and results (under ``/api``): a patient's samples, a
sample taken for a sampling event of the calendar, its correction, and its results (a
result's correction names the revision it corrects and says why)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import Field, StringConstraints

from trialdesk.services import biomarkers
from trialdesk.web.clinical_api import EventId
from trialdesk.web.deps import context, csrf
from trialdesk.web.params import INT32, Reason, StudyNumber, Who, _In, body_fields

router = APIRouter(prefix="/api")
SamplePath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Detail = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
LongDetail = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]
FactName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64,
                                            pattern=r"^[a-z0-9_]+$")]


class SampleIn(_In):
    event_id: EventId
    sample_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                max_length=64)]
    collected_at: datetime
    specimen: Detail | None = None
    tube: Detail | None = None
    processing: LongDetail | None = None
    storage: Detail | None = None
    by: Detail | None = None
    reason: Reason = "sample taken"


class SampleCorrectionIn(_In):
    version: int = Field(ge=1, le=INT32)
    collected_at: datetime | None = None
    specimen: Detail | None = None
    tube: Detail | None = None
    processing: LongDetail | None = None
    storage: Detail | None = None
    reason: Reason


class ResultIn(_In):
    fact: FactName
    value: float | bool | Annotated[str, StringConstraints(max_length=200)]
    unit: Annotated[str, StringConstraints(max_length=32)] | None = None
    method: Detail | None = None
    site: Detail | None = None
    effector_target_ratio: Annotated[str, StringConstraints(max_length=16)] | None = None
    reported_at: datetime | None = None
    by: Detail | None = None
    corrects: int | None = Field(default=None, ge=1, le=INT32)
    reason: Reason | None = None


@router.get("/patients/{study_number}/samples", tags=["biomarkers"])
def patient_samples(request: Request, study_number: StudyNumber, who: Who) -> dict[str, Any]:
    """The patient's samples, each with its current results and corrected revisions."""
    return {"study_number": study_number,
            "items": biomarkers.patient_samples(context(request), who, study_number)}


@router.post("/patients/{study_number}/samples", tags=["biomarkers"], status_code=201,
             dependencies=[Depends(csrf)])
def record_sample(request: Request, study_number: StudyNumber, body: SampleIn,
                  who: Who) -> dict[str, Any]:
    """A sample taken for a sampling event of the patient's calendar."""
    with body_fields():
        return biomarkers.record_sample(
            context(request), who, study_number, event_id=body.event_id,
            sample_id=body.sample_id, collected_at=body.collected_at, specimen=body.specimen,
            tube=body.tube, processing=body.processing, storage=body.storage, by=body.by,
            reason=body.reason)


@router.get("/samples/{sample_id}", tags=["biomarkers"])
def sample(request: Request, sample_id: SamplePath, who: Who) -> dict[str, Any]:
    return biomarkers.sample_view(context(request), who, sample_id)


@router.post("/samples/{sample_id}/corrections", tags=["biomarkers"],
             dependencies=[Depends(csrf)])
def correct_sample(request: Request, sample_id: SamplePath, body: SampleCorrectionIn,
                   who: Who) -> dict[str, Any]:
    """The sample's details corrected (compare-and-swap on ``version``), with the reason."""
    with body_fields():
        return biomarkers.correct_sample(
            context(request), who, sample_id, version=body.version,
            collected_at=body.collected_at, specimen=body.specimen, tube=body.tube,
            processing=body.processing, storage=body.storage, reason=body.reason)


@router.post("/samples/{sample_id}/results", tags=["biomarkers"], status_code=201,
             dependencies=[Depends(csrf)])
def record_result(request: Request, sample_id: SamplePath, body: ResultIn,
                  who: Who) -> dict[str, Any]:
    """A result of the sample, or with ``corrects`` the correction of that revision."""
    with body_fields():
        return biomarkers.record_result(
            context(request), who, sample_id, fact=body.fact, value=body.value, unit=body.unit,
            method=body.method, site=body.site, effector_target_ratio=body.effector_target_ratio,
            reported_at=body.reported_at, by=body.by, corrects=body.corrects,
            reason=body.reason)


@router.get("/facts/{fact}/result-field", tags=["biomarkers"])
def result_field(fact: Annotated[str, Path(pattern=r"^[a-z0-9_]{1,64}$")]) -> dict[str, Any]:
    """How a result of the fact is entered: label, units, allowed values, extra details."""
    return biomarkers.result_field(fact)
