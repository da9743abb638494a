"""From a patient record to the facts of one screening moment.

For every fact the dictionary knows, take the latest value on or before the screening
moment; a dated value older than the protocol's look-back window is *missing* (and the
reason says how old it was). Derived facts (age, ×ULN, GFR, age-appropriate
performance score) name their inputs in the evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import TypeVar

from trialdesk.clinical import units
from trialdesk.facts.dictionary import (
    FACTS,
    HAEMATOLOGICAL,
    ONCOHAEMATOLOGICAL,
    FactKind,
    FactType,
)
from trialdesk.facts.model import FactSet, FactValue, Value
from trialdesk.facts.patient import Observation, PatientRecord, canonical_value
from trialdesk.protocol.model import LookBack

T = TypeVar("T")

_DISEASE_FIELDS = (
    ("disease_status", "status"),
    ("end_induction_response", "end_induction_response"),
    ("induction_cycles_completed", "induction_cycles_completed"),
    ("cns_involvement", "cns_involvement"),
    ("brain_metastases", "brain_metastases"),
    ("metastatic", "metastatic"),
    ("staging_complete", "staging_complete"),
    ("chemotherapy_resistant", "chemotherapy_resistant"),
    ("septic_shock", "septic_shock"),
)


def completed_years(birth: date, on: date) -> int:
    """Age in completed years (a birthday counts on the day itself).

    >>> birth = date(2010, 3, 15)
    >>> completed_years(birth, date(2026, 3, 14)), completed_years(birth, date(2026, 3, 15))
    (15, 16)
    """
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def completed_months(birth: date, on: date) -> int:
    """Age in completed months (a month is complete on the same day-of-month).

    >>> birth = date(2024, 5, 20)
    >>> completed_months(birth, date(2025, 11, 19)), completed_months(birth, date(2025, 11, 20))
    (17, 18)
    """
    return (on.year - birth.year) * 12 + (on.month - birth.month) - (on.day < birth.day)


def _latest(items: Iterable[T], key: Callable[[T], date], on: date) -> T | None:
    candidates = [i for i in items if key(i) <= on]
    return max(candidates, key=key) if candidates else None


class _Builder:
    def __init__(self, as_of: datetime, lookback: LookBack) -> None:
        self.as_of = as_of
        self.on = as_of.date()
        self.lookback = lookback
        self.values: dict[str, FactValue] = {}
        self.missing: dict[str, str] = {}

    def put(self, name: str, value: Value, *, observed: date | None = None,
            source: str = "") -> None:
        unit = FACTS[name].unit if name in FACTS else None
        self.values[name] = FactValue(name, value, unit, observed, source)

    def miss(self, name: str, reason: str) -> None:
        self.missing.setdefault(name, reason)

    def fresh(self, name: str, observed: date) -> bool:
        """Within the look-back window? If not, record why it is missing."""
        kind = FACTS[name].kind.value if name in FACTS else "other"
        window = self.lookback.days_for(name, kind)
        age = (self.on - observed).days
        if age > window:
            self.miss(name, f"latest {name} ({observed}) is {age} days old, older than the "
                            f"{window}-day look-back window")
            return False
        return True


def normalise(
    record: PatientRecord,
    *,
    trial_id: str,
    lookback: LookBack,
    as_of: datetime,
) -> FactSet:
    """The facts of ``record`` at ``as_of`` for screening against ``trial_id``."""
    b = _Builder(as_of, lookback)
    on = b.on

    b.put("age_years", completed_years(record.birth_date, on),
          source=f"birth date {record.birth_date}")
    b.put("age_months", completed_months(record.birth_date, on),
          source=f"birth date {record.birth_date}")
    if record.sex:
        b.put("sex", record.sex, source="record")
    if record.childbearing_potential is not None:
        b.put("childbearing_potential", record.childbearing_potential, source="record")

    _diagnosis(record, b)
    _disease(record, b)
    _observations(record, b)
    _performance(record, b)
    _findings(record, b)
    _treatments(record, b)
    _pregnancy(record, b)

    consent = _latest((c for c in record.consents if c.trial_id == trial_id),
                      lambda c: c.date, on)
    if consent is not None:
        b.put("consent_signed", consent.signed, observed=consent.date,
              source=f"consent {consent.version or ''} signed by {consent.signed_by}".replace(
                  "  ", " "))
    else:
        b.miss("consent_signed", f"no consent recorded for {trial_id}")

    answers = [a for a in record.attestations if a.trial_id == trial_id]
    for attestation_id in sorted({a.id for a in answers}):
        latest = _latest((a for a in answers if a.id == attestation_id), lambda a: a.date, on)
        if latest is not None:
            name = f"attest.{attestation_id}"
            b.values[name] = FactValue(name, latest.value, None, latest.date,
                                       f"attested by {latest.by or 'investigator'}")
    return FactSet(as_of, dict(b.values), dict(b.missing))


def _diagnosis(record: PatientRecord, b: _Builder) -> None:
    d = record.diagnosis
    if d is None:
        for name in ("primary_diagnosis", "diagnosis_category", "oncohaematological",
                     "diagnosis_confirmation", "risk_group", "risk_system", "stage"):
            b.miss(name, "no diagnosis recorded")
        return
    b.put("primary_diagnosis", d.primary, observed=d.date, source="diagnosis")
    category = ("haematological" if d.primary in HAEMATOLOGICAL
                else "other" if d.primary == "other" else "solid_tumour")
    b.put("diagnosis_category", category, source=f"diagnosis {d.primary}")
    b.put("oncohaematological", d.primary in ONCOHAEMATOLOGICAL, source=f"diagnosis {d.primary}")
    for name, value in (("diagnosis_confirmation", d.confirmation), ("risk_group", d.risk_group),
                        ("risk_system", d.risk_system), ("stage", d.stage)):
        if value is not None:
            b.put(name, value, observed=d.date, source="diagnosis")


def _disease(record: PatientRecord, b: _Builder) -> None:
    entries = sorted((e for e in record.disease_status if e.date <= b.on), key=lambda e: e.date)
    for fact, attr in _DISEASE_FIELDS:
        for entry in reversed(entries):
            value = getattr(entry, attr)
            if value is not None:
                b.put(fact, value, observed=entry.date, source=f"disease status {entry.date}")
                break
    for entry in reversed(entries):
        if entry.septic_shock_onset is not None:
            onset = entry.septic_shock_onset
            as_of = b.as_of
            if onset.tzinfo is not None and as_of.tzinfo is None:
                onset = onset.replace(tzinfo=None)
            hours = (as_of - onset).total_seconds() / 3600
            if hours >= 0:
                b.put("hours_since_septic_shock_onset", round(hours, 4), observed=onset.date(),
                      source=f"septic shock onset {onset.isoformat(timespec='minutes')}, "
                             f"screened {as_of.isoformat(timespec='minutes')}")
            else:
                b.miss("hours_since_septic_shock_onset",
                       f"septic shock onset {onset.isoformat(timespec='minutes')} is after the "
                       f"screening moment {as_of.isoformat(timespec='minutes')}; screen with a "
                       "date-time")
            break


def _observations(record: PatientRecord, b: _Builder) -> None:
    by_name: dict[str, list[Observation]] = {}
    for obs in record.observations:
        by_name.setdefault(obs.name, []).append(obs)
    latest: dict[str, Observation] = {}
    for name, items in by_name.items():
        found = _latest(items, lambda o: o.date, b.on)
        if found is None or not b.fresh(name, found.date):
            continue
        obs = found
        value = canonical_value(name, obs.value, obs.unit, where=f"observation {name}")
        unit_text = f" {obs.unit}" if obs.unit else ""
        b.put(name, value, observed=obs.date, source=f"{name} {obs.value:g}{unit_text} on {obs.date}")
        latest[name] = obs
    for lab in ("alt", "ast", "alp", "bilirubin", "creatinine"):
        name = f"{lab}_x_uln"
        lab_obs = latest.get(lab)
        if lab_obs is None:
            b.miss(name, b.missing.get(lab, f"no {lab} result recorded"))
            continue
        if lab_obs.ref_high is None or lab_obs.ref_high <= 0:
            b.miss(name, f"the {lab} result of {lab_obs.date} has no upper limit of normal")
            continue
        ratio = units.convert(lab_obs.value / lab_obs.ref_high, "", "")
        b.put(name, ratio, observed=lab_obs.date,
              source=f"{lab} {lab_obs.value:g} ÷ ULN {lab_obs.ref_high:g} {lab_obs.unit or ''} "
                     f"on {lab_obs.date}")
    _gfr(b)


def _gfr(b: _Builder) -> None:
    measured = b.values.get("measured_gfr")
    if measured is not None:
        b.put("gfr", measured.value, observed=measured.observed,
              source=f"measured GFR/creatinine clearance on {measured.observed}")
        return
    from trialdesk.clinical.renal import schwartz_applicable, schwartz_bedside

    age = b.values["age_years"].value
    height = b.values.get("height")
    creatinine = b.values.get("creatinine")
    if not schwartz_applicable(float(age)):  # type: ignore[arg-type]
        b.miss("gfr", "no measured GFR; bedside Schwartz applies only to ages 1–16")
    elif height is None or creatinine is None:
        absent = [f"{n}: {b.missing.get(n, 'not recorded')}" for n, v in
                  (("height", height), ("creatinine", creatinine)) if v is None]
        b.miss("gfr", "no measured GFR; bedside Schwartz needs height and creatinine ("
                      + "; ".join(absent) + ")")
    elif float(creatinine.value) <= 0:  # type: ignore[arg-type]
        b.miss("gfr", "no measured GFR; a creatinine of 0 gives no Schwartz estimate")
    else:
        h, scr = float(height.value), float(creatinine.value)  # type: ignore[arg-type]
        egfr = units.convert(schwartz_bedside(h, scr), "", "")
        b.put("gfr", egfr, observed=creatinine.observed,
              source=f"bedside Schwartz 0.413 × {h:g} cm ÷ {scr:g} mg/dL (Schwartz 2009)")


def _performance(record: PatientRecord, b: _Builder) -> None:
    for scale in ("lansky", "karnofsky", "ecog"):
        entry = _latest((p for p in record.performance if p.scale == scale), lambda p: p.date, b.on)
        if entry is not None and b.fresh(scale, entry.date):
            b.put(scale, entry.score, observed=entry.date, source=f"{scale} on {entry.date}")
    age = int(b.values["age_years"].value)  # type: ignore[arg-type]
    # Lansky under 16, Karnofsky from 16 (FACTS.md §5); the other scale is not converted.
    scale = "lansky" if age < 16 else "karnofsky"
    chosen = b.values.get(scale)
    if chosen is not None:
        b.put("performance_score", chosen.value, observed=chosen.observed,
              source=f"{scale} (age {age}) on {chosen.observed}")
    else:
        b.miss("performance_score", b.missing.get(scale, f"no {scale} score recorded "
                                                         f"(the scale for age {age})"))


def _findings(record: PatientRecord, b: _Builder) -> None:
    names = {f.name for f in record.findings}
    for name in names:
        entry = _latest((f for f in record.findings if f.name == name), lambda f: f.date, b.on)
        if entry is None:
            continue
        fact = FACTS[name]
        if fact.dated and not b.fresh(name, entry.date):
            continue
        value: Value = entry.value
        if fact.is_numeric and not isinstance(entry.value, (bool, str)):
            number = canonical_value(name, float(entry.value), entry.unit, where=f"finding {name}")
            value = int(number) if fact.type is FactType.INTEGER and number.is_integer() else number
        b.put(name, value, observed=entry.date, source=f"finding on {entry.date}")


def _treatments(record: PatientRecord, b: _Builder) -> None:
    names = [f.name for f in FACTS.values() if f.kind is FactKind.TREATMENT]
    if record.treatments is None:
        for name in names:
            b.miss(name, "treatment history not recorded")
        return
    given = [t for t in record.treatments if t.start <= b.on]
    b.put("prior_therapy_categories", frozenset(t.category for t in given),
          source=f"{len(given)} treatments recorded")
    immuno = [t for t in given if t.category == "immunotherapy"]
    if immuno:
        last = max(min(t.end, b.on) if t.end else b.on for t in immuno)
        b.put("last_immunotherapy_date", last, source="treatment history")
    else:
        # No immunotherapy at all: "within N weeks" is then false, not unknown. A date far
        # in the past would be a guess; leave the date missing and say why.
        b.miss("last_immunotherapy_date", "no immunotherapy in the treatment history")
    chronic = any(
        t.category in ("corticosteroid", "immunosuppressant") and t.chronic
        and (t.end is None or t.end >= b.on)
        for t in given
    )
    b.put("chronic_immunosuppression", chronic, source="treatment history")


def _pregnancy(record: PatientRecord, b: _Builder) -> None:
    if record.sex == "male":
        b.put("pregnant", False, source="sex: male")
        return
    if record.sex == "female" and record.childbearing_potential is False:
        # Seed 000 E10: only patients of childbearing potential need a pregnancy test.
        b.put("pregnant", False, source="female, not of childbearing potential")
        return
    entry = _latest(record.pregnancy, lambda p: p.date, b.on)
    if entry is None:
        b.miss("pregnant", "no pregnancy status recorded")
    elif b.fresh("pregnant", entry.date):
        b.put("pregnant", entry.pregnant, observed=entry.date,
              source=f"pregnancy {entry.method} on {entry.date}")
