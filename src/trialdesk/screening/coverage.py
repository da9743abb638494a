"""What an OMOP site asks first: which facts the trials need the data has, and what is unmapped.

:func:`coverage` counts, for every fact the chosen trials read (directly or through a
derivation), how many persons have at least one value of it, and lists the concepts that
map to no fact with their row counts, and the units that do not fit their fact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trialdesk.errors import TrialdeskError, UnitError
from trialdesk.facts.dictionary import DIAGNOSES
from trialdesk.protocol.load import CompiledProtocol
from trialdesk.screening import checks
from trialdesk.screening.cdm import OWN_RANGE
from trialdesk.screening.engine import Engine
from trialdesk.screening.flavour import text_sql
from trialdesk.screening.omop import MEASUREMENT_FACTS, OBSERVATION_SOURCES
from trialdesk.screening.plan import TREATMENT_FACTS, XULN_LABS, _all_facts, _dependencies, unit_factor

TOP = 20


@dataclass
class Coverage:
    """Persons per fact, and what the data holds that no fact takes."""

    persons: int
    facts: dict[str, int | None] = field(default_factory=dict)  # None: not read from the data
    unmapped: dict[str, list[tuple[Any, str | None, int]]] = field(default_factory=dict)
    units: list[tuple[str, Any, str | None, int, str]] = field(default_factory=list)
    ranges: list[tuple[str, str | None, int]] = field(default_factory=list)  # fact, source, rows

    def to_json(self) -> dict[str, Any]:
        return {"persons": self.persons, "facts": self.facts,
                "unmapped": {k: [{"concept_id": c, "name": n, "rows": r} for c, n, r in v]
                             for k, v in self.unmapped.items()},
                "units": [{"fact": f, "concept_id": c, "unit": u, "rows": r, "reason": why}
                          for f, c, u, r, why in self.units],
                "ranges": [{"fact": f, "source": s, "rows": r} for f, s, r in self.ranges]}


def needed_facts(protocols: Sequence[CompiledProtocol]) -> list[str]:
    names: set[str] = set()
    for compiled in protocols:
        names |= _all_facts(compiled)
    return sorted(_dependencies(names))


def _fact_sql(fact: str, inputs: Mapping[str, checks.TableInput]) -> str | None:
    """SELECT of the persons with a value of ``fact`` (None: not read from a table)."""
    if fact in MEASUREMENT_FACTS and "measurement" in inputs:
        return (f"SELECT DISTINCT person_id FROM src_measurement WHERE measurement_source_value = "
                f"{text_sql(fact)} AND value_as_number IS NOT NULL")
    if fact == "primary_diagnosis" and "condition_occurrence" in inputs:
        dx = ", ".join(text_sql(d) for d in DIAGNOSES)
        return ("SELECT DISTINCT person_id FROM src_condition_occurrence "
                f"WHERE condition_source_value IN ({dx})")
    if fact in TREATMENT_FACTS and "drug_exposure" in inputs:
        return "SELECT DISTINCT person_id FROM src_drug_exposure"
    if fact in ("sex", "age_years", "age_months"):
        column = "gender_concept_id IN (8507, 8532)" if fact == "sex" else "year_of_birth IS NOT NULL"
        return f"SELECT person_id FROM src_person WHERE {column}"
    sources = [s.source for s in OBSERVATION_SOURCES.values() if s.fact == fact]
    if sources and "observation" in inputs:
        column = OBSERVATION_SOURCES[sources[0]].value_column.value
        return (f"SELECT DISTINCT person_id FROM src_observation WHERE observation_source_value IN "
                f"({', '.join(text_sql(s) for s in sources)}) AND {column} IS NOT NULL")
    return None


def coverage(engine: Engine, inputs: Mapping[str, checks.TableInput],
             protocols: Sequence[CompiledProtocol]) -> Coverage:
    """The coverage of the tables registered by :func:`trialdesk.screening.run.load_inputs`
    (concept names from the data's ``concept`` table when it has one)."""
    try:
        vocabulary = bool(engine.columns("omop_concept"))
    except TrialdeskError:
        vocabulary = False
    persons = int(engine.rows("SELECT count(*) FROM src_person")[0][0])
    report = Coverage(persons)
    for fact in needed_facts(protocols):
        sql = _fact_sql(fact, inputs)
        report.facts[fact] = (None if sql is None
                              else int(engine.rows(f"SELECT count(*) FROM ({sql}) t")[0][0]))
    name = ("(SELECT min(concept_name) FROM omop_concept k WHERE k.concept_id = r.concept_id)"
            if vocabulary else "CAST(NULL AS VARCHAR)")
    facts = ", ".join(text_sql(f) for f in MEASUREMENT_FACTS)
    dx = ", ".join(text_sql(d) for d in DIAGNOSES)
    queries = {
        "measurement": f"measurement_source_value IS NULL OR measurement_source_value NOT IN ({facts})",
        "condition_occurrence": f"condition_source_value IS NULL OR condition_source_value NOT IN ({dx})",
        "drug_exposure": "therapy_category = 'other'",
    }
    for table, where in queries.items():
        if table not in inputs or not _has_concepts(engine, table):
            continue
        rows = engine.rows(f"SELECT concept_id, {name}, n FROM (SELECT concept_id, count(*) AS n FROM "
                           f"raw_{table} WHERE {where} GROUP BY concept_id) r ORDER BY n DESC, concept_id "
                           f"LIMIT {TOP}")
        report.unmapped[table] = [(c, n, int(k)) for c, n, k in rows]
    if "measurement" in inputs and _has_concepts(engine, "measurement"):
        for fact, concept, unit, n in engine.rows(
                "SELECT measurement_source_value, concept_id, unit_source_value, count(*) "
                "FROM raw_measurement "
                f"WHERE measurement_source_value IN ({facts}) AND value_as_number IS NOT NULL "
                "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"):
            try:
                unit_factor(str(fact), unit)
            except UnitError as exc:
                report.units.append((str(fact), concept, unit, int(n), exc.reason))
    if "measurement" in inputs:
        labs = ", ".join(text_sql(lab) for lab in XULN_LABS)
        source = "range_source" if _has_column(engine, "measurement", "range_source") else \
            f"CASE WHEN range_high IS NOT NULL THEN {text_sql(OWN_RANGE)} END"
        report.ranges = [(str(f), s, int(n)) for f, s, n in engine.rows(
            f"SELECT measurement_source_value, {source}, count(*) FROM raw_measurement "
            f"WHERE measurement_source_value IN ({labs}) AND value_as_number IS NOT NULL "
            "GROUP BY 1, 2 ORDER BY 1, 2")]
    return report


def _has_column(engine: Engine, table: str, column: str) -> bool:
    return column in {name for name, _ in engine.columns(f"raw_{table}")}


def _has_concepts(engine: Engine, table: str) -> bool:
    return _has_column(engine, table, "concept_id")


__all__ = ["Coverage", "coverage", "needed_facts"]
