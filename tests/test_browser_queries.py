"""In a real browser on a phone-sized screen (390 px), through the pages only: a monitor
opens a data query on a lab value of NBNK-0001 (serum creatinine 35 µmol/L in the demo
file, examples/patients/nb-refractory.json), the coordinator finds it on the worklist and
corrects the value with a reason, the monitor closes the query and marks the laboratory
form source-verified; the trial's audit trail page shows each step. Every new page has no
horizontal overflow and no axe-core violations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_browser import live_server  # noqa: F401  (the fixture)
from test_browser_forms import _no_axe_violations, _no_overflow


def _login(chromium: Any, server: str, user: str) -> tuple[Any, Any]:
    context = chromium.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{server}/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(f"{user}-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server}/")
    return context, page


def _checked(page: Any) -> None:
    _no_overflow(page)
    _no_axe_violations(page)


def test_a_query_from_opening_to_verification(chromium: Any, live_server: str,  # noqa: F811
                                              output_dir: Path) -> None:
    server = live_server
    monitor, mpage = _login(chromium, server, "monitor")
    coordinator, cpage = _login(chromium, server, "coordinator")
    try:
        # The monitor's worklist is empty; the patient's forms page shows the stored value.
        assert "No answered query awaits review." in mpage.content()
        _checked(mpage)
        mpage.goto(f"{server}/patients/NBNK-0001")
        mpage.get_by_role("link", name="Forms and data queries").click()
        mpage.wait_for_url("**/monitoring")
        _checked(mpage)
        lab = mpage.locator("#form-lab")
        assert "35 µmol/L (on 2026-11-16)" in lab.inner_text()
        lab.get_by_text("Open a data query on Laboratory results").click()
        lab.get_by_label("Field").select_option(label="Serum creatinine")
        lab.get_by_label("Question").fill("The lab report says 53 µmol/L; please check.")
        lab.get_by_role("button", name="Open the query").click()
        mpage.wait_for_url("**/queries/*")
        query_url = mpage.url
        assert "open, waiting for the site" in mpage.content()
        _checked(mpage)
        mpage.screenshot(path=str(output_dir / "queries-1-opened-390.png"), full_page=True)

        # The coordinator finds it on the worklist and corrects the value with a reason.
        cpage.reload()
        _checked(cpage)  # the coordinator's worklist: assessments, overdue events, queries
        cpage.get_by_role("link", name="Laboratory results — Serum creatinine: The lab "
                                        "report says 53 µmol/L; please check.").click()
        cpage.wait_for_url(query_url)
        _checked(cpage)
        cpage.get_by_label("Corrected value of Serum creatinine", exact=False).fill("53")
        cpage.get_by_label("Reason for the change").fill("transcription error")
        cpage.get_by_role("button", name="Correct and answer").click()
        cpage.wait_for_url(query_url)
        assert "answered, waiting for the monitor" in cpage.content()
        assert "value now 53 µmol/L (on 2026-11-16)" in cpage.content()
        # The site marks the laboratory form complete.
        cpage.get_by_role("link", name="Forms and queries").click()
        cpage.wait_for_url("**/monitoring#form-lab")
        form = cpage.locator("#form-lab")
        form.get_by_label("Status of Laboratory results").select_option("complete")
        form.get_by_label("Reason").fill("all results entered")
        form.get_by_role("button", name="Set the status").click()
        cpage.wait_for_url("**/monitoring#form-lab")

        # The monitor closes the query from the worklist and verifies the form.
        mpage.goto(f"{server}/")
        mpage.get_by_role("link", name="Laboratory results — Serum creatinine", exact=False
                          ).click()
        mpage.wait_for_url(query_url)
        mpage.get_by_label("Note").fill("matches the lab report")
        mpage.get_by_role("button", name="Close").click()
        mpage.wait_for_url(query_url)
        assert mpage.locator(".badge.query-closed").inner_text() == "closed"
        mpage.get_by_role("link", name="Forms and queries").click()
        form = mpage.locator("#form-lab")
        form.get_by_label("Status of Laboratory results").select_option("verified")
        form.get_by_label("Reason").fill("source data verified against the lab report")
        form.get_by_role("button", name="Set the status").click()
        mpage.wait_for_url("**/monitoring#form-lab")
        assert mpage.locator("#form-lab .badge").inner_text() == "source-verified"
        _checked(mpage)
        mpage.screenshot(path=str(output_dir / "queries-2-verified-390.png"), full_page=True)

        # The audit trail shows each step.
        mpage.goto(f"{server}/trials/NB-NK-2026/audit")
        rows = mpage.locator("table.audit tbody tr").all_inner_texts()[:6]
        assert [r.split("\t")[3] for r in rows] == [
            "form_status", "query_close", "form_status", "query_correct", "update",
            "query_open"]
        assert "transcription error" in rows[3] and "53 µmol/L" in rows[3]
        assert "matches the lab report" in rows[1]
        assert "incomplete → complete" in rows[2]
        assert "complete → verified" in rows[0]
    finally:
        monitor.close()
        coordinator.close()


def test_a_query_on_an_adverse_event(chromium: Any, live_server: str,  # noqa: F811
                                     output_dir: Path) -> None:
    """The monitor queries the grade of NBNK-0001's catheter related infection (grade 2 in
    the demo); the coordinator corrects it to 3 with a reason, through the labels."""
    server = live_server
    monitor, mpage = _login(chromium, server, "monitor")
    coordinator, cpage = _login(chromium, server, "coordinator")
    try:
        mpage.goto(f"{server}/patients/NBNK-0001/monitoring")
        event = mpage.locator("article.form-review", has_text="Catheter related infection")
        assert "Adverse event" in event.locator("h3").inner_text()
        event.get_by_text("Open a data query on Adverse event", exact=False).click()
        event.get_by_label("Field").select_option(label="Grade")
        event.get_by_label("Question").fill("IV antibiotics in the chart: grade 3?")
        event.get_by_role("button", name="Open the query").click()
        mpage.wait_for_url("**/queries/*")
        query_url = mpage.url
        assert "Value seen" in mpage.content() and "open, waiting for the site" in mpage.content()
        _checked(mpage)

        cpage.goto(query_url)
        cpage.get_by_label("Corrected value of Grade", exact=False).fill("three")
        cpage.get_by_label("Reason for the change").fill("IV antibiotics given")
        cpage.get_by_role("button", name="Correct and answer").click()
        assert "Grade: enter a whole number from 1 to 5" in cpage.content()
        cpage.get_by_label("Corrected value of Grade", exact=False).fill("3")
        cpage.get_by_role("button", name="Correct and answer").click()
        cpage.wait_for_url(query_url)
        assert "answered, waiting for the monitor" in cpage.content()
        assert "value now 3" in cpage.content()
        _checked(cpage)
        cpage.screenshot(path=str(output_dir / "queries-3-adverse-event-390.png"),
                         full_page=True)
        cpage.goto(f"{server}/patients/NBNK-0001/adverse-events")
        assert "Catheter related infection — grade 3" in cpage.content()
    finally:
        monitor.close()
        coordinator.close()
