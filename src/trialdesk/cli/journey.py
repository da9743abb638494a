"""The treatment calendar of an enrolled patient and what happened on it: the calendar with
doses, the start, weight and height, administrations and other events, course delays, dose
sign-off, and the journey as a file (JSON or iCalendar)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from trialdesk.cli.common import _console, _say, app, domain_errors, write_atomic
from trialdesk.cli.patients import StudyArg, iso_date, iso_moment
from trialdesk.cli.session import (
    DEFAULT_DATA_DIR,
    DatabaseOpt,
    DataDirOpt,
    PasswordOpt,
    ReasonOpt,
    UserOpt,
    acting,
    open_services,
    reason_given,
)

record_app = typer.Typer(help="Record what happened: calendar start, weight/height, events, "
                              "course delays, dose sign-off (one dose or a whole course).",
                              no_args_is_help=True)
journey_app = typer.Typer(help="A patient's journey as a file.", no_args_is_help=True)
app.add_typer(record_app, name="record")
app.add_typer(journey_app, name="journey")


@app.command()
@domain_errors
def calendar(
    study_number: StudyArg,
    by: UserOpt,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Statuses as of this date or date-time (default now).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON document.")] = False,
    ics: Annotated[Path | None, typer.Option("--ics", help="Also write an iCalendar file.")] = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """The patient's treatment calendar: every event with its date, window, dose and status."""
    from dataclasses import replace
    from datetime import UTC

    from rich.console import Console

    from trialdesk.schedule.export import to_ics, to_json_text
    from trialdesk.schedule.render import calendar_view
    from trialdesk.services import journeys

    ctx = open_services(data_dir, database)
    loaded = journeys.load_journey(ctx, acting(ctx, by), study_number)
    cal = loaded.calendar(iso_moment(as_of, "--as-of") if as_of else journeys.now(ctx))
    notes = list(loaded.journey.header())
    latest = ctx.store.protocol_version(loaded.row.trial_id).number
    if loaded.enrolment.protocol_version_number != latest:
        notes.append(f"enrolled under protocol version {loaded.enrolment.protocol_version_number}; "
                     f"the trial's current version is {latest}")
    cal = replace(cal, notes=tuple(notes))
    if ics is not None:
        write_atomic(ics, to_ics(cal, ctx.store.now().astimezone(UTC)))
    if as_json:
        typer.echo(to_json_text(cal))
        return
    # The calendar is a wide table: 160 columns when the output is not a terminal.
    Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160).print(calendar_view(cal))
    if ics is not None:
        _say(_console(), f"iCalendar written to {ics}")


@journey_app.command("export")
@domain_errors
def journey_export(
    study_number: StudyArg,
    by: UserOpt,
    ics: Annotated[bool, typer.Option("--ics", help="iCalendar instead of JSON.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file.")] = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """The journey (enrolment, calendar with doses and what happened) as JSON, or iCalendar."""
    from trialdesk.services import journeys

    ctx = open_services(data_dir, database)
    who = acting(ctx, by)
    data = (journeys.calendar_ics(ctx, who, study_number) if ics else
            (json.dumps(journeys.calendar_json(ctx, who, study_number), indent=2,
                        ensure_ascii=False, default=str) + "\n").encode())
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        write_atomic(out, data)
        _say(_console(), f"{study_number}: written to {out}")


@record_app.command("start")
@domain_errors
def record_start(
    study_number: StudyArg,
    on: Annotated[str, typer.Option("--on", help="Day 1 of the calendar (ISO date).")],
    by: UserOpt,
    reason: ReasonOpt = "calendar start set",
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Set the calendar's start (day 1); not before consent."""
    from trialdesk.services import journeys

    ctx = open_services(data_dir, database)
    who = acting(ctx, by)
    loaded = journeys.load_journey(ctx, who, study_number)
    journeys.update_settings(ctx, who, study_number, version=loaded.version,
                             start=iso_date(on, "--on"), anchors=None, reason=reason_given(reason))
    _say(_console(), f"{study_number}: calendar starts {on}")


@record_app.command("body")
@domain_errors
def record_body(
    study_number: StudyArg,
    on: Annotated[str, typer.Option("--on", help="Date measured (ISO).")],
    by: UserOpt,
    weight: Annotated[float | None, typer.Option("--weight", help="Weight in kg.")] = None,
    height: Annotated[float | None, typer.Option("--height", help="Height in cm.")] = None,
    reason: ReasonOpt = "weight/height measured",
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Record a weight and/or height; later courses are recomputed past the protocol's threshold."""
    from trialdesk.services import journeys

    ctx = open_services(data_dir, database)
    journeys.record_body(ctx, acting(ctx, by), study_number, on=iso_date(on, "--on"),
                         weight_kg=weight, height_cm=height, reason=reason_given(reason))
    parts = [f"{weight:g} kg" if weight is not None else "",
             f"{height:g} cm" if height is not None else ""]
    _say(_console(), f"{study_number}: {' '.join(x for x in parts if x)} on {on}")


@record_app.command("event")
@domain_errors
def record_event(
    study_number: StudyArg,
    event_id: Annotated[str, typer.Argument(help="Event id from the calendar, e.g. c2.irinotecan.d1.")],
    status: Annotated[str, typer.Option(
        "--status", help="given, partly_given, withheld, done, not_done, continue or stop.")],
    by: UserOpt,
    at: Annotated[str | None, typer.Option("--at", help="When (ISO date-time; default now).")] = None,
    dose: Annotated[float | None, typer.Option("--dose", help="Actual amount given that day.")] = None,
    unit: Annotated[str | None, typer.Option("--unit", help="Unit of --dose (default: the plan's).")] = None,
    given_by: Annotated[str | None, typer.Option(
        "--given-by", help="Who gave it or did it (default: you).")] = None,
    why: Annotated[str | None, typer.Option("--why", help="Why withheld, not done or stopped.")] = None,
    reason: ReasonOpt = "administration recorded",
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Record what happened to one calendar event (an administration, procedure, decision…)."""
    from trialdesk.schedule.records import RecordStatus
    from trialdesk.services import journeys

    if status not in {s.value for s in RecordStatus}:
        raise typer.BadParameter(f"choose one of {', '.join(s.value for s in RecordStatus)}",
                                 param_hint="--status")
    ctx = open_services(data_dir, database)
    moment = iso_moment(at, "--at") if at else journeys.now(ctx)
    journeys.record_event(ctx, acting(ctx, by), study_number, event_id=event_id, status=status,
                          at=moment, amount=dose, unit=unit, by=given_by, reason=why,
                          note=reason_given(reason))
    _say(_console(), f"{study_number}: {event_id} recorded {status}")


@record_app.command("correct-dose")
@domain_errors
def correct_dose(
    study_number: StudyArg,
    event_id: Annotated[str, typer.Argument(help="Event id of the recorded dose, e.g. c1.irinotecan.d1.")],
    reason: Annotated[str, typer.Option(
        "--reason", help="Why the record is corrected (kept in the audit trail).")],
    by: UserOpt,
    status: Annotated[str | None, typer.Option("--status", help="given, partly_given or withheld.")] = None,
    at: Annotated[str | None, typer.Option("--at", help="When it was started (ISO date-time).")] = None,
    dose: Annotated[float | None, typer.Option(
        "--dose", help="Actual amount given, in the prescribed unit.")] = None,
    given_by: Annotated[str | None, typer.Option("--given-by", help="Who gave it.")] = None,
    lot: Annotated[str | None, typer.Option("--lot", help="Lot number of the product.")] = None,
    why: Annotated[str | None, typer.Option("--why", help="Why withheld or partly given.")] = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Correct a recorded dose: the options given replace what was recorded, the rest stays
    (the weight and height of the day too); the audit keeps the old values and the reason."""
    from trialdesk.services import administrations

    ctx = open_services(data_dir, database)
    who = acting(ctx, by)
    values = dict(administrations.administration_form(ctx, who, study_number, event_id)
                  ["recorded_values"] or {})
    for key, value in (("status", status), ("at", at), ("by", given_by), ("lot", lot),
                       ("why", why), ("amount", None if dose is None else f"{dose:g}")):
        if value is not None:
            values[key] = value
    done = administrations.correct_administration(ctx, who, study_number, event_id, values,
                                                  reason=reason_given(reason))
    record = done["record"]
    amount = f", {record['amount']:g} {record['unit']}" if record.get("amount") else ""
    _say(_console(), f"{study_number}: {event_id} corrected: {record['status']}{amount}")


@record_app.command("delay")
@domain_errors
def record_delay(
    study_number: StudyArg,
    course: Annotated[int, typer.Option("--course", help="Course number on the calendar.")],
    days: Annotated[int, typer.Option("--days", help="Days to postpone it.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (e.g. toxicity not recovered).")],
    by: UserOpt,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Postpone a course that has not started; it and every later event move."""
    from trialdesk.services import journeys

    ctx = open_services(data_dir, database)
    why = reason_given(reason)
    journeys.record_delay(ctx, acting(ctx, by), study_number, course=course, days=days, why=why,
                          by=None, reason=why)
    _say(_console(), f"{study_number}: course {course} delayed {days} days ({why})")


@record_app.command("sign")
@domain_errors
def record_sign(
    study_number: StudyArg,
    event_id: Annotated[str, typer.Argument(help="The dose's event id, e.g. c1.irinotecan.d1.")],
    by: UserOpt,
    password: PasswordOpt,
    reason: ReasonOpt = "dose signed off",
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Sign off a computed dose (e-signature bound to the dose and its working)."""
    from trialdesk.services import journeys

    ctx = open_services(data_dir, database)
    sig = journeys.sign_dose(ctx, acting(ctx, by), study_number, event_id=event_id,
                             password=password, reason=reason_given(reason))
    _say(_console(), f"{study_number}: {event_id} signed by {sig['name']} at {sig['signed_at']} "
                     f"({sig['meaning']})")


@record_app.command("sign-course")
@domain_errors
def record_sign_course(
    study_number: StudyArg,
    course: Annotated[int, typer.Option("--course", min=1, max=100, help="Course number.")],
    by: UserOpt,
    password: PasswordOpt,
    reason: ReasonOpt = "course doses signed off",
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Sign off all the computed doses of a course with one e-signature (bound to them all)."""
    from trialdesk.services import course_signoff

    ctx = open_services(data_dir, database)
    sig = course_signoff.sign_course(ctx, acting(ctx, by), study_number, course,
                                     password=password, reason=reason_given(reason))
    _say(_console(), f"{study_number}: course {course} ({len(sig['doses'])} doses) signed by "
                     f"{sig['name']} at {sig['signed_at']} ({sig['meaning']})")
