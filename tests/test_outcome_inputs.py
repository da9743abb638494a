"""The outcome inputs besides the event table: adverse events, tumour measurements,
exposure and labs. Each bad record is named, every problem at once, nothing returned."""

from __future__ import annotations

import doctest

import pandas as pd
import pytest

from trialdesk.outcomes import inputs as inputs_module
from trialdesk.outcomes.events import EventTable, RowProblem, validate_event_table
from trialdesk.outcomes.inputs import (
    InputError,
    validate_adverse_events,
    validate_exposure,
    validate_labs,
    validate_measurements,
)


@pytest.fixture
def events() -> EventTable:
    return validate_event_table(
        pd.DataFrame(
            {
                "patient_id": ["P1", "P2"],
                "arm": ["A", "B"],
                "enrolment_date": ["2026-01-10", "2026-01-20"],
                "death_date": [None, "2026-03-01"],
                "last_contact_date": ["2026-06-01", None],
            }
        ),
        arms=["A", "B"],
    )


def problems(exc: pytest.ExceptionInfo[InputError]) -> list[tuple[int | None, str | None, str | None, str]]:
    return [(p.row, p.patient_id, p.column, p.reason) for p in exc.value.problems]


def test_doctests() -> None:
    assert doctest.testmod(inputs_module).failed == 0


# --- adverse events ----------------------------------------------------------------------


def test_adverse_events_keep_course_and_order(events: EventTable) -> None:
    aes = validate_adverse_events(
        {
            "adverse_events": [
                {
                    "patient_id": "P1",
                    "course": 2,
                    "term": "capillary leak syndrome",
                    "grade": 3,
                    "onset": "2026-02-01",
                    "seriousness": ["hospitalisation"],
                    "attributions": [{"agent": "dinutuximab beta", "attribution": "probable"}],
                },
                {"patient_id": "P2", "term": "Fever", "grade": 1, "onset": "2026-02-02"},
            ]
        },
        events,
    )
    assert [(r.patient_id, r.course, r.event.term) for r in aes.records] == [
        ("P1", 2, "Capillary leak syndrome"),
        ("P2", None, "Fever"),
    ]
    frame = aes.frame
    assert frame["related_agents"].tolist() == [("dinutuximab beta",), ()]
    assert frame["serious"].tolist() == [True, False]
    assert str(frame["course"].dtype) == "Int64"


def test_trial_events_document_of_the_stopping_check_is_read_too(events: EventTable) -> None:
    aes = validate_adverse_events(
        {
            "trial": "NB-NK-2026",
            "events": [
                {
                    "patient_id": "P1",
                    "arm": "A",
                    "event": {"term": "Pain", "grade": 2, "onset": "2026-02-01"},
                },
            ],
        },
        events,
    )
    assert (aes.records[0].patient_id, aes.records[0].event.grade) == ("P1", 2)


def test_every_bad_adverse_event_is_named(events: EventTable) -> None:
    with pytest.raises(InputError) as caught:
        validate_adverse_events(
            [
                {"patient_id": "P9", "term": "Pain", "grade": 2, "onset": "2026-02-01"},
                {"patient_id": "P1", "term": "Pain", "grade": 4, "onset": "2026-02-01"},
                {"patient_id": "P1", "course": 0, "term": "Fever", "grade": 1, "onset": "2026-02-01"},
                {"patient_id": "P1", "term": "Fever", "grade": 1, "onset": "2026-01-01"},
                {"patient_id": "P2", "term": "Fever", "grade": 1, "onset": "2026-03-02"},
                {"term": "Fever", "grade": 1, "onset": "2026-02-01"},
                "not an object",
            ],
            events,
            where="aes.json",
        )
    found = problems(caught)
    assert found[0] == (1, "P9", "patient_id", "patient 'P9' is not in the event table")
    assert found[1][:3] == (2, "P1", "grade") and found[1][3].startswith("grade 4 does not exist for 'Pain'")
    assert found[2] == (3, "P1", "course", "must be a whole number from 1, got 0")
    assert found[3] == (4, "P1", "onset", "2026-01-01 is before enrolment_date 2026-01-10")
    assert found[4] == (5, "P2", "onset", "2026-03-02 is after death_date 2026-03-01")
    assert found[5] == (6, None, "patient_id", "missing value")
    assert found[6] == (7, None, None, "expected an object")
    assert caught.value.where == "aes.json"
    assert str(caught.value).startswith("aes.json: 7 problems:")


def test_adverse_event_document_shape_is_checked() -> None:
    with pytest.raises(InputError) as caught:
        validate_adverse_events({"events_typo": []})
    assert caught.value.problems == (RowProblem(None, None, "adverse_events", "required key is missing"),)
    with pytest.raises(InputError):
        validate_adverse_events("[]")


# --- tumour measurements ------------------------------------------------------------------


def test_best_change_is_the_lowest_post_baseline_sum(events: EventTable) -> None:
    m = validate_measurements(
        pd.DataFrame(
            {
                "patient_id": ["P1", "P1", "P1", "P2", "P2"],
                "assessment_date": ["2026-03-01", "2026-01-08", "2026-02-15", "2026-01-18", "2026-02-20"],
                "sum_diameters_mm": ["44", "80", "52", "0", "0"],
                "overall_response": ["pr", None, "SD", None, "CR"],
            }
        ),
        events,
    )
    # Sorted by date: P1's baseline is 2026-01-08 (80 mm); best is 44 mm = -45%.
    assert m.frame["baseline"].tolist() == [True, False, False, True, False]
    assert m.frame["overall_response"].tolist()[1:3] == ["SD", "PR"]
    best = m.best_change().set_index("patient_id")
    assert best.loc["P1", "best_pct_change"] == pytest.approx(-45.0)
    assert pd.isna(best.loc["P2", "best_pct_change"])
    assert best.loc["P2", "reason"] == "baseline sum is 0 mm: no measurable target"


def test_bad_measurements_are_all_named(events: EventTable) -> None:
    with pytest.raises(InputError) as caught:
        validate_measurements(
            pd.DataFrame(
                {
                    "patient_id": ["P1", "P1", "P1", "P7", "P1"],
                    "assessment_date": ["2026-01-08", "2026-01-08", "08/02/2026", "2026-01-08", "2026-03-01"],
                    "sum_diameters_mm": ["40", "41", "30", "10", "-3"],
                    "overall_response": [None, None, "VGPR", None, None],
                }
            ),
            events,
        )
    assert problems(caught) == [
        (2, "P1", "assessment_date", "2026-01-08 is already given for this patient in row 1"),
        (3, "P1", "assessment_date", "not an ISO 8601 date: '08/02/2026'"),
        (
            3,
            "P1",
            "overall_response",
            "unknown response 'VGPR' (expected one of CR, MR, NE, NON-CR/NON-PD, PD, PR, SD)",
        ),
        (4, "P7", "patient_id", "patient 'P7' is not in the event table"),
        (5, "P1", "sum_diameters_mm", "must not be negative, got -3"),
    ]


def test_measurement_columns_are_required() -> None:
    with pytest.raises(InputError) as caught:
        validate_measurements(pd.DataFrame({"patient_id": ["P1"]}))
    assert [p.column for p in caught.value.problems] == ["assessment_date", "sum_diameters_mm"]


# --- exposure and labs -------------------------------------------------------------------


def test_exposure_courses_take_the_first_start(events: EventTable) -> None:
    x = validate_exposure(
        pd.DataFrame(
            {
                "patient_id": ["P1", "P1", "P1"],
                "course": ["1", "1", "2"],
                "course_id": ["IT", "IT", "DIT"],
                "agent": ["temozolomide", "irinotecan", "irinotecan"],
                "start_date": ["2026-01-12", "2026-01-11", "2026-02-01"],
                "end_date": ["2026-01-16", "2026-01-15", None],
                "dose": ["100", None, "50.5"],
            }
        ),
        events,
    )
    courses = x.courses()
    assert courses[["course", "course_id"]].values.tolist() == [[1, "IT"], [2, "DIT"]]
    assert courses.loc[0, "start_date"] == pd.Timestamp("2026-01-11")
    assert x.frame["dose"].isna().tolist() == [True, False, False]  # sorted by agent within course


def test_bad_exposure_rows(events: EventTable) -> None:
    with pytest.raises(InputError) as caught:
        validate_exposure(
            pd.DataFrame(
                {
                    "patient_id": ["P1", "P1", "P1"],
                    "course": ["0", "1.5", "2"],
                    "agent": ["x", None, "y"],
                    "start_date": ["2026-01-12", "2026-01-12", "2026-02-10"],
                    "end_date": [None, None, "2026-02-01"],
                    "dose": [None, "abc", None],
                }
            ),
            events,
        )
    assert problems(caught) == [
        (1, "P1", "course", "courses are numbered from 1"),
        (2, "P1", "course", "not a whole number: '1.5'"),
        (2, "P1", "agent", "missing value"),
        (2, "P1", "dose", "not a number: 'abc'"),
        (3, "P1", "end_date", "2026-02-01 is before start_date 2026-02-10"),
    ]


def test_labs_check_codes_limits_and_grades(events: EventTable) -> None:
    labs = validate_labs(
        pd.DataFrame(
            {
                "patient_id": ["P1"],
                "date": ["2026-01-12"],
                "test_code": ["NEUT"],
                "test": ["Neutrophils"],
                "value": ["0.8"],
                "unit": ["10^9/L"],
                "lower_limit": ["1.5"],
                "upper_limit": ["7"],
                "toxicity_grade": ["3"],
            }
        ),
        events,
    )
    assert labs.frame.loc[0, "toxicity_grade"] == 3
    with pytest.raises(InputError) as caught:
        validate_labs(
            pd.DataFrame(
                {
                    "patient_id": ["P1"],
                    "date": ["2026-01-12"],
                    "test_code": ["NEUTROPHILS"],
                    "test": ["N"],
                    "value": ["0.8"],
                    "unit": ["10^9/L"],
                    "lower_limit": ["8"],
                    "upper_limit": ["7"],
                    "toxicity_grade": ["6"],
                }
            ),
            events,
        )
    assert [p.column for p in caught.value.problems] == ["test_code", "lower_limit", "toxicity_grade"]
