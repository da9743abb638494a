"""An SDTM submission package: SAS XPORT v5 datasets and a Define-XML 2.1 document.

XPORT v5 is the transport format the FDA's Study Data Technical Conformance Guide asks
for: dataset and variable names of at most 8 characters, labels of at most 40, character
values of at most 200 bytes in ASCII. :func:`to_xpt` writes one dataset with pyreadstat
(names, labels, types, lengths); :func:`define_xml` describes every dataset and variable
of the package with odmlib's Define-XML 2.1 model and :func:`check_define` runs odmlib's
own checks on it (element order, OID uniqueness and references, the Define-XML 2.1
conformance schema).

The CDISC open rules engine (``cdisc-rules-engine``) is not run here: it needs a rules
cache downloaded from the CDISC Library with an API key. A site with network access runs
it on the XPT files this module writes, for example::

    pip install cdisc-rules-engine
    python -m cdisc_rules_engine update-cache --apikey $CDISC_LIBRARY_API_KEY
    python -m cdisc_rules_engine validate -s sdtmig -v 3-4 -d OUT_DIR -dxp OUT_DIR/define.xml

(see the engine's README for the options of the installed version).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from trialdesk.errors import OutcomeError
from trialdesk.outcomes import sdtm_biomarkers
from trialdesk.outcomes.export_sdtm import CLASSES, CODELISTS, KEYS, LABELS, SDTMIG_VERSION, SPEC
from trialdesk.outcomes.sdtm_findings import NOTES as FINDINGS_NOTES
from trialdesk.outcomes.sdtm_findings import STRUCTURES as FINDINGS_STRUCTURES

DEFINE_VERSION = "2.1.0"
# The CDISC SDTM Controlled Terminology package (NCI EVS, quarterly; named by its release
# date) the codelists of export_sdtm.CODELISTS are subsets of. define.xml states it as the
# CT standard (Define-XML 2.1 section 5.3.1, def:Standard Type="CT") and every codelist
# refers to it; a site validating against another package passes ``ct_version``.
CT_VERSION = "2024-03-29"
STRUCTURES = {**FINDINGS_STRUCTURES, **sdtm_biomarkers.STRUCTURES}


def _frame_for_xpt(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for v in SPEC[name]:
        column = frame[v.name]
        if v.type == "Num":
            out[v.name] = pd.to_numeric(column, errors="coerce").astype("float64")
        else:
            text = column.astype(object).where(column.notna(), "").map(str)
            bad = [(row, value) for row, value in enumerate(text, 1)
                   if not value.isascii() or len(value.encode()) > 200]
            if bad:
                row, value = bad[0]
                raise OutcomeError(f"row {row}: {value[:40]!r} is not ASCII of at most 200 bytes, as "
                                   "SAS XPORT v5 requires", where=f"{name}.{v.name}")
            out[v.name] = text
    return out


def to_xpt(name: str, frame: pd.DataFrame) -> bytes:
    """One dataset as SAS XPORT v5 bytes, with the SDTMIG labels of its variables."""
    labels: dict[str, str | None] = {v.name: v.label for v in SPEC[name]}
    data = _frame_for_xpt(name, frame)
    import pyreadstat

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name.lower()}.xpt"
        pyreadstat.write_xport(data, str(path), file_label=LABELS[name], column_labels=labels,
                               table_name=name, file_format_version=5)
        return path.read_bytes()


def read_xpt(data: bytes) -> tuple[pd.DataFrame, dict[str, str]]:
    """An XPT file back as a frame (missing text is "", missing numbers NaN) and its labels."""
    import pyreadstat

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.xpt"
        path.write_bytes(data)
        frame, meta = pyreadstat.read_xport(str(path))
    return frame, {n: label or "" for n, label in zip(meta.column_names, meta.column_labels, strict=True)}


def xpt_view(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """What an XPT file of this dataset holds: the frame as :func:`read_xpt` returns it."""
    return _frame_for_xpt(name, frame)


def _length(name: str, frame: pd.DataFrame, variable: str) -> int:
    values = frame[variable].dropna().map(lambda v: len(str(v).encode()))
    return max(1, int(values.max()) if len(values) else 1)


def _text(model: Any, text: str) -> Any:
    return model.Description(TranslatedText=[model.TranslatedText(_content=text, lang="en")])


def define_xml(study_id: str, datasets: Mapping[str, pd.DataFrame], *, title: str,
               created: datetime, notes: tuple[str, ...] | None = None,
               ct_version: str = CT_VERSION) -> bytes:
    """Define-XML 2.1 describing every dataset and variable of ``datasets``; ``notes`` (by
    default :func:`coding_note`) become the MetaDataVersion's comment. The standards are the
    SDTMIG and the CDISC SDTM Controlled Terminology package ``ct_version``, which every
    codelist names as its standard."""
    if notes is None:
        notes = (coding_note(),)
    from odmlib.define_2_1 import model as define

    codelists_used: dict[str, list[str]] = {}
    item_defs: dict[str, Any] = {}
    groups = []
    for name, frame in datasets.items():
        refs = []
        keys = KEYS.get(name, ())
        for order, v in enumerate(SPEC[name], start=1):
            oid = f"IT.{name}.{v.name}"
            ref = define.ItemRef(ItemOID=oid, OrderNumber=order,
                                 Mandatory="Yes" if v.core == "Req" else "No")
            if v.name in keys:
                ref.KeySequence = keys.index(v.name) + 1
            refs.append(ref)
            numbers = pd.to_numeric(frame[v.name], errors="coerce").dropna() if v.type == "Num" else None
            integer = numbers is not None and bool((numbers % 1 == 0).all())
            item = define.ItemDef(OID=oid, Name=v.name, SASFieldName=v.name,
                                  DataType="text" if v.type == "Char" else "integer" if integer else "float",
                                  Length=_length(name, frame, v.name) if v.type == "Char" or integer else 8)
            if v.type == "Num" and not integer:
                item.SignificantDigits = 3
            item.Description = _text(define, v.label)
            if v.codelist:
                item.CodeListRef = define.CodeListRef(CodeListOID=f"CL.{v.codelist}")
                codelists_used[v.codelist] = sorted(CODELISTS[v.codelist])
            item.Origin = [define.Origin(Type="Derived" if v.name.endswith(("DY", "SEQ")) else "Assigned"
                                         if v.name in ("STUDYID", "DOMAIN", "USUBJID") else "Collected")]
            item_defs[oid] = item
        group = define.ItemGroupDef(
            OID=f"IG.{name}", Name=name, Repeating="No" if name in ("DM", "TS") else "Yes",
            IsReferenceData="Yes" if CLASSES[name] == "TRIAL DESIGN" else "No",
            SASDatasetName=name, Domain=name if name != "SUPPAE" else "AE",
            Purpose="Tabulation", Structure=_structure(name), ArchiveLocationID=f"LF.{name}",
            StandardOID="STD.SDTMIG")
        group.Description = _text(define, LABELS[name])
        group.ItemRef = refs
        group.Class = define.Class(Name=CLASSES[name])
        group.leaf = define.leaf(ID=f"LF.{name}", href=f"{name.lower()}.xpt",
                                 title=define.title(_content=f"{name.lower()}.xpt"))
        groups.append(group)
    codelists = []
    for codelist, terms in sorted(codelists_used.items()):
        cl = define.CodeList(OID=f"CL.{codelist}", Name=codelist, DataType="text", StandardOID="STD.CT.SDTM")
        cl.EnumeratedItem = [define.EnumeratedItem(CodedValue=t, OrderNumber=i)
                             for i, t in enumerate(terms, start=1)]
        codelists.append(cl)
    mdv = define.MetaDataVersion(OID=f"MDV.{study_id}", Name=f"{study_id} SDTM",
                                 DefineVersion=DEFINE_VERSION)
    mdv.Description = f"SDTMIG v{SDTMIG_VERSION} tabulation datasets of {study_id}"
    mdv.Standards = define.Standards(Standard=[
        define.Standard(OID="STD.SDTMIG", Name="SDTMIG", Type="IG", Version=SDTMIG_VERSION, Status="Final"),
        define.Standard(OID="STD.CT.SDTM", Name="CDISC/NCI", Type="CT", PublishingSet="SDTM",
                        Version=ct_version, Status="Final")])
    if notes:
        mdv.CommentOID = "COM.REVIEWER"
    mdv.ItemGroupDef = groups
    mdv.ItemDef = list(item_defs.values())
    mdv.CodeList = codelists
    if notes:
        mdv.CommentDef = [define.CommentDef(OID="COM.REVIEWER", Description=_text(define, " ".join(notes)))]
    study = define.Study(OID=f"ST.{study_id}")
    study.GlobalVariables = define.GlobalVariables(
        StudyName=define.StudyName(_content=study_id),
        StudyDescription=define.StudyDescription(_content=title),
        ProtocolName=define.ProtocolName(_content=study_id))
    study.MetaDataVersion = mdv
    odm = define.ODM(FileOID=f"DEF.{study_id}", AsOfDateTime=created.isoformat(timespec="seconds"),
                     CreationDateTime=created.isoformat(timespec="seconds"), ODMVersion="1.3.2",
                     FileType="Snapshot", Originator="trialdesk", SourceSystem="trialdesk",
                     Context="Submission", Study=study)
    problems = check_define_model(odm)
    if problems:
        raise OutcomeError("; ".join(problems[:10]), where="define.xml (Define-XML 2.1)")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + odm.to_xml_string()).encode("utf-8")


def _structure(name: str) -> str:
    if name in STRUCTURES:
        return STRUCTURES[name]
    if name in ("DM", "TS", "TA", "TE", "TV", "TI", "SUPPAE"):
        return {"DM": "One record per subject", "TS": "One record per trial summary parameter value",
                "TA": "One record per planned element per arm", "TE": "One record per planned element",
                "TV": "One record per planned visit per arm", "TI": "One record per I/E criterion",
                "SUPPAE": "One record per IDVAR, IDVARVAL, and QNAM value per subject"}[name]
    if name == "SV":
        return "One record per actual or planned visit per subject"
    if name == "SE":
        return "One record per actual element per subject"
    return f"One record per {LABELS[name].lower()} record per subject"


def check_define_model(odm: Any) -> list[str]:
    """odmlib's Define-XML 2.1 checks on a model: order, OIDs, conformance schema."""
    from odmlib.define_2_1.rules.metadata_schema import MetadataSchema
    from odmlib.oid_generator import create_oid_checker

    errors = odm.validate(collect_errors=True, oid_checker=create_oid_checker("define_2_1"),
                          conformance_checker=MetadataSchema())
    return [str(e) for e in errors]


def check_define(data: bytes) -> list[str]:
    """Load a define.xml with odmlib's Define-XML 2.1 model and run its checks."""
    from odmlib import define_loader, loader

    reader = loader.ODMLoader(define_loader.XMLDefineLoader(model_package="define_2_1"))
    reader.load_odm_string(data.decode("utf-8"))
    return check_define_model(reader.root())


CHECKS: tuple[str, ...] = (
    "every SDTMIG v3.4 Req and Exp variable of each dataset present, in the order of the domain tables",
    "no Req variable without a value",
    "coded values in their CDISC Controlled Terminology codelist (NY, SEX, AGEU, OUT, ACN, TOXGR, "
    "ROUTE, NRIND, ARMNULRS, EPOCH, NCOMPLT, PROTMLST, IECAT, VSTESTCD, UNIT, TUTESTCD, TUMIDENT, ND, "
    "RELTYPE, GFINHERT, GFTSTDTL, GFSYMTYP, MITSTDTL)",
    "--SEQ unique within USUBJID; the natural keys of DM, SUPPAE, SV and the trial design datasets unique",
    "--DTC values ISO 8601; --TESTCD at most 8 letters, digits or underscores, not starting with a "
    "digit; QNAM at most 8 characters, QLABEL at most 40",
    "every subject of another dataset in DM",
    "DM.DTHFL and DM.DTHDTC agree; every death in DM has a DS DEATH record on the same date and no "
    "other DS DEATH exists; every fatal AE is a death in DM and ends on the death date",
    "DM.ARMCD is an arm of TA; EPOCH values are epochs of TA; with exposure given, a missing actual "
    "arm has ARMNRS",
    "LB, RS, TR, TU, VS, IS, PC, GF and MI visits are in SV",
    "every TRLNKID identified in TU for the same subject, TULNKID unique per subject; RELREC names "
    "datasets of the package and their variables",
    "SAS XPORT v5: names at most 8, labels at most 40 characters, values ASCII of at most 200 bytes",
    "define.xml: odmlib's Define-XML 2.1 checks (element order, OID uniqueness and references, "
    "conformance schema)",
)


def coding_note() -> str:
    """What AE coding holds and what stays empty without a licensed MedDRA."""
    from trialdesk.clinical.ctcae_codes import CODES_SOURCE

    return (f"AELLT/AELLTCD, AESOC/AESOCCD and AEBODSYS/AEBDSYCD come from the {CODES_SOURCE}: every "
            "CTCAE v5.0 term is a MedDRA lowest level term filed under one system organ class. "
            "AEHLT, AEHLTCD, AEHLGT and AEHLGTCD are empty: they need a licensed MedDRA dictionary, "
            "which trialdesk does not hold. AEDECOD/AEPTCD are the preferred term recorded with "
            "each event; an event without one is refused, never guessed.")


def _has_biomarkers(datasets: Mapping[str, pd.DataFrame]) -> bool:
    lb = datasets.get("LB")
    return any(n in datasets for n in sdtm_biomarkers.SPEC) or (
        lb is not None and "LBREFID" in lb.columns and bool(lb["LBREFID"].notna().any()))


def reviewers_guide(study_id: str, datasets: Mapping[str, pd.DataFrame]) -> str:
    """The data reviewer's guide notes of the package: derivations, what is empty and why,
    and what was checked before writing."""
    lines = [f"# {study_id}: SDTM package notes", "",
             f"Datasets (SDTMIG v{SDTMIG_VERSION}, SAS XPORT v5): "
             + ", ".join(f"{n.lower()}.xpt ({len(f)} records)" for n, f in datasets.items()), "",
             "## Coding", "",
             coding_note(), "",
             "## Derivations", "",
             "RFSTDTC is the enrolment date (study day 1). A fatal AE without an end date ends on the "
             "death date (DM.DTHDTC). DS holds every death (DSDECOD DEATH) on DM.DTHDTC.",
             "ACTARMCD/ACTARM are the planned arm when any study treatment was recorded in EX; with "
             "none, ARMNRS is ASSIGNED, NOT TREATED. Without exposure data the actual arm is unknown "
             "and stays empty.",
             "EPOCH and SE come from what was given (a course element starts on its first "
             "administration); VISITNUM/VISIT: course visits on day 1 of each course, other dates "
             "are unscheduled visits (n.01, n.02 ...). Without exposure data no element is known: "
             "SE is empty and EPOCH unknown.",
             *(FINDINGS_NOTES if "TU" in datasets or "VS" in datasets or "CM" in datasets
               or "PR" in datasets else ()),
             *(() if "TU" in datasets else (
                 "TR holds the sums of target-lesion diameters (SUMDIAM) as recorded; there is no TU: "
                 "the inputs have no lesion-level identification.",)),
             "LBTOXGR is the CTCAE v5.0 grade recorded with each result, or, when none was recorded, "
             "the grade the value and the given range decide (one-directional terms: NEUT, PLAT, WBC, "
             "LYM, ALT, AST, BILI, CREAT, ALP, GGT, LIPASE, AMYLASE, CK); a recorded grade the value "
             "contradicts is refused. LBNRIND compares the result with the reference range given "
             "with it.",
             *(sdtm_biomarkers.NOTES if _has_biomarkers(datasets) else ()), "",
             "## Checked before writing", "", *[f"- {c}" for c in CHECKS], "",
             "## Not run here", "",
             "The CDISC open rules engine needs a rules cache from the CDISC Library (network and an "
             "API key): see trialdesk.outcomes.sdtm_package for the commands a site runs."]
    return "\n".join(lines) + "\n"
