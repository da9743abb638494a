"""Dinutuximab beta post-consolidation program (seeds 002 and 001; FACTS.md §1d).

Screening starts from a complete eligible child (examples/patients/db-program.json,
screened on 2026-11-21) and changes one thing. Seed 002 says who the program is for:
high-risk neuroblastoma, as the last phase after chemotherapy, surgery, autologous stem
cell transplantation and radiotherapy, meeting the agreed qualification criteria. The
regimen is checked against the Qarziba SmPC numbers in FACTS.md §1d: five 35-day courses,
100 mg/m² per course given as LTI (10 mg/m²/day, days 1–10) or STI (20 mg/m²/day over
8 h, days 1–5), optional IL-2 60×10⁶ IU/m² per course.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

import pytest

import seedkit
from seedkit import Change, check_one_change, check_unknown, example, without_category
from trialdesk.protocol.load import CompiledProtocol
from trialdesk.protocol.model import Administration, CourseStep

SCREENED = datetime(2026, 11, 21)

run = partial(seedkit.run, as_of=SCREENED)
attest = partial(seedkit.attest, trial_id="DB-POSTCONS", day="2026-11-18")


@pytest.fixture(scope="module")
def protocol() -> CompiledProtocol:
    return seedkit.load("dinutuximab-beta-program.yaml")


# --- one change, expected outcomes ----------------------------------------------------

ONE_CHANGE = [
    pytest.param(lambda p: p["diagnosis"].update(risk_group="intermediate"),
                 {"I1": "not_met"}, "ineligible", id="intermediate-risk"),
    pytest.param(lambda p: p["diagnosis"].update(primary="melanoma"), {"I1": "not_met"},
                 "ineligible", id="not-neuroblastoma"),
    pytest.param(without_category("radiotherapy"), {"I2": "not_met"}, "ineligible",
                 id="radiotherapy-not-given"),
    pytest.param(without_category("stem_cell_transplant"), {"I2": "not_met"}, "ineligible",
                 id="no-stem-cell-transplant"),
    pytest.param(without_category("surgery"), {"I2": "not_met"}, "ineligible",
                 id="no-surgery"),
    pytest.param(without_category("chemotherapy"), {"I2": "not_met"}, "ineligible",
                 id="no-chemotherapy"),
    pytest.param(lambda p: p.update(treatments=[]), {"I2": "not_met"}, "ineligible",
                 id="no-treatment-at-all"),
    pytest.param(attest("i3", False), {"I3": "not_met"}, "ineligible",
                 id="qualification-criteria-not-met"),
    pytest.param(lambda p: p["consents"][0].update(signed=False), {"I4": "not_met"},
                 "ineligible", id="consent-refused"),
]


@pytest.mark.parametrize(("change", "changed", "verdict"), ONE_CHANGE)
def test_one_change(protocol: CompiledProtocol, change: Change, changed: dict[str, str],
                    verdict: str) -> None:
    result = run(protocol, example("db-program", change))
    check_one_change(result, changed, verdict)
    assert result.arm is None


MISSING = [
    pytest.param(lambda p: p.pop("treatments"), "I2",
                 {"prior_therapy_categories": ["treatment history not recorded"]},
                 id="no-treatment-history"),
    pytest.param(attest("i3", None), "I3", {"attest.i3": ["not recorded"]},
                 id="attestation-missing"),
    pytest.param(lambda p: p.update(consents=[]), "I4",
                 {"consent_signed": ["no consent recorded for DB-POSTCONS"]},
                 id="consent-missing"),
    pytest.param(lambda p: p["diagnosis"].pop("risk_group"), "I1",
                 {"risk_group": ["not recorded"]}, id="risk-group-missing"),
]


@pytest.mark.parametrize(("change", "criterion_id", "reasons"), MISSING)
def test_missing_data_is_unknown(protocol: CompiledProtocol, change: Change,
                                 criterion_id: str, reasons: dict[str, list[str]]) -> None:
    check_unknown(run(protocol, example("db-program", change)), criterion_id, reasons)


def test_example_is_eligible(protocol: CompiledProtocol) -> None:
    result = run(protocol, example("db-program"))
    assert (result.verdict.value, result.arm) == ("eligible", "DB")
    assert [c.outcome.value for c in result.criteria] == ["met"] * 4


# --- the regimen ----------------------------------------------------------------------


def administrations(protocol: CompiledProtocol, agent: str) -> list[Administration]:
    return [a for a in protocol.protocol.course("DB").administrations if a.agent.startswith(agent)]


def test_five_35_day_courses_each_an_admission(protocol: CompiledProtocol) -> None:
    p = protocol.protocol
    (step,) = p.arm("DB").plan
    assert isinstance(step, CourseStep)
    assert (step.course, step.repeats) == ("DB", 5)
    course = p.course("DB")
    assert course.admission
    length = course.length_days.value
    assert length == 35
    # "five hospital admissions within six months": 5 × 35 = 175 days
    assert isinstance(length, int) and step.repeats * length == 175


@pytest.mark.parametrize(("variant", "days", "daily", "hours"), [
    ("LTI", list(range(1, 11)), 10, 24),
    ("STI", list(range(1, 6)), 20, 8),
])
def test_dinutuximab_beta_variants_give_100_mg_m2(protocol: CompiledProtocol, variant: str,
                                                   days: list[int], daily: float,
                                                   hours: float) -> None:
    (db,) = [a for a in administrations(protocol, "dinutuximab beta") if a.variant == variant]
    assert db.days == days
    assert (db.dose.amount, db.dose.unit, db.dose.basis.value, db.dose.per) == (
        daily, "mg", "per_m2", "day")
    assert db.infusion is not None and db.infusion.duration_hours == hours
    assert db.dose.amount is not None and db.dose.amount * len(db.days) == 100  # mg/m²/course
    assert not db.dose.unconfirmed


def test_variant_choice(protocol: CompiledProtocol) -> None:
    infusion = protocol.protocol.variants["infusion"]
    assert (infusion.choices, infusion.default) == (["LTI", "STI"], "LTI")
    tagged = {a.variant for a in administrations(protocol, "dinutuximab beta")}
    assert tagged == {"LTI", "STI"}


def test_isotretinoin_unconfirmed_days_19_to_32(protocol: CompiledProtocol) -> None:
    (iso,) = administrations(protocol, "isotretinoin")
    assert iso.days == list(range(19, 33))
    assert (iso.route, iso.dose.amount, iso.dose.basis.value) == ("PO", 160, "per_m2")
    assert iso.dose.unconfirmed
    assert iso.variant is None and not iso.optional


def test_il2_optional_60_million_iu_per_m2(protocol: CompiledProtocol) -> None:
    (il2,) = administrations(protocol, "interleukin-2")
    assert il2.optional
    assert (il2.route, il2.dose.amount, il2.dose.unit, il2.dose.basis.value) == (
        "SC", 6e6, "IU", "per_m2")
    assert il2.dose.amount is not None and il2.dose.amount * len(il2.days) == 60e6
    assert len(il2.days) == 10
    # second block with dinutuximab beta days 1–5; the first starts 7 days before day 1
    assert il2.days[5:] == [1, 2, 3, 4, 5]
    assert "SIOPEN" in (il2.note or "")


def test_response_every_two_courses(protocol: CompiledProtocol) -> None:
    (assessment,) = protocol.protocol.arm("DB").assessments
    assert (assessment.criteria, assessment.every_courses) == ("INRC 2017", 2)


def test_registry_block(protocol: CompiledProtocol) -> None:
    r = protocol.protocol.registry
    assert r.design.study_type == "PROGRAM"
    assert r.status.overall_status == "AVAILABLE"
    assert "SKION" in r.sponsor.lead_sponsor.name
