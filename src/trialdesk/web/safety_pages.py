"""The adverse-event page and the decisions on proposed actions, and the same through the API.

The term is typed and chosen from every CTCAE v5.0 term (a ``<datalist>``, and a plain
"Show the term's grades" submit that finds the term and shows its grade texts and the
course the onset falls in, storing nothing). The course is derived from the onset. A
recorded event is corrected field by field with a reason. Proposals are decided (accept
one of the alternatives, or decline), each decision signed with the password.

Every problem comes back on the page named by the field's label, with what was typed kept;
nothing is stored when anything is refused. All pages work without JavaScript.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field, StringConstraints, ValidationError

from trialdesk.errors import AccessError, NotFoundError, SafetyError, TrialdeskError
from trialdesk.safety.adverse_event import ActionTaken, Attribution, Expectedness, Outcome
from trialdesk.safety.adverse_event import Seriousness as SeriousnessKind
from trialdesk.services import safety, safety_forms
from trialdesk.web.clinical_pages import Fields, _shown
from trialdesk.web.deps import context, csrf
from trialdesk.web.errors import status_of
from trialdesk.web.pages import _redirect, render
from trialdesk.web.params import INT32, Reason, StudyNumber, Who, _In, body_fields

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api", tags=["safety"])
Csrf = [Depends(csrf)]
RowId = Annotated[int, Path(ge=1, le=INT32)]
ATTRIBUTION_ROWS = 3

# pydantic's error types in words a person acts on
_WORDS = {
    "missing": "fill it in",
    "date_from_datetime_parsing": "enter a date such as 2026-11-21",
    "date_parsing": "enter a date such as 2026-11-21",
    "date_type": "enter a date such as 2026-11-21",
    "int_parsing": "enter a whole number",
    "int_from_float": "enter a whole number",
    "float_parsing": "enter a number",
    "finite_number": "enter a finite number",
    "enum": "choose one of the choices offered",
    "literal_error": "choose one of the choices offered",
    "string_too_long": "the text is too long",
    "string_too_short": "fill it in",
    "string_type": "fill it in",  # a form sends text: only an empty field is not one
    "int_type": "fill it in",
}


def _problem_list(exc: ValidationError) -> list[str]:
    out = []
    for e in exc.errors():
        field = str(e["loc"][0]) if e["loc"] else ""
        words = _WORDS.get(e["type"]) or str(e["msg"]).removeprefix("Value error, ")
        if e["type"] in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
            words = str(e["msg"]).replace("Input should be", "enter a value")
        out.append(f"{safety_forms.label_of(field)}: {words}")
    return out


def _domain_problem(exc: TrialdeskError) -> str:
    where = exc.where or ""
    if where.startswith("lab."):
        where = "lab_" + where[4:]
    return f"{safety_forms.label_of(where)}: {exc.reason}"


def _page(request: Request, who: Who, study_number: str, *, status: int = 200,
          form: dict[str, Any] | None = None, problems: list[str] | None = None,
          preview: dict[str, Any] | None = None) -> HTMLResponse:
    return render(request, "adverse_events.html", status=status, form_errors=problems,
                  form=form or {}, rows=range(ATTRIBUTION_ROWS), preview=preview,
                  s=safety_forms.adverse_events_form_page(context(request), who, study_number),
                  card=safety_forms.term_card)


def _correction_page(ae_id: int) -> Callable[..., HTMLResponse]:
    """The page of one event's correction form (``_page``'s arguments)."""
    def page(request: Request, who: Who, study_number: str, *, status: int = 200,
             form: dict[str, Any] | None = None,
             problems: list[str] | None = None) -> HTMLResponse:
        s = safety_forms.adverse_events_form_page(context(request), who, study_number)
        ae = next((i for i in s["items"] if i["id"] == ae_id), None)
        if ae is None:
            raise NotFoundError(f"{study_number} has no adverse event {ae_id}", where="ae_id")
        return render(request, "adverse_event_correction.html", status=status,
                      form_errors=problems, form=form or {}, rows=range(ATTRIBUTION_ROWS),
                      s=s, ae=ae)
    return page


def _run(request: Request, who: Who, study_number: str, form: dict[str, Any],
         model: type[BaseModel], run: Callable[[Any], Any], success: str,
         page: Callable[..., HTMLResponse] = _page) -> Response:
    """Validate ``form`` with ``model`` and run the change; on any refusal ``page`` again,
    the problems named by their labels and what was typed kept (nothing stored)."""
    try:
        run(model.model_validate(form))
    except ValidationError as exc:
        return page(request, who, study_number, status=422, form=_shown(form),
                    problems=_problem_list(exc))
    except TrialdeskError as exc:
        if isinstance(exc, NotFoundError) or (isinstance(exc, AccessError)
                                              and exc.status == 403):
            raise
        return page(request, who, study_number, status=status_of(exc), form=_shown(form),
                    problems=[_domain_problem(exc)])
    return _redirect(success)


@router.get("/patients/{study_number}/adverse-events", response_class=HTMLResponse)
def adverse_events(request: Request, study_number: StudyNumber, who: Who) -> Response:
    who.require_user()
    return _page(request, who, study_number)


class _Form(BaseModel):
    model_config = {"extra": "ignore", "str_strip_whitespace": True}

    @classmethod
    def blank(cls, form: dict[str, Any]) -> dict[str, Any]:
        return {k: (None if v == "" else v) for k, v in form.items()}


class _EventFields(_Form):
    """The fields of an event besides its term, grade and onset (entry and correction)."""

    meddra_term: str | None = Field(default=None, max_length=200)
    seriousness: list[SeriousnessKind] = Field(default_factory=list, max_length=7)
    expectedness: Expectedness | None = None
    action_taken: ActionTaken | None = None
    outcome: Outcome | None = None
    resolution: date | None = None
    sponsor_aware_on: date | None = None


class AdverseEventForm(_EventFields):
    term: str | None = Field(default=None, max_length=200)
    grade: int | None = Field(default=None, ge=1, le=5)
    onset: date
    lab_term: str | None = Field(default=None, max_length=200)
    lab_value: float | None = Field(default=None, ge=-1e12, le=1e12, allow_inf_nan=False)
    lab_unit: str | None = Field(default=None, max_length=32)
    lab_lln: float | None = Field(default=None, ge=-1e12, le=1e12, allow_inf_nan=False)
    lab_uln: float | None = Field(default=None, ge=-1e12, le=1e12, allow_inf_nan=False)
    lab_baseline: float | None = Field(default=None, ge=-1e12, le=1e12, allow_inf_nan=False)
    lab_symptomatic: Literal["yes", "no"] | None = None
    reason: Reason


class PreviewForm(_Form):
    term: str | None = Field(default=None, max_length=200)
    grade: int | None = Field(default=None, ge=1, le=5)
    onset: date | None = None


class AttributionRow(_Form):
    agent: str = Field(min_length=1, max_length=200)
    attribution: Attribution


def _attributions(form: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for i in range(ATTRIBUTION_ROWS):
        agent, level = form.get(f"attr_agent_{i}"), form.get(f"attr_attribution_{i}")
        if not (agent or level):
            continue
        try:
            out.append(AttributionRow.model_validate({"agent": agent, "attribution": level})
                       .model_dump(mode="json"))
        except ValidationError:
            raise SafetyError(f"row {i + 1}: choose both the agent and the attribution",
                              where=f"attr_{i}") from None
    return out


@router.post("/patients/{study_number}/adverse-events", response_class=HTMLResponse,
             dependencies=Csrf)
def adverse_event(request: Request, study_number: StudyNumber, who: Who,
                  fields: Fields) -> Response:
    """Record an adverse event ("record"), or show the term's grades and the course its
    onset falls in first ("preview", nothing stored)."""
    ctx = context(request)
    form = _Form.blank(fields)
    if form.get("action") == "preview":
        try:
            d = PreviewForm.model_validate(form)
            shown = safety_forms.preview_adverse_event(ctx, who, study_number, term=d.term,
                                                       grade=d.grade, onset=d.onset)
        except ValidationError as exc:
            return _page(request, who, study_number, status=422, form=_shown(form),
                         problems=_problem_list(exc))
        return _page(request, who, study_number, form=_shown(form), preview=shown)

    def run(d: AdverseEventForm) -> None:
        lab = None
        if d.lab_term or d.lab_value is not None:
            if not (d.lab_term and d.lab_value is not None and d.lab_unit):
                raise SafetyError("a lab needs its term, value and unit", where="lab_term")
            lab = {"term": d.lab_term, "value": d.lab_value, "unit": d.lab_unit,
                   "lln": d.lab_lln, "uln": d.lab_uln, "baseline": d.lab_baseline,
                   "symptomatic": None if d.lab_symptomatic is None
                   else d.lab_symptomatic == "yes"}
        event = {"term": d.term, "grade": d.grade, "onset": d.onset,
                 "meddra_term": d.meddra_term, "seriousness": set(d.seriousness),
                 "attributions": _attributions(form), "expectedness": d.expectedness,
                 "action_taken": d.action_taken, "outcome": d.outcome,
                 "resolution": d.resolution, "sponsor_aware_on": d.sponsor_aware_on}
        safety.record_adverse_event(ctx, who, study_number, event=event, lab=lab,
                                    course_number=None, reason=d.reason)

    return _run(request, who, study_number, form, AdverseEventForm, run,
                f"/patients/{study_number}/adverse-events#latest")


class AdverseEventUpdateForm(_Form):
    version: int = Field(ge=1, le=INT32)
    resolution: date | None = None
    outcome: Outcome | None = None
    action_taken: ActionTaken | None = None
    reason: Reason


@router.post("/patients/{study_number}/adverse-events/{ae_id}", response_class=HTMLResponse,
             dependencies=Csrf)
def adverse_event_update(request: Request, study_number: StudyNumber,
                         ae_id: RowId, who: Who, fields: Fields) -> Response:
    """A follow-up of an event (resolution, outcome, action taken)."""
    ctx = context(request)

    def run(d: AdverseEventUpdateForm) -> None:
        safety.update_adverse_event(ctx, who, study_number, ae_id, version=d.version,
                                    changes=d.model_dump(exclude={"version", "reason"}),
                                    reason=d.reason)

    return _run(request, who, study_number, _Form.blank(fields),
                AdverseEventUpdateForm, run,
                f"/patients/{study_number}/adverse-events#ae-{ae_id}")


class CorrectionForm(_EventFields):
    version: int = Field(ge=1, le=INT32)
    term: str = Field(min_length=1, max_length=200)
    grade: int = Field(ge=1, le=5)
    onset: date
    reason: str = Field(min_length=1, max_length=500)


def _corrected(d: CorrectionForm, attributions: list[dict[str, str]]) -> dict[str, Any]:
    values = d.model_dump(exclude={"version", "reason"})
    values["seriousness"] = sorted(s.value for s in d.seriousness)
    values["attributions"] = attributions
    for name in ("onset", "resolution", "sponsor_aware_on"):
        values[name] = values[name].isoformat() if values[name] else None
    for name in ("expectedness", "action_taken", "outcome"):
        values[name] = values[name].value if values[name] else None
    return values


@router.get("/patients/{study_number}/adverse-events/{ae_id}/correction",
            response_class=HTMLResponse)
def adverse_event_correction_form(request: Request, study_number: StudyNumber,
                                  ae_id: RowId, who: Who) -> Response:
    """One recorded event's correction form, filled with its values (the list of events
    links to it, so the list does not carry a form per event)."""
    who.require_user()
    return _correction_page(ae_id)(request, who, study_number)


@router.post("/patients/{study_number}/adverse-events/{ae_id}/correction",
             response_class=HTMLResponse, dependencies=Csrf)
def adverse_event_correction(request: Request, study_number: StudyNumber,
                             ae_id: RowId, who: Who, fields: Fields) -> Response:
    """Correct any field of a recorded event, with a reason (the audit keeps the old value)."""
    ctx = context(request)
    form = _Form.blank(fields)

    def run(d: CorrectionForm) -> None:
        safety_forms.correct_adverse_event(ctx, who, study_number, ae_id, version=d.version,
                                           values=_corrected(d, _attributions(form)),
                                           reason=d.reason)

    return _run(request, who, study_number, form, CorrectionForm, run,
                f"/patients/{study_number}/adverse-events#ae-{ae_id}",
                page=_correction_page(ae_id))


class DecisionForm(_Form):
    group: int = Field(ge=1, le=INT32)
    choice: Literal["none"] | int
    password: str = Field(min_length=1, max_length=1024)
    reason: str = Field(min_length=1, max_length=500)
    accept_unconfirmed: Literal["yes"] | None = None
    days: int | None = Field(default=None, ge=1, le=365)
    percent: float | None = Field(default=None, gt=0, lt=100, allow_inf_nan=False)

    @classmethod
    def of(cls, form: dict[str, Any]) -> dict[str, Any]:
        """The form with the chosen proposal's own days and percentage (``days_<id>``)."""
        choice = form.get("choice")
        out = dict(form)
        for name in ("days", "percent"):
            out.setdefault(name, form.get(f"{name}_{choice}"))
        return out


def _answers(form: dict[str, Any], prefix: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for key, value in form.items():
        tail = key.removeprefix(prefix)
        if key.startswith(prefix) and tail.isdigit() and isinstance(value, str):
            out[int(tail)] = value
    return out


@router.post("/patients/{study_number}/adverse-events/{ae_id}/decisions",
             response_class=HTMLResponse, dependencies=Csrf)
def action_decision(request: Request, study_number: StudyNumber, ae_id: RowId,
                    who: Who, fields: Fields) -> Response:
    """Accept one proposal (of its alternatives) or decline, signed with the password."""
    ctx = context(request)
    form = DecisionForm.of(_Form.blank(fields))

    def run(d: DecisionForm) -> None:
        conditions = {k: {"yes": True, "no": False}.get(v)
                      for k, v in _answers(form, "condition_").items()}
        versions = {k: int(v) for k, v in _answers(form, "version_").items() if v.isdigit()}
        safety_forms.decide_actions(
            ctx, who, study_number, ae_id, group=d.group,
            choice=None if d.choice == "none" else d.choice, conditions=conditions,
            versions=versions, password=d.password, reason=d.reason,
            accept_unconfirmed=d.accept_unconfirmed == "yes", days=d.days, percent=d.percent)

    return _run(request, who, study_number, form, DecisionForm, run,
                f"/patients/{study_number}/adverse-events#ae-{ae_id}")


@router.post("/patients/{study_number}/product-actions/decisions",
             response_class=HTMLResponse, dependencies=Csrf)
def product_action_decision(request: Request, study_number: StudyNumber,
                            who: Who, fields: Fields) -> Response:
    """Accept or decline the action proposed for a cell product that was not released,
    signed with the password; accepted, it is applied to the calendar."""
    ctx = context(request)
    form = DecisionForm.of(_Form.blank(fields))

    def run(d: DecisionForm) -> None:
        conditions = {k: {"yes": True, "no": False}.get(v)
                      for k, v in _answers(form, "condition_").items()}
        versions = {k: int(v) for k, v in _answers(form, "version_").items() if v.isdigit()}
        safety_forms.decide_product_actions(
            ctx, who, study_number, group=d.group,
            choice=None if d.choice == "none" else d.choice, conditions=conditions,
            versions=versions, password=d.password, reason=d.reason,
            accept_unconfirmed=d.accept_unconfirmed == "yes", days=d.days, percent=d.percent)

    return _run(request, who, study_number, form, DecisionForm, run,
                f"/patients/{study_number}/adverse-events#product-actions")


class ConfirmForm(_Form):
    version: int = Field(ge=1, le=INT32)
    password: str = Field(min_length=1, max_length=1024)
    accept_unconfirmed: Literal["yes"] | None = None
    condition_holds: Literal["yes", "no"] | None = None
    days: int | None = Field(default=None, ge=1, le=365)
    percent: float | None = Field(default=None, gt=0, lt=100)
    reason: Reason


@router.post("/patients/{study_number}/actions/{action_id}/confirm",
             response_class=HTMLResponse, dependencies=Csrf)
def confirm_action(request: Request, study_number: StudyNumber,
                   action_id: RowId, who: Who, fields: Fields) -> Response:
    """Confirm a proposed toxicity action (e-signature); it is applied to the calendar."""
    ctx = context(request)

    def run(d: ConfirmForm) -> None:
        safety.confirm_action(ctx, who, study_number, action_id, version=d.version,
                              password=d.password,
                              accept_unconfirmed=d.accept_unconfirmed == "yes", days=d.days,
                              percent=d.percent, reason=d.reason,
                              condition_holds=None if d.condition_holds is None
                              else d.condition_holds == "yes")

    return _run(request, who, study_number, _Form.blank(fields),
                ConfirmForm, run, f"/patients/{study_number}/adverse-events#action-{action_id}")


# ---------------------------------------------------------------------------- API

Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


@api_router.get("/ctcae/terms")
def ctcae_terms(who: Who, q: Annotated[str, Query(min_length=1, max_length=200)],
                limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict[str, Any]:
    """CTCAE v5.0 terms found by a typed text (exact, then starting with it, then containing
    every word), each with its MedDRA v20.1 LLT code and SOC."""
    who.require_user()
    items = safety_forms.search_terms(q, limit)
    return {"ok": True, "items": items, "total": len(items)}


@api_router.get("/ctcae/terms/{term}")
def ctcae_term(who: Who, term: Annotated[str, Path(min_length=1, max_length=200)]
               ) -> dict[str, Any]:
    """One CTCAE v5.0 term: MedDRA code, SOC, definition and the text of each grade."""
    who.require_user()
    card = safety_forms.term_card(term)
    if card is None:
        raise NotFoundError(f"'{term}' is not a CTCAE v5.0 term", where="term")
    return {"ok": True, **card}


class PreviewIn(_In):
    term: Short | None = None
    grade: int | None = Field(default=None, ge=1, le=5)
    onset: date | None = None


@api_router.post("/patients/{study_number}/adverse-events/preview", dependencies=Csrf)
def adverse_event_preview(request: Request, study_number: StudyNumber, body: PreviewIn,
                          who: Who) -> dict[str, Any]:
    """The term found, its grade texts and the course the onset falls in; nothing stored."""
    with body_fields():
        return {"ok": True, **safety_forms.preview_adverse_event(
            context(request), who, study_number, term=body.term, grade=body.grade,
            onset=body.onset)}


class AttributionIn(_In):
    agent: Short
    attribution: Attribution


class CorrectionIn(_In):
    version: int = Field(ge=1, le=INT32)
    term: Short | None = None
    grade: int | None = Field(default=None, ge=1, le=5)
    onset: date | None = None
    meddra_term: Short | None = None
    seriousness: list[SeriousnessKind] | None = Field(default=None, max_length=7)
    attributions: list[AttributionIn] | None = Field(default=None, max_length=20)
    expectedness: Expectedness | None = None
    action_taken: ActionTaken | None = None
    outcome: Outcome | None = None
    resolution: date | None = None
    sponsor_aware_on: date | None = None
    clear: list[Literal["meddra_term", "expectedness", "action_taken", "outcome",
                        "resolution", "sponsor_aware_on", "seriousness",
                        "attributions"]] = Field(default_factory=list, max_length=8)
    reason: Reason


@api_router.post("/patients/{study_number}/adverse-events/{ae_id}/correction",
                 dependencies=Csrf)
def adverse_event_correction_api(request: Request, study_number: StudyNumber, ae_id: RowId,
                                 body: CorrectionIn, who: Who) -> dict[str, Any]:
    """Correct fields of a recorded event (those given; ``clear`` empties some), with a
    reason; the audit trail keeps the old values."""
    values: dict[str, Any] = body.model_dump(mode="json", exclude={"version", "reason", "clear"},
                                             exclude_none=True)
    values.update(dict.fromkeys(body.clear))
    with body_fields():
        return {"ok": True, **safety_forms.correct_adverse_event(
            context(request), who, study_number, ae_id, version=body.version, values=values,
            reason=body.reason)}


class DecisionIn(_In):
    group: int = Field(ge=1, le=INT32)
    choice: int | None = Field(default=None, ge=1, le=INT32)
    conditions: dict[int, bool] = Field(default_factory=dict, max_length=20)
    versions: dict[int, int] = Field(default_factory=dict, max_length=20)
    password: str = Field(min_length=1, max_length=1024)
    reason: Reason
    accept_unconfirmed: bool = False
    days: int | None = Field(default=None, ge=1, le=365)
    percent: float | None = Field(default=None, gt=0, lt=100, allow_inf_nan=False)


@api_router.post("/patients/{study_number}/adverse-events/{ae_id}/decisions",
                 status_code=201, dependencies=Csrf)
def action_decision_api(request: Request, study_number: StudyNumber, ae_id: RowId,
                        body: DecisionIn, who: Who) -> dict[str, Any]:
    """Decide a group of proposals (``group``: the first action's id): accept ``choice``
    (null declines them all), the others declined; each decision signed (the password)
    with ``reason``. ``conditions`` answers whether each proposal's condition holds."""
    with body_fields():
        return {"ok": True, "decisions": safety_forms.decide_actions(
            context(request), who, study_number, ae_id, group=body.group, choice=body.choice,
            conditions=body.conditions, versions=body.versions, password=body.password,
            reason=body.reason, accept_unconfirmed=body.accept_unconfirmed, days=body.days,
            percent=body.percent)}


@api_router.post("/patients/{study_number}/product-actions/decisions", status_code=201,
                 dependencies=Csrf)
def product_action_decision_api(request: Request, study_number: StudyNumber, body: DecisionIn,
                                who: Who) -> dict[str, Any]:
    """Decide the action(s) proposed for a cell product that was not released (``group``:
    the first action's id) as an adverse event's are decided: accept ``choice`` (null
    declines), each decision signed (the password) with ``reason``."""
    with body_fields():
        return {"ok": True, "decisions": safety_forms.decide_product_actions(
            context(request), who, study_number, group=body.group, choice=body.choice,
            conditions=body.conditions, versions=body.versions, password=body.password,
            reason=body.reason, accept_unconfirmed=body.accept_unconfirmed, days=body.days,
            percent=body.percent)}
