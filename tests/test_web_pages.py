"""The pages: log-in, registry, trial page, screening form, patient page, e-signature,
stale edits, dashboard, audit — and free text escaped on every page."""

from __future__ import annotations

import json
import re
from typing import Any

from trialdesk.protocol.load import default_protocol_dir

EXAMPLES = default_protocol_dir().parent / "examples" / "patients"
HTML = {"accept": "text/html"}


def form_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def test_log_in_and_out_with_the_form(web: Any) -> None:
    c = web.client()
    page = c.get("/login", headers=HTML)
    token = form_token(page.text)
    assert c.post("/login", data={"username": "monitor", "password": "monitor-demo"},
                  headers=HTML).status_code == 403  # no CSRF token
    wrong = c.post("/login", data={"csrf_token": token, "username": "monitor",
                                   "password": "nope"}, headers=HTML)
    assert wrong.status_code == 401 and "wrong user name or password" in wrong.text
    r = c.post("/login", data={"csrf_token": token, "username": "monitor",
                               "password": "monitor-demo", "next": "/patients"},
               headers=HTML, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/patients"
    home = c.get("/patients", headers=HTML)
    assert "Demo Monitor" in home.text and "NBNK-0001" in home.text
    out = c.post("/logout", data={"csrf_token": form_token(home.text)}, headers=HTML,
                 follow_redirects=False)
    assert out.status_code == 303
    assert c.get("/patients", headers=HTML).status_code == 401


def test_the_trial_page_is_laid_out_like_the_registry_page(web: Any) -> None:
    html = web.client().get("/trials/NB-NK-2026", headers=HTML).text
    for text in ("Federal Research Institute", "NCT07375563", "NCHPOI-2025-10",
                 "Status and phase", "Conditions", "Treatments", "Identifiers", "About",
                 "Full description", "Enrollment", "Sex", "Ages", "Volunteers",
                 "Inclusion criteria", "Exclusion criteria", "Trial design", "Arms and regimens",
                 "18 Months to 18 Years old", "No Healthy Volunteers", "Non-Randomized",
                 "None (Open label)", "Day -1: Mononuclear-cell collection", "[unconfirmed]",
                 "Protocol lint findings", "Protocol versions"):
        assert text in html, text
    assert html.index("About") < html.index("Inclusion criteria") < html.index("Trial design")


def test_the_registry_page_searches_with_filters(web: Any) -> None:
    c = web.client()
    html = c.get("/trials?condition=neuroblastoma&phase=PHASE3&status=&age_years=",
                 headers=HTML).text
    assert "1 trial found" in html and "/trials/NB-NK-2026" in html
    assert "/trials/REFNOT-R2" not in html
    bad = c.get("/trials?age_years=old", headers=HTML)
    assert bad.status_code == 422 and "age_years" in bad.text


def _screen(c: Any, data: dict[str, str], files: Any = None) -> Any:
    token = form_token(c.get("/screen", headers=HTML).text)
    return c.post("/screen", data={"csrf_token": token, **data}, files=files, headers=HTML)


def test_the_screening_page_leads_to_the_trials_typed_forms(web: Any) -> None:
    page = web.client().get("/screen?trial_id=NB-NK-2026", headers=HTML).text
    # The chosen trial's form first, then every other trial's; no typed facts here.
    assert re.search(r'<a class="button" id="chosen-form" href="/trials/NB-NK-2026/patients/new">'
                     r"Type the patient into the NB-NK-2026 form</a>", page)
    assert '<a href="/trials/RuMCeSS/patients/new">Type the patient into the RuMCeSS form' in page
    assert 'name="birth_date"' not in page and 'name="obs_name_0"' not in page
    assert "For systems: upload a patient file (JSON)" in page
    assert '<label for="file">Patient file (JSON)</label>' in page


def test_the_uploaded_file_shows_every_criterion_and_the_unknowns(web: Any) -> None:
    record = json.loads((EXAMPLES / "nb-refractory.json").read_text())
    del record["consents"]
    r = _screen(web.client(), {"trial_id": "NB-NK-2026", "as_of": "2026-11-21T12:00",
                               "record_json": json.dumps(record)})
    assert r.status_code == 200, r.text[:500]
    html = r.text
    assert 'class="badge verdict-undetermined"' in html
    assert "To resolve the unknowns, record:" in html
    assert '<tr class="outcome-unknown"' in html
    assert "missing consent_signed: no consent recorded for NB-NK-2026" in html
    assert "<code>consent_signed</code>" in html  # in the list of what to record


def test_screening_form_with_an_uploaded_file(web: Any) -> None:
    data = (EXAMPLES / "nb-refractory.json").read_bytes()
    r = _screen(web.client(), {"as_of": "2026-11-21T12:00"},
                files={"file": ("nb.json", data, "application/json")})
    assert r.status_code == 200
    assert r.text.count('<section class="result') == 4
    assert re.search(r"NB-NK-2026</a>\s*<span class=\"badge verdict-eligible\"", r.text)


def test_an_upload_over_the_limit_is_refused(web: Any) -> None:
    big = b"{" + b" " * (web.settings.max_upload_bytes + 10) + b"}"
    r = _screen(web.client(), {}, files={"file": ("big.json", big, "application/json")})
    assert r.status_code == 413
    assert "larger than" in r.text


def test_bad_form_values_come_back_with_the_field_and_the_reason(web: Any) -> None:
    c = web.client()
    r = _screen(c, {"trial_id": "NB-NK-2026"})  # no file: the typed form is for people
    assert r.status_code == 422 and "Please correct" in r.text
    assert "choose a patient file (JSON) to upload or paste it; to type a patient&#39;s " \
           "facts, open the trial&#39;s form above" in r.text
    r = _screen(c, {"record_json": "{broken"})
    assert r.status_code == 422 and "malformed JSON" in r.text
    bad = json.loads((EXAMPLES / "nb-refractory.json").read_text())
    bad["observations"][7]["value"] = 300
    r = _screen(c, {"record_json": json.dumps(bad)})
    assert r.status_code == 422 and "$.observations[7].value" in r.text and "impossible" in r.text


def test_confirming_eligibility_needs_the_password_and_shows_the_signature(web: Any) -> None:
    c = web.client("investigator")
    page = c.get("/patients/NBNK-0002", headers=HTML).text
    assert "Sign and enrol" in page and "Demo Patient Bravo" in page
    screening_id = re.search(r'name="screening_id" value="(\d+)"', page).group(1)  # type: ignore[union-attr]
    token = form_token(page)
    wrong = c.post("/patients/NBNK-0002/enrol", headers=HTML, data={
        "csrf_token": token, "screening_id": screening_id, "password": "wrong",
        "reason": "eligibility confirmed"})
    assert wrong.status_code == 401 and "nothing was signed" in wrong.text
    ok = c.post("/patients/NBNK-0002/enrol", headers=HTML, data={
        "csrf_token": token, "screening_id": screening_id, "password": "investigator-demo",
        "reason": "eligibility confirmed"})
    assert ok.status_code == 200
    assert "Enrolled in NB-NK-2026, arm <strong>B</strong>" in ok.text
    assert re.search(r"Eligibility signed: <strong>Demo Investigator</strong> \(investigator\), "
                     r"2026-11-21T12:00:\d\d\.\d+Z — <em>I confirm the patient is eligible</em>",
                     ok.text)
    assert "bound to screening" in ok.text


def test_a_stale_edit_on_the_page_is_refused_with_a_clear_message(web: Any) -> None:
    inv, coord = web.client("investigator"), web.client("coordinator")
    first = inv.get("/patients/NBNK-0003/edit", headers=HTML).text
    second = coord.get("/patients/NBNK-0003/edit", headers=HTML).text
    record = json.loads((EXAMPLES / "nb-missing-labs.json").read_text())
    record["patient_id"] = "NBNK-0003"

    def save(c: Any, page: str, sex: str) -> Any:
        return c.post("/patients/NBNK-0003/edit", headers=HTML, data={
            "csrf_token": form_token(page), "version": "1", "reason": "correction",
            "record_json": json.dumps({**record, "sex": sex})})

    assert save(inv, first, "male").status_code == 200
    stale = save(coord, second, "female")
    assert stale.status_code == 409
    assert "now version 2" in stale.text and "reload it" in stale.text


def test_dashboard_and_audit_pages(web: Any) -> None:
    c = web.client("monitor")
    board = c.get("/trials/NB-NK-2026/dashboard", headers=HTML).text
    assert re.search(r'<span class="n">3</span> screened', board)
    assert re.search(r'<span class="n">1</span> enrolled', board)
    audit = c.get("/trials/NB-NK-2026/audit", headers=HTML).text
    assert "Audit chain intact" in audit and "eligibility screening" in audit


PAYLOAD = '<script>alert("xss")</script>'


def test_free_text_is_escaped_on_every_page(web: Any) -> None:
    web.add_user("evil", "investigator", "NB-NK-2026")
    web.store.add_user("evil2", PAYLOAD, "x", actor="test", reason=PAYLOAD)
    admin = web.client("administrator")
    doc = admin.get("/api/trials/NB-NK-2026/versions/1").json()["document"]
    doc = json.loads(json.dumps(doc))
    doc["title"] = PAYLOAD
    doc["registry"]["description"]["brief_summary"] = PAYLOAD
    doc["registry"]["conditions"] = [PAYLOAD]
    doc["registry"]["sponsor"]["lead_sponsor"]["name"] = PAYLOAD
    doc["eligibility"]["inclusion"][0]["text"] = PAYLOAD
    doc["arms"][0]["label"] = PAYLOAD
    assert admin.post("/api/trials/NB-NK-2026/versions", headers={"x-csrf-token": admin.csrf},
                      json={"document": doc, "reason": PAYLOAD}).status_code == 201
    c = web.client("evil")
    record = json.loads((EXAMPLES / "nb-refractory.json").read_text())
    record["diagnosis"]["stage"] = PAYLOAD
    record["disease_status"][0]["note"] = PAYLOAD
    record["treatments"][0]["agent"] = PAYLOAD
    created = c.post("/api/patients", headers={"x-csrf-token": c.csrf}, json={
        "trial_id": "NB-NK-2026", "site": "Moscow", "record": record,
        "identifiers": {"name": PAYLOAD, "hospital_number": PAYLOAD}, "reason": PAYLOAD})
    assert created.status_code == 201, created.text
    number = created.json()["study_number"]
    c.post(f"/api/patients/{number}/screenings", headers={"x-csrf-token": c.csrf},
           json={"reason": PAYLOAD, "as_of": "2026-11-21T12:00:00"})
    # The enrolled demo patient's journey pages carry free text too.
    h = {"x-csrf-token": c.csrf}
    assert c.post("/api/patients/NBNK-0001/adverse-events", headers=h, json={
        "term": PAYLOAD, "meddra_term": PAYLOAD, "grade": 2, "onset": "2026-11-21",
        "reason": PAYLOAD}).status_code == 201
    assert c.post("/api/patients/NBNK-0001/follow-ups", headers=h, json={
        "kind": "last_contact", "occurred_on": "2026-11-21", "note": PAYLOAD,
        "reason": PAYLOAD}).status_code == 201
    pages = [c.get(u, headers=HTML) for u in (
        "/trials", "/trials/NB-NK-2026", f"/patients/{number}", "/patients",
        f"/patients/{number}/edit", f"/trials?q={PAYLOAD}", f"/login?next={PAYLOAD}",
        "/patients/NBNK-0001/adverse-events", "/patients/NBNK-0001/responses",
        "/patients/NBNK-0001/calendar", "/trials/NB-NK-2026/dashboard")]
    pages.append(web.client("monitor").get("/trials/NB-NK-2026/audit", headers=HTML))
    pages.append(_screen(c, {"stage": PAYLOAD, "birth_date": "2019-04-12",
                             "diagnosis": "neuroblastoma", "as_of": PAYLOAD}))
    pages.append(_screen(c, {"record_json": json.dumps(record), "as_of": "2026-11-21T12:00"}))
    anon = web.client()
    token = form_token(anon.get("/login", headers=HTML).text)
    pages.append(anon.post("/login", headers=HTML, data={"csrf_token": token,
                                                         "username": PAYLOAD, "password": "x"}))
    for r in pages:
        assert PAYLOAD not in r.text, r.url
        assert "<script>alert" not in r.text, r.url
    shown = "".join(r.text for r in pages)
    assert shown.count("&lt;script&gt;alert(") >= 10
