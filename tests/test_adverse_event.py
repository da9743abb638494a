"""Adverse-event record validation and expedited-reporting deadlines (ICH E2A; 21 CFR 312.32)."""

from __future__ import annotations

import doctest
from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from trialdesk.errors import SafetyError
from trialdesk.safety import adverse_event
from trialdesk.safety.adverse_event import (
    ActionTaken,
    AdverseEvent,
    AgentAttribution,
    Attribution,
    Expectedness,
    Outcome,
    Seriousness,
    expedited_reporting,
)

ONSET = date(2026, 3, 2)
BASE: dict[str, Any] = {"term": "Pain", "grade": 3, "onset": ONSET}


def make(**changes: Any) -> AdverseEvent:
    return AdverseEvent(**{**BASE, **changes})


def test_doctests() -> None:
    assert doctest.testmod(adverse_event).failed == 0


def test_full_record() -> None:
    ae = make(
        term="capillary leak syndrome",
        grade=3,
        resolution=date(2026, 3, 6),
        seriousness={"hospitalisation"},
        attributions=[
            {"agent": "dinutuximab beta", "attribution": "probable"},
            {"agent": "temozolomide", "attribution": "unlikely"},
        ],
        expectedness="expected",
        action_taken="drug_interrupted",
        outcome="recovered",
        sponsor_aware_on=date(2026, 3, 3),
    )
    assert ae.term == "Capillary leak syndrome"  # stored in CTCAE spelling
    assert ae.ctcae_version == "5.0"
    assert ae.is_ctcae_term and ae.serious and not ae.fatal and not ae.life_threatening
    assert ae.suspected_related
    assert ae.attributions[0] == AgentAttribution(agent="dinutuximab beta", attribution=Attribution.PROBABLE)
    assert (ae.expectedness, ae.action_taken, ae.outcome) == (
        Expectedness.EXPECTED,
        ActionTaken.DRUG_INTERRUPTED,
        Outcome.RECOVERED,
    )
    assert AdverseEvent.model_validate_json(ae.model_dump_json()) == ae


def test_record_is_frozen() -> None:
    ae = make()
    with pytest.raises(ValidationError):
        ae.grade = 2  # type: ignore[misc]


def test_version_is_always_stored() -> None:
    assert make().model_dump()["ctcae_version"] == "5.0"


@pytest.mark.parametrize(
    ("attribution", "suspected"),
    [
        (Attribution.UNRELATED, False),
        (Attribution.UNLIKELY, False),
        (Attribution.POSSIBLE, True),
        (Attribution.PROBABLE, True),
        (Attribution.DEFINITE, True),
    ],
)
def test_attribution_scale(attribution: Attribution, suspected: bool) -> None:
    assert attribution.suspected is suspected
    ae = make(attributions=[{"agent": "IL-2", "attribution": attribution}])
    assert ae.suspected_related is suspected


@pytest.mark.parametrize(
    ("changes", "where", "fragment"),
    [
        # grades checked against the CTCAE v5.0 term
        ({"grade": 4}, "grade", "allowed grades: 1, 2, 3"),
        ({"term": "Capillary leak syndrome", "grade": 1}, "grade", "allowed grades: 2, 3, 4, 5"),
        ({"term": "Sepsis", "grade": 2}, "grade", "Sepsis"),
        ({"grade": 0}, "grade", "grade 0"),
        ({"grade": "3"}, "grade", "whole number"),
        ({"grade": 2.5}, "grade", "whole number"),
        ({"grade": True}, "grade", "whole number"),
        # free-text terms need a MedDRA term and a grade 1-5
        ({"term": "Tumour flare", "grade": 2}, "meddra_term", "MedDRA term"),
        ({"term": "Tumour flare", "grade": 6, "meddra_term": "Tumour flare"}, "grade", "1-5"),
        ({"term": "Tumour flare", "grade": 2, "meddra_term": "  "}, "meddra_term", "MedDRA"),
        ({"meddra_code": "1002"}, "meddra_code", "8 digits"),
        ({"term": "   "}, "term", "must name"),
        # only v5.0 tables are held: never check a grade against another version
        ({"ctcae_version": "6.0"}, "ctcae_version", "not supported"),
        ({"ctcae_version": "4.03"}, "ctcae_version", "not supported"),
        # dates
        ({"resolution": date(2026, 3, 1)}, "resolution", "before onset"),
        ({"sponsor_aware_on": date(2026, 3, 1)}, "sponsor_aware_on", "before its onset"),
        ({"onset": "2026-02-30"}, "onset", "date"),
        # death agrees across grade, seriousness and outcome
        ({"term": "Sepsis", "grade": 5}, "seriousness", "death"),
        ({"term": "Sepsis", "grade": 4, "seriousness": {"death"}}, "grade", "grade 5"),
        ({"term": "Sepsis", "grade": 4, "outcome": "fatal"}, "outcome", "grade 5"),
        (
            {"term": "Sepsis", "grade": 5, "seriousness": {"death"}, "outcome": "recovered"},
            "outcome",
            "recovered",
        ),
        # enumerations and attributions
        ({"seriousness": {"serious"}}, "seriousness.0", "life_threatening"),
        ({"action_taken": "paused"}, "action_taken", "drug_interrupted"),
        (
            {
                "attributions": [
                    {"agent": "IL-2", "attribution": "possible"},
                    {"agent": "il-2", "attribution": "unlikely"},
                ]
            },
            "attributions",
            "once",
        ),
        ({"attributions": [{"agent": " ", "attribution": "possible"}]}, "attributions.agent", "agent"),
        ({"attributions": [{"agent": "IL-2", "attribution": "likely"}]}, "attributions.0.attribution",
         "probable"),
        ({"colour": "red"}, "colour", "Extra"),
    ],
)  # fmt: skip
def test_invalid_records_name_the_field(changes: dict[str, Any], where: str, fragment: str) -> None:
    with pytest.raises(SafetyError) as caught:
        make(**changes)
    assert caught.value.where == f"adverse_event.{where}"
    assert fragment in caught.value.reason


@pytest.mark.parametrize(
    "changes",
    [
        {"term": "Tumour flare", "grade": 5, "meddra_term": "Tumour flare",
         "meddra_code": "10067387", "seriousness": {"death"}, "outcome": "fatal"},
        {"term": "Infusion related reaction", "grade": 4, "seriousness": {"life_threatening"}},
        {"term": "Fever", "grade": 1, "resolution": ONSET},
        {"term": "Neutrophil count decreased", "grade": 4},
    ],
)  # fmt: skip
def test_valid_records(changes: dict[str, Any]) -> None:
    assert make(**changes).grade == changes["grade"]


# --------------------------------------------------------------------------- reporting

AWARE = date(2026, 3, 4)


@pytest.mark.parametrize(
    ("changes", "related", "expected", "days", "due", "follow_up_due"),
    [
        # fatal or life-threatening SUSAR: 7 days, complete report within 8 more
        ({"term": "Sepsis", "grade": 5, "seriousness": {"death"}, "outcome": "fatal"},
         True, False, 7, date(2026, 3, 11), date(2026, 3, 19)),
        ({"term": "Anaphylaxis", "grade": 4, "seriousness": {"life_threatening"}},
         True, False, 7, date(2026, 3, 11), date(2026, 3, 19)),
        # any other serious SUSAR: 15 days
        ({"seriousness": {"hospitalisation"}}, True, False, 15, date(2026, 3, 19), None),
        ({"seriousness": {"prolonged_hospitalisation"}}, True, False, 15, date(2026, 3, 19), None),
        ({"seriousness": {"important_medical_event"}}, True, False, 15, date(2026, 3, 19), None),
        ({"term": "Peripheral sensory neuropathy", "grade": 3,
          "seriousness": {"persistent_disability"}}, True, False, 15, date(2026, 3, 19), None),
        # CTCAE grade 4 alone is not the ICH "life-threatening" criterion
        ({"term": "Neutrophil count decreased", "grade": 4, "seriousness": {"hospitalisation"}},
         True, False, 15, date(2026, 3, 19), None),
    ],
)  # fmt: skip
def test_susar_deadlines(
    changes: dict[str, Any],
    related: bool,
    expected: bool,
    days: int,
    due: date,
    follow_up_due: date | None,
) -> None:
    ae = make(sponsor_aware_on=AWARE, **changes)
    deadline = expedited_reporting(ae, related=related, expected=expected)
    assert deadline is not None
    assert deadline.calendar_days == days
    assert deadline.due == due
    assert deadline.follow_up_due == follow_up_due
    assert "ICH E2A" in deadline.source and "312.32" in deadline.source


@pytest.mark.parametrize(
    ("changes", "related", "expected"),
    [
        ({}, True, False),  # not serious
        ({"seriousness": {"hospitalisation"}}, False, False),  # not a suspected reaction
        ({"seriousness": {"hospitalisation"}}, True, True),  # expected
        ({"term": "Sepsis", "grade": 5, "seriousness": {"death"}}, False, False),
        ({"term": "Sepsis", "grade": 5, "seriousness": {"death"}}, True, True),
    ],
)
def test_no_expedited_report(changes: dict[str, Any], related: bool, expected: bool) -> None:
    ae = make(sponsor_aware_on=AWARE, **changes)
    assert expedited_reporting(ae, related=related, expected=expected) is None


def test_deadline_without_awareness_date_has_no_due_date() -> None:
    ae = make(seriousness={Seriousness.HOSPITALISATION})
    deadline = expedited_reporting(ae, related=True, expected=False)
    assert deadline is not None
    assert (deadline.calendar_days, deadline.due, deadline.follow_up_due) == (15, None, None)


@pytest.mark.parametrize(("related", "expected", "where"), [("yes", False, "related"),
                                                              (True, None, "expected")])  # fmt: skip
def test_reporting_flags_must_be_booleans(related: object, expected: object, where: str) -> None:
    ae = make(seriousness={"hospitalisation"})
    with pytest.raises(SafetyError) as caught:
        expedited_reporting(ae, related=related, expected=expected)  # type: ignore[arg-type]
    assert caught.value.where == where
