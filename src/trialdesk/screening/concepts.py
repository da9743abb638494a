"""The concept map: which OMOP concepts carry which fact of the dictionary.

OMOP CDM data names its facts by concept ids — LOINC standard concepts for laboratory
results, UCUM concepts for units, SNOMED concepts for conditions, RxNorm for drugs. The map
shipped beside this module (``concepts.yaml``) says, for every measurement fact of the
dictionary, its LOINC codes and OMOP standard concept ids with the source of each mapping;
the UCUM code of common unit concepts; SNOMED concepts per diagnosis; the therapy category
of drug ingredients; the LOINC codes of performance scales. A site extends it with a file of
the same shape.

>>> m = concept_map()
>>> m.measurement_by_concept[3024929], m.measurement_by_loinc["2160-0"]
('platelets', 'creatinine')
>>> m.units[8848], m.ingredients["irinotecan"]
('10*3/uL', 'chemotherapy')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from trialdesk.errors import FactError
from trialdesk.facts.dictionary import DIAGNOSES, FACTS, THERAPY_CATEGORIES, FactKind
from trialdesk.screening.omop import MEASUREMENT_FACTS, PERFORMANCE_SCALES, loinc

MAP_FILE = "concepts.yaml"


@dataclass(frozen=True)
class MeasurementConcept:
    """One LOINC code of a measurement fact, its OMOP concept id if known, and the source."""

    fact: str
    loinc: str
    concept_id: int | None
    source: str


@dataclass(frozen=True)
class ConceptMap:
    """The loaded map (see the module docstring)."""

    sources: Mapping[str, str]
    measurements: tuple[MeasurementConcept, ...]
    units: Mapping[int, str]  # UCUM concept id → UCUM code
    conditions: Mapping[int, str]  # SNOMED concept id → diagnosis
    ingredients: Mapping[str, str]  # lower-case ingredient name → therapy category
    performance: Mapping[str, str]  # LOINC code → performance scale
    where: str
    site_file: str | None = None  # the site's file merged into the shipped map

    @property
    def measurement_by_concept(self) -> dict[int, str]:
        return {m.concept_id: m.fact for m in self.measurements if m.concept_id is not None}

    @property
    def measurement_by_loinc(self) -> dict[str, str]:
        return {m.loinc: m.fact for m in self.measurements}

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """(kind, key, concept, meaning, source) for printing."""
        out = [("measurement", m.fact, str(m.concept_id or "—"), f"LOINC {m.loinc}",
                self.sources.get(m.source, m.source)) for m in self.measurements]
        out += [("measurement", f, "—", "no LOINC code or concept found", "—")
                for f in MEASUREMENT_FACTS if f not in {m.fact for m in self.measurements}]
        src = self.sources
        out += [("unit", code, str(cid), "UCUM", src.get("units", "")) for cid, code in self.units.items()]
        out += [("condition", dx, str(cid), "SNOMED (with descendants)", src.get("conditions", ""))
                for cid, dx in self.conditions.items()]
        out += [("drug", category, "—", f"ingredient {name}", src.get("drugs", ""))
                for name, category in self.ingredients.items()]
        out += [("observation", scale, "—", f"LOINC {code}", src.get("performance", ""))
                for code, scale in self.performance.items()]
        return out


def _fail(reason: str, where: str) -> FactError:
    return FactError(reason, where=where)


def parse_map(doc: Any, where: str) -> ConceptMap:
    """A :class:`ConceptMap` from a parsed YAML document; FactError naming the entry on error."""
    if not isinstance(doc, dict):
        raise _fail("a concept map is a mapping with measurements, units, conditions, drugs", where)
    sources = {str(k): str(v) for k, v in (doc.get("sources") or {}).items()}
    measurements: list[MeasurementConcept] = []
    for fact, entries in (doc.get("measurements") or {}).items():
        if fact not in MEASUREMENT_FACTS:
            raise _fail(f"'{fact}' is not a measurement fact of the dictionary", f"{where}: measurements")
        for entry in entries or []:
            cid = entry.get("concept_id")
            if cid is not None and not isinstance(cid, int):
                raise _fail(f"concept_id {cid!r} is not a whole number", f"{where}: measurements.{fact}")
            measurements.append(MeasurementConcept(fact, str(entry["loinc"]), cid,
                                                   str(entry.get("source", ""))))
    units = {int(k): str(v) for k, v in ((doc.get("units") or {}).get("concepts") or {}).items()}
    conditions: dict[int, str] = {}
    for dx, ids in ((doc.get("conditions") or {}).get("concepts") or {}).items():
        if dx not in DIAGNOSES:
            raise _fail(f"'{dx}' is not a diagnosis of the dictionary", f"{where}: conditions")
        conditions.update({int(i): dx for i in ids})
    ingredients = {}
    for name, category in ((doc.get("drugs") or {}).get("ingredients") or {}).items():
        if category not in THERAPY_CATEGORIES:
            raise _fail(f"'{category}' is not a therapy category; allowed: "
                        f"{', '.join(THERAPY_CATEGORIES)}", f"{where}: drugs.{name}")
        ingredients[str(name).lower()] = str(category)
    performance = {}
    for scale, codes in ((doc.get("performance") or {}).get("loinc") or {}).items():
        if scale not in PERFORMANCE_SCALES:
            raise _fail(f"'{scale}' is not a performance scale", f"{where}: performance")
        performance.update({str(c): scale for c in codes or []})
    for section in ("units", "conditions", "drugs", "performance"):
        source = (doc.get(section) or {}).get("source")
        if source:
            sources.setdefault(section, sources.get(str(source), str(source)))
    return ConceptMap(sources, tuple(measurements), units, conditions, ingredients, performance, where)


def merge(base: ConceptMap, extra: ConceptMap) -> ConceptMap:
    """``base`` extended (and overridden, key by key) by a site's ``extra`` map."""
    return ConceptMap({**base.sources, **extra.sources}, base.measurements + extra.measurements,
                      {**base.units, **extra.units}, {**base.conditions, **extra.conditions},
                      {**base.ingredients, **extra.ingredients},
                      {**base.performance, **extra.performance}, f"{base.where} + {extra.where}",
                      str(Path(extra.where).resolve()))


def read_map(path: Path) -> ConceptMap:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise _fail(f"cannot read the concept map: {str(exc).splitlines()[0]}", str(path)) from None
    return parse_map(doc, str(path))


@cache
def _shipped() -> ConceptMap:
    import yaml

    text = resources.files("trialdesk.screening").joinpath(MAP_FILE).read_text(encoding="utf-8")
    return parse_map(yaml.safe_load(text), f"trialdesk/screening/{MAP_FILE}")


def concept_map(extra: Path | None = None) -> ConceptMap:
    """The shipped map, extended by a site's file if given."""
    return merge(_shipped(), read_map(extra)) if extra else _shipped()


def dictionary_loincs() -> dict[str, str]:
    """The dictionary's own LOINC code per measurement fact (which the map must include)."""
    return {f: code for f in MEASUREMENT_FACTS if (code := loinc(f))}


#: UCUM spellings the unit parser reads differently (UCUM 2.1: curly braces are annotations,
#: square brackets arbitrary units, ``10*3`` a power of ten).
_UCUM_SPELLINGS: Mapping[str, str] = {"[U]/L": "U/L", "[iU]/L": "IU/L", "[in_i]": "in",
                                      "[lb_av]": "lb"}


def ucum_to_unit(code: str | None) -> str | None:
    """A UCUM code as the unit parser reads it; annotations alone (``{ratio}``) mean no unit.

    >>> ucum_to_unit("10*3/uL"), ucum_to_unit("[U]/L"), ucum_to_unit("{INR}")
    ('10^3/uL', 'U/L', None)
    """
    if code is None:
        return None
    text = code.strip()
    if not text or text == "1" or (text.startswith("{") and text.endswith("}")):
        return None
    return _UCUM_SPELLINGS.get(text, text.replace("10*", "10^"))


def lab_facts() -> list[str]:
    return [f for f in MEASUREMENT_FACTS if FACTS[f].kind is FactKind.LAB]


__all__ = ["ConceptMap", "MeasurementConcept", "concept_map", "dictionary_loincs", "lab_facts",
           "merge", "parse_map", "read_map", "ucum_to_unit"]
