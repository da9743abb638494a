"""CDISC SDTM datasets from trialdesk's outcome inputs: DM, AE (+ SUPPAE), EX, RS and LB.

The variable names, labels, types and core status (Req / Exp / Perm) follow the domain
specification tables of the SDTM Implementation Guide v3.4 (CDISC, 2021; wiki.cdisc.org
SDTMIG v3.4 domain tables) and v3.3 for the AE, DM, EX, LB and RS variables that did not
change. Controlled terms come from CDISC SDTM Controlled Terminology (codelists NY, SEX,
AGEU, OUT, ACN, ROUTE, TOXGR). :func:`validate_sdtm` checks what this module wrote
against the same tables: every Req and Exp variable present, no Req value missing, coded
values in their codelist, ``--SEQ`` unique per subject, ISO 8601 dates, ``--TESTCD`` at
most 8 characters, and every subject of a finding or event domain in DM.

Choices, stated once:

* ``USUBJID`` is ``STUDYID-patient_id``; ``RFSTDTC`` is the enrolment date, day 1 of
  every ``--DY``; ``RFENDTC`` the last contact or death.
* ``ARMCD``/``ARM`` are the arm of the event table; ``ACTARMCD``/``ACTARM`` (actual arm)
  are left empty: nothing in the inputs records what was actually given as an arm.
* ``AETOXGR`` is the CTCAE grade. SDTMIG has no AE variable for the grading scale's
  version (it belongs to the dataset metadata), so every AE also gets a supplemental
  qualifier ``AETOXGRV`` ("CTCAE v5.0"), and the course number goes to ``AECOURSE``.
* ``AELLT`` is the CTCAE term when it is one: each CTCAE term is a MedDRA lowest level
  term (NCI CTCAE v5.0, introduction, "CTCAE Terms"). ``AEDECOD`` (the MedDRA preferred term,
  Req) is the record's ``meddra_term``; it is never guessed from the CTCAE term, so an
  uncoded event fails validation.
* ``AEREL`` is RELATED when any agent's attribution is possible, probable or definite,
  NOT RELATED when attributions exist and none is; one ``AERELn`` supplemental qualifier
  per agent keeps the five-point attribution (SDTMIG, multiple study treatments).
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pandas as pd

from trialdesk.clinical.ctcae_codes import term_codes
from trialdesk.errors import OutcomeError
from trialdesk.outcomes import sdtm_biomarkers, sdtm_findings
from trialdesk.outcomes import sdtm_design as design
from trialdesk.outcomes.events import EventTable
from trialdesk.outcomes.inputs import AdverseEvents, Exposure, Labs, Measurements
from trialdesk.outcomes.sdtm_design import Core, Finding, Variable, ascii_text
from trialdesk.protocol.model import Protocol
from trialdesk.safety.adverse_event import ActionTaken, Outcome, Seriousness

SDTMIG_VERSION = "3.4"

# CDISC SDTM Controlled Terminology, the codelists the exported values use.
CODELISTS: dict[str, frozenset[str]] = {
    "NY": frozenset({"N", "Y", "U", "NA"}),
    "SEX": frozenset({"F", "M", "U", "UNDIFFERENTIATED"}),
    "AGEU": frozenset({"YEARS", "MONTHS", "WEEKS", "DAYS", "HOURS"}),
    "OUT": frozenset({"FATAL", "NOT RECOVERED/NOT RESOLVED", "RECOVERED/RESOLVED",
                      "RECOVERED/RESOLVED WITH SEQUELAE", "RECOVERING/RESOLVING", "UNKNOWN"}),
    "ACN": frozenset({"DOSE INCREASED", "DOSE NOT CHANGED", "DOSE RATE REDUCED", "DOSE REDUCED",
                      "DRUG INTERRUPTED", "DRUG WITHDRAWN", "NOT APPLICABLE", "UNKNOWN"}),
    "TOXGR": frozenset({"0", "1", "2", "3", "4", "5"}),
    "ROUTE": frozenset({"INTRAVENOUS", "ORAL", "SUBCUTANEOUS", "INTRAMUSCULAR", "INTRATHECAL"}),
    "NRIND": frozenset({"HIGH", "LOW", "NORMAL", "ABNORMAL"}),
    "ARMNULRS": frozenset({"ASSIGNED, NOT TREATED", "NOT ASSIGNED", "SCREEN FAILURE",
                           "UNPLANNED TREATMENT"}),
    "EPOCH": frozenset({"SCREENING", "TREATMENT", "FOLLOW-UP"}),
    "NCOMPLT": frozenset({"DEATH"}),
    "PROTMLST": frozenset({"RANDOMIZED"}),
    "IECAT": frozenset({"INCLUSION", "EXCLUSION"}),
    **sdtm_findings.CODELISTS,
    **sdtm_biomarkers.CODELISTS,
}

_OUTCOME = {Outcome.RECOVERED: "RECOVERED/RESOLVED", Outcome.RECOVERING: "RECOVERING/RESOLVING",
            Outcome.NOT_RECOVERED: "NOT RECOVERED/NOT RESOLVED",
            Outcome.RECOVERED_WITH_SEQUELAE: "RECOVERED/RESOLVED WITH SEQUELAE",
            Outcome.FATAL: "FATAL", Outcome.UNKNOWN: "UNKNOWN"}
_ACTION = {a: a.value.replace("_", " ").upper() for a in ActionTaken}
_ROUTE = {"IV": "INTRAVENOUS", "PO": "ORAL", "SC": "SUBCUTANEOUS", "IM": "INTRAMUSCULAR",
          "IT": "INTRATHECAL"}
_SERIOUS_FLAGS = (("AESCONG", (Seriousness.CONGENITAL_ANOMALY,)),
                  ("AESDISAB", (Seriousness.PERSISTENT_DISABILITY,)),
                  ("AESDTH", (Seriousness.DEATH,)),
                  ("AESHOSP", (Seriousness.HOSPITALISATION, Seriousness.PROLONGED_HOSPITALISATION)),
                  ("AESLIFE", (Seriousness.LIFE_THREATENING,)),
                  ("AESMIE", (Seriousness.IMPORTANT_MEDICAL_EVENT,)))
_CRITERIA = {"INRC": "INRC 2017", "RECIST": "RECIST 1.1"}


def _v(name: str, label: str, type_: Literal["Char", "Num"], core: Core,
       codelist: str | None = None) -> Variable:
    return Variable(name, label, type_, core, codelist)


_ID = (_v("STUDYID", "Study Identifier", "Char", "Req"), _v("DOMAIN", "Domain Abbreviation", "Char", "Req"),
       _v("USUBJID", "Unique Subject Identifier", "Char", "Req"))

SPEC: dict[str, tuple[Variable, ...]] = {
    "DM": (*_ID,
           _v("SUBJID", "Subject Identifier for the Study", "Char", "Req"),
           _v("RFSTDTC", "Subject Reference Start Date/Time", "Char", "Exp"),
           _v("RFENDTC", "Subject Reference End Date/Time", "Char", "Exp"),
           _v("RFXSTDTC", "Date/Time of First Study Treatment", "Char", "Exp"),
           _v("RFXENDTC", "Date/Time of Last Study Treatment", "Char", "Exp"),
           _v("DTHDTC", "Date/Time of Death", "Char", "Exp"),
           _v("DTHFL", "Subject Death Flag", "Char", "Exp", "NY"),
           _v("SITEID", "Study Site Identifier", "Char", "Req"),
           _v("AGE", "Age", "Num", "Exp"),
           _v("AGEU", "Age Units", "Char", "Exp", "AGEU"),
           _v("SEX", "Sex", "Char", "Req", "SEX"),
           _v("ARMCD", "Planned Arm Code", "Char", "Exp"),
           _v("ARM", "Description of Planned Arm", "Char", "Exp"),
           _v("ACTARMCD", "Actual Arm Code", "Char", "Exp"),
           _v("ACTARM", "Description of Actual Arm", "Char", "Exp"),
           _v("ARMNRS", "Reason Arm and/or Actual Arm is Null", "Char", "Exp", "ARMNULRS"),
           _v("ACTARMUD", "Description of Unplanned Actual Arm", "Char", "Exp"),
           _v("COUNTRY", "Country", "Char", "Req")),
    "AE": (*_ID,
           _v("AESEQ", "Sequence Number", "Num", "Req"),
           _v("AETERM", "Reported Term for the Adverse Event", "Char", "Req"),
           _v("AELLT", "Lowest Level Term", "Char", "Exp"),
           _v("AELLTCD", "Lowest Level Term Code", "Num", "Exp"),
           _v("AEDECOD", "Dictionary-Derived Term", "Char", "Req"),
           _v("AEPTCD", "Preferred Term Code", "Num", "Exp"),
           _v("AEHLT", "High Level Term", "Char", "Exp"),
           _v("AEHLTCD", "High Level Term Code", "Num", "Exp"),
           _v("AEHLGT", "High Level Group Term", "Char", "Exp"),
           _v("AEHLGTCD", "High Level Group Term Code", "Num", "Exp"),
           _v("AEBODSYS", "Body System or Organ Class", "Char", "Exp"),
           _v("AEBDSYCD", "Body System or Organ Class Code", "Num", "Exp"),
           _v("AESOC", "Primary System Organ Class", "Char", "Exp"),
           _v("AESOCCD", "Primary System Organ Class Code", "Num", "Exp"),
           _v("AESER", "Serious Event", "Char", "Exp", "NY"),
           _v("AEACN", "Action Taken with Study Treatment", "Char", "Exp", "ACN"),
           _v("AEREL", "Causality", "Char", "Exp"),
           _v("AEOUT", "Outcome of Adverse Event", "Char", "Perm", "OUT"),
           _v("AESCONG", "Congenital Anomaly or Birth Defect", "Char", "Perm", "NY"),
           _v("AESDISAB", "Persist or Signif Disability/Incapacity", "Char", "Perm", "NY"),
           _v("AESDTH", "Results in Death", "Char", "Perm", "NY"),
           _v("AESHOSP", "Requires or Prolongs Hospitalization", "Char", "Perm", "NY"),
           _v("AESLIFE", "Is Life Threatening", "Char", "Perm", "NY"),
           _v("AESMIE", "Other Medically Important Serious Event", "Char", "Perm", "NY"),
           _v("AETOXGR", "Standard Toxicity Grade", "Char", "Perm", "TOXGR"),
           _v("EPOCH", "Epoch", "Char", "Perm", "EPOCH"),
           _v("AESTDTC", "Start Date/Time of Adverse Event", "Char", "Exp"),
           _v("AEENDTC", "End Date/Time of Adverse Event", "Char", "Exp"),
           _v("AESTDY", "Study Day of Start of Adverse Event", "Num", "Perm"),
           _v("AEENDY", "Study Day of End of Adverse Event", "Num", "Perm")),
    "SUPPAE": (_v("STUDYID", "Study Identifier", "Char", "Req"),
               _v("RDOMAIN", "Related Domain Abbreviation", "Char", "Req"),
               _v("USUBJID", "Unique Subject Identifier", "Char", "Req"),
               _v("IDVAR", "Identifying Variable", "Char", "Exp"),
               _v("IDVARVAL", "Identifying Variable Value", "Char", "Exp"),
               _v("QNAM", "Qualifier Variable Name", "Char", "Req"),
               _v("QLABEL", "Qualifier Variable Label", "Char", "Req"),
               _v("QVAL", "Data Value", "Char", "Req"),
               _v("QORIG", "Origin", "Char", "Req"),
               _v("QEVAL", "Evaluator", "Char", "Exp")),
    "EX": (*_ID,
           _v("EXSEQ", "Sequence Number", "Num", "Req"),
           _v("EXGRPID", "Group ID", "Char", "Perm"),
           _v("EXREFID", "Reference ID", "Char", "Perm"),  # a cell product's identifier
           _v("EXTRT", "Name of Treatment", "Char", "Req"),
           _v("EXDOSE", "Dose", "Num", "Exp"),
           _v("EXDOSU", "Dose Units", "Char", "Exp"),
           _v("EXROUTE", "Route of Administration", "Char", "Perm", "ROUTE"),
           _v("EPOCH", "Epoch", "Char", "Perm", "EPOCH"),
           _v("EXSTDTC", "Start Date/Time of Treatment", "Char", "Exp"),
           _v("EXENDTC", "End Date/Time of Treatment", "Char", "Exp"),
           _v("EXSTDY", "Study Day of Start of Treatment", "Num", "Perm"),
           _v("EXENDY", "Study Day of End of Treatment", "Num", "Perm")),
    "RS": (*_ID,
           _v("RSSEQ", "Sequence Number", "Num", "Req"),
           _v("RSTESTCD", "Assessment Short Name", "Char", "Req"),
           _v("RSTEST", "Assessment Name", "Char", "Req"),
           _v("RSCAT", "Category for Assessment", "Char", "Exp"),
           _v("RSORRES", "Result or Finding in Original Units", "Char", "Exp"),
           _v("RSSTRESC", "Character Result/Finding in Std Format", "Char", "Exp"),
           _v("RSEVAL", "Evaluator", "Char", "Exp"),
           _v("VISITNUM", "Visit Number", "Num", "Exp"),
           _v("VISIT", "Visit Name", "Char", "Perm"),
           _v("EPOCH", "Epoch", "Char", "Perm", "EPOCH"),
           _v("RSDTC", "Date/Time of Assessment", "Char", "Exp"),
           _v("RSDY", "Study Day of Assessment", "Num", "Perm")),
    "LB": (*_ID,
           _v("LBSEQ", "Sequence Number", "Num", "Req"),
           _v("LBREFID", "Specimen ID", "Char", "Perm"),
           _v("LBTESTCD", "Lab Test or Examination Short Name", "Char", "Req"),
           _v("LBTEST", "Lab Test or Examination Name", "Char", "Req"),
           _v("LBORRES", "Result or Finding in Original Units", "Char", "Exp"),
           _v("LBORRESU", "Original Units", "Char", "Exp"),
           _v("LBORNRLO", "Reference Range Lower Limit in Orig Unit", "Char", "Exp"),
           _v("LBORNRHI", "Reference Range Upper Limit in Orig Unit", "Char", "Exp"),
           _v("LBSTRESC", "Character Result/Finding in Std Format", "Char", "Exp"),
           _v("LBSTRESN", "Numeric Result/Finding in Standard Units", "Num", "Exp"),
           _v("LBSTRESU", "Standard Units", "Char", "Exp"),
           _v("LBSTNRLO", "Reference Range Lower Limit-Std Units", "Num", "Exp"),
           _v("LBSTNRHI", "Reference Range Upper Limit-Std Units", "Num", "Exp"),
           _v("LBNRIND", "Reference Range Indicator", "Char", "Exp", "NRIND"),
           _v("LBLOINC", "LOINC Code", "Char", "Perm"),
           _v("LBSPEC", "Specimen Type", "Char", "Perm"),
           _v("LBMETHOD", "Method of Test or Examination", "Char", "Perm"),
           _v("LBTOXGR", "Standard Toxicity Grade", "Char", "Perm", "TOXGR"),
           _v("VISITNUM", "Visit Number", "Num", "Exp"),
           _v("VISIT", "Visit Name", "Char", "Perm"),
           _v("EPOCH", "Epoch", "Char", "Perm", "EPOCH"),
           _v("LBDTC", "Date/Time of Specimen Collection", "Char", "Exp"),
           _v("LBDY", "Study Day of Specimen Collection", "Num", "Perm")),
    "DS": (*_ID,
           _v("DSSEQ", "Sequence Number", "Num", "Req"),
           _v("DSTERM", "Reported Term for the Disposition Event", "Char", "Req"),
           _v("DSDECOD", "Standardized Disposition Term", "Char", "Req"),
           _v("DSCAT", "Category for Disposition Event", "Char", "Exp"),
           _v("EPOCH", "Epoch", "Char", "Perm", "EPOCH"),
           _v("DSSTDTC", "Start Date/Time of Disposition Event", "Char", "Exp"),
           _v("DSSTDY", "Study Day of Start of Disposition Event", "Num", "Perm")),
    "SE": (*_ID,
           _v("SESEQ", "Sequence Number", "Num", "Req"),
           _v("ETCD", "Element Code", "Char", "Req"),
           _v("ELEMENT", "Description of Element", "Char", "Perm"),
           _v("EPOCH", "Epoch", "Char", "Req", "EPOCH"),
           _v("SESTDTC", "Start Date/Time of Element", "Char", "Req"),
           _v("SEENDTC", "End Date/Time of Element", "Char", "Exp"),
           _v("SESTDY", "Study Day of Start of Element", "Num", "Perm"),
           _v("SEENDY", "Study Day of End of Element", "Num", "Perm")),
    "SV": (*_ID,
           _v("VISITNUM", "Visit Number", "Num", "Req"),
           _v("VISIT", "Visit Name", "Char", "Perm"),
           _v("SVUPDES", "Description of Unplanned Visit", "Char", "Perm"),
           _v("EPOCH", "Epoch", "Char", "Perm", "EPOCH"),
           _v("SVSTDTC", "Start Date/Time of Observation", "Char", "Exp"),
           _v("SVENDTC", "End Date/Time of Observation", "Char", "Exp"),
           _v("SVSTDY", "Study Day of Start of Observation", "Num", "Perm"),
           _v("SVENDY", "Study Day of End of Observation", "Num", "Perm")),
    "TS": (*_ID[:2],
           _v("TSSEQ", "Sequence Number", "Num", "Req"),
           _v("TSGRPID", "Group ID", "Char", "Perm"),
           _v("TSPARMCD", "Trial Summary Parameter Short Name", "Char", "Req"),
           _v("TSPARM", "Trial Summary Parameter", "Char", "Req"),
           _v("TSVAL", "Parameter Value", "Char", "Exp"),
           _v("TSVALNF", "Parameter Null Flavor", "Char", "Perm"),
           _v("TSVALCD", "Parameter Value Code", "Char", "Exp"),
           _v("TSVCDREF", "Name of the Reference Terminology", "Char", "Exp"),
           _v("TSVCDVER", "Version of the Reference Terminology", "Char", "Exp")),
    "TA": (*_ID[:2],
           _v("ARMCD", "Planned Arm Code", "Char", "Req"),
           _v("ARM", "Description of Planned Arm", "Char", "Req"),
           _v("TAETORD", "Planned Order of Element within Arm", "Num", "Req"),
           _v("ETCD", "Element Code", "Char", "Req"),
           _v("ELEMENT", "Description of Element", "Char", "Perm"),
           _v("TABRANCH", "Branch", "Char", "Exp"),
           _v("TATRANS", "Transition Rule", "Char", "Exp"),
           _v("EPOCH", "Epoch", "Char", "Req", "EPOCH")),
    "TE": (*_ID[:2],
           _v("ETCD", "Element Code", "Char", "Req"),
           _v("ELEMENT", "Description of Element", "Char", "Req"),
           _v("TESTRL", "Rule for Start of Element", "Char", "Req"),
           _v("TEENRL", "Rule for End of Element", "Char", "Perm"),
           _v("TEDUR", "Planned Duration of Element", "Char", "Perm")),
    "TV": (*_ID[:2],
           _v("VISITNUM", "Visit Number", "Num", "Req"),
           _v("VISIT", "Visit Name", "Char", "Perm"),
           _v("VISITDY", "Planned Study Day of Visit", "Num", "Perm"),
           _v("ARMCD", "Planned Arm Code", "Char", "Exp"),
           _v("ARM", "Description of Planned Arm", "Char", "Perm"),
           _v("TVSTRL", "Visit Start Rule", "Char", "Req")),
    "TI": (*_ID[:2],
           _v("IETESTCD", "Incl/Excl Criterion Short Name", "Char", "Req"),
           _v("IETEST", "Inclusion/Exclusion Criterion", "Char", "Req"),
           _v("IECAT", "Inclusion/Exclusion Category", "Char", "Req", "IECAT"),
           _v("TIRL", "Inclusion/Exclusion Criterion Rule", "Char", "Perm"),
           _v("TIVERS", "Protocol Criteria Versions", "Char", "Perm")),
    **sdtm_findings.SPEC,
    **sdtm_biomarkers.SPEC,
}

# Natural keys (SDTMIG v3.4 dataset metadata, "Key Variables"), checked for uniqueness and
# written to define.xml as KeySequence.
KEYS: dict[str, tuple[str, ...]] = {
    "DM": ("STUDYID", "USUBJID"), "AE": ("STUDYID", "USUBJID", "AESEQ"),
    "SUPPAE": ("STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM"),
    "EX": ("STUDYID", "USUBJID", "EXSEQ"), "RS": ("STUDYID", "USUBJID", "RSSEQ"),
    "LB": ("STUDYID", "USUBJID", "LBSEQ"), "DS": ("STUDYID", "USUBJID", "DSSEQ"),
    "TR": ("STUDYID", "USUBJID", "TRSEQ"),
    "SE": ("STUDYID", "USUBJID", "SESEQ"), "SV": ("STUDYID", "USUBJID", "VISITNUM"),
    "TS": ("STUDYID", "TSPARMCD", "TSSEQ"), "TA": ("STUDYID", "ARMCD", "TAETORD"),
    "TE": ("STUDYID", "ETCD"), "TV": ("STUDYID", "VISITNUM", "ARMCD"), "TI": ("STUDYID", "IETESTCD"),
    **sdtm_findings.KEYS,
    **sdtm_biomarkers.KEYS,
}
# The SDTM class of each dataset (define.xml def:Class).
CLASSES: dict[str, str] = {
    "DM": "SPECIAL PURPOSE", "SE": "SPECIAL PURPOSE", "SV": "SPECIAL PURPOSE",
    "AE": "EVENTS", "DS": "EVENTS", "EX": "INTERVENTIONS",
    "LB": "FINDINGS", "RS": "FINDINGS", "TR": "FINDINGS",
    "SUPPAE": "RELATIONSHIP", "TS": "TRIAL DESIGN", "TA": "TRIAL DESIGN", "TE": "TRIAL DESIGN",
    "TV": "TRIAL DESIGN", "TI": "TRIAL DESIGN", **sdtm_findings.CLASSES, **sdtm_biomarkers.CLASSES,
}
LABELS: dict[str, str] = {
    "DM": "Demographics", "SE": "Subject Elements", "SV": "Subject Visits", "AE": "Adverse Events",
    "DS": "Disposition", "EX": "Exposure", "LB": "Laboratory Test Results", "TR": "Tumor/Lesion Results",
    "RS": "Disease Response and Clin Classification", "SUPPAE": "Supplemental Qualifiers for AE",
    "TS": "Trial Summary", "TA": "Trial Arms", "TE": "Trial Elements", "TV": "Trial Visits",
    "TI": "Trial Inclusion/Exclusion Criteria", **sdtm_findings.LABELS, **sdtm_biomarkers.LABELS,
}


# --- building -------------------------------------------------------------------------------


def sdtm_datasets(
    study_id: str,
    events: EventTable,
    *,
    arm_labels: Mapping[str, str] | None = None,
    aes: AdverseEvents | None = None,
    exposure: Exposure | None = None,
    measurements: Measurements | None = None,
    labs: Labs | None = None,
    protocol: Protocol | None = None,
    record: sdtm_findings.RecordFindings | None = None,
) -> dict[str, pd.DataFrame]:
    """Every dataset the inputs allow: DM, DS and RS always (RS from best responses and
    time-point responses), AE and SUPPAE with adverse events, EX with exposure, LB with labs;
    with the protocol also the trial design (TS, TA, TE, TV, TI), the subjects' elements and
    visits (SE, SV), and EPOCH, VISITNUM and VISIT in the event and finding domains; with
    the ``record``'s treatments, body measurements and lesions also CM, PR, VS, TU, TR (in
    place of the sums of diameters) and RELREC (:mod:`trialdesk.outcomes.sdtm_findings`), and
    with its biomarker results LB records and IS, PC, GF, MI
    (:mod:`trialdesk.outcomes.sdtm_biomarkers`)."""
    if not study_id.strip():
        raise OutcomeError("must not be empty", where="study id")
    labels = dict(arm_labels or {})
    start = dict(zip(events.frame["patient_id"], events.frame["enrolment_date"], strict=True))

    def usubjid(patient: str) -> str:
        return f"{study_id}-{patient}"

    def day(patient: str, when: Any) -> Any:
        """SDTMIG --DY: date − RFSTDTC + 1 on or after the reference day, date − RFSTDTC before."""
        if when is None or pd.isna(when):
            return None
        delta = (pd.Timestamp(when) - start[patient]).days
        return delta + 1 if delta >= 0 else delta

    paths: dict[str, design.Path] = {}
    if protocol is not None:
        paths = design.subject_paths(protocol, events, exposure)
        dated: dict[str, list[Any]] = {}
        if labs is not None:
            for patient, when in zip(labs.frame["patient_id"], labs.frame["date"], strict=True):
                dated.setdefault(patient, []).append(when)
        if measurements is not None:
            for patient, when in zip(measurements.frame["patient_id"], measurements.frame["assessment_date"],
                                     strict=True):
                dated.setdefault(patient, []).append(when)
        for patient, days in (record.dates() if record else {}).items():
            dated.setdefault(patient, []).extend(days)
        paths = design.with_unscheduled(paths, dated)
    at = _At(paths)
    deaths = {p: d for p, d in zip(events.frame["patient_id"], events.frame["death_date"], strict=True)
              if not pd.isna(d)}
    datasets = {"DM": _dm(study_id, events, labels, exposure, usubjid)}
    if aes is not None:
        datasets["AE"], datasets["SUPPAE"] = _ae(study_id, aes, usubjid, day, at, deaths)
    if exposure is not None:
        datasets["EX"] = _ex(study_id, exposure, usubjid, day, at)
    datasets["RS"] = _rs(study_id, events, measurements, usubjid, day, at)
    if measurements is not None and len(measurements.frame):
        datasets["TR"] = _tr(study_id, measurements, usubjid, day, at)
    if labs is not None:
        datasets["LB"] = _lb(study_id, labs, usubjid, day, at)
    if record is not None:
        dm = datasets["DM"]
        context = sdtm_findings.Context(study_id, usubjid, day, at, dict(zip(
            dm["SUBJID"], (_iso(d) for d in dm["RFXSTDTC"]), strict=True)), start)
        datasets.update(sdtm_findings.findings_datasets(
            record, context, bsa_formula=protocol.bsa_formula if protocol else None,
            bsa_places=protocol.dosing.bsa_places if protocol else 2))
        datasets["RS"] = _with_responses(datasets["RS"], sdtm_findings.inrc_responses(record, context))
        datasets.update(sdtm_biomarkers.biomarker_datasets(record.biomarkers, context, datasets.get("LB")))
    datasets["DS"] = _ds(study_id, events, usubjid, day, at, randomised=protocol is not None
                         and protocol.registry.design.allocation == "RANDOMIZED")
    if protocol is not None:
        elements = {e: n for e, n in zip(*(design.trial_design(protocol, study_id, subjects=0)["TE"][c]
                                           for c in ("ETCD", "ELEMENT")), strict=True)}
        datasets["SE"], datasets["SV"] = design.se_sv(study_id, paths, usubjid, day, elements)
        datasets.update(design.trial_design(protocol, study_id, subjects=len(events.frame)))
    return {name: _ordered(name, frame) for name, frame in datasets.items()}


class _At:
    """EPOCH and visit of a subject's date, when the protocol gave the subjects' paths."""

    def __init__(self, paths: Mapping[str, design.Path]) -> None:
        self.paths = paths

    def epoch(self, patient: str, when: Any) -> str | None:
        path = self.paths.get(patient)
        return path.epoch(when) if path else None

    def visit(self, patient: str, when: Any) -> dict[str, Any]:
        path = self.paths.get(patient)
        visit = path.visit(when) if path else None
        return {"VISITNUM": visit.number if visit else None, "VISIT": visit.name if visit else None,
                "EPOCH": path.epoch(when) if path else None}


def _iso(value: Any) -> Any:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).date().isoformat()


def _dm(study: str, events: EventTable, labels: dict[str, str], exposure: Exposure | None,
        usubjid: Any) -> pd.DataFrame:
    first_dose: dict[str, Any] = {}
    last_dose: dict[str, Any] = {}
    if exposure is not None:
        frame = exposure.frame
        ends = frame["end_date"].fillna(frame["start_date"])
        first_dose = frame.groupby("patient_id")["start_date"].min().to_dict()
        last_dose = ends.groupby(frame["patient_id"]).max().to_dict()
    rows = []
    for r in events.frame.to_dict(orient="records"):
        dead = not pd.isna(r["death_date"])
        end = r["death_date"] if dead else r["last_contact_date"]
        age = r.get("age_years")
        sex = str(r.get("sex") or "").strip().upper() or "U"  # U: unknown (SEX codelist)
        rows.append({
            "STUDYID": study, "DOMAIN": "DM", "USUBJID": usubjid(r["patient_id"]),
            "SUBJID": r["patient_id"], "RFSTDTC": _iso(r["enrolment_date"]), "RFENDTC": _iso(end),
            "RFXSTDTC": _iso(first_dose.get(r["patient_id"])),
            "RFXENDTC": _iso(last_dose.get(r["patient_id"])),
            "DTHDTC": _iso(r["death_date"]), "DTHFL": "Y" if dead else None,
            "SITEID": _blank(r.get("site_id")),
            "AGE": None if _blank(age) is None else float(str(age)),
            "AGEU": None if _blank(age) is None else "YEARS",
            "SEX": sex, "ARMCD": r["arm"], "ARM": labels.get(r["arm"], r["arm"]),
            **_actual_arm(r["patient_id"], r["arm"], labels, exposure, first_dose),
            "ACTARMUD": None, "COUNTRY": _blank(r.get("country")),
        })
    return pd.DataFrame(rows)


def _actual_arm(patient: str, arm: str, labels: dict[str, str], exposure: Exposure | None,
                first_dose: Mapping[str, Any]) -> dict[str, Any]:
    """ACTARMCD/ACTARM from what was given: the planned arm when any study treatment was
    recorded; empty with ARMNRS "ASSIGNED, NOT TREATED" when exposure was given and none of
    it is the subject's; empty without a reason when no exposure was given at all (unknown)."""
    if exposure is None:
        return {"ACTARMCD": None, "ACTARM": None, "ARMNRS": None}
    if patient in first_dose:
        return {"ACTARMCD": arm, "ACTARM": labels.get(arm, arm), "ARMNRS": None}
    return {"ACTARMCD": None, "ACTARM": None, "ARMNRS": "ASSIGNED, NOT TREATED"}


def _ds(study: str, events: EventTable, usubjid: Any, day: Any, at: _At, *,
        randomised: bool) -> pd.DataFrame:
    """Disposition: the randomisation milestone (randomised trials) and every death, on the
    date DM.DTHDTC gives, so DM, DS and a fatal AE tell the same story."""
    rows = []
    for r in events.frame.to_dict(orient="records"):
        patient = r["patient_id"]
        found = []
        if randomised:
            found.append(("RANDOMIZED", "PROTOCOL MILESTONE", r["enrolment_date"]))
        if not pd.isna(r["death_date"]):
            found.append(("DEATH", "DISPOSITION EVENT", r["death_date"]))
        for seq, (decod, category, when) in enumerate(found, start=1):
            rows.append({"STUDYID": study, "DOMAIN": "DS", "USUBJID": usubjid(patient), "DSSEQ": seq,
                         "DSTERM": decod, "DSDECOD": decod, "DSCAT": category,
                         "EPOCH": at.epoch(patient, when), "DSSTDTC": _iso(when),
                         "DSSTDY": day(patient, when)})
    return pd.DataFrame(rows, columns=[v.name for v in SPEC["DS"]])


def _blank(value: Any) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def _ae(study: str, aes: AdverseEvents, usubjid: Any, day: Any, at: _At,
        deaths: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, supp = [], []
    sequence: dict[str, int] = {}
    # One qualifier name per agent across the dataset: AEREL1 is always the same agent.
    agents = {a: i for i, a in enumerate(sorted({x.agent for r in aes.records
                                                 for x in r.event.attributions}), start=1)}
    for record in sorted(aes.records, key=lambda r: (r.patient_id, r.event.onset)):
        ae = record.event
        seq = sequence[record.patient_id] = sequence.get(record.patient_id, 0) + 1
        subject = usubjid(record.patient_id)
        serious = ae.serious
        codes = term_codes(ae.term) if ae.is_ctcae_term else None
        end = ae.resolution
        if end is None and ae.outcome == Outcome.FATAL and record.patient_id in deaths:
            end = pd.Timestamp(deaths[record.patient_id]).date()  # a fatal event ends with the death
        row: dict[str, Any] = {
            "STUDYID": study, "DOMAIN": "AE", "USUBJID": subject, "AESEQ": seq, "AETERM": ae.term,
            "AELLT": codes.term if codes else None,
            "AELLTCD": int(codes.meddra_code) if codes else None, "AEDECOD": ae.meddra_term,
            "AEPTCD": int(ae.meddra_code) if ae.meddra_code else None,
            "AEHLT": None, "AEHLTCD": None, "AEHLGT": None, "AEHLGTCD": None,
            "AEBODSYS": codes.soc if codes else None,
            "AEBDSYCD": int(codes.soc_code) if codes else None,
            "AESOC": codes.soc if codes else None, "AESOCCD": int(codes.soc_code) if codes else None,
            "EPOCH": at.epoch(record.patient_id, ae.onset),
            "AESER": "Y" if serious else "N",
            "AEACN": _ACTION[ae.action_taken] if ae.action_taken else None,
            "AEREL": _relation(ae),
            "AEOUT": _OUTCOME[ae.outcome] if ae.outcome else None,
            "AETOXGR": str(ae.grade), "AESTDTC": ae.onset.isoformat(),
            "AEENDTC": end.isoformat() if end else None,
            "AESTDY": day(record.patient_id, ae.onset), "AEENDY": day(record.patient_id, end),
        }
        for flag, criteria in _SERIOUS_FLAGS:
            row[flag] = ("Y" if any(c in ae.seriousness for c in criteria) else "N") if serious else None
        rows.append(row)

        def qualifier(name: str, label: str, value: str, _subject: str = subject, _seq: int = seq) -> None:
            supp.append({"STUDYID": study, "RDOMAIN": "AE", "USUBJID": _subject, "IDVAR": "AESEQ",
                         "IDVARVAL": str(_seq), "QNAM": name, "QLABEL": label, "QVAL": value,
                         "QORIG": "CRF", "QEVAL": None})

        qualifier("AETOXGRV", "Standard Toxicity Grade Version", f"CTCAE v{ae.ctcae_version}")
        if record.course is not None:
            qualifier("AECOURSE", "Treatment Course Number", str(record.course))
        for attribution in ae.attributions:
            qualifier(f"AEREL{agents[attribution.agent]}", f"Causality to {attribution.agent}"[:40],
                      attribution.attribution.value.upper())
    return pd.DataFrame(rows), pd.DataFrame(supp, columns=[v.name for v in SPEC["SUPPAE"]])


def _relation(ae: Any) -> str | None:
    if not ae.attributions:
        return None
    return "RELATED" if ae.suspected_related else "NOT RELATED"


def _ex(study: str, exposure: Exposure, usubjid: Any, day: Any, at: _At) -> pd.DataFrame:
    rows = []
    sequence: dict[str, int] = {}
    for r in exposure.frame.to_dict(orient="records"):
        seq = sequence[r["patient_id"]] = sequence.get(r["patient_id"], 0) + 1
        route = r["route"].upper() if r["route"] else None
        rows.append({
            "STUDYID": study, "DOMAIN": "EX", "USUBJID": usubjid(r["patient_id"]), "EXSEQ": seq,
            "EXGRPID": f"C{r['course']}" + (f"-{r['course_id']}" if r["course_id"] else ""),
            "EXTRT": r["agent"].upper(), "EXDOSE": None if pd.isna(r["dose"]) else r["dose"],
            "EXDOSU": r["dose_unit"], "EXROUTE": _ROUTE.get(route, route) if route else None,
            "EPOCH": at.epoch(r["patient_id"], r["start_date"]),
            "EXSTDTC": _iso(r["start_date"]), "EXENDTC": _iso(r["end_date"]),
            "EXSTDY": day(r["patient_id"], r["start_date"]), "EXENDY": day(r["patient_id"], r["end_date"]),
        })
    return pd.DataFrame(rows)


def _with_responses(rs: pd.DataFrame, more: pd.DataFrame) -> pd.DataFrame:
    """RS with the record's INRC overall responses that it does not already hold (same
    subject, test and date), numbered after the subject's other RS records."""
    if more.empty:
        return rs
    held = set(zip(rs["USUBJID"], rs["RSTESTCD"], rs["RSDTC"], strict=True))
    more = more[[k not in held for k in zip(more["USUBJID"], more["RSTESTCD"], more["RSDTC"], strict=True)]]
    out = pd.concat([rs, more], ignore_index=True) if len(rs) else more.reset_index(drop=True)
    out["RSSEQ"] = out.groupby("USUBJID").cumcount() + 1
    return out


def _rs(study: str, events: EventTable, measurements: Measurements | None, usubjid: Any,
        day: Any, at: _At) -> pd.DataFrame:
    rows = []
    sequence: dict[str, int] = {}
    criteria = dict(zip(events.frame["patient_id"], events.frame["response_criteria"], strict=True))

    def add(patient: str, code: str, name: str, result: str, when: Any) -> None:
        seq = sequence[patient] = sequence.get(patient, 0) + 1
        rows.append({"STUDYID": study, "DOMAIN": "RS", "USUBJID": usubjid(patient), "RSSEQ": seq,
                     "RSTESTCD": code, "RSTEST": name,
                     "RSCAT": _CRITERIA.get(criteria.get(patient) or ""),
                     "RSORRES": result, "RSSTRESC": result, "RSEVAL": "INVESTIGATOR",
                     **at.visit(patient, when), "RSDTC": _iso(when), "RSDY": day(patient, when)})

    if measurements is not None:
        for m in measurements.frame.to_dict(orient="records"):
            if m["overall_response"] and not m["baseline"]:
                add(m["patient_id"], "OVRLRESP", "Overall Response", m["overall_response"],
                    m["assessment_date"])
    for r in events.frame.to_dict(orient="records"):
        if r["best_response"]:
            add(r["patient_id"], "BESTRESP", "Best Overall Response", r["best_response"], None)
    columns = [v.name for v in SPEC["RS"]]
    return pd.DataFrame(rows, columns=columns)


def _tr(study: str, measurements: Measurements, usubjid: Any, day: Any, at: _At) -> pd.DataFrame:
    """TR from the sums of target-lesion diameters: the inputs give no lesion-level data, so
    there is no TU and each record is the SUMDIAM test (CDISC CT TRTESTCD)."""
    rows = []
    sequence: dict[str, int] = {}
    for m in measurements.frame.to_dict(orient="records"):
        patient = m["patient_id"]
        seq = sequence[patient] = sequence.get(patient, 0) + 1
        value = m["sum_diameters_mm"]
        text = None if pd.isna(value) else f"{value:g}"
        rows.append({"STUDYID": study, "DOMAIN": "TR", "USUBJID": usubjid(patient), "TRSEQ": seq,
                     "TRLNKID": None, "TRTESTCD": "SUMDIAM", "TRTEST": "Sum of Diameter",
                     "TRORRES": text, "TRORRESU": "mm" if text else None, "TRSTRESC": text,
                     "TRSTRESN": None if text is None else float(value), "TRSTRESU": "mm" if text else None,
                     "TREVAL": "INVESTIGATOR", **at.visit(patient, m["assessment_date"]),
                     "TRDTC": _iso(m["assessment_date"]), "TRDY": day(patient, m["assessment_date"])})
    return pd.DataFrame(rows)


def _lb(study: str, labs: Labs, usubjid: Any, day: Any, at: _At) -> pd.DataFrame:
    rows = []
    sequence: dict[str, int] = {}
    for r in labs.frame.to_dict(orient="records"):
        seq = sequence[r["patient_id"]] = sequence.get(r["patient_id"], 0) + 1
        try:
            numeric: float | None = float(r["value"])
        except ValueError:
            numeric = None
        rows.append({
            "STUDYID": study, "DOMAIN": "LB", "USUBJID": usubjid(r["patient_id"]), "LBSEQ": seq,
            "LBTESTCD": r["test_code"].upper(), "LBTEST": r["test"], "LBORRES": r["value"],
            "LBORRESU": r["unit"], "LBORNRLO": _limit(r["lower_limit"]), "LBORNRHI": _limit(r["upper_limit"]),
            "LBSTRESC": r["value"], "LBSTRESN": numeric, "LBSTRESU": r["unit"],
            "LBSTNRLO": None if pd.isna(r["lower_limit"]) else r["lower_limit"],
            "LBSTNRHI": None if pd.isna(r["upper_limit"]) else r["upper_limit"],
            "LBNRIND": _range_indicator(numeric, r["lower_limit"], r["upper_limit"]),
            "LBTOXGR": _toxicity_grade(r, numeric),
            **at.visit(r["patient_id"], r["date"]),
            "LBDTC": _iso(r["date"]), "LBDY": day(r["patient_id"], r["date"]),
        })
    return pd.DataFrame(rows)


# LBTESTCD (CDISC SDTM Controlled Terminology, LBTESTCD codelist) -> the CTCAE v5.0 term
# graded from that test's value in one direction (NCI CTCAE v5.0, "Investigations" and
# "Blood and lymphatic system disorders"). Tests graded in two directions (potassium,
# sodium, calcium, glucose ...) need the reported term and are not graded here.
LB_CTCAE_TERMS: dict[str, str] = {
    "NEUT": "Neutrophil count decreased", "PLAT": "Platelet count decreased",
    "WBC": "White blood cell decreased", "LYM": "Lymphocyte count decreased",
    "ALT": "Alanine aminotransferase increased", "AST": "Aspartate aminotransferase increased",
    "BILI": "Blood bilirubin increased", "CREAT": "Creatinine increased",
    "ALP": "Alkaline phosphatase increased", "GGT": "GGT increased", "LIPASE": "Lipase increased",
    "AMYLASE": "Serum amylase increased", "CK": "CPK increased",
}


def lab_grade(test_code: str, value: float | None, unit: str | None, low: float, high: float) -> int | None:
    """The CTCAE v5.0 grade of a lab value when it is decided by the value and the given
    range alone (:func:`trialdesk.clinical.ctcae.grade_lab`); None when a limit, the
    baseline or a clinical fact is missing, or the test is not graded one way.

    >>> lab_grade("NEUT", 0.3, "10^9/L", float("nan"), float("nan"))
    4
    >>> lab_grade("NEUT", 2.5, "10^9/L", float("nan"), float("nan")) is None  # needs the LLN
    True
    """
    term = LB_CTCAE_TERMS.get(test_code.upper())
    if term is None or value is None or not unit:
        return None
    from trialdesk.clinical.ctcae import grade_lab
    from trialdesk.errors import TrialdeskError

    try:
        graded = grade_lab(term, value, unit, lln=None if pd.isna(low) else low,
                           uln=None if pd.isna(high) else high)
    except TrialdeskError:  # a unit the term is not graded in
        return None
    return graded.grade


def _range_indicator(value: float | None, low: float, high: float) -> str | None:
    """LBNRIND (NRIND codelist) against the given reference range; empty without one."""
    if value is None or (pd.isna(low) and pd.isna(high)):
        return None
    if not pd.isna(low) and value < low:
        return "LOW"
    if not pd.isna(high) and value > high:
        return "HIGH"
    return "NORMAL" if not (pd.isna(low) or pd.isna(high)) else None


def _toxicity_grade(r: Mapping[str, Any], numeric: float | None) -> str | None:
    """LBTOXGR: the grade recorded with the result, else the CTCAE v5.0 grade when the value
    and the given range decide it. A recorded grade the value contradicts is refused."""
    graded = lab_grade(r["test_code"], numeric, r["unit"], r["lower_limit"], r["upper_limit"])
    if pd.isna(r["toxicity_grade"]):
        return None if graded is None else str(graded)
    recorded = int(r["toxicity_grade"])
    if graded is not None and graded != recorded:
        raise OutcomeError(f"{r['patient_id']} {r['date'].date()} {r['test_code']} {r['value']} {r['unit']}: "
                           f"recorded CTCAE grade {recorded}, the CTCAE v5.0 grade of the value is {graded}",
                           where="labs.toxicity_grade")
    return str(recorded)


def _limit(value: float) -> str | None:
    return None if pd.isna(value) else f"{value:g}"


def _ordered(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    columns = [v.name for v in SPEC[name]]
    frame = frame.reindex(columns=columns)
    for variable in SPEC[name]:
        if variable.type == "Num":
            frame[variable.name] = pd.to_numeric(frame[variable.name], errors="coerce").astype(float)
            if frame[variable.name].dropna().map(float.is_integer).all():
                frame[variable.name] = frame[variable.name].astype("Int64")
        else:
            column = frame[variable.name].astype(object)
            frame[variable.name] = column.where(column.notna(), None).map(
                lambda v: None if v is None else ascii_text(str(v)))
    return frame



# --- validation -----------------------------------------------------------------------------

_TESTCD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,7}$")  # SDTMIG v3.4 4.5.1: --TESTCD
_ISO_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2}(T\d{2}(:\d{2}(:\d{2})?)?)?)?)?$")


def validate_sdtm(datasets: Mapping[str, pd.DataFrame]) -> list[Finding]:
    """Check datasets against the SDTMIG tables in :data:`SPEC`; an empty list means valid."""
    findings: list[Finding] = []
    subjects = set(datasets["DM"]["USUBJID"]) if "DM" in datasets else set()
    for name, frame in datasets.items():
        if name not in SPEC:
            findings.append(Finding(name, None, None, "not a dataset this module knows"))
            continue
        spec = {v.name: v for v in SPEC[name]}
        for variable in spec.values():
            if variable.name not in frame.columns:
                if variable.core in ("Req", "Exp"):
                    findings.append(Finding(name, variable.name, None,
                                            f"{variable.core} variable is missing"))
                continue
            findings.extend(_check_values(name, frame, variable))
        for column in frame.columns:
            if column not in spec:
                findings.append(Finding(name, str(column), None, "not an SDTMIG variable of this dataset"))
        if "DOMAIN" in frame.columns and (frame["DOMAIN"] != name).any():
            findings.append(Finding(name, "DOMAIN", None, f"must be {name!r} on every row"))
        seq = f"{name}SEQ"
        if seq in frame.columns and "USUBJID" in frame.columns and frame.duplicated(["USUBJID", seq]).any():
            findings.append(Finding(name, seq, None, "not unique within USUBJID"))
        keys = [k for k in KEYS.get(name, ()) if k in frame.columns]
        if seq not in frame.columns and keys and frame.duplicated(keys).any():
            findings.append(Finding(name, None, None, f"key {', '.join(keys)} is not unique"))
        if name != "DM" and "USUBJID" in frame.columns and "DM" in datasets:
            for row, subject in enumerate(frame["USUBJID"], start=1):
                if subject not in subjects and not (name == "RELREC" and subject is None):
                    findings.append(Finding(name, "USUBJID", row, f"{subject} is not in DM"))
    return findings + cross_checks(datasets) + sdtm_findings.cross_checks(datasets)


def cross_checks(datasets: Mapping[str, pd.DataFrame]) -> list[Finding]:
    """What one dataset says about another: deaths in DM, DS and AE; arms in DM and TA;
    the actual arm or its reason; epochs in TA; visits of LB and RS in SV."""
    findings: list[Finding] = []
    if "DM" not in datasets:
        return [Finding("DM", None, None, "every SDTM submission has DM")]
    dm = datasets["DM"]
    death = {u: d for u, d, f in zip(dm["USUBJID"], dm["DTHDTC"], dm["DTHFL"], strict=True) if f == "Y"}
    dm_rows = zip(dm["USUBJID"], dm["DTHFL"], dm["DTHDTC"], strict=True)
    for row, (subject, flag, when) in enumerate(dm_rows, 1):
        if (flag == "Y") != (when is not None and not pd.isna(when)):
            findings.append(Finding("DM", "DTHFL", row, f"{subject}: DTHFL and DTHDTC disagree"))
        actual, reason = dm.loc[row - 1, "ACTARMCD"], dm.loc[row - 1, "ARMNRS"]
        if "EX" in datasets and actual is None and reason is None:
            findings.append(Finding("DM", "ARMNRS", row, f"{subject}: no actual arm and no reason"))
    if "DS" in datasets:
        ds = datasets["DS"]
        ds_deaths = {u: d for u, d, t in zip(ds["USUBJID"], ds["DSSTDTC"], ds["DSDECOD"], strict=True)
                     if t == "DEATH"}
        for subject, when in death.items():
            if ds_deaths.get(subject) != when:
                findings.append(Finding("DS", "DSDECOD", None,
                                        f"{subject}: DM.DTHFL is Y but DS has no DEATH on {when}"))
        for subject in ds_deaths.keys() - death.keys():
            findings.append(Finding("DS", "DSDECOD", None, f"{subject}: DEATH in DS, DM.DTHFL is not Y"))
    if "AE" in datasets:
        ae = datasets["AE"]
        ae_rows = zip(ae["USUBJID"], ae["AEOUT"], ae["AEENDTC"], strict=True)
        for row, (subject, out, end) in enumerate(ae_rows, 1):
            if out == "FATAL" and subject not in death:
                findings.append(Finding("AE", "AEOUT", row, f"{subject}: fatal AE, DM.DTHFL is not Y"))
            elif out == "FATAL" and end != death[subject]:
                findings.append(Finding("AE", "AEENDTC", row,
                                        f"{subject}: a fatal AE ends on the death date {death[subject]}"))
    if "TA" in datasets:
        arms = set(datasets["TA"]["ARMCD"])
        epochs = set(datasets["TA"]["EPOCH"])
        for row, arm in enumerate(dm["ARMCD"], 1):
            if arm not in arms:
                findings.append(Finding("DM", "ARMCD", row, f"{arm!r} is not an arm of TA"))
        for name, frame in datasets.items():
            if "EPOCH" in frame.columns and name != "TA":
                for row, epoch in enumerate(frame["EPOCH"], 1):
                    if epoch is not None and not pd.isna(epoch) and epoch not in epochs:
                        findings.append(Finding(name, "EPOCH", row, f"{epoch!r} is not an epoch of TA"))
    if "SV" in datasets:
        visits = set(zip(datasets["SV"]["USUBJID"], datasets["SV"]["VISITNUM"], strict=True))
        for name in ("LB", "RS", "TR", "VS", "TU", *sdtm_biomarkers.SPEC):
            frame = datasets.get(name)
            if frame is None:
                continue
            for row, key in enumerate(zip(frame["USUBJID"], frame["VISITNUM"], strict=True), 1):
                if not pd.isna(key[1]) and key not in visits:
                    findings.append(Finding(name, "VISITNUM", row,
                                            f"visit {key[1]} of {key[0]} is not in SV"))
    return findings


def _check_values(name: str, frame: pd.DataFrame, variable: Variable) -> list[Finding]:
    findings = []
    terms = CODELISTS.get(variable.codelist or "")
    for row, value in enumerate(frame[variable.name], start=1):
        missing = value is None or (not isinstance(value, str) and pd.isna(value))
        if missing:
            if variable.core == "Req":
                findings.append(Finding(name, variable.name, row, "Req variable has no value"))
            continue
        if variable.type == "Num" and isinstance(value, str):
            findings.append(Finding(name, variable.name, row, f"{value!r} is not a number"))
        if variable.type == "Char":
            text = str(value)
            if len(text) > 200:
                findings.append(Finding(name, variable.name, row, "longer than 200 characters"))
            if terms is not None and text not in terms:
                findings.append(Finding(name, variable.name, row,
                                        f"{text!r} is not in codelist {variable.codelist}"))
            if variable.name.endswith("DTC") and not _ISO_DATE.match(text):
                findings.append(Finding(name, variable.name, row, f"{text!r} is not ISO 8601"))
            if variable.name.endswith("TESTCD") and not _TESTCD.match(text):
                findings.append(Finding(name, variable.name, row, "a test code has at most 8 "
                                        "letters, digits or underscores and does not start with a digit"))
            if variable.name in ("QNAM",) and len(text) > 8:
                findings.append(Finding(name, variable.name, row, "QNAM has at most 8 characters"))
            if variable.name in ("QLABEL",) and len(text) > 40:
                findings.append(Finding(name, variable.name, row, "QLABEL has at most 40 characters"))
    return findings


def require_valid(datasets: Mapping[str, pd.DataFrame]) -> None:
    """Raise one :class:`OutcomeError` listing every finding, or return quietly."""
    findings = validate_sdtm(datasets)
    if findings:
        lines = "\n".join(f"  {f}" for f in findings[:50])
        more = f"\n  … and {len(findings) - 50} more" if len(findings) > 50 else ""
        raise OutcomeError(f"{len(findings)} SDTM conformance problem(s):\n{lines}{more}",
                           where=f"SDTMIG v{SDTMIG_VERSION}")


def to_csv(frame: pd.DataFrame) -> bytes:
    """A dataset as UTF-8 CSV; missing values are empty cells."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


def dataset_names(datasets: Mapping[str, pd.DataFrame]) -> Sequence[str]:
    """File names, lower case as in a submission: ``dm.csv``, ``ae.csv`` …"""
    return [f"{name.lower()}.csv" for name in datasets]
