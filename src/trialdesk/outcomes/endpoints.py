"""Endpoint derivation: from a validated event table to one row per patient.

Every endpoint returns the per-patient derivation (start, end, event or censoring
reason, time) and the totals, so a reader can check each patient by hand. The
definitions live in the docstrings below and the choices that differ between
protocols live in :class:`EndpointDefinitions`, whose defaults are:

* ORR: best overall response CR or PR (INRC 2017 or RECIST 1.1); patients with NE or
  no assessment stay in the denominator as non-responders; exact (Clopper–Pearson) CI.
* OS: enrolment → death from any cause; alive patients censored at last contact.
* PFS: enrolment → relapse, progression or death.
* EFS: enrolment → relapse, progression, second malignancy or death.
* RFS: first CR → relapse or death; patients who never reached CR are excluded.
* Short-term (default 28-day) mortality: death within the window after enrolment,
  with an exact CI; patients alive with shorter follow-up are not evaluable.

Times are whole days between dates, and months are days / (365.25 / 12).

>>> from trialdesk.outcomes.events import validate_event_table
>>> events = validate_event_table(pd.DataFrame({
...     "patient_id": ["P1", "P2"], "arm": ["A", "A"],
...     "enrolment_date": ["2026-01-01", "2026-01-01"],
...     "best_response": ["CR", "SD"], "response_criteria": ["INRC", "INRC"],
...     "first_cr_date": ["2026-02-01", None], "relapse_date": ["2026-04-01", None],
...     "death_date": [None, "2026-03-02"], "last_contact_date": ["2026-07-20", None]}))
>>> def show(endpoint):
...     return endpoint.table[["patient_id", "reason", "time_days"]].values.tolist()
>>> show(overall_survival(events))
[['P1', 'censored at last contact', 200], ['P2', 'death', 60]]
>>> show(event_free_survival(events))
[['P1', 'relapse', 90], ['P2', 'death', 60]]
>>> show(relapse_free_survival(events))
[['P1', 'relapse', 59]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy.stats import binomtest

from trialdesk.errors import OutcomeError
from trialdesk.outcomes.events import EventTable
from trialdesk.schedule.plan import study_day

EventKind = Literal["relapse", "progression", "second_malignancy", "death"]
ResponseCode = Literal["CR", "PR", "MR", "SD", "PD", "NE"]

ALL_ARMS = "all"
"""Label of the row that pools every arm in a ``summary``."""

TIME_TO_EVENT_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "arm",
    "start_date",
    "end_date",
    "event",
    "reason",
    "time_days",
    "time_months",
)
"""Columns of :attr:`TimeToEvent.table`, before the stratification columns."""

_FLAGS = ("in_denominator", "counted", "reason")
ORR_COLUMNS = ("patient_id", "arm", "best_response", "response_criteria", *_FLAGS)
MORTALITY_COLUMNS = (
    "patient_id",
    "arm",
    "enrolment_date",
    "death_date",
    "last_contact_date",
    *_FLAGS,
)


class EndpointDefinitions(BaseModel):
    """The protocol's choices for each endpoint; the defaults are stated in the module doc.

    Event order matters only for ties: when two events share a date, the one listed
    first is reported, so disease events are listed before death.

    >>> EndpointDefinitions(rfs_events=("relapse",)).rfs_events
    ('relapse',)
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    # FDA, Clinical Trial Endpoints for the Approval of Cancer Drugs and Biologics (2018):
    # PFS is progression or death. Relapse after CR is progression under both INRC 2017
    # and RECIST 1.1, so it counts when the table records it separately.
    pfs_events: tuple[EventKind, ...] = ("relapse", "progression", "death")
    # EFS as in high-risk neuroblastoma trials (Yu AL et al., N Engl J Med
    # 2010;363:1324-34): relapse, progressive disease, second cancer or death.
    efs_events: tuple[EventKind, ...] = ("relapse", "progression", "second_malignancy", "death")
    # Measured from first CR. FDA 2018 defines DFS as recurrence or death from any cause;
    # drop "death" for a protocol whose RFS counts relapse only.
    rfs_events: tuple[EventKind, ...] = ("relapse", "death")
    # INRC 2017 and RECIST 1.1 both define objective response as CR + PR (MR excluded).
    orr_responses: tuple[ResponseCode, ...] = ("CR", "PR")
    # Intention-to-treat: NE and missing assessments count as non-responders.
    orr_counts_not_evaluable: bool = True
    # RuMCeSS (NCT01849237) primary endpoint: 28-day mortality.
    mortality_window_days: int = Field(default=28, gt=0)
    days_per_month: float = Field(default=365.25 / 12, gt=0)
    confidence_level: float = Field(default=0.95, gt=0, lt=1)

    @field_validator("pfs_events", "efs_events", "rfs_events", "orr_responses")
    @classmethod
    def _non_empty_and_unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must name at least one")
        if len(set(value)) != len(value):
            raise ValueError("lists an entry twice")
        return value


DEFAULT_DEFINITIONS = EndpointDefinitions()


def clopper_pearson(count: int, n: int, confidence_level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) confidence interval for ``count`` successes out of ``n``.

    Returns ``(nan, nan)`` when ``n`` is 0: no patient, no estimate.

    >>> [round(x, 4) for x in clopper_pearson(0, 10)]
    [0.0, 0.3085]
    """
    if n < 0 or count < 0 or count > n:
        raise OutcomeError(f"cannot take {count} successes out of {n}", where="clopper_pearson")
    if n == 0:
        return (math.nan, math.nan)
    ci = binomtest(count, n).proportion_ci(confidence_level=confidence_level, method="exact")
    return (float(ci.low), float(ci.high))


# --- results -------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TimeToEvent:
    """A time-to-event endpoint derived patient by patient.

    ``table`` has one row per patient in the analysis population: ``patient_id``,
    ``arm``, ``start_date``, ``end_date``, ``event`` (bool), ``reason`` (the event, or
    why the patient is censored), ``time_days``, ``time_months`` and the
    stratification columns. ``excluded`` lists patients outside the population, with
    the reason. The survival functions read ``table`` directly.
    """

    name: str
    definition: str
    table: pd.DataFrame
    excluded: pd.DataFrame
    arms: tuple[str, ...]

    @property
    def summary(self) -> pd.DataFrame:
        """Patients, events, censored and excluded per arm, then all arms."""
        rows = {}
        for arm in (*self.arms, ALL_ARMS):
            table = self.table if arm == ALL_ARMS else self.table[self.table["arm"] == arm]
            excluded = (
                self.excluded if arm == ALL_ARMS else self.excluded[self.excluded["arm"] == arm]
            )
            events = int(table["event"].sum())
            rows[arm] = {
                "patients": len(table),
                "events": events,
                "censored": len(table) - events,
                "excluded": len(excluded),
            }
        return _summary_frame(rows)


@dataclass(frozen=True, eq=False)
class Proportion:
    """A binary endpoint (a rate) derived patient by patient, with exact CIs.

    ``table`` has one row per patient: ``patient_id``, ``arm``, the columns the
    endpoint is read from, ``in_denominator`` (bool), ``counted`` (bool: a responder,
    a death) and ``reason``.
    """

    name: str
    definition: str
    table: pd.DataFrame
    arms: tuple[str, ...]
    confidence_level: float
    # The column a patient's result is read from (ORR: best_response). While no patient of
    # an arm has it, the arm's rate is not derived: shown as such, never as 0/n.
    derived_from: str | None = None
    derived_what: str = "result"

    @property
    def summary(self) -> pd.DataFrame:
        """Per arm, then all arms: patients, derived (patients whose result is derived),
        denominator, count, rate, ci_lower, ci_upper, and ``shown``: the rate for people."""
        rows = {}
        for arm in (*self.arms, ALL_ARMS):
            table = self.table if arm == ALL_ARMS else self.table[self.table["arm"] == arm]
            derived = len(table) if self.derived_from is None else int(table[self.derived_from].notna().sum())
            n = int(table["in_denominator"].sum()) if derived else 0
            count = int((table["counted"] & table["in_denominator"]).sum()) if derived else 0
            low, high = clopper_pearson(count, n, self.confidence_level)
            rate = count / n if n else math.nan
            if len(table) and not derived:
                shown = f"not derived: no {self.derived_what} derived yet"
            else:
                shown = format_rate(count, n, rate, (low, high), self.confidence_level)
                if derived < len(table):
                    shown += f"; {self.derived_what} not derived for {len(table) - derived} of {len(table)}"
            rows[arm] = {
                "patients": len(table),
                "derived": derived,
                "denominator": n,
                "count": count,
                "rate": rate,
                "ci_lower": low,
                "ci_upper": high,
                "shown": shown,
            }
        return _summary_frame(rows)


def format_rate(count: int, n: int, rate: float, ci: tuple[float, float], level: float = 0.95) -> str:
    """A rate for people: three decimals, with its confidence interval.

    >>> format_rate(0, 2, 0.0, clopper_pearson(0, 2))
    '0/2 = 0.000 (95% CI 0.000–0.842)'
    >>> format_rate(0, 0, math.nan, (math.nan, math.nan))
    'no patient in the denominator'
    """
    if not n:
        return "no patient in the denominator"
    return f"{count}/{n} = {rate:.3f} ({level:.0%} CI {ci[0]:.3f}–{ci[1]:.3f})"


# --- endpoints -----------------------------------------------------------------------


def objective_response_rate(
    events: EventTable, definitions: EndpointDefinitions = DEFAULT_DEFINITIONS
) -> Proportion:
    """Objective response rate (ORR): best overall response CR or PR.

    Best overall response is read as recorded, by INRC 2017 or RECIST 1.1
    (``response_criteria``); both count CR and PR as objective responses and MR is not
    one (``definitions.orr_responses``). Patients whose best response is NE or who have
    no assessment are non-responders in the denominator (intention to treat) unless
    ``definitions.orr_counts_not_evaluable`` is false, which drops them from it. The
    CI (95% by default) is exact (Clopper–Pearson).

    >>> from trialdesk.outcomes.events import validate_event_table
    >>> table = validate_event_table(pd.DataFrame({
    ...     "patient_id": ["P1", "P2"], "arm": ["A", "A"],
    ...     "enrolment_date": ["2026-01-01", "2026-01-01"],
    ...     "best_response": ["PR", "SD"], "response_criteria": ["RECIST", "RECIST"],
    ...     "last_contact_date": ["2026-06-01", "2026-06-01"]}))
    >>> summary = objective_response_rate(table).summary
    >>> print(summary.loc["A", "count"], "of", summary.loc["A", "denominator"])
    1 of 2
    """
    responders = set(definitions.orr_responses)
    rows = []
    for record in events.frame.to_dict(orient="records"):
        response = record["best_response"]
        if response is None or response == "NE":
            evaluable = False
            reason = "best overall response not derived" if response is None else "not evaluable (NE)"
        else:
            evaluable = True
            kind = "responder" if response in responders else "non-responder"
            reason = f"{kind} ({response})"
        rows.append(
            {
                "patient_id": record["patient_id"],
                "arm": record["arm"],
                "best_response": response,
                "response_criteria": record["response_criteria"],
                "in_denominator": evaluable or definitions.orr_counts_not_evaluable,
                "counted": evaluable and response in responders,
                "reason": reason,
            }
        )
    names = "+".join(definitions.orr_responses)
    ne = "in" if definitions.orr_counts_not_evaluable else "out of"
    return Proportion(
        name="ORR",
        definition=f"best overall response {names} (INRC 2017 or RECIST 1.1); "
        f"NE and unassessed patients {ne} the denominator; exact CI",
        table=_frame(rows, ORR_COLUMNS),
        arms=events.arms,
        confidence_level=definitions.confidence_level,
        derived_from="best_response",
        derived_what="best overall response",
    )


def overall_survival(
    events: EventTable, definitions: EndpointDefinitions = DEFAULT_DEFINITIONS
) -> TimeToEvent:
    """Overall survival (OS): enrolment to death from any cause.

    Patients not known to have died are censored at ``last_contact_date``, the last
    date they were known alive. See the module docstring for an example.
    """
    return _time_to_event(events, definitions, "OS", "enrolment_date", ("death",))


def progression_free_survival(
    events: EventTable, definitions: EndpointDefinitions = DEFAULT_DEFINITIONS
) -> TimeToEvent:
    """Progression-free survival (PFS): enrolment to the first of ``definitions.pfs_events``.

    By default relapse, progression or death from any cause. Patients without an event
    are censored at last contact. The event table holds no tumour-assessment dates, so
    censoring is at last contact rather than at the last adequate assessment. Same-day
    events are reported in the order of ``definitions.pfs_events``.
    """
    return _time_to_event(events, definitions, "PFS", "enrolment_date", definitions.pfs_events)


def event_free_survival(
    events: EventTable, definitions: EndpointDefinitions = DEFAULT_DEFINITIONS
) -> TimeToEvent:
    """Event-free survival (EFS): enrolment to the first of ``definitions.efs_events``.

    By default relapse, progression, second malignancy or death from any cause (as in
    high-risk neuroblastoma trials). Patients without an event are censored at last
    contact; if death is not an EFS event, a death censors at its date.
    """
    return _time_to_event(events, definitions, "EFS", "enrolment_date", definitions.efs_events)


def relapse_free_survival(
    events: EventTable, definitions: EndpointDefinitions = DEFAULT_DEFINITIONS
) -> TimeToEvent:
    """Relapse-free survival (RFS): first CR to the first of ``definitions.rfs_events``.

    Only patients who achieved CR (a ``first_cr_date``) are in the population; the
    others are listed in ``excluded``. By default relapse or death from any cause are
    events; with ``rfs_events=("relapse",)`` a death without relapse censors at the date
    of death. Events dated before the first CR do not count.
    """
    return _time_to_event(events, definitions, "RFS", "first_cr_date", definitions.rfs_events)


def short_term_mortality(
    events: EventTable, definitions: EndpointDefinitions = DEFAULT_DEFINITIONS
) -> Proportion:
    """Mortality within ``definitions.mortality_window_days`` (default 28) of enrolment.

    A patient counts as a death when ``death_date - enrolment_date`` is at most the
    window (a death on day 28 is a 28-day death). A patient is a survivor when known
    alive at the end of the window: a later death, or a last contact on or after day 28.
    A patient alive at the last contact with less than 28 days of follow-up is reported
    as **not evaluable** and left out of the denominator — never counted as a survivor,
    which would bias the rate downwards. The CI is exact (Clopper–Pearson).

    >>> from trialdesk.outcomes.events import validate_event_table
    >>> events = validate_event_table(pd.DataFrame({
    ...     "patient_id": ["P1", "P2", "P3"], "arm": ["MSC", "MSC", "MSC"],
    ...     "enrolment_date": ["2026-01-01"] * 3,
    ...     "death_date": ["2026-01-09", None, None],
    ...     "last_contact_date": [None, "2026-03-01", "2026-01-15"]}))
    >>> short_term_mortality(events).table["reason"].tolist()
    ['died on day 8', 'alive on day 28', 'not evaluable: alive at last contact on day 14']
    """
    window = definitions.mortality_window_days
    rows = []
    for record in events.frame.to_dict(orient="records"):
        start = record["enrolment_date"]
        death, contact = record["death_date"], record["last_contact_date"]
        death_day = _days(start, death) if not pd.isna(death) else None
        contact_day = _days(start, contact) if not pd.isna(contact) else None
        if death_day is not None and death_day <= window:
            evaluable, died, reason = True, True, f"died on day {death_day}"
        elif death_day is not None:
            evaluable, died, reason = True, False, f"alive on day {window} (died day {death_day})"
        elif contact_day is not None and contact_day >= window:
            evaluable, died, reason = True, False, f"alive on day {window}"
        else:
            evaluable, died = False, False
            reason = f"not evaluable: alive at last contact on day {contact_day}"
        rows.append(
            {
                "patient_id": record["patient_id"],
                "arm": record["arm"],
                "enrolment_date": start,
                "death_date": death,
                "last_contact_date": contact,
                "in_denominator": evaluable,
                "counted": died,
                "reason": reason,
            }
        )
    return Proportion(
        name=f"{window}-day mortality",
        definition=f"death within {window} days of enrolment; patients alive with less "
        f"than {window} days of follow-up are not evaluable; exact CI",
        table=_frame(rows, MORTALITY_COLUMNS),
        arms=events.arms,
        confidence_level=definitions.confidence_level,
    )


# --- shared derivation ---------------------------------------------------------------


def _time_to_event(
    events: EventTable,
    definitions: EndpointDefinitions,
    name: str,
    start_column: str,
    kinds: Sequence[EventKind],
) -> TimeToEvent:
    rows: list[dict[str, Any]] = []
    excluded: list[dict[str, Any]] = []
    for record in events.frame.to_dict(orient="records"):
        start = record[start_column]
        if pd.isna(start):
            excluded.append(
                {
                    "patient_id": record["patient_id"],
                    "arm": record["arm"],
                    "reason": f"no {start_column}: not in the {name} population",
                }
            )
            continue
        end, event, reason = _first_event(record, start, kinds)
        days = _days(start, end)
        rows.append(
            {
                "patient_id": record["patient_id"],
                "arm": record["arm"],
                "start_date": start,
                "end_date": end,
                "event": event,
                "reason": reason,
                "time_days": days,
                "time_months": days / definitions.days_per_month,
                **{c: record[c] for c in events.stratification_columns},
            }
        )
    listed = ", ".join(kinds)
    start_label = start_column.removesuffix("_date").replace("_", " ")
    definition = f"{start_label} to first of: {listed}; otherwise censored"
    return TimeToEvent(
        name=name,
        definition=definition,
        table=_frame(rows, (*TIME_TO_EVENT_COLUMNS, *events.stratification_columns)),
        excluded=pd.DataFrame(excluded, columns=["patient_id", "arm", "reason"]),
        arms=events.arms,
    )


def _first_event(
    record: dict[str, Any], start: pd.Timestamp, kinds: Sequence[EventKind]
) -> tuple[pd.Timestamp, bool, str]:
    """The earliest qualifying event on or after ``start``, or the censoring date."""
    candidates = [
        (record[f"{kind}_date"], order, kind)
        for order, kind in enumerate(kinds)
        if not pd.isna(record[f"{kind}_date"]) and record[f"{kind}_date"] >= start
    ]
    if candidates:
        when, _, kind = min(candidates)
        return when, True, kind
    death = record["death_date"]
    if not pd.isna(death):
        # Death is not an event of this endpoint: follow-up ends there all the same.
        return death, False, "censored at death (not an event of this endpoint)"
    return record["last_contact_date"], False, "censored at last contact"


def _days(start: pd.Timestamp, end: pd.Timestamp) -> int:
    # Day 0 is the enrolment (randomisation) date and day N is N days later: the numbering a
    # protocol's calendar uses with ``day_numbering.start_is_day: 0`` (RuMCeSS day 28).
    return study_day(start.date(), end.date(), start_is_day=0)


def _frame(rows: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    # Explicit columns keep an empty population (no CR in an arm) well-formed.
    frame = pd.DataFrame(rows, columns=list(columns))
    for flag in ("event", "in_denominator", "counted"):
        if flag in frame:
            frame[flag] = frame[flag].astype(bool)
    return frame


def _summary_frame(rows: dict[str, dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "arm"
    return frame
