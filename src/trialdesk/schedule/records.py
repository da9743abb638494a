"""What actually happened: event records (given, partly given, withheld, done, …) and course delays.

These are the values a coordinator records against a calendar. They are checked against
the calendar by :mod:`trialdesk.schedule.status`, which also derives every event's status
(missed, out of window, …); a course delay moves that course and every later event
(:func:`trialdesk.schedule.plan.plan`).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from trialdesk.errors import ScheduleError

__all__ = ["Administered", "CourseDelay", "EventRecord", "RecordStatus"]


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


class Administered(BaseModel):
    """How a dose was given, as the nurse records it at the bedside: when the infusion
    stopped, its duration, rate and volume, the route, the product's lot number, and the
    weight and height measured on the day (with the date they were measured).

    ``weight_note`` keeps what was shown before saving when the weight had changed by more
    than the protocol's threshold (``dosing.weight_change_percent``): the change and the
    dose recomputed from it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    stopped_at: datetime | None = None
    duration_hours: float | None = Field(default=None, gt=0)
    rate_ml_h: float | None = Field(default=None, gt=0)
    volume_ml: float | None = Field(default=None, gt=0)
    route: str | None = None
    lot: str | None = None
    weight_kg: float | None = Field(default=None, gt=0)
    height_cm: float | None = Field(default=None, gt=0)
    measured_on: date | None = None
    weight_note: str | None = None

    @model_validator(mode="after")
    def _measured(self) -> Administered:
        if (self.weight_kg is not None or self.height_cm is not None) and \
                self.measured_on is None:
            raise ScheduleError("a weight or height needs the date it was measured",
                                where="record.measured_on")
        return self


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
    details: Administered | None = None

    @model_serializer(mode="wrap")
    def _without_empty_details(self, handler: SerializerFunctionWrapHandler) -> Any:
        # A record without details is stored exactly as before they existed.
        out = handler(self)
        if isinstance(out, dict) and out.get("details", 0) is None:
            del out["details"]
        return out

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
        if self.details is not None:
            self._check_details(self.details)
        return self

    def _check_details(self, d: Administered) -> None:
        if d.stopped_at is not None:
            if d.stopped_at < self.at:
                raise ScheduleError(
                    f"{d.stopped_at.isoformat(timespec='minutes')} is before the start "
                    f"({self.at.isoformat(timespec='minutes')})", where="record.stopped_at")
            if self.recorded_at is not None and d.stopped_at > self.recorded_at:
                raise ScheduleError(
                    f"{d.stopped_at.isoformat(timespec='minutes')} is after the time it was "
                    f"recorded ({self.recorded_at.isoformat(timespec='minutes')})",
                    where="record.stopped_at")
        if d.measured_on is not None and d.measured_on > self.at.date():
            raise ScheduleError(f"{d.measured_on.isoformat()} is after the administration "
                                f"({self.at.date().isoformat()})", where="record.measured_on")
        given = self.status in (RecordStatus.GIVEN, RecordStatus.PARTLY_GIVEN)
        infusion = (d.stopped_at, d.duration_hours, d.rate_ml_h, d.volume_ml, d.lot)
        if not given and any(v is not None for v in infusion):
            raise ScheduleError(f"a {self.status.value} dose has no infusion details",
                                where="record.stopped_at")


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
