"""Fact derivations, unit conversion and the patient file."""

from __future__ import annotations

import copy
from datetime import date, datetime
from typing import Any

import pytest

from trialdesk.clinical import units
from trialdesk.errors import FactError, UnitError
from trialdesk.facts.normalise import completed_months, completed_years, normalise
from trialdesk.facts.patient import patient_from_data
from trialdesk.protocol.model import LookBack

TODAY = date(2026, 11, 21)
AS_OF = datetime(2026, 11, 21, 12, 0)
LOOKBACK = LookBack(default_days=28, by_kind={"lab": 14}, source="test setting")

BASE: dict[str, Any] = {
    "patient_id": "P1",
    "birth_date": "2019-04-12",
    "sex": "female",
    "observations": [],
}


def record(**changes: Any) -> Any:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return patient_from_data(data, today=TODAY, source="p.json")


def facts_of(**changes: Any) -> Any:
    return normalise(record(**changes), trial_id="T", lookback=LOOKBACK, as_of=AS_OF)


# --- age ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "on", "years", "months"),
    [
        (date(2010, 3, 15), date(2026, 3, 14), 15, 191),
        (date(2010, 3, 15), date(2026, 3, 15), 16, 192),
        (date(2024, 5, 20), date(2025, 11, 19), 1, 17),
        (date(2024, 5, 20), date(2025, 11, 20), 1, 18),  # exactly 18 months
        (date(2008, 2, 29), date(2026, 2, 28), 17, 215),  # leap-day birthday not yet reached
        (date(2008, 2, 29), date(2026, 3, 1), 18, 216),
        (date(2026, 1, 31), date(2026, 2, 28), 0, 0),
    ],
)
def test_age_in_completed_units(birth: date, on: date, years: int, months: int) -> None:
    assert completed_years(birth, on) == years
    assert completed_months(birth, on) == months


# --- units ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "src", "dst", "substance", "expected"),
    [
        (1.0, "10^9/L", "/mm3", None, 1000.0),
        (1.0, "x10^9/L", "cells/mm3", None, 1000.0),
        (2000.0, "/mm3", "10^9/L", None, 2.0),
        (150.0, "G/L", "/mm3", None, 150000.0),
        (1.0, "mg/dL", "umol/L", "creatinine", 88.4),  # FACTS.md §2: ÷ 88.4
        (88.4, "µmol/L", "mg/dL", "creatinine", 1.0),
        (1.0, "mg/dL", "umol/L", "bilirubin", 17.1),
        (12.0, "g/dL", "g/L", None, 120.0),
        (3.0, "months", "weeks", None, 13.04),
        (60.0, "mL/min/1.73m2", "mL/min/1.73 m²", None, 60.0),
    ],
)
def test_unit_conversions(value: float, src: str, dst: str, substance: str | None,
                          expected: float) -> None:
    assert units.convert(value, src, dst, substance=substance) == pytest.approx(expected, rel=1e-3)


def test_conversion_has_no_floating_point_noise_at_boundaries() -> None:
    # Raw pint gives 999.9999999999998 here; a value at the boundary must stay on it.
    assert units.convert(1.0, "10^9/L", "/mm3") == 1000.0


@pytest.mark.parametrize(("src", "dst"), [("mg/dL", "umol/L"), ("mg", "/mm3"), ("furlong", "s")])
def test_impossible_conversions_are_refused(src: str, dst: str) -> None:
    with pytest.raises(UnitError):
        units.convert(1.0, src, dst)


# --- derivations --------------------------------------------------------------------


def test_x_uln_uses_the_labs_own_reference_range() -> None:
    fs = facts_of(observations=[
        {"name": "alt", "value": 150, "unit": "U/L", "ref_high": 30, "date": "2026-11-20"},
        {"name": "ast", "value": 150, "unit": "U/L", "ref_high": 50, "date": "2026-11-20"},
    ])
    assert fs["alt_x_uln"].value == 5.0
    assert fs["ast_x_uln"].value == 3.0
    assert "÷ ULN 30" in fs["alt_x_uln"].source


def test_x_uln_is_unknown_without_a_reference_range() -> None:
    fs = facts_of(observations=[{"name": "alt", "value": 40, "unit": "U/L",
                                 "date": "2026-11-20"}])
    assert "alt_x_uln" not in fs
    assert "no upper limit of normal" in fs.why_missing("alt_x_uln")


def test_creatinine_in_umol_is_converted_and_schwartz_applies_to_children() -> None:
    # Bedside Schwartz (Schwartz 2009): 0.413 × 120 cm ÷ 0.5 mg/dL = 99.12
    fs = facts_of(observations=[
        {"name": "creatinine", "value": 44.2, "unit": "umol/L", "ref_high": 60,
         "date": "2026-11-20"},
        {"name": "height", "value": 120, "unit": "cm", "date": "2026-11-20"},
    ])
    assert fs["creatinine"].value == pytest.approx(0.5, rel=1e-4)
    assert fs["gfr"].value == pytest.approx(99.12, rel=1e-3)
    assert "Schwartz" in fs["gfr"].source


def test_measured_gfr_wins_over_schwartz() -> None:
    fs = facts_of(observations=[
        {"name": "measured_gfr", "value": 58, "unit": "mL/min/1.73m2", "date": "2026-11-20"},
        {"name": "creatinine", "value": 0.5, "unit": "mg/dL", "date": "2026-11-20"},
        {"name": "height", "value": 120, "unit": "cm", "date": "2026-11-20"},
    ])
    assert fs["gfr"].value == 58.0


def test_schwartz_is_not_used_for_adults() -> None:
    fs = facts_of(birth_date="1980-01-01", observations=[
        {"name": "creatinine", "value": 0.9, "unit": "mg/dL", "date": "2026-11-20"},
        {"name": "height", "value": 170, "unit": "cm", "date": "2026-11-20"},
    ])
    assert "gfr" not in fs
    assert "1–16" in fs.why_missing("gfr")


def test_lab_older_than_the_window_is_missing() -> None:
    fs = facts_of(observations=[
        {"name": "alt", "value": 30, "unit": "U/L", "ref_high": 40, "date": "2026-11-06"},
        {"name": "ast", "value": 30, "unit": "U/L", "ref_high": 40, "date": "2026-11-07"},
    ])
    assert "alt" not in fs  # 15 days old, window 14
    assert "15 days old" in fs.why_missing("alt")
    assert "14-day look-back window" in fs.why_missing("alt_x_uln")
    assert fs["ast"].value == 30.0  # exactly 14 days old counts


def test_latest_value_wins_and_future_of_screening_is_ignored() -> None:
    data = {"observations": [
        {"name": "lvef", "value": 50, "unit": "%", "date": "2026-11-01"},
        {"name": "lvef", "value": 62, "unit": "%", "date": "2026-11-15"},
    ]}
    fs = normalise(record(**data), trial_id="T", lookback=LOOKBACK,
                   as_of=datetime(2026, 11, 10))
    assert fs["lvef"].value == 50.0


def test_performance_uses_the_age_appropriate_scale() -> None:
    child = facts_of(performance=[{"scale": "lansky", "score": 70, "date": "2026-11-20"},
                                  {"scale": "karnofsky", "score": 50, "date": "2026-11-20"}])
    assert child["performance_score"].value == 70
    adult = facts_of(birth_date="1990-01-01",
                     performance=[{"scale": "lansky", "score": 90, "date": "2026-11-20"}])
    assert "performance_score" not in adult
    assert "karnofsky" in adult.why_missing("performance_score")


def test_pregnancy_derivation() -> None:
    assert facts_of(sex="male")["pregnant"].value is False
    assert facts_of(childbearing_potential=False)["pregnant"].value is False
    assert "pregnant" not in facts_of()
    fs = facts_of(pregnancy=[{"date": "2026-11-19", "pregnant": False}])
    assert fs["pregnant"].value is False


def test_treatment_history_absent_vs_empty() -> None:
    assert "chronic_immunosuppression" not in facts_of()
    fs = facts_of(treatments=[])
    assert fs["chronic_immunosuppression"].value is False
    assert fs["prior_therapy_categories"].value == frozenset()


def test_septic_shock_hours() -> None:
    fs = facts_of(disease_status=[{"date": "2026-11-21", "septic_shock": True,
                                   "septic_shock_onset": "2026-11-21T02:00"}])
    assert fs["hours_since_septic_shock_onset"].value == 10.0


def test_consent_and_attestations_are_per_trial() -> None:
    fs = facts_of(
        consents=[{"trial_id": "OTHER", "signed": True, "date": "2026-11-20"}],
        attestations=[{"trial_id": "T", "id": "e11", "value": False, "date": "2026-11-20"}],
    )
    assert "consent_signed" not in fs
    assert fs["attest.e11"].value is False


# --- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "where", "reason"),
    [
        ({"birth_date": "2027-01-01"}, "$.birth_date", "in the future"),
        ({"birth_date": "not a date"}, "$.birth_date", "date"),
        ({"nickname": "x"}, "$.nickname", "unknown field"),
        ({"observations": [{"name": "lvef", "value": 300, "unit": "%", "date": "2026-11-20"}]},
         "$.observations[0].value", "impossible"),
        ({"observations": [{"name": "lvef", "value": 60, "unit": "mg", "date": "2026-11-20"}]},
         "$.observations[0].unit", "does not fit"),
        ({"observations": [{"name": "anc", "value": 1.2, "unit": "bananas/L",
                            "date": "2026-11-20"}]}, "$.observations[0].unit", "unknown unit"),
        ({"observations": [{"name": "lvef", "value": 60, "unit": "%", "date": "2026-12-20"}]},
         "$.observations[0].date", "in the future"),
        ({"observations": [{"name": "mood", "value": 1, "date": "2026-11-20"}]},
         "$.observations[0].name", "not a laboratory test"),
        ({"observations": [{"name": "weight", "value": -3, "unit": "kg", "date": "2026-11-20"}]},
         "$.observations[0].value", "impossible"),
        ({"performance": [{"scale": "lansky", "score": 75, "date": "2026-11-20"}]},
         "$.performance[0]", "steps of 10"),
        ({"findings": [{"name": "rifle_class", "value": "bad", "date": "2026-11-20"}]},
         "$.findings[0].value", "must be"),
        ({"diagnosis": {"primary": "neuroblastomma"}}, "$.diagnosis.primary",
         "unknown diagnosis"),
    ],
)
def test_bad_patient_files_name_the_field(changes: dict[str, Any], where: str,
                                          reason: str) -> None:
    with pytest.raises(FactError) as err:
        record(**changes)
    assert str(err.value).startswith(f"p.json: {where}")
    assert reason in str(err.value)


def test_zero_creatinine_leaves_gfr_unknown() -> None:
    fs = facts_of(observations=[
        {"name": "creatinine", "value": 0, "unit": "mg/dL", "date": "2026-11-20"},
        {"name": "height", "value": 120, "unit": "cm", "date": "2026-11-20"},
    ])
    assert "gfr" not in fs
    assert "creatinine of 0" in fs.why_missing("gfr")
