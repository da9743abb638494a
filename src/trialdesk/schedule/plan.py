"""The treatment calendar: every planned event of one arm, with its date, window and dose.

:func:`plan` lays out an arm's plan (protocol ``arms[].plan``) from a start date:

* Day numbering has no day 0: day 1 is the start date, day −1 the day before it; the same
  holds inside a course (course day 1 is the day the course starts).
* Courses follow one another without a gap: each starts ``length_days`` after the
  previous one (NB-NK-2026: IT on day 1, then DIT courses on days 22, 43, …).
* A course with a ``condition`` starts with a decision point (Refnot R-2: a further 4
  weeks "in the absence of disease progression").
* An assessment given ``every_courses: n`` falls on the last day of every n-th course,
  before the next one starts; one given a ``day`` falls on that study day.
* Sampling (protocol ``arms[].sampling``) falls on study days, on day 1 of the named
  courses (NB-NK-2026: before each DIT course), on the day of a timed step's anchor
  (RuMCeSS: before the MSC infusion), or at an event (progression: undated until it
  happens); each event names its measurements and specimen/tube.
* A timed step (RuMCeSS: MSC infusion within 10 h of septic-shock onset) is placed by
  its clinical anchor: the calendar shows its deadline as a time. An anchor that is not
  recorded leaves the deadline unknown, never guessed.
* A course delay moves that course and every later event (events before the delayed
  course's planned start, and timed events, stay).
* Doses are computed per course from the latest weight and height on or before the
  course starts, and recomputed only when the weight has changed by more than the
  protocol's threshold (``dosing.weight_change_percent``) from the weight the current
  doses were computed from; see :mod:`trialdesk.schedule.dose`.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, ParamSpec, TypeVar

from trialdesk.errors import ScheduleError, TrialdeskError
from trialdesk.protocol.model import (
    Administration,
    Arm,
    CourseStep,
    MilestoneStep,
    ProcedureStep,
    Protocol,
    Sampling,
    TimedStep,
)
from trialdesk.schedule.dose import BodyMeasurement, ComputedDose, compute_dose, weight_change_percent
from trialdesk.schedule.records import CourseDelay, EventRecord

__all__ = [
    "Calendar",
    "Event",
    "EventKind",
    "EventStatus",
    "Modification",
    "body_on",
    "day_date",
    "optional_agents",
    "plan",
    "resolve_optional",
    "resolve_variants",
]


class EventKind(StrEnum):
    PROCEDURE = "procedure"
    COURSE = "course"
    ADMISSION = "admission"
    DECISION = "decision"
    ADMINISTRATION = "administration"
    ASSESSMENT = "assessment"
    SAMPLING = "sampling"
    MILESTONE = "milestone"
    TIMED = "timed"


class EventStatus(StrEnum):
    """An event's state on the calendar's ``as_of`` day (see :mod:`trialdesk.schedule.status`)."""

    PLANNED = "planned"
    DUE = "due"
    GIVEN = "given"
    PARTLY_GIVEN = "partly_given"
    WITHHELD = "withheld"
    DONE = "done"
    NOT_DONE = "not_done"
    CONTINUE = "continue"
    STOP = "stop"
    MISSED = "missed"
    CANCELLED = "cancelled"
    DISCONTINUED = "discontinued"  # the agent stopped by a confirmed toxicity action
    UNSCHEDULED = "unscheduled"  # a timed event whose anchor is not recorded
    NONE = ""  # spans (courses, milestones) have no status of their own


_Date = date  # inside Event, "date" names the field


@dataclass(frozen=True)
class Modification:
    """A confirmed toxicity action as the calendar shows it (see :mod:`trialdesk.schedule.actions`).

    On an event it says how that event changed; in :attr:`Calendar.actions` it is the whole
    action with the events it changed (``event_ids``).
    """

    kind: str
    text: str
    rule_id: str
    source: str
    unconfirmed: bool
    confirmed_by: str
    confirmed_at: datetime
    reason: str = ""
    effective: _Date | None = None
    course_number: int | None = None
    percent: float | None = None
    days: int | None = None
    event_ids: tuple[str, ...] = ()

    def to_json(self, *, with_events: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind, "text": self.text, "rule_id": self.rule_id,
            "source": self.source, "unconfirmed": self.unconfirmed,
            "confirmed_by": self.confirmed_by,
            "confirmed_at": self.confirmed_at.isoformat(timespec="minutes"),
            "reason": self.reason,
            "effective": self.effective.isoformat() if self.effective else None,
            "course_number": self.course_number, "percent": self.percent, "days": self.days,
        }
        if with_events:
            out["event_ids"] = list(self.event_ids)
        return out


@dataclass(frozen=True)
class Event:
    """One planned event. ``date`` already includes any delay (``shifted_days``)."""

    id: str
    kind: EventKind
    name: str
    date: _Date | None
    window_days: int = 0
    end: _Date | None = None
    course_number: int | None = None
    course_id: str | None = None
    course_day: int | None = None
    day: int | None = None
    deadline: datetime | None = None
    anchor: str | None = None
    dose: ComputedDose | None = None
    condition: str | None = None
    optional: bool = False
    shifted_days: int = 0
    unconfirmed: tuple[str, ...] = ()
    note: str | None = None
    status: EventStatus = EventStatus.PLANNED
    record: EventRecord | None = None
    out_of_window: bool = False
    status_note: str | None = None
    modifications: tuple[Modification, ...] = ()

    @property
    def earliest(self) -> _Date | None:
        return self.date - timedelta(days=self.window_days) if self.date else None

    @property
    def latest(self) -> _Date | None:
        return self.date + timedelta(days=self.window_days) if self.date else None

    def to_json(self) -> dict[str, Any]:
        iso = (lambda d: d.isoformat() if d else None)  # noqa: E731
        return {
            "id": self.id, "kind": self.kind.value, "name": self.name,
            "date": iso(self.date), "end": iso(self.end), "window_days": self.window_days,
            "earliest": iso(self.earliest), "latest": iso(self.latest), "day": self.day,
            "course_number": self.course_number, "course_id": self.course_id,
            "course_day": self.course_day,
            "deadline": self.deadline.isoformat(timespec="minutes") if self.deadline else None,
            "anchor": self.anchor, "condition": self.condition, "optional": self.optional,
            "shifted_days": self.shifted_days,
            "dose": self.dose.to_json() if self.dose else None,
            "unconfirmed": list(self.unconfirmed), "note": self.note,
            "status": self.status.value or None, "out_of_window": self.out_of_window,
            "status_note": self.status_note,
            "record": self.record.model_dump(mode="json", exclude_none=True)
            if self.record else None,
            "modifications": [m.to_json(with_events=False) for m in self.modifications],
        }


@dataclass(frozen=True)
class Calendar:
    """A patient's calendar for one arm: events in date order, with the plan's settings."""

    trial_id: str
    protocol_version: str
    arm_id: str
    arm_label: str
    start: date
    bsa_formula: str
    events: tuple[Event, ...]
    variants: Mapping[str, str] = field(default_factory=dict)
    optional: tuple[str, ...] = ()
    anchors: Mapping[str, datetime] = field(default_factory=dict)
    delays: tuple[CourseDelay, ...] = ()
    dose_notes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    patient_id: str | None = None
    as_of: datetime | None = None
    actions: tuple[Modification, ...] = ()  # confirmed toxicity actions, in the order applied

    def event(self, event_id: str) -> Event:
        """The event with this id, or a ScheduleError with the nearest ids."""
        for e in self.events:
            if e.id == event_id:
                return e
        close = difflib.get_close_matches(event_id, [e.id for e in self.events], n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ScheduleError(f"no event '{event_id}' on the calendar{hint}", where="event_id")

    @property
    def course_count(self) -> int:
        return max((e.course_number or 0 for e in self.events), default=0)

    def course_events(self, number: int) -> list[Event]:
        return [e for e in self.events if e.course_number == number]

    @property
    def unconfirmed(self) -> list[str]:
        """Every unconfirmed parameter the calendar uses, once."""
        seen: dict[str, None] = {}
        for e in self.events:
            for u in e.unconfirmed + (e.dose.unconfirmed if e.dose else ()):
                seen.setdefault(u, None)
        return list(seen)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "trialdesk.calendar/1",
            "trial_id": self.trial_id, "protocol_version": self.protocol_version,
            "patient_id": self.patient_id, "arm": self.arm_id, "arm_label": self.arm_label,
            "start": self.start.isoformat(),
            "as_of": self.as_of.isoformat(timespec="minutes") if self.as_of else None,
            "bsa_formula": self.bsa_formula, "variants": dict(self.variants),
            "optional": list(self.optional),
            "anchors": {k: v.isoformat(timespec="minutes") for k, v in self.anchors.items()},
            "delays": [d.model_dump(mode="json") for d in self.delays],
            "actions": [a.to_json() for a in self.actions],
            "dose_notes": list(self.dose_notes), "notes": list(self.notes),
            "unconfirmed": self.unconfirmed,
            "events": [e.to_json() for e in self.events],
        }


# ---------------------------------------------------------------------------- helpers


def day_date(start: date, day: int, *, start_is_day: int = 1) -> date:
    """The date of study (or course) day ``day`` counted from ``start``.

    By default ``start`` is day 1 and there is no day 0; with ``start_is_day=0`` (a
    protocol's ``day_numbering``) ``start`` is day 0 and day N is N days later.

    >>> day_date(date(2026, 11, 23), 1), day_date(date(2026, 11, 23), -1)
    (datetime.date(2026, 11, 23), datetime.date(2026, 11, 22))
    >>> day_date(date(2026, 11, 23), 22)
    datetime.date(2026, 12, 14)
    >>> day_date(date(2026, 11, 23), 28, start_is_day=0)
    datetime.date(2026, 12, 21)
    """
    if start_is_day == 0:
        return start + timedelta(days=day)
    if day == 0:
        raise ScheduleError("there is no day 0 (day −1 is the day before day 1)", where="day")
    return start + timedelta(days=day - 1 if day > 0 else day)


def study_day(start: date, on: date, *, start_is_day: int = 1) -> int:
    """The study day of ``on``: the inverse of :func:`day_date`.

    >>> study_day(date(2026, 11, 23), date(2026, 12, 21), start_is_day=0)
    28
    >>> study_day(date(2026, 11, 23), date(2026, 11, 22))
    -1
    """
    offset = (on - start).days
    if start_is_day == 0:
        return offset
    return offset + 1 if offset >= 0 else offset


def _slug(text: str, words: int = 3) -> str:
    base = text.split("(")[0].casefold()
    parts = [p for p in re.split(r"[^0-9a-zα-ω]+", base) if p]
    return "-".join(parts[:words]) or "event"


def resolve_variants(protocol: Protocol, chosen: Mapping[str, str] | None) -> dict[str, str]:
    """Every variant of the protocol with the chosen value (default when not chosen).

    >>> from trialdesk.protocol.load import load_protocol, default_protocol_dir
    >>> p = load_protocol(default_protocol_dir() / "dinutuximab-beta-program.yaml").protocol
    >>> resolve_variants(p, None), resolve_variants(p, {"infusion": "STI"})
    ({'infusion': 'LTI'}, {'infusion': 'STI'})
    """
    chosen = dict(chosen or {})
    for name in chosen:
        if name not in protocol.variants:
            known = ", ".join(protocol.variants) or "none"
            raise ScheduleError(f"unknown variant '{name}'; the protocol has {known}",
                                where=f"variants.{name}")
    out: dict[str, str] = {}
    for name, variant in protocol.variants.items():
        value = chosen.get(name, variant.default)
        if value not in variant.choices:
            raise ScheduleError(f"'{value}' is not one of {', '.join(variant.choices)}",
                                where=f"variants.{name}")
        out[name] = value
    return out


def optional_agents(protocol: Protocol, arm_id: str | None = None) -> list[str]:
    """The agents of optional administrations (of one arm, or of the whole protocol)."""
    arms = [protocol.arm(arm_id)] if arm_id else protocol.arms
    found: dict[str, None] = {}
    for arm in arms:
        for adm in _arm_administrations(protocol, arm):
            if adm.optional:
                found.setdefault(adm.agent, None)
    return list(found)


def resolve_optional(protocol: Protocol, wanted: Collection[str]) -> tuple[str, ...]:
    """Match each wanted name to exactly one optional agent (case-insensitive prefix).

    >>> from trialdesk.protocol.load import load_protocol, default_protocol_dir
    >>> p = load_protocol(default_protocol_dir() / "dinutuximab-beta-program.yaml").protocol
    >>> resolve_optional(p, ["interleukin-2"])
    ('interleukin-2 (aldesleukin)',)
    """
    agents = optional_agents(protocol)
    out: list[str] = []
    for name in wanted:
        key = name.strip().casefold()
        hits = [a for a in agents if a.casefold() == key] or [
            a for a in agents if a.casefold().startswith(key)]
        if len(hits) != 1:
            known = ", ".join(agents) or "none"
            why = "matches several" if hits else "is not an optional agent"
            raise ScheduleError(f"'{name}' {why}; optional agents: {known}", where="optional")
        if hits[0] not in out:
            out.append(hits[0])
    return tuple(out)


def _arm_administrations(protocol: Protocol, arm: Arm) -> list[Administration]:
    out: list[Administration] = []
    for step in arm.plan:
        if isinstance(step, CourseStep):
            out += protocol.course(step.course).administrations
        elif isinstance(step, TimedStep) and step.administration is not None:
            out.append(step.administration)
    return out


def body_on(measurements: Sequence[BodyMeasurement], on: date) -> BodyMeasurement | None:
    """The latest weight and the latest height measured on or before ``on``, together."""
    weights = [m for m in measurements if m.weight_kg is not None and m.on <= on]
    heights = [m for m in measurements if m.height_cm is not None and m.on <= on]
    w = max(weights, key=lambda m: m.on, default=None)
    h = max(heights, key=lambda m: m.on, default=None)
    if w is None and h is None:
        return None
    return BodyMeasurement(
        on=(w or h).on,  # type: ignore[union-attr]
        weight_kg=w.weight_kg if w else None,
        height_cm=h.height_cm if h else None,
        source=(w or h).source,  # type: ignore[union-attr]
    )


def _length(protocol: Protocol, course_id: str) -> int:
    value = protocol.course(course_id).length_days.value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1 or value != int(
            value):
        raise ScheduleError(f"length_days must be a whole number of days ≥ 1, got {value!r}",
                            where=f"courses.{course_id}.length_days")
    return int(value)


# ---------------------------------------------------------------------------- planning


@dataclass
class _Course:
    number: int
    step: CourseStep
    start_day: int  # study day of course day 1, before delays
    length: int
    start: date = date.min  # after delays
    shift: int = 0


P = ParamSpec("P")
R = TypeVar("R")


def _within_calendar(fn: Callable[P, R]) -> Callable[P, R]:
    """A day beyond the calendar (a protocol day of 5,000,000) is a ScheduleError, not an overflow."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except OverflowError:
            raise ScheduleError("a day of the plan falls outside the calendar (years 1–9999); check the "
                                "protocol's days, course lengths and delays", where="day") from None

    return wrapper


@_within_calendar
def plan(
    protocol: Protocol,
    arm_id: str,
    start: date,
    *,
    body: Sequence[BodyMeasurement] = (),
    variants: Mapping[str, str] | None = None,
    optional: Collection[str] = (),
    anchors: Mapping[str, datetime] | None = None,
    delays: Sequence[CourseDelay] = (),
    not_before: date | None = None,
    patient_id: str | None = None,
    notes: Sequence[str] = (),
) -> Calendar:
    """Lay out the calendar of ``arm_id`` from ``start`` (see the module docstring).

    ``body`` are the patient's dated weights and heights; ``variants`` the chosen protocol
    variants (defaults otherwise); ``optional`` the optional agents to include;
    ``anchors`` the clinical times timed steps count from; ``delays`` the recorded course
    delays; ``not_before`` the consent date: no event may fall before it. Refused with a
    :class:`~trialdesk.errors.ScheduleError` naming the field: an unknown arm, variant or
    optional agent, an event before ``not_before``, a dose that needs a weight or height
    that is not recorded.

    >>> from trialdesk.protocol.load import load_protocol, default_protocol_dir
    >>> p = load_protocol(default_protocol_dir() / "nb-nk-2026.yaml").protocol
    >>> cal = plan(p, "A", date(2026, 11, 23),
    ...            body=[BodyMeasurement(on=date(2026, 11, 16), weight_kg=21.4, height_cm=118)])
    >>> [(e.id, e.date.isoformat()) for e in cal.events if e.kind == "course"]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('c1', '2026-11-23'), ('c2', '2026-12-14'), ('c3', '2027-01-04'), ('c4', '2027-01-25'),
     ('c5', '2027-02-15')]
    >>> cal.event("c2.autologous-nk-cells.d7").date, cal.event("c2.irinotecan.d1").dose.shown()
    (datetime.date(2026, 12, 20), '42.0 mg/day')
    """
    try:
        arm = protocol.arm(arm_id)
    except KeyError:
        known = ", ".join(a.id for a in protocol.arms)
        raise ScheduleError(f"no arm '{arm_id}' in {protocol.id}; arms: {known}",
                            where="arm") from None
    chosen = resolve_variants(protocol, variants)
    included = resolve_optional(protocol, optional)
    anchors = dict(anchors or {})
    if not_before is not None and start < not_before:
        raise ScheduleError(f"{start.isoformat()} is before consent ({not_before.isoformat()})",
                            where="start")

    # Courses in plan order, with their planned study days.
    courses: list[_Course] = []
    cursor = 1
    for step in arm.plan:
        if isinstance(step, CourseStep):
            length = _length(protocol, step.course)
            for _ in range(step.repeats):
                courses.append(_Course(len(courses) + 1, step, cursor, length))
                cursor += length
    for d in delays:
        if d.course > len(courses):
            raise ScheduleError(f"course {d.course} does not exist; the arm has "
                                f"{len(courses)} courses", where="delay.course")
    planned_start = {c.number: day_date(start, c.start_day) for c in courses}
    for c in courses:
        c.shift = sum(d.days for d in delays if d.course <= c.number)
        c.start = planned_start[c.number] + timedelta(days=c.shift)

    def shift_of(original: date) -> int:
        # A non-course event moves with every delayed course planned to start on or before it.
        return sum(d.days for d in delays if planned_start[d.course] <= original)

    events: list[Event] = []
    threshold = weight_change_percent(protocol.dosing)
    dose_notes: list[str] = []
    mark = " [unconfirmed]" if protocol.dosing.weight_change_percent.unconfirmed else ""
    dosing_body = _dosing_bodies(courses, body, threshold, mark, dose_notes)

    def dose_for(adm: Administration, who: BodyMeasurement | None, context: str) -> ComputedDose:
        try:
            return compute_dose(adm.agent, adm.dose, who, protocol.dosing, protocol.bsa_formula)
        except TrialdeskError as exc:
            raise type(exc)(f"{exc.reason} ({context})", where=exc.where) from None

    def wanted(adm: Administration) -> bool:
        if adm.variant is not None and adm.variant not in chosen.values():
            return False
        return not adm.optional or adm.agent in included

    used: set[str] = set()

    def unique(event_id: str) -> str:
        out, n = event_id, 1
        while out in used:
            n += 1
            out = f"{event_id}-{n}"
        used.add(out)
        return out

    numbering = protocol.day_numbering.start_is_day

    def at_day(day: int) -> tuple[date, int]:
        original = day_date(start, day, start_is_day=numbering)
        shift = shift_of(original)
        return original + timedelta(days=shift), shift

    timed_by_step: dict[str, Event] = {}
    for step in arm.plan:
        if isinstance(step, ProcedureStep):
            p = step.procedure
            on, shift = at_day(p.day)
            events.append(Event(unique(_slug(p.name)), EventKind.PROCEDURE, p.name, on,
                                window_days=p.window_days, shifted_days=shift, note=p.note))
        elif isinstance(step, MilestoneStep):
            on, shift = at_day(step.from_day)
            end = at_day(step.to_day)[0] if step.to_day is not None else None
            events.append(Event(unique(_slug(step.milestone)), EventKind.MILESTONE,
                                step.milestone, on, end=end, shifted_days=shift,
                                status=EventStatus.NONE))
        elif isinstance(step, TimedStep):
            timed_by_step[step.timed] = _timed(step, anchors, body, start, unique, dose_for, wanted)
            events.append(timed_by_step[step.timed])

    for c in courses:
        events += _course_events(protocol, c, unique, dose_for, wanted, dosing_body[c.number - 1])

    # Assessments: every n-th course (its last day) or a study day.
    for assessment in arm.assessments:
        marks = (f"assessment schedule: {assessment.name}",) if assessment.unconfirmed else ()
        if assessment.every_courses:
            for c in courses:
                if c.number % assessment.every_courses == 0:
                    on = c.start + timedelta(days=c.length - 1)
                    events.append(Event(
                        unique(f"c{c.number}.{_slug(assessment.name, 2)}"), EventKind.ASSESSMENT,
                        _assessment_name(assessment.name, assessment.criteria), on,
                        window_days=assessment.window_days, course_number=c.number,
                        course_id=c.step.course, course_day=c.length, shifted_days=c.shift,
                        condition=c.step.condition, unconfirmed=marks))
        if assessment.day is not None:
            on, shift = at_day(assessment.day)
            events.append(Event(
                unique(f"{_slug(assessment.name)}.d{assessment.day}"), EventKind.ASSESSMENT,
                _assessment_name(assessment.name, assessment.criteria), on,
                window_days=assessment.window_days, shifted_days=shift, unconfirmed=marks))
    for i, sampling in enumerate(arm.sampling, start=1):
        events += _sampling_events(i, sampling, courses, timed_by_step, at_day, unique)

    if not_before is not None:
        for e in events:
            if e.date is not None and e.kind is not EventKind.TIMED and e.date < not_before:
                raise ScheduleError(
                    f"{e.name} (day {study_day(start, e.date, start_is_day=numbering)}) would fall on "
                    f"{e.date.isoformat()}, before consent ({not_before.isoformat()})",
                    where="start")
    order = {e.id: i for i, e in enumerate(events)}
    events.sort(key=lambda e: (e.date or start, _kind_order(e),
                               e.deadline.time() if e.deadline else datetime.min.time(),
                               order[e.id]))
    events = [replace(e, day=study_day(start, e.date, start_is_day=numbering) if e.date else None)
              for e in events]
    return Calendar(
        trial_id=protocol.id, protocol_version=protocol.version, arm_id=arm.id,
        arm_label=arm.label, start=start, bsa_formula=protocol.bsa_formula,
        events=tuple(events), variants=chosen, optional=included, anchors=anchors,
        delays=tuple(delays), dose_notes=tuple(dose_notes), notes=tuple(notes),
        patient_id=patient_id)


_KIND_ORDER = {EventKind.DECISION: 0, EventKind.COURSE: 1, EventKind.ADMISSION: 2,
               EventKind.PROCEDURE: 3, EventKind.TIMED: 4, EventKind.ADMINISTRATION: 5,
               EventKind.SAMPLING: 6, EventKind.ASSESSMENT: 7, EventKind.MILESTONE: 8}


def _kind_order(e: Event) -> float:
    """A sample taken before a course or a timed step is listed before its doses."""
    if e.kind is EventKind.SAMPLING and (e.anchor is not None or e.course_number is not None):
        return _KIND_ORDER[EventKind.TIMED] - 0.5
    return _KIND_ORDER[e.kind]


def _assessment_name(name: str, criteria: str | None) -> str:
    return f"{name} ({criteria})" if criteria else name


def _sampling_events(i: int, sampling: Sampling, courses: Sequence[_Course],
                     timed: Mapping[str, Event], at_day: Any, unique: Any) -> list[Event]:
    """The calendar events of one sampling schedule (see :class:`Sampling`)."""
    mark = ("the sampling schedule",) if sampling.unconfirmed else ()
    what = sampling.what()
    common: dict[str, Any] = {"window_days": sampling.window_days, "unconfirmed": mark}
    out: list[Event] = []
    for day in sampling.days:
        on, shift = at_day(day)
        out.append(Event(unique(f"s{i}.d{day}"), EventKind.SAMPLING, f"Sampling: {what}", on,
                         shifted_days=shift, **common))
    for c in courses:
        if c.step.course in sampling.before_courses:
            out.append(Event(
                unique(f"c{c.number}.s{i}"), EventKind.SAMPLING,
                f"Sampling before course {c.number}: {what}", c.start, course_number=c.number,
                course_id=c.step.course, course_day=1, shifted_days=c.shift,
                condition=c.step.condition, **common))
    if sampling.before is not None:
        step = timed[sampling.before]
        deadline = (f"; the infusion is due by {step.deadline.strftime('%Y-%m-%d %H:%M')}"
                    if step.deadline else "")
        out.append(Event(
            unique(f"s{i}.before-{_slug(sampling.before)}"), EventKind.SAMPLING,
            f"Sampling before the {sampling.before}: {what}", step.date, anchor=step.anchor,
            status=EventStatus.PLANNED if step.date else EventStatus.UNSCHEDULED,
            note=(f"before the {sampling.before}{deadline}" if step.date else
                  f"{(step.anchor or '').replace('_', ' ')} not recorded: date unknown"),
            **common))
    if sampling.at_event == "progression":
        out.append(Event(
            unique(f"s{i}.at-progression"), EventKind.SAMPLING, f"Sampling at progression: {what}",
            None, condition="at disease progression", status=EventStatus.UNSCHEDULED,
            note="taken when progression is recorded", **common))
    return out


def _timed(step: TimedStep, anchors: Mapping[str, datetime], body: Sequence[BodyMeasurement],
           start: date, unique: Any, dose_for: Any, wanted: Any) -> Event:
    hours = step.within_hours.value
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or hours <= 0:
        raise ScheduleError(f"within_hours must be a number of hours above 0, got {hours!r}",
                            where=f"timed step {step.timed}")
    marks = (f"deadline {step.within_hours.shown()}",) if step.within_hours.unconfirmed else ()
    anchor_at = anchors.get(step.anchor)
    deadline = anchor_at + timedelta(hours=float(hours)) if anchor_at else None
    on = anchor_at.date() if anchor_at else None
    dose = None
    if step.administration is not None and wanted(step.administration):
        who = body_on(body, on or start)
        dose = dose_for(step.administration, who, f"for {step.timed}")
    mark = " [unconfirmed]" if step.within_hours.unconfirmed else ""
    name = f"{step.timed} within {float(hours):g} h{mark} of {step.anchor.replace('_', ' ')}"
    return Event(unique(_slug(step.timed)), EventKind.TIMED, name, on, deadline=deadline,
                 anchor=step.anchor, dose=dose, unconfirmed=marks,
                 status=EventStatus.PLANNED if anchor_at else EventStatus.UNSCHEDULED,
                 note=None if anchor_at else f"{step.anchor.replace('_', ' ')} not recorded: "
                 "deadline unknown")


def _course_events(protocol: Protocol, c: _Course, unique: Any, dose_for: Any, wanted: Any,
                   who: BodyMeasurement | None) -> list[Event]:
    course = protocol.course(c.step.course)
    marks = (f"course length {course.length_days.shown()}",) \
        if course.length_days.unconfirmed else ()
    common: dict[str, Any] = {"course_number": c.number, "course_id": course.id, "shifted_days": c.shift,
              "condition": c.step.condition}
    end = c.start + timedelta(days=c.length - 1)
    out: list[Event] = []
    if c.step.condition:
        out.append(Event(unique(f"c{c.number}.decision"), EventKind.DECISION,
                         f"Decision: continue with course {c.number} only if "
                         f"{c.step.condition}", c.start, window_days=c.step.window_days,
                         course_day=1, **common))
    out.append(Event(unique(f"c{c.number}"), EventKind.COURSE, course.name, c.start,
                     window_days=c.step.window_days, end=end, course_day=1, unconfirmed=marks,
                     status=EventStatus.NONE, note=course.note, **common))
    administrations = [a for a in course.administrations if wanted(a)]
    if course.admission:
        # One admission per course, over the days of its intravenous administrations.
        iv_days = sorted({d for a in administrations if a.route == "IV" for d in a.days})
        first, last = (iv_days[0], iv_days[-1]) if iv_days else (1, 1)
        out.append(Event(
            unique(f"c{c.number}.admission"), EventKind.ADMISSION,
            f"Hospital admission for course {c.number}", day_date(c.start, first),
            end=day_date(c.start, last), course_day=first,
            note="each course is one hospital admission (over its intravenous days)", **common))
    context = f"course {c.number} starting {c.start.isoformat()}"
    for adm in administrations:
        dose = dose_for(adm, who, context)
        agent = _slug(adm.agent, 3)
        for day in adm.days:
            name = f"{adm.agent} {adm.route}" + (f" [{adm.variant}]" if adm.variant else "") + \
                (" (optional)" if adm.optional else "")
            out.append(Event(unique(f"c{c.number}.{agent}.d{day}"), EventKind.ADMINISTRATION,
                             name, day_date(c.start, day), window_days=adm.window_days,
                             course_day=day, dose=dose, optional=adm.optional, note=adm.note,
                             **common))
    for proc in course.procedures:
        out.append(Event(unique(f"c{c.number}.{_slug(proc.name)}.d{proc.day}"),
                         EventKind.PROCEDURE, proc.name, day_date(c.start, proc.day),
                         window_days=proc.window_days, course_day=proc.day, note=proc.note,
                         **common))
    return out


def _dosing_bodies(courses: list[_Course], measurements: Sequence[BodyMeasurement],
                   threshold: float, mark: str, notes: list[str]) -> list[BodyMeasurement | None]:
    """The body each course's doses are computed from (weight-change rule)."""
    out: list[BodyMeasurement | None] = []
    current: BodyMeasurement | None = None
    for c in courses:
        latest = body_on(measurements, c.start)
        if current is None or current.weight_kg is None:
            current = latest
        elif latest is not None and latest.weight_kg is not None and \
                latest.weight_kg != current.weight_kg:
            change = (latest.weight_kg - current.weight_kg) / current.weight_kg * 100
            if abs(change) > threshold:
                notes.append(
                    f"course {c.number}: doses recomputed, weight {current.weight_kg:g} → "
                    f"{latest.weight_kg:g} kg ({change:+.1f}%, more than {threshold:g}%{mark})")
                current = latest
            else:
                notes.append(
                    f"course {c.number}: weight {latest.weight_kg:g} kg on "
                    f"{latest.on.isoformat()} ({change:+.1f}%) is within {threshold:g}%{mark}; doses "
                    f"kept from {current.weight_kg:g} kg ({current.on.isoformat()})")
        out.append(current)
    return out
