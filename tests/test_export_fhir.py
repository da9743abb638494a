"""FHIR R5 Bundles of the example trials: valid against the official R5 JSON schema, every
reference resolving inside the Bundle, labs and exposures present and coded."""

from __future__ import annotations

import json
from datetime import date
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from trialdesk.cli import app
from trialdesk.outcomes.events import read_event_table
from trialdesk.outcomes.export_fhir import bundle_json, fhir_bundle, full_url, unresolved_references
from trialdesk.protocol.load import default_protocol_dir

ROOT = default_protocol_dir().parent
EXAMPLES = ROOT / "examples" / "outcomes"
SCHEMA = Path(__file__).parent / "data" / "fhir" / "fhir.schema.json"
NB = {
    "--events": EXAMPLES / "nb-nk-2026-events.csv",
    "--aes": EXAMPLES / "nb-nk-2026-aes.json",
    "--tumour": EXAMPLES / "nb-nk-2026-tumour.csv",
    "--exposure": EXAMPLES / "nb-nk-2026-exposure.csv",
    "--labs": EXAMPLES / "nb-nk-2026-labs.csv",
}


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return schema


@lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    # The R5 schema declares draft-06.
    return jsonschema.Draft6Validator(_schema())


@cache
def _resource_validator(kind: str) -> jsonschema.protocols.Validator:
    schema = {"definitions": _schema()["definitions"], "allOf": [{"$ref": f"#/definitions/{kind}"}]}
    return jsonschema.Draft6Validator(schema)


def _schema_errors(document: dict[str, Any]) -> list[str]:
    """Schema errors of a Bundle: the Bundle itself, then each entry's resource against the
    definition its ``resourceType`` names (what the schema's ``oneOf`` over every resource
    type comes to, without trying all of them for each entry)."""
    entries = [{k: v for k, v in e.items() if k != "resource"} for e in document["entry"]]
    shell = {**document, "entry": entries}
    errors = [f"Bundle {list(e.absolute_path)}: {e.message[:200]}" for e in _validator().iter_errors(shell)]
    if document["entry"]:
        # the Bundle with one entry proves the schema's own resource dispatch accepts it
        one = {**document, "entry": document["entry"][:1]}
        errors += [f"entry 0: {e.message[:200]}" for e in _validator().iter_errors(one)]
    for index, entry in enumerate(document["entry"]):
        resource = entry["resource"]
        for error in _resource_validator(resource["resourceType"]).iter_errors(resource):
            errors.append(f"entry {index} {list(error.absolute_path)}: {error.message[:200]}")
    return errors


def _export(tmp_path: Path, trial: str, files: dict[str, Path]) -> dict[str, Any]:
    out = tmp_path / trial
    args = ["export", "fhir", "--trial", trial, "--out", str(out)]
    for option, path in files.items():
        args += [option, str(path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    document: dict[str, Any] = json.loads((out / "bundle.json").read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="module")
def nb_bundle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _export(tmp_path_factory.mktemp("fhir"), "NB-NK-2026", NB)


@pytest.fixture(scope="module")
def rumcess_bundle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _export(tmp_path_factory.mktemp("fhir"), "RuMCeSS", {"--events": EXAMPLES / "rumcess-events.csv"})


def _resources(document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == kind]


@pytest.mark.parametrize("name", ["nb_bundle", "rumcess_bundle"])
def test_bundle_is_valid_r5_json(name: str, request: pytest.FixtureRequest) -> None:
    document = request.getfixturevalue(name)
    errors = _schema_errors(document)
    assert not errors, errors[:5]


def test_the_schema_refuses_what_r5_does_not_allow(nb_bundle: dict[str, Any]) -> None:
    # the same Bundle with a misspelt Patient element, or a date that is not one, fails
    patient = next(e for e in nb_bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    for element, value in (("birthdate", "2019-01-01"), ("deceasedDateTime", "23/04/2027")):
        broken = {**nb_bundle, "entry": [{**patient, "resource": {**patient["resource"], element: value}}]}
        assert not _validator().is_valid(broken)
        assert _schema_errors(broken)


@pytest.mark.parametrize("name", ["nb_bundle", "rumcess_bundle"])
def test_every_reference_resolves_to_a_urn_uuid_full_url(name: str, request: pytest.FixtureRequest) -> None:
    document = request.getfixturevalue(name)
    urls = [e["fullUrl"] for e in document["entry"]]
    assert len(urls) == len(set(urls))
    assert all(u.startswith("urn:uuid:") for u in urls)
    assert unresolved_references(document) == []


def test_unresolved_references_are_found() -> None:
    document = {"entry": [{"fullUrl": "urn:uuid:1", "resource": {"subject": {"reference": "Patient/x"}}}]}
    assert unresolved_references(document) == ["Patient/x"]


def test_labs_and_exposures_are_exported(nb_bundle: dict[str, Any]) -> None:
    labs_rows = (EXAMPLES / "nb-nk-2026-labs.csv").read_text().strip().splitlines()[1:]
    exposure_rows = (EXAMPLES / "nb-nk-2026-exposure.csv").read_text().strip().splitlines()[1:]
    labs = [o for o in _resources(nb_bundle, "Observation")
            if o["category"][0]["coding"][0]["code"] == "laboratory"]
    assert len(labs) == len(labs_rows) == 58
    administrations = _resources(nb_bundle, "MedicationAdministration")
    assert len(administrations) == len(exposure_rows)
    first = labs[0]
    # fact dictionary: absolute neutrophil count = LOINC 751-8
    assert first["code"]["coding"][0] == {"system": "http://loinc.org", "code": "751-8",
                                          "display": "absolute neutrophil count"}
    assert first["category"][0]["coding"][0]["system"] == (
        "http://terminology.hl7.org/CodeSystem/observation-category")
    # examples/outcomes/nb-nk-2026-labs.csv row 1: NB-01, 2026-03-02, 1.2 10^9/L, grade 2
    assert first["effectiveDateTime"] == "2026-03-02"
    assert first["valueQuantity"] == {"value": 1.2, "unit": "10^9/L"}
    assert first["component"][0]["valueCodeableConcept"]["coding"][0]["code"] == "C41339"  # grade 2
    # a grade 2 neutropenia is below LLN: interpretation L
    assert first["interpretation"][0]["coding"][0]["code"] == "L"
    observations = _resources(nb_bundle, "Observation")
    assert all("effectiveDateTime" in o or "effectivePeriod" in o for o in observations)
    given = administrations[0]
    assert given["medication"]["concept"]["text"] == "irinotecan"
    assert given["occurencePeriod"] == {"start": "2026-03-02", "end": "2026-03-06"}
    assert given["dosage"]["route"]["text"] == "IV"


def test_patients_carry_gender_and_death(nb_bundle: dict[str, Any], rumcess_bundle: dict[str, Any]) -> None:
    # examples/outcomes/nb-nk-2026-events.csv: NB-01 M, died 2027-04-23; NB-02 F, alive
    patients = {p["identifier"][0]["value"]: p for p in _resources(nb_bundle, "Patient")}
    assert patients["NB-01"]["gender"] == "male"
    assert patients["NB-01"]["deceasedDateTime"] == "2027-04-23"
    assert patients["NB-02"]["gender"] == "female"
    assert patients["NB-02"]["deceasedBoolean"] is False
    assert "birthDate" not in patients["NB-01"]  # the event table holds no birth date
    # rumcess-events.csv: RU-01 died 2026-03-19
    ru = {p["identifier"][0]["value"]: p for p in _resources(rumcess_bundle, "Patient")}
    assert ru["RU-01"]["deceasedDateTime"] == "2026-03-19"


def test_adverse_events_carry_meddra_codes(nb_bundle: dict[str, Any]) -> None:
    aes = _resources(nb_bundle, "AdverseEvent")
    assert aes
    for ae in aes:
        meddra = ae["code"]["coding"][0]
        assert meddra["system"] == "http://terminology.hl7.org/CodeSystem/mdr"
        assert len(meddra["code"]) == 8 and meddra["code"].startswith("1")


def test_birth_dates_are_written_only_when_given() -> None:
    events = read_event_table(EXAMPLES / "rumcess-events.csv")
    bundle = fhir_bundle("RuMCeSS", events, birth_dates={"RU-01": date(1991, 2, 3)})
    document = json.loads(bundle_json(bundle))
    patients = {p["identifier"][0]["value"]: p for p in _resources(document, "Patient")}
    assert patients["RU-01"]["birthDate"] == "1991-02-03"
    assert "birthDate" not in patients["RU-02"]
    subject = _resources(document, "ResearchSubject")[0]
    assert subject["subject"]["reference"] == full_url("Patient", "RuMCeSS-RU-01")
    assert _schema_errors(document) == []


def test_lab_reference_range_interpretation_and_graded_ctcae() -> None:
    import pandas as pd

    from trialdesk.outcomes.inputs import validate_labs

    def row(code: str, test: str, value: str, unit: str, low: str, high: str) -> dict[str, Any]:
        return {"patient_id": "NB-01", "date": "2026-03-02", "test_code": code, "test": test, "value": value,
                "unit": unit, "lower_limit": low, "upper_limit": high, "toxicity_grade": None}

    events = read_event_table(EXAMPLES / "nb-nk-2026-events.csv")
    labs = validate_labs(pd.DataFrame([
        # aPTT 60 s, ULN 35: 1.71 x ULN, CTCAE v5.0 grade 2 (">1.5 - 2.5 x ULN"); high
        row("APTT", "aPTT", "60", "s", "25", "35"),
        # ALT 130 U/L, ULN 40: grade 2 if the baseline was normal, lower if it was not: no grade
        row("ALT", "ALT", "130", "U/L", "5", "40"),
        # platelets 200 x 10^9/L within 150-400: normal, grade 0
        row("PLAT", "Platelets", "200", "10^9/L", "150", "400"),
    ]), events)
    document = json.loads(bundle_json(fhir_bundle("NB-NK-2026", events, labs=labs)))
    found = {o["code"]["text"]: o for o in _resources(document, "Observation")
             if o["category"][0]["coding"][0]["code"] == "laboratory"}
    aptt, alt, platelets = found["aPTT"], found["ALT"], found["Platelets"]
    assert aptt["code"]["coding"][0]["code"] == "3173-2"  # fact dictionary: aPTT = LOINC 3173-2
    assert aptt["referenceRange"] == [
        {"low": {"value": 25.0, "unit": "s"}, "high": {"value": 35.0, "unit": "s"}}
    ]
    assert aptt["interpretation"][0]["coding"][0]["code"] == "H"
    assert aptt["component"][0]["valueCodeableConcept"]["text"] == "CTCAE v5.0 grade 2"
    assert alt["interpretation"][0]["coding"][0]["code"] == "H"
    assert "component" not in alt
    assert platelets["interpretation"][0]["coding"][0]["code"] == "N"
    assert platelets["component"][0]["valueCodeableConcept"]["text"] == "CTCAE v5.0 grade 0"
    assert unresolved_references(document) == []
    assert _schema_errors(document) == []


def test_cell_products_as_biologically_derived_products() -> None:
    from test_product_reports import _hand_built

    # RU-01 and RU-02 are in rumcess-events.csv; P9 is not (a logical reference, by identifier)
    products = _hand_built(("RU-01", "RU-02", "P9"))
    events = read_event_table(EXAMPLES / "rumcess-events.csv")
    document = json.loads(bundle_json(fhir_bundle("RuMCeSS", events, products=products)))
    assert _schema_errors(document) == []
    assert unresolved_references(document) == []
    found = {p["identifier"][1]["value"]: p for p in _resources(document, "BiologicallyDerivedProduct")}
    assert len(found) == len(products.products) == 8
    donation = next(p for p in found.values() if "collection" in p)
    # the DIN A9999 26 000007 (test data) as ISBT 128 DIN, shared by every product of the tree
    assert {p["biologicalSourceEvent"]["value"] for p in found.values()} == {"A999926000007"}
    assert donation["identifier"][0] == {"system": "urn:oid:2.16.840.1.113883.6.18.2.1",
                                         "value": "A999926000007"}
    assert donation["productCategory"]["code"] == "cells"
    assert donation["collection"]["collectedDateTime"] == "2026-02-01T09:00:00Z"
    # third-party donor: its own identity, not a patient of the Bundle
    assert donation["collection"]["source"] == {"identifier": {"system": "urn:trialdesk:donor",
                                                               "value": "MSC-BANK-17"}}
    collector = donation["collection"]["collector"]["reference"]
    practitioners = {e["fullUrl"]: e["resource"] for e in document["entry"]
                     if e["resource"]["resourceType"] == "Practitioner"}
    assert practitioners[collector]["identifier"][0]["value"] == "lab1"
    lot = next(p for p in found.values() if p["productCode"]["coding"][0]["code"] == "S0102")
    assert lot["parent"][0]["reference"] == next(
        e["fullUrl"] for e in document["entry"] if e["resource"] is donation)
    release = [x for x in lot["property"] if x["type"]["coding"][0]["code"] == "release"]
    assert release[0]["valueCodeableConcept"]["text"] == "exceptional release"
    doses = [p for p in found.values() if p["productCode"]["coding"][0]["code"] == "S0104"]
    assert sorted(d["division"] for d in doses) == ["A0", "B0", "C0"]
    assert all(d["productStatus"]["code"] == "unavailable" for d in doses)  # all infused
    infusions = _resources(document, "Procedure")
    assert len(infusions) == 3
    urls = {e["resource"]["id"]: e["fullUrl"] for e in document["entry"]}
    used = {i["used"][0]["reference"]["reference"] for i in infusions}
    assert used == {urls[d["id"]] for d in doses}
    first = infusions[0]  # RU-01, 4 h after the 06:00 onset, 1.5 x 10^6/kg
    assert first["subject"]["reference"] == full_url("Patient", "RuMCeSS-RU-01")
    assert first["occurrencePeriod"]["start"] == "2026-03-01T10:00:00Z"
    assert "dose 1.5e+06 viable cells/kg" in first["note"][0]["text"]
    assert "deadline 2026-03-01T16:00:00Z met" in first["note"][0]["text"]
    assert infusions[1]["subject"] == {"identifier": {"system": "urn:trialdesk:RuMCeSS", "value": "P9"}}
