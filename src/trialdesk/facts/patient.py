"""The patient file: what a screening needs to know about one patient.

A patient file is JSON (schema: ``schemas/patient.schema.json``, generated from this
model by ``trialdesk schema patient``). Every dated entry keeps its date, so screening
can use the latest value inside the protocol's look-back window and say how old it is.

Rules that are not visible in the types:

* a list that is absent means *not recorded* (unknown); an empty list means *none*;
* every observation names a fact of the dictionary and a unit convertible to the
  fact's unit, and must lie in the fact's physically possible range;
* no date may lie after the day the file is checked (``today``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trialdesk.clinical import units
from trialdesk.documents import validate
from trialdesk.errors import FactError, UnitError
from trialdesk.facts.dictionary import FACTS, THERAPY_CATEGORIES, FactKind, FactType


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Diagnosis(_Model):
    primary: str
    confirmation: Literal["histological", "cytological", "clinical"] | None = None
    date: dt.date | None = None
    risk_group: Literal["low", "intermediate", "high"] | None = None
    risk_system: str | None = None
    stage: str | None = None


class DiseaseStatus(_Model):
    """A dated statement about the disease; later entries override earlier ones field by field."""

    date: dt.date
    status: (
        Literal["newly_diagnosed", "on_first_line_therapy", "refractory", "relapsed",
                "progressive", "remission"]
        | None
    ) = None
    end_induction_response: Literal["CR", "VGPR", "PR", "MR", "SD", "PD"] | None = None
    induction_cycles_completed: int | None = Field(default=None, ge=0, le=30)
    cns_involvement: bool | None = None
    brain_metastases: bool | None = None
    metastatic: bool | None = None
    staging_complete: bool | None = None
    chemotherapy_resistant: bool | None = None
    septic_shock: bool | None = None
    septic_shock_onset: dt.datetime | None = None
    note: str | None = None


class Observation(_Model):
    """A laboratory result or a measurement (LVEF, SpO₂, weight, height, measured GFR)."""

    name: str
    value: float
    unit: str | None = None
    date: dt.date
    ref_low: float | None = None
    ref_high: float | None = None


class Performance(_Model):
    scale: Literal["lansky", "karnofsky", "ecog"]
    score: int
    date: dt.date

    @model_validator(mode="after")
    def _score(self) -> Performance:
        if self.scale == "ecog":
            if not 0 <= self.score <= 5:
                raise ValueError("ECOG/WHO score must be 0–5")
        elif not (0 <= self.score <= 100 and self.score % 10 == 0):
            raise ValueError(f"{self.scale} score must be 0–100 in steps of 10")
        return self


class Finding(_Model):
    """A clinical finding the clinician records (yes/no, a stage, a class, an estimate)."""

    name: str
    value: bool | int | float | str
    unit: str | None = None
    date: dt.date
    by: str | None = None  # who answered (the investigator's questions)


class Treatment(_Model):
    agent: str
    category: str
    start: dt.date
    end: dt.date | None = None
    chronic: bool = False

    @model_validator(mode="after")
    def _check(self) -> Treatment:
        if self.category not in THERAPY_CATEGORIES:
            raise ValueError(
                f"unknown category '{self.category}'; allowed: {', '.join(THERAPY_CATEGORIES)}"
            )
        if self.end is not None and self.end < self.start:
            raise ValueError("end is before start")
        return self


class Consent(_Model):
    trial_id: str
    signed: bool
    date: dt.date
    version: str | None = None
    signed_by: Literal["patient", "parent", "guardian", "legal_representative"] = "patient"
    assent: bool | None = None


class AttestationAnswer(_Model):
    trial_id: str
    id: str
    value: bool
    date: dt.date
    by: str | None = None


class PregnancyStatus(_Model):
    date: dt.date
    pregnant: bool
    method: Literal["test", "clinical"] = "test"


class Gd2Specimen(_Model):
    """GD2 expression in one specimen (seed 001: level, lesion, and how it was confirmed)."""

    date: dt.date
    site: str = Field(min_length=1, description="lesion or site, e.g. 'primary, left adrenal'")
    method: Literal["ihc", "flow_cytometry", "marrow_immunocytology"]
    percent_positive: float | None = Field(default=None, ge=0, le=100)
    intensity: int | None = Field(default=None, ge=0, le=3)
    h_score: int | None = Field(default=None, ge=0, le=300)
    specimen_id: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Gd2Specimen:
        if self.percent_positive is None and self.h_score is None:
            raise ValueError("give percent_positive or h_score")
        if self.h_score is not None and self.method != "ihc":
            raise ValueError("an H-score is an immunohistochemistry result")
        return self


class CytotoxicityAssay(_Model):
    """ADCC or NK-cell cytotoxicity: % specific lysis at an effector:target ratio."""

    date: dt.date
    assay: Literal["adcc", "nk_cytotoxicity"]
    lysis_percent: float = Field(ge=0, le=100)
    effector_target_ratio: str = Field(pattern=r"^\d+(\.\d+)?:1$",
                                       description="effector:target ratio, e.g. '10:1'")
    target_cells: str | None = None
    antibody: str | None = None


class SupportEpisode(_Model):
    """Renal replacement therapy or ventilation from ``start`` to ``end`` (open if absent)."""

    kind: Literal["rrt", "invasive_ventilation", "non_invasive_ventilation"]
    start: dt.date
    end: dt.date | None = None
    modality: str | None = None

    @model_validator(mode="after")
    def _check(self) -> SupportEpisode:
        if self.end is not None and self.end < self.start:
            raise ValueError("end is before start")
        return self


class SofaAssessment(_Model):
    """The components of one SOFA score (Vincent 1996), each optional; see clinical.sofa."""

    date: dt.date
    pao2_fio2: float | None = Field(default=None, ge=0, le=4000)  # mmHg
    respiratory_support: bool | None = None
    platelets: float | None = Field(default=None, ge=0, le=10000)  # 10^3/µL
    bilirubin: float | None = Field(default=None, ge=0, le=100)  # mg/dL
    mean_arterial_pressure: float | None = Field(default=None, ge=0, le=300)  # mmHg
    dopamine: float | None = Field(default=None, ge=0, le=100)  # µg/kg/min, ≥ 1 h
    dobutamine: float | None = Field(default=None, ge=0, le=100)
    epinephrine: float | None = Field(default=None, ge=0, le=10)
    norepinephrine: float | None = Field(default=None, ge=0, le=10)
    glasgow_coma_scale: int | None = Field(default=None, ge=3, le=15)
    creatinine: float | None = Field(default=None, ge=0, le=50)  # mg/dL
    urine_output: float | None = Field(default=None, ge=0, le=20000)  # mL/day


#: Response categories: INRC 2017 (Park JR et al., J Clin Oncol 2017;35:2580) has CR, PR,
#: MR, SD and PD; VGPR is INRC 1993's; RECIST 1.1 (Eisenhauer 2009) has CR, PR, SD and PD.
RESPONSE_CATEGORIES = ("CR", "VGPR", "PR", "MR", "SD", "PD")
RESPONSE_SYSTEMS: dict[str, tuple[str, ...]] = {
    "INRC 2017": ("CR", "PR", "MR", "SD", "PD"),
    "INRC 1993": ("CR", "VGPR", "PR", "MR", "SD", "PD"),
    "RECIST 1.1": ("CR", "PR", "SD", "PD"),
}
#: Sites of a relapse or progression (seed 000 I3 and E5: new lesions, bone marrow, central
#: nervous system, leptomeningeal).
DISEASE_SITES = ("primary", "bone", "marrow", "soft_tissue", "cns", "leptomeningeal")
CHEMOTHERAPY_PHASES = ("induction", "consolidation", "maintenance", "second_line", "other")


class ChemotherapyBlock(_Model):
    """One block of chemotherapy: ``cycles`` cycles of ``regimen`` from ``start`` to ``end``
    (no end: still being given, its cycles not completed yet)."""

    regimen: str = Field(min_length=1, max_length=100)
    phase: Literal["induction", "consolidation", "maintenance", "second_line", "other"]
    cycles: int = Field(ge=1, le=30)
    start: dt.date
    end: dt.date | None = None

    @model_validator(mode="after")
    def _check(self) -> ChemotherapyBlock:
        if self.end is not None and self.end < self.start:
            raise ValueError("the last day is before the first day")
        return self


class ResponseAssessment(_Model):
    """A response assessment's overall category by the named criteria."""

    date: dt.date
    criteria: Literal["INRC 2017", "INRC 1993", "RECIST 1.1"] = "INRC 2017"
    category: Literal["CR", "VGPR", "PR", "MR", "SD", "PD"]

    @model_validator(mode="after")
    def _check(self) -> ResponseAssessment:
        allowed = RESPONSE_SYSTEMS[self.criteria]
        if self.category not in allowed:
            raise ValueError(f"{self.category} is not a {self.criteria} category "
                             f"({', '.join(allowed)})")
        return self


class Progression(_Model):
    """A relapse or progression and its sites (empty: sites not recorded). Whether it is a
    relapse or a progression is derived: a relapse follows a complete response (seed 000)."""

    date: dt.date
    sites: list[Literal["primary", "bone", "marrow", "soft_tissue", "cns", "leptomeningeal"]] = []
    note: str | None = Field(default=None, max_length=500)


class PatientRecord(_Model):
    """One patient's record; see the module docstring."""

    patient_id: str = Field(min_length=1)
    birth_date: dt.date
    sex: Literal["female", "male"] | None = None
    childbearing_potential: bool | None = None
    diagnosis: Diagnosis | None = None
    disease_status: list[DiseaseStatus] = []
    observations: list[Observation] = []
    performance: list[Performance] = []
    findings: list[Finding] = []
    treatments: list[Treatment] | None = None
    consents: list[Consent] = []
    attestations: list[AttestationAnswer] = []
    pregnancy: list[PregnancyStatus] = []
    gd2_specimens: list[Gd2Specimen] = []
    cytotoxicity_assays: list[CytotoxicityAssay] = []
    support_episodes: list[SupportEpisode] | None = None
    sofa: list[SofaAssessment] = []
    # The disease course as events (trialdesk.facts.course derives the disease facts).
    chemotherapy: list[ChemotherapyBlock] = []
    response_assessments: list[ResponseAssessment] = []
    progressions: list[Progression] = []


def _dated(record: PatientRecord) -> list[tuple[str, dt.date]]:
    out: list[tuple[str, dt.date]] = []
    if record.diagnosis and record.diagnosis.date:
        out.append(("$.diagnosis.date", record.diagnosis.date))
    for name in ("disease_status", "observations", "performance", "findings", "consents",
                 "attestations", "pregnancy", "gd2_specimens", "cytotoxicity_assays", "sofa"):
        for i, entry in enumerate(getattr(record, name)):
            out.append((f"$.{name}[{i}].date", entry.date))
    for i, t in enumerate(record.treatments or []):
        out.append((f"$.treatments[{i}].start", t.start))
    for i, e in enumerate(record.support_episodes or []):
        out.append((f"$.support_episodes[{i}].start", e.start))
    for name in ("response_assessments", "progressions"):
        for i, entry in enumerate(getattr(record, name)):
            out.append((f"$.{name}[{i}].date", entry.date))
    for i, block in enumerate(record.chemotherapy):
        out.append((f"$.chemotherapy[{i}].start", block.start))
        if block.end is not None:
            out.append((f"$.chemotherapy[{i}].end", block.end))
    return out


def check_record(record: PatientRecord, *, today: dt.date, source: str = "<patient>") -> None:
    """Refuse impossible values: unknown facts, wrong units, values out of range, future dates."""
    if record.birth_date > today:
        raise FactError("birth date is in the future", where=f"{source}: $.birth_date")
    for path, d in _dated(record):
        if d > today:
            raise FactError(f"date {d} is in the future", where=f"{source}: {path}")
        if d < record.birth_date:
            raise FactError(f"date {d} is before the birth date", where=f"{source}: {path}")
    if record.diagnosis is not None:
        allowed = FACTS["primary_diagnosis"].values or ()
        if record.diagnosis.primary not in allowed:
            raise FactError(
                f"unknown diagnosis '{record.diagnosis.primary}'; allowed: {', '.join(allowed)}",
                where=f"{source}: $.diagnosis.primary",
            )
    for i, obs in enumerate(record.observations):
        where = f"{source}: $.observations[{i}]"
        fact = FACTS.get(obs.name)
        if fact is None or fact.kind not in (FactKind.LAB, FactKind.MEASUREMENT):
            raise FactError(f"'{obs.name}' is not a laboratory test or measurement",
                            where=f"{where}.name")
        value = canonical_value(obs.name, obs.value, obs.unit, where=f"{where}.unit")
        if (fact.minimum is not None and value < fact.minimum) or (
            fact.maximum is not None and value > fact.maximum
        ):
            raise FactError(
                f"{obs.name} = {obs.value:g} {obs.unit or ''} is impossible "
                f"(possible range {fact.minimum:g}–{fact.maximum:g} {fact.unit or ''})".replace(
                    "  ", " "),
                where=f"{where}.value",
            )
        if obs.ref_low is not None and obs.ref_high is not None and obs.ref_low > obs.ref_high:
            raise FactError("reference range low end is above its high end", where=where)
    for i, finding in enumerate(record.findings):
        where = f"{source}: $.findings[{i}]"
        fact = FACTS.get(finding.name)
        if fact is None or fact.kind is not FactKind.FINDING:
            raise FactError(f"'{finding.name}' is not a clinical finding", where=f"{where}.name")
        v = finding.value
        ok = {
            FactType.BOOLEAN: isinstance(v, bool),
            FactType.INTEGER: isinstance(v, int) and not isinstance(v, bool),
            FactType.NUMBER: isinstance(v, (int, float)) and not isinstance(v, bool),
            FactType.STRING: isinstance(v, str) and (fact.values is None or v in fact.values),
        }.get(fact.type, False)
        if not ok:
            expected = ", ".join(fact.values) if fact.values else fact.type.value
            raise FactError(f"{finding.name} must be {expected}", where=f"{where}.value")
        if fact.is_numeric:
            value = canonical_value(finding.name, float(v), finding.unit, where=f"{where}.unit")
            if (fact.minimum is not None and value < fact.minimum) or (
                fact.maximum is not None and value > fact.maximum
            ):
                raise FactError(f"{finding.name} = {v} is impossible", where=f"{where}.value")


def canonical_value(name: str, value: float, unit: str | None, *, where: str) -> float:
    """``value`` in the fact's canonical unit (raising a FactError naming ``where``)."""
    fact = FACTS[name]
    if fact.unit is None or fact.unit == "ULN":
        if unit not in (None, "", fact.unit):
            raise FactError(f"{name} has no unit, got '{unit}'", where=where)
        return float(value)
    if not unit:
        raise FactError(f"{name} needs a unit (e.g. {fact.unit})", where=where)
    try:
        return units.convert(value, unit, fact.unit, substance=fact.substance)
    except UnitError as exc:
        raise FactError(f"unit '{unit}' does not fit {name} ({fact.unit}): {exc.reason}",
                        where=where) from None


def patient_from_data(data: Any, *, today: dt.date, source: str = "<patient>") -> PatientRecord:
    """Validate a patient document; one clear FactError for the first problem found."""
    if not isinstance(data, dict):
        raise FactError("a patient file must be a JSON object", where=source)
    record = validate(PatientRecord, data, FactError, where=source)
    check_record(record, today=today, source=source)
    return record
