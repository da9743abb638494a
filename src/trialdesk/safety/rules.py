"""Protocol toxicity rules: which adverse event or lab result calls for which action.

A protocol declares its rules (``toxicity_rules:`` in the protocol file), each with its
source; no rule lives in code. A rule has a trigger and the actions it proposes:

* an **event trigger** fires on an adverse event (or a lab value graded by CTCAE v5.0)
  of one of its terms at one of its grades, e.g. capillary leak syndrome grade 3;
* a **recovery trigger** is checked before a course starts: a lab below the protocol's
  minimum (e.g. neutrophils, platelets) holds the course until it recovers;
* a **product-failure trigger** fires when a cell product of one of its product types fails
  manufacture (not released: out of specification, or a limit not set), e.g. the patient's
  NK-cell expansion batch, so the infusion it was made for cannot be given as planned.

trialdesk only *proposes* an action (:class:`ProposedAction`: slow, pause, reduce, delay
the course, discontinue an agent, take the patient off protocol treatment, or supportive
care advice). A clinician confirms it before anything changes in the calendar; an action
from a rule whose source is not confirmed says so (``unconfirmed``) and cannot be
confirmed without acknowledging that.

Missing data is never guessed: a lab value that leaves the CTCAE grade open, or a lab that
was not measured, makes the rule's outcome ``unknown`` and names what is missing.

>>> from datetime import date
>>> rule = ToxicityRule.model_validate({
...     "id": "CLS-G4", "title": "Capillary leak syndrome grade 4",
...     "when": {"terms": ["Capillary leak syndrome"], "grades": [4]},
...     "actions": [{"kind": "discontinue_agent", "agent": "dinutuximab beta",
...                  "scope": "rest_of_course"}],
...     "source": "example", "unconfirmed": True})
>>> ae = AdverseEvent(term="capillary leak syndrome", grade=4, onset=date(2026, 3, 2),
...                   seriousness={"life_threatening"})
>>> outcome, = evaluate_findings([rule], [Finding.from_event(ae)], course="DIT")
>>> outcome.status.value, outcome.actions[0].shown()
('triggered', 'discontinue dinutuximab beta for the rest of the course [unconfirmed]')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trialdesk.clinical import ctcae
from trialdesk.clinical.ctcae import LabGrade
from trialdesk.clinical.units import convert
from trialdesk.errors import SafetyError, TrialdeskError
from trialdesk.facts.dictionary import BASE, FactKind
from trialdesk.safety.adverse_event import FREE_TEXT_GRADES, AdverseEvent


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- rule model


class Threshold(_Model):
    """A protocol number used by a safety rule, with its source.

    ``value`` None means the protocol has not set it: a rule that needs it cannot decide
    and says so.
    """

    value: float | None = None
    unit: str | None = None
    source: str
    unconfirmed: bool = False
    note: str | None = None

    def shown(self) -> str:
        text = "not set" if self.value is None else f"{self.value:g}"
        if self.unit and self.value is not None:
            text += f" {self.unit}"
        return f"{text} [unconfirmed]" if self.unconfirmed else text


def normalise_term(term: str) -> str:
    """The CTCAE v5.0 spelling of ``term`` if held here, else the term with spacing tidied."""
    term = " ".join(term.split())
    if not term:
        raise ValueError("a term must not be empty")
    return ctcae.canonical_term(term) or term


def _allowed_grades(term: str) -> tuple[int, ...]:
    """Grades that exist for ``term``: CTCAE v5.0 when held here, else 1-5 (free text)."""
    if ctcae.canonical_term(term) is None:
        return FREE_TEXT_GRADES
    return ctcae.term_definition(term).allowed_grades


class EventTrigger(_Model):
    """Fires on an adverse event of one of ``terms`` at one of the grades.

    Give ``grades`` (exactly these) or ``grade_at_least``. Every grade must exist for
    every term in CTCAE v5.0 (e.g. "Pain" has no grade 4, "Capillary leak syndrome" no
    grade 1); ``grade_at_least`` covers the grades of each term from that grade up.
    ``condition`` is what the clinician must also judge (e.g. "refractory to
    analgesia"); it is shown with every proposed action.
    """

    terms: list[str] = Field(min_length=1)
    grades: list[int] | None = None
    grade_at_least: int | None = Field(default=None, ge=1, le=5)
    condition: str | None = None

    @field_validator("terms")
    @classmethod
    def _terms(cls, value: list[str]) -> list[str]:
        terms = [normalise_term(t) for t in value]
        if len({t.casefold() for t in terms}) != len(terms):
            raise ValueError("a term is listed twice")
        return terms

    @model_validator(mode="after")
    def _grades(self) -> EventTrigger:
        if (self.grades is None) == (self.grade_at_least is None):
            raise ValueError("give exactly one of 'grades' or 'grade_at_least'")
        if self.grades is not None:
            if not self.grades:
                raise ValueError("'grades' must list at least one grade")
            for term in self.terms:
                allowed = _allowed_grades(term)
                impossible = [g for g in self.grades if g not in allowed]
                if impossible:
                    raise ValueError(
                        f"grade {impossible[0]} does not exist for {term!r} in CTCAE "
                        f"v{ctcae.CTCAE_VERSION}; allowed grades: {', '.join(map(str, allowed))}"
                    )
        else:
            for term in self.terms:
                if not self.grades_for(term):
                    raise ValueError(
                        f"{term!r} has no grade {self.grade_at_least} or above in CTCAE "
                        f"v{ctcae.CTCAE_VERSION}"
                    )
        return self

    def grades_for(self, term: str) -> frozenset[int]:
        """The grades of ``term`` that fire this trigger."""
        allowed = _allowed_grades(term)
        if self.grades is not None:
            return frozenset(g for g in self.grades if g in allowed)
        floor = self.grade_at_least or 1
        return frozenset(g for g in allowed if g >= floor)

    def matches_term(self, term: str) -> str | None:
        """The trigger's spelling of ``term`` if it is one of its terms, else None."""
        key = normalise_term(term).casefold()
        return next((t for t in self.terms if t.casefold() == key), None)

    def describe(self) -> str:
        if self.grades is not None:
            grades = f"grade {' or '.join(map(str, sorted(self.grades)))}"
        else:
            grades = f"grade {self.grade_at_least} or above"
        text = f"{' or '.join(self.terms)}, {grades}"
        return f"{text}, if {self.condition}" if self.condition else text


def _lab_fact(name: str) -> str:
    fact = BASE.get(name)
    if fact is None or fact.kind is not FactKind.LAB or fact.unit is None:
        labs = sorted(f.name for f in BASE.facts.values() if f.kind is FactKind.LAB)
        raise ValueError(f"{name!r} is not a lab of the fact dictionary; labs: {', '.join(labs)}")
    return fact.unit


class RecoveryTrigger(_Model):
    """Checked before a course starts: each lab in ``minimums`` must have reached its minimum.

    Keys are lab facts of the fact dictionary (e.g. ``anc``, ``platelets``); a minimum's
    unit must convert to the lab's unit.
    """

    minimums: dict[str, Threshold] = Field(min_length=1)

    @field_validator("minimums")
    @classmethod
    def _labs(cls, value: dict[str, Threshold]) -> dict[str, Threshold]:
        for name, threshold in value.items():
            unit = _lab_fact(name)
            if threshold.value is not None:
                if threshold.unit is None:
                    raise ValueError(f"minimum for {name!r} needs a unit")
                try:
                    convert(threshold.value, threshold.unit, unit)
                except TrialdeskError:
                    raise ValueError(
                        f"unit {threshold.unit!r} of the {name!r} minimum does not convert to {unit}"
                    ) from None
        return value

    def describe(self) -> str:
        parts = [f"{name} ≥ {t.shown()}" for name, t in self.minimums.items()]
        return "before the course: " + " and ".join(parts)


class ProductFailureTrigger(_Model):
    """Fires on a manufacturing failure of a cell product of one of ``product_failure``
    (product type ids of the protocol's ``products``)."""

    product_failure: list[str] = Field(min_length=1)

    def describe(self) -> str:
        return f"manufacturing failure of {' or '.join(self.product_failure)}"


class ActionKind(StrEnum):
    """What a rule proposes. Only ``supportive_care`` leaves the calendar as it is."""

    SLOW = "slow"  # lower the infusion rate
    PAUSE = "pause"  # interrupt the infusion or administration
    REDUCE = "reduce"  # lower the dose
    DELAY_COURSE = "delay_course"  # hold the next course
    DISCONTINUE_AGENT = "discontinue_agent"
    OFF_PROTOCOL_TREATMENT = "off_protocol_treatment"
    SUPPORTIVE_CARE = "supportive_care"  # advice; nothing to apply to the calendar


class ActionScope(StrEnum):
    """How long an action holds."""

    UNTIL_RESOLVED = "until_resolved"  # until the event resolves (or improves as stated)
    REST_OF_COURSE = "rest_of_course"
    FOLLOWING_COURSES = "following_courses"
    PERMANENT = "permanent"


_NEEDS_AGENT: Final = frozenset(
    {ActionKind.SLOW, ActionKind.PAUSE, ActionKind.REDUCE, ActionKind.DISCONTINUE_AGENT}
)
_TAKES_PERCENT: Final = frozenset({ActionKind.SLOW, ActionKind.REDUCE})
_SCOPE_TEXT: Final = {
    ActionScope.UNTIL_RESOLVED: "until the event resolves",
    ActionScope.REST_OF_COURSE: "for the rest of the course",
    ActionScope.FOLLOWING_COURSES: "in the following courses",
    ActionScope.PERMANENT: "permanently",
}


class ActionSpec(_Model):
    """One action as the protocol declares it.

    ``percent`` (slow, reduce) is the new rate or dose as a percentage of the current
    one. ``after`` is when the action starts (e.g. "after the event resolves or improves
    to grade 1-2"); ``until`` when it ends. ``advice`` is the text of supportive care.
    """

    kind: ActionKind
    agent: str | None = None
    scope: ActionScope | None = None
    percent: float | None = Field(default=None, gt=0, lt=100)
    after: str | None = None
    until: str | None = None
    advice: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ActionSpec:
        if self.kind in _NEEDS_AGENT and not self.agent:
            raise ValueError(f"a '{self.kind}' action must name its agent")
        if self.kind in (ActionKind.DELAY_COURSE, ActionKind.OFF_PROTOCOL_TREATMENT) and self.agent:
            raise ValueError(f"a '{self.kind}' action concerns the whole course, not one agent")
        if self.percent is not None and self.kind not in _TAKES_PERCENT:
            raise ValueError(f"'percent' is for slow or reduce, not '{self.kind}'")
        if self.kind is ActionKind.SUPPORTIVE_CARE and not self.advice:
            raise ValueError("a supportive-care action needs its 'advice'")
        return self


class ToxicityRule(_Model):
    """A protocol toxicity rule: a trigger, the actions it proposes, and its source.

    ``courses`` limits the rule to those course ids (empty: every course). ``unconfirmed``
    marks a rule not checked against its primary source; a recovery trigger whose
    minimums are unconfirmed makes the rule unconfirmed as well.
    """

    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")
    title: str
    courses: list[str] = []
    when: EventTrigger | RecoveryTrigger | ProductFailureTrigger
    actions: list[ActionSpec] = Field(min_length=1)
    source: str
    unconfirmed: bool = False
    note: str | None = None

    @model_validator(mode="after")
    def _fits_trigger(self) -> ToxicityRule:
        if isinstance(self.when, RecoveryTrigger):
            wrong = [a.kind.value for a in self.actions
                     if a.kind not in (ActionKind.DELAY_COURSE, ActionKind.SUPPORTIVE_CARE)]
            if wrong:
                raise ValueError(
                    f"a recovery rule holds the course (delay_course); '{wrong[0]}' does not fit"
                )
        if isinstance(self.when, ProductFailureTrigger):
            wrong = [a.kind.value for a in self.actions
                     if a.kind in (ActionKind.SLOW, ActionKind.REDUCE)]
            if wrong:
                raise ValueError(f"a product failure delays or omits; '{wrong[0]}' does not fit")
        return self

    @property
    def is_unconfirmed(self) -> bool:
        if self.unconfirmed:
            return True
        if isinstance(self.when, RecoveryTrigger):
            return any(t.unconfirmed for t in self.when.minimums.values())
        return False

    @property
    def agents(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.agent for a in self.actions if a.agent))

    def applies_to(self, course: str | None) -> bool:
        """Whether the rule holds in ``course`` (None: the course is not known, so it may)."""
        return course is None or not self.courses or course in self.courses

    def describe(self) -> str:
        return self.when.describe()


# --------------------------------------------------------------------------- proposals


class ProposedAction(_Model):
    """An action trialdesk proposes; the calendar applies it once a clinician confirms it.

    ``unconfirmed`` is about the *source* of the rule (not checked against the label or
    guideline); ``requires_confirmation`` is about *sign-off*: every action that changes
    the calendar needs a clinician's confirmation (``confirmed_by``/``confirmed_at``).
    """

    kind: ActionKind
    agent: str | None = None
    course: str | None = None
    course_number: int | None = Field(default=None, ge=1)
    scope: ActionScope | None = None
    percent: float | None = None
    after: str | None = None
    until: str | None = None
    advice: str | None = None
    condition: str | None = None
    reason: str
    rule_id: str
    source: str
    unconfirmed: bool
    requires_confirmation: bool
    confirmed_by: str | None = None
    confirmed_at: datetime | None = None

    @property
    def confirmed(self) -> bool:
        return self.confirmed_by is not None

    @property
    def changes_calendar(self) -> bool:
        return self.kind is not ActionKind.SUPPORTIVE_CARE

    def confirm(self, by: str, at: datetime, *, accept_unconfirmed: bool = False) -> ProposedAction:
        """The action signed off by clinician ``by`` at ``at``.

        An action from an unconfirmed rule is refused unless ``accept_unconfirmed``: the
        clinician must see and accept that its source has not been checked.
        """
        if not by.strip():
            raise SafetyError("the confirming clinician must be named", where="confirmed_by")
        if not self.requires_confirmation:
            raise SafetyError(f"a {self.kind} action changes nothing and needs no confirmation",
                              where=f"action {self.rule_id}")
        if self.confirmed:
            raise SafetyError(f"already confirmed by {self.confirmed_by}", where=f"action {self.rule_id}")
        if self.unconfirmed and not accept_unconfirmed:
            raise SafetyError(
                f"rule {self.rule_id} is not confirmed against its source ({self.source}); "
                "accept that explicitly to confirm the action",
                where=f"action {self.rule_id}",
            )
        return self.model_copy(update={"confirmed_by": by.strip(), "confirmed_at": at})

    def shown(self) -> str:
        """One line: what to do, to which agent, for how long, with the marks."""
        if self.kind is ActionKind.SUPPORTIVE_CARE:
            text = f"supportive care: {self.advice}"
        elif self.kind is ActionKind.DELAY_COURSE:
            which = self.course or "the next course"
            if self.course and self.course_number:
                which = f"{self.course} (course {self.course_number})"
            text = f"delay {which}"
        elif self.kind is ActionKind.OFF_PROTOCOL_TREATMENT:
            text = "take the patient off protocol treatment"
        else:
            verb = {
                ActionKind.SLOW: "slow the infusion of",
                ActionKind.PAUSE: "pause",
                ActionKind.REDUCE: "reduce the dose of",
                ActionKind.DISCONTINUE_AGENT: "discontinue",
            }[self.kind]
            text = f"{verb} {self.agent}"
            if self.percent is not None:
                text += f" to {self.percent:g}%"
        if self.after:
            text = f"{self.after}: {text}"
        if self.scope is not None:
            text += f" {_SCOPE_TEXT[self.scope]}"
        if self.until:
            text += f" until {self.until}"
        if self.condition:
            text += f" (if {self.condition})"
        if self.unconfirmed:
            text += " [unconfirmed]"
        return text


class Status(StrEnum):
    TRIGGERED = "triggered"
    NOT_TRIGGERED = "not_triggered"
    UNKNOWN = "unknown"  # the data left it open; ``missing`` says what would decide


@dataclass(frozen=True)
class RuleOutcome:
    """One rule against one finding (or the labs before one course), and what it proposes.

    ``actions`` is filled when the rule is triggered, and also when it is unknown: the
    clinician sees what would follow, with what is missing.
    """

    rule_id: str
    title: str
    status: Status
    reason: str
    actions: tuple[ProposedAction, ...] = ()
    missing: tuple[str, ...] = ()
    unconfirmed: bool = False
    source: str = ""


@dataclass(frozen=True)
class Finding:
    """A graded toxicity: a term with the grades it may have (one when known).

    ``grades`` holds more than one grade when a lab value left the CTCAE grade open.
    """

    term: str
    grades: tuple[int, ...]
    on: date | None
    origin: str

    @classmethod
    def from_event(cls, ae: AdverseEvent) -> Finding:
        return cls(ae.term, (ae.grade,), ae.onset, f"adverse event, onset {ae.onset.isoformat()}")

    @classmethod
    def from_lab(cls, grade: LabGrade, on: date | None = None) -> Finding:
        dated = f" on {on.isoformat()}" if on else ""
        origin = f"lab {grade.value:g} {grade.unit}{dated}, CTCAE v{grade.ctcae_version}"
        return cls(grade.term, grade.possible_grades, on, origin)

    def shown(self) -> str:
        grade = (f"grade {self.grades[0]}" if len(self.grades) == 1
                 else f"grade {' or '.join(map(str, self.grades))}")
        return f"{self.term} {grade} ({self.origin})"


@dataclass(frozen=True)
class LabValue:
    """One lab result for a recovery check: a fact-dictionary lab name, value and unit."""

    name: str
    value: float
    unit: str
    on: date | None = None


def _proposals(
    rule: ToxicityRule,
    reason: str,
    course: str | None,
    course_number: int | None,
    condition: str | None = None,
) -> tuple[ProposedAction, ...]:
    out = []
    for spec in rule.actions:
        out.append(ProposedAction(
            kind=spec.kind, agent=spec.agent, course=course, course_number=course_number,
            scope=spec.scope, percent=spec.percent, after=spec.after, until=spec.until,
            advice=spec.advice, condition=condition, reason=reason, rule_id=rule.id,
            source=rule.source, unconfirmed=rule.is_unconfirmed,
            requires_confirmation=spec.kind is not ActionKind.SUPPORTIVE_CARE,
        ))
    return tuple(out)


def _outcome(rule: ToxicityRule, status: Status, reason: str, actions: tuple[ProposedAction, ...] = (),
             missing: tuple[str, ...] = ()) -> RuleOutcome:
    return RuleOutcome(rule.id, rule.title, status, reason, actions, missing,
                       rule.is_unconfirmed, rule.source)


def _not_here(rule: ToxicityRule, course: str | None) -> RuleOutcome:
    return _outcome(rule, Status.NOT_TRIGGERED,
                    f"applies in course {', '.join(rule.courses)} only, not in {course}")


def evaluate_findings(
    rules: Iterable[ToxicityRule],
    findings: Iterable[Finding],
    *,
    course: str | None = None,
    course_number: int | None = None,
) -> tuple[RuleOutcome, ...]:
    """Every event rule against every finding in ``course`` (None: course not known).

    A rule gives one outcome per matching finding, or one ``not_triggered`` outcome when
    no finding matches. A finding whose grade is open (from a lab) triggers when every
    grade it may have fires the rule, and is ``unknown`` when only some do.

    >>> rule = ToxicityRule.model_validate({
    ...     "id": "R1", "title": "t", "when": {"terms": ["Hyponatremia"], "grades": [4]},
    ...     "actions": [{"kind": "pause", "agent": "x"}], "source": "s"})
    >>> lab = ctcae.grade_lab("Hyponatremia", 118, "mmol/L", lln=135)
    >>> [o.status.value for o in evaluate_findings([rule], [Finding.from_lab(lab)])]
    ['triggered']
    """
    found = tuple(findings)
    outcomes: list[RuleOutcome] = []
    for rule in rules:
        trigger = rule.when
        if not isinstance(trigger, EventTrigger):
            continue
        if not rule.applies_to(course):
            outcomes.append(_not_here(rule, course))
            continue
        matched = False
        for finding in found:
            term = trigger.matches_term(finding.term)
            if term is None:
                continue
            firing = trigger.grades_for(term)
            hits = [g for g in finding.grades if g in firing]
            if not hits:
                continue
            matched = True
            reason = f"{finding.shown()} meets rule {rule.id} ({trigger.describe()})"
            actions = _proposals(rule, reason, course, course_number, trigger.condition)
            if len(hits) == len(finding.grades):
                outcomes.append(_outcome(rule, Status.TRIGGERED, reason, actions))
            else:
                open_reason = (f"{finding.shown()}: rule {rule.id} fires at grade "
                               f"{', '.join(map(str, sorted(hits)))} only; the grade is not decided")
                outcomes.append(_outcome(rule, Status.UNKNOWN, open_reason, actions, ("grade",)))
        if not matched:
            outcomes.append(_outcome(rule, Status.NOT_TRIGGERED, f"no {trigger.describe()}"))
    return tuple(outcomes)


def check_course_start(
    rules: Iterable[ToxicityRule],
    course: str,
    labs: Mapping[str, LabValue],
    *,
    course_number: int | None = None,
) -> tuple[RuleOutcome, ...]:
    """Recovery rules before ``course`` starts, against the latest ``labs`` by name.

    A lab below its minimum delays the course; every lab at or above it lets the course
    start; a lab not measured (or a minimum the protocol has not set) leaves it unknown.

    >>> rule = ToxicityRule.model_validate({
    ...     "id": "REC", "title": "count recovery", "when": {"minimums": {
    ...         "anc": {"value": 750, "unit": "/uL", "source": "s"}}},
    ...     "actions": [{"kind": "delay_course", "until": "recovery"}], "source": "s"})
    >>> o, = check_course_start([rule], "DIT", {"anc": LabValue("anc", 0.6, "10^9/L")})
    >>> o.status.value, o.reason
    ('triggered', 'anc 0.6 10^9/L is below the minimum of 750 /uL')
    """
    outcomes: list[RuleOutcome] = []
    for rule in rules:
        trigger = rule.when
        if not isinstance(trigger, RecoveryTrigger):
            continue
        if not rule.applies_to(course):
            outcomes.append(_not_here(rule, course))
            continue
        below: list[str] = []
        reached: list[str] = []
        missing: list[str] = []
        for name, minimum in trigger.minimums.items():
            lab = labs.get(name)
            if minimum.value is None or minimum.unit is None:
                missing.append(f"the protocol's minimum for {name}")
                continue
            if lab is None:
                missing.append(name)
                continue
            value = convert(lab.value, lab.unit, minimum.unit, where=f"labs.{name}")
            said = f"{name} {lab.value:g} {lab.unit}"
            if value < minimum.value:
                below.append(f"{said} is below the minimum of {minimum.value:g} {minimum.unit}")
            else:
                reached.append(f"{said} has reached {minimum.value:g} {minimum.unit}")
        if below:
            reason = "; ".join(below)
            actions = _proposals(rule, f"{reason} (rule {rule.id})", course, course_number)
            outcomes.append(_outcome(rule, Status.TRIGGERED, reason, actions))
        elif missing:
            reason = f"cannot tell whether {course} may start: {', '.join(missing)} missing"
            actions = _proposals(rule, f"{reason} (rule {rule.id})", course, course_number)
            outcomes.append(_outcome(rule, Status.UNKNOWN, reason, actions, tuple(missing)))
        else:
            outcomes.append(_outcome(rule, Status.NOT_TRIGGERED, "; ".join(reached)))
    return tuple(outcomes)


def check_product_failure(
    rules: Iterable[ToxicityRule],
    product_type: str,
    failure: str,
    *,
    course: str | None = None,
    course_number: int | None = None,
) -> tuple[RuleOutcome, ...]:
    """The product-failure rules against a failed product of ``product_type`` (``failure``:
    why it failed, in words), for the course the product was made for.

    >>> rule = ToxicityRule.model_validate({
    ...     "id": "PF", "title": "t", "when": {"product_failure": ["nk-expansion"]},
    ...     "actions": [{"kind": "discontinue_agent", "agent": "NK cells",
    ...                  "scope": "rest_of_course"}], "source": "s", "unconfirmed": True})
    >>> o, = check_product_failure([rule], "nk-expansion", "sterility: not met", course="DIT")
    >>> o.status.value, o.actions[0].shown()
    ('triggered', 'discontinue NK cells for the rest of the course [unconfirmed]')
    """
    outcomes: list[RuleOutcome] = []
    for rule in rules:
        trigger = rule.when
        if not isinstance(trigger, ProductFailureTrigger):
            continue
        if not rule.applies_to(course):
            outcomes.append(_not_here(rule, course))
            continue
        if product_type not in trigger.product_failure:
            outcomes.append(_outcome(rule, Status.NOT_TRIGGERED, f"no {trigger.describe()}"))
            continue
        reason = f"{product_type} failed manufacture ({failure}): rule {rule.id}"
        outcomes.append(_outcome(rule, Status.TRIGGERED, reason,
                                 _proposals(rule, reason, course, course_number)))
    return tuple(outcomes)


def proposed_actions(outcomes: Sequence[RuleOutcome]) -> tuple[ProposedAction, ...]:
    """The actions of the triggered outcomes, without repeats (same rule, same action)."""
    seen: set[tuple[object, ...]] = set()
    out: list[ProposedAction] = []
    for outcome in outcomes:
        if outcome.status is not Status.TRIGGERED:
            continue
        for action in outcome.actions:
            key = (action.rule_id, action.kind, action.agent, action.scope, action.percent, action.after)
            if key not in seen:
                seen.add(key)
                out.append(action)
    return tuple(out)


__all__ = [
    "ActionKind",
    "ActionScope",
    "ActionSpec",
    "EventTrigger",
    "Finding",
    "LabValue",
    "ProductFailureTrigger",
    "ProposedAction",
    "RecoveryTrigger",
    "RuleOutcome",
    "Status",
    "Threshold",
    "ToxicityRule",
    "check_course_start",
    "check_product_failure",
    "evaluate_findings",
    "normalise_term",
    "proposed_actions",
]
