"""SDTM datasets from the patient's record beyond the outcome inputs: CM and PR (the
treatment history), VS (body measurements), TU and TR (the lesions of the stored response
assessments) and RELREC (how TU and TR are linked).

Variables, labels and core status follow the SDTM Implementation Guide v3.4 domain tables
(CDISC, 2021): section 6.1 (CM, PR), 6.3 (VS), 6.3.12 (TU, TR) and 8.3 (RELREC, relating
datasets). Choices, stated once:

* The record's treatments are interventions the patient had: medicines (chemotherapy,
  immunotherapy, corticosteroids, immunosuppressants, targeted and cell therapy, other) go
  to CM, procedures (radiotherapy, surgery, stem cell transplant) to PR, as SDTMIG v3.4
  section 6.1 sorts them. ``--CAT`` is the record's category; ``--SCAT`` is PRIOR when the
  treatment started before the first study treatment (DM.RFXSTDTC), CONCOMITANT when on or
  after it, empty when no study treatment is known. EPOCH only for what started on or after
  enrolment (a treatment years before the trial belongs to no epoch of it).
* VS holds WEIGHT (kg) and HEIGHT (cm) as measured, and BSA (m2) derived (``VSDRVFL`` Y)
  when weight and height were measured on the same day, with the protocol's BSA formula
  and rounding (:func:`trialdesk.clinical.body.bsa`); a day with one of them has no BSA.
  ``VSLOBXFL`` marks each test's last value on or before the day of the first study
  treatment (SDTMIG v3.4: last observation before exposure; a weight measured on the day
  of the first dose is the one its dose was computed from).
* TU/TR follow SDTMIG v3.4 section 6.3.12, example 2 (RECIST 1.1): one TU record per lesion
  when it is first identified (``TUMIDENT``: TARGET, NON-TARGET, NEW), with ``TULNKID`` the
  lesion's id; TR holds what was measured or seen (``DIAMETER`` in mm for target lesions,
  the short axis for lymph nodes as RECIST 1.1 measures them; ``TUMSTATE`` for non-target
  and new lesions), ``TRGRPID`` TARGET / NON-TARGET / NEW. Sums, nadirs and per cent changes
  are derived and are not TR records (SDTMIG v3.4 TR assumption 3: derived results belong
  to the analysis datasets). A RECIST time point says whether new lesions were seen, not
  which: the first time point with new lesions identifies one NEW lesion.
* INRC 2017 components are locations of interest (SDTMIG v3.4 TU assumption 3): the primary
  tumour (``DIAMETER``, its longest diameter in mm), soft-tissue metastases (``SUMDIAM`` as
  recorded), bone by MIBG (``CURIESC`` or ``SIOPENSC``, the semi-quantitative score) and
  bone marrow (``TUMINFPC``, per cent tumour infiltration). The MIBG score and marrow
  infiltration test codes are the sponsor's: CDISC TRTESTCD has no term for them. Each time
  point document carries the component's baseline value without its date: it is one TR
  record per subject with no date and ``TRLOBXFL`` Y.
* RELREC relates TU and TR dataset to dataset by ``--LNKID`` (SDTMIG v3.4 TR assumption 1).
* RS gets the overall response of each stored INRC 2017 time point (:func:`inrc_responses`)
  unless it already holds one for that subject and day.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import pandas as pd

from trialdesk.outcomes.sdtm_biomarkers import BiomarkerResult
from trialdesk.outcomes.sdtm_design import Core, Finding, Variable

# Treatment categories of the patient record (trialdesk.facts.dictionary.THERAPY_CATEGORIES)
# that are procedures (SDTMIG v3.4 6.1: PR holds radiotherapy, surgery and transplants).
PROCEDURES = frozenset({"radiotherapy", "surgery", "stem_cell_transplant"})
_METHOD = {"ct": "CT SCAN", "mri": "MRI", "chest_xray": "X-RAY", "ultrasound": "ULTRASOUND",
           "caliper": "CALIPER"}
# The MIBG skeletal scores (trialdesk.response.inrc.MibgScale): sponsor-defined TRTESTCD.
_MIBG = {"curie": ("CURIESC", "Curie Score"), "siopen": ("SIOPENSC", "SIOPEN Score")}


def _v(name: str, label: str, type_: Literal["Char", "Num"], core: Core,
       codelist: str | None = None) -> Variable:
    return Variable(name, label, type_, core, codelist)


def _ids(domain: str) -> tuple[Variable, ...]:
    return (_v("STUDYID", "Study Identifier", "Char", "Req"),
            _v("DOMAIN", "Domain Abbreviation", "Char", "Req"),
            _v("USUBJID", "Unique Subject Identifier", "Char", "Req"),
            _v(f"{domain}SEQ", "Sequence Number", "Num", "Req"))


def _intervention(d: str, what: str) -> tuple[Variable, ...]:
    return (*_ids(d),
            _v(f"{d}TRT", f"Reported Name of {what}", "Char", "Req"),
            _v(f"{d}CAT", f"Category for {what}", "Char", "Perm"),
            _v(f"{d}SCAT", f"Subcategory for {what}", "Char", "Perm"),
            _v("EPOCH", "Epoch", "Char", "Perm", "EPOCH"),
            _v(f"{d}STDTC", f"Start Date/Time of {what}", "Char", "Perm"),
            _v(f"{d}ENDTC", f"End Date/Time of {what}", "Char", "Perm"),
            _v(f"{d}STDY", f"Study Day of Start of {what}", "Num", "Perm"),
            _v(f"{d}ENDY", f"Study Day of End of {what}", "Num", "Perm"))


_VISIT = (_v("VISITNUM", "Visit Number", "Num", "Exp"), _v("VISIT", "Visit Name", "Char", "Perm"),
          _v("EPOCH", "Epoch", "Char", "Perm", "EPOCH"))

SPEC: dict[str, tuple[Variable, ...]] = {
    "CM": _intervention("CM", "Medication"),
    "PR": _intervention("PR", "Procedure"),
    "VS": (*_ids("VS"),
           _v("VSTESTCD", "Vital Signs Test Short Name", "Char", "Req", "VSTESTCD"),
           _v("VSTEST", "Vital Signs Test Name", "Char", "Req"),
           _v("VSORRES", "Result or Finding in Original Units", "Char", "Exp"),
           _v("VSORRESU", "Original Units", "Char", "Exp", "UNIT"),
           _v("VSSTRESC", "Character Result/Finding in Std Format", "Char", "Exp"),
           _v("VSSTRESN", "Numeric Result/Finding in Standard Units", "Num", "Exp"),
           _v("VSSTRESU", "Standard Units", "Char", "Exp", "UNIT"),
           _v("VSLOBXFL", "Last Observation Before Exposure Flag", "Char", "Exp", "NY"),
           _v("VSDRVFL", "Derived Flag", "Char", "Perm", "NY"),
           *_VISIT,
           _v("VSDTC", "Date/Time of Measurements", "Char", "Exp"),
           _v("VSDY", "Study Day of Vital Signs", "Num", "Perm")),
    "TU": (*_ids("TU"),
           _v("TULNKID", "Link ID", "Char", "Exp"),
           _v("TUTESTCD", "Tumor/Lesion ID Short Name", "Char", "Req", "TUTESTCD"),
           _v("TUTEST", "Tumor/Lesion ID Test Name", "Char", "Req"),
           _v("TUORRES", "Tumor/Lesion ID Result", "Char", "Exp"),
           _v("TUSTRESC", "Tumor/Lesion ID Result Std. Format", "Char", "Exp", "TUMIDENT"),
           _v("TULOC", "Location of the Tumor/Lesion", "Char", "Exp"),
           _v("TUMETHOD", "Method of Identification", "Char", "Exp"),
           _v("TULOBXFL", "Last Observation Before Exposure Flag", "Char", "Exp", "NY"),
           _v("TUEVAL", "Evaluator", "Char", "Exp"),
           *_VISIT,
           _v("TUDTC", "Date/Time of Tumor/Lesion Identification", "Char", "Exp"),
           _v("TUDY", "Study Day of Tumor/Lesion Identification", "Num", "Perm")),
    "TR": (*_ids("TR"),
           _v("TRGRPID", "Group ID", "Char", "Perm"),
           _v("TRLNKID", "Link ID", "Char", "Exp"),
           _v("TRTESTCD", "Tumor/Lesion Assessment Short Name", "Char", "Req"),
           _v("TRTEST", "Tumor/Lesion Assessment Test Name", "Char", "Req"),
           _v("TRORRES", "Result or Finding in Original Units", "Char", "Exp"),
           _v("TRORRESU", "Original Units", "Char", "Exp"),
           _v("TRSTRESC", "Character Result/Finding in Std Format", "Char", "Exp"),
           _v("TRSTRESN", "Numeric Result/Finding in Standard Units", "Num", "Exp"),
           _v("TRSTRESU", "Standard Units", "Char", "Exp"),
           _v("TRSTAT", "Completion Status", "Char", "Perm", "ND"),
           _v("TRMETHOD", "Method Used to Identify the Tumor/Lesion", "Char", "Exp"),
           _v("TRLOBXFL", "Last Observation Before Exposure Flag", "Char", "Perm", "NY"),
           _v("TREVAL", "Evaluator", "Char", "Exp"),
           *_VISIT,
           _v("TRDTC", "Date/Time of Tumor/Lesion Measurement", "Char", "Exp"),
           _v("TRDY", "Study Day of Tumor/Lesion Measurement", "Num", "Perm")),
    "RELREC": (_v("STUDYID", "Study Identifier", "Char", "Req"),
               _v("RDOMAIN", "Related Domain Abbreviation", "Char", "Req"),
               _v("USUBJID", "Unique Subject Identifier", "Char", "Exp"),
               _v("IDVAR", "Identifying Variable", "Char", "Req"),
               _v("IDVARVAL", "Identifying Variable Value", "Char", "Exp"),
               _v("RELTYPE", "Relationship Type", "Char", "Exp", "RELTYPE"),
               _v("RELID", "Relationship Identifier", "Char", "Req")),
}
KEYS: dict[str, tuple[str, ...]] = {
    "CM": ("STUDYID", "USUBJID", "CMSEQ"), "PR": ("STUDYID", "USUBJID", "PRSEQ"),
    "VS": ("STUDYID", "USUBJID", "VSSEQ"), "TU": ("STUDYID", "USUBJID", "TUSEQ"),
    "RELREC": ("STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "RELID"),
}
CLASSES: dict[str, str] = {"CM": "INTERVENTIONS", "PR": "INTERVENTIONS", "VS": "FINDINGS",
                           "TU": "FINDINGS", "RELREC": "RELATIONSHIP"}
LABELS: dict[str, str] = {"CM": "Concomitant/Prior Medications", "PR": "Procedures",
                          "VS": "Vital Signs", "TU": "Tumor/Lesion Identification",
                          "RELREC": "Related Records"}
STRUCTURES: dict[str, str] = {
    "TU": "One record per identified tumor per subject per assessor",
    "TR": "One record per tumor measurement/assessment per visit per subject per assessor",
    "VS": "One record per vital sign measurement per time point per visit per subject",
    "CM": "One record per recorded intervention occurrence or constant-dosing interval per subject",
    "PR": "One record per recorded procedure per occurrence per subject",
    "RELREC": "One record per related record, group of records or dataset",
}
# CDISC SDTM Controlled Terminology, the terms these datasets use (subsets of VSTESTCD,
# UNIT, TUTESTCD, the TUMIDENT result codelist, ND and RELTYPE).
CODELISTS: dict[str, frozenset[str]] = {
    "VSTESTCD": frozenset({"WEIGHT", "HEIGHT", "BSA"}),
    "UNIT": frozenset({"kg", "cm", "m2"}),
    "TUTESTCD": frozenset({"TUMIDENT"}),
    "TUMIDENT": frozenset({"TARGET", "NON-TARGET", "NEW", "LOCATION OF INTEREST"}),
    "ND": frozenset({"NOT DONE"}),
    "RELTYPE": frozenset({"ONE", "MANY"}),
}
_VS_TESTS = (("weight_kg", "WEIGHT", "Weight", "kg"), ("height_cm", "HEIGHT", "Height", "cm"))


# --- what the record holds ------------------------------------------------------------------


@dataclass(frozen=True)
class Treatment:
    """One treatment of the patient's record (agent, category, start, end)."""

    patient_id: str
    agent: str
    category: str
    start: date
    end: date | None = None


@dataclass(frozen=True)
class BodySize:
    """Weight and/or height measured on one day."""

    patient_id: str
    on: date
    weight_kg: float | None = None
    height_cm: float | None = None


@dataclass(frozen=True)
class Assessment:
    """One stored response assessment: the criteria (RECIST or INRC), the kind (baseline or
    time_point), the date, the document as recorded and the overall response assessed."""

    patient_id: str
    criteria: Literal["RECIST", "INRC"]
    kind: Literal["baseline", "time_point"]
    on: date
    document: Mapping[str, Any]
    overall: str | None = None


@dataclass(frozen=True)
class RecordFindings:
    """What the trial's records hold for CM, PR, VS, TU and TR, and the biomarker results
    (LB, IS, PC, GF, MI: :mod:`trialdesk.outcomes.sdtm_biomarkers`)."""

    treatments: tuple[Treatment, ...] = ()
    body: tuple[BodySize, ...] = ()
    assessments: tuple[Assessment, ...] = ()
    notes: tuple[str, ...] = field(default=())
    biomarkers: tuple[BiomarkerResult, ...] = ()

    def dates(self) -> dict[str, list[date]]:
        """The dates of findings that belong to a visit (VS, TU, TR and the biomarker
        results), per patient."""
        out: dict[str, list[date]] = {}
        for b in self.body:
            out.setdefault(b.patient_id, []).append(b.on)
        for a in self.assessments:
            out.setdefault(a.patient_id, []).append(a.on)
        for r in self.biomarkers:
            out.setdefault(r.patient_id, []).append(r.on)
        return out


class Context:
    """What a builder needs of the package: the study, subjects, study days, visits and
    epochs, and each subject's first study treatment (DM.RFXSTDTC)."""

    def __init__(self, study: str, usubjid: Callable[[str], str], day: Callable[[str, Any], Any],
                 at: Any, first_dose: Mapping[str, str | None], enrolled: Mapping[str, Any]) -> None:
        self.study, self.usubjid, self.day, self.at = study, usubjid, day, at
        self.first_dose, self.enrolled = first_dose, enrolled

    def timing(self, patient: str, when: date | None, prefix: str) -> dict[str, Any]:
        """VISITNUM, VISIT, EPOCH, --DTC and --DY of a finding on ``when``."""
        if when is None:
            return {"VISITNUM": None, "VISIT": None, "EPOCH": None, f"{prefix}DTC": None,
                    f"{prefix}DY": None}
        return {**self.at.visit(patient, when), f"{prefix}DTC": when.isoformat(),
                f"{prefix}DY": self.day(patient, when)}

    def before_exposure(self, patient: str, when: date | None) -> bool:
        first = self.first_dose.get(patient)
        return when is not None and first is not None and when.isoformat() <= first


def findings_datasets(found: RecordFindings, ctx: Context, *, bsa_formula: str | None,
                      bsa_places: int) -> dict[str, pd.DataFrame]:
    """CM, PR, VS, TU, TR and RELREC, each only when the record holds something for it.
    Patients outside the package (not in ``ctx.enrolled``) are left out."""
    inside = [t for t in found.treatments if t.patient_id in ctx.enrolled]
    out: dict[str, pd.DataFrame] = {}
    for name, rows in (("CM", [t for t in inside if t.category not in PROCEDURES]),
                       ("PR", [t for t in inside if t.category in PROCEDURES])):
        if rows:
            out[name] = _interventions(name, rows, ctx)
    body = [b for b in found.body if b.patient_id in ctx.enrolled]
    if body:
        out["VS"] = _vs(body, ctx, bsa_formula, bsa_places)
    assessments = [a for a in found.assessments if a.patient_id in ctx.enrolled]
    tu, tr = _tumours(assessments, ctx)
    if tu:
        out["TU"] = pd.DataFrame(tu)
        out["TR"] = pd.DataFrame(tr)
        out["RELREC"] = pd.DataFrame([
            {"STUDYID": ctx.study, "RDOMAIN": "TU", "USUBJID": None, "IDVAR": "TULNKID",
             "IDVARVAL": None, "RELTYPE": "ONE", "RELID": "TUTR"},
            {"STUDYID": ctx.study, "RDOMAIN": "TR", "USUBJID": None, "IDVAR": "TRLNKID",
             "IDVARVAL": None, "RELTYPE": "MANY", "RELID": "TUTR"}])
    return out


def inrc_responses(found: RecordFindings, ctx: Context) -> pd.DataFrame:
    """RS overall responses of the stored INRC 2017 time points (RSSEQ left to the caller,
    which numbers them after the other RS records of the subject)."""
    rows = [{"STUDYID": ctx.study, "DOMAIN": "RS", "USUBJID": ctx.usubjid(a.patient_id),
             "RSTESTCD": "OVRLRESP", "RSTEST": "Overall Response", "RSCAT": "INRC 2017",
             "RSORRES": a.overall, "RSSTRESC": a.overall, "RSEVAL": "INVESTIGATOR",
             **ctx.timing(a.patient_id, a.on, "RS")}
            for a in sorted(found.assessments, key=lambda a: (a.patient_id, a.on))
            if a.criteria == "INRC" and a.kind == "time_point" and a.overall and a.patient_id in ctx.enrolled]
    return pd.DataFrame(rows)


def _interventions(d: str, rows: list[Treatment], ctx: Context) -> pd.DataFrame:
    out = []
    sequence: dict[str, int] = {}
    for t in sorted(rows, key=lambda t: (t.patient_id, t.start, t.agent)):
        seq = sequence[t.patient_id] = sequence.get(t.patient_id, 0) + 1
        first = ctx.first_dose.get(t.patient_id)
        when = None if first is None else "PRIOR" if t.start.isoformat() < first else "CONCOMITANT"
        enrolled = pd.Timestamp(ctx.enrolled[t.patient_id]).date()
        out.append({"STUDYID": ctx.study, "DOMAIN": d, "USUBJID": ctx.usubjid(t.patient_id),
                    f"{d}SEQ": seq, f"{d}TRT": t.agent, f"{d}CAT": t.category.replace("_", " ").upper(),
                    f"{d}SCAT": when,
                    "EPOCH": ctx.at.epoch(t.patient_id, t.start) if t.start >= enrolled else None,
                    f"{d}STDTC": t.start.isoformat(), f"{d}ENDTC": t.end.isoformat() if t.end else None,
                    f"{d}STDY": ctx.day(t.patient_id, t.start), f"{d}ENDY": ctx.day(t.patient_id, t.end)})
    return pd.DataFrame(out)


def _vs(body: list[BodySize], ctx: Context, formula: str | None, places: int) -> pd.DataFrame:
    from trialdesk.clinical.body import bsa, round_bsa

    found: dict[tuple[str, date], dict[str, float]] = {}
    for b in sorted(body, key=lambda b: (b.patient_id, b.on)):
        values = found.setdefault((b.patient_id, b.on), {})
        values.update({k: v for k, v in (("weight_kg", b.weight_kg), ("height_cm", b.height_cm))
                       if v is not None})  # a later record of the same day replaces an earlier one
    rows: list[dict[str, Any]] = []
    for (patient, on), values in found.items():
        tests: list[tuple[str, str, str, float, str | None]] = [
            (code, name, unit, values[key], None) for key, code, name, unit in _VS_TESTS if key in values]
        if formula is not None and {"weight_kg", "height_cm"} <= values.keys():
            area = round_bsa(bsa(values["height_cm"], values["weight_kg"], formula=formula), places)
            tests.append(("BSA", "Body Surface Area", "m2", area, "Y"))
        for code, name, unit, value, derived in tests:
            rows.append({"STUDYID": ctx.study, "DOMAIN": "VS", "USUBJID": ctx.usubjid(patient),
                         "VSTESTCD": code, "VSTEST": name, "VSORRES": f"{value:g}", "VSORRESU": unit,
                         "VSSTRESC": f"{value:g}", "VSSTRESN": float(value), "VSSTRESU": unit,
                         "VSLOBXFL": None, "VSDRVFL": derived, **ctx.timing(patient, on, "VS")})
    flag_last_before_exposure(rows, ctx, ("VSTESTCD",), "VSDTC", "VSLOBXFL")
    sequence: dict[str, int] = {}
    for row in rows:
        row["VSSEQ"] = sequence[row["USUBJID"]] = sequence.get(row["USUBJID"], 0) + 1
    return pd.DataFrame(rows)


def flag_last_before_exposure(rows: list[dict[str, Any]], ctx: Context, keys: tuple[str, ...],
                              dtc: str, flag: str) -> None:
    """Set ``flag`` Y on the last dated row of each subject and ``keys`` on or before the day
    of the subject's first study treatment (DM.RFXSTDTC)."""
    last: dict[tuple[Any, ...], dict[str, Any]] = {}
    patients = {ctx.usubjid(p): p for p in ctx.enrolled}
    given = {(r["USUBJID"], *(r[k] for k in keys)) for r in rows if r[flag] == "Y"}
    for row in sorted((r for r in rows if r[dtc]), key=lambda r: str(r[dtc])):
        if (row["USUBJID"], *(row[k] for k in keys)) in given:
            continue
        if ctx.before_exposure(patients[row["USUBJID"]], date.fromisoformat(row[dtc][:10])):
            last[(row["USUBJID"], *(row[k] for k in keys))] = row
    for row in last.values():
        row[flag] = "Y"


# --- tumours --------------------------------------------------------------------------------


class _Tumours:
    """TU and TR rows of one subject, numbered as they are added."""

    def __init__(self, ctx: Context, patient: str) -> None:
        self.ctx, self.patient = ctx, patient
        self.tu: list[dict[str, Any]] = []
        self.tr: list[dict[str, Any]] = []
        self.methods: dict[str, str | None] = {}

    def identify(self, link: str, result: str, location: str | None, method: str | None,
                 on: date | None) -> None:
        ctx = self.ctx
        self.methods[link] = method
        self.tu.append({"STUDYID": ctx.study, "DOMAIN": "TU", "USUBJID": ctx.usubjid(self.patient),
                        "TUSEQ": len(self.tu) + 1, "TULNKID": link, "TUTESTCD": "TUMIDENT",
                        "TUTEST": "Tumor Identification", "TUORRES": result, "TUSTRESC": result,
                        "TULOC": location.upper() if location else None, "TUMETHOD": method,
                        "TULOBXFL": "Y" if ctx.before_exposure(self.patient, on) else None,
                        "TUEVAL": "INVESTIGATOR", **ctx.timing(self.patient, on, "TU")})

    def result(self, link: str | None, group: str, code: str, name: str, value: Any, unit: str | None,
               on: date | None, *, baseline: bool = False) -> None:
        ctx = self.ctx
        number = isinstance(value, int | float) and not isinstance(value, bool)
        text = None if value is None else f"{value:g}" if number else str(value)
        self.tr.append({"STUDYID": ctx.study, "DOMAIN": "TR", "USUBJID": ctx.usubjid(self.patient),
                        "TRSEQ": len(self.tr) + 1, "TRGRPID": group, "TRLNKID": link,
                        "TRTESTCD": code, "TRTEST": name, "TRORRES": text,
                        "TRORRESU": unit if text is not None else None, "TRSTRESC": text,
                        "TRSTRESN": float(value) if number else None,
                        "TRSTRESU": unit if number else None,
                        "TRSTAT": "NOT DONE" if value is None else None,
                        "TRMETHOD": self.methods.get(link or ""),
                        "TRLOBXFL": "Y" if baseline else None,
                        "TREVAL": "INVESTIGATOR", **ctx.timing(self.patient, on, "TR")})


def _tumours(assessments: list[Assessment],
             ctx: Context) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    tu: list[dict[str, Any]] = []
    tr: list[dict[str, Any]] = []
    by_patient: dict[str, list[Assessment]] = {}
    for a in sorted(assessments, key=lambda a: (a.patient_id, a.on, a.kind != "baseline")):
        by_patient.setdefault(a.patient_id, []).append(a)
    for patient, items in by_patient.items():
        rows = _Tumours(ctx, patient)
        _recist(rows, [a for a in items if a.criteria == "RECIST"])
        _inrc(rows, [a for a in items if a.criteria == "INRC"])
        tu += rows.tu
        tr += rows.tr
    flag_last_before_exposure(tr, ctx, ("TRLNKID", "TRTESTCD"), "TRDTC", "TRLOBXFL")
    return tu, tr


def _recist(rows: _Tumours, items: list[Assessment]) -> None:
    """RECIST 1.1 (Eisenhauer 2009): targets measured (lymph nodes by short axis), non-targets
    present / absent / unequivocal progression, new lesions."""
    baseline = next((a for a in items if a.kind == "baseline"), None)
    if baseline is None:
        return
    doc = baseline.document
    for kind, group in (("targets", "TARGET"), ("non_targets", "NON-TARGET")):
        for lesion in doc.get(kind, []):
            rows.identify(lesion["id"], group, lesion.get("organ"), _METHOD.get(lesion.get("method", "")),
                          baseline.on)
    for lesion in doc.get("targets", []):
        rows.result(lesion["id"], "TARGET", "DIAMETER", "Diameter", lesion.get("size_mm"), "mm", baseline.on)
    for lesion in doc.get("non_targets", []):
        rows.result(lesion["id"], "NON-TARGET", "TUMSTATE", "Tumor State", "PRESENT", None, baseline.on)
    new_seen = False
    for point in (a for a in items if a.kind == "time_point"):
        for link, size in point.document.get("targets", {}).items():
            rows.result(link, "TARGET", "DIAMETER", "Diameter", size, "mm", point.on)
        for link, status in point.document.get("non_targets", {}).items():
            rows.result(link, "NON-TARGET", "TUMSTATE", "Tumor State", status.replace("_", " ").upper(), None,
                        point.on)
        if point.document.get("new_lesions") and not new_seen:
            new_seen = True
            rows.identify("NEW01", "NEW", None, None, point.on)
            rows.result("NEW01", "NEW", "TUMSTATE", "Tumor State", "PRESENT", None, point.on)


def _inrc(rows: _Tumours, items: list[Assessment]) -> None:
    """INRC 2017 (Park et al., J Clin Oncol 2017;35:2580): primary tumour, soft-tissue
    metastases, bone by MIBG, bone marrow; new lesions by site."""
    if not items:
        return
    first = items[0]
    measured: list[tuple[str, str, str | None, str, str, str, str, str]] = [
        # (component, link, location, test code, test, unit, baseline key, current key)
        ("primary", "PRIMARY", "PRIMARY TUMOR", "DIAMETER", "Diameter", "mm", "baseline_mm", "current_mm"),
        ("soft_tissue", "", None, "SUMDIAM", "Sum of Diameter", "mm", "baseline_sum_mm", "current_sum_mm"),
        ("marrow", "MARROW", "BONE MARROW", "TUMINFPC", "Tumor Infiltration Percent", "%",
         "baseline_pct", "current_pct"),
    ]
    mibg = next((m for a in items if isinstance(m := _part(a.document, "bone", "mibg"), dict)), None)
    identified: set[str] = set()

    def identify(link: str, location: str | None, method: str | None) -> None:
        if link and link not in identified:
            identified.add(link)
            rows.identify(link, "LOCATION OF INTEREST", location, method, first.on)

    for component, link, location, code, name, unit, base, _current in measured:
        part = _part(first.document, component)
        if isinstance(part, dict) and part.get(base) is not None:
            identify(link, location, None)
            rows.result(link or None, component.replace("_", " ").upper(), code, name, part[base], unit, None,
                        baseline=True)
    if mibg is not None and mibg.get("baseline_score") is not None:
        code, name = _MIBG[mibg["scale"]]
        identify("MIBG", "BONE", "MIBG SCINTIGRAPHY")
        rows.result("MIBG", "BONE", code, name, mibg["baseline_score"], None, None, baseline=True)
    new = 0
    seen: set[str] = set()
    for a in items:
        for component, link, location, code, name, unit, _base, current in measured:
            part = _part(a.document, component)
            if isinstance(part, dict) and part.get(current) is not None:
                identify(link, location, None)
                group = component.replace("_", " ").upper()
                rows.result(link or None, group, code, name, part[current], unit, a.on)
        score = _part(a.document, "bone", "mibg")
        if isinstance(score, dict) and score.get("current_score") is not None:
            code, name = _MIBG[score["scale"]]
            identify("MIBG", "BONE", "MIBG SCINTIGRAPHY")
            rows.result("MIBG", "BONE", code, name, score["current_score"], None, a.on)
        sites = _part(a.document, "new_lesions") or {}
        for key, location, method in (("soft_tissue", "SOFT TISSUE", None),
                                      ("mibg_bone_site", "BONE", "MIBG SCINTIGRAPHY"),
                                      ("fdg_bone_site", "BONE", "FDG PET SCAN")):
            if isinstance(sites, dict) and sites.get(key) and key not in seen:
                seen.add(key)
                new += 1
                link = f"NEW{new:02d}"
                rows.identify(link, "NEW", location, method, a.on)
                rows.result(link, "NEW", "TUMSTATE", "Tumor State", "PRESENT", None, a.on)


def _part(document: Mapping[str, Any], *path: str) -> Any:
    value: Any = document
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def cross_checks(datasets: Mapping[str, pd.DataFrame]) -> list[Finding]:
    """TU and TR agree: every TRLNKID is a TULNKID of the same subject, TULNKID is unique per
    subject; RELREC names datasets of the package and their variables."""
    findings: list[Finding] = []
    tu, tr = datasets.get("TU"), datasets.get("TR")
    if tu is not None:
        for row in tu.index[tu.duplicated(["USUBJID", "TULNKID"])]:
            findings.append(Finding("TU", "TULNKID", int(row) + 1, "not unique within USUBJID"))
    if tr is not None and "TRLNKID" in tr.columns and tu is not None:
        links = set(zip(tu["USUBJID"], tu["TULNKID"], strict=True))
        for row, key in enumerate(zip(tr["USUBJID"], tr["TRLNKID"], strict=True), 1):
            if key[1] is not None and not pd.isna(key[1]) and key not in links:
                findings.append(Finding("TR", "TRLNKID", row,
                                        f"{key[1]} of {key[0]} is not identified in TU"))
    relrec = datasets.get("RELREC")
    if relrec is not None:
        for row, (domain, variable) in enumerate(zip(relrec["RDOMAIN"], relrec["IDVAR"], strict=True), 1):
            if domain not in datasets:
                findings.append(Finding("RELREC", "RDOMAIN", row,
                                        f"{domain} is not a dataset of the package"))
            elif variable not in datasets[domain].columns:
                findings.append(Finding("RELREC", "IDVAR", row, f"{variable} is not a variable of {domain}"))
    return findings


NOTES = (
    "CM and PR come from the treatment history of each patient's record: medicines in CM, "
    "radiotherapy, surgery and stem cell transplant in PR (SDTMIG v3.4 6.1); --SCAT is PRIOR "
    "when the treatment started before the first study treatment, CONCOMITANT otherwise, "
    "empty when no study treatment is known. An ongoing treatment has no end date.",
    "VS holds weight and height as measured and BSA (VSDRVFL Y) derived with the protocol's "
    "formula and rounding from a weight and a height of the same day. VSLOBXFL marks the last "
    "value on or before the day of the first study treatment.",
    "TU/TR hold the lesions of the stored response assessments (SDTMIG v3.4 6.3.12, example 2): "
    "RECIST 1.1 target lesions measured (DIAMETER; lymph nodes by short axis), non-target "
    "and new lesions by TUMSTATE; INRC 2017 components as locations of interest: primary "
    "tumour DIAMETER, soft-tissue SUMDIAM as recorded, MIBG score (CURIESC/SIOPENSC) and "
    "marrow infiltration (TUMINFPC) - these two test codes are the sponsor's, CDISC TRTESTCD "
    "has none. INRC baselines are recorded without their date: one undated TR record with "
    "TRLOBXFL Y. Sums, nadirs and changes are derived and left to the analysis datasets. "
    "RELREC relates TU and TR by --LNKID.",
)
