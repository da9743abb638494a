"""The compiled plan of a population screening, as SQL for DuckDB or Spark.

A plan has two parts:

* **facts** — statements that derive, once for every patient, the trial-independent facts
  from the OMOP-shaped tables (``src_person``, ``src_measurement``, ...): the latest value on
  or before the screening date of every fact the trials use, with its age in days; age in
  completed years and months; the ×ULN ratio from each result's own reference range; the
  bedside Schwartz eGFR; the treatment history. The result is one table, ``td_facts``.
* **trials** — one query per trial over ``td_facts``: it applies the trial's look-back
  windows (a value older than the window is missing), evaluates every criterion with the
  criteria compiler (:func:`trialdesk.criteria.sql.to_sql`, Kleene logic as SQL NULL) and
  returns one compact row per patient: the verdict, the arm, and bitmasks of the criteria
  met and unknown and of the facts that have no value, by index.

The semantics are those of :func:`trialdesk.facts.normalise.normalise` and
:func:`trialdesk.criteria.verdict.screen`, rule for rule; a test compares the two on a
synthetic population. Nothing here does I/O: the engines run the SQL.

>>> from trialdesk.protocol.load import default_protocol_dir, load_protocol
>>> plan = build_plan([load_protocol(default_protocol_dir() / "rumcess.yaml")],
...                   as_of=datetime(2026, 11, 21))
>>> [name for name, _ in plan.steps], plan.trials[0].criteria[0]
(['td_facts'], ('I1', 'inclusion'))
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from trialdesk.clinical import units
from trialdesk.clinical.renal import SCHWARTZ_K, SCHWARTZ_MAX_AGE_YEARS, SCHWARTZ_MIN_AGE_YEARS
from trialdesk.criteria.ast import Expr, facts_of
from trialdesk.criteria.sql import Dialect, to_sql
from trialdesk.errors import ProtocolError, UnitError
from trialdesk.facts.dictionary import (
    DIAGNOSES,
    FACTS,
    HAEMATOLOGICAL,
    ONCOHAEMATOLOGICAL,
    FactKind,
    FactType,
)
from trialdesk.protocol.load import CompiledProtocol
from trialdesk.screening.flavour import (
    Flavour,
    date_sql,
    number_sql,
    text_sql,
    timestamp_sql,
    values_sql,
)
from trialdesk.screening.omop import (
    ATTEST_PREFIX,
    DIAGNOSIS_DETAILS,
    DISEASE_FIELDS,
    MEASUREMENT_FACTS,
    OBSERVATION_SOURCES,
    ObservationSource,
    Tie,
    ValueColumn,
    measurement_sources,
    value_vocabulary,
)

#: Criteria and facts per trial are indexed by bits of a signed 64-bit integer.
MAX_BITS = 63

VERDICTS = ("ineligible", "eligible", "undetermined")
TREATMENT_FACTS = ("prior_therapy_categories", "last_immunotherapy_date", "chronic_immunosuppression")
XULN_LABS = ("alt", "ast", "alp", "bilirubin", "creatinine")


# ---------------------------------------------------------------------------
# What the input holds (gathered by the engine before planning)


@dataclass(frozen=True)
class InputStats:
    """Facts about the input that the plan depends on.

    ``units``: every unit spelling seen per fact (None for no unit); ``small_ids``: per
    table, whether every id lies in [0, 2⁴⁰); ``per_trial``: the (source, trial) pairs of
    consent and attestation observations present; ``tables``: the tables present.
    """

    tables: frozenset[str] = frozenset({"person"})
    units: Mapping[str, tuple[str | None, ...]] = field(default_factory=dict)
    small_ids: Mapping[str, bool] = field(default_factory=dict)
    per_trial: frozenset[tuple[str, str]] = frozenset()


def unit_factor(fact: str, unit: str | None) -> float | None:
    """The multiplier from ``unit`` to the fact's canonical unit (None: the fact has none).

    The per-patient path converts each value with pint and rounds to 12 significant digits;
    the plan multiplies by this factor and rounds the same way, which gives the same numbers.

    >>> unit_factor("creatinine", "umol/L")
    0.011312
    >>> unit_factor("inr", None) is None
    True
    """
    definition = FACTS[fact]
    if definition.unit is None or definition.unit == "ULN":
        if unit not in (None, "", definition.unit):
            raise UnitError(f"{fact} has no unit, got '{unit}'")
        return None
    if not unit:
        raise UnitError(f"{fact} needs a unit (e.g. {definition.unit})")
    ureg = units.registry()
    source, target = units.parse_unit(unit), units.parse_unit(definition.unit)
    quantity = ureg.Quantity(1.0, source)
    try:
        factor = float(quantity.to(target).magnitude)
        zero = float(ureg.Quantity(0.0, source).to(target).magnitude)
    except Exception:
        molar = units.MOLAR_MASS_G_PER_MOL.get(definition.substance or "")
        if molar is None:
            raise UnitError(f"unit '{unit}' does not fit {fact} ({definition.unit})") from None
        try:
            factor = float(quantity.to(target, "chemistry", mw=molar * ureg("g/mol")).magnitude)
        except Exception:
            raise UnitError(f"unit '{unit}' does not fit {fact} ({definition.unit})") from None
        zero = 0.0
    if zero != 0.0:
        raise UnitError(f"unit '{unit}' of {fact} is not a plain multiple of {definition.unit}")
    return factor


# ---------------------------------------------------------------------------
# Which facts the trials need


def rule_facts(compiled: CompiledProtocol) -> list[str]:
    """Facts named by a trial's criteria, in order of first use (the bit order)."""
    seen: dict[str, None] = {}
    for _, criterion in compiled.protocol.criteria:
        for name in facts_of(compiled.rules[criterion.id]):
            seen.setdefault(name, None)
    return list(seen)


def _all_facts(compiled: CompiledProtocol) -> set[str]:
    names = set(rule_facts(compiled))
    for expr in compiled.arm_rules.values():
        names.update(facts_of(expr))
    return names


def _dependencies(names: Iterable[str]) -> set[str]:
    out = set(names)
    for name in list(out):
        if name.endswith("_x_uln"):
            out.add(name.removesuffix("_x_uln"))
        elif name == "gfr":
            out.update({"measured_gfr", "height", "creatinine"})
        elif name == "performance_score":
            out.update({"lansky", "karnofsky"})
        elif name == "pregnant":
            out.update({"sex", "childbearing_potential"})
        elif name in ("diagnosis_category", "oncohaematological", *DIAGNOSIS_DETAILS):
            out.add("primary_diagnosis")
    return out


def window(compiled: CompiledProtocol, fact: str) -> int:
    """The trial's look-back window for a dated fact, in days."""
    kind = FACTS[fact].kind.value if fact in FACTS else "other"
    return compiled.protocol.eligibility.lookback.days_for(fact, kind)


def fingerprint(compiled: CompiledProtocol) -> str:
    """A hash of everything in a protocol that screening depends on."""
    p = compiled.protocol
    doc = {"id": p.id, "version": p.version,
           "criteria": [(k, c.id, c.expression) for k, c in p.criteria],
           "arms": [(a.id, a.assignment.rule, a.assignment.randomisation) for a in p.arms],
           "lookback": p.eligibility.lookback.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------
# The plan


@dataclass(frozen=True)
class TrialPlan:
    """One trial's query and the index of its bitmasks."""

    trial_id: str
    version: str
    fingerprint: str
    criteria: tuple[tuple[str, str], ...]  # (id, kind), bit i = criterion i
    facts: tuple[str, ...]  # bit j of absent_facts = fact j
    arms: tuple[str, ...]
    randomised: bool
    sql: str

    def sql_from(self, table: str) -> str:
        """The query over another table of facts (e.g. only the patients to re-screen)."""
        marker = "\n  FROM td_facts) g)"
        assert self.sql.count(marker) == 1
        return self.sql.replace(marker, f"\n  FROM {table}) g)")


@dataclass(frozen=True)
class TrialGroup:
    """Trials evaluated together (DuckDB): one query over ``td_facts`` evaluates every
    distinct criterion of the trials once, and every distinct (criterion, bit) term of their
    bitmasks once, and is kept as table ``name`` with each trial's result columns; then
    ``writes[i]`` selects the rows of the plan's trial ``trials[i]`` from it, as its
    :attr:`TrialPlan.sql` would."""

    name: str
    sql: str
    trials: tuple[int, ...]
    writes: tuple[str, ...]


@dataclass(frozen=True)
class PopulationPlan:
    """The statement that builds ``td_facts``, then one query per trial (and, on DuckDB,
    the same trials in groups that share their criteria)."""

    flavour: Flavour
    as_of: datetime
    steps: tuple[tuple[str, str], ...]  # (table name, SELECT)
    trials: tuple[TrialPlan, ...]
    dated: Mapping[str, tuple[int, ...]]  # dated fact → the distinct windows of the trials
    groups: tuple[TrialGroup, ...] = ()

    @property
    def on(self) -> date:
        return self.as_of.date()

    def show(self) -> str:
        """The whole plan as SQL text, the way it will run."""
        parts = [f"-- population screening plan ({self.flavour.name}), "
                 f"as of {self.as_of.isoformat(timespec='minutes')}"]
        parts += [f"CREATE TABLE {name} AS\n{sql};" for name, sql in self.steps]
        if not self.groups:
            parts += [f"-- trial {t.trial_id} {t.version}\n{t.sql};" for t in self.trials]
        for group in self.groups:
            ids = ", ".join(self.trials[k].trial_id for k in group.trials)
            parts.append(f"-- trials {ids}, evaluated together\n"
                         f"CREATE TABLE {group.name} AS\n{group.sql};")
            parts += [f"-- trial {self.trials[k].trial_id} {self.trials[k].version}\n{sql};"
                      for k, sql in zip(group.trials, group.writes, strict=True)]
            parts.append(f"DROP TABLE {group.name};")
        return "\n\n".join(parts)


class _Columns:
    """Collects the columns of ``td_facts``."""

    def __init__(self) -> None:
        self.items: dict[str, str] = {}

    def add(self, name: str, sql: str) -> None:
        self.items.setdefault(name, sql)


def build_plan(
    protocols: Sequence[CompiledProtocol],
    *,
    as_of: datetime,
    flavour: Flavour = Flavour(),
    stats: InputStats = InputStats(),
) -> PopulationPlan:
    """Compile ``protocols`` into a plan over the input ``stats`` describes."""
    for compiled in protocols:
        _check_size(compiled)
    needed = set().union(*(_all_facts(c) for c in protocols)) if protocols else set()
    base = _dependencies(needed)
    on = as_of.date()
    f = flavour
    q = f.q
    steps: list[tuple[str, str]] = []
    cols = _Columns()
    on_sql = date_sql(on)

    # Person: birth date and sex; ages at the screening date.
    steps.append(("td_person", (
        "SELECT person_id, "
        "make_date(CAST(year_of_birth AS INT), CAST(month_of_birth AS INT), "
        "CAST(day_of_birth AS INT)) AS birth, "
        "CASE CAST(gender_concept_id AS BIGINT) WHEN 8507 THEN 'male' WHEN 8532 THEN 'female' "
        "END AS sex FROM src_person")))
    y, m, d = on.year, on.month, on.day
    cols.add("sex", _enumerated(f, "p.sex", ("male", "female")))
    cols.add("age_years", f"({y} - year(p.birth) - CASE WHEN month(p.birth) > {m} OR "
                          f"(month(p.birth) = {m} AND day(p.birth) > {d}) THEN 1 ELSE 0 END)")
    cols.add("age_months", f"(({y} - year(p.birth)) * 12 + ({m} - month(p.birth)) - "
                           f"CASE WHEN {d} < day(p.birth) THEN 1 ELSE 0 END)")
    joins: list[str] = []

    # Diagnosis: the latest condition of the dictionary's vocabulary.
    if "primary_diagnosis" in base:
        if "condition_occurrence" in stats.tables:
            key = f.order_key("condition_start_date", "condition_occurrence_id", Tie.FIRST,
                              stats.small_ids.get("condition_occurrence", True))
            steps.append(("td_condition", (
                f"SELECT person_id, {f.arg_max('condition_source_value', key)} AS dx "
                f"FROM src_condition_occurrence WHERE condition_start_date <= {on_sql} "
                f"AND condition_source_value IN ({', '.join(text_sql(x) for x in DIAGNOSES)}) "
                "GROUP BY person_id")))
            joins.append("LEFT JOIN td_condition c ON c.person_id = p.person_id")
            dx = "c.dx"
        else:
            dx = f"CAST(NULL AS {f.text()})"
        haem = ", ".join(text_sql(x) for x in sorted(HAEMATOLOGICAL))
        onco = ", ".join(text_sql(x) for x in sorted(ONCOHAEMATOLOGICAL))
        cols.add("primary_diagnosis", _enumerated(f, dx, DIAGNOSES))
        cols.add("diagnosis_category", _enumerated(
            f, f"CASE WHEN {dx} IN ({haem}) THEN 'haematological' WHEN {dx} = 'other' "
               f"THEN 'other' WHEN {dx} IS NOT NULL THEN 'solid_tumour' END",
            ("haematological", "solid_tumour", "other")))
        cols.add("oncohaematological", f"CASE WHEN {dx} IS NOT NULL THEN {dx} IN ({onco}) END")

    dated: dict[str, set[int]] = {}

    # Measurements: the latest per fact, in the canonical unit.
    wanted_m = sorted(x for x in base if x in MEASUREMENT_FACTS)
    if wanted_m and "measurement" in stats.tables:
        steps.append(("td_measurement", _measurements_sql(f, wanted_m, stats, on)))
        joins.append("LEFT JOIN td_measurement m ON m.person_id = p.person_id")
        for name in wanted_m:
            cols.add(name, f"m.{q(name)}")
            cols.add(name + "@age", f"m.{q(name + '@age')}")
            if name in XULN_LABS:
                cols.add(name + "@ratio", f"m.{q(name + '@ratio')}")
    else:
        for name in wanted_m:
            cols.add(name, "CAST(NULL AS DOUBLE)")
            cols.add(name + "@age", "CAST(NULL AS INT)")
            if name in XULN_LABS:
                cols.add(name + "@ratio", "CAST(NULL AS DOUBLE)")
    for name in wanted_m:
        dated[name] = set()
    if "gfr" in base:
        # Bedside Schwartz: eGFR = 0.413 × height (cm) / creatinine (mg/dL)
        # (Schwartz 2009, JASN 20:629), the constant from trialdesk.clinical.renal.
        height, creatinine = _col(cols, "height"), _col(cols, "creatinine")
        cols.add("gfr@schwartz", f"CASE WHEN {creatinine} > 0 THEN "
                 + f.round12(f"{number_sql(SCHWARTZ_K)} * {height} / {creatinine}") + " END")

    # Observations: the latest per source (and per trial for consent and attestations).
    sources = _observation_sources(base, protocols, stats)
    if sources and "observation" in stats.tables:
        steps.append(("td_observation", _observations_sql(f, sources, stats, on)))
        joins.append("LEFT JOIN td_observation o ON o.person_id = p.person_id")
        for column, (source, _) in sources.items():
            vocabulary = (value_vocabulary(source.fact) if source.type is FactType.STRING
                          and not source.per_trial else None)
            for out, _kind in _observation_outputs(column, source):
                if out.endswith("@age"):
                    cols.add(out, f"o.{q(out)}")
                else:  # the input checks refused any value outside the vocabulary
                    cols.add(out, _enumerated(f, f"o.{q(out)}", vocabulary or ()))
    else:
        for column, (source, _) in sources.items():
            for out, sql_type in _observation_outputs(column, source):
                cols.add(out, f"CAST(NULL AS {_sql_type(sql_type, f)})")
    for source, _ in sources.values():
        if _is_dated(source):
            dated[source.fact] = set()

    if "hours_since_septic_shock_onset" in base:
        onset = cols.items.get("septic_shock_onset")
        seconds = f.seconds(timestamp_sql(as_of), onset or "CAST(NULL AS TIMESTAMP)")
        cols.add("hours_since_septic_shock_onset",
                 f"CASE WHEN {seconds} >= 0 THEN round({seconds} / 3600.0, 4) END")

    # Treatments.
    if base & set(TREATMENT_FACTS):
        marker = cols.items.get("treatment_history_recorded", "CAST(NULL AS BOOLEAN)")
        if "drug_exposure" in stats.tables:
            steps.append(("td_drug", _drugs_sql(f, on)))
            joins.append("LEFT JOIN td_drug dr ON dr.person_id = p.person_id")
            recorded = f"(dr.person_id IS NOT NULL OR coalesce({marker}, FALSE))"
            cols.add("prior_therapy_categories",
                     f"CASE WHEN {recorded} THEN coalesce(dr.cats, {f.empty_text_list()}) END")
            cols.add("last_immunotherapy_date", f"CASE WHEN {recorded} THEN dr.last_immuno END")
            cols.add("chronic_immunosuppression",
                     f"CASE WHEN {recorded} THEN coalesce(dr.chronic, FALSE) END")
        else:
            recorded = f"coalesce({marker}, FALSE)"
            cols.add("prior_therapy_categories",
                     f"CASE WHEN {recorded} THEN {f.empty_text_list()} END")
            cols.add("last_immunotherapy_date", "CAST(NULL AS DATE)")
            cols.add("chronic_immunosuppression", f"CASE WHEN {recorded} THEN FALSE END")

    for compiled in protocols:
        for name in dated:
            dated[name].add(window(compiled, name))

    # Facts under a trial's look-back windows, computed once for every distinct window:
    # trials (and variants) with the same windows share the columns.
    available = set(cols.items)
    shared: dict[str, str] = {}  # expression → column
    # DuckDB evaluates the trials in groups (_groups), each of which applies the windows its
    # trials need itself: td_facts holds no windowed column (and a trial's own query applies
    # its windows inline). The other engines keep one windowed column per distinct window.
    inline = f.name == "duckdb"
    trials = tuple(_trial_plan(c, f, on, available, None if inline else shared)
                   for c in protocols)
    groups = _groups(protocols, f, on, available) if inline else ()
    select = ",\n  ".join(f"{sql} AS {q(name)}" for name, sql in cols.items.items())
    windowed = "".join(f",\n  {sql} AS {q(name)}" for sql, name in shared.items())
    # One statement: the parts are common table expressions, so nothing but the facts
    # table itself is ever materialised.
    ctes = ",\n".join(f"{name} AS (\n{sql}\n)" for name, sql in steps)
    facts_sql = (f"WITH {ctes}\nSELECT t.*{windowed}\nFROM (SELECT p.person_id, "
                 f"p.birth AS {q('@birth')},\n  {select}\nFROM td_person p\n  "
                 + "\n  ".join(joins) + f"\nWHERE p.birth <= {on_sql}) t")
    return PopulationPlan(f, as_of, (("td_facts", facts_sql),), trials,
                          {k: tuple(sorted(v)) for k, v in dated.items()}, groups)


def _enumerated(f: Flavour, value: str, vocabulary: Sequence[str]) -> str:
    """A text fact whose values all come from ``vocabulary``: a DuckDB ENUM (compared with
    text, it compares as text; the trials' comparisons and CASEs are cheaper on it), the
    text itself on the other engines or without a vocabulary.

    >>> _enumerated(Flavour("duckdb"), "p.sex", ("male", "female"))
    "CAST(p.sex AS ENUM('male', 'female'))"
    >>> _enumerated(Flavour("spark"), "p.sex", ("male", "female"))
    'p.sex'
    """
    if f.name != "duckdb" or not vocabulary:
        return value
    kind = "ENUM(" + ", ".join(text_sql(v) for v in dict.fromkeys(vocabulary)) + ")"
    return f"CAST({value} AS {kind})"


def _col(cols: _Columns, name: str) -> str:
    return cols.items.get(name, "CAST(NULL AS DOUBLE)")


def _check_size(compiled: CompiledProtocol) -> None:
    n_criteria = len(compiled.protocol.criteria)
    n_facts = len(rule_facts(compiled))
    if n_criteria > MAX_BITS or n_facts > MAX_BITS or len(compiled.protocol.arms) > MAX_BITS:
        raise ProtocolError(
            f"population screening handles up to {MAX_BITS} criteria, facts and arms per trial; "
            f"this one has {n_criteria} criteria and {n_facts} facts", where=compiled.path or
            compiled.id)


def _sql_type(kind: FactType | str, f: Flavour) -> str:
    return {FactType.NUMBER: "DOUBLE", FactType.INTEGER: "DOUBLE", FactType.BOOLEAN: "BOOLEAN",
            FactType.STRING: f.text(), FactType.DATE: "TIMESTAMP", "age": "INT"}[kind]


def _null(name: str, f: Flavour) -> str:
    definition = FACTS.get(name)
    if definition is None or definition.type is FactType.BOOLEAN:
        return "CAST(NULL AS BOOLEAN)"
    if definition.type is FactType.SET:
        return f"CAST(NULL AS {'ARRAY<STRING>' if f.name == 'spark' else 'VARCHAR[]'})"
    if definition.type is FactType.DATE:
        return "CAST(NULL AS DATE)"
    if definition.type is FactType.STRING:
        return f"CAST(NULL AS {f.text()})"
    return "CAST(NULL AS DOUBLE)"


def _is_dated(source: ObservationSource) -> bool:
    if source.per_trial or source.fact in DISEASE_FIELDS or source.fact in DIAGNOSIS_DETAILS:
        return False
    if source.fact in ("septic_shock_onset", "treatment_history_recorded",
                       "childbearing_potential"):
        return False
    if source.fact == "pregnant":
        return True
    return FACTS[source.fact].dated


def _observation_outputs(column: str, source: ObservationSource
                         ) -> list[tuple[str, FactType | str]]:
    """The ``td_facts`` columns one observation source yields."""
    kind = source.type
    if source.fact == "pregnant":
        return [("pregnant@value", FactType.BOOLEAN), ("pregnant@age", "age")]
    out: list[tuple[str, FactType | str]] = [(column, kind)]
    if _is_dated(source):
        out.append((column + "@age", "age"))
    return out


def _observation_sources(base: set[str], protocols: Sequence[CompiledProtocol],
                         stats: InputStats) -> dict[str, tuple[ObservationSource, str]]:
    """Output column → (source, trial qualifier or '')."""
    out: dict[str, tuple[ObservationSource, str]] = {}
    for source in OBSERVATION_SOURCES.values():
        if source.per_trial:
            continue
        wanted = source.fact in base or (
            source.fact == "septic_shock_onset" and "hours_since_septic_shock_onset" in base) or (
            source.fact == "treatment_history_recorded" and base & set(TREATMENT_FACTS))
        if wanted:
            out[source.fact] = (source, "")
    for compiled in protocols:
        names = _all_facts(compiled)
        for name in sorted(names):
            if name == "consent_signed":
                src = "consent"
            elif name.startswith(ATTEST_PREFIX):
                src = name
            else:
                continue
            if (src, compiled.id) in stats.per_trial:
                column = f"{name}@{compiled.id}"
                out[column] = (ObservationSource(src, name, FactType.BOOLEAN, per_trial=True),
                               compiled.id)
    return out


def _canonical(f: Flavour, value: str, factor: str) -> str:
    """``value × factor`` rounded to 12 significant digits, as the per-patient path does.

    A product that is already a short decimal (the nearest double to n/10⁴ with
    |n| < 10¹²) rounds to itself, so the formatting is only paid for the others.
    """
    product = f"({value} * {factor})"
    return (f"CASE WHEN abs({product}) < 1.0e8 AND "
            f"round({product} * 10000.0e0) / 10000.0e0 = {product} "
            f"THEN {product} ELSE {f.round12(product)} END")


#: A (person, small id) pair grouped as one integer: person_id × 2¹⁰ + id. Grouping on one
#: integer is several times faster than on two columns.
PAIR_BITS = 10


def _pair_key(f: Flavour, person: str, small: str, stats: InputStats) -> tuple[str, str, str]:
    """(person_id, id, GROUP BY) expressions for grouping rows by person and a small id."""
    if not stats.small_ids.get("person_pair", False):
        return person, small, f"{person}, {small}"
    key = f"({person} * {1 << PAIR_BITS} + {small})"
    return (f.int_div(key, 1 << PAIR_BITS), f"({key} % {1 << PAIR_BITS})", key)


def _units_table(pairs: Sequence[tuple[str, int]], stats: InputStats) -> str:
    """Inline table (id, unit, factor) for the facts ``pairs`` (fact, id) that have a unit."""
    rows = [("-1", "''", "CAST(NULL AS DOUBLE)")]  # keeps the table non-empty
    for fact, i in pairs:
        if FACTS[fact].unit in (None, "ULN"):
            continue
        for unit in stats.units.get(fact, ()):
            factor = unit_factor(fact, unit)
            if factor is not None:
                rows.append((str(i), text_sql(unit or ""), number_sql(factor)))
    return values_sql(rows, ("id", "unit", "factor"), "u")


def _measurements_sql(f: Flavour, wanted: list[str], stats: InputStats, on: date) -> str:
    q = f.q
    ids = {fact: i for i, fact in enumerate(wanted)}
    sources = [(s, ids[fact]) for s, fact in measurement_sources().items() if fact in ids]
    mapping = values_sql([(text_sql(s), str(i)) for s, i in sources], ("source", "fid"), "s")
    key = f.order_key("x.measurement_date", "x.measurement_id", Tie.FIRST,
                      stats.small_ids.get("measurement", True))
    # The latest row per patient and fact: its value, the factor of its unit into the fact's
    # unit (a number aggregates faster than the unit's text), its upper limit of normal.
    person, fid, group = _pair_key(f, "x.person_id", "s.fid", stats)
    latest = (f"SELECT {person} AS person_id, {fid} AS fid, "
              f"{f.arg_max('x.value_as_number', key)} AS v, "
              f"{f.arg_max_null('u.factor', key)} AS factor, "
              f"{f.arg_max_null('x.range_high', key)} AS rh, max(x.measurement_date) AS d "
              f"FROM src_measurement x JOIN {mapping} ON x.measurement_source_value = s.source "
              f"LEFT JOIN {_units_table(list(ids.items()), stats)} "
              "ON u.id = s.fid AND u.unit = coalesce(x.unit_source_value, '') "
              f"WHERE x.measurement_date <= {date_sql(on)} AND x.value_as_number IS NOT NULL "
              f"GROUP BY {group}")
    # Into the fact's unit before pivoting; ×ULN from the result's own reference range, in
    # the result's own unit.
    canonical = f"CASE WHEN l.factor IS NULL THEN l.v ELSE {_canonical(f, 'l.v', 'l.factor')} END"
    ratio = _canonical(f, "l.v / l.rh", "1.0e0")
    converted = (f"SELECT l.person_id, l.fid, {canonical} AS v, {f.days(date_sql(on), 'l.d')} "
                 f"AS a, CASE WHEN l.rh > 0 THEN {ratio} END AS ratio FROM ({latest}) l")
    pivots, ages = _packed_ages(f, "fid", [(0, len(ids))], "a")
    columns = []
    for fact, i in ids.items():
        pivots.append(f"{f.pick('v', f'fid = {i}')} AS {q(fact)}")
        columns += [q(fact), f"{ages[i]} AS {q(fact + '@age')}"]
        if fact in XULN_LABS:
            pivots.append(f"{f.pick('ratio', f'fid = {i}')} AS {q(fact + '@ratio')}")
            columns.append(q(fact + "@ratio"))
    pivot = f"SELECT person_id, {', '.join(pivots)} FROM ({converted}) c GROUP BY person_id"
    return f"SELECT person_id, {', '.join(columns)} FROM ({pivot}) p"


#: Ages in days at the screening date (never negative: later rows are left out) go through
#: the pivots packed three to an integer, each as age + 1 in 21 bits (0: none; 2²¹ days is
#: over 5,000 years): one aggregate for three facts' dates.
_AGE_BITS, _AGES_PER_WORD = 21, 3


def _packed_ages(f: Flavour, column: str, runs: Sequence[tuple[int, int]], age: str
                 ) -> tuple[list[str], dict[int, str]]:
    """Pivot aggregates packing ``age`` for the ids in ``runs`` (half-open ranges of the id
    ``column``), and per id the expression over them that unpacks its age (NULL: none)."""
    q = f.q
    aggregates, ages = [], {}
    for low, high in runs:
        for w in range(low, high, _AGES_PER_WORD):
            end = min(w + _AGES_PER_WORD, high)
            name = q(f"#age{w}")
            slot = f.shift_left(f"CAST({age} + 1 AS BIGINT)", f"{_AGE_BITS} * ({column} - {w})")
            aggregates.append(f"bit_or(CASE WHEN {column} >= {w} AND {column} < {end} "
                              f"THEN {slot} END) AS {name}")
            for i in range(w, end):
                packed = f.shift_right(name, str(_AGE_BITS * (i - w)))
                ages[i] = f"(NULLIF({packed} & {(1 << _AGE_BITS) - 1}, 0) - 1)"
    return aggregates, ages


#: How an observation source's value travels through the latest-row aggregate (the
#: ``kind`` of the source mapping): as a number (numbers in the fact's unit, yes/no as 1/0,
#: date-times as microseconds since 1970), or as text.
_NUMBER, _YES_NO, _INSTANT, _TEXT = range(4)


def _observation_kind(source: ObservationSource) -> int:
    if source.value_column is ValueColumn.DATETIME:
        return _INSTANT
    if source.value_column is ValueColumn.NUMBER:
        return _NUMBER
    return _YES_NO if source.type is FactType.BOOLEAN else _TEXT


def _observations_sql(f: Flavour, sources: Mapping[str, tuple[ObservationSource, str]],
                      stats: InputStats, on: date) -> str:
    q = f.q
    small = stats.small_ids.get("observation", True)
    # The yes/no sources first, their values pivoted as bits (below); the dated ones first
    # among them and among the others, their ages packed (_packed_ages).
    def dated(c: str) -> bool:
        return len(_observation_outputs(c, sources[c][0])) > 1

    columns = sorted(sources, key=lambda c: (_observation_kind(sources[c][0]) != _YES_NO,
                                             not dated(c)))
    kinds = [_observation_kind(sources[c][0]) for c in columns]
    person, sid, group_by = _pair_key(f, "x.person_id", "s.sid", stats)
    # One pass over the table for every source: consent and attestations match on the trial
    # in qualifier_source_value too, the other sources on their name alone.
    rows = [(text_sql(sources[c][0].source), text_sql(sources[c][1]), str(i),
             "TRUE" if sources[c][0].tie is Tie.LAST else "FALSE",
             "TRUE" if sources[c][0].per_trial else "FALSE", str(kinds[i]))
            for i, c in enumerate(columns)]
    mapping = values_sql(rows, ("source", "qualifier", "sid", "tie_last", "per_trial", "kind"),
                         "s")
    on_clause = ("x.observation_source_value = s.source "
                 "AND (NOT s.per_trial OR x.qualifier_source_value = s.qualifier)")
    key = (f"CASE WHEN s.tie_last THEN "
           f"{f.order_key('x.observation_date', 'x.observation_id', Tie.LAST, small)} ELSE "
           f"{f.order_key('x.observation_date', 'x.observation_id', Tie.FIRST, small)} END")
    by_kind: dict[ValueColumn, list[str]] = {}
    for i, c in enumerate(columns):
        by_kind.setdefault(sources[c][0].value_column, []).append(str(i))
    has_value = " OR ".join(f"(s.sid IN ({', '.join(sids)}) AND x.{kind.value} IS NOT NULL)"
                            for kind, sids in sorted(by_kind.items()))
    # Each row's value as one number (in the fact's unit, converted row by row: the latest
    # row's is the same), or as text: two plain aggregates instead of one of a struct of
    # every value column, and a pivot over numbers.
    bearing = [(sources[c][0].fact, i) for i, c in enumerate(columns)
               if kinds[i] == _NUMBER and _unit_bearing(sources[c][0])]
    number = "x.value_as_number"
    if bearing:
        number = (f"CASE WHEN u.factor IS NULL THEN {number} "
                  f"ELSE {_canonical(f, number, 'u.factor')} END")
    value = (f"CASE s.kind WHEN {_NUMBER} THEN {number} "
             f"WHEN {_YES_NO} THEN CASE WHEN x.value_as_string = 'true' THEN 1.0e0 ELSE 0.0e0 END "
             f"WHEN {_INSTANT} THEN {f.epoch_us('x.observation_datetime')} END")
    units = (f"LEFT JOIN {_units_table(bearing, stats)} "
             "ON u.id = s.sid AND u.unit = coalesce(x.unit_source_value, '') " if bearing else "")
    aggregates = [f"{f.arg_max_null(value, key)} AS v"]
    if _TEXT in kinds:
        text = f"CASE WHEN s.kind = {_TEXT} THEN x.value_as_string END"
        aggregates.append(f"{f.arg_max_null(text, key)} AS s")
    latest = (
        f"SELECT {person} AS person_id, {sid} AS sid, {', '.join(aggregates)}, "
        f"max(x.observation_date) AS d "
        f"FROM src_observation x JOIN {mapping} ON {on_clause} {units}"
        f"WHERE x.observation_date <= {date_sql(on)} AND ({has_value}) "
        f"GROUP BY {group_by}")
    # The yes/no values pivoted as bits of a few integers (sid i is bit i % 62 of word
    # i // 62): which have a value, which are yes. Two aggregates per 62 sources instead of
    # one per source.
    yes_no = kinds.count(_YES_NO)
    words = []
    for w in range(0, yes_no, _WORD):
        bit = f.shift_left("CAST(1 AS BIGINT)", f"(sid - {w})")
        inside = f"sid >= {w} AND sid < {min(w + _WORD, yes_no)}"
        words.append(f"bit_or(CASE WHEN {inside} THEN {bit} END) AS {q(f'#has{w}')}")
        words.append(f"bit_or(CASE WHEN {inside} AND v = 1.0e0 THEN {bit} END) AS {q(f'#yes{w}')}")
    yes_no_dated = sum(1 for c in columns[:yes_no] if dated(c))
    other_dated = sum(1 for c in columns[yes_no:] if dated(c))
    packed, ages = _packed_ages(f, "sid", [(0, yes_no_dated),
                                           (yes_no, yes_no + other_dated)],
                                f.days(date_sql(on), "d"))
    words += packed
    pivots = []
    for i, column in enumerate(columns):
        source = sources[column][0]
        outputs = _observation_outputs(column, source)
        if kinds[i] == _YES_NO:
            w, mask = i - i % _WORD, 1 << (i % _WORD)
            typed = (f"CASE WHEN ({q(f'#has{w}')} & {mask}) <> 0 "
                     f"THEN coalesce({q(f'#yes{w}')} & {mask}, 0) <> 0 END")
        else:
            picked = q(f"#{i}")
            words.append(f"{f.pick('s' if kinds[i] == _TEXT else 'v', f'sid = {i}')} AS {picked}")
            typed = f.from_epoch_us(picked) if kinds[i] == _INSTANT else picked
        pivots.append(f"{typed} AS {q(outputs[0][0])}")
        if len(outputs) > 1:
            pivots.append(f"{ages[i]} AS {q(outputs[1][0])}")
    pivot = f"SELECT person_id, {', '.join(words)} FROM ({latest}) c GROUP BY person_id"
    return f"SELECT person_id, {', '.join(pivots)} FROM ({pivot}) p"


#: Yes/no observation sources per integer of the pivot (bits of a signed 64-bit integer).
_WORD = 62


def _unit_bearing(source: ObservationSource) -> bool:
    definition = FACTS.get(source.fact)
    return (definition is not None and definition.kind is FactKind.FINDING
            and definition.unit is not None and definition.is_numeric)


def _drugs_sql(f: Flavour, on: date) -> str:
    on_sql = date_sql(on)
    given = f"drug_exposure_start_date <= {on_sql}"
    return (
        "SELECT person_id, "
        f"{f.sorted_set(f'CASE WHEN {given} THEN therapy_category END')} AS cats, "
        f"max(CASE WHEN {given} AND therapy_category = 'immunotherapy' THEN "
        f"least(coalesce(drug_exposure_end_date, {on_sql}), {on_sql}) END) AS last_immuno, "
        f"bool_or({given} AND therapy_category IN ('corticosteroid', 'immunosuppressant') "
        "AND coalesce(chronic, FALSE) AND (drug_exposure_end_date IS NULL OR "
        f"drug_exposure_end_date >= {on_sql})) AS chronic "
        "FROM src_drug_exposure GROUP BY person_id")


# ---------------------------------------------------------------------------
# One trial


def _gated(compiled: CompiledProtocol, name: str, f: Flavour, available: set[str]) -> str:
    """The SQL of one fact for this trial: look-back windows applied."""
    q = f.q

    def fresh(fact: str, value: str | None = None) -> str:
        column = q(value or fact)
        if fact + "@age" not in available:
            return _null(fact, f)
        return f"CASE WHEN {q(fact + '@age')} <= {window(compiled, fact)} THEN {column} END"

    if name.endswith("_x_uln"):
        lab = name.removesuffix("_x_uln")
        return fresh(lab, lab + "@ratio")
    if name == "gfr":
        age = q("age_years")
        return (f"CASE WHEN {q('measured_gfr@age')} <= {window(compiled, 'measured_gfr')} "
                f"THEN {q('measured_gfr')} "
                f"WHEN {age} >= {SCHWARTZ_MIN_AGE_YEARS:g} AND {age} < {SCHWARTZ_MAX_AGE_YEARS + 1:g} "
                f"AND {q('height@age')} <= {window(compiled, 'height')} "
                f"AND {q('creatinine@age')} <= {window(compiled, 'creatinine')} "
                f"THEN {q('gfr@schwartz')} END")
    if name == "performance_score":
        # Lansky under 16, Karnofsky from 16 (FACTS.md §5); the other scale is not converted.
        return (f"CASE WHEN {q('age_years')} < 16 THEN {fresh('lansky')} "
                f"ELSE {fresh('karnofsky')} END")
    if name == "pregnant":
        # Seed 000 E10: only patients of childbearing potential need a pregnancy test.
        cbp = (q("childbearing_potential") if "childbearing_potential" in available
               else "CAST(NULL AS BOOLEAN)")
        value = (f"CASE WHEN {q('pregnant@age')} <= {window(compiled, 'pregnant')} "
                 f"THEN {q('pregnant@value')} END") if "pregnant@age" in available \
            else "CAST(NULL AS BOOLEAN)"
        return (f"CASE WHEN {q('sex')} = 'male' THEN FALSE "
                f"WHEN {q('sex')} = 'female' AND {cbp} = FALSE THEN FALSE ELSE {value} END")
    if name == "consent_signed" or name.startswith(ATTEST_PREFIX):
        column = f"{name}@{compiled.id}"
        return q(column) if column in available else "CAST(NULL AS BOOLEAN)"
    if name + "@age" in available:
        return fresh(name)
    if name in DIAGNOSIS_DETAILS:
        return f"CASE WHEN {q('primary_diagnosis')} IS NOT NULL THEN {q(name)} END"
    if name in available:
        return q(name)
    return _null(name, f)


def _bits(flags: Sequence[str]) -> str:
    if not flags:
        return "CAST(0 AS BIGINT)"
    return "CAST(" + " | ".join(f"(CASE WHEN {x} THEN {1 << i} ELSE 0 END)"
                                for i, x in enumerate(flags)) + " AS BIGINT)"


def _fact_columns(compiled: CompiledProtocol, f: Flavour, available: set[str],
                  shared: dict[str, str] | None) -> dict[str, str]:
    """Every fact the trial names → its SQL over ``td_facts``, windows applied: a column of
    the facts table, a constant NULL, or a windowed fact's expression — which, with
    ``shared``, becomes a column shared by the trials with that window (recorded there)."""
    columns = {}
    for n in sorted(_all_facts(compiled)):
        sql = _gated(compiled, n, f, available)
        if sql.startswith("CASE") and shared is not None:
            sql = f.q(shared.setdefault(sql, f"{n}#{len(shared)}"))
        columns[n] = sql
    return columns


def _trial_plan(compiled: CompiledProtocol, f: Flavour, on: date, available: set[str],
                shared: dict[str, str] | None) -> TrialPlan:
    q = f.q
    protocol = compiled.protocol
    gated = ",\n    ".join(f"{sql} AS {q(n)}"
                            for n, sql in _fact_columns(compiled, f, available, shared).items())
    criteria = [(c.id, kind) for kind, c in protocol.criteria]
    exprs: list[Expr] = [compiled.rules[c.id] for _, c in protocol.criteria]
    crit_sql = [to_sql(e, f.dialect, as_of=on) for e in exprs]
    arms = [a.id for a in protocol.arms]
    randomised = any(a.assignment.randomisation for a in protocol.arms)
    arm_sql = {a.id: to_sql(compiled.arm_rules[a.id], f.dialect, as_of=on)
               for a in protocol.arms if a.id in compiled.arm_rules}
    facts = rule_facts(compiled)

    inner = [f"{sql} AS {q(f'c{i}')}" for i, sql in enumerate(crit_sql)]
    inner += [f"{sql} AS {q(f'a{k}')}" for k, sql in enumerate(arm_sql.values())]
    carried = [q(name) for name in facts]
    inner += carried
    # The verdict from the two bitmasks (cheaper than evaluating the criteria again):
    # ineligible when an inclusion is not met or an exclusion is met; eligible when every
    # inclusion is met and every exclusion not met; otherwise undetermined.
    incl = sum(1 << i for i, (_, k) in enumerate(criteria) if k == "inclusion")
    excl = sum(1 << i for i, (_, k) in enumerate(criteria) if k == "exclusion")
    not_met = "(~(met | unknown))"
    verdict = (f"CASE WHEN ({not_met} & {incl}) <> 0 OR (met & {excl}) <> 0 THEN 0 "
               f"WHEN (met & {incl}) = {incl} AND ({not_met} & {excl}) = {excl} THEN 1 "
               "ELSE 2 END")
    if randomised or not arm_sql:
        arm = f"CAST(NULL AS {f.text()})"
        arm_none = arm
    else:
        met = [f"coalesce({q(f'a{k}')}, FALSE)" for k in range(len(arm_sql))]
        count = " + ".join(f"(CASE WHEN {x} THEN 1 ELSE 0 END)" for x in met)
        which = " ".join(f"WHEN {x} THEN {f.label(a, list(arm_sql))}"
                         for x, a in zip(met, arm_sql, strict=True))
        arm = f"CASE WHEN {count} = 1 THEN CASE {which} END END"
        arm_none = f.label(None, list(arm_sql))
    met_bits = _bits([q(f"c{i}") for i in range(len(criteria))])
    unknown_bits = _bits([f"{q(f'c{i}')} IS NULL" for i in range(len(criteria))])
    # Which facts are absent matters only where the verdict is undetermined.
    absent_bits = (f"CASE WHEN v = 2 THEN {_bits([f'{c} IS NULL' for c in carried])} "
                   "ELSE CAST(0 AS BIGINT) END")
    verdict_names = " ".join(f"WHEN {i} THEN {f.label(v, VERDICTS)}"
                             for i, v in enumerate(VERDICTS))
    rest = "".join(f", {c}" for c in carried)
    sql = (
        f"SELECT person_id, {f.label(compiled.id, [compiled.id])} AS trial_id,\n"
        f"  CASE v {verdict_names} END AS verdict,\n"
        f"  CASE WHEN v = 0 THEN {arm_none} ELSE arm END AS arm,\n"
        f"  met, unknown, {absent_bits} AS absent_facts\n"
        f"FROM (SELECT person_id, {verdict} AS v, arm, met, unknown{rest}\n"
        "FROM (SELECT person_id,\n"
        f"  {arm} AS arm,\n  {met_bits} AS met,\n"
        f"  {unknown_bits} AS unknown{rest}\n"
        "FROM (SELECT person_id,\n    " + ",\n    ".join(inner) + "\n"
        "FROM (SELECT person_id,\n    " + gated + "\n  FROM td_facts) g) c) m) r")
    return TrialPlan(compiled.id, protocol.version, fingerprint(compiled), tuple(criteria),
                     tuple(facts), tuple(arms), randomised, sql)


#: Trials per group (:class:`TrialGroup`): each keeps five result columns per trial and
#: patient in memory until its trials are written.
GROUP_SIZE = 25


@dataclass(frozen=True)
class _FactColumns(Dialect):
    """DuckDB's criteria SQL with every fact read as its SQL over ``td_facts``."""

    columns: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    def quote(self, ident: str) -> str:
        return self.columns[ident]


def _groups(protocols: Sequence[CompiledProtocol], f: Flavour, on: date, available: set[str]
            ) -> tuple[TrialGroup, ...]:
    """The trials in groups of up to :data:`GROUP_SIZE`, those with the same criteria ids
    (a protocol's variants) together, so that they share the most criteria."""
    order = sorted(range(len(protocols)), key=lambda k: (
        tuple(c.id for _, c in protocols[k].protocol.criteria), k))
    chunks = [order[i:i + GROUP_SIZE] for i in range(0, len(order), GROUP_SIZE)]
    return tuple(_group(f"td_trials_{g}", [(k, protocols[k]) for k in chunk], f, on,
                        available) for g, chunk in enumerate(chunks))


def _group(name: str, members: Sequence[tuple[int, CompiledProtocol]], f: Flavour, on: date,
           available: set[str]) -> TrialGroup:
    q = f.q
    shared: dict[str, str] = {}  # windowed fact → column, computed once for the group
    conditions: dict[str, str] = {}  # criterion or arm rule SQL → column
    # (condition or fact column, bit, which: met, unknown or absent) → column
    terms: dict[tuple[str, int, str], str] = {}
    facts: dict[str, str] = {}  # fact SQL → column (for the absent-facts bits)
    trials = []
    for k, compiled in members:
        columns = _fact_columns(compiled, f, available, shared)
        dialect = _FactColumns(columns=columns)

        def condition(expr: Expr, dialect: Dialect = dialect) -> str:
            return conditions.setdefault(to_sql(expr, dialect, as_of=on), f"x{len(conditions)}")

        protocol = compiled.protocol
        criteria = [(c.id, kind) for kind, c in protocol.criteria]
        crits = [condition(compiled.rules[c.id]) for _, c in protocol.criteria]
        arms = {a.id: condition(compiled.arm_rules[a.id]) for a in protocol.arms
                if a.id in compiled.arm_rules}
        randomised = any(a.assignment.randomisation for a in protocol.arms)
        met = [terms.setdefault((c, i, "met"), f"m{len(terms)}") for i, c in enumerate(crits)]
        unknown = [terms.setdefault((c, i, "unknown"), f"u{len(terms)}")
                   for i, c in enumerate(crits)]
        absent = [terms.setdefault((facts.setdefault(columns[n], f"f{len(facts)}"), j, "absent"),
                                   f"n{len(terms)}") for j, n in enumerate(rule_facts(compiled))]
        trials.append((k, compiled, criteria, met, unknown, arms, randomised, absent))

    def bits(columns: Sequence[str]) -> str:
        return ("CAST(" + " | ".join(q(c) for c in columns) + " AS BIGINT)" if columns
                else "CAST(0 AS BIGINT)")

    carried = "".join(f", {q(t)}" for (_, _, which), t in terms.items() if which == "absent")
    level0 = ("SELECT person_id"
              + "".join(f",\n  {sql} AS {q(c)}" for sql, c in conditions.items())
              + "".join(f",\n  {sql} AS {q(c)}" for sql, c in facts.items())
              + "\nFROM (SELECT *" + "".join(f",\n  {sql} AS {q(c)}" for sql, c in shared.items())
              + "\nFROM td_facts) w")
    arm_columns = sorted({c for *_, arms, _, _ in trials for c in arms.values()})
    level1 = ("SELECT person_id"
              + "".join(f",\n  CASE WHEN {q(c)}{'' if which == 'met' else ' IS NULL'} "
                        f"THEN {1 << i} ELSE 0 END AS {q(t)}"
                        for (c, i, which), t in terms.items())
              + "".join(f", {q(c)}" for c in arm_columns)
              + f"\nFROM ({level0}) l0")
    level2, level3, level4, writes = [], [], [], []
    for k, compiled, criteria, met, unknown, arms, randomised, absent in trials:
        t = f"t{k}#"
        if randomised or not arms:
            arm = f"CAST(NULL AS {f.text()})"
            arm_none = arm
        else:
            chosen = [f"coalesce({q(c)}, FALSE)" for c in arms.values()]
            count = " + ".join(f"(CASE WHEN {x} THEN 1 ELSE 0 END)" for x in chosen)
            which = " ".join(f"WHEN {x} THEN {f.label(a, list(arms))}"
                             for x, a in zip(chosen, arms, strict=True))
            arm = f"CASE WHEN {count} = 1 THEN CASE {which} END END"
            arm_none = f.label(None, list(arms))
        level2 += [f"{bits(met)} AS {q(t + 'met')}", f"{bits(unknown)} AS {q(t + 'unknown')}",
                   f"{arm} AS {q(t + 'arm')}"]
        incl = sum(1 << i for i, (_, kind) in enumerate(criteria) if kind == "inclusion")
        excl = sum(1 << i for i, (_, kind) in enumerate(criteria) if kind == "exclusion")
        m, u = q(t + "met"), q(t + "unknown")
        not_met = f"(~({m} | {u}))"
        verdict = (f"CASE WHEN ({not_met} & {incl}) <> 0 OR ({m} & {excl}) <> 0 THEN 0 "
                   f"WHEN ({m} & {incl}) = {incl} AND ({not_met} & {excl}) = {excl} THEN 1 "
                   "ELSE 2 END")
        level3 += [f"{verdict} AS {q(t + 'v')}", m, u, q(t + "arm")]
        v = q(t + "v")
        names = " ".join(f"WHEN {i} THEN {f.label(x, VERDICTS)}" for i, x in enumerate(VERDICTS))
        missing = bits(absent)
        level4 += [f"CASE {v} {names} END AS {q(t + 'verdict')}",
                   f"CASE WHEN {v} = 0 THEN {arm_none} ELSE {q(t + 'arm')} END AS {q(t + 'arm')}",
                   m, u,
                   f"CASE WHEN {v} = 2 THEN {missing} ELSE CAST(0 AS BIGINT) END "
                   f"AS {q(t + 'absent')}"]
        writes.append(f"SELECT person_id, {f.label(compiled.id, [compiled.id])} AS trial_id, "
                      f"{q(t + 'verdict')} AS verdict, {q(t + 'arm')} AS arm, {m} AS met, "
                      f"{u} AS unknown, {q(t + 'absent')} AS absent_facts FROM {name}")

    def select(columns: Sequence[str], source: str, alias: str, rest: str = "") -> str:
        return ("SELECT person_id,\n  " + ",\n  ".join(columns) + rest
                + f"\nFROM ({source}) {alias}")

    sql = select(level4, select(level3, select(level2, level1, "l1", carried), "l2", carried),
                 "l3")
    return TrialGroup(name, sql, tuple(k for k, *_ in trials), tuple(writes))


__all__ = [
    "GROUP_SIZE",
    "MAX_BITS",
    "VERDICTS",
    "Flavour",
    "InputStats",
    "PopulationPlan",
    "TrialGroup",
    "TrialPlan",
    "build_plan",
    "fingerprint",
    "rule_facts",
    "unit_factor",
    "window",
]
