"""ClinicalTrials.gov records in: API v2 study JSON, v2 search responses, classic XML.

Every record becomes one :class:`~trialdesk.protocol.model.Registry` plus its eligibility
text. A classic ``clinical_study`` XML record is first rewritten into the v2 shape
(:func:`xml_to_v2`), so one path reads both. A malformed record raises one
:class:`~trialdesk.errors.RegistryError` naming the file, the path inside the record and
the reason; :func:`studies_in` yields each study of a document on its own, so one bad
study does not stop the others.

>>> reg = registry_from_v2({"protocolSection": {
...     "identificationModule": {"nctId": "NCT00000001", "briefTitle": "A trial"},
...     "statusModule": {"overallStatus": "RECRUITING", "startDateStruct": {"date": "2024-05"}},
...     "sponsorCollaboratorsModule": {"leadSponsor": {"name": "A hospital"}},
...     "designModule": {"studyType": "INTERVENTIONAL", "phases": ["PHASE1", "PHASE2"]}}})
>>> reg.identification.nct_id, reg.status.start_date, reg.design.phases
('NCT00000001', '2024-05', ['PHASE1', 'PHASE2'])
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, get_args
from xml.etree.ElementTree import Element

from pydantic import ValidationError

from trialdesk.errors import RegistryError
from trialdesk.protocol.model import (
    ArmGroup,
    ArmsInterventions,
    Contact,
    ContactsLocations,
    Description,
    Design,
    Enrollment,
    GeoPoint,
    Identification,
    Intervention,
    Location,
    MeshTerm,
    MeshTerms,
    Official,
    Organisation,
    Outcome,
    Outcomes,
    Oversight,
    Reference,
    Registry,
    RegistryEligibility,
    ResponsibleParty,
    SecondaryId,
    Sponsor,
    Status,
)

SOURCE = "ClinicalTrials.gov"
_NCT = re.compile(r"^NCT\d{8}$")


@dataclass(frozen=True)
class Study:
    """One study taken from a document: the v2-shaped record and where it came from."""

    record: Mapping[str, Any]
    where: str  # "file" or "file: $.studies[3]"
    format: str  # "v2" or "xml"


def studies_in(document: Any, *, source: str) -> Iterator[Study]:
    """The studies of a parsed JSON document: one study, or a search response's list."""
    if isinstance(document, dict) and isinstance(document.get("studies"), list):
        for i, study in enumerate(document["studies"]):
            yield Study(study, f"{source}: $.studies[{i}]", "v2")
    elif isinstance(document, dict) and "protocolSection" in document:
        yield Study(document, source, "v2")
    else:
        raise RegistryError(
            "neither a v2 study (protocolSection) nor a search response (studies)", where=source
        )


# ---------------------------------------------------------------------------
# Reading v2


class _Reader:
    """Typed access to a v2 record; a wrong or missing value names its path."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, path: str, reason: str) -> RegistryError:
        return RegistryError(reason, where=f"{self.where}: $.{path}")

    def obj(self, d: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        value = d.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(f"{path}.{key}", "expected an object")
        return value

    def objs(self, d: Mapping[str, Any], key: str, path: str) -> list[Mapping[str, Any]]:
        value = d.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(f"{path}.{key}", "expected a list of objects")
        return value

    def strs(self, d: Mapping[str, Any], key: str, path: str) -> list[str]:
        value = d.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"{path}.{key}", "expected a list of strings")
        return value

    def text(self, d: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> str | None:
        value = d.get(key)
        if value is None:
            if required:
                raise self.fail(f"{path}.{key}", "required field is missing")
            return None
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise self.fail(f"{path}.{key}", "expected text")
        return str(value)

    def flag(self, d: Mapping[str, Any], key: str, path: str) -> bool | None:
        value = d.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.fail(f"{path}.{key}", "expected true or false")
        return value

    def date(self, d: Mapping[str, Any], key: str, path: str) -> tuple[str | None, str | None]:
        """A ``*DateStruct`` (``{"date": "2020-07", "type": "ACTUAL"}``) or a plain date."""
        value = d.get(key)
        if value is None:
            return None, None
        kind = None
        if isinstance(value, dict):
            kind = value.get("type")
            value = value.get("date")
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", value):
            raise self.fail(f"{path}.{key}", f"not a date YYYY-MM or YYYY-MM-DD: {value!r}")
        if kind not in (None, "ACTUAL", "ESTIMATED"):
            raise self.fail(f"{path}.{key}.type", f"unknown date type {kind!r}")
        return value, kind


def _org(r: _Reader, d: Mapping[str, Any], path: str, name_key: str = "name") -> Organisation:
    name = r.text(d, name_key, path, required=True) or ""
    return Organisation.model_validate({"name": name, "class": d.get("class")})


def _outcomes(r: _Reader, d: Mapping[str, Any], key: str, path: str) -> list[Outcome]:
    return [
        Outcome(
            measure=r.text(o, "measure", f"{path}.{key}[{i}]", required=True) or "",
            description=o.get("description"),
            time_frame=o.get("timeFrame"),
        )
        for i, o in enumerate(r.objs(d, key, path))
    ]


def _contact(c: Mapping[str, Any]) -> Contact:
    return Contact(name=c.get("name"), role=c.get("role"), phone=c.get("phone"), email=c.get("email"))


def _location(r: _Reader, loc: Mapping[str, Any], path: str) -> Location:
    geo = None
    point = loc.get("geoPoint")
    if point is not None:
        try:
            geo = GeoPoint(lat=point["lat"], lon=point["lon"])
        except (KeyError, TypeError, ValidationError):
            raise r.fail(f"{path}.geoPoint", "expected lat within ±90 and lon within ±180") from None
    return Location(
        facility=loc.get("facility"),
        status=loc.get("status"),
        city=loc.get("city"),
        state=loc.get("state"),
        zip=loc.get("zip"),
        country=loc.get("country"),
        geo=geo,
        contacts=[_contact(c) for c in r.objs(loc, "contacts", path)],
    )


def _mesh(r: _Reader, d: Mapping[str, Any], key: str, path: str) -> list[MeshTerm]:
    return [
        MeshTerm(id=str(m.get("id", "")), term=r.text(m, "term", f"{path}.{key}[{i}]", required=True) or "")
        for i, m in enumerate(r.objs(d, key, path))
    ]


def registry_from_v2(
    study: Mapping[str, Any], *, where: str = "<record>", source: str | None = None
) -> Registry:
    """The registry part of a protocol from one v2 study record."""
    r = _Reader(where)
    ps = r.obj(study, "protocolSection", "")
    if not ps:
        raise r.fail("protocolSection", "required field is missing")
    p = "protocolSection"
    ident = r.obj(ps, "identificationModule", p)
    ip = f"{p}.identificationModule"
    nct = r.text(ident, "nctId", ip, required=True)
    if nct is None or not _NCT.match(nct):
        raise r.fail(f"{ip}.nctId", f"not an NCT number (NCT and 8 digits): {nct!r}")
    org = r.obj(ident, "organization", ip)
    identification = Identification(
        nct_id=nct,
        org_study_id=r.obj(ident, "orgStudyIdInfo", ip).get("id"),
        secondary_id_infos=[
            SecondaryId(id=s.get("id", ""), type=s.get("type"), domain=s.get("domain"), link=s.get("link"))
            for s in r.objs(ident, "secondaryIdInfos", ip)
        ],
        organization=_org(r, org, f"{ip}.organization", "fullName") if org else None,
        acronym=ident.get("acronym"),
        brief_title=r.text(ident, "briefTitle", ip, required=True) or "",
        official_title=ident.get("officialTitle"),
    )
    st = r.obj(ps, "statusModule", p)
    sp = f"{p}.statusModule"
    dates: dict[str, Any] = {}
    for key, name in (
        ("startDateStruct", "start_date"),
        ("primaryCompletionDateStruct", "primary_completion_date"),
        ("completionDateStruct", "completion_date"),
    ):
        dates[name], dates[f"{name}_type"] = r.date(st, key, sp)
    for key, name in (
        ("statusVerifiedDate", "status_verified_date"),
        ("studyFirstSubmitDate", "first_submitted"),
        ("studyFirstPostDateStruct", "first_posted"),
        ("lastUpdatePostDateStruct", "last_update_posted"),
    ):
        dates[name] = r.date(st, key, sp)[0]
    status_text = r.text(st, "overallStatus", sp, required=True)
    if status_text not in get_args(Status.model_fields["overall_status"].annotation):
        raise r.fail(f"{sp}.overallStatus", f"unknown status {status_text!r}")
    status = Status(
        overall_status=status_text,
        last_known_status=st.get("lastKnownStatus"),
        why_stopped=st.get("whyStopped"),
        **dates,
    )
    spon = r.obj(ps, "sponsorCollaboratorsModule", p)
    spp = f"{p}.sponsorCollaboratorsModule"
    if "leadSponsor" not in spon:
        raise r.fail(f"{spp}.leadSponsor", "required field is missing")
    party = r.obj(spon, "responsibleParty", spp)
    sponsor = Sponsor(
        lead_sponsor=_org(r, r.obj(spon, "leadSponsor", spp), f"{spp}.leadSponsor"),
        collaborators=[
            _org(r, c, f"{spp}.collaborators[{i}]") for i, c in enumerate(r.objs(spon, "collaborators", spp))
        ],
        responsible_party=ResponsibleParty(
            type=party.get("type"),
            investigator_full_name=party.get("investigatorFullName"),
            investigator_title=party.get("investigatorTitle"),
            investigator_affiliation=party.get("investigatorAffiliation"),
        )
        if party
        else None,
    )
    ov = r.obj(ps, "oversightModule", p)
    op = f"{p}.oversightModule"
    oversight = (
        Oversight(
            has_dmc=r.flag(ov, "oversightHasDmc", op),
            is_fda_regulated_drug=r.flag(ov, "isFdaRegulatedDrug", op),
            is_fda_regulated_device=r.flag(ov, "isFdaRegulatedDevice", op),
        )
        if ov
        else None
    )
    desc = r.obj(ps, "descriptionModule", p)
    cond = r.obj(ps, "conditionsModule", p)
    cp = f"{p}.conditionsModule"
    des = r.obj(ps, "designModule", p)
    dp = f"{p}.designModule"
    info = r.obj(des, "designInfo", dp)
    masking = r.obj(info, "maskingInfo", f"{dp}.designInfo")
    enrol = r.obj(des, "enrollmentInfo", dp)
    study_type = r.text(des, "studyType", dp, required=True)
    try:
        design = Design(
            study_type=study_type,
            phases=r.strs(des, "phases", dp),
            allocation=info.get("allocation", "NA"),
            intervention_model=info.get("interventionModel"),
            intervention_model_description=info.get("interventionModelDescription"),
            observational_model=info.get("observationalModel"),
            time_perspective=info.get("timePerspective"),
            masking=masking.get("masking", "NONE"),
            masking_description=masking.get("maskingDescription"),
            who_masked=r.strs(masking, "whoMasked", f"{dp}.designInfo.maskingInfo"),
            primary_purpose=info.get("primaryPurpose"),
            enrollment=Enrollment(count=enrol["count"], type=enrol.get("type", "ESTIMATED"))
            if "count" in enrol
            else None,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise r.fail(f"{dp}.{'.'.join(str(x) for x in err['loc'])}", str(err["msg"])) from None
    arms = r.obj(ps, "armsInterventionsModule", p)
    ap = f"{p}.armsInterventionsModule"
    arms_interventions = ArmsInterventions(
        arm_groups=[
            ArmGroup(
                label=r.text(a, "label", f"{ap}.armGroups[{i}]", required=True) or "",
                type=a.get("type"),
                description=a.get("description"),
                intervention_names=r.strs(a, "interventionNames", f"{ap}.armGroups[{i}]"),
            )
            for i, a in enumerate(r.objs(arms, "armGroups", ap))
        ],
        interventions=[
            Intervention(
                type=r.text(v, "type", f"{ap}.interventions[{i}]", required=True) or "",
                name=r.text(v, "name", f"{ap}.interventions[{i}]", required=True) or "",
                description=v.get("description"),
                arm_group_labels=r.strs(v, "armGroupLabels", f"{ap}.interventions[{i}]"),
                other_names=r.strs(v, "otherNames", f"{ap}.interventions[{i}]"),
            )
            for i, v in enumerate(r.objs(arms, "interventions", ap))
        ],
    )
    el = r.obj(ps, "eligibilityModule", p)
    ep = f"{p}.eligibilityModule"
    sex = el.get("sex", "ALL")
    if sex not in ("ALL", "FEMALE", "MALE"):
        raise r.fail(f"{ep}.sex", f"expected ALL, FEMALE or MALE, not {sex!r}")
    eligibility = RegistryEligibility(
        sex=sex,
        minimum_age=_age_text(r, el, "minimumAge", ep),
        maximum_age=_age_text(r, el, "maximumAge", ep),
        healthy_volunteers=bool(r.flag(el, "healthyVolunteers", ep)),
        criteria_text=el.get("eligibilityCriteria"),
        std_ages=r.strs(el, "stdAges", ep),
        study_population=el.get("studyPopulation"),
        sampling_method=el.get("samplingMethod"),
    )
    out = r.obj(ps, "outcomesModule", p)
    outp = f"{p}.outcomesModule"
    outcomes = Outcomes(
        primary=_outcomes(r, out, "primaryOutcomes", outp),
        secondary=_outcomes(r, out, "secondaryOutcomes", outp),
        other=_outcomes(r, out, "otherOutcomes", outp),
    )
    cl = r.obj(ps, "contactsLocationsModule", p)
    clp = f"{p}.contactsLocationsModule"
    locations = [
        _location(r, loc, f"{clp}.locations[{i}]") for i, loc in enumerate(r.objs(cl, "locations", clp))
    ]
    contacts = ContactsLocations(
        central_contacts=[_contact(c) for c in r.objs(cl, "centralContacts", clp)],
        overall_officials=[
            Official(
                name=r.text(o, "name", f"{clp}.overallOfficials[{i}]", required=True) or "",
                affiliation=o.get("affiliation"),
                role=o.get("role"),
            )
            for i, o in enumerate(r.objs(cl, "overallOfficials", clp))
        ],
        locations=locations,
        location_count=len(locations),
    )
    refs = r.obj(ps, "referencesModule", p)
    rp = f"{p}.referencesModule"
    references = [
        Reference(
            citation=r.text(x, "citation", f"{rp}.references[{i}]", required=True) or "",
            pmid=x.get("pmid"),
            type=x.get("type"),
        )
        for i, x in enumerate(r.objs(refs, "references", rp))
    ]
    derived = r.obj(study, "derivedSection", "")
    cb = r.obj(derived, "conditionBrowseModule", "derivedSection")
    ib = r.obj(derived, "interventionBrowseModule", "derivedSection")
    cbp, ibp = "derivedSection.conditionBrowseModule", "derivedSection.interventionBrowseModule"
    mesh = (
        MeshTerms(
            conditions=_mesh(r, cb, "meshes", cbp),
            condition_ancestors=_mesh(r, cb, "ancestors", cbp),
            interventions=_mesh(r, ib, "meshes", ibp),
            intervention_ancestors=_mesh(r, ib, "ancestors", ibp),
        )
        if cb or ib
        else None
    )
    return Registry(
        identification=identification,
        status=status,
        sponsor=sponsor,
        oversight=oversight,
        description=Description(
            brief_summary=desc.get("briefSummary", ""), detailed_description=desc.get("detailedDescription")
        ),
        conditions=r.strs(cond, "conditions", cp),
        keywords=r.strs(cond, "keywords", cp),
        design=design,
        arms_interventions=arms_interventions,
        eligibility=eligibility,
        outcomes=outcomes,
        contacts_locations=contacts,
        references=references,
        mesh=mesh,
        source=source or f"{SOURCE} {nct} ({where})",
    )


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s+(Years?|Months?|Weeks?|Days?|Hours?|Minutes?)\s*$", re.I)


def _age_text(r: _Reader, el: Mapping[str, Any], key: str, path: str) -> str | None:
    """A registry age limit as given ("18 Months"); absent (v2) or "N/A" (XML) is no limit."""
    value = el.get(key)
    if value is None or (isinstance(value, str) and value.strip().upper() in ("N/A", "NA", "")):
        return None
    if not isinstance(value, str) or not _AGE.match(value):
        raise r.fail(f"{path}.{key}", f"not an age like '18 Months' or '5 Years': {value!r}")
    return value.strip()


def age_limit(text: str | None) -> tuple[float, str] | None:
    """An age limit as (number, unit in singular lower case); None when there is none.

    >>> age_limit("18 Months"), age_limit("1 Year"), age_limit(None)
    ((18.0, 'month'), (1.0, 'year'), None)
    """
    if text is None:
        return None
    m = _AGE.match(text)
    if not m:
        return None
    return float(m.group(1)), m.group(2).lower().rstrip("s")


# ---------------------------------------------------------------------------
# Classic XML -> v2 shape

_STATUS = {
    "Approved for marketing": "APPROVED_FOR_MARKETING",
    "Available": "AVAILABLE",
    "No longer available": "NO_LONGER_AVAILABLE",
    "Withheld": "WITHHELD",
    "Temporarily not available": "TEMPORARILY_NOT_AVAILABLE",
    "Unknown status": "UNKNOWN",
}
_CLASS = {
    "U.S. Fed": "FED",
    "Other": "OTHER",
    "Industry": "INDUSTRY",
    "NIH": "NIH",
    "Other U.S. Federal agency": "OTHER_GOV",
    "Individual": "INDIV",
    "Network": "NETWORK",
}
_MODEL = {
    "Single Group Assignment": "SINGLE_GROUP",
    "Parallel Assignment": "PARALLEL",
    "Crossover Assignment": "CROSSOVER",
    "Factorial Assignment": "FACTORIAL",
    "Sequential Assignment": "SEQUENTIAL",
}
_MONTHS = {
    m: i
    for i, m in enumerate(
        (
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ),
        start=1,
    )
}


def _enum(text: str | None) -> str | None:
    """'Active, not recruiting' -> 'ACTIVE_NOT_RECRUITING'; 'Non-Randomized' -> 'NON_RANDOMIZED'."""
    if text is None:
        return None
    return re.sub(r"[^A-Z0-9]+", "_", text.strip().upper()).strip("_")


def _xml_date(text: str | None, where: str) -> str | None:
    """'June 2011' -> '2011-06'; 'March 15, 2008' -> '2008-03-15'."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([A-Za-z]+)\s+(?:(\d{1,2}),\s*)?(\d{4})\s*", text)
    if not m or m.group(1).lower() not in _MONTHS:
        raise RegistryError(f"not a date like 'June 2011' or 'March 15, 2008': {text!r}", where=where)
    month, day, year = _MONTHS[m.group(1).lower()], m.group(2), m.group(3)
    return f"{year}-{month:02d}" + (f"-{int(day):02d}" if day else "")


def _block(el: Element | None, path: str) -> str | None:
    """The text of ``path/textblock`` (or of ``path``), dedented, wrapped lines kept."""
    if el is None:
        return None
    node = el.find(f"{path}/textblock")
    if node is None:
        node = el.find(path)
    if node is None or node.text is None:
        return None
    return textwrap.dedent(node.text.strip("\n")).strip()


def _t(el: Element | None, path: str) -> str | None:
    if el is None:
        return None
    node = el.find(path)
    return node.text.strip() if node is not None and node.text is not None else None


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in (None, [], {})}


def _date_struct(root: Element, tag: str, where: str) -> dict[str, Any] | None:
    node = root.find(tag)
    if node is None:
        return None
    kind = node.get("type")
    return _drop_none(
        {
            "date": _xml_date(node.text, f"{where}: {tag}"),
            "type": {"Anticipated": "ESTIMATED", "Estimate": "ESTIMATED", "Actual": "ACTUAL"}.get(kind or ""),
        }
    )


def _phases(text: str | None) -> list[str]:
    if text is None or text == "N/A":
        return ["NA"] if text else []
    # "Phase 1/Phase 2" -> ["PHASE1", "PHASE2"]; "Early Phase 1" -> ["EARLY_PHASE1"] (v2 names)
    return [(_enum(p) or "").replace("PHASE_", "PHASE") for p in text.split("/")]


def xml_to_v2(root: Element, *, where: str) -> dict[str, Any]:
    """A classic ``clinical_study`` element rewritten as a v2 study record."""
    if root.tag != "clinical_study":
        raise RegistryError(f"expected a clinical_study element, found {root.tag}", where=where)
    nct = _t(root, "id_info/nct_id")
    status = _t(root, "overall_status")
    study_type = _t(root, "study_type") or ""
    design = root.find("study_design_info")
    masking = _t(design, "masking") or ""
    who = re.findall(r"Participant|Care Provider|Investigator|Outcomes Assessor", masking)
    enrollment = root.find("enrollment")
    arm_names: dict[str, list[str]] = {}
    interventions = []
    for iv in root.findall("intervention"):
        labels = [x.text.strip() for x in iv.findall("arm_group_label") if x.text]
        kind, name = _t(iv, "intervention_type") or "Other", _t(iv, "intervention_name") or ""
        for label in labels:
            arm_names.setdefault(label, []).append(f"{kind}: {name}")
        interventions.append(
            _drop_none(
                {
                    "type": _enum(kind),
                    "name": name,
                    "description": _block(iv, "description"),
                    "armGroupLabels": labels,
                    "otherNames": [x.text.strip() for x in iv.findall("other_name") if x.text],
                }
            )
        )
    arm_groups = [
        _drop_none(
            {
                "label": _t(a, "arm_group_label"),
                "type": _enum(_t(a, "arm_group_type")),
                "description": _block(a, "description"),
                "interventionNames": arm_names.get(_t(a, "arm_group_label") or "", []),
            }
        )
        for a in root.findall("arm_group")
    ]
    el = root.find("eligibility")
    healthy = _t(el, "healthy_volunteers")

    def outcomes(tag: str) -> list[dict[str, Any]]:
        return [
            _drop_none(
                {
                    "measure": _t(o, "measure"),
                    "timeFrame": _t(o, "time_frame"),
                    "description": _block(o, "description"),
                }
            )
            for o in root.findall(tag)
        ]

    def org(node: Element) -> dict[str, Any]:
        cls = _t(node, "agency_class")
        return _drop_none({"name": _t(node, "agency"), "class": _CLASS.get(cls or "", _enum(cls))})

    def contact(node: Element, role: str | None = None) -> dict[str, Any]:
        return _drop_none(
            {
                "name": _t(node, "last_name"),
                "role": role or _enum(_t(node, "role")),
                "phone": _t(node, "phone"),
                "email": _t(node, "email"),
            }
        )

    locations = []
    for loc in root.findall("location"):
        locations.append(
            _drop_none(
                {
                    "facility": _t(loc, "facility/name"),
                    "status": _enum(_t(loc, "status")),
                    "city": _t(loc, "facility/address/city"),
                    "state": _t(loc, "facility/address/state"),
                    "zip": _t(loc, "facility/address/zip"),
                    "country": _t(loc, "facility/address/country"),
                    "contacts": [contact(c, "CONTACT") for c in loc.findall("contact")],
                }
            )
        )
    lead = root.find("sponsors/lead_sponsor")
    status_module = _drop_none(
        {
            "overallStatus": _STATUS.get(status or "", _enum(status)),
            "lastKnownStatus": _enum(_t(root, "last_known_status")),
            "whyStopped": _t(root, "why_stopped"),
            "statusVerifiedDate": _xml_date(_t(root, "verification_date"), f"{where}: verification_date"),
            "startDateStruct": _date_struct(root, "start_date", where),
            "primaryCompletionDateStruct": _date_struct(root, "primary_completion_date", where),
            "completionDateStruct": _date_struct(root, "completion_date", where),
            "studyFirstSubmitDate": _xml_date(
                _t(root, "study_first_submitted"), f"{where}: study_first_submitted"
            ),
            "studyFirstPostDateStruct": _date_struct(root, "study_first_posted", where),
            "lastUpdatePostDateStruct": _date_struct(root, "last_update_posted", where),
        }
    )
    ov = root.find("oversight_info")
    yes = {"Yes": True, "No": False}
    section = {
        "identificationModule": _drop_none(
            {
                "nctId": nct,
                "orgStudyIdInfo": _drop_none({"id": _t(root, "id_info/org_study_id")}),
                "secondaryIdInfos": [
                    {"id": x.text.strip()} for x in root.findall("id_info/secondary_id") if x.text
                ],
                "briefTitle": _t(root, "brief_title"),
                "officialTitle": _t(root, "official_title"),
                "acronym": _t(root, "acronym"),
            }
        ),
        "statusModule": status_module,
        "sponsorCollaboratorsModule": _drop_none(
            {
                "leadSponsor": org(lead) if lead is not None else None,
                "collaborators": [org(c) for c in root.findall("sponsors/collaborator")],
            }
        ),
        "oversightModule": _drop_none(
            {
                "oversightHasDmc": yes.get(_t(ov, "has_dmc") or ""),
                "isFdaRegulatedDrug": yes.get(_t(ov, "is_fda_regulated_drug") or ""),
                "isFdaRegulatedDevice": yes.get(_t(ov, "is_fda_regulated_device") or ""),
            }
        ),
        "descriptionModule": _drop_none(
            {
                "briefSummary": _block(root, "brief_summary"),
                "detailedDescription": _block(root, "detailed_description"),
            }
        ),
        "conditionsModule": _drop_none(
            {
                "conditions": [x.text.strip() for x in root.findall("condition") if x.text],
                "keywords": [x.text.strip() for x in root.findall("keyword") if x.text],
            }
        ),
        "designModule": _drop_none(
            {
                "studyType": "EXPANDED_ACCESS"
                if study_type.startswith("Expanded")
                else "OBSERVATIONAL"
                if study_type.startswith("Observational")
                else _enum(study_type),
                "phases": _phases(_t(root, "phase")),
                "designInfo": _drop_none(
                    {
                        "allocation": {"N/A": "NA"}.get(
                            _t(design, "allocation") or "", _enum(_t(design, "allocation"))
                        ),
                        "interventionModel": _MODEL.get(
                            _t(design, "intervention_model") or "", _enum(_t(design, "intervention_model"))
                        ),
                        "observationalModel": _enum(_t(design, "observational_model")),
                        "timePerspective": _enum(_t(design, "time_perspective")),
                        "primaryPurpose": _enum(_t(design, "primary_purpose")),
                        "maskingInfo": _drop_none(
                            {
                                "masking": _enum(masking.split("(")[0]) if masking else None,
                                "whoMasked": [_enum(w) for w in who],
                            }
                        ),
                    }
                ),
                "enrollmentInfo": _drop_none(
                    {
                        "count": int(enrollment.text or "")
                        if enrollment is not None and (enrollment.text or "").strip().isdigit()
                        else None,
                        "type": {"Anticipated": "ESTIMATED", "Actual": "ACTUAL"}.get(
                            enrollment.get("type", "") if enrollment is not None else ""
                        ),
                    }
                ),
            }
        ),
        "armsInterventionsModule": _drop_none({"armGroups": arm_groups, "interventions": interventions}),
        "outcomesModule": _drop_none(
            {
                "primaryOutcomes": outcomes("primary_outcome"),
                "secondaryOutcomes": outcomes("secondary_outcome"),
                "otherOutcomes": outcomes("other_outcome"),
            }
        ),
        "eligibilityModule": _drop_none(
            {
                "eligibilityCriteria": _block(el, "criteria"),
                "sex": _enum(_t(el, "gender")) or "ALL",
                "minimumAge": _t(el, "minimum_age"),
                "maximumAge": _t(el, "maximum_age"),
                "healthyVolunteers": None if healthy is None else healthy.startswith(("Yes", "Accepts")),
                "studyPopulation": _block(el, "study_pop"),
                "samplingMethod": _enum(_t(el, "sampling_method")),
            }
        ),
        "contactsLocationsModule": _drop_none(
            {
                "centralContacts": [contact(c, "CONTACT") for c in root.findall("overall_contact")]
                + [contact(c, "CONTACT") for c in root.findall("overall_contact_backup")],
                "overallOfficials": [
                    _drop_none(
                        {
                            "name": _t(o, "last_name"),
                            "role": _enum(_t(o, "role")),
                            "affiliation": _t(o, "affiliation"),
                        }
                    )
                    for o in root.findall("overall_official")
                ],
                "locations": locations,
            }
        ),
        "referencesModule": _drop_none(
            {
                "references": [
                    _drop_none(
                        {
                            "citation": _t(x, "citation"),
                            "pmid": _t(x, "PMID"),
                            "type": "RESULT" if x.tag == "results_reference" else "BACKGROUND",
                        }
                    )
                    for x in root.findall("reference") + root.findall("results_reference")
                ]
            }
        ),
    }
    derived = {
        "conditionBrowseModule": _drop_none(
            {
                "meshes": [
                    {"term": x.text.strip()} for x in root.findall("condition_browse/mesh_term") if x.text
                ]
            }
        ),
        "interventionBrowseModule": _drop_none(
            {
                "meshes": [
                    {"term": x.text.strip()} for x in root.findall("intervention_browse/mesh_term") if x.text
                ]
            }
        ),
    }
    return {"protocolSection": _drop_none(section), "derivedSection": _drop_none(derived)}


def parse_xml(data: bytes, *, where: str) -> Study:
    """One classic XML record (parsed with defusedxml: registry files are untrusted input)."""
    import defusedxml.ElementTree as SafeET
    from defusedxml import DefusedXmlException

    try:
        root = SafeET.fromstring(data)
    except SafeET.ParseError as exc:
        raise RegistryError(f"malformed XML: {exc}", where=where) from None
    except DefusedXmlException as exc:
        raise RegistryError(f"refused XML: {exc}", where=where) from None
    return Study(xml_to_v2(root, where=where), where, "xml")


def version_of(registry: Registry) -> str:
    """A protocol version for an imported record: the registry's last update date."""
    status = registry.status
    return f"registry {status.last_update_posted or status.status_verified_date or 'undated'}"
