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

A lab grade is *proposed* from the number. Where the v5.0 text also needs a clinical fact
(symptoms, a baseline, a reference limit) that is not given, the result is unknown and
lists the grades still possible; nothing is guessed.

>>> grade_lab("Neutrophil count decreased", 800, "/mm3", lln=1800).grade
3
>>> validate_grade("Pain", 2)
2
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from itertools import pairwise
from typing import Final

from trialdesk.errors import ClinicalError, SafetyError

CTCAE_VERSION: Final = "5.0"
SOURCE: Final = "NCI CTCAE v5.0 (27 Nov 2017)"
LAB_SOURCE: Final = (
    "NCI CTCAE v5.0 (27 Nov 2017); bands as in pharmaverse/admiral data-raw/adlb_grading/ncictcaev5.json"
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


def _edge(text: str, inclusive: bool) -> Bound | None:
    text = text.strip()
    if text in ("-inf", "inf"):
        return None
    number, _, ref = text.partition("x")
    return Bound(Decimal(number), Ref(ref.casefold()) if ref else Ref.ABSOLUTE, inclusive)


@dataclass(frozen=True)
class Band:
    """The values that give ``grade``: ``lower`` < (or <=) value < (or <=) ``upper``.

    ``interval`` is the band as written in the table, e.g. ``"[1.0, 1.5)"`` or
    ``"(3.0xULN, 5.0xULN]"``. ``condition`` is a clinical fact the band also needs,
    e.g. ``("symptomatic", True)``. ``text`` overrides the grade's definition when one
    grade has several bands.
    """

    grade: int
    interval: str
    lower: Bound | None
    upper: Bound | None
    condition: tuple[str, bool] | None = None
    text: str | None = None

    def contains(self, value: Decimal, refs: Mapping[Ref, Decimal], flags: Mapping[str, bool]) -> bool | None:
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


def _band(grade: int, interval: str, text: str | None = None, when: tuple[str, bool] | None = None) -> Band:
    """A band from interval notation: ``[`` ``]`` inclusive, ``(`` ``)`` exclusive."""
    low, high = interval[1:-1].split(",")
    lower = _edge(low, inclusive=interval[0] == "[")
    upper = _edge(high, inclusive=interval[-1] == "]")
    return Band(grade, interval, lower, upper, when, text)


@dataclass(frozen=True)
class BandTable:
    """The bands of one grading rule; a value in no band is grade 0 (``zero_text``)."""

    label: str
    bands: tuple[Band, ...]
    zero_text: str


def _table(label: str, zero_text: str, *bands: Band) -> BandTable:
    return BandTable(label, bands, zero_text)


@dataclass(frozen=True)
class LabTerm:
    """A lab-defined CTCAE v5.0 term.

    ``units`` maps each accepted unit (normalised spelling) to the factor that brings a
    value into ``unit``; factors are exact powers of ten, so nothing is rounded.
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


def _units(factor: str, *names: str) -> dict[str, Decimal]:
    return dict.fromkeys(names, Decimal(factor))


# Cell counts: 1/mm3 = 1/uL = 10^-3 x 10^9/L. Hb: 1 g/dL = 10 g/L. Na+ and K+ are
# monovalent, so 1 mEq/L = 1 mmol/L exactly.
_CELLS: Final = {
    **_units("1", "10^9/l", "10*9/l", "x10^9/l", "10e9/l", "10^3/ul", "10*3/ul", "k/ul"),
    **_units("0.001", "/mm3", "/ul", "cells/mm3", "cells/ul"),
}
_HB: Final = {**_units("1", "g/l"), **_units("10", "g/dl")}
_IONS: Final = _units("1", "mmol/l", "meq/l")
# Terms graded as multiples of ULN or baseline: the ratio has no unit, so value, ULN and
# baseline only have to share one of these units; nothing is converted.
_ENZYME: Final = _units("1", "u/l", "iu/l", "ukat/l")
_BILIRUBIN: Final = _units("1", "mg/dl", "umol/l")
_CREATININE: Final = _units("1", "mg/dl", "umol/l", "mmol/l")
_SECONDS: Final = _units("1", "s", "sec", "seconds")
_RATIO: Final = _units("1", "", "1", "ratio", "inr")

_LIFE: Final = "Life-threatening consequences; urgent intervention indicated"


def _times(ref: str, edges: Iterable[str], *, first_inclusive: bool = False) -> tuple[Band, ...]:
    """Consecutive bands ``(e0, e1], (e1, e2], ..., (en, inf)`` in multiples of ``ref``."""
    cuts = [*edges]
    bands = []
    for grade, (low, high) in enumerate(zip(cuts, [*cuts[1:], "inf"], strict=True), start=1):
        left = "[" if grade == 1 and first_inclusive else "("
        right = ")" if high == "inf" else "]"
        upper = "inf" if high == "inf" else f"{high}x{ref}"
        bands.append(_band(grade, f"{left}{low}x{ref}, {upper}{right}"))
    return tuple(bands)


def _hepatic(
    name: str,
    unit: str,
    units: Mapping[str, Decimal],
    uln: tuple[str, ...],
    base: tuple[str, ...],
    *,
    base_inclusive: bool,
) -> LabTerm:
    """ALT, AST, ALP or bilirubin: x ULN if the baseline was normal, x baseline if abnormal.

    ``uln`` and ``base`` are the lower edges of grades 1-4; ``base_inclusive`` says whether
    the x-baseline grade 1 edge is inclusive ("1.5 - 3.0 x baseline") or not
    (">1.0 - 1.5 x baseline"), as in admiral ncictcaev5.json. The v5.0 wording is rebuilt
    from the same edges, so text and bands cannot drift apart.
    """

    def wording(edges: tuple[str, ...], first: str) -> list[str]:
        ranges = [f">{lo} - {hi}" for lo, hi in pairwise(edges[1:])]
        return [f"{first} - {edges[1]}", *ranges, f">{edges[-1]}"]

    first_base = base[0] if base_inclusive else f">{base[0]}"
    definitions = {
        grade: f"{u} x ULN if baseline was normal; {b} x baseline if baseline was abnormal"
        for grade, (u, b) in enumerate(
            zip(wording(uln, ">ULN"), wording(base, first_base), strict=True), start=1
        )
    }
    return LabTerm(
        name,
        unit,
        units,
        BandTable("baseline normal, x ULN", _times("ULN", uln), "not above ULN"),
        definitions,
        abnormal_baseline=BandTable(
            "baseline abnormal, x baseline",
            _times("baseline", base, first_inclusive=base_inclusive),
            f"below the grade 1 edge of {base[0]} x an abnormal baseline",
        ),
    )


# fmt: off
_LAB_TERMS: Final[tuple[LabTerm, ...]] = (
    LabTerm(
        "Neutrophil count decreased", "10^9/L", _CELLS,
        _table("absolute count", "not below LLN",
               _band(1, "[1.5, 1xLLN)"), _band(2, "[1.0, 1.5)"),
               _band(3, "[0.5, 1.0)"), _band(4, "(-inf, 0.5)")),
        {1: "<LLN - 1500/mm3; <LLN - 1.5 x 10e9/L", 2: "<1500 - 1000/mm3; <1.5 - 1.0 x 10e9/L",
         3: "<1000 - 500/mm3; <1.0 - 0.5 x 10e9/L", 4: "<500/mm3; <0.5 x 10e9/L"},
    ),
    LabTerm(
        "Platelet count decreased", "10^9/L", _CELLS,
        _table("absolute count", "not below LLN",
               _band(1, "[75, 1xLLN)"), _band(2, "[50, 75)"),
               _band(3, "[25, 50)"), _band(4, "(-inf, 25)")),
        {1: "<LLN - 75,000/mm3; <LLN - 75.0 x 10e9/L",
         2: "<75,000 - 50,000/mm3; <75.0 - 50.0 x 10e9/L",
         3: "<50,000 - 25,000/mm3; <50.0 - 25.0 x 10e9/L", 4: "<25,000/mm3; <25.0 x 10e9/L"},
    ),
    LabTerm(
        "Anemia", "g/L", _HB,
        _table("haemoglobin", "not below LLN",
               _band(1, "[100, 1xLLN)"), _band(2, "[80, 100)"), _band(3, "(-inf, 80)")),
        {1: "Hgb <LLN - 10.0 g/dL; <LLN - 6.2 mmol/L; <LLN - 100 g/L",
         2: "Hgb <10.0 - 8.0 g/dL; <6.2 - 4.9 mmol/L; <100 - 80 g/L",
         3: "Hgb <8.0 g/dL; <4.9 mmol/L; <80 g/L; transfusion indicated", 4: _LIFE, 5: "Death"},
        # The v5.0 mmol/L edges (6.2, 4.9) are not a power-of-ten conversion of the g/dL
        # edges, so mmol/L is refused rather than converted.
        note="grades 4 and 5 are clinical, not set by the haemoglobin value",
    ),
    _hepatic("Alanine aminotransferase increased", "U/L", _ENZYME,
             ("1", "3.0", "5.0", "20.0"), ("1.5", "3.0", "5.0", "20.0"), base_inclusive=True),
    _hepatic("Aspartate aminotransferase increased", "U/L", _ENZYME,
             ("1", "3.0", "5.0", "20.0"), ("1.5", "3.0", "5.0", "20.0"), base_inclusive=True),
    _hepatic("Alkaline phosphatase increased", "U/L", _ENZYME,
             ("1", "2.5", "5.0", "20.0"), ("2.0", "2.5", "5.0", "20.0"), base_inclusive=True),
    _hepatic("Blood bilirubin increased", "mg/dL", _BILIRUBIN,
             ("1", "1.5", "3.0", "10.0"), ("1.0", "1.5", "3.0", "10.0"), base_inclusive=False),
    LabTerm(
        "Creatinine increased", "mg/dL", _CREATININE,
        BandTable("x ULN", _times("ULN", ("1", "1.5", "3.0", "6.0")), "not above ULN"),
        {1: ">ULN - 1.5 x ULN", 2: ">1.5 - 3.0 x baseline; >1.5 - 3.0 x ULN",
         3: ">3.0 baseline; >3.0 - 6.0 x ULN", 4: ">6.0 x ULN"},
        baseline_change=_table("x baseline", "not above 1.5 x baseline",
                               _band(2, "(1.5xbaseline, 3.0xbaseline]"),
                               _band(3, "(3.0xbaseline, inf)")),
    ),
    LabTerm(
        "Hyponatremia", "mmol/L", _IONS,
        # The integer ranges 125-129 and 120-124 are read as half-open intervals so that
        # no value (e.g. 129.5) falls between two bands.
        _table("serum sodium", "not below LLN",
               _band(1, "[130, 1xLLN)"),
               _band(2, "[125, 130)", "125-129 mmol/L and asymptomatic", ("symptomatic", False)),
               _band(3, "[125, 130)", "125-129 mmol/L symptomatic", ("symptomatic", True)),
               _band(3, "[120, 125)", "120-124 mmol/L regardless of symptoms"),
               _band(4, "(-inf, 120)")),
        {1: "<LLN - 130 mmol/L", 2: "125-129 mmol/L and asymptomatic",
         3: "125-129 mmol/L symptomatic; 120-124 mmol/L regardless of symptoms",
         4: "<120 mmol/L; life-threatening consequences", 5: "Death"},
    ),
    LabTerm(
        "Hypokalemia", "mmol/L", _IONS,
        _table("serum potassium", "not below LLN",
               _band(1, "[3.0, 1xLLN)", when=("symptomatic", False)),
               _band(2, "[3.0, 1xLLN)", when=("symptomatic", True)),
               _band(3, "[2.5, 3.0)"), _band(4, "(-inf, 2.5)")),
        {1: "<LLN - 3.0 mmol/L", 2: "Symptomatic with <LLN - 3.0 mmol/L; intervention indicated",
         3: "<3.0 - 2.5 mmol/L; hospitalization indicated",
         4: "<2.5 mmol/L; life-threatening consequences", 5: "Death"},
    ),
    LabTerm(
        "Activated partial thromboplastin time prolonged", "s", _SECONDS,
        BandTable("x ULN", _times("ULN", ("1", "1.5", "2.5")), "not above ULN"),
        {1: ">ULN - 1.5 x ULN", 2: ">1.5 - 2.5 x ULN", 3: ">2.5 x ULN; bleeding"},
        note="grade 3 is also given for bleeding, whatever the value",
    ),
    LabTerm(
        "INR increased", "1", _RATIO,
        _table("absolute INR", "not above 1.2",
               _band(1, "(1.2, 1.5]"), _band(2, "(1.5, 2.5]"), _band(3, "(2.5, inf)")),
        {1: ">1.2 - 1.5; >1 - 1.5 x baseline if on anticoagulation; monitoring only indicated",
         2: ">1.5 - 2.5; >1.5 - 2.5 x baseline if on anticoagulation; dose adjustment indicated",
         3: ">2.5; >2.5 times above baseline if on anticoagulation"},
        # The x baseline rule needs the anticoagulation status, which is clinical.
        note="absolute rule only: for a patient on anticoagulation v5.0 grades x baseline",
    ),
)
# fmt: on


# --------------------------------------------------------------------------- clinical terms

# Wording from FACTS.md §3 "Clinical terms (v5 text)". Grades listed in ``unconfirmed``
# have not been checked against the NCI v5.0 document.
_ALL: Final = (1, 2, 3, 4, 5)
_PAIN: Final = {
    1: "Mild pain",
    2: "Moderate pain; limiting instrumental ADL",
    3: "Severe pain; limiting self care ADL",
}


def _clinical(
    name: str, grades: Mapping[int, str], *, unconfirmed: Iterable[int] = (), note: str = ""
) -> TermDefinition:
    marked = set(unconfirmed)
    defs = tuple(GradeDefinition(g, text, g in marked) for g, text in sorted(grades.items()))
    return TermDefinition(name, defs, SOURCE, note)


_CLINICAL_TERMS: Final[tuple[TermDefinition, ...]] = (
    _clinical("Pain", _PAIN),
    _clinical("Neuralgia", _PAIN),
    _clinical(
        "Peripheral sensory neuropathy",
        {
            1: "Asymptomatic",
            2: "Moderate symptoms; limiting instrumental ADL",
            3: "Severe symptoms; limiting self care ADL",
            4: _LIFE,
        },
        unconfirmed=_ALL,
        note="grade 5 is '-' in v5.0 (it was 'Death' in v4.03); not yet checked",
    ),
    _clinical(
        "Fever",
        {
            1: "38.0 - 39.0 degrees C",
            2: ">39.0 - 40.0 degrees C",
            3: ">40.0 degrees C for <=24 hrs",
            4: ">40.0 degrees C for >24 hrs",
            5: "Death",
        },
    ),
    _clinical(
        "Allergic reaction",
        {
            1: "Systemic intervention not indicated",
            2: "Oral intervention indicated",
            3: "Bronchospasm; hospitalization indicated for clinical sequelae; "
            "intravenous intervention indicated",
            4: _LIFE,
            5: "Death",
        },
    ),
    _clinical(
        "Anaphylaxis",
        {
            3: "Symptomatic bronchospasm, with or without urticaria; parenteral intervention "
            "indicated; allergy-related edema/angioedema; hypotension",
            4: _LIFE,
            5: "Death",
        },
        unconfirmed=_ALL,
    ),
    _clinical(
        "Infusion related reaction",
        {
            1: "Mild transient reaction; infusion interruption not indicated; intervention not indicated",
            2: "Therapy or infusion interruption indicated but responds promptly to "
            "symptomatic treatment; prophylactic medications indicated for <=24 hrs",
            3: "Prolonged; recurrence of symptoms following initial improvement; "
            "hospitalization indicated for clinical sequelae",
            4: _LIFE,
            5: "Death",
        },
    ),
    _clinical(
        "Capillary leak syndrome",
        {
            2: "Symptomatic; medical intervention indicated",
            3: "Severe symptoms; intervention indicated",
            4: _LIFE,
            5: "Death",
        },
        unconfirmed=_ALL,
        note="grade 1 is '-' per the project fact sheet; not yet checked against NCI v5.0",
    ),
    _clinical(
        "Hypotension",
        {
            1: "Asymptomatic, intervention not indicated",
            2: "Non-urgent medical intervention indicated",
            3: "Medical intervention indicated; hospitalization indicated",
            4: "Life-threatening consequences and urgent intervention indicated",
            5: "Death",
        },
        unconfirmed=_ALL,
    ),
    _clinical(
        "Diarrhea",
        {
            1: "Increase of <4 stools per day over baseline; mild increase in ostomy output",
            2: "Increase of 4 - 6 stools per day over baseline; moderate increase in ostomy "
            "output; limiting instrumental ADL",
            3: "Increase of >=7 stools per day over baseline; hospitalization indicated; "
            "severe increase in ostomy output; limiting self care ADL",
            4: "Life-threatening consequences",
            5: "Death",
        },
    ),
    _clinical(
        "Sepsis",
        {
            3: "Blood culture positive with signs or symptoms; treatment indicated",
            4: _LIFE,
            5: "Death",
        },
        unconfirmed=_ALL,
    ),
    _clinical(
        "Catheter related infection",
        {
            2: "Localized; local intervention indicated; oral intervention indicated",
            3: "IV antibiotic, antifungal, or antiviral intervention indicated; "
            "invasive intervention indicated",
            4: "Life-threatening consequences",
            5: "Death",
        },
        unconfirmed=_ALL,
    ),
    _clinical(
        "Cytokine release syndrome",
        {
            1: "Fever, with or without constitutional symptoms",
            2: "Hypotension responding to fluids; hypoxia responding to <40% O2",
            3: "Hypotension managed with one pressor; hypoxia requiring >=40% O2",
            4: _LIFE,
            5: "Death",
        },
        note="CTCAE v5.0 wording; ASTCT consensus grading is trialdesk.clinical.astct",
    ),
    _clinical(
        "Febrile neutropenia",
        {
            3: "ANC <1000/mm3 with a single temperature of >38.3 degrees C or a sustained "
            "temperature of >=38 degrees C for more than one hour",
            4: _LIFE,
            5: "Death",
        },
        # The fact sheet gives grade 3 only; grades 4-5 follow the usual v5.0 pattern.
        unconfirmed=(4, 5),
    ),
)


def _key(term: str) -> str:
    return " ".join(term.split()).casefold()


_LAB_BY_KEY: Final = {_key(t.name): t for t in _LAB_TERMS}
# Short names people type for lab terms; results always carry the CTCAE name.
_LAB_ALIASES: Final = {
    "alt increased": "Alanine aminotransferase increased",
    "ast increased": "Aspartate aminotransferase increased",
    "aptt prolonged": "Activated partial thromboplastin time prolonged",
}
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
        known = ", ".join(known_terms())
        raise SafetyError(f"unknown CTCAE v{CTCAE_VERSION} term {term!r}; known terms: {known}", where="term")
    return found


def grade_definitions(term: str) -> dict[int, str]:
    """``{grade: CTCAE v5.0 text}`` for ``term``; grades that are "–" are absent.

    >>> sorted(grade_definitions("Capillary leak syndrome"))
    [2, 3, 4, 5]
    """
    return {d.grade: d.text for d in term_definition(term).grades}


def validate_grade(term: str, grade: int) -> int:
    """Return ``grade`` if it exists for ``term`` in CTCAE v5.0, else raise SafetyError.

    >>> validate_grade("Pain", 4)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    trialdesk.errors.SafetyError: grade: grade 4 does not exist for 'Pain' ...: 1, 2, 3
    """
    definition = term_definition(term)
    if isinstance(grade, bool) or not isinstance(grade, int):
        raise SafetyError(f"must be a whole number, got {grade!r}", where="grade")
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
    """Grades still possible under one rule, the rule text when only one is, and why not."""

    possible: frozenset[int]
    text: str | None
    missing: frozenset[str] = field(default_factory=frozenset)


def _union(a: _Outcome, b: _Outcome, *, decides: str | None = None) -> _Outcome:
    possible = a.possible | b.possible
    if len(possible) == 1:
        return _Outcome(possible, a.text or b.text)
    extra = {decides} if decides and a.possible != b.possible else set()
    return _Outcome(possible, None, a.missing | b.missing | extra)


def _describe(band: Band, table: BandTable, definitions: Mapping[int, str]) -> str:
    text = band.text or definitions.get(band.grade, "")
    return f"grade {band.grade}: {text} [{table.label}: {band.interval}]"


def _evaluate(
    table: BandTable,
    value: Decimal,
    refs: Mapping[Ref, Decimal],
    flags: Mapping[str, bool | None],
    definitions: Mapping[int, str],
) -> _Outcome:
    for band in table.bands:
        if band.condition is not None and flags.get(band.condition[0]) is None:
            # Grade both ways; the fact only matters if the two answers differ.
            name = band.condition[0]
            yes = _evaluate(table, value, refs, {**flags, name: True}, definitions)
            no = _evaluate(table, value, refs, {**flags, name: False}, definitions)
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
        return _Outcome(frozenset({best.grade}), _describe(best, table, definitions))
    if not open_bands:
        return _Outcome(frozenset({0}), f"grade 0: {table.zero_text} [{table.label}]")
    missing = {r.value for b in open_bands for r in b.refs_needed() if r not in refs}
    return _Outcome(frozenset({0, *(b.grade for b in open_bands)}), None, frozenset(missing))


def _grade_term(
    spec: LabTerm, value: Decimal, refs: Mapping[Ref, Decimal], flags: Mapping[str, bool | None]
) -> _Outcome:
    normal = _evaluate(spec.table, value, refs, flags, spec.definitions)
    if spec.abnormal_baseline is not None:
        uln, baseline = refs.get(Ref.ULN), refs.get(Ref.BASELINE)
        if uln is None:
            abnormal = _evaluate(spec.abnormal_baseline, value, refs, flags, spec.definitions)
            merged = _union(normal, abnormal)
            return _Outcome(merged.possible, merged.text, merged.missing | {"uln"})
        if baseline is None:
            top = max(normal.possible)
            if top == 0:
                return normal
            # An abnormal baseline lies above ULN and each x-baseline edge is at least
            # the x-ULN edge of the same grade, so that rule can only give this grade
            # or a lower one.
            return _Outcome(frozenset(range(top + 1)), None, frozenset({"baseline"}))
        if baseline > uln:
            return _evaluate(spec.abnormal_baseline, value, refs, flags, spec.definitions)
        return normal
    if spec.baseline_change is not None:
        # Creatinine: x ULN and x baseline are both graded; the worse grade counts.
        change = _evaluate(spec.baseline_change, value, refs, flags, spec.definitions)
        possible = frozenset(max(a, b) for a in normal.possible for b in change.possible)
        if len(possible) > 1:
            return _Outcome(possible, None, normal.missing | change.missing)
        (grade,) = possible
        if grade == 0:
            return _Outcome(possible, f"{normal.text}; {change.text}")
        return _Outcome(possible, normal.text if max(normal.possible) == grade else change.text)
    return normal


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
        limit = "above 0" if positive else "0 or more"
        raise ClinicalError(f"must be {limit}, got {raw!r}", where=name)
    return number


def _normalise_unit(unit: str) -> str:
    for micro in ("µ", "μ"):
        unit = unit.replace(micro, "u")
    return unit.replace(" ", "").replace("×", "x").casefold()


def _lab_term(term: str) -> LabTerm:
    key = _key(term)
    spec = _LAB_BY_KEY.get(key) or _LAB_BY_KEY.get(_key(_LAB_ALIASES.get(key, "")))
    if spec is None:
        known = ", ".join(lab_terms())
        raise ClinicalError(
            f"no CTCAE v{CTCAE_VERSION} lab table for {term!r}; lab terms: {known}", where="term"
        )
    return spec


Number = float | int | Decimal


def grade_lab(
    term: str,
    value: Number,
    unit: str,
    *,
    lln: Number | None = None,
    uln: Number | None = None,
    baseline: Number | None = None,
    symptomatic: bool | None = None,
) -> LabGrade:
    """Propose the CTCAE v5.0 grade of a lab value.

    ``lln``, ``uln`` and ``baseline`` are in the same unit as ``value``. Units convert
    only by exact powers of ten (cells /mm3 -> 10^9/L; Hb g/dL -> g/L); terms graded as
    multiples of ULN or baseline accept any listed unit unconverted. ALT, AST, ALP and
    bilirubin use the x-baseline rule when ``baseline`` > ``uln``. A missing limit,
    baseline or symptom status that could change the grade gives an unknown grade
    listing the possible ones.

    >>> grade_lab("Hyponatremia", 127, "mmol/L", lln=135).possible_grades
    (2, 3)
    >>> grade_lab("ALT increased", 130, "U/L", uln=40, baseline=30).grade
    2
    """
    spec = _lab_term(term)
    factor = spec.units.get(_normalise_unit(unit))
    if factor is None:
        accepted = ", ".join(repr(u) for u in spec.units)
        raise ClinicalError(
            f"unit {unit!r} not accepted for {spec.name!r}; accepted: {accepted}", where="unit"
        )
    number = _decimal(value, "value") * factor
    refs: dict[Ref, Decimal] = {Ref.ABSOLUTE: Decimal(1)}
    limits = (("lln", lln, Ref.LLN), ("uln", uln, Ref.ULN), ("baseline", baseline, Ref.BASELINE))
    for name, raw, ref in limits:
        if raw is not None:
            refs[ref] = _decimal(raw, name, positive=True) * factor
    outcome = _grade_term(spec, number, refs, {"symptomatic": symptomatic})
    return _result(spec.name, number, spec.unit, outcome, spec.note, LAB_SOURCE)


def _result(term: str, value: Decimal, unit: str, outcome: _Outcome, note: str, source: str) -> LabGrade:
    possible = tuple(sorted(outcome.possible))
    if len(possible) == 1:
        rule = f"{outcome.text} ({note})" if note else outcome.text or ""
        return LabGrade(term, float(value), unit, possible[0], possible, rule, source=source)
    missing = tuple(sorted(outcome.missing))
    needed = " and ".join(missing) or "more information"
    rule = f"grade is one of {', '.join(map(str, possible))}: {needed} needed to decide"
    return LabGrade(term, float(value), unit, None, possible, rule, missing, source)


# --------------------------------------------------------------------------- fever

# CTCAE v5.0 "Fever" (unchanged in v6.0): G1 38.0-39.0, G2 >39.0-40.0, G3 >40.0 for
# <=24 h, G4 >40.0 for >24 h (degrees C). The 24 h split is the "over_24h" condition.
_FEVER: Final = _table(
    "body temperature",
    "below 38.0 degrees C, no fever",
    _band(1, "[38.0, 39.0]"),
    _band(2, "(39.0, 40.0]"),
    _band(3, "(40.0, inf)", when=("over_24h", False)),
    _band(4, "(40.0, inf)", when=("over_24h", True)),
)
_FEVER_HOURS: Final = Decimal(24)
# Outside this range a "body temperature" is almost surely Fahrenheit or a typing error.
_BODY_TEMPERATURE_C: Final = (Decimal(25), Decimal(45))


def grade_fever(temperature_c: Number, hours_above_40: Number | None = None) -> LabGrade:
    """Grade CTCAE v5.0 "Fever" from a temperature in degrees Celsius.

    Above 40.0 °C the grade depends on how long it lasted; without ``hours_above_40``
    the result is unknown between grades 3 and 4.

    >>> grade_fever(39.5).grade
    2
    >>> grade_fever(40.2).possible_grades
    (3, 4)
    """
    temperature = _decimal(temperature_c, "temperature_c")
    low, high = _BODY_TEMPERATURE_C
    if not low <= temperature <= high:
        raise ClinicalError(
            f"{temperature_c} is not a body temperature in degrees Celsius", where="temperature_c"
        )
    over_24h: bool | None = None
    if hours_above_40 is not None:
        over_24h = _decimal(hours_above_40, "hours_above_40") > _FEVER_HOURS
    definitions = grade_definitions("Fever")
    outcome = _evaluate(_FEVER, temperature, {Ref.ABSOLUTE: Decimal(1)}, {"over_24h": over_24h}, definitions)
    if len(outcome.possible) > 1:
        outcome = _Outcome(outcome.possible, None, frozenset({"hours_above_40"}))
    return _result("Fever", temperature, "Cel", outcome, "", SOURCE)
