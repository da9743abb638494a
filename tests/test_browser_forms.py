"""In a real browser on a phone-sized screen (390 px): a coordinator registers a new
6-year-old NB-NK-2026 patient with refractory disease by typing into the labelled fields of
the trial's form — no JSON — and the screening shows eligible, arm A. The pages have no
horizontal overflow and no axe-core violations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from test_browser import live_server  # noqa: F401  (the fixture)
from trialdesk.forms.build import patient_form
from trialdesk.protocol.load import default_protocol_dir, load_protocol

FORM = patient_form(load_protocol(default_protocol_dir() / "nb-nk-2026.yaml"))
SAMPLE = "2026-11-16"
# What the coordinator types, field by field (the NB-NK-2026 refractory example,
# examples/patients/nb-refractory.json, for a child born 2020-05-10: 6 years old on the
# test server's day, 2026-11-21).
TYPED: dict[str, str] = {
    "birth_date": "2020-05-10", "sex": "female", "childbearing_potential": "no",
    "primary_diagnosis": "neuroblastoma", "diagnosis_confirmation": "histological",
    "risk_group": "high", "risk_system": "GPOH-NB2004", "diagnosis_date": "2025-09-02",
    "disease_status": "refractory", "induction_cycles_completed": "6",
    "end_induction_response": "SD", "staging_complete": "yes", "cns_involvement": "no",
    "disease_date": "2026-10-28",
    "alt": "38", "ast": "52", "creatinine": "35", "pti": "92", "aptt": "31.5",
    "lansky": "80", "life_expectancy": "26", "drug_induced_neuropathy": "no",
    "neuropathic_pain": "no", "height": "118", "heart_failure_signs": "no", "lvef": "64",
    "spo2_room_air": "98", "dyspnoea_at_rest": "no", "chest_xray_abnormal": "no",
    "ckd_stage": "0", "rifle_class": "none", "consent_signed": "yes",
    "attest.e6": "no", "attest.comorbidity_precluding_treatment": "no", "attest.e8": "no",
    "severe_type1_hypersensitivity_history": "no", "mental_illness_preventing_understanding": "no",
}
RANGES = {"alt": ("5", "45"), "ast": ("10", "50"), "creatinine": ("20", "50")}
DATES = {"consent_signed": "2026-11-18", "lvef": "2026-11-10", "chest_xray_abnormal": "2026-11-10"}


def _enter(page: Any, label: str, value: str) -> None:
    field = page.get_by_label(label, exact=True)
    if field.evaluate("el => el.tagName") == "SELECT":
        field.select_option(value)
    else:
        field.fill(value)


@contextmanager
def phone(chromium: Any) -> Iterator[Any]:
    """A page on a phone-sized screen (390 × 844 px)."""
    context = chromium.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()


def _no_overflow(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{page.url} is {width} px wide"


def _no_axe_violations(page: Any) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    assert results.violations_count == 0, results.generate_report()


def login(page: Any, server: str, path: str, user: str = "coordinator") -> None:
    page.goto(f"{server}/login?next={path}")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(f"{user}-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"**{path}")


def type_patient(page: Any, typed: dict[str, str]) -> None:
    """Type the site and ``typed`` (field name -> value) with each value's date, range and
    unit into the NB-NK-2026 form as a person would, label by label."""
    site = page.locator("#site")
    if site.evaluate("el => el.tagName") == "SELECT":
        site.select_option("Moscow")
    else:
        site.fill("Moscow")
    for name, value in typed.items():
        f = FORM.field(name)
        _enter(page, f.label, value)
        if f.dated:
            _enter(page, f"{f.label}: {'date of the sample' if f.reference_range else 'date'}",
                   DATES.get(name, SAMPLE))
        if name in RANGES:
            _enter(page, f"{f.label}: reference range, low", RANGES[name][0])
            _enter(page, f"{f.label}: reference range, high", RANGES[name][1])
    _enter(page, "Serum creatinine: unit", "umol/L")
    _enter(page, "Expected life expectancy: unit", "week")
    _enter(page, "Consent form version", "1.0")
    _enter(page, "Consent signed by", "parent")


def test_register_a_child_by_form_on_a_phone(chromium: Any, live_server: str,  # noqa: F811
                                            output_dir: Path) -> None:
    with phone(chromium) as page:
        login(page, live_server, "/patients")
        page.get_by_role("link", name="New patient for NB-NK-2026").click()
        page.wait_for_url("**/trials/NB-NK-2026/patients/new")
        _no_overflow(page)
        _no_axe_violations(page)
        assert page.locator("textarea").count() == 0  # no JSON box
        # The investigator's questions, each finding asked by its question text.
        questions = page.locator("#section-questions")
        assert "make it impossible to understand the study" in questions.inner_text()
        assert "severe type I (immediate) hypersensitivity" in questions.inner_text()
        type_patient(page, TYPED)
        page.screenshot(path=str(output_dir / "forms-1-new-patient-390.png"), full_page=True)
        page.get_by_role("button", name="Save and screen").click()
        page.wait_for_url("**/form")
        assert page.locator("#verdict").inner_text() == "eligible"
        assert page.locator("#arm").inner_text() == "A"
        # An exclusion criterion not met is good news, not red.
        e9 = page.locator("li", has_text="E9").locator(".badge")
        assert e9.inner_text() == "does not apply"
        assert e9.evaluate("el => getComputedStyle(el).color") == "rgb(26, 127, 55)"
        _no_overflow(page)
        _no_axe_violations(page)
        page.screenshot(path=str(output_dir / "forms-2-saved-390.png"), full_page=True)

        number = page.url.split("/")[-2]
        page.goto(f"{live_server}/patients/{number}")
        facts = page.locator("table.facts-table", has_text="Laboratory results")
        assert "35 µmol/L" in facts.inner_text()
        _no_overflow(page)
        _no_axe_violations(page)


def test_screen_page_and_an_out_of_date_screening_on_a_phone(chromium: Any,
                                                            live_server: str) -> None:  # noqa: F811
    with phone(chromium) as page:
        login(page, live_server, "/screen?trial_id=NB-NK-2026")
        assert page.get_by_role("link", name="Type the patient into the NB-NK-2026 form"
                                ).is_visible()
        _no_overflow(page)
        _no_axe_violations(page)
        # Registered without the consent (screened), then the consent recorded: the
        # screening is out of date, said in words with the button to screen again.
        page.get_by_role("link", name="Type the patient into the NB-NK-2026 form").click()
        page.wait_for_url("**/trials/NB-NK-2026/patients/new")
        type_patient(page, {k: v for k, v in TYPED.items() if k != "consent_signed"})
        page.get_by_role("button", name="Save and screen").click()
        page.wait_for_url("**/form")
        number = page.url.split("/")[-2]
        page.goto(f"{live_server}/patients/{number}")
        page.get_by_label("Consent form version").fill("1.0")
        page.get_by_label("Signed on").fill("2026-11-18")
        page.get_by_label("Signed by").select_option("parent")
        page.get_by_role("button", name="Record consent").click()
        page.wait_for_url(f"**/patients/{number}*")
        stale = page.locator("#screening-out-of-date").inner_text()
        assert "is older than the record changed on 2026-11-21 12:00" in stale
        assert page.get_by_role("button", name="Sign and enrol").count() == 0
        _no_overflow(page)
        _no_axe_violations(page)
        page.get_by_role("button", name="Screen again on the current record").click()
        page.wait_for_url(f"**/patients/{number}*")
        assert page.locator("#screening-out-of-date").count() == 0
        assert page.get_by_role("button", name="Sign and enrol").count() == 0  # coordinator
        assert "Not enrolled." in page.locator("#enrolment").inner_text()
