"""The grading, adverse-event, safety and response commands, and the response documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from trialdesk.cli import app
from trialdesk.errors import NotFoundError, ResponseError
from trialdesk.protocol.load import default_protocol_dir, load_protocol
from trialdesk.response import inrc
from trialdesk.response.documents import inrc_time_point, recist_series
from trialdesk.response.schedule import assessment_points, treatment_courses

runner = CliRunner()
ROOT = default_protocol_dir().parent
SAFETY = ROOT / "examples" / "safety"
RESPONSE = ROOT / "examples" / "response"


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def one_line_error(code: int, out: str, err: str) -> str:
    assert code == 1
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    return err


# --------------------------------------------------------------------------- grade


def test_grade_lab_known_grade() -> None:
    code, out, _ = run("grade", "lab", "--term", "Neutrophil count decreased", "--value", "800",
                       "--unit", "/mm3", "--lln", "1800")
    assert code == 0
    assert out.splitlines()[0] == "Neutrophil count decreased 0.8 10^9/L (CTCAE v5.0): grade 3"
    assert "source: NCI CTCAE v5.0" in out


def test_grade_lab_open_grade_names_what_decides() -> None:
    code, out, _ = run("grade", "lab", "--term", "Hyponatremia", "--value", "127", "--unit", "mmol/L",
                       "--lln", "135")
    assert code == 0
    assert "grade not decided, one of 2, 3; needs symptomatic" in out
    code, out, _ = run("grade", "lab", "--term", "Hyponatremia", "--value", "127", "--unit", "mmol/L",
                       "--lln", "135", "--symptomatic", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["grade"] == 3 and doc["possible_grades"] == [3] and doc["ctcae_version"] == "5.0"


def test_grade_lab_with_baseline() -> None:
    code, out, _ = run("grade", "lab", "--term", "ALT increased", "--value", "130", "--unit", "U/L",
                       "--uln", "40", "--baseline", "30", "--json")
    assert code == 0 and json.loads(out)["grade"] == 2


def test_grade_lab_errors_are_one_line() -> None:
    err = one_line_error(*run("grade", "lab", "--term", "Anemia", "--value", "7", "--unit", "U/L"))
    assert "unit: unit 'U/L' not accepted for 'Anemia'" in err
    err = one_line_error(*run("grade", "lab", "--term", "Pain", "--value", "1", "--unit", "x"))
    assert "no CTCAE v5.0 lab table for 'Pain'" in err


def test_grade_lab_asks_about_anticoagulation() -> None:
    # CTCAE v5.0 INR increased: ">1.5 - 2.5; >1.5 - 2.5 x baseline if on anticoagulation";
    # 2.0 on a baseline of 1.6 is 1.25 x baseline (grade 1) but 2.0 absolute (grade 2).
    args = ("grade", "lab", "--term", "INR increased", "--value", "2.0", "--unit", "", "--baseline", "1.6")
    code, out, _ = run(*args)
    assert code == 0
    assert out.splitlines()[0].endswith("grade not decided, one of 1, 2; needs anticoagulation")
    code, out, _ = run(*args, "--anticoagulation")
    assert code == 0 and out.splitlines()[0].endswith("grade 1")
    code, out, _ = run(*args, "--no-anticoagulation", "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["grade"] == 2 and "baseline not used" in answer["rule"]


def test_grade_lab_lists_what_could_raise_the_grade() -> None:
    code, out, _ = run("grade", "lab", "--term", "Hyperkalemia", "--value", "5.7", "--unit", "mmol/L",
                       "--uln", "5.0")
    assert code == 0
    assert "grade 2" in out.splitlines()[0]
    assert "grade 3 if hospitalization indicated" in out


def test_grade_lab_usage_error_exit_2() -> None:
    code, _, _ = run("grade", "lab", "--term", "Anemia", "--value", "seven", "--unit", "g/dL")
    assert code == 2


@pytest.mark.parametrize(("args", "first"), [
    (("--temperature", "39.5"), "Fever 39.5 °C (CTCAE v5.0): grade 2"),
    (("--temperature", "40.2"),
     "Fever 40.2 °C (CTCAE v5.0): grade not decided, one of 3, 4; needs hours_above_40"),
    (("--temperature", "40.2", "--hours-above-40", "30"), "Fever 40.2 °C (CTCAE v5.0): grade 4"),
])
def test_grade_fever(args: tuple[str, ...], first: str) -> None:
    code, out, _ = run("grade", "fever", *args)
    assert code == 0 and out.splitlines()[0] == first


def test_grade_define_shows_unconfirmed_wording() -> None:
    code, out, _ = run("grade", "define", "capillary leak syndrome")
    assert code == 0
    assert "grade 3: Severe symptoms; intervention indicated [unconfirmed]" in out
    assert "grade 1:" not in out
    err = one_line_error(*run("grade", "define", "Headache soup"))
    assert "unknown CTCAE v5.0 term" in err


def test_grade_crs_and_icans() -> None:
    code, out, _ = run("grade", "crs", "--fever", "--hypotension", "one_vasopressor", "--hypoxia", "low_flow")
    assert code == 0 and out.splitlines()[0] == "CRS (ASTCT): grade 3"
    code, out, _ = run("grade", "crs", "--fever", "--hypoxia", "none")
    assert code == 0 and "grade not decided, one of 1, 2, 3, 4; needs hypotension" in out
    err = one_line_error(*run("grade", "crs", "--fever", "--hypotension", "lots", "--hypoxia", "none"))
    assert "hypotension: 'lots' is not one of" in err
    code, out, _ = run("grade", "icans", "--age", "6", "--capd", "12", "--consciousness", "awakens_to_voice",
                       "--seizure", "none", "--no-motor-weakness", "--oedema", "none")
    assert code == 0 and out.splitlines()[0] == "ICANS (ASTCT, CAPD): grade 3 [unconfirmed]"
    code, out, _ = run("grade", "icans", "--age", "30", "--ice", "5", "--consciousness", "alert",
                       "--seizure", "none", "--no-motor-weakness", "--oedema", "none")
    assert code == 0 and out.splitlines()[0] == "ICANS (ASTCT, ICE): grade 2"


# --------------------------------------------------------------------------- ae check


def test_ae_check_prints_deadline_rules_and_actions() -> None:
    code, out, _ = run("ae", "check", str(SAFETY / "nb-dit-cls.json"), "--trial", "NB-NK-2026")
    assert code == 0
    assert "NB-A-001 on NB-NK-2026, course DIT (2)" in out
    assert "serious, expected: no expedited report" in out
    assert "Neutrophil count decreased 0.4 10^9/L on 2026-03-04: grade 4" in out
    assert "NBNK-CLS-G3 triggered" in out
    assert "pause dinutuximab beta until the event resolves [unconfirmed]" in out
    assert "delay DIT (course 3) until neutrophils and platelets reach the minimums [unconfirmed]" in out
    assert "clinician sign-off needed" in out


def test_ae_check_susar_deadline_and_json() -> None:
    code, out, _ = run("ae", "check", str(SAFETY / "db-myelitis.json"), "--trial", "db-postcons")
    assert code == 0
    assert "expedited report within 15 days: due 2026-06-26" in out
    assert "discontinue dinutuximab beta permanently [unconfirmed]" in out
    code, out, _ = run("ae", "check", str(SAFETY / "db-myelitis.json"), "--trial", "DB-POSTCONS", "--json")
    doc = json.loads(out)
    assert doc["events"][0]["reporting"]["due"] == "2026-06-26"
    action, = doc["proposed_actions"]
    assert action["kind"] == "discontinue_agent" and action["scope"] == "permanent"
    assert action["unconfirmed"] is True and action["requires_confirmation"] is True


def test_ae_check_errors_are_one_line(tmp_path: Path) -> None:
    data: dict[str, Any] = json.loads((SAFETY / "nb-dit-cls.json").read_text())
    data["events"][0]["grade"] = 1
    path = tmp_path / "ae.json"
    path.write_text(json.dumps(data))
    err = one_line_error(*run("ae", "check", str(path), "--trial", "NB-NK-2026"))
    assert "$.events[0] (adverse_event.grade): grade 1 does not exist for 'Capillary leak syndrome'" in err
    path.write_text("{not json")
    err = one_line_error(*run("ae", "check", str(path), "--trial", "NB-NK-2026"))
    assert "malformed JSON" in err
    err = one_line_error(*run("ae", "check", str(SAFETY / "nb-dit-cls.json"), "--trial", "NB-NK-2027"))
    assert "did you mean NB-NK-2026?" in err
    code, _, _ = run("ae", "check", str(SAFETY / "nb-dit-cls.json"))
    assert code == 2  # --trial is required


# --------------------------------------------------------------------------- safety


def test_safety_rules_lists_sources_and_marks() -> None:
    code, out, _ = run("safety", "rules", "--trial", "NB-NK-2026")
    assert code == 0
    assert out.splitlines()[0] == "NB-NK-2026: 15 toxicity rules, 2 stopping rules"
    assert "when manufacturing failure of nk-expansion or nk-aliquot or nk-dose" in out
    assert "NBNK-CLS-G4: Grade 4 capillary leak syndrome [courses DIT] [unconfirmed]" in out
    assert "NBNK-FEVER: Fever during chemoimmunotherapy [courses DIT]\n" in out
    assert "source: Barone G et al., Paediatr Drugs 2021;23:537 (PMC8563639)" in out


def test_safety_stopping_alerts_the_dsmb(tmp_path: Path) -> None:
    code, out, _ = run("safety", "stopping", "--trial", "NB-NK-2026", str(SAFETY / "nbnk-trial-events.json"))
    assert code == 0
    assert ("NBNK-STOP-TRD (Treatment-related death): ALERT the DSMB: 1 patient counted, "
            "threshold 1 [unconfirmed]") in out
    data: dict[str, Any] = json.loads((SAFETY / "nbnk-trial-events.json").read_text())
    del data["events"][1]
    path = tmp_path / "events.json"
    path.write_text(json.dumps(data))
    code, out, _ = run("safety", "stopping", "--trial", "NB-NK-2026", str(path), "--json")
    doc = json.loads(out)
    assert doc["schema"] == "trialdesk.stopping/1"
    assert [(r["rule_id"], r["status"], r["alert"]) for r in doc["results"]] == [
        ("NBNK-STOP-TRD", "not_triggered", False), ("NBNK-STOP-G5", "not_triggered", False)]


# --------------------------------------------------------------------------- response


def test_response_inrc_prints_reasoning() -> None:
    code, out, _ = run("response", "inrc", str(RESPONSE / "inrc-pr.json"))
    assert code == 0
    assert out.splitlines()[0] == "INRC 2017 overall response: PR"
    assert "  bone marrow: MD" in out
    assert "Curie score 4 against 12 at baseline (relative score 0.33), at most 0.5: bone PR." in out
    assert "[unconfirmed]" in out


def test_response_inrc_missing_component_is_ne() -> None:
    code, out, _ = run("response", "inrc", str(RESPONSE / "inrc-marrow-missing.json"), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["overall"] == "NE" and doc["missing"] == ["bone marrow assessment"]


def test_response_recist_with_best_overall_response() -> None:
    code, out, _ = run("response", "recist", str(RESPONSE / "recist-series.json"))
    assert code == 0
    assert [line for line in out.splitlines() if line.startswith("Day ")] == [
        "Day 28: SD", "Day 56: PR", "Day 84: PR"]
    assert "Best overall response: PR" in out
    assert "PR on day 56 confirmed as PR on day 84, at least 28 days later." in out
    code, out, _ = run("response", "recist", str(RESPONSE / "recist-series.json"), "--json")
    assert json.loads(out)["best_overall_response"]["response"] == "PR"


def test_response_recist_error_names_the_lesion(tmp_path: Path) -> None:
    data: dict[str, Any] = json.loads((RESPONSE / "recist-series.json").read_text())
    data["baseline"]["targets"][0]["size_mm"] = 8
    path = tmp_path / "series.json"
    path.write_text(json.dumps(data))
    err = one_line_error(*run("response", "recist", str(path)))
    assert "target lesion 'L1': not measurable: 8 mm on ct" in err


def test_response_schedule_from_the_protocol() -> None:
    code, out, _ = run("response", "schedule", "--trial", "NB-NK-2026", "--arm", "A")
    assert code == 0
    assert out.splitlines()[1:] == [
        "  after course 2 (DIT): Response assessment (CT/MRI, MIBG or FDG-PET, bone marrow) by INRC 2017",
        "  after course 4 (DIT): Response assessment (CT/MRI, MIBG or FDG-PET, bone marrow) by INRC 2017",
    ]
    code, out, _ = run("response", "schedule", "--trial", "RuMCeSS")
    assert code == 0 and "day 28: 28-day mortality" in out
    err = one_line_error(*run("response", "schedule", "--trial", "NB-NK-2026", "--arm", "C"))
    assert "has no arm 'C'" in err


# --------------------------------------------------------------------------- documents


def test_inrc_document_reader() -> None:
    tp = inrc_time_point(json.loads((RESPONSE / "inrc-pr.json").read_text()))
    assert tp.soft_tissue is inrc.NOT_INVOLVED
    assert tp.bone == inrc.MibgBone(inrc.MibgScale.CURIE, 12, 4)
    assert inrc_time_point({}).primary is None  # absent: not assessed


@pytest.mark.parametrize(("data", "fragment"), [
    ({"bone": {"mibg": {"scale": "curie"}, "fdg": {}}}, "give exactly one of 'mibg' or 'fdg'"),
    ({"bone": {"mibg": {"scale": "meta"}}}, "x.json: $.bone.mibg.scale"),
    ({"marrow": {"baseline_pct": 120, "current_pct": 0}}, "marrow.baseline_pct: must lie between 0 and 100"),
    ({"primary": "gone"}, "x.json: $.primary"),
    ({"colour": "blue"}, "x.json: $.colour: unknown field"),
    ([], "a response document is a JSON object"),
])
def test_inrc_document_errors(data: Any, fragment: str) -> None:
    with pytest.raises(ResponseError) as err:
        inrc_time_point(data, source="x.json")
    assert fragment in str(err.value)


def test_recist_document_reader() -> None:
    baseline, points, rule = recist_series(json.loads((RESPONSE / "recist-series.json").read_text()))
    assert [t.lesion_id for t in baseline.targets] == ["L1", "N1"]
    assert [p.day for p in points] == [28, 56, 84]
    assert rule is not None and rule.min_confirmation_days == 28
    with pytest.raises(ResponseError, match=r"\$\.time_points"):
        recist_series({"baseline": {"targets": []}, "time_points": []}, source="s.json")


def test_assessment_points_every_two_courses() -> None:
    nb = load_protocol(default_protocol_dir() / "nb-nk-2026.yaml").protocol
    assert treatment_courses(nb, "A") == ("IT", "DIT", "DIT", "DIT", "DIT")
    assert [p.after_course for p in assessment_points(nb, "A")] == [2, 4]
    assert [p.after_course for p in assessment_points(nb, "B")] == [2, 4, 6]
    refnot = load_protocol(default_protocol_dir() / "refnot-r2.yaml").protocol
    points = assessment_points(refnot, "G1")
    assert [p.after_course for p in points] == [1, 2] and all(p.unconfirmed for p in points)
    with pytest.raises(NotFoundError):
        assessment_points(nb, "Z")
