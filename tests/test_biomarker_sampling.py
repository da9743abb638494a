"""Biomarker sampling on the calendar: NB-NK-2026 and RuMCeSS time points, by hand.

Day 1 is the start date, day −1 the day before (trialdesk.schedule.plan). NB-NK-2026 arm A
starting Monday 2026-11-23: IT course on day 1, DIT courses on days 22, 43, 64, 85
(2026-12-14, 2027-01-04, 2027-01-25, 2027-02-15). RuMCeSS: septic-shock onset
2026-11-21 06:00, MSC infusion due by 16:00 the same day.
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from trialdesk.errors import ProtocolError, TrialdeskError
from trialdesk.facts.normalise import normalise
from trialdesk.facts.patient import patient_from_data
from trialdesk.protocol.load import load_protocol, protocol_from_data, read_document
from trialdesk.protocol.model import LookBack
from trialdesk.schedule.dose import BodyMeasurement
from trialdesk.schedule.export import to_ics
from trialdesk.schedule.plan import Calendar, Event, EventKind, EventStatus, plan
from trialdesk.schedule.records import CourseDelay
from trialdesk.schedule.samples import (
    Sample,
    SampleResult,
    attach_result,
    check_sample,
    patient_entries,
    sample_record,
)
from trialdesk.schedule.status import reconcile

ROOT = Path(__file__).resolve().parents[1]
NBNK = load_protocol(ROOT / "protocols" / "nb-nk-2026.yaml").protocol
RUMCESS = load_protocol(ROOT / "protocols" / "rumcess.yaml").protocol
CHILD = BodyMeasurement(on=date(2026, 11, 16), weight_kg=21.4, height_cm=118)
ADULT = BodyMeasurement(on=date(2026, 11, 21), weight_kg=71.0, height_cm=175)
ONSET = datetime(2026, 11, 21, 6, 0)
DIT_STARTS = ["2026-12-14", "2027-01-04", "2027-01-25", "2027-02-15"]


def samples(cal: Calendar, text: str) -> list[Event]:
    return [e for e in cal.events if e.kind is EventKind.SAMPLING and text in e.name]


def iso(events: list[Event]) -> list[str | None]:
    return [e.date.isoformat() if e.date else None for e in events]


def test_nbnk_immune_and_exposure_samples_before_each_dit_course() -> None:
    cal = plan(NBNK, "A", date(2026, 11, 23), body=[CHILD])
    immune = samples(cal, "NK cells")
    assert iso(immune) == DIT_STARTS  # not before the IT course on 2026-11-23
    assert [e.course_number for e in immune] == [2, 3, 4, 5]
    assert all(e.course_day == 1 and "peripheral blood" in e.name for e in immune)
    assert immune[0].name.startswith("Sampling before course 2: absolute lymphocyte count")
    exposure = samples(cal, "dinutuximab beta serum concentration")
    assert iso(exposure) == DIT_STARTS and "(serum)" in exposure[0].name
    # The seeds give no time points: every sample carries the unconfirmed mark.
    assert all(e.unconfirmed for e in samples(cal, ""))
    # The samples are listed before the course's first dose on the same day.
    kinds = [e.kind for e in cal.events if e.date == date(2026, 12, 14)]
    assert kinds[:3] == [EventKind.COURSE, EventKind.SAMPLING, EventKind.SAMPLING]
    assert kinds[3] is EventKind.ADMINISTRATION
    # Arm B has a fifth DIT course, so a fifth pre-course sample (day 106 = 2027-03-08).
    arm_b = plan(NBNK, "B", date(2026, 11, 23), body=[CHILD])
    assert iso(samples(arm_b, "NK cells")) == [*DIT_STARTS, "2027-03-08"]


def test_nbnk_gd2_before_treatment_and_at_progression() -> None:
    cal = plan(NBNK, "A", date(2026, 11, 23), body=[CHILD])
    gd2 = samples(cal, "GD2 expression")
    assert iso(gd2) == ["2026-11-22", None]  # day −1, then undated until progression
    progression = gd2[1]
    assert progression.status is EventStatus.UNSCHEDULED
    assert progression.condition == "at disease progression"
    assert "tumour biopsy or bone marrow aspirate" in progression.name
    assert iso(samples(cal, "FCGR3A V158F")) == ["2026-11-22"]
    # Status on a day during treatment: the dated ones are due or planned, the progression
    # sample stays unscheduled; the iCalendar export leaves the undated one out.
    now = reconcile(cal, [], as_of=datetime(2026, 11, 22, 9, 0))
    gd2_now = samples(now, "GD2 expression")
    assert [e.status for e in gd2_now] == [EventStatus.DUE, EventStatus.UNSCHEDULED]
    ics = to_ics(cal, datetime(2026, 11, 20, tzinfo=UTC))
    assert b"s3.d-1" in ics and b"at-progression" not in ics


def test_a_course_delay_moves_its_pre_course_sample() -> None:
    cal = plan(NBNK, "A", date(2026, 11, 23), body=[CHILD],
               delays=[CourseDelay(course=3, days=7, reason="neutropenia", by="dr",
                                           recorded_on=date(2026, 12, 30))])
    assert iso(samples(cal, "NK cells")) == ["2026-12-14", "2027-01-11", "2027-02-01",
                                             "2027-02-22"]


def test_rumcess_baseline_before_the_msc_infusion_then_days_1_to_28() -> None:
    cal = plan(RUMCESS, "MSC", date(2026, 11, 21), body=[ADULT],
               anchors={"septic_shock_onset": ONSET})
    labs = samples(cal, "IL-6")
    # RuMCeSS counts from day 0 = randomisation (2026-11-21), as its 28-day mortality does:
    # days 1, 2, 7, 14, 28 are 22, 23, 28 Nov, 5 and 19 Dec.
    assert iso(labs) == ["2026-11-21", "2026-11-22", "2026-11-23", "2026-11-28", "2026-12-05",
                         "2026-12-19"]
    baseline = labs[0]
    assert baseline.name.startswith("Sampling before the MSC infusion: IL-6, IL-10")
    on_day_1 = [e.id for e in cal.events if e.date == date(2026, 11, 21)]
    assert on_day_1.index("s1.before-msc-infusion") < on_day_1.index("msc-infusion")
    assert "(serum)" in baseline.name
    assert "due by 2026-11-21 16:00" in (baseline.note or "")
    gas = samples(cal, "arterial partial oxygen pressure")
    assert iso(gas)[0] == "2026-11-21"
    assert "arterial blood, heparinised blood-gas syringe" in gas[0].name
    assert iso(samples(cal, "electrocardiogram")) == ["2026-11-21", "2026-11-22", "2026-11-23",
                                                      "2026-11-28", "2026-12-05", "2026-12-19"]


def test_rumcess_baseline_is_undated_without_the_onset_and_soc_samples_from_day_0() -> None:
    cal = plan(RUMCESS, "MSC", date(2026, 11, 21), body=[ADULT])
    undated = [e for e in samples(cal, "IL-6") if e.date is None]
    assert [e.id for e in undated] == ["s1.before-msc-infusion"]
    baseline = undated[0]
    assert baseline.status is EventStatus.UNSCHEDULED
    assert "septic shock onset not recorded" in (baseline.note or "")
    soc = plan(RUMCESS, "SOC", date(2026, 11, 21), body=[ADULT])
    assert iso(samples(soc, "IL-6")) == ["2026-11-21", "2026-11-22", "2026-11-23", "2026-11-28",
                                         "2026-12-05", "2026-12-19"]


@pytest.mark.parametrize(("change", "reason"), [
    ({"before": "stem cell infusion"}, "no timed step of that name"),
    ({"before_courses": ["XYZ"]}, "unknown course 'XYZ'"),
    ({"days": []}, "say when"),
])
def test_bad_sampling_schedules_are_refused(change: dict[str, object], reason: str) -> None:
    data = copy.deepcopy(read_document(ROOT / "protocols" / "rumcess.yaml"))
    data["arms"][0]["sampling"] = [{"measurements": ["IL-6"], "days": [1], "source": "test",
                                    **change}]
    with pytest.raises(ProtocolError) as err:
        protocol_from_data(data, source="rumcess-test")
    assert reason in err.value.reason


# --- a sample and its results ----------------------------------------------------------


def test_a_result_attaches_to_its_sample_and_becomes_a_fact() -> None:
    cal = plan(RUMCESS, "MSC", date(2026, 11, 21), body=[ADULT],
               anchors={"septic_shock_onset": ONSET})
    sample = check_sample(cal, Sample(
        sample_id="RU-01-S1", patient_id="RU-01", event_id="s1.before-msc-infusion",
        collected_at=datetime(2026, 11, 21, 9, 40), specimen="serum", tube="SST",
        processing="centrifuged 1500 g × 10 min, 3 aliquots", storage="−80 °C, box 3, pos. 14",
        by="nurse"))
    sample = attach_result(sample, SampleResult(fact="il6", value=0.45, unit="ng/mL",
                                                reported_at=datetime(2026, 11, 22, 10),
                                                by="lab"))
    sample = attach_result(sample, SampleResult(fact="procalcitonin", value=12.5, unit="ng/mL",
                                                reported_at=datetime(2026, 11, 22, 10),
                                                by="lab"))
    # The sampling event is done once the sample is recorded.
    done = reconcile(cal, [sample_record(sample)], as_of=datetime(2026, 11, 22, 12))
    assert done.event("s1.before-msc-infusion").status is EventStatus.DONE
    # The results are dated on collection and read as facts in the canonical unit.
    observations, findings = patient_entries(sample)
    record = patient_from_data({"patient_id": "RU-01", "birth_date": "1980-01-01",
                                "observations": [o.model_dump(mode="json") for o in observations]},
                               today=date(2026, 11, 22))
    facts = normalise(record, trial_id="RuMCeSS", lookback=LookBack(default_days=7, source="t"),
                      as_of=datetime(2026, 11, 22, 12))
    assert facts["il6"].value == 450.0 and facts["il6"].observed == date(2026, 11, 21)
    assert facts["procalcitonin"].value == 12.5 and findings == []


@pytest.mark.parametrize(("event_id", "result", "where", "reason"), [
    ("c1", None, "sample.event_id", "no event 'c1'"),
    ("28-day-mortality.d28", None, "sample.event_id", "not a sampling event"),
    ("s1.d2", {"fact": "il6", "value": 5, "unit": "mmol/L"}, "result il6.unit", "does not fit"),
    ("s1.d2", {"fact": "il6", "value": 5, "unit": "pg/mL", "reported_at": "2026-11-20T10:00"},
     "result il6.reported_at", "before the sample was collected"),
    ("s1.d2", {"fact": "septic_shock", "value": 1}, "result septic_shock.fact",
     "not a laboratory value"),
    ("s1.d2", {"fact": "anti_drug_antibodies", "value": "weak"},
     "result anti_drug_antibodies.value", "positive, negative"),
])
def test_bad_samples_and_results_are_refused(event_id: str, result: dict[str, object] | None,
                                             where: str, reason: str) -> None:
    cal = plan(RUMCESS, "MSC", date(2026, 11, 21), body=[ADULT],
               anchors={"septic_shock_onset": ONSET})
    sample = Sample(sample_id="S-1", patient_id="RU-01", event_id=event_id,
                    collected_at=datetime(2026, 11, 22, 8), specimen="serum", by="nurse")
    with pytest.raises(TrialdeskError) as err:
        checked = check_sample(cal, sample)
        attach_result(checked, SampleResult.model_validate(
            {"reported_at": "2026-11-22T12:00", "by": "lab", **(result or {})}))
    assert where in (err.value.where or "") and reason in err.value.reason
