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
from trialdesk.facts.biomarkers import Gd2Threshold, gd2_status
from trialdesk.facts.course import COURSE_FACTS, CourseRules, derive_course
from trialdesk.facts.dictionary import (
    ANSWERED_AS,
    FACTS,
    HAEMATOLOGICAL,
    ONCOHAEMATOLOGICAL,
    FactKind,
    FactType,
)
from trialdesk.facts.model import FactSet, FactValue, Value
from trialdesk.facts.patient import (
    AttestationAnswer,
    Finding,
    Observation,
    PatientRecord,
    canonical_value,
)
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
    gd2: Gd2Threshold | None = None,
    course: CourseRules | None = None,
) -> FactSet:
    """The facts of ``record`` at ``as_of`` for screening against ``trial_id``.

    ``gd2`` is the protocol's GD2 method and threshold (``biomarkers.gd2``); without it
    GD2 status and heterogeneity stay unknown. ``course`` is the protocol's reading of the
    disease course (``disease_course``); without it refractory disease is not derived.
    """
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
    _disease(record, b, course)
    _observations(record, b)
    _performance(record, b)
    _findings(record, b, answered_as(record, trial_id))
    _biomarkers(record, b, gd2)
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

    answers = [a for a in record.attestations if a.trial_id == trial_id
               and (a.trial_id, a.id) not in ANSWERED_AS]
    for attestation_id in sorted({a.id for a in answers}):
        latest = _latest((a for a in answers if a.id == attestation_id), lambda a: a.date, on)
        if latest is not None:
            name = f"attest.{attestation_id}"
            b.values[name] = FactValue(name, latest.value, None, latest.date,
                                       f"attested by {latest.by or 'investigator'}")
    for name, (answer, source) in answered_as(record, trial_id, attestations=True).items():
        if name not in b.values and answer.date <= on:
            b.values[name] = FactValue(name, answer.value, None, answer.date, source)
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


def _disease(record: PatientRecord, b: _Builder, rules: CourseRules | None) -> None:
    """Disease facts from the events of the disease course (facts.course) and from dated
    disease-status statements; for each fact the later of the two counts (a statement on
    the day of an event wins, as the clinician's own reading of it)."""
    entries = sorted((e for e in record.disease_status if e.date <= b.on), key=lambda e: e.date)
    course = derive_course(record.chemotherapy, record.response_assessments,
                           record.progressions, on=b.on, rules=rules)
    for fact, attr in _DISEASE_FIELDS:
        for entry in reversed(entries):
            value = getattr(entry, attr)
            if value is not None:
                b.put(fact, value, observed=entry.date, source=f"disease status {entry.date}")
                break
    has_events = bool(record.chemotherapy or record.response_assessments or record.progressions)
    for fact in COURSE_FACTS:
        stated = b.values.get(fact)
        derived = course.values.get(fact)
        if derived is not None and (stated is None or stated.observed is None
                                    or derived.observed > stated.observed):
            b.put(fact, derived.value, observed=derived.observed, source=derived.evidence)
        elif stated is None and has_events and fact in course.missing:
            b.miss(fact, course.missing[fact])
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


_GD2_FACTS = {"ihc": "gd2_ihc_percent", "flow_cytometry": "gd2_flow_percent",
              "marrow_immunocytology": "gd2_marrow_percent"}


def _specimen_observations(record: PatientRecord) -> list[Observation]:
    """GD2 specimens and cytotoxicity assays as the observations they give a fact."""
    out: list[Observation] = []
    for s in record.gd2_specimens:
        if s.percent_positive is not None:
            out.append(Observation(name=_GD2_FACTS[s.method], value=s.percent_positive,
                                   unit="%", date=s.date))
        if s.h_score is not None:
            out.append(Observation(name="gd2_ihc_h_score", value=s.h_score, date=s.date))
    for a in record.cytotoxicity_assays:
        name = "adcc_lysis" if a.assay == "adcc" else "nk_cytotoxicity_lysis"
        out.append(Observation(name=name, value=a.lysis_percent, unit="%", date=a.date))
    return out


def _observations(record: PatientRecord, b: _Builder) -> None:
    by_name: dict[str, list[Observation]] = {}
    for obs in [*record.observations, *_specimen_observations(record)]:
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


def answered_as(record: PatientRecord, trial_id: str, *, attestations: bool = False
                 ) -> dict[str, tuple[Finding, str]]:
    """Per-trial answers to questions that are now findings (``ANSWERED_AS``), read as
    those findings (every trial) or, with ``attestations``, as this trial's attestations:
    the latest answer per fact, with where it came from."""
    out: dict[str, tuple[Finding, str]] = {}
    old: list[AttestationAnswer] = sorted(
        (a for a in record.attestations if (a.trial_id, a.id) in ANSWERED_AS),
        key=lambda a: a.date)
    for a in old:
        for name, carried in ANSWERED_AS[(a.trial_id, a.id)]:
            if name.startswith("attest.") != attestations or (
                    attestations and a.trial_id != trial_id):
                continue
            if a.value not in carried:  # a later answer that says nothing of this fact
                out.pop(name, None)
                continue
            out[name] = (Finding(name=name, value=a.value, date=a.date, by=a.by),
                         f"answered by {a.by or 'the investigator'} on {a.date} "
                         f"({a.trial_id} {a.id.upper()})")
    return out


def _findings(record: PatientRecord, b: _Builder,
              answered: dict[str, tuple[Finding, str]] | None = None) -> None:
    answered = answered or {}
    names = {f.name for f in record.findings} | set(answered)
    for name in names:
        entries = [f for f in record.findings if f.name == name]
        if name in answered and answered[name][0].date <= b.on:
            entries.append(answered[name][0])  # after: a finding on the same day wins
        entry = _latest(entries, lambda f: f.date, b.on)
        if entry is None:
            continue
        fact = FACTS[name]
        if fact.question is not None:
            source = (answered[name][1] if name in answered and entry is answered[name][0]
                      else f"answered by {entry.by or 'the investigator'} on {entry.date}")
            b.put(name, entry.value, observed=entry.date, source=source)
            continue
        if fact.dated and not b.fresh(name, entry.date):
            continue
        value: Value = entry.value
        if fact.is_numeric and not isinstance(entry.value, (bool, str)):
            number = canonical_value(name, float(entry.value), entry.unit, where=f"finding {name}")
            value = int(number) if fact.type is FactType.INTEGER and number.is_integer() else number
        b.put(name, value, observed=entry.date, source=f"finding on {entry.date}")


def _biomarkers(record: PatientRecord, b: _Builder, gd2: Gd2Threshold | None) -> None:
    from trialdesk.clinical.sepsis import pao2_fio2, sofa, sofa_inputs

    # Say which site and E:T ratio a GD2 or lysis value came from.
    for fact, items in (("adcc_lysis", [a for a in record.cytotoxicity_assays
                                        if a.assay == "adcc"]),
                        ("nk_cytotoxicity_lysis", [a for a in record.cytotoxicity_assays
                                                   if a.assay == "nk_cytotoxicity"])):
        value = b.values.get(fact)
        chosen = [a for a in items if a.date == (value.observed if value else None)]
        if value is not None and chosen:
            a = chosen[0]
            b.put(fact, value.value, observed=a.date,
                  source=f"{a.lysis_percent:g}% lysis at E:T {a.effector_target_ratio} on {a.date}")
    for method, fact in _GD2_FACTS.items():
        value = b.values.get(fact)
        if value is not None:
            sites = [s.site for s in record.gd2_specimens
                     if s.method == method and s.date == value.observed]
            b.put(fact, value.value, observed=value.observed,
                  source=f"{value.source} ({', '.join(sites)})")

    if gd2 is None:
        for name in ("gd2_status", "gd2_heterogeneous"):
            b.miss(name, "the protocol sets no GD2 method and threshold")
    else:
        window = b.lookback.days_for("gd2_status", FactKind.DERIVED.value)
        since = date.fromordinal(b.on.toordinal() - window)
        result = gd2_status(record.gd2_specimens, gd2, on=b.on, since=since)
        if result.status is None:
            b.miss("gd2_status", result.evidence)
            b.miss("gd2_heterogeneous", result.evidence)
        else:
            b.put("gd2_status", result.status, observed=result.observed, source=result.evidence)
            b.put("gd2_heterogeneous", bool(result.heterogeneous), observed=result.observed,
                  source=result.evidence)

    # PaO2/FiO2 from a PaO2 and an FiO2 of the same day.
    pao2, fio2 = b.values.get("pao2"), b.values.get("fio2")
    if pao2 is None or fio2 is None:
        b.miss("pao2_fio2", "needs a PaO₂ and an FiO₂ in the look-back window")
    elif pao2.observed != fio2.observed:
        b.miss("pao2_fio2", f"the latest PaO₂ ({pao2.observed}) and FiO₂ ({fio2.observed}) "
                            "are not of the same day")
    else:
        ratio = pao2_fio2(float(pao2.value), float(fio2.value) / 100)  # type: ignore[arg-type]
        b.put("pao2_fio2", ratio, observed=pao2.observed,
              source=f"PaO₂ {pao2.value:g} mmHg ÷ FiO₂ {float(fio2.value) / 100:g} "  # type: ignore[arg-type]
                     f"on {pao2.observed}")

    assessments = sorted((a for a in record.sofa if a.date <= b.on), key=lambda a: a.date)
    if not assessments:
        b.miss("sofa_score", "no SOFA assessment recorded")
    for assessment in reversed(assessments):
        score = sofa(sofa_inputs(assessment))
        on = assessment.date
        if score.total is not None:
            if b.fresh("sofa_score", on):
                parts = ", ".join(f"{k} {v}" for k, v in score.organs.items())
                b.put("sofa_score", score.total, observed=on,
                      source=f"SOFA on {on}: {parts} ({score.source})")
            break
        b.miss("sofa_score", f"SOFA on {on} is incomplete: "
                             + "; ".join(f"{k}: {v}" for k, v in score.missing.items()))

    for kind, fact in (("rrt", "on_rrt"), ("invasive_ventilation", "on_invasive_ventilation"),
                       ("non_invasive_ventilation", "on_non_invasive_ventilation")):
        if record.support_episodes is None:
            b.miss(fact, "organ support (RRT, ventilation) not recorded")
            continue
        open_now = [e for e in record.support_episodes if e.kind == kind and e.start <= b.on
                    and (e.end is None or e.end >= b.on)]
        if open_now:
            b.put(fact, True, observed=open_now[0].start,
                  source=f"{kind.replace('_', ' ')} since {open_now[0].start}")
        else:
            b.put(fact, False, source=f"no {kind.replace('_', ' ')} episode open on {b.on}")


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
