"""What the pages keep between requests: a patient's journey is read once per write to the
database (the audit head's write counter keys it), and the next page after any write shows
what was written, in this process or another."""

from __future__ import annotations

import re
from typing import Any

from test_web_journey_pages import HTML, enrol_on_the_page, post


def _counting_journey_reads(web: Any) -> list[str]:
    reads: list[str] = []
    read = web.store.journey

    def counted(study_number: str) -> Any:
        reads.append(study_number)
        return read(study_number)

    web.store.journey = counted
    return reads


def test_the_calendar_is_read_once_until_a_write_and_a_write_shows_on_the_next_page(
        web: Any, monkeypatch: Any) -> None:
    c, _ = enrol_on_the_page(web, start="2026-11-23")
    page = "/patients/NBNK-0002/calendar"
    first = c.get(page, headers=HTML).text
    assert 'id="ev-c1.irinotecan.d1"' in first and "status-given" not in first
    reads = _counting_journey_reads(web)
    import trialdesk.services.journeys as journeys

    laid_out: list[object] = []
    lay_out = journeys.journey_calendar
    monkeypatch.setattr(journeys, "journey_calendar",
                        lambda *a, **k: laid_out.append(a[2:]) or lay_out(*a, **k))
    again = c.get(page, headers=HTML)
    assert again.status_code == 200 and reads == []  # nothing written: kept from before
    assert laid_out == []  # the same moment (the test clock stands still): the same calendar
    assert c.get("/patients/NBNK-0002/adverse-events", headers=HTML).status_code == 200
    assert len(laid_out) == 1  # the adverse-event page's calendar (no moment), laid out once
    ok = post(c, page, "/patients/NBNK-0002/records",
              {"event_id": "c1.irinotecan.d1", "status": "given", "at": "2026-11-21T09:00",
               "amount": "51.5", "by": "Nurse K", "reason": "r"})
    assert ok.status_code == 200
    shown = c.get(page, headers=HTML).text
    assert "NBNK-0002" in reads  # the write made the page read the journey again
    assert len(laid_out) > 1  # and lay the calendar out again
    row = re.search(r'<tr class="kind-administration status-given" id="ev-c1.irinotecan.d1">'
                    r'.*?</tr>', shown, re.S)
    assert row and "actual 51.5 mg" in row.group(0)


def test_a_write_by_another_process_shows_on_the_next_page(web: Any) -> None:
    """Another worker's write (here: the store written directly, not through this
    application) raises the same counter, so this application's next page shows it."""
    c, _ = enrol_on_the_page(web, start="2026-11-23")
    page = "/patients/NBNK-0002/calendar"
    course2 = re.compile(r"<strong>Course 2</strong> · DIT<br>(\S+) → ")
    found = course2.search(c.get(page, headers=HTML).text)
    assert found and found.group(1) == "2026-12-14"
    from trialdesk.store import Store

    other = Store.open(str(web.store.engine.url), clock=web.clock)
    try:
        before = other.writes()
        version = other.journey("NBNK-0002").version
        other.update_journey("NBNK-0002", expected_version=version, start="2026-11-30",
                             actor="coordinator", reason="day 1 moved")
        assert other.writes() == before + 1
    finally:
        other.close()
    found = course2.search(c.get(page, headers=HTML).text)
    assert found and found.group(1) == "2026-12-21"
