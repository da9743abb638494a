"""In a real browser on a phone-sized screen (390 px), through forms only: the pharmacist
signs all the doses of course 1 with one signature, and a nurse records a dose from its
calendar row — the weight typed has changed by more than the protocol's threshold, so the
recomputed dose is shown before it is saved. No horizontal overflow, no axe-core
violations on any of these pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_browser import live_server  # noqa: F401  (the fixture)
from test_browser_forms import _enter, _no_axe_violations, _no_overflow, login, phone

PATIENT = "NBNK-0001"


def _checked(page: Any) -> None:
    _no_overflow(page)
    _no_axe_violations(page)


def test_course_sign_off_and_a_dose_from_its_row_on_a_phone(chromium: Any,
                                                            live_server: str,  # noqa: F811
                                                            output_dir: Path) -> None:
    with phone(chromium) as page:
        login(page, live_server, f"/patients/{PATIENT}/calendar", user="pharmacist")
        _checked(page)
        page.get_by_role("link", name="Course 1 doses and their working: sign off").click()
        page.wait_for_url("**/courses/1/sign-off")
        _checked(page)
        assert page.get_by_label("All 10 doses of course 1 (one signature)").is_checked()
        page.get_by_label("Your password (electronic signature)").fill("pharmacist-demo")
        page.get_by_role("button", name="Sign").click()
        page.wait_for_url("**/courses/1/sign-off#signed")
        assert "Every dose of course 1 is signed" in page.locator("#all-signed").inner_text()
        assert "matches the doses now" in page.locator("#signed").inner_text()
        _checked(page)
        page.screenshot(path=str(output_dir / "course-1-signed-390.png"), full_page=True)

    with phone(chromium) as page:
        login(page, live_server, f"/patients/{PATIENT}/calendar", user="coordinator")
        row = page.locator("#ev-c1\\.irinotecan\\.d2")
        assert "(course 1 signature)" in row.inner_text()
        row.get_by_role("link", name="Given: irinotecan IV, 2026-11-22", exact=True).click()
        page.wait_for_url("**/calendar/doses/c1.irinotecan.d2?status=given")
        _checked(page)
        for label, value in (("Actual dose", "42"), ("Start time", "2026-11-21T09:00"),
                             ("Stop time", "2026-11-21T10:00"), ("Infusion duration", "1"),
                             ("Infusion volume", "100"), ("Infusion rate", "100"),
                             ("Lot number", "IRI-2026-117"), ("Weight on the day", "25"),
                             ("Height on the day", "118"),
                             ("Date weight and height were measured", "2026-11-21")):
            _enter(page, label, value)
        page.get_by_role("button", name="Record").click()
        page.locator("#recomputed-dose").wait_for()
        assert page.locator("#recomputed-dose").inner_text() == "45.5 mg/day"
        _checked(page)
        page.screenshot(path=str(output_dir / "dose-recompute-preview-390.png"), full_page=True)
        page.get_by_role("button", name="Record with this weight").click()
        page.wait_for_url("**/calendar#ev-c1.irinotecan.d2")
        row = page.locator("#ev-c1\\.irinotecan\\.d2")
        text = row.inner_text()
        assert "given" in text and "actual 42 mg" in text
        # Weighed on course 1's first day: the course's doses were recomputed, so the course
        # signature no longer matches them.
        assert "45.5 mg/day" in text and "dose changed since signing" in text
        _checked(page)
        # The dose was 40 mg by the pump's log: corrected on its page, with a reason.
        page.goto(f"{live_server}/patients/{PATIENT}/calendar/doses/c1.irinotecan.d2")
        assert page.get_by_role("heading", name="Correct this record").is_visible()
        _checked(page)
        assert page.get_by_label("Lot number").input_value() == "IRI-2026-117"
        _enter(page, "Actual dose", "40")
        page.get_by_label("Reason for the correction").fill("the pump's log says 40 mg")
        page.get_by_role("button", name="Save the correction").click()
        page.wait_for_url("**/calendar#ev-c1.irinotecan.d2")
        assert "actual 40 mg" in page.locator("#ev-c1\\.irinotecan\\.d2").inner_text()
