"""The JSON API of cell products (under ``/api``): the cell lab's list, a product's history
(JSON and PDF) and label, whether a calendar event has a released product, the bedside
verification and the infusion. A product is named in the path by its identifier without
spaces (``A999926000001004S0001A00``: DIN, flags, check character, product code)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import Field, StringConstraints

from trialdesk.services import cellproduct
from trialdesk.web.clinical_api import EventId, Password, Short
from trialdesk.web.deps import context, csrf
from trialdesk.web.params import Reason, StudyNumber, Who, _In, body_fields

router = APIRouter(prefix="/api")
ProductPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9]{14,40}$")]
Volume = Annotated[float, Field(gt=0, le=10_000, allow_inf_nan=False)]


class VerificationIn(_In):
    event_id: EventId
    product: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    wristband: Short
    second_verifier: Short
    second_password: Password
    scanned: bool = False
    reason: Reason = "bedside verification"


class InfusionIn(_In):
    verification: int = Field(ge=1, le=2_147_483_647)
    start: datetime
    end: datetime | None = None
    volume_ml: Volume | None = None
    reactions: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list, max_length=20)
    observations: Annotated[str, StringConstraints(max_length=2000)] = ""
    reason: Reason


@router.get("/lab", tags=["cell products"])
def lab(request: Request, who: Who) -> dict[str, Any]:
    """Products in process, release tests pending, and products expiring within 24 hours."""
    return cellproduct.lab_view(context(request), who)


@router.get("/products/{product_id}", tags=["cell products"])
def product(request: Request, product_id: ProductPath, who: Who) -> dict[str, Any]:
    """The product's whole history (``trialdesk.product-history/1``)."""
    return cellproduct.product_history(context(request), who, product_id)


@router.get("/products/{product_id}/history.pdf", tags=["cell products"],
            response_class=Response)
def product_pdf(request: Request, product_id: ProductPath, who: Who) -> Response:
    return Response(cellproduct.product_history_pdf(context(request), who, product_id),
                    media_type="application/pdf")


@router.get("/products/{product_id}/label.pdf", tags=["cell products"], response_class=Response)
def product_label(request: Request, product_id: ProductPath, who: Who) -> Response:
    return Response(cellproduct.product_label(context(request), who, product_id),
                    media_type="application/pdf")


@router.get("/patients/{study_number}/events/{event_id}/product", tags=["cell products"])
def event_product(request: Request, study_number: StudyNumber, event_id: EventId,
                  who: Who) -> dict[str, Any]:
    """The released doses for a cell-product event ("no released product" when none)."""
    return cellproduct.released_product_for(context(request), who, study_number, event_id)


@router.post("/patients/{study_number}/bedside-verifications", tags=["cell products"],
             status_code=201, dependencies=[Depends(csrf)])
def bedside(request: Request, study_number: StudyNumber, body: VerificationIn,
            who: Who) -> dict[str, Any]:
    """The two-person bedside check; a refusal is stored too (``accepted`` false)."""
    with body_fields():
        return cellproduct.verify_at_bedside(
            context(request), who, study_number, event_id=body.event_id, entered=body.product,
            wristband=body.wristband, second_verifier=body.second_verifier,
            second_password=body.second_password, scanned=body.scanned, reason=body.reason)


@router.post("/patients/{study_number}/infusions", tags=["cell products"], status_code=201,
             dependencies=[Depends(csrf)])
def infusion(request: Request, study_number: StudyNumber, body: InfusionIn,
             who: Who) -> dict[str, Any]:
    """The infusion after an accepted verification; the calendar event is recorded given."""
    with body_fields():
        return cellproduct.record_infusion(
            context(request), who, study_number, verification=body.verification,
            start=body.start, end=body.end, volume_ml=body.volume_ml, reactions=body.reactions,
            observations=body.observations, reason=body.reason)


