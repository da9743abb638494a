"""NB-NK-2026 (seed 000, NCT07375563): screening against the protocol file.

Every case starts from a complete eligible patient (examples/patients/nb-refractory.json,
screened on 2026-11-21) and changes one thing. Expected outcomes come from the criteria
text of seed 000: "< 5 × ULN" excludes 5.0, "> 60" excludes 60, "PTI 70-120%" includes
both ends, "APTT < 36" excludes 36, "LVEF ≥ 55%" (I10) and "LVEF ≤ 55%" (E9) both hold at
exactly 55%, "> 94%" excludes 94, "aged from 18 months to 18 years" includes an
18-year-old until the 19th birthday.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

import pytest

import seedkit
from seedkit import Change, Patient, check_one_change, check_unknown, criterion, example, status
from trialdesk.protocol.load import CompiledProtocol

SCREENED = datetime(2026, 11, 21)
LAB_DAY = "2026-11-16"  # the base patient's laboratory date

run = partial(seedkit.run, as_of=SCREENED)
observation = partial(seedkit.observation, day=LAB_DAY)
finding = partial(seedkit.finding, day=LAB_DAY)
performance = partial(seedkit.performance, day=LAB_DAY)


@pytest.fixture(scope="module")
def protocol() -> CompiledProtocol:
    return seedkit.load("nb-nk-2026.yaml")


# --- changes to the base patient ------------------------------------------------------


def aged(birth: str, *, adult: bool = False) -> Change:
    """Move the birth date; from 16 the age-appropriate scale is Karnofsky and, past the
    bedside Schwartz range (1–16 years), the GFR has to be measured."""

    def change(p: Patient) -> None:
        p["birth_date"] = birth
        if adult:
            p["performance"] = [{"scale": "karnofsky", "score": 80, "date": LAB_DAY}]
            observation("measured_gfr", 105, "mL/min/1.73m2")(p)
    return change


def remove(key: str, match: Callable[[Any], bool]) -> Change:
    def change(p: Patient) -> None:
        p[key] = [x for x in p[key] if not match(x)]
    return change


# --- one change, expected outcomes ----------------------------------------------------

ONE_CHANGE = [
    # I3: aged from 18 months to 18 years (screened 2026-11-21)
    pytest.param(aged("2025-05-22"), {"I3": "not_met"}, "ineligible",
                 id="age-18-months-minus-1-day"),
    pytest.param(aged("2025-05-21"), {}, "eligible", id="age-exactly-18-months"),
    pytest.param(aged("2008-11-21", adult=True), {}, "eligible", id="age-exactly-18-years"),
    pytest.param(aged("2007-11-22", adult=True), {}, "eligible", id="age-18-years-364-days"),
    pytest.param(aged("2007-11-21", adult=True), {"I3": "not_met"}, "ineligible",
                 id="age-19-years"),
    # I3: refractory = 6 cycles of N5/N6 with MR or SD; E4: PR, VGPR, CR or PD excludes
    pytest.param(status(induction_cycles_completed=7), {}, "eligible", id="induction-7-cycles"),
    pytest.param(status(induction_cycles_completed=6), {}, "eligible", id="induction-6-cycles"),
    pytest.param(status(induction_cycles_completed=5), {"I3": "not_met"}, "ineligible",
                 id="induction-5-cycles"),
    pytest.param(status(end_induction_response="MR"), {}, "eligible", id="end-induction-MR"),
    pytest.param(status(end_induction_response="PR"), {"I3": "not_met", "E4": "met"},
                 "ineligible", id="end-induction-PR"),
    pytest.param(status(end_induction_response="VGPR"), {"I3": "not_met", "E4": "met"},
                 "ineligible", id="end-induction-VGPR"),
    pytest.param(status(end_induction_response="PD"), {"I3": "not_met", "E4": "met"},
                 "ineligible", id="end-induction-PD"),
    # I3 and E3: high risk by GPOH NB 2004
    pytest.param(lambda p: p["diagnosis"].update(risk_group="intermediate"),
                 {"I3": "not_met", "E3": "met"}, "ineligible", id="intermediate-risk"),
    pytest.param(lambda p: p["diagnosis"].update(risk_system="GPOH-NB2013"),
                 {"I3": "not_met"}, "ineligible", id="risk-system-not-NB2004"),
    # I2: histologically verified
    pytest.param(lambda p: p["diagnosis"].update(confirmation="cytological"),
                 {"I2": "not_met"}, "ineligible", id="cytological-only"),
    # I4: performance ≥ 70% (Lansky under 16)
    pytest.param(performance("lansky", 80), {}, "eligible", id="lansky-80"),
    pytest.param(performance("lansky", 70), {}, "eligible", id="lansky-70"),
    pytest.param(performance("lansky", 60), {"I4": "not_met"}, "ineligible", id="lansky-60"),
    # I5: life expectancy ≥ 12 weeks
    pytest.param(finding("life_expectancy", 13, "week"), {}, "eligible", id="life-13-weeks"),
    pytest.param(finding("life_expectancy", 12, "week"), {}, "eligible", id="life-12-weeks"),
    pytest.param(finding("life_expectancy", 11, "week"), {"I5": "not_met"}, "ineligible",
                 id="life-11-weeks"),
    pytest.param(finding("life_expectancy", 84, "day"), {}, "eligible", id="life-84-days"),
    pytest.param(finding("life_expectancy", 83, "day"), {"I5": "not_met"}, "ineligible",
                 id="life-83-days"),
    # I6: no neuropathy, no neuropathic pain
    pytest.param(finding("neuropathic_pain", True), {"I6": "not_met"}, "ineligible",
                 id="neuropathic-pain"),
    # I7: ALT/AST < 5 × ULN, from each result's own ULN
    pytest.param(observation("alt", 224.55, "U/L", ref_high=45), {}, "eligible",
                 id="alt-4.99-uln"),
    pytest.param(observation("alt", 225, "U/L", ref_high=45), {"I7": "not_met"}, "ineligible",
                 id="alt-5.00-uln"),
    pytest.param(observation("alt", 225.45, "U/L", ref_high=45), {"I7": "not_met"},
                 "ineligible", id="alt-5.01-uln"),
    pytest.param(observation("ast", 249.5, "U/L", ref_high=50), {}, "eligible",
                 id="ast-4.99-uln"),
    pytest.param(observation("ast", 250, "U/L", ref_high=50), {"I7": "not_met"}, "ineligible",
                 id="ast-5.00-uln"),
    pytest.param(observation("ast", 250.5, "U/L", ref_high=50), {"I7": "not_met"},
                 "ineligible", id="ast-5.01-uln"),
    # I8: GFR > 60 mL/min/1.73 m²; a measured value is used before bedside Schwartz
    pytest.param(observation("measured_gfr", 60.01, "mL/min/1.73m2"), {}, "eligible",
                 id="gfr-60.01"),
    pytest.param(observation("measured_gfr", 60, "mL/min/1.73m2"), {"I8": "not_met"},
                 "ineligible", id="gfr-60"),
    pytest.param(observation("measured_gfr", 59.99, "mL/min/1.73m2"), {"I8": "not_met"},
                 "ineligible", id="gfr-59.99"),
    # I9: PTI 70-120% (both ends included), APTT < 36 s
    pytest.param(observation("pti", 69, "%"), {"I9": "not_met"}, "ineligible", id="pti-69"),
    pytest.param(observation("pti", 70, "%"), {}, "eligible", id="pti-70"),
    pytest.param(observation("pti", 120, "%"), {}, "eligible", id="pti-120"),
    pytest.param(observation("pti", 121, "%"), {"I9": "not_met"}, "ineligible", id="pti-121"),
    pytest.param(observation("aptt", 35.9, "s"), {}, "eligible", id="aptt-35.9"),
    pytest.param(observation("aptt", 36, "s"), {"I9": "not_met"}, "ineligible", id="aptt-36"),
    pytest.param(observation("aptt", 36.1, "s"), {"I9": "not_met"}, "ineligible",
                 id="aptt-36.1"),
    # I10 (LVEF ≥ 55%) and E9 (LVEF ≤ 55%), applied literally: 55% meets both
    pytest.param(observation("lvef", 56, "%"), {}, "eligible", id="lvef-56"),
    pytest.param(observation("lvef", 55, "%"), {"I10": "met", "E9": "met"}, "ineligible",
                 id="lvef-55-both"),
    pytest.param(observation("lvef", 54, "%"), {"I10": "not_met", "E9": "met"}, "ineligible",
                 id="lvef-54"),
    pytest.param(finding("heart_failure_signs", True), {"I10": "not_met"}, "ineligible",
                 id="heart-failure-signs"),
    # I11: SpO2 > 94% on room air
    pytest.param(observation("spo2_room_air", 95, "%"), {}, "eligible", id="spo2-95"),
    pytest.param(observation("spo2_room_air", 94.1, "%"), {}, "eligible", id="spo2-94.1"),
    pytest.param(observation("spo2_room_air", 94, "%"), {"I11": "not_met"}, "ineligible",
                 id="spo2-94"),
    pytest.param(observation("spo2_room_air", 93.9, "%"), {"I11": "not_met"}, "ineligible",
                 id="spo2-93.9"),
    pytest.param(finding("chest_xray_abnormal", True), {"I11": "not_met"}, "ineligible",
                 id="chest-xray-abnormal"),
    # E9: CKD stage ≥ III; RIFLE I, F or L (R and E are not named)
    pytest.param(finding("ckd_stage", 2), {}, "eligible", id="ckd-stage-2"),
    pytest.param(finding("ckd_stage", 3), {"E9": "met"}, "ineligible", id="ckd-stage-3"),
    pytest.param(finding("rifle_class", "risk"), {}, "eligible", id="rifle-risk"),
    pytest.param(finding("rifle_class", "injury"), {"E9": "met"}, "ineligible",
                 id="rifle-injury"),
    pytest.param(finding("rifle_class", "failure"), {"E9": "met"}, "ineligible",
                 id="rifle-failure"),
    pytest.param(finding("rifle_class", "loss"), {"E9": "met"}, "ineligible", id="rifle-loss"),
    # E10: pregnancy (a test is needed only with childbearing potential)
    pytest.param(lambda p: p.update(childbearing_potential=True, pregnancy=[
        {"date": LAB_DAY, "pregnant": False, "method": "test"}]), {}, "eligible",
        id="pregnancy-test-negative"),
    pytest.param(lambda p: p.update(childbearing_potential=True, pregnancy=[
        {"date": LAB_DAY, "pregnant": True, "method": "test"}]), {"E10": "met"}, "ineligible",
        id="pregnancy-test-positive"),
    # E6: attestation answered yes
    pytest.param(lambda p: p["attestations"][0].update(value=True), {"E6": "met"},
                 "ineligible", id="e6-attested-yes"),
    # E7 asks two things: either half alone excludes
    pytest.param(finding("severe_type1_hypersensitivity_history", True), {"E7": "met"},
                 "ineligible", id="e7-hypersensitivity-finding"),
    pytest.param(seedkit.attest("comorbidity_precluding_treatment", True,
                                trial_id="NB-NK-2026", day=LAB_DAY), {"E7": "met"},
                 "ineligible", id="e7-comorbidity-attested"),
    # E11: the finding every trial reads
    pytest.param(finding("mental_illness_preventing_understanding", True), {"E11": "met"},
                 "ineligible", id="e11-mental-illness-finding"),
    # I1/E1: consent refused
    pytest.param(lambda p: p["consents"][0].update(signed=False),
                 {"I1": "not_met", "E1": "met"}, "ineligible", id="consent-refused"),
    # I12/E2: staging not complete
    pytest.param(status(staging_complete=False), {"I12": "not_met", "E2": "met"},
                 "ineligible", id="staging-incomplete"),
    # Look-back window edge: a lab exactly 14 days old still counts
    pytest.param(observation("alt", 38, "U/L", day="2026-11-07", ref_high=45), {}, "eligible",
                 id="alt-14-days-old"),
]


@pytest.mark.parametrize(("change", "changed", "verdict"), ONE_CHANGE)
def test_one_change(protocol: CompiledProtocol, change: Change, changed: dict[str, str],
                    verdict: str) -> None:
    check_one_change(run(protocol, example("nb-refractory", change)), changed, verdict)


def test_alt_ratio_is_exact_at_the_boundary(protocol: CompiledProtocol) -> None:
    data = example("nb-refractory")
    observation("alt", 225, "U/L", ref_high=45)(data)
    evidence = {e.fact: e.value for e in criterion(run(protocol, data), "I7").evidence}
    assert evidence["alt_x_uln"] == 5.0


def test_measured_gfr_is_used_before_schwartz(protocol: CompiledProtocol) -> None:
    data = example("nb-refractory")
    observation("measured_gfr", 59.99, "mL/min/1.73m2")(data)
    evidence = criterion(run(protocol, data), "I8").evidence
    assert [(e.fact, e.value) for e in evidence] == [("gfr", 59.99)]


# --- missing data: unknown, with the fact and the reason ------------------------------

MISSING = [
    pytest.param(observation("alt", 38, "U/L", day="2026-11-06", ref_high=45), "I7",
                 {"alt_x_uln": ["15 days old", "14-day look-back window"]},
                 id="lab-older-than-window"),
    pytest.param(observation("alt", 38, "U/L"), "I7",
                 {"alt_x_uln": ["no upper limit of normal"]}, id="lab-without-uln"),
    pytest.param(observation("lvef", 64, "%", day="2026-10-23"), "I10",
                 {"lvef": ["29 days old", "28-day look-back window"]},
                 id="measurement-older-than-window"),
    pytest.param(performance("lansky", 80, day="2026-11-06"), "I4",
                 {"performance_score": ["15 days old", "14-day look-back window"]},
                 id="performance-older-than-window"),
    pytest.param(lambda p: p.update(performance=[]), "I4",
                 {"performance_score": ["no lansky score"]}, id="performance-not-recorded"),
    pytest.param(lambda p: p.update(performance=[
        {"scale": "karnofsky", "score": 90, "date": LAB_DAY}]), "I4",
        {"performance_score": ["no lansky score"]}, id="karnofsky-not-used-under-16"),
    pytest.param(finding("life_expectancy", 26, "week", day="2026-10-20"), "I5",
                 {"life_expectancy": ["32 days old", "look-back window"]},
                 id="finding-older-than-window"),
    pytest.param(remove("attestations", lambda a: a["id"] == "e8"), "E8",
                 {"attest.e8": ["not recorded"]}, id="attestation-missing"),
    pytest.param(lambda p: p["attestations"][2].update(trial_id="RuMCeSS"), "E8",
                 {"attest.e8": ["not recorded"]}, id="attestation-for-another-trial"),
    pytest.param(remove("findings", lambda f: f["name"] == "mental_illness_preventing_"
                                                "understanding"), "E11",
                 {"mental_illness_preventing_understanding": ["not recorded"]},
                 id="question-finding-missing"),
    pytest.param(remove("findings", lambda f: f["name"] == "severe_type1_hypersensitivity_"
                                                "history"), "E7",
                 {"severe_type1_hypersensitivity_history": ["not recorded"]},
                 id="e7-half-missing"),
    pytest.param(lambda p: p.update(consents=[]), "I1",
                 {"consent_signed": ["no consent recorded for NB-NK-2026"]},
                 id="consent-missing"),
    pytest.param(lambda p: p.update(childbearing_potential=True), "E10",
                 {"pregnant": ["no pregnancy status recorded"]}, id="pregnancy-test-missing"),
    pytest.param(lambda p: p["disease_status"][-1].pop("staging_complete"), "I12",
                 {"staging_complete": ["not recorded"]}, id="disease-fact-missing"),
]


@pytest.mark.parametrize(("change", "criterion_id", "reasons"), MISSING)
def test_missing_data_is_unknown(protocol: CompiledProtocol, change: Change,
                                 criterion_id: str, reasons: dict[str, list[str]]) -> None:
    result = run(protocol, example("nb-refractory", change))
    check_unknown(result, criterion_id, reasons)
    assert set(reasons) <= set(result.missing_facts)


def test_stale_lvef_leaves_both_lvef_criteria_unknown(protocol: CompiledProtocol) -> None:
    data = example("nb-refractory")
    observation("lvef", 64, "%", day="2026-10-23")(data)
    result = run(protocol, data)
    assert criterion(result, "I10").outcome.value == "unknown"
    # E9 = lvef ≤ 55 or CKD ≥ III or RIFLE I/F/L: CKD 0 and RIFLE none leave it unknown.
    assert criterion(result, "E9").outcome.value == "unknown"


# --- arms -----------------------------------------------------------------------------

ARMS = [
    pytest.param({"status": "refractory"}, "eligible", "A", id="refractory-A"),
    pytest.param({"status": "relapsed"}, "eligible", "B", id="relapsed-B"),
    pytest.param({"status": "progressive"}, "eligible", "B", id="progressive-B"),
    pytest.param({"status": "newly_diagnosed"}, "ineligible", None, id="newly-diagnosed"),
    pytest.param({"status": "remission"}, "ineligible", None, id="remission"),
]


@pytest.mark.parametrize(("fields", "verdict", "arm"), ARMS)
def test_arm_by_disease_status(protocol: CompiledProtocol, fields: dict[str, str],
                               verdict: str, arm: str | None) -> None:
    data = example("nb-refractory")
    status(**fields)(data)
    result = run(protocol, data)
    assert result.verdict.value == verdict
    assert result.arm == arm
    if arm is None:
        assert criterion(result, "I3").outcome.value == "not_met"
        assert result.arm_note == "not eligible"
    else:
        assert result.arm_note == f"arm {arm} by the protocol's assignment rule"


def test_relapse_with_cns_involvement_is_excluded(protocol: CompiledProtocol) -> None:
    data = example("nb-refractory")
    status(status="relapsed", cns_involvement=True)(data)
    result = run(protocol, data)
    assert criterion(result, "E5").outcome.value == "met"
    assert result.verdict.value == "ineligible"
    assert result.arm is None


def test_refractory_cns_involvement_is_not_e5(protocol: CompiledProtocol) -> None:
    # E5 names progressive or relapsed disease only.
    data = example("nb-refractory")
    status(cns_involvement=True)(data)
    assert criterion(run(protocol, data), "E5").outcome.value == "not_met"


# --- the example patients -------------------------------------------------------------


def test_example_refractory_is_eligible_for_arm_a(protocol: CompiledProtocol) -> None:
    result = run(protocol, example("nb-refractory"))
    assert (result.verdict.value, result.arm) == ("eligible", "A")


def test_example_relapsed_is_eligible_for_arm_b(protocol: CompiledProtocol) -> None:
    result = run(protocol, example("nb-relapsed"))
    assert (result.verdict.value, result.arm) == ("eligible", "B")


def test_example_with_old_labs_is_undetermined(protocol: CompiledProtocol) -> None:
    result = run(protocol, example("nb-missing-labs"))
    assert result.verdict.value == "undetermined"
    unknown = [c.id for c in result.criteria if c.outcome.value == "unknown"]
    assert unknown == ["I7", "I8", "I9"]
    assert result.missing_facts == ["alt_x_uln", "ast_x_uln", "gfr", "pti", "aptt"]
    for c in (criterion(result, "I7"), criterion(result, "I9")):
        assert all("22 days old" in m.reason and "look-back window" in m.reason
                   for m in c.missing)


# --- the regimen as seed 000 states it ------------------------------------------------


def test_plan_follows_seed(protocol: CompiledProtocol) -> None:
    p = protocol.protocol
    for arm_id, dit_courses in (("A", 4), ("B", 5)):
        plan = p.arm(arm_id).plan
        assert plan[0].procedure.day == -1  # type: ignore[union-attr]
        assert [(s.course, s.repeats) for s in plan[1:]] == [  # type: ignore[union-attr]
            ("IT", 1), ("DIT", dit_courses)]
    for course_id in ("IT", "DIT"):
        assert p.course(course_id).length_days.value == 21
    nk = [a for a in p.course("DIT").administrations if "NK" in a.agent]
    assert [a.days for a in nk] == [[7]]
    assert nk[0].dose.amount is None and nk[0].dose.unconfirmed
