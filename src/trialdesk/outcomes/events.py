"""The event table: one row per enrolled patient, the input of every outcome endpoint.

Columns (names are exact; dates are ISO 8601, e.g. ``2026-03-01``):

=========================  ========  ===================================================
column                     required  meaning
=========================  ========  ===================================================
``patient_id``             yes       unique per row
``arm``                    yes       treatment arm; checked against the protocol's arms
``enrolment_date``         yes       day 0 of OS, PFS, EFS and short-term mortality
``best_response``          no        best overall response: CR, PR, MR, SD, PD or NE
``response_criteria``      with BOR  INRC (INRC 2017) or RECIST (RECIST 1.1)
``first_cr_date``          with CR   first documented complete response; day 0 of RFS
``progression_date``       no        first progression
``relapse_date``           no        first relapse after complete response
``second_malignancy_date`` no        diagnosis of a second malignancy
``death_date``             no        death from any cause
``last_contact_date``      if alive  last date the patient was known alive
=========================  ========  ===================================================

Any other column (for example ``fcgr_genotype`` or ``gd2_expression``) is kept as a
stratification column and passed through to the endpoint tables. An unknown column
whose name ends in ``_date`` is refused: it is almost always a misspelt event date.

:func:`validate_event_table` is pure: it takes a DataFrame and returns an
:class:`EventTable` or raises :class:`EventTableError` naming every bad row. Reading a
file is the caller's job; :func:`read_event_table` is a thin reader for CSV and Parquet.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trialdesk.errors import OutcomeError

REQUIRED_COLUMNS: tuple[str, ...] = ("patient_id", "arm", "enrolment_date")
"""Columns every event table must have, with a value in every row."""

EVENT_DATE_COLUMNS: tuple[str, ...] = (
    "first_cr_date",
    "progression_date",
    "relapse_date",
    "second_malignancy_date",
    "death_date",
    "last_contact_date",
)
"""Optional date columns; a missing column means "no such event for anyone"."""

DATE_COLUMNS: tuple[str, ...] = ("enrolment_date", *EVENT_DATE_COLUMNS)
RESPONSE_COLUMNS: tuple[str, ...] = ("best_response", "response_criteria")
KNOWN_COLUMNS: tuple[str, ...] = (*REQUIRED_COLUMNS, *EVENT_DATE_COLUMNS, *RESPONSE_COLUMNS)

# Overall response categories per criteria. INRC 2017 (Park JR et al., J Clin Oncol
# 2017;35:2580-7) has CR, PR, MR, SD, PD; RECIST 1.1 (Eisenhauer EA et al., Eur J
# Cancer 2009;45:228-47) has CR, PR, SD, PD and NE. NE is accepted for both because a
# patient without an evaluable assessment must still be representable.
RESPONSES_BY_CRITERIA: dict[str, frozenset[str]] = {
    "INRC": frozenset({"CR", "PR", "MR", "SD", "PD", "NE"}),
    "RECIST": frozenset({"CR", "PR", "SD", "PD", "NE"}),
}
_ALL_RESPONSES: frozenset[str] = frozenset().union(*RESPONSES_BY_CRITERIA.values())


@dataclass(frozen=True)
class RowProblem:
    """One reason an event table was refused.

    ``row`` is the 1-based data row (row 1 is line 2 of a CSV file with a header);
    ``row`` and ``patient_id`` are ``None`` for problems with the table as a whole.
    """

    row: int | None
    patient_id: str | None
    column: str | None
    reason: str

    def __str__(self) -> str:
        parts = []
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.patient_id is not None:
            parts.append(f"patient {self.patient_id}")
        if self.column is not None:
            parts.append(self.column)
        return f"{', '.join(parts)}: {self.reason}" if parts else self.reason


class EventTableError(OutcomeError):
    """An event table was refused; ``problems`` lists every bad row and column."""

    def __init__(self, problems: Sequence[RowProblem], *, where: str = "event table") -> None:
        self.problems: tuple[RowProblem, ...] = tuple(problems)
        count = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''}:\n{lines}", where=where)


@dataclass(frozen=True, eq=False)
class EventTable:
    """A validated event table.

    ``frame`` has every column of the documented spec (absent optional date columns are
    added as all-missing), dates as ``datetime64[ns]``, ``patient_id`` and ``arm`` as
    strings, ``best_response``/``response_criteria`` upper-case or missing, then the
    stratification columns unchanged. ``arms`` is the protocol's arm order when one was
    given, otherwise the sorted arms found in the table.
    """

    frame: pd.DataFrame
    arms: tuple[str, ...]
    stratification_columns: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.frame)


def validate_event_table(frame: pd.DataFrame, arms: Sequence[str] | None = None) -> EventTable:
    """Check an event table and return it normalised, or raise naming every bad row.

    ``arms``, when given, is the list of arms the protocol allows; any other arm is
    refused. Nothing is returned unless the whole table is valid.

    >>> import pandas as pd
    >>> table = validate_event_table(pd.DataFrame({
    ...     "patient_id": ["P01"], "arm": ["A"], "enrolment_date": ["2026-01-05"],
    ...     "last_contact_date": ["2026-02-04"]}), arms=["A", "B"])
    >>> table.frame.loc[0, "last_contact_date"].date().isoformat()
    '2026-02-04'
    >>> validate_event_table(pd.DataFrame({
    ...     "patient_id": ["P01"], "arm": ["C"], "enrolment_date": ["2026-01-05"],
    ...     "death_date": ["2026-01-01"]}), arms=["A", "B"])
    Traceback (most recent call last):
    ...
    trialdesk.outcomes.events.EventTableError: event table: 2 problems:
      row 1, patient P01, arm: unknown arm 'C' (allowed: A, B)
      row 1, patient P01, death_date: 2026-01-01 is before enrolment_date 2026-01-05
    """
    problems = _check_columns(frame)
    if problems:
        # Without the required columns no row can be checked meaningfully.
        raise EventTableError(problems)

    allowed = None if arms is None else tuple(str(a) for a in arms)
    extra = tuple(str(c) for c in frame.columns if c not in KNOWN_COLUMNS)
    records: list[dict[str, Any]] = []
    for position, raw in enumerate(frame.to_dict(orient="records"), start=1):
        record, row_problems = _check_row(position, raw, allowed)
        records.append(record)
        problems.extend(row_problems)
    problems.extend(_duplicate_patients(records))
    if problems:
        raise EventTableError(sorted(problems, key=_problem_order))

    clean = pd.DataFrame(
        {
            "patient_id": [r["patient_id"] for r in records],
            "arm": [r["arm"] for r in records],
            **{c: _date_series([r[c] for r in records]) for c in DATE_COLUMNS},
            **{c: pd.Series([r[c] for r in records], dtype=object) for c in RESPONSE_COLUMNS},
        }
    )
    for column in extra:
        clean[column] = frame[column].to_numpy()
    found = sorted(set(clean["arm"]))
    return EventTable(
        frame=clean,
        arms=allowed if allowed is not None else tuple(found),
        stratification_columns=extra,
    )


def read_event_table(path: str | Path, arms: Sequence[str] | None = None) -> EventTable:
    """Read an event table from a ``.csv`` or ``.parquet`` file and validate it.

    CSV cells are read as text so that identifiers such as ``007`` keep their zeros;
    empty cells are missing values. Parquet needs the optional ``pyarrow`` package.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise OutcomeError("expected a .csv or .parquet file", where=str(path))
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        else:
            frame = pd.read_parquet(path)
    except ImportError as exc:
        raise OutcomeError(
            f"reading Parquet needs pyarrow (pip install pyarrow): {exc}", where=str(path)
        ) from exc
    except (OSError, ValueError) as exc:
        raise OutcomeError(f"cannot read event table: {exc}", where=str(path)) from exc
    try:
        return validate_event_table(frame, arms)
    except EventTableError as exc:
        raise EventTableError(exc.problems, where=str(path)) from None


# --- checks ------------------------------------------------------------------------


def _check_columns(frame: pd.DataFrame) -> list[RowProblem]:
    problems = [
        RowProblem(None, None, column, "required column is missing")
        for column in REQUIRED_COLUMNS
        if column not in frame.columns
    ]
    for column in frame.columns:
        name = str(column)
        if name.endswith("_date") and name not in DATE_COLUMNS:
            problems.append(
                RowProblem(
                    None, None, name, f"unknown date column (known: {', '.join(DATE_COLUMNS)})"
                )
            )
    duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    problems.extend(RowProblem(None, None, c, "column appears more than once") for c in duplicated)
    return problems


def _check_row(
    position: int, raw: dict[Any, Any], allowed: tuple[str, ...] | None
) -> tuple[dict[str, Any], list[RowProblem]]:
    """Parse one row; return the cleaned values and every problem found in it."""
    problems: list[RowProblem] = []
    patient = _text(raw.get("patient_id"))

    def problem(column: str | None, reason: str) -> None:
        problems.append(RowProblem(position, patient, column, reason))

    if patient is None:
        problem("patient_id", "missing value")
    arm = _text(raw.get("arm"))
    if arm is None:
        problem("arm", "missing value")
    elif allowed is not None and arm not in allowed:
        # Look-alike letters (a Cyrillic "А" for a Latin "A") are otherwise invisible.
        hint = "" if arm.isascii() else "; it contains non-ASCII characters"
        problem("arm", f"unknown arm {arm!r} (allowed: {', '.join(allowed)}{hint})")

    dates: dict[str, date | None] = {}
    unparsed: set[str] = set()
    for column in DATE_COLUMNS:
        try:
            dates[column] = _parse_date(raw.get(column))
        except ValueError as exc:
            dates[column] = None
            unparsed.add(column)
            problem(column, str(exc))
    if dates["enrolment_date"] is None and "enrolment_date" not in unparsed:
        problem("enrolment_date", "missing value")

    response = _text(raw.get("best_response"))
    criteria = _text(raw.get("response_criteria"))
    response = response.upper() if response else None
    criteria = criteria.upper() if criteria else None
    for column, reason in _response_problems(response, criteria, dates["first_cr_date"]):
        problem(column, reason)
    for column, reason in _order_problems(dates):
        if column not in unparsed:  # an unreadable date is reported once, as unreadable
            problem(column, reason)

    record = {"patient_id": patient, "arm": arm, **dates}
    record.update(best_response=response, response_criteria=criteria)
    return record, problems


def _response_problems(
    response: str | None, criteria: str | None, first_cr: date | None
) -> Iterable[tuple[str, str]]:
    if criteria is not None and criteria not in RESPONSES_BY_CRITERIA:
        yield "response_criteria", f"unknown criteria {criteria!r} (expected INRC or RECIST)"
        criteria = None
    elif response is not None and criteria is None:
        yield "response_criteria", "missing value: a best_response needs its criteria"
    if response is not None:
        if response not in _ALL_RESPONSES:
            expected = ", ".join(sorted(_ALL_RESPONSES))
            yield "best_response", f"unknown response {response!r} (expected one of {expected})"
        elif criteria is not None and response not in RESPONSES_BY_CRITERIA[criteria]:
            yield "best_response", f"{response} is not a {criteria} overall response"
    # The best overall response is CR exactly when a first CR date exists; RFS starts there.
    if response == "CR" and first_cr is None:
        yield "first_cr_date", "missing value: best_response is CR"
    if first_cr is not None and response != "CR":
        yield "first_cr_date", f"given but best_response is {response or 'missing'}, not CR"


def _order_problems(dates: dict[str, date | None]) -> Iterable[tuple[str, str]]:
    enrolment = dates["enrolment_date"]
    death = dates["death_date"]
    contact = dates["last_contact_date"]
    for column in EVENT_DATE_COLUMNS:
        when = dates[column]
        if when is None:
            continue
        if enrolment is not None and when < enrolment:
            yield column, f"{when} is before enrolment_date {enrolment}"
        if column != "death_date" and death is not None and when > death:
            yield column, f"{when} is after death_date {death}"
        # Death may follow the last contact (a death reported later); no other event may.
        after_contact = contact is not None and when > contact
        if column not in ("death_date", "last_contact_date") and after_contact:
            yield column, f"{when} is after last_contact_date {contact}"
    relapse, first_cr = dates["relapse_date"], dates["first_cr_date"]
    if relapse is not None and first_cr is not None and relapse < first_cr:
        yield "relapse_date", f"{relapse} is before first_cr_date {first_cr}"
    if death is None and contact is None:
        yield "last_contact_date", "missing value: needed when the patient is not known dead"


def _duplicate_patients(records: list[dict[str, Any]]) -> list[RowProblem]:
    rows_by_patient: dict[str, list[int]] = {}
    for position, record in enumerate(records, start=1):
        if record["patient_id"] is not None:
            rows_by_patient.setdefault(record["patient_id"], []).append(position)
    problems: list[RowProblem] = []
    for patient, rows in rows_by_patient.items():
        if len(rows) > 1:
            listed = ", ".join(str(r) for r in rows)
            problems.extend(
                RowProblem(r, patient, "patient_id", f"duplicate patient (rows {listed})")
                for r in rows
            )
    return problems


_COLUMN_RANK = {c: i for i, c in enumerate(KNOWN_COLUMNS)}


def _problem_order(p: RowProblem) -> tuple[int, int]:
    return (p.row or 0, _COLUMN_RANK.get(p.column or "", len(_COLUMN_RANK)))


# --- cell parsing --------------------------------------------------------------------


def _date_series(values: list[date | None]) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype=object)).astype("datetime64[ns]")


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, np.datetime64) and np.isnat(value):
        return True
    return isinstance(value, str) and not value.strip()


def _text(value: Any) -> str | None:
    if _is_missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        # Parquet or a numeric CSV column turns "12" into 12.0; the id is still "12".
        return str(int(value))
    return str(value).strip()


def _parse_date(value: Any) -> date | None:
    """Parse an ISO 8601 date; day/month order is never guessed."""
    if _is_missing(value):
        return None
    if isinstance(value, datetime):  # pd.Timestamp is a datetime
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value).date()
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(text).date()
        except ValueError:
            raise ValueError(f"not an ISO 8601 date: {text!r}") from None
    raise ValueError(f"not a date: {value!r}")
