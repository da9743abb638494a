"""Check an adverse-event document against a protocol: validate, grade, report, propose.

The document (JSON, see ``examples/safety/``) holds one patient's adverse events, lab
results and temperatures to grade by CTCAE v5.0, the course they happened in and,
optionally, the labs before the next course. :func:`check_document` validates every
record (an impossible
grade, a CTCAE version other than 5.0, an unknown course are refused with their JSON
path), grades the labs, gives each event's expedited-reporting deadline, and evaluates
the protocol's toxicity rules into proposed actions.

Nothing here reads files or the clock; the CLI and the API pass the parsed document.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trialdesk.clinical import ctcae
from trialdesk.clinical.ctcae import LabGrade
from trialdesk.documents import as_json_text, plain_reason
from trialdesk.errors import SafetyError, TrialdeskError
from trialdesk.protocol.model import Protocol
from trialdesk.safety.adverse_event import AdverseEvent, Expectedness, ReportingDeadline, expedited_reporting
from trialdesk.safety.rules import (
    Finding,
    LabValue,
    ProposedAction,
    RuleOutcome,
    check_course_start,
    evaluate_findings,
    proposed_actions,
)
from trialdesk.safety.stopping import ReportedEvent, StoppingResult, check_stopping

SCHEMA = "trialdesk.ae-check/1"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LabResult(_Doc):
    """A lab value to grade by CTCAE v5.0 (limits in the value's unit)."""

    term: str
    value: float
    unit: str
    lln: float | None = None
    uln: float | None = None
    baseline: float | None = None
    symptomatic: bool | None = None
    # CTCAE v5.0 facts some lab terms need: INR is graded x baseline "if on anticoagulation",
    # hyperuricemia by "physiologic consequences", aPTT and INR grade 3 by "bleeding".
    anticoagulation: bool | None = None
    physiologic_consequences: bool | None = None
    bleeding: bool | None = None
    date: dt.date | None = None


class Temperature(_Doc):
    """A body temperature, graded as CTCAE v5.0 "Fever"."""

    celsius: float
    hours_above_40: float | None = None
    date: dt.date | None = None


class CourseLab(_Doc):
    """A lab for the recovery check before a course: a fact-dictionary lab name."""

    name: str
    value: float
    unit: str
    date: dt.date | None = None


class NextCourse(_Doc):
    course: str
    course_number: int | None = Field(default=None, ge=1)
    labs: list[CourseLab] = []


class AeDocument(_Doc):
    """One patient's adverse-event document."""

    patient_id: str
    trial: str | None = None
    arm: str | None = None
    course: str | None = None
    course_number: int | None = Field(default=None, ge=1)
    events: list[dict[str, Any]] = []
    labs: list[LabResult] = []
    temperatures: list[Temperature] = []
    next_course: NextCourse | None = None


@dataclass(frozen=True)
class Reporting:
    """Expedited reporting of one event: the deadline, none, or why it is unknown."""

    required: bool | None
    deadline: ReportingDeadline | None
    reason: str


@dataclass(frozen=True)
class GradedLab:
    grade: LabGrade
    on: date | None


@dataclass(frozen=True)
class SafetyCheck:
    """The result of :func:`check_document`."""

    patient_id: str
    trial: str
    course: str | None
    course_number: int | None
    events: tuple[AdverseEvent, ...]
    reporting: tuple[Reporting, ...]
    labs: tuple[GradedLab, ...]
    outcomes: tuple[RuleOutcome, ...]
    recovery: tuple[RuleOutcome, ...]
    actions: tuple[ProposedAction, ...]

    def to_json(self) -> dict[str, Any]:
        """The stable JSON document (``schema`` names its version)."""
        return {
            "schema": SCHEMA,
            "patient_id": self.patient_id,
            "trial": self.trial,
            "course": self.course,
            "course_number": self.course_number,
            "events": [
                {**ae.model_dump(mode="json"), "reporting": _reporting_json(r)}
                for ae, r in zip(self.events, self.reporting, strict=True)
            ],
            "labs": [
                {"term": g.grade.term, "value": g.grade.value, "unit": g.grade.unit,
                 "date": g.on.isoformat() if g.on else None, "grade": g.grade.grade,
                 "possible_grades": list(g.grade.possible_grades), "rule": g.grade.rule,
                 "missing": list(g.grade.missing), "ctcae_version": g.grade.ctcae_version,
                 "source": g.grade.source}
                for g in self.labs
            ],
            "rules": [_outcome_json(o) for o in (*self.outcomes, *self.recovery)],
            "proposed_actions": [a.model_dump(mode="json") for a in self.actions],
        }


def _reporting_json(r: Reporting) -> dict[str, Any]:
    d = r.deadline
    return {
        "required": r.required,
        "reason": r.reason,
        "calendar_days": d.calendar_days if d else None,
        "due": d.due.isoformat() if d and d.due else None,
        "follow_up_due": d.follow_up_due.isoformat() if d and d.follow_up_due else None,
        "source": d.source if d else None,
    }


def _outcome_json(o: RuleOutcome) -> dict[str, Any]:
    return {"rule_id": o.rule_id, "title": o.title, "status": o.status.value, "reason": o.reason,
            "missing": list(o.missing), "unconfirmed": o.unconfirmed, "source": o.source}


def reporting_for(ae: AdverseEvent) -> Reporting:
    """Expedited reporting from the record itself: attribution and expectedness as recorded.

    Attribution or expectedness not recorded leaves a serious event's reporting unknown;
    the deadline it would have as a SUSAR is still given so nobody misses it.
    """
    if not ae.serious:
        return Reporting(False, None, "not serious: no expedited report")
    related = ae.suspected_related if ae.attributions else None
    expected = None if ae.expectedness is None else ae.expectedness is Expectedness.EXPECTED
    if related is False:
        return Reporting(False, None, "serious, not suspected to be related: no expedited report")
    if expected is True:
        return Reporting(False, None, "serious, expected: no expedited report")
    missing = [name for name, flag in (("attribution", related), ("expectedness", expected)) if flag is None]
    deadline = expedited_reporting(ae, related=True, expected=False)
    if missing:
        return Reporting(None, deadline,
                         f"{' and '.join(missing)} not recorded: a SUSAR if related and unexpected")
    if deadline is not None and deadline.due is None:
        return Reporting(True, deadline,
                         f"{deadline.category}: the day the sponsor learnt of it is not recorded")
    return Reporting(True, deadline, deadline.category if deadline else "")


def _doc_error(source: str, exc: ValidationError) -> SafetyError:
    first = exc.errors()[0]
    path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
    return SafetyError(plain_reason(first), where=f"{source}: {path}")


def parse_document(data: Any, *, source: str = "<document>") -> AeDocument:
    if not isinstance(data, dict):
        raise SafetyError("an adverse-event document is a JSON object", where=source)
    try:
        return AeDocument.model_validate_json(as_json_text(data, SafetyError, where=source), strict=True)
    except ValidationError as exc:
        raise _doc_error(source, exc) from None


def _course(protocol: Protocol, course: str | None, where: str) -> None:
    if course is not None and course not in {c.id for c in protocol.courses}:
        known = ", ".join(c.id for c in protocol.courses) or "none"
        raise SafetyError(f"{protocol.id} has no course {course!r}; courses: {known}", where=where)


def check_document(data: Any, protocol: Protocol, *, source: str = "<document>") -> SafetyCheck:
    """Validate, grade and evaluate one adverse-event document against ``protocol``."""
    doc = parse_document(data, source=source)
    if doc.trial is not None and doc.trial != protocol.id:
        raise SafetyError(f"the document is for {doc.trial}, not {protocol.id}", where=f"{source}: $.trial")
    if doc.arm is not None and doc.arm not in {a.id for a in protocol.arms}:
        raise SafetyError(f"{protocol.id} has no arm {doc.arm!r}", where=f"{source}: $.arm")
    _course(protocol, doc.course, f"{source}: $.course")
    events: list[AdverseEvent] = []
    for i, raw in enumerate(doc.events):
        try:
            events.append(AdverseEvent.model_validate(raw))
        except TrialdeskError as exc:
            raise SafetyError(exc.reason, where=f"{source}: $.events[{i}] ({exc.where})") from None
    labs: list[GradedLab] = []
    for i, lab in enumerate(doc.labs):
        try:
            grade = ctcae.grade_lab(lab.term, lab.value, lab.unit, lln=lab.lln, uln=lab.uln,
                                    baseline=lab.baseline, symptomatic=lab.symptomatic,
                                    anticoagulation=lab.anticoagulation,
                                    physiologic_consequences=lab.physiologic_consequences,
                                    bleeding=lab.bleeding)
        except TrialdeskError as exc:
            raise SafetyError(exc.reason, where=f"{source}: $.labs[{i}].{exc.where}") from None
        labs.append(GradedLab(grade, lab.date))
    for i, temp in enumerate(doc.temperatures):
        try:
            fever = ctcae.grade_fever(temp.celsius, temp.hours_above_40)
        except TrialdeskError as exc:
            raise SafetyError(exc.reason, where=f"{source}: $.temperatures[{i}].{exc.where}") from None
        labs.append(GradedLab(fever, temp.date))
    findings = [Finding.from_event(ae) for ae in events]
    findings += [Finding.from_lab(g.grade, g.on) for g in labs if g.grade.possible_grades != (0,)]
    outcomes = evaluate_findings(protocol.toxicity_rules, findings, course=doc.course,
                                 course_number=doc.course_number)
    recovery: tuple[RuleOutcome, ...] = ()
    if doc.next_course is not None:
        nxt = doc.next_course
        _course(protocol, nxt.course, f"{source}: $.next_course.course")
        latest: dict[str, LabValue] = {}
        for lab_in in sorted(nxt.labs, key=lambda x: x.date or date.min):
            latest[lab_in.name] = LabValue(lab_in.name, lab_in.value, lab_in.unit, lab_in.date)
        try:
            recovery = check_course_start(protocol.toxicity_rules, nxt.course, latest,
                                          course_number=nxt.course_number)
        except TrialdeskError as exc:
            raise SafetyError(exc.reason, where=f"{source}: $.next_course.{exc.where}") from None
    return SafetyCheck(
        patient_id=doc.patient_id,
        trial=protocol.id,
        course=doc.course,
        course_number=doc.course_number,
        events=tuple(events),
        reporting=tuple(reporting_for(ae) for ae in events),
        labs=tuple(labs),
        outcomes=outcomes,
        recovery=recovery,
        actions=proposed_actions((*outcomes, *recovery)),
    )


# --------------------------------------------------------------------------- stopping


class _TrialEvent(_Doc):
    patient_id: str
    arm: str | None = None
    event: dict[str, Any]


class TrialEvents(_Doc):
    """The trial's adverse events for a stopping-rule check."""

    trial: str | None = None
    events: list[_TrialEvent] = []


def check_trial_events(
    data: Any, protocol: Protocol, *, source: str = "<document>"
) -> tuple[StoppingResult, ...]:
    """Validate the trial's events and run the protocol's stopping rules on them."""
    if not isinstance(data, dict):
        raise SafetyError("an events document is a JSON object", where=source)
    try:
        doc = TrialEvents.model_validate_json(as_json_text(data, SafetyError, where=source), strict=True)
    except ValidationError as exc:
        raise _doc_error(source, exc) from None
    if doc.trial is not None and doc.trial != protocol.id:
        raise SafetyError(f"the document is for {doc.trial}, not {protocol.id}", where=f"{source}: $.trial")
    arms = {a.id for a in protocol.arms}
    reported: list[ReportedEvent] = []
    for i, item in enumerate(doc.events):
        if item.arm is not None and item.arm not in arms:
            raise SafetyError(f"{protocol.id} has no arm {item.arm!r}", where=f"{source}: $.events[{i}].arm")
        try:
            ae = AdverseEvent.model_validate(item.event)
        except TrialdeskError as exc:
            raise SafetyError(exc.reason, where=f"{source}: $.events[{i}].event ({exc.where})") from None
        reported.append(ReportedEvent(item.patient_id, ae, item.arm))
    return check_stopping(protocol.stopping_rules, reported)


__all__ = [
    "SCHEMA",
    "AeDocument",
    "GradedLab",
    "Reporting",
    "SafetyCheck",
    "check_document",
    "check_trial_events",
    "parse_document",
    "reporting_for",
]
