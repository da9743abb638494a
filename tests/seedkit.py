"""Helpers shared by the seed-trial tests (tests/test_seed_*.py).

Each seed test starts from a complete example patient, changes one thing and screens it
against the trial's protocol file. What differs between trials (the screening moment,
the base patient's laboratory date, the trial id on an attestation) is passed in as an
argument; a test module binds its own values, for instance with functools.partial.

Plain functions, no fixtures: pytest imports this module from tests/ (rootdir-based
"prepend" import mode puts tests/ on sys.path).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from trialdesk.criteria.verdict import CriterionResult, ScreeningResult, screen
from trialdesk.facts.normalise import normalise
from trialdesk.facts.patient import patient_from_data
from trialdesk.protocol.load import CompiledProtocol, load_protocol

ROOT = Path(__file__).resolve().parents[1]

Patient = dict[str, Any]
Change = Callable[[Patient], None]


def load(protocol_file: str) -> CompiledProtocol:
    """A protocol from protocols/."""
    return load_protocol(ROOT / "protocols" / protocol_file)


def example(name: str, *changes: Change) -> Patient:
    """An example patient from examples/patients/, with the changes applied in order."""
    path = ROOT / "examples" / "patients" / f"{name}.json"
    data: Patient = json.loads(path.read_text(encoding="utf-8"))
    for change in changes:
        change(data)
    return data


def run(protocol: CompiledProtocol, data: Patient, as_of: datetime) -> ScreeningResult:
    """Screen a patient as at a moment (its date is also the day ages are taken on)."""
    record = patient_from_data(data, today=as_of.date())
    facts = normalise(record, trial_id=protocol.id,
                      lookback=protocol.protocol.eligibility.lookback, as_of=as_of)
    return screen(protocol, facts, patient_id=record.patient_id)


def criterion(result: ScreeningResult, criterion_id: str) -> CriterionResult:
    return next(c for c in result.criteria if c.id == criterion_id)


def base_outcomes(result: ScreeningResult) -> dict[str, str]:
    """What an eligible patient shows: every inclusion met, every exclusion not met."""
    return {c.id: "met" if c.kind == "inclusion" else "not_met" for c in result.criteria}


# --- checks ---------------------------------------------------------------------------
# pytest does not rewrite the asserts of a helper module, so each one names its values.


def check_one_change(result: ScreeningResult, changed: dict[str, str], verdict: str) -> None:
    """Every criterion as for an eligible patient except those in `changed`, and the verdict."""
    outcomes = {c.id: c.outcome.value for c in result.criteria}
    expected = base_outcomes(result) | changed
    assert outcomes == expected, (outcomes, expected)
    assert result.verdict.value == verdict, (result.verdict.value, verdict)


def check_unknown(result: ScreeningResult, criterion_id: str,
                  reasons: dict[str, list[str]]) -> None:
    """The criterion is unknown for exactly the facts in `reasons`, each missing for a reason
    that contains every given part, and the patient is undetermined."""
    c = criterion(result, criterion_id)
    assert c.outcome.value == "unknown", (criterion_id, c.outcome.value)
    missing = {m.fact: m.reason for m in c.missing}
    assert set(missing) == set(reasons), (sorted(missing), sorted(reasons))
    for fact, parts in reasons.items():
        for part in parts:
            assert part in missing[fact], (fact, missing[fact])
    assert result.verdict.value == "undetermined", result.verdict.value


# --- changes to the base patient ------------------------------------------------------


def observation(name: str, value: float, unit: str | None, *, day: str,
                **extra: float) -> Change:
    """Replace the observations of that name with one result (extra: ref_high and such)."""

    def change(p: Patient) -> None:
        p["observations"] = [o for o in p["observations"] if o["name"] != name]
        p["observations"].append({"name": name, "value": value, "unit": unit, "date": day,
                                  **extra})
    return change


def finding(name: str, value: object, unit: str | None = None, *, day: str) -> Change:
    def change(p: Patient) -> None:
        p["findings"] = [f for f in p["findings"] if f["name"] != name]
        entry: dict[str, object] = {"name": name, "value": value, "date": day}
        if unit is not None:
            entry["unit"] = unit
        p["findings"].append(entry)
    return change


def performance(scale: str, score: int, *, day: str) -> Change:
    def change(p: Patient) -> None:
        p["performance"] = [{"scale": scale, "score": score, "date": day}]
    return change


def status(**fields: object) -> Change:
    """Update the latest disease status."""

    def change(p: Patient) -> None:
        p["disease_status"][-1].update(fields)
    return change


def treatment(agent: str, category: str, start: str, end: str | None = None,
              chronic: bool = False) -> Change:
    def change(p: Patient) -> None:
        entry: dict[str, object] = {"agent": agent, "category": category, "start": start,
                                    "chronic": chronic}
        if end is not None:
            entry["end"] = end
        p["treatments"].append(entry)
    return change


def without_category(category: str) -> Change:
    """Take every treatment of that category out of the history."""

    def change(p: Patient) -> None:
        p["treatments"] = [t for t in p["treatments"] if t["category"] != category]
    return change


def attest(attestation_id: str, value: bool | None, *, trial_id: str, day: str) -> Change:
    """Answer an attestation (None: take the answer away)."""

    def change(p: Patient) -> None:
        p["attestations"] = [a for a in p["attestations"] if a["id"] != attestation_id]
        if value is not None:
            p["attestations"].append({"trial_id": trial_id, "id": attestation_id,
                                      "value": value, "date": day})
    return change


def born(birth: str) -> Change:
    def change(p: Patient) -> None:
        p["birth_date"] = birth
    return change


def female_of_childbearing_potential(test: bool | None, *, day: str) -> Change:
    """A woman of childbearing potential, with a pregnancy test on `day` (None: no test)."""

    def change(p: Patient) -> None:
        p.update(sex="female", childbearing_potential=True)
        if test is not None:
            p["pregnancy"] = [{"date": day, "pregnant": test, "method": "test"}]
    return change

