"""The JSON API of the cell lab's records (under ``/api``): a collection, a product made from
another, a release-test result, the signed release decision and the exceptional release, and
a hand-over. Each creating request takes an ``Idempotency-Key`` header: a retry with the
same key and body answers with what the first made, never a second record. A refused value
answers 422 naming the field as a JSON path (``$.body.volume_ml``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import Field, StringConstraints

from trialdesk.cellproduct.product import Counts, ProductError
from trialdesk.services import cellproduct
from trialdesk.web.clinical_api import Password, Short, Text
from trialdesk.web.deps import context, csrf
from trialdesk.web.params import INT32, IdempotencyKey, Reason, Who, _In, body_fields
from trialdesk.web.product_api import ProductPath, Volume

router = APIRouter(prefix="/api")
Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=6, max_length=12)]
Cells = Annotated[float, Field(ge=0, le=1e15, allow_inf_nan=False)]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]


class CollectionIn(_In):
    trial_id: Id
    product_type: Id = Field(description="A collection type of the protocol, e.g. nk-collection.")
    patient: Id | None = Field(default=None, description="Study number (autologous donor).")
    donor: Id | None = Field(default=None, description="Third-party donor or bank product.")
    collected_at: datetime
    site: Short | None = None
    procedure: Literal["apheresis", "bone marrow", "peripheral blood", "other"]
    procedure_other: Short | None = None
    code: Code = Field(description="ISBT 128 product code, e.g. S0001A.")
    volume_ml: Volume | None = None
    tnc: Cells | None = None
    mnc: Cells | None = None
    viability_percent: Percent | None = None
    reason: Reason = "collection recorded"


class DerivedIn(_In):
    product_type: Id
    prepared_at: datetime
    code: Code | None = None
    division: int | None = Field(default=None, ge=0, le=25)
    recipient: Id | None = None
    volume_ml: Volume | None = None
    viable_cells: Cells | None = None
    viability_percent: Percent | None = None
    expires_at: datetime | None = None
    storage: Short | None = None
    reason: Reason = "product prepared"


class TestIn(_In):
    test_id: Id
    value: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                            max_length=200)] | float = Field(
        description="A number in the test's unit (the protocol's), or the word of a "
                    "qualitative test (no growth).")
    tested_at: datetime
    reason: Reason = "release test result"


class ReleaseIn(_In):
    password: Password
    reason: Reason = "release decision"


class ExceptionalIn(_In):
    justification: Text
    password: Password
    investigator: Id
    investigator_password: Password
    reason: Reason = "exceptional release"


class HandoverIn(_In):
    version: int = Field(ge=1, le=INT32, description="The product version you saw.")
    to: Id
    location: Short
    at: datetime
    temperature_c: float | None = Field(default=None, ge=-273, le=100, allow_inf_nan=False)
    condition: Short
    storage: Short | None = None
    reason: Reason = "hand-over"


def _facility(request: Request) -> str:
    facility = context(request).settings.facility
    if not facility:
        raise ProductError("the server has no facility identifier: start it with --facility or "
                           "TRIALDESK_FACILITY", where="facility")
    return facility


@router.post("/lab/collections", tags=["cell products"], status_code=201,
             dependencies=[Depends(csrf)])
def collection(request: Request, body: CollectionIn, who: Who,
               idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """Record a collection; it gets the next DIN of the server's facility (a setting)."""
    facility = _facility(request)
    with body_fields():
        procedure = cellproduct.procedure_named(body.procedure, body.procedure_other)
        return cellproduct.record_collection(
            context(request), who, trial_id=body.trial_id, spec_id=body.product_type,
            facility=facility, code=body.code, collected_at=body.collected_at,
            procedure=procedure, patient=body.patient, donor=body.donor, site=body.site,
            volume_ml=body.volume_ml,
            counts=Counts(tnc=body.tnc, mnc=body.mnc, viability_percent=body.viability_percent),
            reason=body.reason)


@router.post("/products/{product_id}/derived", tags=["cell products"], status_code=201,
             dependencies=[Depends(csrf)])
def derived(request: Request, product_id: ProductPath, body: DerivedIn, who: Who,
            idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """A product made from this one (expansion batch, cryopreserved aliquot, thawed dose)."""
    with body_fields():
        return cellproduct.derive_product(
            context(request), who, product_id, spec_id=body.product_type,
            prepared_at=body.prepared_at, code=body.code, division=body.division,
            recipient=body.recipient, volume_ml=body.volume_ml,
            counts=Counts(viable_cells=body.viable_cells,
                          viability_percent=body.viability_percent),
            expires_at=body.expires_at, storage=body.storage, reason=body.reason)


@router.post("/products/{product_id}/tests", tags=["cell products"], status_code=201,
             dependencies=[Depends(csrf)])
def test_result(request: Request, product_id: ProductPath, body: TestIn, who: Who,
                idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """A release-test result against the protocol's specification (its unit is the test's)."""
    with body_fields():
        return cellproduct.record_test_entry(
            context(request), who, product_id, test_id=body.test_id, text=str(body.value),
            tested_at=body.tested_at, reason=body.reason)


@router.post("/products/{product_id}/release", tags=["cell products"], status_code=201,
             dependencies=[Depends(csrf)])
def release(request: Request, product_id: ProductPath, body: ReleaseIn, who: Who,
            idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """The release decision signed by the lab's responsible person (the password again):
    released only when every release test meets its limit, else recorded as not released."""
    with body_fields():
        return cellproduct.release_product(context(request), who, product_id,
                                           password=body.password, reason=body.reason)


@router.post("/products/{product_id}/exceptional-release", tags=["cell products"],
             status_code=201, dependencies=[Depends(csrf)])
def exceptional(request: Request, product_id: ProductPath, body: ExceptionalIn, who: Who,
                idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """Release out of specification with the clinical justification, signed by the lab's
    responsible person (the caller) and the investigator, each with their password."""
    with body_fields():
        return cellproduct.exceptional_release_named(
            context(request), who, body.password, body.investigator,
            body.investigator_password, product_id, justification=body.justification,
            reason=body.reason)


@router.post("/products/{product_id}/handovers", tags=["cell products"], status_code=201,
             dependencies=[Depends(csrf)])
def handover(request: Request, product_id: ProductPath, body: HandoverIn, who: Who,
             idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """A hand-over from the caller (the holder) to ``to``; a stale ``version`` is a 409."""
    with body_fields():
        return cellproduct.hand_over(
            context(request), who, product_id, expected_version=body.version, to=body.to,
            location=body.location, at=body.at, temperature_c=body.temperature_c,
            condition=body.condition, storage=body.storage, reason=body.reason)
