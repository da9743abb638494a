"""A submitted patient form read into a :class:`PatientRecord`, or refused in words.

Every problem names the field by its label and says what to do; nothing is written unless
the whole form is right (the caller stores only what :func:`parse_form` returns).

>>> from trialdesk.protocol.load import default_protocol_dir, load_protocol
>>> from trialdesk.forms.build import patient_form
>>> form = patient_form(load_protocol(default_protocol_dir() / "nb-nk-2026.yaml"))
>>> try:
...     parse_form(form, {"birth_date": "12/04/2019"}, today=dt.date(2026, 11, 20))
... except FormError as exc:
...     print(exc.problems[0])
Date of birth: enter a date such as 2019-04-12
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from trialdesk.errors import FactError
from trialdesk.facts.dictionary import FACTS, FactKind
from trialdesk.facts.patient import (
    AttestationAnswer,
    ChemotherapyBlock,
    Consent,
    Diagnosis,
    DiseaseStatus,
    Finding,
    Observation,
    PatientRecord,
    Performance,
    PregnancyStatus,
    Progression,
    ResponseAssessment,
    Treatment,
    canonical_value,
    check_record,
)
from trialdesk.forms.build import (
    TREATMENT_ROWS,
    UNIT_TEXT,
    FormField,
    PatientForm,
    Widget,
    course_indexes,
    course_row,
)

_DISEASE_FIELDS = ("disease_status", "end_induction_response", "induction_cycles_completed",
                   "cns_involvement", "brain_metastases", "metastatic", "staging_complete",
                   "chemotherapy_resistant", "septic_shock")
_DIAGNOSIS = {"primary_diagnosis": "primary", "diagnosis_confirmation": "confirmation",
              "risk_group": "risk_group", "risk_system": "risk_system", "stage": "stage",
              "diagnosis_date": "date"}


class FormError(FactError):
    """A form with problems; ``problems`` lists each as "Label: what to do"."""

    code = "form_invalid"

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        first = problems[0]
        label, _, reason = first.partition(": ")
        super().__init__(reason + more, where=label)


def unit_text(unit: str | None) -> str:
    """A unit as people write it: ``umol/L`` → ``µmol/L``."""
    return UNIT_TEXT.get(unit or "", unit or "")


class _Reader:
    def __init__(self, data: Mapping[str, Any], today: dt.date) -> None:
        self.data = data
        self.today = today
        self.problems: list[str] = []

    def text(self, key: str) -> str:
        value = self.data.get(key)
        return value.strip() if isinstance(value, str) else ""

    def bad(self, label: str, what: str) -> None:
        self.problems.append(f"{label}: {what}")

    def date(self, key: str, label: str) -> dt.date | None:
        text = self.text(key)
        if not text:
            return None
        try:
            value = dt.date.fromisoformat(text)
        except ValueError:
            self.bad(label, "enter a date such as 2019-04-12")
            return None
        if value > self.today:
            self.bad(label, f"{value} is in the future; enter the date it happened "
                            f"(today or earlier)")
            return None
        return value

    def datetime(self, key: str, label: str) -> dt.datetime | None:
        text = self.text(key)
        if not text:
            return None
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            self.bad(label, "enter a date and time such as 2026-11-20T14:30")
            return None
        if value.date() > self.today:
            self.bad(label, f"{value:%Y-%m-%d %H:%M} is in the future; enter when it began")
            return None
        return value

    def number(self, key: str, label: str, *, integer: bool = False) -> float | None:
        text = self.text(key).replace(",", ".")
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            self.bad(label, f"enter a number such as {'80' if integer else '12.5'} "
                            f"(digits only, not '{text}')")
            return None
        if not math.isfinite(value):
            self.bad(label, f"enter a finite number, not '{text}'")
            return None
        if integer and not value.is_integer():
            self.bad(label, f"enter a whole number, not {text}")
            return None
        return value

    def yesno(self, key: str, label: str) -> bool | None:
        text = self.text(key).lower()
        if text in ("", "not_assessed"):
            return None
        if text in ("yes", "no"):
            return text == "yes"
        self.bad(label, "choose yes, no or not assessed")
        return None

    def choice(self, key: str, f: FormField) -> str | None:
        text = self.text(key)
        if not text:
            return None
        if f.choices and text not in f.choices:
            self.bad(f.label, f"choose one of: {', '.join(c.replace('_', ' ') for c in f.choices)}")
            return None
        return text

    def in_range(self, f: FormField, value: float, unit: str | None) -> bool:
        fact = FACTS[f.fact or f.name]
        if unit is not None and f.units and unit not in f.units:
            self.bad(f.label, f"choose a unit from: {', '.join(unit_text(u) for u in f.units)}")
            return False
        try:
            canonical = canonical_value(fact.name, value, unit, where=f.label)
        except FactError:
            self.bad(f.label, f"the unit {unit_text(unit)} does not convert to "
                              f"{unit_text(fact.unit)}; choose another unit")
            return False
        low, high = fact.minimum, fact.maximum
        if (low is not None and canonical < low) or (high is not None and canonical > high):
            self.bad(f.label, f"{value:g} {unit_text(unit)} is outside what is possible "
                              f"({low:g}–{high:g} {unit_text(fact.unit)}); check the value "
                              "and its unit".replace("  ", " "))
            return False
        return True


def _when(r: _Reader, f: FormField, default: dt.date | None) -> dt.date | None:
    """The date of a dated field's value; required when the value is given."""
    when = r.date(f"{f.name}.date", f"{f.label} (date)") or default
    if when is None:
        r.bad(f.label, "enter the date of this result (sample, examination or answer)")
    return when


def parse_form(form: PatientForm, data: Mapping[str, Any], *, today: dt.date,
               patient_id: str = "new", by: str | None = None) -> PatientRecord:
    """The record a submitted ``form`` describes; :class:`FormError` lists every problem.

    ``data`` maps field names to the submitted text; a dated field's date is under
    ``<name>.date``, a unit under ``<name>.unit``, a lab's range under ``<name>.low`` and
    ``<name>.high``. An empty field or "not assessed" writes nothing (unknown).
    """
    r = _Reader(data, today)
    birth = r.date("birth_date", "Date of birth")
    if birth is None and not r.problems:
        r.bad("Date of birth", "enter a date such as 2019-04-12")
    doc: dict[str, Any] = {"patient_id": patient_id, "birth_date": birth,
                           "sex": r.choice("sex", form.field("sex")) if form.has("sex") else None,
                           "childbearing_potential": r.yesno("childbearing_potential",
                                                             "Of childbearing potential")}
    lists: dict[str, list[Any]] = {k: [] for k in (
        "observations", "performance", "findings", "consents", "attestations", "pregnancy")}
    diagnosis: dict[str, Any] = {}
    disease: dict[str, Any] = {}
    for f in form.fields:
        name = f.name
        if name in ("birth_date", "sex", "childbearing_potential"):
            continue
        if name in _DIAGNOSIS:
            value = (r.date(name, f.label) if f.widget == Widget.DATE
                     else r.text(name) or None if f.widget == Widget.TEXT else r.choice(name, f))
            if value is not None:
                diagnosis[_DIAGNOSIS[name]] = value
        elif name in _DISEASE_FIELDS:
            value = _value(r, f)
            if value is not None:
                disease[name] = value
        elif name == "septic_shock_onset":
            onset = r.datetime(name, f.label)
            if onset is not None:
                disease["septic_shock_onset"] = onset
        elif f.fact is not None and f.fact in FACTS and FACTS[f.fact].question is not None:
            answer = r.yesno(name, f.label)
            if answer is not None and (when := _when(r, f, today)):
                lists["findings"].append(Finding(name=name, value=answer, date=when, by=by))
        elif f.fact is not None and f.fact in FACTS and FACTS[f.fact].kind in (
                FactKind.LAB, FactKind.MEASUREMENT, FactKind.PERFORMANCE, FactKind.FINDING):
            _dated_fact(r, f, lists)
        elif name == "pregnancy_test":
            answer = r.yesno(name, f.label)
            if answer is not None and (when := _when(r, f, None)):
                lists["pregnancy"].append(PregnancyStatus(date=when, pregnant=answer))
        elif name == "consent_signed":
            answer = r.yesno(name, f.label)
            if answer is not None and (when := _when(r, f, None)):
                lists["consents"].append(Consent(
                    trial_id=form.trial_id, signed=answer, date=when,
                    version=r.text("consent.version") or None,
                    signed_by=r.text("consent.signed_by") or "patient",
                    assent=r.yesno("consent.assent", "Child's assent") if answer else None))
        elif name.startswith("attest."):
            answer = r.yesno(name, f.label)
            if answer is not None and (when := _when(r, f, today)):
                lists["attestations"].append(AttestationAnswer(
                    trial_id=form.trial_id, id=name.removeprefix("attest."), value=answer,
                    date=when, by=by))
    if disease:
        when = r.date("disease_date", "Date of this disease assessment")
        if when is None:
            r.bad("Date of this disease assessment", "enter the date the disease course was "
                                                     "assessed, such as 2026-10-28")
        else:
            doc["disease_status"] = [_model(r, DiseaseStatus, {"date": when, **{
                ("status" if k == "disease_status" else k): v for k, v in disease.items()}},
                "Disease course")]
    if diagnosis:
        if "primary" not in diagnosis:
            r.bad("Primary diagnosis", "choose the primary diagnosis")
        else:
            doc["diagnosis"] = _model(r, Diagnosis, diagnosis, "Diagnosis")
    if has_course(form):
        doc.update(_course(r))
    treatments = _treatments(r) if form.has("treatment.none") else None
    if treatments is not None:
        doc["treatments"] = treatments
    doc.update(lists)
    if birth is not None:
        _not_before_birth(r, doc, birth)
    if r.problems:
        raise FormError(r.problems)
    record = PatientRecord.model_validate(doc)
    check_record(record, today=today, source="form")  # every check of a JSON upload too
    return record


def _value(r: _Reader, f: FormField) -> Any:
    if f.widget == Widget.YESNO:
        return r.yesno(f.name, f.label)
    if f.widget == Widget.CHOICE:
        return r.choice(f.name, f)
    if f.widget == Widget.NUMBER:
        value = r.number(f.name, f.label, integer=f.integer)
        if value is not None and f.fact and not r.in_range(f, value, None):
            return None
        return int(value) if value is not None and f.integer else value
    return r.text(f.name) or None


def _dated_fact(r: _Reader, f: FormField, lists: dict[str, list[Any]]) -> None:
    fact = FACTS[f.fact or f.name]
    if f.widget == Widget.NUMBER:
        value: Any = r.number(f.name, f.label, integer=f.integer)
        unit = (r.text(f"{f.name}.unit") or (f.units[0] if f.units else None)) if f.units else None
        if value is None or not r.in_range(f, value, unit):
            return
    else:
        value = _value(r, f)
        unit = None
        if value is None:
            return
    when = _when(r, f, None)
    if when is None:
        return
    if fact.kind is FactKind.PERFORMANCE:
        lists["performance"].append(_model(r, Performance, {"scale": f.name, "score": int(value),
                                                            "date": when}, f.label))
    elif fact.kind is FactKind.FINDING:
        lists["findings"].append(Finding(name=f.name, value=int(value) if f.integer else value,
                                         unit=unit, date=when))
    else:
        low = r.number(f"{f.name}.low", f"{f.label} (reference range, low)")
        high = r.number(f"{f.name}.high", f"{f.label} (reference range, high)")
        if low is not None and high is not None and low > high:
            r.bad(f.label, "the reference range's low end is above its high end; swap them")
        lists["observations"].append(Observation(name=f.name, value=value, unit=unit, date=when,
                                                 ref_low=low, ref_high=high))


def _model(r: _Reader, cls: Any, data: dict[str, Any], label: str) -> Any:
    from pydantic import ValidationError

    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        r.bad(label, str(exc.errors()[0]["msg"]).removeprefix("Value error, "))
        return None


def _treatments(r: _Reader) -> list[Treatment] | None:
    """The treatment rows; none filled is unknown unless "no treatment" is answered yes
    (an empty history would otherwise read as "never treated")."""
    out: list[Treatment] = []
    none = r.yesno("treatment.none", "No treatment before screening")
    for i in range(1, TREATMENT_ROWS + 1):
        key = f"treatment{i}"
        agent = r.text(f"{key}.agent")
        category = r.text(f"{key}.category")
        start = r.date(f"{key}.start", f"Treatment {i}: start")
        end = r.date(f"{key}.end", f"Treatment {i}: end")
        if not (agent or category or start):
            continue
        if not (agent and category and start):
            r.bad(f"Treatment {i}", "give the agent, its category and its start date")
            continue
        t = _model(r, Treatment, {"agent": agent, "category": category, "start": start,
                                  "end": end, "chronic": r.yesno(
                                      f"{key}.chronic", f"Treatment {i}: chronic and ongoing")
                                  or False},
                   f"Treatment {i}")
        if t is not None:
            out.append(t)
    if out and none:
        r.bad("No treatment before screening", "answer no or leave it unanswered when "
                                               "treatments are listed")
    return out if out or none else None


def _not_before_birth(r: _Reader, doc: dict[str, Any], birth: dt.date) -> None:
    entries = [e for k in ("observations", "performance", "findings", "consents",
                           "attestations", "pregnancy", "disease_status", "response_assessments",
                           "progressions") for e in doc.get(k, [])
               if e is not None]
    if any(b.start < birth for b in doc.get("chemotherapy", []) if b is not None):
        r.bad("Date of birth", "a chemotherapy block begins before the date of birth; check "
                               "both dates")
    if any(e.date < birth for e in entries) or (
            doc.get("diagnosis") and doc["diagnosis"].date and doc["diagnosis"].date < birth):
        r.bad("Date of birth", "a result or event is dated before the date of birth; check "
                               "both dates")


def has_course(form: PatientForm) -> bool:
    """Does ``form`` enter the disease course as events?"""
    return form.has("chemo1.regimen")


def _course(r: _Reader) -> dict[str, list[Any]]:
    """The disease-course rows: every filled row, in row order; a row half filled is a
    problem named by its label."""
    out: dict[str, list[Any]] = {"chemotherapy": [], "response_assessments": [],
                                 "progressions": []}
    for i in course_indexes(r.data, "chemo"):
        regimen, phase, cycles, start, end = course_row("chemo", i)
        count = r.number(cycles.name, cycles.label, integer=True)
        block: dict[str, Any] = {
            "regimen": r.text(regimen.name), "phase": r.choice(phase.name, phase),
            "cycles": None if count is None else int(count),
            "start": r.date(start.name, start.label), "end": r.date(end.name, end.label)}
        title = regimen.label.partition(":")[0]
        if count is not None and not 1 <= count <= 30:
            r.bad(cycles.label, "enter the number of cycles in this block, 1 to 30")
            continue
        if not all(block[k] not in (None, "") for k in ("regimen", "phase", "cycles", "start")):
            r.bad(title, "give the regimen, the phase, the number of cycles and the first day "
                         "(the last day once the block is over)")
            continue
        if (b := _model(r, ChemotherapyBlock, block, title)) is not None:
            out["chemotherapy"].append(b)
    for i in course_indexes(r.data, "assessment"):
        when, criteria, category = course_row("assessment", i)
        title = when.label.partition(":")[0]
        item = {"date": r.date(when.name, when.label),
                "criteria": r.choice(criteria.name, criteria) or "INRC 2017",
                "category": r.choice(category.name, category)}
        if item["date"] is None or item["category"] is None:
            r.bad(title, "give the date and the overall response")
            continue
        if (a := _model(r, ResponseAssessment, item, title)) is not None:
            out["response_assessments"].append(a)
    for i in course_indexes(r.data, "progression"):
        when, sites = course_row("progression", i)
        title = when.label.partition(":")[0]
        chosen = [site for site in sites.choices
                  if r.yesno(f"{sites.name}.{site}", f"{sites.label}: {site}")]
        day = r.date(when.name, when.label)
        if day is None:
            r.bad(title, "give the date of the relapse or progression")
            continue
        if (p := _model(r, Progression, {"date": day, "sites": chosen}, title)) is not None:
            out["progressions"].append(p)
    return out
