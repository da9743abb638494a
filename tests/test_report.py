"""The DSMB report: each table from a small hand-built trial, then the PDF itself (page
count and extracted text, read back with pypdf)."""

from __future__ import annotations

import io
from datetime import date

import pandas as pd
import pytest
from pypdf import PdfReader

from trialdesk.errors import OutcomeError
from trialdesk.outcomes.events import EventTable, validate_event_table
from trialdesk.outcomes.inputs import (
    AdverseEvents,
    validate_adverse_events,
    validate_exposure,
    validate_measurements,
)
from trialdesk.outcomes.report import (
    DsmbInputs,
    ae_grade_table,
    ae_relation_table,
    data_cutoff,
    death_listing,
    dsmb_pdf,
    enrolment_table,
    exposure_table,
    parse_stopping_rules,
    proportion_table,
    protocol_stopping_status,
    response_table,
    sae_listing,
    stopping_status,
    survival_table,
)
from trialdesk.outcomes.summary import EndpointChoice, summarise
from trialdesk.safety.stopping import StoppingRule

# P1 (A): PR, progression day 60, died day 120 of sepsis (grade 5, related: possible).
# P2 (A): CR, alive. P3 (B): SD, alive. P4 (B): no assessment, alive.
EVENTS = pd.DataFrame(
    {
        "patient_id": ["P1", "P2", "P3", "P4"],
        "arm": ["A", "A", "B", "B"],
        "enrolment_date": ["2026-01-01", "2026-01-15", "2026-02-01", "2026-02-10"],
        "best_response": ["PR", "CR", "SD", None],
        "response_criteria": ["INRC", "INRC", "INRC", None],
        "first_cr_date": [None, "2026-03-15", None, None],
        "progression_date": ["2026-03-02", None, None, None],
        "death_date": ["2026-05-01", None, None, None],
        "last_contact_date": ["2026-04-20", "2026-12-31", "2026-12-31", "2026-11-30"],
    }
)
AES = [
    {
        "patient_id": "P1",
        "course": 1,
        "term": "Pain",
        "grade": 2,
        "onset": "2026-01-03",
        "attributions": [{"agent": "dinutuximab beta", "attribution": "probable"}],
    },
    {
        "patient_id": "P1",
        "course": 1,
        "term": "Pain",
        "grade": 3,
        "onset": "2026-01-05",
        "attributions": [
            {"agent": "dinutuximab beta", "attribution": "definite"},
            {"agent": "irinotecan", "attribution": "unlikely"},
        ],
    },
    {
        "patient_id": "P1",
        "term": "Sepsis",
        "grade": 5,
        "onset": "2026-04-29",
        "outcome": "fatal",
        "seriousness": ["death"],
        "attributions": [{"agent": "irinotecan", "attribution": "possible"}],
    },
    {"patient_id": "P2", "course": 2, "term": "Pain", "grade": 1, "onset": "2026-02-10"},
    {
        "patient_id": "P3",
        "course": 1,
        "term": "Capillary leak syndrome",
        "grade": 4,
        "onset": "2026-02-05",
        "seriousness": ["life_threatening", "hospitalisation"],
        "outcome": "recovered",
        "attributions": [{"agent": "dinutuximab beta", "attribution": "probable"}],
    },
]


@pytest.fixture
def events() -> EventTable:
    return validate_event_table(EVENTS, arms=["A", "B"])


@pytest.fixture
def aes(events: EventTable) -> AdverseEvents:
    return validate_adverse_events(AES, events)


def test_enrolment_table(events: EventTable) -> None:
    table = enrolment_table(events).set_index("arm")
    assert table.loc["A", ["patients", "deaths", "alive"]].tolist() == [2, 1, 1]
    assert table.loc["all", "first enrolment"] == "2026-01-01"
    assert table.loc["all", "last enrolment"] == "2026-02-10"
    # Alive patients' follow-up: P2 350 d, P3 333 d, P4 293 d → median 333 d = 10.9 months.
    assert table.loc["all", "median follow-up of alive (mo)"] == "10.9"


def test_ae_grade_table_counts_each_patient_once_at_the_worst_grade(
    events: EventTable, aes: AdverseEvents
) -> None:
    table = ae_grade_table(aes, events).set_index("term")
    # Pain: P1 worst grade 3, P2 grade 1 (arm A); nobody in arm B.
    assert table.loc["Pain", ["A G1", "A G2", "A G3", "A any", "A ≥G3", "B any"]].tolist() == [
        1,
        0,
        1,
        2,
        1,
        0,
    ]
    assert table.loc["Capillary leak syndrome", ["B G4", "B any", "B ≥G3"]].tolist() == [1, 1, 1]
    assert table.loc["Sepsis", "A G5"] == 1
    # Any AE: P1 worst 5, P2 worst 1; P3 worst 4.
    assert table.loc["Any adverse event", ["A G1", "A G5", "A any", "B G4", "B any"]].tolist() == [
        1,
        1,
        2,
        1,
        1,
    ]
    assert table.index[0] == "Pain"  # most patients first


def test_ae_relation_table_per_agent(aes: AdverseEvents) -> None:
    table = ae_relation_table(aes).set_index(["term", "agent"])
    assert table.loc[
        ("Pain", "dinutuximab beta"), ["events", "related", "not related", "not assessed"]
    ].tolist() == [3, 2, 0, 1]
    assert table.loc[("Pain", "irinotecan"), ["related", "not related", "not assessed"]].tolist() == [0, 1, 2]
    assert table.loc[("Sepsis", "irinotecan"), "related"] == 1
    assert ("Sepsis", "dinutuximab beta") not in table.index


def test_sae_and_death_listings(events: EventTable, aes: AdverseEvents) -> None:
    saes = sae_listing(aes, events)
    assert saes[["patient", "term", "grade"]].values.tolist() == [
        ["P1", "Sepsis", 5],
        ["P3", "Capillary leak syndrome", 4],
    ]
    assert saes.loc[1, "criteria"] == "hospitalisation, life threatening"
    assert saes.loc[0, "suspected agents"] == "irinotecan"
    deaths = death_listing(events, aes)
    assert deaths.values.tolist() == [["P1", "A", "2026-05-01", 120, "yes", "Sepsis"]]


def test_response_and_exposure_tables(events: EventTable) -> None:
    table = response_table(events).set_index("arm")
    assert table.loc["A", ["CR", "PR", "not assessed"]].tolist() == [1, 1, 0]
    assert table.loc["B", ["SD", "not assessed", "criteria"]].tolist() == [1, 1, "INRC"]
    exposure = validate_exposure(
        pd.DataFrame(
            {
                "patient_id": ["P1", "P1", "P1", "P2"],
                "course": ["1", "1", "2", "1"],
                "agent": ["irinotecan", "temozolomide", "irinotecan", "irinotecan"],
                "start_date": ["2026-01-02", "2026-01-02", "2026-01-23", "2026-01-16"],
            }
        ),
        events,
    )
    rows = exposure_table(exposure, events).set_index(["arm", "agent"])
    assert rows.loc[("A", "any agent"), ["patients", "courses given"]].tolist() == [2, 3]
    assert rows.loc[("A", "irinotecan"), "courses per patient, median (range)"] == "1.5 (1–2)"
    assert rows.loc[("B", "any agent"), "patients"] == 0


def test_count_based_stopping_rules(events: EventTable, aes: AdverseEvents) -> None:
    rules = parse_stopping_rules(
        {
            "rules": [
                {"name": "Deaths", "count": "deaths", "threshold": 1, "source": "test"},
                {"name": "Related deaths", "count": "deaths_related", "threshold": 1, "source": "test"},
                {
                    "name": "Grade 4+ CLS",
                    "count": "patients_with_ae",
                    "terms": ["capillary leak syndrome"],
                    "min_grade": 4,
                    "threshold": 2,
                    "source": "test",
                    "unconfirmed": True,
                },
                {
                    "name": "Related serious grade 3+",
                    "count": "patients_with_ae",
                    "min_grade": 3,
                    "serious_only": True,
                    "related_only": True,
                    "threshold": 2,
                    "source": "test",
                },
            ]
        }
    )
    table = stopping_status(rules, events, aes)
    assert table[["count", "threshold", "status", "patients"]].values.tolist() == [
        [1, 1, "triggered", "P1"],
        [1, 1, "triggered", "P1"],
        [1, 2, "not triggered", "P3"],
        [2, 2, "triggered", "P1, P3"],
    ]
    assert table.loc[2, "rule"] == "Grade 4+ CLS [unconfirmed]"
    with pytest.raises(OutcomeError, match="rule 1: threshold"):
        parse_stopping_rules([{"name": "x", "count": "deaths", "threshold": 0, "source": "s"}])


def test_protocol_stopping_rules_run_through_the_safety_module(
    events: EventTable, aes: AdverseEvents
) -> None:
    rule = StoppingRule.model_validate(
        {
            "id": "SR1",
            "title": "Treatment-related death",
            "min_grade": 5,
            "related_only": True,
            "threshold": {"value": 1, "source": "test"},
            "source": "test protocol",
        }
    )
    table = protocol_stopping_status([rule], aes, events)
    assert table.loc[0, ["rule", "count", "threshold", "status", "patients"]].tolist() == [
        "SR1: Treatment-related death",
        1,
        "1",
        "triggered",
        "P1",
    ]


def test_rates_and_survival_tables(events: EventTable) -> None:
    summary = summarise(events, EndpointChoice(("ORR", "OS")), trial="T", time_unit="months", landmarks=[6.0])
    rates = proportion_table(summary).set_index("arm")
    assert rates.loc["A", "count / denominator"] == "2 / 2"
    assert rates.loc["B", "count / denominator"] == "0 / 2"
    assert rates.loc["all", "rate"] == "50%"
    surv = survival_table(summary).set_index("arm")
    assert surv.loc["A", "events"] == 1
    assert surv.loc["B", "median (95% CI)"].startswith("not reached")
    assert surv.loc["B", "at 6 mo"].startswith("100%")


def test_cutoff_is_the_latest_date_in_the_data(events: EventTable, aes: AdverseEvents) -> None:
    assert data_cutoff(events) == date(2026, 12, 31)
    assert data_cutoff(events, aes) == date(2026, 12, 31)


def test_the_pdf_has_every_section_and_its_tables(events: EventTable, aes: AdverseEvents) -> None:
    measurements = validate_measurements(
        pd.DataFrame(
            {
                "patient_id": ["P1", "P1", "P2", "P2"],
                "assessment_date": ["2025-12-30", "2026-02-10", "2026-01-13", "2026-03-15"],
                "sum_diameters_mm": ["40", "24", "30", "0"],
                "overall_response": [None, "PR", None, "CR"],
            }
        ),
        events,
    )
    summary = summarise(events, EndpointChoice(("ORR", "OS", "PFS")), trial="NB-TEST", time_unit="months")
    stopping = stopping_status(
        parse_stopping_rules([{"name": "Deaths", "count": "deaths", "threshold": 1, "source": "test"}]),
        events,
        aes,
    )
    pdf = dsmb_pdf(
        DsmbInputs(
            trial="NB-TEST",
            title="A test trial",
            events=events,
            summary=summary,
            aes=aes,
            measurements=measurements,
            stopping=stopping,
            cutoff=date(2027, 1, 1),
            sources=("events: events.csv",),
        )
    )
    reader = PdfReader(io.BytesIO(pdf))
    # Cover, 10 table pages (exposure is a note page), OS and PFS curves, swimmer,
    # waterfall, AE heat-map.
    assert len(reader.pages) == 16
    text = [page.extract_text() for page in reader.pages]
    assert "NB-TEST: report to the Data and Safety Monitoring Board" in text[0]
    assert "Data cut-off: 2027-01-01" in text[0]
    assert "No exposure file was given." in text[2]
    whole = "\n".join(text)
    for needle in (
        "3. Adverse events by term and worst grade",
        "Capillary leak syndrome 0 0 0 0 0 0 0 0 0 0 1 0 1 1",
        "4. Adverse events by relation to each agent",
        "5. Serious adverse events",
        "life threatening",
        "6. Deaths",
        "7. Stopping rules",
        "8. Best overall response",
        "9. Response and mortality rates",
        "ORR A 2 / 2 100%",
        "10. Survival",
        "OS — NB-TEST",
        "PFS — NB-TEST",
        "Time on study — NB-TEST",
        "Best change in tumour size — NB-TEST",
        "Adverse events: patients by term, grade and course",
    ):
        assert needle in whole, needle
    assert (
        reader.metadata is not None
        and reader.metadata.title == "NB-TEST DSMB report, data cut-off 2027-01-01"
    )
    assert dsmb_pdf(
        DsmbInputs(
            trial="NB-TEST", title="A test trial", events=events, summary=summary, cutoff=date(2027, 1, 1)
        )
    ) == dsmb_pdf(
        DsmbInputs(
            trial="NB-TEST", title="A test trial", events=events, summary=summary, cutoff=date(2027, 1, 1)
        )
    )


def test_long_tables_continue_on_more_pages(events: EventTable) -> None:
    many = validate_event_table(
        pd.DataFrame(
            {
                "patient_id": [f"P{i:02d}" for i in range(40)],
                "arm": ["A"] * 40,
                "enrolment_date": ["2026-01-01"] * 40,
                "death_date": ["2026-02-01"] * 40,
            }
        ),
        arms=["A"],
    )
    summary = summarise(many, EndpointChoice(("OS",)), trial="T", time_unit="days")
    text = "\n".join(
        p.extract_text()
        for p in PdfReader(
            io.BytesIO(dsmb_pdf(DsmbInputs(trial="T", title="t", events=many, summary=summary)))
        ).pages
    )
    assert "6. Deaths (continued, 2/2)" in text
    assert "P39 A 2026-02-01 31" in text
