"""SDTM and FHIR export: dataset structure and values against the SDTMIG tables, the
conformance checks catching what they should, and FHIR R5 resources that round-trip
through the fhir.resources parser."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from trialdesk.errors import OutcomeError
from trialdesk.outcomes.events import EventTable, validate_event_table
from trialdesk.outcomes.export_fhir import (
    AE_GRADE_EXTENSION,
    GRADE_CONCEPTS,
    bundle_json,
    fhir_bundle,
    full_url,
    parse_bundle,
)
from trialdesk.outcomes.export_sdtm import (
    CODELISTS,
    SPEC,
    require_valid,
    sdtm_datasets,
    to_csv,
    validate_sdtm,
)
from trialdesk.outcomes.inputs import (
    AdverseEvents,
    Measurements,
    validate_adverse_events,
    validate_exposure,
    validate_labs,
    validate_measurements,
)

STUDY = "NB-NK-2026"


@pytest.fixture
def events() -> EventTable:
    return validate_event_table(
        pd.DataFrame(
            {
                "patient_id": ["001", "002"],
                "arm": ["A", "B"],
                "enrolment_date": ["2026-03-01", "2026-03-10"],
                "best_response": ["PR", None],
                "response_criteria": ["INRC", None],
                "death_date": [None, "2026-06-01"],
                "last_contact_date": ["2026-12-01", None],
                "site_id": ["01", "01"],
                "country": ["RUS", "RUS"],
                "sex": ["f", None],
                "age_years": ["7", None],
            }
        ),
        arms=["A", "B"],
    )


@pytest.fixture
def aes(events: EventTable) -> AdverseEvents:
    return validate_adverse_events(
        [
            {
                "patient_id": "001",
                "course": 2,
                "term": "Fever",
                "meddra_term": "Pyrexia",
                "grade": 3,
                "onset": "2026-03-20",
                "resolution": "2026-03-22",
                "seriousness": ["prolonged_hospitalisation"],
                "outcome": "recovered",
                "action_taken": "drug_interrupted",
                "attributions": [
                    {"agent": "dinutuximab beta", "attribution": "possible"},
                    {"agent": "autologous NK cells", "attribution": "unlikely"},
                ],
            },
            {
                "patient_id": "002",
                "term": "Sepsis",
                "meddra_term": "Sepsis",
                "meddra_code": "10040047",
                "grade": 5,
                "onset": "2026-05-30",
                "seriousness": ["death"],
                "outcome": "fatal",
                "attributions": [{"agent": "autologous NK cells", "attribution": "unrelated"}],
            },
        ],
        events,
    )


@pytest.fixture
def measurements(events: EventTable) -> Measurements:
    return validate_measurements(
        pd.DataFrame(
            {
                "patient_id": ["001", "001"],
                "assessment_date": ["2026-02-27", "2026-04-12"],
                "sum_diameters_mm": ["50", "30"],
                "overall_response": [None, "PR"],
            }
        ),
        events,
    )


@pytest.fixture
def datasets(events: EventTable, aes: AdverseEvents, measurements: Measurements) -> dict[str, pd.DataFrame]:
    exposure = validate_exposure(
        pd.DataFrame(
            {
                "patient_id": ["001", "001"],
                "course": ["1", "1"],
                "course_id": ["IT", "IT"],
                "agent": ["irinotecan", "temozolomide"],
                "route": ["IV", "PO"],
                "start_date": ["2026-03-02", "2026-03-02"],
                "end_date": ["2026-03-06", "2026-03-06"],
                "dose": ["50", None],
                "dose_unit": ["mg/m2", None],
            }
        ),
        events,
    )
    labs = validate_labs(
        pd.DataFrame(
            {
                "patient_id": ["001"],
                "date": ["2026-02-27"],
                "test_code": ["neut"],
                "test": ["Neutrophils"],
                "value": ["0.4"],
                "unit": ["10^9/L"],
                "toxicity_grade": ["4"],
            }
        ),
        events,
    )
    return sdtm_datasets(
        STUDY,
        events,
        arm_labels={"A": "Arm A: refractory", "B": "Arm B: relapsed"},
        aes=aes,
        exposure=exposure,
        measurements=measurements,
        labs=labs,
    )


def test_every_dataset_has_the_sdtmig_columns_in_order(datasets: dict[str, pd.DataFrame]) -> None:
    assert list(datasets) == ["DM", "AE", "SUPPAE", "EX", "RS", "TR", "LB", "DS"]
    for name, frame in datasets.items():
        assert list(frame.columns) == [v.name for v in SPEC[name]], name
        assert all(len(v.label) <= 40 for v in SPEC[name])
    assert validate_sdtm(datasets) == []


def test_dm_values(datasets: dict[str, pd.DataFrame]) -> None:
    dm = datasets["DM"].set_index("SUBJID")
    assert dm.loc["001", ["USUBJID", "RFSTDTC", "RFENDTC", "RFXSTDTC", "RFXENDTC"]].tolist() == [
        "NB-NK-2026-001",
        "2026-03-01",
        "2026-12-01",
        "2026-03-02",
        "2026-03-06",
    ]
    assert dm.loc["001", ["SEX", "AGE", "AGEU", "ARMCD", "ARM", "COUNTRY"]].tolist() == [
        "F",
        7,
        "YEARS",
        "A",
        "Arm A: refractory",
        "RUS",
    ]
    # Unknown sex is "U" (SEX codelist), unknown age stays empty, death is flagged.
    assert dm.loc["002", ["SEX", "DTHDTC", "DTHFL"]].tolist() == ["U", "2026-06-01", "Y"]
    assert pd.isna(dm.loc["002", "AGE"]) and dm.loc["002", "AGEU"] is None
    # The actual arm is what was given: 001 has exposure records, 002 none (SDTMIG v3.4 DM:
    # ACTARMCD null only with ARMNRS, codelist ARMNULRS).
    assert dm.loc["001", ["ACTARMCD", "ACTARM", "ARMNRS"]].tolist() == ["A", "Arm A: refractory", None]
    assert dm.loc["002", ["ACTARMCD", "ARMNRS"]].tolist() == [None, "ASSIGNED, NOT TREATED"]
    # The death is a DS disposition event on DM.DTHDTC.
    assert datasets["DS"][["USUBJID", "DSDECOD", "DSCAT", "DSSTDTC"]].values.tolist() == [
        ["NB-NK-2026-002", "DEATH", "DISPOSITION EVENT", "2026-06-01"]
    ]


def test_ae_values_and_supplemental_qualifiers(datasets: dict[str, pd.DataFrame]) -> None:
    ae = datasets["AE"].set_index("USUBJID")
    fever = ae.loc["NB-NK-2026-001"]
    assert fever[
        [
            "AESEQ",
            "AETERM",
            "AELLT",
            "AEDECOD",
            "AETOXGR",
            "AESER",
            "AESHOSP",
            "AESDTH",
            "AEOUT",
            "AEACN",
            "AEREL",
        ]
    ].tolist() == [
        1,
        "Fever",
        "Fever",
        "Pyrexia",
        "3",
        "Y",
        "Y",
        "N",
        "RECOVERED/RESOLVED",
        "DRUG INTERRUPTED",
        "RELATED",
    ]
    # Study day 1 is the enrolment day (2026-03-01): onset 03-20 is day 20.
    assert fever[["AESTDTC", "AEENDTC", "AESTDY", "AEENDY"]].tolist() == ["2026-03-20", "2026-03-22", 20, 22]
    # MedDRA LLT code and SOC of the CTCAE v5.0 term "Fever" (NCI CTCAE v5.0 term list,
    # MedDRA v20.1); the HLT/HLGT need a licensed MedDRA and stay empty.
    assert fever[["AELLTCD", "AESOC", "AESOCCD", "AEBODSYS", "AEBDSYCD"]].tolist() == [
        10016558, "General disorders and administration site conditions", 10018065,
        "General disorders and administration site conditions", 10018065]
    assert pd.isna(fever["AEHLT"]) and pd.isna(fever["AEHLGTCD"])
    sepsis = ae.loc["NB-NK-2026-002"]
    # A fatal event without an end date ends on the death date (DM.DTHDTC 2026-06-01).
    assert sepsis[["AEENDTC", "AEENDY"]].tolist() == ["2026-06-01", 84]
    assert sepsis[["AETOXGR", "AESDTH", "AEOUT", "AEREL", "AEPTCD"]].tolist() == [
        "5",
        "Y",
        "FATAL",
        "NOT RELATED",
        10040047,
    ]
    supp = datasets["SUPPAE"]
    version = supp[supp["QNAM"] == "AETOXGRV"]
    assert version["QVAL"].tolist() == ["CTCAE v5.0", "CTCAE v5.0"]
    assert supp[supp["QNAM"] == "AECOURSE"][["USUBJID", "QVAL"]].values.tolist() == [["NB-NK-2026-001", "2"]]
    # One qualifier name per agent across the dataset (sorted: autologous NK cells = 1).
    relations = supp[supp["QNAM"].str.startswith("AEREL")]
    assert relations[["USUBJID", "QNAM", "QLABEL", "QVAL"]].values.tolist() == [
        ["NB-NK-2026-001", "AEREL2", "Causality to dinutuximab beta", "POSSIBLE"],
        ["NB-NK-2026-001", "AEREL1", "Causality to autologous NK cells", "UNLIKELY"],
        ["NB-NK-2026-002", "AEREL1", "Causality to autologous NK cells", "UNRELATED"],
    ]


def test_ex_rs_lb_values(datasets: dict[str, pd.DataFrame]) -> None:
    ex = datasets["EX"]
    assert ex[["EXSEQ", "EXGRPID", "EXTRT", "EXDOSE", "EXDOSU", "EXROUTE", "EXSTDY"]].values.tolist() == [
        [1, "C1-IT", "IRINOTECAN", 50, "mg/m2", "INTRAVENOUS", 2],
        [2, "C1-IT", "TEMOZOLOMIDE", pd.NA, None, "ORAL", 2],
    ]
    rs = datasets["RS"]
    assert rs[["USUBJID", "RSTESTCD", "RSTEST", "RSCAT", "RSSTRESC", "RSDTC", "RSDY"]].values.tolist() == [
        ["NB-NK-2026-001", "OVRLRESP", "Overall Response", "INRC 2017", "PR", "2026-04-12", 43],
        ["NB-NK-2026-001", "BESTRESP", "Best Overall Response", "INRC 2017", "PR", None, pd.NA],
    ]
    lb = datasets["LB"]
    # Two days before the reference start: study day -2 (there is no day 0).
    assert lb[["LBTESTCD", "LBORRES", "LBSTRESN", "LBTOXGR", "LBDY"]].values.tolist() == [
        ["NEUT", "0.4", 0.4, "4", -2]
    ]


def test_csv_has_a_header_and_empty_cells_for_missing(datasets: dict[str, pd.DataFrame]) -> None:
    text = to_csv(datasets["DM"]).decode("utf-8").splitlines()
    assert text[0].split(",") == [v.name for v in SPEC["DM"]]
    assert text[2].split(",")[SPEC["DM"].index(next(v for v in SPEC["DM"] if v.name == "AGE"))] == ""


def test_conformance_checks_catch_what_they_should(datasets: dict[str, pd.DataFrame]) -> None:
    broken = {name: frame.copy() for name, frame in datasets.items()}
    broken["DM"].loc[0, "SEX"] = "X"
    broken["DM"].loc[1, "COUNTRY"] = None
    broken["AE"].loc[0, "AEDECOD"] = None
    broken["AE"].loc[1, "AESEQ"] = 1  # both subjects' AESEQ 1 is fine: different USUBJID
    broken["EX"].loc[1, "EXSEQ"] = 1  # same subject twice
    broken["LB"].loc[0, "LBDTC"] = "27/02/2026"
    broken["RS"].loc[0, "USUBJID"] = "NB-NK-2026-999"
    broken["SUPPAE"] = broken["SUPPAE"].drop(columns=["QORIG"])
    found = {(f.dataset, f.variable, f.row, f.message) for f in validate_sdtm(broken)}
    assert found == {
        ("DM", "SEX", 1, "'X' is not in codelist SEX"),
        ("DM", "COUNTRY", 2, "Req variable has no value"),
        ("AE", "AEDECOD", 1, "Req variable has no value"),
        ("EX", "EXSEQ", None, "not unique within USUBJID"),
        ("LB", "LBDTC", 1, "'27/02/2026' is not ISO 8601"),
        ("RS", "USUBJID", 1, "NB-NK-2026-999 is not in DM"),
        ("SUPPAE", "QORIG", None, "Req variable is missing"),
    }
    with pytest.raises(OutcomeError) as caught:
        require_valid(broken)
    assert caught.value.where == "SDTMIG v3.4"
    assert caught.value.reason.startswith("7 SDTM conformance problem(s):")


def test_an_uncoded_adverse_event_is_not_exported_silently(events: EventTable) -> None:
    # CTCAE "Fever" is a MedDRA lowest level term; the preferred term is never guessed.
    aes = validate_adverse_events(
        [{"patient_id": "001", "term": "Fever", "grade": 1, "onset": "2026-03-05"}], events
    )
    datasets = sdtm_datasets(STUDY, events, aes=aes)
    assert [str(f) for f in validate_sdtm(datasets)] == ["AE.AEDECOD row 1: Req variable has no value"]


def test_codelists_hold_the_values_the_mappings_produce() -> None:
    from trialdesk.outcomes import export_sdtm

    assert set(export_sdtm._OUTCOME.values()) == CODELISTS["OUT"]
    assert set(export_sdtm._ACTION.values()) == CODELISTS["ACN"]
    assert set(export_sdtm._ROUTE.values()) == CODELISTS["ROUTE"]


# --- FHIR -----------------------------------------------------------------------------------


def test_fhir_bundle_round_trips_through_the_library(
    events: EventTable, aes: AdverseEvents, measurements: Measurements
) -> None:
    bundle = fhir_bundle(
        STUDY,
        events,
        title="NB-NK-2026 title",
        nct_id="NCT07375563",
        conditions=("Neuroblastoma",),
        arm_labels={"A": "Arm A", "B": "Arm B"},
        aes=aes,
        measurements=measurements,
    )
    data = bundle_json(bundle)
    parsed = parse_bundle(data)
    assert parsed.model_dump_json() == bundle.model_dump_json()
    kinds = [e.resource.get_resource_type() for e in parsed.entry]
    assert kinds.count("ResearchStudy") == 1
    assert kinds.count("Patient") == 2 and kinds.count("ResearchSubject") == 2
    assert kinds.count("AdverseEvent") == 2
    assert kinds.count("Observation") == 2  # one best response, one time-point response
    doc = json.loads(data)
    assert doc["resourceType"] == "Bundle" and doc["type"] == "collection"
    by_type: dict[str, list[dict]] = {}
    for entry in doc["entry"]:
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    study = by_type["ResearchStudy"][0]
    assert [i["value"] for i in study["identifier"]] == ["NB-NK-2026", "NCT07375563"]
    assert [g["linkId"] for g in study["comparisonGroup"]] == ["A", "B"]
    subject = by_type["ResearchSubject"][1]
    assert subject["assignedComparisonGroup"] == "B"
    assert subject["period"] == {"start": "2026-03-10", "end": "2026-06-01"}
    assert subject["subject"]["reference"] == full_url("Patient", "NB-NK-2026-002")
    fever, sepsis = by_type["AdverseEvent"]
    grade = fever["extension"][0]
    assert grade["url"] == AE_GRADE_EXTENSION
    assert grade["valueCodeableConcept"]["coding"][0]["code"] == GRADE_CONCEPTS[3][0] == "C41340"
    assert fever["seriousness"]["coding"][0]["code"] == "serious"
    assert [s["instanceCodeableConcept"]["text"] for s in fever["suspectEntity"]] == [
        "dinutuximab beta",
        "autologous NK cells",
    ]
    assert sepsis["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "C48275"
    # CTCAE v5.0 term list: Sepsis = MedDRA 10040047, NCIt C143827
    assert sepsis["code"]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/mdr",
        "version": "20.1",
        "code": "10040047",
        "display": "Sepsis",
    }
    assert sepsis["code"]["coding"][1]["code"] == "C143827"
    observations = {o["code"]["text"]: o for o in by_type["Observation"]}
    assert observations["Best overall response"]["valueCodeableConcept"]["text"] == "PR"
    assert observations["Overall response at time point"]["effectiveDateTime"] == "2026-04-12"
    assert observations["Best overall response"]["method"]["text"] == "INRC 2017"


def test_the_parser_refuses_what_fhir_r5_does_not_allow() -> None:
    bad = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "AdverseEvent", "status": "completed", "actuality": "actual"}}
        ],
    }
    with pytest.raises(OutcomeError):  # AdverseEvent.subject is required
        parse_bundle(json.dumps(bad).encode())
    bad["entry"][0]["resource"] = {
        "resourceType": "ResearchSubject",
        "status": "not-a-status",
        "study": {"reference": "ResearchStudy/x"},
        "subject": {"reference": "Patient/y"},
        "unknownField": 1,
    }
    with pytest.raises(OutcomeError):
        parse_bundle(json.dumps(bad).encode())
