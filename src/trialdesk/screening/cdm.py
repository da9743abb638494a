"""OMOP CDM data as it comes from a site: concept ids translated into the facts screening reads.

A hospital's OMOP database names its facts by concept ids (LOINC, UCUM, SNOMED, RxNorm), with
upper-case column names, numbers as text or DECIMAL and 64-bit ids. This module turns such
tables into the shape :mod:`trialdesk.screening.omop` describes, in SQL, before the checks
and the plan run — so every rule of screening stays in one place:

* ``measurement`` — the fact from ``measurement_concept_id`` through the concept map, else the
  LOINC code of that concept in the data's own ``concept`` table, else a LOINC code (or a
  fact name) in ``measurement_source_value``; the unit from ``unit_concept_id`` (the data's
  UCUM concept, else the map's) else ``unit_source_value``, in the unit parser's spelling;
  numbers written as text are read as numbers (a text that is not a number stops the run).
* ``condition_occurrence`` — the diagnosis from ``condition_concept_id``: a concept of the map
  or, when ``concept_ancestor`` has rows, any of its descendants; else the source value.
* ``drug_exposure`` — the therapy category from the drug's ingredient (its own concept, the
  data's ``RxNorm has ing`` relationships or ``concept_ancestor``), else an ingredient named
  in ``drug_source_value``; a drug no ingredient of the map matches counts as ``other``.
* ``observation`` — performance scores from the LOINC code of ``observation_concept_id`` or
  of ``observation_source_value``; trialdesk's own source values keep working.

Tables that already carry trialdesk's source values (no concept columns) pass unchanged.
Nothing here does I/O: the functions return SQL for the engine to run.

>>> is_coded("measurement", {"measurement_concept_id": "integer"})
True
>>> ucum_sql("u")[:40]
"CASE WHEN u IS NULL OR trim(u) IN ('', '"
"""

from __future__ import annotations

from collections.abc import Mapping

from trialdesk.screening.concepts import _UCUM_SPELLINGS, ConceptMap
from trialdesk.screening.flavour import Flavour, text_sql, values_sql
from trialdesk.screening.omop import MEASUREMENT_FACTS

#: Tables screening reads, and the vocabulary tables used when present.
VOCABULARY = ("concept", "concept_ancestor", "concept_relationship")
EXTRA_TABLES = ("observation_period", "reference_range", *VOCABULARY)

_CONCEPT_COLUMN = {"measurement": "measurement_concept_id",
                   "condition_occurrence": "condition_concept_id",
                   "drug_exposure": "drug_concept_id",
                   "observation": "observation_concept_id"}


def is_coded(table: str, families: Mapping[str, str]) -> bool:
    """Whether ``table`` names its facts by concept ids (and needs translating)."""
    column = _CONCEPT_COLUMN.get(table)
    if column is None or column not in families:
        return False
    return not (table == "drug_exposure" and "therapy_category" in families)


def ucum_sql(x: str) -> str:
    """A UCUM code as the unit parser reads it (see :func:`concepts.ucum_to_unit`), in SQL."""
    spelled = " ".join(f"WHEN {x} = {text_sql(k)} THEN {text_sql(v)}" for k, v in _UCUM_SPELLINGS.items())
    return (f"CASE WHEN {x} IS NULL OR trim({x}) IN ('', '1') OR ({x} LIKE '{{%' AND {x} LIKE '%}}') "
            f"THEN NULL {spelled} ELSE replace(trim({x}), '10*', '10^') END")


def _keys(id_column: str) -> str:
    """The row id and person id as BIGINT (64-bit ids; DOUBLE ids in some databases)."""
    return f"CAST(x.{id_column} AS BIGINT) AS {id_column}, CAST(x.person_id AS BIGINT) AS person_id"


def _number(column: str, families: Mapping[str, str], f: Flavour) -> str:
    """A numeric column of ``x`` as DOUBLE: DECIMAL and text numbers too (text that is not a
    number becomes NULL here, and :func:`text_number_query` finds it)."""
    if column not in families:
        return f"CAST(NULL AS DOUBLE) AS {column}"
    if families[column] == "string":
        return f"{f.try_number(f'x.{column}')} AS {column}"
    return f"CAST(x.{column} AS DOUBLE) AS {column}"


def _text(column: str, families: Mapping[str, str], text_type: str) -> str:
    return f"CAST(x.{column} AS {text_type})" if column in families else f"CAST(NULL AS {text_type})"


class Translator:
    """SQL that turns the coded tables (views ``omop_<table>``) into trialdesk's shape."""

    def __init__(self, cmap: ConceptMap, flavour: Flavour, vocabulary: Mapping[str, bool]) -> None:
        self.map = cmap
        self.f = flavour
        self.vocab = vocabulary  # table → present and not empty

    # -- lookups as inline tables or queries over the data's vocabulary

    def _measurement_concepts(self) -> str:
        shipped = values_sql([(str(c), text_sql(f)) for c, f in self.map.measurement_by_concept.items()],
                             ("concept_id", "fact"), "v")
        parts = [f"SELECT concept_id, fact FROM {shipped}"]
        if self.vocab.get("concept"):
            loincs = values_sql([(text_sql(code), text_sql(f)) for code, f in
                                 self.map.measurement_by_loinc.items()], ("code", "fact"), "l")
            parts.append(f"SELECT c.concept_id, l.fact FROM omop_concept c JOIN {loincs} "
                         "ON c.concept_code = l.code WHERE c.vocabulary_id = 'LOINC'")
        union = " UNION ALL ".join(parts)
        return f"(SELECT concept_id, min(fact) AS fact FROM ({union}) x GROUP BY concept_id)"

    def _loinc_sources(self) -> str:
        by_loinc = self.map.measurement_by_loinc.items()
        return values_sql([(text_sql(code), text_sql(f)) for code, f in by_loinc],
                          ("code", "fact"), "ls")

    def _units(self) -> str:
        shipped = values_sql([(str(c), text_sql(u)) for c, u in self.map.units.items()],
                             ("concept_id", "code"), "v")
        parts = [f"SELECT concept_id, code, 1 AS rank FROM {shipped}"]
        if self.vocab.get("concept"):
            parts.append("SELECT concept_id, concept_code AS code, 0 AS rank FROM omop_concept "
                         "WHERE vocabulary_id = 'UCUM'")
        return (f"(SELECT concept_id, {self.f.arg_max('code', '-rank')} AS code FROM "
                f"({' UNION ALL '.join(parts)}) x GROUP BY concept_id)")

    def diagnosis_concepts(self) -> str:
        shipped = values_sql([(str(c), text_sql(d)) for c, d in self.map.conditions.items()],
                             ("concept_id", "dx"), "v")
        parts = [f"SELECT concept_id, dx FROM {shipped}"]
        if self.vocab.get("concept_ancestor"):
            parts.append(f"SELECT a.descendant_concept_id AS concept_id, v.dx FROM omop_concept_ancestor a "
                         f"JOIN {shipped} ON a.ancestor_concept_id = v.concept_id")
        return f"(SELECT concept_id, min(dx) AS dx FROM ({' UNION ALL '.join(parts)}) x GROUP BY concept_id)"

    def _ingredients(self) -> str:
        """(drug concept id, ingredient, category) from the data's vocabulary."""
        names = values_sql([(text_sql(n), text_sql(c)) for n, c in self.map.ingredients.items()],
                           ("name", "category"), "g")
        ing = (f"(SELECT c.concept_id, g.name, g.category FROM omop_concept c JOIN {names} "
               "ON lower(c.concept_name) = g.name)")
        parts = [f"SELECT concept_id, name, category FROM {ing} i0"]
        if self.vocab.get("concept_relationship"):
            parts.append(f"SELECT r.concept_id_1, i.name, i.category FROM omop_concept_relationship r "
                         f"JOIN {ing} i ON r.concept_id_2 = i.concept_id "
                         "WHERE r.relationship_id = 'RxNorm has ing'")
        if self.vocab.get("concept_ancestor"):
            parts.append(f"SELECT a.descendant_concept_id, i.name, i.category FROM omop_concept_ancestor a "
                         f"JOIN {ing} i ON a.ancestor_concept_id = i.concept_id")
        return (f"(SELECT concept_id, min(name) AS name, min(category) AS category FROM "
                f"({' UNION ALL '.join(parts)}) x(concept_id, name, category) GROUP BY concept_id)")

    # -- the tables

    def measurement(self, families: Mapping[str, str]) -> str:
        t = self.f.text()
        src, unit = _text("measurement_source_value", families, t), _text("unit_source_value", families, t)
        unit_join = ""
        if "unit_concept_id" in families:
            unit_join = f"LEFT JOIN {self._units()} u ON u.concept_id = CAST(x.unit_concept_id AS BIGINT)"
            unit = f"coalesce(u.code, {unit})"
        raw = f"CAST(x.value_as_number AS {t})" if "value_as_number" in families else f"CAST(NULL AS {t})"
        return (
            f"SELECT {_keys('measurement_id')}, x.measurement_date, "
            f"coalesce(mc.fact, ls.fact, {src}) AS measurement_source_value, "
            f"{_number('value_as_number', families, self.f)}, {ucum_sql(unit)} AS unit_source_value, "
            f"{_number('range_low', families, self.f)}, {_number('range_high', families, self.f)}, "
            f"CAST(x.measurement_concept_id AS BIGINT) AS concept_id, {raw} AS raw_value "
            "FROM omop_measurement x "
            f"LEFT JOIN {self._measurement_concepts()} mc "
            "ON mc.concept_id = CAST(x.measurement_concept_id AS BIGINT) "
            f"LEFT JOIN {self._loinc_sources()} ON ls.code = {src} {unit_join}")

    def condition(self, families: Mapping[str, str]) -> str:
        src = _text("condition_source_value", families, self.f.text())
        return (f"SELECT {_keys('condition_occurrence_id')}, x.condition_start_date, "
                f"coalesce(d.dx, {src}) AS condition_source_value, "
                f"x.condition_concept_id AS concept_id FROM omop_condition_occurrence x "
                f"LEFT JOIN {self.diagnosis_concepts()} d ON d.concept_id = x.condition_concept_id")

    def drug(self, families: Mapping[str, str]) -> str:
        src = _text("drug_source_value", families, self.f.text())
        # Longest names first: "dinutuximab beta" before "dinutuximab".
        named = sorted(self.map.ingredients.items(), key=lambda nc: -len(nc[0]))
        by_text = " ".join(f"WHEN lower({src}) LIKE {text_sql('%' + n + '%')} THEN {text_sql(c)}"
                           for n, c in named)
        by_name = " ".join(f"WHEN lower({src}) LIKE {text_sql('%' + n + '%')} THEN {text_sql(n)}"
                           for n, _ in named)
        join, cat, name = "", "NULL", "NULL"
        if self.vocab.get("concept"):
            join = f"LEFT JOIN {self._ingredients()} i ON i.concept_id = x.drug_concept_id"
            cat, name = "i.category", "i.name"
        end = "x.drug_exposure_end_date" if "drug_exposure_end_date" in families else "CAST(NULL AS DATE)"
        return (f"SELECT {_keys('drug_exposure_id')}, x.drug_exposure_start_date, "
                f"{end} AS drug_exposure_end_date, "
                f"coalesce({name}, CASE {by_name} END, {src}) AS drug_source_value, "
                f"coalesce({cat}, CASE {by_text} END, 'other') AS therapy_category, "
                f"CAST(NULL AS BOOLEAN) AS chronic, x.drug_concept_id AS concept_id "
                f"FROM omop_drug_exposure x {join}")

    def observation(self, families: Mapping[str, str]) -> str:
        src = _text("observation_source_value", families, self.f.text())
        loincs = values_sql([(text_sql(c), text_sql(s)) for c, s in self.map.performance.items()]
                            or [("NULL", "NULL")], ("code", "scale"), "p")
        join = f"LEFT JOIN {loincs} ON p.code = {src}"
        scale = "p.scale"
        if self.vocab.get("concept"):
            join += (f" LEFT JOIN (SELECT c.concept_id, p2.scale FROM omop_concept c JOIN "
                     f"{loincs.replace(' AS p(', ' AS p2(')} ON c.concept_code = p2.code "
                     "WHERE c.vocabulary_id = 'LOINC') pc ON pc.concept_id = x.observation_concept_id")
            scale = "coalesce(pc.scale, p.scale)"
        t = self.f.text()
        cols = [_keys("observation_id"), "x.observation_date",
                "x.observation_datetime" if "observation_datetime" in families
                else "CAST(NULL AS TIMESTAMP) AS observation_datetime",
                f"coalesce({scale}, {src}) AS observation_source_value",
                _number("value_as_number", families, self.f),
                *(f"CAST(x.{c} AS {t}) AS {c}" if c in families else f"CAST(NULL AS {t}) AS {c}"
                  for c in ("value_as_string", "unit_source_value", "qualifier_source_value")),
                "x.observation_concept_id AS concept_id"]
        return f"SELECT {', '.join(cols)} FROM omop_observation x {join}"

    def person(self, families: Mapping[str, str]) -> str:
        birth = "birth_datetime" in families

        def part(column: str, fn: str) -> str:
            value = f"CAST({column} AS BIGINT)" if column in families else "CAST(NULL AS BIGINT)"
            return f"coalesce({value}, {fn}(CAST(birth_datetime AS DATE))) AS {column}" if birth else \
                f"{value} AS {column}"

        gender = ("CAST(gender_concept_id AS BIGINT)" if "gender_concept_id" in families
                  else "CAST(NULL AS BIGINT)")
        return (f"SELECT CAST(person_id AS BIGINT) AS person_id, {gender} AS gender_concept_id, "
                f"{part('year_of_birth', 'year')}, {part('month_of_birth', 'month')}, "
                f"{part('day_of_birth', 'day')} FROM omop_person")

    def table(self, name: str, families: Mapping[str, str]) -> str:
        return {"measurement": self.measurement, "condition_occurrence": self.condition,
                "drug_exposure": self.drug, "observation": self.observation,
                "person": self.person}[name](families)


def text_number_query() -> str:
    """Measurement rows of a fact screening uses whose value is text that is not a number:
    (concept, text, rows, an example measurement_id)."""
    facts = ", ".join(text_sql(f) for f in MEASUREMENT_FACTS)
    return ("SELECT concept_id, min(raw_value), count(*), min(measurement_id) FROM raw_measurement "
            "WHERE raw_value IS NOT NULL AND trim(raw_value) <> '' AND value_as_number IS NULL "
            f"AND measurement_source_value IN ({facts}) GROUP BY concept_id ORDER BY 3 DESC LIMIT 1")




# ---------------------------------------------------------------------------
# Reference ranges for results that carry none

#: Columns of a reference-range table (given with the data as ``reference_range`` or by
#: the site with ``--ranges``): one range per fact, unit, sex and age band in years
#: [age_low_years, age_high_years); an empty sex or bound matches every person.
RANGE_COLUMNS = ("fact", "sex", "age_low_years", "age_high_years", "low", "high", "unit", "source")
OWN_RANGE = "the result's own reference range"


def ranged_measurement_sql(columns: list[str], f: Flavour) -> str:
    """``raw_measurement`` with ``range_low``/``range_high`` taken from ``td_ranges`` where
    the row has neither, and ``range_source`` saying which range it is and where from.

    ``columns`` are those of ``raw_measurement_unranged``; ``raw_person`` gives sex and birth.
    """
    keep = [f"m.{f.q(c)}" for c in columns if c not in ("range_low", "range_high")]
    own = "(m.range_low IS NOT NULL OR m.range_high IS NOT NULL)"
    day = f.try_date("m.measurement_date")
    y, mo, d = ("CAST(p.year_of_birth AS INT)", "CAST(p.month_of_birth AS INT)",
                "CAST(p.day_of_birth AS INT)")
    age = (f"(year({day}) - {y} - CASE WHEN month({day}) < {mo} OR (month({day}) = {mo} AND "
           f"day({day}) < {d}) THEN 1 ELSE 0 END)")
    sex = ("CASE CAST(p.gender_concept_id AS BIGINT) WHEN 8507 THEN 'male' WHEN 8532 THEN 'female' "
           "END")
    return (f"SELECT {', '.join(keep)}, "
            f"CASE WHEN {own} THEN CAST(m.range_low AS DOUBLE) ELSE r.low END AS range_low, "
            f"CASE WHEN {own} THEN CAST(m.range_high AS DOUBLE) ELSE r.high END AS range_high, "
            f"CASE WHEN {own} THEN {text_sql(OWN_RANGE)} ELSE r.source END AS range_source, "
            "r.range_id "
            "FROM raw_measurement_unranged m "
            "LEFT JOIN raw_person p ON CAST(p.person_id AS BIGINT) = CAST(m.person_id AS BIGINT) "
            f"LEFT JOIN td_ranges r ON NOT {own} AND r.fact = m.measurement_source_value "
            "AND r.unit IS NOT DISTINCT FROM m.unit_source_value "
            f"AND (r.sex IS NULL OR r.sex = {sex}) "
            f"AND (r.age_low_years IS NULL OR {age} >= r.age_low_years) "
            f"AND (r.age_high_years IS NULL OR {age} < r.age_high_years)")


def ranges_sql(source: str, f: Flavour) -> str:
    """``td_ranges`` from a registered reference-range table, units in the parser's spelling."""
    t = f.text()
    return (f"SELECT row_number() OVER (ORDER BY fact, sex, age_low_years, unit) AS range_id, "
            f"CAST(fact AS {t}) AS fact, CAST(nullif(trim(CAST(sex AS {t})), '') AS {t}) AS sex, "
            "CAST(age_low_years AS DOUBLE) AS age_low_years, "
            "CAST(age_high_years AS DOUBLE) AS age_high_years, CAST(low AS DOUBLE) AS low, "
            f"CAST(high AS DOUBLE) AS high, {ucum_sql(f'CAST(unit AS {t})')} AS unit, "
            f"CAST(source AS {t}) AS source FROM {source}")


def range_overlap_query() -> str:
    """A measurement row that two reference ranges fit (the table must not overlap)."""
    return ("SELECT measurement_id, measurement_source_value, count(*) FROM raw_measurement "
            "WHERE range_id IS NOT NULL GROUP BY measurement_id, measurement_source_value "
            "HAVING count(*) > 1 LIMIT 1")


__all__ = ["EXTRA_TABLES", "OWN_RANGE", "RANGE_COLUMNS", "VOCABULARY", "Translator", "is_coded",
           "range_overlap_query", "ranged_measurement_sql", "ranges_sql", "text_number_query",
           "ucum_sql"]
