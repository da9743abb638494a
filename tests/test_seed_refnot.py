"""Refnot R-2 (seed 003): screening against the protocol file, and the regimen.

Every case starts from a complete eligible patient (examples/patients/refnot-eligible.json,
screened on 2026-11-21) and changes one thing. Expected outcomes come from the criteria
text of seed 003: granulocytes and platelets "more than" 2000 and 150000/mm³ (the value
itself fails), creatinine "should not exceed 1.5 norms" and liver enzymes "should not
exceed 3 norms" (the value itself passes), "Age no more than 75 years" (75 passes),
"General condition 0-2 (WHO)", "at least 3 months", and "Any immunotherapy within the
last 6 weeks" excludes.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import partial
from pathlib import Path

import pytest

import seedkit
from seedkit import (
    Change,
    born,
    check_one_change,
    check_unknown,
    criterion,
    example,
    status,
    treatment,
    without_category,
)
from trialdesk.protocol.load import CompiledProtocol
from trialdesk.protocol.model import CourseStep, MilestoneStep

SCREENED = datetime(2026, 11, 21)
LAB_DAY = "2026-11-16"  # the base patient's laboratory date

run = partial(seedkit.run, as_of=SCREENED)
observation = partial(seedkit.observation, day=LAB_DAY)
finding = partial(seedkit.finding, day=LAB_DAY)
performance = partial(seedkit.performance, day=LAB_DAY)
attest = partial(seedkit.attest, trial_id="REFNOT-R2", day="2026-11-18")
female_of_childbearing_potential = partial(seedkit.female_of_childbearing_potential,
                                           day=LAB_DAY)
no_immunotherapy = without_category("immunotherapy")


@pytest.fixture(scope="module")
def protocol() -> CompiledProtocol:
    return seedkit.load("refnot-r2.yaml")


# --- one change, expected outcomes ----------------------------------------------------

ONE_CHANGE = [
    # I3 (Age no more than 75 years) and I10 (registry ages 18 to 75)
    pytest.param(born("1950-11-22"), {}, "eligible", id="age-75-years-364-days"),
    pytest.param(born("1951-11-21"), {}, "eligible", id="age-exactly-75"),
    pytest.param(born("1950-11-21"), {"I3": "not_met", "I10": "not_met"}, "ineligible",
                 id="age-76"),
    pytest.param(born("2008-11-22"), {"I10": "not_met"}, "ineligible",
                 id="age-17-years-364-days"),
    pytest.param(born("2008-11-21"), {}, "eligible", id="age-exactly-18"),
    # I4: WHO 0-2
    pytest.param(performance("ecog", 0), {}, "eligible", id="who-0"),
    pytest.param(performance("ecog", 2), {}, "eligible", id="who-2"),
    pytest.param(performance("ecog", 3), {"I4": "not_met"}, "ineligible", id="who-3"),
    # I5: at least 3 months (a month is 365.25/12 days: 3 months = 91.3125 days)
    pytest.param(finding("life_expectancy", 3.1, "month"), {}, "eligible", id="life-3.1-months"),
    pytest.param(finding("life_expectancy", 3, "month"), {}, "eligible", id="life-3-months"),
    pytest.param(finding("life_expectancy", 2.9, "month"), {"I5": "not_met"}, "ineligible",
                 id="life-2.9-months"),
    pytest.param(finding("life_expectancy", 92, "day"), {}, "eligible", id="life-92-days"),
    pytest.param(finding("life_expectancy", 13, "week"), {"I5": "not_met"}, "ineligible",
                 id="life-13-weeks-is-under-3-months"),
    # I7: granulocytes > 2000/mm³, platelets > 150000/mm³
    pytest.param(observation("granulocytes", 2001, "/mm3"), {}, "eligible",
                 id="granulocytes-2001"),
    pytest.param(observation("granulocytes", 2000, "/mm3"), {"I7": "not_met"}, "ineligible",
                 id="granulocytes-2000"),
    pytest.param(observation("granulocytes", 1999, "/mm3"), {"I7": "not_met"}, "ineligible",
                 id="granulocytes-1999"),
    pytest.param(observation("granulocytes", 2.0, "10^9/L"), {"I7": "not_met"}, "ineligible",
                 id="granulocytes-2.0-e9-per-L"),
    pytest.param(observation("granulocytes", 2.001, "10^9/L"), {}, "eligible",
                 id="granulocytes-2.001-e9-per-L"),
    pytest.param(observation("platelets", 150001, "/mm3"), {}, "eligible",
                 id="platelets-150001"),
    pytest.param(observation("platelets", 150000, "/mm3"), {"I7": "not_met"}, "ineligible",
                 id="platelets-150000"),
    pytest.param(observation("platelets", 149999, "/mm3"), {"I7": "not_met"}, "ineligible",
                 id="platelets-149999"),
    pytest.param(observation("platelets", 150, "10^9/L"), {"I7": "not_met"}, "ineligible",
                 id="platelets-150-e9-per-L"),
    pytest.param(observation("platelets", 151, "10^9/L"), {}, "eligible",
                 id="platelets-151-e9-per-L"),
    # I8: creatinine ≤ 1.5 × ULN (value ÷ the result's own ULN)
    pytest.param(observation("creatinine", 158, "umol/L", ref_high=106), {}, "eligible",
                 id="creatinine-1.49-uln"),
    pytest.param(observation("creatinine", 159, "umol/L", ref_high=106), {}, "eligible",
                 id="creatinine-1.50-uln"),
    pytest.param(observation("creatinine", 160, "umol/L", ref_high=106), {"I8": "not_met"},
                 "ineligible", id="creatinine-1.51-uln"),
    pytest.param(observation("creatinine", 1.8, "mg/dL", ref_high=1.2), {}, "eligible",
                 id="creatinine-1.8-over-1.2-mg-dl"),
    pytest.param(observation("creatinine", 1.81, "mg/dL", ref_high=1.2), {"I8": "not_met"},
                 "ineligible", id="creatinine-1.81-over-1.2-mg-dl"),
    # I8: ALT, AST, ALP ≤ 3 × ULN
    pytest.param(observation("alt", 119.6, "U/L", ref_high=40), {}, "eligible",
                 id="alt-2.99-uln"),
    pytest.param(observation("alt", 120, "U/L", ref_high=40), {}, "eligible", id="alt-3.00-uln"),
    pytest.param(observation("alt", 120.4, "U/L", ref_high=40), {"I8": "not_met"},
                 "ineligible", id="alt-3.01-uln"),
    pytest.param(observation("ast", 119.6, "U/L", ref_high=40), {}, "eligible",
                 id="ast-2.99-uln"),
    pytest.param(observation("ast", 120, "U/L", ref_high=40), {}, "eligible", id="ast-3.00-uln"),
    pytest.param(observation("ast", 120.4, "U/L", ref_high=40), {"I8": "not_met"},
                 "ineligible", id="ast-3.01-uln"),
    pytest.param(observation("alp", 388.7, "U/L", ref_high=130), {}, "eligible",
                 id="alp-2.99-uln"),
    pytest.param(observation("alp", 390, "U/L", ref_high=130), {}, "eligible",
                 id="alp-3.00-uln"),
    pytest.param(observation("alp", 391.3, "U/L", ref_high=130), {"I8": "not_met"},
                 "ineligible", id="alp-3.01-uln"),
    # I2: morphological (histological or cytological) confirmation
    pytest.param(lambda p: p["diagnosis"].update(confirmation="cytological"), {}, "eligible",
                 id="cytological"),
    pytest.param(lambda p: p["diagnosis"].update(confirmation="clinical"), {"I2": "not_met"},
                 "ineligible", id="clinical-diagnosis-only"),
    # I11: disseminated solid tumour
    pytest.param(status(metastatic=False), {"I11": "not_met"}, "ineligible",
                 id="not-disseminated"),
    pytest.param(lambda p: p["diagnosis"].update(primary="lymphoma"), {"I11": "not_met"},
                 "ineligible", id="haematological-malignancy"),
    # I1: the finding answered no
    pytest.param(finding("standard_treatment_exhausted", False), {"I1": "not_met"}, "ineligible",
                 id="standard-treatment-not-exhausted"),
    # I6: consent
    pytest.param(lambda p: p["consents"][0].update(signed=False), {"I6": "not_met"},
                 "ineligible", id="consent-refused"),
    # E9: any immunotherapy within the last 6 weeks (42 days) before enrolment
    pytest.param(treatment("pembrolizumab", "immunotherapy", "2026-07-01", "2026-10-11"),
                 {"E9": "met"}, "ineligible", id="immunotherapy-41-days-ago"),
    pytest.param(treatment("pembrolizumab", "immunotherapy", "2026-07-01", "2026-10-10"),
                 {"E9": "met"}, "ineligible", id="immunotherapy-42-days-ago"),
    pytest.param(treatment("pembrolizumab", "immunotherapy", "2026-07-01", "2026-10-09"), {},
                 "eligible", id="immunotherapy-43-days-ago"),
    pytest.param(treatment("pembrolizumab", "immunotherapy", "2026-07-01"), {"E9": "met"},
                 "ineligible", id="immunotherapy-ongoing"),
    pytest.param(no_immunotherapy, {}, "eligible", id="history-without-immunotherapy"),
    pytest.param(lambda p: p.update(treatments=[]), {}, "eligible", id="no-treatment-at-all"),
    # E6: chronic corticosteroids or immunosuppressants
    pytest.param(treatment("prednisolone", "corticosteroid", "2026-06-01", chronic=True),
                 {"E6": "met"}, "ineligible", id="chronic-steroids-ongoing"),
    pytest.param(treatment("prednisolone", "corticosteroid", "2026-06-01", "2026-08-01",
                           chronic=True), {}, "eligible", id="chronic-steroids-stopped"),
    pytest.param(treatment("dexamethasone", "corticosteroid", "2026-11-01", "2026-11-03"), {},
                 "eligible", id="short-steroid-course"),
    # Other exclusions
    pytest.param(finding("severe_cardiovascular_disease", True), {"E1": "met"}, "ineligible",
                 id="severe-cardiovascular-disease"),
    pytest.param(finding("uncontrolled_diabetes", True), {"E2": "met"}, "ineligible",
                 id="uncontrolled-diabetes"),
    pytest.param(finding("active_peptic_ulcer", True), {"E2": "met"}, "ineligible",
                 id="active-peptic-ulcer"),
    pytest.param(finding("mental_illness_preventing_understanding", True), {"E3": "met"},
                 "ineligible", id="mental-illness"),
    pytest.param(female_of_childbearing_potential(True), {"E4": "met"}, "ineligible",
                 id="pregnant"),
    pytest.param(female_of_childbearing_potential(False), {}, "eligible",
                 id="pregnancy-test-negative"),
    pytest.param(status(brain_metastases=True), {"E5": "met"}, "ineligible",
                 id="brain-metastases"),
    pytest.param(attest("e7", True), {"E7": "met"}, "ineligible", id="neurological-disease"),
    pytest.param(finding("significant_allergy", True), {"E8": "met"}, "ineligible",
                 id="allergy"),
]


@pytest.mark.parametrize(("change", "changed", "verdict"), ONE_CHANGE)
def test_one_change(protocol: CompiledProtocol, change: Change, changed: dict[str, str],
                    verdict: str) -> None:
    check_one_change(run(protocol, example("refnot-eligible", change)), changed, verdict)


def test_creatinine_ratio_is_exact_at_the_boundary(protocol: CompiledProtocol) -> None:
    # 1.8 / 1.2 is 1.5000000000000002 in binary floating point; 1.5 × ULN must still pass.
    data = example("refnot-eligible")
    observation("creatinine", 1.8, "mg/dL", ref_high=1.2)(data)
    evidence = {e.fact: e.value for e in criterion(run(protocol, data), "I8").evidence}
    assert evidence["creatinine_x_uln"] == 1.5


# --- missing data: unknown, with the fact and the reason ------------------------------

MISSING = [
    pytest.param(observation("platelets", 231000, "/mm3", day="2026-11-06"), "I7",
                 {"platelets": ["15 days old", "14-day look-back window"]},
                 id="lab-older-than-window"),
    pytest.param(observation("alt", 28, "U/L"), "I8",
                 {"alt_x_uln": ["no upper limit of normal"]}, id="lab-without-uln"),
    pytest.param(performance("ecog", 1, day="2026-11-05"), "I4",
                 {"ecog": ["16 days old", "14-day look-back window"]},
                 id="performance-older-than-window"),
    pytest.param(performance("karnofsky", 90), "I4", {"ecog": ["not recorded"]},
                 id="karnofsky-is-not-converted-to-who"),
    pytest.param(attest("i9", None), "I9", {"attest.i9": ["not recorded"]},
                 id="attestation-missing"),
    pytest.param(lambda p: p.pop("treatments"), "E9",
                 {"prior_therapy_categories": ["treatment history not recorded"],
                  "last_immunotherapy_date": ["treatment history not recorded"]},
                 id="no-treatment-history"),
    pytest.param(female_of_childbearing_potential(None), "E4",
                 {"pregnant": ["no pregnancy status recorded"]}, id="pregnancy-test-missing"),
    pytest.param(lambda p: p.update(consents=[]), "I6",
                 {"consent_signed": ["no consent recorded for REFNOT-R2"]},
                 id="consent-missing"),
]


@pytest.mark.parametrize(("change", "criterion_id", "reasons"), MISSING)
def test_missing_data_is_unknown(protocol: CompiledProtocol, change: Change,
                                 criterion_id: str, reasons: dict[str, list[str]]) -> None:
    check_unknown(run(protocol, example("refnot-eligible", change)), criterion_id, reasons)


def test_no_treatment_history_also_leaves_chronic_steroids_unknown(
        protocol: CompiledProtocol) -> None:
    data = example("refnot-eligible")
    data.pop("treatments")
    result = run(protocol, data)
    assert criterion(result, "E6").outcome.value == "unknown"
    assert [m.fact for m in criterion(result, "E6").missing] == ["chronic_immunosuppression"]


# --- groups ---------------------------------------------------------------------------


@pytest.mark.parametrize(("planned", "arm"), [(False, "G1"), (True, "G2")])
def test_group_by_chemotherapy_plan(protocol: CompiledProtocol, planned: bool,
                                    arm: str) -> None:
    data = example("refnot-eligible")
    attest("chemotherapy_planned", planned)(data)
    result = run(protocol, data)
    assert (result.verdict.value, result.arm) == ("eligible", arm)


def test_group_unknown_without_the_answer(protocol: CompiledProtocol) -> None:
    data = example("refnot-eligible")
    attest("chemotherapy_planned", None)(data)
    result = run(protocol, data)
    assert result.verdict.value == "eligible"  # not an eligibility criterion
    assert result.arm is None
    # Both group rules read the investigator's answer about planned chemotherapy.
    assert result.arm_note == ("arm undetermined: data missing for the assignment rule "
                               "(attest.chemotherapy_planned)")
    assert result.arm_missing_facts == ["attest.chemotherapy_planned"]
    assert result.to_json()["arm_missing_facts"] == ["attest.chemotherapy_planned"]
    assert [a.outcome.value for a in result.arms if a.outcome] == ["unknown", "unknown"]
    assert [[m.fact for m in a.missing] for a in result.arms if a.rule] == [
        ["attest.chemotherapy_planned"], ["attest.chemotherapy_planned"]]


def test_group_unknown_is_explained_on_the_command_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from trialdesk.cli import app

    data = example("refnot-eligible")
    attest("chemotherapy_planned", None)(data)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    result = CliRunner().invoke(app, ["screen", str(path), "--trial", "REFNOT-R2", "--on", "2026-11-21"])
    assert result.exit_code == 0, result.stderr
    assert "To decide the arm, record: attest.chemotherapy_planned" in result.stdout


# --- the example patients -------------------------------------------------------------


def test_example_eligible_is_group_1(protocol: CompiledProtocol) -> None:
    result = run(protocol, example("refnot-eligible"))
    assert (result.verdict.value, result.arm) == ("eligible", "G1")


def test_example_with_150000_platelets_is_ineligible(protocol: CompiledProtocol) -> None:
    result = run(protocol, example("refnot-ineligible"))
    assert result.verdict.value == "ineligible"
    assert [c.id for c in result.criteria
            if c.outcome.value != ("met" if c.kind == "inclusion" else "not_met")] == ["I7"]
    evidence = {e.fact: e.value for e in criterion(result, "I7").evidence}
    assert evidence["platelets"] == 150000
    assert result.arm is None


# --- the regimen as seed 003 states it ------------------------------------------------


def test_refnot_course(protocol: CompiledProtocol) -> None:
    p = protocol.protocol
    course = p.course("REFNOT")
    assert course.length_days.value == 28  # "4 weeks constitute 1 course"
    (refnot,) = course.administrations
    assert (refnot.route, refnot.dose.amount, refnot.dose.unit) == ("SC", 400000, "IU")
    assert (refnot.dose.basis.value, refnot.dose.per) == ("fixed", "administration")
    assert not refnot.dose.unconfirmed
    # 3 times a week, every other day, for 4 weeks: 12 injections, 3 in each week
    assert len(refnot.days) == 12
    assert all(1 <= d <= 28 for d in refnot.days)
    assert [sum(1 for d in refnot.days if 7 * w < d <= 7 * (w + 1)) for w in range(4)] == [3] * 4
    assert all(b - a >= 2 for a, b in zip(refnot.days, refnot.days[1:], strict=False))
    # the weekdays are a protocol setting, marked as such
    setting = p.parameters["refnot_injection_days"]
    assert setting.unconfirmed
    assert [int(d) for d in str(setting.value).split(",")] == refnot.days


def test_plan_second_course_only_without_progression(protocol: CompiledProtocol) -> None:
    p = protocol.protocol
    for arm_id in ("G1", "G2"):
        courses = [s for s in p.arm(arm_id).plan if isinstance(s, CourseStep)]
        assert [(s.course, s.condition) for s in courses] == [
            ("REFNOT", None), ("REFNOT", "no disease progression")]
        (assessment,) = p.arm(arm_id).assessments
        assert assessment.criteria == "RECIST 1.1" and assessment.unconfirmed
    assert not [s for s in p.arm("G1").plan if isinstance(s, MilestoneStep)]
    (chemo,) = [s for s in p.arm("G2").plan if isinstance(s, MilestoneStep)]
    # "Chemotherapy may be used after 4-8 weeks of Refnot use"
    assert (chemo.from_day, chemo.to_day) == (4 * 7 + 1, 8 * 7 + 1)


def test_registry_block(protocol: CompiledProtocol) -> None:
    r = protocol.protocol.registry
    assert r.identification.nct_id is None
    assert r.status.overall_status == "COMPLETED"
    assert r.design.phases == ["PHASE2"] and r.design.allocation == "NON_RANDOMIZED"
    assert r.design.enrollment is not None and r.design.enrollment.count == 55
    assert (r.eligibility.minimum_age, r.eligibility.maximum_age) == ("18 Years", "75 Years")
    assert r.sponsor.lead_sponsor.name == "Refnot-Pharm"
