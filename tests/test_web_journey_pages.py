"""The journey pages: consent and enrolment forms, the calendar with its timeline and
doses, recording what happened, adverse events with the proposed actions and their
confirmation, responses, the outcomes page and the dashboard — every bad form value back
on the page with its field, every new text field escaped."""

from __future__ import annotations

import re
from typing import Any

from trialdesk.protocol.load import default_protocol_dir

HTML = {"accept": "text/html"}
PAYLOAD = '<script>alert("xss")</script>'
EXAMPLES = default_protocol_dir().parent / "examples"


def form_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def post(c: Any, page: str, action: str, data: dict[str, Any], *, follow: bool = True) -> Any:
    token = form_token(c.get(page, headers=HTML).text)
    return c.post(action, data={"csrf_token": token, **data}, headers=HTML,
                  follow_redirects=follow)


def enrol_on_the_page(web: Any, patient: str = "NBNK-0002", **extra: str) -> Any:
    c = web.client("investigator")
    page = c.get(f"/patients/{patient}", headers=HTML).text
    screening = re.search(r'name="screening_id" value="(\d+)"', page)
    assert screening, "no enrolment form"
    return c, c.post(f"/patients/{patient}/enrol", headers=HTML, data={
        "csrf_token": form_token(page), "screening_id": screening.group(1),
        "password": "investigator-demo", "reason": "eligibility confirmed", **extra})


def test_the_patient_page_records_consent_and_enrols_with_a_start_date(web: Any) -> None:
    coord = web.client("coordinator")
    page = coord.get("/patients/NBNK-0002", headers=HTML).text
    assert "Form version 1.0 signed 2026-11-18 by the parent" in page
    bad = post(coord, "/patients/NBNK-0002", "/patients/NBNK-0002/consent",
               {"version": "1.0", "signed_on": "2026-11-18", "signed_by": "patient",
                "reason": "consent"})
    assert bad.status_code == 422 and "signed_by" in bad.text and "a minor" in bad.text
    _, r = enrol_on_the_page(web, start="2026-11-23")
    assert r.status_code == 200, r.text[:300]
    assert "Enrolled in NB-NK-2026, arm <strong>B</strong>" in r.text
    assert "arm B by the protocol&#39;s assignment rule" in r.text
    assert 'href="/patients/NBNK-0002/calendar"' in r.text


def test_the_calendar_page_shows_the_timeline_doses_working_and_marks(web: Any) -> None:
    c, _ = enrol_on_the_page(web, start="2026-11-23")
    html = c.get("/patients/NBNK-0002/calendar", headers=HTML).text
    assert '<ol class="timeline">' in html
    assert re.search(r"<strong>Course 2</strong> · DIT<br>2026-12-14 → 2027-01-03", html)
    assert '<span class="dose">51.5 mg/day</span> <span class="mark">[unconfirmed]</span>' in html
    assert "BSA 1.03 m² (Mosteller, 28.6 kg, 134 cm" in html
    assert "not set" in html and "response assessment" in html.lower()
    assert '/api/patients/NBNK-0002/calendar.ics' in html
    assert "Unconfirmed values used on this calendar" in html


def test_recording_an_administration_and_bad_values_on_the_calendar_page(web: Any) -> None:
    c, _ = enrol_on_the_page(web, start="2026-11-23")
    page, action = "/patients/NBNK-0002/calendar", "/patients/NBNK-0002/records"
    bad = post(c, page, action, {"event_id": "c1.irinotecan.d1", "status": "given",
                                 "at": "yesterday", "amount": "51.5", "reason": "r"})
    assert bad.status_code == 422 and "<code>at</code>" in bad.text
    missing = post(c, page, action, {"event_id": "c1.irinotecan.d1", "status": "given",
                                     "at": "2026-11-21T09:00", "reason": "r"})
    assert missing.status_code == 422 and "<code>amount</code>" in missing.text
    ok = post(c, page, action, {"event_id": "c1.irinotecan.d1", "status": "given",
                                "at": "2026-11-21T09:00", "amount": "51.5", "by": "Nurse K",
                                "reason": "r"})
    assert ok.status_code == 200
    row = re.search(r'<tr class="kind-administration status-given" id="ev-c1.irinotecan.d1">'
                    r'.*?</tr>', ok.text, re.S)
    assert row and "actual 51.5 mg" in row.group(0) and "by Nurse K" in row.group(0)
    delay = post(c, page, "/patients/NBNK-0002/delays",
                 {"course": "2", "days": "7", "why": "ANC 0.4", "reason": "r"})
    assert "Course 2 delayed 7 days" in delay.text
    wrong = post(web.client("pharmacist"), page, "/patients/NBNK-0002/doses/sign",
                 {"event_id": "c2.irinotecan.d1", "password": "wrong", "reason": "r"})
    assert wrong.status_code == 401 and "nothing was signed" in wrong.text
    signed = post(web.client("pharmacist"), page, "/patients/NBNK-0002/doses/sign",
                  {"event_id": "c2.irinotecan.d1", "password": "pharmacist-demo",
                   "reason": "r"})
    assert re.search(r"<strong>Demo Pharmacist</strong> \(pharmacist\), 2026-11-21T12:00:"
                     r"\d\d\.\d+Z — <em>I sign off this dose</em> <span class=\"badge "
                     r"outcome-met\">bound to this dose</span>", signed.text)


def test_the_adverse_event_page_shows_the_proposed_action(web: Any) -> None:
    c = web.client("investigator")
    page = "/patients/NBNK-0001/adverse-events"
    html = c.get(page, headers=HTML).text
    assert "Catheter related infection — grade 2" in html
    assert "supportive care:" in html and "NBNK-LINE-INFECTION" in html
    assert "Graded from the lab: Neutrophil count decreased 800" in html
    bad = post(c, page, page, {"term": "Pain", "grade": "4", "onset": "2026-11-21",
                               "reason": "r"})
    assert bad.status_code == 422 and "<li>Grade: grade 4 does not exist for &#39;Pain&#39;" \
        in bad.text
    lab = post(c, page, page, {"onset": "2026-11-21", "lab_term": "Platelet count decreased",
                               "lab_value": "20000", "lab_unit": "/mm3", "reason": "r"})
    assert lab.status_code == 200
    assert "Platelet count decreased — grade 4" in lab.text


def test_confirming_an_action_on_the_page_needs_the_password_and_the_acceptance(
        web: Any) -> None:
    c, _ = enrol_on_the_page(web, start="2026-11-23")
    web.clock.advance(days=23)
    c = web.client("investigator")
    page = "/patients/NBNK-0002/adverse-events"
    r = post(c, page, page, {"term": "Anaphylaxis", "grade": "3", "onset": "2026-12-14",
                             "seriousness": "life_threatening", "reason": "r"})
    assert "discontinue dinutuximab beta permanently [unconfirmed]" in r.text
    action = re.search(r'action="(/patients/NBNK-0002/adverse-events/\d+/decisions)"', r.text)
    assert action and "Sign the decision" in r.text
    form = r.text[r.text.index(action.group(0)):]
    group = re.search(r'name="group" value="(\d+)"', form)
    version = re.search(r'name="version_(\d+)" value="(\d+)"', form)
    assert group and version
    data = {"group": group.group(1), "choice": version.group(1),
            f"version_{version.group(1)}": version.group(2), "password": "investigator-demo",
            "reason": "anaphylaxis grade 3"}
    refused = post(c, page, action.group(1), data)
    assert refused.status_code == 422 and "Unconfirmed source accepted: rule NBNK-ANAPHYLAXIS" \
        in refused.text
    done = post(c, page, action.group(1), {**data, "accept_unconfirmed": "yes"})
    assert done.status_code == 200
    assert re.search(r"Accepted: <strong>Demo Investigator</strong> \(investigator\), "
                     r"2026-12-14T12:00:\d\d\.\d+Z — <em>I confirm this toxicity action</em>",
                     done.text)
    cal = c.get("/patients/NBNK-0002/calendar", headers=HTML).text
    assert "Toxicity actions confirmed by a clinician" in cal and "discontinued" in cal


def test_the_responses_page_shows_the_reasoning(web: Any) -> None:
    html = web.client("investigator").get("/patients/REFNOT-0002/responses", headers=HTML).text
    assert "RECIST 1.1 time point: <span class=\"badge response\">PR</span>" in html
    assert "Baseline: 2 target lesion(s), sum of diameters 60 mm." in html
    assert '<ol class="reasoning">' in html


def test_the_outcomes_page_and_the_dashboard(web: Any) -> None:
    stat = web.client("statistician")
    html = stat.get("/trials/NB-NK-2026/outcomes", headers=HTML).text
    assert 'src="/api/trials/NB-NK-2026/outcomes/km.png?endpoint=OS"' in html
    assert "DSMB report (PDF)" in html and "Demo Patient" not in html
    assert web.client("investigator").get("/trials/NB-NK-2026/outcomes",
                                          headers=HTML).status_code == 403
    board = web.client("monitor").get("/trials/NB-NK-2026/dashboard", headers=HTML).text
    assert "Patients by term and worst grade" in board and "Catheter related infection" in board
    rand = web.client("administrator").get("/trials/RuMCeSS/dashboard", headers=HTML).text
    assert "Sealed list: sha256" in rand and "verified: every allocation matches" in rand


def test_free_text_in_the_journey_is_escaped_on_every_page(web: Any) -> None:
    coord = web.client("coordinator")
    bad = post(coord, "/patients/NBNK-0003", "/patients/NBNK-0003/consent",
               {"version": PAYLOAD[:60], "signed_on": "2026-11-19", "signed_by": "parent",
                "reason": PAYLOAD})
    assert bad.status_code == 200
    inv = web.client("investigator")
    page = inv.get("/patients/NBNK-0003", headers=HTML).text
    screening = inv.post("/api/patients/NBNK-0003/screenings", json={"reason": PAYLOAD},
                         headers={"x-csrf-token": inv.csrf}).json()
    r = inv.post("/patients/NBNK-0003/enrol", headers=HTML, data={
        "csrf_token": form_token(page), "screening_id": str(screening["id"]),
        "password": "investigator-demo", "reason": PAYLOAD, "start": "2026-11-23",
        "override_reason": PAYLOAD})
    assert r.status_code == 200, r.text[:500]
    cal = "/patients/NBNK-0003/calendar"
    post(inv, cal, "/patients/NBNK-0003/records", {
        "event_id": "c1.irinotecan.d1", "status": "withheld", "at": "2026-11-21T09:00",
        "by": PAYLOAD, "why": PAYLOAD, "reason": PAYLOAD})
    post(inv, cal, "/patients/NBNK-0003/delays", {"course": "2", "days": "3", "why": PAYLOAD,
                                                  "reason": PAYLOAD})
    ae = "/patients/NBNK-0003/adverse-events"
    post(inv, ae, ae, {"term": PAYLOAD, "meddra_term": PAYLOAD, "grade": "2",
                       "onset": "2026-11-21", "reason": PAYLOAD})
    bad_ae = post(inv, ae, ae, {"term": PAYLOAD, "grade": "9", "onset": PAYLOAD,
                                "reason": PAYLOAD})
    responses = "/patients/NBNK-0003/responses"
    post(inv, responses, "/patients/NBNK-0003/follow-ups",
         {"kind": "last_contact", "occurred_on": "2026-11-21", "note": PAYLOAD,
          "reason": PAYLOAD})
    bad_response = post(inv, responses, responses, {
        "criteria": "INRC", "assessed_on": "2026-11-21", "reason": PAYLOAD,
        "document": '{"primary": "' + PAYLOAD.replace('"', "'") + '"}'})
    pages = [inv.get(u, headers=HTML) for u in (
        "/patients/NBNK-0003", cal, ae, responses, "/trials/NB-NK-2026/dashboard")]
    pages += [bad_ae, bad_response, web.client("monitor").get("/trials/NB-NK-2026/audit",
                                                              headers=HTML),
              web.client("statistician").get("/trials/NB-NK-2026/outcomes", headers=HTML)]
    for p in pages:
        assert p.status_code in (200, 422), (p.url, p.status_code)
        assert PAYLOAD not in p.text, p.url
        assert "<script>alert" not in p.text, p.url
    shown = "".join(p.text for p in pages)
    assert shown.count("&lt;script&gt;alert(") >= 10
