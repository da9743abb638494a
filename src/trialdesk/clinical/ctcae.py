"""CTCAE v5.0 grading: lab-defined terms from band tables, clinical terms by definition.

Source: NCI Common Terminology Criteria for Adverse Events (CTCAE) v5.0, published
27 Nov 2017 (https://ctep.cancer.gov/protocoldevelopment/electronic_applications/ctc.htm).
The lab bands, their wording and their edges (which end of a band is inclusive) are those
of pharmaverse/admiral ``data-raw/adlb_grading/ncictcaev5.json``, which reproduces the v5.0
text; e.g. neutrophils grade 2 is "<1.5 x 10e9/L", so 1.5 x 10^9/L itself is grade 1.

Only v5.0 lives here. CTCAE v6.0 (NCI, 22 Jul 2025) moved several thresholds (neutrophils
one grade up, "Platelet count decreased" replaced by "Thrombocytopenia", ALT/AST with an
abnormal baseline, sepsis grade 3), so a record graded under another version must never be
checked against these tables.

A lab grade is *proposed* from the number alone. Where the v5.0 text also needs a clinical
fact (symptoms, a baseline, a reference limit) and it is not given, the result is unknown
and lists the grades still possible; nothing is guessed.

>>> grade_lab("Neutrophil count decreased", 800, "/mm3", lln=1800).grade
3
>>> validate_grade("Pain", 2)
2
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Final

from trialdesk.errors import ClinicalError, SafetyError

CTCAE_VERSION: Final = "5.0"
SOURCE: Final = "NCI CTCAE v5.0 (27 Nov 2017)"
LAB_SOURCE: Final = (
    "NCI CTCAE v5.0 (27 Nov 2017); bands as in pharmaverse/admiral "
    "data-raw/adlb_grading/ncictcaev5.json"
)


# --------------------------------------------------------------------------- result types


@dataclass(frozen=True)
class LabGrade:
    """A CTCAE v5.0 grade proposed from one measurement.

    ``grade`` is None when the inputs leave more than one grade possible; then
    ``possible_grades`` lists them and ``missing`` names the inputs that would decide.
    ``value`` and ``unit`` are in the term's canonical unit.
    """

    term: str
    value: float
    unit: str
    grade: int | None
    possible_grades: tuple[int, ...]
    rule: str
    missing: tuple[str, ...] = ()
    source: str = LAB_SOURCE
    ctcae_version: str = CTCAE_VERSION

    @property
    def known(self) -> bool:
        return self.grade is not None


@dataclass(frozen=True)
class GradeDefinition:
    """The CTCAE v5.0 wording of one grade of one term.

    ``unconfirmed`` marks wording not yet checked against the NCI v5.0 document, so
    callers can show the mark next to it.
    """

    grade: int
    text: str
    unconfirmed: bool = False


@dataclass(frozen=True)
class TermDefinition:
    """Every grade that exists for a term ("–" grades are absent)."""

    term: str
    grades: tuple[GradeDefinition, ...]
    source: str = SOURCE
    note: str = ""

    @property
    def allowed_grades(self) -> tuple[int, ...]:
        return tuple(d.grade for d in self.grades)


# --------------------------------------------------------------------------- band tables


class Ref(StrEnum):
    """What a band edge is a multiple of."""

    ABSOLUTE = "absolute"
    LLN = "lln"
    ULN = "uln"
    BASELINE = "baseline"


@dataclass(frozen=True)
class Bound:
    """One edge of a band: ``multiple`` x the reference value (1 for absolute edges)."""

    multiple: Decimal
    ref: Ref
    inclusive: bool


def _at_least(x: str, ref: Ref = Ref.ABSOLUTE) -> Bound:
    return Bound(Decimal(x), ref, inclusive=True)


def _above(x: str, ref: Ref = Ref.ABSOLUTE) -> Bound:
    return Bound(Decimal(x), ref, inclusive=False)


def _below(x: str, ref: Ref = Ref.ABSOLUTE) -> Bound:
    return Bound(Decimal(x), ref, inclusive=False)


def _at_most(x: str, ref: Ref = Ref.ABSOLUTE) -> Bound:
    return Bound(Decimal(x), ref, inclusive=True)


@dataclass(frozen=True)
class Band:
    """The values that give ``grade``: between ``lower`` and ``upper``.

    ``condition`` is a clinical fact the band also needs, e.g. ``("symptomatic", True)``.
    """

    grade: int
    text: str
    lower: Bound | None = None
    upper: Bound | None = None
    condition: tuple[str, bool] | None = None

    def contains(
        self, value: Decimal, refs: Mapping[Ref, Decimal], flags: Mapping[str, bool]
    ) -> bool | None:
        """True or False, or None when a reference value it needs is missing."""
        if self.condition is not None and flags[self.condition[0]] != self.condition[1]:
            return False
        undecided = False
        for bound, is_lower in ((self.lower, True), (self.upper, False)):
            if bound is None:
                continue
            ref = refs.get(bound.ref)
            if ref is None:
                undecided = True
                continue
            edge = bound.multiple * ref
            if is_lower:
                inside = value >= edge if bound.inclusive else value > edge
            else:
                inside = value <= edge if bound.inclusive else value < edge
            if not inside:
                return False
        return None if undecided else True

    def refs_needed(self) -> set[Ref]:
        return {b.ref for b in (self.lower, self.upper) if b is not None} - {Ref.ABSOLUTE}


@dataclass(frozen=True)
class BandTable:
    """The bands of one grading rule; a value in no band is grade 0 (``zero_text``)."""

    label: str
    bands: tuple[Band, ...]
    zero_text: str


@dataclass(frozen=True)
class LabTerm:
    """A lab-defined CTCAE v5.0 term.

    ``units`` maps each accepted unit (normalised spelling) to the factor that brings a
    value into ``unit``; factors are exact powers of ten, so no rounding creeps in.
    ``abnormal_baseline`` replaces ``table`` when the baseline value is above ULN;
    ``baseline_change`` is graded alongside ``table`` and the worse grade counts.
    """

    name: str
    unit: str
    units: Mapping[str, Decimal]
    table: BandTable
    definitions: Mapping[int, str]
    abnormal_baseline: BandTable | None = None
    baseline_change: BandTable | None = None
    note: str = ""
    source: str = LAB_SOURCE


# Accepted units. Cell counts: 1/mm3 = 1/uL = 10^-3 x 10^9/L. Hb: 1 g/dL = 10 g/L.
# Na+ and K+ are monovalent, so 1 mEq/L = 1 mmol/L exactly.
_ONE = Decimal(1)
_CELL_UNITS: Final = {
    **dict.fromkeys(
        ("10^9/l", "10*9/l", "x10^9/l", "x10*9/l", "10e9/l", "10^3/ul", "10*3/ul", "k/ul"), _ONE
    ),
    **dict.fromkeys(("/mm3", "/ul", "cells/mm3", "cells/ul"), Decimal("0.001")),
}
_HB_UNITS: Final = {"g/l": _ONE, "g/dl": Decimal(10)}
_ION_UNITS: Final = {"mmol/l": _ONE, "meq/l": _ONE}
# Terms graded as multiples of ULN or baseline: the ratio has no unit, so value, ULN and
# baseline only need to share one of these units; nothing is converted.
_ENZYME_UNITS: Final = dict.fromkeys(("u/l", "iu/l", "ukat/l"), _ONE)
_BILIRUBIN_UNITS: Final = dict.fromkeys(("mg/dl", "umol/l"), _ONE)
_CREATININE_UNITS: Final = dict.fromkeys(("mg/dl", "umol/l", "mmol/l"), _ONE)
_SECONDS: Final = dict.fromkeys(("s", "sec", "seconds"), _ONE)
_RATIO: Final = dict.fromkeys(("", "1", "ratio", "inr"), _ONE)

_ULN, _LLN, _BASE = Ref.ULN, Ref.LLN, Ref.BASELINE
_LIFE: Final = "Life-threatening consequences; urgent intervention indicated"


def _aminotransferase(name: str, short: str) -> LabTerm:
    # ALT and AST share one rule in v5.0 (admiral ncictcaev5.json).
    return LabTerm(
        name=name,
        unit="U/L",
        units=_ENZYME_UNITS,
        table=BandTable(
            "baseline normal: x ULN",
            (
                Band(1, f"{short} >ULN - 3.0 x ULN (baseline normal)", _above("1", _ULN), _at_most("3.0", _ULN)),
                Band(2, f"{short} >3.0 - 5.0 x ULN (baseline normal)", _above("3.0", _ULN), _at_most("5.0", _ULN)),
                Band(3, f"{short} >5.0 - 20.0 x ULN (baseline normal)", _above("5.0", _ULN), _at_most("20.0", _ULN)),
                Band(4, f"{short} >20.0 x ULN (baseline normal)", _above("20.0", _ULN)),
            ),
            f"{short} not above ULN",
        ),
        abnormal_baseline=BandTable(
            "baseline abnormal (above ULN): x baseline",
            (
                Band(1, f"{short} 1.5 - 3.0 x baseline (baseline abnormal)", _at_least("1.5", _BASE), _at_most("3.0", _BASE)),
                Band(2, f"{short} >3.0 - 5.0 x baseline (baseline abnormal)", _above("3.0", _BASE), _at_most("5.0", _BASE)),
                Band(3, f"{short} >5.0 - 20.0 x baseline (baseline abnormal)", _above("5.0", _BASE), _at_most("20.0", _BASE)),
                Band(4, f"{short} >20.0 x baseline (baseline abnormal)", _above("20.0", _BASE)),
            ),
            f"{short} below 1.5 x an abnormal baseline: not graded",
        ),
        definitions={
            1: ">ULN - 3.0 x ULN if baseline was normal; 1.5 - 3.0 x baseline if baseline was abnormal",
            2: ">3.0 - 5.0 x ULN if baseline was normal; >3.0 - 5.0 x baseline if baseline was abnormal",
            3: ">5.0 - 20.0 x ULN if baseline was normal; >5.0 - 20.0 x baseline if baseline was abnormal",
            4: ">20.0 x ULN if baseline was normal; >20.0 x baseline if baseline was abnormal",
        },
    )


_LAB_TERMS: Final[tuple[LabTerm, ...]] = (
    LabTerm(
        name="Neutrophil count decreased",
        unit="10^9/L",
        units=_CELL_UNITS,
        table=BandTable(
            "absolute count",
            (
                Band(1, "<LLN - 1500/mm3; <LLN - 1.5 x 10e9/L", _at_least("1.5"), _below("1", _LLN)),
                Band(2, "<1500 - 1000/mm3; <1.5 - 1.0 x 10e9/L", _at_least("1.0"), _below("1.5")),
                Band(3, "<1000 - 500/mm3; <1.0 - 0.5 x 10e9/L", _at_least("0.5"), _below("1.0")),
                Band(4, "<500/mm3; <0.5 x 10e9/L", None, _below("0.5")),
            ),
            "not below LLN",
        ),
        definitions={
            1: "<LLN - 1500/mm3; <LLN - 1.5 x 10e9/L",
            2: "<1500 - 1000/mm3; <1.5 - 1.0 x 10e9/L",
            3: "<1000 - 500/mm3; <1.0 - 0.5 x 10e9/L",
            4: "<500/mm3; <0.5 x 10e9/L",
        },
    ),
    LabTerm(
        name="Platelet count decreased",
        unit="10^9/L",
        units=_CELL_UNITS,
        table=BandTable(
            "absolute count",
            (
                Band(1, "<LLN - 75,000/mm3; <LLN - 75.0 x 10e9/L", _at_least("75"), _below("1", _LLN)),
                Band(2, "<75,000 - 50,000/mm3; <75.0 - 50.0 x 10e9/L", _at_least("50"), _below("75")),
                Band(3, "<50,000 - 25,000/mm3; <50.0 - 25.0 x 10e9/L", _at_least("25"), _below("50")),
                Band(4, "<25,000/mm3; <25.0 x 10e9/L", None, _below("25")),
            ),
            "not below LLN",
        ),
        definitions={
            1: "<LLN - 75,000/mm3; <LLN - 75.0 x 10e9/L",
            2: "<75,000 - 50,000/mm3; <75.0 - 50.0 x 10e9/L",
            3: "<50,000 - 25,000/mm3; <50.0 - 25.0 x 10e9/L",
            4: "<25,000/mm3; <25.0 x 10e9/L",
        },
    ),
    LabTerm(
        name="Anemia",
        unit="g/L",
        units=_HB_UNITS,
        table=BandTable(
            "haemoglobin",
            (
                Band(1, "Hgb <LLN - 10.0 g/dL; <LLN - 100 g/L", _at_least("100"), _below("1", _LLN)),
                Band(2, "Hgb <10.0 - 8.0 g/dL; <100 - 80 g/L", _at_least("80"), _below("100")),
                Band(3, "Hgb <8.0 g/dL; <80 g/L; transfusion indicated", None, _below("80")),
            ),
            "not below LLN",
        ),
        definitions={
            1: "Hemoglobin (Hgb) <LLN - 10.0 g/dL; <LLN - 6.2 mmol/L; <LLN - 100 g/L",
            2: "Hgb <10.0 - 8.0 g/dL; <6.2 - 4.9 mmol/L; <100 - 80 g/L",
            3: "Hgb <8.0 g/dL; <4.9 mmol/L; <80 g/L; transfusion indicated",
            4: _LIFE,
            5: "Death",
        },
        # The v5.0 mmol/L edges (6.2, 4.9) are not a power-of-ten conversion of the g/dL
        # edges, so mmol/L is refused rather than converted.
        note="grades 4 and 5 are clinical, not set by the haemoglobin value",
    ),
    _aminotransferase("Alanine aminotransferase increased", "ALT"),
    _aminotransferase("Aspartate aminotransferase increased", "AST"),
    LabTerm(
        name="Alkaline phosphatase increased",
        unit="U/L",
        units=_ENZYME_UNITS,
        table=BandTable(
            "baseline normal: x ULN",
            (
                Band(1, "ALP >ULN - 2.5 x ULN (baseline normal)", _above("1", _ULN), _at_most("2.5", _ULN)),
                Band(2, "ALP >2.5 - 5.0 x ULN (baseline normal)", _above("2.5", _ULN), _at_most("5.0", _ULN)),
                Band(3, "ALP >5.0 - 20.0 x ULN (baseline normal)", _above("5.0", _ULN), _at_most("20.0", _ULN)),
                Band(4, "ALP >20.0 x ULN (baseline normal)", _above("20.0", _ULN)),
            ),
            "ALP not above ULN",
        ),
        abnormal_baseline=BandTable(
            "baseline abnormal (above ULN): x baseline",
            (
                Band(1, "ALP 2.0 - 2.5 x baseline (baseline abnormal)", _at_least("2.0", _BASE), _at_most("2.5", _BASE)),
                Band(2, "ALP >2.5 - 5.0 x baseline (baseline abnormal)", _above("2.5", _BASE), _at_most("5.0", _BASE)),
                Band(3, "ALP >5.0 - 20.0 x baseline (baseline abnormal)", _above("5.0", _BASE), _at_most("20.0", _BASE)),
                Band(4, "ALP >20.0 x baseline (baseline abnormal)", _above("20.0", _BASE)),
            ),
            "ALP below 2.0 x an abnormal baseline: not graded",
        ),
        definitions={
            1: ">ULN - 2.5 x ULN if baseline was normal; 2.0 - 2.5 x baseline if baseline was abnormal",
            2: ">2.5 - 5.0 x ULN if baseline was normal; >2.5 - 5.0 x baseline if baseline was abnormal",
            3: ">5.0 - 20.0 x ULN if baseline was normal; >5.0 - 20.0 x baseline if baseline was abnormal",
            4: ">20.0 x ULN if baseline was normal; >20.0 x baseline if baseline was abnormal",
        },
    ),
    LabTerm(
        name="Blood bilirubin increased",
        unit="mg/dL",
        units=_BILIRUBIN_UNITS,
        table=BandTable(
            "baseline normal: x ULN",
            (
                Band(1, "bilirubin >ULN - 1.5 x ULN (baseline normal)", _above("1", _ULN), _at_most("1.5", _ULN)),
                Band(2, "bilirubin >1.5 - 3.0 x ULN (baseline normal)", _above("1.5", _ULN), _at_most("3.0", _ULN)),
                Band(3, "bilirubin >3.0 - 10.0 x ULN (baseline normal)", _above("3.0", _ULN), _at_most("10.0", _ULN)),
                Band(4, "bilirubin >10.0 x ULN (baseline normal)", _above("10.0", _ULN)),
            ),
            "bilirubin not above ULN",
        ),
        abnormal_baseline=BandTable(
            "baseline abnormal (above ULN): x baseline",
            (
                Band(1, "bilirubin >1.0 - 1.5 x baseline (baseline abnormal)", _above("1.0", _BASE), _at_most("1.5", _BASE)),
                Band(2, "bilirubin >1.5 - 3.0 x baseline (baseline abnormal)", _above("1.5", _BASE), _at_most("3.0", _BASE)),
                Band(3, "bilirubin >3.0 - 10.0 x baseline (baseline abnormal)", _above("3.0", _BASE), _at_most("10.0", _BASE)),
                Band(4, "bilirubin >10.0 x baseline (baseline abnormal)", _above("10.0", _BASE)),
            ),
            "bilirubin not above an abnormal baseline: not graded",
        ),
        definitions={
            1: ">ULN - 1.5 x ULN if baseline was normal; >1.0 - 1.5 x baseline if baseline was abnormal",
            2: ">1.5 - 3.0 x ULN if baseline was normal; >1.5 - 3.0 x baseline if baseline was abnormal",
            3: ">3.0 - 10.0 x ULN if baseline was normal; >3.0 - 10.0 x baseline if baseline was abnormal",
            4: ">10.0 x ULN if baseline was normal; >10.0 x baseline if baseline was abnormal",
        },
    ),
    LabTerm(
        name="Creatinine increased",
        unit="mg/dL",
        units=_CREATININE_UNITS,
        table=BandTable(
            "x ULN",
            (
                Band(1, "creatinine >ULN - 1.5 x ULN", _above("1", _ULN), _at_most("1.5", _ULN)),
                Band(2, "creatinine >1.5 - 3.0 x ULN", _above("1.5", _ULN), _at_most("3.0", _ULN)),
                Band(3, "creatinine >3.0 - 6.0 x ULN", _above("3.0", _ULN), _at_most("6.0", _ULN)),
                Band(4, "creatinine >6.0 x ULN", _above("6.0", _ULN)),
            ),
            "creatinine not above ULN",
        ),
        baseline_change=BandTable(
            "x baseline",
            (
                Band(2, "creatinine >1.5 - 3.0 x baseline", _above("1.5", _BASE), _at_most("3.0", _BASE)),
                Band(3, "creatinine >3.0 x baseline", _above("3.0", _BASE)),
            ),
            "creatinine not above 1.5 x baseline",
        ),
        definitions={
            1: ">ULN - 1.5 x ULN",
            2: ">1.5 - 3.0 x baseline; >1.5 - 3.0 x ULN",
            3: ">3.0 baseline; >3.0 - 6.0 x ULN",
            4: ">6.0 x ULN",
        },
    ),
    LabTerm(
        name="Hyponatremia",
        unit="mmol/L",
        units=_ION_UNITS,
        table=BandTable(
            "serum sodium",
            (
                # The v5.0 integer ranges (125-129, 120-124) are read as half-open
                # intervals so that no value (e.g. 129.5) falls between two bands.
                Band(1, "<LLN - 130 mmol/L", _at_least("130"), _below("1", _LLN)),
                Band(2, "125-129 mmol/L and asymptomatic", _at_least("125"), _below("130"), ("symptomatic", False)),
                Band(3, "125-129 mmol/L symptomatic", _at_least("125"), _below("130"), ("symptomatic", True)),
                Band(3, "120-124 mmol/L regardless of symptoms", _at_least("120"), _below("125")),
                Band(4, "<120 mmol/L", None, _below("120")),
            ),
            "not below LLN",
        ),
        definitions={
            1: "<LLN - 130 mmol/L",
            2: "125-129 mmol/L and asymptomatic",
            3: "125-129 mmol/L symptomatic; 120-124 mmol/L regardless of symptoms",
            4: "<120 mmol/L; life-threatening consequences",
            5: "Death",
        },
    ),
    LabTerm(
        name="Hypokalemia",
        unit="mmol/L",
        units=_ION_UNITS,
        table=BandTable(
            "serum potassium",
            (
                Band(1, "<LLN - 3.0 mmol/L", _at_least("3.0"), _below("1", _LLN), ("symptomatic", False)),
                Band(2, "Symptomatic with <LLN - 3.0 mmol/L; intervention indicated", _at_least("3.0"), _below("1", _LLN), ("symptomatic", True)),
                Band(3, "<3.0 - 2.5 mmol/L; hospitalization indicated", _at_least("2.5"), _below("3.0")),
                Band(4, "<2.5 mmol/L; life-threatening consequences", None, _below("2.5")),
            ),
            "not below LLN",
        ),
        definitions={
            1: "<LLN - 3.0 mmol/L",
            2: "Symptomatic with <LLN - 3.0 mmol/L; intervention indicated",
            3: "<3.0 - 2.5 mmol/L; hospitalization indicated",
            4: "<2.5 mmol/L; life-threatening consequences",
            5: "Death",
        },
    ),
    LabTerm(
        name="Activated partial thromboplastin time prolonged",
        unit="s",
        units=_SECONDS,
        table=BandTable(
            "x ULN",
            (
                Band(1, "aPTT >ULN - 1.5 x ULN", _above("1", _ULN), _at_most("1.5", _ULN)),
                Band(2, "aPTT >1.5 - 2.5 x ULN", _above("1.5", _ULN), _at_most("2.5", _ULN)),
                Band(3, "aPTT >2.5 x ULN", _above("2.5", _ULN)),
            ),
            "aPTT not above ULN",
        ),
        definitions={1: ">ULN - 1.5 x ULN", 2: ">1.5 - 2.5 x ULN", 3: ">2.5 x ULN; bleeding"},
        note="grade 3 is also given for bleeding, whatever the value",
    ),
    LabTerm(
        name="INR increased",
        unit="1",
        units=_RATIO,
        table=BandTable(
            "absolute INR",
            (
                Band(1, "INR >1.2 - 1.5", _above("1.2"), _at_most("1.5")),
                Band(2, "INR >1.5 - 2.5", _above("1.5"), _at_most("2.5")),
                Band(3, "INR >2.5", _above("2.5")),
            ),
            "INR not above 1.2",
        ),
        definitions={
            1: ">1.2 - 1.5; >1 - 1.5 x baseline if on anticoagulation; monitoring only indicated",
            2: ">1.5 - 2.5; >1.5 - 2.5 x baseline if on anticoagulation; dose adjustment indicated",
            3: ">2.5; >2.5 times above baseline if on anticoagulation",
        },
        # Patients on anticoagulation are graded against x baseline in v5.0; that rule
        # needs the anticoagulation status and is left to the investigator.
        note="absolute rule only: for a patient on anticoagulation v5.0 grades x baseline",
    ),
)


# --------------------------------------------------------------------------- clinical terms

# The wording of FACTS.md §3 "Clinical terms (v5 text)". Definitions marked unconfirmed
# have not been checked against the NCI v5.0 document (hypotension, capillary leak
# syndrome, anaphylaxis, sepsis, catheter related infection, peripheral sensory
# neuropathy; febrile neutropenia grades 4-5).
_U: Final = True


def _term(name: str, *grades: tuple[int, str] | tuple[int, str, bool], note: str = "") -> TermDefinition:
    defs = tuple(GradeDefinition(g[0], g[1], len(g) > 2 and bool(g[2])) for g in grades)
    return TermDefinition(name, defs, SOURCE, note)


_CLINICAL_TERMS: Final[tuple[TermDefinition, ...]] = (
    _term(
        "Pain",
        (1, "Mild pain"),
        (2, "Moderate pain; limiting instrumental ADL"),
        (3, "Severe pain; limiting self care ADL"),
    ),
    _term(
        "Neuralgia",
        (1, "Mild pain"),
        (2, "Moderate pain; limiting instrumental ADL"),
        (3, "Severe pain; limiting self care ADL"),
    ),
    _term(
        "Peripheral sensory neuropathy",
        (1, "Asymptomatic", _U),
        (2, "Moderate symptoms; limiting instrumental ADL", _U),
        (3, "Severe symptoms; limiting self care ADL", _U),
        (4, "Life-threatening consequences; urgent intervention indicated", _U),
        note="grade 5 is '-' in v5.0 (it was 'Death' in v4); unconfirmed",
    ),
    _term(
        "Fever",
        (1, "38.0 - 39.0 degrees C"),
        (2, ">39.0 - 40.0 degrees C"),
        (3, ">40.0 degrees C for <=24 hrs"),
        (4, ">40.0 degrees C for >24 hrs"),
        (5, "Death"),
    ),
    _term(
        "Allergic reaction",
        (1, "Systemic intervention not indicated"),
        (2, "Oral intervention indicated"),
        (3, "Bronchospasm; hospitalization indicated for clinical sequelae; intravenous intervention indicated"),
        (4, _LIFE),
        (5, "Death"),
    ),
    _term(
        "Anaphylaxis",
        (3, "Symptomatic bronchospasm, with or without urticaria; parenteral intervention indicated; "
            "allergy-related edema/angioedema; hypotension", _U),
        (4, _LIFE, _U),
        (5, "Death", _U),
    ),
    _term(
        "Infusion related reaction",
        (1, "Mild transient reaction; infusion interruption not indicated; intervention not indicated"),
        (2, "Therapy or infusion interruption indicated but responds promptly to symptomatic "
            "treatment; prophylactic medications indicated for <=24 hrs"),
        (3, "Prolonged; recurrence of symptoms following initial improvement; hospitalization "
            "indicated for clinical sequelae"),
        (4, _LIFE),
        (5, "Death"),
    ),
    _term(
        "Capillary leak syndrome",
        (2, "Symptomatic; medical intervention indicated", _U),
        (3, "Severe symptoms; intervention indicated", _U),
        (4, _LIFE, _U),
        (5, "Death", _U),
        note="grade 1 is '-' per the project fact sheet; unconfirmed against the NCI document",
    ),
    _term(
        "Hypotension",
        (1, "Asymptomatic, intervention not indicated", _U),
        (2, "Non-urgent medical intervention indicated", _U),
        (3, "Medical intervention indicated; hospitalization indicated", _U),
        (4, "Life-threatening consequences and urgent intervention indicated", _U),
        (5, "Death", _U),
    ),
    _term(
        "Diarrhea",
        (1, "Increase of <4 stools per day over baseline; mild increase in ostomy output"),
        (2, "Increase of 4 - 6 stools per day over baseline; moderate increase in ostomy output; "
            "limiting instrumental ADL"),
        (3, "Increase of >=7 stools per day over baseline; hospitalization indicated; severe "
            "increase in ostomy output; limiting self care ADL"),
        (4, "Life-threatening consequences"),
        (5, "Death"),
    ),
    _term(
        "Sepsis",
        (3, "Blood culture positive with signs or symptoms; treatment indicated", _U),
        (4, _LIFE, _U),
        (5, "Death", _U),
    ),
    _term(
        "Catheter related infection",
        (2, "Localized; local intervention indicated; oral intervention indicated", _U),
        (3, "IV antibiotic, antifungal, or antiviral intervention indicated; invasive "
            "intervention indicated", _U),
        (4, "Life-threatening consequences", _U),
        (5, "Death", _U),
    ),
    _term(
        "Cytokine release syndrome",
        (1, "Fever, with or without constitutional symptoms"),
        (2, "Hypotension responding to fluids; hypoxia responding to <40% O2"),
        (3, "Hypotension managed with one pressor; hypoxia requiring >=40% O2"),
        (4, _LIFE),
        (5, "Death"),
        note="CTCAE v5.0 wording; ASTCT consensus grading is in trialdesk.clinical.astct",
    ),
    _term(
        "Febrile neutropenia",
        (3, "ANC <1000/mm3 with a single temperature of >38.3 degrees C or a sustained "
            "temperature of >=38 degrees C for more than one hour"),
        (4, _LIFE, _U),
        (5, "Death", _U),
    ),
)


def _key(term: str) -> str:
    return " ".join(term.split()).casefold()


_LAB_BY_KEY: Final = {_key(t.name): t for t in _LAB_TERMS}
_DEFINITIONS_BY_KEY: Final[dict[str, TermDefinition]] = {
    **{
        _key(t.name): TermDefinition(
            t.name,
            tuple(GradeDefinition(g, text) for g, text in sorted(t.definitions.items())),
            t.source,
            t.note,
        )
        for t in _LAB_TERMS
    },
    **{_key(t.term): t for t in _CLINICAL_TERMS},
}


# --------------------------------------------------------------------------- term look-up


def lab_terms() -> tuple[str, ...]:
    """The lab-defined terms :func:`grade_lab` can grade.

    >>> "Anemia" in lab_terms()
    True
    """
    return tuple(t.name for t in _LAB_TERMS)


def known_terms() -> tuple[str, ...]:
    """Every term with CTCAE v5.0 grade definitions here (lab and clinical)."""
    return tuple(d.term for d in _DEFINITIONS_BY_KEY.values())


def canonical_term(term: str) -> str | None:
    """The CTCAE spelling of ``term`` (case and spacing ignored), or None if not held here.

    >>> canonical_term("capillary  LEAK syndrome")
    'Capillary leak syndrome'
    """
    found = _DEFINITIONS_BY_KEY.get(_key(term))
    return found.term if found else None


def term_definition(term: str) -> TermDefinition:
    """All grade definitions of ``term``, with their ``unconfirmed`` marks.

    >>> term_definition("Sepsis").allowed_grades
    (3, 4, 5)
    """
    found = _DEFINITIONS_BY_KEY.get(_key(term))
    if found is None:
        raise SafetyError(
            f"unknown CTCAE v{CTCAE_VERSION} term {term!r}; known terms: {', '.join(known_terms())}",
            where="term",
        )
    return found


def grade_definitions(term: str) -> dict[int, str]:
    """``{grade: CTCAE v5.0 text}`` for ``term``; grades that are "–" are absent.

    >>> sorted(grade_definitions("Capillary leak syndrome"))
    [2, 3, 4, 5]
    """
    return {d.grade: d.text for d in term_definition(term).grades}


def validate_grade(term: str, grade: int) -> int:
    """Return ``grade`` if it exists for ``term`` in CTCAE v5.0, else raise SafetyError.

    >>> validate_grade("Pain", 4)
    Traceback (most recent call last):
    ...
    trialdesk.errors.SafetyError: grade: grade 4 does not exist for 'Pain' in CTCAE v5.0; allowed grades: 1, 2, 3
    """
    definition = term_definition(term)
    if isinstance(grade, bool) or not isinstance(grade, int):
        raise SafetyError(f"grade must be a whole number, got {grade!r}", where="grade")
    allowed = definition.allowed_grades
    if grade not in allowed:
        raise SafetyError(
            f"grade {grade} does not exist for {definition.term!r} in CTCAE v{CTCAE_VERSION}; "
            f"allowed grades: {', '.join(map(str, allowed))}",
            where="grade",
        )
    return grade


# --------------------------------------------------------------------------- lab grading


@dataclass(frozen=True)
class _Outcome:
    """Grades still possible under one rule, the band text when only one is, and why not."""

    possible: frozenset[int]
    text: str | None
    missing: frozenset[str] = field(default_factory=frozenset)


def _union(a: _Outcome, b: _Outcome, *, decides: str | None = None) -> _Outcome:
    possible = a.possible | b.possible
    if len(possible) == 1:
        return _Outcome(possible, a.text or b.text)
    extra = {decides} if decides and a.possible != b.possible else set()
    return _Outcome(possible, None, a.missing | b.missing | extra)


def _evaluate(
    table: BandTable, value: Decimal, refs: Mapping[Ref, Decimal], flags: Mapping[str, bool | None]
) -> _Outcome:
    for band in table.bands:
        if band.condition is not None and flags.get(band.condition[0]) is None:
            # Grade both ways; the fact only matters if the two answers differ.
            name = band.condition[0]
            yes = _evaluate(table, value, refs, {**flags, name: True})
            no = _evaluate(table, value, refs, {**flags, name: False})
            return _union(yes, no, decides=name)
    known_flags = {k: v for k, v in flags.items() if v is not None}
    hits: list[Band] = []
    open_bands: list[Band] = []
    for band in table.bands:
        inside = band.contains(value, refs, known_flags)
        if inside:
            hits.append(band)
        elif inside is None:
            open_bands.append(band)
    if hits:
        best = max(hits, key=lambda b: b.grade)
        return _Outcome(frozenset({best.grade}), best.text)
    if not open_bands:
        return _Outcome(frozenset({0}), table.zero_text)
    missing = {r.value for b in open_bands for r in b.refs_needed() if r not in refs}
    return _Outcome(frozenset({0, *(b.grade for b in open_bands)}), None, frozenset(missing))


def _by_baseline(
    spec: LabTerm, value: Decimal, refs: Mapping[Ref, Decimal], flags: Mapping[str, bool | None]
) -> _Outcome:
    assert spec.abnormal_baseline is not None  # only called for terms that have one
    uln, baseline = refs.get(Ref.ULN), refs.get(Ref.BASELINE)
    normal = _evaluate(spec.table, value, refs, flags)
    if uln is None:
        abnormal = _evaluate(spec.abnormal_baseline, value, refs, flags)
        merged = _union(normal, abnormal)
        return _Outcome(merged.possible, merged.text, merged.missing | {"uln"})
    if baseline is None:
        top = max(normal.possible)
        if top == 0:
            return normal
        # An abnormal baseline lies above ULN and every x-baseline edge is at least the
        # x-ULN edge of the same grade, so that rule can only give this grade or lower.
        return _Outcome(frozenset(range(top + 1)), None, frozenset({"baseline"}))
    if baseline > uln:
        return _evaluate(spec.abnormal_baseline, value, refs, flags)
    return normal


def _worse_of(
    spec: LabTerm, value: Decimal, refs: Mapping[Ref, Decimal], flags: Mapping[str, bool | None]
) -> _Outcome:
    assert spec.baseline_change is not None  # only called for terms that have one
    by_uln = _evaluate(spec.table, value, refs, flags)
    by_base = _evaluate(spec.baseline_change, value, refs, flags)
    possible = frozenset(max(a, b) for a in by_uln.possible for b in by_base.possible)
    if len(possible) > 1:
        return _Outcome(possible, None, by_uln.missing | by_base.missing)
    (grade,) = possible
    if grade == 0:
        return _Outcome(possible, f"{by_uln.text}; {by_base.text}")
    return _Outcome(possible, by_uln.text if max(by_uln.possible) >= grade else by_base.text)


def _decimal(raw: object, name: str, *, positive: bool = False) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | float | Decimal):
        raise ClinicalError(f"must be a number, got {raw!r}", where=name)
    try:
        number = Decimal(str(raw))  # str() keeps 1.2 as 1.2, not its binary approximation
    except InvalidOperation as exc:  # pragma: no cover - str() of a number always parses
        raise ClinicalError(f"not a number: {raw!r}", where=name) from exc
    if not number.is_finite():
        raise ClinicalError(f"must be finite, got {raw!r}", where=name)
    if number < 0 or (positive and number == 0):
        raise ClinicalError(f"must be {'above' if positive else 'at least'} 0, got {raw!r}", where=name)
    return number


def _normalise_unit(unit: str) -> str:
    return (
        unit.strip().replace(" ", "").replace("µ", "u").replace("μ", "u").replace("×", "x").casefold()
    )


def _lab_term(term: str) -> LabTerm:
    spec = _LAB_BY_KEY.get(_key(term))
    if spec is None:
        raise ClinicalError(
            f"no CTCAE v{CTCAE_VERSION} lab table for {term!r}; lab terms: {', '.join(lab_terms())}",
            where="term",
        )
    return spec


def grade_lab(
    term: str,
    value: float | int | Decimal,
    unit: str,
    *,
    lln: float | int | Decimal | None = None,
    uln: float | int | Decimal | None = None,
    baseline: float | int | Decimal | None = None,
    symptomatic: bool | None = None,
) -> LabGrade:
    """Propose the CTCAE v5.0 grade of a lab value.

    ``lln``, ``uln`` and ``baseline`` are in the same unit as ``value``. Unit conversion
    happens only by exact powers of ten (cells /mm3 -> 10^9/L; Hb g/dL -> g/L); for terms
    graded as multiples of ULN or baseline, any listed unit is accepted unconverted.
    ALT, AST, ALP and bilirubin use the x-baseline rule when ``baseline`` > ``uln``.
    A missing limit, baseline or symptom status that could change the grade gives an
    unknown grade listing the possible ones.

    >>> grade_lab("Hyponatremia", 127, "mmol/L", lln=135).possible_grades
    (2, 3)
    >>> grade_lab("ALT increased", 130, "U/L", uln=40, baseline=30).grade
    2
    """
    spec = _lab_term(_ALIASES.get(_key(term), term))
    factor = spec.units.get(_normalise_unit(unit))
    if factor is None:
        accepted = ", ".join(sorted(spec.units))
        raise ClinicalError(
            f"unit {unit!r} not accepted for {spec.name!r}; accepted: {accepted}", where="unit"
        )
    number = _decimal(value, "value") * factor
    refs: dict[Ref, Decimal] = {Ref.ABSOLUTE: _ONE}
    for name, raw, ref in (("lln", lln, Ref.LLN), ("uln", uln, Ref.ULN), ("baseline", baseline, Ref.BASELINE)):
        if raw is not None:
            refs[ref] = _decimal(raw, name, positive=ref is not Ref.BASELINE) * factor
    flags: dict[str, bool | None] = {"symptomatic": symptomatic}

    if spec.abnormal_baseline is not None:
        outcome = _by_baseline(spec, number, refs, flags)
    elif spec.baseline_change is not None:
        outcome = _worse_of(spec, number, refs, flags)
    else:
        outcome = _evaluate(spec.table, number, refs, flags)

    possible = tuple(sorted(outcome.possible))
    if len(possible) == 1:
        rule = outcome.text or ""
        if spec.note:
            rule = f"{rule} ({spec.note})"
        return LabGrade(spec.name, float(number), spec.unit, possible[0], possible, rule)
    missing = tuple(sorted(outcome.missing))
    rule = (
        f"grade is one of {', '.join(map(str, possible))}: "
        f"{' and '.join(missing) or 'an input'} needed to decide"
    )
    return LabGrade(spec.name, float(number), spec.unit, None, possible, rule, missing)


# Short names people type for the lab terms.
_ALIASES: Final = {
    "alt increased": "Alanine aminotransferase increased",
    "ast increased": "Aspartate aminotransferase increased",
    "alkaline phosphatase increased": "Alkaline phosphatase increased",
    "aptt prolonged": "Activated partial thromboplastin time prolonged",
}


# --------------------------------------------------------------------------- fever

# CTCAE v5.0 "Fever" (confirmed unchanged in v6.0): G1 38.0-39.0, G2 >39.0-40.0,
# G3 >40.0 for <=24 h, G4 >40.0 for >24 h (degrees C).
_FEVER: Final = BandTable(
    "body temperature",
    (
        Band(1, "38.0 - 39.0 degrees C", _at_least("38.0"), _at_most("39.0")),
        Band(2, ">39.0 - 40.0 degrees C", _above("39.0"), _at_most("40.0")),
        Band(3, ">40.0 degrees C for <=24 hrs", _above("40.0"), None, ("over_24h", False)),
        Band(4, ">40.0 degrees C for >24 hrs", _above("40.0"), None, ("over_24h", True)),
    ),
    "below 38.0 degrees C: no fever",
)
_FEVER_HOURS: Final = Decimal(24)  # CTCAE v5.0 Fever G3/G4 split


def grade_fever(temperature_c: float | int | Decimal, hours_above_40: float | int | Decimal | None = None) -> LabGrade:
    """Grade CTCAE v5.0 "Fever" from a temperature in degrees Celsius.

    Above 40.0 °C the grade depends on how long it lasted; without ``hours_above_40``
    the result is unknown between grades 3 and 4.

    >>> grade_fever(39.5).grade
    2
    >>> grade_fever(40.2).possible_grades
    (3, 4)
    """
    temperature = _decimal(temperature_c, "temperature_c")
    # Outside this range the number is almost surely Fahrenheit or a typing error.
    if not Decimal(25) <= temperature <= Decimal(45):
        raise ClinicalError(
            f"{temperature_c} is not a body temperature in degrees Celsius", where="temperature_c"
        )
    over_24h: bool | None = None
    if hours_above_40 is not None:
        over_24h = _decimal(hours_above_40, "hours_above_40") > _FEVER_HOURS
    outcome = _evaluate(_FEVER, temperature, {Ref.ABSOLUTE: _ONE}, {"over_24h": over_24h})
    possible = tuple(sorted(outcome.possible))
    if len(possible) == 1:
        return LabGrade("Fever", float(temperature), "Cel", possible[0], possible, outcome.text or "", source=SOURCE)
    return LabGrade(
        "Fever",
        float(temperature),
        "Cel",
        None,
        possible,
        "grade is one of 3, 4: hours_above_40 needed (24 h or less is grade 3, more is grade 4)",
        ("hours_above_40",),
        source=SOURCE,
    )
