"""In a real browser (Debian's chromium, headless, driven by Playwright): log in, search the
registry, open NB-NK-2026, screen a patient and see the unknowns. Screenshots go to the
tests' output directory (``out/tests/``) for a reviewer."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def live_server(tmp_path: Path, demo_database: Path) -> Iterator[str]:
    with serve(tmp_path, demo_database) as url:
        yield url


@contextmanager
def serve(tmp_path: Path, demo_database: Path, days_later: float = 0) -> Iterator[str]:
    """The demo application on a loopback port (its clock ``days_later`` days on)."""
    with serve_app(tmp_path, demo_database, days_later) as (url, _):
        yield url


@contextmanager
def serve_app(tmp_path: Path, demo_database: Path,
              days_later: float = 0) -> Iterator[tuple[str, Any]]:
    """The demo application on a loopback port and its ``WebApp`` (its clock, its store)."""
    import uvicorn

    from conftest import WebApp

    target = tmp_path / "trialdesk.db"
    shutil.copyfile(demo_database, target)
    web = WebApp(f"sqlite:///{target}", seed=False)
    if days_later:
        web.clock.advance(days=days_later)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(web.app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", web
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        web.store.close()


def test_log_in_search_open_the_trial_and_screen_a_patient(chromium: Any, live_server: str,
                                                           output_dir: Path) -> None:
    # A tablet in landscape.
    context = chromium.new_context(viewport={"width": 1024, "height": 768})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(f"{live_server}/login")
        page.get_by_label("User name").fill("investigator")
        page.get_by_label("Password").fill("investigator-demo")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server}/")  # the worklist is the home page
        page.get_by_role("link", name="Trials", exact=True).click()
        page.wait_for_url("**/trials")
        assert "Demo Investigator" in page.inner_text("header")

        page.get_by_label("Condition").fill("neuroblastoma")
        page.get_by_label("Phase").select_option("PHASE3")
        page.get_by_role("button", name="Search").click()
        page.wait_for_url("**/trials?*")
        assert "1 trial found" in page.inner_text("main")
        page.screenshot(path=str(output_dir / "browser-1-search.png"), full_page=True)

        page.get_by_role("link", name="Chemoimmunotherapy").first.click()
        page.wait_for_url("**/trials/NB-NK-2026")
        assert page.get_by_role("heading", name="Inclusion criteria").is_visible()
        assert "NCT07375563" in page.inner_text("main")
        page.screenshot(path=str(output_dir / "browser-2-trial.png"))

        page.get_by_role("link", name="Screen a patient for this trial").click()
        page.wait_for_url("**/screen?trial_id=NB-NK-2026")
        # A person is led to the trial's typed form; "Check without saving" stores nothing.
        page.get_by_role("link", name="Type the patient into the NB-NK-2026 form").click()
        page.wait_for_url("**/trials/NB-NK-2026/patients/new")
        from test_browser_forms import FORM, _enter

        _enter(page, "Site", "Moscow")
        for name, value in {"birth_date": "2019-04-12", "sex": "female",
                            "primary_diagnosis": "neuroblastoma", "risk_group": "high",
                            "disease_status": "refractory", "disease_date": "2026-10-28"}.items():
            _enter(page, FORM.field(name).label, value)
        page.get_by_role("button", name="Check without saving").click()
        page.locator("#verdict").wait_for()
        assert page.locator("#verdict").inner_text() == "undetermined"
        consent = page.locator("#section-consent li").first
        assert "unknown" in consent.inner_text()
        page.screenshot(path=str(output_dir / "browser-3-typed-form-check.png"))
        # A system's patient file (JSON) goes through the labelled bulk path instead.
        record = json.loads((Path(__file__).resolve().parents[1] / "examples" / "patients" /
                             "nb-refractory.json").read_text())
        del record["consents"]
        page.goto(f"{page.url.split('/trials/')[0]}/screen?trial_id=NB-NK-2026")
        bulk = page.get_by_role("region", name="For systems: upload a patient file (JSON)")
        bulk.get_by_label("Patient file (JSON)").set_input_files(files=[{
            "name": "patient.json", "mimeType": "application/json",
            "buffer": json.dumps(record).encode()}])
        bulk.get_by_label("Screening date and time").fill("2026-11-21T12:00")
        bulk.get_by_role("button", name="Screen the file").click()
        page.wait_for_selector("#results")
        result = page.locator("section.result").first
        assert "undetermined" in result.inner_text()
        unknowns = page.locator(".unknowns").first
        assert unknowns.is_visible()
        assert "consent_signed" in unknowns.inner_text()
        # Colour, not only text: an unknown criterion row has the unknown background.
        colour = page.locator("tr.outcome-unknown").first.locator("td").first.evaluate(
            "el => getComputedStyle(el).backgroundColor")
        assert colour == "rgb(255, 243, 196)"
        page.locator("#results").scroll_into_view_if_needed()
        page.screenshot(path=str(output_dir / "browser-3-screening.png"))
    finally:
        context.close()


def test_enrol_see_the_calendar_and_enter_an_adverse_event(chromium: Any, live_server: str,
                                                           output_dir: Path) -> None:
    context = chromium.new_context(viewport={"width": 1024, "height": 768})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("dialog", lambda dialog: dialog.accept())  # "Sign electronically?"
    try:
        page.goto(f"{live_server}/login?next=/patients/NBNK-0002")
        page.get_by_label("User name").fill("investigator")
        page.get_by_label("Password").fill("investigator-demo")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/patients/NBNK-0002")
        assert "Form version 1.0 signed 2026-11-18" in page.inner_text("#consent")

        page.get_by_label("Calendar day 1 (start date; can be set later)").fill("2026-11-21")
        page.get_by_label("Your password (electronic signature)").fill("investigator-demo")
        page.get_by_role("button", name="Sign and enrol").click()
        page.wait_for_url("**/patients/NBNK-0002#enrolment")
        enrolment = page.inner_text("#enrolment")
        assert "arm B" in enrolment and "I confirm the patient is eligible" in enrolment
        page.screenshot(path=str(output_dir / "browser-4-enrolled.png"))

        page.get_by_role("link", name="Calendar and doses").click()
        page.wait_for_url("**/patients/NBNK-0002/calendar")
        assert page.locator("ol.timeline li").count() >= 6
        row = page.locator("tr#ev-c1\\.irinotecan\\.d1")
        assert "51.5 mg/day" in row.inner_text() and "[unconfirmed]" in row.inner_text()
        page.screenshot(path=str(output_dir / "browser-5-calendar.png"))
        row.scroll_into_view_if_needed()
        page.screenshot(path=str(output_dir / "browser-5b-doses.png"))

        page.get_by_role("link", name="Adverse events").first.click()
        page.wait_for_url("**/patients/NBNK-0002/adverse-events")
        page.get_by_label("Term (CTCAE v5.0, or free text with its MedDRA term)").fill(
            "Catheter related infection")
        page.get_by_label("Grade", exact=True).select_option("2")
        page.get_by_label("Onset date", exact=True).fill("2026-11-21")
        page.get_by_role("button", name="Record and check the protocol rules").click()
        page.wait_for_url("**/adverse-events#latest")
        proposed = page.locator("section.ae").last
        text = proposed.inner_text()
        assert "Catheter related infection — grade 2" in text
        assert "NBNK-LINE-INFECTION" in text and "supportive care" in text
        proposed.scroll_into_view_if_needed()
        page.screenshot(path=str(output_dir / "browser-6-adverse-event.png"))
    finally:
        context.close()
