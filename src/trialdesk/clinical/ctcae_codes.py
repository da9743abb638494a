"""MedDRA and NCIt codes of every CTCAE v5.0 term, from the packaged term table.

Source: ``data/ctcae_v5_terms.csv``, copied from the CTCAE v5.0 term list (NCI,
27 Nov 2017; see ``data/README.md``). CTCAE v5.0 terms are MedDRA v20.1 lowest level
terms; the SOC is the MedDRA system organ class CTCAE files the term under.

>>> codes = term_codes("Anemia")
>>> (codes.meddra_code, codes.soc, codes.nci_code)
('10002272', 'Blood and lymphatic system disorders', 'C143283')

The grade texts of every term are in ``data/ctcae_v5_grades.csv`` (the "Grade 1" …
"Grade 5" and "Definition" columns of the same list; "-" is a grade that does not exist):

>>> grade_texts("Neuralgia")[3]
'Severe pain; limiting self care ADL'
>>> [t.term for t in search_terms("neuralg")]
['Neuralgia']
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Final

MEDDRA_VERSION: Final = "20.1"
CODES_SOURCE: Final = "NCI CTCAE v5.0 (27 Nov 2017) term list; MedDRA v20.1 LLT codes"


@dataclass(frozen=True)
class TermCodes:
    """One CTCAE v5.0 term: its MedDRA LLT code, SOC name and code, and NCIt code."""

    term: str
    meddra_code: str
    soc: str
    soc_code: str
    nci_code: str


def _key(term: str) -> str:
    return " ".join(term.split()).casefold()


@lru_cache(maxsize=1)
def _table() -> dict[str, TermCodes]:
    text = resources.files("trialdesk.clinical").joinpath("data/ctcae_v5_terms.csv").read_text("utf-8")
    return {_key(row["term"]): TermCodes(**row) for row in csv.DictReader(text.splitlines())}


def term_codes(term: str) -> TermCodes | None:
    """The codes of a CTCAE v5.0 term (case and spacing ignored), or None if it is not one."""
    return _table().get(_key(term))


def all_terms() -> tuple[TermCodes, ...]:
    """Every CTCAE v5.0 term, in the order of the NCI sheet (by SOC, then term)."""
    return tuple(_table().values())


@lru_cache(maxsize=1)
def _grades() -> dict[str, dict[str, str]]:
    text = resources.files("trialdesk.clinical").joinpath("data/ctcae_v5_grades.csv").read_text("utf-8")
    return {_key(row["term"]): row for row in csv.DictReader(io.StringIO(text, newline=""))}


def grade_texts(term: str) -> dict[int, str]:
    """``{grade: CTCAE v5.0 text}`` of a term as NCI's sheet writes it; grades the sheet
    marks "-" (they do not exist for the term) are absent; empty if it is not a term."""
    row = _grades().get(_key(term))
    if row is None:
        return {}
    return {g: row[f"grade{g}"] for g in range(1, 6) if row[f"grade{g}"] not in ("-", "")}


def term_text(term: str) -> str | None:
    """The CTCAE v5.0 definition of a term (None for the "Other, specify" terms)."""
    row = _grades().get(_key(term))
    return None if row is None or row["definition"] in ("-", "") else row["definition"]


def search_terms(text: str, limit: int = 20) -> tuple[TermCodes, ...]:
    """The terms a typed text finds: an exact term first, then terms starting with it,
    then terms containing every typed word (case and spacing ignored), up to ``limit``."""
    key = _key(text)
    if not key:
        return ()
    words = key.split()
    exact = [c for k, c in _table().items() if k == key]
    start = [c for k, c in _table().items() if k != key and k.startswith(key)]
    inside = [c for k, c in _table().items()
              if not k.startswith(key) and all(w in k for w in words)]
    return tuple((exact + sorted(start, key=lambda c: c.term)
                  + sorted(inside, key=lambda c: c.term))[:limit])
