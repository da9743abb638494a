"""What the pages keep between requests and how much they read: a patient's journey is
read once per write to the database (the audit head's write counter keys it), and the next
page after any write shows what was written, in this process or another; each page reads
the database in a number of SQL statements that does not grow with what the patient has
(events, doses), counted here per request."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

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


def test_a_later_moment_lays_out_no_new_plan_and_shows_what_a_fresh_layout_shows(
        web: Any, monkeypatch: Any) -> None:
    c, _ = enrol_on_the_page(web, start="2026-11-23")
    page = "/patients/NBNK-0002/calendar"
    before = c.get(page, headers=HTML).text
    import trialdesk.services.journeys as journeys

    planned: list[object] = []
    lay_out = journeys.journey_plan
    monkeypatch.setattr(journeys, "journey_plan",
                        lambda *a, **k: planned.append(a) or lay_out(*a, **k))
    web.clock.advance(days=30)  # a month on: doses of course 1 not recorded are missed
    c = web.client("investigator")  # (the first session has ended meanwhile)
    month = c.get(page, headers=HTML).text
    assert "status-missed" in month and "status-missed" not in before
    assert len(planned) == 1  # the log-in was a write: laid out afresh
    web.clock.advance(minutes=10)
    later = c.get(page, headers=HTML).text
    assert len(planned) == 1  # a new moment: its statuses on the plan already laid out
    assert later != month  # (the page says the moment)
    _after_a_write(web)  # nothing kept: the plan laid out afresh, at the same moment
    fresh = c.get(page, headers=HTML).text
    assert len(planned) == 2 and fresh == later


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


# ---------------------------------------------------------------------------- statements


@contextmanager
def _statements(web: Any) -> Iterator[list[str]]:
    """The SQL statements the application sends to the database meanwhile."""
    sent: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(web.store.engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(web.store.engine, "before_cursor_execute", count)


def _after_a_write(web: Any) -> None:
    """A write elsewhere (another process, another user): nothing read before is kept."""
    with web.store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE audit_head SET writes = writes + 1 WHERE id = 1")


def _page_statements(web: Any, c: Any, url: str) -> tuple[int, int]:
    """The statements of a page after a write (nothing kept) and of the same page again."""
    _after_a_write(web)
    counts = []
    for _ in range(2):
        with _statements(web) as sent:
            r = c.get(url, headers=HTML)
        assert r.status_code == 200, (url, r.status_code)
        counts.append(len(sent))
    return counts[0], counts[1]


def _record_nausea(web: Any, times: int) -> None:
    api = web.client("coordinator")
    for _ in range(times):
        r = api.post("/api/patients/NBNK-0001/adverse-events", headers={
            "x-csrf-token": api.csrf}, json={"term": "Nausea", "grade": 1,
                                             "onset": "2026-12-12", "reason": "AE"})
        assert r.status_code == 201, r.text


def test_the_adverse_event_page_reads_as_much_with_forty_events_as_with_one(web: Any) -> None:
    web.clock.advance(days=22)  # NBNK-0001 in course 2
    _record_nausea(web, 1)
    c = web.client("coordinator")
    page = "/patients/NBNK-0001/adverse-events"
    few = _page_statements(web, c, page)
    _record_nausea(web, 39)
    many = _page_statements(web, c, page)
    assert c.get(page, headers=HTML).text.count("Nausea — grade 1") >= 40
    assert many == few  # not a statement per event (it was three per event, twice)
    assert many[0] <= 21 and many[1] <= 5, many  # after a write; kept until the next


def test_each_page_reads_in_a_bounded_number_of_statements(web: Any) -> None:
    """The bounds hold for the demo data; what a page reads per patient or per event is
    read in one statement for all of them, so more of either does not raise them."""
    c = web.client("coordinator")
    bounds = {"/": (20, 8), "/patients/NBNK-0001": (21, 2),
              "/patients/NBNK-0001/calendar": (21, 5), "/patients/NBNK-0001/form": (7, 2)}
    for url in bounds:  # each page once before, as on a server that has been running (a
        c.get(url, headers=HTML)  # protocol version is read whole once, then by its id)
    found = {url: _page_statements(web, c, url) for url in bounds}
    for url, (after_write, again) in bounds.items():
        assert found[url][0] <= after_write and found[url][1] <= again, found
    # the investigator's worklist reads every patient's events and screenings, in a
    # statement or two per patient (not per event)
    worklist = _page_statements(web, web.client("investigator"), "/")
    assert worklist[0] <= 40 and worklist[1] <= 8, worklist


def test_the_trial_finder_screens_again_only_when_the_record_or_the_trials_change(
        web: Any, monkeypatch: Any) -> None:
    import trialdesk.services.trialfinder as finder

    screened: list[str] = []
    screen = finder.trials_for_record
    monkeypatch.setattr(finder, "trials_for_record",
                        lambda *a, **k: screened.append(a[1].patient_id) or screen(*a, **k))
    c = web.client("investigator")
    page = "/patients/NBNK-0002"
    first = c.get(page, headers=HTML).text
    assert screened == ["NBNK-0002"]
    _after_a_write(web)  # a write elsewhere: the same record, trials and minute
    assert c.get(page, headers=HTML).text == first and screened == ["NBNK-0002"]
    api = web.client("coordinator")
    record = api.get("/api/patients/NBNK-0002").json()
    r = api.put("/api/patients/NBNK-0002", headers={"x-csrf-token": api.csrf}, json={
        "record": {**record["record"],
                   "sex": "female" if record["record"]["sex"] == "male" else "male"},
        "version": record["version"], "reason": "sex corrected"})
    assert r.status_code == 200, r.text
    c.get(page, headers=HTML)
    assert screened == ["NBNK-0002", "NBNK-0002"]  # the changed record: screened again
