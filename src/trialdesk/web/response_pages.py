"""Response-assessment forms: INRC 2017 and RECIST 1.1 findings typed into labelled fields
(no JSON), the computed response and its reasoning shown first ("Preview"), then signed by
the investigator with the password and recorded; and the same through the API.

The pages work with a plain submit; a refused form comes back with every problem named by
its field's label and what was typed kept.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import Field

from trialdesk.errors import TrialdeskError
from trialdesk.forms.parse import unit_text
from trialdesk.services import responses
from trialdesk.web.deps import context, csrf
from trialdesk.web.form_pages import Submitted, _refused
from trialdesk.web.pages import render
from trialdesk.web.params import StudyNumber, Who, _In

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api", tags=["response"])

Criteria = Literal["inrc", "recist"]
_KEEP = ("csrf_token", "action", "password", "reason")


def _page(request: Request, study_number: str, criteria: str, values: dict[str, str],
          status: int = 200, **more: Any) -> HTMLResponse:
    ctx = context(request)
    who = ctx.auth.principal(request)
    form = responses.response_form(ctx, who, study_number, criteria)
    return render(request, "response_form.html", status=status, f=form, values=values,
                  unit_text=unit_text, today=ctx.store.now().date().isoformat(),
                  action=f"/patients/{study_number}/responses/{criteria.lower()}/form", **more)


@router.get("/patients/{study_number}/responses/{criteria}/form", response_class=HTMLResponse)
def response_form(request: Request, study_number: StudyNumber, criteria: Criteria,
                  who: Who) -> Response:
    who.require_user()
    return _page(request, study_number, criteria.upper(), {})


@router.post("/patients/{study_number}/responses/{criteria}/form", response_class=HTMLResponse,
             dependencies=[Depends(csrf)])
def response_submit(request: Request, study_number: StudyNumber, criteria: Criteria,
                    who: Who, data: Submitted) -> Response:
    ctx = context(request)
    values = {k: v for k, v in data.items() if k not in _KEEP}
    action = data.get("action", "preview")
    code = criteria.upper()
    if action == "edit":
        return _page(request, study_number, code, values)
    try:
        if action == "sign":
            responses.record_from_form(ctx, who, study_number, code, values,
                                       password=data.get("password", ""),
                                       reason=data.get("reason", ""))
            return RedirectResponse(f"/patients/{study_number}/responses#latest",
                                    status_code=303)
        preview = responses.preview_from_form(ctx, who, study_number, code, values)
    except TrialdeskError as exc:
        problems, status = _refused(exc)
        return _page(request, study_number, code, values, status=status, form_errors=problems)
    return _page(request, study_number, code, values, preview=preview)


# ---------------------------------------------------------------------------- API


@api_router.get("/patients/{study_number}/responses/{criteria}/form")
def response_form_definition(request: Request, study_number: StudyNumber, criteria: Criteria,
                             who: Who) -> dict[str, Any]:
    """The typed form of the patient's next assessment by ``criteria`` (INRC 2017 time
    point, RECIST 1.1 baseline or time point): fields with label, type, unit, choices and
    possible range. Submit the values as text, keyed by field name, with
    ``assessed_on``."""
    form = responses.response_form(context(request), who, study_number, criteria.upper())
    return {"ok": True, "criteria": form["criteria"], "kind": form["kind"],
            "fields": [f.to_json() for f in form["fields"]], "history": form["history"]}


class ResponseFormIn(_In):
    values: dict[str, str] = Field(max_length=200)


class SignedResponseFormIn(ResponseFormIn):
    password: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=500)


@api_router.post("/patients/{study_number}/responses/{criteria}/preview",
                 dependencies=[Depends(csrf)])
def response_preview(request: Request, study_number: StudyNumber, criteria: Criteria,
                     body: ResponseFormIn, who: Who) -> dict[str, Any]:
    """The response the values give, with its reasoning; nothing is stored."""
    p = responses.preview_from_form(context(request), who, study_number, criteria.upper(),
                                    body.values)
    return {"ok": True, **{k: p[k] for k in ("criteria", "kind", "assessed_on", "overall",
                                             "document", "result")}}


@api_router.post("/patients/{study_number}/responses/{criteria}/form", status_code=201,
                 dependencies=[Depends(csrf)])
def response_sign(request: Request, study_number: StudyNumber, criteria: Criteria,
                  body: SignedResponseFormIn, who: Who) -> dict[str, Any]:
    """Sign (the investigator's password) and record the assessment the values give."""
    return {"ok": True, **responses.record_from_form(
        context(request), who, study_number, criteria.upper(), body.values,
        password=body.password, reason=body.reason)}
