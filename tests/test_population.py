"""Population screening: the DuckDB engine against the per-patient path, the compact output,
the summary, explain, incremental runs, bad input, atomic output, synthetic data, variants."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from trialdesk.cli import app
from trialdesk.criteria.verdict import Outcome, screen_record
from trialdesk.errors import FactError, TrialdeskError, UnitError
from trialdesk.protocol.load import (
    CompiledProtocol,
    default_protocol_dir,
    load_directory,
    protocol_from_data,
    read_document,
)
from trialdesk.screening.engine import DuckDBEngine, Engine
from trialdesk.screening.omop import TABLES, records_from_rows
from trialdesk.screening.output import MANIFEST, read_manifest, summarise, trial_index
from trialdesk.screening.plan import InputStats, build_plan, unit_factor
from trialdesk.screening.run import (
    load_inputs,
    load_records,
    screen_population,
    select_trials,
    write_tables,
)
from trialdesk.screening.synth import synthesise
from trialdesk.screening.variants import make_variants, shift_thresholds

ON = date(2026, 11, 21)
AS_OF = datetime(2026, 11, 21, 9, 30)
SEED = 20261121
runner = CliRunner()


@pytest.fixture(scope="module")
def protocols() -> dict[str, CompiledProtocol]:
    return load_directory(default_protocol_dir())


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory,
               protocols: dict[str, CompiledProtocol]) -> Path:
    """600 synthetic patients (fixed seed), in two chunks of Parquet files."""
    data = tmp_path_factory.mktemp("population") / "data"
    write_tables(data, synthesise(600, seed=SEED, on=ON, trials=list(protocols.values()),
                                  chunk=300))
    return data


def screen(data: Path, out: Path, trials: list[CompiledProtocol], *, as_of: datetime = AS_OF,
           incremental: bool = False, engine: Engine | None = None) -> Any:
    with engine or DuckDBEngine(memory_limit="2GB") as runner_engine:
        return screen_population(runner_engine, data=data, out=out, protocols=trials,
                                 as_of=as_of, incremental=incremental)


def rows_of(out: Path) -> list[tuple[Any, ...]]:
    return duckdb.sql(
        f"SELECT person_id, trial_id, verdict, arm, met, unknown, absent_facts FROM "
        f"read_parquet('{out}/screening/*/*.parquet') ORDER BY trial_id, person_id").fetchall()


def per_patient(data: Path, trials: list[CompiledProtocol], as_of: datetime
                ) -> dict[tuple[int, str], Any]:
    """The per-patient path (patient record → normalise → screen) on the same tables."""
    with DuckDBEngine(memory_limit="1GB") as engine:
        inputs = load_inputs(engine, data)
        ids = [r[0] for r in engine.rows("SELECT person_id FROM src_person ORDER BY 1")]
        records = load_records(engine, ids, on=as_of.date(), inputs=inputs)
    return {(int(r.patient_id), c.id): screen_record(c, r, as_of=as_of)
            for r in records if r.birth_date <= as_of.date() for c in trials}


def assert_same_as_per_patient(data: Path, out: Path, trials: list[CompiledProtocol],
                               as_of: datetime) -> Counter[str]:
    manifest = read_manifest(out)
    assert manifest is not None
    expected = per_patient(data, trials, as_of)
    found = {(r[0], r[1]): r for r in rows_of(out)}
    assert set(found) == set(expected)
    verdicts: Counter[str] = Counter()
    for key, result in expected.items():
        _, trial, verdict, arm, met, unknown, absent = found[key]
        index = trial_index(manifest, trial)
        outcomes = [o for _, _, o in index.outcomes(met, unknown)]
        assert outcomes == [c.outcome for c in result.criteria], (key, result.to_json())
        assert verdict == result.verdict.value, key
        assert arm == result.arm, key
        if verdict == "undetermined":
            missing = index.fact_names(index.missing_mask(unknown, absent))
            assert sorted(missing) == sorted(result.missing_facts), key
        verdicts[f"{trial}:{verdict}"] += 1
    return verdicts


# ---------------------------------------------------------------------------
# Parity with the per-patient path


@pytest.mark.parametrize("as_of", [AS_OF, datetime(2026, 11, 12, 23, 0)],
                         ids=["synthesis-date", "earlier-date"])
def test_duckdb_equals_the_per_patient_path(population: Path, tmp_path: Path,
                                            protocols: dict[str, CompiledProtocol],
                                            as_of: datetime) -> None:
    trials = list(protocols.values())
    screen(population, tmp_path / "out", trials, as_of=as_of)
    verdicts = assert_same_as_per_patient(population, tmp_path / "out", trials, as_of)
    # The comparison covers every verdict, not only the easy ones.
    for verdict in ("eligible", "ineligible", "undetermined"):
        assert sum(n for k, n in verdicts.items() if k.endswith(":" + verdict)) > 0


def _table(rows: list[dict[str, Any]], schema: dict[str, pa.DataType]) -> pa.Table:
    return pa.table({k: pa.array([r.get(k) for r in rows], type=t) for k, t in schema.items()})


PERSON = {"person_id": pa.int64(), "gender_concept_id": pa.int64(), "year_of_birth": pa.int32(),
          "month_of_birth": pa.int32(), "day_of_birth": pa.int32()}
MEASUREMENT = {"measurement_id": pa.int64(), "person_id": pa.int64(),
               "measurement_date": pa.date32(), "measurement_source_value": pa.string(),
               "value_as_number": pa.float64(), "unit_source_value": pa.string(),
               "range_low": pa.float64(), "range_high": pa.float64()}
OBSERVATION = {"observation_id": pa.int64(), "person_id": pa.int64(),
               "observation_date": pa.date32(), "observation_datetime": pa.timestamp("us"),
               "observation_source_value": pa.string(), "value_as_number": pa.float64(),
               "value_as_string": pa.string(), "unit_source_value": pa.string(),
               "qualifier_source_value": pa.string()}
CONDITION = {"condition_occurrence_id": pa.int64(), "person_id": pa.int64(),
             "condition_start_date": pa.date32(), "condition_source_value": pa.string()}
DRUG = {"drug_exposure_id": pa.int64(), "person_id": pa.int64(),
        "drug_exposure_start_date": pa.date32(), "drug_exposure_end_date": pa.date32(),
        "drug_source_value": pa.string(), "therapy_category": pa.string(), "chronic": pa.bool_()}


def write(data: Path, name: str, rows: list[dict[str, Any]], schema: dict[str, pa.DataType]
          ) -> None:
    data.mkdir(parents=True, exist_ok=True)
    pq.write_table(_table(rows, schema), data / f"{name}.parquet")


def edge_cases(data: Path) -> None:
    """Hand-made rows for the rules a random population rarely hits."""
    d = date
    write(data, "person", [
        # 1: a child with neuroblastoma; 2: a woman without childbearing potential; 3: a man;
        # 4: born after the screening date (not screened); 5: birthday on 29 February.
        {"person_id": 1, "gender_concept_id": 8532, "year_of_birth": 2019, "month_of_birth": 11,
         "day_of_birth": 21},
        {"person_id": 2, "gender_concept_id": 8532, "year_of_birth": 1960, "month_of_birth": 3,
         "day_of_birth": 31},
        {"person_id": 3, "gender_concept_id": 8507, "year_of_birth": 1950, "month_of_birth": 1,
         "day_of_birth": 1},
        {"person_id": 4, "gender_concept_id": 0, "year_of_birth": 2027, "month_of_birth": 1,
         "day_of_birth": 1},
        {"person_id": 5, "gender_concept_id": None, "year_of_birth": 2008, "month_of_birth": 2,
         "day_of_birth": 29},
    ], PERSON)
    write(data, "condition_occurrence", [
        {"condition_occurrence_id": 1, "person_id": 1, "condition_start_date": d(2025, 1, 1),
         "condition_source_value": "neuroblastoma"},
        # A later diagnosis the same day: the smaller id wins; a future one is not used yet.
        {"condition_occurrence_id": 3, "person_id": 2, "condition_start_date": d(2024, 5, 1),
         "condition_source_value": "lung_cancer"},
        {"condition_occurrence_id": 2, "person_id": 2, "condition_start_date": d(2024, 5, 1),
         "condition_source_value": "melanoma"},
        {"condition_occurrence_id": 4, "person_id": 2, "condition_start_date": d(2026, 12, 1),
         "condition_source_value": "lymphoma"},
        {"condition_occurrence_id": 5, "person_id": 3, "condition_start_date": d(2026, 1, 1),
         "condition_source_value": "hypertension"},
        {"condition_occurrence_id": 6, "person_id": 3, "condition_start_date": d(2026, 2, 1),
         "condition_source_value": "acute_myeloid_leukaemia"},
    ], CONDITION)
    lab = "measurement_source_value"
    write(data, "measurement", [
        # Same day, two ALT results: the smaller id counts; its own ULN gives ×ULN 5.0 exactly.
        {"measurement_id": 11, "person_id": 1, "measurement_date": d(2026, 11, 18), lab: "1742-6",
         "value_as_number": 225.0, "unit_source_value": "U/L", "range_high": 45.0},
        {"measurement_id": 12, "person_id": 1, "measurement_date": d(2026, 11, 18), lab: "alt",
         "value_as_number": 20.0, "unit_source_value": "U/L", "range_high": 45.0},
        {"measurement_id": 13, "person_id": 1, "measurement_date": d(2026, 11, 18), lab: "ast",
         "value_as_number": 30.0, "unit_source_value": "U/L", "range_high": 0.0},
        {"measurement_id": 14, "person_id": 1, "measurement_date": d(2026, 11, 18),
         lab: "creatinine", "value_as_number": 35.0, "unit_source_value": "umol/L"},
        {"measurement_id": 15, "person_id": 1, "measurement_date": d(2026, 11, 1), lab: "height",
         "value_as_number": 1.12, "unit_source_value": "m"},
        {"measurement_id": 16, "person_id": 1, "measurement_date": d(2026, 11, 30), lab: "lvef",
         "value_as_number": 40.0, "unit_source_value": "%"},
        {"measurement_id": 17, "person_id": 1, "measurement_date": d(2026, 11, 1), lab: "lvef",
         "value_as_number": 55.0, "unit_source_value": "%"},
        {"measurement_id": 18, "person_id": 1, "measurement_date": d(2026, 11, 20), lab: "pti",
         "value_as_number": None, "unit_source_value": "%"},
        {"measurement_id": 21, "person_id": 3, "measurement_date": d(2026, 11, 20), lab: "anc",
         "value_as_number": 1.0, "unit_source_value": "10^9/L"},
        {"measurement_id": 22, "person_id": 3, "measurement_date": d(2026, 11, 21),
         lab: "granulocytes", "value_as_number": 2.0, "unit_source_value": "x10^9/L"},
        {"measurement_id": 23, "person_id": 3, "measurement_date": d(2026, 11, 21), lab: "inr",
         "value_as_number": 1.1, "unit_source_value": None},
        {"measurement_id": 24, "person_id": 3, "measurement_date": d(2026, 11, 21),
         lab: "cholesterol", "value_as_number": 5.0, "unit_source_value": "mmol/L"},
    ], MEASUREMENT)
    obs = "observation_source_value"
    write(data, "observation", [
        {"observation_id": 1, "person_id": 1, "observation_date": d(2026, 11, 1), obs: "lansky",
         "value_as_number": 80.0},
        {"observation_id": 2, "person_id": 1, "observation_date": d(2026, 11, 10),
         obs: "disease_status", "value_as_string": "refractory"},
        # Same day: the later entry overrides (disease status takes the larger id).
        {"observation_id": 4, "person_id": 1, "observation_date": d(2026, 11, 10),
         obs: "disease_status", "value_as_string": "relapsed"},
        {"observation_id": 3, "person_id": 1, "observation_date": d(2026, 11, 10),
         obs: "disease_status", "value_as_string": "progressive"},
        {"observation_id": 5, "person_id": 1, "observation_date": d(2026, 11, 10),
         obs: "risk_group", "value_as_string": "high"},
        {"observation_id": 6, "person_id": 1, "observation_date": d(2026, 11, 19),
         obs: "consent", "value_as_string": "true", "qualifier_source_value": "NB-NK-2026"},
        {"observation_id": 7, "person_id": 1, "observation_date": d(2026, 11, 19),
         obs: "attest.e6", "value_as_string": "false", "qualifier_source_value": "NB-NK-2026"},
        {"observation_id": 8, "person_id": 1, "observation_date": d(2026, 11, 19),
         obs: "life_expectancy", "value_as_number": 3.0, "unit_source_value": "month"},
        {"observation_id": 9, "person_id": 1, "observation_date": d(2026, 11, 19),
         obs: "treatment_history_recorded", "value_as_string": "true"},
        {"observation_id": 10, "person_id": 2, "observation_date": d(2020, 1, 1),
         obs: "childbearing_potential", "value_as_string": "false"},
        {"observation_id": 11, "person_id": 2, "observation_date": d(2026, 11, 20),
         obs: "ecog", "value_as_number": 1.0},
        {"observation_id": 12, "person_id": 2, "observation_date": d(2026, 11, 20),
         obs: "metastatic", "value_as_string": "true"},
        {"observation_id": 13, "person_id": 3, "observation_date": d(2026, 11, 20),
         obs: "septic_shock", "value_as_string": "true"},
        {"observation_id": 14, "person_id": 3, "observation_date": d(2026, 11, 20),
         "observation_datetime": datetime(2026, 11, 20, 23, 30), obs: "septic_shock_onset"},
        {"observation_id": 15, "person_id": 3, "observation_date": d(2026, 11, 21),
         obs: "oncohaematological", "value_as_string": "true"},  # not a source: ignored
        {"observation_id": 16, "person_id": 3, "observation_date": d(2026, 11, 21),
         obs: "chemotherapy_resistant", "value_as_string": None},
        {"observation_id": 17, "person_id": 5, "observation_date": d(2026, 11, 21),
         obs: "karnofsky", "value_as_number": 90.0},
        {"observation_id": 18, "person_id": 5, "observation_date": d(2026, 11, 21),
         obs: "pregnant", "value_as_string": "false"},
    ], OBSERVATION)
    write(data, "drug_exposure", [
        {"drug_exposure_id": 1, "person_id": 2, "drug_exposure_start_date": d(2026, 10, 20),
         "drug_exposure_end_date": d(2026, 11, 1), "therapy_category": "immunotherapy"},
        {"drug_exposure_id": 2, "person_id": 2, "drug_exposure_start_date": d(2025, 1, 1),
         "drug_exposure_end_date": None, "therapy_category": "corticosteroid", "chronic": True},
        {"drug_exposure_id": 3, "person_id": 3, "drug_exposure_start_date": d(2026, 12, 1),
         "drug_exposure_end_date": None, "therapy_category": "chemotherapy"},
    ], DRUG)


@pytest.mark.parametrize("as_of", [datetime(2026, 11, 21, 8, 0), datetime(2026, 11, 21, 0, 0),
                                   datetime(2026, 12, 5, 12, 0)])
def test_edge_cases_equal_the_per_patient_path(tmp_path: Path, protocols: dict[str, Any],
                                               as_of: datetime) -> None:
    edge_cases(tmp_path / "data")
    trials = list(protocols.values())
    screen(tmp_path / "data", tmp_path / "out", trials, as_of=as_of)
    assert_same_as_per_patient(tmp_path / "data", tmp_path / "out", trials, as_of)
    persons = {r[0] for r in rows_of(tmp_path / "out")}
    assert persons == {1, 2, 3, 5}  # person 4 is born after the screening date


def test_edge_case_values(tmp_path: Path, protocols: dict[str, Any]) -> None:
    """A few derived values, known by hand, through the explanation."""
    edge_cases(tmp_path / "data")
    nbnk = protocols["NB-NK-2026"]
    screen(tmp_path / "data", tmp_path / "out", [nbnk, protocols["RuMCeSS"]])
    code, out, err = run("population", "explain", "--out", str(tmp_path / "out"), "--patient", "1",
                         "--trial", "NB-NK-2026", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["agrees"] is True
    result = doc["results"][0]
    criteria = {c["id"]: c for c in result["criteria"]}
    # ALT 225 ÷ its own ULN 45 = 5.0 (the smaller id of two same-day results): "< 5" fails.
    alt = next(e for e in criteria["I7"]["evidence"] if e["fact"] == "alt_x_uln")
    assert alt["value"] == 5.0
    assert criteria["I7"]["outcome"] == "not_met"
    # Same-day disease status: the later entry (larger id) counts.
    status = next(e for e in criteria["I3"]["evidence"] if e["fact"] == "disease_status")
    assert status["value"] == "relapsed"
    # LVEF: the latest on or before the date is 55 (a later 40 is after the date).
    lvef = next(e for e in criteria["I10"]["evidence"] if e["fact"] == "lvef")
    assert lvef["value"] == 55.0
    # Height in metres, creatinine in µmol/L: bedside Schwartz from canonical units.
    gfr = next(e for e in criteria["I8"]["evidence"] if e["fact"] == "gfr")
    assert gfr["value"] == pytest.approx(0.413 * 112 / (35 / 88.4), rel=1e-3)
    # Ineligible (ALT), so no arm, although arm B's rule is met.
    assert result["verdict"] == "ineligible" and result["arm"] is None
    assert {a["id"]: a["outcome"] for a in result["arms"]} == {"A": "not_met", "B": "met"}


# ---------------------------------------------------------------------------
# Output, summary, explain


def test_output_layout_manifest_and_summary(population: Path, tmp_path: Path,
                                            protocols: dict[str, Any]) -> None:
    trials = list(protocols.values())
    report = screen(population, tmp_path / "out", trials)
    out = tmp_path / "out"
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["schema"] == "trialdesk.population/1"
    assert manifest["persons"] == report.persons == 600
    assert [t["trial_id"] for t in manifest["trials"]] == [c.id for c in trials]
    nbnk = trial_index(manifest, "NB-NK-2026")
    assert [c for c, _ in nbnk.criteria][:3] == ["I1", "I2", "I3"]
    assert len(nbnk.criteria) == 23 and nbnk.facts[0] == "consent_signed"
    schema = pq.read_schema(next((out / "screening" / "NB-NK-2026").glob("*.parquet")))
    assert schema.names == ["person_id", "trial_id", "verdict", "arm", "met", "unknown",
                            "absent_facts"]
    summary = json.loads((out / "summary.json").read_text())
    counts = duckdb.sql(f"SELECT trial_id, verdict, count(*) FROM read_parquet('{out}/screening/*/"
                        "*.parquet') GROUP BY ALL").fetchall()
    for trial, verdict, n in counts:
        assert summary["trials"][trial]["verdicts"][verdict] == n
    for entry in summary["trials"].values():
        assert sum(entry["verdicts"].values()) == 600
        assert sum(sum(a.values()) for a in entry["arms"].values()) == 600
    assert "by randomisation" in summary["trials"]["RuMCeSS"]["arms"]
    assert summary["missing_facts"][0]["undetermined_pairs"] >= summary["missing_facts"][-1][
        "undetermined_pairs"]
    assert {m["fact"] for m in summary["missing_facts"]} & {"consent_signed", "anc"}


def test_summary_ranks_the_facts_that_would_decide() -> None:
    from trialdesk.screening.output import TrialIndex

    index = TrialIndex("T", "1", "x", (("I1", "inclusion"), ("I2", "inclusion")),
                       ("a", "b", "c"), (), False, (0b011, 0b100))
    # unknown I1 (facts a, b) with a and c absent: only a is missing for a named criterion.
    assert index.fact_names(index.missing_mask(0b01, 0b101)) == ["a"]
    doc = summarise([index], [("T", "undetermined", None, 5), ("T", "eligible", None, 2)],
                    [("T", 0b01, 0b101, 3), ("T", 0b11, 0b111, 2)])
    assert doc["trials"]["T"]["verdicts"] == {"eligible": 2, "ineligible": 0, "undetermined": 5}
    assert doc["missing_facts"][0] == {"fact": "a", "undetermined_pairs": 5,
                                       "only_missing_fact": 3}
    assert {m["fact"] for m in doc["missing_facts"]} == {"a", "b", "c"}


def test_summary_counts_missing_facts_like_a_row_by_row_count() -> None:
    """The summary counts the missing facts of all masks of a trial at once; the counts
    equal those of a plain loop over every (unknown, absent) row, up to bit 62."""
    import random

    from trialdesk.screening.output import TrialIndex

    rng = random.Random(7)
    facts = tuple(f"f{j}" for j in range(63))
    criteria = tuple((f"C{i}", "inclusion") for i in range(40))
    masks = tuple(rng.getrandbits(63) & rng.getrandbits(63) & rng.getrandbits(63)
                  for _ in criteria)
    index = TrialIndex("T", "1", "x", criteria, facts, (), False, masks)
    rows = [("T", rng.getrandbits(40) & rng.getrandbits(40), rng.getrandbits(63), rng.randint(1, 9))
            for _ in range(400)]
    first = next(i for i, mask in enumerate(masks) if mask)
    rows += [("T", 1 << 39, 1 << 62, 4), ("T", 0, (1 << 63) - 1, 3),  # high bits; none unknown
             ("T", 1 << first, masks[first] & -masks[first], 5)]  # exactly one fact missing
    expected: dict[str, list[int]] = {}
    for _, unknown, absent, n in rows:
        named = 0
        for i, mask in enumerate(masks):
            if unknown >> i & 1:
                named |= mask
        names = [f for j, f in enumerate(facts) if (absent & named) >> j & 1]
        for name in names:
            counters = expected.setdefault(name, [0, 0])
            counters[0] += n
            counters[1] += n if len(names) == 1 else 0
    doc = summarise([index], [], rows, top=63)
    got = {m["fact"]: [m["undetermined_pairs"], m["only_missing_fact"]]
           for m in doc["missing_facts"]}
    assert got == expected
    assert any(b for _, b in expected.values())  # some rows miss exactly one fact


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_synth_screen_explain_sql(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    code, text, err = run("population", "synth", "--patients", "120", "--out", str(data),
                          "--seed", "5", "--on", "2026-11-21")
    assert code == 0, err
    assert "person: 120 rows" in text
    code, text, err = run("population", "screen", "--data", str(data), "--out", str(out),
                          "--on", "2026-11-21T10:00", "--trials", "all")
    assert code == 0, err
    assert "Population screening as of 2026-11-21T10:00" in text
    assert "480 patient × trial pairs" in text
    assert "Missing facts that would resolve" in text
    row = duckdb.sql(f"SELECT person_id, verdict FROM read_parquet('{out}/screening/REFNOT-R2/"
                     "*.parquet') ORDER BY person_id LIMIT 1").fetchall()[0]
    code, text, err = run("population", "explain", "--out", str(out), "--patient", str(row[0]),
                          "--trial", "REFNOT-R2")
    assert code == 0, err
    assert "agrees" in text and row[1].upper() in text.upper()
    # The same explanation `trialdesk screen` gives for the same record.
    code, text, err = run("population", "explain", "--out", str(out), "--patient", str(row[0]),
                          "--trial", "REFNOT-R2", "--json")
    doc = json.loads(text)
    with DuckDBEngine(memory_limit=None) as engine:
        inputs = load_inputs(engine, data)
        record = load_records(engine, [row[0]], on=date(2026, 11, 21), inputs=inputs)[0]
    compiled = load_directory(default_protocol_dir())["REFNOT-R2"]
    expected = screen_record(compiled, record, as_of=datetime(2026, 11, 21, 10, 0)).to_json()
    assert doc["results"][0] == json.loads(json.dumps(expected))
    code, text, err = run("population", "sql", "--data", str(data), "--trials", "RuMCeSS",
                          "--engine", "spark", "--on", "2026-11-21")
    assert code == 0, err
    assert "CREATE TABLE td_facts AS" in text and "max_by(" in text and "-- trial RuMCeSS" in text


def test_cli_open_trials_by_default_and_errors(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run("population", "synth", "--patients", "30", "--out", str(data), "--on", "2026-11-21")
    code, _, err = run("population", "screen", "--data", str(data), "--out",
                       str(tmp_path / "o"), "--on", "2026-11-21")
    assert code == 0, err
    manifest = json.loads((tmp_path / "o" / MANIFEST).read_text())
    assert {t["trial_id"] for t in manifest["trials"]} == {"NB-NK-2026", "DB-POSTCONS"}
    code, _, err = run("population", "screen", "--data", str(data), "--out", str(tmp_path / "o"),
                       "--engine", "oracle")
    assert code == 2 and "--engine" in err
    code, _, err = run("population", "explain", "--out", str(tmp_path / "o"), "--patient", "1",
                       "--trial", "RuMCeSS")
    assert code == 1 and "RuMCeSS" in err and "was not screened" in err
    code, _, err = run("population", "screen", "--data", str(tmp_path / "nothing"), "--out",
                       str(tmp_path / "o2"))
    assert code == 1 and "not a directory" in err and err.count("\n") == 1


# ---------------------------------------------------------------------------
# Incremental runs


def _change_one_lab(data: Path, person: int) -> None:
    """Double one patient's ALT results."""
    folder = data / "measurement"
    for path in sorted(folder.glob("*.parquet")):
        table = pq.read_table(path)
        ids = table.column("person_id").to_pylist()
        if person not in ids:
            continue
        values = table.column("value_as_number").to_pylist()
        sources = table.column("measurement_source_value").to_pylist()
        values = [v * 2 if p == person and s in ("alt", "1742-6") else v
                  for p, v, s in zip(ids, values, sources, strict=True)]
        table = table.set_column(table.schema.get_field_index("value_as_number"),
                                 "value_as_number", pa.array(values, pa.float64()))
        pq.write_table(table, path)


def test_incremental_reuses_only_what_cannot_have_changed(population: Path, tmp_path: Path,
                                                          protocols: dict[str, Any]) -> None:
    data = tmp_path / "data"
    shutil.copytree(population, data)
    trials = list(protocols.values())
    out = tmp_path / "out"
    first = screen(data, out, trials, incremental=True)
    assert first.rescreened is None  # nothing to reuse yet
    same = screen(data, out, trials, incremental=True)
    assert same.rescreened == 0 and same.reused_trials == [c.id for c in trials]
    assert rows_of(out) == rows_of_full(data, tmp_path / "full1", trials, AS_OF)

    _change_one_lab(data, 7)
    changed = screen(data, out, trials, incremental=True)
    assert changed.rescreened == 1
    assert rows_of(out) == rows_of_full(data, tmp_path / "full2", trials, AS_OF)

    # A later date: results that the date alone may change are screened again.
    later = datetime(2026, 11, 25, 9, 30)
    moved = screen(data, out, trials, as_of=later, incremental=True)
    assert moved.rescreened is not None and 0 < moved.rescreened < 600
    assert rows_of(out) == rows_of_full(data, tmp_path / "full3", trials, later)

    # A new protocol version: that trial is screened again for everyone.
    doc = read_document(default_protocol_dir() / "refnot-r2.yaml")
    doc["version"] = "1.1"
    doc["eligibility"]["inclusion"][2]["rule"] = "age_years <= 70"
    changed_trial = protocol_from_data(doc, source="refnot-r2 1.1")
    trials2 = [changed_trial if c.id == "REFNOT-R2" else c for c in trials]
    again = screen(data, out, trials2, as_of=later, incremental=True)
    assert "REFNOT-R2" not in again.reused_trials and "NB-NK-2026" in again.reused_trials
    assert rows_of(out) == rows_of_full(data, tmp_path / "full4", trials2, later)


def rows_of_full(data: Path, out: Path, trials: list[CompiledProtocol], as_of: datetime
                 ) -> list[tuple[Any, ...]]:
    screen(data, out, trials, as_of=as_of)
    return rows_of(out)


# ---------------------------------------------------------------------------
# Bad input and atomic output


def _bad(tmp_path: Path, table: str, change: dict[str, Any], *, drop: str | None = None,
         schema: dict[str, pa.DataType] | None = None) -> str:
    data = tmp_path / "bad"
    edge_cases(data)
    path = data / f"{table}.parquet"
    rows = pq.read_table(path).to_pylist()
    original = pq.read_schema(path)
    fields = dict(zip(original.names, original.types, strict=True))
    for column, arrow_type in (schema or {}).items():  # e.g. a column written as text
        fields[column] = arrow_type
        for r in rows:
            r[column] = None if r[column] is None else str(r[column])
    rows[0].update(change)
    if drop:
        fields.pop(drop)
        for r in rows:
            r.pop(drop)
    pq.write_table(_table(rows, fields), path)
    with pytest.raises(FactError) as info:
        screen(data, tmp_path / "out", list(load_directory(default_protocol_dir()).values()))
    return str(info.value)


@pytest.mark.parametrize("table, change, drop, schema, expected", [
    ("measurement", {}, "value_as_number", None,
     ["measurement", "missing column 'value_as_number'"]),
    ("person", {"year_of_birth": "1990"}, None, {"year_of_birth": pa.string()},
     ["person.year_of_birth", "type string, expected integer", "person_id=1"]),
    ("measurement", {"unit_source_value": "blorps"}, None, None,
     ["measurement.unit_source_value", "unknown unit 'blorps'", "measurement_id=11"]),
    ("measurement", {"unit_source_value": "mg/dL"}, None, None,
     ["measurement.unit_source_value", "does not fit alt", "measurement_id=11"]),
    ("observation", {"observation_date": "2026-13-01"}, None, {"observation_date": pa.string()},
     ["observation.observation_date", "not a date", "observation_id=1"]),
    ("measurement", {"value_as_number": 300.0, "measurement_source_value": "lvef",
                     "unit_source_value": "%"}, None, None,
     ["measurement.value_as_number", "lvef is impossible", "0–100"]),
    ("measurement", {"value_as_number": float("nan")}, None, None,
     ["measurement.value_as_number", "not a finite number", "measurement_id=11"]),
    ("measurement", {"value_as_number": float("-inf")}, None, None,
     ["measurement.value_as_number", "not a finite number", "measurement_id=11"]),
    ("observation", {"value_as_number": 75.0}, None, None,
     ["observation.value_as_number", "lansky score is 0–100 in steps of 10", "observation_id=1"]),
    ("observation", {"observation_source_value": "metastatic", "value_as_string": "yes"}, None,
     None, ["observation.value_as_string", "'true' or 'false'"]),
    ("drug_exposure", {"therapy_category": "magic"}, None, None,
     ["drug_exposure.therapy_category", "unknown therapy category"]),
    ("person", {"month_of_birth": 2, "day_of_birth": 30}, None, None,
     ["person.day_of_birth", "not a day of that month", "person_id=1"]),
    ("person", {"person_id": 2}, None, None, ["person.person_id", "appears more than once"]),
])
def test_bad_input_names_table_column_and_row(tmp_path: Path, table: str, change: dict[str, Any],
                                              drop: str | None,
                                              schema: dict[str, pa.DataType] | None,
                                              expected: list[str]) -> None:
    message = _bad(tmp_path, table, change, drop=drop, schema=schema)
    for fragment in expected:
        assert fragment in message, message
    assert "\n" not in message
    assert not (tmp_path / "out").exists()  # nothing written


def test_value_checks_counted_by_value_equal_a_count_row_by_row() -> None:
    """The observation checks are counted once per distinct value: the counts equal counting
    every row, bad values repeated and mixed with good ones."""
    from trialdesk.screening import checks

    rows = [(1, 1, "lansky", 75.0, None), (2, 1, "lansky", 75.0, None), (3, 2, "lansky", 70.0, None),
            (4, 2, "metastatic", None, "yes"), (5, 3, "metastatic", None, "yes"),
            (6, 3, "metastatic", None, "true"), (7, 3, "risk_group", None, "huge"),
            (8, None, "ecog", 2.5, None), (9, 4, "ecog", float("nan"), None),
            (10, 4, "attest.e6", None, "maybe"), (11, 4, "ckd_stage", 2.5, None)]
    families = {"observation_id": "integer", "person_id": "integer", "observation_date": "date",
                "observation_source_value": "string", "value_as_number": "floating",
                "value_as_string": "string"}
    with DuckDBEngine(memory_limit=None) as engine:
        engine.execute("CREATE TABLE raw_observation (observation_id BIGINT, person_id BIGINT, "
                       "observation_date DATE, observation_source_value VARCHAR, "
                       "value_as_number DOUBLE, value_as_string VARCHAR)")
        for i, person, source, number, text in rows:
            engine.execute(f"INSERT INTO raw_observation VALUES ({i}, {person or 'NULL'}, "
                           f"DATE '2026-01-01', '{source}', "
                           f"{'NULL' if number is None else repr(number)}, "
                           f"{'NULL' if text is None else repr(text)})".replace("nan", "'nan'"))
        table = checks.TableInput(TABLES["observation"], "test", families)
        found = checks.row_checks(table, engine.flavour)
        assert any(c.per_value for c in found) and not all(c.per_value for c in found)
        *grouped, low, high = engine.rows(checks.checks_query(table, found, engine.flavour))[0]
        by_row = [engine.rows(f"SELECT count(*) FROM raw_observation WHERE {c.bad}")[0][0]
                  for c in found]
    assert grouped == by_row
    assert (low, high) == (1, len(rows))  # the id range, counted in the same pass
    assert sum(by_row) >= 7  # two Lansky 75, two 'yes', 'huge', ECOG 2.5 and NaN, 'maybe', …


def test_unit_factor_matches_the_per_patient_conversion() -> None:
    from trialdesk.clinical import units

    for fact, unit, value in (("creatinine", "umol/L", 35.0), ("anc", "10^9/L", 1.0),
                              ("hemoglobin", "g/L", 123.0), ("height", "m", 1.234),
                              ("life_expectancy", "month", 3.0)):
        factor = unit_factor(fact, unit)
        assert factor is not None
        from trialdesk.facts.dictionary import FACTS

        assert float(f"{value * factor:.12g}") == units.convert(
            value, unit, str(FACTS[fact].unit), substance=FACTS[fact].substance)
    with pytest.raises(UnitError):
        unit_factor("alt", "mg/dL")


class _FailingEngine(DuckDBEngine):
    """Fails while writing the third trial's results."""

    def __init__(self) -> None:
        super().__init__(memory_limit="1GB")
        self.writes = 0

    def write(self, sql: str, directory: Path) -> None:
        self.writes += 1
        if self.writes == 3:
            raise TrialdeskError("disk full")
        super().write(sql, directory)


def test_an_interrupted_run_leaves_the_previous_output(population: Path, tmp_path: Path,
                                                       protocols: dict[str, Any]) -> None:
    trials = list(protocols.values())
    out = tmp_path / "out"
    screen(population, out, trials)
    before = rows_of(out)
    manifest = (out / MANIFEST).read_text()
    with pytest.raises(TrialdeskError, match="disk full"):
        screen(population, out, trials, engine=_FailingEngine())
    assert rows_of(out) == before and (out / MANIFEST).read_text() == manifest
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no partial directory left
    # A first run that fails leaves nothing that looks complete.
    with pytest.raises(TrialdeskError):
        screen(population, tmp_path / "new", trials, engine=_FailingEngine())
    assert not (tmp_path / "new").exists()


def test_refuses_to_replace_a_foreign_directory(population: Path, tmp_path: Path,
                                                protocols: dict[str, Any]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(TrialdeskError, match="not a trialdesk population output"):
        screen(population, out, list(protocols.values()))
    assert (out / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------------------
# Synthetic population and trial variants


def test_synthetic_population_is_plausible(tmp_path_factory: pytest.TempPathFactory,
                                           protocols: dict[str, Any]) -> None:
    data = tmp_path_factory.mktemp("plausible") / "data"
    counts = write_tables(data, synthesise(4000, seed=11, on=ON, trials=list(protocols.values())))
    assert counts["person"] == 4000
    assert 25 <= counts["measurement"] / 4000 <= 35  # about 30 measurements each
    out = data.parent / "out"
    # A nightly run: septic-shock onsets are hours before midnight.
    report = screen(data, out, list(protocols.values()), as_of=datetime(2026, 11, 21))
    for trial_id, entry in report.summary["trials"].items():
        v = entry["verdicts"]
        # Some candidates, never everyone.
        assert v["eligible"] > 0, trial_id
        assert v["eligible"] + v["undetermined"] < 4000 * 0.75, trial_id
    units = duckdb.sql(f"SELECT DISTINCT unit_source_value FROM read_parquet('{data}/measurement/"
                       "*.parquet') WHERE measurement_source_value IN ('creatinine', '2160-0')"
                       ).fetchall()
    assert {u for (u,) in units} == {"umol/L", "mg/dL"}
    stale = duckdb.sql(f"SELECT count(*) FILTER (WHERE measurement_date < DATE '2026-11-07') / "
                       f"count(*) FROM read_parquet('{data}/measurement/*.parquet')").fetchall()[0]
    assert 0.3 < stale[0] < 0.9  # some older than a 14-day window
    assert synthesise_is_deterministic()


def synthesise_is_deterministic() -> bool:
    a = next(synthesise(50, seed=3, on=ON))
    b = next(synthesise(50, seed=3, on=ON))
    c = next(synthesise(50, seed=4, on=ON))
    return all(a[k].equals(b[k]) for k in a) and not a["measurement"].equals(c["measurement"])


def test_variants_shift_thresholds_and_windows(tmp_path: Path) -> None:
    from trialdesk.criteria.ast import to_text
    from trialdesk.criteria.parser import parse

    assert to_text(shift_thresholds(parse("age_years <= 18 and anc <= 1 [10^9/L]"), 1.1)) == \
        "age_years <= 20 and anc <= 1.1 [10^9/L]"
    seeds = [read_document(p) for p in sorted(default_protocol_dir().glob("*.yaml"))]
    docs = make_variants(seeds, 8, seed=1)
    compiled = [protocol_from_data(d, source=d["id"]) for d in docs]
    assert len({c.id for c in compiled}) == 8
    assert all(c.protocol.registry.identification.nct_id is None for c in compiled)
    windows = {c.protocol.eligibility.lookback.default_days for c in compiled}
    assert len(windows) > 1
    code, text, err = run("population", "trials", "--variants", "6", "--out", str(tmp_path / "p"))
    assert code == 0, err
    assert "4 seed protocols and 6 variants" in text
    assert len(load_directory(tmp_path / "p")) == 10
    assert make_variants(seeds, 3, seed=1) == make_variants(seeds, 3, seed=1)


def test_plan_is_pure_sql_for_both_engines(protocols: dict[str, Any]) -> None:
    from trialdesk.screening.flavour import Flavour

    trials = list(protocols.values())
    stats = InputStats(tables=frozenset(TABLES))
    duck = build_plan(trials, as_of=AS_OF, stats=stats)
    spark = build_plan(trials, as_of=AS_OF, flavour=Flavour("spark"), stats=stats)
    assert [n for n, _ in duck.steps] == [n for n, _ in spark.steps]
    assert "arg_max(" in duck.show() and "max_by(" in spark.show()
    assert '"gfr@schwartz"' in duck.show() and "`gfr@schwartz`" in spark.show()
    # Trials with the same look-back windows share their windowed columns.
    assert duck.show().count("AS \"lvef#") == 1


def test_vocabulary_facts_are_enums_and_compare_like_text(
        population: Path, protocols: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB holds the facts with a fixed vocabulary as ENUMs; they compare with text as
    text does, and every fact and every trial's rows are those of the plan without them."""
    from trialdesk.screening import plan as plan_module
    from trialdesk.screening.run import gather_stats

    trials = list(protocols.values())

    def run() -> tuple[dict[str, str], list[Any], list[list[Any]], int]:
        with DuckDBEngine(memory_limit="1GB") as engine:
            stats = gather_stats(engine, load_inputs(engine, population))
            plan = build_plan(trials, as_of=AS_OF, stats=stats)
            for name, sql in plan.steps:
                engine.materialise(name, sql)
            types = {r[0]: r[1] for r in engine.rows("DESCRIBE td_facts")}
            text = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in types)
            facts = engine.rows(f"SELECT {text} FROM td_facts ORDER BY person_id")
            results = [engine.rows(f"SELECT * FROM ({t.sql}) ORDER BY person_id")
                       for t in plan.trials]
            # Text order ('female' < 'g' < 'male'), not the ENUM's ('male', 'female').
            below_g = engine.rows("SELECT count(*) FROM td_facts WHERE sex < 'g'")[0][0]
        return types, facts, results, below_g

    types, facts, results, below_g = run()
    for column in ("sex", "primary_diagnosis", "diagnosis_category", "disease_status",
                   "risk_group", "end_induction_response", "rifle_class"):
        assert types[column].startswith("ENUM("), (column, types[column])
    assert types["risk_system"] == "VARCHAR"  # free text in the patient file
    females = sum(1 for row in facts if row[list(types).index("sex")] == "female")
    assert below_g == females > 0

    monkeypatch.setattr(plan_module, "_enumerated", lambda f, value, vocabulary: value)
    plain_types, plain_facts, plain_results, plain_below_g = run()
    assert not any(t.startswith("ENUM(") and c in ("sex", "disease_status")
                   for c, t in plain_types.items())
    assert list(plain_types) == list(types)
    assert plain_facts == facts
    assert plain_results == results
    assert plain_below_g == below_g


def test_records_from_rows_keeps_absent_and_empty_apart() -> None:
    person = {"person_id": 9, "gender_concept_id": 8507, "year_of_birth": 2000,
              "month_of_birth": 1, "day_of_birth": 2}
    unknown = records_from_rows([person], on=ON)[0]
    none = records_from_rows([person], on=ON, observations=[
        {"person_id": 9, "observation_id": 1, "observation_date": ON,
         "observation_source_value": "treatment_history_recorded",
         "value_as_string": "true"}])[0]
    assert unknown.treatments is None and none.treatments == []
    assert unknown.sex == "male"


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path: Path) -> Iterator[None]:
    yield
    assert not list(tmp_path.glob(".*.partial-*"))


def test_criterion_outcomes_decode(protocols: dict[str, Any]) -> None:
    from trialdesk.screening.output import TrialIndex

    plan = build_plan([protocols["RuMCeSS"]], as_of=AS_OF)
    index = TrialIndex.of(plan.trials[0], protocols["RuMCeSS"])
    outcomes = index.outcomes(met=0b000000001, unknown=0b000000010)
    assert outcomes[0] == ("I1", "inclusion", Outcome.MET)
    assert outcomes[1] == ("I2", "inclusion", Outcome.UNKNOWN)
    assert outcomes[2] == ("I3", "inclusion", Outcome.NOT_MET)


def test_select_trials(protocols: dict[str, Any]) -> None:
    assert {c.id for c in select_trials(protocols)} == {"NB-NK-2026", "DB-POSTCONS"}
    assert len(select_trials(protocols, "all")) == 4
    assert [c.id for c in select_trials(protocols, "RuMCeSS, REFNOT-R2")] == ["RuMCeSS",
                                                                             "REFNOT-R2"]
    with pytest.raises(TrialdeskError, match="no trial 'X'"):
        select_trials(protocols, "X")
