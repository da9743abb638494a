"""The JSON API of the worklist, data queries and monitoring (under ``/api``).

A query names the field of the trial's patient form (``GET /api/trials/{trial_id}/form``
lists the fields); the value it was opened on is taken from the stored record. A step
names the query version it was based on (a stale one answers 409). A refused value names
the field by its label (``Question``, ``Corrected value``, ``Reason for the change``).
A locked patient's record refuses every change with 409 (``record_locked``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import Field, StringConstraints

from trialdesk.services import queries, worklist
from trialdesk.web.deps import context, csrf
from trialdesk.web.params import INT32, Reason, StudyNumber, Who, _In

router = APIRouter(prefix="/api", tags=["queries"])
Csrf = [Depends(csrf)]
QueryId = Annotated[int, Path(ge=1, le=INT32)]
FormId = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Version = Annotated[int, Field(ge=1, le=INT32)]


class QueryIn(_In):
    field: Annotated[str, StringConstraints(min_length=1, max_length=64,
                                            pattern=r"^[a-z0-9][a-z0-9_.\-]*$")]
    question: Text
    form: Annotated[str, StringConstraints(min_length=1, max_length=64,
                                           pattern=r"^[a-z][a-z0-9_]*$")] | None = Field(
        default=None,
        description="The form: a section of the patient form (optional: the field names "
                    "it); a recorded adverse event, adverse_event_<id> as the monitoring "
                    "view lists it, with the fields term, grade, onset, resolution, "
                    "seriousness, attributions, expectedness, action_taken, outcome, "
                    "sponsor_aware_on; or doses, the doses given as the calendar records "
                    "them, with the calendar event id of a recorded dose as the field.")


class AnswerIn(_In):
    version: Version
    answer: Text


class CorrectIn(_In):
    version: Version
    value: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                            max_length=200)]
    unit: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                           max_length=32)] | None = None
    reason: Reason


class NoteIn(_In):
    version: Version
    note: Text


class FormStatusIn(_In):
    status: Literal["incomplete", "complete", "verified"]
    reason: Reason


class LockIn(_In):
    locked: bool
    reason: Reason


@router.get("/worklist")
def my_worklist(request: Request, who: Who) -> dict[str, Any]:
    """What waits for the caller, per role: doses to sign (pharmacist), toxicity actions and
    eligibility awaiting a decision (investigator), assessments due in the next 14 days and
    overdue events (coordinator), data queries to answer (site) or to review (monitor);
    each line with the link of the page where it is done."""
    return {"ok": True, **worklist.worklist(context(request), who)}


@router.get("/patients/{study_number}/monitoring")
def monitoring(request: Request, study_number: StudyNumber, who: Who) -> dict[str, Any]:
    """The patient's forms (status incomplete / complete / source-verified / locked, and
    their fields as stored), the patient's data queries and the record's lock."""
    return {"ok": True, **queries.monitoring_page(context(request), who, study_number)}


@router.post("/patients/{study_number}/queries", status_code=201, dependencies=Csrf)
def open_query(request: Request, study_number: StudyNumber, body: QueryIn, who: Who
               ) -> dict[str, Any]:
    """A monitor opens a query on a field of the patient's form or of a recorded adverse
    event (``form``: ``adverse_event_<id>``, as the monitoring view lists the forms)."""
    return {"ok": True, **queries.open_query(context(request), who, study_number,
                                             field=body.field, question=body.question,
                                             form=body.form)}


@router.get("/queries/{query_id}")
def query(request: Request, query_id: QueryId, who: Who) -> dict[str, Any]:
    """A query with its steps and the field's value now."""
    return {"ok": True, **queries.query_page(context(request), who, query_id)}


@router.post("/queries/{query_id}/answer", dependencies=Csrf)
def answer(request: Request, query_id: QueryId, body: AnswerIn, who: Who) -> dict[str, Any]:
    """The site answers: the stored value is right, and why."""
    return {"ok": True, **queries.answer_query(context(request), who, query_id,
                                               version=body.version, answer=body.answer)}


@router.post("/queries/{query_id}/correct", dependencies=Csrf)
def correct(request: Request, query_id: QueryId, body: CorrectIn, who: Who) -> dict[str, Any]:
    """The site corrects the value (written through the patient form with the reason, a
    new version of the record; or through the adverse event's correction) and so answers
    the query."""
    return {"ok": True, **queries.correct_query(context(request), who, query_id,
                                                version=body.version, value=body.value,
                                                unit=body.unit, reason=body.reason)}


@router.post("/queries/{query_id}/close", dependencies=Csrf)
def close(request: Request, query_id: QueryId, body: NoteIn, who: Who) -> dict[str, Any]:
    """The monitor closes the query."""
    return {"ok": True, **queries.close_query(context(request), who, query_id,
                                              version=body.version, note=body.note)}


@router.post("/queries/{query_id}/reopen", dependencies=Csrf)
def reopen(request: Request, query_id: QueryId, body: NoteIn, who: Who) -> dict[str, Any]:
    """The monitor re-opens an answered or closed query."""
    return {"ok": True, **queries.reopen_query(context(request), who, query_id,
                                               version=body.version, note=body.note)}


@router.post("/patients/{study_number}/forms/{form_id}/status", dependencies=Csrf)
def form_status(request: Request, study_number: StudyNumber, form_id: FormId,
                body: FormStatusIn, who: Who) -> dict[str, Any]:
    """A form's status: complete or incomplete (the site), source-verified (a monitor, once
    complete with every query closed)."""
    return {"ok": True, **queries.set_form_status(context(request), who, study_number, form_id,
                                                  status=body.status, reason=body.reason)}


@router.post("/patients/{study_number}/lock", dependencies=Csrf)
def lock(request: Request, study_number: StudyNumber, body: LockIn, who: Who) -> dict[str, Any]:
    """The administrator locks (``locked: true``) or unlocks the patient's record."""
    return {"ok": True, **queries.lock_record(context(request), who, study_number,
                                              locked=body.locked, reason=body.reason)}
