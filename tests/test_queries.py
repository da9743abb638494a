"""Data queries, form review statuses and the lock of a patient's record: the service, the
API and the pages, on the demo data (tests/conftest.py WebApp, clock 2026-11-21).

NBNK-0001 (examples/patients/nb-refractory.json) has serum creatinine 35 µmol/L sampled
2026-11-16; NBNK-0002 is screened eligible and not enrolled.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

HTML = {"accept": "text/html"}


def _token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


def _post(c: Any, url: str, body: dict[str, Any]) -> Any:
    return c.post(url, json=body, headers={"x-csrf-token": c.csrf})


def _creatinine(web: Any, study_number: str = "NBNK-0001") -> list[dict[str, Any]]:
    return [o for o in web.store.patient(study_number).record["observations"]
            if o["name"] == "creatinine"]


def test_query_opened_corrected_closed_and_the_form_verified(web: Any) -> None:
    mon, coord = web.client("monitor"), web.client("coordinator")
    r = _post(mon, "/api/patients/NBNK-0001/queries",
              {"field": "creatinine", "question": "Source says 53 µmol/L; please check"})
    assert r.status_code == 201, r.text
    q = r.json()
    assert (q["form"], q["form_title"], q["field_label"], q["status"]) == (
        "lab", "Laboratory results", "Serum creatinine", "open")
    assert q["value_seen"] == "35 µmol/L (on 2026-11-16)"
    version_before = web.store.patient("NBNK-0001").version
    r = _post(coord, f"/api/queries/{q['id']}/correct",
              {"version": q["version"], "value": "53", "reason": "transcription error"})
    assert r.status_code == 200, r.text
    q = r.json()
    assert q["status"] == "answered" and q["steps"][-1]["value"] == "53 µmol/L (on 2026-11-16)"
    # The record itself changed: a new version, the same sample date, the old value replaced.
    assert web.store.patient("NBNK-0001").version == version_before + 1
    assert [(o["value"], o["unit"], o["date"]) for o in _creatinine(web)] == [
        (53.0, "umol/L", "2026-11-16")]
    r = _post(mon, f"/api/queries/{q['id']}/close", {"version": q["version"], "note": "ok"})
    assert r.status_code == 200 and r.json()["status"] == "closed"
    # The monitor cannot verify an incomplete form; the site marks it complete first.
    r = _post(mon, "/api/patients/NBNK-0001/forms/lab/status",
              {"status": "verified", "reason": "SDV"})
    assert r.status_code == 422 and "marks it complete" in r.json()["error"]
    assert _post(coord, "/api/patients/NBNK-0001/forms/lab/status",
                 {"status": "complete", "reason": "all labs in"}).status_code == 200
    r = _post(mon, "/api/patients/NBNK-0001/forms/lab/status",
              {"status": "verified", "reason": "SDV against the lab report"})
    assert r.status_code == 200
    lab = next(f for f in r.json()["forms"] if f["id"] == "lab")
    assert (lab["status"], lab["status_label"], lab["updated_by"]) == (
        "verified", "source-verified", "monitor")
    # Every step is in the audit trail of the patient, in order.
    trail = mon.get("/api/patients/NBNK-0001/audit?limit=20").json()["items"]
    actions = [(e["action"], e["record_type"]) for e in trail][:6]
    assert actions == [("form_status", "form_review"), ("form_status", "form_review"),
                       ("query_close", "data_query"), ("query_correct", "data_query"),
                       ("update", "patient"), ("query_open", "data_query")]
    update = trail[4]
    assert "transcription error (data query" in update["reason"]
    assert {c["old"] for c in update["changes"].values()} == {35.0}
    # A later change of a value of the verified form makes it complete again.
    q2 = _post(mon, "/api/patients/NBNK-0001/queries",
               {"field": "alt", "question": "ALT 38 or 83?"}).json()
    assert _post(coord, f"/api/queries/{q2['id']}/correct",
                 {"version": q2["version"], "value": "83", "reason": "digits swapped"}
                 ).status_code == 200
    lab = next(f for f in mon.get("/api/patients/NBNK-0001/monitoring").json()["forms"]
               if f["id"] == "lab")
    assert lab["status"] == "complete"
    assert lab["status_label"] == "complete (changed since it was source-verified)"
    other = next(f for f in mon.get("/api/patients/NBNK-0001/monitoring").json()["forms"]
                 if f["id"] == "identity")
    assert other["status"] == "incomplete"


def test_answer_reopen_and_the_worklists(web: Any) -> None:
    mon, inv = web.client("monitor"), web.client("investigator")
    q = _post(mon, "/api/patients/NBNK-0002/queries",
              {"field": "creatinine", "question": "Unit?"}).json()
    site = {s["id"]: s["lines"] for s in inv.get("/api/worklist").json()["sections"]}
    assert [x["link"] for x in site["queries-site"]] == [f"/queries/{q['id']}"]
    monitor = {s["id"]: s["lines"] for s in mon.get("/api/worklist").json()["sections"]}
    assert monitor["queries-monitor"] == []
    assert [x["link"] for x in monitor["queries-open"]] == [f"/queries/{q['id']}"]
    a = _post(inv, f"/api/queries/{q['id']}/answer", {"version": q["version"],
                                                      "answer": "mg/dL as on the report"})
    assert a.status_code == 200 and a.json()["status"] == "answered"
    monitor = {s["id"]: s["lines"] for s in mon.get("/api/worklist").json()["sections"]}
    assert [x["link"] for x in monitor["queries-monitor"]] == [f"/queries/{q['id']}"]
    assert monitor["queries-open"] == []
    site = {s["id"]: s["lines"] for s in inv.get("/api/worklist").json()["sections"]}
    assert site["queries-site"] == []
    # A stale version is refused; re-opening sends it back to the site.
    stale = _post(mon, f"/api/queries/{q['id']}/reopen", {"version": q["version"],
                                                          "note": "see page 2"})
    assert stale.status_code == 409
    r = _post(mon, f"/api/queries/{q['id']}/reopen", {"version": a.json()["version"],
                                                      "note": "see page 2"})
    assert r.status_code == 200 and r.json()["status"] == "open"
    assert [s["action"] for s in r.json()["steps"]] == ["open", "answer", "reopen"]
    # A form with a query not closed cannot be verified.
    _post(inv, "/api/patients/NBNK-0002/forms/lab/status", {"status": "complete", "reason": "x"})
    refused = _post(mon, "/api/patients/NBNK-0002/forms/lab/status",
                    {"status": "verified", "reason": "SDV"})
    assert refused.status_code == 422 and "not closed" in refused.json()["error"]


def test_refusals_name_the_field(web: Any) -> None:
    mon, coord = web.client("monitor"), web.client("coordinator")
    r = _post(mon, "/api/patients/NBNK-0001/queries", {"field": "nonsense", "question": "?"})
    assert r.status_code == 422 and r.json()["error"].startswith("Field:")
    r = _post(mon, "/api/patients/NBNK-0001/queries", {"field": "creatinine", "question": "  "})
    assert r.status_code == 422
    q = _post(mon, "/api/patients/NBNK-0001/queries",
              {"field": "creatinine", "question": "check"}).json()
    for value, words in (("abc", "Serum creatinine"), ("nan", "Serum creatinine"),
                         ("35", "the one stored")):
        before = web.store.patient("NBNK-0001").version
        r = _post(coord, f"/api/queries/{q['id']}/correct",
                  {"version": q["version"], "value": value, "reason": "typo"})
        assert r.status_code == 422 and words in r.json()["error"], (value, r.text)
        assert web.store.patient("NBNK-0001").version == before  # nothing stored
    # The monitor does not answer; the coordinator does not close.
    assert _post(mon, f"/api/queries/{q['id']}/answer",
                 {"version": q["version"], "answer": "x"}).status_code == 403
    assert _post(coord, f"/api/queries/{q['id']}/close",
                 {"version": q["version"], "note": "x"}).status_code == 403


def _writes(web: Any) -> dict[str, Any]:
    """One change on each write path of an enrolled patient (NBNK-0001)."""
    from trialdesk.services import journeys, queries, responses, safety
    from trialdesk.services.context import Services
    from trialdesk.services.demo import _who
    from trialdesk.services.forms import update_from_form

    ctx = Services.open(web.store)
    coord, inv = _who(web.store, "coordinator"), _who(web.store, "investigator")
    today = web.store.now().date()

    def facts() -> Any:
        row = web.store.patient("NBNK-0001")
        return update_from_form(ctx, coord, "NBNK-0001", version=row.version,
                                data={"birth_date": row.record["birth_date"], "sex": "male"},
                                reason="x", screen=False)

    return {
        "patient facts": facts,
        "body": lambda: journeys.record_body(ctx, coord, "NBNK-0001", on=today, weight_kg=21,
                                             height_cm=115, reason="weighed"),
        "calendar record": lambda: journeys.record_event(
            ctx, coord, "NBNK-0001", event_id="c1.irinotecan.d2", status="withheld",
            at=web.store.now().replace(tzinfo=None), amount=None, unit=None, by=None,
            reason="fever", note="x"),
        "adverse event": lambda: safety.record_adverse_event(
            ctx, inv, "NBNK-0001", lab=None, course_number=None, reason="x",
            event={"term": "Fever", "grade": 1, "onset": today, "attributions": [],
                   "seriousness": set()}),
        "response": lambda: responses.record_follow_up(
            ctx, inv, "NBNK-0001", kind="last_contact", occurred_on=today, note="seen",
            reason="x"),
        "query": lambda: queries.open_query(ctx, _who(web.store, "monitor"), "NBNK-0001",
                                            field="creatinine", question="?"),
    }


@pytest.mark.parametrize("path", ["patient facts", "body", "calendar record", "adverse event",
                                  "response", "query"])
def test_a_locked_record_refuses_every_change(web: Any, path: str) -> None:
    from trialdesk.services.locks import RecordLockedError

    admin = web.client("administrator")
    r = _post(admin, "/api/patients/NBNK-0001/lock", {"locked": True, "reason": "database lock"})
    assert r.status_code == 200, r.text
    assert {f["status"] for f in r.json()["forms"]} == {"locked"}
    seq = web.store.audit_entries(record_ids=["NBNK-0001"], limit=1).items[0].seq
    with pytest.raises(RecordLockedError, match="NBNK-0001's record is locked"):
        _writes(web)[path]()
    # Nothing written: the patient's last audit entry is still the lock's.
    assert web.store.audit_entries(record_ids=["NBNK-0001"], limit=1).items[0].seq == seq
    # Unlocked, the same change goes through.
    assert _post(admin, "/api/patients/NBNK-0001/lock",
                 {"locked": False, "reason": "reopened for a late correction"}).status_code == 200
    assert _writes(web)[path]() is not None


def test_the_lock_through_the_api_and_who_may_lock(web: Any) -> None:
    admin, coord = web.client("administrator"), web.client("coordinator")
    assert _post(coord, "/api/patients/NBNK-0001/lock",
                 {"locked": True, "reason": "x"}).status_code == 403
    _post(admin, "/api/patients/NBNK-0001/lock", {"locked": True, "reason": "database lock"})
    again = _post(admin, "/api/patients/NBNK-0001/lock", {"locked": True, "reason": "again"})
    assert again.status_code == 409
    r = _post(coord, "/api/patients/NBNK-0001/body",
              {"on": "2026-11-21", "weight_kg": 21, "reason": "weighed"})
    assert r.status_code == 409 and "locked" in r.json()["error"]
    page = coord.get("/patients/NBNK-0001/monitoring", headers=HTML)
    assert page.status_code == 200 and "Record locked by administrator" in page.text
    assert "Set the status" not in page.text


def test_the_pages(web: Any) -> None:
    mon, coord = web.client("monitor"), web.client("coordinator")
    page = mon.get("/patients/NBNK-0001/monitoring", headers=HTML)
    assert page.status_code == 200
    assert "Laboratory results" in page.text and "35 µmol/L (on 2026-11-16)" in page.text
    token = _token(page.text)
    bad = mon.post("/patients/NBNK-0001/queries", headers=HTML,
                   data={"csrf_token": token, "field": "creatinine", "question": ""})
    assert bad.status_code == 422 and "Question: write it" in bad.text
    r = mon.post("/patients/NBNK-0001/queries", headers=HTML, follow_redirects=False,
                 data={"csrf_token": token, "field": "creatinine", "question": "check"})
    assert r.status_code == 303 and r.headers["location"].startswith("/queries/")
    url = r.headers["location"]
    qpage = coord.get(url, headers=HTML)
    assert "Correct the value" in qpage.text and "Answer: the value is right" in qpage.text
    bad = coord.post(f"{url}/correct", headers=HTML,
                     data={"csrf_token": _token(qpage.text), "version": "1", "value": "53",
                           "reason": ""})
    assert bad.status_code == 422 and "Reason for the change: write it" in bad.text
    ok = coord.post(f"{url}/correct", headers=HTML, follow_redirects=False,
                    data={"csrf_token": _token(qpage.text), "version": "1", "value": "53",
                          "reason": "typo"})
    assert ok.status_code == 303
    assert "value now 53 µmol/L" in coord.get(url, headers=HTML).text
    patient = coord.get("/patients/NBNK-0001", headers=HTML).text
    assert "/patients/NBNK-0001/monitoring" in patient


def test_every_demo_patient_has_its_forms_page(web: Any) -> None:
    mon = web.client("monitor")
    numbers = [p["study_number"] for p in mon.get("/api/patients?limit=50").json()["items"]]
    assert len(numbers) == 7  # services/demo.py DEMO_PATIENTS
    for number in numbers:
        r = mon.get(f"/api/patients/{number}/monitoring")
        assert r.status_code == 200, (number, r.text)
        forms = r.json()["forms"]
        assert forms and forms[0]["title"] == "Identity and demographics"
        assert {f["status"] for f in forms} == {"incomplete"}
        assert mon.get(f"/patients/{number}/monitoring", headers=HTML).status_code == 200


def _event_forms(mon: Any) -> tuple[str, list[dict[str, Any]]]:
    """The demo patient with recorded adverse events (services/demo.py: a catheter related
    infection, grade 2, and a neutrophil count decreased graded from the lab) and its
    events' forms on the monitoring view."""
    for p in mon.get("/api/patients?limit=50").json()["items"]:
        forms = mon.get(f"/api/patients/{p['study_number']}/monitoring").json()["forms"]
        events = [f for f in forms if f["id"].startswith("adverse_event_")]
        if events:
            return p["study_number"], events
    raise AssertionError("no demo patient has an adverse event")


def test_query_on_an_adverse_event_corrected_closed_and_verified(web: Any) -> None:
    mon, coord = web.client("monitor"), web.client("coordinator")
    number, events = _event_forms(mon)
    assert len(events) == 2
    infection = next(f for f in events if "Catheter related infection" in f["title"])
    ae_id = int(infection["id"].removeprefix("adverse_event_"))
    assert infection["title"] == f"Adverse event {ae_id}: Catheter related infection, grade 2"
    fields = {x["name"]: (x["label"], x["value"]) for x in infection["fields"]}
    assert fields["grade"] == ("Grade", "2") and fields["resolution"] == ("Resolved on",
                                                                          "(empty)")
    assert infection["status"] == "incomplete" and infection["pending_queries"] == 0
    r = _post(mon, f"/api/patients/{number}/queries",
              {"form": infection["id"], "field": "grade",
               "question": "The chart says IV antibiotics: grade 3?"})
    assert r.status_code == 201, r.text
    q = r.json()
    assert (q["form"], q["form_title"], q["field_label"], q["value_seen"], q["kind"]) == (
        infection["id"], f"Adverse event {ae_id}", "Grade", "2", "adverse_event")
    page = coord.get(f"/api/queries/{q['id']}").json()
    assert page["can_correct"] and page["value_now"] == "2"
    assert page["event_link"] == f"/patients/{number}/adverse-events/{ae_id}/correction"
    before = web.store.adverse_event(ae_id)
    # Refused corrections name the field by its label and store nothing.
    for value, said in (("three", "Grade: enter a whole number from 1 to 5"),
                        ("2", "Corrected value: the value is the one stored"),
                        ("1", "Grade: grade 1 does not exist")):
        bad = _post(coord, f"/api/queries/{q['id']}/correct",
                    {"version": q["version"], "value": value, "reason": "chart"})
        assert bad.status_code == 422 and bad.json()["error"].startswith(said), bad.text
    assert web.store.adverse_event(ae_id).version == before.version
    r = _post(coord, f"/api/queries/{q['id']}/correct",
              {"version": q["version"], "value": "3", "reason": "IV antibiotics given"})
    assert r.status_code == 200, r.text
    q = r.json()
    assert q["status"] == "answered" and q["steps"][-1]["value"] == "3"
    after = web.store.adverse_event(ae_id)
    assert (after.grade, after.version) == (3, before.version + 1)
    assert after.document["meddra_term"] == before.document["meddra_term"]
    trail = mon.get(f"/api/patients/{number}/audit?limit=5").json()["items"]
    assert [e["action"] for e in trail[:2]] == ["query_correct", "update"]
    assert trail[1]["reason"] == f"IV antibiotics given (data query {q['id']})"
    assert _post(mon, f"/api/queries/{q['id']}/close",
                 {"version": q["version"], "note": "matches the chart"}).status_code == 200
    url = f"/api/patients/{number}/forms/{infection['id']}/status"
    assert _post(coord, url, {"status": "complete", "reason": "event entered"}
                 ).status_code == 200
    r = _post(mon, url, {"status": "verified", "reason": "SDV against the chart"})
    assert r.status_code == 200, r.text
    form = next(f for f in r.json()["forms"] if f["id"] == infection["id"])
    assert (form["status"], form["title"]) == (
        "verified", f"Adverse event {ae_id}: Catheter related infection, grade 3")
    # A later correction on the event's own page makes it complete again.
    inv = web.client("investigator")
    corrected = inv.put(f"/api/patients/{number}/adverse-events/{ae_id}",
                        json={"version": after.version, "resolution": "2026-11-21",
                              "reason": "resolved"}, headers={"x-csrf-token": inv.csrf})
    assert corrected.status_code == 200, corrected.text
    form = next(f for f in mon.get(f"/api/patients/{number}/monitoring").json()["forms"]
                if f["id"] == infection["id"])
    assert form["status_label"] == "complete (changed since it was source-verified)"


def test_adverse_event_queries_refused_in_words(web: Any) -> None:
    mon, coord = web.client("monitor"), web.client("coordinator")
    number, events = _event_forms(mon)
    lab = next(f for f in events if "Neutrophil count decreased" in f["title"])
    r = _post(mon, f"/api/patients/{number}/queries",
              {"form": lab["id"], "field": "nonsense", "question": "?"})
    assert r.status_code == 422 and r.json()["error"].startswith("Field: choose one of the event")
    r = _post(mon, f"/api/patients/{number}/queries",
              {"form": "adverse_event_99999", "field": "grade", "question": "?"})
    assert r.status_code == 422 and r.json()["error"].startswith("Form: choose one")
    # A section's field under another section is refused too.
    r = _post(mon, f"/api/patients/{number}/queries",
              {"form": "identity", "field": "creatinine", "question": "?"})
    assert r.status_code == 422 and r.json()["error"].startswith("Field:")
    # The lab decides this event's grade; a correction says so by the field's label.
    q = _post(mon, f"/api/patients/{number}/queries",
              {"form": lab["id"], "field": "grade", "question": "grade 4?"}).json()
    bad = _post(coord, f"/api/queries/{q['id']}/correct",
                {"version": q["version"], "value": "4", "reason": "chart"})
    assert bad.status_code == 422 and bad.json()["error"].startswith("Grade: the lab grades")
    # Attributions (a list) are corrected on the event's page; the query is answered.
    q = _post(mon, f"/api/patients/{number}/queries",
              {"form": lab["id"], "field": "attributions", "question": "related?"}).json()
    assert q["value_seen"] == "temozolomide: possible"
    page = coord.get(f"/api/queries/{q['id']}").json()
    assert page["can_answer"] and not page["can_correct"]
    bad = _post(coord, f"/api/queries/{q['id']}/correct",
                {"version": q["version"], "value": "probable", "reason": "x"})
    assert bad.status_code == 422 and bad.json()["error"].startswith(
        "Attribution: correct it on the event's own page")
    # The monitor sees no correction link (the monitor does not record events).
    assert mon.get(f"/api/queries/{q['id']}").json()["event_link"] is None


def test_adverse_event_query_pages(web: Any) -> None:
    mon, coord = web.client("monitor"), web.client("coordinator")
    number, events = _event_forms(mon)
    infection = next(f for f in events if "Catheter related infection" in f["title"])
    page = mon.get(f"/patients/{number}/monitoring", headers=HTML)
    assert infection["title"] in page.text
    assert f'<input type="hidden" name="form" value="{infection["id"]}">' in page.text
    r = mon.post(f"/patients/{number}/queries", headers=HTML, follow_redirects=False,
                 data={"csrf_token": _token(page.text), "form": infection["id"],
                       "field": "onset", "question": "onset the day before?"})
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    qpage = coord.get(url, headers=HTML)
    assert "Corrected value of Onset date" in qpage.text and "a date such as" in qpage.text
    bad = coord.post(f"{url}/correct", headers=HTML,
                     data={"csrf_token": _token(qpage.text), "version": "1",
                           "value": "yesterday", "reason": "chart"})
    assert bad.status_code == 422 and "Onset date: enter a date such as 2026-11-21" in bad.text
    # The event's own rules hold: the demo patient was enrolled on the day of the event.
    bad = coord.post(f"{url}/correct", headers=HTML,
                     data={"csrf_token": _token(qpage.text), "version": "1",
                           "value": "2026-11-20", "reason": "chart says 20 November"})
    assert bad.status_code == 422
    assert "Onset date: 2026-11-20 is before the enrolment (2026-11-21)" in bad.text
    r = mon.post(f"/patients/{number}/queries", headers=HTML, follow_redirects=False,
                 data={"csrf_token": _token(page.text), "form": infection["id"],
                       "field": "resolution", "question": "resolved today?"})
    url = r.headers["location"]
    ok = coord.post(f"{url}/correct", headers=HTML, follow_redirects=False,
                    data={"csrf_token": _token(coord.get(url, headers=HTML).text),
                          "version": "1", "value": "2026-11-21", "reason": "resolved today"})
    assert ok.status_code == 303
    assert "value now 2026-11-21" in coord.get(url, headers=HTML).text


def test_query_on_a_dose_given_answered_after_its_correction(web: Any) -> None:
    """NBNK-0001's day-1 doses are recorded as given in the demo (services/demo.py)."""
    mon, coord = web.client("monitor"), web.client("coordinator")
    forms = mon.get("/api/patients/NBNK-0001/monitoring").json()["forms"]
    doses = next(f for f in forms if f["id"] == "doses")
    assert doses["title"] == "Doses given (calendar records)"
    irinotecan = next(x for x in doses["fields"] if x["name"] == "c1.irinotecan.d1")
    assert irinotecan["label"].startswith("irinotecan") and "course 1 day 1" in \
        irinotecan["label"]
    assert irinotecan["value"].startswith("given 2026-11-21") and ", by Demo Nurse" in \
        irinotecan["value"]
    q = _post(mon, "/api/patients/NBNK-0001/queries",
              {"form": "doses", "field": "c1.irinotecan.d1",
               "question": "The pump log says 40 mg"}).json()
    assert (q["form_title"], q["kind"], q["value_seen"]) == (
        "Doses given (calendar records)", "dose", irinotecan["value"])
    page = coord.get(f"/api/queries/{q['id']}").json()
    assert page["can_answer"] and not page["can_correct"]
    assert page["event_link"] == "/patients/NBNK-0001/calendar/doses/c1.irinotecan.d1"
    bad = _post(coord, f"/api/queries/{q['id']}/correct",
                {"version": q["version"], "value": "40", "reason": "x"})
    assert bad.status_code == 422 and "correct the dose on its own page" in bad.json()["error"]
    # The site corrects the dose on its page, then answers.
    record = next(r for r in web.store.journey("NBNK-0001").records
                  if r["event_id"] == "c1.irinotecan.d1")
    values = {"status": "given", "amount": "40", "at": record["at"][:16], "by": record["by"]}
    r = coord.put("/api/patients/NBNK-0001/calendar/doses/c1.irinotecan.d1",
                  json={"values": values, "reason": f"pump log (data query {q['id']})"},
                  headers={"x-csrf-token": coord.csrf})
    assert r.status_code == 200, r.text
    assert "40 mg" in coord.get(f"/api/queries/{q['id']}").json()["value_now"]
    a = _post(coord, f"/api/queries/{q['id']}/answer",
              {"version": q["version"], "answer": "corrected to 40 mg from the pump log"})
    assert a.status_code == 200 and a.json()["status"] == "answered"
    assert _post(mon, f"/api/queries/{q['id']}/close",
                 {"version": a.json()["version"], "note": "ok"}).status_code == 200
    assert _post(coord, "/api/patients/NBNK-0001/forms/doses/status",
                 {"status": "complete", "reason": "day 1 entered"}).status_code == 200
    r = _post(mon, "/api/patients/NBNK-0001/forms/doses/status",
              {"status": "verified", "reason": "SDV against the pump logs"})
    assert r.status_code == 200, r.text
    # A dose not recorded cannot be queried; the administrator still sees the forms.
    r = _post(mon, "/api/patients/NBNK-0001/queries",
              {"form": "doses", "field": "c1.irinotecan.d3", "question": "?"})
    assert r.status_code == 422 and r.json()["error"].startswith("Field: choose one of the doses")
    admin = web.client("administrator").get("/api/patients/NBNK-0001/monitoring")
    assert admin.status_code == 200, admin.text


def test_the_clinical_forms_are_for_their_readers_only(web: Any) -> None:
    """The administrator (no clinical read) sees the patient form's sections, not the doses
    or adverse events, nor their queries."""
    mon = web.client("monitor")
    number, events = _event_forms(mon)
    q = _post(mon, f"/api/patients/{number}/queries",
              {"form": events[0]["id"], "field": "grade", "question": "?"}).json()
    admin = web.client("administrator")
    page = admin.get(f"/api/patients/{number}/monitoring").json()
    assert {f["id"] for f in page["forms"]} & {"doses", events[0]["id"]} == set()
    assert all(x["kind"] == "form" for x in page["queries"])
    assert admin.get(f"/api/queries/{q['id']}").status_code == 403
