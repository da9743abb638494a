"""When an arm's response assessments fall, from the protocol's own schedule.

An :class:`~trialdesk.protocol.model.Assessment` with ``every_courses: k`` falls after
every k-th treatment course of the arm (NB-NK-2026: every 2 courses, seed 001); one with
``day`` falls on that study day. The calendar places them on dates; this module only says
after which course, so response documents can be checked against it.

>>> from trialdesk.protocol.load import default_protocol_dir, load_protocol
>>> p = load_protocol(default_protocol_dir() / "nb-nk-2026.yaml").protocol
>>> [(a.after_course, a.course_id) for a in assessment_points(p, "B")]
[(2, 'DIT'), (4, 'DIT'), (6, 'DIT')]
"""

from __future__ import annotations

from dataclasses import dataclass

from trialdesk.errors import NotFoundError
from trialdesk.protocol.model import Arm, CourseStep, Protocol


@dataclass(frozen=True)
class AssessmentPoint:
    """One planned response assessment: after course ``after_course`` or on ``day``."""

    name: str
    criteria: str | None
    after_course: int | None
    course_id: str | None
    day: int | None
    source: str | None
    unconfirmed: bool


def treatment_courses(protocol: Protocol, arm_id: str) -> tuple[str, ...]:
    """The arm's courses in order, each repeat listed (conditional courses included)."""
    arm = _arm(protocol, arm_id)
    return tuple(step.course for step in arm.plan if isinstance(step, CourseStep)
                 for _ in range(step.repeats))


def _arm(protocol: Protocol, arm_id: str) -> Arm:
    try:
        return protocol.arm(arm_id)
    except KeyError:
        known = ", ".join(a.id for a in protocol.arms)
        raise NotFoundError(f"{protocol.id} has no arm {arm_id!r}; arms: {known}", where="arm") from None


def assessment_points(protocol: Protocol, arm_id: str) -> tuple[AssessmentPoint, ...]:
    """Every planned assessment of the arm, in order."""
    arm = _arm(protocol, arm_id)
    courses = treatment_courses(protocol, arm_id)
    points: list[AssessmentPoint] = []
    for a in arm.assessments:
        if a.every_courses is not None:
            for number in range(a.every_courses, len(courses) + 1, a.every_courses):
                points.append(AssessmentPoint(a.name, a.criteria, number, courses[number - 1], None,
                                              a.source, a.unconfirmed))
        else:
            points.append(AssessmentPoint(a.name, a.criteria, None, None, a.day, a.source, a.unconfirmed))
    return tuple(sorted(points, key=lambda p: (p.after_course or 0, p.day or 0)))


__all__ = ["AssessmentPoint", "assessment_points", "treatment_courses"]
