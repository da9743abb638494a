"""Trial stopping rules: counts of serious events that call the DSMB in.

A protocol declares its stopping rules (``stopping_rules:`` in the protocol file): which
adverse events count (grade at least ``min_grade``, optionally only some terms, only
events suspected to be related to protocol treatment, only some arms), whether patients
or events are counted, and the count at which the Data Safety Monitoring Board is
alerted. The thresholds belong to the protocol and its DSMB charter, never to code.

Attribution that was not recorded is unknown, not "unrelated": such an event may or may
not count, so a rule can be ``unknown`` (it would trigger if the open events count).

>>> from datetime import date
>>> rule = StoppingRule.model_validate({
...     "id": "SR1", "title": "Treatment-related deaths", "min_grade": 5,
...     "related_only": True, "threshold": {"value": 1, "source": "example"},
...     "source": "example"})
>>> death = AdverseEvent(term="Sepsis", grade=5, onset=date(2026, 4, 1),
...                      seriousness={"death"}, outcome="fatal",
...                      attributions=[{"agent": "irinotecan", "attribution": "possible"}])
>>> result, = check_stopping([rule], [ReportedEvent("P1", death, arm="A")])
>>> result.status.value, result.count
('triggered', 1)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trialdesk.safety.adverse_event import AdverseEvent
from trialdesk.safety.rules import Status, Threshold, normalise_term


class StoppingRule(BaseModel):
    """A DSMB alert rule: count qualifying events; alert at ``threshold``.

    ``threshold.value`` is a whole count of at least 1 (or not set: then the rule
    reports its count and cannot decide). ``agents`` restricts "related" to suspected
    attribution to those agents (empty: any agent of the record).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")
    title: str
    min_grade: int = Field(default=5, ge=1, le=5)
    terms: list[str] = []
    related_only: bool = False
    agents: list[str] = []
    arms: list[str] = []
    count: Literal["patients", "events"] = "patients"
    threshold: Threshold
    source: str
    unconfirmed: bool = False
    note: str | None = None

    @field_validator("terms")
    @classmethod
    def _terms(cls, value: list[str]) -> list[str]:
        return [normalise_term(t) for t in value]

    @model_validator(mode="after")
    def _threshold(self) -> StoppingRule:
        value = self.threshold.value
        if value is not None and (value < 1 or value != int(value)):
            raise ValueError(f"the threshold is a count of at least 1, got {value:g}")
        if self.agents and not self.related_only:
            raise ValueError("'agents' narrows 'related_only'; set related_only: true")
        return self

    @property
    def is_unconfirmed(self) -> bool:
        return self.unconfirmed or self.threshold.unconfirmed

    def describe(self) -> str:
        what = f"grade {self.min_grade}" + ("" if self.min_grade == 5 else " or above")
        if self.terms:
            what = f"{' or '.join(self.terms)}, {what}"
        if self.related_only:
            agents = f" to {' or '.join(self.agents)}" if self.agents else " to protocol treatment"
            what += f", suspected related{agents}"
        if self.arms:
            what += f", arm {', '.join(self.arms)}"
        return f"{self.count} with {what}; alert at {self.threshold.shown()}"


@dataclass(frozen=True)
class ReportedEvent:
    """An adverse event of one trial participant."""

    patient_id: str
    event: AdverseEvent
    arm: str | None = None


@dataclass(frozen=True)
class StoppingResult:
    """One stopping rule against the trial's events: the DSMB alert when triggered.

    ``count`` counts what surely qualifies; ``open_count`` what may (attribution or arm
    not recorded). ``counted`` and ``open`` name the patients (with the event).
    """

    rule_id: str
    title: str
    status: Status
    count: int
    open_count: int
    threshold: float | None
    counted: tuple[str, ...]
    open: tuple[str, ...]
    message: str
    unconfirmed: bool
    source: str

    @property
    def alert(self) -> bool:
        """True when the DSMB must be alerted."""
        return self.status is Status.TRIGGERED


def _related(rule: StoppingRule, event: AdverseEvent) -> bool | None:
    """Whether the event counts as related for ``rule``; None when not recorded."""
    wanted = {a.casefold() for a in rule.agents}
    relevant = [a for a in event.attributions if not wanted or a.agent.casefold() in wanted]
    if any(a.attribution.suspected for a in relevant):
        return True
    if not event.attributions:
        return None
    return False


def _qualifies(rule: StoppingRule, reported: ReportedEvent) -> bool | None:
    event = reported.event
    if event.grade < rule.min_grade:
        return False
    if rule.terms and event.term.casefold() not in {t.casefold() for t in rule.terms}:
        return False
    answers: list[bool | None] = []
    if rule.arms:
        answers.append(None if reported.arm is None else reported.arm in rule.arms)
    if rule.related_only:
        answers.append(_related(rule, event))
    if False in answers:
        return False
    return None if None in answers else True


def _label(reported: ReportedEvent) -> str:
    event = reported.event
    return f"{reported.patient_id}: {event.term} grade {event.grade} ({event.onset.isoformat()})"


def _count_text(count: int, what: str) -> str:
    noun = what if count != 1 else what[:-1]  # "patients" / "events"
    return f"{count} {noun}"


def check_stopping(
    rules: Iterable[StoppingRule], events: Iterable[ReportedEvent]
) -> tuple[StoppingResult, ...]:
    """Every stopping rule against the trial's adverse events.

    Triggered when the sure count reaches the threshold; unknown when only the events
    with missing attribution or arm could bring it there, or when no threshold is set.
    """
    reported = tuple(events)
    results: list[StoppingResult] = []
    for rule in rules:
        sure: dict[str, list[str]] = {}
        maybe: dict[str, list[str]] = {}
        for item in reported:
            answer = _qualifies(rule, item)
            if answer is None:
                maybe.setdefault(item.patient_id, []).append(_label(item))
            elif answer:
                sure.setdefault(item.patient_id, []).append(_label(item))
        if rule.count == "patients":
            count = len(sure)
            open_count = len(set(maybe) - set(sure))
            counted = tuple(labels[0] for labels in sure.values())
            open_ = tuple(labels[0] for p, labels in maybe.items() if p not in sure)
        else:
            counted = tuple(label for labels in sure.values() for label in labels)
            open_ = tuple(label for labels in maybe.values() for label in labels)
            count, open_count = len(counted), len(open_)
        limit = rule.threshold.value
        mark = " [unconfirmed]" if rule.is_unconfirmed else ""
        counted_text = _count_text(count, rule.count)
        if limit is None:
            status = Status.UNKNOWN
            message = f"{counted_text} counted; the protocol sets no threshold, so no alert can be decided"
        elif count >= limit:
            status = Status.TRIGGERED
            message = f"ALERT the DSMB: {counted_text} counted, threshold {limit:g}{mark}"
        elif count + open_count >= limit:
            status = Status.UNKNOWN
            message = (f"{counted_text} counted and {open_count} more with attribution or arm not "
                       f"recorded, which would reach the threshold of {limit:g}{mark}")
        else:
            status = Status.NOT_TRIGGERED
            message = f"{counted_text} counted, below the threshold of {limit:g}{mark}"
        results.append(StoppingResult(
            rule.id, rule.title, status, count, open_count, limit, counted, open_, message,
            rule.is_unconfirmed, rule.source,
        ))
    return tuple(results)


__all__ = ["ReportedEvent", "StoppingResult", "StoppingRule", "check_stopping"]
