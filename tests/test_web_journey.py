"""The patient journey through the API: consent, enrolment (rule, override, randomisation
with concealment), the calendar with its doses and iCalendar, administrations and delays,
dose sign-off bound to the dose, adverse events with CTCAE v5.0 grading and confirmed
toxicity actions, responses with their reasoning, and the de-identified outcomes."""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

import pytest

from trialdesk.protocol.load import default_protocol_dir

AS_OF = "2026-11-21T12:00:00"
EXAMPLES = default_protocol_dir().parent / "examples"


def error(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["ok"] is False and body["status"] == status and "Traceback" not in r.text
    return dict(body)


def fields(body: dict[str, Any]) -> set[str]:
    return {e["field"] for e in body.get("errors", [])}


class Api:
    """An API client logged in as one demo user."""

    def __init__(self, web: Any, user: str) -> None:
        self.c = web.client(user)
        self.password = web.logins[user]

    def get(self, url: str) -> Any:
        return self.c.get(url)

    def post(self, url: str, body: dict[str, Any]) -> Any:
        return self.c.post(url, json=body, headers={"x-csrf-token": self.c.csrf})

    def put(self, url: str, body: dict[str, Any]) -> Any:
        return self.c.put(url, json=body, headers={"x-csrf-token": self.c.csrf})


def enrol(inv: Api, patient: str, **extra: Any) -> Any:
    screening = inv.post(f"/api/patients/{patient}/screenings",
                         {"as_of": AS_OF, "reason": "screening"}).json()
    return inv.post(f"/api/patients/{patient}/enrolment", {
        "screening_id": screening["id"], "password": inv.password,
        "reason": "eligibility confirmed", **extra})


@pytest.fixture
def enrolled(web: Any) -> Api:
    """NBNK-0002 (relapsed: arm B by rule) enrolled with day 1 on Monday 2026-11-23."""
    inv = Api(web, "investigator")
    r = enrol(inv, "NBNK-0002", start="2026-11-23")
    assert r.status_code == 201, r.text
    return inv


def test_consent_is_checked_against_the_protocols_consent_rules(web: Any) -> None:
    coord = Api(web, "coordinator")
    url = "/api/patients/NBNK-0002/consents"
    body = error(coord.post(url, {"version": "1.0", "signed_on": "2026-11-18",
                                  "signed_by": "patient", "reason": "consent"}), 422)
    assert fields(body) == {"$.body.signed_by"} and "a minor" in body["error"]
    body = error(coord.post(url, {"version": "1.0", "signed_on": "2026-11-30",
                                  "signed_by": "parent", "reason": "consent"}), 422)
    assert fields(body) == {"$.body.signed_on"}
    body = error(coord.post(url, {"version": "1.0", "signed_on": "18.11.2026",
                                  "signed_by": "nobody", "reason": ""}), 422)
    assert {"$.body.signed_on", "$.body.signed_by", "$.body.reason"} <= fields(body)
    ok = coord.post(url, {"version": "1.1", "signed_on": "2026-11-19", "signed_by": "guardian",
                          "reason": "new consent form"})
    assert ok.status_code == 201, ok.text
    assert ok.json()["age_years"] == 9 and ok.json()["recorded_by"] == "Demo Coordinator"
    record = coord.get("/api/patients/NBNK-0002").json()
    assert record["consents"][-1]["version"] == "1.1"
    consent = [c for c in record["record"]["consents"] if c["trial_id"] == "NB-NK-2026"]
    assert consent == [{"trial_id": "NB-NK-2026", "signed": True, "date": "2026-11-19",
                        "version": "1.1", "signed_by": "guardian", "assent": None}]


def test_enrolment_by_rule_lays_out_the_calendar_with_doses_and_their_working(
        enrolled: Api) -> None:
    cal = enrolled.get("/api/patients/NBNK-0002/calendar").json()
    assert cal["arm"] == "B" and cal["start"] == "2026-11-23"
    assert "arm B by the protocol's assignment rule" in cal["header"][0]
    assert [(k["number"], k["course_id"], k["date"]) for k in cal["courses"][:3]] == [
        (1, "IT", "2026-11-23"), (2, "DIT", "2026-12-14"), (3, "DIT", "2027-01-04")]
    events = {e["id"]: e for e in cal["calendar"]["events"]}
    assert events["mononuclear-cell-collection"]["date"] == "2026-11-22"  # day −1
    # 28.6 kg, 134 cm: BSA √(28.6 × 134 / 3600) = 1.03 m² (Mosteller); × 50 mg/m² = 51.5 mg.
    irinotecan = events["c1.irinotecan.d1"]["dose"]
    assert irinotecan["shown"] == "51.5 mg/day" and irinotecan["bsa"] == 1.03
    assert irinotecan["working"].startswith("BSA 1.03 m² (Mosteller, 28.6 kg, 134 cm")
    assert "irinotecan 50 mg/m²" in irinotecan["unconfirmed"]
    assert events["c2.dinutuximab-beta.d1"]["dose"]["amount"] == 10.3
    nk = next(e for e in cal["calendar"]["events"] if e["dose"] and
              e["dose"]["agent"].startswith("autologous NK"))
    assert nk["dose"]["amount"] is None and nk["dose"]["shown"].startswith("not set")
    assert any(e["kind"] == "assessment" for e in cal["calendar"]["events"])
    ics = enrolled.get("/api/patients/NBNK-0002/calendar.ics")
    assert ics.status_code == 200 and ics.headers["content-type"].startswith("text/calendar")
    assert b"DTSTART;VALUE=DATE:20261123" in ics.content
    assert b"c1.irinotecan.d1.NBNK-0002.NB-NK-2026@trialdesk" in ics.content


def test_an_override_enrols_an_undetermined_patient_and_is_shown_everywhere(web: Any) -> None:
    inv = Api(web, "investigator")
    refused = enrol(inv, "NBNK-0003", start="2026-11-23")
    body = error(refused, 422)
    assert "undetermined" in body["error"] and "override" in body["error"]
    assert fields(body) == {"$.body.screening_id"}
    r = enrol(inv, "NBNK-0003", start="2026-11-23",
              override_reason="LVEF 62% by cardiac MRI on 2026-11-17; echo pending")
    assert r.status_code == 201, r.text
    cal = inv.get("/api/patients/NBNK-0003/calendar").json()
    assert cal["header"][0] == ("ENROLLED BY OVERRIDE of a undetermined screening: Demo "
                                "Investigator: LVEF 62% by cardiac MRI on 2026-11-17; echo "
                                "pending")
    patient = inv.get("/api/patients/NBNK-0003").json()
    assert patient["journey"]["override_by"] == "Demo Investigator"
    assert patient["journey"]["arm_basis"] == "rule"


def test_enrolment_refuses_bad_settings_naming_the_field(web: Any) -> None:
    inv = Api(web, "investigator")
    body = error(enrol(inv, "NBNK-0002", start="2026-11-01"), 422)
    assert fields(body) == {"$.body.start"} and "before consent" in body["error"]
    body = error(enrol(inv, "NBNK-0002", anchors={"septic_shock_onset": "2026-11-21T06:00"}),
                 422)
    assert fields(body) == {"$.body.anchors.septic_shock_onset"}
    body = error(enrol(inv, "NBNK-0002", override_arm="A"), 422)
    assert fields(body) == {"$.body.override_arm"}
    assert inv.get("/api/patients/NBNK-0002/calendar").status_code == 404


def test_administrations_partial_doses_withheld_and_delays(enrolled: Api) -> None:
    coord, url = enrolled, "/api/patients/NBNK-0002/records"
    given = coord.post(url, {"event_id": "c1.irinotecan.d1", "status": "given",
                             "at": "2026-11-21T09:00", "amount": 51.5, "reason": "given"})
    assert given.status_code == 201, given.text
    event = next(e for e in given.json()["calendar"]["events"] if e["id"] == "c1.irinotecan.d1")
    assert event["status"] == "given" and event["out_of_window"]  # before its day
    assert event["record"]["unit"] == "mg"  # the plan's unit
    body = error(coord.post(url, {"event_id": "c1.temozolomide.d1", "status": "partly_given",
                                  "at": "2026-11-21T09:00", "amount": 105, "reason": "x"}), 422)
    assert fields(body) == {"$.body.amount"} and "record it as given" in body["error"]
    body = error(coord.post(url, {"event_id": "c1.temozolomide.d1", "status": "withheld",
                                  "at": "2026-11-21T09:00", "reason": "x"}), 422)
    assert fields(body) == {"$.body.why"}
    body = error(coord.post(url, {"event_id": "c1.temozolomid.d1", "status": "given",
                                  "at": "2026-11-21T09:00", "amount": 1, "reason": "x"}), 422)
    assert fields(body) == {"$.body.event_id"} and "did you mean" in body["error"]
    body = error(coord.post(url, {"event_id": "c1.irinotecan.d1", "status": "given",
                                  "at": "2026-11-21T09:00", "amount": 51.5, "reason": "x"}), 422)
    assert "already recorded" in body["error"]
    withheld = coord.post(url, {"event_id": "c1.temozolomide.d1", "status": "withheld",
                                "at": "2026-11-21T09:00", "why": "vomiting",
                                "reason": "withheld"})
    assert withheld.status_code == 201
    delayed = coord.post("/api/patients/NBNK-0002/delays",
                         {"course": 2, "days": 7, "why": "ANC 0.4", "reason": "delay"})
    assert delayed.status_code == 201, delayed.text
    courses = {k["number"]: k for k in delayed.json()["courses"]}
    assert courses[2]["date"] == "2026-12-21" and courses[2]["shifted_days"] == 7
    body = error(coord.post("/api/patients/NBNK-0002/delays",
                            {"course": 1, "days": 7, "why": "x", "reason": "x"}), 422)
    assert fields(body) == {"$.body.course"} and "already started" in body["error"]


def test_a_dose_sign_off_is_bound_to_the_dose(web: Any, enrolled: Api) -> None:
    pharmacist = Api(web, "pharmacist")
    url = "/api/patients/NBNK-0002/dose-signatures"
    wrong = pharmacist.post(url, {"event_id": "c2.irinotecan.d1", "password": "nope",
                                  "reason": "sign-off"})
    assert "nothing was signed" in error(wrong, 401)["error"]
    r = pharmacist.post(url, {"event_id": "c2.irinotecan.d1", "password": "pharmacist-demo",
                              "reason": "sign-off"})
    assert r.status_code == 201, r.text
    sig = r.json()
    assert (sig["name"], sig["meaning"]) == ("Demo Pharmacist", "I sign off this dose")
    assert re.fullmatch(r"2026-11-21T12:00:\d\d\.\d{6}Z", sig["signed_at"])
    body = error(pharmacist.post(url, {"event_id": "c1", "password": "pharmacist-demo",
                                       "reason": "x"}), 422)
    assert fields(body) == {"$.body.event_id"}
    from trialdesk.services.accounts import Principal
    from trialdesk.services.journeys import calendar_page

    ctx = web.app.state.ctx

    user = web.store.user_by_name("investigator")
    principal = Principal(user, tuple(web.store.memberships(user.id)))

    def signed() -> dict[str, Any]:
        events = calendar_page(ctx, principal, "NBNK-0002")["calendar"]["events"]
        event: dict[str, Any] = next(e for e in events if e["id"] == "c2.irinotecan.d1")
        return event

    assert [s["valid"] for s in signed()["signatures"]] == [True]
    # A weight 20% lower before course 2 (beyond the protocol's 10% threshold) recomputes
    # the dose: the signature no longer matches what would be given.
    assert enrolled.post("/api/patients/NBNK-0002/body", {
        "on": "2026-11-21", "weight_kg": 22.0, "reason": "weighed"}).status_code == 201
    event = signed()
    assert event["dose"]["amount"] != 51.5
    assert [s["valid"] for s in event["signatures"]] == [False]


def test_calendar_settings_are_optimistically_locked(web: Any, enrolled: Api) -> None:
    coord = Api(web, "coordinator")
    version = enrolled.get("/api/patients/NBNK-0002/calendar").json()["version"]
    ok = enrolled.put("/api/patients/NBNK-0002/calendar",
                      {"version": version, "start": "2026-11-24", "reason": "bed available"})
    assert ok.status_code == 200 and ok.json()["start"] == "2026-11-24"
    stale = coord.put("/api/patients/NBNK-0002/calendar",
                      {"version": version, "start": "2026-11-25", "reason": "stale"})
    body = error(stale, 409)
    assert f"now version {version + 1}" in body["error"] and "changed by investigator" in \
        body["error"]


def test_adverse_events_are_graded_by_ctcae_and_propose_the_protocols_actions(
        web: Any, enrolled: Api) -> None:
    coord = Api(web, "coordinator")
    url = "/api/patients/NBNK-0002/adverse-events"
    body = error(coord.post(url, {"term": "Pain", "grade": 4, "onset": "2026-11-21",
                                  "reason": "AE"}), 422)
    assert fields(body) == {"$.body.grade"} and "grade 4 does not exist for 'Pain'" in \
        body["error"]
    body = error(coord.post(url, {"term": "Odd rash", "grade": 2, "onset": "2026-11-21",
                                  "reason": "AE"}), 422)
    assert fields(body) == {"$.body.meddra_term"}
    body = error(coord.post(url, {"term": "Fever", "grade": 1, "onset": "2026-11-22",
                                  "reason": "AE"}), 422)
    assert fields(body) == {"$.body.onset"} and "future" in body["error"]
    body = error(coord.post(url, {"term": "Fever", "grade": 1, "onset": "2026-11-20",
                                  "reason": "AE"}), 422)
    assert fields(body) == {"$.body.onset"} and "before the enrolment" in body["error"]
    # Automatic lab grading (CTCAE v5.0): 800/mm³ with LLN 1800 is grade 3.
    lab = coord.post(url, {"onset": "2026-11-21", "lab": {
        "term": "Neutrophil count decreased", "value": 800, "unit": "/mm3", "lln": 1800},
        "reason": "lab"})
    assert lab.status_code == 201, lab.text
    assert (lab.json()["term"], lab.json()["grade"]) == ("Neutrophil count decreased", 3)
    assert lab.json()["lab"]["grade"] == 3 and lab.json()["course_number"] is None
    body = error(coord.post(url, {"grade": 4, "onset": "2026-11-21", "lab": {
        "term": "Neutrophil count decreased", "value": 800, "unit": "/mm3", "lln": 1800},
        "reason": "lab"}), 422)
    assert fields(body) == {"$.body.grade"} and "the lab grades 3" in body["error"]
    sepsis = coord.post(url, {"term": "Catheter related infection", "grade": 2,
                              "onset": "2026-11-21", "reason": "AE"}).json()
    assert [a["rule_id"] for a in sepsis["actions"]] == ["NBNK-LINE-INFECTION"]
    assert sepsis["actions"][0]["status"] == "advice"
    assert not sepsis["actions"][0]["requires_confirmation"]


def test_a_confirmed_toxicity_action_changes_the_calendar_under_an_e_signature(
        web: Any, enrolled: Api) -> None:
    web.clock.advance(days=23)  # 2026-12-14: course 2 (DIT), dinutuximab beta day 1
    inv, coord = Api(web, "investigator"), Api(web, "coordinator")
    ae = coord.post("/api/patients/NBNK-0002/adverse-events", {
        "term": "Anaphylaxis", "grade": 3, "onset": "2026-12-14", "meddra_term": "Anaphylaxis",
        "seriousness": ["life_threatening"],
        "attributions": [{"agent": "dinutuximab beta", "attribution": "probable"}],
        "reason": "AE"})
    assert ae.status_code == 201, ae.text
    assert ae.json()["course_number"] == 2 and ae.json()["course_id"] == "DIT"
    [action] = ae.json()["actions"]
    assert action["rule_id"] == "NBNK-ANAPHYLAXIS" and action["requires_confirmation"]
    assert action["shown"].startswith("discontinue dinutuximab beta")
    assert action["unconfirmed"] and action["status"] == "proposed"
    url = f"/api/patients/NBNK-0002/actions/{action['id']}/confirmation"
    base = {"version": action["version"], "password": inv.password, "reason": "confirmed"}
    body = error(inv.post(url, base), 422)
    assert fields(body) == {"$.body.accept_unconfirmed"}
    assert error(inv.post(url, {**base, "accept_unconfirmed": True, "password": "x"}),
                 401)["error"].endswith("nothing was signed")
    assert error(coord.post(url, {**base, "accept_unconfirmed": True}), 403)
    r = inv.post(url, {**base, "accept_unconfirmed": True})
    assert r.status_code == 201, r.text
    confirmed = r.json()
    sig = confirmed["signature"]
    assert (sig["name"], sig["meaning"], sig["valid"]) == (
        "Demo Investigator", "I confirm this toxicity action", True)
    assert confirmed["status"] == "confirmed" and confirmed["applied"]["event_ids"]
    cal = inv.get("/api/patients/NBNK-0002/calendar").json()["calendar"]
    events = {e["id"]: e for e in cal["events"]}
    assert events["c3.dinutuximab-beta.d1"]["status"] == "discontinued"
    assert events["c3.irinotecan.d1"]["status"] == "planned"
    assert cal["actions"][0]["rule_id"] == "NBNK-ANAPHYLAXIS"
    again = inv.post(url, {**base, "accept_unconfirmed": True})
    assert error(again, 409)


def test_a_follow_up_of_an_adverse_event_is_optimistically_locked(web: Any,
                                                                  enrolled: Api) -> None:
    coord = Api(web, "coordinator")
    ae = coord.post("/api/patients/NBNK-0002/adverse-events", {
        "term": "Diarrhea", "grade": 2, "onset": "2026-11-21", "reason": "AE"}).json()
    url = f"/api/patients/NBNK-0002/adverse-events/{ae['id']}"
    ok = enrolled.put(url, {"version": 1, "resolution": "2026-11-21", "outcome": "recovered",
                            "reason": "resolved"})
    assert ok.status_code == 200 and ok.json()["version"] == 2
    assert error(coord.put(url, {"version": 1, "outcome": "not_recovered",
                                 "reason": "stale"}), 409)
    body = error(coord.put(url, {"version": 2, "outcome": "fatal", "reason": "x"}), 422)
    assert fields(body) == {"$.body.outcome"}


def test_response_assessments_show_their_reasoning(web: Any, enrolled: Api) -> None:
    url = "/api/patients/NBNK-0002/responses"
    document = json.loads((EXAMPLES / "response" / "inrc-pr.json").read_text())
    r = enrolled.post(url, {"criteria": "INRC", "assessed_on": "2026-11-21",
                            "document": document, "reason": "assessment"})
    assert r.status_code == 201, r.text
    assert r.json()["overall"] == "PR"
    assert any("PR" in line for line in r.json()["result"]["reasoning"])
    assert r.json()["result"]["unconfirmed"]  # INRC thresholds not checked against Park 2017
    body = error(enrolled.post(url, {"criteria": "RECIST", "assessed_on": "2026-11-21",
                                     "document": document, "reason": "x"}), 422)
    assert fields(body) == {"$.body.criteria"} and "INRC 2017" in body["error"]
    bad = {**document, "marrow": {"baseline_pct": 30, "current_pct": "three"}}
    body = error(enrolled.post(url, {"criteria": "INRC", "assessed_on": "2026-11-21",
                                     "document": bad, "reason": "x"}), 422)
    assert fields(body) == {"$.body.document.marrow.current_pct"}


def test_recist_time_points_carry_the_nadir_for_refnot(web: Any) -> None:
    inv = Api(web, "investigator")
    items = inv.get("/api/patients/REFNOT-0002/responses").json()["items"]
    assert [(i["kind"], i["overall"]) for i in items] == [("baseline", None),
                                                          ("time_point", "PR")]
    # 60 → 42 mm: −30% against the baseline, PR (Eisenhauer 2009).
    assert items[1]["result"]["sum_mm"] == 42 and items[1]["result"]["nadir_mm"] == 60
    r = inv.post("/api/patients/REFNOT-0002/responses", {
        "criteria": "RECIST", "assessed_on": "2026-11-21", "reason": "x",
        "document": {"targets": {"L1": 30, "P1": 12}, "new_lesions": False}})
    assert "same day" in error(r, 422)["error"]


def test_randomisation_takes_the_sealed_list_and_never_shows_its_entries(web: Any) -> None:
    admin = Api(web, "administrator")
    status = admin.get("/api/trials/RuMCeSS/randomisation").json()
    assert status["verified"] and status["list"]["allocated"] == 1
    assert re.fullmatch(r"[0-9a-f]{64}", status["list"]["digest"])
    text = json.dumps(status)
    assert "entries\": [" not in text and "seed" not in text and "block" not in text
    again = admin.post("/api/trials/RuMCeSS/randomisation", {"seed": 1, "reason": "again"})
    assert "never replaced" in error(again, 409)["error"]
    inv = Api(web, "investigator")
    patient = inv.get("/api/patients/RUMCES-0001").json()
    assert patient["journey"]["arm_basis"] == "randomisation"
    allocation = patient["journey"]["allocation"]
    assert allocation["arm"] in ("MSC", "SOC") and allocation["sequence"] == 1
    assert allocation["list_digest"] == status["list"]["digest"]
    cal = inv.get("/api/patients/RUMCES-0001/calendar").json()
    infusion = next((e for e in cal["calendar"]["events"] if e["kind"] == "timed"), None)
    if allocation["arm"] == "MSC":
        assert infusion is not None and infusion["deadline"] == "2026-11-21T16:00"
    audit = web.client("monitor").get("/api/trials/RuMCeSS/audit?limit=200").json()["items"]
    generated = [e for e in audit if e["record_type"] == "allocation_list"]
    assert generated and set(generated[0]["changes"]) == {"digest", "entries"}


def test_a_fresh_list_is_generated_once_by_the_administrator(tmp_path: Any) -> None:
    from conftest import WebApp
    from trialdesk.protocol.load import default_protocol_dir
    from trialdesk.services.accounts import hash_password
    from trialdesk.services.demo import import_protocols

    w = WebApp(f"sqlite:///{tmp_path / 't.db'}", seed=False)
    import_protocols(w.store, default_protocol_dir())
    w.store.add_user("admin", "Admin", hash_password("admin-pass"), actor="t", reason="t")
    w.store.add_membership("admin", "RuMCeSS", "administrator", actor="t", reason="t")
    w.logins["admin"] = "admin-pass"
    admin = Api(w, "admin")
    assert admin.get("/api/trials/RuMCeSS/randomisation").json()["list"] is None
    r = admin.post("/api/trials/RuMCeSS/randomisation", {"seed": 20130507, "size": 8,
                                                         "reason": "list"})
    assert r.status_code == 201, r.text
    assert set(r.json()) == {"ok", "trial_id", "randomisation_id", "digest", "entries",
                             "allocated", "created_at", "created_by"}
    from trialdesk.enrolment.enrol import scheme_of
    from trialdesk.enrolment.randomisation import generate_list

    protocol = w.app.state.ctx.catalogue.trial("RuMCeSS")[1].protocol
    expected = generate_list(scheme_of(protocol), 20130507, 8)  # whole blocks of 2 and 4
    assert r.json()["digest"] == expected.digest
    assert r.json()["entries"] == len(expected.entries) >= 8
    body = error(admin.post("/api/trials/RuMCeSS/randomisation", {"seed": -1, "reason": "x"}),
                 422)
    assert fields(body) == {"$.body.seed"}
    w.store.close()


def test_outcomes_and_exports_are_de_identified_and_for_the_statistician(web: Any) -> None:
    stat = Api(web, "statistician")
    Api(web, "coordinator").post("/api/patients/NBNK-0001/follow-ups", {
        "kind": "last_contact", "occurred_on": "2026-11-21", "reason": "seen"})
    page = stat.get("/api/trials/NB-NK-2026/outcomes").json()
    assert page["patients"] == 1 and "OS" in page["km"]
    assert {e["key"] for e in page["endpoints"]} >= {"ORR", "OS"}
    png = stat.get("/api/trials/NB-NK-2026/outcomes/km.png?endpoint=OS")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert error(stat.get("/api/trials/NB-NK-2026/outcomes/km.png?endpoint=XYZ"), 422)
    body = error(stat.get("/api/trials/NB-NK-2026/exports/sdtm.zip"), 422)
    assert fields(body) == {"$.query.country"}
    z = stat.get("/api/trials/NB-NK-2026/exports/sdtm.zip?country=RUS")
    assert z.status_code == 200, z.text
    names = zipfile.ZipFile(io.BytesIO(z.content)).namelist()
    assert {"dm.csv", "ae.csv", "suppae.csv", "ex.csv", "rs.csv"} <= set(names)
    dm = zipfile.ZipFile(io.BytesIO(z.content)).read("dm.csv").decode()
    assert "NB-NK-2026-NBNK-0001" in dm and ",RUS" in dm
    fhir = stat.get("/api/trials/NB-NK-2026/exports/fhir.json")
    assert fhir.status_code == 200 and fhir.json()["resourceType"] == "Bundle"
    pdf = stat.get("/api/trials/NB-NK-2026/reports/dsmb.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    everything = z.content + fhir.content + json.dumps(page).encode()
    for secret in (b"Demo Patient", b"H-NBNK", b"2019-04-12"):
        assert secret not in everything
    assert error(Api(web, "investigator").get("/api/trials/NB-NK-2026/outcomes"), 403)
    assert error(stat.get("/api/patients/NBNK-0001/calendar"), 403)  # not the clinical record


def test_the_dashboard_has_adverse_events_by_term_and_grade_and_responses(web: Any) -> None:
    board = Api(web, "monitor").get("/api/trials/NB-NK-2026/dashboard").json()
    rows = {r["term"]: r["counts"] for r in board["adverse_events"]["rows"]}
    assert rows == {"Catheter related infection": [0, 1, 0, 0, 0],
                    "Neutrophil count decreased": [0, 0, 1, 0, 0]}
    assert board["adverse_events"]["patients"] == 1
    refnot = Api(web, "monitor").get("/api/trials/REFNOT-R2/dashboard").json()
    assert refnot["responses"] == {"assessed": 1, "rows": [{"response": "PR", "patients": 1}]}
    assert refnot["enrolled"] == 1


def test_every_journey_change_is_in_the_audit_trail(web: Any, enrolled: Api) -> None:
    enrolled.post("/api/patients/NBNK-0002/records", {
        "event_id": "c1.irinotecan.d1", "status": "given", "at": "2026-11-21T09:00",
        "amount": 51.5, "reason": "first dose given"})
    trail = web.client("monitor").get("/api/patients/NBNK-0002/audit").json()["items"]
    kinds = [e["record_type"] for e in trail]
    assert kinds[0] == "event_record" and trail[0]["reason"] == "first dose given"
    assert {"enrolment", "journey", "body", "screening"} <= set(kinds)
    assert web.client("monitor").get("/api/audit/verify").json()["intact"]


# Every new body: an empty one is refused with 422 in the one shape, naming every required
# field as a JSON path; a wrong type names that field.
REQUIRED = {
    ("POST", "/api/patients/NBNK-0002/consents"):
        {"$.body.version", "$.body.signed_on", "$.body.signed_by", "$.body.reason"},
    ("PUT", "/api/patients/NBNK-0001/calendar"): {"$.body.version", "$.body.reason"},
    ("POST", "/api/patients/NBNK-0001/body"): {"$.body.on", "$.body.reason"},
    ("POST", "/api/patients/NBNK-0001/records"):
        {"$.body.event_id", "$.body.status", "$.body.at", "$.body.reason"},
    ("POST", "/api/patients/NBNK-0001/delays"):
        {"$.body.course", "$.body.days", "$.body.why", "$.body.reason"},
    ("POST", "/api/patients/NBNK-0001/dose-signatures"):
        {"$.body.event_id", "$.body.password", "$.body.reason"},
    ("POST", "/api/patients/NBNK-0001/adverse-events"): {"$.body.onset", "$.body.reason"},
    ("PUT", "/api/patients/NBNK-0001/adverse-events/1"): {"$.body.version", "$.body.reason"},
    ("POST", "/api/patients/NBNK-0001/actions/1/confirmation"):
        {"$.body.version", "$.body.password", "$.body.reason"},
    ("POST", "/api/patients/NBNK-0001/responses"):
        {"$.body.criteria", "$.body.assessed_on", "$.body.document", "$.body.reason"},
    ("POST", "/api/patients/NBNK-0001/follow-ups"):
        {"$.body.kind", "$.body.occurred_on", "$.body.reason"},
    ("POST", "/api/trials/RuMCeSS/randomisation"): {"$.body.reason"},
    ("POST", "/api/patients/NBNK-0002/enrolment"):
        {"$.body.screening_id", "$.body.password", "$.body.reason"},
}


@pytest.mark.parametrize(("method", "url"), sorted(REQUIRED))
def test_every_new_body_is_validated_naming_the_fields(web: Any, method: str, url: str) -> None:
    inv = web.client("investigator")
    h = {"x-csrf-token": inv.csrf}
    body = error(inv.request(method, url, json={}, headers=h), 422)
    assert fields(body) == REQUIRED[(method, url)]
    body = error(inv.request(method, url, json={"unexpected": 1}, headers=h), 422)
    assert "$.body.unexpected" in fields(body)


def test_wrong_types_name_the_field(web: Any) -> None:
    inv = Api(web, "investigator")
    body = error(inv.post("/api/patients/NBNK-0001/records", {
        "event_id": "C1 IRINOTECAN", "status": "eaten", "at": "soon", "amount": -1,
        "reason": "x"}), 422)
    assert {"$.body.event_id", "$.body.status", "$.body.at", "$.body.amount"} <= fields(body)
    body = error(inv.post("/api/patients/NBNK-0001/adverse-events", {
        "term": "Fever", "grade": 7, "onset": "2026-11-21", "seriousness": ["bad"],
        "attributions": [{"agent": "x", "attribution": "maybe"}], "reason": "x"}), 422)
    assert {"$.body.grade", "$.body.seriousness[0]",
            "$.body.attributions[0].attribution"} <= fields(body)
