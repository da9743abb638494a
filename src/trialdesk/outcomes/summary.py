"""One outcome analysis of a trial: the endpoints its protocol names, derived and summarised.

:func:`endpoints_for` reads the outcome measures of a protocol's registry record (e.g.
NB-NK-2026: ORR, OS, PFS, RFS; RuMCeSS: 28-day mortality) and :func:`summarise` derives
each endpoint patient by patient, with its totals, Kaplan–Meier medians, landmark survival
and a log-rank test between arms. :meth:`OutcomeSummary.to_json` is the stable document
behind ``trialdesk outcomes --json`` (schema ``trialdesk.outcomes/1``).

>>> endpoints_for(["Objective response rate (ORR)", "Overall survival (OS)",
...                "Relapse-free survival (RFS)", "Quality of life"]).names
('ORR', 'OS', 'RFS')
>>> choice = endpoints_for(["28-day mortality", "Organ dysfunction/injury"])
>>> choice.names, choice.mortality_window_days
(('OS', 'MORTALITY'), 28)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from trialdesk.errors import OutcomeError
from trialdesk.outcomes.endpoints import (
    EndpointDefinitions,
    Proportion,
    TimeToEvent,
    event_free_survival,
    objective_response_rate,
    overall_survival,
    progression_free_survival,
    relapse_free_survival,
    short_term_mortality,
)
from trialdesk.outcomes.events import EventTable
from trialdesk.outcomes.survival import KaplanMeierResult, LogRankResult, kaplan_meier, logrank

SCHEMA = "trialdesk.outcomes/1"
ENDPOINT_ORDER: tuple[str, ...] = ("ORR", "OS", "PFS", "EFS", "RFS", "MORTALITY")
TimeUnit = Literal["days", "months"]

# Display choice, not a clinical number: follow-up this short reads better in days.
DAYS_DISPLAY_LIMIT = 92

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ORR", re.compile(r"\bORR\b|objective response|overall response rate", re.I)),
    ("OS", re.compile(r"\bOS\b|overall survival", re.I)),
    ("PFS", re.compile(r"\bPFS\b|progression[- ]free", re.I)),
    ("EFS", re.compile(r"\bEFS\b|event[- ]free", re.I)),
    ("RFS", re.compile(r"\bRFS\b|relapse[- ]free", re.I)),
)
_MORTALITY = re.compile(r"(\d+)[- ]day(?:s)?[- ]mortality", re.I)


@dataclass(frozen=True)
class EndpointChoice:
    """Which endpoints to derive, in :data:`ENDPOINT_ORDER`.

    OS is always included: every trial records deaths, and the Kaplan–Meier curve of a
    mortality trial (RuMCeSS) is a survival curve.
    """

    names: tuple[str, ...]
    mortality_window_days: int | None = None

    def __post_init__(self) -> None:
        unknown = [n for n in self.names if n not in ENDPOINT_ORDER]
        if unknown:
            raise OutcomeError(
                f"unknown endpoint(s) {', '.join(unknown)} (known: {', '.join(ENDPOINT_ORDER)})",
                where="endpoints",
            )
        if "MORTALITY" in self.names and not self.mortality_window_days:
            raise OutcomeError("short-term mortality needs its window in days", where="endpoints")


def endpoints_for(measures: Sequence[str]) -> EndpointChoice:
    """The endpoints named by a protocol's outcome measures (registry ``outcomes``).

    An "N-day mortality" measure selects short-term mortality with an N-day window;
    the window is the protocol's number, read from its text.
    """
    found = {"OS"}
    window: int | None = None
    for measure in measures:
        for name, pattern in _PATTERNS:
            if pattern.search(measure):
                found.add(name)
        if (match := _MORTALITY.search(measure)) is not None:
            found.add("MORTALITY")
            window = int(match.group(1))
    return EndpointChoice(tuple(n for n in ENDPOINT_ORDER if n in found), window)


def parse_endpoints(text: str, mortality_window_days: int | None = None) -> EndpointChoice:
    """``--endpoints ORR,OS,28-day-mortality``: names separated by commas.

    >>> parse_endpoints("os, pfs,28-day mortality").names
    ('OS', 'PFS', 'MORTALITY')
    """
    names: set[str] = set()
    window = mortality_window_days
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if (match := _MORTALITY.search(part)) is not None:
            names.add("MORTALITY")
            window = int(match.group(1))
        else:
            names.add(part.upper())
    unknown = sorted(n for n in names if n not in ENDPOINT_ORDER)
    if unknown:
        raise OutcomeError(
            f"unknown endpoint(s) {', '.join(unknown)} "
            "(known: ORR, OS, PFS, EFS, RFS, N-day mortality)",
            where="--endpoints",
        )
    return EndpointChoice(tuple(n for n in ENDPOINT_ORDER if n in names), window)


@dataclass(frozen=True, eq=False)
class TimeToEventSummary:
    """A time-to-event endpoint with its statistics; ``note`` says why one is missing."""

    endpoint: TimeToEvent
    kaplan_meier: KaplanMeierResult | None
    landmarks: pd.DataFrame
    logrank: LogRankResult | None
    note: str | None = None


@dataclass(frozen=True, eq=False)
class OutcomeSummary:
    """Every selected endpoint of one trial, derived and summarised."""

    trial: str
    arms: tuple[str, ...]
    time_unit: TimeUnit
    landmark_times: tuple[float, ...]
    proportions: Mapping[str, Proportion] = field(default_factory=dict)
    time_to_event: Mapping[str, TimeToEventSummary] = field(default_factory=dict)

    @property
    def duration_col(self) -> str:
        return "time_days" if self.time_unit == "days" else "time_months"

    def to_json(self) -> dict[str, Any]:
        """The stable ``trialdesk.outcomes/1`` document (NaN and ∞ become null)."""
        endpoints: list[dict[str, Any]] = []
        for name, prop in self.proportions.items():
            endpoints.append({
                "name": prop.name, "key": name, "kind": "proportion", "definition": prop.definition,
                "confidence_level": prop.confidence_level,
                "patients": _records(prop.table), "summary": _records(prop.summary.reset_index()),
            })
        for name, tte in self.time_to_event.items():
            km = tte.kaplan_meier
            endpoints.append({
                "name": tte.endpoint.name, "key": name, "kind": "time_to_event",
                "definition": tte.endpoint.definition,
                "patients": _records(tte.endpoint.table), "excluded": _records(tte.endpoint.excluded),
                "summary": _records(tte.endpoint.summary.reset_index()),
                "kaplan_meier": None if km is None else _records(km.summary.reset_index()),
                "landmarks": _records(tte.landmarks),
                "logrank": None if tte.logrank is None else {
                    "groups": list(tte.logrank.groups),
                    "test_statistic": _number(tte.logrank.test_statistic),
                    "degrees_of_freedom": tte.logrank.degrees_of_freedom,
                    "p_value": _number(tte.logrank.p_value),
                },
                "note": tte.note,
            })
        order = {n: i for i, n in enumerate(ENDPOINT_ORDER)}
        endpoints.sort(key=lambda e: order[e["key"]])
        return {"schema": SCHEMA, "trial": self.trial, "arms": list(self.arms),
                "time_unit": self.time_unit, "landmark_times": list(self.landmark_times),
                "endpoints": endpoints}


def choose_time_unit(events: EventTable, unit: str = "auto") -> TimeUnit:
    """``days`` or ``months``; ``auto`` takes days when all follow-up fits in ~3 months."""
    if unit in ("days", "months"):
        return unit  # type: ignore[return-value]
    if unit != "auto":
        raise OutcomeError(f"unknown time unit {unit!r} (days, months or auto)", where="--time-unit")
    longest = overall_survival(events).table["time_days"].max()
    return "days" if pd.isna(longest) or longest <= DAYS_DISPLAY_LIMIT else "months"


def summarise(
    events: EventTable,
    choice: EndpointChoice,
    *,
    trial: str,
    time_unit: TimeUnit = "months",
    landmarks: Sequence[float] | None = None,
    definitions: EndpointDefinitions | None = None,
) -> OutcomeSummary:
    """Derive and summarise every endpoint in ``choice``.

    ``landmarks`` are times in ``time_unit``; by default 24 and 60 months (the 2- and
    5-year EFS and OS that neuroblastoma reviews quote), or in days the mortality window.
    """
    base = definitions or EndpointDefinitions()
    if choice.mortality_window_days:
        base = base.model_copy(update={"mortality_window_days": choice.mortality_window_days})
    if landmarks is None:
        if time_unit == "months":
            landmarks = (24.0, 60.0)
        else:
            landmarks = (float(choice.mortality_window_days),) if choice.mortality_window_days else ()
    duration = "time_days" if time_unit == "days" else "time_months"
    proportions: dict[str, Proportion] = {}
    survival: dict[str, TimeToEventSummary] = {}
    derive = {"OS": overall_survival, "PFS": progression_free_survival,
              "EFS": event_free_survival, "RFS": relapse_free_survival}
    for name in choice.names:
        if name == "ORR":
            proportions[name] = objective_response_rate(events, base)
        elif name == "MORTALITY":
            proportions[name] = short_term_mortality(events, base)
        else:
            survival[name] = _time_to_event(derive[name](events, base), duration, tuple(landmarks))
    return OutcomeSummary(trial=trial, arms=events.arms, time_unit=time_unit,
                          landmark_times=tuple(float(t) for t in landmarks),
                          proportions=proportions, time_to_event=survival)


def _time_to_event(endpoint: TimeToEvent, duration: str, landmarks: tuple[float, ...]) -> TimeToEventSummary:
    empty = pd.DataFrame(columns=["group", "time", "survival", "lower", "upper", "at_risk"])
    if endpoint.table.empty:
        missing = f"no patient in the {endpoint.name} population"
        return TimeToEventSummary(endpoint, None, empty, None, missing)
    km = kaplan_meier(endpoint, duration_col=duration)
    marks = km.landmark(list(landmarks)) if landmarks else empty
    present = [a for a in endpoint.arms if (endpoint.table["arm"] == a).any()]
    test: LogRankResult | None = None
    note: str | None = None
    if len(present) < 2:
        note = "log-rank not computed: fewer than two arms with patients"
    elif not endpoint.table["event"].any():
        note = "log-rank not computed: no events"
    else:
        test = logrank(endpoint, duration_col=duration)
    return TimeToEventSummary(endpoint, km, marks, test, note)


def _number(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for record in frame.to_dict(orient="records"):
        row: dict[str, Any] = {}
        for key, value in record.items():
            if isinstance(value, pd.Timestamp):
                row[str(key)] = value.date().isoformat()
            elif value is None or value is pd.NaT or (isinstance(value, float) and not math.isfinite(value)):
                row[str(key)] = None
            elif hasattr(value, "item"):  # numpy scalar
                item = value.item()
                row[str(key)] = None if isinstance(item, float) and not math.isfinite(item) else item
            else:
                row[str(key)] = value
        out.append(row)
    return out


def format_time(value: float, unit: TimeUnit) -> str:
    """A median or limit for people: ``not reached`` for ∞, ``—`` for unknown.

    >>> format_time(float("inf"), "months"), format_time(11.1, "months")
    ('not reached', '11.1 mo')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if math.isinf(value):
        return "not reached"
    return f"{value:.0f} d" if unit == "days" else f"{value:.1f} mo"
