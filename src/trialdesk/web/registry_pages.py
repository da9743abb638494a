"""The registry pages: search the imported ClinicalTrials.gov studies (any signed-in user),
upload registry files (administrators), review a study's criteria drafts
(investigators, signed with the password) and open a reviewed study as a trial
(administrators, signed). Plain forms, no JavaScript; a problem is named
by the field's label.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from trialdesk.errors import AccessError, FactError, TrialdeskError
from trialdesk.registry.search import Age
from trialdesk.services import registry as reg
from trialdesk.services.catalogue import PHASE_LABELS, STATUS_LABELS
from trialdesk.services.roles import Permission
from trialdesk.web.deps import Submitted, context, csrf
from trialdesk.web.errors import status_of
from trialdesk.web.pages import render
from trialdesk.web.params import INT32, Who

router = APIRouter(include_in_schema=False)
NctId = Annotated[str, Path(pattern=r"^NCT\d{8}$")]
CriterionId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]

# The service names the command line's options; the page names its fields.
LABELS = {"--near": "Place", "--km": "Distance (km)", "--age": "Patient age", "--sex": "Sex",
          "--condition": "Condition"}
AGE_UNITS = {"year": "years", "month": "months", "week": "weeks", "day": "days"}
SEXES = {"F": "female", "M": "male"}
MAX_FILES = 50


def _problem(exc: TrialdeskError) -> str:
    if isinstance(exc, AccessError) and exc.status in (401, 403):
        raise exc
    where = LABELS.get(exc.where or "", exc.where)
    return f"{where}: {exc.reason}" if where else exc.reason


def _number(value: str, label: str, unit: str) -> float | None:
    value = value.strip()
    if not value:
        return None
    if not re.fullmatch(r"\d{1,6}(\.\d{1,3})?", value):
        raise FactError(f"enter a number of {unit}", where=label)
    return float(value)


@router.get("/registry", response_class=HTMLResponse)
def registry_search(request: Request, who: Who) -> Response:
    who.require_user()
    params = {k: v.strip()[:200] for k, v in request.query_params.items()}
    values = {k: params.get(k, "") for k in ("q", "condition", "status", "phase", "age",
                                             "age_unit", "sex", "near", "km")}
    searched = any(v for k, v in values.items() if k != "age_unit")
    found: dict[str, Any] | None = None
    problems: list[str] = []
    if searched:
        try:
            amount = _number(values["age"], "Patient age", AGE_UNITS.get(values["age_unit"],
                                                                          "years"))
            unit = values["age_unit"] if values["age_unit"] in AGE_UNITS else "year"
            km = _number(values["km"], "Distance (km)", "kilometres")
            if values["status"] and values["status"] not in STATUS_LABELS:
                raise FactError("choose a status from the list", where="Status")
            if values["phase"] and values["phase"] not in PHASE_LABELS:
                raise FactError("choose a phase from the list", where="Phase")
            if values["sex"] and values["sex"] not in SEXES:
                raise FactError("choose female or male", where="Sex")
            found = reg.search(
                context(request), who, text=values["q"] or None,
                condition=values["condition"] or None, status=values["status"] or None,
                phase=values["phase"] or None,
                age=Age(amount, unit) if amount is not None else None,
                sex=values["sex"] or None, near=values["near"] or None, km=km)
        except TrialdeskError as exc:
            problems.append(_problem(exc))
    return render(request, "registry_search.html", status=422 if problems else 200,
                  values=values, found=found, form_errors=problems, age_units=AGE_UNITS,
                  sexes=SEXES, searched=searched,
                  can_import=who.can_anywhere(Permission.REGISTRY_IMPORT))


def _import_page(request: Request, status: int = 200, **values: Any) -> HTMLResponse:
    return render(request, "registry_import.html", status=status, **values)


def _require_import(who: Any) -> None:
    who.require_user()
    if not who.can_anywhere(Permission.REGISTRY_IMPORT):
        raise AccessError("your role does not allow importing registry records")


@router.get("/registry/import", response_class=HTMLResponse)
def registry_import_form(request: Request, who: Who) -> Response:
    _require_import(who)
    return _import_page(request)


@router.post("/registry/import", response_class=HTMLResponse, dependencies=[Depends(csrf)])
async def registry_import(request: Request, who: Who) -> Response:
    _require_import(who)
    limit = context(request).settings.max_upload_bytes
    form = await request.form(max_part_size=limit, max_files=MAX_FILES)
    uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
    if not uploads:
        return _import_page(request, status=422, form_errors=[
            "Registry files: choose one or more files (v2 JSON, a search response or XML)"])
    files: list[tuple[str, bytes]] = []
    problems: list[str] = []
    for upload in uploads:
        data = await upload.read(limit + 1)
        name = upload.filename or "file"
        if len(data) > limit:
            problems.append(f"Registry files: {name} is larger than {limit:,} bytes; "
                            "nothing of it was imported")
            continue
        files.append((name, data))
    try:
        lines = reg.import_files(context(request), who, files,
                                 reason="uploaded on the registry import page")
    except TrialdeskError as exc:
        return _import_page(request, status=status_of(exc), form_errors=[_problem(exc)])
    results = [x.to_json() for x in lines]
    failed = sum("error" in r for r in results) + len(problems)
    return _import_page(request, results=results, form_errors=problems,
                        imported=len(results) - sum("error" in r for r in results),
                        failed=failed)


def _signed_problem(exc: TrialdeskError, who: Any) -> str:
    """The problem of a signed form: a refused password names the Password field."""
    if isinstance(exc, AccessError) and exc.status == 401 and who.user is not None:
        return f"Password: {exc.reason}"  # a wrong signature password, not a log-in
    return _problem(exc)


def _study_page(request: Request, who: Any, nct_id: str, status: int = 200,
                **values: Any) -> HTMLResponse:
    page = reg.review_page(context(request), who, nct_id)
    return render(request, "registry_study.html", status=status, s=page, **values)


@router.get("/registry/studies/{nct_id}", response_class=HTMLResponse)
def registry_study(request: Request, nct_id: NctId, who: Who) -> Response:
    who.require_user()
    return _study_page(request, who, nct_id)


@router.post("/registry/studies/{nct_id}/criteria/{criterion_id}", response_class=HTMLResponse,
             dependencies=[Depends(csrf)])
def registry_review(request: Request, nct_id: NctId, criterion_id: CriterionId,
                    who: Who, data: Submitted) -> Response:
    try:
        version = data.get("version", "")
        if not version.isdigit() or not 0 < int(version) <= INT32:
            raise FactError("reload the page and try again", where="Study version")
        reg.review(context(request), who, nct_id, criterion_id,
                   action=data.get("action", ""), version=int(version),
                   password=data.get("password", ""), rule=data.get("rule"),
                   question=data.get("question"), note=data.get("note"))
    except TrialdeskError as exc:
        return _study_page(request, who, nct_id, status=status_of(exc),
                           form_errors=[f"{criterion_id}: {_signed_problem(exc, who)}"],
                           failed=criterion_id, values=data)
    return RedirectResponse(f"/registry/studies/{nct_id}#criterion-{criterion_id}",
                            status_code=303)


@router.post("/registry/studies/{nct_id}/open", response_class=HTMLResponse,
             dependencies=[Depends(csrf)])
def registry_open(request: Request, nct_id: NctId, who: Who, data: Submitted) -> Response:
    try:
        opened = reg.open_as_trial(context(request), who, nct_id,
                                   password=data.get("password", ""),
                                   reason=data.get("reason"))
    except TrialdeskError as exc:
        return _study_page(request, who, nct_id, status=status_of(exc),
                           form_errors=[_signed_problem(exc, who)], failed="open", values=data)
    return RedirectResponse(f"/trials/{opened['trial_id']}", status_code=303)
