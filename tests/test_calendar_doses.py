"""Doses on the calendar: the page grouped by course with a "today and the next 7 days"
view; each dose recorded from its own row (given, partly given, withheld; delayed goes to
the course delay) with the infusion details and the weight on the day, the recomputed dose
shown before saving when the weight changed beyond the protocol's threshold; bad values
named by their label with nothing stored; the pharmacist's one signature on a whole
course, which stops matching when a dose changes afterwards; the same through the API.

The demo patient NBNK-0001 (NB-NK-2026, arm A) starts on 2026-11-21, the tests' today;
its doses were computed from 21.4 kg and 118 cm measured on 2026-11-16 (irinotecan
42.0 mg/day); the protocol recomputes doses past a 10 % weight change [unconfirmed].
"""

from __future__ import annotations

import re
from typing import Any

HTML = {"accept": "text/html"}
PATIENT = "NBNK-0001"
CAL = f"/patients/{PATIENT}/calendar"
DOSE = "c1.irinotecan.d2"  # 2026-11-22, 42.0 mg/day
FORM = f"{CAL}/doses/{DOSE}"
GOOD = {"status": "given", "amount": "42", "amount.unit": "mg", "at": "2026-11-21T09:00",
        "stopped_at": "2026-11-21T10:30", "duration_hours": "1.5", "rate_ml_h": "80",
        "volume_ml": "120", "route": "IV", "lot": "IRI-2026-117", "by": "Nurse K"}


def token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def submit(c: Any, page: str, data: dict[str, str], action: str | None = None) -> Any:
    html = c.get(page, headers=HTML).text
    return c.post(action or page, data={"csrf_token": token(html), **data}, headers=HTML,
                  follow_redirects=False)


def records(web: Any) -> list[dict[str, Any]]:
    return list(web.store.journey(PATIENT).records)


def test_the_calendar_is_grouped_by_course_with_the_week_and_row_actions(web: Any) -> None:
    html = web.client("coordinator").get(CAL, headers=HTML).text
    groups = re.findall(r'<details class="course-group" id="group-(\w+)" ?(open)?>', html)
    assert groups[:3] == [("1", "open"), ("2", ""), ("3", "")]
    assert groups[-1][0] == "outside"
    week = html[html.index('id="week"'):html.index('id="events"')]
    assert "Today and the next 7 days (2026-11-21 → 2026-11-28)" in week
    assert 'id="wk-c1.irinotecan.d2"' in week and "c2.irinotecan.d1" not in week
    row = re.search(r'<tr class="kind-administration status-planned" id="ev-c1.irinotecan.d2">'
                    r'.*?</tr>', html, re.S)
    assert row
    links = re.findall(r'<a class="button" href="([^"]+)"', row.group(0))
    assert links == [f"{FORM}?status=given", f"{FORM}?status=partly_given",
                     f"{FORM}?status=withheld"]  # course 1 has started: no delay
    later = re.search(r'id="ev-c2.irinotecan.d1">.*?</tr>', html, re.S)
    assert later and f"{CAL}?delay=2#delay" in later.group(0)
    delay = web.client("coordinator").get(f"{CAL}?delay=2", headers=HTML).text
    assert re.search(r'id="delay-course" name="course" inputmode="numeric" required '
                     r'value="2"', delay)
    # The pharmacist records doses but changes no calendar: no delay button.
    ph = web.client("pharmacist").get(CAL, headers=HTML).text
    assert "?delay=2" not in ph and f"{FORM}?status=given" in ph


def test_a_dose_given_from_its_row_is_stored_audited_and_shown(web: Any) -> None:
    c = web.client("coordinator")
    form = c.get(f"{FORM}?status=given", headers=HTML)
    assert form.status_code == 200
    assert "Planned dose: <span class=\"dose\">42.0 mg/day</span>" in form.text
    assert "more than 10.0%" in form.text and "Alex&#39;s Lemonade" in form.text
    assert '<option value="given" selected>' in form.text
    before = web.store.journey(PATIENT).version
    r = submit(c, FORM, GOOD)
    assert r.status_code == 303 and r.headers["location"] == f"{CAL}#ev-{DOSE}"
    stored = next(x for x in records(web) if x["event_id"] == DOSE)
    assert stored["amount"] == 42.0 and stored["unit"] == "mg" and stored["by"] == "Nurse K"
    assert stored["details"]["lot"] == "IRI-2026-117"
    assert stored["details"]["volume_ml"] == 120.0 and stored["details"]["route"] == "IV"
    assert stored["details"]["stopped_at"] == "2026-11-21T10:30:00"
    assert web.store.journey(PATIENT).version == before + 1
    trail = web.client("monitor").get(f"/api/patients/{PATIENT}/audit").json()["items"]
    entry = next(e for e in trail if e["record_type"] == "event_record")  # newest first
    assert entry["user"] == "coordinator" and "IRI-2026-117" in str(entry["changes"])
    html = c.get(CAL, headers=HTML).text
    row = re.search(rf'<tr class="kind-administration status-given" id="ev-{DOSE}">.*?</tr>',
                    html, re.S)
    assert row and "actual 42 mg" in row.group(0) and "by Nurse K" in row.group(0)
    assert 'class="row-actions"' not in row.group(0)
    again = c.get(f"{FORM}?status=given", headers=HTML).text
    assert "Already recorded: given" in again and 'id="dose-form"' not in again


BAD = [
    ({"amount": "NaN"}, "Actual dose: enter a finite number, not &#39;NaN&#39;"),
    ({"amount": "4x"}, "Actual dose: enter a number such as 12.5"),
    ({"amount": "42", "amount.unit": "g"}, "Actual dose: this dose is prescribed in mg; "
                                           "enter it in mg, not g"),
    ({"at": "2026-11-30T09:00"}, "Start time: 2026-11-30 09:00 is in the future"),
    ({"at": "2026-11-21T13:00", "stopped_at": ""}, "Start time: 2026-11-21 13:00 is in the "
                                                    "future"),
    ({"stopped_at": "2026-11-21T08:00"}, "Stop time: 2026-11-21 08:00 is before the start"),
    ({"volume_ml": "Infinity"}, "Infusion volume: enter a finite number"),
    ({"rate_ml_h": "-5"}, "Infusion rate: enter a value above 0 and at most 10000 mL/h"),
    ({"duration_hours": "1000"}, "Infusion duration: enter a value above 0 and at most 744 h"),
    ({"weight_kg": "400", "measured_on": "2026-11-21"},
     "Weight on the day: 400 kg is outside what is possible (0.3–350 kg)"),
    ({"height_cm": "abc", "measured_on": "2026-11-21"}, "Height on the day: enter a number"),
    ({"weight_kg": "21"}, "Date weight and height were measured: enter the date of the "
                          "measurement"),
    ({"weight_kg": "21", "measured_on": "2026-11-25"},
     "Date weight and height were measured: 2026-11-25 is in the future"),
    ({"route": "intravenous"}, "Route: choose one of: IV, SC, PO, IM, IT"),
    ({"status": "withheld", "amount": "", "stopped_at": "", "duration_hours": "",
      "rate_ml_h": "", "volume_ml": "", "lot": ""}, "Reason: say why the dose was withheld"),
    ({"status": "partly_given", "amount": "50", "why": "line blocked"},
     "Actual dose: a partly given dose is below the planned 42 mg; record it as given"),
]


def test_bad_values_are_named_by_their_label_and_nothing_is_stored(web: Any) -> None:
    c = web.client("coordinator")
    before = web.store.journey(PATIENT)
    for change, message in BAD:
        r = submit(c, FORM, {**GOOD, **change})
        assert r.status_code == 422, (change, r.status_code)
        assert message in r.text, (change, re.findall(r"<li>(.*?)</li>", r.text)[-3:])
        assert 'role="alert"' in r.text
        for k, v in change.items():  # what was typed is kept
            if v and k not in ("status", "amount.unit", "route"):  # lists of fixed choices
                assert f'value="{v}"' in r.text or f'value="{v}" selected' in r.text or \
                    f'<option value="{v}" selected>' in r.text, (k, v)
    after = web.store.journey(PATIENT)
    assert after.version == before.version and after.records == before.records
    assert after.body == before.body


def test_withheld_and_partly_given_from_their_rows(web: Any) -> None:
    c = web.client("pharmacist")
    w = submit(c, f"{CAL}/doses/c1.temozolomide.d2?status=withheld",
               {"status": "withheld", "at": "2026-11-21T08:00", "why": "vomiting"},
               action=f"{CAL}/doses/c1.temozolomide.d2")
    assert w.status_code == 303
    p = submit(c, FORM, {**GOOD, "status": "partly_given", "amount": "30",
                         "why": "infusion stopped: line blocked"})
    assert p.status_code == 303
    got = {r["event_id"]: r for r in records(web)}
    assert got["c1.temozolomide.d2"]["status"] == "withheld"
    assert got["c1.temozolomide.d2"]["reason"] == "vomiting"
    assert "details" not in got["c1.temozolomide.d2"]  # nothing typed beyond the basics
    assert got[DOSE]["status"] == "partly_given" and got[DOSE]["amount"] == 30.0
    html = web.client("investigator").get(CAL, headers=HTML).text
    assert re.search(r'status-withheld" id="ev-c1.temozolomide.d2">.*?vomiting', html, re.S)


def test_a_role_that_gives_no_doses_is_refused(web: Any) -> None:
    monitor = web.client("monitor")
    assert monitor.get(f"{FORM}?status=given", headers=HTML).status_code == 403
    page = monitor.get(CAL, headers=HTML)
    assert page.status_code == 200 and 'class="row-actions"' not in page.text
    r = monitor.post(FORM, data={"csrf_token": token(page.text), **GOOD}, headers=HTML)
    assert r.status_code == 403
    stat = web.client("statistician")
    assert stat.get(f"{FORM}?status=given", headers=HTML).status_code == 403
    assert DOSE not in {x["event_id"] for x in records(web)}


def test_a_weight_change_beyond_the_threshold_shows_the_recomputed_dose_first(web: Any) -> None:
    c = web.client("coordinator")
    heavier = {**GOOD, "weight_kg": "25", "height_cm": "118", "measured_on": "2026-11-21"}
    shown = submit(c, FORM, heavier)
    assert shown.status_code == 200
    assert "The weight changed: dose recomputed (not recorded yet)" in shown.text
    assert "Weight 25 kg on 2026-11-21 is +16.8% from the 21.4 kg (2026-11-16)" in shown.text
    assert re.search(r'id="recomputed-dose">45.5 mg/day</strong> \(planned 42.0 mg/day\)',
                     shown.text)
    assert "BSA 0.91 m² (Mosteller, 25 kg, 118 cm" in shown.text
    assert DOSE not in {x["event_id"] for x in records(web)}  # nothing stored yet
    # "Change the values" goes back to the form with what was typed.
    edit = c.post(FORM, data={"csrf_token": token(shown.text), **heavier, "action": "edit"},
                  headers=HTML)
    assert 'id="dose-form"' in edit.text and 'value="25"' in edit.text
    # A different weight than the one whose dose was shown is shown again, not stored.
    other = c.post(FORM, data={"csrf_token": token(shown.text), **heavier, "weight_kg": "26",
                               "confirmed_weight": "25", "action": "record"}, headers=HTML)
    assert other.status_code == 200 and "+21.5%" in other.text
    done = c.post(FORM, data={"csrf_token": token(shown.text), **heavier,
                              "confirmed_weight": "25", "action": "record"}, headers=HTML,
                  follow_redirects=False)
    assert done.status_code == 303
    stored = next(x for x in records(web) if x["event_id"] == DOSE)
    assert "Recomputed dose: 45.5 mg/day; planned: 42.0 mg/day" in stored["details"]["weight_note"]
    body = web.store.journey(PATIENT).body
    latest = {k: body[-1][k] for k in ("on", "weight_kg", "height_cm")}
    assert latest == {"on": "2026-11-21", "weight_kg": 25.0, "height_cm": 118.0}
    # Measured on course 1's first day: the course's doses now come from the new weight.
    cal = c.get(f"/api/patients/{PATIENT}/calendar").json()["calendar"]
    doses = {e["id"]: e["dose"] for e in cal["events"] if e["dose"]}
    assert doses["c1.irinotecan.d3"]["amount"] == 45.5
    assert doses["c2.irinotecan.d1"]["weight_kg"] == 25.0


def test_a_weight_within_the_threshold_is_saved_at_once(web: Any) -> None:
    r = submit(web.client("coordinator"), FORM,
               {**GOOD, "weight_kg": "22", "measured_on": "2026-11-21"})
    assert r.status_code == 303
    stored = next(x for x in records(web) if x["event_id"] == DOSE)
    assert stored["details"]["weight_kg"] == 22.0 and stored["details"]["weight_note"] is None


def _sign_course(web: Any, user: str, number: int, password: str, scope: str = "course"
                 ) -> Any:
    page = f"/patients/{PATIENT}/courses/{number}/sign-off"
    return submit(web.client(user), page, {"scope": scope, "password": password,
                                           "reason": "checked"})


def test_one_signature_covers_every_dose_of_the_course_until_one_changes(web: Any) -> None:
    page = f"/patients/{PATIENT}/courses/2/sign-off"
    html = web.client("pharmacist").get(page, headers=HTML).text
    doses = re.findall(r'<article class="dose-card" id="dose-([^"]+)">', html)
    assert len(doses) == 15 and "c2.irinotecan.d1" in doses
    assert "c2.autologous-nk-cells.d7" not in doses and "not computed, not signed here" in html
    assert "BSA 0.84 m² (Mosteller, 21.4 kg, 118 cm" in html
    assert "21.4 kg, 118.0 cm, measured on 2026-11-16" in html
    assert "4 × 20" not in html or "capsules" not in html  # the composition is in the working
    wrong = _sign_course(web, "pharmacist", 2, "wrong")
    assert wrong.status_code == 401 and "nothing was signed" in wrong.text
    assert web.store.course_signoffs(PATIENT) == []
    denied = _sign_course(web, "coordinator", 2, "coordinator-demo")
    assert denied.status_code == 403 and web.store.course_signoffs(PATIENT) == []
    ok = _sign_course(web, "pharmacist", 2, "pharmacist-demo")
    assert ok.status_code == 303
    [(sig, number, content)] = web.store.course_signoffs(PATIENT)
    assert number == 2 and sig.meaning == "I sign off all the doses of this course"
    assert web.store.course_signoffs_of([PATIENT, "NBNK-0002"]) == {  # read together
        PATIENT: [(sig, number, content)], "NBNK-0002": []}
    assert [d["event_id"] for d in content["doses"]] == doses
    signed = web.client("pharmacist").get(page, headers=HTML).text
    assert "matches the doses now" in signed and 'id="all-signed"' in signed
    cal = web.client("coordinator").get(CAL, headers=HTML).text
    assert re.search(r'id="group-2" >\s*<summary>Course 2 · DIT: 2026-12-12 → 2027-01-01 — '
                     r'15 of 15 doses signed', cal)
    row = re.search(r'id="ev-c2.irinotecan.d1">.*?</tr>', cal, re.S)
    assert row and "(course 2 signature)" in row.group(0) and "bound to this dose" in row.group(0)
    # A new weight (+16.8 %, beyond 10 %) recomputes course 2: the signature stops matching.
    coord = web.client("coordinator")
    r = coord.post(f"/api/patients/{PATIENT}/body", headers={"x-csrf-token": coord.csrf},
                   json={"on": "2026-11-21", "weight_kg": 25, "reason": "weighed"})
    assert r.status_code == 201, r.text
    after = web.client("pharmacist").get(page, headers=HTML).text
    assert "no longer matches: changed since signing" in after
    assert "c2.irinotecan.d1" in after[after.index("no longer matches"):][:2000]
    assert 'id="all-signed"' not in after and "dose changed since signing" in after
    cal = web.client("coordinator").get(CAL, headers=HTML).text
    assert re.search(r'Course 2 · DIT: .*? — 0 of 15 doses signed', cal)


def test_a_single_dose_is_signed_from_the_course_page(web: Any) -> None:
    r = _sign_course(web, "investigator", 1, "investigator-demo", scope="c1.irinotecan.d3")
    assert r.status_code == 303
    prefixes = [f"{PATIENT}/", "NBNK-0002/", "NBNK-000"]  # (the last: every patient's)
    together = web.store.signatures_under("dose", prefixes)
    assert together == {p: web.store.signatures_for("dose", p) for p in prefixes}
    assert len(together[f"{PATIENT}/"]) >= 2 and together["NBNK-0002/"] == []  # (+ the demo's)
    html = web.client("pharmacist").get(f"/patients/{PATIENT}/courses/1/sign-off",
                                        headers=HTML).text
    card = re.search(r'id="dose-c1.irinotecan.d3">.*?</article>', html, re.S)
    assert card and 'badge outcome-met">signed' in card.group(0)
    other = re.search(r'id="dose-c1.irinotecan.d4">.*?</article>', html, re.S)
    assert other and 'outcome-met">signed' not in other.group(0)
    bad = _sign_course(web, "investigator", 1, "investigator-demo", scope="c1.nothing")
    assert bad.status_code == 422 and "What you sign: no event" in bad.text


def test_the_same_through_the_api(web: Any) -> None:
    c = web.client("coordinator")
    h = {"x-csrf-token": c.csrf}
    form = c.get(f"/api/patients/{PATIENT}/calendar/doses/{DOSE}").json()
    assert form["dose"]["shown"] == "42.0 mg/day" and form["threshold"]["percent"] == 10.0
    assert {f["name"] for f in form["fields"]} >= {"amount", "lot", "rate_ml_h", "weight_kg"}
    values = {k: v for k, v in GOOD.items()} | {"weight_kg": "25", "measured_on": "2026-11-21"}
    preview = c.post(f"/api/patients/{PATIENT}/calendar/doses/{DOSE}/preview", headers=h,
                     json={"values": values}).json()
    assert preview["weight"]["exceeded"] and preview["weight"]["recomputed"]["amount"] == 45.5
    unseen = c.post(f"/api/patients/{PATIENT}/calendar/doses/{DOSE}", headers=h,
                    json={"values": values})
    assert unseen.status_code == 422 and unseen.json()["errors"][0]["field"].endswith(
        "Weight on the day")
    bad = c.post(f"/api/patients/{PATIENT}/calendar/doses/{DOSE}", headers=h,
                 json={"values": {**values, "amount": "lots"}})
    assert bad.status_code == 422 and "Actual dose" in bad.json()["error"]
    assert DOSE not in {x["event_id"] for x in records(web)}
    ok = c.post(f"/api/patients/{PATIENT}/calendar/doses/{DOSE}", headers=h,
                json={"values": values, "confirmed_weight": 25})
    assert ok.status_code == 201 and ok.json()["record"]["details"]["lot"] == "IRI-2026-117"
    ph = web.client("pharmacist")
    signed = ph.post(f"/api/patients/{PATIENT}/courses/3/signatures",
                     headers={"x-csrf-token": ph.csrf},
                     json={"password": "pharmacist-demo", "reason": "course 3 checked"})
    assert signed.status_code == 201 and len(signed.json()["doses"]) == 15
    view = ph.get(f"/api/patients/{PATIENT}/courses/3/sign-off").json()
    assert view["all_signed"] and view["signatures"][0]["valid"]
    spec = c.get("/api/openapi.json").json()["paths"]
    assert "/api/patients/{study_number}/calendar/doses/{dose_id}" in spec
    assert "/api/patients/{study_number}/courses/{number}/signatures" in spec


def test_a_locked_record_refuses_the_dose_and_the_course_signature(web: Any) -> None:
    admin = web.client("administrator")
    r = admin.post(f"/api/patients/{PATIENT}/lock", headers={"x-csrf-token": admin.csrf},
                   json={"locked": True, "reason": "database lock"})
    assert r.status_code == 200, r.text
    before = web.store.journey(PATIENT)
    c = web.client("coordinator")
    dose = c.post(f"/api/patients/{PATIENT}/calendar/doses/{DOSE}",
                  headers={"x-csrf-token": c.csrf}, json={"values": GOOD})
    assert dose.status_code == 409 and "is locked" in dose.json()["error"]
    ph = web.client("pharmacist")
    sig = ph.post(f"/api/patients/{PATIENT}/courses/1/signatures",
                  headers={"x-csrf-token": ph.csrf}, json={"password": "pharmacist-demo"})
    assert sig.status_code == 409 and web.store.course_signoffs(PATIENT) == []
    assert web.store.journey(PATIENT).records == before.records


def test_the_json_dose_content_is_the_signed_content(web: Any) -> None:
    from trialdesk.services.accounts import principal_for
    from trialdesk.services.context import Services
    from trialdesk.services.course_signoff import content_json, signable_json
    from trialdesk.services.journeys import _signable, dose_content, load_journey
    from trialdesk.store.audit import digest

    ctx = Services.open(web.store)
    cal = load_journey(ctx, principal_for(web.store, "pharmacist"), PATIENT).calendar()
    checked = 0
    for e in cal.events:
        assert signable_json(e.to_json()) == _signable(e), e.id
        if _signable(e):
            assert digest(content_json(PATIENT, e.to_json())) == digest(dose_content(PATIENT, e))
            checked += 1
    assert checked > 40


def test_doses_signed_with_their_course_leave_the_pharmacists_worklist(web: Any) -> None:
    def mine() -> list[str]:
        r = web.client("pharmacist").get("/api/worklist")
        lines = next(s["lines"] for s in r.json()["sections"] if s["id"] == "doses")
        return [x["link"] for x in lines if x["study_number"] == PATIENT]

    assert len(mine()) == 8  # days 2-5 of course 1 (the demo signed or gave day 1)
    assert _sign_course(web, "pharmacist", 1, "pharmacist-demo").status_code == 303
    assert mine() == []


def test_a_course_signed_on_the_command_line(web: Any, tmp_path: Any) -> None:
    from test_cli_journey import Cli

    cli = Cli(f"sqlite:///{tmp_path / 'trialdesk.db'}", tmp_path)
    code, _, err = cli("record", "sign-course", "NBNK-0001", "--course", "1", "--by",
                       "pharmacist", password="wrong")
    assert code == 1 and "nothing was signed" in err and web.store.course_signoffs(PATIENT) == []
    out = cli.ok("record", "sign-course", "NBNK-0001", "--course", "1", "--by", "pharmacist",
                 password="pharmacist-demo")
    assert "NBNK-0001: course 1 (10 doses) signed by Demo Pharmacist" in out
    [(_, number, content)] = web.store.course_signoffs(PATIENT)
    assert number == 1 and len(content["doses"]) == 10
    code, _, err = cli("record", "sign-course", "NBNK-0001", "--course", "1", "--by",
                       "coordinator", password="coordinator-demo")
    assert code == 1 and "does not allow dose.sign" in err
