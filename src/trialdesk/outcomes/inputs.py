"""The other outcome inputs: adverse events, tumour measurements, exposure and labs.

Like the event table (:mod:`trialdesk.outcomes.events`), each input has a documented,
file-friendly shape and a pure ``validate_*`` function that either returns the whole
input, normalised, or raises :class:`InputError` naming every bad record at once. Reading
the file is the caller's job (the command line reads JSON with :mod:`json` and tables
with pandas, every cell as text).

**Adverse events** (JSON): an object ``{"adverse_events": [...]}`` or a bare list. Each
record is an :class:`~trialdesk.safety.adverse_event.AdverseEvent` (term, grade, onset,
CTCAE version, seriousness, per-agent attributions, …) plus ``patient_id`` and, when
known, the treatment ``course`` (1, 2, …) it happened in. The trial-events document of
``trialdesk safety stopping`` (``{"events": [{"patient_id", "event": {...}}]}``) is
read too.

**Tumour measurements** (CSV): ``patient_id``, ``assessment_date``,
``sum_diameters_mm`` (sum of target-lesion diameters, RECIST 1.1 / INRC 2017 soft
tissue) and optionally ``overall_response`` (the time-point response). A patient's
earliest assessment is the baseline.

**Exposure** (CSV): ``patient_id``, ``course`` (1, 2, …), ``agent``, ``start_date`` and
optionally ``course_id`` (e.g. IT, DIT), ``end_date``, ``dose``, ``dose_unit``,
``route``. One row per agent per course.

**Labs** (CSV): ``patient_id``, ``date``, ``test_code``, ``test``, ``value``, ``unit``
and optionally ``lower_limit``, ``upper_limit``, ``toxicity_grade``.

>>> import pandas as pd
>>> m = validate_measurements(pd.DataFrame({
...     "patient_id": ["P1", "P1", "P1"],
...     "assessment_date": ["2026-01-02", "2026-02-20", "2026-04-10"],
...     "sum_diameters_mm": ["50", "30", "35"]}))
>>> best = m.best_change().iloc[0]
>>> best["patient_id"], float(best["best_pct_change"])
('P1', -40.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from trialdesk.errors import TrialdeskError
from trialdesk.outcomes.events import (
    EventTable,
    EventTableError,
    RowProblem,
    _parse_date,
    _text,
)
from trialdesk.safety.adverse_event import AdverseEvent

TIME_POINT_RESPONSES: frozenset[str] = frozenset({"CR", "PR", "MR", "SD", "NON-CR/NON-PD", "PD", "NE"})
"""Time-point responses accepted in a measurement file (INRC 2017 and RECIST 1.1 categories)."""


class InputError(EventTableError):
    """An outcome input file was refused; ``problems`` lists every bad record."""


def _raise(problems: list[RowProblem], where: str) -> None:
    if problems:
        raise InputError(problems, where=where)


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    missing = [RowProblem(None, None, c, "required column is missing") for c in columns
               if c not in frame.columns]
    _raise(missing, where)


def _number(value: Any) -> float | None:
    text = _text(value)
    if text is None:
        return None
    number = float(text)  # ValueError names the text
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {text!r}")
    return number


def _known_patient(events: EventTable | None, patient: str | None) -> str | None:
    """A reason when ``patient`` is not in the event table, else None."""
    if events is None or patient is None:
        return None
    if patient in set(events.frame["patient_id"]):
        return None
    return f"patient {patient!r} is not in the event table"


# --- adverse events ---------------------------------------------------------------------


@dataclass(frozen=True)
class TrialAdverseEvent:
    """One adverse event of one trial participant, with the course it happened in."""

    patient_id: str
    course: int | None
    event: AdverseEvent


@dataclass(frozen=True, eq=False)
class AdverseEvents:
    """Validated adverse events, in file order."""

    records: tuple[TrialAdverseEvent, ...]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def frame(self) -> pd.DataFrame:
        """One row per event: patient, course, term, grade, onset, serious, agents related."""
        rows = [
            {
                "patient_id": r.patient_id,
                "course": r.course,
                "term": r.event.term,
                "grade": r.event.grade,
                "onset": pd.Timestamp(r.event.onset),
                "serious": r.event.serious,
                "fatal": r.event.fatal,
                "related_agents": tuple(
                    a.agent for a in r.event.attributions if a.attribution.suspected
                ),
                "ctcae_version": r.event.ctcae_version,
            }
            for r in self.records
        ]
        columns = ["patient_id", "course", "term", "grade", "onset", "serious", "fatal",
                   "related_agents", "ctcae_version"]
        frame = pd.DataFrame(rows, columns=columns)
        frame["course"] = frame["course"].astype("Int64")
        return frame


def validate_adverse_events(
    data: Any, events: EventTable | None = None, *, where: str = "adverse events"
) -> AdverseEvents:
    """Check adverse-event records (already parsed from JSON) and return them all, or raise.

    ``events``, when given, is the event table: every patient must be in it, and no event
    may start before enrolment or after death.

    >>> aes = validate_adverse_events([{"patient_id": "P1", "course": 1, "term": "Fever",
    ...                                 "grade": 2, "onset": "2026-01-03"}])
    >>> aes.records[0].event.term, aes.records[0].course
    ('Fever', 1)
    >>> validate_adverse_events([{"patient_id": "P1", "term": "Pain", "grade": 4,
    ...                           "onset": "2026-01-03"}])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    trialdesk.outcomes.inputs.InputError: adverse events: 1 problem:
      row 1, patient P1, grade: grade 4 does not exist for 'Pain' ...
    """
    if isinstance(data, Mapping) and "adverse_events" not in data and isinstance(data.get("events"), list):
        data = [_flatten(item) for item in data["events"]]
    elif isinstance(data, Mapping):
        if "adverse_events" not in data:
            raise InputError([RowProblem(None, None, "adverse_events", "required key is missing")],
                             where=where)
        data = data["adverse_events"]
    if not isinstance(data, list):
        raise InputError([RowProblem(None, None, None, "expected a list of adverse events")],
                         where=where)
    problems: list[RowProblem] = []
    records: list[TrialAdverseEvent] = []
    enrolment, death = _event_dates(events)
    for position, raw in enumerate(data, start=1):
        if not isinstance(raw, Mapping):
            problems.append(RowProblem(position, None, None, "expected an object"))
            continue
        fields = dict(raw)
        patient = _text(fields.pop("patient_id", None))
        course_raw = fields.pop("course", None)
        before = len(problems)

        def problem(column: str | None, reason: str, _row: int = position,
                    _patient: str | None = patient) -> None:
            problems.append(RowProblem(_row, _patient, column, reason))

        if patient is None:
            problem("patient_id", "missing value")
        elif (reason := _known_patient(events, patient)) is not None:
            problem("patient_id", reason)
        course: int | None = None
        if course_raw is not None:
            if isinstance(course_raw, bool) or not isinstance(course_raw, int) or course_raw < 1:
                problem("course", f"must be a whole number from 1, got {course_raw!r}")
            else:
                course = course_raw
        try:
            event = AdverseEvent(**fields)
        except TrialdeskError as exc:
            column = (exc.where or "").removeprefix("adverse_event.") or None
            problem(column, exc.reason)
            continue
        if patient is not None:
            start, end = enrolment.get(patient), death.get(patient)
            if start is not None and event.onset < start:
                problem("onset", f"{event.onset} is before enrolment_date {start}")
            if end is not None and event.onset > end:
                problem("onset", f"{event.onset} is after death_date {end}")
        if len(problems) == before and patient is not None:
            records.append(TrialAdverseEvent(patient, course, event))
    _raise(problems, where)
    return AdverseEvents(tuple(records))


def _flatten(item: Any) -> Any:
    """A ``{"patient_id", "arm", "course", "event": {...}}`` item (the trial-events document
    of ``trialdesk safety stopping``) as one flat record; the arm comes from the event table."""
    if not isinstance(item, Mapping) or not isinstance(item.get("event"), Mapping):
        return item
    flat = dict(item["event"])
    for key in ("patient_id", "course"):
        if key in item:
            flat[key] = item[key]
    return flat


def _event_dates(events: EventTable | None) -> tuple[dict[str, date], dict[str, date]]:
    if events is None:
        return {}, {}
    enrolment: dict[str, date] = {}
    death: dict[str, date] = {}
    for record in events.frame.to_dict(orient="records"):
        enrolment[record["patient_id"]] = record["enrolment_date"].date()
        if not pd.isna(record["death_date"]):
            death[record["patient_id"]] = record["death_date"].date()
    return enrolment, death


# --- tumour measurements ------------------------------------------------------------------


MEASUREMENT_COLUMNS: tuple[str, ...] = ("patient_id", "assessment_date", "sum_diameters_mm")


@dataclass(frozen=True, eq=False)
class Measurements:
    """Validated tumour measurements, sorted by patient and date.

    ``frame`` has ``patient_id``, ``assessment_date`` (datetime), ``sum_diameters_mm``
    (float), ``overall_response`` (upper-case or missing) and ``baseline`` (bool: the
    patient's earliest assessment).
    """

    frame: pd.DataFrame

    def best_change(self) -> pd.DataFrame:
        """Per patient: baseline sum, best (lowest) post-baseline sum and % change.

        The best % change is the smallest value of (sum − baseline) / baseline × 100 over
        every post-baseline assessment, the quantity a waterfall plot draws. Patients with
        no post-baseline assessment, or a baseline sum of 0 mm (no measurable target),
        have no value and a ``reason``.
        """
        rows = []
        for patient, group in self.frame.groupby("patient_id", sort=False):
            base = float(group.loc[group["baseline"], "sum_diameters_mm"].iloc[0])
            after = group.loc[~group["baseline"], "sum_diameters_mm"]
            change: float | None = None
            reason = "measured"
            if after.empty:
                reason = "no post-baseline assessment"
            elif base == 0:
                reason = "baseline sum is 0 mm: no measurable target"
            else:
                change = round((float(after.min()) - base) / base * 100, 6)
            rows.append({"patient_id": patient, "baseline_mm": base,
                         "best_mm": float(after.min()) if not after.empty else math.nan,
                         "best_pct_change": change if change is not None else math.nan,
                         "reason": reason})
        return pd.DataFrame(rows, columns=["patient_id", "baseline_mm", "best_mm",
                                           "best_pct_change", "reason"])


def _start_row(
    problems: list[RowProblem], events: EventTable | None, position: int, raw: dict[str, Any]
) -> tuple[str | None, Callable[[str, str], None]]:
    """The row's patient id, checked against the event table, and a way to record a problem."""
    patient = _text(raw.get("patient_id"))

    def problem(column: str, reason: str) -> None:
        problems.append(RowProblem(position, patient, column, reason))

    if patient is None:
        problem("patient_id", "missing value")
    elif (reason := _known_patient(events, patient)) is not None:
        problem("patient_id", reason)
    return patient, problem


def validate_measurements(
    frame: pd.DataFrame, events: EventTable | None = None, *, where: str = "tumour measurements"
) -> Measurements:
    """Check a tumour-measurement table and return it normalised, or raise naming every bad row."""
    _require_columns(frame, MEASUREMENT_COLUMNS, where)
    problems: list[RowProblem] = []
    rows = []
    seen: dict[tuple[str, date], int] = {}
    for position, raw in enumerate(frame.to_dict(orient="records"), start=1):
        count = len(problems)
        patient, problem = _start_row(problems, events, position, raw)
        when = _cell(raw.get("assessment_date"), _parse_date, "assessment_date", problem,
                     required=True)
        size = _cell(raw.get("sum_diameters_mm"), _number, "sum_diameters_mm", problem,
                     required=True)
        if size is not None and size < 0:
            problem("sum_diameters_mm", f"must not be negative, got {size:g}")
        response = _text(raw.get("overall_response"))
        response = response.upper() if response else None
        if response is not None and response not in TIME_POINT_RESPONSES:
            expected = ", ".join(sorted(TIME_POINT_RESPONSES))
            problem("overall_response", f"unknown response {response!r} (expected one of {expected})")
        if patient is not None and when is not None:
            first = seen.setdefault((patient, when), position)
            if first != position:
                problem("assessment_date", f"{when} is already given for this patient in row {first}")
        if len(problems) == count:
            rows.append({"patient_id": patient, "assessment_date": pd.Timestamp(when),
                         "sum_diameters_mm": size, "overall_response": response})
    _raise(problems, where)
    clean = pd.DataFrame(rows, columns=["patient_id", "assessment_date", "sum_diameters_mm",
                                        "overall_response"])
    clean = clean.sort_values(["patient_id", "assessment_date"], kind="stable").reset_index(drop=True)
    clean["sum_diameters_mm"] = clean["sum_diameters_mm"].astype(float)
    clean["baseline"] = ~clean["patient_id"].duplicated()
    return Measurements(clean)


# --- exposure ---------------------------------------------------------------------------


EXPOSURE_COLUMNS: tuple[str, ...] = ("patient_id", "course", "agent", "start_date")


@dataclass(frozen=True, eq=False)
class Exposure:
    """Validated exposure: one row per agent per course.

    ``frame`` has ``patient_id``, ``course`` (int), ``course_id``, ``agent``,
    ``start_date``, ``end_date`` (datetimes, end may be missing), ``dose`` (float or
    NaN), ``dose_unit`` and ``route``.
    """

    frame: pd.DataFrame

    def courses(self) -> pd.DataFrame:
        """One row per patient and course: course id and the first start date."""
        grouped = self.frame.groupby(["patient_id", "course"], sort=True)
        return grouped.agg(course_id=("course_id", "first"), start_date=("start_date", "min"),
                           end_date=("end_date", "max")).reset_index()


def validate_exposure(
    frame: pd.DataFrame, events: EventTable | None = None, *, where: str = "exposure"
) -> Exposure:
    """Check an exposure table and return it normalised, or raise naming every bad row."""
    _require_columns(frame, EXPOSURE_COLUMNS, where)
    problems: list[RowProblem] = []
    rows = []
    for position, raw in enumerate(frame.to_dict(orient="records"), start=1):
        count = len(problems)
        patient, problem = _start_row(problems, events, position, raw)
        course = _cell(raw.get("course"), _whole, "course", problem, required=True)
        if course == 0:
            problem("course", "courses are numbered from 1")
        agent = _text(raw.get("agent"))
        if agent is None:
            problem("agent", "missing value")
        start = _cell(raw.get("start_date"), _parse_date, "start_date", problem, required=True)
        end = _cell(raw.get("end_date"), _parse_date, "end_date", problem)
        if start is not None and end is not None and end < start:
            problem("end_date", f"{end} is before start_date {start}")
        dose = _cell(raw.get("dose"), _number, "dose", problem)
        if dose is not None and dose < 0:
            problem("dose", f"must not be negative, got {dose:g}")
        if len(problems) == count:
            rows.append({"patient_id": patient, "course": course,
                         "course_id": _text(raw.get("course_id")), "agent": agent,
                         "start_date": pd.Timestamp(start),
                         "end_date": pd.Timestamp(end) if end else pd.NaT,
                         "dose": dose if dose is not None else math.nan,
                         "dose_unit": _text(raw.get("dose_unit")), "route": _text(raw.get("route"))})
    _raise(problems, where)
    columns = ["patient_id", "course", "course_id", "agent", "start_date", "end_date", "dose",
               "dose_unit", "route"]
    clean = pd.DataFrame(rows, columns=columns)
    clean["course"] = clean["course"].astype(int)
    return Exposure(clean.sort_values(["patient_id", "course", "agent"], kind="stable")
                    .reset_index(drop=True))


# --- labs -------------------------------------------------------------------------------


LAB_COLUMNS: tuple[str, ...] = ("patient_id", "date", "test_code", "test", "value", "unit")


@dataclass(frozen=True, eq=False)
class Labs:
    """Validated laboratory results, one row per result, as given."""

    frame: pd.DataFrame


def validate_labs(frame: pd.DataFrame, events: EventTable | None = None, *, where: str = "labs") -> Labs:
    """Check a lab table and return it normalised, or raise naming every bad row."""
    _require_columns(frame, LAB_COLUMNS, where)
    problems: list[RowProblem] = []
    rows = []
    for position, raw in enumerate(frame.to_dict(orient="records"), start=1):
        count = len(problems)
        patient, problem = _start_row(problems, events, position, raw)
        when = _cell(raw.get("date"), _parse_date, "date", problem, required=True)
        code = _text(raw.get("test_code"))
        # SDTMIG: --TESTCD is at most 8 characters, letters, digits and underscores,
        # not starting with a digit.
        if code is None:
            problem("test_code", "missing value")
        elif len(code) > 8 or not code.replace("_", "").isalnum() or code[0].isdigit():
            problem("test_code", f"{code!r} is not a valid test code (≤8 letters, digits or _)")
        for column in ("test", "value"):
            if _text(raw.get(column)) is None:
                problem(column, "missing value")
        if _non_finite(_text(raw.get("value"))):  # a result may be text ("positive"), never NaN
            problem("value", f"not a finite number: {_text(raw.get('value'))!r}")
        low = _cell(raw.get("lower_limit"), _number, "lower_limit", problem)
        high = _cell(raw.get("upper_limit"), _number, "upper_limit", problem)
        if low is not None and high is not None and low > high:
            problem("lower_limit", f"{low:g} is above upper_limit {high:g}")
        grade = _cell(raw.get("toxicity_grade"), _whole, "toxicity_grade", problem)
        if grade is not None and not 0 <= grade <= 5:
            problem("toxicity_grade", f"must be 0-5, got {grade}")
        if len(problems) == count:
            rows.append({"patient_id": patient, "date": pd.Timestamp(when), "test_code": code,
                         "test": _text(raw.get("test")), "value": _text(raw.get("value")),
                         "unit": _text(raw.get("unit")),
                         "lower_limit": low if low is not None else math.nan,
                         "upper_limit": high if high is not None else math.nan,
                         "toxicity_grade": grade})
    _raise(problems, where)
    columns = ["patient_id", "date", "test_code", "test", "value", "unit", "lower_limit",
               "upper_limit", "toxicity_grade"]
    clean = pd.DataFrame(rows, columns=columns)
    clean["toxicity_grade"] = clean["toxicity_grade"].astype("Int64")
    return Labs(clean.sort_values(["patient_id", "date", "test_code"], kind="stable")
                .reset_index(drop=True))


# --- cells ------------------------------------------------------------------------------


def _non_finite(text: str | None) -> bool:
    """True for a text Python reads as NaN or ±infinity ("nan", "Infinity", "1e400")."""
    try:
        return text is not None and not math.isfinite(float(text))
    except ValueError:
        return False


def _whole(value: Any) -> int | None:
    number = _number(value)
    if number is None:
        return None
    if not number.is_integer() or number < 0:
        raise ValueError(f"not a whole number: {_text(value)!r}")
    return int(number)


def _cell(value: Any, parse: Any, column: str, problem: Any, *, required: bool = False) -> Any:
    """Parse one cell; report a missing required value or an unreadable one, return None."""
    try:
        parsed = parse(value)
    except ValueError as exc:
        problem(column, str(exc).replace("could not convert string to float", "not a number"))
        return None
    if parsed is None and required:
        problem(column, "missing value")
    return parsed
