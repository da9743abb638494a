"""The typed patient form: built from the fact dictionary and the protocol, read back into
the same patient record a JSON upload gives, every bad input refused in words."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from trialdesk.criteria.verdict import screen_record
from trialdesk.facts.dictionary import FACTS
from trialdesk.facts.patient import PatientRecord
from trialdesk.forms.build import PatientForm, patient_form
from trialdesk.forms.fill import form_values, merge_record
from trialdesk.forms.parse import FormError, parse_form
from trialdesk.forms.table import record_table, section_states
from trialdesk.protocol.load import default_protocol_dir, load_protocol

TODAY = dt.date(2026, 11, 21)
NBNK = load_protocol(default_protocol_dir() / "nb-nk-2026.yaml")
EXAMPLE = json.loads((default_protocol_dir().parent / "examples" / "patients" /
                      "nb-refractory.json").read_text())


@pytest.fixture(scope="module")
def form() -> PatientForm:
    return patient_form(NBNK)


def _values(form: PatientForm) -> dict[str, str]:
    return form_values(form, PatientRecord.model_validate(EXAMPLE), "NB-NK-2026")


def test_the_nbnk_form_asks_what_its_criteria_read_with_units(form: PatientForm) -> None:
    names = {f.name for f in form.fields}
    # nb-nk-2026.yaml I7 (ALT/AST ×ULN), I8 (GFR: measured, or Schwartz from height and
    # creatinine), I9 (PTI, APTT), I10/E9 (LVEF), I11 (SpO2), I4 (Lansky/Karnofsky).
    assert {"alt", "ast", "creatinine", "height", "measured_gfr", "pti", "aptt", "lvef",
            "spo2_room_air", "lansky", "karnofsky", "birth_date", "consent_signed",
            "disease_status", "induction_cycles_completed", "end_induction_response",
            "risk_group", "risk_system", "ckd_stage", "rifle_class"} <= names
    assert {"attest.e6", "attest.comorbidity_precluding_treatment", "attest.e8",
            "severe_type1_hypersensitivity_history",
            "mental_illness_preventing_understanding"} <= names
    # Not read by any NB-NK-2026 rule: not asked.
    assert not names & {"anc", "platelets", "septic_shock", "ecog", "treatment1.agent"}
    assert form.field("creatinine").units == ("umol/L", "mg/dL")
    assert form.field("alt").reference_range and form.field("alt").dated
    assert form.field("life_expectancy").units == ("week", "month")
    assert form.field("rifle_class").choices == ("none", "risk", "injury", "failure", "loss",
                                                 "eskd")
    assert form.field("birth_date").label == "Date of birth"
    assert [s.title for s in form.sections][:4] == [
        "Identity and demographics", "Diagnosis", "Disease course", "Laboratory results"]
    lab = next(s for s in form.sections if s.id == "lab")
    assert set(lab.criteria) == {"I7", "I8", "I9"}
    assert form.not_in_form == ()


def test_counts_are_offered_in_the_three_units() -> None:
    rumcess = patient_form(load_protocol(default_protocol_dir() / "rumcess.yaml"))
    assert rumcess.field("anc").units == ("/uL", "/mm3", "10^9/L")


def test_a_filled_form_gives_the_record_and_the_screening_of_the_json_file(
        form: PatientForm) -> None:
    record = parse_form(form, _values(form), today=TODAY, patient_id="NB-001", by="investigator")
    as_of = dt.datetime(2026, 11, 21, 12)
    from_form = screen_record(NBNK, record, as_of=as_of).to_json()
    from_json = screen_record(NBNK, PatientRecord.model_validate(EXAMPLE), as_of=as_of).to_json()
    assert (from_form["verdict"], from_form["arm"]) == ("eligible", "A")
    assert [c["outcome"] for c in from_form["criteria"]] == [
        c["outcome"] for c in from_json["criteria"]]
    creatinine = next(o for o in record.observations if o.name == "creatinine")
    assert (creatinine.value, creatinine.unit, creatinine.ref_high) == (35, "umol/L", 50)
    states = section_states(form, from_form)
    exclusion = next(c for c in states["findings"] if c["id"] == "E9")
    assert (exclusion["words"], exclusion["good"]) == ("does not apply", True)
    assert any(c["kind"] == "arm" and c["words"] == "assigned" for c in states["disease"])


BAD: list[tuple[str, dict[str, str], str]] = [
    ("letters in a number", {"alt": "forty"}, "Alanine aminotransferase: enter a number"),
    ("NaN", {"lvef": "NaN"}, "Left ventricular ejection fraction: enter a finite number"),
    ("Infinity", {"aptt": "Infinity"},
     "Activated partial thromboplastin time: enter a finite number"),
    ("-inf", {"pti": "-inf"}, "Prothrombin index: enter a finite number"),
    ("future date", {"alt.date": "2026-12-01"}, "Alanine aminotransferase (date): 2026-12-01 is "
     "in the future"),
    ("future birth", {"birth_date": "2027-01-01"}, "Date of birth: 2027-01-01 is in the future"),
    ("not a date", {"birth_date": "12.04.2019"}, "Date of birth: enter a date such as 2019-04-12"),
    ("impossible value", {"spo2_room_air": "140"},
     "Oxygen saturation by pulse oximetry on room air: 140 % is outside what is possible"),
    ("negative count", {"creatinine": "-3"}, "Serum creatinine: -3 µmol/L is outside what is "
     "possible"),
    ("unit that does not convert", {"creatinine.unit": "kg"},
     "Serum creatinine: choose a unit from: µmol/L, mg/dL"),
    ("not a choice", {"rifle_class": "severe"}, "Acute kidney injury class by RIFLE "
     "(Bellomo 2004): choose one of"),
    ("yes/no", {"neuropathic_pain": "maybe"}, "Neuropathic pain: choose yes, no or not assessed"),
    ("fraction of a score", {"lansky": "75.5"}, "Lansky play-performance score: enter a whole "
     "number"),
    ("score off the scale", {"lansky": "75"}, "Lansky play-performance score: lansky score must "
     "be 0–100 in steps of 10"),
    ("value without a date", {"lvef.date": ""}, "Left ventricular ejection fraction: enter the "
     "date of this result"),
    ("reference range upside down", {"alt.low": "50", "alt.high": "5"},
     "Alanine aminotransferase: the reference range's low end is above its high end"),
    ("before birth", {"lvef.date": "2018-01-01"}, "Date of birth: a result or event is dated "
     "before the date of birth"),
]


@pytest.mark.parametrize(("what", "change", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_with_the_label(form: PatientForm, what: str,
                                             change: dict[str, str], message: str) -> None:
    with pytest.raises(FormError) as caught:
        parse_form(form, {**_values(form), **change}, today=TODAY)
    assert any(p.startswith(message) for p in caught.value.problems), caught.value.problems
    assert "$" not in str(caught.value)  # words, not JSON paths


def test_every_problem_is_listed_at_once(form: PatientForm) -> None:
    with pytest.raises(FormError) as caught:
        parse_form(form, {**_values(form), "alt": "x", "ast": "NaN", "lvef": "900"}, today=TODAY)
    assert len(caught.value.problems) == 3
    assert caught.value.where == "Alanine aminotransferase"


def test_not_assessed_stays_unknown(form: PatientForm) -> None:
    values = {**_values(form), "neuropathic_pain": "not_assessed", "lvef": ""}
    record = parse_form(form, values, today=TODAY)
    assert not any(f.name == "neuropathic_pain" for f in record.findings)
    assert not any(o.name == "lvef" for o in record.observations)
    result = screen_record(NBNK, record, as_of=dt.datetime(2026, 11, 21, 12)).to_json()
    assert result["verdict"] == "undetermined"
    assert {"neuropathic_pain", "lvef"} <= set(result["missing_facts"])


def test_units_are_converted_on_screening(form: PatientForm) -> None:
    # 0.4 mg/dL creatinine = 35.4 µmol/L (molar mass 113.12 g/mol; clinical.units).
    values = {**_values(form), "creatinine": "0.4", "creatinine.unit": "mg/dL",
              "creatinine.low": "0.23", "creatinine.high": "0.57"}
    record = parse_form(form, values, today=TODAY)
    gfr = next(e for c in screen_record(NBNK, record, as_of=dt.datetime(2026, 11, 21, 12))
               .criteria if c.id == "I8" for e in c.evidence if e.fact == "gfr")
    # Bedside Schwartz 0.413 × 118 cm / 0.4 mg/dL = 121.8 (Schwartz 2009, JASN 20:629).
    assert gfr.value == pytest.approx(0.413 * 118 / 0.4, rel=1e-6)


def test_editing_keeps_history_and_what_the_form_does_not_show(form: PatientForm) -> None:
    old = PatientRecord.model_validate({**EXAMPLE, "observations": [
        *EXAMPLE["observations"], {"name": "alt", "value": 30, "unit": "U/L",
                                   "date": "2026-10-01"}]})
    values = {**form_values(form, old, "NB-NK-2026"), "alt": "41", "alt.date": "2026-11-20",
              "lvef": "60"}  # a new ALT result, and a correction of the LVEF of 2026-11-10
    merged = merge_record(old, parse_form(form, values, today=TODAY))
    alts = sorted((o.date.isoformat(), o.value) for o in merged.observations if o.name == "alt")
    assert alts == [("2026-10-01", 30), ("2026-11-16", 38), ("2026-11-20", 41)]
    assert [o.value for o in merged.observations if o.name == "lvef"] == [60]
    assert merged.treatments == old.treatments  # not asked by NB-NK-2026, kept
    assert merged.diagnosis is not None and merged.diagnosis.stage == "INSS 4"
    unchanged = merge_record(old, parse_form(form, form_values(form, old, "NB-NK-2026"),
                                             today=TODAY))
    assert unchanged.model_dump() == old.model_dump() | {
        "disease_status": unchanged.model_dump()["disease_status"]}


def test_the_record_reads_as_a_table_grouped_like_the_form() -> None:
    record = PatientRecord.model_validate(EXAMPLE)
    table = {s["title"]: s["rows"] for s in record_table(
        record, questions={"e6": "Acute intolerance reaction?"})}
    creatinine = next(r for r in table["Laboratory results"] if r["label"] == "Serum creatinine")
    assert creatinine == {"label": "Serum creatinine", "value": "35 µmol/L",
                          "date": "2026-11-16", "detail": "reference 20–50"}
    assert table["The investigator's questions"][0]["label"] == "Acute intolerance reaction?"
    assert table["Identity and demographics"][0] == {
        "label": "Date of birth", "value": "2019-04-12", "date": "", "detail": ""}
    hidden = record_table(record, show_birth_date=False, age_years=7)[0]["rows"]
    assert hidden[0] == {"label": "Age", "value": "7 years", "date": "", "detail": ""}
    assert all(r["label"] != "Date of birth" for r in hidden)


def test_the_questions_are_findings_answered_once_with_their_question(
        form: PatientForm) -> None:
    questions = next(s for s in form.sections if s.id == "questions")
    field = form.field("mental_illness_preventing_understanding")
    assert field.section == "questions" and field.widget == "yesno" and field.dated
    assert field.label == FACTS["mental_illness_preventing_understanding"].question
    assert "make it impossible to understand the study" in field.label
    assert form.field("severe_type1_hypersensitivity_history").label.startswith(
        "Has the patient ever had a severe type I")
    assert {"E6", "E7", "E8", "E11"} <= set(questions.criteria)
    # Answered in the form: a finding of the patient, dated today, with who answered.
    values = _values(form) | {"mental_illness_preventing_understanding": "yes",
                              "mental_illness_preventing_understanding.date": ""}
    record = parse_form(form, values, today=TODAY, patient_id="NB-001", by="dr.ivanova")
    [answer] = [f for f in record.findings if f.name == "mental_illness_preventing_understanding"]
    assert (answer.value, answer.date, answer.by) == (True, TODAY, "dr.ivanova")
    assert not any(a.id == "e11" for a in record.attestations)
    table = {s["title"]: s["rows"] for s in record_table(record)}
    row = next(r for r in table["The investigator's questions"] if r["label"] == field.label)
    assert (row["value"], row["detail"]) == ("yes", "answered by dr.ivanova")
    # REFNOT-R2 asks the same finding: the same field, the same question.
    assert REFNOT.field("mental_illness_preventing_understanding") == field


def test_an_answer_given_before_the_question_was_a_finding_shows_in_the_form(
        form: PatientForm) -> None:
    old = dict(EXAMPLE, findings=[f for f in EXAMPLE["findings"] if not FACTS[f["name"]].question],
               attestations=[{"trial_id": "REFNOT-R2", "id": "e3", "value": True,
                              "date": "2026-11-17", "by": "dr.petrov"}])
    values = form_values(form, PatientRecord.model_validate(old), "NB-NK-2026")
    assert values["mental_illness_preventing_understanding"] == "yes"
    assert values["mental_illness_preventing_understanding.date"] == "2026-11-17"
    assert values.get("severe_type1_hypersensitivity_history", "") == ""
    rows = {s["title"]: s["rows"] for s in record_table(PatientRecord.model_validate(old))}
    assert rows["The investigator's questions"][0]["label"] == (
        "REFNOT-R2 E3 (mental illness that prevents understanding the study)")


REFNOT = patient_form(load_protocol(default_protocol_dir() / "refnot-r2.yaml"))


def test_an_empty_treatment_history_is_unknown_unless_said_to_be_none() -> None:
    base = {"birth_date": "1970-01-01"}
    assert parse_form(REFNOT, base, today=TODAY).treatments is None
    assert parse_form(REFNOT, {**base, "treatment.none": "yes"}, today=TODAY).treatments == []
    rows = {**base, "treatment1.agent": "cisplatin", "treatment1.category": "chemotherapy",
            "treatment1.start": "2025-01-10", "treatment1.end": "2025-04-01"}
    (given,) = parse_form(REFNOT, rows, today=TODAY).treatments or []
    assert (given.agent, given.category, given.chronic) == ("cisplatin", "chemotherapy", False)
    with pytest.raises(FormError) as caught:
        parse_form(REFNOT, {**base, "treatment1.agent": "cisplatin"}, today=TODAY)
    assert caught.value.problems == [
        "Treatment 1: give the agent, its category and its start date"]
