"""CTCAE v5.0 lab terms as band tables, and the terms left to the clinician.

Source: NCI CTCAE v5.0 (27 Nov 2017), the "CTCAE v5.0 Clean Copy" sheet of
``CTCAE_v5.0_2017-11-27.xlsx`` as converted to ``domain/ctcae-v5/ctcae_v5.csv``. Every
band below is read from the grade text beside it (``definitions`` holds that text
verbatim; a test compares it with the csv). Conventions used throughout:

- "<LLN - 1.5" is the half-open ``[1.5, LLN)``; ">ULN - 5.5" is ``(ULN, 5.5]``, so a value
  on an edge belongs to exactly one grade, as the "<" and ">" of the text say.
- Integer ranges ("125-129", "59 - 30") are read half-open (``[125, 130)``) so that no
  value falls between two grades.
- Where CTCAE gives the edges in two unit systems whose numbers are not an exact
  conversion of each other (mg/dL and mmol/L of calcium, glucose, magnesium, lipids;
  Hgb g/dL and mmol/L), each system has its own table with the text's numbers; a value is
  graded by the table of its own unit, never converted across.
- A semicolon in the text means "or" (CTCAE v5.0 introduction). A non-numeric "or"
  criterion ("hospitalization indicated", "life-threatening consequences") can only raise
  the grade above what the value gives: it is listed in ``clinical`` and shown with the
  result, never assumed. Where the text ties a value range to a clinical fact ("and
  asymptomatic", "with signs or symptoms", "if on anticoagulation"), that fact decides
  between grades; when it is not given the grade is unknown, listing the possible ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise
from typing import Final

from trialdesk.clinical.ctcae_bands import (
    Band,
    BandTable,
    Outcome,
    Ref,
    band,
    evaluate,
    table,
    union,
)

LAB_SOURCE: Final = "NCI CTCAE v5.0 (27 Nov 2017), grade text of CTCAE_v5.0_2017-11-27.xlsx"


@dataclass(frozen=True)
class Alternative:
    """A non-numeric criterion that gives ``grade`` whatever the value ("; hospitalization
    indicated"). ``flag`` names the grading input that answers it, when there is one."""

    grade: int
    text: str
    flag: str | None = None


@dataclass(frozen=True)
class LabTerm:
    """A lab-defined CTCAE v5.0 term, graded in one unit system.

    ``units`` maps each accepted unit (normalised spelling) to the exact factor that brings
    a value into ``unit``; with ``convert`` any other unit that pint converts into ``unit``
    is accepted too. ``abnormal_baseline`` replaces ``table`` when the baseline lies
    beyond ``abnormal_side`` (above ULN, or below LLN); ``baseline_change`` is graded
    alongside ``table`` and the worse grade counts; ``alternative`` replaces ``table`` when
    the named fact is true (INR on anticoagulation). ``lookup`` is the name to ask for
    when one CTCAE term is measured two ways (ionized calcium).
    """

    name: str
    unit: str
    units: Mapping[str, Decimal]
    table: BandTable
    definitions: Mapping[int, str]
    abnormal_baseline: BandTable | None = None
    baseline_change: BandTable | None = None
    alternative: tuple[str, BandTable] | None = None
    clinical: tuple[Alternative, ...] = ()
    note: str = ""
    source: str = LAB_SOURCE
    convert: bool = False
    lookup: str = ""
    abnormal_side: Ref = Ref.ULN

    @property
    def key_name(self) -> str:
        return self.lookup or self.name


def _units(factor: str, *names: str) -> dict[str, Decimal]:
    return dict.fromkeys(names, Decimal(factor))


# Cell counts: 1/mm3 = 1/uL = 10^-3 x 10^9/L (exact). Other count units convert by pint.
CELLS: Final = {
    **_units("1", "10^9/l", "10*9/l", "x10^9/l", "10e9/l", "10^3/ul", "10*3/ul", "k/ul"),
    **_units("0.001", "/mm3", "/ul", "cells/mm3", "cells/ul"),
}
_HB: Final = {**_units("1", "g/l"), **_units("10", "g/dl")}
_MMOL: Final = _units("1", "mmol/l")
# Na+ and K+ are monovalent, so 1 mEq/L = 1 mmol/L exactly.
_IONS: Final = _units("1", "mmol/l", "meq/l")
_MGDL: Final = _units("1", "mg/dl")
# Terms graded only as multiples of ULN, LLN or baseline: the ratio has no unit, so value
# and limits only have to share one of these units; nothing is converted.
_ENZYME: Final = _units("1", "u/l", "iu/l", "ukat/l")
_BILIRUBIN: Final = _units("1", "mg/dl", "umol/l")
_CREATININE: Final = _units("1", "mg/dl", "umol/l", "mmol/l")
_URATE: Final = _units("1", "mg/dl", "umol/l", "mmol/l")
_PROTEIN: Final = _units("1", "g/l", "mg/dl", "mg/l")
_SECONDS: Final = _units("1", "s", "sec", "seconds")
_RATIO: Final = _units("1", "", "1", "ratio", "inr")
_PH: Final = _units("1", "", "1", "ph")
_PERCENT: Final = _units("1", "%", "percent")
_EGFR: Final = _units("1", "ml/min/1.73m2", "ml/min/1.73m^2", "ml/min/1.73m²")

_LIFE: Final = "Life-threatening consequences; urgent intervention indicated"
_DEATH: Final = Alternative(5, "Death")


def _alts(*pairs: tuple[int, str]) -> tuple[Alternative, ...]:
    flags = {"symptomatic": "symptomatic", "bleeding": "bleeding"}
    return (*(Alternative(g, text, flags.get(text)) for g, text in pairs), _DEATH)


_ELECTROLYTE: Final = _alts(
    (2, "intervention initiated"), (3, "hospitalization indicated"), (4, "life-threatening consequences")
)
_CALCIUM: Final = _alts(
    (2, "symptomatic"), (3, "hospitalization indicated"), (4, "life-threatening consequences")
)
_LIFE_ONLY: Final = _alts((4, "life-threatening consequences"))


def _times(ref: str, edges: Iterable[str], *, first_inclusive: bool = False) -> tuple[Band, ...]:
    """Consecutive bands ``(e0, e1], (e1, e2], ..., (en, inf)`` in multiples of ``ref``."""
    cuts = [*edges]
    bands = []
    for grade, (low, high) in enumerate(zip(cuts, [*cuts[1:], "inf"], strict=True), start=1):
        left = "[" if grade == 1 and first_inclusive else "("
        right = ")" if high == "inf" else "]"
        upper = "inf" if high == "inf" else f"{high}x{ref}"
        bands.append(band(grade, f"{left}{low}x{ref}, {upper}{right}"))
    return tuple(bands)


def _rising(label: str, ref_edge: str, *edges: tuple[int, str]) -> BandTable:
    """From ``ref_edge`` upwards: each ``(grade, upper)`` is ``(previous, upper]``; "inf" ends."""
    bands = []
    low = ref_edge
    for grade, high in edges:
        bands.append(band(grade, f"({low}, inf)" if high == "inf" else f"({low}, {high}]"))
        low = high
    return table(label, f"not above {ref_edge.removeprefix('1x')}", *bands)


def _falling(label: str, ref_edge: str, *edges: str) -> BandTable:
    """``[e1, ref_edge)`` grade 1, ``[e2, e1)`` grade 2, ..., ``(-inf, en)`` last grade."""
    highs = [ref_edge, *edges]
    bands = [band(g, f"[{lo}, {hi})") for g, (hi, lo) in enumerate(pairwise(highs), start=1)]
    bands.append(band(len(highs), f"(-inf, {edges[-1]})"))
    return table(label, f"not below {ref_edge.removeprefix('1x')}", *bands)


def _hepatic(
    name: str,
    unit: str,
    units: Mapping[str, Decimal],
    uln: tuple[str, ...],
    base: tuple[str, ...],
    *,
    base_inclusive: bool,
) -> LabTerm:
    """ALT, AST, ALP, GGT or bilirubin: x ULN if the baseline was normal, x baseline if not.

    ``uln`` and ``base`` are the lower edges of grades 1-4; ``base_inclusive`` says whether
    the x-baseline grade 1 edge is inclusive ("1.5 - 3.0 x baseline") or not
    ("> 1.0 - 1.5 x baseline"). The wording is rebuilt from the same edges, so text and
    bands cannot drift apart (and a test compares the text with the CTCAE csv).
    """

    def wording(edges: tuple[str, ...], first: str) -> list[str]:
        ranges = [f">{lo} - {hi}" for lo, hi in pairwise(edges[1:])]
        return [f"{first} - {edges[1]}", *ranges, f">{edges[-1]}"]

    first_base = base[0] if base_inclusive else f"> {base[0]}"
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


def _pancreatic(name: str) -> LabTerm:
    """Lipase and serum amylase: above 2 x ULN the symptoms decide between two grades."""
    return LabTerm(
        name, "U/L", _ENZYME,
        table("x ULN", "not above ULN",
              band(1, "(1xULN, 1.5xULN]"),
              band(2, "(1.5xULN, 2.0xULN]", ">1.5 - 2.0 x ULN"),
              band(2, "(2.0xULN, 5.0xULN]", ">2.0 - 5.0 x ULN and asymptomatic", ("symptomatic", False)),
              band(3, "(2.0xULN, 5.0xULN]", ">2.0 - 5.0 x ULN with signs or symptoms", ("symptomatic", True)),
              band(3, "(5.0xULN, inf)", ">5.0 x ULN and asymptomatic", ("symptomatic", False)),
              band(4, "(5.0xULN, inf)", ">5.0 x ULN and with signs or symptoms", ("symptomatic", True))),
        {1: ">ULN - 1.5 x ULN", 2: ">1.5 - 2.0 x ULN; >2.0 - 5.0 x ULN and asymptomatic",
         3: ">2.0 - 5.0 x ULN with signs or symptoms; >5.0 x ULN and asymptomatic",
         4: ">5.0 x ULN and with signs or symptoms"},
    )  # fmt: skip


_WBC_DEFS: Final = {
    1: "<LLN - 3000/mm3; <LLN - 3.0 x 10e9 /L", 2: "<3000 - 2000/mm3; <3.0 - 2.0 x 10e9 /L",
    3: "<2000 - 1000/mm3; <2.0 - 1.0 x 10e9 /L", 4: "<1000/mm3; <1.0 x 10e9 /L",
}  # fmt: skip
_HYPERCALCEMIA: Final = {
    1: "Corrected serum calcium of >ULN - 11.5 mg/dL; >ULN - 2.9 mmol/L; Ionized calcium >ULN - 1.5 mmol/L",
    2: "Corrected serum calcium of >11.5 - 12.5 mg/dL; >2.9 - 3.1 mmol/L; Ionized calcium >1.5 - 1.6 "
       "mmol/L; symptomatic",
    3: "Corrected serum calcium of >12.5 - 13.5 mg/dL; >3.1 - 3.4 mmol/L; Ionized calcium >1.6 - 1.8 "
       "mmol/L; hospitalization indicated",
    4: "Corrected serum calcium of >13.5 mg/dL; >3.4 mmol/L; Ionized calcium >1.8 mmol/L; life-threatening "
       "consequences",
    5: "Death",
}  # fmt: skip
_HYPOCALCEMIA: Final = {
    1: "Corrected serum calcium of <LLN - 8.0 mg/dL; <LLN - 2.0 mmol/L; Ionized calcium <LLN - 1.0 mmol/L",
    2: "Corrected serum calcium of <8.0 - 7.0 mg/dL; <2.0 - 1.75 mmol/L; Ionized calcium <1.0 - 0.9 "
       "mmol/L; symptomatic",
    3: "Corrected serum calcium of <7.0 - 6.0 mg/dL; <1.75 - 1.5 mmol/L; Ionized calcium <0.9 - 0.8 "
       "mmol/L; hospitalization indicated",
    4: "Corrected serum calcium of <6.0 mg/dL; <1.5 mmol/L; Ionized calcium <0.8 mmol/L; life-threatening "
       "consequences",
    5: "Death",
}  # fmt: skip
_HYPERMAGNESEMIA: Final = {
    1: ">ULN - 3.0 mg/dL; >ULN - 1.23 mmol/L", 3: ">3.0 - 8.0 mg/dL; >1.23 - 3.30 mmol/L",
    4: ">8.0 mg/dL; >3.30 mmol/L; life-threatening consequences", 5: "Death",
}  # fmt: skip
_HYPOMAGNESEMIA: Final = {
    1: "<LLN - 1.2 mg/dL; <LLN - 0.5 mmol/L", 2: "<1.2 - 0.9 mg/dL; <0.5 - 0.4 mmol/L",
    3: "<0.9 - 0.7 mg/dL; <0.4 - 0.3 mmol/L", 4: "<0.7 mg/dL; <0.3 mmol/L; life-threatening consequences",
    5: "Death",
}  # fmt: skip
_HYPOGLYCEMIA: Final = {
    1: "<LLN - 55 mg/dL; <LLN - 3.0 mmol/L", 2: "<55 - 40 mg/dL; <3.0 - 2.2 mmol/L",
    3: "<40 - 30 mg/dL; <2.2 - 1.7 mmol/L",
    4: "<30 mg/dL; <1.7 mmol/L; life-threatening consequences; seizures",
    5: "Death",
}  # fmt: skip
_CHOLESTEROL: Final = {
    1: ">ULN - 300 mg/dL; >ULN - 7.75 mmol/L", 2: ">300 - 400 mg/dL; >7.75 - 10.34 mmol/L",
    3: ">400 - 500 mg/dL; >10.34 - 12.92 mmol/L", 4: ">500 mg/dL; >12.92 mmol/L",
}  # fmt: skip
_TRIGLYCERIDES: Final = {
    1: "150 mg/dL - 300 mg/dL; 1.71 mmol/L - 3.42 mmol/L",
    2: ">300 mg/dL - 500 mg/dL; >3.42 mmol/L - 5.7 mmol/L",
    3: ">500 mg/dL - 1000 mg/dL; >5.7 mmol/L - 11.4 mmol/L",
    4: ">1000 mg/dL; >11.4 mmol/L; life-threatening consequences", 5: "Death",
}  # fmt: skip
_ANEMIA: Final = {
    1: "Hemoglobin (Hgb) <LLN - 10.0 g/dL; <LLN - 6.2 mmol/L; <LLN - 100 g/L",
    2: "Hgb <10.0 - 8.0 g/dL; <6.2 - 4.9 mmol/L; <100 - 80g/L",
    3: "Hgb <8.0 g/dL; <4.9 mmol/L; <80 g/L; transfusion indicated", 4: _LIFE, 5: "Death",
}  # fmt: skip
_PROTEINURIA: Final = {
    1: "1+ proteinuria; urinary protein ≥ULN - <1.0 g/24 hrs",
    2: "Adult: 2+ and 3+ proteinuria; urinary protein 1.0 - <3.5 g/24 hrs; \n\n"
       "Pediatric: Urine P/C (Protein/Creatinine) ratio 0.5 - 1.9",
    3: "Adult: Urinary protein >=3.5 g/24 hrs; 4+ proteinuria;\n\n"
       "Pediatric: Urine P/C (Protein/Creatinine) ratio >1.9",
}  # fmt: skip
_ANEMIA_ALTS: Final = _alts((3, "transfusion indicated"), (4, _LIFE))


def _triglycerides(unit: str, units: Mapping[str, Decimal], edges: tuple[str, str, str, str]) -> LabTerm:
    low, e2, e3, e4 = edges
    return LabTerm(
        "Hypertriglyceridemia", unit, units,
        table(f"fasting triglycerides, {unit}", f"below {low} {unit}",
              band(1, f"[{low}, {e2}]"), band(2, f"({e2}, {e3}]"),
              band(3, f"({e3}, {e4}]"), band(4, f"({e4}, inf)")),
        _TRIGLYCERIDES, clinical=_LIFE_ONLY, convert=True,
    )  # fmt: skip


def _pair(
    name: str,
    defs: Mapping[int, str],
    label: str,
    build: Callable[..., BandTable],
    mgdl: tuple[object, ...],
    mmol: tuple[object, ...],
    clinical: tuple[Alternative, ...],
) -> tuple[LabTerm, LabTerm]:
    """One term graded from its mg/dL edges and, separately, from its mmol/L edges.

    ``build`` is :func:`_rising` or :func:`_falling`; ``mgdl`` and ``mmol`` its arguments.
    """
    mass = build(f"{label}, mg/dL", *mgdl)
    molar = build(f"{label}, mmol/L", *mmol)
    return (
        LabTerm(name, "mg/dL", _MGDL, mass, defs, clinical=clinical, convert=True),
        LabTerm(name, "mmol/L", _MMOL, molar, defs, clinical=clinical, convert=True),
    )


# fmt: off
LAB_TERMS: Final[tuple[LabTerm, ...]] = (
    # ---- blood counts (canonical 10^9/L)
    LabTerm(
        "Neutrophil count decreased", "10^9/L", CELLS,
        _falling("absolute neutrophil count", "1xLLN", "1.5", "1.0", "0.5"),
        {1: "<LLN - 1500/mm3; <LLN - 1.5 x 10e9 /L", 2: "<1500 - 1000/mm3; <1.5 - 1.0 x 10e9 /L",
         3: "<1000 - 500/mm3; <1.0 - 0.5 x 10e9 /L", 4: "<500/mm3; <0.5 x 10e9 /L"},
        convert=True,
    ),
    LabTerm(
        "Platelet count decreased", "10^9/L", CELLS,
        _falling("platelet count", "1xLLN", "75", "50", "25"),
        {1: "<LLN - 75,000/mm3; <LLN - 75.0 x 10e9 /L", 2: "<75,000 - 50,000/mm3; <75.0 - 50.0 x 10e9 /L",
         3: "<50,000 - 25,000/mm3; <50.0 - 25.0 x 10e9 /L", 4: "<25,000/mm3; <25.0 x 10e9 /L"},
        convert=True,
    ),
    LabTerm("White blood cell decreased", "10^9/L", CELLS,
            _falling("white blood cell count", "1xLLN", "3.0", "2.0", "1.0"), _WBC_DEFS, convert=True),
    LabTerm(
        "Lymphocyte count decreased", "10^9/L", CELLS,
        _falling("lymphocyte count", "1xLLN", "0.8", "0.5", "0.2"),
        {1: "<LLN - 800/mm3; <LLN - 0.8 x 10e9/L", 2: "<800 - 500/mm3; <0.8 - 0.5 x 10e9 /L",
         3: "<500 - 200/mm3; <0.5 - 0.2 x 10e9 /L", 4: "<200/mm3; <0.2 x 10e9 /L"},
        convert=True,
    ),
    LabTerm(
        # The grade 3 text's "<0.2 x 0.05 - 10e9 /L" is a typing slip in v5.0; the /mm3 text
        # "<200 - 50/mm3" gives the edges.
        "CD4 lymphocytes decreased", "10^9/L", CELLS,
        _falling("CD4 lymphocyte count", "1xLLN", "0.5", "0.2", "0.05"),
        {1: "<LLN - 500/mm3; <LLN - 0.5 x 10e9 /L", 2: "<500 - 200/mm3; <0.5 - 0.2 x 10e9 /L",
         3: "<200 - 50/mm3; <0.2 x 0.05 - 10e9 /L", 4: "<50/mm3; <0.05 x 10e9 /L"},
        convert=True,
    ),
    LabTerm(
        "Lymphocyte count increased", "10^9/L", CELLS,
        table("lymphocyte count", "not above 4000/mm3",
              band(2, "(4.0, 20.0]"), band(3, "(20.0, inf)")),
        {2: ">4000/mm3 - 20,000/mm3", 3: ">20,000/mm3"}, convert=True,
    ),
    LabTerm(
        "Leukocytosis", "10^9/L", CELLS,
        table("white blood cell count", "not above 100,000/mm3", band(3, "(100, inf)")),
        {3: ">100,000/mm3", 4: "Clinical manifestations of leucostasis; urgent intervention indicated",
         5: "Death"},
        clinical=_alts((4, "Clinical manifestations of leucostasis; urgent intervention indicated")),
        convert=True,
    ),
    LabTerm(
        "Eosinophilia", "10^9/L", CELLS,
        table("eosinophil count", "not above both ULN and baseline",
              band(1, "(1xULN, inf)", above="1xbaseline")),
        {1: ">ULN and >Baseline", 3: "Steroids initiated"},
        clinical=(Alternative(3, "Steroids initiated"),), convert=True,
    ),
    # ---- haemoglobin (g/L; 1 g/dL = 10 g/L exactly)
    LabTerm(
        "Anemia", "g/L", _HB, _falling("haemoglobin, g/L", "1xLLN", "100", "80"), _ANEMIA,
        clinical=_ANEMIA_ALTS, convert=True,
    ),
    # The text's mmol/L edges (6.2, 4.9) are its own, not a conversion of the g/dL ones.
    LabTerm("Anemia", "mmol/L", _MMOL, _falling("haemoglobin, mmol/L", "1xLLN", "6.2", "4.9"), _ANEMIA,
            clinical=_ANEMIA_ALTS, convert=True),
    LabTerm(
        # "Increase in >0 - 2 g/dL": the definition measures the increase "above normal",
        # i.e. above ULN (as admiral ncictcaev5.json reads it).
        "Hemoglobin increased", "g/L", _HB,
        table("haemoglobin above ULN", "not above ULN",
              band(1, "(1xULN, 1xULN+20]"), band(2, "(1xULN+20, 1xULN+40]"), band(3, "(1xULN+40, inf)")),
        {1: "Increase in >0 - 2 g/dL", 2: "Increase in >2 - 4 g/dL", 3: "Increase in >4 g/dL"},
        convert=True,
    ),
    # ---- liver, pancreas, muscle enzymes and other x ULN terms
    _hepatic("Alanine aminotransferase increased", "U/L", _ENZYME,
             ("1", "3.0", "5.0", "20.0"), ("1.5", "3.0", "5.0", "20.0"), base_inclusive=True),
    _hepatic("Aspartate aminotransferase increased", "U/L", _ENZYME,
             ("1", "3.0", "5.0", "20.0"), ("1.5", "3.0", "5.0", "20.0"), base_inclusive=True),
    _hepatic("Alkaline phosphatase increased", "U/L", _ENZYME,
             ("1", "2.5", "5.0", "20.0"), ("2.0", "2.5", "5.0", "20.0"), base_inclusive=True),
    _hepatic("GGT increased", "U/L", _ENZYME,
             ("1", "2.5", "5.0", "20.0"), ("2.0", "2.5", "5.0", "20.0"), base_inclusive=True),
    _hepatic("Blood bilirubin increased", "mg/dL", _BILIRUBIN,
             ("1", "1.5", "3.0", "10.0"), ("1.0", "1.5", "3.0", "10.0"), base_inclusive=False),
    _pancreatic("Lipase increased"),
    _pancreatic("Serum amylase increased"),
    LabTerm(
        "CPK increased", "U/L", _ENZYME,
        BandTable("x ULN", _times("ULN", ("1", "2.5", "5", "10")), "not above ULN"),
        {1: ">ULN - 2.5 x ULN", 2: ">2.5 x ULN - 5 x ULN", 3: ">5 x ULN - 10 x ULN", 4: ">10 x ULN"},
    ),
    LabTerm("Blood lactate dehydrogenase increased", "U/L", _ENZYME,
            table("x ULN", "not above ULN", band(1, "(1xULN, inf)")), {1: ">ULN"}),
    LabTerm("Haptoglobin decreased", "g/L", _PROTEIN,
            table("x LLN", "not below LLN", band(1, "(-inf, 1xLLN)")), {1: "<LLN"}),
    LabTerm(
        "Methemoglobinemia", "%", _PERCENT,
        table("x ULN", "not above ULN", band(2, "(1xULN, inf)")),
        {2: ">ULN", 3: "Requiring urgent intervention", 4: "Life-threatening consequences", 5: "Death"},
        clinical=_alts((3, "Requiring urgent intervention"), (4, "Life-threatening consequences")),
    ),
    LabTerm(
        "Hyperuricemia", "mg/dL", _URATE,
        table("x ULN", "not above ULN",
              band(1, "(1xULN, inf)", ">ULN without physiologic consequences",
                   ("physiologic_consequences", False)),
              band(3, "(1xULN, inf)", ">ULN with physiologic consequences",
                   ("physiologic_consequences", True))),
        {1: ">ULN without physiologic consequences", 3: ">ULN with physiologic consequences",
         4: "Life-threatening consequences", 5: "Death"},
        clinical=_alts((4, "Life-threatening consequences")),
    ),
    # ---- kidney
    LabTerm(
        "Creatinine increased", "mg/dL", _CREATININE,
        BandTable("x ULN", _times("ULN", ("1", "1.5", "3.0", "6.0")), "not above ULN"),
        {1: ">ULN - 1.5 x ULN", 2: ">1.5 - 3.0 x baseline; >1.5 - 3.0 x ULN",
         3: ">3.0 x baseline; >3.0 - 6.0 x ULN", 4: ">6.0 x ULN"},
        baseline_change=table("x baseline", "not above 1.5 x baseline",
                              band(2, "(1.5xbaseline, 3.0xbaseline]"),
                              band(3, "(3.0xbaseline, inf)")),
    ),
    LabTerm(
        # "59 - 30" and "29 - 15" are whole-number ranges, read half-open like sodium.
        "Chronic kidney disease", "mL/min/1.73m2", _EGFR,
        table("eGFR or CrCl", "not below LLN",
              band(1, "[60, 1xLLN)"), band(2, "[30, 60)"), band(3, "[15, 30)"), band(4, "(-inf, 15)")),
        {1: "eGFR (estimated Glomerular Filtration Rate) or CrCl (creatinine clearance) <LLN - 60 "
            "ml/min/1.73 m2 or proteinuria 2+ present; urine protein/creatinine >0.5",
         2: "eGFR or CrCl 59 - 30 ml/min/1.73 m2", 3: "eGFR or CrCl 29 - 15 ml/min/1.73 m2",
         4: "eGFR or CrCl <15 ml/min/1.73 m2; dialysis or renal transplant indicated", 5: "Death"},
        clinical=_alts((1, "proteinuria 2+ present; urine protein/creatinine >0.5"),
                       (4, "dialysis or renal transplant indicated")),
    ),
    # ---- electrolytes
    LabTerm(
        "Hyponatremia", "mmol/L", _IONS,
        table("serum sodium", "not below LLN",
              band(1, "[130, 1xLLN)"),
              band(2, "[125, 130)", "125-129 mmol/L and asymptomatic", ("symptomatic", False)),
              band(3, "[125, 130)", "125-129 mmol/L symptomatic", ("symptomatic", True)),
              band(3, "[120, 125)", "120-124 mmol/L regardless of symptoms"),
              band(4, "(-inf, 120)")),
        {1: "<LLN - 130 mmol/L", 2: "125-129 mmol/L and asymptomatic",
         3: "125-129 mmol/L symptomatic; 120-124 mmol/L regardless of symptoms",
         4: "<120 mmol/L; life-threatening consequences", 5: "Death"},
        clinical=_LIFE_ONLY,
    ),
    LabTerm("Hypernatremia", "mmol/L", _IONS,
            _rising("serum sodium", "1xULN", (1, "150"), (2, "155"), (3, "160"), (4, "inf")),
            {1: ">ULN - 150 mmol/L", 2: ">150 - 155 mmol/L; intervention initiated",
             3: ">155 - 160 mmol/L; hospitalization indicated",
             4: ">160 mmol/L; life-threatening consequences",
             5: "Death"},
            clinical=_ELECTROLYTE),
    LabTerm(
        "Hypokalemia", "mmol/L", _IONS,
        table("serum potassium", "not below LLN",
              band(1, "[3.0, 1xLLN)", when=("symptomatic", False)),
              band(2, "[3.0, 1xLLN)", when=("symptomatic", True)),
              band(3, "[2.5, 3.0)"), band(4, "(-inf, 2.5)")),
        {1: "<LLN - 3.0 mmol/L", 2: "Symptomatic with <LLN - 3.0 mmol/L; intervention indicated",
         3: "<3.0 - 2.5 mmol/L; hospitalization indicated",
         4: "<2.5 mmol/L; life-threatening consequences", 5: "Death"},
        clinical=_alts((2, "intervention indicated"), (3, "hospitalization indicated"),
                       (4, "life-threatening consequences")),
    ),
    LabTerm("Hyperkalemia", "mmol/L", _IONS,
            _rising("serum potassium", "1xULN", (1, "5.5"), (2, "6.0"), (3, "7.0"), (4, "inf")),
            {1: ">ULN - 5.5 mmol/L", 2: ">5.5 - 6.0 mmol/L; intervention initiated",
             3: ">6.0 - 7.0 mmol/L; hospitalization indicated",
             4: ">7.0 mmol/L; life-threatening consequences",
             5: "Death"},
            clinical=_ELECTROLYTE),
    *_pair("Hypercalcemia", _HYPERCALCEMIA, "corrected serum calcium", _rising,
           ("1xULN", (1, "11.5"), (2, "12.5"), (3, "13.5"), (4, "inf")),
           ("1xULN", (1, "2.9"), (2, "3.1"), (3, "3.4"), (4, "inf")), _CALCIUM),
    LabTerm("Hypercalcemia", "mmol/L", _MMOL,
            _rising("ionized calcium, mmol/L", "1xULN", (1, "1.5"), (2, "1.6"), (3, "1.8"), (4, "inf")),
            _HYPERCALCEMIA, clinical=_CALCIUM, convert=True, lookup="Hypercalcemia (ionized calcium)"),
    *_pair("Hypocalcemia", _HYPOCALCEMIA, "corrected serum calcium", _falling,
           ("1xLLN", "8.0", "7.0", "6.0"), ("1xLLN", "2.0", "1.75", "1.5"), _CALCIUM),
    LabTerm("Hypocalcemia", "mmol/L", _MMOL,
            _falling("ionized calcium, mmol/L", "1xLLN", "1.0", "0.9", "0.8"),
            _HYPOCALCEMIA, clinical=_CALCIUM, convert=True, lookup="Hypocalcemia (ionized calcium)"),
    *_pair("Hypermagnesemia", _HYPERMAGNESEMIA, "serum magnesium", _rising,
           ("1xULN", (1, "3.0"), (3, "8.0"), (4, "inf")), ("1xULN", (1, "1.23"), (3, "3.30"), (4, "inf")),
           _LIFE_ONLY),
    *_pair("Hypomagnesemia", _HYPOMAGNESEMIA, "serum magnesium", _falling,
           ("1xLLN", "1.2", "0.9", "0.7"), ("1xLLN", "0.5", "0.4", "0.3"), _LIFE_ONLY),
    # ---- glucose, proteins, lipids
    *_pair("Hypoglycemia", _HYPOGLYCEMIA, "glucose", _falling,
           ("1xLLN", "55", "40", "30"), ("1xLLN", "3.0", "2.2", "1.7"),
           _alts((4, "life-threatening consequences; seizures"))),
    LabTerm(
        "Hypoalbuminemia", "g/L", _HB, _falling("serum albumin", "1xLLN", "30", "20"),
        {1: "<LLN - 3 g/dL; <LLN - 30 g/L", 2: "<3 - 2 g/dL; <30 - 20 g/L", 3: "<2 g/dL; <20 g/L",
         4: _LIFE, 5: "Death"},
        clinical=_alts((4, _LIFE)), convert=True,
    ),
    *_pair("Cholesterol high", _CHOLESTEROL, "serum cholesterol", _rising,
           ("1xULN", (1, "300"), (2, "400"), (3, "500"), (4, "inf")),
           ("1xULN", (1, "7.75"), (2, "10.34"), (3, "12.92"), (4, "inf")), ()),
    _triglycerides("mg/dL", _MGDL, ("150", "300", "500", "1000")),
    _triglycerides("mmol/L", _MMOL, ("1.71", "3.42", "5.7", "11.4")),
    # ---- coagulation
    LabTerm(
        "Activated partial thromboplastin time prolonged", "s", _SECONDS,
        BandTable("x ULN", _times("ULN", ("1", "1.5", "2.5")), "not above ULN"),
        {1: ">ULN - 1.5 x ULN", 2: ">1.5 - 2.5 x ULN", 3: ">2.5 x ULN; bleeding"},
        clinical=(Alternative(3, "bleeding", "bleeding"),),
    ),
    LabTerm(
        "INR increased", "1", _RATIO,
        table("absolute INR, not on anticoagulation", "not above 1.2",
              band(1, "(1.2, 1.5]"), band(2, "(1.5, 2.5]"), band(3, "(2.5, inf)")),
        {1: ">1.2 - 1.5; >1 - 1.5 x baseline if on anticoagulation; monitoring only indicated",
         2: ">1.5 - 2.5; >1.5 - 2.5 x baseline if on anticoagulation; dose adjustment indicated",
         3: ">2.5; >2.5 x baseline if on anticoagulation; bleeding"},
        # On anticoagulation the INR is raised on purpose, so the x baseline rule replaces
        # the absolute one for those patients.
        alternative=("anticoagulation", table(
            "x baseline, on anticoagulation", "not above baseline",
            band(1, "(1xbaseline, 1.5xbaseline]"), band(2, "(1.5xbaseline, 2.5xbaseline]"),
            band(3, "(2.5xbaseline, inf)"))),
        clinical=(Alternative(3, "bleeding", "bleeding"),),
    ),
    LabTerm(
        "Fibrinogen decreased", "mg/dL", {**_MGDL, **_units("100", "g/l")},
        table("baseline normal, x LLN", "not below LLN",
              band(1, "[0.75xLLN, 1xLLN)"), band(2, "[0.5xLLN, 0.75xLLN)"),
              band(3, "[0.25xLLN, 0.5xLLN)"), band(4, "(-inf, 0.25xLLN)"),
              band(4, "(-inf, 50)", "absolute value <50 mg/dL")),
        {1: "<1.0 - 0.75 x LLN; if abnormal, <25% decrease from baseline",
         2: "<0.75 - 0.5 x LLN; if abnormal, 25 - <50% decrease from baseline",
         3: "<0.5 - 0.25 x LLN; if abnormal, 50 - <75% decrease from baseline",
         4: "<0.25 x LLN; if abnormal, 75% decrease from baseline; absolute value <50 mg/dL"},
        # "if abnormal": a baseline below LLN is graded by the decrease from baseline.
        abnormal_baseline=table(
            "baseline abnormal, decrease from baseline", "not below baseline",
            band(1, "(0.75xbaseline, 1xbaseline)"), band(2, "(0.5xbaseline, 0.75xbaseline]"),
            band(3, "(0.25xbaseline, 0.5xbaseline]"), band(4, "(-inf, 0.25xbaseline]"),
            band(4, "(-inf, 50)", "absolute value <50 mg/dL")),
        abnormal_side=Ref.LLN, convert=True,
    ),
    # ---- acid-base (pH, no unit)
    LabTerm(
        "Acidosis", "pH", _PH,
        table("blood pH", "not below normal", band(1, "[7.3, 1xLLN)"), band(3, "(-inf, 7.3)")),
        {1: "pH <normal, but >=7.3", 3: "pH <7.3", 4: "Life-threatening consequences", 5: "Death"},
        clinical=_alts((4, "Life-threatening consequences")),
    ),
    LabTerm(
        "Alkalosis", "pH", _PH,
        table("blood pH", "not above normal", band(1, "(1xULN, 7.5]"), band(3, "(7.5, inf)")),
        {1: "pH >normal, but <=7.5", 3: "pH >7.5", 4: "Life-threatening consequences", 5: "Death"},
        clinical=_alts((4, "Life-threatening consequences")),
    ),
    LabTerm(
        "Proteinuria", "g/24h", _units("1", "g/24h", "g/24hrs", "g/24hr", "g/d", "g/day"),
        table("urinary protein, 24-hour collection (adult)", "below ULN",
              band(1, "[1xULN, 1.0)"), band(2, "[1.0, 3.5)"), band(3, "[3.5, inf)")),
        _PROTEINURIA,
        lookup="Proteinuria (24-hour urine protein)",
        note="24-hour urine protein; grades 2-3 by this rule are the adult ones",
    ),
    LabTerm(
        # Pediatric: "Urine P/C (Protein/Creatinine) ratio 0.5 - 1.9" grade 2, ">1.9" grade 3.
        # Below 0.5 the ratio decides nothing: grade 1 is "1+ proteinuria" (dipstick) or a
        # 24-hour urine protein, so the grade stays open between 0 and 1.
        "Proteinuria", "ratio", _units("1", "ratio", "", "1", "mg/mg", "g/g"),
        table("urine protein/creatinine ratio (pediatric)", "not graded",
              band(1, "(-inf, 0.5)", "1+ proteinuria; urinary protein ≥ULN - <1.0 g/24 hrs",
                   ("dipstick_or_24h_urine_protein", True)),
              band(2, "[0.5, 1.9]", "Pediatric: Urine P/C (Protein/Creatinine) ratio 0.5 - 1.9"),
              band(3, "(1.9, inf)", "Pediatric: Urine P/C (Protein/Creatinine) ratio >1.9")),
        _PROTEINURIA,
        lookup="Proteinuria (urine protein/creatinine ratio)",
        note="urine protein/creatinine ratio in mass units (mg/mg); the pediatric rule",
    ),
)
# fmt: on


#: Terms whose CTCAE v5.0 grade text names a lab value or a normal limit but that are
#: graded by the clinician here, with the reason.
CLINICIAN_GRADED: Final[Mapping[str, str]] = {
    "Blood bicarbonate decreased": "grade 1 only while no intervention is initiated; once one is, the "
    "term has no grade and the clinician grades Acidosis",
    "Pancreatic enzymes decreased": "only grade 1 is a value (<LLN and asymptomatic); grades 2-3 are "
    "stool changes and malabsorption",
    "Febrile neutropenia": "needs the temperature course (single >38.3 or sustained >=38 for an hour) "
    "beside the ANC",
    "Sinusoidal obstruction syndrome": "a clinical diagnosis; its bilirubin bands sit beside interventions "
    "and ultrasound flow reversal",
    "Hypertension": "blood pressure, a vital sign rather than a lab value; population-specific percentiles",
    "Carbon monoxide diffusing capacity decreased": "a lung-function measurement with symptoms and "
    "changes from baseline, not a blood value",
    "Cardiac troponin I increased": "the myocardial-infarction level is the assay manufacturer's, not a "
    "CTCAE number",
    "Cardiac troponin T increased": "the myocardial-infarction level is the assay manufacturer's, not a "
    "CTCAE number",
}


# --------------------------------------------------------------------------- grading


def _abnormal(spec: LabTerm, refs: Mapping[Ref, Decimal]) -> bool | None:
    limit, baseline = refs.get(spec.abnormal_side), refs.get(Ref.BASELINE)
    if limit is None or baseline is None:
        return None
    return baseline > limit if spec.abnormal_side is Ref.ULN else baseline < limit


def _with_baseline_rule(
    spec: LabTerm,
    normal: Outcome,
    value: Decimal,
    refs: Mapping[Ref, Decimal],
    flags: Mapping[str, bool | None],
) -> Outcome:
    assert spec.abnormal_baseline is not None
    if refs.get(spec.abnormal_side) is None:
        abnormal = evaluate(spec.abnormal_baseline, value, refs, flags, spec.definitions)
        merged = union(normal, abnormal)
        return Outcome(merged.possible, merged.text, merged.missing | {spec.abnormal_side.value})
    is_abnormal = _abnormal(spec, refs)
    if is_abnormal is None:
        top = max(normal.possible)
        if top == 0:
            return normal
        # An abnormal baseline lies beyond the normal limit and each x-baseline edge is
        # then at least as far out as the x-limit edge of the same grade, so that rule can
        # only give this grade or a lower one.
        return Outcome(frozenset(range(top + 1)), None, frozenset({"baseline"}))
    if is_abnormal:
        return evaluate(spec.abnormal_baseline, value, refs, flags, spec.definitions)
    return normal


def grade_term(
    spec: LabTerm, value: Decimal, refs: Mapping[Ref, Decimal], flags: Mapping[str, bool | None]
) -> Outcome:
    """The grades ``value`` can have under ``spec`` (in the term's unit) and why."""
    if spec.alternative is not None:
        name, other = spec.alternative
        answer = flags.get(name)
        plain = evaluate(spec.table, value, refs, flags, spec.definitions)
        if answer is False:
            return plain
        alt = evaluate(other, value, refs, flags, spec.definitions)
        return alt if answer else union(plain, alt, decides=name)
    normal = evaluate(spec.table, value, refs, flags, spec.definitions)
    if spec.abnormal_baseline is not None:
        return _with_baseline_rule(spec, normal, value, refs, flags)
    if spec.baseline_change is not None:
        # Creatinine: x ULN and x baseline are both graded; the worse grade counts.
        change = evaluate(spec.baseline_change, value, refs, flags, spec.definitions)
        possible = frozenset(max(a, b) for a in normal.possible for b in change.possible)
        if len(possible) > 1:
            return Outcome(possible, None, normal.missing | change.missing)
        (grade,) = possible
        if grade == 0:
            return Outcome(possible, f"{normal.text}; {change.text}")
        return Outcome(possible, normal.text if max(normal.possible) == grade else change.text)
    return normal


def raise_by_facts(spec: LabTerm, outcome: Outcome, flags: Mapping[str, bool | None]) -> Outcome:
    """Apply the "or" criteria whose fact is known to be true: they set a minimum grade.

    A value graded 0 stays 0: without an abnormal value there is no event to raise.
    """
    floor = max((a.grade for a in spec.clinical if a.flag and flags.get(a.flag)), default=0)
    if floor == 0 or all(g == 0 or g >= floor for g in outcome.possible):
        return outcome
    raised = frozenset(g if g == 0 else max(g, floor) for g in outcome.possible)
    if len(raised) > 1:
        return Outcome(raised, None, outcome.missing)
    text = next(a.text for a in spec.clinical if a.grade == floor and a.flag)
    return Outcome(raised, f"grade {floor}: {text}, whatever the value ({spec.definitions.get(floor, text)})")


def raised_if(spec: LabTerm, possible: Iterable[int], flags: Mapping[str, bool | None]) -> tuple[str, ...]:
    """The clinical criteria that would give a grade above every grade still possible."""
    top = max(possible)
    return tuple(
        f"grade {a.grade} if {a.text}"
        for a in spec.clinical
        if a.grade > top and (a.flag is None or flags.get(a.flag) is None)
    )
