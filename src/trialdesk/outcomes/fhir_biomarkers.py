"""FHIR R5 Observations of biomarker results, to add to the trial's Bundle
(:func:`trialdesk.outcomes.export_fhir.fhir_bundle`).

One Observation per current result of a sample: category ``laboratory``; the fact coded in
LOINC where the fact dictionary has a code (text otherwise: GD2 %, ADCC, dinutuximab beta
level have no LOINC term that fits); ``effectiveDateTime`` the collection time; the value
as ``valueQuantity`` (in the fact's unit), ``valueBoolean`` or ``valueString``; the method
as text; for GD2 the lesion or site as ``bodySite`` text; the sample's identifier as an
``identifier``. A germline genotype (FCGR2A H131R, FCGR3A V158F) follows the shape of the
Genotype profile of the HL7 Genomics Reporting IG (STU3, 3.0.0): category ``laboratory``,
code LOINC 84413-4 "Genotype display name", the genotype as ``valueCodeableConcept`` text
and the gene studied as a component (LOINC 48018-6 "Gene studied [ID]", gene symbol as
text — no HGNC code is given here). Subjects and studies are referenced by the same
``urn:uuid`` fullUrls as the Bundle's Patient and ResearchSubject entries.

>>> obs = biomarker_observations("RuMCeSS", [{"patient_id": "RU-1", "sample_id": "S1",
...     "fact": "il6", "value": 450.0, "unit": "pg/mL", "collected_at": "2026-11-21T09:05"}])
>>> obs[0].code.coding[0].code, float(obs[0].valueQuantity.value)
('26881-3', 450.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fhir.resources.codeableconcept import CodeableConcept
from fhir.resources.coding import Coding
from fhir.resources.identifier import Identifier
from fhir.resources.meta import Meta
from fhir.resources.observation import Observation, ObservationComponent
from fhir.resources.quantity import Quantity
from pydantic import ValidationError

from trialdesk.errors import OutcomeError
from trialdesk.facts.dictionary import FACTS
from trialdesk.outcomes.export_fhir import (
    LOINC_SYSTEM,
    TRIALDESK_SYSTEM,
    _category,
    _id,
    _ref,
)

#: The genes of the germline genotype facts (seed 001: Fcγ receptor polymorphisms).
GENOTYPE_GENES = {"fcgr2a_genotype": "FCGR2A", "fcgr3a_genotype": "FCGR3A"}
GENOTYPE_PROFILE = ("http://hl7.org/fhir/uv/genomics-reporting/StructureDefinition/genotype")
GENOTYPE_CODE = ("84413-4", "Genotype display name")  # LOINC
GENE_STUDIED = ("48018-6", "Gene studied [ID]")  # LOINC
SAMPLE_SYSTEM = f"{TRIALDESK_SYSTEM}:sample"


def _code(fact: str) -> CodeableConcept:
    definition = FACTS.get(fact)
    text = definition.description if definition else fact
    if definition is not None and definition.code and definition.code.startswith("LOINC "):
        return CodeableConcept(coding=[Coding(system=LOINC_SYSTEM,
                                              code=definition.code.removeprefix("LOINC "),
                                              display=text)], text=text)
    return CodeableConcept(text=text)


def _observation(study: str, index: int, r: Mapping[str, Any]) -> Observation:
    patient = str(r["patient_id"])
    fact = str(r["fact"])
    value = r["value"]
    common: dict[str, Any] = {
        "id": _id(f"{study}-bm-{index}"), "status": "final",
        "category": _category("laboratory", "Laboratory"),
        "subject": _ref("Patient", f"{study}-{patient}"),
        "focus": [_ref("ResearchSubject", f"{study}-{patient}-subject")],
        # Stored clinical times are UTC without a zone; FHIR wants one with a time.
        "effectiveDateTime": f"{str(r['collected_at'])[:16]}:00Z",
        "identifier": [Identifier(system=SAMPLE_SYSTEM, value=str(r["sample_id"]))],
        "method": CodeableConcept(text=r["method"]) if r.get("method") else None,
        "bodySite": CodeableConcept(text=r["site"]) if r.get("site") else None,
    }
    if fact in GENOTYPE_GENES:
        return Observation(
            **common, meta=Meta(profile=[GENOTYPE_PROFILE]),
            code=CodeableConcept(coding=[Coding(system=LOINC_SYSTEM, code=GENOTYPE_CODE[0],
                                                display=GENOTYPE_CODE[1])],
                                 text=FACTS[fact].description),
            valueCodeableConcept=CodeableConcept(text=f"{GENOTYPE_GENES[fact]} {value}"),
            component=[ObservationComponent(
                code=CodeableConcept(coding=[Coding(system=LOINC_SYSTEM, code=GENE_STUDIED[0],
                                                    display=GENE_STUDIED[1])]),
                valueCodeableConcept=CodeableConcept(text=GENOTYPE_GENES[fact]))])
    if isinstance(value, bool):
        return Observation(**common, code=_code(fact), valueBoolean=value)
    if isinstance(value, (int, float)):
        return Observation(**common, code=_code(fact),
                           valueQuantity=Quantity(value=float(value), unit=r.get("unit") or None))
    return Observation(**common, code=_code(fact), valueString=str(value))


def biomarker_observations(study: str, results: Sequence[Mapping[str, Any]]) -> list[Observation]:
    """One Observation per result (``patient_id``, ``sample_id``, ``fact``, ``value`` in the
    fact's unit, ``unit``, ``collected_at``, optional ``method`` and ``site``)."""
    out = []
    for index, r in enumerate(results, start=1):
        try:
            out.append(_observation(study, index, r))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise OutcomeError(f"{first['msg']} at {'.'.join(str(p) for p in first['loc'])}",
                               where=f"FHIR R5 Observation of {r.get('sample_id')}") from None
    return out


__all__ = ["GENOTYPE_GENES", "biomarker_observations"]
