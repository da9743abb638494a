"""The committed JSON Schemas match the models, and the bundled examples are valid."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from trialdesk.facts.patient import PatientRecord, patient_from_data
from trialdesk.protocol.model import Protocol

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("name", "model"), [("patient", PatientRecord), ("protocol", Protocol)])
def test_committed_schema_is_current(name: str, model: type) -> None:
    committed = json.loads((ROOT / "schemas" / f"{name}.schema.json").read_text())
    assert committed == model.model_json_schema(), (
        f"regenerate with: trialdesk schema {name} > schemas/{name}.schema.json")


@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "patients").glob("*.json")),
                         ids=lambda p: p.name)
def test_example_patients_are_valid(path: Path) -> None:
    record = patient_from_data(json.loads(path.read_text()), today=date(2026, 11, 21),
                               source=str(path))
    assert record.patient_id
