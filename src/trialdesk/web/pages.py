"""The pages people use (server-rendered Jinja2, a little plain JavaScript).

Every form carries the CSRF token and is validated with pydantic; a bad value re-renders
the form with the field and the reason (status 422). Uploaded files are size-limited.
Templates escape every value (autoescape on).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.datastructures import UploadFile

from trialdesk.errors import AccessError, FactError, TrialdeskError
from trialdesk.facts.patient import PatientRecord
from trialdesk.services import overview
from trialdesk.services import patients as ops
from trialdesk.services.catalogue import PHASE_LABELS, STATUS_LABELS, search, summary
from trialdesk.services.context import screening_moment
from trialdesk.services.forms import readable_record
from trialdesk.services.roles import Permission
from trialdesk.web.api import Identifiers, Limit, Offset, Phase, StatusCode, StudyNumber, TrialId
from trialdesk.web.deps import Submitted, context, csrf, principal
from trialdesk.web.errors import field_path, status_of
from trialdesk.web.params import INT32, Reason
from trialdesk.web.security import CSRF_FIELD, Principal, token_hash

router = APIRouter(include_in_schema=False)
Who = Annotated[Principal, Depends(principal)]

TEMPLATES = Path(__file__).resolve().parent / "templates"
# The templates ship with the package: compiled once per process, never checked for a
# newer file on disk at each page (a new version of trialdesk restarts the server).
_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Environment(Environment):
    """Jinja's environment, with ``d.name`` on a plain dict looked up as ``d["name"]``
    first. The pages render dicts (the services' JSON), and Jinja tries the attribute
    first: for a dict that always fails, and the failure (an exception raised and caught
    per lookup) was a third to a half of a page's rendering (the adverse-event page with
    61 events: 33-39 -> 21-23 ms of CPU; the calendar: 12-13 -> 6 ms). The result is the
    same: a plain dict has no attribute but its methods, which are still found as before."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


_env = _Environment(loader=FileSystemLoader(TEMPLATES),
                    autoescape=select_autoescape(default=True, default_for_string=True),
                    trim_blocks=True, lstrip_blocks=True, auto_reload=False)
_env.filters["pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False)
_env.filters["label"] = lambda v: str(v).replace("_", " ")

OUTCOME_LABEL = {"met": "met", "not_met": "not met", "unknown": "unknown"}


def render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    ctx = context(request)
    who = ctx.auth.principal(request)
    token = ctx.auth.csrf_token(request, who)
    html = _env.get_template(template).render(
        request=request, who=who, csrf_token=token, csrf_field=CSRF_FIELD,
        outcome_label=OUTCOME_LABEL, status_labels=STATUS_LABELS, phases=PHASE_LABELS,
        path=request.url.path, **values)
    response = HTMLResponse(html, status_code=status)
    if getattr(request.state, "csrf_new", None):
        ctx.auth.set_cookies(response, csrf=token)
    return response


def render_error(request: Request, body: dict[str, Any]) -> HTMLResponse:
    """The HTML face of the one error shape (used by the exception handlers)."""
    return render(request, "error.html", status=body["status"], error=body)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _errors(exc: ValidationError, prefix: str = "$") -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        reason = {"missing": "required field is missing",
                  "extra_forbidden": "unknown field"}.get(
            err["type"], str(err["msg"]).removeprefix("Value error, "))
        loc = tuple(err["loc"]) if prefix == "$" else (prefix.lstrip("$."), *err["loc"])
        out.append({"field": field_path(loc), "reason": reason})
    return out


def _domain_errors(exc: TrialdeskError) -> list[dict[str, str]]:
    return [{"field": exc.where or "$", "reason": exc.reason}]


async def _form(request: Request) -> dict[str, Any]:
    limit = context(request).settings.max_upload_bytes
    form = await request.form(max_part_size=limit)
    return {k: form.get(k) for k in form}


async def _upload_text(value: Any, limit: int) -> str | None:
    if not isinstance(value, UploadFile) or not value.filename:
        return None
    data = await value.read(limit + 1)
    if len(data) > limit:
        raise AccessError(f"the file is larger than {limit} bytes", where="file", status=413)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FactError("the file is not UTF-8 text", where="file") from None


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FactError(f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                        where=where) from None
    except RecursionError:
        raise FactError("the JSON is nested too deeply", where=where) from None


class _Form(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, v: Any) -> Any:
        return None if v == "" else v


def _record(doc: Any, where: str) -> PatientRecord:
    if not isinstance(doc, dict):
        raise FactError("a patient record must be a JSON object", where=where)
    doc.setdefault("patient_id", "uploaded")
    return PatientRecord.model_validate(doc)


# ---------------------------------------------------------------------------- session


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    """The worklist of the person logged in (issue 11, item 9); the trials to anyone else."""
    ctx = context(request)
    who = ctx.auth.principal(request)
    if who.user is None:
        return _redirect("/trials")
    from trialdesk.services.worklist import worklist

    return render(request, "worklist.html", work=worklist(ctx, who))


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: Annotated[str, Query(max_length=300)] = "/"
               ) -> Response:
    return render(request, "login.html", next=next if next.startswith("/") else "/")


class LoginForm(_Form):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    next: str = Field(default="/", max_length=300, pattern=r"^/([^/].*)?$")


@router.post("/login", response_class=HTMLResponse, dependencies=[Depends(csrf)])
def login(request: Request, form: Submitted) -> Response:
    # a plain def: the password hash (Argon2, slow by design) is checked in the thread pool,
    # not on the event loop the other requests of this process wait on
    ctx = context(request)
    try:
        data = LoginForm.model_validate(form)
        user = ctx.auth.authenticate(request, data.username, data.password)
    except ValidationError as exc:
        return render(request, "login.html", status=422, errors=_errors(exc),
                      username=form.get("username") or "", next="/trials")
    except AccessError as exc:
        return render(request, "login.html", status=exc.status, message=exc.reason,
                      username=data.username, next=data.next)
    token = ctx.auth.start_session(user)
    response = _redirect(data.next)
    ctx.auth.set_cookies(response, session=token,
                         csrf=ctx.auth.new_csrf(Principal(user, (), token_hash(token))))
    return response


@router.post("/logout", response_class=HTMLResponse, dependencies=[Depends(csrf)])
def logout(request: Request, who: Who) -> Response:
    ctx = context(request)
    if who.user and who.session_hash:
        ctx.store.end_session(who.session_hash, who.user.username)
    response = _redirect("/login")
    ctx.auth.set_cookies(response, clear=True, csrf=ctx.auth.new_csrf(Principal(None)))
    return response


# ---------------------------------------------------------------------------- trials


class TrialFilters(_Form):
    q: str | None = Field(default=None, max_length=200)
    condition: str | None = Field(default=None, max_length=200)
    intervention: str | None = Field(default=None, max_length=200)
    phase: Phase | None = None
    status: StatusCode | None = None
    age_years: float | None = Field(default=None, ge=0, le=130)


@router.get("/trials", response_class=HTMLResponse)
def trials(request: Request) -> Response:
    raw = dict(request.query_params)
    try:
        filters = TrialFilters.model_validate(raw)
    except ValidationError as exc:
        return render(request, "trials.html", status=422, errors=_errors(exc), filters=raw,
                      trials=[])
    found = search(context(request).catalogue.trials(), **filters.model_dump())
    return render(request, "trials.html", filters=raw, trials=[summary(e) for e in found])


@router.get("/trials/{trial_id}", response_class=HTMLResponse)
def trial(request: Request, trial_id: TrialId, who: Who,
          version: Annotated[int | None, Query(ge=1, le=INT32)] = None,
          near: Annotated[str | None, Query(max_length=100)] = None) -> Response:
    from trialdesk.services.trialpage import trial_page

    page = trial_page(context(request), trial_id, version, near=near)
    return render(request, "trial.html", status=422 if page["near_error"] else 200, trial=page,
                  can_dashboard=who.can(Permission.DASHBOARD_READ, trial_id),
                  can_audit=who.can(Permission.AUDIT_READ, trial_id),
                  can_export=who.can(Permission.EXPORT_DEIDENTIFIED, trial_id))


@router.get("/trials/{trial_id}/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, trial_id: TrialId, who: Who) -> Response:
    who.require_user()
    ctx = context(request)
    board = overview.dashboard(ctx, who, trial_id)
    status = None
    if who.can(Permission.RANDOMISATION_MANAGE, trial_id) or who.can(Permission.AUDIT_READ,
                                                                     trial_id):
        from trialdesk.services.journeys import randomisation_status

        status = randomisation_status(ctx, who, trial_id)
    return render(request, "dashboard.html", board=board, randomisation=status)


@router.get("/trials/{trial_id}/audit", response_class=HTMLResponse)
def audit(request: Request, trial_id: TrialId, who: Who, offset: Offset = 0,
          limit: Limit = 50) -> Response:
    ctx = context(request)
    who.require_user()
    trail = ops.audit_trail(ctx, who, trial_id=trial_id, offset=offset, limit=limit)
    return render(request, "audit.html", trial_id=trial_id, trail=trail,
                  verify=ops.audit_verify(ctx, who))


# ---------------------------------------------------------------------------- screening


def _screen_form_values(trials: list[dict[str, Any]], **values: Any) -> dict[str, Any]:
    return {"trials": trials, **values}


@router.get("/screen", response_class=HTMLResponse)
def screen_form(request: Request) -> Response:
    entries = context(request).catalogue.trials()
    wanted = request.query_params.get("trial_id", "")
    form = {"trial_id": wanted} if any(e.compiled.id == wanted for e in entries) else {}
    return render(request, "screen.html", **_screen_form_values([summary(e) for e in entries],
                                                                form=form))


@router.post("/screen", response_class=HTMLResponse, dependencies=[Depends(csrf)])
async def screen(request: Request) -> Response:
    ctx = context(request)
    form = await _form(request)
    entries = ctx.catalogue.trials()
    listed = [summary(e) for e in entries]
    trial_id = form.get("trial_id") or None
    chosen = [e for e in entries if trial_id in (None, e.compiled.id)]
    shown_form = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        if trial_id and not chosen:
            raise FactError(f"no trial '{trial_id}'", where="trial_id")
        text = await _upload_text(form.get("file"), ctx.settings.max_upload_bytes)
        if text is None and (form.get("record_json") or "").strip():
            text = str(form["record_json"])
        if text is None:
            # A person types the patient into the trial's form; this page takes files.
            raise FactError("choose a patient file (JSON) to upload or paste it; to type a "
                            "patient's facts, open the trial's form above", where="file")
        record = _record(_json(text, "file"), "file")
        record = ops.checked_record(record, today=ctx.store.now().date(), source="$")
        as_of_text = form.get("as_of") or None
        as_of = datetime.fromisoformat(as_of_text) if isinstance(as_of_text, str) else None
    except ValidationError as exc:
        return render(request, "screen.html", status=422, errors=_errors(exc),
                      **_screen_form_values(listed, form=shown_form))
    except ValueError as exc:
        return render(request, "screen.html", status=422,
                      errors=[{"field": "as_of", "reason": str(exc)}],
                      **_screen_form_values(listed, form=shown_form))
    except TrialdeskError as exc:
        return render(request, "screen.html", status=status_of(exc),
                      errors=_domain_errors(exc), **_screen_form_values(listed, form=shown_form))
    moment = screening_moment(ctx, as_of)
    results: list[dict[str, Any]] = []
    for e in chosen:
        result = ops.screen_now(e.compiled, record, moment).to_json()
        results.append({"result": result, "hints": ops.resolution_hints(e.compiled, result),
                        "title": e.compiled.protocol.title})
    order = {"eligible": 0, "undetermined": 1, "ineligible": 2}
    results.sort(key=lambda r: order[r["result"]["verdict"]])
    return render(request, "screen.html", results=results, as_of=moment.isoformat(),
                  **_screen_form_values(listed, form=shown_form))


# ---------------------------------------------------------------------------- patients


@router.get("/patients", response_class=HTMLResponse)
def patients(request: Request, who: Who, offset: Offset = 0, limit: Limit = 25,
             trial_id: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    ctx = context(request)
    who.require_user()
    page = ops.list_patients(ctx, who, trial_id=trial_id or None, offset=offset, limit=limit)
    return render(request, "patients.html", page=page, trial_id=trial_id or "",
                  can_create=bool(who.scopes(Permission.PATIENT_WRITE)),
                  write_trials=sorted({t for t, _ in who.scopes(Permission.PATIENT_WRITE)}))


def _new_patient_values(who: Principal, **values: Any) -> dict[str, Any]:
    return {"scopes": who.scopes(Permission.PATIENT_WRITE), **values}


@router.get("/patients/new", response_class=HTMLResponse)
def new_patient_form(request: Request, who: Who) -> Response:
    who.require_user()
    if not who.scopes(Permission.PATIENT_WRITE):
        raise AccessError("your roles do not allow patient.write")
    return render(request, "patient_new.html", **_new_patient_values(who, form={}))


class PatientForm(_Form):
    trial_id: str = Field(max_length=64)
    site: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$")
    name: str | None = Field(default=None, max_length=200)
    hospital_number: str | None = Field(default=None, max_length=64)
    reason: Reason


@router.post("/patients", response_class=HTMLResponse, dependencies=[Depends(csrf)])
async def create_patient(request: Request, who: Who) -> Response:
    ctx = context(request)
    who.require_user()
    form = await _form(request)
    shown = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        data = PatientForm.model_validate(form)
        text = await _upload_text(form.get("file"), ctx.settings.max_upload_bytes)
        text = text if text is not None else str(form.get("record_json") or "")
        if not text.strip():
            raise FactError("give the patient record as a file or as JSON", where="record_json")
        record = _record(_json(text, "record_json"), "record_json")
        row = ops.create_patient(ctx, who, trial_id=data.trial_id, site=data.site,
                                 record=record, identifiers=Identifiers(
                                     name=data.name, hospital_number=data.hospital_number
                                 ).model_dump(), reason=data.reason)
    except ValidationError as exc:
        return render(request, "patient_new.html", status=422, errors=_errors(exc),
                      **_new_patient_values(who, form=shown))
    except TrialdeskError as exc:
        if isinstance(exc, AccessError) and exc.status in (401, 403):
            raise
        return render(request, "patient_new.html", status=status_of(exc),
                      errors=_domain_errors(exc), **_new_patient_values(who, form=shown))
    return _redirect(f"/patients/{row.study_number}")


@router.get("/patients/{study_number}", response_class=HTMLResponse)
def patient(request: Request, study_number: StudyNumber, who: Who,
            near: Annotated[str | None, Query(max_length=100)] = None) -> Response:
    from trialdesk.errors import RegistryError
    from trialdesk.services.trialfinder import NEAR_LABEL, trials_for_patient

    ctx = context(request)
    page = overview.patient_page(ctx, who, study_number)
    facts = readable_record(ctx, who, study_number)
    try:
        which, near_error = trials_for_patient(ctx, who, study_number, near=near), None
    except RegistryError as exc:  # an unknown place: said by the field's label, list unordered
        which = trials_for_patient(ctx, who, study_number)
        near_error = f"{NEAR_LABEL}: {exc.reason}"
    return render(request, "patient.html", status=422 if near_error else 200, p=page,
                  facts=facts, which=which, near=near or "", near_error=near_error)


@router.get("/patients/{study_number}/edit", response_class=HTMLResponse)
def edit_form(request: Request, study_number: StudyNumber, who: Who) -> Response:
    ctx = context(request)
    row = ops.load_patient(ctx, who, study_number, Permission.PATIENT_WRITE)
    form = {"version": str(row.version), "record_json": json.dumps(row.record, indent=2,
                                                                   ensure_ascii=False),
            "name": row.identifiers.get("name", ""),
            "hospital_number": row.identifiers.get("hospital_number", ""), "reason": ""}
    return render(request, "patient_edit.html", study_number=study_number, form=form)


class EditForm(_Form):
    version: int = Field(ge=1, le=INT32)
    record_json: str = Field(min_length=2, max_length=1_000_000)
    name: str | None = Field(default=None, max_length=200)
    hospital_number: str | None = Field(default=None, max_length=64)
    reason: Reason


@router.post("/patients/{study_number}/edit", response_class=HTMLResponse,
             dependencies=[Depends(csrf)])
async def edit(request: Request, study_number: StudyNumber, who: Who) -> Response:
    ctx = context(request)
    form = await _form(request)
    shown = {k: v for k, v in form.items() if isinstance(v, str)}
    ops.load_patient(ctx, who, study_number, Permission.PATIENT_WRITE)
    try:
        data = EditForm.model_validate(form)
        record = _record(_json(data.record_json, "record_json"), "record_json")
        ops.update_patient(ctx, who, study_number, version=data.version, record=record,
                           identifiers=Identifiers(name=data.name,
                                                   hospital_number=data.hospital_number
                                                   ).model_dump(), reason=data.reason)
    except ValidationError as exc:
        return render(request, "patient_edit.html", status=422, errors=_errors(exc),
                      study_number=study_number, form=shown)
    except TrialdeskError as exc:
        if isinstance(exc, AccessError) and exc.status in (401, 403):
            raise
        return render(request, "patient_edit.html", status=status_of(exc),
                      errors=_domain_errors(exc), study_number=study_number, form=shown)
    return _redirect(f"/patients/{study_number}")


class ReasonForm(_Form):
    reason: Reason


@router.post("/patients/{study_number}/screen", response_class=HTMLResponse,
             dependencies=[Depends(csrf)])
def screen_patient(request: Request, study_number: StudyNumber, who: Who,
                   form: Submitted) -> Response:
    data = ReasonForm.model_validate(form)
    ops.screen_patient(context(request), who, study_number, as_of=None, reason=data.reason)
    return _redirect(f"/patients/{study_number}#screenings")
