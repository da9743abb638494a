"""A patient's calendar as iCalendar (RFC 5545, through the ``icalendar`` library) and as JSON.

Day events are all-day events (``DTEND`` is the day after the last day, as RFC 5545
§3.6.1 requires for dates); a timed event (RuMCeSS: MSC infusion within 10 h of
septic-shock onset) runs from its anchor to its deadline, in local (floating) time. A
timed event whose anchor is not recorded has no date and is left out of the iCalendar
file; the JSON keeps it with its status "unscheduled". Every event's UID is stable
(event id, patient and trial), so a re-exported file updates the same entries.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from icalendar import Calendar as ICalendar
from icalendar import Event as IEvent

from trialdesk.errors import ScheduleError
from trialdesk.schedule.plan import Calendar, Event, EventKind, EventStatus

__all__ = ["to_ics", "to_json_text"]

PRODID = "-//trialdesk//patient calendar//EN"


def to_json_text(calendar: Calendar) -> str:
    """The calendar's JSON document (schema ``trialdesk.calendar/1``), indented."""
    return json.dumps(calendar.to_json(), indent=2, ensure_ascii=False)


def to_ics(calendar: Calendar, stamp: datetime) -> bytes:
    """The calendar as an iCalendar file; ``stamp`` (timezone-aware) is every DTSTAMP.

    >>> from datetime import date, timezone
    >>> from trialdesk.protocol.load import load_protocol, default_protocol_dir
    >>> p = load_protocol(default_protocol_dir() / "refnot-r2.yaml").protocol
    >>> from trialdesk.schedule.plan import plan
    >>> ics = to_ics(plan(p, "G1", date(2026, 12, 1)), datetime(2026, 11, 30, tzinfo=timezone.utc))
    >>> ics.count(b"BEGIN:VEVENT"), b"DTSTART;VALUE=DATE:20261201" in ics
    (29, True)
    """
    if stamp.tzinfo is None or stamp.utcoffset() is None:
        raise ScheduleError("the export time needs a timezone", where="stamp")
    cal = ICalendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    who = calendar.patient_id or "patient"
    cal.add("x-wr-calname", f"{calendar.trial_id} — {who} (arm {calendar.arm_id})")
    for e in calendar.events:
        if e.date is None:
            continue
        item = IEvent()
        item.add("uid", f"{e.id}.{who}.{calendar.trial_id}@trialdesk")
        item.add("dtstamp", stamp)
        item.add("summary", _summary(calendar, e))
        if e.kind is EventKind.TIMED and e.deadline is not None:
            item.add("dtstart", _anchor(calendar, e))
            item.add("dtend", e.deadline)
        else:
            item.add("dtstart", e.date)
            item.add("dtend", (e.end or e.date) + timedelta(days=1))
            item.add("transp", "TRANSPARENT")
        item.add("description", _description(e))
        item.add("categories", [e.kind.value])
        if e.status is EventStatus.CANCELLED:
            item.add("status", "CANCELLED")
        cal.add_component(item)
    return bytes(cal.to_ical())


def _anchor(calendar: Calendar, e: Event) -> datetime:
    assert e.anchor is not None and e.deadline is not None
    return calendar.anchors.get(e.anchor, e.deadline)


def _summary(calendar: Calendar, e: Event) -> str:
    course = f"course {e.course_number}: " if e.course_number and e.kind not in (
        EventKind.COURSE, EventKind.DECISION, EventKind.ADMISSION) else ""
    dose = f" — {e.dose.shown()}" if e.dose else ""
    deadline = f" — by {e.deadline.strftime('%H:%M')}" if e.deadline else ""
    return f"{calendar.trial_id}: {course}{e.name}{dose}{deadline}"


def _description(e: Event) -> str:
    lines = [f"id {e.id}"]
    if e.day is not None:
        lines.append(f"day {e.day}" + (f" (course day {e.course_day})" if e.course_day else ""))
    if e.window_days:
        lines.append(f"window ±{e.window_days} days")
    if e.shifted_days:
        lines.append(f"moved {e.shifted_days} days by course delays")
    if e.deadline is not None:
        lines.append(f"deadline {e.deadline.isoformat(sep=' ', timespec='minutes')}")
    if e.dose is not None:
        lines.append(f"dose {e.dose.shown()}: {e.dose.working}")
    marks = list(e.unconfirmed) + list(e.dose.unconfirmed if e.dose else ())
    if marks:
        lines.append("unconfirmed: " + "; ".join(marks))
    if e.status.value:
        lines.append(f"status {e.status.value}" + (f" ({e.status_note})" if e.status_note else ""))
    if e.note:
        lines.append(e.note)
    return "\n".join(lines)
