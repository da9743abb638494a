"""From the registration form to enrolment without typing anything twice: the form's signed
consent is the consent record enrolment uses (same service and audit entry as the patient
page), its weight and height are the body size the calendar doses are computed from, and a
screening made out of date by a later change to the record is named in words on the page
and refused by enrolment through the service, the web page, the API and the command line."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from test_cli_journey import Cli, refused
from test_web_forms import TRIAL, _count, _post, filled
from trialdesk.errors import ConflictError, EnrolmentError
from trialdesk.forms.parse import FormError
from trialdesk.services import forms, journeys, overview
from trialdesk.services.accounts import principal_for

PASSWORD = "investigator-demo"


def _people(web: Any) -> tuple[Any, Any, Any]:
    return (web.app.state.ctx, principal_for(web.store, "coordinator"),
            principal_for(web.store, "investigator"))


def _register(web: Any, data: dict[str, str]) -> str:
    ctx, coordinator, _ = _people(web)
    return forms.create_from_form(ctx, coordinator, TRIAL, site="Moscow", data=data,
                                  identifiers={}, reason="referred for screening",
                                  screen=True).study_number


def _without_consent() -> dict[str, str]:
    return {k: v for k, v in filled().items() if not k.startswith("consent")}


def test_the_forms_consent_and_body_size_carry_through_to_the_calendar(web: Any) -> None:
    ctx, coordinator, investigator = _people(web)
    number = _register(web, filled())  # nb-refractory.json: consent 1.0 of 2026-11-18, parent
    consents = web.store.consents(number)
    assert [(c.trial_id, c.document["version"], c.document["signed_on"],
             c.document["signed_by"], c.document["recorded_by"]) for c in consents] == [
        (TRIAL, "1.0", "2026-11-18", "parent", "Demo Coordinator")]
    # The consent's own audit entry, as "Record consent" on the patient page writes it.
    entries = web.store.audit_entries(record_ids=[number], limit=100).items
    consent = [e for e in entries if e.action == "consent"]
    assert len(consent) == 1 and consent[0].reason == forms.CONSENT_REASON
    assert consent[0].changes["signed_by"]["new"] == "parent"
    # The screening after registration read the record with the consent: current, eligible.
    page = overview.patient_page(ctx, coordinator, number)
    assert page["screening_out_of_date"] is None
    assert page["consents"][0]["version"] == "1.0"
    screening = web.store.screenings(number)[0]
    assert screening.verdict == "eligible"
    assert screening.patient_version == web.store.patient(number).version
    # Enrolment with day 1 at once: the weight and height typed in the form (21.4 kg and
    # 118 cm on 2026-11-16) are the body measurements the doses are computed from.
    journeys.enrol_patient(ctx, investigator, number, screening_id=screening.id,
                           password=PASSWORD, reason="eligible", start=date(2026, 11, 21))
    journey = web.store.journey(number)
    assert journey is not None
    assert list(journey.body) == [{"on": "2026-11-16", "weight_kg": 21.4, "height_cm": 118.0,
                             "source": "patient record"}]
    calendar = journeys.calendar_page(ctx, investigator, number)["calendar"]
    event = next(e for e in calendar["events"] if e["id"] == "c1.irinotecan.d1")
    assert event["dose"]["amount"] is not None, event["dose"]
    assert "21.4 kg" in event["dose"]["working"], event["dose"]["working"]


@pytest.mark.parametrize("data", [
    {**filled(), "consent_signed": "no"},
    _without_consent(),
], ids=["consent no", "consent not answered"])
def test_no_signed_consent_in_the_form_records_no_consent(web: Any, data: dict[str, str]
                                                          ) -> None:
    ctx, _, investigator = _people(web)
    number = _register(web, data)
    assert web.store.consents(number) == []
    screening = web.store.screenings(number)[0]
    with pytest.raises(EnrolmentError, match="no consent recorded for this trial"):
        journeys.enrol_patient(ctx, investigator, number, screening_id=screening.id,
                               password=PASSWORD, reason="eligible")


@pytest.mark.parametrize(("change", "problem"), [
    ({"consent.signed_by": "patient"},
     "Consent signed by: the patient is 7 years old at signing, a minor (adult from 18): a "
     "parent, guardian or legal representative signs"),
    ({"consent.version": " "},
     "Consent form version: enter the version of the signed consent form, e.g. 1.0"),
    ({"consent.signed_by": "parent", "consent.assent": "yes"}, None),
])
def test_a_refused_consent_stores_no_patient(web: Any, change: dict[str, str],
                                             problem: str | None) -> None:
    before, audit = _count(web), web.store.verify_audit().entries
    if problem is None:  # assent recorded for a child: accepted and kept
        number = _register(web, {**filled(), **change})
        assert web.store.consents(number)[0].document["assent"] is True
        return
    with pytest.raises(FormError) as refusal:
        _register(web, {**filled(), **change})
    assert refusal.value.problems == [problem]
    assert _count(web) == before and web.store.verify_audit().entries == audit
    # The page says the same beside the form, and keeps what was typed.
    c = web.client("coordinator")
    r = _post(c, f"/trials/{TRIAL}/patients", {**filled(), **change, "site": "Moscow"})
    assert r.status_code == 422 and problem.replace("'", "&#39;") in r.text
    assert _count(web) == before


def test_weight_and_height_are_typed_with_units_and_checked_in_words(web: Any) -> None:
    c = web.client("coordinator")
    page = c.get(f"/trials/{TRIAL}/patients/new").text
    assert "Weight and height" in page
    for label in ('for="f-weight">Weight<', 'for="f-weight-date">Weight: date<',
                  'for="f-height">Height<', 'for="f-height-date">Height: date<'):
        assert label in page
    assert re.search(r'<span class="unit">kg</span>', page)
    assert re.search(r'<span class="unit">cm</span>', page)
    before = _count(web)
    for change, problem in [
        ({"weight": "400"}, "Weight: 400 kg is outside what is possible (0.3–350 kg); check "
                            "the value and its unit"),
        ({"height": "abc"}, "Height: enter a number such as 12.5 (digits only, not &#39;abc&#39;)"),
        ({"weight.date": ""}, "Weight: enter the date of this result"),
        ({"height.date": "2027-01-01"}, "Height (date): 2027-01-01 is in the future"),
    ]:
        r = _post(c, f"/trials/{TRIAL}/patients", {**filled(), **change, "site": "Moscow"})
        assert r.status_code == 422 and problem in r.text, (change, r.text[:2000])
    assert _count(web) == before
    # Optional: a form without them is saved, and the record has no weight.
    r = _post(c, f"/trials/{TRIAL}/patients", {
        **{k: v for k, v in filled().items() if not k.startswith("weight")}, "site": "Moscow"})
    assert r.status_code == 303
    number = r.headers["location"].split("/")[2]
    assert not [o for o in web.store.patient(number).record["observations"]
                if o["name"] == "weight"]


def test_a_screening_older_than_the_record_is_named_and_refused_everywhere(
        web: Any, tmp_path: Path) -> None:
    ctx, coordinator, investigator = _people(web)
    number = _register(web, _without_consent())  # screened at 12:00 on record version 1
    stale = web.store.screenings(number)[0]
    # Half an hour later the coordinator records the signed consent on the patient page.
    web.clock.advance(minutes=30)
    journeys.record_consent(ctx, coordinator, number, version="1.0",
                            signed_on=date(2026, 11, 18), signed_by="parent", assent=None,
                            reason="signed consent form received")
    words = (f"Screening {stale.id} of 2026-11-21 12:00 (record version 1) is older than the "
             "record changed on 2026-11-21 12:30 (version 2, by coordinator): screen again")
    assert overview.patient_page(ctx, investigator, number)["screening_out_of_date"] == words
    # The service refuses it and says why; nothing is stored.
    audit = web.store.verify_audit().entries
    with pytest.raises(ConflictError) as refusal:
        journeys.enrol_patient(ctx, investigator, number, screening_id=stale.id,
                               password=PASSWORD, reason="eligible")
    assert refusal.value.reason.startswith(words + " before enrolling")
    assert refusal.value.where == "screening_id"
    assert web.store.verify_audit().entries == audit
    # The page says it in words, offers to screen again and no enrolment on it.
    c = web.client("investigator")
    audit = web.store.verify_audit().entries  # after the log-in's own entry
    page = c.get(f"/patients/{number}").text
    assert words in page
    assert "Screen again on the current record" in page and "Sign and enrol" not in page
    r = _post(c, f"/patients/{number}/enrol", {"screening_id": str(stale.id),
                                               "password": PASSWORD, "reason": "eligible"})
    assert r.status_code == 409 and words in r.text
    # The API and the command line: the same service, the same words.
    api = c.post(f"/api/patients/{number}/enrolment", headers={"x-csrf-token": c.csrf},
                 json={"screening_id": stale.id, "password": PASSWORD, "reason": "eligible"})
    assert api.status_code == 409 and words in api.json()["error"]
    cli = Cli(f"sqlite:///{tmp_path / 'trialdesk.db'}", tmp_path)
    refused(cli, web, "enrol", number, "--by", "investigator", "--screening", stale.id,
            message=words, password=PASSWORD)
    assert web.store.enrolment(number) is None and web.store.verify_audit().entries == audit
    # Screened again with the button: the page offers enrolment on the new screening.
    r = _post(c, f"/patients/{number}/screen",
              {"reason": f"screened again: the record changed after screening {stale.id}"})
    assert r.status_code == 303
    fresh = web.store.screenings(number)[0]
    assert fresh.id != stale.id and fresh.patient_version == 2
    page = c.get(f"/patients/{number}").text
    assert "older than the record" not in page and "Sign and enrol" in page
    assert f'name="screening_id" value="{fresh.id}"' in page
    r = _post(c, f"/patients/{number}/enrol", {"screening_id": str(fresh.id),
                                               "password": PASSWORD, "reason": "eligible"})
    assert r.status_code == 303 and web.store.enrolment(number) is not None


def test_a_consent_added_in_the_patient_form_later_is_recorded_once(web: Any) -> None:
    ctx, coordinator, _ = _people(web)
    number = _register(web, _without_consent())
    row = web.store.patient(number)
    consent = {k: v for k, v in filled().items() if k.startswith("consent")}
    data = {**_without_consent(), **consent}
    forms.update_from_form(ctx, coordinator, number, version=row.version, data=data,
                           reason="signed consent form received", screen=True)
    assert [c.document["signed_by"] for c in web.store.consents(number)] == ["parent"]
    # Saving the same form again records no second consent; the screening is current.
    row = web.store.patient(number)
    forms.update_from_form(ctx, coordinator, number, version=row.version, data=data,
                           reason="", screen=True)
    assert len(web.store.consents(number)) == 1
    assert overview.patient_page(ctx, coordinator, number)["screening_out_of_date"] is None
    assert web.store.screenings(number)[0].verdict == "eligible"
