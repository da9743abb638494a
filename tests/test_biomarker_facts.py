"""Biomarker facts: GD2 specimens, immune profile, genotypes, drug exposure, sepsis markers.

Criteria on biomarkers of an existing kind (laboratory, measurement, finding) run the same
in the per-patient evaluator and on the population engine (a parity test below); the
facts derived from structured entries (GD2 status, PaO₂/FiO₂, SOFA, support episodes) are
per-patient only and ``protocol lint`` says so.
"""

from __future__ import annotations

import copy
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

# The OMOP table layouts of the population tests.
from test_population import MEASUREMENT, OBSERVATION, PERSON, write
from trialdesk.criteria.verdict import Outcome, screen_record
from trialdesk.errors import FactError
from trialdesk.facts.biomarkers import Gd2Threshold, gd2_status
from trialdesk.facts.dictionary import FACTS
from trialdesk.facts.normalise import normalise
from trialdesk.facts.patient import Gd2Specimen, patient_from_data
from trialdesk.protocol.lint import lint
from trialdesk.protocol.load import (
    CompiledProtocol,
    default_protocol_dir,
    protocol_from_data,
    read_document,
)
from trialdesk.protocol.model import LookBack
from trialdesk.screening.engine import DuckDBEngine
from trialdesk.screening.run import load_inputs, load_records, screen_population

ON = date(2026, 11, 20)
AS_OF = datetime(2026, 11, 20, 12, 0)
LOOKBACK = LookBack(default_days=30, source="test")
# The example rule: "GD2-positive by immunohistochemistry ≥ 50% of tumour cells".
IHC_50 = Gd2Threshold("ihc", 50.0)


def record(**extra: Any) -> dict[str, Any]:
    return {"patient_id": "p1", "birth_date": "2019-05-01", "sex": "female", **extra}


def facts_of(data: dict[str, Any], gd2: Gd2Threshold | None = IHC_50) -> Any:
    rec = patient_from_data(data, today=ON)
    return normalise(rec, trial_id="T", lookback=LOOKBACK, as_of=AS_OF, gd2=gd2)


def ihc(day: str, site: str, pct: float) -> dict[str, Any]:
    return {"date": day, "site": site, "method": "ihc", "percent_positive": pct}


# --- dictionary ---------------------------------------------------------------


def test_biomarker_facts_have_units_codes_and_kinds() -> None:
    # LOINC codes checked against loinc.org / laboratory catalogues (see dictionary.py).
    assert FACTS["il6"].code == "LOINC 26881-3" and FACTS["il6"].unit == "pg/mL"
    assert FACTS["il10"].code == "LOINC 26848-2"
    assert FACTS["procalcitonin"].code == "LOINC 33959-8"
    assert FACTS["crp"].code == "LOINC 1988-5" and FACTS["crp"].unit == "mg/L"
    assert FACTS["pao2"].code == "LOINC 2703-7" and FACTS["fio2"].code == "LOINC 3150-0"
    assert FACTS["alc"].code == "LOINC 731-0" and FACTS["monocytes"].code == "LOINC 742-7"
    assert FACTS["fcgr3a_genotype"].values == ("V/V", "V/F", "F/F")
    assert FACTS["fcgr2a_genotype"].values == ("H/H", "H/R", "R/R")
    assert not FACTS["fcgr3a_genotype"].dated  # germline: no look-back window
    per_patient = {n for n, f in FACTS.items() if f.per_patient}
    assert per_patient == {"gd2_status", "gd2_heterogeneous", "pao2_fio2", "sofa_score",
                           "on_rrt", "on_invasive_ventilation", "on_non_invasive_ventilation"}


# --- GD2 ----------------------------------------------------------------------


@pytest.mark.parametrize(("pct", "status"), [(49.9, "negative"), (50.0, "positive"),
                                             (50.1, "positive"), (0.0, "negative")])
def test_gd2_status_at_and_around_the_threshold(pct: float, status: str) -> None:
    facts = facts_of(record(gd2_specimens=[ihc("2026-11-01", "primary, left adrenal", pct)]))
    assert facts["gd2_status"].value == status
    assert facts["gd2_heterogeneous"].value is False
    assert facts["gd2_ihc_percent"].value == pct
    assert "left adrenal" in facts["gd2_ihc_percent"].source


def test_gd2_discordant_lesions_and_heterogeneity_over_time() -> None:
    same_day = facts_of(record(gd2_specimens=[ihc("2026-11-01", "adrenal", 80),
                                              ihc("2026-11-01", "bone, femur", 10)]))
    assert same_day["gd2_status"].value == "discordant"
    assert same_day["gd2_heterogeneous"].value is True
    # Earlier positive, latest negative: status from the latest date, heterogeneous overall.
    later = facts_of(record(gd2_specimens=[ihc("2026-10-25", "adrenal", 80),
                                           ihc("2026-11-10", "adrenal", 20)]))
    assert later["gd2_status"].value == "negative"
    assert later["gd2_heterogeneous"].value is True
    assert "80% on 2026-10-25" in later["gd2_status"].source


def test_gd2_other_methods_and_missing_rule_leave_status_unknown() -> None:
    flow = {"date": "2026-11-01", "site": "marrow", "method": "flow_cytometry",
            "percent_positive": 90}
    facts = facts_of(record(gd2_specimens=[flow]))
    assert "gd2_status" not in facts
    assert "no immunohistochemistry specimen" in facts.why_missing("gd2_status")
    assert facts["gd2_flow_percent"].value == 90
    no_rule = facts_of(record(gd2_specimens=[ihc("2026-11-01", "adrenal", 90)]), gd2=None)
    assert "sets no GD2 method" in no_rule.why_missing("gd2_status")
    # Older than the look-back window: unknown, not negative.
    old = gd2_status([Gd2Specimen(date=date(2026, 1, 1), site="a", method="ihc",
                                  percent_positive=90)], IHC_50, on=ON, since=date(2026, 10, 21))
    assert old.status is None


@pytest.mark.parametrize(("entry", "where", "reason"), [
    ({"date": "2026-11-01", "site": "a", "method": "ihc"}, "gd2_specimens[0]",
     "percent_positive or h_score"),
    ({"date": "2026-11-01", "site": "a", "method": "flow_cytometry", "h_score": 200},
     "gd2_specimens[0]", "H-score"),
    ({"date": "2026-11-01", "site": "a", "method": "ihc", "percent_positive": 101},
     "gd2_specimens[0].percent_positive", "100"),
    ({"date": "2026-11-01", "site": "a", "method": "pcr", "percent_positive": 5},
     "gd2_specimens[0].method", "ihc"),
])
def test_bad_gd2_specimens_are_refused(entry: dict[str, Any], where: str, reason: str) -> None:
    with pytest.raises(FactError) as err:
        patient_from_data(record(gd2_specimens=[entry]), today=ON)
    assert where in (err.value.where or "") and reason in err.value.reason


# --- immune profile, genotypes, exposure ---------------------------------------


def test_immune_profile_genotypes_and_exposure() -> None:
    facts = facts_of(record(
        observations=[
            {"name": "alc", "value": 1.2, "unit": "10^9/L", "date": "2026-11-15"},
            {"name": "nk_cells", "value": 150, "unit": "/uL", "date": "2026-11-15"},
            {"name": "dinutuximab_beta_level", "value": 5200, "unit": "ng/mL",
             "date": "2026-11-15"},
        ],
        cytotoxicity_assays=[{"date": "2026-11-15", "assay": "adcc", "lysis_percent": 42.5,
                              "effector_target_ratio": "10:1", "target_cells": "LAN-1"}],
        findings=[{"name": "fcgr3a_genotype", "value": "V/F", "date": "2020-01-01"},
                  {"name": "anti_drug_antibodies", "value": "negative", "date": "2026-11-15"}],
    ))
    assert facts["alc"].value == 1200.0  # /mm3
    assert facts["nk_cells"].value == 150.0
    assert facts["dinutuximab_beta_level"].value == 5.2  # µg/mL
    assert facts["adcc_lysis"].value == 42.5 and "E:T 10:1" in facts["adcc_lysis"].source
    # A germline genotype from 2020 is still known in 2026 (no look-back window).
    assert facts["fcgr3a_genotype"].value == "V/F"
    assert facts["anti_drug_antibodies"].value == "negative"


@pytest.mark.parametrize(("data", "where", "reason"), [
    ({"findings": [{"name": "fcgr3a_genotype", "value": "V/X", "date": "2020-01-01"}]},
     "findings[0].value", "V/V, V/F, F/F"),
    ({"cytotoxicity_assays": [{"date": "2026-11-01", "assay": "adcc", "lysis_percent": 10,
                               "effector_target_ratio": "1:10"}]},
     "cytotoxicity_assays[0].effector_target_ratio", "pattern"),
    ({"observations": [{"name": "il6", "value": 5, "unit": "mmol/L", "date": "2026-11-01"}]},
     "observations[0].unit", "does not fit il6"),
])
def test_bad_biomarker_values_are_refused(data: dict[str, Any], where: str, reason: str) -> None:
    with pytest.raises(FactError) as err:
        patient_from_data(record(**data), today=ON)
    assert where in (err.value.where or "") and reason in err.value.reason


# --- sepsis: oxygenation, SOFA, organ support ---------------------------------


def test_pao2_fio2_from_the_same_day_only() -> None:
    same = facts_of(record(observations=[
        {"name": "pao2", "value": 80, "unit": "mmHg", "date": "2026-11-19"},
        {"name": "fio2", "value": 40, "unit": "%", "date": "2026-11-19"}]))
    assert same["pao2_fio2"].value == 200.0
    kpa = facts_of(record(observations=[
        {"name": "pao2", "value": 10.6658, "unit": "kPa", "date": "2026-11-19"},
        {"name": "fio2", "value": 40, "unit": "%", "date": "2026-11-19"}]))
    assert kpa["pao2_fio2"].value == pytest.approx(200.0, abs=0.1)
    apart = facts_of(record(observations=[
        {"name": "pao2", "value": 80, "unit": "mmHg", "date": "2026-11-19"},
        {"name": "fio2", "value": 40, "unit": "%", "date": "2026-11-18"}]))
    assert "pao2_fio2" not in apart and "not of the same day" in apart.why_missing("pao2_fio2")


def test_sofa_score_from_components_and_incomplete_assessments() -> None:
    complete = {"date": "2026-11-19", "pao2_fio2": 250, "respiratory_support": False,
                "platelets": 90, "bilirubin": 2.0, "mean_arterial_pressure": 65, "dopamine": 0,
                "dobutamine": 0, "epinephrine": 0, "norepinephrine": 0.05,
                "glasgow_coma_scale": 14, "creatinine": 1.5}
    facts = facts_of(record(sofa=[complete]))
    # respiration 2 (<300), coagulation 2 (<100), liver 2 (2.0–5.9), CV 3 (NE ≤0.1),
    # CNS 1 (13–14), renal 1 (1.2–1.9): Vincent 1996 Table 1.
    assert facts["sofa_score"].value == 11
    partial = {k: v for k, v in complete.items() if k != "glasgow_coma_scale"}
    facts = facts_of(record(sofa=[{**partial, "date": "2026-11-20"}]))
    assert "sofa_score" not in facts
    assert "Glasgow" in facts.why_missing("sofa_score")


def test_support_episodes() -> None:
    facts = facts_of(record(support_episodes=[
        {"kind": "invasive_ventilation", "start": "2026-11-10"},
        {"kind": "rrt", "start": "2026-11-05", "end": "2026-11-12"}]))
    assert facts["on_invasive_ventilation"].value is True
    assert facts["on_rrt"].value is False
    assert facts["on_non_invasive_ventilation"].value is False
    unknown = facts_of(record())
    assert "on_rrt" not in unknown and "not recorded" in unknown.why_missing("on_rrt")
    with pytest.raises(FactError) as err:
        patient_from_data(record(support_episodes=[{"kind": "rrt", "start": "2026-12-01"}]),
                          today=ON)
    assert "support_episodes[0].start" in (err.value.where or "")


# --- criteria on biomarkers: per patient and on the population engine ----------


def biomarker_protocol(gd2: bool = False) -> CompiledProtocol:
    data = copy.deepcopy(read_document(default_protocol_dir() / "rumcess.yaml"))
    data["id"] = "BIOMARKER-TEST"
    data["eligibility"]["lookback"] = {"default_days": 30, "source": "test"}
    data["eligibility"]["inclusion"] = [
        {"id": "B1", "text": "GD2 ≥ 50% by IHC", "rule": "gd2_ihc_percent >= 50 [%]"},
        {"id": "B2", "text": "IL-6 above 100 pg/mL", "rule": "il6 > 100 [pg/mL]"},
        {"id": "B3", "text": "FCGR3A V/V or V/F", "rule": "fcgr3a_genotype in ['V/V', 'V/F']"},
    ]
    data["eligibility"]["exclusion"] = [
        {"id": "X1", "text": "anti-drug antibodies", "rule": "anti_drug_antibodies == 'positive'"},
    ]
    if gd2:
        data["biomarkers"] = {"gd2": {"method": "ihc", "threshold_percent": {
            "value": 50, "unit": "%", "source": "issue example", "unconfirmed": True}}}
        data["eligibility"]["inclusion"].append(
            {"id": "B4", "text": "GD2-positive", "rule": "gd2_status == 'positive'"})
    for arm in data["arms"]:
        arm.pop("sampling", None)
    return protocol_from_data(data, source="biomarker-test")


def test_criteria_on_biomarkers_per_patient() -> None:
    compiled = biomarker_protocol(gd2=True)
    rec = patient_from_data(record(
        gd2_specimens=[ihc("2026-11-01", "adrenal", 60)],
        observations=[{"name": "il6", "value": 0.15, "unit": "ng/mL", "date": "2026-11-19"}],
        findings=[{"name": "fcgr3a_genotype", "value": "F/F", "date": "2020-01-01"}]),
        today=ON)
    result = screen_record(compiled, rec, as_of=AS_OF)
    outcomes = {c.id: c.outcome for c in result.criteria}
    assert outcomes == {"B1": Outcome.MET, "B2": Outcome.MET, "B3": Outcome.NOT_MET,
                        "B4": Outcome.MET, "X1": Outcome.UNKNOWN}


def test_lint_names_per_patient_only_facts_and_the_unconfirmed_threshold() -> None:
    findings = lint(biomarker_protocol(gd2=True))
    per_patient = [f for f in findings if f.code == "per-patient-only"]
    assert [f.where.split(": ")[-1] for f in per_patient] == ["B4"]
    assert any(f.code == "unconfirmed" and "biomarkers.gd2" in f.where for f in findings)


def test_biomarker_criteria_agree_between_per_patient_and_population(tmp_path: Path) -> None:
    compiled = biomarker_protocol()
    data = tmp_path / "data"
    d = date
    write(data, "person", [{"person_id": i, "gender_concept_id": 8532, "year_of_birth": 2018,
                             "month_of_birth": 1, "day_of_birth": 1} for i in range(1, 6)], PERSON)
    m = "measurement_source_value"
    write(data, "measurement", [
        # 1: GD2 exactly 50 %, IL-6 by LOINC code in ng/mL (0.2 = 200 pg/mL).
        {"measurement_id": 1, "person_id": 1, "measurement_date": d(2026, 11, 1),
         m: "gd2_ihc_percent", "value_as_number": 50.0, "unit_source_value": "%"},
        {"measurement_id": 2, "person_id": 1, "measurement_date": d(2026, 11, 19),
         m: "26881-3", "value_as_number": 0.2, "unit_source_value": "ng/mL"},
        # 2: GD2 49.9 %, IL-6 exactly 100 (not above).
        {"measurement_id": 3, "person_id": 2, "measurement_date": d(2026, 11, 1),
         m: "gd2_ihc_percent", "value_as_number": 49.9, "unit_source_value": "%"},
        {"measurement_id": 4, "person_id": 2, "measurement_date": d(2026, 11, 19),
         m: "il6", "value_as_number": 100.0, "unit_source_value": "pg/mL"},
        # 3: IL-6 older than the 30-day window: unknown.
        {"measurement_id": 5, "person_id": 3, "measurement_date": d(2026, 9, 1),
         m: "il6", "value_as_number": 900.0, "unit_source_value": "pg/mL"},
    ], MEASUREMENT)
    o = "observation_source_value"
    write(data, "observation", [
        {"observation_id": 1, "person_id": 1, "observation_date": d(2019, 1, 1),
         o: "fcgr3a_genotype", "value_as_string": "V/F"},
        {"observation_id": 2, "person_id": 2, "observation_date": d(2019, 1, 1),
         o: "fcgr3a_genotype", "value_as_string": "F/F"},
        {"observation_id": 3, "person_id": 1, "observation_date": d(2026, 11, 10),
         o: "anti_drug_antibodies", "value_as_string": "negative"},
        {"observation_id": 4, "person_id": 4, "observation_date": d(2026, 11, 10),
         o: "anti_drug_antibodies", "value_as_string": "positive"},
    ], OBSERVATION)
    out = tmp_path / "out"
    with DuckDBEngine(memory_limit="1GB") as engine:
        screen_population(engine, data=data, out=out, protocols=[compiled], as_of=AS_OF)
        inputs = load_inputs(engine, data)
        records = load_records(engine, [1, 2, 3, 4, 5], on=ON, inputs=inputs)
    import duckdb

    found = dict(duckdb.sql(f"SELECT person_id, verdict FROM read_parquet('{out}/screening/*/*"
                            ".parquet') ORDER BY 1").fetchall())
    expected = {int(r.patient_id): screen_record(compiled, r, as_of=AS_OF).verdict.value
                for r in records}
    assert found == expected
    assert expected == {1: "eligible", 2: "ineligible", 3: "undetermined", 4: "ineligible",
                        5: "undetermined"}
