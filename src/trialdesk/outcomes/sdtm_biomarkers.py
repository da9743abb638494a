"""SDTM datasets of the stored biomarker results: LB, IS, PC, GF and MI.

Each current result of a sample (:mod:`trialdesk.services.biomarkers`) is one record, in the
domain the SDTM Implementation Guide v3.4 (CDISC, 2021) gives it. Choices, stated once:

* LB (Laboratory Test Results) holds counts and chemistry: lymphocytes, monocytes, NK cells
  (CD3-CD56+), IL-6, IL-10, procalcitonin, CRP, PaO2, FiO2, creatinine, bilirubin and any
  other laboratory value of the fact dictionary, and the functional assays of the immune
  profile (ADCC and NK-cell cytotoxicity, % specific lysis). Clinical findings and body
  measurements recorded as a sample's result are not specimen results and stay out.
* IS (Immunogenicity Specimen Assessments) holds anti-drug antibodies: the IG's IS
  assumption 1 places whether a therapy induced an immune response there, and its
  example 1 codes binding anti-drug antibodies ``ISTESTCD`` ADA_BAB, "Binding Antidrug
  Antibody", ``ISCAT`` ANTIDRUG ANTIBODIES, with the drug in ``ISBDAGNT`` (here dinutuximab
  beta, the anti-GD2 antibody whose serum level the dictionary records).
* PC (Pharmacokinetics Concentrations) holds the dinutuximab beta serum concentration: CDISC
  laboratory terminology leaves therapeutic drug levels out of LB (CDISC Terminology Rules
  for Laboratory Test Code/Name and UNIT Codelists, 2016: "Lab terminology does not include
  lab tests to perform therapeutic drug level monitoring").
* GF (Genomics Findings, new in SDTMIG v3.4, replacing the PGx PF domain) holds the FCGR2A
  H131R and FCGR3A V158F genotypes and the KIR findings. Both FCGR polymorphisms are
  single-nucleotide variants: ``GFTESTCD`` SNV, ``GFTSTDTL`` GENOTYPE, the gene in ``GFSYM``
  (``GFSYMTYP`` GENE WITH PROTEIN PRODUCT), the genotype in ``GFORRES``/``GFSTRESC``,
  ``GFINHERT`` GERMLINE VARIATION (they are inherited). ``GFGENREF`` (the genome reference
  build) stays empty: the record does not say which build the laboratory used.
* MI (Microscopic Findings) holds GD2 by immunohistochemistry and by immunocytology of bone
  marrow: MI assumption 1 puts biomarkers assessed by histologic examination with
  cytochemical or immunocytochemical stains in MI, assumption 2 makes the biomarker the test
  (``MITESTCD`` GD2) and ``MITSTDTL`` what was read (the IG's own wording: "PERCENT POSITIVE
  CELL", "H SCORE TOTAL SCORE"). ``MISPEC`` is TISSUE for a biopsy and BONE MARROW for the
  marrow aspirate (the IG's examples), ``MILOC`` the lesion or site recorded with the result.
* GD2 by flow cytometry is cell phenotyping, which SDTMIG v3.4 places in CP (Cell Phenotype
  Findings); this package does not write CP yet, so it goes to LB with ``LBMETHOD`` FLOW
  CYTOMETRY and the reviewer's guide says so.
* Every record links to its sample: ``--REFID`` is the sample identifier, ``--SPEC`` the
  specimen recorded with the sample (as recorded, upper case), ``--METHOD`` the method
  recorded with the result, ``LBLOINC`` the fact's LOINC code where the dictionary has one.
  ``--DTC`` is the collection time. ``--ORRES``/``--ORRESU`` are the value and unit as
  entered, ``--STRESC``/``--STRESN``/``--STRESU`` the value in the fact's unit.
* Derived values (the PaO2/FiO2 ratio, GD2 status and heterogeneity) are left to the
  analysis datasets, as for TR sums. The effector:target ratio of a lysis assay has no LB
  variable in this package: it stays in the record.

Controlled terminology: a test code is a CDISC term only where :data:`TESTS` gives its NCI
code, checked against the CDISC SDTM Controlled Terminology codelists (LBTESTCD C65047,
GFTESTCD C181178, GFTSTDTL C181180, GFINHERT C181177, GFSYMTYP C181176, MITSTDTL C125922).
ADA_BAB is the IG's example term, not confirmed in the ISTESTCD codelist; GD2 (MI), ADCC
lysis, GD2 by flow cytometry, dinutuximab beta (PCTESTCD has no CDISC codelist) and the KIR
tests are sponsor-defined. The reviewer's guide lists both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, Protocol

import pandas as pd

from trialdesk.outcomes.sdtm_design import Core, Variable


class Context(Protocol):
    """What the builders use of :class:`trialdesk.outcomes.sdtm_findings.Context`."""

    study: str
    usubjid: Callable[[str], str]
    enrolled: Mapping[str, Any]

    def timing(self, patient: str, when: date | None, prefix: str) -> dict[str, Any]: ...

    def before_exposure(self, patient: str, when: date | None) -> bool: ...


@dataclass(frozen=True)
class BiomarkerResult:
    """The current result of one fact of a stored sample: value and unit as entered, the
    value in the fact's unit, the sample's specimen and collection time."""

    patient_id: str
    sample_id: str
    fact: str
    collected_at: str  # ISO 8601, minutes
    value: Any
    unit: str | None = None
    canonical_value: Any = None
    canonical_unit: str | None = None
    specimen: str | None = None
    method: str | None = None
    site: str | None = None
    code: str | None = None  # "LOINC 26881-3"

    @property
    def on(self) -> date:
        return date.fromisoformat(self.collected_at[:10])


@dataclass(frozen=True)
class Test:
    """Where a fact goes: domain, test code and name, the NCI code of the test code when it
    is a CDISC Controlled Terminology term (None: sponsor-defined), and the test detail
    (MITSTDTL, GFTSTDTL) and gene (GFSYM) where the domain has them."""

    domain: Literal["LB", "IS", "PC", "GF", "MI"]
    code: str
    name: str
    ct: str | None = None
    detail: str | None = None
    gene: str | None = None
    method: str | None = None  # a method the test implies when none was recorded


#: Fact -> SDTM test. CDISC terms with their NCI codes as the CDISC SDTM Controlled
#: Terminology lists them: LBTESTCD (codelist C65047), GFTESTCD (C181178); the others are
#: sponsor-defined (CDISC has no term for them, or none was confirmed).
TESTS: dict[str, Test] = {
    "alc": Test("LB", "LYM", "Lymphocytes", "C51949"),
    "monocytes": Test("LB", "MONO", "Monocytes", "C64823"),
    "nk_cells": Test("LB", "NKCE", "Natural Killer Cells", "C98762"),
    "nk_cytotoxicity_lysis": Test("LB", "NKCEFUNC", "Natural Killer Cell Activity", "C116203"),
    "adcc_lysis": Test("LB", "ADCCLYS", "ADCC Specific Lysis"),
    "il6": Test("LB", "INTLK6", "Interleukin 6", "C74834"),
    "il10": Test("LB", "INTLK10", "Interleukin 10", "C74806"),
    "procalcitonin": Test("LB", "PCT", "Procalcitonin", "C103430"),
    "crp": Test("LB", "CRP", "C Reactive Protein", "C64548"),
    "pao2": Test("LB", "PO2", "Partial Pressure Oxygen", "C71251"),
    "fio2": Test("LB", "FIO2", "Fraction of Inspired Oxygen", "C38082"),
    "creatinine": Test("LB", "CREAT", "Creatinine", "C64547"),
    "bilirubin": Test("LB", "BILI", "Bilirubin", "C38037"),
    "anc": Test("LB", "NEUT", "Neutrophils", "C63321"),
    "platelets": Test("LB", "PLAT", "Platelets", "C51951"),
    "hemoglobin": Test("LB", "HGB", "Hemoglobin", "C64848"),
    "alt": Test("LB", "ALT", "Alanine Aminotransferase", "C64433"),
    "aptt": Test("LB", "APTT", "Activated Partial Thromboplastin Time", "C38462"),
    "inr": Test("LB", "INR", "Prothrombin Intl. Normalized Ratio", "C64805"),
    "potassium": Test("LB", "K", "Potassium", "C64853"),
    "gd2_flow_percent": Test("LB", "GD2POS", "GD2 Positive Cells", method="FLOW CYTOMETRY"),
    "anti_drug_antibodies": Test("IS", "ADA_BAB", "Binding Antidrug Antibody"),
    "dinutuximab_beta_level": Test("PC", "DINUBETA", "Dinutuximab Beta"),
    # FCGR2A H131R and FCGR3A V158F are single-nucleotide variants: GFTESTCD SNV with the
    # test detail GENOTYPE (GFTSTDTL codelist C181180, C45447).
    "fcgr2a_genotype": Test("GF", "SNV", "Single Nucleotide Variation", "C181331", "GENOTYPE",
                            "FCGR2A"),
    "fcgr3a_genotype": Test("GF", "SNV", "Single Nucleotide Variation", "C181331", "GENOTYPE",
                            "FCGR3A"),
    "kir_genotype": Test("GF", "KIRHAPGR", "KIR Haplotype Group", gene="KIR"),
    "kir_ligand_missing": Test("GF", "KIRLGMIS", "KIR Ligand Missing", gene="KIR"),
    "gd2_ihc_percent": Test("MI", "GD2", "GD2 Ganglioside", detail="PERCENT POSITIVE CELL",
                            method="IHC"),
    "gd2_ihc_h_score": Test("MI", "GD2", "GD2 Ganglioside", detail="H SCORE TOTAL SCORE",
                            method="IHC"),
    "gd2_marrow_percent": Test("MI", "GD2", "GD2 Ganglioside", detail="PERCENT POSITIVE CELL",
                               method="IMMUNOCYTOCHEMISTRY"),
}
#: The drug anti-drug antibodies bind (ISBDAGNT): the anti-GD2 antibody of the dictionary's
#: drug-exposure facts (``dinutuximab_beta_level``).
BINDING_AGENT = "DINUTUXIMAB BETA"
_MISPEC = {"gd2_ihc_percent": "TISSUE", "gd2_ihc_h_score": "TISSUE",
           "gd2_marrow_percent": "BONE MARROW"}
#: CDISC SDTM Controlled Terminology the new variables use (subsets, with NCI codes):
#: GFINHERT (C181177) GERMLINE VARIATION C17666; GFTSTDTL (C181180) GENOTYPE C45447;
#: GFSYMTYP (C181176) GENE WITH PROTEIN PRODUCT C181531; MITSTDTL (C125922) PERCENT
#: POSITIVE CELL C70460, H SCORE TOTAL SCORE C125988.
CODELISTS: dict[str, frozenset[str]] = {
    "GFINHERT": frozenset({"GERMLINE VARIATION"}),
    "GFTSTDTL": frozenset({"GENOTYPE"}),
    "GFSYMTYP": frozenset({"GENE WITH PROTEIN PRODUCT"}),
    "MITSTDTL": frozenset({"PERCENT POSITIVE CELL", "H SCORE TOTAL SCORE"}),
}


def sdtm_test(fact: str) -> Test | None:
    """The SDTM test of a fact: :data:`TESTS`, else, for any other laboratory fact of the
    dictionary, LB under a sponsor-defined code made of the fact's name (upper case, at most
    8 characters); None for facts that are not specimen results (clinical findings, body
    measurements), which these datasets leave out."""
    if fact in TESTS:
        return TESTS[fact]
    from trialdesk.facts.dictionary import FACTS, FactKind

    definition = FACTS.get(fact)
    if definition is None or definition.kind is not FactKind.LAB:
        return None
    code = "".join(c for c in fact.upper() if c.isalnum())[:8]
    name = definition.description[:1].upper() + definition.description[1:40]
    return Test("LB", code, name)


def _v(name: str, label: str, type_: Literal["Char", "Num"], core: Core,
       codelist: str | None = None) -> Variable:
    return Variable(name, label, type_, core, codelist)


def _ids(d: str) -> tuple[Variable, ...]:
    return (_v("STUDYID", "Study Identifier", "Char", "Req"),
            _v("DOMAIN", "Domain Abbreviation", "Char", "Req"),
            _v("USUBJID", "Unique Subject Identifier", "Char", "Req"),
            _v(f"{d}SEQ", "Sequence Number", "Num", "Req"))


def _timing(d: str) -> tuple[Variable, ...]:
    return (_v("VISITNUM", "Visit Number", "Num", "Exp"), _v("VISIT", "Visit Name", "Char", "Perm"),
            _v("EPOCH", "Epoch", "Char", "Perm", "EPOCH"),
            _v(f"{d}DTC", "Date/Time of Specimen Collection", "Char", "Exp"),
            _v(f"{d}DY", "Study Day of Specimen Collection", "Num", "Perm"))


def _results(d: str, *, units: Core = "Exp", numeric: Core = "Exp") -> tuple[Variable, ...]:
    return (_v(f"{d}ORRES", "Result or Finding in Original Units", "Char", "Exp"),
            _v(f"{d}ORRESU", "Original Units", "Char", units),
            _v(f"{d}STRESC", "Character Result/Finding in Std Format", "Char", "Exp"),
            _v(f"{d}STRESN", "Numeric Result/Finding in Standard Units", "Num", numeric),
            _v(f"{d}STRESU", "Standard Units", "Char", units))


# SDTMIG v3.4 domain tables, in their order: every Req and Exp variable, and the Perm ones
# this package fills (reference, method, specimen, location).
SPEC: dict[str, tuple[Variable, ...]] = {
    "IS": (*_ids("IS"),
           _v("ISREFID", "Reference ID", "Char", "Perm"),
           _v("ISTESTCD", "Immunogenicity Test/Exam Short Name", "Char", "Req"),
           _v("ISTEST", "Immunogenicity Test or Examination Name", "Char", "Req"),
           _v("ISBDAGNT", "Binding Agent", "Char", "Perm"),
           _v("ISCAT", "Category for Immunogenicity Test", "Char", "Perm"),
           _v("ISORRES", "Results or Findings in Original Units", "Char", "Exp"),
           _v("ISORRESU", "Original Units", "Char", "Exp"),
           _v("ISORNRLO", "Reference Range Lower Limit in Orig Unit", "Char", "Exp"),
           _v("ISORNRHI", "Reference Range Upper Limit in Orig Unit", "Char", "Exp"),
           _v("ISSTRESC", "Character Result/Finding in Std Format", "Char", "Exp"),
           _v("ISSTRESN", "Numeric Results/Findings in Std. Units", "Num", "Exp"),
           _v("ISSTRESU", "Standard Units", "Char", "Exp"),
           _v("ISSTNRLO", "Reference Range Lower Limit-Std Units", "Num", "Exp"),
           _v("ISSTNRHI", "Reference Range Upper Limit-Std Units", "Num", "Exp"),
           _v("ISNRIND", "Reference Range Indicator", "Char", "Exp", "NRIND"),
           _v("ISSPEC", "Specimen Type", "Char", "Perm"),
           _v("ISMETHOD", "Method of Test or Examination", "Char", "Perm"),
           _v("ISLLOQ", "Lower Limit of Quantitation", "Num", "Exp"),
           *_timing("IS")),
    "PC": (*_ids("PC"),
           _v("PCREFID", "Reference ID", "Char", "Perm"),
           _v("PCTESTCD", "Pharmacokinetic Test Short Name", "Char", "Req"),
           _v("PCTEST", "Pharmacokinetic Test Name", "Char", "Req"),
           _v("PCCAT", "Test Category", "Char", "Perm"),
           *_results("PC"),
           _v("PCNAM", "Vendor Name", "Char", "Exp"),
           _v("PCSPEC", "Specimen Material Type", "Char", "Exp"),
           _v("PCMETHOD", "Method of Test or Examination", "Char", "Perm"),
           _v("PCLLOQ", "Lower Limit of Quantitation", "Num", "Exp"),
           *_timing("PC")),
    "GF": (*_ids("GF"),
           _v("GFREFID", "Reference ID", "Char", "Exp"),
           _v("GFTESTCD", "Short Name of Genomic Measurement", "Char", "Req"),
           _v("GFTEST", "Name of Genomic Measurement", "Char", "Req"),
           _v("GFTSTDTL", "Measurement, Test, or Examination Detail", "Char", "Perm", "GFTSTDTL"),
           _v("GFORRES", "Result or Finding in Original Units", "Char", "Exp"),
           _v("GFSTRESC", "Result or Finding in Standard Format", "Char", "Exp"),
           _v("GFINHERT", "Inheritability", "Char", "Perm", "GFINHERT"),
           _v("GFGENREF", "Genome Reference", "Char", "Perm"),
           _v("GFSYM", "Genomic Symbol", "Char", "Perm"),
           _v("GFSYMTYP", "Genomic Symbol Type", "Char", "Perm", "GFSYMTYP"),
           _v("GFSPEC", "Specimen Material Type", "Char", "Perm"),
           _v("GFMETHOD", "Method of Test or Examination", "Char", "Exp"),
           *_timing("GF")),
    "MI": (*_ids("MI"),
           _v("MIREFID", "Reference ID", "Char", "Perm"),
           _v("MITESTCD", "Microscopic Examination Short Name", "Char", "Req"),
           _v("MITEST", "Microscopic Examination Name", "Char", "Req"),
           _v("MITSTDTL", "Microscopic Examination Detail", "Char", "Perm", "MITSTDTL"),
           *_results("MI", units="Perm", numeric="Perm"),
           _v("MISPEC", "Specimen Material Type", "Char", "Req"),
           _v("MISPCCND", "Specimen Condition", "Char", "Exp"),
           _v("MILOC", "Specimen Collection Location", "Char", "Perm"),
           _v("MIMETHOD", "Method of Test or Examination", "Char", "Perm"),
           _v("MILOBXFL", "Last Observation Before Exposure Flag", "Char", "Exp", "NY"),
           *_timing("MI")),
}
KEYS: dict[str, tuple[str, ...]] = {d: ("STUDYID", "USUBJID", f"{d}SEQ") for d in SPEC}
CLASSES: dict[str, str] = dict.fromkeys(SPEC, "FINDINGS")
LABELS: dict[str, str] = {"IS": "Immunogenicity Specimen Assessments",
                          "PC": "Pharmacokinetics Concentrations", "GF": "Genomics Findings",
                          "MI": "Microscopic Findings"}
STRUCTURES: dict[str, str] = {
    "IS": "One record per test per visit per subject",
    "PC": "One record per sample characteristic or time-point concentration per reference "
          "time point or per analyte per subject",
    "GF": "One record per finding per observation per biospecimen per subject",
    "MI": "One record per finding per specimen per subject",
}
#: The LB variables that link a result to its sample (all rows carry them, empty for labs
#: that came without a sample).
LB_SAMPLE_VARIABLES = ("LBREFID", "LBLOINC", "LBSPEC", "LBMETHOD")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, int | float):
        return f"{value:g}"
    text = " ".join(str(value).split())
    return text or None


def _upper(value: str | None) -> str | None:
    return value.replace("_", " ").upper() if value else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _loinc(code: str | None) -> str | None:
    return code.removeprefix("LOINC ") if code and code.startswith("LOINC ") else None


def _row(d: str, r: BiomarkerResult, test: Test, ctx: Context) -> dict[str, Any]:
    number = _number(r.canonical_value)
    standard = _text(r.canonical_value)
    if number is None and standard is not None:
        standard = standard.upper()  # "positive" -> POSITIVE; genotypes keep their letters
    timing = ctx.timing(r.patient_id, r.on, d)
    timing[f"{d}DTC"] = r.collected_at[:16]
    row: dict[str, Any] = {
        "STUDYID": ctx.study, "DOMAIN": d, "USUBJID": ctx.usubjid(r.patient_id),
        f"{d}REFID": r.sample_id, f"{d}TESTCD": test.code, f"{d}TEST": test.name,
        f"{d}ORRES": _text(r.value), f"{d}ORRESU": r.unit if number is not None else None,
        f"{d}STRESC": standard, f"{d}STRESN": number,
        f"{d}STRESU": r.canonical_unit if number is not None else None,
        f"{d}SPEC": _upper(r.specimen), f"{d}METHOD": _upper(r.method) or test.method,
        **timing}
    if d == "LB":
        row["LBLOINC"] = _loinc(r.code)
    elif d == "IS":
        row.update(ISBDAGNT=BINDING_AGENT, ISCAT="ANTIDRUG ANTIBODIES")
    elif d == "PC":
        row["PCCAT"] = "ANALYTE"
    elif d == "GF":
        protein_gene = test.gene in ("FCGR2A", "FCGR3A")  # HGNC locus type: protein-coding
        row.update(GFTSTDTL=test.detail, GFSYM=test.gene, GFINHERT="GERMLINE VARIATION",
                   GFGENREF=None, GFSYMTYP="GENE WITH PROTEIN PRODUCT" if protein_gene else None)
    elif d == "MI":
        row.update(MITSTDTL=test.detail, MISPEC=_MISPEC[r.fact], MILOC=_upper(r.site),
                   MILOBXFL=None)
    return row


def biomarker_datasets(results: Sequence[BiomarkerResult], ctx: Context,
                       lb: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    """LB (``lb`` with the biomarker records appended, numbered after each subject's other
    LB records) and IS, PC, GF and MI, each only when a result belongs there. Patients
    outside the package (not in ``ctx.enrolled``) and facts of no test are left out."""
    rows: dict[str, list[dict[str, Any]]] = {}
    last: dict[tuple[str, ...], dict[str, Any]] = {}
    for r in sorted(results, key=lambda r: (r.patient_id, r.collected_at, r.sample_id, r.fact)):
        test = sdtm_test(r.fact)
        if test is None or r.patient_id not in ctx.enrolled:
            continue
        row = _row(test.domain, r, test, ctx)
        rows.setdefault(test.domain, []).append(row)
        if test.domain == "MI" and ctx.before_exposure(r.patient_id, r.on):
            last[(r.patient_id, test.code, test.detail or "", row["MILOC"] or "")] = row
    for row in last.values():  # MILOBXFL: the last value on or before the first study treatment
        row["MILOBXFL"] = "Y"
    out: dict[str, pd.DataFrame] = {}
    for d, found in rows.items():
        start: dict[str, int] = {}
        if d == "LB" and lb is not None and len(lb):
            for subject, seq in zip(lb["USUBJID"], lb["LBSEQ"], strict=True):
                start[subject] = max(start.get(subject, 0), int(seq))
        for row in found:
            row[f"{d}SEQ"] = start[row["USUBJID"]] = start.get(row["USUBJID"], 0) + 1
        frame = pd.DataFrame(found)
        if d == "LB" and lb is not None and len(lb):  # each subject's records together
            frame = pd.concat([lb.astype(object), frame.astype(object)], ignore_index=True)
            frame = frame.sort_values(["USUBJID", "LBSEQ"], kind="stable", ignore_index=True)
        out[d] = frame
    return out


def results_from_samples(samples: Sequence[Any]) -> list[BiomarkerResult]:
    """The current result of each fact of stored samples (:class:`trialdesk.store.biomarkers.
    SampleRow`) as :class:`BiomarkerResult`."""
    out = []
    for s in samples:
        for fact, r in sorted(s.current().items()):
            d: Mapping[str, Any] = r.document
            out.append(BiomarkerResult(
                s.study_number, s.sample_id, fact, _minutes(s.collected_at), d.get("value"),
                d.get("unit"), d.get("canonical_value"), d.get("canonical_unit"),
                s.document.get("specimen"), d.get("method"), d.get("site"), d.get("code")))
    return out


def _minutes(text: str) -> str:
    return datetime.fromisoformat(text).isoformat(timespec="minutes")


NOTES = (
    "Biomarker results (the current result of each fact of each stored sample) are in the "
    "domain SDTMIG v3.4 gives them: counts, chemistry and the lysis assays (ADCC, NK-cell "
    "cytotoxicity) in LB; anti-drug antibodies in IS (ADA_BAB, binding agent DINUTUXIMAB "
    "BETA, as the IG's IS example 1 codes them); the dinutuximab beta serum concentration in "
    "PC (CDISC laboratory terminology leaves drug levels out of LB); FCGR2A H131R, FCGR3A "
    "V158F and KIR findings in GF (FCGR: GFTESTCD SNV, GFTSTDTL GENOTYPE, gene in GFSYM, "
    "GFINHERT GERMLINE VARIATION; GFGENREF empty: the record does not name the genome "
    "build); GD2 by immunohistochemistry and by immunocytology of bone marrow in MI (MI "
    "assumptions 1-2: biomarkers read on stained specimens; MITESTCD GD2, MITSTDTL PERCENT "
    "POSITIVE CELL or H SCORE TOTAL SCORE, MISPEC "
    "TISSUE or BONE MARROW, MILOC the lesion or site). GD2 by flow cytometry is cell "
    "phenotyping, which SDTMIG v3.4 places in CP; this package does not write CP, so it is "
    "in LB with LBMETHOD FLOW CYTOMETRY.",
    "Each biomarker record links to its sample: --REFID is the sample identifier, --SPEC the "
    "specimen recorded with the sample (as recorded, not mapped to the SPECTYPE codelist), "
    "--METHOD the method recorded with the result, LBLOINC the LOINC code of the fact "
    "dictionary where it has one (empty otherwise and for laboratory results that came "
    "without a sample); --DTC is the collection time. --ORRES/--ORRESU are as entered, "
    "--STRESC/--STRESN/--STRESU in the fact's unit. Reference ranges, LLOQ and the vendor "
    "name are not recorded with biomarker results and stay empty. The PaO2/FiO2 ratio, GD2 "
    "status and heterogeneity are derived and left to the analysis datasets; the "
    "effector:target ratio of a lysis assay stays in the record.",
    "Biomarker test codes from CDISC SDTM Controlled Terminology: "
    + ", ".join(dict.fromkeys(f"{t.domain} {t.code} ({t.ct})" for t in TESTS.values() if t.ct))
    + "; GFTSTDTL GENOTYPE (C45447), GFINHERT GERMLINE VARIATION (C17666), GFSYMTYP GENE WITH "
    "PROTEIN PRODUCT (C181531), MITSTDTL PERCENT POSITIVE CELL (C70460) and H SCORE TOTAL "
    "SCORE (C125988). Sponsor-defined: "
    + ", ".join(dict.fromkeys(f"{t.domain} {t.code}" for t in TESTS.values() if not t.ct))
    + " (ADA_BAB is the SDTMIG v3.4 IS example's term, not confirmed in the ISTESTCD "
    "codelist; no GD2 term was found in LBTESTCD or MITESTCD; PCTESTCD has no CDISC "
    "codelist). Any other laboratory fact of the dictionary is in LB under a sponsor-defined "
    "code made of the fact's name (upper case, at most 8 characters). Results of facts that "
    "are not specimen results (clinical findings, body measurements) are not in these "
    "datasets.",
)
