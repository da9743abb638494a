"""The cell lab's records on the web and through the API: a collection for an enrolled
patient, a product made from another, release-test results against the protocol's
specification, the signed (and the exceptional) release, hand-overs. Good input is stored
and audited; bad input is refused naming the field by its label, with nothing stored; the
wrong role is refused. A product that is not released proposes the protocol's
manufacturing-failure action. In a real browser (390 px, axe-core) the lab records a
collection and a test result through the forms.

The protocol is the shipped NB-NK-2026 with TEST FIXTURE limits (``test_cellproduct_store``);
they are not clinical limits.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from test_cellproduct_store import PASSING
from test_cellproduct_web import PHONE, Ward, _log_in, _no_horizontal_scroll, ward_server
from trialdesk.cellproduct.product import Counts, ProductError
from trialdesk.errors import AccessError, SettingsError
from trialdesk.services import cellproduct as cp

__all__ = ["ward_server"]


@pytest.fixture
def ward(tmp_path: Path) -> Ward:
    return Ward(tmp_path)


def _compact(key: str) -> str:
    return key.replace(" ", "")


def _count(ward: Ward) -> int:
    return len(ward.lab.store.cell_products())


COLLECTION = {"collection": "NB-NK-2026/nk-collection", "collected_at": "2026-11-22T09:00",
              "site": "Moscow", "procedure": "peripheral blood", "code": "S0001A",
              "volume_ml": "40", "tnc": "1.2e9", "mnc": "8e8", "viability_percent": "98"}


# ---------------------------------------------------------------------------- pages


def test_collection_form_records_and_audits(ward: Ward) -> None:
    c = ward.client("pharmacist")
    page = c.get("/lab/collections/new")
    assert page.status_code == 200
    assert ward.lab.patient in page.text and "Viability (%)" in page.text
    assert "facility <strong>A9999</strong>" in page.text
    assert 'href="/lab/collections/new"' in c.get("/lab").text  # linked from the cell lab
    before, audited = _count(ward), ward.lab.audit_count()
    done = c.post("/lab/collections", follow_redirects=False,
                  data={"csrf_token": c.csrf, **COLLECTION, "patient": ward.lab.patient})
    assert done.status_code == 303, done.text
    assert _count(ward) == before + 1 and ward.lab.audit_count() == audited + 1
    new = next(r for r in ward.lab.store.cell_products() if r.document["din"] != ward.lab.store
               .cell_product(ward.dose).document["din"] and r.spec_id == "nk-collection"
               and r.document["prepared_at"].startswith("2026-11-22T09:00"))
    assert done.headers["location"] == f"/products/{_compact(new.key)}/record"
    doc = new.document
    assert doc["recipient"] == ward.lab.patient and doc["donor"]["kind"] == "autologous"
    assert doc["volume_ml"] == 40 and doc["operator"] == "pharmacist"
    assert doc["counts"] == {"tnc": 1.2e9, "mnc": 8e8, "viability_percent": 98}
    assert doc["procedure"] == "peripheral blood" and doc["site"] == "Moscow"
    # the product's history page links to the lab's forms
    assert f"/products/{_compact(new.key)}/record" in c.get(f"/products/{_compact(new.key)}").text


@pytest.mark.parametrize(("change", "label"), [
    ({"viability_percent": "120"}, "Viability (%)"),
    ({"volume_ml": "lots"}, "Volume (mL)"),
    ({"patient": ""}, "Patient"),
    ({"code": "S1"}, "ISBT 128 product code"),
    ({"procedure": "other", "procedure_other": ""}, "Other procedure"),
    ({"collected_at": ""}, "Collected at"),
])
def test_collection_form_refuses_bad_input_naming_the_field(ward: Ward, change: dict[str, str],
                                                            label: str) -> None:
    c = ward.client("pharmacist")
    before, audited = _count(ward), ward.lab.audit_count()
    r = c.post("/lab/collections", follow_redirects=False,
               data={"csrf_token": c.csrf, **COLLECTION, "patient": ward.lab.patient, **change})
    assert r.status_code == 422, r.text
    assert f"<code>{label}</code>" in r.text
    assert "Traceback" not in r.text and "$." not in r.text
    assert _count(ward) == before and ward.lab.audit_count() == audited


def test_collection_form_is_for_the_lab_only(ward: Ward) -> None:
    c = ward.client("coordinator")
    before = _count(ward)
    assert c.get("/lab/collections/new").status_code == 403
    r = c.post("/lab/collections", data={"csrf_token": c.csrf, **COLLECTION,
                                         "patient": ward.lab.patient})
    assert r.status_code == 403 and _count(ward) == before


def test_product_forms_derive_test_release_and_hand_over(ward: Ward) -> None:
    lab, c = ward.lab, ward.client("pharmacist")
    collection = lab.collect()
    page = c.get(f"/products/{_compact(collection)}/record")
    assert page.status_code == 200 and "Ex vivo-activated autologous NK-cell expansion" in page.text
    audited = lab.audit_count()
    made = c.post(f"/products/{_compact(collection)}/derived", follow_redirects=False,
                  data={"csrf_token": c.csrf, "spec_id": "nk-expansion",
                        "prepared_at": "2026-11-23T08:00", "code": "S0002A",
                        "viable_cells": "1.2e9"})
    assert made.status_code == 303, made.text
    batch = next(r.key for r in lab.store.cell_products() if r.spec_id == "nk-expansion"
                 and r.document["parent"] == collection)
    assert made.headers["location"] == f"/products/{_compact(batch)}/record"
    assert lab.audit_count() == audited + 1
    # a product type that is not made from a collection: refused, named, nothing stored
    before = _count(ward)
    wrong = c.post(f"/products/{_compact(collection)}/derived",
                   data={"csrf_token": c.csrf, "spec_id": "nk-dose",
                         "prepared_at": "2026-11-23T08:00", "code": "S0009A"})
    assert wrong.status_code == 422 and "<code>Product type</code>" in wrong.text
    assert _count(ward) == before
    # test results through the form: the unit is the protocol's, a word for a qualitative test
    form = c.get(f"/products/{_compact(batch)}/record").text
    assert "Viability — a number in %" in form and "Sterility — a word, e.g. no growth" in form
    bad = c.post(f"/products/{_compact(batch)}/tests",
                 data={"csrf_token": c.csrf, "test_id": "viability", "value": "high",
                       "tested_at": "2026-11-23T09:00"})
    assert bad.status_code == 422 and "<code>Result</code>: enter a number in %" in bad.text
    assert lab.store.product_tests([batch]) == []
    audited = lab.audit_count()
    for test_id, value, _unit in PASSING:
        r = c.post(f"/products/{_compact(batch)}/tests", follow_redirects=False,
                   data={"csrf_token": c.csrf, "test_id": test_id, "value": str(value),
                         "tested_at": "2026-11-23T09:00"})
        assert r.status_code == 303, r.text
    tests = {e.document["test"]: e.document for e in lab.store.product_tests([batch])}
    assert tests["viability"]["value"] == 92 and tests["viability"]["unit"] == "%"
    assert tests["t_cells_per_kg"]["unit"] == "cells"  # the total; divided by the weight
    assert tests["sterility"]["value"] == "no growth" and tests["sterility"]["unit"] is None
    assert lab.audit_count() == audited + len(PASSING)
    # the release decision: the password is the e-signature
    wrong_password = c.post(f"/products/{_compact(batch)}/release",
                            data={"csrf_token": c.csrf, "password": "nope"})
    assert wrong_password.status_code == 401 and "password is wrong" in wrong_password.text
    assert lab.store.product_releases([batch]) == []
    audited = lab.audit_count()
    signed = c.post(f"/products/{_compact(batch)}/release", follow_redirects=False,
                    data={"csrf_token": c.csrf, "password": "pharmacist-demo"})
    assert signed.status_code == 303, signed.text
    assert lab.audit_count() > audited  # the decision and its e-signature
    release, = lab.store.product_releases([batch])
    assert release.document["released"] is True
    assert "manufacturing_failure" not in release.document
    # a hand-over: to a person chosen from the list; a stale version is a conflict
    row = lab.store.cell_product(batch)
    assert row is not None
    handover = {"csrf_token": c.csrf, "version": str(row.version), "to": "coordinator",
                "location": "ward 3", "at": "2026-11-23T10:00", "temperature_c": "4",
                "condition": "intact", "storage": "fridge 2"}
    no_place = c.post(f"/products/{_compact(batch)}/handovers",
                      data={**handover, "location": ""})
    assert no_place.status_code == 422 and "<code>Location</code>" in no_place.text
    given = c.post(f"/products/{_compact(batch)}/handovers", follow_redirects=False,
                   data=handover)
    assert given.status_code == 303, given.text
    moved = lab.store.cell_product(batch)
    assert moved is not None and moved.holder == "coordinator" and moved.location == "ward 3"
    trail = lab.audit_count()
    again = c.post(f"/products/{_compact(batch)}/handovers", data=handover)
    assert again.status_code == 409 and "<code>Product version</code>" in again.text
    assert len(lab.store.product_handovers([batch])) == 1 and lab.audit_count() == trail
    # the wrong role sees none of it
    assert ward.client("coordinator").get(f"/products/{_compact(batch)}/record").status_code == 403


# ---------------------------------------------------------------------------- the API


def _api(c: Any, path: str, body: dict[str, Any], key: str | None = None) -> Any:
    headers = {"x-csrf-token": c.csrf}
    if key:
        headers["Idempotency-Key"] = key
    return c.post(path, json=body, headers=headers)


API_COLLECTION = {"trial_id": "NB-NK-2026", "product_type": "nk-collection",
                  "collected_at": "2026-11-22T09:00", "procedure": "apheresis",
                  "code": "S0001A", "volume_ml": 40, "tnc": 1.2e9, "viability_percent": 98}


def test_api_collection_is_idempotent_refuses_bad_input_and_the_wrong_role(ward: Ward) -> None:
    c = ward.client("pharmacist")
    body = {**API_COLLECTION, "patient": ward.lab.patient}
    before = _count(ward)
    first = _api(c, "/api/lab/collections", body, key="collect-1")
    assert first.status_code == 201, first.text
    again = _api(c, "/api/lab/collections", body, key="collect-1")
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert _count(ward) == before + 1  # the retry made nothing twice
    bad = _api(c, "/api/lab/collections", {**body, "viability_percent": 120})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "$.body.viability_percent"
    third_party = _api(c, "/api/lab/collections", {**API_COLLECTION})  # autologous, no patient
    assert third_party.status_code == 422
    assert third_party.json()["errors"][0]["field"] == "$.body.patient"
    unknown = _api(c, "/api/lab/collections", {**body, "product_type": "nk-dose"})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "$.body.type"
    assert _count(ward) == before + 1
    nurse = ward.client("coordinator")
    assert _api(nurse, "/api/lab/collections", body).status_code == 403
    assert _count(ward) == before + 1


def test_api_documents_every_lab_write_with_idempotency_key(ward: Ward) -> None:
    spec = ward.client("pharmacist").get("/api/openapi.json").json()
    paths = ["/api/lab/collections", "/api/products/{product_id}/derived",
             "/api/products/{product_id}/tests", "/api/products/{product_id}/release",
             "/api/products/{product_id}/exceptional-release",
             "/api/products/{product_id}/handovers"]
    for path in paths:
        op = spec["paths"][path]["post"]
        headers = [p["name"] for p in op.get("parameters", []) if p["in"] == "header"]
        assert "Idempotency-Key" in headers, path
        assert "requestBody" in op and "201" in op["responses"], path


def test_api_derive_test_release_exceptional_and_hand_over(ward: Ward) -> None:
    lab = ward.lab
    c = ward.client("pharmacist")
    collection = _compact(lab.collect())
    made = _api(c, f"/api/products/{collection}/derived",
                {"product_type": "nk-expansion", "prepared_at": "2026-11-23T08:00",
                 "code": "S0002A", "viable_cells": 1.2e9}, key="derive-1")
    assert made.status_code == 201, made.text
    key = made.json()["id"]
    batch = _compact(key)
    out_of_spec = [("viability", 50)] + [(t, v) for t, v, _ in PASSING if t != "viability"]
    for test_id, value in out_of_spec:
        r = _api(c, f"/api/products/{batch}/tests",
                 {"test_id": test_id, "value": value, "tested_at": "2026-11-23T09:00"})
        assert r.status_code == 201, r.text
    word = _api(c, f"/api/products/{batch}/tests",
                {"test_id": "endotoxin", "value": "low", "tested_at": "2026-11-23T09:00"})
    assert word.status_code == 422 and word.json()["errors"][0]["field"] == "$.body.value"
    unknown = _api(c, f"/api/products/{batch}/tests",
                   {"test_id": "colour", "value": "red", "tested_at": "2026-11-23T09:00"})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "$.body.test"
    decision = _api(c, f"/api/products/{batch}/release", {"password": "pharmacist-demo"})
    assert decision.status_code == 201 and decision.json()["released"] is False
    # out of specification: the protocol's manufacturing-failure action is proposed
    failure = decision.json()["manufacturing_failure"]
    assert failure["patient"] == lab.patient and failure["course"] == "DIT"
    assert failure["event"] == lab.nk_events[1]["id"]  # the first is covered by the ward's dose
    assert [a["rule_id"] for a in failure["proposed_actions"]] == ["NBNK-NK-PRODUCT-FAILURE"]
    # the exceptional release: the co-signer must be an investigator of the trial
    nurse = _api(c, f"/api/products/{batch}/exceptional-release",
                 {"justification": "no other option", "password": "pharmacist-demo",
                  "investigator": "coordinator", "investigator_password": "coordinator-demo"})
    assert nurse.status_code == 422
    assert nurse.json()["errors"][0]["field"] == "$.body.investigator"
    wrong = _api(c, f"/api/products/{batch}/exceptional-release",
                 {"justification": "no other option", "password": "pharmacist-demo",
                  "investigator": "investigator", "investigator_password": "nope"})
    assert wrong.status_code == 401
    assert len(lab.store.product_releases([key])) == 1
    both = _api(c, f"/api/products/{batch}/exceptional-release",
                {"justification": "no other option", "password": "pharmacist-demo",
                 "investigator": "investigator", "investigator_password": "investigator-demo"})
    assert both.status_code == 201, both.text
    assert both.json()["exceptional"] and len(both.json()["e_signatures"]) == 2
    row = lab.store.cell_product(key)
    assert row is not None
    moved = _api(c, f"/api/products/{batch}/handovers",
                 {"version": row.version, "to": "coordinator", "location": "ward 3",
                  "at": "2026-11-23T10:00", "temperature_c": 4, "condition": "intact"})
    assert moved.status_code == 201 and moved.json()["holder"] == "coordinator"
    stale = _api(c, f"/api/products/{batch}/handovers",
                 {"version": row.version, "to": "investigator", "location": "ward 3",
                  "at": "2026-11-23T10:05", "condition": "intact"})
    assert stale.status_code == 409
    nurse_client = ward.client("coordinator")
    assert _api(nurse_client, f"/api/products/{batch}/tests",
                {"test_id": "viability", "value": 90,
                 "tested_at": "2026-11-23T09:00"}).status_code == 403


def test_api_without_a_facility_setting_refuses_a_collection(tmp_path: Path) -> None:
    from trialdesk.web.app import create_app
    from trialdesk.web.settings import Settings

    ward = Ward(tmp_path)
    ward.app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'td.db'}",
                                   secret_key="t" * 40), ward.lab.store)
    c = ward.client("pharmacist")
    r = _api(c, "/api/lab/collections", {**API_COLLECTION, "patient": ward.lab.patient})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "facility"
    with pytest.raises(SettingsError, match="TRIALDESK_FACILITY"):
        Settings(database_url="sqlite://", secret_key="t" * 40, facility="A9")


# ---------------------------------------------------------------------------- services


def test_service_test_entry_refuses_a_word_for_a_number_and_stores_nothing(ward: Ward) -> None:
    lab = ward.lab
    batch = cp.derive_product(lab.ctx, lab.who("pharmacist"), lab.collect(),
                              spec_id="nk-expansion", code="S0002A",
                              prepared_at=datetime(2026, 11, 23, 8), counts=Counts(),
                              reason="expansion")["id"]
    audited = lab.audit_count()
    with pytest.raises(ProductError) as refused:
        cp.record_test_entry(lab.ctx, lab.who("pharmacist"), batch, test_id="viability",
                             text="very good", tested_at=datetime(2026, 11, 23, 9),
                             reason="QC")
    assert refused.value.where == "value" and "%" in refused.value.reason
    with pytest.raises(AccessError):
        cp.record_test_entry(lab.ctx, lab.who("coordinator"), batch, test_id="viability",
                             text="90", tested_at=datetime(2026, 11, 23, 9), reason="QC")
    assert lab.store.product_tests([batch]) == [] and lab.audit_count() == audited
    saved = cp.record_test_entry(lab.ctx, lab.who("pharmacist"), batch, test_id="viability",
                                 text="91,5", tested_at=datetime(2026, 11, 23, 9), reason="QC")
    assert saved["value"] == 91.5 and saved["unit"] == "%"
    assert lab.audit_count() == audited + 1


def test_manufacturing_failure_proposes_the_protocol_action_on_the_calendar(ward: Ward) -> None:
    lab = ward.lab
    event = lab.nk_events[1]  # the first event has the released dose of the ward
    batch = lab.expand(lab.collect(), release=None)
    cp.record_test_result(lab.ctx, lab.who("pharmacist"), batch, test_id="sterility",
                          value="growth", unit=None, tested_at=datetime(2026, 11, 23, 9, 30),
                          reason="QC result")
    decision = cp.release_product(lab.ctx, lab.who("pharmacist"), batch,
                                  password="pharmacist-demo", reason="release")
    assert decision["released"] is False
    failure = decision["manufacturing_failure"]
    assert "Sterility: not met" in failure["reason"]
    action, = failure["proposed_actions"]
    assert action["rule_id"] == "NBNK-NK-PRODUCT-FAILURE" and action["unconfirmed"]
    assert action["proposal"]["kind"] == "discontinue_agent"
    assert action["proposal"]["agent"] == "autologous NK cells"
    assert action["proposal"]["requires_confirmation"] and not action["proposal"]["confirmed_by"]
    assert "seed 000" in action["source"] and "does not say" in action["source"]
    # the first NK event not covered by a released dose (the ward's dose covers the first)
    assert failure["event"] == event["id"]
    found = cp.released_product_for(lab.ctx, lab.who("coordinator"), lab.patient, event["id"])
    covered = cp.released_product_for(lab.ctx, lab.who("coordinator"), lab.patient,
                                      lab.nk_events[0]["id"])
    assert covered["manufacturing_failure"] == []
    assert [a["rule_id"] for f in found["manufacturing_failure"]
            for a in f["proposed_actions"]] == ["NBNK-NK-PRODUCT-FAILURE"]
    page = cp.calendar_page(lab.ctx, lab.who("coordinator"), lab.patient)
    shown = next(e for e in page["calendar"]["events"] if e["id"] == event["id"])
    assert shown["product_failure"] == [action["shown"]]
    assert "[unconfirmed]" in action["shown"]
    history = cp.product_history(lab.ctx, lab.who("pharmacist"), batch)
    assert history["manufacturing_failures"][0]["proposed_actions"][0]["shown"] == action["shown"]
    # nothing changed on the calendar: the action waits for an investigator
    assert lab.store.journey(lab.patient).actions == ()  # type: ignore[union-attr]


def test_an_nk_event_is_given_only_by_its_infusion_not_by_the_records_api(ward: Ward) -> None:
    """Even with a released dose available, the records API refuses "given" for a cell
    product (the service-level refusal without one is in test_cellproduct_store)."""
    c = ward.client("coordinator")
    event = ward.lab.nk_events[0]
    assert c.get(f"/api/patients/{ward.lab.patient}/events/{event['id']}/product"
                 ).json()["status"] == "released product available"
    r = _api(c, f"/api/patients/{ward.lab.patient}/records",
             {"event_id": event["id"], "status": "given", "at": f"{event['date']}T09:00",
              "reason": "given"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "$.body.status"
    assert "bedside verification" in r.json()["errors"][0]["reason"]
    cal = c.get(f"/api/patients/{ward.lab.patient}/calendar").json()
    assert next(e for e in cal["calendar"]["events"] if e["id"] == event["id"])["status"] \
        != "given"


# ---------------------------------------------------------------------------- browser


def test_lab_records_a_collection_and_a_test_result_on_a_phone(
        chromium: Any, ward_server: tuple[Ward, str], output_dir: Path) -> None:
    from test_browser_forms import _no_axe_violations

    ward, base = ward_server
    lab = ward.lab
    context = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        _log_in(page, base, "pharmacist", "/lab")
        page.get_by_role("link", name="Record a collection").click()
        page.wait_for_url("**/lab/collections/new")
        _no_horizontal_scroll(page)
        _no_axe_violations(page)
        page.get_by_label("Collection type").select_option("NB-NK-2026/nk-collection")
        page.get_by_label("Patient (autologous").select_option(lab.patient)
        page.get_by_label("Collected at").fill("2026-11-22T09:00")
        page.get_by_label("Collection site").press_sequentially("Moscow")
        page.get_by_label("Procedure", exact=True).select_option("peripheral blood")
        page.get_by_label("ISBT 128 product code").press_sequentially("S0001A")
        page.get_by_label("Volume (mL)").press_sequentially("40")
        page.get_by_label("Total nucleated cells").press_sequentially("1.2e9")
        page.get_by_label("Viability (%)").press_sequentially("98")
        page.get_by_role("button", name="Record the collection").click()
        page.wait_for_url("**/record")
        heading = page.get_by_role("heading", level=1).inner_text()
        key = heading.removeprefix("Lab record — ")
        collected = lab.store.cell_product(key)
        assert collected is not None and collected.document["volume_ml"] == 40
        assert collected.document["counts"]["viability_percent"] == 98
        _no_horizontal_scroll(page)
        _no_axe_violations(page)
        page.screenshot(path=str(output_dir / "lab-collection-390.png"), full_page=True)
        # the expansion batch from the collection, then a test result through the form
        page.get_by_label("Product type").select_option("nk-expansion")
        page.get_by_label("Prepared at").fill("2026-11-23T08:00")
        page.get_by_label("ISBT 128 product code of the new product").press_sequentially("S0002A")
        page.get_by_role("button", name="Record the new product").click()
        page.wait_for_url("**/record")
        batch = page.get_by_role("heading", level=1).inner_text().removeprefix("Lab record — ")
        assert batch != key
        page.get_by_label("Test", exact=True).select_option("viability")
        page.get_by_label("Result").press_sequentially("lots")
        page.get_by_label("Tested at").fill("2026-11-23T09:00")
        page.get_by_role("button", name="Record the result").click()
        assert "Result: enter a number in %" in page.get_by_role("alert").inner_text()
        _no_horizontal_scroll(page)
        _no_axe_violations(page)
        page.get_by_label("Result").fill("92")
        page.get_by_label("Tested at").fill("2026-11-23T09:00")
        page.get_by_role("button", name="Record the result").click()
        page.wait_for_url(f"**/products/{_compact(batch)}")
        tests = lab.store.product_tests([batch])
        assert [(t.document["test"], t.document["value"]) for t in tests] == [("viability", 92)]
        _no_horizontal_scroll(page)
        page.screenshot(path=str(output_dir / "lab-test-result-390.png"), full_page=True)
    finally:
        context.close()



# ---------------------------------------------------------------------------- the rule


def test_product_failure_rule_in_the_protocol_and_its_trigger() -> None:
    from pydantic import ValidationError

    from trialdesk.protocol.load import default_protocol_dir, load_protocol
    from trialdesk.safety.rules import Status, ToxicityRule, check_product_failure

    protocol = load_protocol(default_protocol_dir() / "nb-nk-2026.yaml").protocol
    rule = next(r for r in protocol.toxicity_rules if r.id == "NBNK-NK-PRODUCT-FAILURE")
    assert rule.is_unconfirmed and "seed 000" in rule.source and "does not say" in rule.source
    assert rule.agents == ("autologous NK cells",) and rule.courses == ["DIT"]
    hit, = check_product_failure([rule], "nk-expansion", "sterility: not met", course="DIT",
                                 course_number=2)
    assert hit.status is Status.TRIGGERED and hit.actions[0].course_number == 2
    other, = check_product_failure([rule], "nk-collection", "volume", course="DIT")
    assert other.status is Status.NOT_TRIGGERED and not other.actions
    outside, = check_product_failure([rule], "nk-expansion", "x", course="IT")
    assert outside.status is Status.NOT_TRIGGERED
    with pytest.raises(ValidationError, match="delays or omits"):
        ToxicityRule.model_validate({
            "id": "PF", "title": "t", "when": {"product_failure": ["nk-dose"]},
            "actions": [{"kind": "reduce", "agent": "autologous NK cells", "percent": 50}],
            "source": "s"})


def test_a_product_failure_rule_names_product_types_of_the_protocol() -> None:
    import yaml
    from pydantic import ValidationError

    from trialdesk.protocol.load import default_protocol_dir
    from trialdesk.protocol.model import Protocol

    doc = yaml.safe_load((default_protocol_dir() / "nb-nk-2026.yaml").read_text())
    rule = next(r for r in doc["toxicity_rules"] if r["id"] == "NBNK-NK-PRODUCT-FAILURE")
    rule["when"]["product_failure"] = ["nk-bag"]
    with pytest.raises(ValidationError, match="'nk-bag' is not a product type"):
        Protocol.model_validate(doc)
