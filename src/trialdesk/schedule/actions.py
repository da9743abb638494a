"""Confirmed toxicity actions applied to a patient's calendar.

A protocol toxicity rule (:mod:`trialdesk.safety.rules`) only *proposes* an action; once a
clinician has confirmed it (:meth:`~trialdesk.safety.rules.ProposedAction.confirm`),
:func:`resolve_action` checks it against the patient's calendar and fixes what it changes,
as an :class:`AppliedAction` kept on the journey; :func:`apply_actions` shows those
changes on every calendar laid out afterwards:

* **delay course** — a :class:`~trialdesk.schedule.records.CourseDelay` of the named course
  (or the next course not yet started) by the days the clinician gives (the protocol's
  rules say "until the counts recover", never how long); that course and every later
  event move, as every delay does;
* **reduce** — the agent's later administrations get the dose at ``percent`` of the
  protocol dose, recomputed for the same body with the protocol's rounding, the working
  naming the rule;
* **discontinue agent** — the agent's later administrations are *discontinued*;
* **off protocol treatment** — every later treatment event (administrations, admissions,
  decisions, course procedures, courses not yet started) is *cancelled*; assessments,
  sampling and follow-up stay;
* **slow / pause** — a note on the current administration of the agent; no date changes.

"Later" means dated on or after the day the action takes effect (``effective``: the date
of the adverse event or lab that triggered the rule) and not yet recorded; the scope says
how far it reaches: ``rest_of_course`` (the current course), ``following_courses`` (the
courses after it), ``permanent`` (every later one; also the default). An
``until_resolved`` reduction or discontinuation has no end the calendar could place and is
refused: record each withheld administration instead.

Refused, with one error naming the field: an action not confirmed by a clinician
(``confirmed_by``), from an unconfirmed rule without the clinician's acceptance
(``accept_unconfirmed``), for another trial or patient (``trial_id``, ``patient_id``), for
an agent or course not on the patient's calendar (``agent``, ``course``,
``course_number``), supportive care (``kind``: nothing to apply), a delay without its
days (``days``), a reduction without a percentage (``percent``), the same action applied
twice (``rule_id``).

Nothing here reads files or the clock.

>>> from trialdesk.protocol.load import load_protocol, default_protocol_dir
>>> from trialdesk.schedule.dose import BodyMeasurement
>>> from trialdesk.schedule.plan import plan
>>> p = load_protocol(default_protocol_dir() / "nb-nk-2026.yaml").protocol
>>> cal = plan(p, "A", date(2026, 11, 23), patient_id="NB-001",
...            body=[BodyMeasurement(on=date(2026, 11, 16), weight_kg=21.4, height_cm=118)])
>>> proposal = ProposedAction(
...     kind="discontinue_agent", agent="dinutuximab beta", course="DIT", course_number=2,
...     scope="permanent", reason="Anaphylaxis grade 3", rule_id="NBNK-ANAPHYLAXIS",
...     source="example", unconfirmed=True, requires_confirmation=True)
>>> confirmed = proposal.confirm("Dr A", datetime(2026, 12, 15, 10), accept_unconfirmed=True)
>>> applied = resolve_action(cal, (), confirmed, trial_id="NB-NK-2026", patient_id="NB-001",
...                          effective=date(2026, 12, 15), applied_at=datetime(2026, 12, 15, 10, 5),
...                          accept_unconfirmed=True)
>>> len(applied.event_ids), applied.event_ids[0]
(19, 'c2.dinutuximab-beta.d2')
>>> shown = apply_actions(p, cal, [applied])
>>> shown.event("c3.dinutuximab-beta.d1").status.value, shown.event("c3.irinotecan.d1").status.value
('discontinued', 'planned')
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trialdesk.errors import SafetyError, ScheduleError
from trialdesk.protocol.model import Administration, Protocol, TimedStep
from trialdesk.safety.check import SafetyCheck
from trialdesk.safety.rules import (
    ActionKind,
    ActionScope,
    Finding,
    ProposedAction,
    RecoveryTrigger,
    Status,
    evaluate_findings,
    proposed_actions,
)
from trialdesk.schedule.dose import BodyMeasurement, ComputedDose, compute_dose
from trialdesk.schedule.plan import Calendar, Event, EventKind, EventStatus, Modification
from trialdesk.schedule.records import CourseDelay, EventRecord

__all__ = [
    "AppliedAction",
    "RuleProposal",
    "apply_actions",
    "resolve_action",
    "rule_proposal",
]

_AGENT_KINDS: Final = frozenset(
    {ActionKind.SLOW, ActionKind.PAUSE, ActionKind.REDUCE, ActionKind.DISCONTINUE_AGENT})
_NOTE_KINDS: Final = frozenset({ActionKind.SLOW, ActionKind.PAUSE})
_PERCENT_KINDS: Final = frozenset({ActionKind.SLOW, ActionKind.REDUCE})
_TREATMENT: Final = frozenset({EventKind.ADMINISTRATION, EventKind.ADMISSION,
                               EventKind.DECISION, EventKind.COURSE, EventKind.PROCEDURE})
_GONE: Final = frozenset({EventStatus.DISCONTINUED, EventStatus.CANCELLED})
_SCOPE_TEXT: Final = {
    ActionScope.UNTIL_RESOLVED: "until the event resolves",
    ActionScope.REST_OF_COURSE: "for the rest of the course",
    ActionScope.FOLLOWING_COURSES: "in the following courses",
    ActionScope.PERMANENT: "permanently",
}


def _stamp(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="minutes")


class AppliedAction(BaseModel):
    """A confirmed toxicity action as applied to one patient's calendar (kept on the journey).

    ``action`` is the proposal with its confirmation (who, when), rule id, reason, source
    and ``unconfirmed`` mark; ``effective`` the day it takes effect; ``course_number`` the
    course it concerns (for a delay, the delayed course); ``percent`` the rate or dose
    percentage used and ``percent_set_by`` who set it when the rule sets none; ``days``
    a delay's length; ``event_ids`` the events it changed; ``accepted_unconfirmed`` that
    the clinician accepted a rule whose source is not confirmed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    trial_id: str
    patient_id: str
    action: ProposedAction
    effective: date
    course_number: int | None = Field(default=None, ge=1)
    course_id: str | None = None
    percent: float | None = Field(default=None, gt=0, lt=100)
    percent_set_by: str | None = None
    days: int | None = Field(default=None, ge=1)
    event_ids: tuple[str, ...] = ()
    accepted_unconfirmed: bool = False
    applied_at: datetime

    @model_validator(mode="after")
    def _consistent(self) -> AppliedAction:
        a = self.action
        if a.confirmed_by is None or a.confirmed_at is None:
            raise SafetyError(f"the action of rule {a.rule_id} is not confirmed by a clinician",
                              where="confirmed_by")
        if a.unconfirmed and not self.accepted_unconfirmed:
            raise SafetyError(f"rule {a.rule_id} is not confirmed against its source; the "
                              "clinician must accept that", where="accept_unconfirmed")
        try:
            late = a.confirmed_at > self.applied_at
        except TypeError:
            raise SafetyError("the confirmation and the application times must both have a "
                              "timezone or both have none", where="confirmed_at") from None
        if late:
            raise SafetyError(f"confirmed at {_stamp(a.confirmed_at)}, after it was applied "
                              f"({_stamp(self.applied_at)})", where="confirmed_at")
        if (a.kind is ActionKind.DELAY_COURSE) != (self.days is not None):
            raise SafetyError("a course delay, and only a delay, has days", where="days")
        return self

    @property
    def rule_id(self) -> str:
        return self.action.rule_id

    @property
    def kind(self) -> ActionKind:
        return self.action.kind

    def what(self) -> str:
        """What was done, in one phrase: "delay DIT (course 2) by 7 days until …"."""
        a = self.action
        course = f"{self.course_id} (course {self.course_number})" if self.course_number \
            else "the course"
        if a.kind is ActionKind.DELAY_COURSE:
            text = f"delay {course} by {self.days} days"
        elif a.kind is ActionKind.OFF_PROTOCOL_TREATMENT:
            text = "take the patient off protocol treatment"
        else:
            verb = {ActionKind.SLOW: "slow the infusion of", ActionKind.PAUSE: "pause",
                    ActionKind.REDUCE: "reduce the dose of",
                    ActionKind.DISCONTINUE_AGENT: "discontinue"}[a.kind]
            text = f"{verb} {a.agent}"
            if self.percent is not None:
                text += f" to {self.percent:g}%"
                if self.percent_set_by:
                    text += f" (set by {self.percent_set_by}; the rule sets no percentage)"
        if a.after:
            text = f"{a.after}: {text}"
        if a.scope is not None and a.kind not in (ActionKind.DELAY_COURSE,
                                                  ActionKind.OFF_PROTOCOL_TREATMENT):
            text += f" {_SCOPE_TEXT[a.scope]}"
        if a.until:
            text += f" until {a.until}"
        if a.condition:
            text += f" (if {a.condition})"
        return text

    def signed(self) -> str:
        """The rule, its mark and the sign-off: "rule R [unconfirmed], confirmed by … on …"."""
        a = self.action
        mark = " [unconfirmed]" if a.unconfirmed else ""
        assert a.confirmed_at is not None  # by the validator
        return f"rule {a.rule_id}{mark}, confirmed by {a.confirmed_by} on {_stamp(a.confirmed_at)}"

    def shown(self) -> str:
        """One line: from when, what, the rule with its mark and who confirmed it."""
        return f"from {self.effective.isoformat()}: {self.what()} — {self.signed()}"

    def course_delay(self) -> CourseDelay | None:
        """The course delay this action records (None unless it delays a course)."""
        if self.kind is not ActionKind.DELAY_COURSE:
            return None
        a = self.action
        assert self.course_number is not None and self.days is not None  # by resolve_action
        assert a.confirmed_by is not None and a.confirmed_at is not None
        return CourseDelay(course=self.course_number, days=self.days, reason=a.reason,
                           by=a.confirmed_by, recorded_on=a.confirmed_at.date(),
                           rule_id=a.rule_id)

    def modification(self) -> Modification:
        a = self.action
        assert a.confirmed_by is not None and a.confirmed_at is not None  # by the validator
        return Modification(
            kind=a.kind.value, text=self.shown(), rule_id=a.rule_id, source=a.source,
            unconfirmed=a.unconfirmed, confirmed_by=a.confirmed_by, confirmed_at=a.confirmed_at,
            reason=a.reason, effective=self.effective, course_number=self.course_number,
            percent=self.percent, days=self.days, event_ids=self.event_ids)


# ---------------------------------------------------------------------------- resolving


def _courses(calendar: Calendar) -> dict[int, Event]:
    return {e.course_number: e for e in calendar.events
            if e.kind is EventKind.COURSE and e.course_number is not None}


def _course_list(courses: dict[int, Event]) -> str:
    return ", ".join(f"{n} {e.course_id}" for n, e in sorted(courses.items())) or "none"


def _who(calendar: Calendar) -> str:
    return calendar.patient_id or "this patient"


def _current_course(calendar: Calendar, action: ProposedAction, effective: date) -> Event | None:
    """The course the action concerns: the one it names, else the one ``effective`` falls in."""
    courses = _courses(calendar)
    if action.course_number is not None:
        course = courses.get(action.course_number)
        if course is None:
            raise ScheduleError(
                f"course {action.course_number} is not on the calendar of {_who(calendar)} "
                f"(courses: {_course_list(courses)})", where="course_number")
        if action.course is not None and course.course_id != action.course:
            raise ScheduleError(f"course {action.course_number} of {_who(calendar)} is "
                                f"{course.course_id}, not {action.course}", where="course")
        return course
    if action.course is not None and action.course not in {c.course_id for c in courses.values()}:
        raise ScheduleError(f"{action.course} is not a course on the calendar of "
                            f"{_who(calendar)} (courses: {_course_list(courses)})",
                            where="course")
    for course in courses.values():
        if course.date is not None and course.date <= effective <= (course.end or course.date) \
                and (action.course is None or course.course_id == action.course):
            return course
    return None


def _agent_events(calendar: Calendar, agent: str) -> list[Event]:
    key = agent.casefold()
    found = [e for e in calendar.events if e.dose is not None and e.dose.agent.casefold() == key
             and e.kind in (EventKind.ADMINISTRATION, EventKind.TIMED)]
    if not found:
        agents = dict.fromkeys(e.dose.agent for e in calendar.events if e.dose is not None)
        raise ScheduleError(f"{agent!r} is not on the calendar of {_who(calendar)} (agents: "
                            f"{', '.join(agents) or 'none'})", where="agent")
    return found


def _later(events: Iterable[Event], effective: date, recorded: set[str]) -> list[Event]:
    return [e for e in events if e.date is not None and e.date >= effective
            and e.id not in recorded and e.status not in _GONE]


def _scoped(events: list[Event], scope: ActionScope | None, current: Event | None,
            kind: ActionKind) -> list[Event]:
    if scope is ActionScope.UNTIL_RESOLVED:
        raise SafetyError(f"a '{kind.value}' until the event resolves has no end the calendar "
                          "can place; record each withheld administration instead",
                          where="scope")
    if scope in (ActionScope.REST_OF_COURSE, ActionScope.FOLLOWING_COURSES):
        if current is None or current.course_number is None:
            raise ScheduleError(f"'{scope.value}' needs the course the event happened in; "
                                "the action names none and its date falls in no course",
                                where="course_number")
        n = current.course_number
        if scope is ActionScope.REST_OF_COURSE:
            return [e for e in events if e.course_number == n]
        return [e for e in events if e.course_number is not None and e.course_number > n]
    return events  # permanent, or no scope: every later one


def _delay_target(calendar: Calendar, action: ProposedAction, effective: date,
                  recorded: set[str], named: Event | None) -> Event:
    """The course to delay: the one the action names (``named``), else the next one of its
    course id (any, if it names none) that starts on or after ``effective`` unstarted."""
    if action.course_number is not None and named is not None:
        return named
    courses = _courses(calendar)
    started = {e.course_number for e in calendar.events if e.id in recorded}
    for n, course in sorted(courses.items()):
        if course.date is not None and course.date >= effective and n not in started and \
                (action.course is None or course.course_id == action.course) and \
                course.status not in _GONE:
            return course
    which = f"{action.course} course" if action.course else "course"
    raise ScheduleError(f"no {which} of {_who(calendar)} starts on or after "
                        f"{effective.isoformat()} without having started", where="course")


def resolve_action(
    calendar: Calendar,
    records: Sequence[EventRecord],
    action: ProposedAction,
    *,
    trial_id: str,
    patient_id: str,
    effective: date,
    applied_at: datetime,
    days: int | None = None,
    percent: float | None = None,
    accept_unconfirmed: bool = False,
    previous: Sequence[AppliedAction] = (),
) -> AppliedAction:
    """Check a confirmed ``action`` against the patient's ``calendar`` and fix what it changes.

    ``trial_id`` and ``patient_id`` say whose adverse event or lab it came from;
    ``effective`` the day it takes effect; ``days`` a delay's length (the clinician's:
    no rule sets one); ``percent`` a reduction or a slower rate when the rule sets none
    (a different percentage from the rule's is refused); ``previous`` the actions already
    applied (the same one twice is refused). ``calendar`` is the patient's calendar with
    ``previous`` already shown; ``records`` what was recorded (recorded events never change).
    """
    if action.kind is ActionKind.SUPPORTIVE_CARE:
        raise SafetyError(f"rule {action.rule_id} advises supportive care; nothing changes on the "
                          "calendar", where="kind")
    if not action.confirmed or action.confirmed_at is None:
        raise SafetyError(f"the action of rule {action.rule_id} is not confirmed by a clinician; "
                          "a clinician confirms it before the calendar changes",
                          where="confirmed_by")
    if action.unconfirmed and not accept_unconfirmed:
        raise SafetyError(f"rule {action.rule_id} is not confirmed against its source "
                          f"({action.source}); the clinician must accept that explicitly",
                          where="accept_unconfirmed")
    if trial_id != calendar.trial_id:
        raise SafetyError(f"the action is for {trial_id}, not {calendar.trial_id}",
                          where="trial_id")
    if calendar.patient_id is not None and patient_id != calendar.patient_id:
        raise SafetyError(f"the action is for patient {patient_id}, not {calendar.patient_id}",
                          where="patient_id")
    if days is not None and action.kind is not ActionKind.DELAY_COURSE:
        raise SafetyError(f"only a course delay takes days, not '{action.kind.value}'",
                          where="days")
    if days is not None and days < 1:
        raise SafetyError(f"a delay is at least 1 day, got {days}", where="days")
    if percent is not None and action.kind not in _PERCENT_KINDS:
        raise SafetyError(f"only slow or reduce take a percentage, not '{action.kind.value}'",
                          where="percent")
    recorded = {r.event_id for r in records}
    used_percent, set_by = action.percent, None
    if action.kind in _PERCENT_KINDS and percent is not None:
        if action.percent is not None and percent != action.percent:
            raise SafetyError(f"rule {action.rule_id} sets {action.percent:g}%; a different "
                              "percentage is not this rule's action", where="percent")
        if action.percent is None:
            if not 0 < percent < 100:
                raise SafetyError(f"must be above 0 and below 100, got {percent:g}",
                                  where="percent")
            used_percent, set_by = percent, action.confirmed_by
    if action.kind is ActionKind.REDUCE and used_percent is None:
        raise SafetyError(f"rule {action.rule_id} sets no percentage for the reduction; the "
                          "confirming clinician must give one", where="percent")

    current = _current_course(calendar, action, effective)
    course = current
    ids: list[str]
    if action.kind is ActionKind.DELAY_COURSE:
        if days is None:
            until = f" until {action.until}" if action.until else ""
            raise SafetyError(f"rule {action.rule_id} delays the course{until}; the protocol "
                              "sets no length, so the clinician gives the days", where="days")
        course = _delay_target(calendar, action, effective, recorded, current)
        ids = [course.id]
    elif action.kind is ActionKind.OFF_PROTOCOL_TREATMENT:
        # Treatment: doses, admissions, decisions, courses and the courses' own procedures
        # (an arm's procedures, assessments, sampling and milestones stay).
        ids = [e.id for e in _later(calendar.events, effective, recorded)
               if (e.kind in _TREATMENT and (e.course_number is not None
                                             or e.kind is not EventKind.PROCEDURE))
               or (e.kind is EventKind.TIMED and e.dose is not None)]
        if not ids:
            raise ScheduleError(f"no treatment of {_who(calendar)} is left on or after "
                                f"{effective.isoformat()}", where="effective")
    else:
        assert action.agent is not None  # ActionSpec requires it for these kinds
        mine = _agent_events(calendar, action.agent)
        if current is not None and current.date is not None and not (
                current.date <= effective <= (current.end or current.date)):
            raise ScheduleError(
                f"{effective.isoformat()} is not in course {current.course_number} "
                f"({current.date.isoformat()} → {(current.end or current.date).isoformat()}), "
                "the course the action is for", where="effective")
        if action.kind in _NOTE_KINDS:
            here = [e for e in mine if e.date is not None and e.date >= effective
                    and e.status not in _GONE
                    and (current is None or e.course_number == current.course_number)]
            if not here:
                where = f" in course {current.course_number}" if current else ""
                raise ScheduleError(f"no administration of {action.agent}{where} on or after "
                                    f"{effective.isoformat()}", where="agent")
            ids = [here[0].id]
        else:
            chosen = _scoped(_later(mine, effective, recorded), action.scope, current, action.kind)
            if not chosen:
                raise ScheduleError(f"no administration of {action.agent} left to change on or "
                                    f"after {effective.isoformat()} "
                                    f"({(action.scope or ActionScope.PERMANENT).value})",
                                    where="agent")
            ids = [e.id for e in chosen]
    number = course.course_number if course is not None else None
    course_id = course.course_id if course is not None else None
    for old in previous:
        if (old.rule_id, old.kind, old.action.agent, old.course_number, old.effective) == (
                action.rule_id, action.kind, action.agent, number, effective):
            assert old.action.confirmed_at is not None
            raise SafetyError(
                f"this action of rule {action.rule_id} was already applied (confirmed by "
                f"{old.action.confirmed_by} on {_stamp(old.action.confirmed_at)})",
                where="rule_id")
    return AppliedAction(
        trial_id=trial_id, patient_id=patient_id, action=action, effective=effective,
        course_number=number, course_id=course_id, percent=used_percent, percent_set_by=set_by,
        days=days, event_ids=tuple(ids), accepted_unconfirmed=accept_unconfirmed,
        applied_at=applied_at)


# ---------------------------------------------------------------------------- showing


def _administration(protocol: Protocol, calendar: Calendar, e: Event) -> Administration | None:
    assert e.dose is not None
    agent = e.dose.agent
    if e.course_id is not None:
        chosen = set(calendar.variants.values())
        for adm in protocol.course(e.course_id).administrations:
            if adm.agent == agent and e.course_day in adm.days and (
                    adm.variant is None or adm.variant in chosen):
                return adm
        return None
    for step in protocol.arm(calendar.arm_id).plan:
        if isinstance(step, TimedStep) and step.administration is not None and \
                step.administration.agent == agent:
            return step.administration
    return None


def _reduced(protocol: Protocol, calendar: Calendar, e: Event,
             cuts: list[AppliedAction]) -> ComputedDose | None:
    """The event's dose at the product of the reductions, recomputed from the protocol dose."""
    dose = e.dose
    adm = _administration(protocol, calendar, e) if dose is not None else None
    if dose is None or dose.amount is None or adm is None or adm.dose.amount is None:
        return None
    factor = 1.0
    steps = []
    for cut in cuts:
        assert cut.percent is not None
        factor *= cut.percent / 100
        mark = " [unconfirmed]" if cut.action.unconfirmed else ""
        steps.append(f"{cut.percent:g}% (rule {cut.rule_id}{mark}, confirmed by "
                     f"{cut.action.confirmed_by})")
    prescribed = adm.dose
    scaled = prescribed.model_copy(update={
        "amount": prescribed.amount * factor if prescribed.amount else None,
        "amount_max": prescribed.amount_max * factor if prescribed.amount_max else None})
    body = None
    if dose.measured_on is not None and (dose.weight_kg is not None or dose.height_cm is not None):
        body = BodyMeasurement(on=dose.measured_on, weight_kg=dose.weight_kg,
                               height_cm=dose.height_cm)
    new = compute_dose(adm.agent, scaled, body, protocol.dosing, protocol.bsa_formula)
    per = {"fixed": "", "per_m2": "/m²", "per_kg": "/kg"}[prescribed.basis.value]

    def amount(d: Any) -> str:
        text = f"{d.amount:.10g}"
        return text + (f"–{d.amount_max:.10g}" if d.amount_max else "")

    working = (f"reduced to {' × '.join(steps)}: {amount(prescribed)} {prescribed.unit}{per} "
               f"× {factor * 100:.10g}% = {amount(scaled)} {prescribed.unit}{per}; {new.working}")
    marks = tuple(f"toxicity rule {c.rule_id}" for c in cuts if c.action.unconfirmed)
    return replace(new, prescribed=dose.prescribed, working=working,
                   unconfirmed=tuple(dict.fromkeys(dose.unconfirmed + marks)))


def apply_actions(protocol: Protocol, calendar: Calendar,
                  applied: Sequence[AppliedAction]) -> Calendar:
    """The calendar showing every applied action (see the module docstring).

    Delays are already in the calendar (``plan`` lays them out); here the delayed course
    gets its note. A recorded event keeps its recorded status and gets the note.
    """
    if not applied:
        return calendar
    by_event: dict[str, list[AppliedAction]] = {}
    for a in applied:
        for event_id in a.event_ids:
            by_event.setdefault(event_id, []).append(a)
    events: list[Event] = []
    for e in calendar.events:
        mine = by_event.get(e.id)
        if not mine:
            events.append(e)
            continue
        notes = [f"{a.what()} ({a.signed()})" for a in mine]
        status = e.status
        kinds = {a.kind for a in mine}
        if e.record is None:
            if ActionKind.OFF_PROTOCOL_TREATMENT in kinds:
                status = EventStatus.CANCELLED
            elif ActionKind.DISCONTINUE_AGENT in kinds:
                status = EventStatus.DISCONTINUED
        dose = e.dose
        cuts = [a for a in mine if a.kind is ActionKind.REDUCE]
        if cuts:
            reduced = _reduced(protocol, calendar, e, cuts)
            if reduced is not None:
                dose = reduced
            else:
                notes.append("the dose is not set, so no reduced amount can be computed")
        marks = tuple(f"toxicity rule {a.rule_id}" for a in mine if a.action.unconfirmed)
        note = "; ".join(([e.status_note] if e.status_note else []) + notes)
        events.append(replace(
            e, status=status, dose=dose, status_note=note,
            unconfirmed=tuple(dict.fromkeys(e.unconfirmed + marks)),
            modifications=e.modifications + tuple(a.modification() for a in mine)))
    return replace(calendar, events=tuple(events),
                   actions=calendar.actions + tuple(a.modification() for a in applied))


# ---------------------------------------------------------------------------- proposals


@dataclass(frozen=True)
class RuleProposal:
    """What one triggered rule of an adverse-event check proposes.

    ``actions`` change the calendar once confirmed; ``advice`` is supportive care;
    ``found_on`` is the earliest date of the adverse events or labs that triggered the
    rule (None for a recovery check, whose labs the check does not date).
    """

    rule_id: str
    actions: tuple[ProposedAction, ...]
    advice: tuple[ProposedAction, ...]
    found_on: date | None


def rule_proposal(check: SafetyCheck, protocol: Protocol, rule_id: str) -> RuleProposal:
    """The proposals of rule ``rule_id`` in ``check``; refused unless the rule was triggered.

    >>> from trialdesk.protocol.load import load_protocol, default_protocol_dir
    >>> from trialdesk.safety.check import check_document
    >>> p = load_protocol(default_protocol_dir() / "nb-nk-2026.yaml").protocol
    >>> doc = {"patient_id": "NB-001", "course": "DIT", "course_number": 2, "events": [
    ...     {"term": "Capillary leak syndrome", "grade": 4, "onset": "2026-12-16",
    ...      "seriousness": ["life_threatening"]}]}
    >>> found = rule_proposal(check_document(doc, p), p, "NBNK-CLS-G4")
    >>> [a.kind.value for a in found.actions], found.found_on
    (['discontinue_agent'], datetime.date(2026, 12, 16))
    """
    rule = next((r for r in protocol.toxicity_rules if r.id == rule_id), None)
    if rule is None:
        known = [r.id for r in protocol.toxicity_rules]
        close = difflib.get_close_matches(rule_id, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise SafetyError(f"{protocol.id} has no toxicity rule {rule_id!r}{hint}", where="rule")
    outcomes = [o for o in (*check.outcomes, *check.recovery) if o.rule_id == rule_id]
    if not outcomes:
        raise SafetyError(f"rule {rule_id} is checked before a course starts; the document "
                          "has no next_course with its labs", where="rule")
    triggered = [o for o in outcomes if o.status is Status.TRIGGERED]
    if not triggered:
        open_ = [o for o in outcomes if o.status is Status.UNKNOWN]
        if open_:
            raise SafetyError(f"rule {rule_id} is undecided: {open_[0].reason}", where="rule")
        raise SafetyError(f"rule {rule_id} is not triggered: {outcomes[0].reason}", where="rule")
    proposals = proposed_actions(triggered)
    changing = tuple(a for a in proposals if a.changes_calendar)
    advice = tuple(a for a in proposals if not a.changes_calendar)
    if not changing:
        raise SafetyError(f"rule {rule_id} proposes supportive care only; nothing changes on "
                          "the calendar", where="rule")
    found_on: date | None = None
    if not isinstance(rule.when, RecoveryTrigger):
        findings = [Finding.from_event(ae) for ae in check.events]
        findings += [Finding.from_lab(g.grade, g.on) for g in check.labs
                     if g.grade.possible_grades != (0,)]
        dates = [f.on for f in findings if f.on is not None and any(
            o.status is Status.TRIGGERED for o in evaluate_findings(
                [rule], [f], course=check.course, course_number=check.course_number))]
        found_on = min(dates, default=None)
    return RuleProposal(rule_id, changing, advice, found_on)
