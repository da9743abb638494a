"""Consent, enrolment with a frozen screening, arm assignment, allocation and the journey."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from trialdesk.criteria.verdict import ScreeningResult, screen_record
from trialdesk.enrolment.consent import ConsentRecord, record_consent
from trialdesk.enrolment.enrol import (
    FrozenScreening,
    Override,
    allocate,
    enrol,
    scheme_of,
)
from trialdesk.enrolment.journey import Journey, journey_calendar
from trialdesk.enrolment.randomisation import generate_list
from trialdesk.errors import EnrolmentError, ScheduleError
from trialdesk.facts.patient import PatientRecord, patient_from_data
from trialdesk.protocol.load import CompiledProtocol, load_protocol
from trialdesk.protocol.model import ConsentRules, Param
from trialdesk.schedule.dose import BodyMeasurement
from trialdesk.schedule.records import CourseDelay, EventRecord

ROOT = Path(__file__).resolve().parents[1]
TODAY = date(2026, 11, 21)
NOW = datetime(2026, 11, 21, 12, 0)


def compiled(name: str) -> CompiledProtocol:
    return load_protocol(ROOT / "protocols" / name)


NBNK = compiled("nb-nk-2026.yaml")
RUMCESS = compiled("rumcess.yaml")


def patient(name: str, change: Any = None) -> PatientRecord:
    data = json.loads((ROOT / "examples" / "patients" / f"{name}.json").read_text())
    if change:
        change(data)
    return patient_from_data(data, today=TODAY)


def consent_for(p: CompiledProtocol, record: PatientRecord, signed_by: str = "parent",
                signed_on: date = date(2026, 11, 18), assent: bool | None = None,
                rules: ConsentRules | None = None) -> ConsentRecord:
    return record_consent(rules or p.protocol.consent, trial_id=p.id,
                          patient_id=record.patient_id, birth_date=record.birth_date,
                          version="1.0", signed_on=signed_on, signed_by=signed_by,
                          assent=assent, recorded_by="coordinator", recorded_at=NOW)


def screened(p: CompiledProtocol, record: PatientRecord) -> ScreeningResult:
    return screen_record(p, record, as_of=NOW)


# ---------------------------------------------------------------------------- consent


ASSENT_12 = ConsentRules(adult_age_years=Param(value=18, unit="year", source="test"),
                         assent_from_age_years=Param(value=12, unit="year", source="test"))


def test_consent_of_a_minor_by_a_parent() -> None:
    record = patient("nb-refractory")  # born 2019-04-12: 7 years old on 2026-11-18
    c = consent_for(NBNK, record)
    assert (c.age_years, c.signed_by.value, c.version) == (7, "parent", "1.0")
    assert "adult age 18 [unconfirmed]" in c.notes  # 61-FZ art. 43 mark from the protocol
    assert "the protocol sets no age for the child's assent" in c.notes


def test_who_may_sign() -> None:
    child = patient("nb-refractory")
    with pytest.raises(EnrolmentError, match=r"a minor \(adult from 18\): a parent"):
        consent_for(NBNK, child, signed_by="patient")
    adult = patient("rumcess-eligible")  # born 1968
    with pytest.raises(EnrolmentError, match="an adult: the patient signs"):
        consent_for(RUMCESS, adult, signed_by="parent")
    assert consent_for(RUMCESS, adult, signed_by="legal_representative").age_years == 58
    assert consent_for(RUMCESS, adult, signed_by="patient").notes == ("adult age 18 [unconfirmed]",)
    with pytest.raises(EnrolmentError, match="assent is recorded for minors"):
        consent_for(RUMCESS, adult, signed_by="patient", assent=True)
    with pytest.raises(EnrolmentError, match="'uncle' is not one of"):
        consent_for(RUMCESS, adult, signed_by="uncle")


def test_seventeen_year_old_in_rumcess_needs_a_parent() -> None:
    # RuMCeSS admits patients from 17 years; under 18 a parent signs (61-FZ art. 43).
    teen = patient("rumcess-eligible", lambda d: d.update(birth_date="2009-06-01"))
    with pytest.raises(EnrolmentError, match="17 years old at signing, a minor"):
        consent_for(RUMCESS, teen, signed_by="patient", signed_on=date(2026, 11, 21))
    assert consent_for(RUMCESS, teen, signed_on=date(2026, 11, 21)).age_years == 17


@pytest.mark.parametrize(("birth", "assent", "error"), [
    ("2013-01-10", None, "from 12 the child's assent must be recorded"),  # 13 years old
    ("2013-01-10", False, "did not assent"),
    ("2013-01-10", True, None),
    ("2016-01-10", None, None),  # 10 years old: no assent required
])
def test_assent_from_the_protocols_age(birth: str, assent: bool | None, error: str | None) -> None:
    record = patient("nb-refractory", lambda d: d.update(birth_date=birth))
    if error:
        with pytest.raises(EnrolmentError, match=error):
            consent_for(NBNK, record, assent=assent, rules=ASSENT_12)
    else:
        assert consent_for(NBNK, record, assent=assent, rules=ASSENT_12).assent == assent


def test_consent_without_rules_says_so_and_dates_are_checked() -> None:
    record = patient("nb-refractory")
    c = record_consent(None, trial_id="X", patient_id=record.patient_id,
                       birth_date=record.birth_date, version="2", signed_on=date(2026, 11, 1),
                       signed_by="patient", assent=None, recorded_by="c", recorded_at=NOW)
    assert "signer was not checked" in c.notes[0]
    with pytest.raises(EnrolmentError, match="after the day it is recorded"):
        consent_for(NBNK, record, signed_on=date(2026, 11, 22))
    with pytest.raises(EnrolmentError, match="version is missing"):
        record_consent(None, trial_id="X", patient_id="P", birth_date=record.birth_date,
                       version=" ", signed_on=date(2026, 11, 1), signed_by="patient",
                       assent=None, recorded_by="c", recorded_at=NOW)


# ---------------------------------------------------------------------------- enrolment


def test_enrolment_freezes_the_screening_and_assigns_the_arm_by_rule() -> None:
    refractory = patient("nb-refractory")
    result = screened(NBNK, refractory)
    e = enrol(NBNK.protocol, result, consent_for(NBNK, refractory), enrolled_at=NOW,
              enrolled_by="Dr A")
    assert (e.arm, e.arm_basis, e.verdict) == ("A", "rule", "eligible")
    assert e.screening.document == result.to_json()
    assert e.screening.intact
    # every criterion's evidence is kept
    lvef = [ev for c in e.screening.document["criteria"] for ev in c["evidence"]
            if ev["fact"] == "lvef"]
    assert lvef and lvef[0]["value"] == 64 and lvef[0]["observed"] == "2026-11-10"
    relapsed = patient("nb-relapsed")
    e_b = enrol(NBNK.protocol, screened(NBNK, relapsed), consent_for(NBNK, relapsed),
                enrolled_at=NOW, enrolled_by="Dr A")
    assert e_b.arm == "B"


def test_a_changed_frozen_screening_is_detected() -> None:
    record = patient("nb-refractory")
    frozen = FrozenScreening.of(screened(NBNK, record))
    doc = json.loads(json.dumps(frozen.document))
    doc["verdict"] = "ineligible"
    assert not frozen.model_copy(update={"document": doc}).intact


def test_ineligible_needs_a_reasoned_override_which_is_kept_and_shown() -> None:
    record = patient("nb-refractory", lambda d: d["observations"].append(
        {"name": "lvef", "value": 50, "unit": "%", "date": "2026-11-17"}))
    result = screened(NBNK, record)
    assert result.verdict.value == "ineligible"
    consent = consent_for(NBNK, record)
    with pytest.raises(EnrolmentError, match="verdict is ineligible; enrolment needs an "
                                             "investigator's override"):
        enrol(NBNK.protocol, result, consent, enrolled_at=NOW, enrolled_by="Dr A")
    with pytest.raises(EnrolmentError, match="names the investigator and gives the reason"):
        enrol(NBNK.protocol, result, consent, enrolled_at=NOW, enrolled_by="Dr A",
              override=Override(investigator="Dr B", reason="  "))
    override = Override(investigator="Dr B", reason="LVEF 50% on a single echo; repeat 58%")
    e = enrol(NBNK.protocol, result, consent, enrolled_at=NOW, enrolled_by="Dr A",
              override=override)
    assert e.override == override and e.verdict == "ineligible" and e.arm == "A"
    assert e.shown()[0] == ("ENROLLED BY OVERRIDE of a ineligible screening: Dr B: LVEF 50% on "
                            "a single echo; repeat 58%")


def test_undetermined_is_refused_with_what_is_missing() -> None:
    record = patient("nb-missing-labs")
    result = screened(NBNK, record)
    assert result.verdict.value == "undetermined"
    with pytest.raises(EnrolmentError, match="verdict is undetermined; missing: "):
        enrol(NBNK.protocol, result, consent_for(NBNK, record), enrolled_at=NOW,
              enrolled_by="Dr A")


def test_override_of_an_eligible_patient_and_arm_rules() -> None:
    record = patient("nb-refractory")
    result = screened(NBNK, record)
    consent = consent_for(NBNK, record)
    with pytest.raises(EnrolmentError, match="eligible; an override is not needed"):
        enrol(NBNK.protocol, result, consent, enrolled_at=NOW, enrolled_by="Dr A",
              override=Override(investigator="Dr B", reason="x"))
    # No disease status: the rule cannot assign an arm; the override must name one.
    no_status = patient("nb-refractory", lambda d: d.update(disease_status=[]))
    result2 = screened(NBNK, no_status)
    why = Override(investigator="Dr B", reason="status documented in the referral letter")
    with pytest.raises(EnrolmentError, match="no arm: "):
        enrol(NBNK.protocol, result2, consent_for(NBNK, no_status), enrolled_at=NOW,
              enrolled_by="Dr A", override=why)
    e = enrol(NBNK.protocol, result2, consent_for(NBNK, no_status), enrolled_at=NOW,
              enrolled_by="Dr A", override=why.model_copy(update={"arm": "A"}))
    assert (e.arm, e.arm_basis) == ("A", "override")


def test_consent_is_required_and_must_come_first() -> None:
    record = patient("nb-refractory")
    result = screened(NBNK, record)
    with pytest.raises(EnrolmentError, match="no consent recorded"):
        enrol(NBNK.protocol, result, None, enrolled_at=NOW, enrolled_by="Dr A")
    with pytest.raises(EnrolmentError, match="after the enrolment"):
        enrol(NBNK.protocol, result, consent_for(NBNK, record, signed_on=date(2026, 11, 21)),
              enrolled_at=datetime(2026, 11, 20, 12, 0), enrolled_by="Dr A")
    with pytest.raises(EnrolmentError, match="screening is for NB-NK-2026"):
        enrol(RUMCESS.protocol, result, consent_for(NBNK, record), enrolled_at=NOW,
              enrolled_by="Dr A")


def test_randomised_trial_leaves_the_arm_to_randomisation() -> None:
    record = patient("rumcess-eligible")
    e = enrol(RUMCESS.protocol, screened(RUMCESS, record),
              consent_for(RUMCESS, record, signed_by="legal_representative",
                          signed_on=date(2026, 11, 21)),
              enrolled_at=NOW, enrolled_by="Dr ICU",
              anchors={"septic_shock_onset": datetime(2026, 11, 21, 6)})
    assert (e.arm, e.arm_basis, e.randomisation) == (None, "randomisation", "R1")


# ---------------------------------------------------------------------------- randomisation


def test_protocol_randomisation_maps_to_a_scheme() -> None:
    s = scheme_of(RUMCESS.protocol)
    assert (s.id, s.arms, s.method, s.block_sizes, s.strata) == (
        "R1", {"MSC": 1, "SOC": 1}, "permuted_blocks", (2, 4), {"site": ("NRCH",)})
    with pytest.raises(EnrolmentError, match="assigned by rule"):
        scheme_of(NBNK.protocol)


def test_allocate_replays_the_log_and_refuses_a_tampered_one() -> None:
    lst = generate_list(scheme_of(RUMCESS.protocol), seed=20130507, size_per_stratum=8)
    at = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    log = []
    for n in range(1, 5):
        log.append(allocate(lst, log, patient_id=f"RU-00{n}", factors={}, enrolled=True, at=at))
    assert [a.sequence for a in log] == [1, 2, 3, 4]
    assert [a.arm for a in log] == [e.arm for e in lst.entries[:4]]
    assert {a.arm for a in log} <= {"MSC", "SOC"}
    with pytest.raises(EnrolmentError, match="is not enrolled"):
        allocate(lst, log, patient_id="RU-009", factors={}, enrolled=False, at=at)
    with pytest.raises(EnrolmentError, match="already randomised"):
        allocate(lst, log, patient_id="RU-001", factors={}, enrolled=True, at=at)
    other = "SOC" if log[0].arm == "MSC" else "MSC"
    tampered = [log[0].model_copy(update={"arm": other}), *log[1:]]
    with pytest.raises(EnrolmentError, match="log does not match the list"):
        allocate(lst, tampered, patient_id="RU-005", factors={}, enrolled=True, at=at)


# ---------------------------------------------------------------------------- journey


def enrolled_journey() -> tuple[Journey, ConsentRecord]:
    record = patient("nb-refractory")
    consent = consent_for(NBNK, record)
    e = enrol(NBNK.protocol, screened(NBNK, record), consent, enrolled_at=NOW, enrolled_by="Dr A")
    j = Journey(trial_id=NBNK.id, patient_id=record.patient_id).with_consent(consent)
    j = j.with_enrolment(e).with_body(BodyMeasurement(on=date(2026, 11, 16), weight_kg=21.4,
                                                      height_cm=118))
    return j, consent


def test_journey_refuses_a_second_enrolment_and_an_early_start() -> None:
    j, _ = enrolled_journey()
    with pytest.raises(EnrolmentError, match="is already enrolled in NB-NK-2026"):
        j.with_enrolment(j.enrolment)  # type: ignore[arg-type]
    with pytest.raises(ScheduleError, match=r"before consent \(2026-11-18\)"):
        j.with_start(date(2026, 11, 17))
    with pytest.raises(EnrolmentError, match="not enrolled"):
        Journey(trial_id=NBNK.id, patient_id="X").with_allocation(None)  # type: ignore[arg-type]


def test_journey_calendar_with_records_and_delay() -> None:
    j, _ = enrolled_journey()
    j = j.with_start(date(2026, 11, 19))
    j = j.with_record(NBNK.protocol, EventRecord(
        event_id="c1.irinotecan.d1", status="given", at=datetime(2026, 11, 19, 9), by="nurse",
        amount=42.0, unit="mg"))
    j = j.with_delay(NBNK.protocol, CourseDelay(course=2, days=5, reason="ANC 0.4", by="Dr A",
                                                recorded_on=date(2026, 12, 10)))
    cal = journey_calendar(NBNK.protocol, j, datetime(2026, 11, 20, 8))
    # course 2: planned day 22 = 2026-12-10, delayed 5 days → 2026-12-15
    assert cal.event("c2").date == date(2026, 12, 15)
    assert cal.event("c1.irinotecan.d1").status.value == "given"
    assert cal.event("c1.temozolomide.d1").status.value == "missed"
    with pytest.raises(ScheduleError, match="events are already recorded"):
        j.with_start(date(2026, 11, 20))
    with pytest.raises(ScheduleError, match="course 1 has already started"):
        j.with_delay(NBNK.protocol, CourseDelay(course=1, days=2, reason="x", by="y",
                                                recorded_on=date(2026, 11, 20)))


def test_a_plan_is_laid_out_once_for_the_same_inputs_and_anew_when_one_changes() -> None:
    from trialdesk.enrolment.journey import journey_plan
    from trialdesk.schedule.plan import plan

    j, consent = enrolled_journey()
    j = j.with_start(date(2026, 11, 19))
    first = journey_plan(NBNK.protocol, j)
    again = journey_plan(NBNK.protocol, j.model_copy())  # equal inputs, another object
    assert again is first
    heavier = j.with_body(BodyMeasurement(on=date(2026, 11, 18), weight_kg=25.0,
                                          height_cm=118))
    changed = journey_plan(NBNK.protocol, heavier)
    assert changed is not first
    e = heavier.enrolment
    assert e is not None and heavier.arm is not None and heavier.start is not None
    fresh = plan(NBNK.protocol, heavier.arm, heavier.start, body=heavier.body,
                 variants=e.variants, optional=e.optional, anchors=e.anchors,
                 delays=heavier.delays, not_before=consent.signed_on,
                 patient_id=heavier.patient_id)
    assert changed == fresh
    dose = changed.event("c1.irinotecan.d1").dose
    assert dose is not None and dose != first.event("c1.irinotecan.d1").dose  # the new weight
