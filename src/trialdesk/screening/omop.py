"""Patient data as OMOP-CDM-shaped tables: what each table holds and how it maps to facts.

Population screening reads five tables (Parquet), named and shaped after the OMOP
Common Data Model v5.4. Concept ids are not resolved (no vocabulary is shipped): rows are
mapped by their *source values*, which name a fact of the dictionary
(:mod:`trialdesk.facts.dictionary`) or, for laboratory tests, its LOINC code.

* ``person`` — ``person_id``, ``gender_concept_id`` (8507 male, 8532 female: OHDSI Gender
  vocabulary; anything else is unknown), ``year_of_birth``, ``month_of_birth``,
  ``day_of_birth``.
* ``condition_occurrence`` — a diagnosis of the dictionary's vocabulary in
  ``condition_source_value`` (other conditions are ignored); the primary diagnosis is the
  latest one started on or before the screening date.
* ``measurement`` — laboratory results and measurements: ``measurement_source_value`` is a
  fact name or LOINC code, with ``value_as_number``, ``unit_source_value``,
  ``range_low``/``range_high`` (the reporting laboratory's reference range) and
  ``measurement_date``. Rows without a value, or naming no fact, are ignored.
* ``observation`` — everything else that is dated: performance scores, disease status,
  clinical findings, pregnancy, diagnosis details, consent and attestations (see
  :data:`OBSERVATION_SOURCES`). Yes/no values are ``'true'``/``'false'`` in
  ``value_as_string``; consent and attestations name their trial in
  ``qualifier_source_value``.
* ``drug_exposure`` — prior therapies, with two columns OMOP does not have:
  ``therapy_category`` (one of the dictionary's therapy categories) and ``chronic``.
  A person's treatment history is *recorded* when they have a ``drug_exposure`` row or
  their latest ``treatment_history_recorded`` observation is true; otherwise it is
  unknown (a history that is recorded and empty means *no prior therapy*).

:func:`records_from_rows` turns one person's rows into the
:class:`~trialdesk.facts.patient.PatientRecord` the per-patient screening uses; the
population engine derives the very same facts in SQL (:mod:`trialdesk.screening.plan`), and
a test holds the two together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from trialdesk.facts.dictionary import DIAGNOSES, FACTS, THERAPY_CATEGORIES, FactKind, FactType
from trialdesk.facts.patient import (
    AttestationAnswer,
    Consent,
    Diagnosis,
    DiseaseStatus,
    Finding,
    Observation,
    PatientRecord,
    Performance,
    PregnancyStatus,
    Treatment,
)

#: OHDSI Gender vocabulary, the two standard concepts (Vocabulary-v5.0 wiki, "Vocab. GENDER").
GENDER_CONCEPTS: Mapping[int, str] = {8507: "male", 8532: "female"}


class ColumnType(StrEnum):
    """What a column must hold; dates may also be ISO text, parsed when read."""

    INTEGER = "integer"
    NUMBER = "number"
    TEXT = "text"
    DATE = "date"
    TIMESTAMP = "timestamp"
    BOOLEAN = "boolean"


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    required: bool = True  # a missing optional column reads as all NULL
    nullable: bool = True


@dataclass(frozen=True)
class TableSpec:
    name: str
    id_column: str
    columns: tuple[Column, ...]
    required: bool = False  # a missing optional table reads as empty

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


_I, _N, _T, _D, _TS, _B = (ColumnType.INTEGER, ColumnType.NUMBER, ColumnType.TEXT,
                           ColumnType.DATE, ColumnType.TIMESTAMP, ColumnType.BOOLEAN)

TABLES: Mapping[str, TableSpec] = {
    t.name: t
    for t in (
        TableSpec("person", "person_id", (
            Column("person_id", _I, nullable=False),
            Column("gender_concept_id", _I),
            Column("year_of_birth", _I, nullable=False),
            Column("month_of_birth", _I, nullable=False),
            Column("day_of_birth", _I, nullable=False),
        ), required=True),
        TableSpec("condition_occurrence", "condition_occurrence_id", (
            Column("condition_occurrence_id", _I, nullable=False),
            Column("person_id", _I, nullable=False),
            Column("condition_start_date", _D, nullable=False),
            Column("condition_source_value", _T),
        )),
        TableSpec("measurement", "measurement_id", (
            Column("measurement_id", _I, nullable=False),
            Column("person_id", _I, nullable=False),
            Column("measurement_date", _D, nullable=False),
            Column("measurement_source_value", _T),
            Column("value_as_number", _N),
            Column("unit_source_value", _T, required=False),
            Column("range_low", _N, required=False),
            Column("range_high", _N, required=False),
        )),
        TableSpec("observation", "observation_id", (
            Column("observation_id", _I, nullable=False),
            Column("person_id", _I, nullable=False),
            Column("observation_date", _D, nullable=False),
            Column("observation_datetime", _TS, required=False),
            Column("observation_source_value", _T),
            Column("value_as_number", _N, required=False),
            Column("value_as_string", _T, required=False),
            Column("unit_source_value", _T, required=False),
            Column("qualifier_source_value", _T, required=False),
        )),
        TableSpec("drug_exposure", "drug_exposure_id", (
            Column("drug_exposure_id", _I, nullable=False),
            Column("person_id", _I, nullable=False),
            Column("drug_exposure_start_date", _D, nullable=False),
            Column("drug_exposure_end_date", _D, required=False),
            Column("drug_source_value", _T, required=False),
            Column("therapy_category", _T, nullable=False),
            Column("chronic", _B, required=False),
        )),
    )
}


# ---------------------------------------------------------------------------
# Source values


def loinc(fact: str) -> str | None:
    """The LOINC code of a fact, if the dictionary gives one.

    >>> loinc("alt"), loinc("gfr")
    ('1742-6', None)
    """
    code = FACTS[fact].code
    return code.removeprefix("LOINC ").strip() if code and code.startswith("LOINC ") else None


#: Facts a ``measurement`` row may carry.
MEASUREMENT_FACTS: tuple[str, ...] = tuple(
    f.name for f in FACTS.values() if f.kind in (FactKind.LAB, FactKind.MEASUREMENT)
)


def measurement_sources() -> dict[str, str]:
    """``measurement_source_value`` → fact: each fact's name and its LOINC code."""
    out: dict[str, str] = {}
    for name in MEASUREMENT_FACTS:
        out[name] = name
        code = loinc(name)
        if code:
            out[code] = name
    return out


class ValueColumn(StrEnum):
    """Which column of an ``observation`` row carries its value."""

    NUMBER = "value_as_number"
    STRING = "value_as_string"  # text, and yes/no as 'true' / 'false'
    DATETIME = "observation_datetime"


class Tie(StrEnum):
    """Which row wins when two have the same date (the per-patient path's list order)."""

    FIRST = "first"  # smallest id: a fact whose latest value is taken with max()
    LAST = "last"  # largest id: disease-status fields, later entries override earlier ones


@dataclass(frozen=True)
class ObservationSource:
    """One ``observation_source_value`` the engine understands."""

    source: str
    fact: str  # the fact (or internal name) it feeds
    type: FactType
    tie: Tie = Tie.FIRST
    per_trial: bool = False  # consent and attestations name their trial

    @property
    def value_column(self) -> ValueColumn:
        if self.source == "septic_shock_onset":
            return ValueColumn.DATETIME
        if self.type in (FactType.NUMBER, FactType.INTEGER):
            return ValueColumn.NUMBER
        return ValueColumn.STRING


#: Disease-status fields (DiseaseStatus attributes), by fact.
DISEASE_FIELDS: Mapping[str, str] = {
    "disease_status": "status",
    "end_induction_response": "end_induction_response",
    "induction_cycles_completed": "induction_cycles_completed",
    "cns_involvement": "cns_involvement",
    "brain_metastases": "brain_metastases",
    "metastatic": "metastatic",
    "staging_complete": "staging_complete",
    "chemotherapy_resistant": "chemotherapy_resistant",
    "septic_shock": "septic_shock",
}
DIAGNOSIS_DETAILS = ("diagnosis_confirmation", "risk_group", "risk_system", "stage")
PERFORMANCE_SCALES = ("lansky", "karnofsky", "ecog")
FINDINGS: tuple[str, ...] = tuple(
    f.name for f in FACTS.values() if f.kind is FactKind.FINDING and f.name != "childbearing_potential"
)


def _sources() -> dict[str, ObservationSource]:
    out: list[ObservationSource] = []
    for fact in DISEASE_FIELDS:
        out.append(ObservationSource(fact, fact, FACTS[fact].type, Tie.LAST))
    out.append(ObservationSource("septic_shock_onset", "septic_shock_onset", FactType.DATE, Tie.LAST))
    out += [ObservationSource(f, f, FACTS[f].type) for f in DIAGNOSIS_DETAILS]
    out += [ObservationSource(f, f, FactType.INTEGER) for f in PERFORMANCE_SCALES]
    out += [ObservationSource(f, f, FACTS[f].type) for f in FINDINGS]
    out.append(ObservationSource("childbearing_potential", "childbearing_potential",
                                 FactType.BOOLEAN))
    out.append(ObservationSource("pregnant", "pregnant", FactType.BOOLEAN))
    out.append(ObservationSource("treatment_history_recorded", "treatment_history_recorded",
                                 FactType.BOOLEAN))
    out.append(ObservationSource("consent", "consent_signed", FactType.BOOLEAN, per_trial=True))
    return {s.source: s for s in out}


#: Every fixed ``observation_source_value``; ``attest.<id>`` (per trial) comes on top.
OBSERVATION_SOURCES: Mapping[str, ObservationSource] = _sources()
ATTEST_PREFIX = "attest."


def observation_source(source: str) -> ObservationSource | None:
    """The mapping of one ``observation_source_value`` (None: not used, ignored).

    >>> observation_source("attest.e6").per_trial, observation_source("lansky").fact
    (True, 'lansky')
    """
    if source.startswith(ATTEST_PREFIX) and len(source) > len(ATTEST_PREFIX):
        return ObservationSource(source, source, FactType.BOOLEAN, per_trial=True)
    return OBSERVATION_SOURCES.get(source)


def value_vocabulary(fact: str) -> tuple[str, ...] | None:
    """Allowed text values for an observation fact, as the patient file checks them."""
    if fact in ("stage", "risk_system"):  # free text in the patient file
        return None
    definition = FACTS.get(fact)
    return definition.values if definition is not None else None


# ---------------------------------------------------------------------------
# Rows → PatientRecord (the per-patient path)

Row = Mapping[str, Any]


def _bool(text: Any) -> bool:
    return {"true": True, "false": False}[str(text)]


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    return dt.datetime.fromisoformat(str(value)).replace(tzinfo=None)


def _latest(rows: Iterable[Row], date_key: str, id_key: str, on: dt.date) -> Row | None:
    """Latest row on or before ``on``; on a tie the smallest id."""
    best: Row | None = None
    for r in rows:
        d = _date(r[date_key])
        if d > on:
            continue
        if best is None or (d, -r[id_key]) > (_date(best[date_key]), -best[id_key]):
            best = r
    return best


def _value(row: Row, source: ObservationSource) -> Any:
    column = source.value_column.value
    return row.get(column)


def records_from_rows(
    persons: Sequence[Row],
    *,
    conditions: Sequence[Row] = (),
    measurements: Sequence[Row] = (),
    observations: Sequence[Row] = (),
    drugs: Sequence[Row] = (),
    on: dt.date,
) -> list[PatientRecord]:
    """One :class:`PatientRecord` per ``person`` row, from that person's rows of each table.

    Rows are dictionaries keyed by the column names of :data:`TABLES`. Dated lists keep
    every row (the normaliser takes the latest on or before the screening date itself); the
    primary diagnosis, its details and the childbearing potential, which the patient file
    holds undated, are the latest on or before ``on``.

    >>> rec = records_from_rows([{"person_id": 7, "gender_concept_id": 8532,
    ...     "year_of_birth": 2019, "month_of_birth": 4, "day_of_birth": 12}],
    ...     on=dt.date(2026, 11, 21))[0]
    >>> rec.patient_id, rec.sex, rec.treatments is None
    ('7', 'female', True)
    """
    by_person: dict[str, dict[Any, list[Row]]] = {k: {} for k in
                                                  ("c", "m", "o", "d")}
    for key, rows in (("c", conditions), ("m", measurements), ("o", observations), ("d", drugs)):
        for r in rows:
            by_person[key].setdefault(r["person_id"], []).append(r)
    m_sources = measurement_sources()
    records = []
    for p in persons:
        pid = p["person_id"]
        obs_rows = sorted(by_person["o"].get(pid, []), key=lambda r: r["observation_id"])
        obs_by_source: dict[str, list[tuple[ObservationSource, Row]]] = {}
        for r in obs_rows:
            src_name = r.get("observation_source_value")
            source = observation_source(src_name) if src_name else None
            if source is None or _value(r, source) is None:
                continue
            obs_by_source.setdefault(source.source, []).append((source, r))
        records.append(_record(p, on, m_sources,
                               conditions=by_person["c"].get(pid, []),
                               measurements=by_person["m"].get(pid, []),
                               obs=obs_by_source,
                               drugs=by_person["d"].get(pid, [])))
    return records


def _latest_obs(obs: Mapping[str, list[tuple[ObservationSource, Row]]], source: str,
                on: dt.date) -> Row | None:
    return _latest((r for _, r in obs.get(source, [])), "observation_date", "observation_id", on)


def _record(p: Row, on: dt.date, m_sources: Mapping[str, str], *, conditions: list[Row],
            measurements: list[Row], obs: Mapping[str, list[tuple[ObservationSource, Row]]],
            drugs: list[Row]) -> PatientRecord:
    data: dict[str, Any] = {
        "patient_id": str(p["person_id"]),
        "birth_date": dt.date(p["year_of_birth"], p["month_of_birth"], p["day_of_birth"]),
        "sex": GENDER_CONCEPTS.get(p.get("gender_concept_id") or 0),
    }
    cbp = _latest_obs(obs, "childbearing_potential", on)
    if cbp is not None:
        data["childbearing_potential"] = _bool(cbp["value_as_string"])

    diagnosis = _latest((c for c in conditions if c.get("condition_source_value") in DIAGNOSES),
                        "condition_start_date", "condition_occurrence_id", on)
    if diagnosis is not None:
        details = {}
        for name in DIAGNOSIS_DETAILS:
            row = _latest_obs(obs, name, on)
            if row is not None:
                details[name.removeprefix("diagnosis_")] = row["value_as_string"]
        data["diagnosis"] = Diagnosis(primary=diagnosis["condition_source_value"],
                                      date=_date(diagnosis["condition_start_date"]), **details)

    entries: list[tuple[int, DiseaseStatus]] = []
    for fact, attr in DISEASE_FIELDS.items():
        for source, r in obs.get(fact, []):
            value = _typed(source.type, r[source.value_column.value])
            entries.append((r["observation_id"],
                            DiseaseStatus(date=_date(r["observation_date"]), **{attr: value})))
    for _, r in obs.get("septic_shock_onset", []):
        entries.append((r["observation_id"], DiseaseStatus(
            date=_date(r["observation_date"]),
            septic_shock_onset=_datetime(r["observation_datetime"]))))
    # The normaliser sorts by date and keeps list order within a date: list by id.
    data["disease_status"] = [e for _, e in sorted(entries, key=lambda x: x[0])]

    data["observations"] = [
        Observation(name=m_sources[m["measurement_source_value"]], value=float(m["value_as_number"]),
                    unit=m.get("unit_source_value"), date=_date(m["measurement_date"]),
                    ref_low=m.get("range_low"), ref_high=m.get("range_high"))
        for m in sorted(measurements, key=lambda r: r["measurement_id"])
        if m.get("measurement_source_value") in m_sources and m.get("value_as_number") is not None
    ]
    data["performance"] = [
        Performance(scale=scale, score=int(r["value_as_number"]), date=_date(r["observation_date"]))
        for scale in PERFORMANCE_SCALES for _, r in obs.get(scale, [])
    ]
    data["findings"] = [
        Finding(name=source.fact, value=_typed(source.type, r[source.value_column.value]),
                unit=r.get("unit_source_value") if source.value_column is ValueColumn.NUMBER
                else None, date=_date(r["observation_date"]))
        for name in FINDINGS for source, r in obs.get(name, [])
    ]
    data["pregnancy"] = [
        PregnancyStatus(date=_date(r["observation_date"]), pregnant=_bool(r["value_as_string"]))
        for _, r in obs.get("pregnant", [])
    ]
    data["consents"] = [
        Consent(trial_id=r["qualifier_source_value"], signed=_bool(r["value_as_string"]),
                date=_date(r["observation_date"]))
        for _, r in obs.get("consent", []) if r.get("qualifier_source_value")
    ]
    data["attestations"] = [
        AttestationAnswer(trial_id=r["qualifier_source_value"],
                          id=source.source.removeprefix(ATTEST_PREFIX),
                          value=_bool(r["value_as_string"]), date=_date(r["observation_date"]))
        for name, rows in obs.items() if name.startswith(ATTEST_PREFIX)
        for source, r in rows if r.get("qualifier_source_value")
    ]
    marker = _latest_obs(obs, "treatment_history_recorded", on)
    if drugs or (marker is not None and _bool(marker["value_as_string"])):
        data["treatments"] = [
            Treatment(agent=d.get("drug_source_value") or d["therapy_category"],
                      category=d["therapy_category"],
                      start=_date(d["drug_exposure_start_date"]),
                      end=_date(d["drug_exposure_end_date"])
                      if d.get("drug_exposure_end_date") is not None else None,
                      chronic=bool(d.get("chronic") or False))
            for d in sorted(drugs, key=lambda r: r["drug_exposure_id"])
        ]
    return PatientRecord(**data)


def _typed(kind: FactType, value: Any) -> Any:
    if kind is FactType.BOOLEAN:
        return _bool(value)
    if kind is FactType.INTEGER:
        number = float(value)
        return int(number) if number.is_integer() else number
    if kind is FactType.NUMBER:
        return float(value)
    return str(value)


__all__ = [
    "ATTEST_PREFIX",
    "DIAGNOSES",
    "DISEASE_FIELDS",
    "GENDER_CONCEPTS",
    "MEASUREMENT_FACTS",
    "OBSERVATION_SOURCES",
    "TABLES",
    "THERAPY_CATEGORIES",
    "Column",
    "ColumnType",
    "ObservationSource",
    "TableSpec",
    "Tie",
    "loinc",
    "measurement_sources",
    "observation_source",
    "records_from_rows",
    "value_vocabulary",
]
