"""CDISC ODM 1.3.2: a trial's study metadata and clinical data out, and the clinical data back.

Built and checked with odmlib's ODM 1.3.2 model (element order, OID uniqueness and
references, its conformance schema). What the file holds:

* Study events from the protocol's calendar: ``SE.SCREENING`` (eligibility), ``SE.ENROL``,
  one repeating event per protocol course (``SE.COURSE.<id>``; the repeat key is the course
  number), ``SE.ASSESS`` (repeating response assessments, when the protocol plans them)
  and ``SE.LOG`` (adverse events and laboratory results, which belong to no one visit).
* Forms: ``F.ELIG`` with one item per fact the eligibility rules read (type, unit, LOINC
  code and allowed values from the fact dictionary), and ``F.DM``, ``F.EX``, ``F.LB``,
  ``F.TU``, ``F.AE`` holding the outcome inputs (event table, exposure, labs, tumour
  measurements, adverse events) column by column. An adverse event's attributions and
  seriousness criteria are repeating item groups linked to it by ``AEKEY``.
* Clinical data: one ``SubjectData`` per patient, missing values left out (ODM has no
  empty ItemData).

:func:`read_odm` turns the clinical data back into the same input documents (the event
table, exposure, labs and tumour rows as text cells, the adverse events as the JSON the
``--aes`` option reads), so the trial's validators check them again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd

from trialdesk.errors import OutcomeError
from trialdesk.facts.dictionary import FactDef, FactType
from trialdesk.outcomes.events import EventTable
from trialdesk.outcomes.inputs import AdverseEvents, Exposure, Labs, Measurements
from trialdesk.protocol.model import Protocol

ODM_VERSION = "1.3.2"
_FACT_TYPES = {FactType.NUMBER: "float", FactType.INTEGER: "integer", FactType.BOOLEAN: "boolean",
               FactType.STRING: "text", FactType.DATE: "date", FactType.SET: "text"}
# The outcome input columns each form carries, with their ODM data types.
EXPOSURE_ITEMS = (("course", "integer"), ("course_id", "text"), ("agent", "text"), ("route", "text"),
                  ("start_date", "date"), ("end_date", "date"), ("dose", "float"), ("dose_unit", "text"))
LAB_ITEMS = (("date", "date"), ("test_code", "text"), ("test", "text"), ("value", "text"),
             ("unit", "text"), ("lower_limit", "float"), ("upper_limit", "float"),
             ("toxicity_grade", "integer"))
TUMOUR_ITEMS = (("assessment_date", "date"), ("sum_diameters_mm", "float"), ("overall_response", "text"))
AE_ITEMS = (("AEKEY", "integer"), ("course", "integer"), ("term", "text"), ("grade", "integer"),
            ("onset", "date"), ("resolution", "date"), ("ctcae_version", "text"), ("meddra_term", "text"),
            ("meddra_code", "text"), ("expectedness", "text"), ("action_taken", "text"),
            ("outcome", "text"), ("sponsor_aware_on", "date"))
AEREL_ITEMS = (("AEKEY", "integer"), ("agent", "text"), ("attribution", "text"))
AESER_ITEMS = (("AEKEY", "integer"), ("criterion", "text"))


@dataclass(frozen=True)
class _Group:
    oid: str
    name: str
    items: tuple[tuple[str, str], ...]


def eligibility_facts(rules: Mapping[str, Any]) -> list[FactDef]:
    """The facts the protocol's eligibility rules read, in first-use order, as the fact
    dictionary defines them (names it does not define are left out)."""
    from trialdesk.criteria.ast import facts_of
    from trialdesk.facts.dictionary import FactDictionary

    dictionary = FactDictionary()
    names = dict.fromkeys(n for expr in rules.values() for n in facts_of(expr))
    return [fact for n in names if (fact := dictionary.get(n)) is not None]


def _event_items(events: EventTable) -> tuple[tuple[str, str], ...]:
    return tuple((c, "date" if str(events.frame[c].dtype).startswith("datetime") else "text")
                 for c in events.frame.columns if c != "patient_id")


def _text(value: Any, kind: str) -> str | None:
    """A cell as ODM text (ISO 8601 dates, plain numbers); None when missing."""
    if value is None or (not isinstance(value, str | tuple | list) and pd.isna(value)):
        return None
    if kind == "date":
        return pd.Timestamp(value).date().isoformat()
    if kind == "integer":
        return str(int(value))
    if kind == "float":
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    text = str(value)
    return text if text else None


def odm_xml(protocol: Protocol, events: EventTable, *, facts: Sequence[FactDef] = (),
            aes: AdverseEvents | None = None, labs: Labs | None = None,
            measurements: Measurements | None = None, exposure: Exposure | None = None,
            created: datetime | None = None) -> bytes:
    """The trial as an ODM 1.3.2 document (study metadata and clinical data), checked."""
    from odmlib.odm_1_3_2 import model as odm

    mdv_oid = f"MDV.{protocol.id}.{protocol.version}"
    groups = {
        "F.DM": _Group("IG.DM", "Enrolment and outcome events", _event_items(events)),
        "F.EX": _Group("IG.EX", "Study treatment given", EXPOSURE_ITEMS),
        "F.LB": _Group("IG.LB", "Laboratory results", LAB_ITEMS),
        "F.TU": _Group("IG.TU", "Tumour measurements and response", TUMOUR_ITEMS),
    }
    ae_groups = (_Group("IG.AE", "Adverse events", AE_ITEMS),
                 _Group("IG.AEREL", "Attribution to each agent", AEREL_ITEMS),
                 _Group("IG.AESER", "Seriousness criteria", AESER_ITEMS))
    mdv = odm.MetaDataVersion(OID=mdv_oid, Name=f"{protocol.id} version {protocol.version}",
                              Description=protocol.title)
    course_ids = [c.id for c in protocol.courses]
    assesses = any(a.assessments for a in protocol.arms)
    event_defs = [("SE.SCREENING", "Screening", "No", "Scheduled", ["F.ELIG"]),
                  ("SE.ENROL", "Enrolment", "No", "Scheduled", ["F.DM"]),
                  *[(f"SE.COURSE.{c}", f"Course {c}", "Yes", "Scheduled", ["F.EX"]) for c in course_ids],
                  *([("SE.ASSESS", "Response assessment", "Yes", "Scheduled", ["F.TU"])] if assesses else []),
                  ("SE.LOG", "Adverse events and laboratory results", "No", "Common",
                   ["F.AE", "F.LB", *([] if assesses else ["F.TU"])])]
    mdv.Protocol = odm.Protocol(StudyEventRef=[
        odm.StudyEventRef(StudyEventOID=oid, OrderNumber=i, Mandatory="No")
        for i, (oid, *_rest) in enumerate(event_defs, start=1)])
    mdv.StudyEventDef = [
        odm.StudyEventDef(OID=oid, Name=name, Repeating=repeating, Type=kind, FormRef=[
            odm.FormRef(FormOID=form, OrderNumber=i, Mandatory="No") for i, form in enumerate(forms, 1)])
        for oid, name, repeating, kind, forms in event_defs]
    form_groups: dict[str, tuple[_Group, ...]] = {form: (g,) for form, g in groups.items()}
    form_groups["F.AE"] = ae_groups
    elig = _Group("IG.ELIG", "Eligibility facts", tuple((f.name, _FACT_TYPES[f.type]) for f in facts))
    form_groups = {"F.ELIG": (elig,), **form_groups}
    names = {"F.ELIG": "Eligibility", "F.DM": "Enrolment", "F.EX": "Exposure", "F.LB": "Laboratory",
             "F.TU": "Tumour assessment", "F.AE": "Adverse events"}
    mdv.FormDef = [odm.FormDef(OID=form, Name=names[form], Repeating="No", ItemGroupRef=[
        odm.ItemGroupRef(ItemGroupOID=g.oid, OrderNumber=i, Mandatory="No") for i, g in enumerate(gs, 1)])
        for form, gs in form_groups.items()]
    item_defs, codelists = [], []
    by_fact = {f.name: f for f in facts}
    group_defs = []
    for gs in form_groups.values():
        for g in gs:
            group_defs.append(odm.ItemGroupDef(
                OID=g.oid, Name=g.name, Repeating="No" if g.oid in ("IG.DM", "IG.ELIG") else "Yes",
                ItemRef=[odm.ItemRef(ItemOID=f"IT.{g.oid[3:]}.{c}", OrderNumber=i, Mandatory="No")
                         for i, (c, _) in enumerate(g.items, 1)]))
            for column, kind in g.items:
                oid = f"IT.{g.oid[3:]}.{column}"
                item = odm.ItemDef(OID=oid, Name=column, DataType=kind)
                fact = by_fact.get(column) if g.oid == "IG.ELIG" else None
                if fact is not None:
                    unit = f" ({fact.unit})" if fact.unit else ""
                    item.Question = odm.Question(TranslatedText=[odm.TranslatedText(
                        _content=fact.description + unit, lang="en")])
                    if fact.code:
                        item.Alias = [odm.Alias(Context="LOINC", Name=fact.code)]
                    if fact.values:
                        item.CodeListRef = odm.CodeListRef(CodeListOID=f"CL.{column}")
                        codelists.append(odm.CodeList(
                            OID=f"CL.{column}", Name=column, DataType="text",
                            EnumeratedItem=[odm.EnumeratedItem(CodedValue=v) for v in fact.values]))
                item_defs.append(item)
    mdv.ItemGroupDef = group_defs
    mdv.ItemDef = item_defs
    mdv.CodeList = codelists
    subjects = [_subject(odm, patient, groups, ae_groups, events, aes, labs, measurements, exposure,
                         course_ids, assesses)
                for patient in events.frame["patient_id"]]
    return _document(odm, protocol, mdv, subjects, file_oid=f"ODM.{protocol.id}", created=created)


def _document(odm: Any, protocol: Protocol, mdv: Any, subjects: list[Any], *, file_oid: str,
              created: datetime | None) -> bytes:
    """The ODM file of one study: its metadata version and clinical data, checked by odmlib."""
    study = odm.Study(OID=f"ST.{protocol.id}")
    study.GlobalVariables = odm.GlobalVariables(
        StudyName=odm.StudyName(_content=protocol.id),
        StudyDescription=odm.StudyDescription(_content=protocol.title),
        ProtocolName=odm.ProtocolName(_content=protocol.registry.identification.org_study_id or protocol.id))
    study.MetaDataVersion = [mdv]
    clinical = odm.ClinicalData(StudyOID=study.OID, MetaDataVersionOID=mdv.OID, SubjectData=subjects)
    stamp = (created or datetime(2000, 1, 1)).isoformat(timespec="seconds")
    root = odm.ODM(FileOID=file_oid, FileType="Snapshot", Granularity="All",
                   CreationDateTime=stamp, ODMVersion=ODM_VERSION, Originator="trialdesk",
                   SourceSystem="trialdesk", Study=[study], ClinicalData=[clinical])
    problems = check_odm_model(root)
    if problems:
        raise OutcomeError("; ".join(problems[:10]), where="ODM 1.3.2")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + root.to_xml_string()).encode("utf-8")


def _items(odm: Any, group: _Group, row: Mapping[str, Any], repeat: int | None) -> Any:
    data = [odm.ItemData(ItemOID=f"IT.{group.oid[3:]}.{c}", Value=v)
            for c, kind in group.items if (v := _text(row.get(c), kind)) is not None]
    out = odm.ItemGroupData(ItemGroupOID=group.oid, ItemData=data)
    if repeat is not None:
        out.ItemGroupRepeatKey = str(repeat)
    return out


def _rows(frame: pd.DataFrame | None, patient: str) -> list[dict[str, Any]]:
    if frame is None:
        return []
    return frame[frame["patient_id"] == patient].to_dict(orient="records")


def _subject(odm: Any, patient: str, groups: Mapping[str, _Group], ae_groups: tuple[_Group, ...],
             events: EventTable, aes: AdverseEvents | None, labs: Labs | None,
             measurements: Measurements | None, exposure: Exposure | None,
             course_ids: list[str], assesses: bool) -> Any:
    def form(oid: str, item_groups: list[Any]) -> Any:
        return odm.FormData(FormOID=oid, ItemGroupData=item_groups)

    visits = [odm.StudyEventData(StudyEventOID="SE.ENROL", FormData=[
        form("F.DM", [_items(odm, groups["F.DM"], row, None) for row in _rows(events.frame, patient)])])]
    by_course: dict[int, list[dict[str, Any]]] = {}
    for row in _rows(exposure.frame if exposure else None, patient):
        by_course.setdefault(int(row["course"]), []).append(row)
    for number, rows in sorted(by_course.items()):
        course_id = rows[0]["course_id"]
        if course_id not in course_ids:
            raise OutcomeError(f"course {number} of {patient}: {course_id!r} is not a course of the protocol "
                               f"({', '.join(course_ids)})", where="exposure.course_id")
        visits.append(odm.StudyEventData(
            StudyEventOID=f"SE.COURSE.{course_id}", StudyEventRepeatKey=str(number),
            FormData=[form("F.EX", [_items(odm, groups["F.EX"], r, i) for i, r in enumerate(rows, 1)])]))
    tumour = [_items(odm, groups["F.TU"], r, i)
              for i, r in enumerate(_rows(measurements.frame if measurements else None, patient), 1)]
    if assesses and tumour:
        visits.append(odm.StudyEventData(StudyEventOID="SE.ASSESS", StudyEventRepeatKey="1",
                                         FormData=[form("F.TU", tumour)]))
    log = []
    records = [r for r in (aes.records if aes else ()) if r.patient_id == patient]
    if records:
        item_groups = []
        for key, record in enumerate(records, 1):
            fields = record.event.model_dump(mode="json")
            row = {**fields, "AEKEY": key, "course": record.course}
            item_groups.append(_items(odm, ae_groups[0], row, key))
        n = 0
        for key, record in enumerate(records, 1):
            for a in record.event.attributions:
                n += 1
                item_groups.append(_items(odm, ae_groups[1], {"AEKEY": key, "agent": a.agent,
                                                               "attribution": a.attribution.value}, n))
        n = 0
        for key, record in enumerate(records, 1):
            for criterion in sorted(s.value for s in record.event.seriousness):
                n += 1
                item_groups.append(_items(odm, ae_groups[2], {"AEKEY": key, "criterion": criterion}, n))
        log.append(form("F.AE", item_groups))
    lab_rows = _rows(labs.frame if labs else None, patient)
    if lab_rows:
        log.append(form("F.LB", [_items(odm, groups["F.LB"], r, i) for i, r in enumerate(lab_rows, 1)]))
    if tumour and not assesses:
        log.append(form("F.TU", tumour))
    if log:
        visits.append(odm.StudyEventData(StudyEventOID="SE.LOG", FormData=log))
    return odm.SubjectData(SubjectKey=patient, TransactionType="Insert", StudyEventData=visits)


def check_odm_model(root: Any) -> list[str]:
    """odmlib's ODM 1.3.2 checks: element order, OIDs and their references, conformance."""
    from odmlib.odm_1_3_2.rules.metadata_schema import MetadataSchema
    from odmlib.oid_generator import create_oid_checker

    # odmlib's conformance schema covers the study metadata; order and OIDs cover everything.
    errors = root.validate(collect_errors=True, oid_checker=create_oid_checker("odm_1_3_2"))
    schema = MetadataSchema()
    for study in root.Study:
        errors += study.validate(collect_errors=True, conformance_checker=schema)
    return [str(e) for e in errors]


def _load(data: bytes) -> Any:
    from odmlib import loader, odm_loader

    reader = loader.ODMLoader(odm_loader.XMLODMLoader(model_package="odm_1_3_2",
                                                      ns_uri="http://www.cdisc.org/ns/odm/v1.3"))
    try:
        reader.load_odm_string(data.decode("utf-8"))
        return reader.root()
    except Exception as exc:  # odmlib raises its own and the XML parser's errors
        raise OutcomeError(f"not a readable ODM 1.3.2 document: {exc}", where="ODM file") from None


def check_odm(data: bytes) -> list[str]:
    """Load an ODM file with odmlib's ODM 1.3.2 model and run its checks."""
    return check_odm_model(_load(data))


def read_odm(data: bytes, *, trial: str) -> dict[str, Any]:
    """The clinical data of an ODM file written for ``trial``, as input documents:
    ``events``, ``exposure``, ``labs``, ``tumour`` (rows of text cells) and
    ``adverse_events`` (records as the adverse-event JSON holds them)."""
    root = _load(data)
    studies = [s.OID for s in root.Study]
    if f"ST.{trial}" not in studies:
        raise OutcomeError(f"the file holds {', '.join(studies) or 'no study'}, not ST.{trial}",
                           where="ODM Study OID")
    out: dict[str, list[dict[str, Any]]] = {"events": [], "exposure": [], "labs": [], "tumour": [],
                                            "adverse_events": []}
    target = {"IG.DM": "events", "IG.EX": "exposure", "IG.LB": "labs", "IG.TU": "tumour"}
    for clinical in root.ClinicalData:
        if clinical.StudyOID != f"ST.{trial}":
            continue
        for subject in clinical.SubjectData:
            patient = subject.SubjectKey
            aes: dict[str, dict[str, Any]] = {}
            for visit in subject.StudyEventData:
                for form in visit.FormData:
                    for group in form.ItemGroupData:
                        values = {i.ItemOID.split(".", 2)[2]: i.Value for i in group.ItemData}
                        if group.ItemGroupOID in target:
                            out[target[group.ItemGroupOID]].append({"patient_id": patient, **values})
                        elif group.ItemGroupOID == "IG.AE":
                            key = values.pop("AEKEY")
                            values["grade"] = int(values["grade"])
                            if "course" in values:
                                values["course"] = int(values["course"])
                            aes[key] = {"patient_id": patient, **values, "attributions": [],
                                        "seriousness": []}
                        elif group.ItemGroupOID == "IG.AEREL":
                            aes[values["AEKEY"]]["attributions"].append(
                                {"agent": values["agent"], "attribution": values["attribution"]})
                        elif group.ItemGroupOID == "IG.AESER":
                            aes[values["AEKEY"]]["seriousness"].append(values["criterion"])
            out["adverse_events"].extend(aes.values())
    return {"trial": trial, **out}


# --- the stored record: observations, body measurements and follow-up, out and back in ------

# The forms of the record exchange: what the database takes back from an ODM file through
# the services (the patient record's laboratory results and measurements, the body
# measurements of the calendar, the follow-up facts of the outcomes).
RECORD_GROUPS = (
    _Group("IG.OBS", "Laboratory results and measurements of the patient record",
           (("name", "text"), ("value", "float"), ("unit", "text"), ("date", "date"), ("ref_low", "float"),
            ("ref_high", "float"))),
    _Group("IG.VS", "Body measurements", (("on", "date"), ("weight_kg", "float"), ("height_cm", "float"))),
    _Group("IG.FU", "Follow-up facts", (("kind", "text"), ("occurred_on", "date"))),
)
# A follow-up's note is free text that may name people: it stays out of the de-identified file.
FOLLOW_UP_KINDS = ("last_contact", "death", "second_malignancy")
RECORD_KINDS = {"IG.OBS": "observation", "IG.VS": "body", "IG.FU": "follow_up"}


def _record_metadata(odm: Any, protocol: Protocol) -> tuple[Any, str, str]:
    study_oid = f"ST.{protocol.id}"
    mdv_oid = f"MDV.{protocol.id}.{protocol.version}.RECORD"
    mdv = odm.MetaDataVersion(OID=mdv_oid, Name=f"{protocol.id} version {protocol.version} record",
                              Description=protocol.title)
    mdv.Protocol = odm.Protocol(StudyEventRef=[odm.StudyEventRef(StudyEventOID="SE.RECORD", OrderNumber=1,
                                                                 Mandatory="No")])
    form = odm.FormRef(FormOID="F.RECORD", OrderNumber=1, Mandatory="No")
    mdv.StudyEventDef = [odm.StudyEventDef(OID="SE.RECORD", Name="Patient record", Repeating="No",
                                           Type="Common", FormRef=[form])]
    mdv.FormDef = [odm.FormDef(OID="F.RECORD", Name="Body measurements and follow-up", Repeating="No",
                               ItemGroupRef=[odm.ItemGroupRef(ItemGroupOID=g.oid, OrderNumber=i,
                                                              Mandatory="No")
                                             for i, g in enumerate(RECORD_GROUPS, 1)])]
    mdv.ItemGroupDef = [odm.ItemGroupDef(OID=g.oid, Name=g.name, Repeating="Yes", ItemRef=[
        odm.ItemRef(ItemOID=f"IT.{g.oid[3:]}.{c}", OrderNumber=i, Mandatory="No")
        for i, (c, _) in enumerate(g.items, 1)]) for g in RECORD_GROUPS]
    mdv.ItemDef = [odm.ItemDef(OID=f"IT.{g.oid[3:]}.{c}", Name=c, DataType=kind)
                   for g in RECORD_GROUPS for c, kind in g.items]
    kind = next(i for i in mdv.ItemDef if i.OID == "IT.FU.kind")
    kind.CodeListRef = odm.CodeListRef(CodeListOID="CL.FU.kind")
    mdv.CodeList = [odm.CodeList(OID="CL.FU.kind", Name="kind", DataType="text",
                                 EnumeratedItem=[odm.EnumeratedItem(CodedValue=v) for v in FOLLOW_UP_KINDS])]
    return mdv, study_oid, mdv_oid


def record_odm(protocol: Protocol, subjects: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]], *,
               created: datetime | None = None) -> bytes:
    """The stored record of ``subjects`` (study number → ``observation``, ``body`` and
    ``follow_up`` rows) as ODM 1.3.2, study metadata and clinical data, checked by odmlib."""
    from odmlib.odm_1_3_2 import model as odm

    mdv, _, _ = _record_metadata(odm, protocol)
    subject_data = []
    for key, kinds in sorted(subjects.items()):
        groups = [_items(odm, g, row, i) for g in RECORD_GROUPS
                  for i, row in enumerate(kinds.get(RECORD_KINDS[g.oid], ()), 1)]
        subject_data.append(odm.SubjectData(SubjectKey=key, TransactionType="Insert", StudyEventData=[
            odm.StudyEventData(StudyEventOID="SE.RECORD", FormData=[
                odm.FormData(FormOID="F.RECORD", ItemGroupData=groups)])]))
    return _document(odm, protocol, mdv, subject_data, file_oid=f"ODM.{protocol.id}.RECORD", created=created)


def _shape(mdv: Any) -> dict[str, str]:
    """Every definition of a MetaDataVersion by OID, as comparable text."""
    out: dict[str, str] = {}
    for e in mdv.StudyEventDef:
        out[e.OID] = f"study event {e.Name!r}, forms {[f.FormOID for f in e.FormRef]}"
    for f in mdv.FormDef:
        out[f.OID] = f"form {f.Name!r}, item groups {[g.ItemGroupOID for g in f.ItemGroupRef]}"
    for g in mdv.ItemGroupDef:
        out[g.OID] = f"item group {g.Name!r}, items {[i.ItemOID for i in g.ItemRef]}"
    for i in mdv.ItemDef:
        code = i.CodeListRef.CodeListOID if i.CodeListRef else None
        out[i.OID] = f"item {i.Name!r} of type {i.DataType}" + (f" coded by {code}" if code else "")
    for c in mdv.CodeList:
        out[c.OID] = f"codelist {[t.CodedValue for t in c.EnumeratedItem]}"
    return out


def read_record_odm(data: bytes, protocol: Protocol) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The record rows of an ODM file written by :func:`record_odm` for this protocol version:
    study number → ``observation``, ``body`` and ``follow_up`` rows (typed). A file whose metadata differs
    from the trial's is refused with one line naming the OID and the difference."""
    from odmlib.odm_1_3_2 import model as odm

    root = _load(data)
    expected, study_oid, mdv_oid = _record_metadata(odm, protocol)
    study = next((s for s in root.Study if study_oid == s.OID), None)
    if study is None:
        found = ", ".join(s.OID for s in root.Study) or "no study"
        raise OutcomeError(f"the file holds {found}, not {study_oid}", where="ODM Study OID")
    mdv = next((v for v in study.MetaDataVersion if mdv_oid == v.OID), None)
    if mdv is None:
        found = ", ".join(v.OID for v in study.MetaDataVersion) or "none"
        raise OutcomeError(f"the file's metadata version is {found}, the trial's is {mdv_oid}",
                           where="ODM MetaDataVersion OID")
    mine, theirs = _shape(expected), _shape(mdv)
    for oid in sorted(mine.keys() | theirs.keys()):
        if oid not in theirs:
            raise OutcomeError(f"missing from the file (the trial has {mine[oid]})", where=oid)
        if oid not in mine:
            raise OutcomeError(f"not in the trial's metadata (the file has {theirs[oid]})", where=oid)
        if mine[oid] != theirs[oid]:
            raise OutcomeError(f"the file has {theirs[oid]}, the trial has {mine[oid]}", where=oid)
    kinds = {g.oid: dict(g.items) for g in RECORD_GROUPS}
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for clinical in root.ClinicalData:
        if clinical.StudyOID != study_oid or clinical.MetaDataVersionOID != mdv_oid:
            raise OutcomeError(f"clinical data of {clinical.StudyOID} {clinical.MetaDataVersionOID}, not of "
                               f"{study_oid} {mdv_oid}", where="ODM ClinicalData")
        for subject in clinical.SubjectData:
            rows = out.setdefault(subject.SubjectKey, {kind: [] for kind in RECORD_KINDS.values()})
            for event in subject.StudyEventData:
                for form in event.FormData:
                    for group in form.ItemGroupData:
                        types = kinds[group.ItemGroupOID]
                        row = {i.ItemOID.split(".", 2)[2]: _typed(i.Value, types, i.ItemOID)
                               for i in group.ItemData}
                        rows[RECORD_KINDS[group.ItemGroupOID]].append(row)
    return out


def _typed(value: str, types: Mapping[str, str], oid: str) -> Any:
    kind = types[oid.split(".", 2)[2]]
    try:
        if kind == "float":
            return float(value)
        if kind == "date":
            return date.fromisoformat(value).isoformat()
    except ValueError:
        raise OutcomeError(f"{value!r} is not a {kind}", where=oid) from None
    return value
