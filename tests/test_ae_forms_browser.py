"""In a real browser on a phone-sized screen (390 px), with no JSON typed: the investigator
records grade 3 neuralgia by typing part of the term and choosing the CTCAE term, sees the
grade texts and the course of the onset first, records it, then chooses one of the two
proposed actions (slow the infusion vs discontinue) and signs the decision. No horizontal
overflow and no axe-core violations on any step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from test_browser import serve
from test_browser_forms import _no_axe_violations, _no_overflow, login, phone


@pytest.fixture
def course_2_server(tmp_path: Path, demo_database: Path) -> Iterator[str]:
    """The demo application on 2026-12-13: NBNK-0001 is in course 2 (DIT)."""
    with serve(tmp_path, demo_database, days_later=22) as url:
        yield url


def _checked(page: Any) -> None:
    _no_overflow(page)
    _no_axe_violations(page)


def test_grade_3_neuralgia_by_term_then_one_action_chosen_and_signed(
        chromium: Any, course_2_server: str, output_dir: Path) -> None:
    with phone(chromium) as page:
        login(page, course_2_server, "/patients/NBNK-0001/adverse-events", user="investigator")
        _checked(page)
        form = page.locator("#record")
        form.get_by_label("Term (CTCAE v5.0, or free text with its MedDRA term)").fill("neuralg")
        form.get_by_label("Onset date", exact=True).fill("2026-12-12")
        form.get_by_role("button", name="Show the term's grades and the course").click()
        form.get_by_role("radio", name="Neuralgia — Nervous system disorders; MedDRA 10029223"
                         ).check()
        _checked(page)
        form.get_by_role("button", name="Show the term's grades and the course").click()
        card = page.locator("#term-card")
        card.wait_for()
        assert "MedDRA LLT 10029223; SOC Nervous system disorders" in card.inner_text()
        assert "course 2 (DIT, 2026-12-12 → 2027-01-01)" in page.locator("#course").inner_text()
        form.get_by_role("radio", name="Grade 3: Severe pain; limiting self care ADL").check()
        _checked(page)
        page.screenshot(path=str(output_dir / "ae-1-neuralgia-grades-390.png"), full_page=True)
        form.get_by_role("button", name="Record and check the protocol rules").click()
        page.wait_for_url("**/adverse-events#latest")
        section = page.locator("section.ae").last
        assert "Neuralgia — grade 3" in section.inner_text()
        assert "Alternatives: choose one, or decline them all" in section.inner_text()
        _checked(page)
        slow = section.get_by_role("radio", name="Accept: slow the infusion of dinutuximab beta",
                                   exact=False)
        slow.check()
        section.get_by_role("group", name="Does this hold: pain is not controlled by "
                            "gabapentin, morphine and non-opioid analgesics?",
                            exact=False).get_by_role("radio", name="yes").check()
        section.get_by_label("Reason for the decision").fill(
            "pain not controlled on gabapentin and morphine")
        section.get_by_label("Your password (electronic signature)").fill("investigator-demo")
        page.once("dialog", lambda dialog: dialog.accept())  # "Sign electronically?"
        section.get_by_role("button", name="Sign the decision").click()
        page.wait_for_url("**/adverse-events#ae-*")
        section = page.locator("section.ae").last
        text = section.inner_text()
        assert "Accepted: Demo Investigator" in text
        assert "Declined: Demo Investigator" in text
        assert "Declined in favour of: slow the infusion of dinutuximab beta" in text
        _checked(page)
        page.screenshot(path=str(output_dir / "ae-2-action-signed-390.png"), full_page=True)
