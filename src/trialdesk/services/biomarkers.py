"""Biomarker samples and results on the record, and the biomarker table the analyses read.

A sample is taken for a sampling event of the patient's calendar (the protocol's
``arms[].sampling``): its identifier, when it was collected, the specimen and tube (the
protocol's by default), how it was processed, where it is stored, and who took it. Its
results attach to it later, one per fact of the dictionary: a number in one of the units
the fact converts from (kept as entered, checked in the fact's own unit), or one of the
fact's allowed values; the method, and for GD2 the lesion or site, and for a lysis assay
the effector:target ratio.

A result is also an entry of the patient's record, dated on the day the sample was
collected, where screening reads it (:mod:`trialdesk.facts.normalise`): a laboratory value
or measurement is an observation, a finding (a genotype, anti-drug antibodies) a finding,
a GD2 % or H-score a GD2 specimen, an ADCC or NK-cell lysis a cytotoxicity assay. A
correction replaces that entry; the result it corrects stays in the store as the earlier
revision. Result and record change are one transaction.

Who may do what (:mod:`trialdesk.services.roles`): ``sample.record`` takes samples,
``biomarker.result`` enters and corrects results; the clinical record's readers see them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from trialdesk.errors import FactError, NotFoundError, ScheduleError, TrialdeskError
from trialdesk.facts.dictionary import FACTS, FactDef, FactKind, FactType
from trialdesk.facts.patient import canonical_value, patient_from_data
from trialdesk.forms.build import UNIT_TEXT, entry_units, label_of
from trialdesk.protocol.model import Protocol, Sampling
from trialdesk.schedule.plan import Event, EventKind
from trialdesk.schedule.records import EventRecord, RecordStatus
from trialdesk.services.accounts import Principal
from trialdesk.services.cellproduct import calendar_page as product_calendar_page
from trialdesk.services.context import Services
from trialdesk.services.journeys import Loaded, load_journey, now, renamed
from trialdesk.services.patients import load_patient
from trialdesk.services.roles import Permission
from trialdesk.store.biomarkers import SampleRow

P = Permission
SAMPLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RATIO = re.compile(r"^\d+(\.\d+)?:1$")

#: GD2 results: the fact, and the method and value of the GD2 specimen they make.
GD2_RESULTS = {"gd2_ihc_percent": ("ihc", "percent_positive"),
               "gd2_flow_percent": ("flow_cytometry", "percent_positive"),
               "gd2_marrow_percent": ("marrow_immunocytology", "percent_positive"),
               "gd2_ihc_h_score": ("ihc", "h_score")}
#: Lysis results: the assay of the cytotoxicity record they make.
LYSIS_RESULTS = {"adcc_lysis": "adcc", "nk_cytotoxicity_lysis": "nk_cytotoxicity"}
RESULT_KINDS = (FactKind.LAB, FactKind.MEASUREMENT, FactKind.FINDING)
_STOP = {"of", "the", "in", "a", "per", "and", "by", "blood", "serum", "level", "count"}


# ---------------------------------------------------------------------------- the dictionary


def result_facts() -> list[FactDef]:
    """Every fact a sample's result may be: laboratory values, measurements, findings."""
    return sorted((f for f in FACTS.values() if f.kind in RESULT_KINDS
                   and f.type is not FactType.DATE), key=lambda f: f.description.casefold())


def _words(text: str) -> set[str]:
    text = re.sub(r"\([^)]*\)", " ", text.casefold())
    return {w for w in re.findall(r"[a-z0-9]+", text) if w not in _STOP}


def _compact(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", re.sub(r"\([^)]*\)", " ", text.casefold()))


def measured_facts(measurements: Sequence[str]) -> list[str]:
    """The facts a sampling schedule's measurements name (by the fact's name or the words
    of its description); a measurement no fact matches (an ECG) gives none.

    >>> measured_facts(["IL-6", "CRP", "arterial partial oxygen pressure", "electrocardiogram"])
    ['il6', 'crp', 'pao2']
    """
    return list(_measured(tuple(measurements)))


@lru_cache(maxsize=256)
def _measured(measurements: tuple[str, ...]) -> tuple[str, ...]:
    """:func:`measured_facts`, once per schedule (the dictionary does not change)."""
    out: list[str] = []
    facts = result_facts()
    for text in measurements:
        words = _words(text)
        exact = [f.name for f in facts if _compact(text) in (_compact(f.name),
                                                             _compact(f.description))]
        loose = [f.name for f in facts
                 if words and words <= _words(f.name.replace("_", " ")) | _words(f.description)]
        out += [name for name in (exact or loose) if name not in out]
    return tuple(out)


def result_field(name: str) -> dict[str, Any]:
    """How a result of fact ``name`` is entered: label, widget, units or allowed values,
    and the extra details it needs (lesion or site for GD2, E:T ratio for a lysis)."""
    fact = FACTS.get(name)
    if fact is None or fact.kind not in RESULT_KINDS:
        raise FactError(f"'{name}' is not a laboratory value, measurement or finding",
                        where="fact")
    units = entry_units(fact) if fact.is_numeric else ()
    widget = ("number" if fact.is_numeric else "yesno" if fact.type is FactType.BOOLEAN
              else "choice" if fact.values else "text")
    return {"fact": name, "label": label_of(fact.description), "widget": widget,
            "unit": fact.unit, "units": [{"value": u, "text": UNIT_TEXT.get(u, u)} for u in units],
            "choices": list(fact.values or ()), "minimum": fact.minimum,
            "maximum": fact.maximum, "code": fact.code, "site": name in GD2_RESULTS,
            "ratio": name in LYSIS_RESULTS,
            "method": GD2_RESULTS[name][0] if name in GD2_RESULTS else None}


# ---------------------------------------------------------------------------- sampling events


def _sampling_of(protocol: Protocol, arm: str | None, event_id: str) -> Sampling | None:
    """The sampling schedule an event comes from (event ids ``s<i>.…`` or ``c<n>.s<i>``)."""
    found = re.search(r"(?:^|\.)s(\d+)(?:\.|$)", event_id)
    chosen = next((a for a in protocol.arms if a.id == arm), None)
    if found is None or chosen is None:
        return None
    index = int(found.group(1)) - 1
    return chosen.sampling[index] if 0 <= index < len(chosen.sampling) else None


def _sampling_event(loaded: Loaded, event_id: str) -> tuple[Event, Sampling | None]:
    cal = loaded.calendar_or_none()
    if cal is None:
        raise ScheduleError("the calendar has no start date or no arm yet", where="event_id")
    try:
        event = cal.event(event_id)
    except TrialdeskError:
        raise ScheduleError(f"'{event_id}' is not an event of this patient's calendar",
                            where="event_id") from None
    if event.kind is not EventKind.SAMPLING:
        raise ScheduleError(f"'{event_id}' is a {event.kind.value} event, not a sampling event",
                            where="event_id")
    return event, _sampling_of(loaded.protocol, loaded.journey.arm, event_id)


def _text(value: str | None, limit: int, where: str) -> str | None:
    if value is None or not value.strip():
        return None
    value = " ".join(value.split())
    if len(value) > limit:
        raise FactError(f"at most {limit} characters", where=where)
    return value


def _moment(at: datetime) -> datetime:
    """A clinical time as stored: naive UTC, to the minute."""
    if at.tzinfo is not None:
        from datetime import UTC

        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.replace(second=0, microsecond=0)


def _sample_view(row: SampleRow) -> dict[str, Any]:
    current = row.current()
    return {**row.document, "study_number": row.study_number, "trial_id": row.trial_id,
            "version": row.version, "recorded_at": row.recorded_at,
            "recorded_by": row.recorded_by, "updated_at": row.updated_at,
            "updated_by": row.updated_by,
            "results": [{**r.document, "revision": r.revision, "recorded_at": r.recorded_at,
                         "recorded_by": r.recorded_by, "label": label_of(FACTS[r.fact].description)
                         if r.fact in FACTS else r.fact}
                        for r in sorted(current.values(), key=lambda r: r.fact)],
            "corrections": [{**r.document, "revision": r.revision, "recorded_at": r.recorded_at,
                             "recorded_by": r.recorded_by} for r in row.results
                            if r.revision < current[r.fact].revision]}


def record_sample(ctx: Services, who: Principal, study_number: str, *, event_id: str,
                  sample_id: str, collected_at: datetime, specimen: str | None = None,
                  tube: str | None = None, processing: str | None = None,
                  storage: str | None = None, by: str | None = None,
                  reason: str = "sample taken") -> dict[str, Any]:
    """A sample taken for a sampling event of the patient's calendar."""
    loaded = load_journey(ctx, who, study_number, P.SAMPLE_RECORD)
    user = who.require_user()
    document = _sample_document(ctx, loaded, event_id=event_id, sample_id=sample_id,
                                collected_at=collected_at, specimen=specimen, tube=tube,
                                processing=processing, storage=storage,
                                by=by or user.full_name)
    record = None
    if not any(r.event_id == event_id for r in loaded.journey.records):
        # The first sample of a sampling event records the event done on the calendar.
        record = EventRecord(event_id=document["event_id"], status=RecordStatus.DONE,
                             at=datetime.fromisoformat(document["collected_at"]),
                             by=document["by"], recorded_at=now(ctx))
        try:
            loaded.journey.with_record(loaded.protocol, record)  # the calendar accepts it
        except TrialdeskError as exc:
            raise renamed(exc, {"at": "collected_at"}) from None
    row = ctx.store.add_biomarker_sample(
        study_number, document, actor=user.username, reason=reason,
        event_record=record.model_dump(mode="json") if record else None,
        journey_version=loaded.version)
    return _sample_view(row)


def _sample_document(ctx: Services, loaded: Loaded, *, event_id: str, sample_id: str,
                     collected_at: datetime, specimen: str | None, tube: str | None,
                     processing: str | None, storage: str | None, by: str) -> dict[str, Any]:
    event, sampling = _sampling_event(loaded, event_id)
    sample_id = sample_id.strip()
    if not SAMPLE_ID.match(sample_id):
        raise FactError("letters, digits, '.', '_' and '-' (up to 64), starting with a letter "
                        "or digit", where="sample_id")
    at = _moment(collected_at)
    if at > now(ctx):
        raise FactError(f"{at:%Y-%m-%d %H:%M} is in the future", where="collected_at")
    birth = date.fromisoformat(str(loaded.patient.record["birth_date"]))
    if at.date() < birth:
        raise FactError("before the patient's date of birth", where="collected_at")
    specimen = _text(specimen, 200, "specimen") or (sampling.specimen if sampling else None)
    if specimen is None:
        raise FactError("say which specimen was taken (the protocol names none for this event)",
                        where="specimen")
    return {"sample_id": sample_id, "event_id": event.id, "event": event.name,
            "collected_at": at.isoformat(timespec="minutes"), "specimen": specimen,
            "tube": _text(tube, 200, "tube") or (sampling.tube if sampling else None),
            "processing": _text(processing, 1000, "processing"),
            "storage": _text(storage, 200, "storage"), "by": _text(by, 200, "by") or by}


def load_sample(ctx: Services, who: Principal, sample_id: str,
                permission: Permission = P.CLINICAL_READ) -> SampleRow:
    """A stored sample, for a caller with ``permission`` on its patient."""
    who.require_user()
    row = ctx.store.biomarker_sample(sample_id.strip())
    if row is None:
        raise NotFoundError(f"no sample '{sample_id}'", where="sample_id")
    try:
        load_patient(ctx, who, row.study_number, permission)
    except NotFoundError:
        raise NotFoundError(f"no sample '{sample_id}'", where="sample_id") from None
    return row


def sample_view(ctx: Services, who: Principal, sample_id: str) -> dict[str, Any]:
    """One sample with its current results and corrected revisions."""
    return _sample_view(load_sample(ctx, who, sample_id))


def correct_sample(ctx: Services, who: Principal, sample_id: str, *, version: int,
                   collected_at: datetime | None = None, specimen: str | None = None,
                   tube: str | None = None, processing: str | None = None,
                   storage: str | None = None, reason: str) -> dict[str, Any]:
    """The sample with the given details changed (the others kept), audited with ``reason``."""
    row = load_sample(ctx, who, sample_id, P.SAMPLE_RECORD)
    loaded = load_journey(ctx, who, row.study_number, P.SAMPLE_RECORD)
    user = who.require_user()
    doc = row.document
    document = _sample_document(
        ctx, loaded, event_id=row.event_id, sample_id=row.sample_id,
        collected_at=collected_at or datetime.fromisoformat(doc["collected_at"]),
        specimen=specimen or doc.get("specimen"), tube=tube or doc.get("tube"),
        processing=processing if processing is not None else doc.get("processing"),
        storage=storage if storage is not None else doc.get("storage"), by=doc["by"])
    late = [r.fact for r in row.current().values()
            if datetime.fromisoformat(r.document["reported_at"])
            < datetime.fromisoformat(document["collected_at"])]
    if late:
        raise FactError(f"after the report of {', '.join(late)}", where="collected_at")
    if row.current() and document["collected_at"][:10] != doc["collected_at"][:10]:
        raise FactError("the day a sample with results was collected dates its results in the "
                        "patient's record; correct its results after a new sample instead",
                        where="collected_at")
    saved = ctx.store.correct_biomarker_sample(row.sample_id, document, expected_version=version,
                                               actor=user.username, reason=reason)
    return _sample_view(saved)


def patient_samples(ctx: Services, who: Principal, study_number: str) -> list[dict[str, Any]]:
    """The patient's samples with their current results and the corrected revisions."""
    load_patient(ctx, who, study_number, P.CLINICAL_READ)
    return [_sample_view(r) for r in ctx.store.biomarker_samples(study_number=study_number)]


# ---------------------------------------------------------------------------- results


def _number(fact: FactDef, value: Any) -> float:
    if isinstance(value, bool):
        raise FactError("enter a number", where="value")
    if isinstance(value, str):
        text = value.strip().replace(",", ".")
        if not text:
            raise FactError("enter the result", where="value")
        try:
            value = float(text)
        except ValueError:
            raise FactError(f"'{value.strip()}' is not a number", where="value") from None
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise FactError("enter a finite number", where="value")
    if fact.type is FactType.INTEGER and not number.is_integer():
        raise FactError("enter a whole number", where="value")
    return number


def _value(fact: FactDef, value: Any, unit: str | None) -> tuple[Any, str | None, Any]:
    """The value as entered, its unit, and the value in the fact's unit (checked)."""
    if fact.is_numeric:
        number = _number(fact, value)
        unit = (unit or "").strip() or None
        allowed = entry_units(fact)
        if fact.unit and fact.unit != "ULN":
            unit = unit or fact.unit
            if unit not in allowed:
                texts = ", ".join(UNIT_TEXT.get(u, u) for u in allowed)
                raise FactError(f"choose a unit from: {texts}", where="unit")
        canonical = canonical_value(fact.name, number, unit, where="unit")
        low, high = fact.minimum, fact.maximum
        if (low is not None and canonical < low) or (high is not None and canonical > high):
            shown = f"{low:g}–{high:g} {UNIT_TEXT.get(fact.unit or '', fact.unit or '')}".strip()
            raise FactError(f"{number:g} {UNIT_TEXT.get(unit or '', unit or '')} is impossible "
                            f"(possible range {shown})".replace("  ", " "), where="value")
        return (int(number) if fact.type is FactType.INTEGER else number), unit, canonical
    if unit not in (None, ""):
        raise FactError(f"{fact.name} has no unit", where="unit")
    if fact.type is FactType.BOOLEAN:
        if isinstance(value, bool):
            return value, None, value
        text = str(value).strip().casefold()
        if text in ("yes", "true", "1"):
            return True, None, True
        if text in ("no", "false", "0"):
            return False, None, False
        raise FactError("answer yes or no", where="value")
    text = str(value).strip() if value is not None else ""
    if not text:
        raise FactError("enter the result", where="value")
    if fact.values is not None and text not in fact.values:
        raise FactError(f"choose one of: {', '.join(fact.values)}", where="value")
    return text, None, text


def _entry(sample: Mapping[str, Any], result: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The patient-record list and entry a result makes (dated on collection)."""
    on = str(sample["collected_at"])[:10]
    fact = str(result["fact"])
    if fact in GD2_RESULTS:
        method, field = GD2_RESULTS[fact]
        return "gd2_specimens", {"date": on, "site": result["site"], "method": method,
                                 "percent_positive": None, "intensity": None, "h_score": None,
                                 field: result["value"], "specimen_id": sample["sample_id"]}
    if fact in LYSIS_RESULTS:
        return "cytotoxicity_assays", {
            "date": on, "assay": LYSIS_RESULTS[fact], "lysis_percent": result["canonical_value"],
            "effector_target_ratio": result["effector_target_ratio"], "target_cells": None,
            "antibody": None}
    if FACTS[fact].kind is FactKind.FINDING:
        return "findings", {"name": fact, "value": result["value"], "unit": result.get("unit"),
                            "date": on}
    return "observations", {"name": fact, "value": result["value"], "unit": result.get("unit"),
                            "date": on, "ref_low": None, "ref_high": None}


def _patient_change(sample: Mapping[str, Any], result: Mapping[str, Any], today: date
                    ) -> Any:
    def change(record: dict[str, Any], old: Mapping[str, Any] | None) -> dict[str, Any]:
        out = dict(record)
        if old is not None:
            key, entry = _entry(sample, old)
            items = list(out.get(key) or [])
            if entry in items:
                items.remove(entry)
            out[key] = items
        key, entry = _entry(sample, result)
        out[key] = [*(out.get(key) or []), entry]
        try:
            checked = patient_from_data(out, today=today, source="the patient's record")
        except FactError as exc:
            raise FactError(f"the patient's record refuses this result: {exc.reason}",
                            where="value") from None
        return checked.model_dump(mode="json")
    return change


def record_result(ctx: Services, who: Principal, sample_id: str, *, fact: str, value: Any,
                  unit: str | None = None, method: str | None = None, site: str | None = None,
                  effector_target_ratio: str | None = None, reported_at: datetime | None = None,
                  by: str | None = None, corrects: int | None = None,
                  reason: str | None = None) -> dict[str, Any]:
    """A result of the sample (or, with ``corrects``, the correction of that revision of its
    result for ``fact``; a correction needs its reason)."""
    row = load_sample(ctx, who, sample_id, P.BIOMARKER_RESULT_RECORD)
    user = who.require_user()
    result_field(fact)  # the fact is one a result may be
    definition = FACTS[fact]
    if corrects is not None and not (reason or "").strip():
        raise FactError("say why the result is corrected", where="reason")
    entered, unit, canonical = _value(definition, value, unit)
    collected = datetime.fromisoformat(row.document["collected_at"])
    moment = now(ctx)
    reported = _moment(reported_at) if reported_at is not None else moment.replace(second=0)
    if reported < collected:
        raise FactError(f"reported {reported:%Y-%m-%d %H:%M}, before the sample was collected "
                        f"({collected:%Y-%m-%d %H:%M})", where="reported_at")
    if reported > moment:
        raise FactError(f"{reported:%Y-%m-%d %H:%M} is in the future", where="reported_at")
    document: dict[str, Any] = {
        "sample_id": row.sample_id, "fact": fact, "value": entered, "unit": unit,
        "canonical_value": canonical, "canonical_unit": definition.unit,
        "code": definition.code, "method": _text(method, 200, "method"),
        "reported_at": reported.isoformat(timespec="minutes"),
        "by": _text(by, 200, "by") or user.full_name}
    if fact in GD2_RESULTS:
        document["site"] = _text(site, 200, "site")
        if document["site"] is None:
            raise FactError("name the lesion or site the specimen comes from", where="site")
        document["method"] = document["method"] or GD2_RESULTS[fact][0]
    elif site is not None and site.strip():
        document["site"] = _text(site, 200, "site")
    if fact in LYSIS_RESULTS:
        ratio = (effector_target_ratio or "").strip().replace(" ", "")
        if not RATIO.match(ratio):
            raise FactError("the effector:target ratio, e.g. 10:1", where="effector_target_ratio")
        document["effector_target_ratio"] = ratio
    if reason and corrects is not None:
        document["correction_reason"] = " ".join(reason.split())
    saved = ctx.store.add_biomarker_result(
        row.sample_id, document, corrects=corrects,
        patient_change=_patient_change(row.document, document, ctx.store.now().date()),
        actor=user.username,
        reason=reason or f"result {fact} of sample {row.sample_id}")
    return _sample_view(saved)


# ---------------------------------------------------------------------------- the calendar


def _status(samples: Sequence[SampleRow], wanted: Sequence[str]) -> str:
    if not samples:
        return "not taken"
    have = {f for s in samples for f in s.current()}
    if not have:
        return "taken, no result yet"
    waiting = [f for f in wanted if f not in have]
    return (f"taken, {len(have)} result(s); awaiting {len(waiting)}" if waiting
            else f"taken, {len(have)} result(s)")


def calendar_page(ctx: Services, who: Principal, study_number: str) -> dict[str, Any]:
    """The calendar page (:func:`trialdesk.services.cellproduct.calendar_page`) with, on
    each sampling event, its samples, their results and the status ("not taken", "taken, no
    result yet", "taken, N result(s)"), and whether the caller may record them."""
    page = product_calendar_page(ctx, who, study_number)
    cal = page.get("calendar")
    if not cal:
        return page
    loaded = load_journey(ctx, who, study_number, P.CLINICAL_READ)  # kept until a write
    protocol, arm, patient = loaded.protocol, loaded.row.arm, loaded.patient
    samples = ctx.catalogue.kept(("biomarker samples", study_number),
                                 lambda: ctx.store.biomarker_samples(study_number=study_number))
    page["can_sample"] = who.can(P.SAMPLE_RECORD, patient.trial_id, patient.site)
    page["can_result"] = who.can(P.BIOMARKER_RESULT_RECORD, patient.trial_id, patient.site)
    for e in cal.get("events", []):
        if e.get("kind") != EventKind.SAMPLING.value:
            continue
        sampling = _sampling_of(protocol, arm, e["id"])
        wanted = measured_facts(sampling.measurements) if sampling else []
        mine = [s for s in samples if s.event_id == e["id"]]
        e["samples"] = [_sample_view(s) for s in mine]
        e["sample_status"] = _status(mine, wanted)
    return page


def sample_form(ctx: Services, who: Principal, study_number: str, event_id: str
                ) -> dict[str, Any]:
    """What the "Record sample" form shows for a sampling event: its name and date, the
    protocol's specimen and tube, and the samples already taken for it."""
    loaded = load_journey(ctx, who, study_number, P.SAMPLE_RECORD)
    event, sampling = _sampling_event(loaded, event_id)
    return {"study_number": study_number, "event_id": event.id, "event": event.name,
            "date": event.date.isoformat() if event.date else None,
            "specimen": sampling.specimen if sampling else None,
            "tube": sampling.tube if sampling else None,
            "measurements": list(sampling.measurements) if sampling else [],
            "unconfirmed": bool(sampling and sampling.unconfirmed),
            "samples": [_sample_view(s) for s in ctx.store.biomarker_samples(
                study_number=study_number) if s.event_id == event.id]}


def result_form(ctx: Services, who: Principal, sample_id: str, fact: str | None
                ) -> dict[str, Any]:
    """What the "Record result" form shows: the sample, the facts its event measures first,
    then every other result fact, and (once a fact is chosen) that fact's field."""
    row = load_sample(ctx, who, sample_id, P.BIOMARKER_RESULT_RECORD)
    loaded = load_journey(ctx, who, row.study_number, P.BIOMARKER_RESULT_RECORD)
    sampling = _sampling_of(loaded.protocol, loaded.journey.arm, row.event_id)
    suggested = measured_facts(sampling.measurements) if sampling else []
    current = row.current()
    choices: list[dict[str, Any]] = [
        {"fact": f.name, "label": label_of(f.description), "suggested": f.name in suggested,
         "done": f.name in current} for f in result_facts()]
    choices.sort(key=lambda c: (not c["suggested"], suggested.index(c["fact"])
                                if c["suggested"] else 0, c["label"].casefold()))
    out: dict[str, Any] = {"sample": _sample_view(row), "choices": choices, "field": None,
                           "current": None}
    if fact:
        out["field"] = result_field(fact)
        found = current.get(fact)
        out["current"] = ({**found.document, "revision": found.revision} if found else None)
    return out


# ---------------------------------------------------------------------------- analysis

#: Markers followed over time by arm (seed 004: IL-6, IL-10, creatinine, bilirubin,
#: procalcitonin, CRP and the oxygenation ratio), where the record holds values.
LONGITUDINAL = ("il6", "il10", "procalcitonin", "crp", "creatinine", "bilirubin", "pao2_fio2")
#: Germline findings the subgroup analyses use (seed 001: FCGR genotypes).
SUBGROUPS = ("fcgr3a_genotype", "fcgr2a_genotype")
#: Organ support counted as free days to day 28 (death = 0 free days, see clinical.sepsis).
SUPPORTS = ("ventilation", "rrt")

Table = tuple[str, Any, str]
"""An analysis table: title, DataFrame, note (what it is, what is missing)."""


def study_day(enrolled: date, on: date) -> int:
    """The study day of ``on``: day 1 is the day of enrolment, the day before is day -1
    (there is no day 0, as in SDTM --DY).

    >>> study_day(date(2026, 11, 21), date(2026, 11, 21)), study_day(date(2026, 11, 21),
    ...                                                               date(2026, 11, 20))
    (1, -1)
    """
    days = (on - enrolled).days
    return days + 1 if days >= 0 else days


def biomarker_rows(samples: Sequence[SampleRow], enrolled: Mapping[str, date]
                   ) -> tuple[list[dict[str, Any]], list[str]]:
    """The long biomarker table's rows (``docs/biomarkers.md``) from stored results: the
    current revision of each result, in the fact's unit, on the study day of collection
    (none for an undated finding such as a genotype); the PaO₂/FiO₂ ratio where one sample
    has both. Two values of one patient, marker and day: the later sample is kept and
    the note says so; patients not in ``enrolled`` are left out."""
    from trialdesk.clinical.sepsis import pao2_fio2

    by_key: dict[tuple[str, str, int | None], tuple[str, dict[str, Any]]] = {}
    notes: list[str] = []
    for s in sorted(samples, key=lambda s: (s.collected_at, s.sample_id)):
        if s.study_number not in enrolled:
            continue
        on = date.fromisoformat(s.collected_at[:10])
        current = {f: r.document for f, r in s.current().items()}
        if "pao2" in current and "fio2" in current:
            ratio = pao2_fio2(float(current["pao2"]["canonical_value"]),
                              float(current["fio2"]["canonical_value"]) / 100)
            current["pao2_fio2"] = {"canonical_value": ratio, "canonical_unit": "mmHg"}
        for fact, doc in current.items():
            dated = FACTS[fact].dated if fact in FACTS else True
            day = study_day(enrolled[s.study_number], on) if dated else None
            key = (s.study_number, fact, day)
            if key in by_key:
                notes.append(f"{s.study_number}: two {fact} values on study day {day} "
                             f"(samples {by_key[key][0]} and {s.sample_id}); the later kept")
            by_key[key] = (s.sample_id, {"patient_id": s.study_number, "biomarker": fact,
                                         "day": day, "value": doc["canonical_value"],
                                         "unit": doc.get("canonical_unit")})
    return [row for _, row in by_key.values()], notes


def _frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    frame = pd.DataFrame(rows)
    return frame.astype(object).where(frame.notna(), None)


def _episodes(ctx: Services, patients: Sequence[str]) -> tuple[Any, list[str]]:
    """Organ-support episodes from the patients' records (None: not recorded)."""
    rows, unknown = [], []
    for sn in patients:
        episodes = ctx.store.patient(sn).record.get("support_episodes")
        if episodes is None:
            unknown.append(sn)
            continue
        rows += [{"patient_id": sn, "kind": e["kind"], "start_date": e["start"],
                  "end_date": e.get("end")} for e in episodes]
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["patient_id", "kind", "start_date", "end_date"])
    return frame, unknown


def biomarker_tables(ctx: Services, trial_id: str, data: Any) -> tuple[list[Table], list[str]]:
    """The biomarker analyses of a trial from the stored record (``data``: the outcome
    inputs of :func:`trialdesk.services.outcomes.trial_data`): per marker of
    :data:`LONGITUDINAL` with values, the summary by arm and day (missing counted), the
    Mann–Whitney test per day and the linear mixed model; free days to day 28 where the
    records hold organ-support episodes; Kaplan–Meier and log-rank by FCGR genotype."""
    from trialdesk.errors import OutcomeError
    from trialdesk.outcomes.biomarkers import (
        compare_free_days,
        free_days_table,
        join_baseline,
        longitudinal,
        mixed_model_formula,
        subgroup_survival,
        validate_biomarkers,
    )

    events = data.events
    if events is None:
        return [], ["no enrolled patient with an arm yet"]
    frame = events.frame
    enrolled = {str(p): _as_day(d) for p, d in zip(frame["patient_id"], frame["enrolment_date"],
                                                  strict=True)}
    arms = dict(zip(frame["patient_id"].astype(str), frame["arm"].astype(str), strict=True))
    rows, notes = biomarker_rows(ctx.store.biomarker_samples(trial_ids=[trial_id]), enrolled)
    tables: list[Table] = []
    if not rows:
        notes.append("no biomarker result recorded for an analysed patient")
    else:
        table = validate_biomarkers(_frame(rows), where="stored results")
        for name in LONGITUDINAL:
            if name not in table.names():
                continue
            try:
                result = longitudinal(table, arms, name)
            except OutcomeError as exc:
                notes.append(f"{name}: {exc.reason}")
                continue
            unit = next((r["unit"] for r in rows if r["biomarker"] == name and r["unit"]), "")
            tables.append((f"{name} by arm and study day ({unit})", result.summary,
                           "n: values; missing: patients of the arm without a value that day "
                           "(not imputed); CI t-based"))
            if not result.comparison.empty:
                tables.append((f"{name}: Mann–Whitney U per day", result.comparison,
                               "two-sided (scipy.stats.mannwhitneyu)"))
            if result.mixed is not None:
                tables.append((f"{name}: linear mixed model {mixed_model_formula()}",
                               result.mixed.reset_index(), result.mixed_note))
            else:
                notes.append(f"{name}: mixed model not fitted — {result.mixed_note}")
        for name in SUBGROUPS:
            if name not in table.names():
                continue
            from trialdesk.outcomes.endpoints import overall_survival

            try:
                joined = join_baseline(overall_survival(events), table, [name])
                found = subgroup_survival(joined, name)
            except OutcomeError as exc:
                notes.append(f"OS by {name}: {exc.reason}")
                continue
            lr = found.logrank
            tables.append((f"OS by {name}: Kaplan–Meier", found.km.summary.reset_index(),
                           f"log-rank across {', '.join(lr.groups)}: χ² = "
                           f"{lr.test_statistic:.3f}, df = {lr.degrees_of_freedom}, "
                           f"p = {lr.p_value:.4f}; without a genotype (left out): "
                           f"{len(found.missing)}"))
    episodes, unknown = _episodes(ctx, list(arms))
    if len(unknown) < len(arms):
        known = frame[~frame["patient_id"].astype(str).isin(unknown)]
        for support in SUPPORTS:
            per_patient = free_days_table(known, episodes, support)
            summary = compare_free_days(per_patient)
            test = summary.get("mann_whitney")
            tables.append((f"{support.replace('_', ' ')}-free days to day 28", per_patient,
                           f"death within the window = 0 (Schoenfeld & Bernard 2002); "
                           f"unknown (alive, last seen before day 28): {summary['unknown']}"
                           + (f"; Mann–Whitney U = {test['U']:g}, p = {test['p']:.4f}"
                              if test else "")))
    if unknown:
        notes.append(f"organ-support episodes not recorded for {len(unknown)} patient(s): "
                     "their free days are unknown")
    return tables, notes


def _as_day(value: Any) -> date:
    import pandas as pd

    return pd.Timestamp(value).date()


def _rows_json(frame: Any) -> list[dict[str, Any]]:
    import math

    out = []
    for r in frame.astype(object).where(frame.notna(), None).to_dict(orient="records"):
        out.append({str(k): (round(v, 4) if isinstance(v, float) and math.isfinite(v)
                             else None if isinstance(v, float) else v) for k, v in r.items()})
    return out


def outcomes_section(ctx: Services, who: Principal, trial_id: str) -> dict[str, Any]:
    """The outcomes page's biomarker section (de-identified, for the roles allowed the
    de-identified export): each analysis table as columns and rows, and the notes."""
    from trialdesk.services.outcomes import trial_data

    who.require(P.EXPORT_DEIDENTIFIED, trial_id)
    tables, notes = biomarker_tables(ctx, trial_id, trial_data(ctx, trial_id))
    return {"tables": [{"title": t, "note": n, "columns": [str(c) for c in f.columns],
                        "rows": _rows_json(f)} for t, f, n in tables], "notes": notes}


def dsmb_pdf(ctx: Services, who: Principal, trial_id: str) -> bytes:
    """The DSMB report (:func:`trialdesk.services.outcomes.dsmb_pdf`) with its biomarker
    section from the stored record."""
    from trialdesk.services.outcomes import dsmb_pdf as report
    from trialdesk.services.outcomes import trial_data

    who.require(P.EXPORT_DEIDENTIFIED, trial_id)
    tables, notes = biomarker_tables(ctx, trial_id, trial_data(ctx, trial_id))
    return report(ctx, who, trial_id, biomarkers=(tuple(tables), tuple(notes)))


def result_records(ctx: Services, trial_id: str, patients: Sequence[str]) -> list[dict[str, Any]]:
    """The current result of every sample of ``patients`` as export rows (value in the
    fact's unit), by collection time."""
    wanted = set(patients)
    out = []
    for s in ctx.store.biomarker_samples(trial_ids=[trial_id]):
        if s.study_number not in wanted:
            continue
        for fact, r in sorted(s.current().items()):
            d = r.document
            out.append({"patient_id": s.study_number, "sample_id": s.sample_id, "fact": fact,
                        "value": d["canonical_value"], "unit": d.get("canonical_unit"),
                        "collected_at": s.collected_at, "method": d.get("method"),
                        "site": d.get("site"), "specimen": s.document.get("specimen")})
    return out


def fhir_json(ctx: Services, who: Principal, trial_id: str) -> bytes:
    """The trial's FHIR R5 Bundle (:func:`trialdesk.services.outcomes.fhir_json`) with an
    Observation per current biomarker result of the analysed patients."""
    from fhir.resources.bundle import BundleEntry

    from trialdesk.outcomes.export_fhir import bundle_json, full_url, parse_bundle
    from trialdesk.outcomes.fhir_biomarkers import biomarker_observations
    from trialdesk.services.outcomes import fhir_json as outcome_bundle
    from trialdesk.services.outcomes import trial_data

    bundle = parse_bundle(outcome_bundle(ctx, who, trial_id))
    data = trial_data(ctx, trial_id)
    patients = [str(p) for p in data.events.frame["patient_id"]] if data.events else []
    observations = biomarker_observations(trial_id, result_records(ctx, trial_id, patients))
    bundle.entry = [*(bundle.entry or []), *(
        BundleEntry(resource=o, fullUrl=full_url("Observation", str(o.id))) for o in observations)]
    body = bundle_json(bundle)
    parse_bundle(body)
    return body
