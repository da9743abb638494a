"""Outcomes: the event table, endpoint derivation and survival statistics.

Known answers come from three places:

* R's ``survival`` package, as quoted by lifelines' own test suite
  (CamDavidsonPilon/lifelines, ``lifelines/tests/test_estimation.py`` and
  ``lifelines/tests/test_statistics.py``), on datasets that ship with lifelines. The
  numbers and tolerances below are the ones quoted there.
* Exact binomial intervals worked out independently from beta-distribution quantiles,
  and the textbook 0/10 case.
* A small event table whose every time and event is worked out by hand in comments.
"""

from __future__ import annotations

import doctest
import math
from datetime import date
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.datasets import load_dd, load_g3, load_rossi, load_waltons
from lifelines.utils import median_survival_times
from pydantic import ValidationError
from scipy.stats import beta

from trialdesk.errors import OutcomeError
from trialdesk.outcomes import endpoints as endpoints_module
from trialdesk.outcomes import events as events_module
from trialdesk.outcomes import survival as survival_module
from trialdesk.outcomes.endpoints import (
    EndpointDefinitions,
    clopper_pearson,
    event_free_survival,
    objective_response_rate,
    overall_survival,
    progression_free_survival,
    relapse_free_survival,
    short_term_mortality,
)
from trialdesk.outcomes.events import (
    EventTable,
    EventTableError,
    RowProblem,
    read_event_table,
    validate_event_table,
)
from trialdesk.outcomes.survival import cox_ph, kaplan_meier, logrank

DAYS_PER_MONTH = 365.25 / 12
ARMS = ["A", "B"]

# The hand-built trial. Day counts are from enrolment (or from first CR for RFS).
#
# P01 A  enrolled 2026-01-01, CR (INRC) 2026-03-02, relapse 2026-07-01 (day 181),
#        died 2026-12-27 (day 360), last contact 2026-12-01.
# P02 A  enrolled 2026-01-01, PR (INRC), progression 2026-04-11 (day 100),
#        alive at last contact 2026-09-28 (day 270).
# P03 A  enrolled 2026-02-01, SD (INRC), died 2026-02-15 (day 14).
# P04 B  enrolled 2026-03-01, NE (RECIST), alive at last contact 2026-03-21 (day 20).
# P05 B  enrolled 2026-03-01, CR (RECIST) 2026-05-01, second malignancy 2026-11-26
#        (day 270), alive at last contact 2027-03-01 (day 365).
# P06 B  enrolled 2026-03-01, PD (RECIST), progression and death the same day,
#        2026-03-29 (day 28); no last contact recorded.
# P07 A  enrolled 2026-01-15, CR (INRC) 2026-04-15 (day 90), died without relapse
#        2026-06-14 (day 150), last contact 2026-06-01.
HAND_BUILT = [
    {
        "patient_id": "P01",
        "arm": "A",
        "enrolment_date": "2026-01-01",
        "best_response": "CR",
        "response_criteria": "INRC",
        "first_cr_date": "2026-03-02",
        "relapse_date": "2026-07-01",
        "death_date": "2026-12-27",
        "last_contact_date": "2026-12-01",
        "fcgr_genotype": "HH",
    },
    {
        "patient_id": "P02",
        "arm": "A",
        "enrolment_date": "2026-01-01",
        "best_response": "PR",
        "response_criteria": "INRC",
        "progression_date": "2026-04-11",
        "last_contact_date": "2026-09-28",
        "fcgr_genotype": "HR",
    },
    {
        "patient_id": "P03",
        "arm": "A",
        "enrolment_date": "2026-02-01",
        "best_response": "SD",
        "response_criteria": "INRC",
        "death_date": "2026-02-15",
        "last_contact_date": "2026-02-10",
        "fcgr_genotype": "RR",
    },
    {
        "patient_id": "P04",
        "arm": "B",
        "enrolment_date": "2026-03-01",
        "best_response": "NE",
        "response_criteria": "RECIST",
        "last_contact_date": "2026-03-21",
        "fcgr_genotype": "HH",
    },
    {
        "patient_id": "P05",
        "arm": "B",
        "enrolment_date": "2026-03-01",
        "best_response": "CR",
        "response_criteria": "RECIST",
        "first_cr_date": "2026-05-01",
        "second_malignancy_date": "2026-11-26",
        "last_contact_date": "2027-03-01",
        "fcgr_genotype": "HR",
    },
    {
        "patient_id": "P06",
        "arm": "B",
        "enrolment_date": "2026-03-01",
        "best_response": "PD",
        "response_criteria": "RECIST",
        "progression_date": "2026-03-29",
        "death_date": "2026-03-29",
        "fcgr_genotype": "RR",
    },
    {
        "patient_id": "P07",
        "arm": "A",
        "enrolment_date": "2026-01-15",
        "best_response": "CR",
        "response_criteria": "INRC",
        "first_cr_date": "2026-04-15",
        "death_date": "2026-06-14",
        "last_contact_date": "2026-06-01",
        "fcgr_genotype": "HH",
    },
]


@pytest.fixture
def trial() -> EventTable:
    return validate_event_table(pd.DataFrame(HAND_BUILT), arms=ARMS)


def derivation(table: pd.DataFrame) -> list[tuple[str, str, bool, str, int]]:
    """The hand-checkable part of a time-to-event derivation."""
    return [
        (r.patient_id, r.end_date.date().isoformat(), bool(r.event), r.reason, int(r.time_days))
        for r in table.itertuples()
    ]


def problems_of(frame: pd.DataFrame, arms: list[str] | None = ARMS) -> list[RowProblem]:
    with pytest.raises(EventTableError) as caught:
        validate_event_table(frame, arms=arms)
    return list(caught.value.problems)


def one_patient(**changes: object) -> pd.DataFrame:
    row: dict[str, object] = {
        "patient_id": "P01",
        "arm": "A",
        "enrolment_date": "2026-01-10",
        "last_contact_date": "2026-06-01",
    }
    row.update(changes)
    return pd.DataFrame([row])


# --- event table ---------------------------------------------------------------------


def test_valid_table_is_normalised(trial: EventTable) -> None:
    frame = trial.frame
    assert trial.arms == ("A", "B")
    assert trial.stratification_columns == ("fcgr_genotype",)
    assert len(trial) == 7
    for column in ("enrolment_date", "relapse_date", "death_date", "last_contact_date"):
        assert pd.api.types.is_datetime64_any_dtype(frame[column])
    assert frame.loc[0, "relapse_date"] == pd.Timestamp("2026-07-01")
    assert pd.isna(frame.loc[1, "death_date"])
    assert frame["fcgr_genotype"].tolist() == ["HH", "HR", "RR", "HH", "HR", "RR", "HH"]


def test_optional_columns_may_be_absent_and_values_are_tidied() -> None:
    table = validate_event_table(
        one_patient(
            best_response=" pr ", response_criteria="recist", enrolment_date=date(2026, 1, 10)
        )
    )
    assert table.arms == ("A",)
    assert table.frame.loc[0, "best_response"] == "PR"
    assert table.frame.loc[0, "response_criteria"] == "RECIST"
    assert table.frame.loc[0, "enrolment_date"] == pd.Timestamp("2026-01-10")
    assert pd.isna(table.frame.loc[0, "second_malignancy_date"])  # added, all missing


def test_missing_required_columns_are_all_listed() -> None:
    problems = problems_of(pd.DataFrame({"arm": ["A"], "death_date": ["2026-01-01"]}))
    assert problems == [
        RowProblem(None, None, "patient_id", "required column is missing"),
        RowProblem(None, None, "enrolment_date", "required column is missing"),
    ]


def test_misspelt_date_column_is_refused() -> None:
    (problem,) = problems_of(one_patient(progresion_date="2026-02-01"))
    assert (problem.row, problem.column) == (None, "progresion_date")
    assert problem.reason.startswith("unknown date column")


BAD_ROWS = [
    pytest.param(
        {"death_date": "2026-01-05", "last_contact_date": None},
        [("death_date", "2026-01-05 is before enrolment_date 2026-01-10")],
        id="death-before-enrolment",
    ),
    pytest.param(
        {"progression_date": "2026-03-02", "death_date": "2026-03-01", "last_contact_date": None},
        [("progression_date", "2026-03-02 is after death_date 2026-03-01")],
        id="progression-after-death",
    ),
    pytest.param(
        {"last_contact_date": "2026-01-09"},
        [("last_contact_date", "2026-01-09 is before enrolment_date 2026-01-10")],
        id="last-contact-before-enrolment",
    ),
    pytest.param(
        {"last_contact_date": "2026-03-02", "death_date": "2026-03-01"},
        [("last_contact_date", "2026-03-02 is after death_date 2026-03-01")],
        id="last-contact-after-death",
    ),
    pytest.param(
        {"progression_date": "2026-06-02"},
        [("progression_date", "2026-06-02 is after last_contact_date 2026-06-01")],
        id="progression-after-last-contact",
    ),
    pytest.param(
        {
            "best_response": "CR",
            "response_criteria": "INRC",
            "first_cr_date": "2026-03-01",
            "relapse_date": "2026-02-01",
        },
        [("relapse_date", "2026-02-01 is before first_cr_date 2026-03-01")],
        id="relapse-before-cr",
    ),
    pytest.param(
        {"arm": "C"},
        [("arm", "unknown arm 'C' (allowed: A, B)")],
        id="unknown-arm",
    ),
    pytest.param(
        {"death_date": "31/01/2026"},
        [("death_date", "not an ISO 8601 date: '31/01/2026'")],
        id="unparseable-date",
    ),
    pytest.param(
        {"enrolment_date": None},
        [("enrolment_date", "missing value")],
        id="missing-enrolment",
    ),
    pytest.param(
        {"arm": " "},
        [("arm", "missing value")],
        id="blank-arm",
    ),
    pytest.param(
        {"last_contact_date": None},
        [("last_contact_date", "missing value: needed when the patient is not known dead")],
        id="alive-without-last-contact",
    ),
    pytest.param(
        {"best_response": "MR", "response_criteria": "RECIST"},
        [("best_response", "MR is not a RECIST overall response")],
        id="mr-is-not-recist",
    ),
    pytest.param(
        {"best_response": "VGPR", "response_criteria": "INRC"},
        [("best_response", "unknown response 'VGPR' (expected one of CR, MR, NE, PD, PR, SD)")],
        id="unknown-response",
    ),
    pytest.param(
        {"best_response": "PR"},
        [("response_criteria", "missing value: a best_response needs its criteria")],
        id="response-without-criteria",
    ),
    pytest.param(
        {"best_response": "PR", "response_criteria": "WHO"},
        [("response_criteria", "unknown criteria 'WHO' (expected INRC or RECIST)")],
        id="unknown-criteria",
    ),
    pytest.param(
        {"best_response": "CR", "response_criteria": "INRC"},
        [("first_cr_date", "missing value: best_response is CR")],
        id="cr-without-date",
    ),
    pytest.param(
        {"best_response": "PR", "response_criteria": "INRC", "first_cr_date": "2026-03-01"},
        [("first_cr_date", "given but best_response is PR, not CR")],
        id="cr-date-without-cr",
    ),
]


@pytest.mark.parametrize(("changes", "expected"), BAD_ROWS)
def test_each_bad_row_is_named(changes: dict[str, object], expected: list[tuple[str, str]]) -> None:
    problems = problems_of(one_patient(**changes))
    assert [(p.row, p.patient_id, p.column, p.reason) for p in problems] == [
        (1, "P01", column, reason) for column, reason in expected
    ]


def test_look_alike_arm_names_are_flagged() -> None:
    # The NB-NK-2026 registry record writes "Arm А" with a Cyrillic А.
    (problem,) = problems_of(one_patient(arm="Arm \u0410"), arms=["Arm A", "Arm B"])
    assert problem.reason.endswith("; it contains non-ASCII characters)")


def test_missing_patient_id_is_named_by_row() -> None:
    (problem,) = problems_of(one_patient(patient_id=float("nan")))
    assert problem == RowProblem(1, None, "patient_id", "missing value")


def test_duplicate_patients_name_every_row() -> None:
    frame = pd.concat([one_patient(), one_patient(arm="B"), one_patient(patient_id="P02")])
    assert problems_of(frame) == [
        RowProblem(1, "P01", "patient_id", "duplicate patient (rows 1, 2)"),
        RowProblem(2, "P01", "patient_id", "duplicate patient (rows 1, 2)"),
    ]


def test_every_bad_row_is_listed_at_once_and_nothing_is_returned() -> None:
    frame = pd.DataFrame(HAND_BUILT)
    frame.loc[1, "death_date"] = "2025-12-31"  # P02: before enrolment
    frame.loc[3, "arm"] = "Arm C"  # P04
    frame.loc[4, "last_contact_date"] = "2027-02-30"  # P05: no such day
    frame.loc[6, "patient_id"] = "P01"  # the second P01
    with pytest.raises(EventTableError) as caught:
        validate_event_table(frame, arms=ARMS)
    error = caught.value
    assert [(p.row, p.patient_id, p.column, p.reason) for p in error.problems] == [
        (1, "P01", "patient_id", "duplicate patient (rows 1, 7)"),
        (2, "P02", "progression_date", "2026-04-11 is after death_date 2025-12-31"),
        (2, "P02", "death_date", "2025-12-31 is before enrolment_date 2026-01-01"),
        (2, "P02", "last_contact_date", "2026-09-28 is after death_date 2025-12-31"),
        (4, "P04", "arm", "unknown arm 'Arm C' (allowed: A, B)"),
        (5, "P05", "last_contact_date", "not an ISO 8601 date: '2027-02-30'"),
        (7, "P01", "patient_id", "duplicate patient (rows 1, 7)"),
    ]
    assert isinstance(error, OutcomeError)
    assert error.code == "outcome_invalid"
    assert error.where == "event table"
    assert error.reason.startswith("7 problems:")
    for problem in error.problems:
        assert str(problem) in str(error)


def test_read_event_table_keeps_identifiers_as_text(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "patient_id,arm,enrolment_date,death_date,last_contact_date,gd2_expression\n"
        "007,A,2026-01-01,,2026-02-01,high\n"
        "012,B,2026-01-02,2026-01-20,,\n"
    )
    table = read_event_table(path, arms=ARMS)
    assert table.frame["patient_id"].tolist() == ["007", "012"]
    assert table.stratification_columns == ("gd2_expression",)


def test_read_event_table_names_the_file_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("patient_id,arm,enrolment_date,last_contact_date\nP1,Z,2026-01-01,2026-02-01\n")
    with pytest.raises(EventTableError) as caught:
        read_event_table(path, arms=ARMS)
    assert caught.value.where == str(path)
    assert caught.value.problems[0].column == "arm"
    with pytest.raises(OutcomeError, match=r"expected a \.csv or \.parquet file"):
        read_event_table(tmp_path / "events.xlsx")


# --- exact binomial confidence interval ------------------------------------------------


def test_clopper_pearson_matches_beta_quantiles() -> None:
    # Clopper & Pearson (1934): lower = Beta(a/2; k, n-k+1), upper = Beta(1-a/2; k+1, n-k).
    low, high = clopper_pearson(9, 17)
    assert low == pytest.approx(beta.ppf(0.025, 9, 9), abs=1e-12)
    assert high == pytest.approx(beta.ppf(0.975, 10, 8), abs=1e-12)


def test_clopper_pearson_textbook_edges() -> None:
    # With no successes the exact upper limit has a closed form: 1 - 0.025**(1/10) = 0.3085
    # for 0 of 10; 10 of 10 mirrors it.
    assert clopper_pearson(0, 10) == (0.0, pytest.approx(0.3085, abs=5e-5))
    assert clopper_pearson(10, 10) == (pytest.approx(0.6915, abs=5e-5), 1.0)
    assert all(math.isnan(x) for x in clopper_pearson(0, 0))
    with pytest.raises(OutcomeError):
        clopper_pearson(3, 2)


# --- endpoints on the hand-built trial -----------------------------------------------


def test_overall_survival_by_hand(trial: EventTable) -> None:
    result = overall_survival(trial)
    assert derivation(result.table) == [
        ("P01", "2026-12-27", True, "death", 360),
        ("P02", "2026-09-28", False, "censored at last contact", 270),
        ("P03", "2026-02-15", True, "death", 14),
        ("P04", "2026-03-21", False, "censored at last contact", 20),
        ("P05", "2027-03-01", False, "censored at last contact", 365),
        ("P06", "2026-03-29", True, "death", 28),
        ("P07", "2026-06-14", True, "death", 150),
    ]
    npt.assert_allclose(result.table["time_months"], result.table["time_days"] / DAYS_PER_MONTH)
    assert result.table["fcgr_genotype"].tolist()[:3] == ["HH", "HR", "RR"]
    assert result.summary.to_dict(orient="index") == {
        "A": {"patients": 4, "events": 3, "censored": 1, "excluded": 0},
        "B": {"patients": 3, "events": 1, "censored": 2, "excluded": 0},
        "all": {"patients": 7, "events": 4, "censored": 3, "excluded": 0},
    }


def test_progression_free_survival_by_hand(trial: EventTable) -> None:
    # Relapse after CR is progression. P06 progressed and died the same day: the
    # disease event is reported. A second malignancy is not a PFS event (P05).
    assert derivation(progression_free_survival(trial).table) == [
        ("P01", "2026-07-01", True, "relapse", 181),
        ("P02", "2026-04-11", True, "progression", 100),
        ("P03", "2026-02-15", True, "death", 14),
        ("P04", "2026-03-21", False, "censored at last contact", 20),
        ("P05", "2027-03-01", False, "censored at last contact", 365),
        ("P06", "2026-03-29", True, "progression", 28),
        ("P07", "2026-06-14", True, "death", 150),
    ]


def test_event_free_survival_by_hand(trial: EventTable) -> None:
    # As PFS, except that P05's second malignancy on day 270 is an event.
    result = event_free_survival(trial)
    assert derivation(result.table)[4] == ("P05", "2026-11-26", True, "second_malignancy", 270)
    assert result.summary.loc["all", "events"] == 6


def test_relapse_free_survival_by_hand(trial: EventTable) -> None:
    # From first CR: P01 03-02 → relapse 07-01 is 121 days; P05 05-01 → last contact
    # 2027-03-01 is 304 days; P07 04-15 → death 06-14 is 60 days.
    result = relapse_free_survival(trial)
    assert derivation(result.table) == [
        ("P01", "2026-07-01", True, "relapse", 121),
        ("P05", "2027-03-01", False, "censored at last contact", 304),
        ("P07", "2026-06-14", True, "death", 60),
    ]
    assert result.table["start_date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2026-03-02",
        "2026-05-01",
        "2026-04-15",
    ]
    assert result.excluded["patient_id"].tolist() == ["P02", "P03", "P04", "P06"]
    assert result.summary.loc["A"].tolist() == [2, 2, 0, 2]


def test_relapse_free_survival_without_death_censors_at_death(trial: EventTable) -> None:
    definitions = EndpointDefinitions(rfs_events=("relapse",))
    rows = derivation(relapse_free_survival(trial, definitions).table)
    assert rows[2] == (
        "P07",
        "2026-06-14",
        False,
        "censored at death (not an event of this endpoint)",
        60,
    )


def test_objective_response_rate_by_hand(trial: EventTable) -> None:
    # A: CR, PR, SD, CR → 3/4.  B: NE, CR, PD → 1/3 with NE as a non-responder.
    result = objective_response_rate(trial)
    assert result.table["reason"].tolist() == [
        "responder (CR)",
        "responder (PR)",
        "non-responder (SD)",
        "not evaluable (NE)",
        "responder (CR)",
        "non-responder (PD)",
        "responder (CR)",
    ]
    summary = result.summary
    assert summary[["denominator", "count"]].to_dict(orient="index") == {
        "A": {"denominator": 4, "count": 3},
        "B": {"denominator": 3, "count": 1},
        "all": {"denominator": 7, "count": 4},
    }
    assert summary.loc["all", "rate"] == pytest.approx(4 / 7)
    assert (summary.loc["A", "ci_lower"], summary.loc["A", "ci_upper"]) == clopper_pearson(3, 4)

    evaluable_only = objective_response_rate(
        trial, EndpointDefinitions(orr_counts_not_evaluable=False)
    ).summary
    assert evaluable_only.loc["B", ["denominator", "count"]].tolist() == [2, 1]


def test_28_day_mortality_by_hand(trial: EventTable) -> None:
    # Deaths by day 28: P03 (day 14) and P06 (day 28, the last day of the window).
    # P04 is alive with 20 days of follow-up: not evaluable, not a survivor.
    result = short_term_mortality(trial)
    assert result.name == "28-day mortality"
    table = result.table.set_index("patient_id")
    assert table.loc["P04", "in_denominator"] is np.False_
    assert table.loc["P04", "reason"] == "not evaluable: alive at last contact on day 20"
    assert table.loc["P06", "reason"] == "died on day 28"
    assert table.loc["P01", "reason"] == "alive on day 28 (died day 360)"
    assert result.summary[["patients", "denominator", "count"]].to_dict(orient="index") == {
        "A": {"patients": 4, "denominator": 4, "count": 1},
        "B": {"patients": 3, "denominator": 2, "count": 1},
        "all": {"patients": 7, "denominator": 6, "count": 2},
    }
    all_arms = result.summary.loc["all"]
    assert (all_arms["ci_lower"], all_arms["ci_upper"]) == clopper_pearson(2, 6)


def test_mortality_window_comes_from_the_definitions(trial: EventTable) -> None:
    # With a 14-day window P03 (day 14) still counts, P06 (day 28) survives it, and
    # P04 (20 days of follow-up) becomes evaluable.
    result = short_term_mortality(trial, EndpointDefinitions(mortality_window_days=14))
    assert result.name == "14-day mortality"
    assert result.summary.loc["all", ["denominator", "count"]].tolist() == [7, 1]


def test_endpoint_definitions_are_checked() -> None:
    with pytest.raises(ValidationError):
        EndpointDefinitions(efs_events=())
    with pytest.raises(ValidationError):
        EndpointDefinitions(pfs_events=("death", "death"))
    with pytest.raises(ValidationError):
        EndpointDefinitions.model_validate({"efs_events": ["toxicity"]})
    with pytest.raises(ValidationError):
        EndpointDefinitions(mortality_window_days=0)
    with pytest.raises(ValidationError):
        EndpointDefinitions().rfs_events = ("relapse",)  # type: ignore[misc]


# --- survival statistics -------------------------------------------------------------


def test_kaplan_meier_on_the_hand_built_trial(trial: EventTable) -> None:
    # OS arm A in months: deaths at 14/30.44 (4 at risk), 150/30.44 (3 at risk),
    # censored at 270 days, death at 360 days (1 at risk).
    # S = 3/4, then 3/4 · 2/3 = 1/2, then 0; the median is the day-150 death.
    km = kaplan_meier(overall_survival(trial))
    assert km.groups == ("A", "B")
    assert km.summary.loc["A", "median"] == pytest.approx(150 / DAYS_PER_MONTH)
    six_months = km.landmark(6).set_index("group")
    assert six_months["survival"].tolist() == [0.5, 0.5]  # B: 2 at risk at day 28, 1 dies
    assert six_months["at_risk"].tolist() == [2, 1]
    assert km.at_risk([0, 12]).to_dict(orient="index") == {"A": {0: 4, 12: 0}, "B": {0: 3, 12: 0}}


def test_kaplan_meier_against_r_survfit() -> None:
    # lifelines/tests/test_estimation.py::test_kmf_survival_curve_output_against_R
    km = kaplan_meier(load_g3(), duration_col="time", event_col="event", group_col="group")
    rit = km.landmark([25, 53]).query("group == 'RIT'")
    npt.assert_allclose(rit["survival"], [0.909, 0.779], rtol=10e-3)
    control = km.landmark([9, 19, 32, 34]).query("group == 'Control'")
    npt.assert_allclose(control["survival"], [0.833, 0.667, 0.5, 0.333], rtol=10e-3)
    # ...::test_kmf_confidence_intervals_output_against_R (R conf.type = "log-log")
    npt.assert_allclose(control["lower"], [0.2731, 0.1946, 0.1109, 0.0461], rtol=10e-4)
    npt.assert_allclose(control["upper"], [0.975, 0.904, 0.804, 0.676], rtol=10e-4)


def test_median_and_numbers_at_risk_on_waltons() -> None:
    waltons = load_waltons()
    km = kaplan_meier(waltons, duration_col="T", event_col="E", group_col="group")
    for group, rows in waltons.groupby("group"):
        reference = KaplanMeierFitter().fit(rows["T"], rows["E"])
        limits = median_survival_times(reference.confidence_interval_)
        summary = km.summary.loc[group]
        assert summary["median"] == reference.median_survival_time_
        assert (summary["median_lower"], summary["median_upper"]) == tuple(limits.iloc[0])
        assert summary["n"] == len(rows)
        assert summary["events"] == rows["E"].sum()
        times = [0, 10, 30, 56, 60, 100]
        # At risk at t: everyone whose time is >= t (R's summary(fit, times)$n.risk).
        assert km.at_risk(times).loc[group].tolist() == [int((rows["T"] >= t).sum()) for t in times]
    assert km.summary["median"].to_dict() == {"control": 58.0, "miR-137": 26.0}


def test_landmark_beyond_follow_up_is_undefined() -> None:
    km = kaplan_meier(
        pd.DataFrame({"t": [1.0, 2.0, 3.0], "e": [1, 0, 0]}),
        duration_col="t",
        event_col="e",
        group_col=None,
    )
    row = km.landmark(24).iloc[0]
    assert math.isnan(row["survival"]) and row["at_risk"] == 0
    with pytest.raises(OutcomeError, match="negative"):
        km.landmark(-1)


def test_logrank_against_r_survdiff() -> None:
    # lifelines/tests/test_statistics.py::test_logrank_test_output_against_R_1
    g3 = logrank(load_g3(), duration_col="time", event_col="event", group_col="group")
    assert abs(g3.p_value - 0.0138) < 0.0001
    # ...::test_rank_test_output_against_R_with_censorship
    small = pd.DataFrame(
        {"t": [10, 20, 30, 10, 20, 50], "e": [1, 0, 1, 1, 0, 1], "arm": list("BBBAAA")}
    )
    result = logrank(small, duration_col="t", event_col="e")
    assert abs(result.p_value - 0.535143) < 10e-6
    assert abs(result.test_statistic - 0.384615) < 10e-6
    # ...::test_multivariate_logrank_on_dd_dataset: six groups, one test.
    dd = logrank(load_dd(), duration_col="duration", event_col="observed", group_col="regime")
    assert abs(dd.test_statistic - 322.5991) < 0.0001
    assert dd.degrees_of_freedom == 5


def test_cox_against_r_coxph() -> None:
    # lifelines/tests/test_estimation.py::test_coef_output_against_R_super_accurate and
    # ::test_standard_error_coef_output_against_R (Rossi recidivism data).
    covariates = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
    result = cox_ph(
        load_rossi(), duration_col="week", event_col="arrest", group_col=None, covariates=covariates
    )
    summary = result.summary
    assert summary.index.tolist() == covariates
    expected = [-0.3794222, -0.0574377, 0.3138998, -0.1497957, -0.4337039, -0.0848711, 0.0914971]
    npt.assert_array_almost_equal(summary["coef"], expected, decimal=6)
    expected_se = [0.19138, 0.02200, 0.30799, 0.21222, 0.38187, 0.19576, 0.02865]
    npt.assert_array_almost_equal(summary["se"], expected_se, decimal=4)
    npt.assert_allclose(summary["hazard_ratio"], np.exp(summary["coef"]))
    npt.assert_allclose(summary["lower"], np.exp(summary["coef"] - 1.959964 * summary["se"]))
    assert (result.n, result.events) == (432, 114)


def test_stratified_cox_against_r_coxph() -> None:
    # lifelines/tests/test_estimation.py::test_coef_output_against_R_with_strata_super_accurate
    # R: coxph(Surv(week, arrest) ~ fin + age + strata(race) + wexp + mar + paro + prio)
    result = cox_ph(
        load_rossi(),
        duration_col="week",
        event_col="arrest",
        group_col=None,
        covariates=["fin", "age", "wexp", "mar", "paro", "prio"],
        strata=["race"],
    )
    expected = [-0.3788, -0.0576, -0.1427, -0.4388, -0.0858, 0.0922]
    npt.assert_array_almost_equal(result.summary["coef"], expected, decimal=4)
    assert "race" not in result.summary.index
    assert result.strata == ("race",)


def test_cox_arm_hazard_ratio_reads_against_the_reference() -> None:
    # The Rossi "fin" indicator recoded as two arms gives R's fin coefficient back.
    rossi = load_rossi()
    rossi["arm"] = np.where(rossi["fin"] == 1, "aid", "no aid")
    result = cox_ph(
        rossi,
        duration_col="week",
        event_col="arrest",
        reference="no aid",
        covariates=["age", "race", "wexp", "mar", "paro", "prio"],
    )
    term = result.summary.loc["arm: aid vs no aid"]
    assert term["coef"] == pytest.approx(-0.3794222, abs=1e-6)
    assert term["hazard_ratio"] == pytest.approx(math.exp(-0.3794222), abs=1e-6)


def test_derived_endpoint_feeds_a_stratified_cox_model() -> None:
    # The Rossi data written as an event table: week w of arrest becomes a death on day
    # 7w, "fin" becomes the arm, "race" a stratification column. Days instead of weeks
    # keep the order of times and their ties, so R's stratified coefficients
    # (test_coef_output_against_R_with_strata_super_accurate) must come back.
    rossi = load_rossi()
    start = pd.Timestamp("2026-01-01")
    end = start + pd.to_timedelta(rossi["week"] * 7, unit="D")
    arrested = rossi["arrest"] == 1
    frame = pd.DataFrame(
        {
            "patient_id": [f"R{i:03d}" for i in range(len(rossi))],
            "arm": np.where(rossi["fin"] == 1, "aid", "no aid"),
            "enrolment_date": start,
            "death_date": end.where(arrested),
            "last_contact_date": end.where(~arrested),
        }
    ).join(rossi[["age", "race", "wexp", "mar", "paro", "prio"]])
    os_ = overall_survival(validate_event_table(frame, arms=["no aid", "aid"]))
    assert (os_.table["time_days"] == rossi["week"] * 7).all()
    result = cox_ph(os_, covariates=["age", "wexp", "mar", "paro", "prio"], strata=["race"])
    expected = [-0.3788, -0.0576, -0.1427, -0.4388, -0.0858, 0.0922]
    assert result.summary.index[0] == "arm: aid vs no aid"
    npt.assert_array_almost_equal(result.summary["coef"], expected, decimal=4)


@pytest.mark.parametrize("module", [events_module, endpoints_module, survival_module])
def test_docstring_examples_run(module: ModuleType) -> None:
    assert doctest.testmod(module).failed == 0


def test_survival_input_errors(trial: EventTable) -> None:
    os_ = overall_survival(trial)
    one_arm = pd.DataFrame({"t": [1, 2], "e": [1, 1], "arm": ["A", "A"]})
    with pytest.raises(OutcomeError, match="at least two groups"):
        logrank(one_arm, duration_col="t", event_col="e")
    with pytest.raises(OutcomeError, match="missing column"):
        kaplan_meier(os_, duration_col="time_weeks")
    with pytest.raises(OutcomeError, match="non-negative; bad rows: 1"):
        kaplan_meier(
            pd.DataFrame({"t": [1, -2], "e": [1, 1]}),
            duration_col="t",
            event_col="e",
            group_col=None,
        )
    with pytest.raises(OutcomeError, match="0/1"):
        kaplan_meier(
            pd.DataFrame({"t": [1, 2], "e": [1, 2]}),
            duration_col="t",
            event_col="e",
            group_col=None,
        )
    with pytest.raises(OutcomeError, match="reference 'C'"):
        cox_ph(os_, reference="C")
    with pytest.raises(OutcomeError, match="nothing to model"):
        cox_ph(
            pd.DataFrame({"t": [1, 2], "e": [1, 1]}),
            duration_col="t",
            event_col="e",
            group_col=None,
        )
    patchy = os_.table.assign(gd2=[1.0, None, 2.0, 3.0, None, 1.0, 2.0])
    with pytest.raises(OutcomeError, match="missing values in rows: P02, P05"):
        cox_ph(patchy, covariates=["gd2"])
