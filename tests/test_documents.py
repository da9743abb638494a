"""Nothing wrong gets in: finite numbers, strict types, duplicate keys, encodings, nesting,
huge integers — in patient files, protocol files and outcome inputs, and on the command line."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from trialdesk.cli import app
from trialdesk.documents import MAX_DEPTH, parse_json, parse_yaml, read_document
from trialdesk.errors import FactError, ProtocolError
from trialdesk.facts.patient import patient_from_data
from trialdesk.outcomes.inputs import InputError, validate_exposure, validate_labs, validate_measurements
from trialdesk.protocol.load import default_protocol_dir, load_protocol, protocol_from_data

ROOT = default_protocol_dir().parent
PATIENTS = ROOT / "examples" / "patients"
NB_PATIENT = PATIENTS / "nb-relapsed.json"
TODAY = date(2026, 11, 21)
runner = CliRunner()


def patient() -> dict[str, Any]:
    return json.loads(NB_PATIENT.read_text(encoding="utf-8"))


def protocol() -> dict[str, Any]:
    data = read_document(default_protocol_dir() / "nb-nk-2026.yaml")
    assert isinstance(data, dict)
    return data


def refused(data: dict[str, Any]) -> FactError:
    with pytest.raises(FactError) as caught:
        patient_from_data(data, today=TODAY, source="p.json")
    return caught.value


# ------------------------------------------------------------------ item 1: finite numbers


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_lab_value_in_a_patient_file_names_the_field(text: str) -> None:
    raw = NB_PATIENT.read_text(encoding="utf-8").replace('"value": 24,', f'"value": {text},', 1)
    with pytest.raises(FactError) as caught:
        patient_from_data(parse_json(raw, FactError, where="p.json"), today=TODAY, source="p.json")
    assert caught.value.where == "p.json: $.observations[0].value"
    assert "not a finite number" in caught.value.reason


def test_non_finite_value_given_as_data_is_refused_too() -> None:
    # A request body parsed elsewhere (Python's json accepts NaN) reaches the same check.
    data = patient()
    data["observations"][0]["value"] = float("nan")
    assert refused(data).where == "p.json: $.observations[0].value"


@pytest.mark.parametrize("text", [".inf", ".nan", "-.inf", "1.0e+400"])
def test_non_finite_number_in_a_protocol_file_names_the_field(tmp_path: Path, text: str) -> None:
    source = (default_protocol_dir() / "nb-nk-2026.yaml").read_text(encoding="utf-8")
    doc = yaml.safe_load(source)
    doc["consent"]["adult_age_years"]["value"] = "PLACEHOLDER"
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True).replace("PLACEHOLDER", text),
                    encoding="utf-8")
    with pytest.raises(ProtocolError) as caught:
        load_protocol(path)
    assert caught.value.where == f"{path}: $.consent.adult_age_years.value"


def test_protocol_dose_infinity_given_as_data_is_refused() -> None:
    data = protocol()
    dose = data["arms"][0]["plan"]
    # Put an infinite number wherever the first numeric dose value is.
    path = _first_number(dose, ("arms", 0, "plan"))
    assert path is not None
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = float("inf")
    with pytest.raises(ProtocolError) as caught:
        protocol_from_data(data, source="p.yaml")
    assert "not a finite number" in caught.value.reason
    assert caught.value.where and caught.value.where.startswith("p.yaml: $.arms[0].plan")


def _first_number(node: Any, loc: tuple[Any, ...]) -> tuple[Any, ...] | None:
    if isinstance(node, float | int) and not isinstance(node, bool):
        return loc
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        found = _first_number(value, (*loc, key))
        if found is not None:
            return found
    return None


@pytest.mark.parametrize(
    ("validator", "row", "fragment"),
    [
        (validate_measurements, {"patient_id": "P1", "assessment_date": "2026-01-01",
                                 "sum_diameters_mm": "Infinity", "overall_response": ""},
         "sum_diameters_mm: not a finite number: 'Infinity'"),
        (validate_exposure, {"patient_id": "P1", "course": "1", "course_id": "IT", "agent": "irinotecan",
                             "route": "IV", "start_date": "2026-01-01", "end_date": "", "dose": "nan",
                             "dose_unit": "mg"},
         "dose: not a finite number: 'nan'"),
        (validate_labs, {"patient_id": "P1", "date": "2026-01-01", "test_code": "NEUT",
                         "test": "Neutrophils", "value": "NaN", "unit": "10^9/L", "lower_limit": "",
                         "upper_limit": "", "toxicity_grade": ""},
         "value: not a finite number: 'NaN'"),
        (validate_labs, {"patient_id": "P1", "date": "2026-01-01", "test_code": "NEUT",
                         "test": "Neutrophils", "value": "1.2", "unit": "10^9/L", "lower_limit": "-inf",
                         "upper_limit": "", "toxicity_grade": ""},
         "lower_limit: not a finite number: '-inf'"),
    ],
)
def test_outcome_tables_refuse_non_finite_numbers(validator: Any, row: dict[str, str], fragment: str) -> None:
    with pytest.raises(InputError) as caught:
        validator(pd.DataFrame([row]))
    assert fragment in str(caught.value)


# ------------------------------------------------------------------ item 2: strict types


@pytest.mark.parametrize(
    ("change", "where", "fragment"),
    [
        (lambda d: d.update(pregnancy=[{"date": "2026-11-17", "pregnant": 0}]),
         "$.pregnancy[0].pregnant", "must be true or false, got 0"),
        (lambda d: d.update(pregnancy=[{"date": "2026-11-17", "pregnant": "false"}]),
         "$.pregnancy[0].pregnant", "must be true or false"),
        (lambda d: d.update(birth_date=0), "$.birth_date", "must be a date, YYYY-MM-DD, got 0"),
        (lambda d: d["observations"][0].update(date=1763337600), "$.observations[0].date", "must be a date"),
        (lambda d: d["observations"][0].update(value="24"), "$.observations[0].value", "must be a number"),
        (lambda d: d["performance"][0].update(score=90.0), "$.performance[0].score", "whole number"),
        (lambda d: d["observations"][0].update(value=2**60), "$.observations[0].value", "too large"),
    ],
)
def test_patient_types_are_strict(change: Any, where: str, fragment: str) -> None:
    data = patient()
    change(data)
    error = refused(data)
    assert error.where == f"p.json: {where}"
    assert fragment in error.reason


def test_protocol_types_are_strict() -> None:
    data = protocol()
    data["consent"]["adult_age_years"]["unconfirmed"] = 1
    with pytest.raises(ProtocolError) as caught:
        protocol_from_data(data, source="p.yaml")
    assert caught.value.where == "p.yaml: $.consent.adult_age_years.unconfirmed"
    assert "true or false" in caught.value.reason


def test_duplicate_keys_are_errors_naming_the_key() -> None:
    with pytest.raises(FactError, match="duplicate key 'patient_id'"):
        parse_json('{"patient_id": "a", "patient_id": "b"}', FactError, where="p.json")
    with pytest.raises(ProtocolError, match=r"p.yaml:3:1: .*duplicate key 'id'"):
        parse_yaml("id: A\nversion: '1'\nid: B\n", where="p.yaml")
    # The same key in two different mappings is not a duplicate; YAML merge keys still work.
    assert parse_yaml("a: {id: 1}\nb: {id: 2}\n", where="p.yaml") == {"a": {"id": 1}, "b": {"id": 2}}
    assert parse_yaml("base: &b {x: 1}\nc:\n  <<: *b\n  y: 2\n", where="p.yaml")["c"] == {"x": 1, "y": 2}


def test_yaml_dates_stay_text_as_in_json() -> None:
    assert parse_yaml("start: 2026-01-05\n", where="p.yaml") == {"start": "2026-01-05"}


def test_valid_documents_still_load() -> None:
    for path in sorted(PATIENTS.glob("*.json")):
        patient_from_data(read_document(path, FactError, as_json=True), today=TODAY, source=str(path))
    for path in sorted(default_protocol_dir().glob("*.yaml")):
        assert load_protocol(path).id


def test_valid_patient_document_is_not_changed_by_strict_reading() -> None:
    data = patient()
    record = patient_from_data(copy.deepcopy(data), today=TODAY)
    assert record.observations[0].value == 24.0
    assert record.birth_date == date(2017, 2, 3)


# ------------------------------------------------------- item 3: one line on the command line


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    text = NB_PATIENT.read_text(encoding="utf-8")
    files = {
        "utf16.json": text.encode("utf-16"),
        "latin1.json": b'{"patient_id": "caf\xe9"}',
        "binary.json": bytes(range(256)) * 4,
        "nested.json": b"[" * 100_000 + b"]" * 100_000,
        "nested-shallow.json": b"[" * (MAX_DEPTH + 5) + b"]" * (MAX_DEPTH + 5),
        "digits.json": b'{"patient_id": ' + b"9" * 5000 + b"}",
        "nested.yaml": b"[" * 100_000 + b"]" * 100_000,
        "digits.yaml": b"id: " + b"9" * 5000 + b"\n",
        "utf16.yaml": "id: X\n".encode("utf-16"),
    }
    out = {}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        out[name] = tmp_path / name
    return out


EXPECTED = {
    "utf16": "UTF-16", "latin1": "not UTF-8 text (byte 0xe9 at offset 19)", "binary": "not a text file",
    "nested": "nested more than 64 levels deep", "nested-shallow": "nested more than 64 levels deep",
    "digits": "more than 4300 digits",
}


def _one_clean_line(result: Any, name: str) -> None:
    assert result.exit_code == 1, (name, result.stdout, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit), name
    err = result.stderr.strip()
    assert "Traceback" not in err + result.stdout
    assert len(err.splitlines()) == 1, err
    assert EXPECTED[name.split(".")[0]] in err, (name, err)


def test_screen_and_ae_check_refuse_bad_files_in_one_line(tmp_path: Path) -> None:
    for name, path in _bad_files(tmp_path).items():
        if name.endswith(".json"):
            _one_clean_line(runner.invoke(app, ["screen", str(path), "--trial", "NB-NK-2026"]), name)
            _one_clean_line(runner.invoke(app, ["ae", "check", str(path), "--trial", "NB-NK-2026"]), name)


def test_lint_refuses_bad_protocol_files_in_one_line(tmp_path: Path) -> None:
    for name, path in _bad_files(tmp_path).items():
        if name.endswith(".yaml"):
            _one_clean_line(runner.invoke(app, ["lint", str(path)]), name)


def test_outcomes_refuses_bad_tables_in_one_line(tmp_path: Path) -> None:
    events = ROOT / "examples" / "outcomes" / "nb-nk-2026-events.csv"
    utf16 = tmp_path / "events.csv"
    utf16.write_bytes(events.read_text(encoding="utf-8").encode("utf-16"))
    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    for name, path in (("utf16", utf16), ("binary", binary)):
        result = runner.invoke(app, ["outcomes", "--trial", "NB-NK-2026", "--events", str(path)])
        _one_clean_line(result, name)
    result = runner.invoke(app, ["outcomes", "--trial", "NB-NK-2026", "--events", str(events)])
    assert result.exit_code == 0, result.stderr


def test_safety_and_response_documents_are_strict_too(tmp_path: Path) -> None:
    safety = json.loads((ROOT / "examples" / "safety" / "nb-dit-cls.json").read_text(encoding="utf-8"))
    safety["course_number"] = "2"
    path = tmp_path / "ae.json"
    path.write_text(json.dumps(safety), encoding="utf-8")
    result = runner.invoke(app, ["ae", "check", str(path), "--trial", "NB-NK-2026"])
    assert result.exit_code == 1 and "$.course_number: must be a whole number" in result.stderr
    response = json.loads((ROOT / "examples" / "response" / "inrc-pr.json").read_text(encoding="utf-8"))
    response["new_lesions"]["soft_tissue"] = 0
    path = tmp_path / "inrc.json"
    path.write_text(json.dumps(response), encoding="utf-8")
    result = runner.invoke(app, ["response", "inrc", str(path)])
    assert result.exit_code == 1 and "new_lesions.soft_tissue" in result.stderr
    assert "must be true or false, got 0" in result.stderr


def test_yaml_alias_expansion_is_bounded() -> None:
    # Ten levels of ten aliases: 10¹⁰ values if expanded; refused after a million.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    with pytest.raises(ProtocolError, match="more than 1,000,000 values in one document"):
        parse_yaml("\n".join(lines), where="p.yaml")


def test_text_that_is_not_unicode_is_refused_naming_the_field() -> None:
    raw = NB_PATIENT.read_text(encoding="utf-8").replace('"NB-002"', '"NB\\ud800"', 1)
    with pytest.raises(FactError) as caught:
        parse_json(raw, FactError, where="p.json")
    assert caught.value.where == "p.json: $.patient_id"
    assert "not valid Unicode" in caught.value.reason
