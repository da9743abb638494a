"""A recorded dose corrected from its page or the API, with a reason: the record's values
replaced and checked as a new record would be, the audit keeping the old ones, the weight
and height of the day kept as recorded, bad corrections refused by the field's label with
nothing stored; a dose recorded by a cell product's infusion is not corrected here.

The demo patient NBNK-0001 (NB-NK-2026, arm A) starts on 2026-11-21, the tests' today;
irinotecan is planned at 42.0 mg/day (tests/test_calendar_doses.py).
"""

from __future__ import annotations

from typing import Any

from test_calendar_doses import CAL, DOSE, FORM, GOOD, HTML, PATIENT, records, submit, token


def _recorded(web: Any) -> dict[str, Any]:
    c = web.client("coordinator")
    r = submit(c, FORM, {**GOOD, "weight_kg": "21.4", "height_cm": "118",
                         "measured_on": "2026-11-21"})
    assert r.status_code == 303, r.text
    return next(x for x in records(web) if x["event_id"] == DOSE)


def _put(c: Any, values: dict[str, str], reason: str = "chart checked") -> Any:
    return c.put(f"/api/patients/{PATIENT}/calendar/doses/{DOSE}",
                 json={"values": values, "reason": reason}, headers={"x-csrf-token": c.csrf})


def test_a_recorded_dose_corrected_through_the_api(web: Any) -> None:
    before = _recorded(web)
    c = web.client("coordinator")
    version = web.store.journey(PATIENT).version
    values = {k: v for k, v in GOOD.items() if k != "amount.unit"}
    r = _put(c, {**values, "status": "partly_given", "amount": "30",
                 "why": "infusion reaction, stopped early"}, reason="nurse's chart: 30 mg")
    assert r.status_code == 200, r.text
    after = next(x for x in records(web) if x["event_id"] == DOSE)
    assert (after["status"], after["amount"], after["reason"]) == (
        "partly_given", 30.0, "infusion reaction, stopped early")
    # The rest as recorded, the weight and height of the day kept, one record per dose.
    assert after["details"]["lot"] == "IRI-2026-117"
    assert (after["details"]["weight_kg"], after["details"]["height_cm"],
            after["details"]["measured_on"]) == (21.4, 118.0, "2026-11-21")
    assert after["recorded_at"] == before["recorded_at"]
    assert sum(1 for x in records(web) if x["event_id"] == DOSE) == 1
    assert web.store.journey(PATIENT).version == version + 1
    entry = web.client("monitor").get(f"/api/patients/{PATIENT}/audit?limit=1").json()[
        "items"][0]
    assert (entry["action"], entry["record_type"], entry["reason"]) == (
        "correct", "event_record", "nurse's chart: 30 mg")
    assert entry["changes"]["$.record.amount"] == {"old": 42.0, "new": 30.0}
    assert entry["changes"]["$.record.status"] == {"old": "given", "new": "partly_given"}
    # The calendar shows the corrected dose.
    event = next(e for e in c.get(f"/api/patients/{PATIENT}/calendar").json()["calendar"]
                 ["events"] if e["id"] == DOSE)
    assert event["status"] == "partly_given"


def test_bad_corrections_are_refused_by_label_and_store_nothing(web: Any) -> None:
    _recorded(web)
    c = web.client("coordinator")
    version = web.store.journey(PATIENT).version
    values = {k: v for k, v in GOOD.items() if k != "amount.unit"}
    for change, said in (
            ({}, "Form: nothing was changed"),
            ({"status": "partly_given", "amount": "42", "why": "x"},
             "Actual dose: a partly given dose is below the planned"),
            ({"amount": "abc"}, "Actual dose:"),
            ({"at": "2026-11-22T09:00"}, "Start time: 2026-11-22 09:00 is in the future"),
            ({"status": "withheld", "amount": ""},
             "Stop time: a withheld dose was not infused; clear this field")):
        r = _put(c, {**values, **change})
        assert r.status_code == 422, (change, r.text)
        assert said in r.json()["error"], (change, r.json()["error"])
    r = _put(c, {**values, "amount": "40"}, reason="   ")
    assert r.status_code == 422 and "Reason for the correction" in r.json()["error"]
    assert web.store.journey(PATIENT).version == version
    # A dose not recorded yet is recorded, not corrected.
    r = c.put(f"/api/patients/{PATIENT}/calendar/doses/c1.irinotecan.d3",
              json={"values": values, "reason": "x"}, headers={"x-csrf-token": c.csrf})
    assert r.status_code == 422 and "is not recorded yet" in r.json()["error"]
    # Who may not record doses may not correct them.
    mon = web.client("monitor")
    r = _put(mon, {**values, "amount": "40"})
    assert r.status_code == 403


def test_the_correction_on_the_dose_page(web: Any) -> None:
    _recorded(web)
    c = web.client("coordinator")
    page = c.get(FORM, headers=HTML).text
    assert "Already recorded: given" in page and "Correct this record" in page
    assert 'name="lot" value="IRI-2026-117"' in page  # the form starts from the record
    action = f"{FORM}/correction"
    values = {k: v for k, v in GOOD.items() if k != "amount.unit"}
    bad = c.post(action, headers=HTML, data={"csrf_token": token(page), **values,
                                             "amount": "41", "reason": ""})
    assert bad.status_code == 422
    assert "Reason for the correction: say why the record is corrected" in bad.text
    assert 'value="41"' in bad.text  # what was typed is kept
    ok = c.post(action, headers=HTML, follow_redirects=False,
                data={"csrf_token": token(page), **values, "amount": "41",
                      "reason": "pump log says 41 mg"})
    assert ok.status_code == 303 and ok.headers["location"] == f"{CAL}#ev-{DOSE}"
    assert next(x for x in records(web) if x["event_id"] == DOSE)["amount"] == 41.0
    assert "41 mg" in c.get(FORM, headers=HTML).text
