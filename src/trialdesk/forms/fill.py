"""A stored record shown in its form, and a submitted form written back into the record.

The form shows the latest value of each field, and every event of the disease course (a
row emptied removes its event). Saving writes each entry the form gives:
an entry of the same fact and date replaces the stored one (a correction), an entry of a
new date is added beside the older ones (the record keeps its history); whatever the form
does not show (other facts, older results, entries from a JSON upload) stays as it was.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from trialdesk.facts.normalise import answered_as
from trialdesk.facts.patient import PatientRecord
from trialdesk.forms.build import TREATMENT_ROWS, PatientForm

_DIAGNOSIS = {"primary_diagnosis": "primary", "diagnosis_confirmation": "confirmation",
              "risk_group": "risk_group", "risk_system": "risk_system", "stage": "stage",
              "diagnosis_date": "date"}


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%dT%H:%M")
    return str(v)


def _latest(items: Sequence[Any], **match: Any) -> Any:
    found = [i for i in items if all(getattr(i, k) == v for k, v in match.items())]
    return max(found, key=lambda i: i.date) if found else None


def form_values(form: PatientForm, record: PatientRecord, trial_id: str) -> dict[str, str]:
    """The submitted-form mapping that shows ``record`` (latest value per field)."""
    out: dict[str, str] = {"birth_date": _text(record.birth_date), "sex": _text(record.sex),
                           "childbearing_potential": _text(record.childbearing_potential)}
    if record.diagnosis is not None:
        for name, attr in _DIAGNOSIS.items():
            out[name] = _text(getattr(record.diagnosis, attr))
    entries = sorted(record.disease_status, key=lambda e: e.date)
    if entries:
        out["disease_date"] = _text(entries[-1].date)
    for e in entries:  # later entries override earlier ones field by field
        for name, value in e.model_dump().items():
            if value is not None and name not in ("date", "note"):
                out["disease_status" if name == "status" else name] = _text(value)
    # Answers given to a trial's question before it became a finding (ANSWERED_AS).
    answered = {**answered_as(record, trial_id), **answered_as(record, trial_id,
                                                                attestations=True)}
    for f in form.fields:
        entry: Any = None
        if obs := _latest(record.observations, name=f.name):
            out[f"{f.name}.low"], out[f"{f.name}.high"] = _text(obs.ref_low), _text(obs.ref_high)
            out[f.name], out[f"{f.name}.unit"], entry = _text(obs.value), _text(obs.unit), obs
        elif score := _latest(record.performance, scale=f.name):
            out[f.name], entry = _text(score.score), score
        elif finding := _latest(record.findings, name=f.name):
            out[f.name], out[f"{f.name}.unit"] = _text(finding.value), _text(finding.unit)
            entry = finding
        elif f.name == "pregnancy_test" and record.pregnancy:
            entry = _latest(record.pregnancy)
            out[f.name] = _text(entry.pregnant)
        elif f.name == "consent_signed":
            entry = _latest(record.consents, trial_id=trial_id)
            if entry is not None:
                out[f.name] = _text(entry.signed)
                out["consent.version"] = _text(entry.version)
                out["consent.signed_by"] = entry.signed_by
                out["consent.assent"] = _text(entry.assent)
        elif f.name.startswith("attest."):
            entry = _latest(record.attestations, trial_id=trial_id,
                            id=f.name.removeprefix("attest."))
            if entry is not None:
                out[f.name] = _text(entry.value)
        if entry is None and f.name in answered:
            entry = answered[f.name][0]
            out[f.name] = _text(entry.value)
        if entry is not None:
            out[f"{f.name}.date"] = _text(entry.date)
    for i, b in enumerate(record.chemotherapy, start=1):
        for name in ("regimen", "phase", "cycles", "start", "end"):
            out[f"chemo{i}.{name}"] = _text(getattr(b, name))
    for i, a in enumerate(record.response_assessments, start=1):
        for name in ("date", "criteria", "category"):
            out[f"assessment{i}.{name}"] = _text(getattr(a, name))
    for i, p in enumerate(record.progressions, start=1):
        out[f"progression{i}.date"] = _text(p.date)
        for site in p.sites:
            out[f"progression{i}.sites.{site}"] = "yes"
    if record.treatments == []:
        out["treatment.none"] = "yes"
    for i, t in enumerate((record.treatments or [])[:TREATMENT_ROWS], start=1):
        for name in ("agent", "category", "start", "end", "chronic"):
            out[f"treatment{i}.{name}"] = _text(getattr(t, name))
    return out


def _key(entry: Any) -> tuple[Any, ...]:
    name = getattr(entry, "name", None) or getattr(entry, "scale", None) or getattr(entry, "id", None)
    return (name, getattr(entry, "trial_id", None), entry.date)


def _same_or_new(stored: Any, written: Any) -> Any:
    """The stored entry when the form wrote the same content (who answered stays)."""
    same = stored.model_dump(exclude={"by"}) == written.model_dump(exclude={"by"})
    return stored if same else written


#: The disease course as events: the form shows every one, so saving writes them all.
COURSE_LISTS = ("chemotherapy", "response_assessments", "progressions")


def merge_record(old: PatientRecord, new: PatientRecord, *, course: bool = False
                 ) -> PatientRecord:
    """``old`` with every entry of ``new`` written in (see the module docstring); with
    ``course`` (a form that shows the disease course) the events are ``new``'s."""
    update: dict[str, Any] = {"birth_date": new.birth_date}
    if course:
        update.update({name: getattr(new, name) for name in COURSE_LISTS})
    for name in ("sex", "childbearing_potential"):
        if getattr(new, name) is not None:
            update[name] = getattr(new, name)
    if new.diagnosis is not None:
        kept = old.diagnosis.model_dump(exclude_none=True) if old.diagnosis else {}
        update["diagnosis"] = type(new.diagnosis).model_validate(
            {**kept, **new.diagnosis.model_dump(exclude_none=True)})
    for name in ("observations", "performance", "findings", "consents", "attestations",
                 "pregnancy", "disease_status"):
        written = {_key(e): e for e in getattr(new, name)}
        if written:
            entries = [_same_or_new(e, written.pop(_key(e), e)) for e in getattr(old, name)]
            update[name] = entries + list(written.values())
    if new.treatments is not None:
        update["treatments"] = new.treatments + (old.treatments or [])[TREATMENT_ROWS:]
    return old.model_copy(update=update)
