"""RuMCeSS (seed 004, NCT01849237): screening against the protocol file, and the plan.

Every case starts from a complete eligible patient (examples/patients/rumcess-eligible.json:
septic shock since 06:00, screened at 12:00 on 2026-11-21, as the command line passes a
date-time) and changes one thing. Expected outcomes come from the criteria text of seed
004: "≤10 hs after onset of septic shock" (10 h passes, 10 h 1 min fails), "severe
neutropenia (≤ 1 10^9/l)" (1.0 × 10⁹/L = 1000/mm³ passes), "Patients ≥17 years",
"Age >75 years" excludes; an oncohaematological patient is excluded only with resistance
to chemotherapy. The arm is left to the randomisation.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

import pytest

import seedkit
from seedkit import Change, Patient, born, check_one_change, check_unknown, criterion, example
from trialdesk.protocol.load import CompiledProtocol
from trialdesk.protocol.model import TimedStep

SCREENED = datetime(2026, 11, 21, 12, 0)
LAB_DAY = "2026-11-21"

run = partial(seedkit.run, as_of=SCREENED)
female_of_childbearing_potential = partial(seedkit.female_of_childbearing_potential,
                                           day=LAB_DAY)


@pytest.fixture(scope="module")
def protocol() -> CompiledProtocol:
    return seedkit.load("rumcess.yaml")


# --- changes to the base patient ------------------------------------------------------


def onset(when: str) -> Change:
    """Septic shock onset (the screening is at 2026-11-21T12:00)."""

    def change(p: Patient) -> None:
        p["disease_status"][-1]["septic_shock_onset"] = when
    return change


def anc(value: float, unit: str, day: str = LAB_DAY) -> Change:
    return seedkit.observation("anc", value, unit, day=day)


def disease(**fields: object) -> Change:
    def change(p: Patient) -> None:
        p["disease_status"][0].update(fields)
    return change


def diagnosis(primary: str) -> Change:
    def change(p: Patient) -> None:
        p["diagnosis"]["primary"] = primary
    return change


def without_resistance_record(p: Patient) -> None:
    p["disease_status"][0].pop("chemotherapy_resistant")


def aplastic_anaemia_without_resistance_record(p: Patient) -> None:
    diagnosis("aplastic_anaemia")(p)
    without_resistance_record(p)


def resistant_drug_induced_neutropenia(p: Patient) -> None:
    """Not an oncohaematological patient, even with resistance recorded."""
    diagnosis("other")(p)
    disease(chemotherapy_resistant=True)(p)


# --- one change, expected outcomes ----------------------------------------------------

ONE_CHANGE = [
    # I2: ≤ 10 h after onset of septic shock
    pytest.param(onset("2026-11-21T02:01:00"), {}, "eligible", id="onset-9h59m"),
    pytest.param(onset("2026-11-21T02:00:00"), {}, "eligible", id="onset-exactly-10h"),
    pytest.param(onset("2026-11-21T01:59:00"), {"I2": "not_met"}, "ineligible",
                 id="onset-10h01m"),
    pytest.param(onset("2026-11-21T01:00:00"), {"I2": "not_met"}, "ineligible",
                 id="onset-11h"),
    pytest.param(onset("2026-11-20T23:30:00"), {"I2": "not_met"}, "ineligible",
                 id="onset-previous-evening-12h30m"),
    # I3: ANC ≤ 1 × 10⁹/L, whatever the unit
    pytest.param(anc(999, "/mm3"), {}, "eligible", id="anc-999-per-mm3"),
    pytest.param(anc(1000, "/mm3"), {}, "eligible", id="anc-1000-per-mm3"),
    pytest.param(anc(1001, "/mm3"), {"I3": "not_met"}, "ineligible", id="anc-1001-per-mm3"),
    pytest.param(anc(0.99, "10^9/L"), {}, "eligible", id="anc-0.99-e9-per-L"),
    pytest.param(anc(1.0, "10^9/L"), {}, "eligible", id="anc-1.0-e9-per-L"),
    pytest.param(anc(1.01, "10^9/L"), {"I3": "not_met"}, "ineligible", id="anc-1.01-e9-per-L"),
    pytest.param(anc(1.0, "x10^9/L"), {}, "eligible", id="anc-1.0-x10e9-per-L"),
    pytest.param(anc(1.0, "G/L"), {}, "eligible", id="anc-1.0-G-per-L"),
    pytest.param(anc(1000, "/uL"), {}, "eligible", id="anc-1000-per-uL"),
    pytest.param(anc(0.1, "10^9/L", day="2026-11-20"), {}, "eligible",
                 id="anc-yesterday-in-window"),
    # I4: ≥ 17 years; E3: > 75 years
    pytest.param(born("2009-11-22"), {"I4": "not_met"}, "ineligible",
                 id="age-17-minus-1-day"),
    pytest.param(born("2009-11-21"), {}, "eligible", id="age-exactly-17"),
    pytest.param(born("1950-11-22"), {}, "eligible", id="age-75-years-364-days"),
    pytest.param(born("1950-11-21"), {"E3": "met"}, "ineligible", id="age-exactly-76"),
    # I1: septic shock
    pytest.param(lambda p: p["disease_status"][-1].update(septic_shock=False),
                 {"I1": "not_met"}, "ineligible", id="no-septic-shock"),
    # E1: oncohaematological patients with resistance to chemotherapy
    pytest.param(disease(chemotherapy_resistant=True), {"E1": "met"}, "ineligible",
                 id="aml-resistant-to-chemotherapy"),
    pytest.param(diagnosis("aplastic_anaemia"), {}, "eligible", id="aplastic-anaemia"),
    pytest.param(aplastic_anaemia_without_resistance_record, {}, "eligible",
                 id="aplastic-anaemia-resistance-not-recorded"),
    pytest.param(resistant_drug_induced_neutropenia, {}, "eligible",
                 id="drug-induced-neutropenia-not-oncohaematological"),
    pytest.param(diagnosis("lymphoma"), {}, "eligible", id="lymphoma-chemosensitive"),
    # unknown diagnosis, but known not to be resistant: "unknown and false" is false
    pytest.param(lambda p: p.pop("diagnosis"), {}, "eligible",
                 id="no-diagnosis-not-resistant"),
    # I5 and E2: consent
    pytest.param(lambda p: p["consents"][0].update(signed=False),
                 {"I5": "not_met", "E2": "met"}, "ineligible", id="consent-unsigned"),
    # E4: pregnancy
    pytest.param(female_of_childbearing_potential(True), {"E4": "met"}, "ineligible",
                 id="pregnant"),
    pytest.param(female_of_childbearing_potential(False), {}, "eligible",
                 id="pregnancy-test-negative"),
    pytest.param(lambda p: p.update(sex="male", childbearing_potential=None), {}, "eligible",
                 id="male"),
]


@pytest.mark.parametrize(("change", "changed", "verdict"), ONE_CHANGE)
def test_one_change(protocol: CompiledProtocol, change: Change, changed: dict[str, str],
                    verdict: str) -> None:
    check_one_change(run(protocol, example("rumcess-eligible", change)), changed, verdict)


@pytest.mark.parametrize(("when", "hours"), [
    ("2026-11-21T06:00:00", 6.0),
    ("2026-11-21T02:00:00", 10.0),
    ("2026-11-21T01:59:00", 10 + 1 / 60),
])
def test_hours_since_onset(protocol: CompiledProtocol, when: str, hours: float) -> None:
    data = example("rumcess-eligible")
    onset(when)(data)
    (evidence,) = criterion(run(protocol, data), "I2").evidence
    assert evidence.fact == "hours_since_septic_shock_onset"
    assert evidence.value == pytest.approx(hours, abs=1e-4)


def test_anc_in_either_unit_is_the_same_fact(protocol: CompiledProtocol) -> None:
    values = []
    for change in (anc(1000, "/mm3"), anc(1.0, "10^9/L")):
        data = example("rumcess-eligible")
        change(data)
        (evidence,) = criterion(run(protocol, data), "I3").evidence
        values.append((evidence.value, evidence.unit))
    assert values == [(1000.0, "/mm3"), (1000.0, "/mm3")]


# --- missing data: unknown, with the fact and the reason ------------------------------

MISSING = [
    pytest.param(anc(0.1, "10^9/L", day="2026-11-19"), "I3",
                 {"anc": ["2 days old", "1-day look-back window"]}, id="lab-older-than-window"),
    pytest.param(lambda p: p["disease_status"][-1].pop("septic_shock_onset"), "I2",
                 {"hours_since_septic_shock_onset": ["not recorded"]}, id="onset-not-recorded"),
    pytest.param(without_resistance_record, "E1",
                 {"chemotherapy_resistant": ["not recorded"]},
                 id="aml-resistance-not-recorded"),
    pytest.param(female_of_childbearing_potential(None), "E4",
                 {"pregnant": ["no pregnancy status recorded"]}, id="pregnancy-test-missing"),
    pytest.param(lambda p: p.update(consents=[]), "I5",
                 {"consent_signed": ["no consent recorded for RuMCeSS"]}, id="consent-missing"),
]


@pytest.mark.parametrize(("change", "criterion_id", "reasons"), MISSING)
def test_missing_data_is_unknown(protocol: CompiledProtocol, change: Change,
                                 criterion_id: str, reasons: dict[str, list[str]]) -> None:
    check_unknown(run(protocol, example("rumcess-eligible", change)), criterion_id, reasons)


# --- the arm is left to randomisation -------------------------------------------------


def test_eligible_patient_is_randomised_not_assigned(protocol: CompiledProtocol) -> None:
    result = run(protocol, example("rumcess-eligible"))
    assert result.verdict.value == "eligible"
    assert result.arm is None
    assert result.arm_note == "by randomisation (R1) at enrolment"
    assert result.arm_missing_facts == []  # no assignment rule needs a fact
    assert [(a.id, a.randomisation, a.rule, a.outcome) for a in result.arms] == [
        ("MSC", "R1", None, None), ("SOC", "R1", None, None)]


def test_late_example_is_ineligible(protocol: CompiledProtocol) -> None:
    result = run(protocol, example("rumcess-late"))
    assert result.verdict.value == "ineligible"
    assert [c.id for c in result.criteria
            if c.outcome.value != ("met" if c.kind == "inclusion" else "not_met")] == ["I2"]
    (evidence,) = criterion(result, "I2").evidence
    assert evidence.value == 11.0
    assert (result.arm, result.arm_note) == (None, "not eligible")


def test_screened_later_the_same_patient_is_out_of_the_window(
        protocol: CompiledProtocol) -> None:
    later = datetime(2026, 11, 21, 16, 1)  # 10 h 1 min after the 06:00 onset
    result = run(protocol, example("rumcess-eligible"), as_of=later)
    assert criterion(result, "I2").outcome.value == "not_met"
    assert result.verdict.value == "ineligible"


# --- the plan as seed 004 states it ---------------------------------------------------


def test_randomisation(protocol: CompiledProtocol) -> None:
    (r1,) = protocol.protocol.randomisations
    assert r1.id == "R1"
    assert r1.ratio == {"MSC": 1, "SOC": 1}
    assert r1.method == "permuted_blocks"
    assert all(size % 2 == 0 for size in r1.block_sizes)
    assert r1.unconfirmed  # block sizes and strata are not in the registry record


def test_msc_infusion_within_10_hours_of_onset(protocol: CompiledProtocol) -> None:
    p = protocol.protocol
    (step,) = [s for s in p.arm("MSC").plan if isinstance(s, TimedStep)]
    assert (step.anchor, step.within_hours.value, step.within_hours.unit) == (
        "septic_shock_onset", 10, "hour")
    assert step.administration is not None
    dose = step.administration.dose
    assert (dose.amount, dose.amount_max, dose.unit, dose.basis.value, dose.per) == (
        1e6, 2e6, "cells", "per_kg", "administration")
    assert step.administration.route == "IV"
    assert not [s for s in p.arm("SOC").plan if isinstance(s, TimedStep)]


def test_sampling_and_28_day_mortality_in_both_arms(protocol: CompiledProtocol) -> None:
    for arm_id in ("MSC", "SOC"):
        arm = protocol.protocol.arm(arm_id)
        labs = arm.sampling[0]
        assert labs.measurements == ["IL-6", "IL-10", "creatinine", "bilirubin",
                                     "procalcitonin", "CRP"]
        assert labs.unconfirmed  # the days are not in the seed
        mortality = [a for a in arm.assessments if a.name == "28-day mortality"]
        assert [(a.day, a.unconfirmed) for a in mortality] == [(28, False)]
        assert "Surviving Sepsis Campaign 2012" in (arm.description or "")


def test_registry_block(protocol: CompiledProtocol) -> None:
    r = protocol.protocol.registry
    assert r.identification.nct_id == "NCT01849237"
    assert r.status.overall_status == "UNKNOWN"
    assert r.design.phases == ["PHASE1", "PHASE2"]
    assert r.design.allocation == "RANDOMIZED"
    assert r.design.enrollment is not None and r.design.enrollment.count == 30
    assert (r.eligibility.minimum_age, r.eligibility.maximum_age) == ("17 Years", "75 Years")
    assert r.sponsor.funder_type == "NETWORK"


# --- 28-day mortality: the calendar and the outcomes count the same days ---------------


@pytest.mark.parametrize("start", ["2026-11-21", "2027-02-20", "2028-02-28"])
def test_calendar_day_28_is_the_end_of_the_outcomes_28_day_window(
        protocol: CompiledProtocol, start: str) -> None:
    # Seed 004: 28-day mortality, day 0 = randomisation (the day of septic-shock onset) and
    # day 28 = 28 days later. A death on the calendar's day-28 assessment date is a 28-day
    # death; a death the day after is not; a last contact on that date makes a survivor.
    import pandas as pd

    from trialdesk.outcomes.endpoints import short_term_mortality
    from trialdesk.outcomes.events import validate_event_table
    from trialdesk.schedule.dose import BodyMeasurement
    from trialdesk.schedule.plan import plan

    begin = datetime.fromisoformat(start).date()
    assert protocol.protocol.day_numbering.start_is_day == 0
    for arm in ("MSC", "SOC"):
        body = [BodyMeasurement(on=begin, weight_kg=71.0, height_cm=175.0)]
        day28 = plan(protocol.protocol, arm, begin, body=body).event("28-day-mortality.d28")
        assert day28.date is not None and day28.day == 28
        assert (day28.date - begin).days == 28
        after = (pd.Timestamp(day28.date) + pd.Timedelta(days=1)).date().isoformat()
        events = validate_event_table(pd.DataFrame({
            "patient_id": ["P1", "P2", "P3", "P4"], "arm": [arm] * 4,
            "enrolment_date": [start] * 4,
            "death_date": [day28.date.isoformat(), after, None, None],
            "last_contact_date": [None, None, day28.date.isoformat(),
                                  (day28.date - pd.Timedelta(days=1)).isoformat()]}))
        table = short_term_mortality(events).table.set_index("patient_id")
        assert table["reason"].to_dict() == {
            "P1": "died on day 28", "P2": "alive on day 28 (died day 29)", "P3": "alive on day 28",
            "P4": "not evaluable: alive at last contact on day 27"}
        assert table["counted"].tolist() == [True, False, False, False]
