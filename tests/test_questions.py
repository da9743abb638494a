"""The investigator's questions as findings of the dictionary (docs/questions.md).

A finding such as "mental illness that prevents understanding the study" is answered once
per patient, with its date and who answered, and every trial that asks it reads that one
answer; NB-NK-2026 E7 asks two things and reads two facts; answers given before a question
became a finding (per-trial attestations) are still read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

import seedkit
from seedkit import Patient, criterion, example, finding
from trialdesk.criteria.verdict import ScreeningResult
from trialdesk.facts.dictionary import ANSWERED_AS, FACTS, FactKind
from trialdesk.protocol.load import CompiledProtocol

SCREENED = datetime(2026, 11, 21)
DAY = "2026-11-19"  # after the examples' answers (2026-11-18)


@pytest.fixture(scope="module")
def trials() -> dict[str, CompiledProtocol]:
    return {"NB-NK-2026": seedkit.load("nb-nk-2026.yaml"),
            "REFNOT-R2": seedkit.load("refnot-r2.yaml")}


def run(protocol: CompiledProtocol, data: Patient) -> ScreeningResult:
    return seedkit.run(protocol, data, as_of=SCREENED)


def answer(name: str, value: bool, *, day: str = DAY, by: str = "dr.ivanova") -> Any:
    """The patient's answer to a question finding (replacing any earlier one)."""
    def change(p: Patient) -> None:
        finding(name, value, day=day)(p)
        p["findings"][-1]["by"] = by
    return change


def old_answer(trial_id: str, attestation_id: str, value: bool, *, day: str = DAY) -> Any:
    """A per-trial attestation answer as records held it before the question was a finding."""
    def change(p: Patient) -> None:
        p["attestations"].append({"trial_id": trial_id, "id": attestation_id, "value": value,
                                  "date": day, "by": "dr.petrov"})
    return change


def drop(*names: str) -> Any:
    def change(p: Patient) -> None:
        p["findings"] = [f for f in p["findings"] if f["name"] not in names]
    return change


def outcome(protocol: CompiledProtocol, data: Patient, cid: str) -> str:
    return criterion(run(protocol, data), cid).outcome.value


def test_question_findings_are_findings_with_their_question() -> None:
    for name in ("severe_type1_hypersensitivity_history",
                 "mental_illness_preventing_understanding", "standard_treatment_exhausted"):
        fact = FACTS[name]
        assert fact.kind is FactKind.FINDING and fact.question and fact.question.endswith("?")
    assert FACTS["significant_allergy"].question is None


def test_one_answer_is_read_by_every_trial_that_asks(trials: dict[str, CompiledProtocol]
                                                     ) -> None:
    # The same record, answered once, screened against both trials.
    nb = example("nb-refractory", answer("mental_illness_preventing_understanding", True))
    refnot = example("refnot-eligible", drop("mental_illness_preventing_understanding"))
    refnot["findings"].append(nb["findings"][-1])
    for protocol, data, cid in ((trials["NB-NK-2026"], nb, "E11"),
                                (trials["REFNOT-R2"], refnot, "E3")):
        result = run(protocol, data)
        c = criterion(result, cid)
        assert c.outcome.value == "met" and result.verdict.value == "ineligible"
        [evidence] = c.evidence
        assert evidence.fact == "mental_illness_preventing_understanding"
        assert evidence.source == "answered by dr.ivanova on 2026-11-19"
        assert str(evidence.observed) == DAY
    # One record, both trials: the one answer decides NB-NK-2026 E11 and REFNOT-R2 E3.
    one = example("refnot-eligible", answer("mental_illness_preventing_understanding", True))
    assert outcome(trials["NB-NK-2026"], one, "E11") == "met"
    assert outcome(trials["REFNOT-R2"], one, "E3") == "met"
    # Answered no, both trials read the no.
    nb = example("nb-refractory", answer("mental_illness_preventing_understanding", False))
    assert outcome(trials["NB-NK-2026"], nb, "E11") == "not_met"


@pytest.mark.parametrize(("comorbidity", "hypersensitivity", "expected"), [
    (False, False, "not_met"),
    (True, False, "met"),
    (False, True, "met"),
    (False, None, "unknown"),
    (True, None, "met"),
])
def test_e7_is_two_questions(trials: dict[str, CompiledProtocol], comorbidity: bool,
                             hypersensitivity: bool | None, expected: str) -> None:
    changes = [seedkit.attest("comorbidity_precluding_treatment", comorbidity,
                              trial_id="NB-NK-2026", day=DAY)]
    changes.append(drop("severe_type1_hypersensitivity_history") if hypersensitivity is None
                   else answer("severe_type1_hypersensitivity_history", hypersensitivity))
    assert outcome(trials["NB-NK-2026"], example("nb-refractory", *changes), "E7") == expected


def test_unanswered_question_is_unknown(trials: dict[str, CompiledProtocol]) -> None:
    data = example("refnot-eligible", drop("standard_treatment_exhausted"))
    result = run(trials["REFNOT-R2"], data)
    assert criterion(result, "I1").outcome.value == "unknown"
    assert result.verdict.value == "undetermined"


# --- answers given before the questions were findings ---------------------------------

def _old_style(name: str) -> Patient:
    """The example with the question findings taken out (as records held them before)."""
    return example(name, drop(*(n for n, f in FACTS.items() if f.question)))


def test_an_old_answer_is_read_as_the_finding_by_every_trial(
        trials: dict[str, CompiledProtocol]) -> None:
    # REFNOT-R2 E3 answered yes in the old way: NB-NK-2026 E11 reads it too.
    data = _old_style("nb-refractory")
    old_answer("REFNOT-R2", "e3", True)(data)
    old_answer("NB-NK-2026", "e7", False)(data)
    c = criterion(run(trials["NB-NK-2026"], data), "E11")
    assert c.outcome.value == "met"
    assert c.evidence[0].source == "answered by dr.petrov on 2026-11-19 (REFNOT-R2 E3)"
    data = _old_style("refnot-eligible")
    old_answer("REFNOT-R2", "i1", True)(data)
    old_answer("REFNOT-R2", "e3", False)(data)
    result = run(trials["REFNOT-R2"], data)
    assert result.verdict.value == "eligible"


def test_the_old_joined_e7_answer(trials: dict[str, CompiledProtocol]) -> None:
    nb = trials["NB-NK-2026"]
    data = _old_style("nb-refractory")
    data["attestations"] = [a for a in data["attestations"]
                            if a["id"] != "comorbidity_precluding_treatment"]
    old_answer("NB-NK-2026", "e11", False)(data)
    # "No" to the joined question: no to both halves, the patient stays eligible.
    old_answer("NB-NK-2026", "e7", False)(data)
    result = run(nb, data)
    assert result.verdict.value == "eligible"
    facts = {e.fact: e.value for e in criterion(result, "E7").evidence}
    assert facts == {"attest.comorbidity_precluding_treatment": False,
                     "severe_type1_hypersensitivity_history": False}
    # A later "yes": E7 stays met (read as the comorbidity half) and the earlier "no" no
    # longer says anything of the hypersensitivity, which is not known.
    old_answer("NB-NK-2026", "e7", True, day="2026-11-20")(data)
    result = run(nb, data)
    assert criterion(result, "E7").outcome.value == "met"
    assert result.verdict.value == "ineligible"
    assert {e.fact: e.value for e in criterion(result, "E7").evidence} == {
        "attest.comorbidity_precluding_treatment": True}


def test_a_finding_answered_on_the_same_day_wins_over_an_old_answer(
        trials: dict[str, CompiledProtocol]) -> None:
    data = example("refnot-eligible", old_answer("REFNOT-R2", "i1", False, day="2026-11-18"))
    assert outcome(trials["REFNOT-R2"], data, "I1") == "met"  # the finding of 2026-11-18
    old_answer("REFNOT-R2", "i1", False, day="2026-11-20")(data)
    assert outcome(trials["REFNOT-R2"], data, "I1") == "not_met"  # a later answer


def test_every_mapped_answer_names_a_known_fact(trials: dict[str, CompiledProtocol]) -> None:
    for (trial_id, attestation_id), targets in ANSWERED_AS.items():
        protocol = trials[trial_id]
        assert all(c.attestation is None or c.attestation.id != attestation_id
                   for _, c in protocol.protocol.criteria)
        for name, carried in targets:
            assert name in protocol.protocol.dictionary, name
            assert carried and set(carried) <= {True, False}
