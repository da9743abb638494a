"""The fact dictionary: every fact an eligibility rule may name.

A fact has a name, a type, a canonical unit (values are converted to it before any
comparison), a code where a standard one exists (LOINC for laboratory tests), the
range of values that are physically possible (values outside are refused as impossible,
not treated as clinical findings), and where it comes from in a patient record.

A finding with a ``question`` is one the investigator answers yes or no (a history of
severe type I hypersensitivity, a mental illness that prevents understanding the study):
answered once per patient, dated and signed by who answered, and read by every trial that
asks it. Protocols add their own yes/no attestations (``attest.<id>``) only for judgements
about their own treatment; see :func:`with_attestations` and ``docs/questions.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class FactType(StrEnum):
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    STRING = "string"
    DATE = "date"
    SET = "set"  # a set of strings, e.g. prior therapy categories


class FactKind(StrEnum):
    """Where a fact comes from in a patient record; also decides its look-back window."""

    DEMOGRAPHIC = "demographic"
    DIAGNOSIS = "diagnosis"
    DISEASE = "disease"
    LAB = "lab"
    MEASUREMENT = "measurement"
    PERFORMANCE = "performance"
    FINDING = "finding"
    TREATMENT = "treatment"
    CONSENT = "consent"
    ATTESTATION = "attestation"
    DERIVED = "derived"


@dataclass(frozen=True)
class FactDef:
    name: str
    type: FactType
    kind: FactKind
    description: str
    unit: str | None = None
    code: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    values: tuple[str, ...] | None = None
    derivation: str | None = None
    # For labs: the substance for mass <-> molar conversion (see clinical.units).
    substance: str | None = None
    dated: bool = False  # subject to a look-back window
    # Derived from structured patient-file entries the population engine does not read
    # (GD2 specimens, support episodes, SOFA assessments): screening a population leaves
    # it unknown, and ``protocol lint`` says so for a rule that names it.
    per_patient: bool = False
    # The investigator's question for a finding answered yes or no (shown in the form).
    question: str | None = None

    @property
    def is_numeric(self) -> bool:
        return self.type in (FactType.NUMBER, FactType.INTEGER)


_INRC = ("CR", "VGPR", "PR", "MR", "SD", "PD")

DIAGNOSES = (
    "neuroblastoma",
    "ganglioneuroblastoma",
    "melanoma",
    "soft_tissue_sarcoma",
    "bone_sarcoma",
    "breast_cancer",
    "colorectal_cancer",
    "lung_cancer",
    "renal_cell_carcinoma",
    "gastric_cancer",
    "ovarian_cancer",
    "prostate_cancer",
    "other_solid_tumour",
    "acute_myeloid_leukaemia",
    "acute_lymphoblastic_leukaemia",
    "lymphoma",
    "multiple_myeloma",
    "myelodysplastic_syndrome",
    "aplastic_anaemia",
    "other_haematological",
    "other",
)

HAEMATOLOGICAL = frozenset(
    {
        "acute_myeloid_leukaemia",
        "acute_lymphoblastic_leukaemia",
        "lymphoma",
        "multiple_myeloma",
        "myelodysplastic_syndrome",
        "aplastic_anaemia",
        "other_haematological",
    }
)
ONCOHAEMATOLOGICAL = HAEMATOLOGICAL - {"aplastic_anaemia"}


THERAPY_CATEGORIES = (
    "chemotherapy",
    "immunotherapy",
    "radiotherapy",
    "surgery",
    "stem_cell_transplant",
    "corticosteroid",
    "immunosuppressant",
    "targeted_therapy",
    "cell_therapy",
    "other",
)


def _lab(
    name: str, unit: str, description: str, code: str, maximum: float, substance: str | None = None
) -> FactDef:
    return FactDef(
        name, FactType.NUMBER, FactKind.LAB, description, unit=unit, code=code,
        minimum=0, maximum=maximum, substance=substance, dated=True,
    )


def _xuln(lab: str) -> FactDef:
    return FactDef(
        f"{lab}_x_uln", FactType.NUMBER, FactKind.DERIVED,
        f"{lab.upper()} as a multiple of the reporting laboratory's upper limit of normal",
        unit="ULN", minimum=0, maximum=1000, dated=True,
        derivation=f"latest {lab} in the look-back window ÷ that result's own ULN "
        "(FACTS.md §9: the lab's own reference range, never a constant)",
    )


def _finding(name: str, description: str) -> FactDef:
    return FactDef(name, FactType.BOOLEAN, FactKind.FINDING, description, dated=True)


def _question(name: str, description: str, question: str) -> FactDef:
    """A finding the investigator answers: the latest answer on or before screening is read,
    however old (like a per-trial attestation), until a newer answer replaces it."""
    return FactDef(name, FactType.BOOLEAN, FactKind.FINDING, description, question=question)


def _per_patient(name: str, type_: FactType, description: str, derivation: str, *,
                 values: tuple[str, ...] | None = None, unit: str | None = None,
                 maximum: float | None = None) -> FactDef:
    return FactDef(name, type_, FactKind.DERIVED, description, unit=unit, values=values,
                   minimum=0 if maximum is not None else None, maximum=maximum,
                   derivation=derivation, dated=True, per_patient=True)


#: Methods a GD2 specimen is measured by (seed 001: how GD2 positivity was confirmed).
GD2_METHODS = ("ihc", "flow_cytometry", "marrow_immunocytology")
#: FCGR genotypes as the alleles are usually named (FCGR2A H131R, FCGR3A V158F).
FCGR2A_GENOTYPES = ("H/H", "H/R", "R/R")
FCGR3A_GENOTYPES = ("V/V", "V/F", "F/F")
#: LOINC codes below were checked against LOINC term pages or laboratory catalogues that
#: quote them (loinc.org, Mayo/LabCorp/Northwell test catalogues); facts with no code
#: have no LOINC term that fits (dinutuximab beta level, GD2 %, ADCC, genotypes here).
_BIOMARKER_FACTS: tuple[FactDef, ...] = (
    # Immune profile (seed 001: NK cells, monocytes, the capacity for ADCC).
    _lab("alc", "/mm3", "absolute lymphocyte count", "LOINC 731-0", 1e6),
    _lab("monocytes", "/mm3", "absolute monocyte count", "LOINC 742-7", 1e6),
    _lab("nk_cells", "/mm3", "NK cells (CD3−CD56+) per µL of blood",
         "LOINC 9728-7", 1e6),  # CD3-CD16+CD56+ (Natural killer) cells [#/volume] in Blood
    FactDef("adcc_lysis", FactType.NUMBER, FactKind.MEASUREMENT,
            "antibody-dependent cellular cytotoxicity: % specific lysis (the assay's "
            "effector:target ratio is shown in the evidence)", unit="%", minimum=0,
            maximum=100, dated=True),
    FactDef("nk_cytotoxicity_lysis", FactType.NUMBER, FactKind.MEASUREMENT,
            "NK-cell cytotoxicity: % specific lysis (effector:target ratio in the evidence)",
            unit="%", minimum=0, maximum=100, dated=True),
    # GD2 expression, latest specimen per method (seed 001: level, heterogeneity, method).
    FactDef("gd2_ihc_percent", FactType.NUMBER, FactKind.MEASUREMENT,
            "GD2-positive tumour cells by immunohistochemistry, latest specimen", unit="%",
            minimum=0, maximum=100, dated=True),
    FactDef("gd2_ihc_h_score", FactType.NUMBER, FactKind.MEASUREMENT,
            "GD2 H-score by immunohistochemistry (0–300), latest specimen", minimum=0,
            maximum=300, dated=True),
    FactDef("gd2_flow_percent", FactType.NUMBER, FactKind.MEASUREMENT,
            "GD2-positive cells by flow cytometry, latest specimen", unit="%", minimum=0,
            maximum=100, dated=True),
    FactDef("gd2_marrow_percent", FactType.NUMBER, FactKind.MEASUREMENT,
            "GD2-positive tumour cells by immunocytology of bone marrow, latest specimen",
            unit="%", minimum=0, maximum=100, dated=True),
    _per_patient("gd2_status", FactType.STRING,
                 "GD2 status by the protocol's method and threshold",
                 "the specimens of the protocol's method on their latest date: positive if "
                 "every one reaches the protocol's threshold, negative if none does, "
                 "discordant otherwise", values=("positive", "negative", "discordant")),
    _per_patient("gd2_heterogeneous", FactType.BOOLEAN,
                 "GD2 expression discordant between specimens (lesions or dates)",
                 "specimens of the protocol's method in the look-back window fall on both "
                 "sides of the protocol's threshold"),
    # Fc-gamma receptor genotypes and KIR (germline: no look-back window).
    FactDef("fcgr2a_genotype", FactType.STRING, FactKind.FINDING,
            "FCGR2A H131R genotype", values=FCGR2A_GENOTYPES),
    FactDef("fcgr3a_genotype", FactType.STRING, FactKind.FINDING,
            "FCGR3A V158F genotype", values=FCGR3A_GENOTYPES),
    FactDef("kir_genotype", FactType.STRING, FactKind.FINDING,
            "KIR haplotype group (optional finding)", values=("A/A", "B/x")),
    FactDef("kir_ligand_missing", FactType.BOOLEAN, FactKind.FINDING,
            "an inhibitory KIR whose HLA ligand the patient lacks (optional finding)"),
    # Drug exposure.
    FactDef("dinutuximab_beta_level", FactType.NUMBER, FactKind.LAB,
            "dinutuximab beta serum concentration", unit="ug/mL", minimum=0, maximum=1000,
            dated=True),
    FactDef("anti_drug_antibodies", FactType.STRING, FactKind.FINDING,
            "anti-drug antibodies against the anti-GD2 antibody (HACA/ADA)",
            values=("positive", "negative"), dated=True),
    # Sepsis: cytokines, organ markers, oxygenation, organ support (seed 004).
    _lab("il6", "pg/mL", "interleukin-6", "LOINC 26881-3", 1e7),
    _lab("il10", "pg/mL", "interleukin-10", "LOINC 26848-2", 1e7),
    _lab("procalcitonin", "ng/mL", "procalcitonin", "LOINC 33959-8", 1e4),
    _lab("crp", "mg/L", "C-reactive protein", "LOINC 1988-5", 1e3),
    _lab("pao2", "mmHg", "arterial partial pressure of oxygen", "LOINC 2703-7", 800),
    FactDef("fio2", FactType.NUMBER, FactKind.MEASUREMENT,
            "fraction of inspired oxygen, in percent", unit="%", code="LOINC 3150-0",
            minimum=21, maximum=100, dated=True),
    _per_patient("pao2_fio2", FactType.NUMBER,
                 "PaO₂/FiO₂ ratio (Horowitz index, LOINC 50984-4)",
                 "latest PaO₂ ÷ FiO₂ (as a fraction) recorded on the same day; "
                 "see trialdesk.clinical.sepsis.pao2_fio2", unit="mmHg", maximum=4000),
    _per_patient("sofa_score", FactType.INTEGER,
                 "SOFA score (Vincent 1996, Intensive Care Med 22:707)",
                 "sum of the six organ scores of the latest complete SOFA assessment; "
                 "unknown when any component is missing", maximum=24),
    _per_patient("on_rrt", FactType.BOOLEAN, "on renal replacement therapy",
                 "a renal replacement therapy episode open on the screening date"),
    _per_patient("on_invasive_ventilation", FactType.BOOLEAN, "on invasive ventilation",
                 "an invasive ventilation episode open on the screening date"),
    _per_patient("on_non_invasive_ventilation", FactType.BOOLEAN,
                 "on non-invasive ventilation",
                 "a non-invasive ventilation episode open on the screening date"),
)


_FACTS: tuple[FactDef, ...] = (
    # Demographics
    FactDef("age_years", FactType.INTEGER, FactKind.DERIVED, "age in completed years",
            minimum=0, maximum=130, derivation="completed years from birth date to screening date"),
    FactDef("age_months", FactType.INTEGER, FactKind.DERIVED, "age in completed months",
            minimum=0, maximum=1560, derivation="completed months from birth date to screening date"),
    FactDef("sex", FactType.STRING, FactKind.DEMOGRAPHIC, "sex recorded at birth",
            values=("female", "male")),
    FactDef("childbearing_potential", FactType.BOOLEAN, FactKind.FINDING,
            "of childbearing potential", dated=False),
    FactDef("pregnant", FactType.BOOLEAN, FactKind.DERIVED, "currently pregnant",
            derivation="latest pregnancy test or recorded pregnancy in the look-back window; "
            "false for male patients", dated=True),
    FactDef("weight", FactType.NUMBER, FactKind.MEASUREMENT, "body weight", unit="kg",
            code="LOINC 29463-7", minimum=0.3, maximum=350, dated=True),
    FactDef("height", FactType.NUMBER, FactKind.MEASUREMENT, "body height", unit="cm",
            code="LOINC 8302-2", minimum=20, maximum=272, dated=True),
    # Diagnosis and disease
    FactDef("primary_diagnosis", FactType.STRING, FactKind.DIAGNOSIS, "primary diagnosis",
            values=DIAGNOSES),
    FactDef("diagnosis_category", FactType.STRING, FactKind.DERIVED,
            "solid tumour, haematological or other", values=("solid_tumour", "haematological",
                                                             "other"),
            derivation="from the primary diagnosis"),
    FactDef("oncohaematological", FactType.BOOLEAN, FactKind.DERIVED,
            "primary diagnosis is a haematological malignancy",
            derivation="primary diagnosis in the haematological malignancies"),
    FactDef("diagnosis_confirmation", FactType.STRING, FactKind.DIAGNOSIS,
            "how the diagnosis was confirmed", values=("histological", "cytological", "clinical")),
    FactDef("risk_group", FactType.STRING, FactKind.DIAGNOSIS, "risk group",
            values=("low", "intermediate", "high")),
    FactDef("risk_system", FactType.STRING, FactKind.DIAGNOSIS,
            "classification the risk group was assigned by",
            values=("GPOH-NB2004", "GPOH-NB2013", "COG", "INRG", "SIOPEN", "other")),
    FactDef("stage", FactType.STRING, FactKind.DIAGNOSIS, "stage as recorded (INSS/INRGSS/TNM)"),
    FactDef("disease_status", FactType.STRING, FactKind.DISEASE, "current disease status",
            values=("newly_diagnosed", "on_first_line_therapy", "refractory", "relapsed",
                    "progressive", "remission")),
    FactDef("end_induction_response", FactType.STRING, FactKind.DISEASE,
            "response at the end of induction (INRC categories; VGPR from INRC 1993)",
            values=_INRC),
    FactDef("induction_cycles_completed", FactType.INTEGER, FactKind.DISEASE,
            "induction chemotherapy cycles completed", minimum=0, maximum=30),
    FactDef("cns_involvement", FactType.BOOLEAN, FactKind.DISEASE,
            "central nervous system and/or leptomeningeal involvement"),
    FactDef("brain_metastases", FactType.BOOLEAN, FactKind.DISEASE, "brain metastases"),
    FactDef("metastatic", FactType.BOOLEAN, FactKind.DISEASE, "disseminated disease"),
    FactDef("staging_complete", FactType.BOOLEAN, FactKind.DISEASE,
            "comprehensive assessment of disease extent completed"),
    FactDef("chemotherapy_resistant", FactType.BOOLEAN, FactKind.DISEASE,
            "disease resistant to chemotherapy"),
    FactDef("life_expectancy", FactType.NUMBER, FactKind.FINDING, "expected life expectancy",
            unit="week", minimum=0, maximum=5200, dated=True),
    FactDef("septic_shock", FactType.BOOLEAN, FactKind.DISEASE, "septic shock present"),
    FactDef("hours_since_septic_shock_onset", FactType.NUMBER, FactKind.DERIVED,
            "hours from septic shock onset to the screening time", unit="hour",
            minimum=0, maximum=24 * 365,
            derivation="screening date-time minus recorded septic shock onset"),
    # Performance
    FactDef("lansky", FactType.INTEGER, FactKind.PERFORMANCE, "Lansky play-performance score",
            minimum=0, maximum=100, dated=True),
    FactDef("karnofsky", FactType.INTEGER, FactKind.PERFORMANCE, "Karnofsky performance score",
            minimum=0, maximum=100, dated=True),
    FactDef("ecog", FactType.INTEGER, FactKind.PERFORMANCE, "ECOG / WHO / Zubrod grade",
            minimum=0, maximum=5, dated=True),
    FactDef("performance_score", FactType.INTEGER, FactKind.DERIVED,
            "age-appropriate Lansky (under 16) or Karnofsky (16 and over) score",
            minimum=0, maximum=100, dated=True,
            derivation="Lansky if age < 16 else Karnofsky (FACTS.md §5); the other scale is "
            "never converted"),
    # Laboratory
    _lab("anc", "/mm3", "absolute neutrophil count", "LOINC 751-8", 1e6),
    _lab("granulocytes", "/mm3", "granulocyte count", "LOINC 30397-3", 1e6),
    _lab("platelets", "/mm3", "platelet count", "LOINC 777-3", 1e7),
    _lab("hemoglobin", "g/dL", "haemoglobin", "LOINC 718-7", 30),
    _lab("alt", "U/L", "alanine aminotransferase", "LOINC 1742-6", 1e5),
    _lab("ast", "U/L", "aspartate aminotransferase", "LOINC 1920-8", 1e5),
    _lab("alp", "U/L", "alkaline phosphatase", "LOINC 6768-6", 1e5),
    _lab("bilirubin", "mg/dL", "total bilirubin", "LOINC 1975-2", 100, "bilirubin"),
    _lab("creatinine", "mg/dL", "serum creatinine", "LOINC 2160-0", 50, "creatinine"),
    _lab("sodium", "mmol/L", "serum sodium", "LOINC 2951-2", 250),
    _lab("potassium", "mmol/L", "serum potassium", "LOINC 2823-3", 20),
    _lab("pti", "%", "prothrombin index", "LOINC 5894-1", 300),
    _lab("aptt", "s", "activated partial thromboplastin time", "LOINC 3173-2", 600),
    FactDef("inr", FactType.NUMBER, FactKind.LAB, "international normalised ratio",
            code="LOINC 6301-6", minimum=0, maximum=30, dated=True),
    _xuln("alt"),
    _xuln("ast"),
    _xuln("alp"),
    _xuln("bilirubin"),
    _xuln("creatinine"),
    FactDef("gfr", FactType.NUMBER, FactKind.DERIVED,
            "glomerular filtration rate or creatinine clearance", unit="mL/min/1.73m2",
            minimum=0, maximum=400, dated=True,
            derivation="measured GFR/creatinine clearance if recorded in the look-back window, "
            "else bedside Schwartz eGFR = 0.413 × height / creatinine (Schwartz 2009, JASN "
            "20:629) for ages 1–16, else unknown"),
    # Measurements
    FactDef("measured_gfr", FactType.NUMBER, FactKind.MEASUREMENT,
            "measured GFR or creatinine clearance", unit="mL/min/1.73m2", minimum=0,
            maximum=400, dated=True),
    FactDef("lvef", FactType.NUMBER, FactKind.MEASUREMENT, "left ventricular ejection fraction",
            unit="%", code="LOINC 10230-1", minimum=0, maximum=100, dated=True),
    FactDef("spo2_room_air", FactType.NUMBER, FactKind.MEASUREMENT,
            "oxygen saturation by pulse oximetry on room air", unit="%", code="LOINC 59408-5",
            minimum=0, maximum=100, dated=True),
    # Clinical findings (recorded by the clinician, dated)
    _finding("heart_failure_signs", "clinical signs of heart failure"),
    _finding("dyspnoea_at_rest", "dyspnoea at rest"),
    _finding("chest_xray_abnormal", "pathological findings on chest X-ray"),
    _finding("drug_induced_neuropathy", "signs of drug-induced neuropathy"),
    _finding("neuropathic_pain", "neuropathic pain"),
    _finding("severe_cardiovascular_disease",
             "severe cardiovascular disease, past or present (e.g. myocardial infarction, "
             "stroke, phlebothrombosis, coronary insufficiency needing drugs)"),
    _finding("active_peptic_ulcer", "gastric or duodenal ulcer in the acute phase"),
    _finding("uncontrolled_diabetes", "uncorrected diabetes mellitus"),
    _finding("significant_allergy", "known allergic reactions or significant allergic conditions"),
    # The investigator's questions: the same meaning in every trial (docs/questions.md)
    _question("severe_type1_hypersensitivity_history",
              "severe type I hypersensitivity reaction in the past",
              "Has the patient ever had a severe type I (immediate) hypersensitivity reaction, "
              "such as anaphylaxis?"),
    _question("mental_illness_preventing_understanding",
              "mental illness that prevents understanding the study",
              "Does a mental illness of the patient (or, for a child, of the legal guardians) "
              "make it impossible to understand the study and its treatment plan?"),
    _question("standard_treatment_exhausted",
              "standard methods of treatment exhausted",
              "Has the patient exhausted the standard methods of treatment for this tumour?"),
    FactDef("ckd_stage", FactType.INTEGER, FactKind.FINDING,
            "chronic kidney disease stage (0 = none)", minimum=0, maximum=5, dated=True),
    FactDef("rifle_class", FactType.STRING, FactKind.FINDING,
            "acute kidney injury class by RIFLE (Bellomo 2004)",
            values=("none", "risk", "injury", "failure", "loss", "eskd"), dated=True),
    # Treatments
    FactDef("prior_therapy_categories", FactType.SET, FactKind.TREATMENT,
            "categories of treatment received before the screening date",
            values=THERAPY_CATEGORIES,
            derivation="categories of every treatment started on or before the screening date"),
    FactDef("last_immunotherapy_date", FactType.DATE, FactKind.TREATMENT,
            "date of the last immunotherapy",
            derivation="latest end (or start, if ongoing: the screening date) of an "
                       "immunotherapy"),
    FactDef("chronic_immunosuppression", FactType.BOOLEAN, FactKind.TREATMENT,
            "chronic use of corticosteroids or immunosuppressants at the screening date",
            derivation="a treatment of category corticosteroid or immunosuppressant marked "
                       "chronic and ongoing at the screening date"),
    # Consent
    FactDef("consent_signed", FactType.BOOLEAN, FactKind.CONSENT,
            "signed informed consent for this trial",
            derivation="a signed consent record for this trial dated on or before screening"),
)

FACTS: Mapping[str, FactDef] = MappingProxyType({f.name: f for f in (*_FACTS, *_BIOMARKER_FACTS)})


#: Answers given before a trial's question became a finding of the dictionary: the
#: per-trial answer (trial, attestation id) is read as these facts, each with the answers
#: that carry over (docs/questions.md). NB-NK-2026 E7 asked two things at once: its "no"
#: says no to both halves; its "yes" says only that one of them holds, so it is read as
#: the trial's own comorbidity attestation (the criterion stays met) and leaves the
#: hypersensitivity finding unknown.
ANSWERED_AS: Mapping[tuple[str, str], tuple[tuple[str, tuple[bool, ...]], ...]] = (
    MappingProxyType({
        ("NB-NK-2026", "e7"): (("attest.comorbidity_precluding_treatment", (True, False)),
                               ("severe_type1_hypersensitivity_history", (False,))),
        ("NB-NK-2026", "e11"): (("mental_illness_preventing_understanding", (True, False)),),
        ("REFNOT-R2", "e3"): (("mental_illness_preventing_understanding", (True, False)),),
        ("REFNOT-R2", "i1"): (("standard_treatment_exhausted", (True, False)),),
    }))


@dataclass(frozen=True)
class Attestation:
    """A yes/no question a protocol asks the investigator to answer."""

    id: str
    question: str

    @property
    def fact_name(self) -> str:
        return f"attest.{self.id}"


@dataclass(frozen=True)
class FactDictionary:
    """The dictionary a protocol's rules are checked against."""

    facts: Mapping[str, FactDef] = field(default_factory=lambda: FACTS)

    def get(self, name: str) -> FactDef | None:
        return self.facts.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.facts

    def names(self) -> list[str]:
        return sorted(self.facts)

    def __reduce__(self) -> tuple[Any, ...]:
        # A read-only mapping cannot be pickled; rebuild it (compiled protocols are cached).
        return (_rebuild_dictionary, (dict(self.facts),))


def _rebuild_dictionary(facts: dict[str, FactDef]) -> FactDictionary:
    return FactDictionary(MappingProxyType(facts))


def with_attestations(attestations: Iterable[Attestation]) -> FactDictionary:
    """The base dictionary plus one boolean fact per protocol attestation."""
    extra = {
        a.fact_name: FactDef(a.fact_name, FactType.BOOLEAN, FactKind.ATTESTATION, a.question)
        for a in attestations
    }
    return FactDictionary(MappingProxyType({**FACTS, **extra}))


BASE = FactDictionary()
