"""Enrolment: a consented, screened patient enters the trial, with the screening frozen.

:func:`enrol` freezes the :class:`~trialdesk.criteria.verdict.ScreeningResult` it is based
on (the verdict and every criterion's evidence, as the stable JSON document of
``docs/screening-json.md``, sealed by a SHA-256 digest) and assigns the arm by the
protocol's rule (NB-NK-2026: refractory → A, relapsed/progressive → B). An ineligible or
undetermined patient is refused unless an investigator records an explicit, reasoned
:class:`Override`; the override is kept with the enrolment and shown wherever it is.
Randomised trials (RuMCeSS) leave the arm to :func:`allocate`, which reveals one entry of
the sealed allocation list (:mod:`trialdesk.enrolment.allocation`) to an enrolled patient.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from trialdesk.criteria.verdict import Outcome, ScreeningResult, Verdict
from trialdesk.enrolment.allocation import Allocation, Allocator, verify_allocations
from trialdesk.enrolment.consent import ConsentRecord
from trialdesk.enrolment.randomisation import AllocationList, RandomisationScheme
from trialdesk.errors import EnrolmentError, ScheduleError
from trialdesk.facts.model import FactSet
from trialdesk.protocol.model import Protocol, Randomisation, TimedStep
from trialdesk.schedule.plan import resolve_optional, resolve_variants

__all__ = [
    "Enrolment",
    "FrozenScreening",
    "Override",
    "allocate",
    "complete_factors",
    "enrol",
    "factors_from_facts",
    "randomisation_of",
    "scheme_of",
]


class FrozenScreening(BaseModel):
    """The screening an enrolment was based on, exactly as it was, with its digest."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    document: dict[str, Any]
    digest: str

    @classmethod
    def of(cls, result: ScreeningResult) -> FrozenScreening:
        document = result.to_json()
        return cls(document=document, digest=_digest(document))

    @property
    def intact(self) -> bool:
        """True while the document is the one that was frozen."""
        return _digest(self.document) == self.digest

    @property
    def verdict(self) -> str:
        return str(self.document["verdict"])

    @property
    def as_of(self) -> datetime:
        return datetime.fromisoformat(self.document["as_of"])


def _digest(document: Mapping[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class Override(BaseModel):
    """An investigator's explicit decision to enrol despite the screening verdict."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    investigator: str
    reason: str
    arm: str | None = None  # only when the protocol's rule cannot assign one

    def shown(self, verdict: str) -> str:
        arm = f"; arm {self.arm} chosen by the investigator" if self.arm else ""
        return f"ENROLLED BY OVERRIDE of a {verdict} screening: {self.investigator}: {self.reason}{arm}"


class Enrolment(BaseModel):
    """A patient's enrolment in one trial."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    trial_id: str
    protocol_version: str
    patient_id: str
    enrolled_at: datetime
    enrolled_by: str
    consent_version: str
    consent_signed_on: date
    screening: FrozenScreening
    arm: str | None
    arm_basis: str  # "rule", "randomisation" or "override"
    randomisation: str | None = None
    override: Override | None = None
    variants: dict[str, str] = {}
    optional: tuple[str, ...] = ()
    anchors: dict[str, datetime] = {}

    @property
    def verdict(self) -> str:
        return self.screening.verdict

    def shown(self) -> list[str]:
        """Lines that say how the patient was enrolled (the override first, never hidden)."""
        lines = []
        if self.override is not None:
            lines.append(self.override.shown(self.verdict))
        how = {"rule": "by the protocol's assignment rule",
               "randomisation": f"by randomisation {self.randomisation}",
               "override": "by the investigator's override"}[self.arm_basis]
        arm = f"arm {self.arm} {how}" if self.arm else f"arm {how}"
        lines.append(
            f"enrolled {self.enrolled_at.isoformat(sep=' ', timespec='minutes')} by "
            f"{self.enrolled_by}; screening {self.verdict} as of "
            f"{self.screening.as_of.isoformat(sep=' ', timespec='minutes')} "
            f"(sha256 {self.screening.digest[:12]}); {arm}; "
            f"consent v{self.consent_version} signed {self.consent_signed_on.isoformat()}")
        return lines


def randomisation_of(protocol: Protocol) -> Randomisation | None:
    """The protocol's randomisation, if its arms are randomised (one list per trial)."""
    refs = {a.assignment.randomisation for a in protocol.arms if a.assignment.randomisation}
    if not refs:
        return None
    if len(refs) > 1:
        raise EnrolmentError(f"arms refer to several randomisations ({', '.join(sorted(refs))}); "
                             "one is supported per trial", where=f"protocol {protocol.id}")
    ref = refs.pop()
    return next(r for r in protocol.randomisations if r.id == ref)


def scheme_of(protocol: Protocol) -> RandomisationScheme:
    """The protocol's ``randomisations`` entry as a :class:`RandomisationScheme`.

    >>> from trialdesk.protocol.load import load_protocol, default_protocol_dir
    >>> s = scheme_of(load_protocol(default_protocol_dir() / "rumcess.yaml").protocol)
    >>> s.arms, s.block_sizes, s.strata
    ({'MSC': 1, 'SOC': 1}, (2, 4), {'site': ('NRCH',)})
    """
    r = randomisation_of(protocol)
    if r is None:
        raise EnrolmentError("arms are assigned by rule, not by randomisation",
                             where=f"protocol {protocol.id}")
    data: dict[str, Any] = {"id": r.id, "arms": dict(r.ratio), "method": r.method}
    if r.method == "permuted_blocks":
        data |= {"block_sizes": tuple(r.block_sizes),
                 "strata": {k: tuple(v) for k, v in r.strata.items()}}
    else:
        data |= {"factors": {k: tuple(v) for k, v in r.factors.items()},
                 "factor_weights": dict(r.factor_weights), "imbalance": r.imbalance,
                 "preferred_probability": r.preferred_probability}
    return RandomisationScheme.model_validate(data)


def complete_factors(scheme: RandomisationScheme, given: Mapping[str, str]) -> dict[str, str]:
    """The given factor levels, plus every factor that has a single level.

    >>> from trialdesk.enrolment.randomisation import RandomisationScheme
    >>> s = RandomisationScheme(id="x", arms={"A": 1, "B": 1}, method="permuted_blocks",
    ...     block_sizes=(2,), strata={"site": ("NRCH",)})
    >>> complete_factors(s, {})
    {'site': 'NRCH'}
    """
    out = dict(given)
    for name, levels in scheme.balancing_factors.items():
        if name not in out and len(levels) == 1:
            out[name] = levels[0]
    return out


def factors_from_facts(scheme: RandomisationScheme, facts: FactSet,
                       given: Mapping[str, str] | None = None) -> dict[str, str]:
    """Factor levels read from the patient's facts where a factor is named after a fact
    (a biomarker such as ``fcgr3a_genotype``), on top of ``given`` (site, ...).

    A fact that is unknown is refused with the reason: a stratum is never guessed.

    >>> from datetime import datetime
    >>> from trialdesk.facts.model import FactValue
    >>> s = RandomisationScheme(id="x", arms={"A": 1, "B": 1}, method="permuted_blocks",
    ...     block_sizes=(2,), strata={"fcgr3a_genotype": ("V/V", "V/F", "F/F")})
    >>> facts = FactSet(datetime(2026, 1, 1), {"fcgr3a_genotype": FactValue(
    ...     "fcgr3a_genotype", "V/F")})
    >>> factors_from_facts(s, facts)
    {'fcgr3a_genotype': 'V/F'}
    """
    from trialdesk.facts.dictionary import FACTS

    out = dict(given or {})
    for name in scheme.balancing_factors:
        if name in out or name not in FACTS:
            continue
        if name not in facts:
            raise EnrolmentError(f"{FACTS[name].description} is unknown ({facts.why_missing(name)})"
                                 ": record it before randomising", where=f"strata.{name}")
        out[name] = str(facts[name].value)
    return complete_factors(scheme, out)


def enrol(
    protocol: Protocol,
    screening: ScreeningResult,
    consent: ConsentRecord | None,
    *,
    enrolled_at: datetime,
    enrolled_by: str,
    override: Override | None = None,
    variants: Mapping[str, str] | None = None,
    optional: Sequence[str] = (),
    anchors: Mapping[str, datetime] | None = None,
) -> Enrolment:
    """Enrol a screened, consented patient (see the module docstring).

    Refused with an :class:`~trialdesk.errors.EnrolmentError` naming the field: a
    screening of another trial, version or patient, or from after the enrolment; no
    consent, or consent of another trial or patient, or signed after the enrolment; an
    ineligible or undetermined screening without an override; an override of an eligible
    screening, or one without investigator or reason; no arm by the rule and none chosen
    in the override; an override arm that is randomised, unknown or against the rule.
    """
    if not enrolled_by.strip():
        raise EnrolmentError("must name who enrols", where="enrolment.enrolled_by")
    if screening.trial_id != protocol.id or screening.protocol_version != protocol.version:
        raise EnrolmentError(
            f"the screening is for {screening.trial_id} v{screening.protocol_version}, not "
            f"{protocol.id} v{protocol.version}", where="enrolment.screening")
    if screening.as_of > enrolled_at:
        raise EnrolmentError("the screening is dated after the enrolment",
                             where="enrolment.screening")
    if consent is None:
        raise EnrolmentError("no consent recorded; record the signed consent first",
                             where="enrolment.consent")
    if consent.trial_id != protocol.id or consent.patient_id != screening.patient_id:
        raise EnrolmentError(f"the consent is for {consent.patient_id} in {consent.trial_id}",
                             where="enrolment.consent")
    if consent.signed_on > enrolled_at.date():
        raise EnrolmentError(f"consent signed {consent.signed_on.isoformat()}, after the "
                             "enrolment", where="enrolment.consent")
    verdict = screening.verdict
    if verdict is Verdict.ELIGIBLE:
        if override is not None:
            raise EnrolmentError("the patient is eligible; an override is not needed",
                                 where="enrolment.override")
    else:
        if override is None:
            missing = ", ".join(screening.missing_facts)
            why = f"; missing: {missing}" if verdict is Verdict.UNDETERMINED and missing else ""
            raise EnrolmentError(
                f"the screening verdict is {verdict.value}{why}; enrolment needs an "
                "investigator's override with a reason", where="enrolment.screening")
        if not override.investigator.strip() or not override.reason.strip():
            raise EnrolmentError("an override names the investigator and gives the reason",
                                 where="enrolment.override")
    randomisation = randomisation_of(protocol)
    # The arm rules are evaluated whatever the verdict (an override keeps the rule's arm).
    met = [a.id for a in screening.arms if a.outcome is Outcome.MET]
    arm, basis = (met[0] if len(met) == 1 else None), "rule"
    if randomisation is not None:
        arm, basis = None, "randomisation"
        if override is not None and override.arm is not None:
            raise EnrolmentError("arms are randomised; an override cannot choose one",
                                 where="enrolment.override.arm")
    elif arm is None:
        if override is None or override.arm is None:
            raise EnrolmentError(f"no arm: {screening.arm_note}", where="enrolment.arm")
        if override.arm not in {a.id for a in protocol.arms}:
            raise EnrolmentError(f"no arm '{override.arm}'; arms: "
                                 f"{', '.join(a.id for a in protocol.arms)}",
                                 where="enrolment.override.arm")
        arm, basis = override.arm, "override"
    elif override is not None and override.arm not in (None, arm):
        raise EnrolmentError(f"the protocol's rule assigns arm {arm}; an override cannot change "
                             "it", where="enrolment.override.arm")
    anchor_names = {s.anchor for a in protocol.arms for s in a.plan if isinstance(s, TimedStep)}
    for name in anchors or {}:
        if name not in anchor_names:
            raise EnrolmentError(f"the protocol times nothing from '{name}'; anchors: "
                                 f"{', '.join(sorted(anchor_names)) or 'none'}",
                                 where=f"enrolment.anchors.{name}")
    try:
        chosen = resolve_variants(protocol, variants)
        included = resolve_optional(protocol, optional)
    except ScheduleError as exc:
        raise EnrolmentError(exc.reason, where=f"enrolment.{exc.where}") from None
    return Enrolment(
        trial_id=protocol.id, protocol_version=protocol.version,
        patient_id=screening.patient_id, enrolled_at=enrolled_at,
        enrolled_by=enrolled_by.strip(), consent_version=consent.version,
        consent_signed_on=consent.signed_on, screening=FrozenScreening.of(screening),
        arm=arm, arm_basis=basis, randomisation=randomisation.id if randomisation else None,
        override=override, variants=chosen, optional=included, anchors=dict(anchors or {}))


def allocate(
    allocation_list: AllocationList,
    log: Sequence[Allocation],
    *,
    patient_id: str,
    factors: Mapping[str, str],
    enrolled: bool,
    at: datetime,
) -> Allocation:
    """Randomise one enrolled patient from the sealed list, after checking the log.

    The allocations made so far must match the list (:func:`verify_allocations`); the
    allocator's state is rebuilt by replaying them, and the next entry is revealed to
    this patient only. Nothing about later entries leaves this function.
    """
    report = verify_allocations(allocation_list, log)
    if not report.ok:
        raise EnrolmentError(
            f"the allocation log does not match the list ({len(report.discrepancies)} "
            "problem(s)); run 'trialdesk randomisation verify' before randomising",
            where=f"allocation list {allocation_list.digest[:12]}")
    allocator = Allocator(allocation_list)
    state = allocator.start()
    for rec in log:
        _, state = allocator.next_allocation(state, rec.patient_id, rec.factors, enrolled=True,
                                             at=rec.allocated_at)
    allocation, _ = allocator.next_allocation(
        state, patient_id, complete_factors(allocation_list.scheme, factors),
        enrolled=enrolled, at=at)
    return allocation
