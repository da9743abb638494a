"""End to end in a real browser (Debian's chromium, headless, Playwright), each person on
their own screen, entirely through the pages by the labels they read — no JSON typed, no
internal id typed into an address (only links and redirects the application gives are
followed):

(a) NB-NK-2026: the coordinator registers a new 6-year-old child with refractory disease,
    all labs and findings, the signed consent, weight and height, typed once in the
    registration form (undetermined: only the investigator's questions are left); the
    investigator answers the questions (eligible, arm A), signs eligibility and enrols with
    day 1, and the calendar shows the computed doses; the pharmacist signs course 1 with one
    signature; the nurse records the doses from their calendar rows (given, partly given,
    withheld); in course 2 the investigator records grade 3 neuralgia by choosing the CTCAE
    term, chooses one of the proposed actions and signs it; after course 2 an INRC PR is
    entered in the INRC form and the outcomes page shows it.
(b) RuMCeSS: a patient in septic shock with neutropenia registered by form, randomised, and
    the MSC infusion recorded before its deadline (the two-person bedside check, then the
    infusion). The released MSC dose is made through the cell lab's services in the test
    (``_released_msc_dose``), not the lab pages.

(c), a data query from opening to source verification with the audit trail, is
``test_browser_queries.py``.

The server's clock is the tests' fixed clock (2026-11-21 12:00 UTC, the demo's day),
moved on between steps as the weeks of treatment pass, so every calendar day is fixed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from test_browser import serve_app
from test_browser_forms import FORM, TYPED, _enter, login, type_patient
from test_response_forms import INRC_PR
from trialdesk.forms.build import patient_form
from trialdesk.forms.response import INRC_FIELDS
from trialdesk.protocol.load import default_protocol_dir, load_protocol

INRC_LABELS = {f.name: f.label for f in INRC_FIELDS}
# The investigator's questions of NB-NK-2026 (the form's labels are the questions).
QUESTIONS = {
    "attest.e6": "Has the patient had an acute intolerance reaction to irinotecan",
    "attest.comorbidity_precluding_treatment": "Does the patient have complications of the",
    "severe_type1_hypersensitivity_history": "Has the patient ever had a severe type I",
    "attest.e8": "Does the patient need concomitant medication with known cross",
    "mental_illness_preventing_understanding": "Does a mental illness of the patient",
}
# Everything the coordinator knows (TYPED of test_browser_forms without the questions).
COORDINATOR = {k: v for k, v in TYPED.items() if k not in QUESTIONS}

RUMCESS = patient_form(load_protocol(default_protocol_dir() / "rumcess.yaml"))
# A woman of 58 with acute myeloid leukaemia on induction, in neutropenic septic shock since
# 06:00 today (examples/patients/rumcess-eligible.json), as the coordinator types it.
SEPTIC: dict[str, str] = {
    "birth_date": "1968-03-09", "sex": "female", "childbearing_potential": "no",
    "primary_diagnosis": "acute_myeloid_leukaemia", "diagnosis_date": "2026-10-19",
    "disease_date": "2026-11-21", "septic_shock": "yes",
    "septic_shock_onset": "2026-11-21T06:00", "chemotherapy_resistant": "no",
    "anc": "0.1", "consent_signed": "yes", "consent.version": "1.0",
    "consent.signed_by": "legal_representative", "weight": "71", "height": "164",
}


@pytest.fixture
def app(tmp_path: Path, demo_database: Path) -> Iterator[tuple[str, Any]]:
    """The demo application on a loopback port and its WebApp (the clock to move on)."""
    with serve_app(tmp_path, demo_database) as served:
        yield served


@contextmanager
def person(chromium: Any, server: str, path: str, user: str) -> Iterator[Any]:
    """``user`` logged in on their own tablet-sized screen, at ``path``."""
    context = chromium.new_context(viewport={"width": 1024, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("dialog", lambda dialog: dialog.accept())  # "Sign electronically?"
    try:
        login(page, server, path, user=user)
        yield page
    finally:
        context.close()


def _at(web: Any, when: str) -> None:
    web.clock.at = datetime.fromisoformat(when).replace(tzinfo=UTC)


def test_nb_nk_2026_from_registration_to_the_outcomes_page(chromium: Any, app: tuple[str, Any],
                                                           output_dir: Path) -> None:
    server, web = app
    # The coordinator registers the child: everything but the investigator's questions.
    with person(chromium, server, "/patients", "coordinator") as page:
        page.get_by_role("link", name="New patient for NB-NK-2026").click()
        page.wait_for_url("**/trials/NB-NK-2026/patients/new")
        type_patient(page, COORDINATOR)  # with the signed consent (1.0, parent, 2026-11-18)
        _enter(page, "Weight", "20.5")
        _enter(page, "Weight: date", "2026-11-21")
        page.get_by_role("button", name="Save and screen").click()
        page.wait_for_url("**/patients/*/form")
        number = page.url.split("/")[-2]
        # Only the investigator's questions are left unknown.
        assert page.locator("#verdict").inner_text() == "undetermined"
        assert page.locator("#arm").inner_text() == "A"
        page.screenshot(path=str(output_dir / "e2e-nb-1-registered.png"), full_page=True)
        # The consent, weight and height typed once in the form are on the patient page.
        page.get_by_role("link", name=number).click()
        page.wait_for_url(f"**/patients/{number}")
        assert "Form version 1.0 signed 2026-11-18 by the parent (patient aged 6)" in \
            page.locator("#consent").inner_text()
        assert "Screen again" not in page.locator("#enrolment").inner_text()

    # The investigator answers the questions: eligible, arm A; signs eligibility and enrols.
    with person(chromium, server, f"/patients/{number}/form", "investigator") as page:
        for fact, question in QUESTIONS.items():
            field = FORM.field(fact)
            assert field.label.startswith(question)  # the form asks the question itself
            _enter(page, field.label, "no")
            if field.dated:
                _enter(page, f"{field.label}: date", "2026-11-21")
        page.get_by_label("Reason for the change", exact=False).fill(
            "investigator's questions answered at the screening visit")
        page.get_by_role("button", name="Save and screen").click()
        page.wait_for_url(f"**/patients/{number}/form")
        page.screenshot(path=str(output_dir / "e2e-nb-2-questions.png"), full_page=True)
        assert page.locator("#verdict").inner_text() == "eligible"
        assert page.locator("#arm").inner_text() == "A"
        page.get_by_role("link", name=number).click()
        page.wait_for_url(f"**/patients/{number}")
        # The questions answered made a new record version and "Save and screen" screened
        # it: the enrolment is offered on that screening, day 1 set at once (the weight and
        # height typed at registration give the doses).
        assert "older than the record" not in page.locator("#enrolment").inner_text()
        page.get_by_label("Calendar day 1 (start date; can be set later)").fill("2026-11-21")
        page.get_by_label("Your password (electronic signature)").fill("investigator-demo")
        page.get_by_role("button", name="Sign and enrol").click()
        page.wait_for_url(f"**/patients/{number}#enrolment")
        enrolment = page.locator("#enrolment").inner_text()
        assert "Enrolled in NB-NK-2026, arm A" in enrolment
        assert "Eligibility signed: Demo Investigator (investigator)" in enrolment
        assert "I confirm the patient is eligible" in enrolment
        assert "bound to screening" in enrolment
        page.get_by_role("link", name="Calendar and doses").click()
        page.wait_for_url(f"**/patients/{number}/calendar")
        header = page.locator("main > p").first.inner_text()
        assert "Arm A (Arm A: patients with a refractory disease), day 1 = 2026-11-21" in header
        course_1 = page.locator("#group-1 > summary").inner_text()
        assert course_1 == "Course 1 · IT: 2026-11-21 → 2026-12-11 — 0 of 10 doses signed"
        assert "Course 2 · DIT: 2026-12-12 → 2027-01-01" in page.locator("#group-2").inner_text()
        page.screenshot(path=str(output_dir / "e2e-nb-3-calendar.png"), full_page=True)

    # The pharmacist signs all the doses of course 1 with one signature.
    with person(chromium, server, f"/patients/{number}/calendar", "pharmacist") as page:
        page.get_by_role("link", name="Course 1 doses and their working: sign off").click()
        page.wait_for_url(f"**/patients/{number}/courses/1/sign-off")
        assert page.get_by_label("All 10 doses of course 1 (one signature)").is_checked()
        page.get_by_label("Your password (electronic signature)").fill("pharmacist-demo")
        page.get_by_role("button", name="Sign").click()
        page.wait_for_url("**/courses/1/sign-off#signed")
        assert "Every dose of course 1 is signed" in page.locator("#all-signed").inner_text()
        page.get_by_role("link", name="Calendar", exact=False).first.click()
        page.wait_for_url(f"**/patients/{number}/calendar*")
        assert page.locator("#group-1 > summary").inner_text().endswith("10 of 10 doses signed")
        signed = page.locator("#ev-c1\\.irinotecan\\.d1").inner_text()
        assert "Demo Pharmacist" in signed and "(course 1 signature)" in signed
        assert "bound to this dose" in signed

    # The nurse records day 1's doses from their rows: irinotecan given, temozolomide
    # partly given.
    with person(chromium, server, f"/patients/{number}/calendar", "coordinator") as page:
        _dose(page, "c1.irinotecan.d1", "Given: irinotecan IV, 2026-11-21", {
            "Actual dose": "41", "Start time": "2026-11-21T09:00",
            "Stop time": "2026-11-21T10:30", "Infusion duration": "1.5",
            "Infusion volume": "100", "Lot number": "IRI-2026-117", "Given by": "Nurse Petrova"})
        row = page.locator("#ev-c1\\.irinotecan\\.d1").inner_text()
        assert "given" in row and "actual 41 mg; by Nurse Petrova" in row
        _dose(page, "c1.temozolomide.d1", "Partly given: temozolomide PO, 2026-11-21", {
            "Actual dose": "60", "Start time": "2026-11-21T09:00",
            "Given by": "Nurse Petrova", "Reason": "vomited after the second capsule"})
        row = page.locator("#ev-c1\\.temozolomide\\.d1").inner_text()
        assert "partly given" in row and "actual 60 mg; vomited after the second capsule" in row
    # The next morning the day-2 temozolomide is withheld.
    _at(web, "2026-11-22T10:00:00")
    with person(chromium, server, f"/patients/{number}/calendar", "coordinator") as page:
        _dose(page, "c1.temozolomide.d2", "Withheld: temozolomide PO, 2026-11-22", {
            "Start time": "2026-11-22T08:00", "Given by": "Dr Ivanov",
            "Reason": "vomiting; oral dose withheld"})
        row = page.locator("#ev-c1\\.temozolomide\\.d2").inner_text()
        assert "withheld" in row and "vomiting; oral dose withheld; by Dr Ivanov" in row
        assert "bound to this dose" in row  # the course signature still holds
        page.screenshot(path=str(output_dir / "e2e-nb-4-doses.png"), full_page=True)


    # Course 2 (DIT): grade 3 neuralgia on its first day, recorded by choosing the term;
    # the investigator chooses one of the two proposed actions and signs it.
    _at(web, "2026-12-13T12:00:00")
    with person(chromium, server, f"/patients/{number}", "investigator") as page:
        page.get_by_role("link", name="Adverse events").click()
        page.wait_for_url(f"**/patients/{number}/adverse-events")
        form = page.locator("#record")
        form.get_by_label("Term (CTCAE v5.0, or free text with its MedDRA term)").fill("neuralg")
        form.get_by_label("Onset date", exact=True).fill("2026-12-12")
        form.get_by_role("button", name="Show the term's grades and the course").click()
        form.get_by_role("radio", name="Neuralgia — Nervous system disorders; MedDRA 10029223"
                         ).check()
        form.get_by_role("button", name="Show the term's grades and the course").click()
        page.locator("#term-card").wait_for()
        assert "course 2 (DIT, 2026-12-12 → 2027-01-01)" in page.locator("#course").inner_text()
        form.get_by_role("radio", name="Grade 3: Severe pain; limiting self care ADL").check()
        form.get_by_role("button", name="Record and check the protocol rules").click()
        page.wait_for_url("**/adverse-events#latest")
        section = page.locator("section.ae").last
        assert "Neuralgia — grade 3" in section.inner_text()
        assert "Alternatives: choose one, or decline them all" in section.inner_text()
        section.get_by_role("radio", name="Accept: slow the infusion of dinutuximab beta",
                            exact=False).check()
        section.get_by_role("group", name="Does this hold: pain is not controlled by "
                            "gabapentin, morphine and non-opioid analgesics?",
                            exact=False).get_by_role("radio", name="yes").check()
        section.get_by_label("Reason for the decision").fill(
            "pain not controlled on gabapentin and morphine")
        section.get_by_label("Your password (electronic signature)").fill("investigator-demo")
        section.get_by_role("button", name="Sign the decision").click()
        page.wait_for_url("**/adverse-events#ae-*")
        text = page.locator("section.ae").last.inner_text()
        assert "Accepted: Demo Investigator" in text
        assert "Declined in favour of: slow the infusion of dinutuximab beta" in text
        page.screenshot(path=str(output_dir / "e2e-nb-5-neuralgia.png"), full_page=True)

    # After course 2: the INRC 2017 assessment typed into its form, a PR, signed.
    _at(web, "2027-01-04T12:00:00")
    with person(chromium, server, f"/patients/{number}", "investigator") as page:
        page.get_by_role("link", name="Response and follow-up").click()
        page.wait_for_url(f"**/patients/{number}/responses")
        page.get_by_role("link", name="INRC 2017 assessment").click()
        page.wait_for_url("**/responses/inrc/form")
        for name, value in {**INRC_PR, "assessed_on": "2027-01-04"}.items():
            _enter(page, INRC_LABELS.get(name, "Date of the assessment"), value)
        page.get_by_role("button", name="Preview the response").click()
        page.locator("#overall").wait_for()
        assert page.locator("#overall").inner_text() == "PR"
        page.get_by_label("Your password (signature)").fill("investigator-demo")
        page.get_by_role("button", name="Sign and record").click()
        page.wait_for_url(f"**/patients/{number}/responses#latest")
        latest = page.locator("article.assessment").last.inner_text()
        assert "INRC 2017" in latest and "PR" in latest and "2027-01-04" in latest

    # The statistician's outcomes page shows the response.
    with person(chromium, server, "/trials/NB-NK-2026/dashboard", "statistician") as page:
        page.get_by_role("link", name="Outcomes and exports (de-identified)").click()
        page.wait_for_url("**/trials/NB-NK-2026/outcomes")
        rows = page.get_by_role("table", name="Each signed response assessment, by patient"
                                ).locator("tbody tr").all_inner_texts()
        assert f"{number}\tA\t2027-01-04\tINRC 2017\tPR" in rows
        page.screenshot(path=str(output_dir / "e2e-nb-6-outcomes.png"), full_page=True)


def _dose(page: Any, event: str, link: str, typed: dict[str, str]) -> None:
    """Record a dose from its calendar row's button, typing ``typed`` (label -> value)."""
    row = page.locator("#ev-" + event.replace(".", "\\."))
    row.get_by_role("link", name=link, exact=True).click()
    page.wait_for_url(f"**/calendar/doses/{event}?status=*")
    for label, value in typed.items():
        _enter(page, label, value)
    page.get_by_role("button", name="Record").click()
    page.wait_for_url(f"**/calendar#ev-{event}")


def test_rumcess_septic_shock_randomised_and_the_msc_infusion_before_its_deadline(
        chromium: Any, app: tuple[str, Any], output_dir: Path) -> None:
    server, web = app
    with person(chromium, server, "/patients", "coordinator") as page:
        page.get_by_role("link", name="New patient for RuMCeSS").click()
        page.wait_for_url("**/trials/RuMCeSS/patients/new")
        _enter(page, "Site", "Moscow")
        for name, value in SEPTIC.items():
            if name.startswith("consent."):
                _enter(page, {"consent.version": "Consent form version",
                              "consent.signed_by": "Consent signed by"}[name], value)
                continue
            f = RUMCESS.field(name)
            _enter(page, f.label, value)
            if f.dated:
                _enter(page, f"{f.label}: {'date of the sample' if f.reference_range else 'date'}",
                       "2026-11-21")
        _enter(page, "Absolute neutrophil count: unit", "10^9/L")
        _enter(page, "Absolute neutrophil count: reference range, low", "1.8")
        _enter(page, "Absolute neutrophil count: reference range, high", "7.5")
        page.get_by_role("button", name="Save and screen").click()
        page.wait_for_url("**/patients/*/form")
        number = page.url.split("/")[-2]
        assert page.locator("#verdict").inner_text() == "eligible"
        page.screenshot(path=str(output_dir / "e2e-ru-1-registered.png"), full_page=True)
        page.get_by_role("link", name=number).click()
        page.wait_for_url(f"**/patients/{number}")
        assert "signed 2026-11-21 by the legal representative" in \
            page.locator("#consent").inner_text()

    # The investigator signs eligibility: the arm comes from the sealed allocation list.
    with person(chromium, server, f"/patients/{number}", "investigator") as page:
        page.get_by_label("Calendar day 1 (start date; can be set later)").fill("2026-11-21")
        page.get_by_label("Your password (electronic signature)").fill("investigator-demo")
        page.get_by_role("button", name="Sign and enrol").click()
        page.wait_for_url(f"**/patients/{number}#enrolment")
        enrolment = page.locator("#enrolment").inner_text()
        assert "Enrolled in RuMCeSS, arm MSC" in enrolment
        assert "randomised 2026-11-21 12:00+00:00 to arm MSC" in enrolment
        assert "Eligibility signed: Demo Investigator (investigator)" in enrolment
        page.get_by_role("link", name="Calendar and doses").click()
        page.wait_for_url(f"**/patients/{number}/calendar")
        msc = page.locator("#ev-msc-infusion").inner_text()
        assert "MSC infusion within 10 h of septic shock onset" in msc
        assert "2026-11-21T16:00 (deadline)" in msc and "71 × 10⁶ – 142 × 10⁶ cells" in msc
        assert "No released product (240 min to the deadline)" in msc

    # The cell lab's released MSC dose for this patient (made through the services).
    dose = _released_msc_dose(web, number, weight_kg=71)
    _at(web, "2026-11-21T13:30:00")
    with person(chromium, server, f"/patients/{number}/calendar", "coordinator") as page:
        msc = page.locator("#ev-msc-infusion").inner_text()
        assert "Released product available (150 min to the deadline)" in msc
        page.locator("#ev-msc-infusion").get_by_role("link", name="bedside check").click()
        page.wait_for_url(f"**/patients/{number}/bedside*")
        assert f"Released product available: {dose}" in page.locator("main").inner_text()
        page.get_by_label("Product identifier").press_sequentially(dose)
        page.get_by_label("Patient identifier on the wristband").press_sequentially(number)
        page.get_by_label("Second verifier's user name").fill("investigator")
        page.get_by_label("Second verifier's password").fill("investigator-demo")
        page.get_by_role("button", name="Verify").click()
        accepted = page.get_by_role("status").inner_text()
        assert f"Accepted. {dose} for {number}" in accepted
        assert "1.5e+06 cells/kg at 71.0 kg" in accepted
        assert "Verified by coordinator and investigator" in accepted
        assert "150 minutes left to the deadline 2026-11-21T16:00." in page.inner_text("main")
        page.get_by_label("Infusion start").fill("2026-11-21T13:30")
        page.get_by_label("Volume infused (mL)").fill("50")
        page.get_by_role("button", name="Record the infusion").click()
        page.wait_for_url(f"**/patients/{number}/calendar*")
        msc = page.locator("#ev-msc-infusion").inner_text()
        # 1.5 ×10⁶ cells/kg × 71 kg, within the planned 1-2 ×10⁶/kg
        assert "given" in msc and "actual 106.5 × 10⁶ cells; by Demo Coordinator" in msc
        # Given at 13:30, before the 16:00 deadline: not out of its window.
        assert "2026-11-21T16:00 (deadline)" in msc and "out of window" not in msc
        page.screenshot(path=str(output_dir / "e2e-ru-2-infused.png"), full_page=True)


def _released_msc_dose(web: Any, patient: str, *, weight_kg: float) -> str:
    """A third-party MSC lot, released (exceptionally), banked and thawed as this patient's dose of
    1.5 ×10⁶ cells/kg (the cell lab's steps, through the services)."""
    from trialdesk.cellproduct.product import Counts
    from trialdesk.services import cellproduct as cp
    from trialdesk.services.accounts import principal_for
    from trialdesk.services.context import Services

    ctx = Services.open(web.store)
    pharm = principal_for(web.store, "pharmacist")
    donation = cp.record_collection(
        ctx, pharm, trial_id="RuMCeSS", spec_id="msc-donation", facility="A9999",
        code="S0101A", collected_at=datetime(2026, 11, 1, 9), procedure="bone marrow",
        donor="MSC-BANK-17", reason="bank donation")["id"]
    lot = cp.derive_product(ctx, pharm, donation, spec_id="msc-lot", code="S0102A",
                            prepared_at=datetime(2026, 11, 2, 9), reason="expanded")["id"]
    for test_id, value, unit in [("viability", 95, "%"), ("msc_identity", 97, "% of viable cells"),
                                 ("sterility", "no growth", None), ("endotoxin", 0.2, "EU/mL"),
                                 ("mycoplasma", "negative", None)]:
        cp.record_test_result(ctx, pharm, lot, test_id=test_id, value=value, unit=unit,
                              tested_at=datetime(2026, 11, 3, 9), reason="QC")
    # RuMCeSS sets no release limit yet (unconfirmed), so the lot cannot pass a normal
    # release: it is released exceptionally, signed by the pharmacist and the investigator.
    decision = cp.exceptional_release(
        ctx, pharm, "pharmacist-demo", principal_for(web.store, "investigator"),
        "investigator-demo", lot, justification="release limits not yet set by the protocol",
        reason="exceptional release")
    assert decision["released"] and decision["exceptional"], decision
    aliquot = cp.derive_product(ctx, pharm, lot, spec_id="msc-aliquot", code="S0103A",
                                division=0, prepared_at=datetime(2026, 11, 4, 9),
                                reason="banked")["id"]
    return str(cp.derive_product(ctx, pharm, aliquot, spec_id="msc-dose", code="S0104A",
                                 recipient=patient, prepared_at=datetime(2026, 11, 21, 11),
                                 counts=Counts(viable_cells=1.5e6 * weight_kg),
                                 # RuMCeSS sets no shelf life yet: the expiry is the one
                                 # printed on this test's bag label (test data).
                                 expires_at=datetime(2026, 11, 21, 17),
                                 reason="thawed")["id"])
