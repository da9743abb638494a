"""The command line: every command, its output and its exit code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trialdesk.cli import app
from trialdesk.protocol.load import default_protocol_dir

runner = CliRunner()
EXAMPLES = default_protocol_dir().parent / "examples" / "patients"
NB = EXAMPLES / "nb-refractory.json"


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_trials_lists_the_seed_trials() -> None:
    code, out, _ = run("trials")
    assert code == 0
    assert "NB-NK-2026" in out
    assert "Phase 3" in out


def test_show_renders_the_registry_page() -> None:
    code, out, _ = run("show", "NB-NK-2026")
    assert code == 0
    for text in ("Federal Research Institute", "NCT07375563", "NCHPOI-2025-10",
                 "Inclusion criteria", "Exclusion criteria", "18 Months to 18 Years",
                 "No Healthy Volunteers", "Non-Randomized", "None (Open label)",
                 "Day -1: Mononuclear-cell collection", "[unconfirmed]", "× 4", "× 5"):
        assert text in out, text


def test_show_unknown_trial_is_one_line_exit_1() -> None:
    code, out, err = run("show", "NB-NK-2027")
    assert code == 1
    assert out == ""
    assert err.startswith("error: no trial 'NB-NK-2027' (did you mean NB-NK-2026?); known: ")
    assert err.count("\n") == 1
    assert "did you mean NB-NK-2026?" in err


def test_screen_json_is_the_stable_document() -> None:
    code, out, _ = run("screen", str(NB), "--trial", "NB-NK-2026", "--on", "2026-11-21", "--json")
    assert code == 0
    doc = json.loads(out)
    result = doc["results"][0]
    assert result["schema"] == "trialdesk.screening/1"
    assert result["verdict"] == "eligible"
    assert result["arm"] == "A"
    assert [c["id"] for c in result["criteria"]][:3] == ["I1", "I2", "I3"]
    lvef = next(c for c in result["criteria"] if c["id"] == "I10")
    assert lvef["outcome"] == "met"
    assert {"fact": "lvef", "value": 64.0, "unit": "%", "observed": "2026-11-10",
            "source": "lvef 64 % on 2026-11-10"} in lvef["evidence"]


def test_screen_unknown_lists_missing_facts(tmp_path: Path) -> None:
    data = json.loads(NB.read_text())
    data["observations"] = [o for o in data["observations"] if o["name"] != "lvef"]
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    code, out, _ = run("screen", str(path), "--trial", "nb-nk-2026", "--on", "2026-11-21",
                       "--json")
    assert code == 0
    result = json.loads(out)["results"][0]
    assert result["verdict"] == "undetermined"
    assert result["missing_facts"] == ["lvef"]
    i10 = next(c for c in result["criteria"] if c["id"] == "I10")
    assert i10["outcome"] == "unknown"
    assert i10["missing"] == [{"fact": "lvef", "reason": "not recorded"}]


def test_screen_table_output() -> None:
    code, out, _ = run("screen", str(NB), "--on", "2026-11-21")
    assert code == 0
    assert "ELIGIBLE" in out
    assert "arm: A" in out


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "malformed JSON"),
        ('{"patient_id": "x", "birth_date": "2030-01-01"}', "$.birth_date: birth date is in the future"),
        ('{"patient_id": "x"}', "$.birth_date: required field is missing"),
    ],
)
def test_screen_bad_patient_file(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    code, out, err = run("screen", str(path))
    assert code == 1
    assert fragment in err
    assert "Traceback" not in err + out


def test_screen_usage_errors_exit_2() -> None:
    assert run("screen")[0] == 2
    assert run("screen", str(NB), "--bogus")[0] == 2
    code, _, err = run("screen", str(NB), "--on", "yesterday")
    assert code == 2
    assert "not an ISO date" in err


def test_lint_bundled_protocols_passes_with_warnings() -> None:
    code, out, _ = run("lint")
    assert code == 0
    assert "[overlap]" in out
    assert "0 errors" in out


def test_lint_exit_1_on_errors(tmp_path: Path) -> None:
    src = (default_protocol_dir() / "nb-nk-2026.yaml").read_text()
    broken = src.replace("rule: staging_complete\n  exclusion:",
                         "rule: lvef > 60 [%] and lvef < 50 [%]\n  exclusion:")
    assert broken != src
    (tmp_path / "nb.yaml").write_text(broken)
    code, out, _ = run("lint", str(tmp_path))
    assert code == 1
    assert "[never-met]" in out
    assert "I12" in out


def test_lint_unloadable_protocol_is_one_line(tmp_path: Path) -> None:
    shutil.copy(default_protocol_dir() / "nb-nk-2026.yaml", tmp_path / "nb.yaml")
    path = tmp_path / "nb.yaml"
    path.write_text(path.read_text().replace("rule: staging_complete\n  exclusion:",
                                             "rule: staging_complet\n  exclusion:"))
    code, _, err = run("lint", str(path))
    assert code == 1
    assert "inclusion criterion I12" in err
    assert "did you mean 'staging_complete'" in err


def test_schema_patient() -> None:
    code, out, _ = run("schema", "patient")
    assert code == 0
    schema = json.loads(out)
    assert "birth_date" in schema["required"]
    assert run("schema", "nonsense")[0] == 2


def test_demo_runs_the_main_job() -> None:
    code, out, _ = run("demo")
    assert code == 0
    assert "Registered trials" in out
    assert "NB-NK-2026" in out
    assert "nb-refractory.json" in out
