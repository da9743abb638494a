"""Adverse-event records and the expedited-reporting clock.

An :class:`AdverseEvent` carries its CTCAE term, grade and CTCAE version (always stored:
grades are never compared across versions), ICH E2A seriousness criteria, a per-agent
attribution, expectedness, action taken and outcome. :func:`expedited_reporting` gives
the deadline for a serious unexpected suspected adverse reaction (SUSAR).

>>> from datetime import date
>>> ae = AdverseEvent(term="Capillary leak syndrome", grade=3, onset=date(2026, 3, 2),
...                   seriousness={"hospitalisation"}, sponsor_aware_on=date(2026, 3, 3))
>>> expedited_reporting(ae, related=True, expected=False).due
datetime.date(2026, 3, 18)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)

from trialdesk.clinical import ctcae
from trialdesk.errors import SafetyError

SUPPORTED_CTCAE_VERSIONS: Final = (ctcae.CTCAE_VERSION,)
FREE_TEXT_GRADES: Final = (1, 2, 3, 4, 5)  # CTCAE general rule: grades 1-5
_MEDDRA_CODE: Final = re.compile(r"\d{8}")  # MedDRA codes are 8 digits


class Seriousness(StrEnum):
    """ICH E2A seriousness criteria (§II.B): any one makes the event serious."""

    DEATH = "death"
    LIFE_THREATENING = "life_threatening"  # at immediate risk of death as it occurred
    HOSPITALISATION = "hospitalisation"  # inpatient hospitalisation required
    PROLONGED_HOSPITALISATION = "prolonged_hospitalisation"
    PERSISTENT_DISABILITY = "persistent_disability"  # persistent or significant disability
    CONGENITAL_ANOMALY = "congenital_anomaly"  # congenital anomaly / birth defect
    IMPORTANT_MEDICAL_EVENT = "important_medical_event"  # by medical judgement


class Attribution(StrEnum):
    """Five-point attribution of an event to one agent (NCI CTEP scale)."""

    UNRELATED = "unrelated"
    UNLIKELY = "unlikely"
    POSSIBLE = "possible"
    PROBABLE = "probable"
    DEFINITE = "definite"

    @property
    def suspected(self) -> bool:
        """Possible, probable and definite count as related for expedited reporting."""
        return self in (Attribution.POSSIBLE, Attribution.PROBABLE, Attribution.DEFINITE)


class Expectedness(StrEnum):
    """Against the reference safety information (investigator's brochure or label)."""

    EXPECTED = "expected"
    UNEXPECTED = "unexpected"


class ActionTaken(StrEnum):
    """Action taken with study treatment (CDISC SDTM AEACN terms)."""

    DOSE_NOT_CHANGED = "dose_not_changed"
    DOSE_REDUCED = "dose_reduced"
    DOSE_RATE_REDUCED = "dose_rate_reduced"  # e.g. anti-GD2 infusion slowed
    DOSE_INCREASED = "dose_increased"
    DRUG_INTERRUPTED = "drug_interrupted"
    DRUG_WITHDRAWN = "drug_withdrawn"
    NOT_APPLICABLE = "not_applicable"
    UNKNOWN = "unknown"


class Outcome(StrEnum):
    """Outcome of the event (CDISC SDTM AEOUT terms)."""

    RECOVERED = "recovered"
    RECOVERING = "recovering"
    NOT_RECOVERED = "not_recovered"
    RECOVERED_WITH_SEQUELAE = "recovered_with_sequelae"
    FATAL = "fatal"
    UNKNOWN = "unknown"


class AgentAttribution(BaseModel):
    """How strongly one agent (drug, cell product, procedure) is linked to the event."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    agent: str
    attribution: Attribution

    @field_validator("agent")
    @classmethod
    def _agent_named(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise SafetyError("an attribution must name its agent", where=_where("attributions.agent"))
        return value


def _where(field: str) -> str:
    return f"adverse_event.{field}"


class AdverseEvent(BaseModel):
    """One adverse event as recorded for a trial participant.

    ``term`` is a CTCAE v5.0 term when trialdesk holds its grade definitions (then the
    grade must exist for it); any other term is free text and must give ``meddra_term``,
    with grades 1-5 allowed. ``sponsor_aware_on`` is the day the sponsor first learnt
    of the event, which starts the expedited-reporting clock.

    >>> AdverseEvent(term="Pain", grade=4, onset=date(2026, 1, 5))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    trialdesk.errors.SafetyError: adverse_event.grade: grade 4 does not exist for 'Pain' ...
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    term: str
    grade: int
    onset: date
    ctcae_version: str = ctcae.CTCAE_VERSION
    meddra_term: str | None = None
    meddra_code: str | None = None
    soc: str | None = None  # the MedDRA system organ class CTCAE files the term under
    soc_code: str | None = None
    resolution: date | None = None
    seriousness: frozenset[Seriousness] = frozenset()
    attributions: tuple[AgentAttribution, ...] = ()
    expectedness: Expectedness | None = None
    action_taken: ActionTaken | None = None
    outcome: Outcome | None = None
    sponsor_aware_on: date | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _as_safety_error(cls, data: Any, handler: ModelWrapValidatorHandler[AdverseEvent]) -> AdverseEvent:
        # One error type for callers: pydantic's type errors become SafetyError too.
        try:
            return handler(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "record"
            raise SafetyError(first["msg"], where=_where(field)) from None

    @field_validator("term")
    @classmethod
    def _known_spelling(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise SafetyError("must name the adverse event", where=_where("term"))
        return ctcae.canonical_term(value) or value

    @field_validator("grade", mode="before")
    @classmethod
    def _whole_grade(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SafetyError(f"must be a whole number 1-5, got {value!r}", where=_where("grade"))
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AdverseEvent:
        self._check_grade()
        if self.resolution is not None and self.resolution < self.onset:
            raise SafetyError(
                f"resolution {self.resolution} is before onset {self.onset}",
                where=_where("resolution"),
            )
        if self.sponsor_aware_on is not None and self.sponsor_aware_on < self.onset:
            raise SafetyError(
                f"the sponsor cannot learn of the event ({self.sponsor_aware_on}) before its "
                f"onset ({self.onset})",
                where=_where("sponsor_aware_on"),
            )
        self._check_death()
        agents = [a.agent.casefold() for a in self.attributions]
        if len(agents) != len(set(agents)):
            raise SafetyError("each agent may be attributed once", where=_where("attributions"))
        return self

    def _check_grade(self) -> None:
        if self.ctcae_version not in SUPPORTED_CTCAE_VERSIONS:
            # Thresholds moved between versions (e.g. v6.0 neutrophils, platelets); a grade
            # is only checked against the tables of the version it was given under.
            raise SafetyError(
                f"CTCAE version {self.ctcae_version!r} is not supported; grades are checked "
                f"against CTCAE v{', '.join(SUPPORTED_CTCAE_VERSIONS)} only",
                where=_where("ctcae_version"),
            )
        for name in ("meddra_code", "soc_code"):
            code = getattr(self, name)
            if code is not None and not _MEDDRA_CODE.fullmatch(code):
                raise SafetyError(f"a MedDRA code has 8 digits, got {code!r}", where=_where(name))
        if self.is_ctcae_term:
            try:
                ctcae.validate_grade(self.term, self.grade)
            except SafetyError as exc:
                raise SafetyError(exc.reason, where=_where("grade")) from None
            return
        if not (self.meddra_term and self.meddra_term.strip()):
            raise SafetyError(
                f"{self.term!r} is not a CTCAE v{self.ctcae_version} term held here; give the "
                "MedDRA term it codes to",
                where=_where("meddra_term"),
            )
        if self.grade not in FREE_TEXT_GRADES:
            raise SafetyError(f"must be 1-5, got {self.grade}", where=_where("grade"))

    def _check_death(self) -> None:
        # CTCAE grade 5 is death related to the AE; ICH E2A "results in death" is the
        # same fact, so the three fields must agree.
        dead = Seriousness.DEATH in self.seriousness
        if self.grade == 5 and not dead:
            raise SafetyError(
                "a grade 5 (fatal) event must list 'death' among its seriousness criteria",
                where=_where("seriousness"),
            )
        if dead and self.grade != 5:
            raise SafetyError(
                f"'death' is listed but the grade is {self.grade}; a fatal event is grade 5",
                where=_where("grade"),
            )
        if self.outcome is Outcome.FATAL and self.grade != 5:
            raise SafetyError(
                f"outcome is fatal but the grade is {self.grade}; a fatal event is grade 5",
                where=_where("outcome"),
            )
        if self.grade == 5 and self.outcome not in (None, Outcome.FATAL):
            raise SafetyError(f"a grade 5 event cannot have outcome {self.outcome}", where=_where("outcome"))

    @property
    def is_ctcae_term(self) -> bool:
        """True when the term's grades come from the CTCAE tables held here."""
        return ctcae.canonical_term(self.term) is not None

    @property
    def serious(self) -> bool:
        return bool(self.seriousness)

    @property
    def fatal(self) -> bool:
        return Seriousness.DEATH in self.seriousness

    @property
    def life_threatening(self) -> bool:
        # The ICH E2A criterion (investigator's judgement that the patient was at
        # immediate risk of death), not CTCAE grade 4 "life-threatening consequences".
        return Seriousness.LIFE_THREATENING in self.seriousness

    @property
    def suspected_related(self) -> bool:
        """True if any agent's attribution is possible, probable or definite."""
        return any(a.attribution.suspected for a in self.attributions)


# --------------------------------------------------------------------------- reporting

# Expedited reporting of SUSARs from clinical investigations:
# - ICH E2A (1994) §III.A: fatal or life-threatening unexpected ADRs within 7 calendar days
#   of the sponsor's first knowledge, then as complete a report as possible within 8
#   additional calendar days; other serious unexpected ADRs within 15 calendar days.
# - 21 CFR 312.32(c)(1): serious and unexpected suspected adverse reactions within 15
#   calendar days; 312.32(c)(2): unexpected fatal or life-threatening ones within 7.
# Checked against the ICH E2A text as quoted by brainscape.com ("ICH Clinical Safety Data
# Management" cards) and freegcp.com (glossary, "expedited reporting", E2A Section III),
# and for 21 CFR 312.32(c) against fda.gov "IND Application Reporting: Safety Reports",
# compliance.ucsf.edu/ind-safety-reports and nimblepv.com "IND safety reporting timelines".
FATAL_OR_LIFE_THREATENING_DAYS: Final = 7
FOLLOW_UP_DAYS: Final = 8
OTHER_SERIOUS_DAYS: Final = 15
REPORTING_SOURCE: Final = "ICH E2A §III.A; 21 CFR 312.32(c)(1)-(2)"


@dataclass(frozen=True)
class ReportingDeadline:
    """When an expedited (SUSAR) report is due.

    ``due`` is None when the day the sponsor learnt of the event is not recorded; the
    clock runs from that day, not from onset.
    """

    calendar_days: int
    due: date | None
    category: str
    follow_up_days: int | None
    source: str = REPORTING_SOURCE

    @property
    def follow_up_due(self) -> date | None:
        if self.due is None or self.follow_up_days is None:
            return None
        return self.due + timedelta(days=self.follow_up_days)


def expedited_reporting(ae: AdverseEvent, *, related: bool, expected: bool) -> ReportingDeadline | None:
    """The expedited-report deadline for ``ae``, or None if none is required.

    A report is required for a serious event that is a suspected adverse reaction
    (``related``: a reasonable possibility that the agent caused it) and unexpected
    (``expected`` False against the reference safety information): 7 calendar days if
    fatal or life-threatening, with a complete report within 8 more; 15 days otherwise.

    >>> ae = AdverseEvent(term="Sepsis", grade=4, onset=date(2026, 5, 1),
    ...                   seriousness={"life_threatening"}, sponsor_aware_on=date(2026, 5, 2))
    >>> d = expedited_reporting(ae, related=True, expected=False)
    >>> d.calendar_days, d.due, d.follow_up_due
    (7, datetime.date(2026, 5, 9), datetime.date(2026, 5, 17))
    >>> expedited_reporting(ae, related=True, expected=True) is None
    True
    """
    for name, flag in (("related", related), ("expected", expected)):
        if not isinstance(flag, bool):
            raise SafetyError(f"must be true or false, got {flag!r}", where=name)
    if not ae.serious or not related or expected:
        return None
    if ae.fatal or ae.life_threatening:
        days, category, follow_up = (
            FATAL_OR_LIFE_THREATENING_DAYS,
            "fatal or life-threatening SUSAR",
            FOLLOW_UP_DAYS,
        )
    else:
        days, category, follow_up = OTHER_SERIOUS_DAYS, "serious SUSAR", None
    due = ae.sponsor_aware_on + timedelta(days=days) if ae.sponsor_aware_on else None
    return ReportingDeadline(days, due, category, follow_up)
