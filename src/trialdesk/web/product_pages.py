"""The pages of cell products: the cell lab's list, a product's history, and the bedside
verification (made for a phone: one column, fields labelled in words, the identifiers
typed from the bag label and the wristband), followed by the infusion.

Every refused value is shown with the field's label and the reason in words.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import Field, ValidationError

from trialdesk.errors import AccessError, NotFoundError, TrialdeskError
from trialdesk.services import cellproduct, journeys
from trialdesk.services.roles import Permission
from trialdesk.web.clinical_pages import Fields, Who, _form_errors
from trialdesk.web.deps import context, csrf
from trialdesk.web.errors import status_of
from trialdesk.web.pages import _domain_errors, _Form, _redirect, render
from trialdesk.web.params import StudyNumber
from trialdesk.web.product_api import ProductPath

router = APIRouter(include_in_schema=False)
Csrf = [Depends(csrf)]

LABELS = {
    "event_id": "Event", "event": "Event", "product": "Product identifier",
    "product id": "Product identifier", "wristband": "Patient identifier on the wristband",
    "second_verifier": "Second verifier's user name",
    "second verifier": "Second verifier's user name",
    "second_password": "Second verifier's password", "verification": "Bedside verification",
    "start": "Infusion start", "end": "Infusion end", "volume_ml": "Volume (mL)",
    "volume": "Volume (mL)", "observations": "Observations", "reason": "Reason",
    "$": "Bedside check",
}


def _labelled(errors: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{**e, "field": LABELS.get(e["field"], e["field"].replace("_", " "))} for e in errors]


@router.get("/lab", response_class=HTMLResponse)
def lab(request: Request, who: Who) -> Response:
    return render(request, "lab.html", lab=cellproduct.lab_view(context(request), who))


@router.get("/products/{product_id}", response_class=HTMLResponse)
def product(request: Request, product_id: ProductPath, who: Who) -> Response:
    h = cellproduct.product_history(context(request), who, product_id)
    return render(request, "product.html", h=h, compact=product_id,
                  can_record=who.can(Permission.PRODUCT_RECORD, h["current"]["trial"]))


class VerifyForm(_Form):
    event_id: str = Field(min_length=1, max_length=128)
    product: str = Field(min_length=1, max_length=64)
    wristband: str = Field(min_length=1, max_length=64)
    second_verifier: str = Field(min_length=1, max_length=64)
    second_password: str = Field(min_length=1, max_length=1024)


class InfusionForm(_Form):
    verification: int = Field(ge=1, le=2_147_483_647)
    start: datetime
    end: datetime | None = None
    volume_ml: float | None = Field(default=None, gt=0, le=10_000, allow_inf_nan=False)
    observations: str | None = Field(default=None, max_length=2000)


def _bedside(request: Request, who: Who, study_number: str, event_id: str | None, *,
             status: int = 200, errors: list[dict[str, str]] | None = None,
             form: dict[str, Any] | None = None, result: dict[str, Any] | None = None
             ) -> Response:
    ctx = context(request)
    page = journeys.calendar_page(ctx, who, study_number)
    events = [e for e in (page["calendar"] or {}).get("events", []) if e.get("cell_product")
              and e["status"] not in ("given", "partly_given")]
    chosen = event_id or (events[0]["id"] if events else None)
    product = cellproduct.released_product_for(ctx, who, study_number, chosen) if chosen else None
    return render(request, "bedside.html", status=status, errors=_labelled(errors or []),
                  form={k: v for k, v in (form or {}).items() if "password" not in k},
                  study_number=study_number, events=events, chosen=chosen, product=product,
                  result=result)


@router.get("/patients/{study_number}/bedside", response_class=HTMLResponse)
def bedside(request: Request, study_number: StudyNumber, who: Who,
            event: str | None = Query(default=None, max_length=128)) -> Response:
    journeys.load_journey(context(request), who, study_number, Permission.ADMINISTRATION_RECORD)
    return _bedside(request, who, study_number, event)


def _refused(exc: TrialdeskError) -> bool:
    return (isinstance(exc, NotFoundError) and exc.where is None) or (
        isinstance(exc, AccessError) and exc.status == 403)


def _attempt(request: Request, who: Who, study_number: str, form: dict[str, Any],
             run: Callable[[], Any]) -> Any:
    """``run()``'s result, or the bedside page again with the refused field and reason."""
    event_id = str(form.get("event_id") or "") or None
    try:
        return run()
    except ValidationError as exc:
        return _bedside(request, who, study_number, event_id, status=422,
                        errors=_form_errors(exc), form=form)
    except TrialdeskError as exc:
        if _refused(exc):
            raise
        return _bedside(request, who, study_number, event_id, status=status_of(exc),
                        errors=_domain_errors(exc), form=form)


@router.post("/patients/{study_number}/bedside", response_class=HTMLResponse, dependencies=Csrf)
def bedside_verify(request: Request, study_number: StudyNumber, who: Who,
                   form: Fields) -> Response:
    ctx = context(request)
    journeys.load_journey(ctx, who, study_number, Permission.ADMINISTRATION_RECORD)

    def run() -> dict[str, Any]:
        d = VerifyForm.model_validate(form)
        return cellproduct.verify_at_bedside(
            ctx, who, study_number, event_id=d.event_id, entered=d.product,
            wristband=d.wristband, second_verifier=d.second_verifier,
            second_password=d.second_password)

    result = _attempt(request, who, study_number, form, run)
    if isinstance(result, Response):
        return result
    return _bedside(request, who, study_number, result["event"], form=form, result=result)


@router.post("/patients/{study_number}/infusions", response_class=HTMLResponse,
             dependencies=Csrf)
def infuse(request: Request, study_number: StudyNumber, who: Who, form: Fields) -> Response:
    ctx = context(request)
    journeys.load_journey(ctx, who, study_number, Permission.ADMINISTRATION_RECORD)

    def run() -> dict[str, Any]:
        d = InfusionForm.model_validate(form)
        return cellproduct.record_infusion(
            ctx, who, study_number, verification=d.verification, start=d.start, end=d.end,
            volume_ml=d.volume_ml, observations=d.observations or "",
            reason="infusion recorded")

    result = _attempt(request, who, study_number, form, run)
    if isinstance(result, Response):
        return result
    return _redirect(f"/patients/{study_number}/calendar")
