"""Records checked against the calendar, and every event's status on a given day.

* :func:`check_record` refuses a record that does not fit its event (unknown event, a
  status the event cannot have, a second record for one event, a dose in another unit,
  a "partly given" dose that is not below the plan, a time before consent);
* :func:`check_delay` refuses a delay of a course that does not exist or has started;
* :func:`reconcile` gives each event its status on ``as_of``: given, partly given,
  withheld, done, not done, continue/stop for a decision; missed when its window has
  passed without a record; due inside its window; cancelled after a decision to stop;
  and flags a record made outside the event's window (or after a timed deadline).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime

from trialdesk.errors import ScheduleError
from trialdesk.schedule.dose import format_amount
from trialdesk.schedule.plan import Calendar, Event, EventKind, EventStatus
from trialdesk.schedule.records import CourseDelay, EventRecord, RecordStatus

__all__ = ["allowed_statuses", "check_delay", "check_record", "reconcile"]

_DOSED = (RecordStatus.GIVEN, RecordStatus.PARTLY_GIVEN, RecordStatus.WITHHELD)
_DONE = (RecordStatus.DONE, RecordStatus.NOT_DONE)


def allowed_statuses(event: Event) -> tuple[RecordStatus, ...]:
    """The statuses a record of this event may have (none for courses and milestones)."""
    if event.kind is EventKind.ADMINISTRATION or (event.kind is EventKind.TIMED and event.dose):
        return _DOSED
    if event.kind is EventKind.DECISION:
        return (RecordStatus.CONTINUE, RecordStatus.STOP)
    if event.kind in (EventKind.COURSE, EventKind.MILESTONE):
        return ()
    return _DONE


def _stopped(calendar: Calendar, records: Sequence[EventRecord]) -> dict[int, EventRecord]:
    """Course number → the decision that stopped it (that course and every later one)."""
    out: dict[int, EventRecord] = {}
    for rec in records:
        if rec.status is RecordStatus.STOP:
            event = calendar.event(rec.event_id)
            if event.course_number is not None:
                for n in range(event.course_number, calendar.course_count + 1):
                    out.setdefault(n, rec)
    return out


def check_record(
    calendar: Calendar,
    record: EventRecord,
    existing: Sequence[EventRecord] = (),
    *,
    not_before: date | None = None,
) -> Event:
    """Refuse a record that does not fit the calendar; return its event."""
    event = calendar.event(record.event_id)
    allowed = allowed_statuses(event)
    if not allowed:
        raise ScheduleError(f"a {event.kind.value} is not recorded itself; record its events",
                            where="event_id")
    if record.status not in allowed:
        raise ScheduleError(
            f"'{record.status.value}' does not fit a {event.kind.value}; use "
            f"{', '.join(s.value for s in allowed)}", where="status")
    for old in existing:
        if old.event_id == record.event_id:
            raise ScheduleError(
                f"{record.event_id} is already recorded ({old.status.value} on "
                f"{old.at.isoformat(timespec='minutes')} by {old.by})", where="event_id")
    stopped = _stopped(calendar, existing)
    if event.course_number in stopped:
        stop = stopped[event.course_number]
        raise ScheduleError(
            f"course {event.course_number} was stopped ({stop.event_id}, "
            f"{stop.at.date().isoformat()}: {stop.reason})", where="event_id")
    if not_before is not None and record.at.date() < not_before:
        raise ScheduleError(f"{record.at.date().isoformat()} is before consent "
                            f"({not_before.isoformat()})", where="at")
    dose = event.dose
    if record.amount is not None and dose is not None:
        if record.unit != dose.unit:
            raise ScheduleError(f"the dose is in {dose.unit}, not {record.unit}", where="unit")
        planned = dose.amount_max if dose.amount_max is not None else dose.amount
        if record.status is RecordStatus.PARTLY_GIVEN and planned is not None and \
                record.amount >= planned:
            raise ScheduleError(
                f"a partly given dose is below the planned {format_amount(planned, dose.unit)}; "
                "record it as given", where="amount")
    return event


def check_delay(calendar: Calendar, delay: CourseDelay, records: Sequence[EventRecord]) -> None:
    """Refuse a delay of a course that does not exist, has started or was stopped."""
    if delay.course > calendar.course_count:
        raise ScheduleError(f"course {delay.course} does not exist; the calendar has "
                            f"{calendar.course_count} courses", where="course")
    stopped = _stopped(calendar, records)
    if delay.course in stopped:
        raise ScheduleError(f"course {delay.course} was stopped ({stopped[delay.course].event_id})",
                            where="course")
    ids = {e.id: e for e in calendar.events if (e.course_number or 0) >= delay.course}
    for rec in records:
        if rec.event_id in ids:
            e = ids[rec.event_id]
            raise ScheduleError(
                f"course {e.course_number} has already started ({rec.event_id} recorded "
                f"{rec.status.value} on {rec.at.date().isoformat()}); a course is delayed "
                "before it starts", where="course")


def reconcile(calendar: Calendar, records: Sequence[EventRecord], as_of: datetime) -> Calendar:
    """The calendar with each event's status on ``as_of`` (see the module docstring)."""
    by_id = {r.event_id: r for r in records}
    stopped = _stopped(calendar, records)
    today = as_of.date()
    out: list[Event] = []
    for e in calendar.events:
        record = by_id.get(e.id)
        stop = stopped.get(e.course_number or 0)
        if stop is not None and record is None and e.kind is not EventKind.DECISION:
            out.append(replace(e, status=EventStatus.CANCELLED,
                               status_note=f"stopped: {stop.reason} ({stop.at.date().isoformat()})"))
        elif record is not None:
            out.append(_recorded(e, record))
        elif e.status is EventStatus.NONE or e.kind in (EventKind.COURSE, EventKind.MILESTONE):
            out.append(e)
        elif e.kind is EventKind.TIMED:
            if e.deadline is None:
                out.append(replace(e, status=EventStatus.UNSCHEDULED))
            elif as_of > e.deadline:
                out.append(replace(e, status=EventStatus.MISSED,
                                   status_note=f"deadline {_hm(e.deadline)} passed"))
            else:
                out.append(replace(e, status=EventStatus.DUE if e.date and today >= e.date
                                   else EventStatus.PLANNED))
        elif e.date is None:  # a sample taken at an event (progression) not yet recorded
            out.append(replace(e, status=EventStatus.UNSCHEDULED))
        else:
            assert e.earliest is not None and e.latest is not None
            if today > e.latest:
                status, note = EventStatus.MISSED, f"not recorded by {e.latest.isoformat()}"
            elif today >= e.earliest:
                status, note = EventStatus.DUE, None
            else:
                status, note = EventStatus.PLANNED, None
            out.append(replace(e, status=status, status_note=note))
    return replace(calendar, events=tuple(out), as_of=as_of)


def _hm(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="minutes")


def _recorded(e: Event, record: EventRecord) -> Event:
    status = EventStatus(record.status.value)
    notes: list[str] = []
    out_of_window = False
    if e.kind is EventKind.TIMED and e.deadline is not None:
        if record.at > e.deadline:
            out_of_window = True
            notes.append(f"at {_hm(record.at)}, after the deadline {_hm(e.deadline)}")
    elif e.earliest is not None and e.latest is not None and record.status not in (
            RecordStatus.WITHHELD, RecordStatus.NOT_DONE):
        on = record.at.date()
        if not e.earliest <= on <= e.latest:
            out_of_window = True
            window = f" ±{e.window_days} d" if e.window_days else ""
            notes.append(f"on {on.isoformat()}, planned {e.date.isoformat() if e.date else '?'}"
                         f"{window}: out of window")
    if record.amount is not None and record.unit:
        notes.append(f"actual {format_amount(record.amount, record.unit)}")
        dose = e.dose
        if dose is not None and dose.amount is not None and record.status is RecordStatus.GIVEN:
            low, high = dose.amount, dose.amount_max or dose.amount
            if not low <= record.amount <= high:
                notes.append(f"planned {dose.shown()}")
    if record.reason:
        notes.append(record.reason)
    notes.append(f"by {record.by}")
    return replace(e, status=status, record=record, out_of_window=out_of_window,
                   status_note="; ".join(notes))
