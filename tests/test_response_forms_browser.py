"""In a real browser on a phone-sized screen (390 px): the investigator types an INRC 2017
assessment into the form (no JSON), sees the computed response and its reasoning (PR: the
known answer of test_response_forms), signs with the password, and finds it on the
responses page; the RECIST 1.1 form of the Refnot R-2 patient. No horizontal overflow, no
axe-core violations on any of these pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_browser import live_server  # noqa: F401  (the fixture)
from test_browser_forms import _enter, _no_axe_violations, _no_overflow, login, phone
from test_response_forms import INRC_PR
from trialdesk.forms.response import INRC_FIELDS

LABELS = {f.name: f.label for f in INRC_FIELDS}


def _checked(page: Any) -> None:
    _no_overflow(page)
    _no_axe_violations(page)


def test_inrc_form_preview_and_signature_on_a_phone(chromium: Any, live_server: str,  # noqa: F811
                                                    output_dir: Path) -> None:
    with phone(chromium) as page:
        login(page, live_server, "/patients/NBNK-0001/responses", user="investigator")
        page.get_by_role("link", name="INRC 2017 assessment").click()
        page.wait_for_url("**/responses/inrc/form")
        _checked(page)
        for name, value in INRC_PR.items():
            _enter(page, LABELS.get(name, "Date of the assessment"), value)
        page.get_by_role("button", name="Preview the response").click()
        page.locator("#overall").wait_for()
        assert page.locator("#overall").inner_text() == "PR"
        assert page.locator("#reasoning li").count() > 0
        _checked(page)
        page.screenshot(path=str(output_dir / "response-1-inrc-preview-390.png"), full_page=True)
        page.get_by_label("Your password (signature)").fill("investigator-demo")
        page.get_by_role("button", name="Sign and record").click()
        page.wait_for_url("**/patients/NBNK-0001/responses#latest")
        latest = page.locator("article.assessment").last
        assert "INRC 2017" in latest.inner_text() and "PR" in latest.inner_text()
        _checked(page)

        page.goto(f"{live_server}/patients/REFNOT-0002/responses/recist/form")
        assert page.get_by_label("Target lesion L1 (liver, ct): size now").count() == 1
        _checked(page)
