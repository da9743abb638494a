"""FHIR R5 export: ResearchStudy, Patient, ResearchSubject, AdverseEvent and Observation.

Every resource is built as a ``fhir.resources`` model (pydantic), so constructing it
validates it against the FHIR R5 (5.0.0) structure definitions the library ships;
:func:`fhir_bundle` returns them in a ``collection`` Bundle and :func:`bundle_json`
serialises it. What maps where:

* **ResearchStudy** — the protocol: identifiers (trialdesk id, NCT number), title,
  conditions, one ``comparisonGroup`` per arm.
* **Patient** — only an identifier: the event table holds nothing more about the person.
* **ResearchSubject** — one per patient: the study, the patient, the assigned arm
  (``assignedComparisonGroup`` = the arm's ``linkId``) and the period from enrolment to
  death or last contact.
* **AdverseEvent** — term (with its MedDRA preferred term as text when given), onset and
  resolution, seriousness (``adverse-event-seriousness``: serious / non-serious), outcome
  as text, each agent as a ``suspectEntity`` with its attribution, and the CTCAE grade in
  the ``ae-grade`` extension of the HL7 Adverse Event Clinical Research IG v1.0.1
  (R5-based), coded with the NCI Thesaurus grade concepts of the HL7 value set
  ``adverse-event-clinical-research-grades`` (C41338 … C41337, C48275).
* **Observation** — best overall response per patient and each time-point response
  (``valueCodeableConcept`` text CR, PR, …; ``method`` text INRC 2017 or RECIST 1.1).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from fhir.resources.adverseevent import (
    AdverseEvent as FhirAdverseEvent,
)
from fhir.resources.adverseevent import (
    AdverseEventSuspectEntity,
    AdverseEventSuspectEntityCausality,
)
from fhir.resources.bundle import Bundle, BundleEntry
from fhir.resources.codeableconcept import CodeableConcept
from fhir.resources.coding import Coding
from fhir.resources.extension import Extension
from fhir.resources.identifier import Identifier
from fhir.resources.observation import Observation
from fhir.resources.patient import Patient
from fhir.resources.period import Period
from fhir.resources.reference import Reference
from fhir.resources.researchstudy import ResearchStudy, ResearchStudyComparisonGroup
from fhir.resources.researchsubject import ResearchSubject
from fhir.resources.resource import Resource
from pydantic import ValidationError

from trialdesk.errors import OutcomeError
from trialdesk.outcomes.events import EventTable
from trialdesk.outcomes.inputs import AdverseEvents, Measurements, TrialAdverseEvent

FHIR_VERSION = "5.0.0"
TRIALDESK_SYSTEM = "urn:trialdesk"
NCT_SYSTEM = "https://clinicaltrials.gov"
NCI_THESAURUS = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
AE_GRADE_EXTENSION = "http://hl7.org/fhir/uv/ae-research-ig/StructureDefinition/ae-grade"
SERIOUSNESS_SYSTEM = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
# HL7 THO ValueSet adverse-event-clinical-research-grades (NCI Thesaurus concepts); the
# grade 5 concept as listed in the CodeX Radiation Therapy grade value set.
GRADE_CONCEPTS: dict[int, tuple[str, str]] = {
    1: ("C41338", "Grade 1 Mild Adverse Event"),
    2: ("C41339", "Grade 2 Moderate Adverse Event"),
    3: ("C41340", "Grade 3 Severe Adverse Event"),
    4: ("C41337", "Grade 4 Life Threatening or Disabling Adverse Event"),
    5: ("C48275", "Grade 5 Death Related to Adverse Event"),
}
_CRITERIA = {"INRC": "INRC 2017", "RECIST": "RECIST 1.1"}


def _id(text: str) -> str:
    """A FHIR id: letters, digits, '-' and '.', at most 64 characters."""
    cleaned = "".join(c if c.isalnum() or c in "-." else "-" for c in text)
    return cleaned[:64]


def _text(text: str) -> CodeableConcept:
    return CodeableConcept(text=text)


def _date(value: Any) -> str | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).date().isoformat()


def fhir_bundle(
    study_id: str,
    events: EventTable,
    *,
    title: str | None = None,
    nct_id: str | None = None,
    conditions: tuple[str, ...] = (),
    arm_labels: dict[str, str] | None = None,
    aes: AdverseEvents | None = None,
    measurements: Measurements | None = None,
) -> Bundle:
    """Every resource of one trial's outcome data in a ``collection`` Bundle.

    Raises :class:`OutcomeError` naming the resource if the library refuses one.
    """
    labels = arm_labels or {}
    study_ref = f"ResearchStudy/{_id(study_id)}"
    resources: list[Resource] = []
    try:
        identifiers = [Identifier(system=TRIALDESK_SYSTEM, value=study_id)]
        if nct_id:
            identifiers.append(Identifier(system=NCT_SYSTEM, value=nct_id))
        resources.append(ResearchStudy(
            id=_id(study_id), status="active", title=title or study_id, identifier=identifiers,
            condition=[_text(c) for c in conditions] or None,
            comparisonGroup=[ResearchStudyComparisonGroup(linkId=_id(arm), name=labels.get(arm, arm))
                             for arm in events.arms] or None,
        ))
        for record in events.frame.to_dict(orient="records"):
            patient = record["patient_id"]
            patient_id = _id(f"{study_id}-{patient}")
            resources.append(Patient(id=patient_id,
                                     identifier=[Identifier(system=f"{TRIALDESK_SYSTEM}:{study_id}",
                                                            value=patient)]))
            end = record["death_date"] if not pd.isna(record["death_date"]) else record["last_contact_date"]
            resources.append(ResearchSubject(
                id=_id(f"{study_id}-{patient}-subject"), status="active",
                study=Reference(reference=study_ref), subject=Reference(reference=f"Patient/{patient_id}"),
                assignedComparisonGroup=_id(record["arm"]),
                period=Period(start=_date(record["enrolment_date"]), end=_date(end)),
            ))
            if record["best_response"]:
                resources.append(_response(study_id, patient, "best", "Best overall response",
                                           record["best_response"], record["response_criteria"], None))
        if measurements is not None:
            criteria = dict(zip(events.frame["patient_id"], events.frame["response_criteria"], strict=True))
            for m in measurements.frame.to_dict(orient="records"):
                if m["overall_response"] and not m["baseline"]:
                    resources.append(_response(study_id, m["patient_id"], _date(m["assessment_date"]) or "",
                                               "Overall response at time point", m["overall_response"],
                                               criteria.get(m["patient_id"]), m["assessment_date"]))
        if aes is not None:
            for index, record in enumerate(aes.records, start=1):
                resources.append(_adverse_event(study_id, study_ref, index, record))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise OutcomeError(f"{first['msg']} at {'.'.join(str(p) for p in first['loc'])}",
                           where=f"FHIR R5 {exc.title}") from None
    return Bundle(type="collection", entry=[BundleEntry(resource=r, fullUrl=f"urn:trialdesk:"
                                                        f"{r.get_resource_type()}/{r.id}")
                                            for r in resources])


def _response(study: str, patient: str, key: str, name: str, value: str, criteria: str | None,
              when: Any) -> Observation:
    return Observation(
        id=_id(f"{study}-{patient}-response-{key}"), status="final", code=_text(name),
        subject=Reference(reference=f"Patient/{_id(f'{study}-{patient}')}"),
        focus=[Reference(reference=f"ResearchSubject/{_id(f'{study}-{patient}-subject')}")],
        valueCodeableConcept=_text(value), effectiveDateTime=_date(when),
        method=_text(_CRITERIA.get(criteria or "", criteria or "not stated")),
    )


def _adverse_event(study: str, study_ref: str, index: int, record: TrialAdverseEvent) -> FhirAdverseEvent:
    ae = record.event
    code, display = GRADE_CONCEPTS[ae.grade]
    grade = CodeableConcept(coding=[Coding(system=NCI_THESAURUS, code=code, display=display)],
                            text=f"CTCAE v{ae.ctcae_version} grade {ae.grade}")
    term = CodeableConcept(text=ae.term, coding=[Coding(system="https://www.meddra.org",
                                                        code=ae.meddra_code, display=ae.meddra_term)]
                           if ae.meddra_code else None)
    serious = "serious" if ae.serious else "non-serious"
    occurrence = Period(start=ae.onset.isoformat(),
                        end=ae.resolution.isoformat() if ae.resolution else None)
    suspects = [AdverseEventSuspectEntity(
        instanceCodeableConcept=_text(a.agent),
        causality=AdverseEventSuspectEntityCausality(entityRelatedness=_text(a.attribution.value)),
    ) for a in ae.attributions]
    return FhirAdverseEvent(
        id=_id(f"{study}-ae-{index}"), status="completed" if ae.resolution or ae.fatal else "in-progress",
        actuality="actual", code=term,
        subject=Reference(reference=f"Patient/{_id(f'{study}-{record.patient_id}')}"),
        study=[Reference(reference=study_ref)], occurrencePeriod=occurrence,
        seriousness=CodeableConcept(coding=[Coding(system=SERIOUSNESS_SYSTEM, code=serious)],
                                    text=", ".join(sorted(s.value for s in ae.seriousness)) or None),
        outcome=[_text(ae.outcome.value)] if ae.outcome else None,
        suspectEntity=suspects or None,
        extension=[Extension(url=AE_GRADE_EXTENSION, valueCodeableConcept=grade)],
        note=None,
    )


def bundle_json(bundle: Bundle) -> bytes:
    """The bundle as indented FHIR JSON (UTF-8)."""
    return json.dumps(json.loads(bundle.model_dump_json(exclude_none=True)), indent=1,
                      ensure_ascii=False).encode("utf-8") + b"\n"


def parse_bundle(data: bytes) -> Bundle:
    """Parse FHIR JSON back into a validated Bundle (raises on any structural error)."""
    try:
        return Bundle.model_validate_json(data)
    except ValidationError as exc:
        raise OutcomeError(str(exc.errors()[0]["msg"]), where="FHIR bundle") from None
