"""`trialdesk biomarkers …` on the synthetic examples: JSON equals the library results,
missing values are listed, bad inputs exit 1 with one clear message and write nothing."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from trialdesk.cli import app
from trialdesk.outcomes.biomarkers import (
    free_days_table,
    join_baseline,
    subgroup_survival,
    validate_biomarkers,
)
from trialdesk.outcomes.endpoints import progression_free_survival
from trialdesk.outcomes.events import read_event_table

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "biomarkers"
NB_EVENTS = ROOT / "examples" / "outcomes" / "nb-nk-2026-events.csv"
RU_EVENTS = ROOT / "examples" / "outcomes" / "rumcess-events.csv"
NB = ["--trial", "NB-NK-2026", "--events", NB_EVENTS, "--biomarkers",
      EXAMPLES / "nb-nk-2026-biomarkers.csv"]
RU = ["--trial", "RuMCeSS", "--events", RU_EVENTS, "--biomarkers",
      EXAMPLES / "rumcess-biomarkers.csv"]
runner = CliRunner()


def run(*args: object) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_subgroup_json_equals_the_library(tmp_path: Path) -> None:
    code, out, err = run("biomarkers", "subgroup", *NB, "--biomarker", "gd2_ihc_percent",
                         "--cut", "gd2_ihc_percent=50", "--endpoint", "PFS", "--json",
                         "--out", tmp_path / "km.svg")
    assert code == 0, err
    doc = json.loads(out[:out.rindex("}") + 1])
    table = pd.read_csv(EXAMPLES / "nb-nk-2026-biomarkers.csv", dtype=str)
    joined = join_baseline(progression_free_survival(read_event_table(NB_EVENTS)),
                           validate_biomarkers(table), ["gd2_ihc_percent"],
                           cuts={"gd2_ihc_percent": 50})
    expected = subgroup_survival(joined, "gd2_ihc_percent")
    assert doc["logrank"]["p"] == pytest.approx(expected.logrank.p_value)
    assert [r["group"] for r in doc["km"]] == ["< 50", "≥ 50"]
    assert (tmp_path / "km.svg").read_bytes().startswith(b"<?xml")


def test_cox_lists_the_patient_without_a_genotype() -> None:
    code, out, err = run("biomarkers", "cox", *NB, "--covariates", "nk_cells,fcgr3a_genotype",
                         "--endpoint", "PFS", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["missing"] == ["NB-06"] and doc["n"] == 11
    assert [r["term"] for r in doc["proportional_hazards"]] == [
        r["term"] for r in doc["hazard_ratios"]]
    code, out, _ = run("biomarkers", "cox", *NB, "--covariates", "fcgr3a_genotype")
    assert "missing, not imputed" in out and "NB-06" in out


def test_forest_hazard_ratio_and_response(tmp_path: Path) -> None:
    code, out, err = run("biomarkers", "forest", *NB, "--subgroups", "gd2_ihc_percent",
                         "--cut", "gd2_ihc_percent=50", "--endpoint", "PFS", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [(r["subgroup"], r["level"]) for r in doc["rows"]] == [
        ("all patients", ""), ("gd2_ihc_percent", "< 50"), ("gd2_ihc_percent", "≥ 50")]
    assert doc["interaction"][0]["df"] == 1 and 0 <= doc["interaction"][0]["p"] <= 1
    code, _, err = run("biomarkers", "forest", *NB, "--subgroups", "fcgr3a_genotype",
                       "--measure", "response", "--out", tmp_path / "forest.png")
    assert code == 0, err
    assert (tmp_path / "forest.png").read_bytes()[:4] == b"\x89PNG"


def test_longitudinal_and_free_days(tmp_path: Path) -> None:
    code, out, err = run("biomarkers", "longitudinal", *RU, "--biomarker", "il6", "--log10",
                         "--days", "1,2,3,7,14,28", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert {r["day"] for r in doc["summary"]} == {1, 2, 3, 7, 14, 28}
    assert sum(r["missing"] for r in doc["summary"]) > 0
    assert doc["mixed_model"]["formula"] == "value ~ C(arm) * day"
    assert len(doc["mann_whitney"]) == 6
    episodes = EXAMPLES / "rumcess-episodes.csv"
    code, out, err = run("biomarkers", "free-days", "--trial", "RuMCeSS", "--events", RU_EVENTS,
                         "--episodes", episodes, "--json")
    assert code == 0, err
    doc = json.loads(out)
    events = read_event_table(RU_EVENTS).frame
    expected = free_days_table(events, pd.read_csv(episodes, dtype=str), "ventilation")
    got = {p["patient_id"]: p["free_days"] for p in doc["patients"]}
    assert got == {r.patient_id: (None if pd.isna(r.free_days) else int(r.free_days))
                   for r in expected.itertuples()}
    assert doc["summary"]["unknown"] == sum(v is None for v in got.values())


@pytest.mark.parametrize(("args", "message"), [
    (["subgroup", *NB, "--biomarker", "nk_cells"], "needs a cut point"),
    (["subgroup", *NB, "--biomarker", "ldh"], "no rows for this biomarker"),
    (["cox", *NB, "--covariates", "fcgr3a_genotype", "--cut", "fcgr3a_genotype=1"],
     "needs numbers"),
    (["longitudinal", *NB, "--biomarker", "fcgr3a_genotype"], "no dated values"),
])
def test_bad_requests_exit_1_with_the_reason(args: list[object], message: str) -> None:
    code, _, err = run("biomarkers", *args)
    assert code == 1 and message in err


def test_bad_biomarker_file_names_the_file_and_rows(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,biomarker,day,value\nNB-01,il6,0,3\n", encoding="utf-8")
    out = tmp_path / "km.png"
    code, _, err = run("biomarkers", "subgroup", "--trial", "NB-NK-2026", "--events", NB_EVENTS,
                       "--biomarkers", bad, "--biomarker", "il6", "--out", out)
    assert code == 1 and f"{bad}: day" in err and "rows 2" in err
    assert not out.exists()
    code, _, err = run("biomarkers", "forest", *NB, "--subgroups", "x", "--measure", "odds")
    assert code == 2 and "hr or response" in err


def test_examples_are_what_the_generator_writes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_biomarkers", EXAMPLES / "make_examples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in EXAMPLES.iterdir() if p.suffix == ".csv")
    for name in written:
        assert (tmp_path / name).read_bytes() == (EXAMPLES / name).read_bytes(), name
