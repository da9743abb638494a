"""The monitoring pages: a patient's forms with their status and fields, raising a data
query on a field, the query with its steps (answer, correct with a reason, close,
re-open), and the administrator's lock of the record. Plain forms (no JavaScript); a
refused step comes back on its page with the problem named by the field's label.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from trialdesk.errors import AccessError, TrialdeskError
from trialdesk.services import queries
from trialdesk.web.deps import Submitted, context, csrf
from trialdesk.web.errors import status_of
from trialdesk.web.pages import render
from trialdesk.web.params import INT32, StudyNumber, Who

router = APIRouter(include_in_schema=False)
QueryId = Annotated[int, Path(ge=1, le=INT32)]
FormId = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


def _problems(exc: TrialdeskError) -> list[str]:
    """The problem beside the form; a refused login or role goes to the one error page."""
    if isinstance(exc, AccessError) and exc.status in (401, 403):
        raise exc
    return [f"{exc.where}: {exc.reason}" if exc.where else exc.reason]


def _version(data: dict[str, str]) -> int:
    v = data.get("version", "")
    if not v.isdigit() or not 0 < int(v) <= INT32:
        from trialdesk.errors import FactError

        raise FactError("reload the page and try again", where="Query version")
    return int(v)


def _monitoring(request: Request, who: Any, study_number: str, status: int = 200,
                **values: Any) -> HTMLResponse:
    page = queries.monitoring_page(context(request), who, study_number)
    return render(request, "monitoring.html", status=status, m=page, **values)


def _query(request: Request, who: Any, query_id: int, status: int = 200,
           **values: Any) -> HTMLResponse:
    page = queries.query_page(context(request), who, query_id)
    return render(request, "query.html", status=status, q=page, **values)


@router.get("/patients/{study_number}/monitoring", response_class=HTMLResponse)
def monitoring(request: Request, study_number: StudyNumber, who: Who) -> Response:
    who.require_user()
    return _monitoring(request, who, study_number)


@router.post("/patients/{study_number}/queries", response_class=HTMLResponse,
             dependencies=[Depends(csrf)])
def open_query(request: Request, study_number: StudyNumber, who: Who,
               data: Submitted) -> Response:
    try:
        q = queries.open_query(context(request), who, study_number, field=data.get("field", ""),
                               question=data.get("question", ""), form=data.get("form") or None)
    except TrialdeskError as exc:
        return _monitoring(request, who, study_number, status=status_of(exc),
                           form_errors=_problems(exc), values=data)
    return RedirectResponse(f"/queries/{q['id']}", status_code=303)


@router.post("/patients/{study_number}/forms/{form_id}/status", response_class=HTMLResponse,
             dependencies=[Depends(csrf)])
def form_status(request: Request, study_number: StudyNumber, form_id: FormId,
                who: Who, data: Submitted) -> Response:
    try:
        queries.set_form_status(context(request), who, study_number, form_id,
                                status=data.get("status", ""), reason=data.get("reason", ""))
    except TrialdeskError as exc:
        return _monitoring(request, who, study_number, status=status_of(exc),
                           form_errors=_problems(exc))
    return RedirectResponse(f"/patients/{study_number}/monitoring#form-{form_id}",
                            status_code=303)


@router.post("/patients/{study_number}/lock", response_class=HTMLResponse,
             dependencies=[Depends(csrf)])
def lock(request: Request, study_number: StudyNumber, who: Who, data: Submitted
         ) -> Response:
    try:
        queries.lock_record(context(request), who, study_number,
                            locked=data.get("action") != "unlock", reason=data.get("reason", ""))
    except TrialdeskError as exc:
        return _monitoring(request, who, study_number, status=status_of(exc),
                           form_errors=_problems(exc))
    return RedirectResponse(f"/patients/{study_number}/monitoring", status_code=303)


@router.get("/queries/{query_id}", response_class=HTMLResponse)
def query(request: Request, query_id: QueryId, who: Who) -> Response:
    who.require_user()
    return _query(request, who, query_id)


Step = Callable[[Any, Any, int, dict[str, str]], dict[str, Any]]
STEPS: dict[str, Step] = {
    "answer": lambda ctx, who, qid, d: queries.answer_query(
        ctx, who, qid, version=_version(d), answer=d.get("answer", "")),
    "correct": lambda ctx, who, qid, d: queries.correct_query(
        ctx, who, qid, version=_version(d), value=d.get("value", ""),
        unit=d.get("unit") or None, reason=d.get("reason", "")),
    "close": lambda ctx, who, qid, d: queries.close_query(
        ctx, who, qid, version=_version(d), note=d.get("note", "")),
    "reopen": lambda ctx, who, qid, d: queries.reopen_query(
        ctx, who, qid, version=_version(d), note=d.get("note", "")),
}


@router.post("/queries/{query_id}/{step}", response_class=HTMLResponse,
             dependencies=[Depends(csrf)])
def query_step(request: Request, query_id: QueryId,
               step: Annotated[str, Path(pattern="^(answer|correct|close|reopen)$")],
               who: Who, data: Submitted) -> Response:
    try:
        STEPS[step](context(request), who, query_id, data)
    except TrialdeskError as exc:
        return _query(request, who, query_id, status=status_of(exc),
                      form_errors=_problems(exc), step=step, values=data)
    return RedirectResponse(f"/queries/{query_id}", status_code=303)
