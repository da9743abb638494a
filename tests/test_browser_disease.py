"""In a real browser on a phone-sized screen (390 px): a coordinator registers a 6-year-old
NB-NK-2026 patient whose refractory disease is entered as what happened — two induction
blocks (N5, N6; 3 cycles each) and the end-of-induction assessment (INRC 2017 SD) — not as a
status label; "add another" gives one more row without JavaScript; the screening is
eligible, arm A (seed 000 I3: 6 cycles of N5/N6 with MR or SD), and the derivation is shown
on the form and the patient page. No horizontal overflow, no axe-core violations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_browser import live_server  # noqa: F401  (the fixture)
from test_browser_forms import TYPED, _enter, _no_axe_violations, _no_overflow, login, phone, type_patient

# The same child as the label-typing test, without the status labels.
STATED = {k: v for k, v in TYPED.items() if k not in (
    "disease_status", "induction_cycles_completed", "end_induction_response", "cns_involvement")}
ROWS = [
    ("Chemotherapy block 1: regimen", "N5"), ("Chemotherapy block 1: phase", "induction"),
    ("Chemotherapy block 1: cycles", "3"), ("Chemotherapy block 1: first day", "2025-09-20"),
    ("Chemotherapy block 1: last day", "2026-03-15"),
    ("Chemotherapy block 2: regimen", "N6"), ("Chemotherapy block 2: phase", "induction"),
    ("Chemotherapy block 2: cycles", "3"), ("Chemotherapy block 2: first day", "2026-03-16"),
    ("Chemotherapy block 2: last day", "2026-10-01"),
    ("Response assessment 1: date", "2026-10-20"),
    ("Response assessment 1: criteria", "INRC 2017"),
    ("Response assessment 1: overall response", "SD"),
]
DERIVATION = ("refractory: 6 cycles N5/N6 completed 2026-10-01, end-of-induction response SD "
              "on 2026-10-20")


def test_refractory_disease_entered_as_events_on_a_phone(chromium: Any,
                                                         live_server: str,  # noqa: F811
                                                         output_dir: Path) -> None:
    with phone(chromium) as page:
        login(page, live_server, "/trials/NB-NK-2026/patients/new")
        # "Add another" without JavaScript: a plain submit that keeps what was typed.
        _enter(page, "Chemotherapy block 1: regimen", "N5")
        assert page.get_by_label("Chemotherapy block 4: regimen", exact=True).count() == 0
        page.get_by_role("button", name="Add another chemotherapy block").click()
        page.get_by_label("Chemotherapy block 4: regimen", exact=True).wait_for()
        assert page.get_by_label("Chemotherapy block 1: regimen", exact=True).input_value() == "N5"
        _no_overflow(page)
        _no_axe_violations(page)

        type_patient(page, STATED)
        for label, value in ROWS:
            _enter(page, label, value)
        page.screenshot(path=str(output_dir / "disease-1-events-390.png"), full_page=True)
        page.get_by_role("button", name="Save and screen").click()
        page.wait_for_url("**/form")
        assert page.locator("#verdict").inner_text() == "eligible"
        assert page.locator("#arm").inner_text() == "A"
        derived = page.locator("table", has_text="Disease course and what it gives")
        assert DERIVATION in derived.inner_text()
        _no_overflow(page)
        _no_axe_violations(page)
        page.screenshot(path=str(output_dir / "disease-2-saved-390.png"), full_page=True)

        number = page.url.split("/")[-2]
        page.goto(f"{live_server}/patients/{number}")
        course = page.locator("table.facts-table", has_text="Disease course")
        text = course.inner_text()
        assert "Chemotherapy: N6" in text and DERIVATION in text
        _no_overflow(page)
        _no_axe_violations(page)
