"""The JSON API: the one error shape, validation, search, screening, patients, log-in and
lock-out, CSRF, e-signatures, optimistic locking and versioned protocols."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trialdesk.protocol.load import default_protocol_dir
from trialdesk.store.audit import digest

EXAMPLES = default_protocol_dir().parent / "examples" / "patients"
AS_OF = "2026-11-21T12:00:00"


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text())


def assert_error_shape(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["ok"] is False and body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["title"], str) and body["title"]
    assert set(body) <= {"ok", "error", "status", "title", "errors"}
    assert "Traceback" not in r.text
    return dict(body)


# ---------------------------------------------------------------------------- error shape


def test_every_kind_of_error_has_the_one_shape(web: Any) -> None:
    anon = web.client()
    inv = web.client("investigator")
    assert_error_shape(anon.get("/api/nowhere"), 404)
    assert_error_shape(anon.get("/api/trials/NO-SUCH-TRIAL"), 404)
    assert_error_shape(anon.delete("/api/trials"), 405)
    assert_error_shape(anon.get("/api/me"), 401)
    assert_error_shape(web.client("pharmacist").get("/api/trials/NB-NK-2026/dashboard"), 403)
    body = assert_error_shape(anon.get("/api/trials?limit=0"), 422)
    assert body["errors"] == [{"field": "$.query.limit",
                               "reason": "Input should be greater than or equal to 1"}]
    body = assert_error_shape(inv.post("/api/patients", json={"trial_id": "NB-NK-2026"},
                                       headers={"x-csrf-token": inv.csrf}), 422)
    fields = {e["field"] for e in body["errors"]}
    assert {"$.body.site", "$.body.record", "$.body.reason"} <= fields


def test_an_unexpected_error_is_a_500_in_the_same_shape_without_a_traceback(
        web: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from trialdesk.services import patients as operations

    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(operations, "trial_page", boom)
    r = web.client(raise_errors=False).get("/api/trials/NB-NK-2026")
    assert assert_error_shape(r, 500)["title"] == "Server error"
    assert "secret internals" not in r.text


def test_bad_patient_values_name_the_field_and_the_reason(web: Any) -> None:
    anon = web.client()
    bad = example("nb-refractory.json")
    bad["observations"][7]["value"] = 300  # LVEF 300 %
    body = assert_error_shape(anon.post("/api/screen", json={"patient": bad}), 422)
    assert body["errors"][0]["field"] == "$.patient: $.observations[7].value"
    assert "impossible" in body["errors"][0]["reason"]
    wrong_type = example("nb-refractory.json")
    wrong_type["birth_date"] = "yesterday"
    body = assert_error_shape(anon.post("/api/screen", json={"patient": wrong_type}), 422)
    assert body["errors"][0]["field"] == "$.body.patient.birth_date"
    body = assert_error_shape(anon.post("/api/screen", content=b"{not json",
                                        headers={"content-type": "application/json"}), 422)
    assert body["errors"][0]["field"].startswith("$.body")


def test_a_request_larger_than_the_limit_is_refused_with_413(web: Any) -> None:
    big = {"patient": {**example("nb-refractory.json"), "findings": [
        {"name": "neuropathic_pain", "value": False, "date": "2026-11-16"}] * 4000}}
    assert len(json.dumps(big)) > web.settings.max_upload_bytes + 64 * 1024
    assert_error_shape(web.client().post("/api/screen", json=big), 413)


def test_openapi_is_served(web: Any) -> None:
    spec = web.client().get("/api/openapi.json").json()
    assert {"/api/trials", "/api/screen", "/api/patients", "/api/patients/{study_number}"} <= set(
        spec["paths"])
    assert "PatientRecord" in spec["components"]["schemas"]


# ---------------------------------------------------------------------------- trials


def ids(r: Any) -> list[str]:
    assert r.status_code == 200, r.text
    return [t["id"] for t in r.json()["items"]]


@pytest.mark.parametrize(("query", "expected"), [
    ("", ["DB-POSTCONS", "NB-NK-2026", "REFNOT-R2", "RuMCeSS"]),
    ("condition=neuroblastoma", ["DB-POSTCONS", "NB-NK-2026"]),
    ("intervention=NK cell", ["NB-NK-2026"]),
    ("intervention=dinutuximab", ["DB-POSTCONS", "NB-NK-2026"]),
    ("phase=PHASE3", ["NB-NK-2026"]),
    ("status=COMPLETED", ["REFNOT-R2"]),
    ("q=NCT07375563", ["NB-NK-2026"]),
    ("condition=neuroblastoma&age_years=1", ["DB-POSTCONS"]),  # NB-NK-2026 starts at 18 months
    ("condition=neuroblastoma&age_years=1.5", ["DB-POSTCONS", "NB-NK-2026"]),
    ("age_years=18.9", ["DB-POSTCONS", "NB-NK-2026", "REFNOT-R2", "RuMCeSS"]),
    ("age_years=19", ["DB-POSTCONS", "REFNOT-R2", "RuMCeSS"]),
])
def test_search_by_condition_intervention_phase_status_and_age(web: Any, query: str,
                                                               expected: list[str]) -> None:
    assert ids(web.client().get(f"/api/trials?{query}")) == expected


def test_lists_are_paginated(web: Any) -> None:
    c = web.client()
    first = c.get("/api/trials?limit=3").json()
    assert (first["total"], len(first["items"]), first["offset"]) == (4, 3, 0)
    assert first["next"].endswith("offset=3") or "offset=3" in first["next"]
    second = c.get(first["next"].replace("https://testserver", "")).json()
    assert [t["id"] for t in second["items"]] == ["RuMCeSS"] and second["next"] is None


def test_trial_detail_has_the_registry_content_regimens_and_lint(web: Any) -> None:
    t = web.client().get("/api/trials/NB-NK-2026").json()
    assert t["sponsor"].startswith("Federal Research Institute")
    assert "NCT07375563" in t["identifiers"] and "NCHPOI-2025-10" in t["identifiers"]
    assert t["ages"] == "18 Months to 18 Years old"
    assert t["volunteers"] == "No Healthy Volunteers"
    assert t["protocol_version"]["number"] == 1
    assert any("Day -1: Mononuclear-cell collection" in line for a in t["arms"]
               for line in a["regimen"])
    assert any(f["code"] == "unconfirmed" for f in t["lint"])
    assert [i["id"] for i in t["inclusion"]][:2] == ["I1", "I2"]


# ---------------------------------------------------------------------------- screening


def test_screening_gives_the_same_verdicts_as_the_command_line(web: Any) -> None:
    c = web.client()
    expected = {"nb-refractory.json": ("eligible", "A"), "nb-relapsed.json": ("eligible", "B"),
                "nb-missing-labs.json": ("undetermined", "A")}
    for name, (verdict, arm) in expected.items():
        r = c.post("/api/screen", json={"patient": example(name), "trial_id": "NB-NK-2026",
                                        "as_of": AS_OF})
        [result] = r.json()["results"]
        assert (result["verdict"], result["arm"]) == (verdict, arm), name
        assert result["protocol_version"] == "1.0"


def test_screening_against_every_trial_lists_what_would_resolve_the_unknowns(web: Any) -> None:
    r = web.client().post("/api/screen", json={"patient": example("nb-missing-labs.json"),
                                               "as_of": AS_OF})
    results = {x["trial_id"]: x for x in r.json()["results"]}
    assert set(results) == {"DB-POSTCONS", "NB-NK-2026", "REFNOT-R2", "RuMCeSS"}
    nb = results["NB-NK-2026"]
    assert nb["verdict"] == "undetermined"
    unknown = [c["id"] for c in nb["criteria"] if c["outcome"] == "unknown"]
    assert unknown == ["I7", "I8", "I9"]
    hinted = {h["fact"] for h in nb["hints"]}
    assert hinted == set(nb["missing_facts"]) and hinted
    assert all(h["record"] and h["reason"] for h in nb["hints"])


# ---------------------------------------------------------------------------- session


def test_session_cookies_are_secure_httponly_and_samesite(web: Any) -> None:
    r = web.client().post("/api/login", json={"username": "monitor", "password": "monitor-demo"})
    cookies = r.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("td_session="))
    assert "HttpOnly" in session and "Secure" in session and "samesite=lax" in session.lower()
    assert "Content-Security-Policy" in r.headers or "content-security-policy" in r.headers


def test_wrong_passwords_are_throttled_then_allowed_after_the_delay(web: Any) -> None:
    c = web.client()

    def attempt(password: str) -> Any:
        return c.post("/api/login", json={"username": "coordinator", "password": password})

    for _ in range(web.settings.lockout_threshold):
        assert assert_error_shape(attempt("wrong"), 401)["error"] == "wrong user name or password"
    throttled = assert_error_shape(attempt("coordinator-demo"), 401)
    assert throttled["error"] == "wrong user name or password"  # says nothing of a lock
    web.clock.advance(minutes=1)
    assert attempt("coordinator-demo").status_code == 200
    actions = [e.action for e in web.store.audit_entries(record_type="user",
                                                         record_id="coordinator").items]
    assert actions[:1] == ["login"] and actions.count("login_failed") == 6


def test_unknown_users_get_the_same_answer_as_wrong_passwords(web: Any) -> None:
    r = web.client().post("/api/login", json={"username": "nobody", "password": "x"})
    assert assert_error_shape(r, 401)["error"] == "wrong user name or password"


def test_logout_ends_the_session_for_good(web: Any) -> None:
    c = web.client("investigator")
    old = c.cookies.get("td_session")
    assert c.get("/api/me").status_code == 200
    assert c.post("/api/logout", headers={"x-csrf-token": c.csrf}).status_code == 200
    c.cookies.set("td_session", old, domain="testserver.local")
    c.cookies.clear()
    c.cookies.set("td_session", old)
    assert_error_shape(c.get("/api/me"), 401)


def test_sessions_expire(web: Any) -> None:
    c = web.client("investigator")
    web.clock.advance(hours=web.settings.session_hours + 0.1)
    assert_error_shape(c.get("/api/me"), 401)


def test_unsafe_calls_need_the_csrf_token_of_this_session(web: Any) -> None:
    inv = web.client("investigator")
    coord = web.client("coordinator")
    body = {"reason": "screening", "as_of": AS_OF}
    url = "/api/patients/NBNK-0002/screenings"
    assert_error_shape(inv.post(url, json=body), 403)
    assert_error_shape(inv.post(url, json=body, headers={"x-csrf-token": "forged"}), 403)
    assert_error_shape(inv.post(url, json=body, headers={"x-csrf-token": coord.csrf}), 403)
    assert inv.post(url, json=body, headers={"x-csrf-token": inv.csrf}).status_code == 201


# ---------------------------------------------------------------------------- patients


def test_patients_are_created_with_a_study_number_and_audited(web: Any) -> None:
    inv = web.client("investigator")
    r = inv.post("/api/patients", headers={"x-csrf-token": inv.csrf}, json={
        "trial_id": "NB-NK-2026", "site": "Moscow", "record": example("nb-relapsed.json"),
        "identifiers": {"name": "New Patient", "hospital_number": "H-77"},
        "reason": "referred for screening"})
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["study_number"] == "NBNK-0004" and p["record"]["patient_id"] == "NBNK-0004"
    assert p["identifiers"] == {"name": "New Patient", "hospital_number": "H-77"}
    [entry] = web.store.audit_entries(record_id="NBNK-0004").items
    assert (entry.username, entry.action, entry.reason) == ("investigator", "create",
                                                           "referred for screening")


def test_identifiers_are_shown_only_to_the_roles_that_need_them(web: Any) -> None:
    seen = {}
    for role in ("investigator", "coordinator", "monitor", "pharmacist", "statistician",
                 "administrator"):
        p = web.client(role).get("/api/patients/NBNK-0001").json()
        seen[role] = ("identifiers" in p, "birth_date" in p["record"])
    assert seen == {"investigator": (True, True), "coordinator": (True, True),
                    "monitor": (True, True), "pharmacist": (False, False),
                    "statistician": (False, False), "administrator": (False, False)}


def test_a_stale_save_is_refused_with_a_clear_message(web: Any) -> None:
    inv = web.client("investigator")
    coord = web.client("coordinator")
    record = inv.get("/api/patients/NBNK-0003").json()["record"]
    changed = {**record, "sex": "male"}
    ok = inv.put("/api/patients/NBNK-0003", headers={"x-csrf-token": inv.csrf},
                 json={"version": 1, "record": changed, "reason": "sex corrected"})
    assert ok.status_code == 200 and ok.json()["version"] == 2
    stale = coord.put("/api/patients/NBNK-0003", headers={"x-csrf-token": coord.csrf},
                      json={"version": 1, "record": record, "reason": "my edit"})
    body = assert_error_shape(stale, 409)
    assert "changed by investigator" in body["error"] and "now version 2" in body["error"]
    assert inv.get("/api/patients/NBNK-0003").json()["record"]["sex"] == "male"
    trail = web.client("monitor").get("/api/patients/NBNK-0003/audit").json()["items"]
    assert trail[0]["changes"] == {"$.record.sex": {"old": "female", "new": "male"}}
    assert trail[0]["reason"] == "sex corrected"


def test_eligibility_is_confirmed_with_an_e_signature_bound_to_the_screening(web: Any) -> None:
    inv = web.client("investigator")
    h = {"x-csrf-token": inv.csrf}
    screening = inv.post("/api/patients/NBNK-0002/screenings", headers=h,
                         json={"as_of": AS_OF, "reason": "screening"}).json()
    assert screening["result"]["verdict"] == "eligible"
    wrong = inv.post("/api/patients/NBNK-0002/enrolment", headers=h, json={
        "screening_id": screening["id"], "password": "not-mine", "reason": "confirm"})
    assert "nothing was signed" in assert_error_shape(wrong, 401)["error"]
    assert web.store.enrolment("NBNK-0002") is None
    r = inv.post("/api/patients/NBNK-0002/enrolment", headers=h, json={
        "screening_id": screening["id"], "password": "investigator-demo",
        "reason": "eligibility confirmed"})
    assert r.status_code == 201, r.text
    e = r.json()
    assert e["arm"] == "B" and e["protocol_version"]["number"] == 1
    sig = e["signature"]
    assert (sig["name"], sig["meaning"]) == ("Demo Investigator",
                                             "I confirm the patient is eligible")
    assert sig["signed_at"].startswith("2026-11-21T12:00") and sig["signed_at"].endswith("Z")
    assert sig["record_digest"] == digest(screening["result"]) and e["signature_valid"]
    coord = web.client("coordinator")
    assert_error_shape(coord.post("/api/patients/NBNK-0002/enrolment",
                                  headers={"x-csrf-token": coord.csrf},
                                  json={"screening_id": screening["id"],
                                        "password": "coordinator-demo", "reason": "x"}), 403)


def test_an_amendment_keeps_enrolled_patients_on_their_version(web: Any) -> None:
    admin = web.client("administrator")
    doc = admin.get("/api/trials/NB-NK-2026/versions/1").json()["document"]
    amended = {**doc, "version": "1.1"}
    r = admin.post("/api/trials/NB-NK-2026/versions", headers={"x-csrf-token": admin.csrf},
                   json={"document": amended, "reason": "amendment 1"})
    assert r.status_code == 201 and r.json()["number"] == 2
    assert [v["label"] for v in admin.get("/api/trials/NB-NK-2026/versions").json()["items"]] == [
        "1.0", "1.1"]
    enrolled = web.client("investigator").get("/api/patients/NBNK-0001").json()
    assert enrolled["enrolment"]["protocol_version"] == {"number": 1, "label": "1.0"}
    inv = web.client("investigator")
    new = inv.post("/api/patients/NBNK-0003/screenings", headers={"x-csrf-token": inv.csrf},
                   json={"as_of": AS_OF, "reason": "rescreen"}).json()
    assert new["protocol_version"] == {"number": 2, "label": "1.1"}
    assert new["result"]["protocol_version"] == "1.1"
    bad = {**doc, "eligibility": {"inclusion": "not a list"}}
    body = assert_error_shape(admin.post("/api/trials/NB-NK-2026/versions",
                                         headers={"x-csrf-token": admin.csrf},
                                         json={"document": bad, "reason": "broken"}), 422)
    assert "$.eligibility" in body["error"]


def test_the_deidentified_export_has_no_direct_identifiers(web: Any) -> None:
    text = web.client("statistician").get("/api/trials/NB-NK-2026/export.csv").text
    lines = text.strip().splitlines()
    assert lines[0].startswith("study_number,site,sex,age_years_at_screening")
    assert len(lines) == 4 and lines[1].startswith("NBNK-0001,Moscow,female,7,neuroblastoma,"
                                                   "eligible,1,yes,A,1")
    for secret in ("Demo Patient", "H-NBNK", "2019-04-12", "birth"):
        assert secret not in text


def test_dashboard_counts_screened_eligible_enrolled_per_arm(web: Any) -> None:
    board = web.client("monitor").get("/api/trials/NB-NK-2026/dashboard").json()
    assert (board["screened"], board["eligible"], board["enrolled"]) == (3, 2, 1)
    arms = {a["arm"]: (a["screened"], a["eligible"], a["enrolled"]) for a in board["arms"]}
    assert arms == {"A": (2, 1, 1), "B": (1, 1, 0)}


def test_audit_verify_over_the_api(web: Any) -> None:
    report = web.client("monitor").get("/api/audit/verify").json()
    assert report["intact"] and report["entries"] > 40 and report["problems"] == []
