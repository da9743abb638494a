"""The cell lab's forms: record a collection for an enrolled patient, and on a product make a
product from it (expansion batch, cryopreserved aliquot, thawed dose), record a release
test result against the protocol's specification, sign the release decision (the password
again), sign an exceptional release with the investigator, and record a hand-over.

Patients, product types, tests and people are chosen from lists; every refused value is
shown with the field's label and the reason in words, and nothing is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import Field, ValidationError

from trialdesk.cellproduct.product import Counts, ProductError
from trialdesk.errors import AccessError, NotFoundError, TrialdeskError
from trialdesk.services import cellproduct
from trialdesk.web.clinical_pages import Fields, Who, _form_errors
from trialdesk.web.deps import context, csrf
from trialdesk.web.errors import status_of
from trialdesk.web.pages import _domain_errors, _Form, _redirect, render
from trialdesk.web.product_api import ProductPath

router = APIRouter(include_in_schema=False)
Csrf = [Depends(csrf)]

# The form's fields and the places the cell-product core names, by the label on the form.
LABELS = {
    "collection": "Collection type", "type": "Product type", "spec_id": "Product type",
    "patient": "Patient", "donor": "Third-party donor or bank product identity",
    "collected_at": "Collected at", "site": "Collection site", "procedure": "Procedure",
    "procedure_other": "Other procedure", "code": "ISBT 128 product code",
    "product code": "ISBT 128 product code", "type of donation": "ISBT 128 product code",
    "volume_ml": "Volume (mL)", "volume": "Volume (mL)", "tnc": "Total nucleated cells (TNC)",
    "mnc": "Mononuclear cells (MNC)", "viability_percent": "Viability (%)",
    "viable_cells": "Viable cells", "facility": "Facility identifier (a server setting)",
    "prepared_at": "Prepared at", "prepared at": "Prepared at", "division": "Aliquot number",
    "recipient": "Recipient (study number)", "expires_at": "Expires at", "expiry": "Expires at",
    "storage": "Storage position", "stage": "Product type", "parent": "Made from",
    "test": "Test", "test_id": "Test", "value": "Result", "tested_at": "Tested at",
    "password": "Your password", "justification": "Clinical justification",
    "investigator": "Investigator's user name",
    "investigator_password": "Investigator's password", "signatures": "Signatures",
    "signature": "Signature", "exceptional release": "Exceptional release",
    "specification": "Product type", "to": "Handed to", "location": "Location",
    "at": "Handed over at", "temperature_c": "Temperature (°C)", "condition": "Condition on receipt",
    "version": "Product version", "reason": "Reason", "product id": "Product identifier",
}


def _labelled(errors: list[dict[str, str]], whole: str) -> list[dict[str, str]]:
    out = []
    for e in errors:
        field = e["field"]
        if field == "$":
            label = whole
        elif field.startswith("hand-over"):
            label = "Hand-over"
        else:
            label = LABELS.get(field, field.replace("_", " ").capitalize())
        out.append({**e, "field": label})
    return out


def _attempt(form: dict[str, Any], run: Callable[[], Any], page: Callable[..., Response],
             whole: str) -> Any:
    """``run()``'s result, or ``page`` again with the refused field and reason (422, or the
    error's own status: 401 for a wrong password, 409 for a stale version)."""
    shown = {k: v for k, v in form.items() if "password" not in k and k != "csrf_token"}
    try:
        return run()
    except ValidationError as exc:
        return page(status=422, errors=_labelled(_form_errors(exc), whole), form=shown)
    except TrialdeskError as exc:
        if (isinstance(exc, NotFoundError) and exc.where is None) or (
                isinstance(exc, AccessError) and exc.status == 403):
            raise
        return page(status=status_of(exc), errors=_labelled(_domain_errors(exc), whole),
                    form=shown)


Number = Field(default=None, ge=0, le=1e15, allow_inf_nan=False)


# ---------------------------------------------------------------------------- collection


class CollectionForm(_Form):
    collection: str = Field(min_length=3, max_length=200, pattern=r"^[^/]+/[^/]+$")
    patient: str | None = Field(default=None, max_length=64)
    donor: str | None = Field(default=None, max_length=64)
    collected_at: datetime
    site: str | None = Field(default=None, max_length=200)
    procedure: Literal["apheresis", "bone marrow", "peripheral blood", "other"]
    procedure_other: str | None = Field(default=None, max_length=200)
    code: str = Field(min_length=6, max_length=12)
    volume_ml: float | None = Field(default=None, gt=0, le=10_000, allow_inf_nan=False)
    tnc: float | None = Number
    mnc: float | None = Number
    viability_percent: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)
    reason: str = Field(default="collection recorded", min_length=1, max_length=500)


def _collection_page(request: Request, who: Who) -> Callable[..., Response]:
    def page(status: int = 200, errors: list[dict[str, str]] | None = None,
             form: dict[str, Any] | None = None) -> Response:
        return render(request, "lab_collection.html", status=status, errors=errors or [],
                      form=form or {}, f=cellproduct.collection_form(context(request), who),
                      facility=context(request).settings.facility)
    return page


@router.get("/lab/collections/new", response_class=HTMLResponse)
def collection_new(request: Request, who: Who) -> Response:
    return _collection_page(request, who)()


@router.post("/lab/collections", response_class=HTMLResponse, dependencies=Csrf)
def collection_record(request: Request, who: Who, form: Fields) -> Response:
    ctx = context(request)
    cellproduct.collection_form(ctx, who)  # the lab only: others are refused

    def run() -> dict[str, Any]:
        d = CollectionForm.model_validate(form)
        if not ctx.settings.facility:
            raise ProductError("the server has no facility identifier: start it with "
                               "--facility or TRIALDESK_FACILITY", where="facility")
        trial_id, spec_id = d.collection.split("/", 1)
        procedure = cellproduct.procedure_named(d.procedure, d.procedure_other)
        return cellproduct.record_collection(
            ctx, who, trial_id=trial_id, spec_id=spec_id, facility=ctx.settings.facility,
            code=d.code, collected_at=d.collected_at, procedure=procedure, patient=d.patient,
            donor=d.donor, site=d.site, volume_ml=d.volume_ml,
            counts=Counts(tnc=d.tnc, mnc=d.mnc, viability_percent=d.viability_percent),
            reason=d.reason)

    result = _attempt(form, run, _collection_page(request, who), "Collection")
    if isinstance(result, Response):
        return result
    return _redirect(f"/products/{str(result['id']).replace(' ', '')}/record")


# ---------------------------------------------------------------------------- a product


class DeriveForm(_Form):
    spec_id: str = Field(min_length=1, max_length=64)
    prepared_at: datetime
    code: str | None = Field(default=None, max_length=12)
    division: int | None = Field(default=None, ge=0, le=25)
    recipient: str | None = Field(default=None, max_length=64)
    volume_ml: float | None = Field(default=None, gt=0, le=10_000, allow_inf_nan=False)
    viable_cells: float | None = Number
    viability_percent: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)
    expires_at: datetime | None = None
    storage: str | None = Field(default=None, max_length=200)
    reason: str = Field(default="product prepared", min_length=1, max_length=500)


class TestForm(_Form):
    test_id: str = Field(min_length=1, max_length=64)
    value: str = Field(min_length=1, max_length=200)
    tested_at: datetime
    reason: str = Field(default="release test result", min_length=1, max_length=500)


class ReleaseForm(_Form):
    password: str = Field(min_length=1, max_length=1024)
    reason: str = Field(default="release decision", min_length=1, max_length=500)


class ExceptionalForm(_Form):
    justification: str = Field(min_length=1, max_length=2000)
    password: str = Field(min_length=1, max_length=1024)
    investigator: str = Field(min_length=1, max_length=64)
    investigator_password: str = Field(min_length=1, max_length=1024)
    reason: str = Field(default="exceptional release", min_length=1, max_length=500)


class HandoverForm(_Form):
    version: int = Field(ge=1, le=2_147_483_647)
    to: str = Field(min_length=1, max_length=64)
    location: str = Field(min_length=1, max_length=200)
    at: datetime
    temperature_c: float | None = Field(default=None, ge=-273, le=100, allow_inf_nan=False)
    condition: str = Field(min_length=1, max_length=200)
    storage: str | None = Field(default=None, max_length=200)
    reason: str = Field(default="hand-over", min_length=1, max_length=500)


def _product_page(request: Request, who: Who, product_id: str, section: str
                  ) -> Callable[..., Response]:
    def page(status: int = 200, errors: list[dict[str, str]] | None = None,
             form: dict[str, Any] | None = None) -> Response:
        return render(request, "lab_product.html", status=status, errors=errors or [],
                      form=form or {}, section=section,
                      f=cellproduct.product_forms(context(request), who, product_id))
    return page


@router.get("/products/{product_id}/record", response_class=HTMLResponse)
def product_record(request: Request, product_id: ProductPath, who: Who) -> Response:
    return _product_page(request, who, product_id, "")()


def _post(request: Request, who: Who, product_id: str, section: str, whole: str,
          run: Callable[[dict[str, Any]], Any], form: dict[str, Any]) -> Response:
    cellproduct.product_forms(context(request), who, product_id)  # the lab only, and it exists
    result = _attempt(form, lambda: run(form), _product_page(request, who, product_id, section),
                      whole)
    if isinstance(result, Response):
        return result
    target = str(result.get("id") or product_id).replace(" ", "") \
        if section == "derive" else product_id
    return _redirect(f"/products/{target}/record" if section == "derive"
                     else f"/products/{target}")


@router.post("/products/{product_id}/derived", response_class=HTMLResponse, dependencies=Csrf)
def product_derive(request: Request, product_id: ProductPath, who: Who,
                   form: Fields) -> Response:
    ctx = context(request)

    def run(form: dict[str, Any]) -> dict[str, Any]:
        d = DeriveForm.model_validate(form)
        return cellproduct.derive_product(
            ctx, who, product_id, spec_id=d.spec_id, prepared_at=d.prepared_at, code=d.code,
            division=d.division, recipient=d.recipient, volume_ml=d.volume_ml,
            counts=Counts(viable_cells=d.viable_cells, viability_percent=d.viability_percent),
            expires_at=d.expires_at, storage=d.storage, reason=d.reason)

    return _post(request, who, product_id, "derive", "New product", run, form)


@router.post("/products/{product_id}/tests", response_class=HTMLResponse, dependencies=Csrf)
def product_test(request: Request, product_id: ProductPath, who: Who,
                 form: Fields) -> Response:
    ctx = context(request)

    def run(form: dict[str, Any]) -> dict[str, Any]:
        d = TestForm.model_validate(form)
        return cellproduct.record_test_entry(ctx, who, product_id, test_id=d.test_id,
                                             text=d.value, tested_at=d.tested_at,
                                             reason=d.reason)

    return _post(request, who, product_id, "test", "Test result", run, form)


@router.post("/products/{product_id}/release", response_class=HTMLResponse, dependencies=Csrf)
def product_release(request: Request, product_id: ProductPath, who: Who,
                    form: Fields) -> Response:
    ctx = context(request)

    def run(form: dict[str, Any]) -> dict[str, Any]:
        d = ReleaseForm.model_validate(form)
        return cellproduct.release_product(ctx, who, product_id, password=d.password,
                                           reason=d.reason)

    return _post(request, who, product_id, "release", "Your password", run, form)


@router.post("/products/{product_id}/exceptional-release", response_class=HTMLResponse,
             dependencies=Csrf)
def product_exceptional(request: Request, product_id: ProductPath, who: Who,
                        form: Fields) -> Response:
    ctx = context(request)

    def run(form: dict[str, Any]) -> dict[str, Any]:
        d = ExceptionalForm.model_validate(form)
        return cellproduct.exceptional_release_named(
            ctx, who, d.password, d.investigator, d.investigator_password, product_id,
            justification=d.justification, reason=d.reason)

    return _post(request, who, product_id, "exceptional", "Passwords", run, form)


@router.post("/products/{product_id}/handovers", response_class=HTMLResponse, dependencies=Csrf)
def product_handover(request: Request, product_id: ProductPath, who: Who,
                     form: Fields) -> Response:
    ctx = context(request)

    def run(form: dict[str, Any]) -> dict[str, Any]:
        d = HandoverForm.model_validate(form)
        return cellproduct.hand_over(
            ctx, who, product_id, expected_version=d.version, to=d.to, location=d.location,
            at=d.at, temperature_c=d.temperature_c, condition=d.condition, storage=d.storage,
            reason=d.reason)

    return _post(request, who, product_id, "handover", "Hand-over", run, form)
