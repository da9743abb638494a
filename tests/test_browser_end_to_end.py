"""End to end in a real browser (Debian's chromium, headless, Playwright), each person on
their own screen, entirely through the pages by the labels they read — no JSON typed, no
internal id typed into an address (only links and redirects the application gives are
followed):

(a) NB-NK-2026: the coordinator registers a new 6-year-old child with refractory disease,
    all labs and findings; the investigator answers the investigator's questions (eligible,
    arm A) and signs eligibility and enrolment; the pharmacist signs course 1 with one
    signature; the nurse records the doses from their calendar rows (given, partly given,
    withheld); in course 2 the investigator records grade 3 neuralgia by choosing the CTCAE
    term, chooses one of the proposed actions and signs it; after course 2 an INRC PR is
    entered in the INRC form and the outcomes page shows it.
(b) RuMCeSS: a patient in septic shock with neutropenia registered by form, randomised, and
    the MSC infusion recorded before its deadline (the two-person bedside check, then the
    infusion).

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
from test_browser_forms import TYPED, _enter, login, type_patient
from test_response_forms import INRC_PR
from trialdesk.forms.response import INRC_FIELDS
from test_browser_forms import FORM

INRC_LABELS = {f.name: f.label for f in INRC_FIELDS}
# The investigator's questions of NB-NK-2026 (the form's labels are the questions).
QUESTIONS = {
    "attest.e6": "Has the patient had an acute intolerance reaction to irinotecan",
    "attest.e7": "Does the patient have complications or comorbidities that preclude",
    "attest.e8": "Does the patient need concomitant medication with known cross",
    "attest.e11": "Does a mental illness of the patient or the legal guardians",
}
# Everything the coordinator knows (TYPED of test_browser_forms without the questions).
COORDINATOR = {k: v for k, v in TYPED.items() if k not in QUESTIONS}


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
        type_patient(page, COORDINATOR)
        page.get_by_role("button", name="Save and screen").click()
        page.wait_for_url("**/patients/*/form")
        number = page.url.split("/")[-2]
        print(page.locator(".verdict-line").inner_text())
        page.screenshot(path=str(output_dir / "e2e-nb-1-registered.png"), full_page=True)
        # The signed consent form is recorded on the patient page (the form's consent
        # fields are facts for the criteria; enrolment needs the consent record).
        page.get_by_role("link", name=number).click()
        page.wait_for_url(f"**/patients/{number}")
        page.get_by_label("Consent form version").fill("1.0")
        page.get_by_label("Signed on").fill("2026-11-18")
        page.get_by_label("Signed by").select_option("parent")
        page.get_by_role("button", name="Record consent").click()
        page.wait_for_url(f"**/patients/{number}*")
        print(page.locator("#consent").inner_text())

    # The investigator answers the questions: eligible, arm A; signs eligibility and enrols.
    with person(chromium, server, f"/patients/{number}/form", "investigator") as page:
        for fact in QUESTIONS:
            label = FORM.field(fact).label
            _enter(page, label, "no")
            _enter(page, f"{label}: date", "2026-11-21")
        page.get_by_label("Reason for the change", exact=False).fill(
            "investigator's questions answered at the screening visit")
        page.get_by_role("button", name="Save and screen").click()
        page.wait_for_url(f"**/patients/{number}/form")
        print(page.locator(".verdict-line").inner_text())
        page.screenshot(path=str(output_dir / "e2e-nb-2-questions.png"), full_page=True)
        assert page.locator("#verdict").inner_text() == "eligible"
        assert page.locator("#arm").inner_text() == "A"
        page.get_by_role("link", name=number).click()
        page.wait_for_url(f"**/patients/{number}")
        # Day 1 is set on the calendar once the child is weighed (the registration form
        # asks no weight: NB-NK-2026's criteria do not read it).
        page.get_by_label("Your password (electronic signature)").fill("investigator-demo")
        page.get_by_role("button", name="Sign and enrol").click()
        page.wait_for_url(f"**/patients/{number}#enrolment")
        enrolment = page.locator("#enrolment").inner_text()
        assert f"Enrolled in NB-NK-2026, arm A" in enrolment
        assert "Eligibility signed: Demo Investigator (investigator)" in enrolment
        assert "I confirm the patient is eligible" in enrolment
        assert "bound to screening" in enrolment
        page.get_by_role("link", name="Calendar and doses").click()
        page.wait_for_url(f"**/patients/{number}/calendar")
        page.get_by_label("Measured on").fill("2026-11-21")
        page.get_by_label("Weight (kg)").fill("20.5")
        page.get_by_label("Height (cm)").fill("118")
        page.get_by_role("button", name="Record", exact=True).click()
        page.wait_for_url(f"**/patients/{number}/calendar*")
        page.get_by_label("Day 1 (start date)").fill("2026-11-21")
        page.get_by_role("button", name="Save settings").click()
        page.wait_for_url(f"**/patients/{number}/calendar*")
        print(page.locator("main").inner_text()[:4000])
        page.screenshot(path=str(output_dir / "e2e-nb-3-calendar.png"), full_page=True)
