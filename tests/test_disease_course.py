"""The disease facts NB-NK-2026 reads, derived from the disease course recorded as events.

Known answers from seed 000 (NB-NK-2026, NCT07375563) I3, E4 and E5: refractory = induction
completed (6 cycles of N5/N6) with a poor response (MR, SD), arm A; relapsed/progressive =
new lesions after CR, or any new lesion or progression, arm B; relapsed or progressive
disease with CNS and/or leptomeningeal involvement is excluded. PD is an INRC 2017 overall
response (Park JR et al., J Clin Oncol 2017;35:2580).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from trialdesk.criteria.verdict import screen_record
from trialdesk.errors import FactError
from trialdesk.facts.course import CourseRules, derive_course
from trialdesk.facts.patient import PatientRecord, patient_from_data
from trialdesk.protocol.load import default_protocol_dir, load_protocol

NBNK = load_protocol(default_protocol_dir() / "nb-nk-2026.yaml")
AS_OF = dt.datetime(2026, 11, 21, 12)
EXAMPLE = json.loads((default_protocol_dir().parent / "examples" / "patients" /
                      "nb-refractory.json").read_text())
RULES = CourseRules(induction_cycles=6, poor_response=frozenset({"MR", "SD"}))

# Six cycles of GPOH N5/N6 induction (seed 000 I3), in two blocks.
INDUCTION = [
    {"regimen": "N5", "phase": "induction", "cycles": 3, "start": "2025-09-20",
     "end": "2026-03-15"},
    {"regimen": "N6", "phase": "induction", "cycles": 3, "start": "2026-03-16",
     "end": "2026-10-01"},
]


def _record(**course: Any) -> PatientRecord:
    """The refractory example with its disease course as events instead of a status label
    (only the comprehensive assessment stays a statement: it is not an event)."""
    data = {**EXAMPLE, "disease_status": [{"date": "2026-10-28", "staging_complete": True}],
            **course}
    return patient_from_data(data, today=AS_OF.date())


def _screen(record: PatientRecord) -> dict[str, Any]:
    return screen_record(NBNK, record, as_of=AS_OF).to_json()


def _facts(result: dict[str, Any]) -> dict[str, Any]:
    """fact -> (value, evidence) of every fact the criteria used, and missing reasons."""
    out: dict[str, Any] = {}
    for c in result["criteria"] + result.get("arms", []):
        for e in c.get("evidence", []):
            out[e["fact"]] = (e["value"], e["source"])
        for m in c.get("missing", []):
            out.setdefault(m["fact"], (None, m["reason"]))
    return out


def _outcome(result: dict[str, Any], cid: str) -> str:
    return next(c["outcome"] for c in result["criteria"] if c["id"] == cid)


def test_refractory_after_six_cycles_with_stable_disease_is_arm_a() -> None:
    result = _screen(_record(chemotherapy=INDUCTION, response_assessments=[
        {"date": "2026-10-20", "criteria": "INRC 2017", "category": "SD"}]))
    facts = _facts(result)
    assert facts["disease_status"] == (
        "refractory", "refractory: 6 cycles N5/N6 completed 2026-10-01, end-of-induction "
                      "response SD on 2026-10-20")
    assert facts["induction_cycles_completed"][0] == 6
    assert facts["end_induction_response"][0] == "SD"
    assert (result["verdict"], result["arm"]) == ("eligible", "A")
    assert _outcome(result, "E4") == "not_met" and _outcome(result, "E5") == "not_met"


def test_minor_response_is_refractory_too_but_a_partial_response_is_not() -> None:
    mr = _screen(_record(chemotherapy=INDUCTION, response_assessments=[
        {"date": "2026-10-20", "category": "MR"}]))
    assert (mr["verdict"], mr["arm"]) == ("eligible", "A")
    pr = _screen(_record(chemotherapy=INDUCTION, response_assessments=[
        {"date": "2026-10-20", "category": "PR"}]))
    status, why = _facts(pr)["disease_status"]
    assert status == "on_first_line_therapy"
    assert "PR is not a poor response (MR, SD)" in why
    # I3 not met; E4 (a good response at the end of intensified induction) does not apply to
    # a patient who is not refractory.
    assert pr["verdict"] == "ineligible" and _outcome(pr, "I3") == "not_met"


def test_stable_disease_after_four_cycles_is_not_yet_refractory() -> None:
    result = _screen(_record(chemotherapy=[
        {"regimen": "N5", "phase": "induction", "cycles": 4, "start": "2026-03-16",
         "end": "2026-10-01"}], response_assessments=[{"date": "2026-10-20", "category": "SD"}]))
    status, why = _facts(result)["disease_status"]
    assert status == "on_first_line_therapy" and "4 of the 6 induction cycles" in why
    assert result["verdict"] == "ineligible"


def test_progression_during_induction_is_arm_b() -> None:
    result = _screen(_record(
        chemotherapy=[{"regimen": "N5", "phase": "induction", "cycles": 2, "start": "2026-07-01",
                       "end": "2026-08-20"},
                      {"regimen": "N6", "phase": "induction", "cycles": 1,
                       "start": "2026-08-21"}],
        response_assessments=[{"date": "2026-09-25", "category": "PD"}],
        progressions=[{"date": "2026-09-25", "sites": ["soft_tissue", "bone"]}]))
    facts = _facts(result)
    assert facts["disease_status"] == (
        "progressive", "progression on 2026-09-25 (soft tissue, bone) during induction, no "
                       "complete response recorded before it")
    assert facts["cns_involvement"][0] is False
    assert facts["induction_cycles_completed"][0] == 2
    assert (result["verdict"], result["arm"]) == ("eligible", "B")
    assert _outcome(result, "E4") == "not_met"


def test_an_assessment_of_pd_without_sites_leaves_cns_involvement_unknown() -> None:
    result = _screen(_record(chemotherapy=INDUCTION, response_assessments=[
        {"date": "2026-10-20", "category": "PD"}]))
    facts = _facts(result)
    assert facts["disease_status"][0] == "progressive"
    assert facts["cns_involvement"] == (
        None, "the sites of the relapse or progression on 2026-10-20 are not recorded")
    assert _outcome(result, "E5") == "unknown" and result["verdict"] == "undetermined"


def test_relapse_after_complete_response_is_arm_b() -> None:
    result = _screen(_record(
        chemotherapy=INDUCTION,
        response_assessments=[{"date": "2026-10-20", "category": "CR"}],
        progressions=[{"date": "2026-11-05", "sites": ["bone", "marrow"]}]))
    facts = _facts(result)
    assert facts["disease_status"] == (
        "relapsed", "relapse on 2026-11-05 (bone, marrow), after CR (INRC 2017) on 2026-10-20")
    assert facts["cns_involvement"][0] is False
    assert (result["verdict"], result["arm"]) == ("eligible", "B")


def test_cns_relapse_is_excluded() -> None:
    result = _screen(_record(
        chemotherapy=INDUCTION,
        response_assessments=[{"date": "2026-10-20", "category": "CR"}],
        progressions=[{"date": "2026-11-05", "sites": ["bone", "leptomeningeal"]}]))
    facts = _facts(result)
    assert facts["disease_status"][0] == "relapsed"
    assert facts["cns_involvement"] == (
        True, "leptomeningeal site at the relapse or progression on 2026-11-05")
    assert _outcome(result, "E5") == "met"
    assert result["verdict"] == "ineligible"


def test_disease_status_statements_keep_working_and_the_later_reading_counts() -> None:
    # The example's statement alone (no events) still screens eligible, arm A.
    plain = _screen(patient_from_data(EXAMPLE, today=AS_OF.date()))
    assert (plain["verdict"], plain["arm"]) == ("eligible", "A")
    # A relapse recorded after the statement overrides it; the statement's CNS "no" is
    # older than the relapse's sites, so the relapse's reading counts.
    later = patient_from_data({**EXAMPLE, "response_assessments": [
        {"date": "2026-10-29", "category": "CR"}], "progressions": [
        {"date": "2026-11-10", "sites": ["cns"]}]}, today=AS_OF.date())
    result = _screen(later)
    assert _facts(result)["disease_status"][0] == "relapsed"
    assert _facts(result)["cns_involvement"][0] is True
    assert result["verdict"] == "ineligible"
    # A statement dated after the events wins over them.
    stated = patient_from_data({**EXAMPLE, "progressions": [{"date": "2026-10-01"}]},
                               today=AS_OF.date())
    assert _facts(_screen(stated))["disease_status"][0] == "refractory"


def test_a_running_block_is_not_counted_and_gives_no_end_of_induction_response() -> None:
    from trialdesk.facts.patient import ChemotherapyBlock

    blocks = [ChemotherapyBlock.model_validate(b) for b in INDUCTION[:1]] + [
        ChemotherapyBlock(regimen="N6", phase="induction", cycles=3,
                          start=dt.date(2026, 3, 16))]
    course = derive_course(blocks, [], [], on=dt.date(2026, 5, 1), rules=RULES)
    assert course.values["induction_cycles_completed"].value == 3
    assert "N6 from 2026-03-16 still being given, not counted" in (
        course.values["induction_cycles_completed"].evidence)
    assert course.missing["end_induction_response"] == (
        "induction still being given (N6 from 2026-03-16)")
    assert course.values["disease_status"].value == "on_first_line_therapy"
    # Events after the screening moment are not read.
    early = derive_course(blocks, [], [], on=dt.date(2026, 1, 1), rules=RULES)
    assert early.values["induction_cycles_completed"].value == 0


def test_the_assessment_after_a_later_block_began_is_not_the_end_of_induction() -> None:
    from trialdesk.facts.patient import ChemotherapyBlock, ResponseAssessment

    blocks = [ChemotherapyBlock.model_validate(b) for b in INDUCTION] + [
        ChemotherapyBlock(regimen="BuMel", phase="consolidation", cycles=1,
                          start=dt.date(2026, 10, 10), end=dt.date(2026, 10, 15))]
    course = derive_course(blocks, [ResponseAssessment(date=dt.date(2026, 10, 20),
                                                       category="SD")], [],
                           on=dt.date(2026, 11, 1), rules=RULES)
    assert "end_induction_response" not in course.values
    assert "before the next block began 2026-10-10" in course.missing["end_induction_response"]


def test_without_the_protocol_rule_refractory_is_not_derived() -> None:
    from trialdesk.facts.patient import ChemotherapyBlock, ResponseAssessment

    blocks = [ChemotherapyBlock.model_validate(b) for b in INDUCTION]
    course = derive_course(blocks, [ResponseAssessment(date=dt.date(2026, 10, 20),
                                                       category="SD")], [],
                           on=dt.date(2026, 11, 1), rules=None)
    assert "disease_status" not in course.values
    assert "no rule for refractory" in course.missing["disease_status"]


@pytest.mark.parametrize(("course", "where", "reason"), [
    ({"chemotherapy": [{"regimen": "N5", "phase": "induction", "cycles": 3,
                        "start": "2026-10-01", "end": "2026-09-01"}]},
     "chemotherapy", "last day is before the first day"),
    ({"response_assessments": [{"date": "2026-10-20", "criteria": "RECIST 1.1",
                                "category": "MR"}]},
     "response_assessments", "MR is not a RECIST 1.1 category"),
    ({"response_assessments": [{"date": "2026-10-20", "criteria": "INRC 2017",
                                "category": "VGPR"}]},
     "response_assessments", "VGPR is not a INRC 2017 category"),
    ({"progressions": [{"date": "2027-01-01", "sites": ["bone"]}]},
     "progressions[0].date", "in the future"),
    ({"progressions": [{"date": "2026-11-01", "sites": ["brain"]}]}, "progressions", ""),
])
def test_impossible_events_are_refused(course: dict[str, Any], where: str, reason: str) -> None:
    with pytest.raises(FactError) as caught:
        _record(**course)
    assert where in str(caught.value.where)
    assert reason in caught.value.reason
