"""The registry: real ClinicalTrials.gov records in and out, criteria items, rule drafts,
review, and search.

Records: ../shared/ctgov/ (see its README); every known answer below was read from the
record file itself (titles, limits, counts of bullets), not from the importer's output.
"""

from __future__ import annotations

import copy
import json
import math
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trialdesk.cli import app
from trialdesk.criteria.parser import parse
from trialdesk.criteria.typecheck import bind
from trialdesk.criteria.verdict import Verdict, screen
from trialdesk.errors import ProtocolError, RegistryError, ReviewError
from trialdesk.facts.dictionary import BASE
from trialdesk.facts.model import FactSet, FactValue
from trialdesk.protocol.load import protocol_from_data
from trialdesk.protocol.model import GeoPoint, Location, Registry
from trialdesk.registry.export import held, to_v2
from trialdesk.registry.extract import draft_item, normalise_text, thresholds_in
from trialdesk.registry.gazetteer import resolve_place
from trialdesk.registry.importer import Failed, Imported, import_bytes
from trialdesk.registry.items import split_criteria
from trialdesk.registry.records import registry_from_v2, studies_in
from trialdesk.registry.review import accept, edit, reject
from trialdesk.registry.search import (
    Age,
    Query,
    fits_age,
    great_circle_km,
    has_word,
    parse_age,
    search,
)

CTGOV = Path(__file__).resolve().parents[2] / "shared" / "ctgov"
if not CTGOV.is_dir():  # the worktree sits beside the shared folder one level further up
    CTGOV = Path("/work/shared/ctgov")
FILES = sorted(p for p in CTGOV.iterdir() if p.name.startswith("NCT"))


def _import(path: Path) -> Imported:
    [result] = import_bytes(path.read_bytes(), name=str(path))
    assert isinstance(result, Imported), result
    return result


@pytest.fixture(scope="module")
def imported() -> dict[str, Imported]:
    return {p.stem: _import(p) for p in FILES}


# ---------------------------------------------------------------------------
# Import: known answers per record
#
# id: (title starts with, status, phases, minimum age, maximum age, sex, healthy volunteers,
#      arm groups, sites with a geo point, inclusion items, exclusion items)
# Items are the top-level bullets under the inclusion / exclusion headings, counted by hand
# in each record's eligibility text; nested bullets belong to their parent; lead-in lines
# ("Subjects who meet ...:") and closing notes ("Note: Other protocol defined ...") are not
# items. Classic XML records have no geo points.
KNOWN = {
    # 7 inclusion (the first with 4 nested conditions), 7 exclusion
    "NCT00184067": (
        "Continuation Booster Trial After a Vaccine",
        "TERMINATED",
        ["PHASE2"],
        "18 Years",
        None,
        "ALL",
        False,
        2,
        1,
        7,
        7,
    ),
    # XML: minimum_age N/A, maximum 5 Days; 4 inclusion, 8 exclusion (one wrapped over two lines)
    "NCT00734539": (
        "Fluconazole Prophylaxis for the Prevention of Candidiasis",
        "COMPLETED",
        ["PHASE3"],
        None,
        "5 Days",
        "ALL",
        False,
        2,
        0,
        4,
        8,
    ),
    "NCT00763412": (
        "Pilot and Feasibility Study for the Treatment of P",
        "COMPLETED",
        ["NA"],
        "12 Years",
        "24 Years",
        "ALL",
        False,
        2,
        1,
        5,
        6,
    ),
    "NCT00973089": (
        "Alternative Treatment of Deep Carious Lesions",
        "WITHDRAWN",
        ["NA"],
        "5 Years",
        "8 Years",
        "ALL",
        True,
        2,
        1,
        5,
        3,
    ),
    "NCT01207388": (
        "Confirmatory Phase II Study of Blinatumomab",
        "ACTIVE_NOT_RECRUITING",
        ["PHASE2"],
        "18 Years",
        None,
        "ALL",
        False,
        1,
        0,
        6,
        7,
    ),
    # XML: gender Male; 9 inclusion (the last wrapped over four lines), 4 exclusion
    "NCT01339988": (
        "Busulfan and Cyclophosphamide Instead of Total Boby",
        "NOT_YET_RECRUITING",
        ["PHASE4"],
        None,
        "21 Years",
        "MALE",
        False,
        1,
        0,
        9,
        4,
    ),
    # XML: a "For more information ..." line before the headings is not an item
    "NCT01642004": (
        "Study of BMS-936558 (Nivolumab) Compared to Docetaxel",
        "ACTIVE_NOT_RECRUITING",
        ["PHASE3"],
        "18 Years",
        None,
        "ALL",
        False,
        2,
        0,
        6,
        9,
    ),
    # "Key Inclusion Criteria" numbered 1-5, "Key Exclusion Criteria" 1-7, a closing paragraph
    "NCT02210780": (
        "Study of Dupilumab and Immune Responses in Adults",
        "COMPLETED",
        ["PHASE2"],
        "18 Years",
        "64 Years",
        "ALL",
        False,
        2,
        42,
        5,
        7,
    ),
    "NCT02552212": (
        "Multicenter Study Evaluating Certolizumab Pegol",
        "COMPLETED",
        ["PHASE3"],
        "18 Years",
        None,
        "ALL",
        False,
        2,
        105,
        6,
        11,
    ),
    "NCT03064438": (
        "Safety and Efficacy of ACU-D1",
        "COMPLETED",
        ["PHASE2"],
        "18 Years",
        None,
        "ALL",
        False,
        2,
        2,
        9,
        11,
    ),
    # XML expanded access: no arms, no sites
    "NCT03245528": (
        "Expanded Access for LJPC-501",
        "AVAILABLE",
        ["NA"],
        "18 Years",
        None,
        "ALL",
        False,
        0,
        0,
        5,
        14,
    ),
    "NCT03281889": (
        "Proton Craniospinal Irradiation With Bone Sparing",
        "RECRUITING",
        ["NA"],
        "3 Years",
        "18 Years",
        "ALL",
        False,
        1,
        2,
        5,
        5,
    ),
    # observational: no phases
    "NCT03475563": ("BiOSS Study", "UNKNOWN", [], "18 Years", None, "ALL", False, 1, 3, 5, 7),
    # two populations under each heading: adolescents 6 + parents 3; adolescents 6 + parents 2
    "NCT03630471": (
        "Effectiveness of a Problem-solving Intervention",
        "COMPLETED",
        ["NA"],
        "13 Years",
        "20 Years",
        "ALL",
        False,
        2,
        1,
        9,
        8,
    ),
    # 26 sites, one without a geo point
    "NCT03934567": (
        "A Multi-Center Phase 2 Study to Evaluate Efficacy",
        "ACTIVE_NOT_RECRUITING",
        ["PHASE2"],
        "18 Years",
        None,
        "ALL",
        False,
        1,
        25,
        7,
        13,
    ),
    "NCT04207047": (
        "Histologic Evaluation of Tissue Following Lutronic",
        "UNKNOWN",
        ["NA"],
        "18 Years",
        None,
        "ALL",
        True,
        4,
        1,
        9,
        19,
    ),
    # no minimum age (v2 leaves it out); phases as a list of two
    "NCT04431453": (
        "Study of Remdesivir in Participants Below 18 Years",
        "COMPLETED",
        ["PHASE2", "PHASE3"],
        None,
        "18 Years",
        "ALL",
        False,
        8,
        32,
        3,
        6,
    ),
    "NCT05147467": (
        "Study of APG-2575 in Patients With Relapsed/Refrac",
        "RECRUITING",
        ["PHASE2"],
        "18 Years",
        None,
        "ALL",
        False,
        1,
        11,
        7,
        7,
    ),
    "NCT05594173": (
        "Chewing and Oral Processing of Solid Food",
        "COMPLETED",
        [],
        "18 Years",
        "60 Years",
        "ALL",
        True,
        0,
        1,
        1,
        7,
    ),
    "NCT06388018": (
        "Tailoring Therapy in Post-surgical Patients",
        "RECRUITING",
        ["PHASE2"],
        "18 Years",
        None,
        "FEMALE",
        False,
        3,
        1,
        14,
        9,
    ),
}


def test_every_shared_record_is_known() -> None:
    assert sorted(KNOWN) == [p.stem for p in FILES]


@pytest.mark.parametrize("nct", sorted(KNOWN))
def test_record_known_answers(imported: dict[str, Imported], nct: str) -> None:
    title, status, phases, low, high, sex, healthy, arms, geo, inc, exc = KNOWN[nct]
    result = imported[nct]
    protocol = protocol_from_data(result.document, source=nct).protocol
    r = protocol.registry
    assert protocol.id == r.identification.nct_id == nct
    assert r.identification.brief_title.startswith(title)
    assert r.status.overall_status == status
    assert r.design.phases == phases
    assert (r.eligibility.minimum_age, r.eligibility.maximum_age) == (low, high)
    assert r.eligibility.sex == sex
    assert r.eligibility.healthy_volunteers is healthy
    assert len(r.arms_interventions.arm_groups) == arms
    assert sum(loc.geo is not None for loc in r.contacts_locations.locations) == geo
    assert (result.inclusion, result.exclusion) == (inc, exc)
    assert protocol.is_draft  # every imported criterion waits for review


def test_dates_and_sponsors_are_kept(imported: dict[str, Imported]) -> None:
    # NCT04431453 statusModule: start 2020-07-21 ACTUAL, verified 2023-11 (YYYY-MM)
    r = protocol_from_data(imported["NCT04431453"].document).protocol.registry
    assert (r.status.start_date, r.status.start_date_type, r.status.status_verified_date) == (
        "2020-07-21",
        "ACTUAL",
        "2023-11",
    )
    assert r.status.first_posted == "2020-06-16" and r.status.last_update_posted == "2023-12-22"
    assert r.sponsor.lead_sponsor.name == "Gilead Sciences"
    # XML NCT01339988: <start_date>June 2011</start_date>, completion "June 2019" Anticipated
    x = protocol_from_data(imported["NCT01339988"].document).protocol.registry
    assert (x.status.start_date, x.status.completion_date, x.status.completion_date_type) == (
        "2011-06",
        "2019-06",
        "ESTIMATED",
    )
    assert x.sponsor.lead_sponsor.name == "Tel-Aviv Sourasky Medical Center"
    assert x.oversight is not None and x.oversight.has_dmc is False


def test_outcomes_references_and_mesh(imported: dict[str, Imported]) -> None:
    r = protocol_from_data(imported["NCT01339988"].document).protocol.registry
    # <primary_outcome><measure>Overall survival</measure><time_frame>Five years</time_frame>
    assert (r.outcomes.primary[0].measure, r.outcomes.primary[0].time_frame) == (
        "Overall survival",
        "Five years",
    )
    v2 = protocol_from_data(imported["NCT05147467"].document).protocol.registry
    assert v2.mesh is not None
    assert "Leukemia, Lymphocytic, Chronic, B-Cell" in [m.term for m in v2.mesh.conditions]


def test_age_limits_become_drafts_or_questions(imported: dict[str, Imported]) -> None:
    doc = imported["NCT03281889"].document  # 3 Years to 18 Years
    age = doc["eligibility"]["inclusion"][0]
    assert (age["id"], age["rule"]) == ("I-age", "age_years >= 3 and age_years <= 18")
    # "5 Days" has no age fact in days: an investigator question, and a problem reported
    neonatal = imported["NCT00734539"]
    assert "attest" in neonatal.document["eligibility"]["inclusion"][0]
    assert any("5 Days" in p for p in neonatal.problems)
    female = imported["NCT06388018"].document["eligibility"]["inclusion"]
    assert [c["rule"] for c in female if c["id"] == "I-sex"] == ["sex == 'female'"]


def test_markdown_escapes_are_undone(imported: dict[str, Imported]) -> None:
    # NCT04431453: "Alanine Aminotransferase (ALT) ... \> 5 X upper limit of normal (ULN)."
    exclusion = imported["NCT04431453"].document["eligibility"]["exclusion"]
    assert "> 5 X upper limit" in exclusion[1]["text"] and "\\>" not in exclusion[1]["text"]
    assert exclusion[1]["rule"] == "(alt_x_uln > 5 or ast_x_uln > 5)"


# ---------------------------------------------------------------------------
# Round trip and failures


@pytest.mark.parametrize("path", [p for p in FILES if p.suffix == ".json"], ids=lambda p: p.stem)
def test_v2_round_trip(path: Path) -> None:
    for study in studies_in(json.loads(path.read_text(encoding="utf-8")), source=str(path)):
        registry = registry_from_v2(study.record, where=study.where)
        again = Registry.model_validate(registry.model_dump(mode="json", by_alias=True, exclude_none=True))
        assert to_v2(again) == held(study.record)


def _study(path: str) -> dict:
    data = json.loads((CTGOV / path).read_text(encoding="utf-8"))
    return data["studies"][0] if "studies" in data else data


def test_a_malformed_study_fails_alone() -> None:
    good, bad = _study("NCT04431453.json"), copy.deepcopy(_study("NCT03281889.json"))
    del bad["protocolSection"]["identificationModule"]["briefTitle"]
    results = import_bytes(json.dumps({"studies": [good, bad]}).encode(), name="page.json")
    assert isinstance(results[0], Imported)
    assert isinstance(results[1], Failed)
    assert results[1].where == "page.json: $.studies[1]: $.protocolSection.identificationModule.briefTitle"
    assert results[1].reason == "required field is missing"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda s: s["protocolSection"]["statusModule"].__setitem__(
                "startDateStruct", {"date": "July 2020"}
            ),
            "not a date YYYY-MM or YYYY-MM-DD: 'July 2020'",
        ),
        (
            lambda s: s["protocolSection"]["eligibilityModule"].__setitem__("minimumAge", "eighteen"),
            "not an age like '18 Months' or '5 Years': 'eighteen'",
        ),
        (
            lambda s: s["protocolSection"]["identificationModule"].__setitem__("nctId", "NCT123"),
            "not an NCT number (NCT and 8 digits): 'NCT123'",
        ),
        (
            lambda s: s["protocolSection"]["statusModule"].__setitem__("overallStatus", "OPEN"),
            "unknown status 'OPEN'",
        ),
    ],
)
def test_bad_values_name_path_and_reason(change, reason: str) -> None:  # type: ignore[no-untyped-def]
    study = copy.deepcopy(_study("NCT04431453.json"))
    change(study)
    [result] = import_bytes(json.dumps(study).encode(), name="x.json")
    assert isinstance(result, Failed) and result.reason == reason
    assert result.where.startswith("x.json: $.protocolSection.")


def test_malformed_xml_and_json_fail_with_one_line() -> None:
    [xml] = import_bytes(b"<clinical_study><id_info>", name="bad.xml")
    [js] = import_bytes(b'{"studies": [', name="bad.json")
    [other] = import_bytes(b'{"hello": 1}', name="other.json")
    assert isinstance(xml, Failed) and xml.reason.startswith("malformed XML")
    assert isinstance(js, Failed) and js.reason.startswith("malformed JSON")
    assert isinstance(other, Failed) and "protocolSection" in other.reason


def test_a_record_with_1200_sites_imports() -> None:
    study = copy.deepcopy(_study("NCT02552212.json"))  # 105 sites, each with a geo point
    sites = study["protocolSection"]["contactsLocationsModule"]["locations"]
    study["protocolSection"]["contactsLocationsModule"]["locations"] = (sites * 12)[:1200]
    [result] = import_bytes(json.dumps(study).encode(), name="big.json")
    assert isinstance(result, Imported)
    assert len(result.document["registry"]["contacts_locations"]["locations"]) == 1200


# ---------------------------------------------------------------------------
# Criteria items


def test_nested_items_stay_with_their_parent() -> None:
    # NCT00184067 inclusion 1: "... provided that:" with four numbered conditions under it
    items = split_criteria(
        _study("NCT00184067.json")["protocolSection"]["eligibilityModule"]["eligibilityCriteria"]
    )
    first = items[0]
    assert first.kind == "inclusion" and first.text.startswith("Patients who have completed protocol")
    assert first.text.count("\n- ") == 4


def test_populations_become_groups() -> None:
    text = _study("NCT03630471.json")["protocolSection"]["eligibilityModule"]["eligibilityCriteria"]
    items = split_criteria(text)
    assert [i.group for i in items if i.kind == "inclusion"] == ["For adolescent participants"] * 6 + [
        "For parent participants"
    ] * 3


def test_disease_characteristics_headings_are_inclusion() -> None:
    text = (
        "DISEASE CHARACTERISTICS:\n\n  - Histologically confirmed neuroblastoma\n\n"
        "PATIENT CHARACTERISTICS:\n\n  - Lansky 50-100%\n\nExclusion Criteria:\n\n  - Pregnant"
    )
    items = split_criteria(text)
    assert [(i.kind, i.group) for i in items] == [
        ("inclusion", "DISEASE CHARACTERISTICS"),
        ("inclusion", "PATIENT CHARACTERISTICS"),
        ("exclusion", None),
    ]


# ---------------------------------------------------------------------------
# Extractor known answers: (sentence, kind, [(fact, op, value, unit)])
# From the shared records (record id in the comment) and the LCT sample
# (../shared/criteria-annotated/lct/, file in the comment).

EXTRACT = [
    ("ANC ≥ 750/µL", "inclusion", [("anc", ">=", 750, "/mm3")]),  # issue 13 example
    ("platelets > 75,000/mm³", "inclusion", [("platelets", ">", 75000, "/mm3")]),  # issue 13 example
    (
        "creatinine ≤ 1.5 × ULN or GFR ≥ 70 mL/min/1.73 m²",
        "inclusion",
        [("creatinine_x_uln", "<=", 1.5, "ULN"), ("gfr", ">=", 70, "mL/min/1.73m2")],
    ),  # issue 13
    # NCT00184067
    (
        "Serum creatinine of 2.0 mg/dl or less, total bilirubin of 2.0 mg/dl or less and SGOT/SGPT of 2.5 X "
        "institutional norm or less.",
        "inclusion",
        [
            ("creatinine", "<=", 2.0, "mg/dL"),
            ("bilirubin", "<=", 2.0, "mg/dL"),
            ("ast_x_uln", "<=", 2.5, "ULN"),
            ("alt_x_uln", "<=", 2.5, "ULN"),
        ],
    ),
    (
        "hemoglobin of 9.0 gm/dl or more, and platelet count of 100,000 per cu mm or more.",
        "inclusion",
        [("hemoglobin", ">=", 9.0, "g/dL"), ("platelets", ">=", 100000, "/mm3")],
    ),
    ("ECOG performance status of 0 or 1.", "inclusion", [("ecog", "<=", 1, None)]),
    # NCT00734539 (XML)
    (
        "liver failure (AST and ALT > 250 U/L)",
        "exclusion",
        [("ast", ">", 250, "U/L"), ("alt", ">", 250, "U/L")],
    ),
    ("renal failure (creatinine > 2 mg/dL)", "exclusion", [("creatinine", ">", 2, "mg/dL")]),
    # NCT01207388
    (
        "Eastern Cooperative Oncology Group (ECOG) performance status 0 or 1",
        "inclusion",
        [("ecog", "<=", 1, None)],
    ),
    # NCT01339988: "≥ 60 ml/minute/1.73m2"; "< 2.5x normal"
    (
        "Renal: creatinine clearance/GFR ≥ 60 ml/minute/1.73m2",
        "inclusion",
        [("gfr", ">=", 60, "mL/min/1.73m2")],
    ),
    ("unsupported platelet count of ≥ 50,000/ml", "inclusion", [("platelets", ">=", 50000, "/mm3")]),
    (
        "Hepatic transaminases < 2.5x normal; Total bilirubin < 2 mg/dl",
        "inclusion",
        [("alt_x_uln", "<", 2.5, "ULN"), ("ast_x_uln", "<", 2.5, "ULN"), ("bilirubin", "<", 2, "mg/dL")],
    ),
    # NCT01642004
    ("Men and women ≥18 years of age", "inclusion", [("age_years", ">=", 18, "year")]),
    (
        "Eastern Cooperative Oncology Group (ECOG) performance status ≤1",
        "inclusion",
        [("ecog", "<=", 1, None)],
    ),
    # NCT03245528 (XML)
    ("Patients with an ANC < 500 cells/mm^3.", "exclusion", [("anc", "<", 500, "/mm3")]),
    ("Patients with active bleeding AND hemoglobin < 7 g/dL.", "exclusion", [("hemoglobin", "<", 7, "g/dL")]),
    (
        "Patients with an expected lifespan of < 24 hours.",
        "exclusion",
        [("life_expectancy", "<", 24, "hour")],
    ),
    (
        "Patients must be adults ≥ 18 years of age who remain hypotensive",
        "inclusion",
        [("age_years", ">=", 18, "year")],
    ),
    # NCT03281889: "HGB of \> 10 g/L and PLT count \> 80 K/uL" (markdown escapes, K/uL)
    (
        "HGB of \\> 10 g/L and PLT count \\> 80 K/uL",
        "inclusion",
        [("hemoglobin", ">", 10, "g/L"), ("platelets", ">", 80, "10^3/uL")],
    ),
    ("Life expectancy ≥ 12 months.", "inclusion", [("life_expectancy", ">=", 12, "month")]),
    (
        "Age ≥ 3 years and ≤ 18 years at the time of registration",
        "inclusion",
        [("age_years", ">=", 3, "year"), ("age_years", "<=", 18, "year")],
    ),
    # NCT03475563
    ("Age over 18 years.", "inclusion", [("age_years", ">", 18, "year")]),
    # NCT03934567
    ("Life expectancy ≥ 3 months", "inclusion", [("life_expectancy", ">=", 3, "month")]),
    (
        "Eastern Cooperative Oncology Group (ECOG) performance status of 0 to 2",
        "inclusion",
        [("ecog", "between", 0, None)],  # a range 0-2 as written; the rule is "ecog <= 2"
    ),
    # NCT04207047
    ("Male or female, age 18 years and older.", "inclusion", [("age_years", ">=", 18, "year")]),
    # NCT04431453: escapes, "X upper limit of normal", eGFR with \^2
    (
        "Alanine Aminotransferase (ALT) or aspartate aminotransferase (AST) \\> 5 X "
        "upper limit of normal (ULN).",
        "exclusion",
        [("alt_x_uln", ">", 5, "ULN"), ("ast_x_uln", ">", 5, "ULN")],
    ),
    (
        "Estimated glomerular filtration rate (eGFR) \\< 30 mL/min/1.73m\\^2 using Schwartz formula",
        "exclusion",
        [("gfr", "<", 30, "mL/min/1.73m2")],
    ),
    # NCT05147467
    ("Age ≥18 years old.", "inclusion", [("age_years", ">=", 18, "year")]),
    ("Expected survival is at least 12 weeks.", "inclusion", [("life_expectancy", ">=", 12, "week")]),
    (
        "Eastern Cooperative Oncology Group (ECOG) Performance Status (PS): 0 -2.",
        "inclusion",
        [("ecog", "between", 0, None)],
    ),
    # NCT06388018
    (
        "Patients' Eastern Cooperative Group (ECOG) performance status must be 0, 1, or 2",
        "inclusion",
        [("ecog", "<=", 2, None)],
    ),
    ("Patients' age must be \\>= 18 years", "inclusion", [("age_years", ">=", 18, "year")]),
    # NCT00763412: a range written "12 -24 years old"
    ("Male or females 12 -24 years old", "inclusion", [("age_years", "between", 12, "year")]),
    # NCT02552212
    ("At least 18 years old at the start of Screening Visit", "inclusion", [("age_years", ">=", 18, "year")]),
    # LCT batch1/NCT03860428.txt
    ("A platelet count of < 50,000/mm3", "exclusion", [("platelets", "<", 50000, "/mm3")]),
    ("A serum creatinine concentration of > 110 μmol/L", "exclusion", [("creatinine", ">", 110, "umol/L")]),
    # Tricky spellings: × 10⁹/L, µ vs μ, ≥ written >=, "no more than", "at least", ranges
    ("Absolute neutrophil count ≥ 1.0 x 10^9/L", "inclusion", [("anc", ">=", 1.0, "10^9/L")]),
    ("ANC >= 1.5 × 10⁹/L", "inclusion", [("anc", ">=", 1.5, "10^9/L")]),
    ("ANC ≥ 1000/μL", "inclusion", [("anc", ">=", 1000, "/mm3")]),
    ("Platelets ≥ 100 x 10^9/L", "inclusion", [("platelets", ">=", 100, "10^9/L")]),
    (
        "Total bilirubin no more than 1.5 times the upper limit of normal",
        "inclusion",
        [("bilirubin_x_uln", "<=", 1.5, "ULN")],
    ),
    ("AST/ALT ≤ 3 x ULN", "inclusion", [("ast_x_uln", "<=", 3, "ULN"), ("alt_x_uln", "<=", 3, "ULN")]),
    ("Bilirubin ≤ 1.5 x ULN unless Gilbert's syndrome", "inclusion", [("bilirubin_x_uln", "<=", 1.5, "ULN")]),
    (
        "Serum creatinine ≤ 1.5 mg/dL or creatinine clearance ≥ 60 mL/min/1.73 m2",
        "inclusion",
        [("creatinine", "<=", 1.5, "mg/dL"), ("gfr", ">=", 60, "mL/min/1.73m2")],
    ),
    ("Hemoglobin at least 8 g/dL", "inclusion", [("hemoglobin", ">=", 8, "g/dL")]),
    ("INR < 1.5", "inclusion", [("inr", "<", 1.5, None)]),
    ("LVEF ≥ 50%", "inclusion", [("lvef", ">=", 50, "%")]),
    ("Karnofsky performance status ≥ 70%", "inclusion", [("karnofsky", ">=", 70, "%")]),
    ("Lansky ≥ 50", "inclusion", [("lansky", ">=", 50, None)]),
    ("Lansky or Karnofsky performance status ≥ 70%", "inclusion", [("performance_score", ">=", 70, "%")]),
    (
        "Aged 18 months to 18 years",
        "inclusion",
        [("age_months", ">=", 18, "month"), ("age_years", "<=", 18, "year")],
    ),
    (
        "Age less than 72 hours",
        "inclusion",
        [("age", "<", 72, "hour")],
    ),  # LCT NCT03860428: no age fact in hours
    ("Serum potassium ≥ 3.5 mmol/L", "inclusion", [("potassium", ">=", 3.5, "mmol/L")]),
    # Sentences that must yield no threshold
    ("Able to swallow tablets", "inclusion", []),
    ("Histologically confirmed grade 1, 2, or 3a follicular lymphoma (FL)", "inclusion", []),
    ("Weight must be stable within 5% for 3 months prior to initiation visit", "inclusion", []),
    (
        "Patients who have received systemic steroids for more than 28 days during the 6 months prior",
        "exclusion",
        [],
    ),
    ("Presence of minimal residual disease at a level of ≥ 10^-3", "inclusion", []),
    ("Eczema Area and Severity Index (EASI) score ≥16 at the screening visit", "inclusion", []),
    ("Participant has a total of ≥10 and ≤40 inflammatory lesions on the face", "inclusion", []),
    ("Creatinine above protocol specified thresholds for \\< 1 year of age.", "exclusion", []),
    ("Meet various hematological, liver function and renal function lab parameters", "inclusion", []),
    ("Patients with a MAP > 80 mmHg.", "exclusion", []),
    # NCT01339988: the "exception" sentence after the thresholds does not remove them
    (
        "Hepatic transaminases < 2.5x normal; Total bilirubin < 2 mg/dl Patients who do not meet above "
        "organ function criteria (liver, cardiac, renal), due to the presence of a tumor compromising these "
        "organs, may have exception made for these criteria and remain eligible for treatment plan",
        "inclusion",
        [("alt_x_uln", "<", 2.5, "ULN"), ("ast_x_uln", "<", 2.5, "ULN"), ("bilirubin", "<", 2, "mg/dL")],
    ),
    # NCT06388018, NCT03281889: a number inside an "except" clause is the exception, not a bound
    (
        "Patients with a history of other malignancies, except: adequately treated non-melanoma skin cancer, "
        "curatively treated in-situ cancer of the cervix, or other solid tumours curatively treated with no "
        "evidence of disease for >= 5 years",
        "exclusion",
        [],
    ),
    (
        "Individuals with a history of a different malignancy are ineligible except for the following "
        "circumstances: if they have been disease-free for at least 5 years and are deemed by the "
        "investigator to be a low-risk for recurrence of that malignancy",
        "exclusion",
        [],
    ),
    # LCT batch2/NCT03868852 line 9: "109/L" is 10^9/L with its superscript lost
    (
        "1. Blood routine examination standards should be met: (no blood transfusion within 14 days) "
        "A. HB > 90 g/L; B. ANC > 1.5 * 109/L; C. PLT > 80 * 109 /L",
        "inclusion",
        [("hemoglobin", ">", 90, "g/L"), ("anc", ">", 1.5, "10^9/L"), ("platelets", ">", 80, "10^9/L")],
    ),
    # LCT batch12/NCT03923894 line 14: "Transaminase" names and a "reference range" filler
    (
        "Aspartate Transaminase(AST), Alanine Transaminase(ALT) > Reference range 3 times upper limit",
        "exclusion",
        [("ast_x_uln", ">", 3, "ULN"), ("alt_x_uln", ">", 3, "ULN")],
    ),
    # LCT batch10/NCT03860220 line 11: mL/min without 1.73 m² is read, kept as written
    (
        "estimated glomerular filtration rate ≤30 mL/min; aspartate aminotransferase and alanine "
        "aminotransferase levels ≥3 times the upper limit of normal",
        "exclusion",
        [("gfr", "<=", 30, "mL/min"), ("ast_x_uln", ">=", 3, "ULN"), ("alt_x_uln", ">=", 3, "ULN")],
    ),
    # LCT batch12/NCT03920033 lines 5 and 7: the "within 6 months" window is no threshold
    (
        "Appropriate values of blood tests within 6 months after enrollment Absolute neutrophil count (ANC) "
        "≥ 1500 cells/mm3 Platelets ≥ 50,000 cells/mm3 Hemoglobin ≥ 8.0 g/dl",
        "inclusion",
        [("anc", ">=", 1500, "/mm3"), ("platelets", ">=", 50000, "/mm3"), ("hemoglobin", ">=", 8, "g/dL")],
    ),
    (
        "Appropriate values of liver function within 6 months after enrollment total bilirubin < 1.5 X "
        "maximum normal value alanine aminotransferase or aspartate aminotransferase < 2.5 X maximum "
        "normal value",
        "inclusion",
        [
            ("bilirubin_x_uln", "<", 1.5, "ULN"),
            ("alt_x_uln", "<", 2.5, "ULN"),
            ("ast_x_uln", "<", 2.5, "ULN"),
        ],
    ),
    # LCT batch9/NCT03860350 lines 8 and 17; batch6/NCT03866421; batch17/NCT03929718
    ("Weight ≥325 pounds,", "exclusion", [("weight", ">=", 325, "lb")]),
    ("Weight > 130 kg OR", "exclusion", [("weight", ">", 130, "kg")]),
    ("life expectancy < 18 months", "exclusion", [("life_expectancy", "<", 18, "month")]),
    (
        "History of malignancy within the last 5 years (other than skin cancer) or evidence of active "
        "cancer which would require concomitant cancer chemotherapy",
        "exclusion",
        [],
    ),
    # LCT batch6/NCT03863639: blood pressure is no dictionary fact; the "unless" clause adds none
    (
        "Severe blood pressure elevation (Systolic blood pressure ≥160 mmHg or diastolic blood pressure "
        "≥110 mmHg on two occasions at least four hours apart while the patient is on bedrest (unless the "
        "patient is on antihypertensive therapy))",
        "exclusion",
        [],
    ),
    # "between X and Y" is a range with both ends
    ("Aged between 18 and 65 years", "inclusion", [("age_years", "between", 18, "year")]),
]


@pytest.mark.parametrize(("text", "kind", "expected"), EXTRACT, ids=[e[0][:40] for e in EXTRACT])
def test_extractor_known_answers(
    text: str, kind: str, expected: list[tuple[str, str, float, str | None]]
) -> None:
    found = [(t.fact, t.op, t.value, t.unit) for t in thresholds_in(text, kind)]
    assert sorted(found, key=str) == sorted(expected, key=str)


def test_between_is_a_range_with_both_ends() -> None:
    [age] = thresholds_in("Aged between 18 and 65 years", "inclusion")
    assert (age.op, age.value, age.high) == ("between", 18, 65)
    assert draft_item("Aged between 18 and 65 years", "inclusion").rule == "age_years between 18 and 65"
    [hb] = thresholds_in("Hemoglobin between 9 and 12 g/dL", "inclusion")
    assert (hb.fact, hb.value, hb.high, hb.unit) == ("hemoglobin", 9, 12, "g/dL")


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        # the exception's own threshold is left out; the criterion's is kept
        (
            "Total bilirubin ≤ 1.5 x ULN, except in patients with Gilbert's syndrome, who must have total "
            "bilirubin ≤ 3.0 mg/dL",
            "bilirubin_x_uln <= 1.5",
        ),
        (
            "ANC ≥ 1500/µL unless due to bone marrow involvement, in which case ANC ≥ 750/µL",
            "anc >= 1500 [/mm3]",
        ),
        # the clause ends where the next test begins
        (
            "Bilirubin ≤ 1.5 × ULN (unless Gilbert's syndrome, then ≤ 3 × ULN), ALT ≤ 3 × ULN",
            "bilirubin_x_uln <= 1.5 and alt_x_uln <= 3",
        ),
        (
            "Bilirubin ≤ 1.5 ULN except Gilbert syndrome, AST ≤ 3 x ULN",
            "bilirubin_x_uln <= 1.5 and ast_x_uln <= 3",
        ),
    ],
)
def test_thresholds_inside_exceptions_are_not_read(text: str, rule: str) -> None:
    assert draft_item(text, "inclusion").rule == rule


def test_at_least_sixty_extractor_sentences() -> None:
    assert len(EXTRACT) >= 60


DRAFTS = [
    # NCT03934567 inclusion 2 (grade is left to the reviewer)
    (
        "Histologically confirmed grade 1, 2, or 3a follicular lymphoma (FL)",
        "inclusion",
        "primary_diagnosis == 'lymphoma' and diagnosis_confirmation == 'histological'",
    ),
    # NCT01642004 inclusion 2
    (
        "Subjects with histologically or cytologically-documented squamous cell NSCLC who present with "
        "Stage IIIB/IV",
        "inclusion",
        "primary_diagnosis == 'lung_cancer' and diagnosis_confirmation in ['histological', 'cytological']",
    ),
    ("Eastern Cooperative Oncology Group (ECOG) Performance Status (PS): 0 -2.", "inclusion", "ecog <= 2"),
    (
        "Patients' Eastern Cooperative Group (ECOG) performance status must be 0, 1, or 2",
        "inclusion",
        "ecog <= 2",
    ),
    (
        "creatinine ≤ 1.5 × ULN or GFR ≥ 70 mL/min/1.73 m²",
        "inclusion",
        "creatinine_x_uln <= 1.5 or gfr >= 70 [mL/min/1.73m2]",
    ),
    ("Male or females 12 -24 years old", "inclusion", "age_years between 12 and 24"),
    ("Aged 18 months to 18 years", "inclusion", "age_months >= 18 and age_years <= 18"),
    ("Patients who are pregnant or lactating.", "exclusion", "pregnant"),
    ("Negative pregnancy test in women of childbearing potential", "inclusion", "not pregnant"),
    ("Signed informed consent obtained from both parents", "inclusion", "consent_signed"),
    ("Lack of informed consent of the parents", "exclusion", "not consent_signed"),
    (
        "Therapy with monoclonal antibodies (rituximab, alemtuzumab) within 4 weeks prior to study treatment",
        "exclusion",
        "last_immunotherapy_date within 4 [weeks]",
    ),
    (
        "Karnofsky ≥ 50% for patients > 16 years of age and Lansky ≥ 50 for patients ≤ 16 years of age",
        "inclusion",
        "performance_score >= 50",
    ),
    ("Women only", "inclusion", "sex == 'female'"),
]


@pytest.mark.parametrize(("text", "kind", "rule"), DRAFTS, ids=[d[0][:40] for d in DRAFTS])
def test_drafts_are_rules_that_check(text: str, kind: str, rule: str) -> None:
    draft = draft_item(text, kind)
    assert draft.rule == rule
    bind(parse(rule), BASE)  # raises if the rule does not type-check
    d = draft.draft()
    assert d.span and d.span in normalise_text(text) and d.facts and 0 < d.confidence <= 1


@pytest.mark.parametrize(
    "text",
    [
        "Patients with a history of other malignancies, except melanoma",  # NCT06388018-like: not a diagnosis
        # the dictionary has no value for CLL
        "Pathologically confirmed CLL/SLL according to the 2018 revised IWCLL NCI-WG guidelines",
    ],
)
def test_no_diagnosis_draft(text: str) -> None:
    assert draft_item(text, "inclusion").rule is None


def test_hedged_items_get_lower_confidence() -> None:
    plain = draft_item("Bilirubin ≤ 1.5 x ULN", "inclusion")
    hedged = draft_item("Bilirubin ≤ 1.5 x ULN unless Gilbert's syndrome", "inclusion")
    assert plain.rule == hedged.rule and hedged.confidence < plain.confidence


def test_items_without_a_draft_are_questions(imported: dict[str, Imported]) -> None:
    # NCT03934567 inclusion 7: "Meet various hematological, liver function and renal function lab parameters"
    c = imported["NCT03934567"].document["eligibility"]["inclusion"][-1]
    assert c["attest"] == c["text"].strip()
    assert c["review"]["state"] == "draft"


# ---------------------------------------------------------------------------
# Review


def _facts(**values: object) -> FactSet:
    as_of = datetime(2026, 12, 1, 12, 0)
    return FactSet(as_of, {k: FactValue(k, v, None, as_of.date(), "test") for k, v in values.items()})


def test_an_unreviewed_protocol_cannot_screen(imported: dict[str, Imported]) -> None:
    compiled = protocol_from_data(imported["NCT05594173"].document)
    with pytest.raises(ProtocolError, match="is a draft and cannot screen: 9 criteria not reviewed"):
        screen(compiled, _facts(), patient_id="p1")


def test_reviewed_protocol_screens(imported: dict[str, Imported]) -> None:
    doc = imported["NCT05594173"].document
    at = datetime(2026, 12, 1, 9, 0)
    for kind in ("inclusion", "exclusion"):
        for c in doc["eligibility"][kind]:
            doc = accept(doc, c["id"], by="dr.smith", at=at)
    doc = reject(doc, "I-age", by="dr.smith", at=at, note="checked at the visit")
    compiled = protocol_from_data(doc)
    assert not compiled.protocol.is_draft
    result = screen(compiled, _facts(), patient_id="p1")
    assert result.verdict is Verdict.UNDETERMINED  # no facts given: every criterion unknown
    review = compiled.protocol.eligibility.inclusion[0].review
    assert review is not None and (review.state, review.by, review.at) == ("rejected", "dr.smith", at)


def test_edit_checks_the_rule_and_signs(imported: dict[str, Imported]) -> None:
    doc = imported["NCT03281889"].document
    at = datetime(2026, 12, 2, 10, 0)
    new = edit(doc, "I3", by="dr.lee", at=at, rule="life_expectancy >= 12 [month]")
    c = next(x for x in new["eligibility"]["inclusion"] if x["id"] == "I3")
    assert (c["rule"], c["review"]["state"], c["review"]["by"]) == (
        "life_expectancy >= 12 [month]",
        "edited",
        "dr.lee",
    )
    assert "rule" in next(x for x in doc["eligibility"]["inclusion"] if x["id"] == "I3")  # input unchanged
    with pytest.raises(ReviewError, match="the rule does not check"):
        edit(doc, "I3", by="dr.lee", at=at, rule="life_expectancy >= 12")
    with pytest.raises(ReviewError, match="must name who signed"):
        accept(doc, "I3", by=" ", at=at)
    with pytest.raises(ReviewError, match="no criterion 'I99'"):
        accept(doc, "I99", by="dr.lee", at=at)


def test_a_signed_state_needs_who_and_when(imported: dict[str, Imported]) -> None:
    doc = copy.deepcopy(imported["NCT03281889"].document)
    doc["eligibility"]["inclusion"][1]["review"]["state"] = "accepted"
    with pytest.raises(ProtocolError, match="needs who"):
        protocol_from_data(doc)


# ---------------------------------------------------------------------------
# Search


def _with(r: Registry, **update: object) -> Registry:
    return r.model_copy(update=update)


@pytest.fixture(scope="module")
def registries(imported: dict[str, Imported]) -> dict[str, Registry]:
    return {k: protocol_from_data(v.document).protocol.registry for k, v in imported.items()}


def _trials(regs: dict[str, Registry]) -> list[tuple[str, Registry, list[str], bool]]:
    return [(k, r, [], True) for k, r in regs.items()]


def test_condition_synonyms(registries: dict[str, Registry]) -> None:
    # NCT03245528 lists "Sepsis"; a query for septic shock finds it through the synonym table
    hits = search(_trials(registries), Query(condition="septic shock"))
    assert [h.trial_id for h in hits] == ["NCT03245528"]
    shock = _with(registries["NCT03281889"], conditions=["Septic Shock"], mesh=None, keywords=[])
    assert [h.trial_id for h in search([("X", shock, [], False)], Query(condition="sepsis"))] == ["X"]
    # a condition found only through the record's MeSH terms: NCT05147467 conditions say
    # "Chronic Lymphocytic Leukemia"; its MeSH ancestors include "Leukemia, Lymphoid"
    assert "NCT05147467" in [
        h.trial_id for h in search(_trials(registries), Query(condition="leukemia, lymphoid"))
    ]
    assert search(_trials(registries), Query(condition="neuroblastoma")) == []


def test_text_search_over_fields(registries: dict[str, Registry]) -> None:
    hits = search(_trials(registries), Query(text="remdesivir"))
    assert [h.trial_id for h in hits] == ["NCT04431453"]


@pytest.mark.parametrize(
    ("age", "low", "high", "fits"),
    [
        (Age(12, "month"), None, "12 Months", True),  # the boundary itself is inside
        (Age(13, "month"), None, "12 Months", False),
        (Age(12, "month"), None, "1 Year", True),  # 12 completed months = 1 completed year
        (Age(23, "month"), None, "1 Year", True),  # 1 completed year until the 2nd birthday
        (Age(24, "month"), None, "1 Year", False),
        (Age(18, "month"), "18 Months", "18 Years", True),
        (Age(17, "month"), "18 Months", "18 Years", False),
        (Age(17, "year"), "18 Years", None, False),
        (Age(5, "day"), None, "5 Days", True),
        (Age(6, "day"), None, "5 Days", False),
    ],
)
def test_age_fit_at_the_boundaries(age: Age, low: str | None, high: str | None, fits: bool) -> None:
    assert fits_age(age, low, high) is fits


def test_age_and_sex_filters(registries: dict[str, Registry]) -> None:
    ids = {h.trial_id for h in search(_trials(registries), Query(age=parse_age("6y")))}
    # 6-year-olds: NCT00973089 (5-8 y), NCT03281889 (3-18 y), NCT04431453 (to 18 y), NCT01339988 (to 21 y)
    assert ids == {"NCT00973089", "NCT03281889", "NCT04431453", "NCT01339988"}
    men = {h.trial_id for h in search(_trials(registries), Query(sex="M"))}
    assert "NCT06388018" not in men and "NCT01339988" in men


def _site(city: str, lat: float, lon: float) -> Location:
    return Location(facility=f"{city} hospital", city=city, geo=GeoPoint(lat=lat, lon=lon))


def test_distance_ordering_against_hand_computed_distances(registries: dict[str, Registry]) -> None:
    # GeoNames points: Moscow 55.75204 N 37.61781 E, Saint Petersburg 59.93863 N 30.31413 E,
    # Utrecht 52.09083 N 5.12222 E. By the spherical law of cosines (R = 6371.0088 km):
    # Moscow-St Petersburg 634.5 km, Moscow-Utrecht 2145.7 km, St Petersburg-Utrecht 1776.8 km.
    base = registries["NCT03281889"]
    sites = {
        "MOW": _site("Moscow", 55.75204, 37.61781),
        "SPB": _site("St Petersburg", 59.93863, 30.31413),
        "UTR": _site("Utrecht", 52.09083, 5.12222),
    }
    trials = [
        (
            k,
            _with(base, contacts_locations=base.contacts_locations.model_copy(update={"locations": [s]})),
            [],
            False,
        )
        for k, s in sites.items()
    ]
    moscow = resolve_place("Moscow")
    hits = search(trials, Query(near=moscow))
    assert [h.trial_id for h in hits] == ["MOW", "SPB", "UTR"]
    assert [round(h.km or 0, 1) for h in hits] == [0.0, 634.5, 2145.7]
    utrecht = search(trials, Query(near=resolve_place("Utrecht"), km=2000))
    assert [(h.trial_id, round(h.km or 0, 1)) for h in utrecht] == [("UTR", 0.0), ("SPB", 1776.8)]
    # the haversine and the law of cosines agree on these distances
    assert math.isclose(great_circle_km(55.75204, 37.61781, 52.09083, 5.12222), 2145.66, abs_tol=0.01)


def test_places_resolve_or_fail_clearly() -> None:
    assert resolve_place("55.75,37.62").source == "coordinates given"
    assert resolve_place("St Petersburg").name == "Saint Petersburg, RU"
    with pytest.raises(RegistryError, match="unknown place 'Qwertyville'"):
        resolve_place("Qwertyville")


# ---------------------------------------------------------------------------
# Command line


def test_cli_import_and_search(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["registry", "import", str(CTGOV), "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert len(doc["imported"]) == 20 and doc["failed"] == []
    assert sorted(p.stem for p in tmp_path.glob("*.yaml")) == sorted(KNOWN)
    found = runner.invoke(
        app, ["registry", "search", "--condition", "sepsis", "--protocols", str(tmp_path), "--json"]
    )
    assert found.exit_code == 0, found.output
    assert [r["trial_id"] for r in json.loads(found.output)["results"]] == ["NCT03245528"]
    near = runner.invoke(
        app, ["registry", "search", "--near", "Birmingham, Alabama", "--protocols", str(tmp_path)]
    )
    assert near.exit_code == 1 and "unknown place" in near.output


def test_cli_import_reports_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"protocolSection": {}}')
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(app, ["registry", "import", str(bad), "--out", str(out)])
    assert result.exit_code == 1
    assert "failed   " in result.output and "$.protocolSection" in result.output


def test_lint_says_a_protocol_is_a_draft(imported: dict[str, Imported]) -> None:
    from trialdesk.protocol.lint import lint

    findings = lint(protocol_from_data(imported["NCT05594173"].document, source="NCT05594173"))
    drafts = [f for f in findings if f.code == "draft"]
    assert len(drafts) == 1 and drafts[0].message.startswith("9 criteria await review (I-age, I1, E1")


def test_condition_through_the_record_mesh_terms(registries: dict[str, Registry]) -> None:
    from trialdesk.protocol.model import MeshTerm, MeshTerms

    # A record whose condition text does not say neuroblastoma, but whose MeSH terms do
    # (MeSH D009447 Neuroblastoma); and one that says ganglioneuroblastoma (synonym table).
    base = registries["NCT03281889"]
    by_mesh = _with(
        base,
        conditions=["Relapsed GNB"],
        keywords=[],
        mesh=MeshTerms(conditions=[MeshTerm(id="D009447", term="Neuroblastoma")]),
    )
    by_name = _with(base, conditions=["Ganglioneuroblastoma"], keywords=[], mesh=None)
    other = _with(base, conditions=["Medulloblastoma"], keywords=[], mesh=None)
    trials = [("MESH", by_mesh, [], False), ("NAME", by_name, [], False), ("OTHER", other, [], False)]
    assert [h.trial_id for h in search(trials, Query(condition="neuroblastoma"))] == ["MESH", "NAME"]


def test_a_bad_xml_date_names_the_element() -> None:
    data = (
        (CTGOV / "NCT01339988.xml").read_bytes().replace(b"<start_date>June 2011", b"<start_date>Summer 2011")
    )
    [result] = import_bytes(data, name="x.xml")
    assert isinstance(result, Failed)
    assert (result.where, result.reason) == (
        "x.xml: start_date",
        "not a date like 'June 2011' or 'March 15, 2008': 'Summer 2011'",
    )


def test_donor_and_recipient_headings_set_kind_and_group() -> None:
    text = (
        "Recipient Inclusion Criteria:\n\n* a\n\nRecipient Exclusion Criteria:\n\n* b\n\n"
        "Donor Inclusion Criteria:\n\n* c\n\nDONOR EXCLUSION CRITERIA:\n\n* d"
    )
    items = split_criteria(text)
    assert [(i.kind, i.group, i.text) for i in items] == [
        ("inclusion", "Recipient", "a"),
        ("exclusion", "Recipient", "b"),
        ("inclusion", "Donor", "c"),
        ("exclusion", "DONOR", "d"),
    ]


def test_screening_every_trial_leaves_out_drafts_and_names_them(tmp_path: Path) -> None:
    """A folder with an imported, unreviewed protocol still screens the reviewed trials; the
    draft is named, and asked for by --trial it is refused with the reason."""
    import shutil

    from typer.testing import CliRunner

    from trialdesk.cli import app
    from trialdesk.protocol.load import default_protocol_dir

    folder = tmp_path / "protocols"
    shutil.copytree(default_protocol_dir(), folder)
    runner = CliRunner()
    made = runner.invoke(app, ["registry", "import", str(CTGOV / "NCT04431453.json"), "--out",
                               str(folder)])
    assert made.exit_code == 0, made.stderr
    patient = str(default_protocol_dir().parent / "examples" / "patients" / "nb-refractory.json")
    every = runner.invoke(app, ["screen", patient, "--protocols", str(folder), "--json"])
    assert every.exit_code == 0, every.stderr
    screened = {r["trial_id"] for r in json.loads(every.stdout)["results"]}
    assert "NB-NK-2026" in screened and "NCT04431453" not in screened
    assert "drafts awaiting review: NCT04431453" in every.stderr
    one = runner.invoke(app, ["screen", patient, "--protocols", str(folder), "--trial",
                              "NCT04431453"])
    assert one.exit_code == 1 and "is a draft and cannot screen" in one.stderr


def test_whole_word_matching_agrees_with_the_regular_expression() -> None:
    """has_word against ``(?<!\\w)needle(?!\\w)`` on 20,000 random texts over letters,
    accented letters, digits (² and ٣ too), underscores, hyphens, spaces and bars."""
    import random
    import re

    rng = random.Random(13)
    alphabet = "ab_-| é²٣1"
    agreed = found = 0
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        needle = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 3)))
        expected = re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", text) is not None
        assert has_word(text, needle) == expected, (text, needle)
        agreed += 1
        found += expected
    assert agreed == 20000 and found > 500  # both answers were checked many times
