"""A dose recorded at the bedside from its calendar row: given, partly given or withheld,
with the actual dose, start and stop time, infusion duration, rate and volume, route, lot
number, who gave it, and the weight and height measured on the day.

When the weight typed differs from the weight the planned dose was computed from by more
than the protocol's threshold (``dosing.weight_change_percent``, carried with its source
and its [unconfirmed] mark), the dose recomputed from the new weight is shown before
anything is saved (:func:`preview_administration`); saving then needs that preview to have
been seen for that weight. The record and the body measurement are one transaction, each
audited. Problems are named by the form's labels (:mod:`trialdesk.forms.administration`).

A recorded dose is corrected from the same form with a reason
(:func:`correct_administration`): the record's values are replaced, checked as a new record
would be, and the audit keeps the old values. The weight and height of the day stay as
recorded (they are body measurements the later doses are computed from); a dose given as a
cell product's infusion is corrected there, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from trialdesk.enrolment.journey import journey_calendar
from trialdesk.errors import AccessError, ConflictError, NotFoundError, TrialdeskError
from trialdesk.forms.administration import FIELDS, STATUSES, label_of, read_administration
from trialdesk.forms.parse import FormError
from trialdesk.protocol.model import Administration, Protocol, TimedStep
from trialdesk.schedule.dose import BodyMeasurement, compute_dose, weight_change_percent
from trialdesk.schedule.plan import Event
from trialdesk.schedule.records import Administered, EventRecord, RecordStatus
from trialdesk.schedule.status import allowed_statuses
from trialdesk.services.accounts import Principal
from trialdesk.services.context import Services
from trialdesk.services.journeys import Loaded, calendar_json, cell_product_event, load_journey, now
from trialdesk.services.roles import Permission

P = Permission


def _refused(exc: TrialdeskError) -> TrialdeskError:
    """A core's refusal as a form problem named by the field's label."""
    if isinstance(exc, (AccessError, ConflictError, NotFoundError, FormError)):
        return exc
    return FormError([f"{label_of(exc.where)}: {exc.reason}"])


def administration_of(protocol: Protocol, event: Event) -> Administration | None:
    """The protocol administration a calendar dose comes from (its course's, or the timed
    step's), matched by agent and, for a variant, the variant named on the event."""
    if event.dose is None:
        return None
    candidates: list[Administration] = []
    if event.course_id is not None:
        candidates = list(protocol.course(event.course_id).administrations)
    else:
        for arm in protocol.arms:
            candidates += [s.administration for s in arm.plan
                           if isinstance(s, TimedStep) and s.administration is not None]
    for adm in candidates:
        if adm.agent == event.dose.agent and (
                adm.variant is None or f"[{adm.variant}]" in event.name):
            return adm
    return None


def _dose_event(loaded: Loaded, event_id: str) -> Event:
    cal = loaded.calendar_or_none(None)
    if cal is None:
        raise FormError(["Dose: the calendar has no start date or no arm yet"])
    try:
        event = cal.event(event_id)
    except TrialdeskError as exc:
        raise FormError([f"Dose: {exc.reason}"]) from None
    if RecordStatus.GIVEN not in allowed_statuses(event):
        raise FormError([f"Dose: {event.name} is not a dose; record it on the calendar page"])
    return event


def _course_started(loaded: Loaded, event: Event) -> bool:
    number = event.course_number
    if number is None:
        return True
    cal = loaded.calendar_or_none(None)
    ids = {e.id for e in cal.course_events(number)} if cal else set()
    return any(r.event_id in ids for r in loaded.journey.records)


def administration_form(ctx: Services, who: Principal, study_number: str,
                        event_id: str) -> dict[str, Any]:
    """What the form of one calendar dose shows: the event, the planned dose and its
    working, the route and infusion the protocol plans, the weight the dose was computed
    from, the protocol's weight-change threshold, and the fields."""
    loaded = load_journey(ctx, who, study_number, P.ADMINISTRATION_RECORD)
    event = _dose_event(loaded, event_id)
    adm = administration_of(loaded.protocol, event)
    dosing = loaded.protocol.dosing
    dose = event.dose.to_json() if event.dose else None
    recorded = next((r for r in loaded.journey.records if r.event_id == event.id), None)
    return {
        "study_number": study_number, "trial_id": loaded.row.trial_id, "event_id": event.id,
        "name": event.name, "date": event.date.isoformat() if event.date else None,
        "deadline": event.deadline.isoformat(sep=" ", timespec="minutes")
        if event.deadline else None,
        "course_number": event.course_number, "dose": dose,
        "unit": event.dose.unit if event.dose else None,
        "route": adm.route if adm else None,
        "infusion": adm.infusion.model_dump(mode="json") if adm and adm.infusion else None,
        "threshold": {"percent": weight_change_percent(dosing),
                      "source": dosing.weight_change_percent.source,
                      "unconfirmed": dosing.weight_change_percent.unconfirmed},
        "cell_product": cell_product_event(loaded.protocol, event),
        "recorded": recorded.model_dump(mode="json") if recorded else None,
        "recorded_values": recorded_values(recorded) if recorded else None,
        "can_correct": _correctable(loaded, event, recorded),
        "can_delay": who.can(P.PATIENT_WRITE, loaded.row.trial_id, loaded.row.site)
        and event.course_number is not None and not _course_started(loaded, event),
        "statuses": list(STATUSES), "version": loaded.version,
        "fields": [replace(f, unit=event.dose.unit, units=(event.dose.unit,))
                   if f.name == "amount" and event.dose else f for f in FIELDS],
    }


#: The fields a correction of a recorded dose changes (the weight and height of the day stay).
CORRECTED = ("status", "amount", "at", "stopped_at", "duration_hours", "rate_ml_h",
             "volume_ml", "route", "lot", "by", "why")
_BODY = ("weight_kg", "height_cm", "measured_on", "weight_note")


def _minutes(moment: Any) -> str:
    return moment.isoformat(timespec="minutes") if moment is not None else ""


def recorded_values(record: EventRecord) -> dict[str, str]:
    """A stored record as the form's text (what the correction form starts from)."""
    d = record.details
    out = {"status": record.status.value, "amount": f"{record.amount:g}"
           if record.amount is not None else "", "at": _minutes(record.at),
           "by": record.by, "why": record.reason or ""}
    if d is not None:
        out.update({"stopped_at": _minutes(d.stopped_at), "route": d.route or "",
                    "lot": d.lot or "", **{k: f"{getattr(d, k):g}" for k in
                                           ("duration_hours", "rate_ml_h", "volume_ml")
                                           if getattr(d, k) is not None}})
    return {k: v for k, v in out.items() if v}


def _correctable(loaded: Loaded, event: Event, record: EventRecord | None) -> bool:
    return record is not None and not (
        cell_product_event(loaded.protocol, event)
        and record.status in (RecordStatus.GIVEN, RecordStatus.PARTLY_GIVEN))


def weight_change(loaded: Loaded, event: Event, details: Mapping[str, Any]
                  ) -> dict[str, Any] | None:
    """The weight typed against the weight the planned dose was computed from; above the
    protocol's threshold, with the dose recomputed from the new weight (and the height
    typed, else the one the plan used). None when no weight was typed or the dose does not
    depend on it."""
    dose = event.dose
    weight = details.get("weight_kg")
    if weight is None or dose is None or dose.weight_kg is None or dose.basis == "fixed":
        return None
    dosing = loaded.protocol.dosing
    threshold = weight_change_percent(dosing)
    mark = " [unconfirmed]" if dosing.weight_change_percent.unconfirmed else ""
    change = (weight - dose.weight_kg) / dose.weight_kg * 100
    out: dict[str, Any] = {
        "from_kg": dose.weight_kg, "from_on": dose.measured_on.isoformat()
        if dose.measured_on else None, "to_kg": weight,
        "to_on": details["measured_on"].isoformat(), "change_percent": round(change, 1),
        "threshold_percent": threshold, "threshold_source": dosing.weight_change_percent.source,
        "unconfirmed": bool(mark), "exceeded": abs(change) > threshold, "recomputed": None,
        "planned": dose.shown(), "problem": None}
    basis = f"{weight:g} kg on {out['to_on']} is {change:+.1f}% from the {dose.weight_kg:g} kg " \
            f"({out['from_on']}) the planned dose was computed from"
    if not out["exceeded"]:
        out["text"] = f"Weight {basis}: within the protocol's {threshold:g}%{mark}; the " \
                      "planned dose stands."
        return out
    adm = administration_of(loaded.protocol, event)
    height = details.get("height_cm") or dose.height_cm
    if adm is None:
        out["problem"] = "the protocol administration of this dose was not found"
    else:
        try:
            body = BodyMeasurement(on=details["measured_on"], weight_kg=weight, height_cm=height)
            again = compute_dose(adm.agent, adm.dose, body, dosing, loaded.protocol.bsa_formula)
            out["recomputed"] = again.to_json()
        except TrialdeskError as exc:
            out["problem"] = exc.reason
    shown = out["recomputed"]["shown"] if out["recomputed"] else f"not computed ({out['problem']})"
    out["text"] = (f"Weight {basis}: more than the protocol's {threshold:g}%{mark}. Recomputed "
                   f"dose: {shown}; planned: {dose.shown()}.")
    return out


def _typed(ctx: Services, loaded: Loaded, event: Event, values: Mapping[str, Any]
           ) -> dict[str, Any]:
    moment = now(ctx)
    return read_administration(values, unit=event.dose.unit if event.dose else None,
                               today=moment.date(), now=moment)


def preview_administration(ctx: Services, who: Principal, study_number: str, event_id: str,
                           values: Mapping[str, Any]) -> dict[str, Any]:
    """The record the values give and the weight check; nothing is stored."""
    loaded = load_journey(ctx, who, study_number, P.ADMINISTRATION_RECORD)
    event = _dose_event(loaded, event_id)
    typed = _typed(ctx, loaded, event, values)
    return {"event_id": event.id, "values": {k: v for k, v in typed.items() if k != "details"},
            "details": typed["details"],
            "weight": weight_change(loaded, event, typed["details"])}


def record_administration(ctx: Services, who: Principal, study_number: str, event_id: str,
                          values: Mapping[str, Any], *, confirmed_weight: float | None,
                          reason: str) -> dict[str, Any]:
    """Store what happened to one calendar dose (see the module docstring).

    ``confirmed_weight`` is the weight whose recomputed dose was shown (the preview); a
    weight beyond the protocol's threshold that was not shown is refused, naming it."""
    loaded = load_journey(ctx, who, study_number, P.ADMINISTRATION_RECORD)
    user = who.require_user()
    event = _dose_event(loaded, event_id)
    typed = _typed(ctx, loaded, event, values)
    details = typed["details"]
    if typed["status"] in ("given", "partly_given") and \
            cell_product_event(loaded.protocol, event):
        raise FormError([f"What happened: {event.name} is a cell product; it is recorded as "
                         "given by its infusion, after a released product and the two-person "
                         "bedside verification"])
    check = weight_change(loaded, event, details)
    if check is not None and check["exceeded"]:
        if confirmed_weight is None or abs(confirmed_weight - details["weight_kg"]) > 1e-9:
            raise FormError([f"Weight on the day: {check['text']} Check the recomputed dose, "
                             "then record again to confirm"])
        details = {**details, "weight_note": check["text"]}
    body = None
    if details.get("weight_kg") is not None or details.get("height_cm") is not None:
        body = BodyMeasurement(on=details["measured_on"], weight_kg=details.get("weight_kg"),
                               height_cm=details.get("height_cm"),
                               source=f"measured for {event.name} ({event.id}), recorded by "
                                      f"{user.full_name}")
    try:
        record = EventRecord(
            event_id=event.id, status=RecordStatus(typed["status"]), at=typed["at"],
            by=typed["by"] or user.full_name, amount=typed["amount"], unit=typed["unit"],
            reason=typed["reason"], recorded_at=now(ctx),
            details=Administered(**details) if details else None)
        journey = loaded.journey.with_body(body) if body is not None else loaded.journey
        journey = journey.with_record(loaded.protocol, record)
        journey_calendar(loaded.protocol, journey)  # the calendar must still lay out
    except TrialdeskError as exc:
        raise _refused(exc) from None
    ctx.store.add_administration(
        study_number, record.model_dump(mode="json"),
        body.model_dump(mode="json") if body is not None else None,
        expected_version=loaded.version, actor=user.username,
        reason=reason or f"{typed['status'].replace('_', ' ')}: recorded from the calendar")
    return {**calendar_json(ctx, who, study_number), "event_id": event.id,
            "record": record.model_dump(mode="json"), "weight": check}



def correct_administration(ctx: Services, who: Principal, study_number: str, event_id: str,
                           values: Mapping[str, Any], *, reason: str) -> dict[str, Any]:
    """Correct a recorded dose from its form, with a reason: what happened, the actual dose,
    the times, the infusion, route, lot, who gave it and why (the weight and height of the
    day stay as recorded). Checked as a new record would be; the audit keeps the old values."""
    loaded = load_journey(ctx, who, study_number, P.ADMINISTRATION_RECORD)
    user = who.require_user()
    event = _dose_event(loaded, event_id)
    old = next((r for r in loaded.journey.records if r.event_id == event.id), None)
    if old is None:
        raise FormError([f"What happened: {event.name} is not recorded yet; record it from "
                         "its calendar row"])
    if not _correctable(loaded, event, old):
        raise FormError([f"What happened: {event.name} was recorded as given by its infusion, "
                         "after the bedside verification; it is corrected with the product's "
                         "infusion record, not here"])
    why = (reason or "").strip()
    if not why:
        raise FormError(["Reason for the correction: say why the record is corrected"])
    if len(why) > 500:
        raise FormError(["Reason for the correction: shorten it to 500 characters or fewer"])
    typed = _typed(ctx, loaded, event, {k: v for k, v in values.items()
                                        if k.split(".")[0] in CORRECTED})
    if typed["status"] in ("given", "partly_given") and \
            cell_product_event(loaded.protocol, event):
        raise FormError([f"What happened: {event.name} is a cell product; it is recorded as "
                         "given by its infusion, after a released product and the two-person "
                         "bedside verification"])
    kept = old.details.model_dump(include=set(_BODY), exclude_none=True) if old.details else {}
    details = {**{k: v for k, v in typed["details"].items() if k not in _BODY}, **kept}
    try:
        record = EventRecord(
            event_id=event.id, status=RecordStatus(typed["status"]), at=typed["at"],
            by=typed["by"] or user.full_name, amount=typed["amount"], unit=typed["unit"],
            reason=typed["reason"], recorded_at=old.recorded_at,
            details=Administered(**details) if details else None)
        journey = loaded.journey.with_corrected_record(loaded.protocol, record)
        journey_calendar(loaded.protocol, journey)  # the calendar must still lay out
    except TrialdeskError as exc:
        raise _refused(exc) from None
    if record == old:
        raise FormError(["Form: nothing was changed; change a value or go back to the "
                         "calendar"])
    ctx.store.correct_event_record(study_number, record.model_dump(mode="json"),
                                   expected_version=loaded.version, actor=user.username,
                                   reason=why)
    return {**calendar_json(ctx, who, study_number), "event_id": event.id,
            "record": record.model_dump(mode="json")}
