"""Confirmed toxicity actions applied to the NB-NK-2026 calendar (trialdesk.schedule.actions).

Every calendar below is NB-NK-2026 arm A started on Monday 2026-11-23 for the example
refractory patient (21.4 kg, 118 cm: BSA √(118 × 21.4 / 3600) = 0.8375 → 0.84 m²). Dates
checked by hand (day 1 = the start, no day 0, 21-day courses, response after courses 2
and 4 on the course's last day):

    day −1 collection 2026-11-22
    c1 IT  2026-11-23 → 12-13
    c2 DIT 2026-12-14 → 2027-01-03   dinutuximab beta 12-14 … 12-18, NK 12-20, response 01-03
    c3 DIT 2027-01-04 → 01-24        dinutuximab beta 01-04 … 01-08, NK 01-10
    c4 DIT 2027-01-25 → 02-14        response 02-14
    c5 DIT 2027-02-15 → 03-07        NK 02-21
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from trialdesk.criteria.verdict import screen_record
from trialdesk.enrolment.consent import record_consent
from trialdesk.enrolment.enrol import enrol
from trialdesk.enrolment.journey import Journey, journey_calendar
from trialdesk.errors import SafetyError, ScheduleError, TrialdeskError
from trialdesk.facts.patient import patient_from_data
from trialdesk.protocol.load import load_protocol
from trialdesk.safety.check import check_document
from trialdesk.safety.rules import ActionKind, ProposedAction
from trialdesk.schedule.actions import rule_proposal
from trialdesk.schedule.dose import BodyMeasurement
from trialdesk.schedule.plan import Calendar, EventStatus
from trialdesk.schedule.records import EventRecord

ROOT = Path(__file__).resolve().parents[1]
NBNK = load_protocol(ROOT / "protocols" / "nb-nk-2026.yaml")
P = NBNK.protocol
NOW = datetime(2026, 11, 21, 12, 0)
START = date(2026, 11, 23)


def d(text: str) -> date:
    return date.fromisoformat(text)


def journey() -> Journey:
    data = json.loads((ROOT / "examples" / "patients" / "nb-refractory.json").read_text())
    record = patient_from_data(data, today=date(2026, 11, 21))
    consent = record_consent(P.consent, trial_id=P.id, patient_id=record.patient_id,
                             birth_date=record.birth_date, version="1.0",
                             signed_on=date(2026, 11, 18), signed_by="parent", assent=None,
                             recorded_by="coordinator", recorded_at=NOW)
    e = enrol(P, screen_record(NBNK, record, as_of=NOW), consent, enrolled_at=NOW,
              enrolled_by="Dr A")
    j = Journey(trial_id=P.id, patient_id=record.patient_id).with_consent(consent)
    j = j.with_enrolment(e).with_body(BodyMeasurement(on=date(2026, 11, 16), weight_kg=21.4,
                                                      height_cm=118))
    return j.with_start(START)


J = journey()
BEFORE = journey_calendar(P, J)


def dates(cal: Calendar) -> dict[str, date | None]:
    return {e.id: e.date for e in cal.events}


def given(event_id: str, at: str, amount: float = 8.4) -> EventRecord:
    return EventRecord(event_id=event_id, status="given", at=datetime.fromisoformat(at),
                       by="nurse", amount=amount, unit="mg")


def confirmed(rule_id: str, doc: dict[str, Any], at: datetime,
              accept: bool = True) -> tuple[list[ProposedAction], date | None]:
    found = rule_proposal(check_document(doc, P), P, rule_id)
    return [a.confirm("Dr A", at, accept_unconfirmed=accept) for a in found.actions], found.found_on


def applied(j: Journey, actions: list[ProposedAction], effective: date, **kw: Any) -> Journey:
    for a in actions:
        j = j.with_action(P, a, trial_id=P.id, patient_id="NB-001", effective=effective,
                          applied_at=a.confirmed_at or NOW, accept_unconfirmed=True, **kw)
    return j


def action(kind: str, **fields: Any) -> ProposedAction:
    base: dict[str, Any] = {"reason": "test", "rule_id": "TEST-RULE", "source": "test",
                            "unconfirmed": False, "requires_confirmation": True}
    return ProposedAction(kind=kind, **(base | fields))


def test_hand_checked_calendar_before_any_action() -> None:
    got = dates(BEFORE)
    assert got["mononuclear-cell-collection"] == d("2026-11-22")
    assert [got[f"c{n}"] for n in range(1, 6)] == [
        d("2026-11-23"), d("2026-12-14"), d("2027-01-04"), d("2027-01-25"), d("2027-02-15")]
    assert got["c2.dinutuximab-beta.d5"] == d("2026-12-18")
    assert got["c2.autologous-nk-cells.d7"] == d("2026-12-20")
    assert got["c2.response-assessment"] == d("2027-01-03")
    assert got["c4.response-assessment"] == d("2027-02-14")


# ---------------------------------------------------------------------------- delay


NEUTROPENIA = {
    "patient_id": "NB-001", "trial": "NB-NK-2026", "arm": "A", "course": "IT", "course_number": 1,
    "labs": [{"term": "Neutrophil count decreased", "value": 400, "unit": "/mm3", "lln": 1800,
              "date": "2026-12-11"}],
    "next_course": {"course": "DIT", "course_number": 2, "labs": [
        {"name": "anc", "value": 0.4, "unit": "10^9/L", "date": "2026-12-11"},
        {"name": "platelets", "value": 120000, "unit": "/uL", "date": "2026-12-11"}]},
}


def test_inr_in_an_adverse_event_document_asks_about_anticoagulation() -> None:
    # CTCAE v5.0 INR increased: ">1.5 - 2.5; >1.5 - 2.5 x baseline if on anticoagulation";
    # 2.0 on a baseline of 1.6 (1.25 x) is grade 1 on anticoagulation, grade 2 without.
    lab = {"term": "INR increased", "value": 2.0, "unit": "", "baseline": 1.6, "date": "2026-12-11"}
    doc = {**NEUTROPENIA, "labs": [lab]}
    assert check_document(doc, P).labs[0].grade.possible_grades == (1, 2)
    on = {**doc, "labs": [{**lab, "anticoagulation": True}]}
    assert check_document(on, P).labs[0].grade.grade == 1
    off = {**doc, "labs": [{**lab, "anticoagulation": False}]}
    assert check_document(off, P).labs[0].grade.grade == 2


def test_grade_4_neutropenia_before_a_dit_course_delays_it_and_everything_after() -> None:
    check = check_document(NEUTROPENIA, P)
    assert check.labs[0].grade.grade == 4  # 400/mm³ < 500: CTCAE v5.0 grade 4
    actions, found_on = confirmed("NBNK-COUNT-RECOVERY", NEUTROPENIA, datetime(2026, 12, 11, 16))
    assert [a.kind for a in actions] == [ActionKind.DELAY_COURSE] and found_on is None
    j = applied(J, actions, d("2026-12-11"), days=7)
    cal = journey_calendar(P, j)
    got = dates(cal)
    # Course 2 and every later event move 7 days; day −1 and course 1 stay.
    moved = {
        "c2": "2026-12-21", "c2.irinotecan.d1": "2026-12-21", "c2.dinutuximab-beta.d5": "2026-12-25",
        "c2.autologous-nk-cells.d7": "2026-12-27", "c2.response-assessment": "2027-01-10",
        "c3": "2027-01-11", "c3.autologous-nk-cells.d7": "2027-01-17",
        "c4.response-assessment": "2027-02-21", "c5": "2027-02-22",
        "c5.autologous-nk-cells.d7": "2027-02-28",
    }
    assert {k: got[k] for k in moved} == {k: d(v) for k, v in moved.items()}
    assert got["mononuclear-cell-collection"] == d("2026-11-22")
    assert got["c1"] == d("2026-11-23") and got["c1.irinotecan.d5"] == d("2026-11-27")
    assert all(e.shifted_days == 7 for e in cal.events if (e.course_number or 0) >= 2)
    delay = j.delays[-1]
    assert (delay.course, delay.days, delay.by, delay.rule_id) == (2, 7, "Dr A",
                                                                    "NBNK-COUNT-RECOVERY")
    assert "anc 0.4 10^9/L is below the minimum of 750 /uL" in delay.reason
    kept = j.actions[-1]
    assert (kept.action.confirmed_by, kept.action.confirmed_at) == ("Dr A", datetime(2026, 12, 11, 16))
    assert kept.action.unconfirmed and kept.accepted_unconfirmed and kept.event_ids == ("c2",)
    note = cal.event("c2").modifications[0]
    assert note.kind == "delay_course" and note.days == 7 and "[unconfirmed]" in note.text
    assert cal.actions[0].rule_id == "NBNK-COUNT-RECOVERY"


def test_delay_without_a_course_number_takes_the_next_course_and_needs_days() -> None:
    doc = json.loads(json.dumps(NEUTROPENIA))
    del doc["next_course"]["course_number"]
    actions, _ = confirmed("NBNK-COUNT-RECOVERY", doc, datetime(2026, 12, 11, 16))
    with pytest.raises(SafetyError, match="sets no length, so the clinician gives the days") as err:
        applied(J, actions, d("2026-12-11"))
    assert err.value.where == "days"
    j = applied(J, actions, d("2026-12-11"), days=3)
    assert j.actions[-1].course_number == 2
    assert journey_calendar(P, j).event("c2").date == d("2026-12-17")  # 12-14 + 3
    with pytest.raises(SafetyError, match="already applied") as err:
        applied(j, actions, d("2026-12-11"), days=3)
    assert err.value.where == "rule_id"


# ---------------------------------------------------------------------------- discontinue


def cls(grade: int, onset: str, course: int) -> dict[str, Any]:
    return {"patient_id": "NB-001", "trial": "NB-NK-2026", "course": "DIT", "course_number": course,
            "events": [{"term": "Capillary leak syndrome", "grade": grade, "onset": onset,
                        "seriousness": ["life_threatening" if grade == 4 else "hospitalisation"]}]}


def test_grade_4_capillary_leak_stops_dinutuximab_beta_for_the_rest_of_that_course() -> None:
    j = J.with_record(P, given("c3.dinutuximab-beta.d1", "2027-01-04T09:00")).with_record(
        P, given("c3.dinutuximab-beta.d2", "2027-01-05T09:00"))
    # Onset on course 3 day 3 (2027-01-06).
    actions, found_on = confirmed("NBNK-CLS-G4", cls(4, "2027-01-06", 3), datetime(2027, 1, 6, 14))
    assert found_on == d("2027-01-06")
    assert [(a.kind, a.scope) for a in actions] == [(ActionKind.DISCONTINUE_AGENT,
                                                    "rest_of_course")]
    j = applied(j, actions, found_on)
    assert j.actions[-1].event_ids == ("c3.dinutuximab-beta.d3", "c3.dinutuximab-beta.d4",
                                       "c3.dinutuximab-beta.d5")
    cal = journey_calendar(P, j, datetime(2027, 1, 6, 15))
    status = {e.id: e.status for e in cal.events}
    assert [status[f"c3.dinutuximab-beta.d{n}"] for n in range(1, 6)] == [
        EventStatus.GIVEN, EventStatus.GIVEN, EventStatus.DISCONTINUED,
        EventStatus.DISCONTINUED, EventStatus.DISCONTINUED]
    # The other agents of course 3 and every later course are unaffected.
    assert status["c3.irinotecan.d3"] is EventStatus.DUE
    assert status["c3.autologous-nk-cells.d7"] is EventStatus.PLANNED
    assert status["c4.dinutuximab-beta.d1"] is EventStatus.PLANNED
    assert dates(cal) == dates(BEFORE)  # no date moves
    d3 = cal.event("c3.dinutuximab-beta.d3")
    assert "discontinue dinutuximab beta for the rest of the course" in (d3.status_note or "")
    assert "rule NBNK-CLS-G4 [unconfirmed], confirmed by Dr A on 2027-01-06 14:00" in (
        d3.status_note or "")
    assert "toxicity rule NBNK-CLS-G4" in d3.unconfirmed
    assert "toxicity rule NBNK-CLS-G4" in cal.unconfirmed
    doc = cal.to_json()
    event = next(e for e in doc["events"] if e["id"] == "c3.dinutuximab-beta.d3")
    assert event["status"] == "discontinued"
    assert event["modifications"][0]["rule_id"] == "NBNK-CLS-G4"
    assert event["modifications"][0]["source"].startswith("Unituxin (dinutuximab) label")
    assert doc["actions"][0]["event_ids"] == list(j.actions[-1].event_ids)


def test_permanent_discontinuation_stops_every_later_dinutuximab_beta() -> None:
    j = J.with_record(P, given("c2.dinutuximab-beta.d1", "2026-12-14T09:00"))
    doc = {"patient_id": "NB-001", "course": "DIT", "course_number": 2, "events": [
        {"term": "Anaphylaxis", "grade": 3, "onset": "2026-12-15"}]}
    actions, found_on = confirmed("NBNK-ANAPHYLAXIS", doc, datetime(2026, 12, 15, 11))
    j = applied(j, actions, found_on or NOW.date())
    ids = j.actions[-1].event_ids
    # Course 2 days 2-5, then 5 days in each of courses 3, 4, 5: 4 + 15 = 19.
    assert len(ids) == 19 and ids[0] == "c2.dinutuximab-beta.d2"
    assert ids[-1] == "c5.dinutuximab-beta.d5"
    cal = journey_calendar(P, j)
    for e in cal.events:
        if e.dose is not None and e.dose.agent == "dinutuximab beta":
            expected = EventStatus.PLANNED if e.id == "c2.dinutuximab-beta.d1" else \
                EventStatus.DISCONTINUED
            assert e.status is expected, e.id
        elif e.dose is not None:
            assert e.status is EventStatus.PLANNED, e.id
    assert "discontinue dinutuximab beta permanently" in (
        cal.event("c5.dinutuximab-beta.d1").status_note or "")
    # As of 2026-12-15, the given dose keeps its record.
    assert journey_calendar(P, j, datetime(2026, 12, 15, 12)).event(
        "c2.dinutuximab-beta.d1").status is EventStatus.GIVEN
    # Nothing of dinutuximab beta is left to stop a second time.
    again = action("discontinue_agent", agent="dinutuximab beta", scope="permanent",
                   rule_id="TEST-AGAIN").confirm("Dr B", datetime(2026, 12, 16, 9))
    with pytest.raises(ScheduleError, match="no administration of dinutuximab beta left") as err:
        applied(j, [again], d("2026-12-16"))
    assert err.value.where == "agent"


# ---------------------------------------------------------------------------- refusals


def test_an_unconfirmed_rule_is_refused_without_the_clinicians_acceptance() -> None:
    found = rule_proposal(check_document(cls(4, "2026-12-16", 2), P), P, "NBNK-CLS-G4")
    proposal = found.actions[0]
    assert proposal.unconfirmed
    with pytest.raises(SafetyError, match="accept that explicitly"):
        proposal.confirm("Dr A", datetime(2026, 12, 16, 10))
    # Confirmed with acceptance, but applied without it: refused as well.
    signed = proposal.confirm("Dr A", datetime(2026, 12, 16, 10), accept_unconfirmed=True)
    with pytest.raises(SafetyError, match="not confirmed against its source") as err:
        J.with_action(P, signed, trial_id=P.id, patient_id="NB-001", effective=d("2026-12-16"),
                      applied_at=datetime(2026, 12, 16, 10))
    assert err.value.where == "accept_unconfirmed"
    assert J.actions == ()


def test_an_action_not_confirmed_by_a_clinician_is_refused() -> None:
    found = rule_proposal(check_document(cls(4, "2026-12-16", 2), P), P, "NBNK-CLS-G4")
    with pytest.raises(SafetyError, match="not confirmed by a clinician") as err:
        J.with_action(P, found.actions[0], trial_id=P.id, patient_id="NB-001",
                      effective=d("2026-12-16"), applied_at=datetime(2026, 12, 16, 10),
                      accept_unconfirmed=True)
    assert err.value.where == "confirmed_by"
    assert [a.kind.value for a in found.advice] == ["supportive_care"]
    advice = found.advice[0]
    with pytest.raises(SafetyError, match="needs no confirmation"):
        advice.confirm("Dr A", datetime(2026, 12, 16, 10))
    forged = advice.model_copy(update={"confirmed_by": "Dr A",
                                       "confirmed_at": datetime(2026, 12, 16, 10)})
    with pytest.raises(SafetyError, match="nothing changes on the calendar") as err:
        applied(J, [forged], d("2026-12-16"))
    assert err.value.where == "kind"


AT = datetime(2026, 12, 16, 10)


@pytest.mark.parametrize(("proposal", "options", "field", "message"), [
    (action("pause", agent="naxitamab"), {}, "agent",
     "'naxitamab' is not on the calendar of NB-001 (agents: irinotecan, temozolomide, "
     "dinutuximab beta, autologous NK cells)"),
    (action("discontinue_agent", agent="dinutuximab beta", course="DIT", course_number=6), {},
     "course_number", "course 6 is not on the calendar of NB-001 (courses: 1 IT, 2 DIT"),
    (action("discontinue_agent", agent="dinutuximab beta", course="IT", course_number=2), {},
     "course", "course 2 of NB-001 is DIT, not IT"),
    (action("delay_course", course="BEACON"), {"days": 7}, "course",
     "BEACON is not a course on the calendar of NB-001"),
    (action("pause", agent="dinutuximab beta"), {"patient_id": "NB-002"}, "patient_id",
     "the action is for patient NB-002, not NB-001"),
    (action("pause", agent="dinutuximab beta"), {"trial_id": "RuMCeSS"}, "trial_id",
     "the action is for RuMCeSS, not NB-NK-2026"),
    (action("pause", agent="dinutuximab beta"), {"days": 2}, "days",
     "only a course delay takes days"),
    (action("reduce", agent="irinotecan"), {}, "percent",
     "rule TEST-RULE sets no percentage for the reduction"),
    (action("reduce", agent="irinotecan", percent=75), {"percent": 50}, "percent",
     "rule TEST-RULE sets 75%"),
    (action("discontinue_agent", agent="irinotecan", scope="until_resolved"), {}, "scope",
     "has no end the calendar can place"),
    (action("pause", agent="dinutuximab beta", course="DIT", course_number=3), {}, "effective",
     "2026-12-16 is not in course 3 (2027-01-04 → 2027-01-24)"),
])
def test_refusals_name_the_field(proposal: ProposedAction, options: dict[str, Any], field: str,
                                 message: str) -> None:
    kw: dict[str, Any] = {"trial_id": P.id, "patient_id": "NB-001", "effective": d("2026-12-16"),
                          "applied_at": AT} | options
    with pytest.raises(TrialdeskError) as err:
        J.with_action(P, proposal.confirm("Dr A", AT), **kw)
    assert err.value.where == field
    assert message in err.value.reason


def test_a_confirmation_after_the_application_is_refused() -> None:
    proposal = action("pause", agent="dinutuximab beta").confirm("Dr A", datetime(2026, 12, 17))
    with pytest.raises(SafetyError, match="after it was applied") as err:
        J.with_action(P, proposal, trial_id=P.id, patient_id="NB-001", effective=d("2026-12-16"),
                      applied_at=datetime(2026, 12, 16, 23))
    assert err.value.where == "confirmed_at"


def test_rule_proposal_refuses_rules_that_were_not_triggered() -> None:
    check = check_document(cls(3, "2026-12-16", 2), P)
    with pytest.raises(SafetyError, match="rule NBNK-CLS-G4 is not triggered"):
        rule_proposal(check, P, "NBNK-CLS-G4")
    with pytest.raises(SafetyError, match=r"no toxicity rule 'NBNK-CLS-G5' \(did you mean"):
        rule_proposal(check, P, "NBNK-CLS-G5")
    with pytest.raises(SafetyError, match="has no next_course"):
        rule_proposal(check, P, "NBNK-COUNT-RECOVERY")
    fever = {"patient_id": "NB-001", "course": "DIT", "events": [
        {"term": "Fever", "grade": 2, "onset": "2026-12-16"}]}
    with pytest.raises(SafetyError, match="supportive care only"):
        rule_proposal(check_document(fever, P), P, "NBNK-FEVER")
    # Sodium 127 mmol/L without the symptom status is grade 2 or 3: the grade-4 rule is
    # not triggered, and nothing is guessed.
    sodium = {"patient_id": "NB-001", "course": "DIT", "labs": [
        {"term": "Hyponatremia", "value": 127, "unit": "mmol/L", "lln": 135}]}
    with pytest.raises(SafetyError, match="is not triggered"):
        rule_proposal(check_document(sodium, P), P, "NBNK-HYPONATREMIA-G4")


# ---------------------------------------------------------------------------- reduce, slow, off


def test_reduction_recomputes_later_doses_with_their_working() -> None:
    cut = action("reduce", agent="irinotecan", percent=75, scope="following_courses",
                 course="DIT", course_number=2, unconfirmed=True).confirm(
        "Dr A", AT, accept_unconfirmed=True)
    j = applied(J, [cut], d("2026-12-16"))
    assert len(j.actions[-1].event_ids) == 15  # irinotecan days 1-5 of courses 3, 4, 5
    cal = journey_calendar(P, j)
    # 50 mg/m² × 75% = 37.5 mg/m² × 0.84 m² = 31.5 mg (to 0.1 mg: 31.5); course 2 keeps 42.0.
    c3 = cal.event("c3.irinotecan.d1").dose
    assert c3 is not None and c3.amount == 31.5 and c3.shown() == "31.5 mg/day"
    assert c3.working.startswith("reduced to 75% (rule TEST-RULE [unconfirmed], confirmed by "
                                 "Dr A): 50 mg/m² × 75% = 37.5 mg/m²; BSA 0.84 m²")
    assert "toxicity rule TEST-RULE" in c3.unconfirmed
    assert "irinotecan 50 mg/m²" in c3.unconfirmed  # the protocol dose's own mark stays
    assert cal.event("c2.irinotecan.d5").dose.amount == 42.0  # type: ignore[union-attr]
    assert cal.event("c3.temozolomide.d1").dose.amount == 85.0  # type: ignore[union-attr]
    # The reduced plan is what records are checked against.
    with pytest.raises(ScheduleError, match="record it as given"):
        j.with_record(P, EventRecord(event_id="c3.irinotecan.d1", status="partly_given",
                                     at=datetime(2027, 1, 4, 9), by="nurse", amount=31.5,
                                     unit="mg"))
    # Temozolomide at 75% for the rest of course 2: 100 × 75% = 75 mg/m² × 0.84 = 63 mg;
    # capsules 5/20/100/140/180/250 mg reach 60 or 65, 65 is nearer: 3 × 20 + 1 × 5.
    tmz = action("reduce", agent="temozolomide", percent=75, scope="rest_of_course",
                 rule_id="TEST-TMZ").confirm("Dr A", AT)
    cal = journey_calendar(P, applied(j, [tmz], d("2026-12-16")))
    assert [cal.event(f"c2.temozolomide.d{n}").dose.amount  # type: ignore[union-attr]
            for n in range(1, 6)] == [85.0, 85.0, 65.0, 65.0, 65.0]
    assert "(3 × 20 + 1 × 5)" in cal.event("c2.temozolomide.d3").dose.working  # type: ignore[union-attr]


def test_a_percentage_the_rule_does_not_set_is_the_clinicians() -> None:
    cut = action("reduce", agent="irinotecan", scope="permanent").confirm("Dr A", AT)
    j = applied(J, [cut], d("2026-12-16"), percent=80)
    kept = j.actions[-1]
    assert (kept.percent, kept.percent_set_by) == (80, "Dr A")
    assert "to 80% (set by Dr A; the rule sets no percentage)" in kept.shown()
    # 50 × 80% = 40 mg/m² × 0.84 = 33.6 mg from course 2 day 3 on.
    assert journey_calendar(P, j).event("c2.irinotecan.d3").dose.amount == 33.6  # type: ignore[union-attr]


def test_capillary_leak_grade_3_pauses_and_slows_with_a_note_and_no_date_change() -> None:
    actions, found_on = confirmed("NBNK-CLS-G3", cls(3, "2026-12-16", 2), datetime(2026, 12, 16, 8))
    assert [a.kind for a in actions] == [ActionKind.PAUSE, ActionKind.SLOW]
    j = applied(J, actions, found_on or NOW.date())
    assert [a.event_ids for a in j.actions] == [("c2.dinutuximab-beta.d3",)] * 2
    cal = journey_calendar(P, j)
    assert dates(cal) == dates(BEFORE)
    e = cal.event("c2.dinutuximab-beta.d3")
    assert e.status is EventStatus.PLANNED and e.dose == BEFORE.event("c2.dinutuximab-beta.d3").dose
    assert "pause dinutuximab beta until the event resolves" in (e.status_note or "")
    assert "after the capillary leak resolves: slow the infusion of dinutuximab beta to 50%" in (
        e.status_note or "")
    assert [m.kind for m in e.modifications] == ["pause", "slow"]
    assert cal.event("c2.dinutuximab-beta.d4").modifications == ()


def test_a_confirmed_rule_needs_no_acceptance_and_the_clinician_may_set_the_rate() -> None:
    # Barone 2021 Table 2 (confirmed): uncontrolled pain → consider adjusting the rate; the
    # rule gives no amount, so the clinician's percentage is kept as theirs.
    doc = {"patient_id": "NB-001", "course": "DIT", "course_number": 2, "events": [
        {"term": "Pain", "grade": 3, "onset": "2026-12-15"}]}
    found = rule_proposal(check_document(doc, P), P, "NBNK-PAIN-UNCONTROLLED")
    slow, = found.actions
    assert not slow.unconfirmed and slow.percent is None
    assert "ketamine" in (found.advice[0].advice or "")
    signed = slow.confirm("Dr A", datetime(2026, 12, 15, 20))
    j = J.with_action(P, signed, trial_id=P.id, patient_id="NB-001", effective=d("2026-12-15"),
                      applied_at=datetime(2026, 12, 15, 20, 5), percent=50)
    kept = j.actions[-1]
    assert kept.event_ids == ("c2.dinutuximab-beta.d2",) and not kept.accepted_unconfirmed
    note = journey_calendar(P, j).event("c2.dinutuximab-beta.d2").status_note or ""
    assert "slow the infusion of dinutuximab beta to 50% (set by Dr A; the rule sets no " \
           "percentage) (if pain is not controlled by gabapentin" in note
    assert "rule NBNK-PAIN-UNCONTROLLED, confirmed by Dr A on 2026-12-15 20:00" in note


def test_off_protocol_treatment_cancels_treatment_and_keeps_assessments() -> None:
    off = action("off_protocol_treatment", reason="progressive disease").confirm("Dr A", AT)
    j = applied(J, [off], d("2026-12-16"))
    cal = journey_calendar(P, j)
    status = {e.id: e.status for e in cal.events}
    assert status["c2.irinotecan.d2"] is EventStatus.PLANNED  # before 2026-12-16
    for cancelled in ("c2.irinotecan.d3", "c2.dinutuximab-beta.d5", "c2.autologous-nk-cells.d7",
                      "c3", "c3.irinotecan.d1", "c5.autologous-nk-cells.d7"):
        assert status[cancelled] is EventStatus.CANCELLED, cancelled
    for kept in ("c2.response-assessment", "c4.response-assessment",
                 "mononuclear-cell-collection"):
        assert status[kept] is EventStatus.PLANNED, kept
    assert status["c2"] is EventStatus.NONE  # the course under way is not cancelled
    assert dates(cal) == dates(BEFORE)


def test_old_journey_files_without_actions_still_load() -> None:
    data = J.model_dump(mode="json")
    del data["actions"]
    assert Journey.model_validate(data) == J
    j = applied(J, [action("pause", agent="dinutuximab beta").confirm("Dr A", AT)], d("2026-12-16"))
    again = Journey.model_validate_json(j.model_dump_json())
    assert again == j and again.actions[0].action.confirmed_by == "Dr A"
