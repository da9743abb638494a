"""What actually happened: event records (given, partly given, withheld, done, …) and course delays.

These are the values a coordinator records against a calendar. They are checked against
the calendar by :mod:`trialdesk.schedule.status`, which also derives every event's status
(missed, out of window, …); a course delay moves that course and every later event
(:func:`trialdesk.schedule.plan.plan`).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trialdesk.errors import ScheduleError

__all__ = ["CourseDelay", "EventRecord", "RecordStatus"]


class RecordStatus(StrEnum):
    """What a record says happened.

    Administrations are ``given``, ``partly_given`` or ``withheld``; procedures,
    assessments, sampling and admissions are ``done`` or ``not_done``; a decision point
    is ``continue`` or ``stop``.
    """

    GIVEN = "given"
    PARTLY_GIVEN = "partly_given"
    WITHHELD = "withheld"
    DONE = "done"
    NOT_DONE = "not_done"
    CONTINUE = "continue"
    STOP = "stop"


class EventRecord(BaseModel):
    """One event as it happened: status, the actual dose, when and who.

    >>> EventRecord(event_id="c1.irinotecan.d1", status="withheld", at=datetime(2026, 11, 23, 9),
    ...             by="nurse")
    Traceback (most recent call last):
    ...
    trialdesk.errors.ScheduleError: record.reason: a withheld or not-done event needs a reason
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    event_id: str = Field(min_length=1)
    status: RecordStatus
    at: datetime
    by: str
    amount: float | None = Field(default=None, gt=0)
    unit: str | None = None
    reason: str | None = None
    recorded_at: datetime | None = None

    @model_validator(mode="after")
    def _consistent(self) -> EventRecord:
        if not self.by.strip():
            raise ScheduleError("must name who gave or did it", where="record.by")
        dosed = self.status in (RecordStatus.GIVEN, RecordStatus.PARTLY_GIVEN)
        if dosed and (self.amount is None or not self.unit):
            raise ScheduleError("a given or partly given dose needs the actual amount and unit",
                                where="record.amount")
        if not dosed and self.amount is not None:
            raise ScheduleError(f"a {self.status.value} record has no dose", where="record.amount")
        if self.status in (RecordStatus.WITHHELD, RecordStatus.NOT_DONE, RecordStatus.STOP) and not (
            self.reason and self.reason.strip()
        ):
            what = "decision to stop" if self.status is RecordStatus.STOP else \
                "withheld or not-done event"
            raise ScheduleError(f"a {what} needs a reason", where="record.reason")
        if self.recorded_at is not None and self.at > self.recorded_at:
            raise ScheduleError(
                f"{self.at.isoformat(timespec='minutes')} is after the time it was recorded "
                f"({self.recorded_at.isoformat(timespec='minutes')})", where="record.at")
        return self


class CourseDelay(BaseModel):
    """A course postponed by ``days`` (e.g. toxicity not recovered); later events move too.

    ``rule_id`` names the protocol toxicity rule when the delay is a confirmed toxicity
    action (:mod:`trialdesk.schedule.actions`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    course: int = Field(ge=1)
    days: int = Field(ge=1)
    reason: str
    by: str
    recorded_on: date
    rule_id: str | None = None

    @model_validator(mode="after")
    def _reasoned(self) -> CourseDelay:
        if not self.reason.strip():
            raise ScheduleError("a delay needs a reason", where="delay.reason")
        if not self.by.strip():
            raise ScheduleError("must name who decided the delay", where="delay.by")
        return self
