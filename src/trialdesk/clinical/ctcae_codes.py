"""MedDRA and NCIt codes of every CTCAE v5.0 term, from the packaged term table.

Source: ``data/ctcae_v5_terms.csv``, copied from the CTCAE v5.0 term list (NCI,
27 Nov 2017; see ``data/README.md``). CTCAE v5.0 terms are MedDRA v20.1 lowest level
terms; the SOC is the MedDRA system organ class CTCAE files the term under.

>>> codes = term_codes("Anemia")
>>> (codes.meddra_code, codes.soc, codes.nci_code)
('10002272', 'Blood and lymphatic system disorders', 'C143283')
"""

from __future__ import annotations

import csv
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
