"""The typed patient form in the web application and the API: register, screen, edit with a
reason, refuse bad input in words with nothing stored, and the facts as a table."""

from __future__ import annotations

import json
import re
from typing import Any

from trialdesk.facts.patient import PatientRecord
from trialdesk.forms.build import patient_form
from trialdesk.forms.fill import form_values
from trialdesk.protocol.load import default_protocol_dir, load_protocol

TRIAL = "NB-NK-2026"
EXAMPLE = json.loads((default_protocol_dir().parent / "examples" / "patients" /
                      "nb-refractory.json").read_text())


def filled() -> dict[str, str]:
    form = patient_form(load_protocol(default_protocol_dir() / "nb-nk-2026.yaml"))
    return form_values(form, PatientRecord.model_validate(EXAMPLE), TRIAL)


def _post(client: Any, url: str, data: dict[str, str]) -> Any:
    return client.post(url, data={"csrf_token": client.csrf, **data},
                       headers={"accept": "text/html"}, follow_redirects=False)


def _count(web: Any) -> int:
    return int(web.store.patients([(TRIAL, None)], limit=1000).total)


def test_register_by_form_screen_and_see_each_section(web: Any) -> None:
    c = web.client("coordinator")
    assert f'href="/trials/{TRIAL}/patients/new"' in c.get("/patients").text
    assert f'href="/trials/{TRIAL}/patients/new"' in c.get("/patients/new").text  # bulk page
    page = c.get(f"/trials/{TRIAL}/patients/new")
    assert page.status_code == 200
    for label in ("Date of birth", "Serum creatinine", "Serum creatinine: unit",
                  "Alanine aminotransferase: reference range, high",
                  "Alanine aminotransferase: date of the sample", "Lansky play-performance score",
                  "Has the patient had an acute intolerance reaction"):
        assert label in page.text
    assert 'type="date"' in page.text and "µmol/L" in page.text and "record_json" not in page.text
    before = _count(web)
    r = _post(c, f"/trials/{TRIAL}/patients", {**filled(), "site": "Moscow", "action": "save"})
    assert r.status_code == 303, r.text[:400]
    number = r.headers["location"].split("/")[2]
    assert _count(web) == before + 1
    assert web.store.screenings(number)[0].verdict == "eligible"  # stored by "Save"
    shown = c.get(r.headers["location"]).text
    assert re.search(r'id="verdict">eligible<', shown) and re.search(r'id="arm">A<', shown)
    assert "does not apply" in shown  # exclusion criteria not met: good news
    facts = c.get(f"/patients/{number}").text
    assert "Serum creatinine" in facts and "35 µmol/L" in facts
    assert '"observations"' not in facts  # a table, not the JSON document


def test_bad_input_is_named_by_label_and_nothing_is_stored(web: Any) -> None:
    c = web.client("coordinator")
    before = _count(web)
    r = _post(c, f"/trials/{TRIAL}/patients", {**filled(), "site": "Moscow", "alt": "NaN",
                                               "birth_date": "2031-01-01", "lvef": "abc"})
    assert r.status_code == 422
    assert "Alanine aminotransferase: enter a finite number" in r.text
    assert "Date of birth: 2031-01-01 is in the future" in r.text
    assert "Left ventricular ejection fraction: enter a number" in r.text
    assert "$." not in r.text
    assert 'value="abc"' in r.text  # what was typed is kept
    assert _count(web) == before


def test_edit_asks_for_a_reason_when_a_saved_value_changes(web: Any) -> None:
    c = web.client("coordinator")
    r = _post(c, f"/trials/{TRIAL}/patients", {**filled(), "site": "Moscow", "action": "draft"})
    number = r.headers["location"].split("/")[2]
    assert web.store.screenings(number) == []  # a draft is not screened
    row = web.store.patient(number)
    values = {**filled(), "version": str(row.version), "reason": ""}
    same = _post(c, f"/patients/{number}/form", {**values, "action": "draft"})
    assert same.status_code == 303 and web.store.patient(number).version == row.version
    changed = _post(c, f"/patients/{number}/form", {**values, "lvef": "58", "action": "draft"})
    assert changed.status_code == 422
    assert "Reason for the change: a saved value changed; say why" in changed.text
    assert web.store.patient(number).version == row.version
    saved = _post(c, f"/patients/{number}/form",
                  {**values, "lvef": "58", "reason": "echo report corrected"})
    assert saved.status_code == 303
    after = web.store.patient(number)
    assert after.version == row.version + 1
    assert [o["value"] for o in after.record["observations"] if o["name"] == "lvef"] == [58]


def test_the_same_form_through_the_api(web: Any) -> None:
    c = web.client("coordinator")
    definition = c.get(f"/api/trials/{TRIAL}/form").json()
    fields = {f["name"]: f for s in definition["sections"] for f in s["fields"]}
    assert fields["creatinine"]["units"] == ["umol/L", "mg/dL"]
    body = {"site": "Moscow", "values": filled(), "reason": "fed from the hospital system"}
    headers = {"x-csrf-token": c.csrf}
    r = c.post(f"/api/trials/{TRIAL}/form", json=body, headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["screenings"][0]["result"]["verdict"] == "eligible"
    bad = c.post(f"/api/trials/{TRIAL}/form", headers=headers,
                 json={**body, "values": {**filled(), "creatinine": "Infinity"}})
    assert bad.status_code == 422
    assert bad.json()["error"].startswith("Serum creatinine: enter a finite number")


def test_the_facts_table_hides_the_birth_date_from_roles_without_identifiers(web: Any) -> None:
    c = web.client("coordinator")
    r = _post(c, f"/trials/{TRIAL}/patients", {**filled(), "site": "Moscow", "action": "draft"})
    number = r.headers["location"].split("/")[2]
    assert "2019-04-12" in c.get(f"/patients/{number}").text
    page = web.client("statistician").get(f"/patients/{number}")
    assert page.status_code == 200
    # Born 2019-04-12, on the test clock's day 2026-11-21: 7 completed years.
    assert "2019-04-12" not in page.text and "7 years" in page.text


def test_check_shows_each_section_before_saving_and_stores_nothing(web: Any) -> None:
    c = web.client("coordinator")
    before = _count(web)
    r = _post(c, f"/trials/{TRIAL}/patients", {**filled(), "site": "Moscow", "action": "check",
                                               "end_induction_response": "PR"})
    assert r.status_code == 200 and _count(web) == before
    assert "not saved yet" in r.text and 'id="verdict">ineligible<' in r.text
    # nb-nk-2026.yaml E4: refractory with a good response (PR) at the end of induction.
    assert re.search(r"applies: excluded</span> <strong>E4</strong>", r.text)
    assert 'value="PR" selected' in r.text  # what was chosen is kept


def test_registration_fields_are_checked_in_words(web: Any) -> None:
    c = web.client("coordinator")
    before = _count(web)
    r = _post(c, f"/trials/{TRIAL}/patients", {**filled(), "site": "<Moscow>",
                                               "hospital_number": "9" * 65})
    assert r.status_code == 422 and _count(web) == before
    assert "Site: enter the site&#39;s name" in r.text
    assert "Hospital number: shorten it to 64 characters or fewer" in r.text
