"""The protocol model (pydantic v2).

A protocol file has four parts:

* ``registry`` — the trial as a registry shows it, mirroring the ClinicalTrials.gov
  API v2 modules (identification, status, sponsor, description, conditions, design,
  arms and interventions, eligibility, outcomes, contacts and locations);
* ``eligibility`` — inclusion and exclusion criteria, each with its original text and a
  computable rule in the criteria language, or an attestation the investigator answers;
* ``arms`` — each with an assignment rule or a randomisation reference, and its plan of
  courses and procedures;
* ``courses`` — the regimen: course length, administrations (agent, dose and dose basis,
  route, days, infusion), procedures and assessments.

Every clinical number outside the criteria text is a :class:`Param` naming its source;
one whose value is not in the seed documents and not confirmed from a primary source
is ``unconfirmed: true`` and trialdesk shows that mark wherever it is used.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trialdesk.facts.biomarkers import Gd2Threshold
from trialdesk.facts.course import CourseRules
from trialdesk.facts.dictionary import Attestation, FactDictionary, with_attestations
from trialdesk.safety.rules import ToxicityRule
from trialdesk.safety.stopping import StoppingRule


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# ---------------------------------------------------------------------------
# Sourced parameters


class Param(_Model):
    """A clinical number with its source."""

    value: float | int | str | None = None
    unit: str | None = None
    source: str
    unconfirmed: bool = False
    note: str | None = None

    def shown(self) -> str:
        v = "not set" if self.value is None else f"{self.value:g}" if isinstance(
            self.value, (int, float)) else str(self.value)
        text = f"{v} {self.unit}" if self.unit and self.value is not None else v
        return f"{text} [unconfirmed]" if self.unconfirmed else text


# ---------------------------------------------------------------------------
# Registry metadata (ClinicalTrials.gov API v2 module names)


class Organisation(_Model):
    name: str
    org_class: str | None = Field(default=None, alias="class")


class SecondaryId(_Model):
    id: str
    type: str | None = None
    domain: str | None = None
    link: str | None = None


class Identification(_Model):
    nct_id: str | None = None
    org_study_id: str | None = None
    secondary_ids: list[str] = []
    secondary_id_infos: list[SecondaryId] = []
    organization: Organisation | None = None
    acronym: str | None = None
    brief_title: str
    official_title: str | None = None


# A registry date: "YYYY-MM" or "YYYY-MM-DD", as ClinicalTrials.gov gives it (day optional).
RegistryDate = Annotated[str, Field(pattern=r"^\d{4}-\d{2}(-\d{2})?$")]
DateType = Literal["ACTUAL", "ESTIMATED"]


class Status(_Model):
    overall_status: Literal[
        "NOT_YET_RECRUITING", "RECRUITING", "ENROLLING_BY_INVITATION", "ACTIVE_NOT_RECRUITING",
        "COMPLETED", "SUSPENDED", "TERMINATED", "WITHDRAWN", "UNKNOWN", "AVAILABLE",
        "NO_LONGER_AVAILABLE", "TEMPORARILY_NOT_AVAILABLE", "APPROVED_FOR_MARKETING", "WITHHELD",
    ]
    display_status: str | None = None
    last_known_status: str | None = None
    why_stopped: str | None = None
    status_verified_date: RegistryDate | None = None
    start_date: RegistryDate | None = None
    start_date_type: DateType | None = None
    primary_completion_date: RegistryDate | None = None
    primary_completion_date_type: DateType | None = None
    completion_date: RegistryDate | None = None
    completion_date_type: DateType | None = None
    first_submitted: RegistryDate | None = None
    first_posted: RegistryDate | None = None
    last_update_posted: RegistryDate | None = None


class ResponsibleParty(_Model):
    type: str | None = None
    investigator_full_name: str | None = None
    investigator_title: str | None = None
    investigator_affiliation: str | None = None


class Sponsor(_Model):
    lead_sponsor: Organisation
    collaborators: list[Organisation] = []
    responsible_party: ResponsibleParty | None = None
    funder_type: str | None = None


class Oversight(_Model):
    has_dmc: bool | None = None
    is_fda_regulated_drug: bool | None = None
    is_fda_regulated_device: bool | None = None


class Description(_Model):
    brief_summary: str
    detailed_description: str | None = None


class Enrollment(_Model):
    count: int = Field(ge=0)
    type: Literal["ESTIMATED", "ACTUAL"] = "ESTIMATED"


class Design(_Model):
    study_type: Literal["INTERVENTIONAL", "OBSERVATIONAL", "EXPANDED_ACCESS", "PROGRAM"]
    phases: list[str] = []
    allocation: Literal["RANDOMIZED", "NON_RANDOMIZED", "NA"] = "NA"
    intervention_model: str | None = None
    intervention_model_description: str | None = None
    observational_model: str | None = None
    time_perspective: str | None = None
    masking: str = "NONE"
    masking_description: str | None = None
    who_masked: list[str] = []
    primary_purpose: str | None = None
    enrollment: Enrollment | None = None


class ArmGroup(_Model):
    label: str
    type: str | None = None
    description: str | None = None
    intervention_names: list[str] = []


class Intervention(_Model):
    type: str
    name: str
    description: str | None = None
    arm_group_labels: list[str] = []
    other_names: list[str] = []


class ArmsInterventions(_Model):
    arm_groups: list[ArmGroup] = []
    interventions: list[Intervention] = []


class RegistryEligibility(_Model):
    sex: Literal["ALL", "FEMALE", "MALE"] = "ALL"
    minimum_age: str | None = None
    maximum_age: str | None = None
    healthy_volunteers: bool = False
    # The registry's own text and derived fields, kept as given (registry import).
    criteria_text: str | None = None
    std_ages: list[str] = []
    study_population: str | None = None
    sampling_method: str | None = None


class Outcome(_Model):
    measure: str
    description: str | None = None
    time_frame: str | None = None


class Outcomes(_Model):
    primary: list[Outcome] = []
    secondary: list[Outcome] = []
    other: list[Outcome] = []


class Contact(_Model):
    name: str | None = None
    role: str | None = None
    phone: str | None = None
    email: str | None = None


class Official(_Model):
    name: str
    affiliation: str | None = None
    role: str | None = None


class GeoPoint(_Model):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Location(_Model):
    facility: str | None = None
    status: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None
    geo: GeoPoint | None = None
    contacts: list[Contact] = []


class ContactsLocations(_Model):
    central_contacts: list[Contact] = []
    overall_officials: list[Official] = []
    locations: list[Location] = []
    location_count: int | None = None


class Reference(_Model):
    citation: str
    pmid: str | None = None
    type: str | None = None


class MeshTerm(_Model):
    id: str
    term: str


class MeshTerms(_Model):
    """MeSH terms from the registry's derived section (condition and intervention browse)."""

    conditions: list[MeshTerm] = []
    condition_ancestors: list[MeshTerm] = []
    interventions: list[MeshTerm] = []
    intervention_ancestors: list[MeshTerm] = []


class Registry(_Model):
    identification: Identification
    status: Status
    sponsor: Sponsor
    oversight: Oversight | None = None
    description: Description
    conditions: list[str]
    keywords: list[str] = []
    design: Design
    arms_interventions: ArmsInterventions = ArmsInterventions()
    eligibility: RegistryEligibility = RegistryEligibility()
    outcomes: Outcomes = Outcomes()
    contacts_locations: ContactsLocations = ContactsLocations()
    references: list[Reference] = []
    mesh: MeshTerms | None = None
    source: str


# ---------------------------------------------------------------------------
# Eligibility


class Draft(_Model):
    """What the rule extractor proposed for a criterion (:mod:`trialdesk.registry.extract`).

    ``rule`` is None when nothing computable was found: the criterion is then an
    investigator question with its original text.
    """

    rule: str | None = None
    span: str | None = None
    facts: list[str] = []
    unit: str | None = None
    confidence: float = Field(default=0.0, ge=0, le=1)
    method: str | None = None


class Review(_Model):
    """A criterion's review: ``draft`` until a person accepts, edits or rejects it.

    ``edited`` means the rule (or question) now on the criterion is the reviewer's;
    ``rejected`` means the draft rule was set aside and the criterion is a question.
    """

    state: Literal["draft", "accepted", "edited", "rejected"] = "draft"
    by: str | None = None
    at: datetime | None = None
    draft: Draft | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _signed(self) -> Review:
        if self.state != "draft" and (not self.by or self.at is None):
            raise ValueError(f"a review '{self.state}' needs who ('by') and when ('at')")
        return self


class Criterion(_Model):
    """One criterion: the original text, and a rule or an attestation question.

    A criterion that cannot be computed from data becomes an attestation: the
    investigator answers the ``attest`` question yes or no, and the rule is that answer.
    A criterion with a ``review`` came from a registry import; one without was written
    into the protocol by hand and is reviewed with it.
    """

    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")
    text: str
    rule: str | None = None
    attest: str | None = None
    note: str | None = None
    review: Review | None = None

    @property
    def unreviewed(self) -> bool:
        return self.review is not None and self.review.state == "draft"

    @model_validator(mode="after")
    def _rule_or_attest(self) -> Criterion:
        if (self.rule is None) == (self.attest is None):
            raise ValueError("give exactly one of 'rule' or 'attest'")
        return self

    @property
    def attestation(self) -> Attestation | None:
        if self.attest is None:
            return None
        return Attestation(self.id.lower().replace("-", "_").replace(".", "_"), self.attest)

    @property
    def expression(self) -> str:
        """The rule in the criteria language (an attestation is its own fact)."""
        if self.rule is not None:
            return self.rule
        attestation = self.attestation
        assert attestation is not None  # by the validator above
        return attestation.fact_name


class LookBack(_Model):
    """How old a dated fact may be and still count (older counts as missing)."""

    default_days: int = Field(ge=0)
    by_kind: dict[str, int] = {}
    by_fact: dict[str, int] = {}
    source: str
    unconfirmed: bool = False

    def days_for(self, fact: str, kind: str) -> int:
        return self.by_fact.get(fact, self.by_kind.get(kind, self.default_days))


class Eligibility(_Model):
    source: str
    lookback: LookBack
    inclusion: list[Criterion]
    exclusion: list[Criterion] = []
    attestations: list[Attestation] = []


# ---------------------------------------------------------------------------
# Regimen


class DoseBasis(StrEnum):
    FIXED = "fixed"
    PER_M2 = "per_m2"
    PER_KG = "per_kg"


class Dose(_Model):
    """A dose: ``amount`` (optionally up to ``amount_max``) in ``unit`` per ``basis``.

    ``unit`` is mg, µg, IU or cells; the basis makes mg/m², mg/kg, IU/m², cells/kg.
    """

    amount: float | None = Field(default=None, gt=0)
    amount_max: float | None = Field(default=None, gt=0)
    unit: Literal["mg", "ug", "g", "IU", "cells", "mL"]
    basis: DoseBasis
    per: Literal["day", "administration", "course"] = "day"
    cap: float | None = Field(default=None, gt=0)
    # A daily amount given in this many equal doses (e.g. 2 for twice a day); rounding
    # to capsule strengths applies to each of them.
    divided_into: int = Field(default=1, ge=1)
    source: str
    unconfirmed: bool = False
    note: str | None = None

    def shown(self) -> str:
        per_basis = {"fixed": "", "per_m2": "/m²", "per_kg": "/kg"}[self.basis.value]
        if self.amount is None:
            text = f"not set ({self.unit}{per_basis})"
        else:
            amount = f"{self.amount:g}" + (f"–{self.amount_max:g}" if self.amount_max else "")
            text = f"{amount} {self.unit}{per_basis}/{self.per}"
        if self.cap:
            text += f" (max {self.cap:g} {self.unit})"
        return f"{text} [unconfirmed]" if self.unconfirmed else text


class Infusion(_Model):
    kind: Literal["bolus", "short", "continuous", "subcutaneous", "oral"] = "short"
    duration_hours: float | None = Field(default=None, gt=0)


class Administration(_Model):
    agent: str
    dose: Dose
    route: Literal["IV", "SC", "PO", "IM", "IT"]
    days: list[int]
    infusion: Infusion | None = None
    variant: str | None = None  # only given when the protocol's chosen variant matches
    optional: bool = False
    window_days: int = Field(default=0, ge=0)  # allowed days either side of the planned day
    note: str | None = None

    @model_validator(mode="after")
    def _days(self) -> Administration:
        if not self.days:
            raise ValueError("an administration needs at least one day")
        if sorted(set(self.days)) != self.days:
            raise ValueError("days must be increasing without repeats")
        return self


class Procedure(_Model):
    name: str
    day: int
    window_days: int = 0
    source: str | None = None
    note: str | None = None


class Assessment(_Model):
    name: str
    criteria: str | None = None  # e.g. "INRC 2017", "RECIST 1.1"
    day: int | None = None
    every_courses: int | None = Field(default=None, ge=1)  # on the last day of every n-th course
    window_days: int = Field(default=0, ge=0)
    source: str | None = None
    unconfirmed: bool = False


class Course(_Model):
    id: str
    name: str
    length_days: Param
    administrations: list[Administration] = []
    procedures: list[Procedure] = []
    admission: bool = False
    note: str | None = None


class CourseStep(_Model):
    course: str
    repeats: int = Field(default=1, ge=1)
    condition: str | None = None  # e.g. "no disease progression": a decision point before it
    window_days: int = Field(default=0, ge=0)  # allowed days either side of each course start


class ProcedureStep(_Model):
    procedure: Procedure


class TimedStep(_Model):
    """An event timed in hours from a clinical anchor (e.g. septic shock onset)."""

    timed: str
    anchor: str
    within_hours: Param
    administration: Administration | None = None


class MilestoneStep(_Model):
    milestone: str
    from_day: int
    to_day: int | None = None
    source: str | None = None


PlanStep = CourseStep | ProcedureStep | TimedStep | MilestoneStep


class Sampling(_Model):
    """A sampling schedule: what is measured, when, and in which specimen or tube.

    When: on study ``days``; ``before_courses`` (course day 1 of every course with one of
    these ids, before its first administration); ``before`` a timed step of the arm (RuMCeSS: before the MSC
    infusion, on the day of its anchor); ``at_event`` (``progression``: not dated, taken
    when the event is recorded). Any combination; at least one.
    """

    measurements: list[str] = Field(min_length=1)
    days: list[int] = []
    before_courses: list[str] = []
    before: str | None = None
    at_event: Literal["progression"] | None = None
    specimen: str | None = None  # e.g. serum, EDTA whole blood, arterial blood, bone marrow
    tube: str | None = None  # e.g. SST (gold top), K2-EDTA (lavender top), blood-gas syringe
    window_days: int = Field(default=0, ge=0)
    source: str
    unconfirmed: bool = False

    @model_validator(mode="after")
    def _when(self) -> Sampling:
        if not (self.days or self.before_courses or self.before or self.at_event):
            raise ValueError("say when: days, before_courses, before or at_event")
        return self

    def what(self) -> str:
        """The measurements and the specimen/tube, as the calendar shows them."""
        where = ", ".join(x for x in (self.specimen, self.tube) if x)
        return ", ".join(self.measurements) + (f" ({where})" if where else "")


class Assignment(_Model):
    rule: str | None = None
    randomisation: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Assignment:
        if (self.rule is None) == (self.randomisation is None):
            raise ValueError("give exactly one of 'rule' or 'randomisation'")
        return self


class Arm(_Model):
    id: str
    label: str
    type: str = "EXPERIMENTAL"
    description: str | None = None
    assignment: Assignment
    plan: list[PlanStep] = []
    assessments: list[Assessment] = []
    sampling: list[Sampling] = []


class Randomisation(_Model):
    id: str
    ratio: dict[str, int]
    method: Literal["permuted_blocks", "minimisation"] = "permuted_blocks"
    block_sizes: list[int] = []
    strata: dict[str, list[str]] = {}
    # Minimisation (Pocock & Simon 1975); see trialdesk.enrolment.randomisation.
    factors: dict[str, list[str]] = {}
    factor_weights: dict[str, float] = {}
    imbalance: Literal["range", "variance"] | None = None
    preferred_probability: float | None = None
    source: str
    unconfirmed: bool = False


class Variant(_Model):
    choices: list[str]
    default: str
    source: str


class SmallChildRule(_Model):
    """At a low body weight a per-m² dose is given per kg instead (FACTS.md §1g).

    ``mode: divide`` converts: mg/kg = (mg/m²) ÷ ``divisor``; ``mode: per_kg`` replaces the
    per-m² dose by ``amount_per_kg`` (in the dose's unit per kg, same ``per``). The rule
    applies below ``weight_cutoff`` kg, or at and below it with ``at_or_below``; to the
    per-m² doses of ``agents`` (every per-m² dose when empty). Cut-off, divisor and
    amount are the protocol's, each with its source.
    """

    agents: list[str] = []
    weight_cutoff: Param
    at_or_below: bool = False
    mode: Literal["divide", "per_kg"] = "divide"
    divisor: Param | None = None
    amount_per_kg: Param | None = None
    source: str
    unconfirmed: bool = False
    note: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> SmallChildRule:
        for name in ("weight_cutoff", "divisor", "amount_per_kg"):
            param = getattr(self, name)
            if param is not None and not (
                isinstance(param.value, (int, float)) and param.value > 0
            ):
                raise ValueError(f"{name} must have a number above 0 as its value")
        if self.mode == "divide" and (self.divisor is None or self.amount_per_kg is not None):
            raise ValueError("mode 'divide' needs a divisor and no amount_per_kg")
        if self.mode == "per_kg" and (self.amount_per_kg is None or self.divisor is not None):
            raise ValueError("mode 'per_kg' needs amount_per_kg and no divisor")
        return self


class RoundingRule(_Model):
    """How a computed dose is rounded: to a ``step`` (0.1 mg) or to whole units of
    ``strengths`` (capsules of 5, 20 and 100 mg); to the nearest amount (a tie rounds
    up) or ``down``. Applies to ``agents`` (every agent no other rule names when empty).
    """

    agents: list[str] = []
    step: float | None = Field(default=None, gt=0)
    strengths: list[float] = []
    direction: Literal["nearest", "down"] = "nearest"
    source: str
    unconfirmed: bool = False

    @model_validator(mode="after")
    def _one(self) -> RoundingRule:
        if (self.step is None) == (not self.strengths):
            raise ValueError("give exactly one of 'step' or 'strengths'")
        if any(s <= 0 for s in self.strengths):
            raise ValueError("strengths must be above 0")
        return self


# Default for recomputing doses after a weight change: "more than 10% of initial weight"
# (Alex's Lemonade Stand Foundation, Childhood Cancer guide, ch. 15 "Dosages"). A parents'
# guide, not a guideline: unconfirmed. Each protocol sets its own.
_WEIGHT_CHANGE_DEFAULT = Param(
    value=10, unit="%",
    source="default: Alex's Lemonade Stand Foundation, Childhood Cancer guide, ch. 15 "
           "'Dosages' (recalculate when weight changes by more than 10%)",
    unconfirmed=True,
)


class Dosing(_Model):
    """How doses are computed from body size (used by :mod:`trialdesk.schedule`)."""

    small_child: list[SmallChildRule] = []
    rounding: list[RoundingRule] = []
    weight_change_percent: Param = _WEIGHT_CHANGE_DEFAULT
    bsa_places: int = Field(default=2, ge=0, le=4)  # BSA is rounded to this many decimals
    source: str | None = None


class ConsentRules(_Model):
    """Who signs: below ``adult_age_years`` a parent, guardian or legal representative;
    from ``assent_from_age_years`` (when set) a minor's assent is also required."""

    adult_age_years: Param
    assent_from_age_years: Param | None = None
    source: str | None = None


# ---------------------------------------------------------------------------
# Cell products (trialdesk.cellproduct)


class SpecLimit(_Model):
    """A cell-product limit: at least ``minimum`` and/or at most ``maximum`` in ``unit``, or,
    for a qualitative test, the ``expected`` result; with its source. A limit with none of
    them is *not set*: what it is checked against is unknown, and nothing passes it.
    """

    minimum: float | None = Field(default=None, ge=0)
    maximum: float | None = Field(default=None, ge=0)
    unit: str | None = None
    expected: str | None = None
    source: str
    unconfirmed: bool = False
    note: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> SpecLimit:
        if self.expected is not None and (self.minimum is not None or self.maximum is not None):
            raise ValueError("give either an expected result or a minimum/maximum, not both")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError("minimum is above maximum")
        return self

    @property
    def is_set(self) -> bool:
        return self.minimum is not None or self.maximum is not None or self.expected is not None

    def shown(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.expected is not None:
            text = self.expected
        elif self.minimum is not None and self.maximum is not None:
            text = f"{self.minimum:g}–{self.maximum:g}{unit}"
        elif self.minimum is not None:
            text = f"≥ {self.minimum:g}{unit}"
        elif self.maximum is not None:
            text = f"≤ {self.maximum:g}{unit}"
        else:
            text = f"not set ({self.unit})" if self.unit else "not set"
        return f"{text} [unconfirmed]" if self.unconfirmed else text


class ReleaseTest(_Model):
    """One release test of a cell product against its limit (``per_kg``: the result is
    divided by the recipient's weight before it is compared, e.g. T cells per kg)."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    kind: Literal["viable_cells", "viability", "identity", "purity", "t_cells", "sterility",
                  "endotoxin", "mycoplasma", "other"]
    marker: str | None = None  # e.g. CD56+CD3- for identity and purity
    per_kg: bool = False
    limit: SpecLimit


class ProductSpec(_Model):
    """One product type of the trial's cell product tree, with its release specification.

    ``stage`` places it in the tree (collection → processing → aliquot → dose); ``parent``
    names the product type it is derived from. A ``dose`` is given as the protocol's
    administration ``agent``; ``dose_per_kg`` (viable cells/kg) is checked at the bedside
    against the day's weight; ``shelf_life_hours`` is its expiry from preparation (thaw).
    """

    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    name: str
    stage: Literal["collection", "processing", "aliquot", "dose"]
    parent: str | None = None
    origin: Literal["autologous", "third_party"]
    agent: str | None = None
    dose_per_kg: SpecLimit | None = None
    dose_per_unit: SpecLimit | None = None
    shelf_life_hours: SpecLimit | None = None
    storage: str | None = None
    release_tests: list[ReleaseTest] = []
    source: str
    unconfirmed: bool = False
    note: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> ProductSpec:
        if (self.stage == "collection") != (self.parent is None):
            raise ValueError("a collection has no parent; every other product type names one")
        if (self.stage == "dose") != (self.agent is not None):
            raise ValueError("a dose names the administration agent it is given as; only a dose")
        ids = [t.id for t in self.release_tests]
        if len(set(ids)) != len(ids):
            raise ValueError("release test ids repeated")
        return self
class Gd2Rule(_Model):
    """GD2 positivity as the protocol defines it (see :mod:`trialdesk.facts.biomarkers`)."""

    method: Literal["ihc", "flow_cytometry", "marrow_immunocytology"]
    threshold_percent: Param

    @model_validator(mode="after")
    def _percent(self) -> Gd2Rule:
        v = self.threshold_percent.value
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 100:
            raise ValueError("threshold_percent.value must be a percentage above 0, at most 100")
        return self

    def threshold(self) -> Gd2Threshold:
        return Gd2Threshold(self.method, float(self.threshold_percent.value),  # type: ignore[arg-type]
                            self.threshold_percent.unconfirmed)


class Biomarkers(_Model):
    """Protocol settings for biomarker facts."""

    gd2: Gd2Rule | None = None
class DiseaseCourseRules(_Model):
    """How the protocol reads the disease course (see :mod:`trialdesk.facts.course`):
    the induction cycles that complete induction and the end-of-induction responses that
    make disease refractory."""

    induction_cycles: Param
    poor_response: list[Literal["CR", "VGPR", "PR", "MR", "SD", "PD"]] = Field(min_length=1)
    source: str

    @model_validator(mode="after")
    def _cycles(self) -> DiseaseCourseRules:
        v = self.induction_cycles.value
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 30:
            raise ValueError("induction_cycles.value must be a whole number of cycles, 1 to 30")
        if "PD" in self.poor_response:
            raise ValueError("poor_response: PD is progression, not a poor response")
        return self

    def rules(self) -> CourseRules:
        return CourseRules(int(self.induction_cycles.value),  # type: ignore[arg-type]
                           frozenset(self.poor_response), self.source,
                           self.induction_cycles.unconfirmed)


class DayNumbering(_Model):
    """How the protocol counts study days.

    ``start_is_day: 1`` (the default, the oncology convention): the start is day 1, the day
    before it day −1, there is no day 0. ``start_is_day: 0``: the start (randomisation) is
    day 0 and day N is N days later, as an N-day endpoint counts (RuMCeSS: 28-day mortality);
    the calendar and the outcomes then name the same date "day 28".
    """

    start_is_day: Literal[0, 1] = 1
    source: str | None = None
    unconfirmed: bool = False


class Protocol(_Model):
    """A trial protocol; see the module docstring for its parts."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    version: str
    title: str
    registry: Registry
    eligibility: Eligibility
    arms: list[Arm]
    courses: list[Course] = []
    randomisations: list[Randomisation] = []
    variants: dict[str, Variant] = {}
    parameters: dict[str, Param] = {}
    bsa_formula: Literal["mosteller", "dubois", "haycock", "gehan_george"] = "mosteller"
    day_numbering: DayNumbering = DayNumbering()
    # Dose computation and consent settings (trialdesk.schedule, trialdesk.enrolment).
    dosing: Dosing = Dosing()
    consent: ConsentRules | None = None
    # Safety rules (trialdesk.safety.rules / .stopping): each names its source.
    toxicity_rules: list[ToxicityRule] = []
    stopping_rules: list[StoppingRule] = []
    # Cell products (trialdesk.cellproduct): the product tree and its specifications.
    products: list[ProductSpec] = []
    # Biomarker settings (trialdesk.facts.biomarkers).
    biomarkers: Biomarkers = Biomarkers()
    # How the disease course is read (trialdesk.facts.course).
    disease_course: DiseaseCourseRules | None = None

    @model_validator(mode="after")
    def _references(self) -> Protocol:
        ids = [c.id for c in self.eligibility.inclusion + self.eligibility.exclusion]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"criterion ids repeated: {', '.join(dupes)}")
        arm_ids = [a.id for a in self.arms]
        if len(set(arm_ids)) != len(arm_ids):
            raise ValueError("arm ids repeated")
        courses = {c.id for c in self.courses}
        randomisations = {r.id: r for r in self.randomisations}
        for arm in self.arms:
            timed = {step.timed for step in arm.plan if isinstance(step, TimedStep)}
            for sampling in arm.sampling:
                for course_id in sampling.before_courses:
                    if course_id not in courses:
                        raise ValueError(f"arm {arm.id}: sampling before unknown course "
                                         f"'{course_id}'")
                if sampling.before is not None and sampling.before not in timed:
                    raise ValueError(f"arm {arm.id}: sampling before '{sampling.before}': no "
                                     "timed step of that name in the arm")
            for step in arm.plan:
                if isinstance(step, CourseStep) and step.course not in courses:
                    raise ValueError(f"arm {arm.id}: unknown course '{step.course}'")
            ref = arm.assignment.randomisation
            if ref is not None:
                if ref not in randomisations:
                    raise ValueError(f"arm {arm.id}: unknown randomisation '{ref}'")
                if arm.id not in randomisations[ref].ratio:
                    raise ValueError(f"arm {arm.id}: not in randomisation '{ref}' ratio")
        for name, variant in self.variants.items():
            if variant.default not in variant.choices:
                raise ValueError(f"variant {name}: default not among the choices")
        self._safety_references(courses, set(arm_ids))
        return self

    def _safety_references(self, courses: set[str], arms: set[str]) -> None:
        """Toxicity and stopping rules name courses, agents and arms that exist."""
        agents = self._plan_agents()
        ids = [r.id for r in self.toxicity_rules] + [r.id for r in self.stopping_rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"safety rule ids repeated: {', '.join(dupes)}")
        for rule in self.toxicity_rules:
            for course in rule.courses:
                if course not in courses:
                    raise ValueError(f"toxicity rule {rule.id}: unknown course '{course}'")
            for agent in rule.agents:
                if agent.casefold() not in agents:
                    raise ValueError(f"toxicity rule {rule.id}: '{agent}' is not an agent of any course")
            for product in getattr(rule.when, "product_failure", ()):
                if product not in {p.id for p in self.products}:
                    raise ValueError(f"toxicity rule {rule.id}: '{product}' is not a product "
                                     "type of the protocol's products")
        for stop in self.stopping_rules:
            for agent in stop.agents:
                if agent.casefold() not in agents:
                    raise ValueError(f"stopping rule {stop.id}: '{agent}' is not an agent of any course")
            for arm in stop.arms:
                if arm not in arms:
                    raise ValueError(f"stopping rule {stop.id}: unknown arm '{arm}'")

    @model_validator(mode="after")
    def _dosing_references(self) -> Protocol:
        """Dosing rules name agents that exist; each agent has at most one rounding rule."""
        agents = self._plan_agents()
        seen: set[str] = set()
        for i, rounding in enumerate(self.dosing.rounding):
            names = [a.casefold() for a in rounding.agents] or ["*"]
            for name in names:
                if name != "*" and name not in agents:
                    raise ValueError(f"dosing.rounding[{i}]: '{name}' is not an agent of any course")
                if name in seen:
                    raise ValueError(f"dosing.rounding[{i}]: a second rounding rule for '{name}'")
                seen.add(name)
        for i, rule in enumerate(self.dosing.small_child):
            for name in rule.agents:
                if name.casefold() not in agents:
                    raise ValueError(
                        f"dosing.small_child[{i}]: '{name}' is not an agent of any course")
        return self

    def _plan_agents(self) -> set[str]:
        """Every administration agent of the courses and timed steps, case-folded."""
        agents = {a.agent.casefold() for c in self.courses for a in c.administrations}
        agents |= {s.administration.agent.casefold() for arm in self.arms for s in arm.plan
                   if isinstance(s, TimedStep) and s.administration is not None}
        return agents

    @model_validator(mode="after")
    def _product_references(self) -> Protocol:
        """Product types have unique ids, existing parents of the stage before, and doses
        given as an agent of the plan."""
        agents = self._plan_agents()
        specs = {p.id: p for p in self.products}
        if len(specs) != len(self.products):
            raise ValueError("product ids repeated")
        order = ["collection", "processing", "aliquot", "dose"]
        for spec in self.products:
            if spec.parent is not None:
                parent = specs.get(spec.parent)
                if parent is None:
                    raise ValueError(f"product {spec.id}: unknown parent '{spec.parent}'")
                if order.index(parent.stage) >= order.index(spec.stage):
                    raise ValueError(f"product {spec.id}: {spec.stage} cannot come from "
                                     f"{parent.stage} {parent.id}")
                if parent.origin != spec.origin:
                    raise ValueError(f"product {spec.id}: origin differs from its parent's")
            if spec.agent is not None and spec.agent.casefold() not in agents:
                raise ValueError(f"product {spec.id}: '{spec.agent}' is not an agent of any course")
        return self

    def product(self, product_id: str) -> ProductSpec:
        for p in self.products:
            if p.id == product_id:
                return p
        raise KeyError(product_id)

    @property
    def criteria(self) -> list[tuple[str, Criterion]]:
        """All criteria as (kind, criterion), inclusion first."""
        return [("inclusion", c) for c in self.eligibility.inclusion] + [
            ("exclusion", c) for c in self.eligibility.exclusion
        ]

    @property
    def unreviewed(self) -> list[str]:
        """Ids of criteria whose draft no person has reviewed yet."""
        return [c.id for _, c in self.criteria if c.unreviewed]

    @property
    def is_draft(self) -> bool:
        """A protocol with unreviewed criteria is a draft: it must not screen or enrol."""
        return bool(self.unreviewed)

    @property
    def attestations(self) -> list[Attestation]:
        found = list(self.eligibility.attestations)
        found += [c.attestation for _, c in self.criteria if c.attestation is not None]
        return found

    @cached_property
    def dictionary(self) -> FactDictionary:
        return with_attestations(self.attestations)

    def course(self, course_id: str) -> Course:
        for c in self.courses:
            if c.id == course_id:
                return c
        raise KeyError(course_id)

    def arm(self, arm_id: str) -> Arm:
        for a in self.arms:
            if a.id == arm_id:
                return a
        raise KeyError(arm_id)

