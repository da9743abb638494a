"""The disease course in the patient form: repeatable typed rows (chemotherapy blocks,
response assessments, relapses and progressions), read into the record's events, shown
back, edited and refused in words; the derived facts beside them on the form and the
patient page. Known answers: seed 000 (NB-NK-2026) I3 — 6 cycles of N5/N6 with SD at the
end of induction is refractory disease, arm A."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from trialdesk.criteria.verdict import screen_record
from trialdesk.facts.patient import PatientRecord
from trialdesk.forms.build import course_rows, patient_form
from trialdesk.forms.fill import form_values, merge_record
from trialdesk.forms.parse import FormError, parse_form
from trialdesk.protocol.load import default_protocol_dir, load_protocol

TRIAL = "NB-NK-2026"
TODAY = dt.date(2026, 11, 21)
NBNK = load_protocol(default_protocol_dir() / "nb-nk-2026.yaml")
FORM = patient_form(NBNK)
EXAMPLE = json.loads((default_protocol_dir().parent / "examples" / "patients" /
                      "nb-refractory.json").read_text())
# What the coordinator types into the disease-course rows.
EVENTS = {
    "chemo1.regimen": "N5", "chemo1.phase": "induction", "chemo1.cycles": "3",
    "chemo1.start": "2025-09-20", "chemo1.end": "2026-03-15",
    "chemo2.regimen": "N6", "chemo2.phase": "induction", "chemo2.cycles": "3",
    "chemo2.start": "2026-03-16", "chemo2.end": "2026-10-01",
    "assessment1.date": "2026-10-20", "assessment1.criteria": "INRC 2017",
    "assessment1.category": "SD",
}
STATUS_FIELDS = ("disease_status", "induction_cycles_completed", "end_induction_response",
                 "cns_involvement")


def typed(**more: str) -> dict[str, str]:
    """The refractory example's form with the disease status left out, the course as events."""
    values = form_values(FORM, PatientRecord.model_validate(EXAMPLE), TRIAL)
    for name in STATUS_FIELDS:
        values.pop(name, None)
    return {**values, **EVENTS, **more}


def test_the_form_has_the_course_rows_with_typed_fields() -> None:
    disease = next(s for s in FORM.sections if s.id == "disease")
    assert FORM.field("chemo1.cycles").integer and FORM.field("chemo1.start").widget == "date"
    assert FORM.field("chemo1.phase").choices[0] == "induction"
    assert FORM.field("stage").section == "diagnosis"  # the diagnosis event's stage
    assert FORM.field("assessment1.category").choices == ("CR", "VGPR", "PR", "MR", "SD", "PD")
    assert FORM.field("progression1.sites").choices == (
        "primary", "bone", "marrow", "soft_tissue", "cns", "leptomeningeal")
    assert {"I3", "E4", "E5", "arm:A", "arm:B"} <= set(disease.criteria)
    # A trial whose criteria read no disease-course fact gets no rows.
    rumcess = patient_form(load_protocol(default_protocol_dir() / "rumcess.yaml"))
    assert not rumcess.has("chemo1.regimen")


def test_events_typed_into_rows_screen_refractory_arm_a() -> None:
    record = parse_form(FORM, typed(), today=TODAY, patient_id="NB-101")
    assert [(b.regimen, b.cycles) for b in record.chemotherapy] == [("N5", 3), ("N6", 3)]
    assert record.response_assessments[0].category == "SD"
    assert record.diagnosis is not None and record.diagnosis.stage == "INSS 4"
    assert all(e.status is None for e in record.disease_status)  # no label typed
    result = screen_record(NBNK, record, as_of=dt.datetime(2026, 11, 21, 12)).to_json()
    assert (result["verdict"], result["arm"]) == ("eligible", "A")
    i3 = next(c for c in result["criteria"] if c["id"] == "I3")
    assert any(e["source"] == "refractory: 6 cycles N5/N6 completed 2026-10-01, "
                              "end-of-induction response SD on 2026-10-20"
               for e in i3["evidence"])


def test_a_cns_relapse_ticked_in_the_sites_is_excluded() -> None:
    record = parse_form(FORM, typed(**{
        "assessment1.category": "CR", "progression1.date": "2026-11-05",
        "progression1.sites.bone": "yes", "progression1.sites.cns": "yes"}), today=TODAY)
    assert record.progressions[0].sites == ["bone", "cns"]
    result = screen_record(NBNK, record, as_of=dt.datetime(2026, 11, 21, 12)).to_json()
    assert next(c for c in result["criteria"] if c["id"] == "E5")["outcome"] == "met"
    assert result["verdict"] == "ineligible"


BAD: list[tuple[str, dict[str, str], str]] = [
    ("letters", {"chemo1.cycles": "six"},
     "Chemotherapy block 1: cycles: enter a number such as 80"),
    ("NaN", {"chemo1.cycles": "NaN"}, "Chemotherapy block 1: cycles: enter a finite number"),
    ("Infinity", {"chemo2.cycles": "Infinity"},
     "Chemotherapy block 2: cycles: enter a finite number"),
    ("fraction", {"chemo1.cycles": "2.5"}, "Chemotherapy block 1: cycles: enter a whole number"),
    ("out of range", {"chemo1.cycles": "40"},
     "Chemotherapy block 1: cycles: enter the number of cycles in this block, 1 to 30"),
    ("future", {"assessment1.date": "2027-01-05"},
     "Response assessment 1: date: 2027-01-05 is in the future"),
    ("not a date", {"chemo2.end": "01.10.2026"},
     "Chemotherapy block 2: last day: enter a date such as 2019-04-12"),
    ("end before start", {"chemo1.end": "2025-09-01"},
     "Chemotherapy block 1: the last day is before the first day"),
    ("half a row", {"chemo3.regimen": "TVD"},
     "Chemotherapy block 3: give the regimen, the phase, the number of cycles and the first day"),
    ("wrong system", {"assessment1.criteria": "RECIST 1.1", "assessment1.category": "MR"},
     "Response assessment 1: MR is not a RECIST 1.1 category (CR, PR, SD, PD)"),
    ("unknown choice", {"chemo1.phase": "bridging"}, "Chemotherapy block 1: phase: choose one of"),
    ("no date", {"progression1.sites.bone": "yes"},
     "Relapse or progression 1: give the date of the relapse or progression"),
    ("bad tick", {"progression1.date": "2026-11-01", "progression1.sites.cns": "maybe"},
     "Relapse or progression 1: sites: cns: choose yes, no or not assessed"),
    ("before birth", {"chemo1.start": "2015-01-01"},
     "Date of birth: a chemotherapy block begins before the date of birth"),
]


@pytest.mark.parametrize(("what", "change", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_rows_are_refused_with_the_label(what: str, change: dict[str, str],
                                             message: str) -> None:
    with pytest.raises(FormError) as caught:
        parse_form(FORM, typed(**change), today=TODAY)
    assert any(p.startswith(message) for p in caught.value.problems), caught.value.problems


def test_the_saved_events_show_in_the_rows_and_an_emptied_row_removes_its_event() -> None:
    record = parse_form(FORM, typed(**{"progression1.date": "2026-11-05",
                                       "progression1.sites.marrow": "yes"}), today=TODAY)
    shown = form_values(FORM, record, TRIAL)
    assert shown["chemo2.regimen"] == "N6" and shown["progression1.sites.marrow"] == "yes"
    again = parse_form(FORM, shown, today=TODAY)
    assert merge_record(record, again, course=True) == record  # saving unchanged changes nothing
    emptied = {k: v for k, v in shown.items() if not k.startswith("progression1.")}
    merged = merge_record(record, parse_form(FORM, emptied, today=TODAY), course=True)
    assert merged.progressions == [] and len(merged.chemotherapy) == 2
    # A form without the course (course=False) leaves the stored events as they were.
    assert merge_record(record, parse_form(FORM, emptied, today=TODAY)).progressions


def test_rows_shown_and_add_another() -> None:
    empty = course_rows({})
    assert [len(empty[g]) for g in ("chemo", "assessment", "progression")] == [3, 2, 1]
    assert len(course_rows({"chemo.rows": "3"}, add="chemo")["chemo"]) == 4
    # Filled rows are all shown, with one empty row after them.
    assert len(course_rows({"assessment5.date": "2026-10-20"})["assessment"]) == 6
    assert course_rows({}, add="chemo")["chemo"][-1][0].label == "Chemotherapy block 4: regimen"


def _post(client: Any, url: str, data: dict[str, str]) -> Any:
    return client.post(url, data={"csrf_token": client.csrf, **data},
                       headers={"accept": "text/html"}, follow_redirects=False)


def test_register_with_events_on_the_web_and_see_the_derivation(web: Any) -> None:
    c = web.client("coordinator")
    page = c.get(f"/trials/{TRIAL}/patients/new").text
    for label in ("Chemotherapy block 1: regimen", "Response assessment 1: overall response",
                  "Relapse or progression 1: sites", "Add another chemotherapy block"):
        assert label in page
    more = _post(c, f"/trials/{TRIAL}/patients", {**typed(), "site": "Moscow",
                                                  "chemo.rows": "3", "action": "add:chemo"})
    assert more.status_code == 200 and "Chemotherapy block 4: regimen" in more.text
    assert 'value="N6"' in more.text  # what was typed is kept
    r = _post(c, f"/trials/{TRIAL}/patients", {**typed(), "site": "Moscow", "action": "save"})
    assert r.status_code == 303, r.text[:400]
    number = r.headers["location"].split("/")[2]
    assert web.store.screenings(number)[0].verdict == "eligible"
    form = c.get(r.headers["location"]).text
    assert 'id="arm">A<' in form and 'value="N6"' in form
    assert "refractory: 6 cycles N5/N6 completed 2026-10-01" in form
    patient = c.get(f"/patients/{number}").text
    assert "Chemotherapy: N5" in patient and "Current disease status (derived)" in patient
    assert "end-of-induction response SD on 2026-10-20" in patient


def test_bad_rows_on_the_web_store_nothing(web: Any) -> None:
    c = web.client("coordinator")
    before = web.store.patients([(TRIAL, None)], limit=1000).total
    r = _post(c, f"/trials/{TRIAL}/patients", {**typed(**{"chemo1.cycles": "Infinity"}),
                                               "site": "Moscow", "action": "save"})
    assert r.status_code == 422
    assert "Chemotherapy block 1: cycles: enter a finite number" in r.text
    assert web.store.patients([(TRIAL, None)], limit=1000).total == before
