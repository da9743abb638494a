"""The pharmacist's sign-off per course: all the doses of a course on one page with their
working (the BSA or weight used and when it was measured, the formula, the rounding, the
capsules), signed with one e-signature (the password again) whose content is all those
doses, or dose by dose.

The course signature is bound to the digest of the course's doses as computed now
(:func:`course_content`); the doses as signed are kept with it, so when a dose changes
afterwards (a new weight, a delay, a dose reduction) the signature is shown as no longer
matching and the changed dose is named. A dose counts as signed when a dose signature or
a course signature still matches it.
"""

from __future__ import annotations

from typing import Any

from trialdesk.errors import FactError, NotFoundError, ScheduleError
from trialdesk.schedule.plan import Calendar, Event, EventKind
from trialdesk.services.accounts import Principal
from trialdesk.services.context import Services
from trialdesk.services.journeys import _signable, dose_content, load_journey, now
from trialdesk.services.patients import signature_view
from trialdesk.services.roles import Permission
from trialdesk.store.audit import digest

P = Permission
COURSE_MEANING = "I sign off all the doses of this course"


def course_doses(cal: Calendar, number: int) -> list[Event]:
    """The doses of course ``number`` that can be signed (computed, not 'not set')."""
    return [e for e in cal.course_events(number) if _signable(e)]


def course_content(study_number: str, cal: Calendar, number: int) -> dict[str, Any]:
    """What a course signature is bound to: every signable dose of the course as
    :func:`~trialdesk.services.journeys.dose_content` gives it, in calendar order."""
    return {"study_number": study_number, "course": number,
            "doses": [dose_content(study_number, e) for e in course_doses(cal, number)]}


def _course_event(cal: Calendar, number: int) -> Event:
    for e in cal.events:
        if e.kind is EventKind.COURSE and e.course_number == number:
            return e
    raise NotFoundError(f"course {number} is not on the calendar (it has "
                        f"{cal.course_count} courses)", where="course")


def signable_json(ej: dict[str, Any]) -> bool:
    """:func:`~trialdesk.services.journeys._signable` of an event as the calendar's JSON
    gives it."""
    dose = ej.get("dose") or {}
    return dose.get("amount") is not None and ej["kind"] in ("administration", "timed")


def content_json(study_number: str, ej: dict[str, Any]) -> dict[str, Any]:
    """:func:`~trialdesk.services.journeys.dose_content` of an event as the calendar's JSON
    gives it (the same dictionary, so the same digest; held together by a test)."""
    d = ej["dose"]
    return {"study_number": study_number, "event_id": ej["id"], "date": ej["date"],
            "agent": d["agent"], "amount": d["amount"], "amount_max": d["amount_max"],
            "each": d["each"], "divided_into": d["divided_into"], "unit": d["unit"],
            "per": d["per"], "working": d["working"], "unconfirmed": list(d["unconfirmed"])}


def signature_marks(ctx: Services, study_number: str, events: list[dict[str, Any]]
                    ) -> tuple[dict[str, list[dict[str, Any]]], dict[int, list[dict[str, Any]]]]:
    """The course signatures as each dose sees them (event id → marks) and per course
    (course number → signatures, each ``valid`` while the course's doses are unchanged,
    with ``changed``: the doses that differ from what was signed). ``events`` are the
    calendar's events as JSON."""
    by_event: dict[str, list[dict[str, Any]]] = {}
    by_course: dict[int, list[dict[str, Any]]] = {}
    signoffs = ctx.catalogue.kept(("course signoffs", study_number),
                                  lambda: ctx.store.course_signoffs(study_number))
    if not signoffs:
        return by_event, by_course
    current: dict[int, list[dict[str, Any]]] = {}
    for ej in events:
        if ej.get("course_number") is not None and signable_json(ej):
            current.setdefault(int(ej["course_number"]), []).append(
                content_json(study_number, ej))
    for sig, number, content in signoffs:
        doses = current.get(number, [])
        now_doses = {d["event_id"]: d for d in doses}
        signed = {d["event_id"]: d for d in content.get("doses", [])}
        changed = sorted(k for k in set(now_doses) | set(signed)
                         if digest(now_doses.get(k)) != digest(signed.get(k)))
        whole = {"study_number": study_number, "course": number, "doses": doses}
        view = {**signature_view(sig), "course": number, "doses": len(signed),
                "valid": sig.record_digest == digest(whole), "changed": changed}
        by_course.setdefault(number, []).append(view)
        for event_id, dose in now_doses.items():
            if event_id in signed:
                by_event.setdefault(event_id, []).append(
                    {**view, "valid": digest(dose) == digest(signed[event_id])})
    return by_event, by_course


def _dose_signatures(ctx: Services, study_number: str, cal: Calendar
                     ) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    events = {e.id: e for e in cal.events if _signable(e)}
    for s in ctx.store.signatures_for("dose", f"{study_number}/"):
        event_id = s.record_id.split("/", 1)[1]
        e = events.get(event_id)
        valid = e is not None and s.record_digest == digest(dose_content(study_number, e))
        out.setdefault(event_id, []).append({**signature_view(s), "valid": valid})
    return out


def signoff_page(ctx: Services, who: Principal, study_number: str, number: int
                 ) -> dict[str, Any]:
    """One course's doses with their working and signatures, for the sign-off page."""
    loaded = load_journey(ctx, who, study_number, P.CLINICAL_READ)
    cal = loaded.calendar_or_none(now(ctx))
    if cal is None:
        raise ScheduleError("the calendar has no start date or no arm yet", where="course")
    course = _course_event(cal, number)
    by_event, by_course = signature_marks(ctx, study_number,
                                          [e.to_json() for e in cal.events])
    singles = _dose_signatures(ctx, study_number, cal)
    doses = []
    for e in course_doses(cal, number):
        assert e.dose is not None
        marks = singles.get(e.id, []) + by_event.get(e.id, [])
        doses.append({"id": e.id, "name": e.name, "date": e.date.isoformat() if e.date else None,
                      "day": e.course_day, "status": e.status.value or None,
                      "dose": e.dose.to_json(), "signatures": marks,
                      "signed": any(m["valid"] for m in marks),
                      "reduced": [m.to_json(with_events=False) for m in e.modifications]})
    not_set = [{"id": e.id, "name": e.name, "prescribed": e.dose.prescribed}
               for e in cal.course_events(number) if e.dose is not None and e.dose.not_set]
    return {"study_number": study_number, "trial_id": loaded.row.trial_id, "course": number,
            "courses": list(range(1, cal.course_count + 1)),
            "name": course.name, "date": course.date.isoformat() if course.date else None,
            "end": course.end.isoformat() if course.end else None,
            "header": loaded.journey.header(), "bsa_formula": cal.bsa_formula,
            "dose_notes": [n for n in cal.dose_notes if n.startswith(f"course {number}:")],
            "doses": doses, "not_set": not_set, "signatures": by_course.get(number, []),
            "all_signed": bool(doses) and all(d["signed"] for d in doses),
            "meaning": COURSE_MEANING,
            "can_sign": who.can(P.DOSE_SIGN, loaded.row.trial_id, loaded.row.site)}


def sign_course(ctx: Services, who: Principal, study_number: str, number: int, *,
                password: str, reason: str) -> dict[str, Any]:
    """One e-signature (the password again) on all the doses of course ``number``."""
    loaded = load_journey(ctx, who, study_number, P.DOSE_SIGN)
    cal = loaded.calendar_or_none()
    if cal is None:
        raise ScheduleError("the calendar has no start date or no arm yet", where="course")
    _course_event(cal, number)
    content = course_content(study_number, cal, number)
    if not content["doses"]:
        raise ScheduleError(f"course {number} has no computed dose to sign off", where="course")
    if len(f"{study_number}/c{number}") > 64:
        raise FactError("the study number is too long to sign", where="course")
    signer = ctx.accounts.confirm_password(who, password)
    sig = ctx.store.sign_course(signer.id, COURSE_MEANING, study_number, number,
                                digest(content), content,
                                reason=reason or f"course {number} doses signed off")
    return {**signature_view(sig), "valid": True, "course": number,
            "doses": [d["event_id"] for d in content["doses"]]}
