"""Screen one patient's facts against one protocol: a verdict with every criterion explained.

* ``eligible`` — every inclusion criterion is met and no exclusion criterion is met;
* ``ineligible`` — an inclusion criterion is not met, or an exclusion criterion is met;
* ``undetermined`` — otherwise: some criterion is unknown because data is missing.

The JSON form (:meth:`ScreeningResult.to_json`) is a stable document, described in
``docs/screening-json.md``; its ``schema`` field changes whenever its shape does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from trialdesk.criteria.ast import facts_of, to_text
from trialdesk.criteria.evaluate import evaluate
from trialdesk.errors import ProtocolError
from trialdesk.facts.model import FactSet, FactValue
from trialdesk.facts.normalise import normalise
from trialdesk.facts.patient import PatientRecord
from trialdesk.protocol.load import CompiledProtocol

SCHEMA = "trialdesk.screening/1"


class Outcome(StrEnum):
    MET = "met"
    NOT_MET = "not_met"
    UNKNOWN = "unknown"

    @classmethod
    def of(cls, value: bool | None) -> Outcome:
        return cls.UNKNOWN if value is None else cls.MET if value else cls.NOT_MET


class Verdict(StrEnum):
    ELIGIBLE = "eligible"
    INELIGIBLE = "ineligible"
    UNDETERMINED = "undetermined"


def json_value(value: object) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, frozenset):
        return sorted(value)
    return value


@dataclass(frozen=True)
class Evidence:
    fact: str
    value: Any
    unit: str | None
    observed: date | None
    source: str

    @classmethod
    def of(cls, fv: FactValue) -> Evidence:
        return cls(fv.name, json_value(fv.value), fv.unit, fv.observed, fv.source)

    def to_json(self) -> dict[str, Any]:
        return {"fact": self.fact, "value": self.value, "unit": self.unit,
                "observed": self.observed.isoformat() if self.observed else None,
                "source": self.source}


@dataclass(frozen=True)
class Missing:
    fact: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"fact": self.fact, "reason": self.reason}


@dataclass(frozen=True)
class CriterionResult:
    id: str
    kind: str
    text: str
    rule: str
    outcome: Outcome
    evidence: tuple[Evidence, ...]
    missing: tuple[Missing, ...]
    attestation: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "text": self.text, "rule": self.rule,
                "outcome": self.outcome.value, "attestation": self.attestation,
                "evidence": [e.to_json() for e in self.evidence],
                "missing": [m.to_json() for m in self.missing]}


@dataclass(frozen=True)
class ArmResult:
    id: str
    label: str
    rule: str | None
    randomisation: str | None
    outcome: Outcome | None
    missing: tuple[Missing, ...] = ()  # the facts that leave the assignment rule unknown

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "rule": self.rule,
                "randomisation": self.randomisation,
                "outcome": self.outcome.value if self.outcome else None,
                "missing": [m.to_json() for m in self.missing]}


@dataclass(frozen=True)
class ScreeningResult:
    trial_id: str
    protocol_version: str
    patient_id: str
    as_of: datetime
    verdict: Verdict
    arm: str | None
    arm_note: str
    criteria: tuple[CriterionResult, ...]
    arms: tuple[ArmResult, ...]

    @property
    def missing_facts(self) -> list[str]:
        """Facts whose absence leaves a criterion unknown (what would resolve it)."""
        return _facts_of_missing(c.missing for c in self.criteria if c.outcome is Outcome.UNKNOWN)

    @property
    def arm_missing_facts(self) -> list[str]:
        """Facts whose absence leaves the arm undetermined (what the assignment rules need)."""
        return _facts_of_missing(a.missing for a in self.arms)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "trial_id": self.trial_id,
            "protocol_version": self.protocol_version,
            "patient_id": self.patient_id,
            "as_of": self.as_of.isoformat(),
            "verdict": self.verdict.value,
            "arm": self.arm,
            "arm_note": self.arm_note,
            "missing_facts": self.missing_facts,
            "arm_missing_facts": self.arm_missing_facts,
            "criteria": [c.to_json() for c in self.criteria],
            "arms": [a.to_json() for a in self.arms],
        }


def _facts_of_missing(groups: Iterable[tuple[Missing, ...]]) -> list[str]:
    return list(dict.fromkeys(m.fact for group in groups for m in group))


def _explain(names: list[str], facts: FactSet, outcome: Outcome
             ) -> tuple[tuple[Evidence, ...], tuple[Missing, ...]]:
    evidence = tuple(Evidence.of(facts[n]) for n in names if n in facts)
    missing = tuple(Missing(n, facts.why_missing(n)) for n in names if n not in facts) \
        if outcome is Outcome.UNKNOWN else ()
    return evidence, missing


def verdict_of(outcomes: list[tuple[str, Outcome]]) -> Verdict:
    """Combine criterion outcomes ("inclusion"/"exclusion", outcome) into a verdict."""
    if any((k == "inclusion" and o is Outcome.NOT_MET) or (k == "exclusion" and o is Outcome.MET)
           for k, o in outcomes):
        return Verdict.INELIGIBLE
    if all((k == "inclusion" and o is Outcome.MET) or (k == "exclusion" and o is Outcome.NOT_MET)
           for k, o in outcomes):
        return Verdict.ELIGIBLE
    return Verdict.UNDETERMINED


def require_reviewed(compiled: CompiledProtocol) -> None:
    """Refuse a draft protocol: imported criteria screen only after a person reviewed them."""
    pending = compiled.protocol.unreviewed
    if pending:
        shown = ", ".join(pending[:5]) + (f" and {len(pending) - 5} more" if len(pending) > 5 else "")
        raise ProtocolError(
            f"is a draft and cannot screen: {len(pending)} criteria not reviewed ({shown}); "
            "an investigator must accept, edit or reject each draft first",
            where=f"trial {compiled.id}")


def screen(compiled: CompiledProtocol, facts: FactSet, *, patient_id: str) -> ScreeningResult:
    """Screen ``facts`` against ``compiled``; every criterion keeps its evidence."""
    require_reviewed(compiled)
    protocol = compiled.protocol
    results: list[CriterionResult] = []
    for kind, criterion in protocol.criteria:
        expr = compiled.rules[criterion.id]
        outcome = Outcome.of(evaluate(expr, facts))
        evidence, missing = _explain(facts_of(expr), facts, outcome)
        results.append(CriterionResult(
            criterion.id, kind, criterion.text, to_text(expr), outcome, evidence, missing,
            attestation=criterion.attest is not None,
        ))
    verdict = verdict_of([(r.kind, r.outcome) for r in results])

    arms: list[ArmResult] = []
    for arm_def in protocol.arms:
        rule = compiled.arm_rules.get(arm_def.id)
        arm_outcome = Outcome.of(evaluate(rule, facts)) if rule is not None else None
        arm_missing = _explain(facts_of(rule), facts, arm_outcome)[1] if rule and arm_outcome else ()
        arms.append(ArmResult(arm_def.id, arm_def.label, to_text(rule) if rule else None,
                              arm_def.assignment.randomisation, arm_outcome, arm_missing))
    arm, note = _arm(verdict, arms)
    return ScreeningResult(protocol.id, protocol.version, patient_id, facts.as_of, verdict,
                           arm, note, tuple(results), tuple(arms))


def _arm(verdict: Verdict, arms: list[ArmResult]) -> tuple[str | None, str]:
    if verdict is Verdict.INELIGIBLE:
        return None, "not eligible"
    randomised = sorted({a.randomisation for a in arms if a.randomisation})
    if randomised:
        return None, f"by randomisation ({', '.join(randomised)}) at enrolment"
    met = [a.id for a in arms if a.outcome is Outcome.MET]
    if len(met) == 1:
        if verdict is Verdict.UNDETERMINED:
            return met[0], f"arm {met[0]} if eligible, by the protocol's assignment rule"
        return met[0], f"arm {met[0]} by the protocol's assignment rule"
    if len(met) > 1:
        return None, f"assignment rules overlap: arms {', '.join(met)} all apply"
    if any(a.outcome is Outcome.UNKNOWN for a in arms):
        needed = _facts_of_missing(a.missing for a in arms if a.outcome is Outcome.UNKNOWN)
        return None, f"arm undetermined: data missing for the assignment rule ({', '.join(needed)})"
    return None, "no arm's assignment rule applies"


def screen_record(compiled: CompiledProtocol, record: PatientRecord, *,
                  as_of: datetime) -> ScreeningResult:
    """Normalise ``record`` for ``compiled`` at ``as_of`` and screen it."""
    require_reviewed(compiled)
    gd2 = compiled.protocol.biomarkers.gd2
    course = compiled.protocol.disease_course
    facts = normalise(record, trial_id=compiled.id, lookback=compiled.protocol.eligibility.lookback,
                      as_of=as_of, gd2=gd2.threshold() if gd2 else None,
                      course=course.rules() if course else None)
    return screen(compiled, facts, patient_id=record.patient_id)
