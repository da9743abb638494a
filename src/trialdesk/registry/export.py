"""A protocol's registry part back to a ClinicalTrials.gov API v2 study record.

:data:`HELD` names every v2 field the model holds; exporting an imported record gives
back exactly those fields (:func:`held`), which the round-trip test holds.
"""

from __future__ import annotations

from typing import Any

from trialdesk.protocol.model import Contact, Location, MeshTerm, Organisation, Outcome, Registry

_DATE = {"date": None, "type": None}
_ORG = {"name": None, "class": None}
_OUTCOME = {"measure": None, "description": None, "timeFrame": None}
_CONTACT = {"name": None, "role": None, "phone": None, "email": None}
_MESH = {"id": None, "term": None}

#: The v2 fields the protocol model holds: a dict is an object, a one-element list a list
#: of such objects, None a value.
HELD: dict[str, Any] = {
    "protocolSection": {
        "identificationModule": {
            "nctId": None,
            "orgStudyIdInfo": {"id": None},
            "secondaryIdInfos": [{"id": None, "type": None, "domain": None, "link": None}],
            "organization": {"fullName": None, "class": None},
            "acronym": None,
            "briefTitle": None,
            "officialTitle": None,
        },
        "statusModule": {
            "statusVerifiedDate": None,
            "overallStatus": None,
            "lastKnownStatus": None,
            "whyStopped": None,
            "startDateStruct": _DATE,
            "primaryCompletionDateStruct": _DATE,
            "completionDateStruct": _DATE,
            "studyFirstSubmitDate": None,
            "studyFirstPostDateStruct": {"date": None},
            "lastUpdatePostDateStruct": {"date": None},
        },
        "sponsorCollaboratorsModule": {
            "responsibleParty": {
                "type": None,
                "investigatorFullName": None,
                "investigatorTitle": None,
                "investigatorAffiliation": None,
            },
            "leadSponsor": _ORG,
            "collaborators": [_ORG],
        },
        "oversightModule": {
            "oversightHasDmc": None,
            "isFdaRegulatedDrug": None,
            "isFdaRegulatedDevice": None,
        },
        "descriptionModule": {"briefSummary": None, "detailedDescription": None},
        "conditionsModule": {"conditions": None, "keywords": None},
        "designModule": {
            "studyType": None,
            "phases": None,
            "designInfo": {
                "allocation": None,
                "interventionModel": None,
                "interventionModelDescription": None,
                "observationalModel": None,
                "timePerspective": None,
                "primaryPurpose": None,
                "maskingInfo": {"masking": None, "maskingDescription": None, "whoMasked": None},
            },
            "enrollmentInfo": {"count": None, "type": None},
        },
        "armsInterventionsModule": {
            "armGroups": [{"label": None, "type": None, "description": None, "interventionNames": None}],
            "interventions": [
                {"type": None, "name": None, "description": None, "armGroupLabels": None, "otherNames": None}
            ],
        },
        "outcomesModule": {
            "primaryOutcomes": [_OUTCOME],
            "secondaryOutcomes": [_OUTCOME],
            "otherOutcomes": [_OUTCOME],
        },
        "eligibilityModule": {
            "eligibilityCriteria": None,
            "healthyVolunteers": None,
            "sex": None,
            "minimumAge": None,
            "maximumAge": None,
            "stdAges": None,
            "studyPopulation": None,
            "samplingMethod": None,
        },
        "contactsLocationsModule": {
            "centralContacts": [_CONTACT],
            "overallOfficials": [{"name": None, "affiliation": None, "role": None}],
            "locations": [
                {
                    "facility": None,
                    "status": None,
                    "city": None,
                    "state": None,
                    "zip": None,
                    "country": None,
                    "geoPoint": {"lat": None, "lon": None},
                    "contacts": [_CONTACT],
                }
            ],
        },
        "referencesModule": {"references": [{"pmid": None, "type": None, "citation": None}]},
    },
    "derivedSection": {
        "conditionBrowseModule": {"meshes": [_MESH], "ancestors": [_MESH]},
        "interventionBrowseModule": {"meshes": [_MESH], "ancestors": [_MESH]},
    },
}


def held(record: Any, spec: Any = HELD) -> Any:
    """The part of a v2 record the model holds (empty objects and lists left out)."""
    if isinstance(spec, dict):
        if not isinstance(record, dict):
            return None
        out = {}
        for key, sub in spec.items():
            if key in record:
                value = held(record[key], sub)
                if value not in (None, {}, []):
                    out[key] = value
        return out
    if isinstance(spec, list):
        return [held(r, spec[0]) for r in record] if isinstance(record, list) else None
    return record


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _clean(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _org(o: Organisation, name: str = "name") -> dict[str, Any]:
    return {name: o.name, "class": o.org_class}


def _outcome(o: Outcome) -> dict[str, Any]:
    return {"measure": o.measure, "description": o.description, "timeFrame": o.time_frame}


def _contact(c: Contact) -> dict[str, Any]:
    return {"name": c.name, "role": c.role, "phone": c.phone, "email": c.email}


def _location(loc: Location) -> dict[str, Any]:
    return {
        "facility": loc.facility,
        "status": loc.status,
        "city": loc.city,
        "state": loc.state,
        "zip": loc.zip,
        "country": loc.country,
        "geoPoint": {"lat": loc.geo.lat, "lon": loc.geo.lon} if loc.geo else None,
        "contacts": [_contact(c) for c in loc.contacts],
    }


def _mesh(terms: list[MeshTerm]) -> list[dict[str, Any]]:
    return [{"id": m.id or None, "term": m.term} for m in terms]


def _date(value: str | None, kind: str | None) -> dict[str, Any]:
    return {"date": value, "type": kind}


def to_v2(registry: Registry) -> dict[str, Any]:
    """The registry part as a v2 study record (the fields in :data:`HELD`)."""
    r = registry
    ident, st, sp, d, el = r.identification, r.status, r.sponsor, r.design, r.eligibility
    party = sp.responsible_party
    # The model defaults allocation to NA and masking to NONE; observational and expanded
    # access records carry neither, so they are written only for interventional studies.
    interventional = d.study_type == "INTERVENTIONAL"
    section = {
        "identificationModule": {
            "nctId": ident.nct_id,
            "orgStudyIdInfo": {"id": ident.org_study_id},
            "secondaryIdInfos": [s.model_dump() for s in ident.secondary_id_infos],
            "organization": _org(ident.organization, "fullName") if ident.organization else None,
            "acronym": ident.acronym,
            "briefTitle": ident.brief_title,
            "officialTitle": ident.official_title,
        },
        "statusModule": {
            "statusVerifiedDate": st.status_verified_date,
            "overallStatus": st.overall_status,
            "lastKnownStatus": st.last_known_status,
            "whyStopped": st.why_stopped,
            "startDateStruct": _date(st.start_date, st.start_date_type),
            "primaryCompletionDateStruct": _date(st.primary_completion_date, st.primary_completion_date_type),
            "completionDateStruct": _date(st.completion_date, st.completion_date_type),
            "studyFirstSubmitDate": st.first_submitted,
            "studyFirstPostDateStruct": {"date": st.first_posted},
            "lastUpdatePostDateStruct": {"date": st.last_update_posted},
        },
        "sponsorCollaboratorsModule": {
            "responsibleParty": {
                "type": party.type,
                "investigatorFullName": party.investigator_full_name,
                "investigatorTitle": party.investigator_title,
                "investigatorAffiliation": party.investigator_affiliation,
            }
            if party
            else None,
            "leadSponsor": _org(sp.lead_sponsor),
            "collaborators": [_org(c) for c in sp.collaborators],
        },
        "oversightModule": {
            "oversightHasDmc": r.oversight.has_dmc,
            "isFdaRegulatedDrug": r.oversight.is_fda_regulated_drug,
            "isFdaRegulatedDevice": r.oversight.is_fda_regulated_device,
        }
        if r.oversight
        else None,
        "descriptionModule": {
            "briefSummary": r.description.brief_summary or None,
            "detailedDescription": r.description.detailed_description,
        },
        "conditionsModule": {"conditions": r.conditions, "keywords": r.keywords},
        "designModule": {
            "studyType": d.study_type,
            "phases": d.phases,
            "designInfo": {
                "allocation": d.allocation if interventional or d.allocation != "NA" else None,
                "interventionModel": d.intervention_model,
                "interventionModelDescription": d.intervention_model_description,
                "observationalModel": d.observational_model,
                "timePerspective": d.time_perspective,
                "primaryPurpose": d.primary_purpose,
                "maskingInfo": {
                    "masking": d.masking if interventional or d.masking != "NONE" else None,
                    "maskingDescription": d.masking_description,
                    "whoMasked": d.who_masked,
                },
            },
            "enrollmentInfo": {"count": d.enrollment.count, "type": d.enrollment.type}
            if d.enrollment
            else None,
        },
        "armsInterventionsModule": {
            "armGroups": [
                {
                    "label": a.label,
                    "type": a.type,
                    "description": a.description,
                    "interventionNames": a.intervention_names,
                }
                for a in r.arms_interventions.arm_groups
            ],
            "interventions": [
                {
                    "type": i.type,
                    "name": i.name,
                    "description": i.description,
                    "armGroupLabels": i.arm_group_labels,
                    "otherNames": i.other_names,
                }
                for i in r.arms_interventions.interventions
            ],
        },
        "outcomesModule": {
            "primaryOutcomes": [_outcome(o) for o in r.outcomes.primary],
            "secondaryOutcomes": [_outcome(o) for o in r.outcomes.secondary],
            "otherOutcomes": [_outcome(o) for o in r.outcomes.other],
        },
        "eligibilityModule": {
            "eligibilityCriteria": el.criteria_text,
            "healthyVolunteers": el.healthy_volunteers,
            "sex": el.sex,
            "minimumAge": el.minimum_age,
            "maximumAge": el.maximum_age,
            "stdAges": el.std_ages,
            "studyPopulation": el.study_population,
            "samplingMethod": el.sampling_method,
        },
        "contactsLocationsModule": {
            "centralContacts": [_contact(c) for c in r.contacts_locations.central_contacts],
            "overallOfficials": [o.model_dump() for o in r.contacts_locations.overall_officials],
            "locations": [_location(loc) for loc in r.contacts_locations.locations],
        },
        "referencesModule": {
            "references": [{"pmid": x.pmid, "type": x.type, "citation": x.citation} for x in r.references]
        },
    }
    mesh = r.mesh
    derived = (
        {
            "conditionBrowseModule": {
                "meshes": _mesh(mesh.conditions),
                "ancestors": _mesh(mesh.condition_ancestors),
            },
            "interventionBrowseModule": {
                "meshes": _mesh(mesh.interventions),
                "ancestors": _mesh(mesh.intervention_ancestors),
            },
        }
        if mesh
        else {}
    )
    return _clean({"protocolSection": section, "derivedSection": derived})
