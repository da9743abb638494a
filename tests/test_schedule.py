"""Treatment calendars and doses: known answers for every seed regimen, checked by hand.

Conventions used by every hand calculation below (trialdesk.schedule.plan):
day 1 is the start date and there is no day 0 (day −1 is the day before day 1); courses
follow one another, each starting ``length_days`` after the previous one; an assessment
"every n courses" falls on the last day of every n-th course. BSA is Mosteller
√(height cm × weight kg / 3600) rounded half up to 2 decimals (each protocol's
``dosing.bsa_places``), then multiplied by the dose per m².
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from icalendar import Calendar as ICalendar

from trialdesk.errors import ClinicalError, ScheduleError
from trialdesk.protocol.load import load_protocol, protocol_from_data, read_document
from trialdesk.protocol.model import Dose, Dosing, Param, Protocol, RoundingRule
from trialdesk.schedule.dose import BodyMeasurement, compute_dose
from trialdesk.schedule.export import to_ics
from trialdesk.schedule.plan import Calendar, EventKind, EventStatus, plan
from trialdesk.schedule.records import CourseDelay, EventRecord
from trialdesk.schedule.status import check_delay, check_record, reconcile

ROOT = Path(__file__).resolve().parents[1]


def protocol(name: str) -> Protocol:
    return load_protocol(ROOT / "protocols" / name).protocol


NBNK = protocol("nb-nk-2026.yaml")
REFNOT = protocol("refnot-r2.yaml")
RUMCESS = protocol("rumcess.yaml")
DB = protocol("dinutuximab-beta-program.yaml")


def body(weight: float | None, height: float | None = None,
         on: date = date(2026, 11, 16)) -> BodyMeasurement:
    return BodyMeasurement(on=on, weight_kg=weight, height_cm=height)


def d(text: str) -> date:
    return date.fromisoformat(text)


def dates(cal: Calendar, kind: EventKind, name_start: str = "") -> list[str]:
    return [e.date.isoformat() for e in cal.events
            if e.kind is kind and e.name.startswith(name_start) and e.date]


CHILD = body(21.4, 118)       # BSA √(118 × 21.4 / 3600) = √0.70144 = 0.8375 → 0.84 m²
SMALL = body(9.0, 75)         # 9 kg ≤ 10 kg: NB-NK-2026's small-child rule applies
TEEN = body(52.0, 160)        # BSA √(160 × 52 / 3600) = √2.31111 = 1.5202 → 1.52 m²


# ---------------------------------------------------------------------------- NB-NK-2026


def test_nbnk_arm_a_dates() -> None:
    # Seed 000: day −1 cell collection; IT course; 4 DIT courses (arm A), 21 days apart;
    # NK infusion on day 7 of every DIT course. Start (day 1) Monday 2026-11-23:
    #   day −1 = 2026-11-22
    #   course 1 IT  day 1   = 2026-11-23, irinotecan/temozolomide days 1–5 = 23–27 Nov
    #   course 2 DIT day 22  = 2026-11-23 + 21 = 2026-12-14, NK day 7 = 2026-12-20
    #   course 3 DIT day 43  = 2027-01-04, NK 2027-01-10
    #   course 4 DIT day 64  = 2027-01-25, NK 2027-01-31
    #   course 5 DIT day 85  = 2027-02-15, NK 2027-02-21; ends day 105 = 2027-03-07
    #   response every 2 courses: last day of course 2 (day 42 = 2027-01-03) and of
    #   course 4 (day 84 = 2027-02-14)
    cal = plan(NBNK, "A", d("2026-11-23"), body=[CHILD])
    collection = cal.events[0]
    assert (collection.kind, collection.date, collection.day) == (
        EventKind.PROCEDURE, d("2026-11-22"), -1)
    courses = [e for e in cal.events if e.kind is EventKind.COURSE]
    assert [(e.course_id, e.date.isoformat(), e.end.isoformat(), e.day) for e in courses  # type: ignore[union-attr]
            ] == [("IT", "2026-11-23", "2026-12-13", 1), ("DIT", "2026-12-14", "2027-01-03", 22),
                  ("DIT", "2027-01-04", "2027-01-24", 43), ("DIT", "2027-01-25", "2027-02-14", 64),
                  ("DIT", "2027-02-15", "2027-03-07", 85)]
    assert dates(cal, EventKind.ADMINISTRATION, "autologous NK cells") == [
        "2026-12-20", "2027-01-10", "2027-01-31", "2027-02-21"]
    assert dates(cal, EventKind.ADMINISTRATION, "irinotecan")[:5] == [
        "2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27"]
    assert len(dates(cal, EventKind.ADMINISTRATION, "irinotecan")) == 25  # 5 courses × 5 days
    assert len(dates(cal, EventKind.ADMINISTRATION, "dinutuximab beta")) == 20  # DIT only
    assert dates(cal, EventKind.ASSESSMENT) == ["2027-01-03", "2027-02-14"]
    assert [e.day for e in cal.events if e.kind is EventKind.ASSESSMENT] == [42, 84]


def test_nbnk_arm_b_has_a_fifth_dit_course() -> None:
    # Arm B: 5 DIT courses; course 6 starts day 106 = 2027-03-08 (NK 2027-03-14) and ends
    # day 126 = 2027-03-28, where the third response assessment falls.
    cal = plan(NBNK, "B", d("2026-11-23"), body=[CHILD])
    assert cal.course_count == 6
    assert cal.event("c6").date == d("2027-03-08")
    assert cal.event("c6.autologous-nk-cells.d7").date == d("2027-03-14")
    assert dates(cal, EventKind.ASSESSMENT) == ["2027-01-03", "2027-02-14", "2027-03-28"]


@pytest.mark.parametrize(("who", "irinotecan", "temozolomide", "dinutuximab"), [
    # 21.4 kg, 118 cm: BSA 0.84 m²; irinotecan 50 × 0.84 = 42.0 mg; temozolomide
    # 100 × 0.84 = 84 mg → whole capsules (5, 20, 100, 140, 180, 250 mg): 80 or 85, 85 is
    # nearer → 85 mg; dinutuximab beta 10 × 0.84 = 8.4 mg.
    (CHILD, 42.0, 85.0, 8.4),
    # 9 kg ≤ 10 kg (Cancer Council Australia cut-off; ÷30 UNCONFIRMED, FACTS.md §1g):
    # irinotecan 50/30 = 1.6667 mg/kg × 9 = 15.0 mg; temozolomide 100/30 × 9 = 30 mg
    # (20 + 5 + 5); dinutuximab beta 10/30 × 9 = 3.0 mg.
    (SMALL, 15.0, 30.0, 3.0),
    # 52 kg, 160 cm: BSA 1.52 m²; irinotecan 76.0 mg; temozolomide 152 → 150 (140 + 5 + 5;
    # 150 is nearer than 155); dinutuximab beta 15.2 mg.
    (TEEN, 76.0, 150.0, 15.2),
], ids=["21.4kg", "9kg-small-child", "52kg"])
def test_nbnk_doses(who: BodyMeasurement, irinotecan: float, temozolomide: float,
                    dinutuximab: float) -> None:
    cal = plan(NBNK, "A", d("2026-11-23"), body=[who])
    assert cal.event("c1.irinotecan.d1").dose.amount == irinotecan  # type: ignore[union-attr]
    assert cal.event("c1.temozolomide.d1").dose.amount == temozolomide  # type: ignore[union-attr]
    assert cal.event("c2.dinutuximab-beta.d1").dose.amount == dinutuximab  # type: ignore[union-attr]
    nk = cal.event("c2.autologous-nk-cells.d7").dose
    assert nk is not None and nk.not_set and nk.amount is None
    assert nk.shown() == "not set (cells/kg) [unconfirmed]"


def test_nbnk_dose_shows_its_working_and_marks() -> None:
    cal = plan(NBNK, "A", d("2026-11-23"), body=[CHILD])
    dose = cal.event("c1.temozolomide.d1").dose
    assert dose is not None
    assert (dose.weight_kg, dose.height_cm, dose.bsa, dose.bsa_formula) == (21.4, 118, 0.84,
                                                                            "mosteller")
    assert dose.working == (
        "BSA 0.84 m² (Mosteller, 21.4 kg, 118 cm, to 2 decimals) × 100 mg/m² = 84 mg; rounded "
        "to whole units of 5, 20, 100, 140, 180, 250 mg: 85 mg (4 × 20 + 1 × 5)")
    assert "temozolomide 100 mg/m²" in dose.unconfirmed
    small = plan(NBNK, "A", d("2026-11-23"), body=[SMALL]).event("c1.irinotecan.d1").dose
    assert small is not None and small.basis == "per_kg (small-child rule)"
    assert "small-child divisor ÷30" in small.unconfirmed
    assert small.working.startswith("small-child rule (9 kg ≤ 10 kg): 50 mg/m² ÷ 30 = 1.6667 "
                                    "mg/kg × 9 kg = 15 mg")


def test_small_child_needs_no_height_but_bsa_does() -> None:
    no_height_small = plan(NBNK, "A", d("2026-11-23"), body=[body(9.0)])
    assert no_height_small.event("c1.irinotecan.d1").dose.amount == 15.0  # type: ignore[union-attr]
    with pytest.raises(ScheduleError) as exc:
        plan(NBNK, "A", d("2026-11-23"), body=[body(21.4)])
    assert exc.value.where == "height_cm"
    assert "no height recorded; irinotecan is dosed 50 mg/m²" in exc.value.reason
    with pytest.raises(ScheduleError) as exc:
        plan(NBNK, "A", d("2026-11-23"))
    assert exc.value.where == "weight_kg"


def test_cut_off_is_inclusive_at_ten_kg() -> None:
    # "BSA dosing for patients who weigh more than 10 kg": exactly 10 kg is dosed per kg.
    at = compute_dose("irinotecan", NBNK.course("IT").administrations[0].dose,
                      body(10.0, 76), NBNK.dosing)
    above = compute_dose("irinotecan", NBNK.course("IT").administrations[0].dose,
                         body(10.1, 76), NBNK.dosing)
    assert at.basis == "per_kg (small-child rule)" and at.amount == 16.7  # 50/30 × 10 = 16.67
    # 10.1 kg, 76 cm: √(767.6/3600) = √0.21322 = 0.4618 → 0.46 m² × 50 = 23.0 mg
    assert above.basis == "per_m2" and above.amount == 23.0


# ---------------------------------------------------------------------------- Refnot R-2


REFNOT_COURSE_1 = ["2026-12-01", "2026-12-03", "2026-12-05", "2026-12-08", "2026-12-10",
                   "2026-12-12", "2026-12-15", "2026-12-17", "2026-12-19", "2026-12-22",
                   "2026-12-24", "2026-12-26"]
REFNOT_COURSE_2 = ["2026-12-29", "2026-12-31", "2027-01-02", "2027-01-05", "2027-01-07",
                   "2027-01-09", "2027-01-12", "2027-01-14", "2027-01-16", "2027-01-19",
                   "2027-01-21", "2027-01-23"]


def test_refnot_group_2_calendar() -> None:
    # Seed 003: 400 000 IU s.c. three times a week on alternate days for 4 weeks (course days
    # 1, 3, 5, 8, 10, 12, 15, 17, 19, 22, 24, 26: 12 injections), a further 4 weeks without
    # progression. Start Tuesday 2026-12-01: course 2 starts day 29 = 2026-12-29, preceded
    # by the decision point; course 2 day 26 = day 54 = 2027-01-23. Group 2: chemotherapy
    # allowed after weeks 4–8 = days 29–57 = 2026-12-29 to 2027-01-26. Response at the end
    # of each course: day 28 = 2026-12-28, day 56 = 2027-01-25.
    cal = plan(REFNOT, "G2", d("2026-12-01"))
    assert dates(cal, EventKind.ADMINISTRATION) == REFNOT_COURSE_1 + REFNOT_COURSE_2
    decision = cal.event("c2.decision")
    assert decision.kind is EventKind.DECISION and decision.date == d("2026-12-29")
    assert "no disease progression" in decision.name
    assert all(e.condition == "no disease progression" for e in cal.course_events(2))
    milestone = next(e for e in cal.events if e.kind is EventKind.MILESTONE)
    assert (milestone.date, milestone.end) == (d("2026-12-29"), d("2027-01-26"))
    assert dates(cal, EventKind.ASSESSMENT) == ["2026-12-28", "2027-01-25"]


@pytest.mark.parametrize("who", [None, body(48.0, 160), body(70.0, 175), body(120.0, 180)],
                         ids=["no-body", "48kg", "70kg", "120kg"])
def test_refnot_fixed_dose_is_the_same_for_every_body(who: BodyMeasurement | None) -> None:
    # A fixed dose needs no weight; adults only (18–75 years), no small-child rule.
    cal = plan(REFNOT, "G1", d("2026-12-01"), body=[who] if who else [])
    doses = {e.dose.shown() for e in cal.events if e.dose}  # type: ignore[union-attr]
    assert doses == {"400 000 IU"}
    assert not any(e.kind is EventKind.MILESTONE for e in cal.events)  # group 1 only
    assert REFNOT.dosing.small_child == []


# ---------------------------------------------------------------------------- RuMCeSS


ONSET = datetime(2026, 11, 21, 6, 0)


@pytest.mark.parametrize(("weight", "low", "high"), [
    # 1–2 × 10⁶ cells/kg (seed 004): 71 kg → 71–142 × 10⁶; 50 kg → 50–100 × 10⁶;
    # 120 kg → 120–240 × 10⁶ cells. Adults (17–75 years): no small-child rule.
    (71.0, 71e6, 142e6), (50.0, 50e6, 100e6), (120.0, 120e6, 240e6)])
def test_rumcess_msc_calendar(weight: float, low: float, high: float) -> None:
    # Onset 2026-11-21 06:00 + 10 h → deadline 2026-11-21 16:00 (a time, not a day).
    # RuMCeSS counts day 0 = randomisation (2026-11-21), like its 28-day mortality:
    # sampling days 0, 1, 2, 7, 14, 28 are 21, 22, 23, 28 Nov, 5 and 19 Dec; the 28-day
    # mortality assessment is on day 28 = 2026-11-21 + 28 days = 2026-12-19.
    cal = plan(RUMCESS, "MSC", d("2026-11-21"), body=[body(weight, on=d("2026-11-21"))],
               anchors={"septic_shock_onset": ONSET})
    msc = cal.event("msc-infusion")
    assert msc.kind is EventKind.TIMED and msc.deadline == datetime(2026, 11, 21, 16, 0)
    assert msc.dose is not None and (msc.dose.amount, msc.dose.amount_max) == (low, high)
    assert msc.dose.working == (f"1 × 10⁶–2 × 10⁶ cells/kg × {weight:g} kg = "
                                f"{low / 1e6:g} × 10⁶–{high / 1e6:g} × 10⁶ cells")
    sampled = [e for e in cal.events if e.kind is EventKind.SAMPLING and "IL-6" in e.name]
    assert [e.date.isoformat() for e in sampled] == [  # type: ignore[union-attr]
        "2026-11-21", "2026-11-22", "2026-11-23", "2026-11-28", "2026-12-05", "2026-12-19"]
    assert all(m in sampled[0].name for m in
               ("IL-6", "IL-10", "creatinine", "bilirubin", "procalcitonin", "CRP"))
    assert cal.event("28-day-mortality.d28").date == d("2026-12-19")
    assert cal.event("28-day-mortality.d28").day == 28


def test_rumcess_deadline_unknown_without_onset_and_soc_has_no_infusion() -> None:
    cal = plan(RUMCESS, "MSC", d("2026-11-21"), body=[body(71.0)])
    msc = cal.event("msc-infusion")
    assert msc.deadline is None and msc.status is EventStatus.UNSCHEDULED
    assert "not recorded" in (msc.note or "")
    soc = plan(RUMCESS, "SOC", d("2026-11-21"))
    assert not any(e.kind is EventKind.TIMED for e in soc.events)
    assert soc.event("28-day-mortality.d28").date == d("2026-12-19")  # 28 days after day 0


# ---------------------------------------------------------------------------- dinutuximab beta


def test_db_program_lti_calendar() -> None:
    # Five 35-day courses from 2026-12-07: course k starts 2026-12-07 + 35 (k − 1):
    # 2026-12-07, 2027-01-11, 2027-02-15, 2027-03-22, 2027-04-26; course 5 ends day 175 =
    # 2027-05-30. LTI: dinutuximab beta days 1–10 (2026-12-07 to 12-16), one admission per
    # course over those days; isotretinoin days 19–32 (2026-12-25 to 2027-01-07).
    # Response every 2 courses: day 70 = 2027-02-14 and day 140 = 2027-04-25.
    cal = plan(DB, "DB", d("2026-12-07"), body=[CHILD])
    assert [e.date.isoformat() for e in cal.events if e.kind is EventKind.COURSE] == [  # type: ignore[union-attr]
        "2026-12-07", "2027-01-11", "2027-02-15", "2027-03-22", "2027-04-26"]
    assert cal.event("c5").end == d("2027-05-30")
    admissions = [(e.date, e.end) for e in cal.events if e.kind is EventKind.ADMISSION]
    assert len(admissions) == 5 and admissions[0] == (d("2026-12-07"), d("2026-12-16"))
    db = [e for e in cal.course_events(1) if e.name.startswith("dinutuximab beta")]
    assert [e.date for e in db] == [d("2026-12-07") + timedelta(days=i) for i in range(10)]
    iso = [e.date for e in cal.course_events(1) if e.name.startswith("isotretinoin")]
    assert (iso[0], iso[-1], len(iso)) == (d("2026-12-25"), d("2027-01-07"), 14)
    assert not any(e.name.startswith("interleukin-2") for e in cal.events)  # optional
    assert dates(cal, EventKind.ASSESSMENT) == ["2027-02-14", "2027-04-25"]


def test_db_program_sti_variant_and_optional_il2() -> None:
    # STI: 20 mg/m²/day over 8 h on days 1–5 (admission 2026-12-07 to 12-11). IL-2 (when
    # chosen): days −7 to −3 (2026-11-30 to 12-04) and 1–5 of every course.
    cal = plan(DB, "DB", d("2026-12-07"), body=[CHILD], variants={"infusion": "STI"},
               optional=["interleukin-2"])
    db = [e for e in cal.course_events(1) if e.name.startswith("dinutuximab beta")]
    assert len(db) == 5 and "[STI]" in db[0].name
    assert cal.event("c1.admission").end == d("2026-12-11")
    il2 = [e.date.isoformat() for e in cal.course_events(1) if e.name.startswith("interleukin")]
    assert il2 == ["2026-11-30", "2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04",
                   "2026-12-07", "2026-12-08", "2026-12-09", "2026-12-10", "2026-12-11"]
    with pytest.raises(ScheduleError, match="not one of LTI, STI"):
        plan(DB, "DB", d("2026-12-07"), body=[CHILD], variants={"infusion": "XTI"})


@pytest.mark.parametrize(("who", "lti", "sti", "isotretinoin", "each", "il2"), [
    # BSA 0.84: dB 10 × 0.84 = 8.4 (LTI), 20 × 0.84 = 16.8 (STI) mg/day; isotretinoin
    # 160 × 0.84 = 134.4 mg/day in 2 doses of 67.2 → capsules of 10/20 mg: 70 each →
    # 140 mg/day; IL-2 6 × 10⁶ × 0.84 = 5.04 × 10⁶ IU/day.
    (CHILD, 8.4, 16.8, 140.0, 70.0, 5.04e6),
    # 11 kg, 80 cm: BSA √(880/3600) = √0.24444 = 0.4944 → 0.49: dB 4.9 / 9.8; isotretinoin
    # ≤ 12 kg: 5.33 mg/kg/day × 11 = 58.63 mg/day, 2 doses of 29.315 → 30 each → 60 mg/day;
    # IL-2 6 × 10⁶ × 0.49 = 2.94 × 10⁶ IU/day.
    (body(11.0, 80), 4.9, 9.8, 60.0, 30.0, 2.94e6),
    # BSA 1.52: dB 15.2 / 30.4; isotretinoin 243.2 → 121.6 per dose → 120 (6 × 20) →
    # 240 mg/day; IL-2 9.12 × 10⁶ IU/day.
    (TEEN, 15.2, 30.4, 240.0, 120.0, 9.12e6),
], ids=["21.4kg", "11kg-small-child", "52kg"])
def test_db_program_doses(who: BodyMeasurement, lti: float, sti: float, isotretinoin: float,
                          each: float, il2: float) -> None:
    lti_cal = plan(DB, "DB", d("2026-12-07"), body=[who], optional=["interleukin-2"])
    sti_cal = plan(DB, "DB", d("2026-12-07"), body=[who], variants={"infusion": "STI"})
    assert lti_cal.event("c1.dinutuximab-beta.d1").dose.amount == lti  # type: ignore[union-attr]
    assert sti_cal.event("c1.dinutuximab-beta.d1").dose.amount == sti  # type: ignore[union-attr]
    iso = lti_cal.event("c1.isotretinoin.d19").dose
    assert iso is not None and (iso.amount, iso.each, iso.divided_into) == (isotretinoin, each, 2)
    assert lti_cal.event("c1.interleukin-2.d1").dose.amount == pytest.approx(il2)  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- delays, weight


def test_delay_moves_the_course_and_everything_after() -> None:
    # Course 3 delayed 7 days (counts not recovered): c3 2027-01-04 → 01-11, c4 01-25 →
    # 02-01, c5 02-15 → 02-22; the assessment after course 4 moves 2027-02-14 → 02-21.
    # Day −1, courses 1–2 and the assessment after course 2 (2027-01-03) stay.
    delay = CourseDelay(course=3, days=7, reason="ANC not recovered", by="investigator",
                        recorded_on=d("2027-01-04"))
    cal = plan(NBNK, "A", d("2026-11-23"), body=[CHILD], delays=[delay])
    assert [cal.event(f"c{n}").date.isoformat() for n in range(1, 6)] == [  # type: ignore[union-attr]
        "2026-11-23", "2026-12-14", "2027-01-11", "2027-02-01", "2027-02-22"]
    assert cal.event("c3.autologous-nk-cells.d7").date == d("2027-01-17")
    assert cal.event("c3.irinotecan.d1").shifted_days == 7
    assert cal.event("c2.irinotecan.d1").shifted_days == 0
    assert cal.events[0].date == d("2026-11-22")
    assert dates(cal, EventKind.ASSESSMENT) == ["2027-01-03", "2027-02-21"]
    # A second delay (course 4, 3 days) adds up: c4 2027-02-04, c5 2027-02-25.
    more = CourseDelay(course=4, days=3, reason="infection", by="investigator",
                       recorded_on=d("2027-02-01"))
    cal2 = plan(NBNK, "A", d("2026-11-23"), body=[CHILD], delays=[delay, more])
    assert (cal2.event("c4").date, cal2.event("c5").date) == (d("2027-02-04"), d("2027-02-25"))
    assert cal2.event("c5").shifted_days == 10


def test_delay_moves_later_study_day_events() -> None:
    # Refnot group 2: a 7-day delay of course 2 moves the decision and course 2, and the
    # milestone planned from day 29 (on course 2's planned start); course 1 stays.
    delay = CourseDelay(course=2, days=7, reason="progression work-up", by="investigator",
                        recorded_on=d("2026-12-29"))
    cal = plan(REFNOT, "G2", d("2026-12-01"), delays=[delay])
    assert cal.event("c2.decision").date == d("2027-01-05")
    assert cal.event("c1.refnot.d26").date == d("2026-12-26")
    milestone = next(e for e in cal.events if e.kind is EventKind.MILESTONE)
    assert milestone.date == d("2027-01-05")


def test_doses_recomputed_only_beyond_the_weight_threshold() -> None:
    # Baseline 21.4 kg. 20.5 kg before course 3: (20.5 − 21.4)/21.4 = −4.2%, within 10%:
    # doses kept. 19.0 kg before course 4: −11.2% from 21.4, more than 10%: recomputed
    # from course 4 with BSA √(118 × 19 / 3600) = √0.62278 = 0.7892 → 0.79 m²:
    # irinotecan 39.5 mg, temozolomide 79 → 80 mg (75 or 80, 80 nearer), dB 7.9 mg.
    measured = [CHILD, body(20.5, 118, d("2027-01-02")), body(19.0, 118, d("2027-01-20"))]
    cal = plan(NBNK, "A", d("2026-11-23"), body=measured)
    amounts = {n: cal.event(f"c{n}.irinotecan.d1").dose.amount for n in range(1, 6)}  # type: ignore[union-attr]
    assert amounts == {1: 42.0, 2: 42.0, 3: 42.0, 4: 39.5, 5: 39.5}
    assert cal.event("c4.temozolomide.d1").dose.amount == 80.0  # type: ignore[union-attr]
    assert cal.event("c4.dinutuximab-beta.d1").dose.amount == 7.9  # type: ignore[union-attr]
    assert cal.dose_notes == (
        "course 3: weight 20.5 kg on 2027-01-02 (-4.2%) is within 10% [unconfirmed]; doses "
        "kept from 21.4 kg (2026-11-16)",
        "course 4: doses recomputed, weight 21.4 → 19 kg (-11.2%, more than 10% [unconfirmed])")


def test_weight_threshold_is_the_protocols() -> None:
    strict = NBNK.model_copy(update={"dosing": NBNK.dosing.model_copy(update={
        "weight_change_percent": Param(value=3, unit="%", source="test")})})
    measured = [CHILD, body(20.5, 118, d("2027-01-02"))]  # −4.2% > 3%
    cal = plan(strict, "A", d("2026-11-23"), body=measured)
    # 20.5 kg: √(118 × 20.5 / 3600) = √0.67194 = 0.8197 → 0.82 m² × 50 = 41.0 mg
    assert cal.event("c3.irinotecan.d1").dose.amount == 41.0  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- dose rules


def test_cap_and_step_and_strength_rounding() -> None:
    # Naxitamab-like: 3 mg/kg, max 150 mg (Danyelza PI, FACTS.md §1f): 60 kg → 180 → 150.
    capped = compute_dose("naxitamab", Dose(amount=3, unit="mg", basis="per_kg", cap=150,
                                            source="FACTS.md §1f"), body(60.0), Dosing())
    assert capped.amount == 150.0 and capped.capped
    assert "capped at 150 mg" in capped.working
    rounding = Dosing(rounding=[RoundingRule(step=0.5, source="test")])
    half = compute_dose("x", Dose(amount=1.25, unit="mg", basis="per_kg", source="t"),
                        body(10.0), rounding)
    assert half.amount == 12.5  # 12.5 exactly: no change
    tie = compute_dose("x", Dose(amount=1.225, unit="mg", basis="per_kg", source="t"),
                       body(10.0), rounding)
    assert tie.amount == 12.5  # 12.25 is a tie between 12.0 and 12.5: rounds up
    capsules = Dosing(rounding=[RoundingRule(strengths=[5, 20], source="test")])
    low = compute_dose("x", Dose(amount=0.2, unit="mg", basis="per_kg", source="t"),
                       body(10.0), capsules)
    assert low.amount == 2.0 and "not rounded" in low.working  # below half of 5 mg
    tie2 = compute_dose("x", Dose(amount=4.25, unit="mg", basis="per_kg", source="t"),
                        body(10.0), capsules)
    assert tie2.amount == 45.0 and "(2 × 20 + 1 × 5)" in tie2.working  # 42.5: tie → 45


def test_implausible_body_values_are_refused() -> None:
    with pytest.raises(ClinicalError, match="must be greater than 0 kg"):
        BodyMeasurement(on=d("2026-11-16"), weight_kg=0)
    with pytest.raises(ClinicalError, match="plausibility limit of 350 kg"):
        BodyMeasurement(on=d("2026-11-16"), weight_kg=400)
    with pytest.raises(ScheduleError, match="give a weight, a height or both"):
        BodyMeasurement(on=d("2026-11-16"))


def test_events_before_consent_are_refused() -> None:
    with pytest.raises(ScheduleError) as exc:
        plan(NBNK, "A", d("2026-11-17"), body=[CHILD], not_before=d("2026-11-18"))
    assert exc.value.where == "start" and "before consent (2026-11-18)" in exc.value.reason
    # Day −1 falls before consent even though the start does not.
    with pytest.raises(ScheduleError, match="would fall on 2026-11-17, before consent"):
        plan(NBNK, "A", d("2026-11-18"), body=[CHILD], not_before=d("2026-11-18"))
    assert plan(NBNK, "A", d("2026-11-19"), body=[CHILD], not_before=d("2026-11-18")).events


# ---------------------------------------------------------------------------- statuses


def given(event_id: str, at: str, amount: float | None = None, status: str = "given",
          reason: str | None = None, unit: str | None = "mg") -> EventRecord:
    dosed = status in ("given", "partly_given")
    return EventRecord(event_id=event_id, status=status, at=datetime.fromisoformat(at),
                       by="nurse", amount=amount if dosed else None,
                       unit=unit if dosed else None, reason=reason)


def test_statuses_missed_due_out_of_window() -> None:
    cal = plan(NBNK, "A", d("2026-11-23"), body=[CHILD])
    records = [given("c1.irinotecan.d1", "2026-11-23T09:00", 42.0),
               given("c1.irinotecan.d2", "2026-11-25T09:00", 40.0),
               given("c1.irinotecan.d3", "2026-11-25T10:00", status="withheld",
                     reason="diarrhoea grade 3")]
    for r in records:
        check_record(cal, r, [x for x in records if x is not r and records.index(x) <
                              records.index(r)])
    done = reconcile(cal, records, datetime(2026, 11, 26, 12, 0))
    e = {x.id: x for x in done.events}
    assert e["c1.irinotecan.d1"].status is EventStatus.GIVEN
    assert not e["c1.irinotecan.d1"].out_of_window
    late = e["c1.irinotecan.d2"]
    assert late.out_of_window and "out of window" in (late.status_note or "")
    assert "planned 42.0 mg/day" in (e["c1.irinotecan.d2"].status_note or "")
    assert e["c1.irinotecan.d3"].status is EventStatus.WITHHELD
    assert e["c1.temozolomide.d1"].status is EventStatus.MISSED
    assert e["c1.temozolomide.d4"].status is EventStatus.DUE
    assert e["c1.temozolomide.d5"].status is EventStatus.PLANNED
    assert e["mononuclear-cell-collection"].status is EventStatus.MISSED


def test_stop_decision_cancels_the_conditional_course() -> None:
    cal = plan(REFNOT, "G1", d("2026-12-01"))
    stop = EventRecord(event_id="c2.decision", status="stop", at=datetime(2026, 12, 29, 10),
                       by="investigator", reason="progressive disease on CT")
    check_record(cal, stop)
    done = reconcile(cal, [stop], datetime(2027, 1, 10))
    assert done.event("c2.decision").status is EventStatus.STOP
    assert all(x.status is EventStatus.CANCELLED for x in done.course_events(2)
               if x.kind is not EventKind.DECISION)
    late = given("c2.refnot.d1", "2026-12-29T11:00", 400000, unit="IU")
    with pytest.raises(ScheduleError, match="course 2 was stopped"):
        check_record(cal, late, [stop])


def test_timed_deadline_missed_and_given_late() -> None:
    cal = plan(RUMCESS, "MSC", d("2026-11-21"), body=[body(71.0)],
               anchors={"septic_shock_onset": ONSET})
    assert reconcile(cal, [], datetime(2026, 11, 21, 15, 59)).event(
        "msc-infusion").status is EventStatus.DUE
    assert reconcile(cal, [], datetime(2026, 11, 21, 16, 1)).event(
        "msc-infusion").status is EventStatus.MISSED
    late = given("msc-infusion", "2026-11-21T17:30", 71e6, unit="cells")
    check_record(cal, late)
    e = reconcile(cal, [late], datetime(2026, 11, 22)).event("msc-infusion")
    assert e.status is EventStatus.GIVEN and e.out_of_window
    assert "after the deadline 2026-11-21 16:00" in (e.status_note or "")


def test_records_that_do_not_fit_are_refused() -> None:
    cal = plan(NBNK, "A", d("2026-11-23"), body=[CHILD])
    first = given("c1.irinotecan.d1", "2026-11-23T09:00", 42.0)
    cases = [
        (given("c1.irinotecan.d9", "2026-11-23T09:00", 42.0), "no event 'c1.irinotecan.d9'"),
        (given("c1", "2026-11-23T09:00", 42.0), "a course is not recorded itself"),
        (given("mononuclear-cell-collection", "2026-11-22T09:00", 1.0), "does not fit a procedure"),
        (first, "already recorded (given on 2026-11-23T09:00 by nurse)"),
        (given("c1.irinotecan.d2", "2026-11-24T09:00", 42.0, status="partly_given"),
         "a partly given dose is below the planned 42 mg"),
        (given("c1.irinotecan.d2", "2026-11-24T09:00", 42.0, unit="g"), "the dose is in mg"),
    ]
    for record, message in cases:
        with pytest.raises(ScheduleError) as exc:
            check_record(cal, record, [first])
        assert message in str(exc.value), (record, str(exc.value))
    with pytest.raises(ScheduleError, match="before consent"):
        check_record(cal, given("c1.irinotecan.d2", "2026-11-20T09:00", 42.0), [],
                     not_before=d("2026-11-21"))
    with pytest.raises(ScheduleError, match="needs a reason"):
        given("c1.irinotecan.d2", "2026-11-24T09:00", status="withheld")


def test_a_started_course_cannot_be_delayed() -> None:
    cal = plan(NBNK, "A", d("2026-11-23"), body=[CHILD])
    started = [given("c2.irinotecan.d1", "2026-12-14T09:00", 42.0)]
    delay = CourseDelay(course=2, days=7, reason="x", by="y", recorded_on=d("2026-12-14"))
    with pytest.raises(ScheduleError, match="course 2 has already started"):
        check_delay(cal, delay, started)
    check_delay(cal, delay.model_copy(update={"course": 3}), started)
    with pytest.raises(ScheduleError, match="course 9 does not exist"):
        check_delay(cal, delay.model_copy(update={"course": 9}), [])


# ---------------------------------------------------------------------------- export


STAMP = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_ics_export_parses_back() -> None:
    cal = plan(RUMCESS, "MSC", d("2026-11-21"), body=[body(71.0)],
               anchors={"septic_shock_onset": ONSET}, patient_id="RU-001")
    parsed = ICalendar.from_ical(to_ics(cal, STAMP))
    events = list(parsed.walk("VEVENT"))
    assert len(events) == len(cal.events)
    msc = next(e for e in events if str(e["UID"]).startswith("msc-infusion."))
    assert msc.decoded("DTSTART") == ONSET
    assert msc.decoded("DTEND") == datetime(2026, 11, 21, 16, 0)
    assert "by 16:00" in str(msc["SUMMARY"])
    day28 = next(e for e in events if str(e["UID"]).startswith("28-day-mortality"))
    assert day28.decoded("DTSTART") == d("2026-12-19")  # day 0 = 2026-11-21
    assert day28.decoded("DTEND") == d("2026-12-20")  # exclusive end of an all-day event
    assert str(day28["UID"]) == "28-day-mortality.d28.RU-001.RuMCeSS@trialdesk"
    with pytest.raises(ScheduleError, match="needs a timezone"):
        to_ics(cal, datetime(2026, 11, 21, 12, 0))


def test_json_document() -> None:
    cal = plan(DB, "DB", d("2026-12-07"), body=[CHILD])
    doc = cal.to_json()
    assert doc["schema"] == "trialdesk.calendar/1" and doc["variants"] == {"infusion": "LTI"}
    iso = next(e for e in doc["events"] if e["id"] == "c1.isotretinoin.d19")
    assert iso["dose"]["amount"] == 140.0 and iso["dose"]["each"] == 70.0
    assert iso["dose"]["shown"] == "140 mg/day (2 × 70 mg)"
    assert "isotretinoin 160 mg/m²" in doc["unconfirmed"]


def test_a_day_beyond_the_calendar_is_a_schedule_error() -> None:
    # Found by tests/test_fuzz_inputs.py: an administration on course day 5,000,000.
    doc = read_document(ROOT / "protocols" / "nb-nk-2026.yaml")
    doc["courses"][0]["administrations"][0]["days"] = [5_000_000]
    far = protocol_from_data(doc).protocol
    with pytest.raises(ScheduleError, match="outside the calendar"):
        plan(far, "A", d("2026-11-23"), body=[body(21.4, 118)])
