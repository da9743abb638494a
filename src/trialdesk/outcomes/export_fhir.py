"""FHIR R5 export: ResearchStudy, Patient, ResearchSubject, AdverseEvent, Observation and
MedicationAdministration, in one Bundle whose references all resolve inside it.

Every resource is built as a ``fhir.resources`` model (pydantic), so constructing it
validates it against the FHIR R5 (5.0.0) structure definitions the library ships;
:func:`fhir_bundle` returns them in a ``collection`` Bundle and :func:`bundle_json`
serialises it. Each entry's ``fullUrl`` is a ``urn:uuid:`` (a name-based UUID of the
resource type and id, so the same input gives the same file) and every reference holds
exactly that ``fullUrl`` (FHIR R5 §2.1.3.4 "Resolving references in Bundles"). What maps
where:

* **ResearchStudy** — the protocol: identifiers (trialdesk id, NCT number), title,
  conditions, one ``comparisonGroup`` per arm.
* **Patient** — identifier; ``gender`` from the event table's ``sex`` (M/F); ``birthDate``
  only when the caller passes it (the event table holds ages, never birth dates);
  ``deceasedDateTime`` from the death date, else ``deceasedBoolean`` false.
* **ResearchSubject** — one per patient: the study, the patient, the assigned arm
  (``assignedComparisonGroup`` = the arm's ``linkId``) and the period from enrolment to
  death or last contact.
* **AdverseEvent** — the CTCAE term coded with its MedDRA v20.1 LLT code (HL7 system
  ``http://terminology.hl7.org/CodeSystem/mdr``) and NCIt code from the CTCAE v5.0 term
  list, onset and resolution, seriousness (``adverse-event-seriousness``), outcome as
  text, each agent as a ``suspectEntity`` with its attribution, and the CTCAE grade in the
  ``ae-grade`` extension of the HL7 Adverse Event Clinical Research IG v1.0.1 (R5-based),
  coded with the NCI Thesaurus grade concepts of the HL7 value set
  ``adverse-event-clinical-research-grades`` (C41338 … C41337, C48275).
* **Observation** (laboratory) — category ``laboratory``, the test coded in LOINC from the
  fact dictionary (CDISC LBTESTCD -> fact), the date, value and unit, the reference range,
  an interpretation (L/N/H from the range; L or H from a CTCAE grade of 1 or more of a
  "decreased"/"increased" term) and the CTCAE grade as a component.
* **Observation** (response) — category ``imaging``; best overall response per patient
  (effective over the follow-up period) and each time-point response
  (``valueCodeableConcept`` text CR, PR, …; ``method`` text INRC 2017 or RECIST 1.1).
* **MedicationAdministration** — one per agent per course: the agent, the patient, the
  dates, dose and route when given, and the ResearchSubject as supporting information.
* **BiologicallyDerivedProduct** — one per cell product (:mod:`trialdesk.outcomes.products`):
  ``productCategory`` cells; ``productCode`` the ISBT 128 product description code (as the
  lab recorded it) with the product type's name; ``identifier`` and ``biologicalSourceEvent``
  the ISBT 128 Donation Identification Number (``urn:oid:2.16.840.1.113883.6.18.2.1``, as the
  HL7 Orders and Observations MPHO examples use it), plus the whole product identifier;
  ``division`` the ISBT 128 division; ``parent`` the product it was made from; for a
  collection, ``collection`` with the collector, the source (the patient for autologous
  cells, the donor's own identity for a third-party donation) and the time; ``expirationDate``.
  R5 has no processing element (R4's ``processing``/``manipulation`` were removed), so the
  stage, preparation time, counts, release status, storage position and the last recorded
  storage or shipping temperature are ``property`` entries (type coded in a trialdesk
  system, the property type binding being an example one). The operators who collected or
  prepared products are **Practitioner** resources with their user name as identifier only.
* **Procedure** — one per cell-product infusion: ``used`` references the product (R5
  MedicationAdministration may reference only a Medication), the patient, the start and end,
  and the dose in viable cells/kg and the deadline as notes.
* **Provenance** — one per hand-over of a product (chain of custody): the product as target,
  the time, the giver (``performer``) and the receiver (``custodian``, HL7
  provenance-participant-type) as Practitioners, and the place as a **Location** by name;
  the temperature and condition on receipt as the activity's text.

Clock times are UTC (trialdesk stores them so) and are written with ``Z``.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import pandas as pd
from fhir.resources.adverseevent import (
    AdverseEvent as FhirAdverseEvent,
)
from fhir.resources.adverseevent import (
    AdverseEventSuspectEntity,
    AdverseEventSuspectEntityCausality,
)
from fhir.resources.annotation import Annotation
from fhir.resources.biologicallyderivedproduct import (
    BiologicallyDerivedProduct,
    BiologicallyDerivedProductCollection,
    BiologicallyDerivedProductProperty,
)
from fhir.resources.bundle import Bundle, BundleEntry
from fhir.resources.codeableconcept import CodeableConcept
from fhir.resources.codeablereference import CodeableReference
from fhir.resources.coding import Coding
from fhir.resources.extension import Extension
from fhir.resources.identifier import Identifier
from fhir.resources.location import Location
from fhir.resources.medicationadministration import MedicationAdministration, MedicationAdministrationDosage
from fhir.resources.observation import Observation, ObservationComponent, ObservationReferenceRange
from fhir.resources.patient import Patient
from fhir.resources.period import Period
from fhir.resources.practitioner import Practitioner
from fhir.resources.procedure import Procedure
from fhir.resources.provenance import Provenance, ProvenanceAgent
from fhir.resources.quantity import Quantity
from fhir.resources.reference import Reference
from fhir.resources.researchstudy import ResearchStudy, ResearchStudyComparisonGroup
from fhir.resources.researchsubject import ResearchSubject
from fhir.resources.resource import Resource
from pydantic import ValidationError

from trialdesk.clinical.ctcae import grade_lab
from trialdesk.clinical.ctcae_codes import MEDDRA_VERSION, term_codes
from trialdesk.errors import OutcomeError, TrialdeskError
from trialdesk.facts.dictionary import FACTS
from trialdesk.outcomes.events import EventTable
from trialdesk.outcomes.inputs import AdverseEvents, Exposure, Labs, Measurements, TrialAdverseEvent
from trialdesk.outcomes.products import TrialProducts

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
# HL7 terminology: MedDRA, LOINC, observation categories and interpretations.
MEDDRA_SYSTEM = "http://terminology.hl7.org/CodeSystem/mdr"
LOINC_SYSTEM = "http://loinc.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_INTERPRETATION = {"L": "Low", "N": "Normal", "H": "High"}
# Fixed namespace of trialdesk's name-based resource UUIDs (a random uuid4, chosen once).
_NAMESPACE = uuid.UUID("7d0c5f3e-2b0a-4f8e-9a55-3c1f4b2e6d10")
#: CDISC LBTESTCD (SDTM CT codelist C65047) -> (fact with its LOINC code, CTCAE v5.0 term
#: graded from it, interpretation a CTCAE grade >= 1 implies: L below LLN, H above ULN).
LAB_TESTS: dict[str, tuple[str, str | None, str | None]] = {
    "NEUT": ("anc", "Neutrophil count decreased", "L"),
    "PLAT": ("platelets", "Platelet count decreased", "L"),
    "HGB": ("hemoglobin", "Anemia", "L"),
    "ALT": ("alt", "Alanine aminotransferase increased", "H"),
    "AST": ("ast", "Aspartate aminotransferase increased", "H"),
    "ALP": ("alp", "Alkaline phosphatase increased", "H"),
    "BILI": ("bilirubin", "Blood bilirubin increased", "H"),
    "CREAT": ("creatinine", "Creatinine increased", "H"),
    "SODIUM": ("sodium", None, None),
    "K": ("potassium", None, None),
    "APTT": ("aptt", "Activated partial thromboplastin time prolonged", "H"),
    "INR": ("inr", None, "H"),
}


def _id(text: str) -> str:
    """A FHIR id: letters, digits, '-' and '.', at most 64 characters."""
    cleaned = "".join(c if c.isalnum() or c in "-." else "-" for c in text)
    return cleaned[:64]


def full_url(resource_type: str, resource_id: str) -> str:
    """The ``urn:uuid:`` fullUrl of a resource: a name-based (v5) UUID of type and id.

    >>> full_url("Patient", "NB-NK-2026-NB-01")
    'urn:uuid:85e94c97-50ee-5084-aa67-fc5fb7d97737'
    """
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{resource_type}/{resource_id}')}"


def _ref(resource_type: str, resource_id: str) -> Reference:
    return Reference(reference=full_url(resource_type, _id(resource_id)))


def _text(text: str) -> CodeableConcept:
    return CodeableConcept(text=text)


def _date(value: Any) -> str | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).date().isoformat()


def _category(code: str, display: str) -> list[CodeableConcept]:
    return [CodeableConcept(coding=[Coding(system=OBSERVATION_CATEGORY, code=code, display=display)])]


def _gender(sex: Any) -> str:
    # FHIR administrative-gender; SDTM SEX M/F (anything else is not stated here).
    return {"M": "male", "F": "female"}.get(str(sex or "").strip().upper(), "unknown")


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
    labs: Labs | None = None,
    exposure: Exposure | None = None,
    birth_dates: Mapping[str, date | str] | None = None,
    products: TrialProducts | None = None,
) -> Bundle:
    """Every resource of one trial's outcome data in a ``collection`` Bundle.

    ``birth_dates`` (patient id -> date) is given only where the caller's role may see
    birth dates; without it Patient has no ``birthDate``. Raises :class:`OutcomeError`
    naming the resource if the library refuses one.
    """
    labels = arm_labels or {}
    births = birth_dates or {}
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
            resources.extend(_patient(study_id, record, births.get(record["patient_id"])))
        if measurements is not None:
            criteria = dict(zip(events.frame["patient_id"], events.frame["response_criteria"], strict=True))
            for m in measurements.frame.to_dict(orient="records"):
                if m["overall_response"] and not m["baseline"]:
                    resources.append(_response(study_id, m["patient_id"], _date(m["assessment_date"]) or "",
                                               "Overall response at time point", m["overall_response"],
                                               criteria.get(m["patient_id"]), m["assessment_date"]))
        if aes is not None:
            for index, ae_record in enumerate(aes.records, start=1):
                resources.append(_adverse_event(study_id, index, ae_record))
        if labs is not None:
            for index, lab in enumerate(labs.frame.to_dict(orient="records"), start=1):
                resources.append(_lab(study_id, index, lab))
        if exposure is not None:
            for index, given in enumerate(exposure.frame.to_dict(orient="records"), start=1):
                resources.append(_administration(study_id, index, given))
        if products is not None:
            resources.extend(_cell_products(study_id, products, set(events.frame["patient_id"])))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise OutcomeError(f"{first['msg']} at {'.'.join(str(p) for p in first['loc'])}",
                           where=f"FHIR R5 {exc.title}") from None
    return Bundle(type="collection", entry=[
        BundleEntry(resource=r, fullUrl=full_url(r.get_resource_type(), str(r.id))) for r in resources
    ])


def _patient(study: str, record: dict[str, Any], birth: date | str | None) -> list[Resource]:
    patient = record["patient_id"]
    patient_id = _id(f"{study}-{patient}")
    death = _date(record.get("death_date"))
    person = Patient(
        id=patient_id,
        identifier=[Identifier(system=f"{TRIALDESK_SYSTEM}:{study}", value=patient)],
        gender=_gender(record.get("sex")),
        birthDate=_date(birth),
        deceasedDateTime=death,
        deceasedBoolean=None if death else False,
    )
    end = record["death_date"] if death else record["last_contact_date"]
    subject = ResearchSubject(
        id=_id(f"{study}-{patient}-subject"), status="active",
        study=_ref("ResearchStudy", study), subject=_ref("Patient", patient_id),
        assignedComparisonGroup=_id(record["arm"]),
        period=Period(start=_date(record["enrolment_date"]), end=_date(end)),
    )
    out: list[Resource] = [person, subject]
    if record["best_response"]:
        # Best overall response is a summary over the follow-up, so its effective time is
        # that period (enrolment to death or last contact).
        period = Period(start=_date(record["enrolment_date"]), end=_date(end))
        out.append(_response(study, patient, "best", "Best overall response", record["best_response"],
                             record["response_criteria"], None, period))
    return out


def _response(study: str, patient: str, key: str, name: str, value: str, criteria: str | None,
              when: Any, period: Period | None = None) -> Observation:
    return Observation(
        id=_id(f"{study}-{patient}-response-{key}"), status="final", code=_text(name),
        category=_category("imaging", "Imaging"),
        subject=_ref("Patient", f"{study}-{patient}"),
        focus=[_ref("ResearchSubject", f"{study}-{patient}-subject")],
        valueCodeableConcept=_text(value), effectiveDateTime=_date(when), effectivePeriod=period,
        method=_text(_CRITERIA.get(criteria or "", criteria or "not stated")),
    )


def _grade_concept(grade: int, version: str = "5.0") -> CodeableConcept:
    text = f"CTCAE v{version} grade {grade}"
    if grade not in GRADE_CONCEPTS:
        return CodeableConcept(text=text)
    code, display = GRADE_CONCEPTS[grade]
    return CodeableConcept(coding=[Coding(system=NCI_THESAURUS, code=code, display=display)], text=text)


def _adverse_event(study: str, index: int, record: TrialAdverseEvent) -> FhirAdverseEvent:
    ae = record.event
    codes = term_codes(ae.term)
    codings = []
    if codes is not None:
        codings.append(Coding(system=MEDDRA_SYSTEM, version=MEDDRA_VERSION, code=codes.meddra_code,
                              display=codes.term))
        codings.append(Coding(system=NCI_THESAURUS, code=codes.nci_code, display=codes.term))
    elif ae.meddra_code:
        codings.append(Coding(system=MEDDRA_SYSTEM, code=ae.meddra_code, display=ae.meddra_term))
    serious = "serious" if ae.serious else "non-serious"
    occurrence = Period(start=ae.onset.isoformat(),
                        end=ae.resolution.isoformat() if ae.resolution else None)
    suspects = [AdverseEventSuspectEntity(
        instanceCodeableConcept=_text(a.agent),
        causality=AdverseEventSuspectEntityCausality(entityRelatedness=_text(a.attribution.value)),
    ) for a in ae.attributions]
    return FhirAdverseEvent(
        id=_id(f"{study}-ae-{index}"), status="completed" if ae.resolution or ae.fatal else "in-progress",
        actuality="actual", code=CodeableConcept(text=ae.term, coding=codings or None),
        subject=_ref("Patient", f"{study}-{record.patient_id}"),
        study=[_ref("ResearchStudy", study)], occurrencePeriod=occurrence,
        seriousness=CodeableConcept(coding=[Coding(system=SERIOUSNESS_SYSTEM, code=serious)],
                                    text=", ".join(sorted(s.value for s in ae.seriousness)) or None),
        outcome=[_text(ae.outcome.value)] if ae.outcome else None,
        suspectEntity=suspects or None,
        extension=[Extension(url=AE_GRADE_EXTENSION,
                             valueCodeableConcept=_grade_concept(ae.grade, ae.ctcae_version))],
    )


def _number(text: Any) -> float | None:
    try:
        number = float(str(text).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _limit(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _lab_grade(lab: dict[str, Any], term: str | None, value: float | None) -> int | None:
    """The recorded CTCAE grade, or the one graded from value and limits when it is certain."""
    recorded = lab.get("toxicity_grade")
    if recorded is not None and not pd.isna(recorded):
        return int(recorded)
    if term is None or value is None:
        return None
    try:
        graded = grade_lab(term, value, str(lab.get("unit") or ""), lln=_limit(lab.get("lower_limit")),
                           uln=_limit(lab.get("upper_limit")))
    except TrialdeskError:
        return None  # a unit or value the CTCAE table does not take: no grade, not a guess
    return graded.grade


def _interpretation(value: float | None, low: float | None, high: float | None, grade: int | None,
                    direction: str | None) -> CodeableConcept | None:
    code = None
    if value is not None and (low is not None or high is not None):
        code = "L" if low is not None and value < low else "H" if high is not None and value > high else "N"
    elif grade and direction:
        # A CTCAE grade of 1 or more of a "decreased" term means below LLN (an "increased"
        # term, above ULN), whatever the limits were.
        code = direction
    if code is None:
        return None
    return CodeableConcept(coding=[Coding(system=INTERPRETATION_SYSTEM, code=code,
                                          display=_INTERPRETATION[code])])


def _lab(study: str, index: int, lab: dict[str, Any]) -> Observation:
    test_code = str(lab["test_code"]).upper()
    fact_name, term, direction = LAB_TESTS.get(test_code, (None, None, None))
    fact = FACTS.get(fact_name) if fact_name else None
    codings = []
    if fact is not None and fact.code and fact.code.startswith("LOINC "):
        loinc = fact.code.removeprefix("LOINC ")
        codings.append(Coding(system=LOINC_SYSTEM, code=loinc, display=fact.description))
    value = _number(lab["value"])
    unit = lab.get("unit") or None
    low, high = _limit(lab.get("lower_limit")), _limit(lab.get("upper_limit"))
    grade = _lab_grade(lab, term, value)
    ranges = None
    if low is not None or high is not None:
        ranges = [ObservationReferenceRange(
            low=Quantity(value=low, unit=unit) if low is not None else None,
            high=Quantity(value=high, unit=unit) if high is not None else None,
        )]
    interpretation = _interpretation(value, low, high, grade, direction)
    components = None
    if grade is not None:
        components = [ObservationComponent(code=_text("CTCAE v5.0 grade"),
                                           valueCodeableConcept=_grade_concept(grade))]
    patient = lab["patient_id"]
    return Observation(
        id=_id(f"{study}-lab-{index}"), status="final",
        category=_category("laboratory", "Laboratory"),
        code=CodeableConcept(coding=codings or None, text=lab["test"]),
        subject=_ref("Patient", f"{study}-{patient}"),
        focus=[_ref("ResearchSubject", f"{study}-{patient}-subject")],
        effectiveDateTime=_date(lab["date"]),
        valueQuantity=Quantity(value=value, unit=unit) if value is not None else None,
        valueString=None if value is not None else str(lab["value"]),
        referenceRange=ranges,
        interpretation=[interpretation] if interpretation else None,
        component=components,
    )


def _administration(study: str, index: int, given: dict[str, Any]) -> MedicationAdministration:
    patient = given["patient_id"]
    dose = _limit(given.get("dose"))
    dosage = None
    if dose is not None or given.get("route"):
        dosage = MedicationAdministrationDosage(
            dose=Quantity(value=dose, unit=given.get("dose_unit") or None) if dose is not None else None,
            route=_text(given["route"]) if given.get("route") else None,
        )
    course = f"course {given['course']}" + (f" ({given['course_id']})" if given.get("course_id") else "")
    return MedicationAdministration(
        id=_id(f"{study}-ex-{index}"), status="completed",
        medication=CodeableReference(concept=_text(given["agent"])),
        subject=_ref("Patient", f"{study}-{patient}"),
        supportingInformation=[_ref("ResearchSubject", f"{study}-{patient}-subject")],
        occurencePeriod=Period(start=_date(given["start_date"]), end=_date(given.get("end_date"))),
        dosage=dosage,
        note=[Annotation(text=course)],
    )


# ISBT 128 (ICCBBA) identifiers in HL7 OID form: the Donation Identification Number and the
# product description code, as the HL7 Orders and Observations MPHO examples write them.
ISBT_DIN_SYSTEM = "urn:oid:2.16.840.1.113883.6.18.2.1"
ISBT_PRODUCT_CODE_SYSTEM = "urn:oid:2.16.840.1.113883.6.18.2.6"
PRODUCT_CATEGORY_SYSTEM = "http://hl7.org/fhir/product-category"
PRODUCT_STATUS_SYSTEM = "http://hl7.org/fhir/biologicallyderived-product-status"
PRODUCT_PROPERTY_SYSTEM = f"{TRIALDESK_SYSTEM}:product-property"
UCUM = "http://unitsofmeasure.org"
PARTICIPANT_SYSTEM = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


def _moment(at: datetime | None) -> str | None:
    """A stored (UTC) clock time as a FHIR dateTime."""
    return None if at is None else at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _property(code: str, display: str, **value: Any) -> BiologicallyDerivedProductProperty:
    return BiologicallyDerivedProductProperty(
        type=CodeableConcept(coding=[Coding(system=PRODUCT_PROPERTY_SYSTEM, code=code,
                                            display=display)], text=display), **value)


def _quantity(value: float, unit: str, code: str) -> Quantity:
    return Quantity(value=value, unit=unit, system=UCUM, code=code)


def _person_ref(study: str, person: str, in_bundle: set[str], system: str) -> Reference:
    """The Patient in the Bundle, else the person by identifier (a logical reference)."""
    if person in in_bundle:
        return _ref("Patient", f"{study}-{person}")
    return Reference(identifier=Identifier(system=system, value=person))


def _practitioner(study: str, username: str) -> Practitioner:
    return Practitioner(id=_id(f"{study}-user-{username}"),
                        identifier=[Identifier(system=f"{TRIALDESK_SYSTEM}:user", value=username)])


def _cell_products(study: str, data: TrialProducts, in_bundle: set[str]) -> list[Resource]:
    """Each product as a BiologicallyDerivedProduct, each infusion as a Procedure, and the
    operators as Practitioners (see the module's description)."""
    latest = data.latest()
    infused = {i.product for i in data.infusions}
    people: dict[str, Practitioner] = {}
    out: list[Resource] = []
    for key, p in sorted(data.products.items()):
        people.setdefault(p.operator, _practitioner(study, p.operator))
        spec = data.specs.get(p.spec_id)
        collection = None
        if p.stage == "collection":
            donor_system = f"{TRIALDESK_SYSTEM}:{study}" if p.autologous else \
                f"{TRIALDESK_SYSTEM}:donor"
            collection = BiologicallyDerivedProductCollection(
                collector=_ref("Practitioner", f"{study}-user-{p.operator}"),
                source=_person_ref(study, p.donor.id, in_bundle if p.autologous else set(),
                                   donor_system),
                collectedDateTime=_moment(p.prepared_at))
        props = [_property("stage", "Stage", valueCodeableConcept=_text(p.stage)),
                 _property("prepared", "Prepared or collected",
                           valuePeriod=Period(start=_moment(p.prepared_at)))]
        if p.procedure:
            props.append(_property("procedure", "Collection procedure", valueString=p.procedure))
        counts = p.counts
        for code, display, number, unit, ucum in (
                ("tnc", "Total nucleated cells", counts.tnc, "cells", "{cells}"),
                ("mnc", "Mononuclear cells", counts.mnc, "cells", "{cells}"),
                ("viable-cells", "Viable cells", counts.viable_cells, "cells", "{cells}"),
                ("viability", "Viability", counts.viability_percent, "%", "%"),
                ("volume", "Volume", p.volume_ml, "mL", "mL")):
            if number is not None:
                props.append(_property(code, display, valueQuantity=_quantity(number, unit, ucum)))
        decision = latest.get(key)
        if decision is not None:
            status = "exceptional release" if decision.exceptional else (
                "released" if decision.released else "not released")
            props.append(_property("release", "Release decision", valueCodeableConcept=_text(status)))
        moves = data.handovers.get(key, ())
        storage = moves[-1].storage if moves and moves[-1].storage else p.storage
        if storage:
            props.append(_property("storage-location", "Storage position", valueString=storage))
        measured = [h for h in moves if h.temperature_c is not None]
        if measured:
            last = measured[-1]
            assert last.temperature_c is not None
            props.append(_property("storage-temperature", "Storage or shipping temperature at "
                                   f"the last hand-over ({_moment(last.at)})",
                                   valueQuantity=_quantity(last.temperature_c, "°C", "Cel")))
        out.append(BiologicallyDerivedProduct(
            id=_id(f"{study}-product-{p.id.barcode}"),
            productCategory=Coding(system=PRODUCT_CATEGORY_SYSTEM, code="cells", display="Cells"),
            productCode=CodeableConcept(
                coding=[Coding(system=ISBT_PRODUCT_CODE_SYSTEM, code=p.id.code.description)],
                text=spec.name if spec else p.spec_id),
            identifier=[Identifier(system=ISBT_DIN_SYSTEM, value=p.id.din.din13),
                        Identifier(system=f"{TRIALDESK_SYSTEM}:cell-product", value=key)],
            biologicalSourceEvent=Identifier(system=ISBT_DIN_SYSTEM, value=p.id.din.din13),
            division=p.id.code.division,
            parent=[_ref("BiologicallyDerivedProduct", f"{study}-product-{_barcode(data, p.parent.text)}")]
            if p.parent else None,
            productStatus=Coding(system=PRODUCT_STATUS_SYSTEM, code="unavailable",
                                 display="Unavailable") if key in infused else None,
            collection=collection, expirationDate=_moment(p.expires_at), property=props))
    for index, i in enumerate(sorted(data.infusions, key=lambda i: (i.start, i.patient)), start=1):
        notes = [f"event {i.event}"]
        if i.cells_per_kg is not None:
            notes.append(f"dose {i.cells_per_kg:.3g} viable cells/kg")
        if i.deadline is not None:
            notes.append(f"deadline {_moment(i.deadline)} {'met' if i.deadline_met else 'missed'}")
        out.append(Procedure(
            id=_id(f"{study}-infusion-{index}"), status="completed",
            code=_text(f"Infusion of {data.type_name(i.product)}"),
            subject=_person_ref(study, i.patient, in_bundle, f"{TRIALDESK_SYSTEM}:{study}"),
            occurrencePeriod=Period(start=_moment(i.start), end=_moment(i.end)),
            used=[CodeableReference(reference=_ref(
                "BiologicallyDerivedProduct", f"{study}-product-{_barcode(data, i.product)}"))],
            supportingInfo=[_ref("ResearchSubject", f"{study}-{i.patient}-subject")]
            if i.patient in in_bundle else None,
            note=[Annotation(text="; ".join(notes))]))
    places: dict[str, Location] = {}
    for key, moves in sorted(data.handovers.items()):
        if key not in data.products:
            continue
        for number, h in enumerate(moves, start=1):
            for person in (h.giver, h.receiver):
                people.setdefault(person, _practitioner(study, person))
            places.setdefault(h.location, Location(id=_id(f"{study}-place-{h.location}"),
                                                   name=h.location))
            temperature = "no temperature recorded" if h.temperature_c is None else \
                f"{h.temperature_c:g} °C"
            out.append(Provenance(
                id=_id(f"{study}-handover-{data.products[key].id.barcode}-{number}"),
                target=[_ref("BiologicallyDerivedProduct",
                             f"{study}-product-{data.products[key].id.barcode}")],
                occurredDateTime=_moment(h.at), recorded=_moment(h.at),
                location=_ref("Location", f"{study}-place-{h.location}"),
                activity=_text(f"hand-over ({temperature}; received {h.condition})"),
                agent=[_agent(study, "performer", "Performer", h.giver),
                       _agent(study, "custodian", "Custodian", h.receiver)]))
    return [*people.values(), *places.values(), *out]


def _agent(study: str, code: str, display: str, person: str) -> ProvenanceAgent:
    return ProvenanceAgent(
        type=CodeableConcept(coding=[Coding(system=PARTICIPANT_SYSTEM, code=code, display=display)]),
        who=_ref("Practitioner", f"{study}-user-{person}"))


def _barcode(data: TrialProducts, key: str) -> str:
    found = data.products.get(key)
    return found.id.barcode if found else key


def references(document: Mapping[str, Any]) -> list[str]:
    """Every ``reference`` string anywhere in a Bundle's JSON, in document order."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, item in node.items():
                if key == "reference" and isinstance(item, str):
                    found.append(item)
                else:
                    walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(document)
    return found


def unresolved_references(document: Mapping[str, Any]) -> list[str]:
    """The references of a Bundle that no entry's ``fullUrl`` answers (empty when all resolve)."""
    urls = {entry.get("fullUrl") for entry in document.get("entry", [])}
    return [r for r in references(document) if r not in urls]


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
