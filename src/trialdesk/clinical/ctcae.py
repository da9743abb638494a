"""CTCAE v5.0 grading: lab-defined terms from band tables, clinical terms by definition.

Source: NCI Common Terminology Criteria for Adverse Events (CTCAE) v5.0, published
27 Nov 2017 (https://ctep.cancer.gov/protocoldevelopment/electronic_applications/ctc.htm).
The lab bands are read from the v5.0 grade text (``ctcae_lab``, where the conventions
for edges, units and clinical criteria are written down); the band engine is
``ctcae_bands``; MedDRA codes and SOCs of every term are in ``ctcae_codes``.

Only v5.0 lives here. CTCAE v6.0 (NCI, 22 Jul 2025) moved several thresholds (neutrophils
one grade up, "Platelet count decreased" replaced by "Thrombocytopenia", ALT/AST with an
abnormal baseline, sepsis grade 3), so a record graded under another version must never be
checked against these tables.

A lab grade is *proposed* from the number. Where the v5.0 text also needs a clinical fact
(symptoms, a baseline, a reference limit, anticoagulation) that is not given, the result
is unknown and lists the grades still possible; nothing is guessed. Non-numeric "or"
criteria that could raise the grade ("hospitalization indicated") are listed in
``raised_if``.

>>> grade_lab("Neutrophil count decreased", 800, "/mm3", lln=1800).grade
3
>>> validate_grade("Pain", 2)
2
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final

from trialdesk.clinical import ctcae_codes
from trialdesk.clinical.ctcae_bands import Band, BandTable, Bound, Outcome, Ref, band, evaluate, table
from trialdesk.clinical.ctcae_lab import (
    CLINICIAN_GRADED,
    LAB_SOURCE,
    LAB_TERMS,
    LabTerm,
    grade_term,
    raise_by_facts,
    raised_if,
)
from trialdesk.errors import ClinicalError, SafetyError, UnitError

__all__ = [
    "CLINICIAN_GRADED",
    "CTCAE_VERSION",
    "LAB_SOURCE",
    "SOURCE",
    "Band",
    "BandTable",
    "Bound",
    "GradeDefinition",
    "LabGrade",
    "LabTerm",
    "Ref",
    "TermDefinition",
    "all_terms",
    "canonical_term",
    "grade_definitions",
    "grade_fever",
    "grade_lab",
    "known_terms",
    "lab_terms",
    "term_definition",
    "validate_grade",
]

CTCAE_VERSION: Final = "5.0"
SOURCE: Final = "NCI CTCAE v5.0 (27 Nov 2017)"
_LIFE: Final = "Life-threatening consequences; urgent intervention indicated"


# --------------------------------------------------------------------------- result types


@dataclass(frozen=True)
class LabGrade:
    """A CTCAE v5.0 grade proposed from one measurement.

    ``grade`` is None when the inputs leave more than one grade possible; then
    ``possible_grades`` lists them and ``missing`` names the inputs that would decide.
    ``value`` and ``unit`` are in the term's canonical unit. ``raised_if`` lists the
    clinical criteria of the text that would give a higher grade whatever the value
    ("grade 3 if hospitalization indicated"): for the clinician to confirm, never assumed.
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
    raised_if: tuple[str, ...] = ()

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


_LAB_BY_KEY: Final[dict[str, tuple[LabTerm, ...]]] = {}
for _spec in LAB_TERMS:
    _LAB_BY_KEY[_key(_spec.key_name)] = (*_LAB_BY_KEY.get(_key(_spec.key_name), ()), _spec)
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
        for t in LAB_TERMS
    },
    **{_key(t.term): t for t in _CLINICAL_TERMS},
}


# --------------------------------------------------------------------------- term look-up


@functools.cache
def lab_terms() -> tuple[str, ...]:
    """The lab-defined terms :func:`grade_lab` can grade.

    >>> "Anemia" in lab_terms()
    True
    """
    return tuple(dict.fromkeys(t.key_name for t in LAB_TERMS))


def known_terms() -> tuple[str, ...]:
    """Every term with CTCAE v5.0 grade definitions here (lab and clinical)."""
    return tuple(d.term for d in _DEFINITIONS_BY_KEY.values())


def all_terms() -> tuple[str, ...]:
    """All 837 CTCAE v5.0 terms (NCI sheet order): the graded terms above, and every
    other term with the grades NCI's sheet gives it (``ctcae_codes.grade_texts``)."""
    return tuple(c.term for c in ctcae_codes.all_terms())


def _sheet_definition(term: str) -> TermDefinition | None:
    """A term of the NCI sheet without its own table here: its grades as the sheet writes
    them (the grades it marks "-" do not exist)."""
    codes = ctcae_codes.term_codes(term)
    if codes is None:
        return None
    grades = tuple(GradeDefinition(g, text) for g, text in
                   sorted(ctcae_codes.grade_texts(codes.term).items()))
    return TermDefinition(codes.term, grades, SOURCE)


def canonical_term(term: str) -> str | None:
    """The CTCAE spelling of ``term`` (case and spacing ignored), or None if not held here.

    >>> canonical_term("capillary  LEAK syndrome")
    'Capillary leak syndrome'
    """
    found = _DEFINITIONS_BY_KEY.get(_key(term)) or _sheet_definition(term)
    return found.term if found else None


def term_definition(term: str) -> TermDefinition:
    """All grade definitions of ``term``, with their ``unconfirmed`` marks.

    >>> term_definition("Sepsis").allowed_grades
    (3, 4, 5)
    """
    found = _DEFINITIONS_BY_KEY.get(_key(term)) or _sheet_definition(term)
    if found is None:
        close = ", ".join(c.term for c in ctcae_codes.search_terms(term, 5))
        raise SafetyError(f"unknown CTCAE v{CTCAE_VERSION} term {term!r}"
                          + (f"; terms like it: {close}" if close else ""), where="term")
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


def _lab_variants(term: str) -> tuple[LabTerm, ...]:
    key = _key(term)
    found = _LAB_BY_KEY.get(key) or _LAB_BY_KEY.get(_key(_LAB_ALIASES.get(key, "")))
    if found is None:
        known = ", ".join(lab_terms())
        raise ClinicalError(
            f"no CTCAE v{CTCAE_VERSION} lab table for {term!r}; lab terms: {known}", where="term"
        )
    return found


def _pint_factor(unit: str, target: str) -> Decimal | None:
    """The factor from ``unit`` to ``target`` when pint converts one into the other."""
    from trialdesk.clinical.units import convert

    try:
        return Decimal(str(convert(1.0, unit, target)))
    except UnitError:
        return None


def _lab_spec(term: str, unit: str) -> tuple[LabTerm, Decimal]:
    """The table for ``term`` in the unit system of ``unit``, and the factor into its unit.

    Listed spellings convert by exact factors; any other unit that pint converts into a
    table's unit (``10^3/mL``, ``x10E3/uL``, ``mg/L``) is accepted for the terms graded on
    an absolute scale. A unit that converts into none is refused, listing the accepted ones.
    """
    variants = _lab_variants(term)
    spelled = _normalise_unit(unit)
    for spec in variants:
        if spelled in spec.units:
            return spec, spec.units[spelled]
    for spec in variants:
        factor = _pint_factor(unit, spec.unit) if spec.convert and unit.strip() else None
        if factor is not None and factor > 0:
            return spec, factor
    accepted = ", ".join(dict.fromkeys(repr(u) for spec in variants for u in spec.units))
    also = " or any unit convertible to one of them" if any(s.convert for s in variants) else ""
    raise ClinicalError(
        f"unit {unit!r} not accepted for {variants[0].name!r}; accepted: {accepted}{also}", where="unit"
    )


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
    anticoagulation: bool | None = None,
    physiologic_consequences: bool | None = None,
    bleeding: bool | None = None,
) -> LabGrade:
    """Propose the CTCAE v5.0 grade of a lab value.

    ``lln``, ``uln`` and ``baseline`` are in the same unit as ``value``. Terms graded on
    an absolute scale accept any unit that converts into theirs (cells /mm3, 10^3/uL or
    K/uL -> 10^9/L; Hb g/dL -> g/L); where CTCAE gives separate mg/dL and mmol/L edges,
    the value is graded by the edges of its own unit system. Terms graded as multiples of
    ULN or baseline accept any listed unit unconverted. ALT, AST, ALP, GGT and bilirubin
    use the x-baseline rule when ``baseline`` > ``uln`` (fibrinogen when ``baseline`` <
    ``lln``); INR is graded x baseline when on ``anticoagulation``. A missing limit,
    baseline or clinical fact that could change the grade gives an unknown grade listing
    the possible ones.

    >>> grade_lab("Hyponatremia", 127, "mmol/L", lln=135).possible_grades
    (2, 3)
    >>> grade_lab("ALT increased", 130, "U/L", uln=40, baseline=30).grade
    2
    >>> grade_lab("INR increased", 2.0, "", baseline=1.5).possible_grades
    (1, 2)
    """
    spec, factor = _lab_spec(term, unit)
    number = _decimal(value, "value") * factor
    refs: dict[Ref, Decimal] = {Ref.ABSOLUTE: Decimal(1)}
    limits = (("lln", lln, Ref.LLN), ("uln", uln, Ref.ULN), ("baseline", baseline, Ref.BASELINE))
    for name, raw, ref in limits:
        if raw is not None:
            refs[ref] = _decimal(raw, name, positive=True) * factor
    flags = {
        "symptomatic": symptomatic,
        "anticoagulation": anticoagulation,
        "physiologic_consequences": physiologic_consequences,
        "bleeding": bleeding,
    }
    outcome = raise_by_facts(spec, grade_term(spec, number, refs, flags), flags)
    note = spec.note
    if spec.alternative is not None and flags.get(spec.alternative[0]) is False and baseline is not None:
        note = ", ".join(filter(None, [note, f"baseline not used: no {spec.alternative[0]}"]))
    higher = raised_if(spec, outcome.possible, flags) if outcome.possible != {0} else ()
    return _result(spec.name, number, spec.unit, outcome, note, spec.source, higher)


def _result(
    term: str,
    value: Decimal,
    unit: str,
    outcome: Outcome,
    note: str,
    source: str,
    higher: tuple[str, ...] = (),
) -> LabGrade:
    possible = tuple(sorted(outcome.possible))
    if len(possible) == 1:
        rule = f"{outcome.text} ({note})" if note else outcome.text or ""
        return LabGrade(
            term, float(value), unit, possible[0], possible, rule, source=source, raised_if=higher
        )
    missing = tuple(sorted(outcome.missing))
    needed = " and ".join(missing) or "more information"
    rule = f"grade is one of {', '.join(map(str, possible))}: {needed} needed to decide"
    return LabGrade(term, float(value), unit, None, possible, rule, missing, source, raised_if=higher)


# --------------------------------------------------------------------------- fever

# CTCAE v5.0 "Fever" (unchanged in v6.0): G1 38.0-39.0, G2 >39.0-40.0, G3 >40.0 for
# <=24 h, G4 >40.0 for >24 h (degrees C). The 24 h split is the "over_24h" condition.
_FEVER: Final = table(
    "body temperature",
    "below 38.0 degrees C, no fever",
    band(1, "[38.0, 39.0]"),
    band(2, "(39.0, 40.0]"),
    band(3, "(40.0, inf)", when=("over_24h", False)),
    band(4, "(40.0, inf)", when=("over_24h", True)),
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
    outcome = evaluate(_FEVER, temperature, {Ref.ABSOLUTE: Decimal(1)}, {"over_24h": over_24h}, definitions)
    if len(outcome.possible) > 1:
        outcome = Outcome(outcome.possible, None, frozenset({"hours_above_40"}))
    return _result("Fever", temperature, "Cel", outcome, "", SOURCE)
