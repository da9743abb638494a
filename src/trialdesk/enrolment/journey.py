"""A patient's journey through one trial: consent, enrolment, arm, calendar, what happened.

:class:`Journey` is one document per patient and trial (``trialdesk.journey/1``). Every
change is a pure function returning a new journey, after every check has passed, so a
caller that stores the result stores either the whole change or nothing. How journeys
are stored (files for the command line, a database later) is not this module's concern.

>>> j = Journey(trial_id="NB-NK-2026", patient_id="NB-001")
>>> j.enrolled, j.arm
(False, None)
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from trialdesk.enrolment.allocation import Allocation
from trialdesk.enrolment.consent import ConsentRecord
from trialdesk.enrolment.enrol import Enrolment
from trialdesk.errors import EnrolmentError, ScheduleError
from trialdesk.protocol.model import Protocol
from trialdesk.safety.rules import ProposedAction
from trialdesk.schedule.actions import AppliedAction, apply_actions, resolve_action
from trialdesk.schedule.dose import BodyMeasurement
from trialdesk.schedule.plan import Calendar, plan
from trialdesk.schedule.records import CourseDelay, EventRecord
from trialdesk.schedule.status import check_delay, check_record, reconcile

__all__ = ["SCHEMA", "Journey", "journey_calendar"]

SCHEMA = "trialdesk.journey/1"


class Journey(BaseModel):
    """Everything recorded about one patient in one trial, in the order it happened."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    schema_version: Literal["trialdesk.journey/1"] = "trialdesk.journey/1"
    trial_id: str
    patient_id: str
    consents: tuple[ConsentRecord, ...] = ()
    enrolment: Enrolment | None = None
    allocation: Allocation | None = None
    start: date | None = None
    body: tuple[BodyMeasurement, ...] = ()
    records: tuple[EventRecord, ...] = ()
    delays: tuple[CourseDelay, ...] = ()
    actions: tuple[AppliedAction, ...] = ()  # confirmed toxicity actions, in the order applied

    # ------------------------------------------------------------------ reading

    @property
    def consent(self) -> ConsentRecord | None:
        """The latest consent signed."""
        return max(self.consents, key=lambda c: (c.signed_on, c.recorded_at), default=None)

    @property
    def enrolled(self) -> bool:
        return self.enrolment is not None

    @property
    def arm(self) -> str | None:
        if self.enrolment is not None and self.enrolment.arm is not None:
            return self.enrolment.arm
        return self.allocation.arm if self.allocation is not None else None

    def header(self) -> list[str]:
        """How the patient came to be on this calendar (an override is always shown)."""
        lines = self.enrolment.shown() if self.enrolment else ["not enrolled"]
        if self.allocation is not None:
            a = self.allocation
            lines.append(f"randomised {a.allocated_at.isoformat(sep=' ', timespec='minutes')} to "
                         f"arm {a.arm} (stratum {a.stratum}, allocation {a.sequence}, list "
                         f"sha256 {a.list_digest[:12]})")
        if self.enrolment is not None and not self.enrolment.screening.intact:
            lines.append("WARNING: the frozen screening document no longer matches its digest")
        return lines

    # ------------------------------------------------------------------ changes

    def _same(self, trial_id: str, patient_id: str, what: str) -> None:
        if (trial_id, patient_id) != (self.trial_id, self.patient_id):
            raise EnrolmentError(f"is for {patient_id} in {trial_id}, not {self.patient_id} in "
                                 f"{self.trial_id}", where=what)

    def with_consent(self, consent: ConsentRecord) -> Journey:
        self._same(consent.trial_id, consent.patient_id, "consent")
        return self.model_copy(update={"consents": (*self.consents, consent)})

    def with_enrolment(self, enrolment: Enrolment, start: date | None = None) -> Journey:
        """Add the enrolment (refused if the patient is already enrolled in this trial)."""
        self._same(enrolment.trial_id, enrolment.patient_id, "enrolment")
        if self.enrolment is not None:
            e = self.enrolment
            raise EnrolmentError(
                f"is already enrolled in {self.trial_id} (since "
                f"{e.enrolled_at.isoformat(sep=' ', timespec='minutes')}, by {e.enrolled_by})",
                where=f"patient {self.patient_id}")
        journey = self.model_copy(update={"enrolment": enrolment})
        return journey.with_start(start) if start is not None else journey

    def with_allocation(self, allocation: Allocation) -> Journey:
        if self.enrolment is None:
            raise EnrolmentError(f"is not enrolled in {self.trial_id}; enrol before randomising",
                                 where=f"patient {self.patient_id}")
        if self.allocation is not None:
            raise EnrolmentError(f"is already randomised (arm {self.allocation.arm})",
                                 where=f"patient {self.patient_id}")
        if allocation.patient_id != self.patient_id:
            raise EnrolmentError(f"allocation is for {allocation.patient_id}", where="allocation")
        return self.model_copy(update={"allocation": allocation})

    def with_start(self, start: date) -> Journey:
        """Set the calendar's start (day 1): not before consent, not once events are recorded."""
        consent = self.consent
        if consent is None:
            raise EnrolmentError("no consent recorded", where="start")
        if start < consent.signed_on:
            raise ScheduleError(f"{start.isoformat()} is before consent "
                                f"({consent.signed_on.isoformat()})", where="start")
        if self.records and start != self.start:
            raise ScheduleError("events are already recorded on this calendar; record a course "
                                "delay instead of moving the start", where="start")
        return self.model_copy(update={"start": start})

    def with_body(self, measurement: BodyMeasurement) -> Journey:
        return self.model_copy(update={"body": (*self.body, measurement)})

    def with_record(self, protocol: Protocol, record: EventRecord) -> Journey:
        calendar = journey_calendar(protocol, self)
        consent = self.consent
        check_record(calendar, record, self.records,
                     not_before=consent.signed_on if consent else None)
        return self.model_copy(update={"records": (*self.records, record)})

    def with_corrected_record(self, protocol: Protocol, record: EventRecord) -> Journey:
        """The event's record replaced by its correction, checked as a new record would be
        against the calendar and the other records (without the one it replaces)."""
        if not any(r.event_id == record.event_id for r in self.records):
            raise ScheduleError(f"{record.event_id} is not recorded yet; record it first",
                                where="event_id")
        others = tuple(r for r in self.records if r.event_id != record.event_id)
        self.model_copy(update={"records": others}).with_record(protocol, record)
        return self.model_copy(update={"records": tuple(
            record if r.event_id == record.event_id else r for r in self.records)})

    def with_delay(self, protocol: Protocol, delay: CourseDelay) -> Journey:
        calendar = journey_calendar(protocol, self)
        check_delay(calendar, delay, self.records)
        journey = self.model_copy(update={"delays": (*self.delays, delay)})
        journey_calendar(protocol, journey)  # the moved calendar must still lay out
        return journey

    def with_action(
        self,
        protocol: Protocol,
        action: ProposedAction,
        *,
        trial_id: str,
        patient_id: str,
        effective: date,
        applied_at: datetime,
        days: int | None = None,
        percent: float | None = None,
        accept_unconfirmed: bool = False,
    ) -> Journey:
        """Apply a clinician-confirmed toxicity action to the calendar (see
        :mod:`trialdesk.schedule.actions`); a delay is also kept with the course delays."""
        calendar = journey_calendar(protocol, self)
        applied = resolve_action(
            calendar, self.records, action, trial_id=trial_id, patient_id=patient_id,
            effective=effective, applied_at=applied_at, days=days, percent=percent,
            accept_unconfirmed=accept_unconfirmed, previous=self.actions)
        update: dict[str, object] = {"actions": (*self.actions, applied)}
        delay = applied.course_delay()
        if delay is not None:
            check_delay(calendar, delay, self.records)
            update["delays"] = (*self.delays, delay)
        journey = self.model_copy(update=update)
        journey_calendar(protocol, journey)  # the changed calendar must still lay out
        return journey


def journey_calendar(protocol: Protocol, journey: Journey, as_of: datetime | None = None,
                     *, start: date | None = None, planned: Calendar | None = None
                     ) -> Calendar:
    """The patient's calendar: the arm's plan from the start date, with what happened.

    ``start`` lays out a calendar for a journey whose start is not recorded yet; with
    ``as_of`` every event gets its status on that moment. Confirmed toxicity actions are
    shown on their events (:func:`~trialdesk.schedule.actions.apply_actions`). ``planned``
    is :func:`journey_plan` of the same protocol, journey and start, laid out before (the
    plan does not depend on ``as_of``).
    """
    calendar = planned if planned is not None else journey_plan(protocol, journey, start=start)
    if as_of is not None:
        calendar = reconcile(calendar, journey.records, as_of)
    return apply_actions(protocol, calendar, journey.actions)


def journey_plan(protocol: Protocol, journey: Journey, *, start: date | None = None
                 ) -> Calendar:
    """The arm's plan laid out for the patient from the start date (doses from the body
    measurements, the course delays), before what was recorded and the toxicity actions:
    see :func:`journey_calendar`."""
    if journey.enrolment is None:
        raise EnrolmentError(f"is not enrolled in {journey.trial_id}",
                             where=f"patient {journey.patient_id}")
    if protocol.id != journey.trial_id:
        raise EnrolmentError(f"the journey is for {journey.trial_id}, not {protocol.id}",
                             where="protocol")
    arm = journey.arm
    if arm is None:
        raise EnrolmentError("has no arm yet; randomise first", where=f"patient {journey.patient_id}")
    first = journey.start or start
    if first is None:
        raise ScheduleError("no start date recorded; give one", where="start")
    if journey.start is not None and start is not None and start != journey.start:
        raise ScheduleError(f"the recorded start is {journey.start.isoformat()}", where="start")
    e = journey.enrolment
    not_before = journey.consent.signed_on if journey.consent else None
    # The plan is a function of these inputs alone: laid out once per process for each set
    # of them, however often the journey is read again (every page after any write).
    inputs = (id(protocol), arm, first, journey.body, tuple(sorted(e.variants.items())),
              tuple(e.optional), tuple(sorted(e.anchors.items())), journey.delays, not_before,
              journey.patient_id)
    key: tuple[object, ...] | None = inputs
    try:
        found = _PLANS.get(inputs)
    except TypeError:  # an input that cannot be hashed: laid out each time
        key, found = None, None
    if found is not None and found[0] is protocol:  # (the protocol kept with it: its id
        return found[1]                             # cannot be another's meanwhile)
    calendar = plan(protocol, arm, first, body=journey.body, variants=e.variants,
                    optional=e.optional, anchors=e.anchors, delays=journey.delays,
                    not_before=not_before, patient_id=journey.patient_id)
    if key is not None:
        if len(_PLANS) >= _PLANS_MAX:
            _PLANS.clear()
        _PLANS[key] = (protocol, calendar)
    return calendar


#: the plans laid out so far (see :func:`journey_plan`); a calendar is immutable
_PLANS: dict[tuple[object, ...], tuple[Protocol, Calendar]] = {}
_PLANS_MAX = 64
