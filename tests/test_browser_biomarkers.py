"""In a real browser (Debian's chromium, headless, Playwright) on a 390 px phone: a
coordinator opens the calendar of a RuMCeSS patient randomised to MSC, records the serum
sample taken before the MSC infusion from the event's "Record sample" link, then its IL-6
result from "Record result" — typed, with the unit chosen — and the calendar shows it.
The new pages have no horizontal overflow and no axe-core violations. Screenshots go to
``out/tests/``."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from test_browser_forms import _no_axe_violations, _no_overflow

PHONE = {"width": 390, "height": 844}
EVENT = "s1.before-msc-infusion"
ROW = '[id="ev-s1.before-msc-infusion"]'


def _msc_patient(web: Any) -> str:
    """A second RuMCeSS patient (the example file), enrolled through the services; the
    demo's sealed list (recorded seed) gives this one MSC."""
    from trialdesk.facts.patient import PatientRecord
    from trialdesk.protocol.load import default_protocol_dir
    from trialdesk.services import journeys, patients
    from trialdesk.services.demo import _who

    ctx = web.app.state.ctx
    coord, inv = _who(web.store, "coordinator"), _who(web.store, "investigator")
    data = json.loads((default_protocol_dir().parent / "examples" / "patients" /
                       "rumcess-eligible.json").read_text(encoding="utf-8"))
    row = patients.create_patient(ctx, coord, trial_id="RuMCeSS", site="Moscow",
                                  record=PatientRecord.model_validate(data), identifiers={},
                                  reason="referred")
    number = row.study_number
    journeys.record_consent(ctx, coord, number, version="1.0", signed_on=date(2026, 11, 21),
                            signed_by="legal_representative", assent=None, reason="consent")
    screening = patients.screen_patient(ctx, inv, number, as_of=datetime(2026, 11, 21, 12),
                                        reason="screening")
    journeys.enrol_patient(ctx, inv, number, screening_id=screening["id"],
                           password="investigator-demo", reason="enrolment",
                           start=date(2026, 11, 21))
    assert web.store.journey(number).arm == "MSC"
    return number


@pytest.fixture
def msc_server(web: Any) -> Iterator[tuple[Any, str, str]]:
    import uvicorn

    patient = _msc_patient(web)
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
        yield web, patient, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_il6_before_the_msc_infusion_on_a_phone(chromium: Any, msc_server: tuple[Any, str, str],
                                               output_dir: Path) -> None:
    web, patient, base = msc_server
    context = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(f"{base}/login?next=/patients/{patient}/calendar")
        page.get_by_label("User name").fill("coordinator")
        page.get_by_label("Password").fill("coordinator-demo")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"**/patients/{patient}/calendar")
        row = page.locator(ROW)
        assert "Sample: not taken" in row.inner_text()
        row.get_by_role("link", name="Record sample").click()
        page.wait_for_url("**/samples/new?event=*")
        _no_overflow(page)
        _no_axe_violations(page)
        assert page.get_by_label("Specimen").input_value() == "serum"  # the protocol's
        page.get_by_label("Sample identifier (as on the tube label)").fill("RU-0002-PRE")
        page.get_by_label("Collected at (date and time)").fill("2026-11-21T08:15")
        page.get_by_label("Storage location (e.g. −80 °C, box 3, position 14)").fill(
            "-80 C, box 1, position 2")
        page.get_by_role("button", name="Record sample").click()
        page.wait_for_url(f"**/patients/{patient}/calendar*")
        row = page.locator(ROW)
        assert "Sample: taken, no result yet" in row.inner_text()
        row.get_by_role("link", name="Record result").click()
        page.wait_for_url("**/samples/RU-0002-PRE/results/new")
        _no_overflow(page)
        page.get_by_label("Which result").select_option(label="Interleukin-6")
        page.get_by_role("button", name="Choose").click()
        page.wait_for_url("**/results/new?fact=il6")
        _no_overflow(page)
        _no_axe_violations(page)
        page.get_by_label("Interleukin-6").fill("twelve")  # refused in words, by its label
        page.get_by_role("button", name="Record result").click()
        alert = page.get_by_role("alert")
        assert "Interleukin-6: 'twelve' is not a number" in alert.inner_text()
        _no_overflow(page)
        _no_axe_violations(page)
        page.get_by_label("Interleukin-6").fill("450")
        page.get_by_label("Unit").select_option("pg/mL")
        page.get_by_label("Method").fill("ELISA")
        page.screenshot(path=str(output_dir / "biomarker-result-390.png"), full_page=True)
        page.get_by_role("button", name="Record result").click()
        page.wait_for_url(f"**/patients/{patient}/calendar*")
        row = page.locator(ROW)
        assert "Interleukin-6 450 pg/mL" in row.inner_text()
        record = web.store.patient(patient).record
        assert {"name": "il6", "value": 450.0, "unit": "pg/mL", "date": "2026-11-21",
                "ref_low": None, "ref_high": None} in record["observations"]
    finally:
        context.close()
