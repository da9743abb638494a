"""The patient journey: consent, enrol, randomise, randomisation, calendar, record, safety apply."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from trialdesk.cli.common import (
    _DEFAULT_DATA,
    DataOpt,
    ProtocolsOpt,
    _console,
    _protocols,
    _say,
    _trial,
    app,
    domain_errors,
    parse_moment,
    read_patient_file,
)
from trialdesk.cli.safety import _safety_file, safety_app
from trialdesk.errors import NotFoundError

# --------------------------------------------------------------------------- patient journey
# Consent, enrolment, randomisation and the treatment calendar, on journey files
# (trialdesk.journal): one JSON file per patient and trial under --data.

record_app = typer.Typer(help="Record what happened: calendar start, weight/height, events, "
                              "course delays.", no_args_is_help=True)
randomisation_app = typer.Typer(help="Sealed allocation lists: generate and verify.",
                                no_args_is_help=True)
app.add_typer(record_app, name="record")
app.add_typer(randomisation_app, name="randomisation")

JTrialOpt = Annotated[str, typer.Option("--trial", help="Trial id, e.g. NB-NK-2026.")]
ByOpt = Annotated[str, typer.Option("--by", help="Who records it (name or role).")]


def _store(data: Path) -> Any:
    from trialdesk.journal import JournalStore

    return JournalStore(data)


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise typer.BadParameter(f"'{item}' is not name=value", param_hint=option)
        out[name.strip()] = value.strip()
    return out


def _date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"'{text}' is not an ISO date (YYYY-MM-DD)",
                                 param_hint=option) from None


def _aware(text: str | None, option: str) -> datetime:
    """An ISO date-time with the local timezone when none is given; default now."""
    if text is None:
        return datetime.now().astimezone().replace(second=0, microsecond=0)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"'{text}' is not an ISO date-time", param_hint=option) from None
    return moment if moment.tzinfo else moment.astimezone()


def _moment(text: str | None, option: str) -> datetime:
    """An ISO date or date-time as local time without zone (``--on``, ``--at``)."""
    try:
        return parse_moment(text)
    except typer.BadParameter:
        raise typer.BadParameter(f"'{text}' is not an ISO date or date-time",
                                 param_hint=option) from None


def _build(model: Any, where: str, **fields: Any) -> Any:
    """Construct a record; a field pydantic refuses becomes one line naming it."""
    from pydantic import ValidationError

    from trialdesk.errors import ScheduleError

    try:
        return model(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise ScheduleError(str(err["msg"]), where=f"{where}.{loc}" if loc else where) from None


def _patient(path: Path) -> Any:
    from trialdesk.facts.patient import patient_from_data

    return patient_from_data(read_patient_file(path), today=date.today(), source=str(path))


@app.command()
@domain_errors
def consent(
    patient: Annotated[Path, typer.Argument(help="Patient file (JSON).")],
    trial: JTrialOpt,
    version: Annotated[str, typer.Option("--version", help="Consent form version.")],
    signed_on: Annotated[str, typer.Option("--signed-on", help="Date signed (ISO).")],
    signed_by: Annotated[str, typer.Option(
        "--signed-by", help="patient, parent, guardian or legal_representative.")],
    by: ByOpt,
    assent: Annotated[bool | None, typer.Option(
        "--assent/--no-assent", help="The child's assent (minors only).")] = None,
    on: Annotated[str | None, typer.Option("--on", help="When recorded (default now).")] = None,
    data: DataOpt = _DEFAULT_DATA,
    protocols: ProtocolsOpt = None,
) -> None:
    """Record a signed informed consent (version, date, who signed, the child's assent)."""
    from trialdesk.enrolment.consent import record_consent
    from trialdesk.enrolment.journey import Journey

    p = _trial(_protocols(protocols), trial).protocol
    record = _patient(patient)
    store = _store(data)
    journey = store.load_journey(p.id, record.patient_id) or Journey(
        trial_id=p.id, patient_id=record.patient_id)
    signed = record_consent(
        p.consent, trial_id=p.id, patient_id=record.patient_id, birth_date=record.birth_date,
        version=version, signed_on=_date(signed_on, "--signed-on"), signed_by=signed_by,
        assent=assent, recorded_by=by, recorded_at=_moment(on, "--on"))
    store.save_journey(journey.with_consent(signed))
    console = _console()
    _say(console, f"{p.id}: consent v{signed.version} signed {signed.signed_on.isoformat()} by "
                  f"{signed.signed_by.value} recorded for {record.patient_id} (age "
                  f"{signed.age_years})")
    for note in signed.notes:
        _say(console, f"  {note}", "yellow")


def _anchors_from(record: Any, names: set[str]) -> dict[str, datetime]:
    """Anchor times a protocol counts from, as the patient file records them."""
    out: dict[str, datetime] = {}
    for entry in sorted(record.disease_status, key=lambda s: s.date):
        for name in names:
            value = getattr(entry, name, None)
            if isinstance(value, datetime):
                out[name] = value.replace(tzinfo=None)
    return out


def _body_from(record: Any, source: str) -> list[Any]:
    from trialdesk.facts.patient import canonical_value
    from trialdesk.schedule.dose import BodyMeasurement

    found: dict[date, dict[str, float]] = {}
    for i, obs in enumerate(record.observations):
        if obs.name in ("weight", "height"):
            value = canonical_value(obs.name, obs.value, obs.unit,
                                    where=f"{source}: $.observations[{i}].unit")
            found.setdefault(obs.date, {})[f"{obs.name}_{'kg' if obs.name == 'weight' else 'cm'}"] \
                = value
    return [BodyMeasurement(on=day, source=source, **values) for day, values in sorted(found.items())]


@app.command()
@domain_errors
def enrol(
    patient: Annotated[Path, typer.Argument(help="Patient file (JSON).")],
    trial: JTrialOpt,
    by: ByOpt,
    on: Annotated[str | None, typer.Option("--on", help="Enrolment date-time (default now).")] = None,
    start: Annotated[str | None, typer.Option("--start", help="Calendar day 1 (ISO date).")] = None,
    override_by: Annotated[str | None, typer.Option(
        "--override-by", help="Investigator who enrols despite the screening verdict.")] = None,
    override_reason: Annotated[str | None, typer.Option(
        "--override-reason", help="Why (kept and shown with the enrolment).")] = None,
    override_arm: Annotated[str | None, typer.Option(
        "--override-arm", help="Arm, only when the protocol's rule cannot assign one.")] = None,
    variant: Annotated[list[str] | None, typer.Option(
        "--variant", help="A protocol variant, name=choice (e.g. infusion=STI).")] = None,
    with_agent: Annotated[list[str] | None, typer.Option(
        "--with", help="Include an optional agent (e.g. interleukin-2).")] = None,
    anchor: Annotated[list[str] | None, typer.Option(
        "--anchor", help="A clinical time, name=ISO date-time (default: the patient file).")] = None,
    data: DataOpt = _DEFAULT_DATA,
    protocols: ProtocolsOpt = None,
) -> None:
    """Enrol a consented patient: screen now, freeze the result, assign the arm by rule."""
    from trialdesk.criteria.verdict import screen_record
    from trialdesk.enrolment.enrol import Override
    from trialdesk.enrolment.enrol import enrol as enrol_patient
    from trialdesk.enrolment.journey import journey_calendar
    from trialdesk.facts.patient import Consent
    from trialdesk.protocol.model import TimedStep

    compiled = _trial(_protocols(protocols), trial)
    p = compiled.protocol
    record = _patient(patient)
    store = _store(data)
    journey = store.load_journey(p.id, record.patient_id)
    if journey is None or journey.consent is None:
        raise NotFoundError(f"no consent recorded for {record.patient_id} in {p.id}; run "
                            "'trialdesk consent' first")
    if journey.enrolment is not None:
        journey.with_enrolment(journey.enrolment)  # refuses: already enrolled
    moment = _moment(on, "--on")
    signed = journey.consent
    # Screen with the recorded consent, so the consent criterion sees it.
    consents = [c for c in record.consents if c.trial_id != p.id] + [Consent(
        trial_id=p.id, signed=True, date=signed.signed_on, version=signed.version,
        signed_by=signed.signed_by.value)]
    record = record.model_copy(update={"consents": consents})
    screening = screen_record(compiled, record, as_of=moment)
    if override_by or override_reason or override_arm:
        if not (override_by and override_reason):
            raise typer.BadParameter("an override needs --override-by and --override-reason",
                                     param_hint="--override-by")
        override = Override(investigator=override_by, reason=override_reason, arm=override_arm)
    else:
        override = None
    names = {s.anchor for a in p.arms for s in a.plan if isinstance(s, TimedStep)}
    anchors = _anchors_from(record, names) | {
        k: _moment(v, "--anchor") for k, v in _pairs(anchor, "--anchor").items()}
    enrolment = enrol_patient(
        p, screening, signed, enrolled_at=moment, enrolled_by=by, override=override,
        variants=_pairs(variant, "--variant"), optional=with_agent or [], anchors=anchors)
    updated = journey.with_enrolment(enrolment, _date(start, "--start") if start else None)
    known = set(updated.body)
    for m in _body_from(record, str(patient)):
        if m not in known:
            updated = updated.with_body(m)
    if updated.start is not None and updated.arm is not None:
        journey_calendar(p, updated)  # the calendar must lay out before anything is stored
    store.save_journey(updated)
    console = _console()
    for line in updated.header():
        _say(console, f"{p.id} {record.patient_id}: {line}",
             "bold magenta" if line.startswith("ENROLLED BY OVERRIDE") else None)
    if updated.arm is None:
        _say(console, f"next: trialdesk randomise {record.patient_id} --trial {p.id}")


@randomisation_app.command("generate")
@domain_errors
def randomisation_generate(
    trial: Annotated[str, typer.Argument(help="Trial id, e.g. RuMCeSS.")],
    seed: Annotated[int, typer.Option("--seed", help="The recorded seed (keep it secret).")],
    size: Annotated[int | None, typer.Option(
        "--size", help="Entries per stratum (default: the registry's enrolment count).")] = None,
    data: DataOpt = _DEFAULT_DATA,
    protocols: ProtocolsOpt = None,
) -> None:
    """Generate and seal the allocation list from a seed; print its digest, never its entries."""
    from trialdesk.enrolment.enrol import scheme_of
    from trialdesk.enrolment.randomisation import generate_list

    p = _trial(_protocols(protocols), trial).protocol
    scheme = scheme_of(p)
    if size is None:
        enrollment = p.registry.design.enrollment
        if enrollment is None or enrollment.count < 1:
            raise typer.BadParameter("the registry gives no enrolment count; give --size",
                                     param_hint="--size")
        size = enrollment.count
    lst = generate_list(scheme, seed, size)
    path = _store(data).save_new_list(p.id, lst)
    strata = len({e.stratum for e in lst.entries}) or 1
    _say(_console(), f"{p.id} randomisation {scheme.id}: list generated from the seed, "
                     f"{len(lst.entries)} entries in {strata} stratum/strata, sha256 {lst.digest}; "
                     f"written to {path} (readable by its owner only; keep it concealed)")


@randomisation_app.command("verify")
@domain_errors
def randomisation_verify(
    trial: Annotated[str, typer.Argument(help="Trial id, e.g. RuMCeSS.")],
    data: DataOpt = _DEFAULT_DATA,
    protocols: ProtocolsOpt = None,
) -> None:
    """Check the list (digest, regenerated from its seed) and every allocation made; exit 1 on any problem."""
    from trialdesk.enrolment.allocation import verify_allocations
    from trialdesk.enrolment.enrol import randomisation_of

    p = _trial(_protocols(protocols), trial).protocol
    r = randomisation_of(p)
    if r is None:
        raise NotFoundError(f"{p.id} assigns arms by rule; it has no randomisation")
    store = _store(data)
    lst = store.load_list(p.id, r.id)
    log = store.load_log(p.id, r.id, lst.digest)
    report = verify_allocations(lst, log.allocations)
    console = _console()
    _say(console, f"{p.id} randomisation {r.id}: list sha256 {lst.digest}; "
                  f"{report.entries_checked} entries, {report.allocations_checked} allocations "
                  "checked")
    if report.ok:
        _say(console, "OK: the list is the one generated from its seed, and every allocation "
                      "matches it", "green")
        return
    allocated = {(a.stratum, a.sequence) for a in log.allocations}
    for d in report.discrepancies:
        problem = d.problem
        if d.patient_id is None and d.sequence is not None and (d.stratum, d.sequence) \
                not in allocated:
            problem = problem.split(":")[0]  # an entry not yet allocated stays concealed
        where = " ".join(x for x in (
            f"patient {d.patient_id}" if d.patient_id else "",
            f"stratum {d.stratum}" if d.stratum else "",
            f"entry {d.sequence}" if d.sequence else "") if x)
        _say(console, f"problem: {where + ': ' if where else ''}{problem}", "bold red")
    raise typer.Exit(1)


@app.command()
@domain_errors
def randomise(
    patient_id: Annotated[str, typer.Argument(help="Patient id.")],
    trial: JTrialOpt,
    factor: Annotated[list[str] | None, typer.Option(
        "--factor", help="Stratification factor, name=level (single-level factors are filled in).")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Time of randomisation (default now).")] = None,
    data: DataOpt = _DEFAULT_DATA,
    protocols: ProtocolsOpt = None,
) -> None:
    """Randomise an enrolled patient: reveal one allocation from the sealed list and log it."""
    from trialdesk.enrolment.enrol import allocate, randomisation_of
    from trialdesk.errors import EnrolmentError
    from trialdesk.journal import AllocationLog

    p = _trial(_protocols(protocols), trial).protocol
    r = randomisation_of(p)
    if r is None:
        raise EnrolmentError(f"{p.id} assigns arms by rule, not by randomisation",
                             where=f"patient {patient_id}")
    store = _store(data)
    journey = store.load_journey(p.id, patient_id)
    if journey is None or journey.enrolment is None:
        raise EnrolmentError(f"is not enrolled in {p.id}; enrol before randomising",
                             where=f"patient {patient_id}")
    with store.locked(p.id, r.id):
        lst = store.load_list(p.id, r.id)
        log = store.load_log(p.id, r.id, lst.digest)
        if journey.allocation is None and any(a.patient_id == patient_id for a in log.allocations):
            raise EnrolmentError("is already in the allocation log; run 'trialdesk randomisation "
                                 "verify'", where=f"patient {patient_id}")
        allocation = allocate(lst, log.allocations, patient_id=patient_id,
                              factors=_pairs(factor, "--factor"), enrolled=True,
                              at=_aware(at, "--at"))
        updated = journey.with_allocation(allocation)
        store.save_log(p.id, r.id, AllocationLog(list_digest=lst.digest,
                                                 allocations=(*log.allocations, allocation)))
        store.save_journey(updated)
    _say(_console(), f"{p.id} {patient_id}: randomised to arm {allocation.arm} "
                     f"({p.arm(allocation.arm).label}); stratum {allocation.stratum}, "
                     f"allocation {allocation.sequence}, list sha256 {allocation.list_digest[:12]}")


@app.command()
@domain_errors
def calendar(
    patient_id: Annotated[str, typer.Argument(help="Patient id.")],
    trial: JTrialOpt,
    start: Annotated[str | None, typer.Option(
        "--start", help="Day 1, when the journey has no start yet (not stored).")] = None,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Statuses as of this date or date-time (default now).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON document.")] = False,
    ics: Annotated[Path | None, typer.Option("--ics", help="Also write an iCalendar file.")] = None,
    data: DataOpt = _DEFAULT_DATA,
    protocols: ProtocolsOpt = None,
) -> None:
    """The patient's treatment calendar: every event with its date, window, dose and status."""
    from dataclasses import replace

    from trialdesk.enrolment.journey import journey_calendar
    from trialdesk.journal import atomic_write
    from trialdesk.schedule.export import to_ics, to_json_text
    from trialdesk.schedule.render import calendar_view

    p = _trial(_protocols(protocols), trial).protocol
    journey = _store(data).require_journey(p.id, patient_id)
    moment = _moment(as_of, "--as-of")
    cal = journey_calendar(p, journey, moment, start=_date(start, "--start") if start else None)
    notes = list(journey.header())
    if journey.enrolment is not None and journey.enrolment.protocol_version != p.version:
        notes.append(f"enrolled under protocol v{journey.enrolment.protocol_version}; the "
                     f"calendar uses v{p.version}")
    cal = replace(cal, notes=tuple(notes))
    if ics is not None:
        atomic_write(ics, to_ics(cal, _aware(None, "--ics")))
    if as_json:
        typer.echo(to_json_text(cal))
        return
    # The calendar is a wide table: 160 columns when the output is not a terminal.
    Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160).print(calendar_view(cal))
    if ics is not None:
        _say(_console(), f"iCalendar written to {ics}")


def _journey_for(store: Any, trial_id: str, patient_id: str) -> Any:
    from trialdesk.errors import EnrolmentError

    journey = store.require_journey(trial_id, patient_id)
    if journey.enrolment is None:
        raise EnrolmentError(f"is not enrolled in {trial_id}", where=f"patient {patient_id}")
    return journey


@record_app.command("start")
@domain_errors
def record_start(
    patient_id: Annotated[str, typer.Argument(help="Patient id.")],
    trial: JTrialOpt,
    on: Annotated[str, typer.Option("--on", help="Day 1 of the calendar (ISO date).")],
    data: DataOpt = _DEFAULT_DATA,
    protocols: ProtocolsOpt = None,
) -> None:
    """Set the calendar's start (day 1); not before consent."""
    from trialdesk.enrolment.journey import journey_calendar

    p = _trial(_protocols(protocols), trial).protocol
    store = _store(data)
    updated = _journey_for(store, p.id, patient_id).with_start(_date(on, "--on"))
    if updated.arm is not None:
        journey_calendar(p, updated)
    store.save_journey(updated)
    _say(_console(), f"{p.id} {patient_id}: calendar starts {updated.start}")


@record_app.command("body")
@domain_errors
def record_body(
    patient_id: Annotated[str, typer.Argument(help="Patient id.")],
    trial: JTrialOpt,
    on: Annotated[str, typer.Option("--on", help="Date measured (ISO).")],
    weight: Annotated[float | None, typer.Option("--weight", help="Weight in kg.")] = None,
    height: Annotated[float | None, typer.Option("--height", help="Height in cm.")] = None,
    data: DataOpt = _DEFAULT_DATA,
    protocols: ProtocolsOpt = None,
) -> None:
    """Record a weight and/or height; later courses are recomputed past the protocol's threshold."""
    from trialdesk.schedule.dose import BodyMeasurement

    p = _trial(_protocols(protocols), trial).protocol
    store = _store(data)
    journey = _journey_for(store, p.id, patient_id)
    measured = _build(BodyMeasurement, "body", on=_date(on, "--on"), weight_kg=weight,
                      height_cm=height, source="recorded")
    store.save_journey(journey.with_body(measured))
    parts = [f"{weight:g} kg" if weight is not None else "", f"{height:g} cm" if height else ""]
    _say(_console(), f"{p.id} {patient_id}: {' '.join(x for x in parts if x)} on {measured.on}")


@record_app.command("event")
@domain_errors
def record_event(
    patient_id: Annotated[str, typer.Argument(help="Patient id.")],
    event_id: Annotated[str, typer.Argument(help="Event id from the calendar, e.g. c2.irinotecan.d1.")],
    trial: JTrialOpt,
    status: Annotated[str, typer.Option(
        "--status", help="given, partly_given, withheld, done, not_done, continue or stop.")],
    by: ByOpt,
    at: Annotated[str | None, typer.Option("--at", help="When (ISO date-time; default now).")] = None,
    dose: Annotated[float | None, typer.Option("--dose", help="Actual amount given that day.")] = None,
    unit: Annotated[str | None, typer.Option("--unit", help="Unit of --dose (default: the plan's).")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why withheld, not done or stopped.")] = None,
    data: DataOpt = _DEFAULT_DATA,
    protocols: ProtocolsOpt = None,
) -> None:
    """Record what happened to one calendar event (an administration, procedure, decision…)."""
    from trialdesk.enrolment.journey import journey_calendar
    from trialdesk.schedule.records import EventRecord, RecordStatus

    p = _trial(_protocols(protocols), trial).protocol
    store = _store(data)
    journey = _journey_for(store, p.id, patient_id)
    if status not in {s.value for s in RecordStatus}:
        raise typer.BadParameter(f"choose one of {', '.join(s.value for s in RecordStatus)}",
                                 param_hint="--status")
    event = journey_calendar(p, journey).event(event_id)
    if dose is not None and unit is None and event.dose is not None:
        unit = event.dose.unit
    now = datetime.now().replace(second=0, microsecond=0)
    record = _build(EventRecord, "record", event_id=event_id, status=RecordStatus(status),
                    at=_moment(at, "--at") if at else now, by=by, amount=dose, unit=unit,
                    reason=reason, recorded_at=now)
    store.save_journey(journey.with_record(p, record))
    _say(_console(), f"{p.id} {patient_id}: {event_id} ({event.name}) recorded {status}")


@record_app.command("delay")
@domain_errors
def record_delay(
    patient_id: Annotated[str, typer.Argument(help="Patient id.")],
    trial: JTrialOpt,
    course: Annotated[int, typer.Option("--course", help="Course number on the calendar.")],
    days: Annotated[int, typer.Option("--days", help="Days to postpone it.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (e.g. toxicity not recovered).")],
    by: ByOpt,
    on: Annotated[str | None, typer.Option("--on", help="Date decided (default today).")] = None,
    data: DataOpt = _DEFAULT_DATA,
    protocols: ProtocolsOpt = None,
) -> None:
    """Postpone a course that has not started; it and every later event move."""
    from trialdesk.schedule.records import CourseDelay

    p = _trial(_protocols(protocols), trial).protocol
    store = _store(data)
    journey = _journey_for(store, p.id, patient_id)
    delay = _build(CourseDelay, "delay", course=course, days=days, reason=reason, by=by,
                   recorded_on=_date(on, "--on") if on else date.today())
    store.save_journey(journey.with_delay(p, delay))
    _say(_console(), f"{p.id} {patient_id}: course {course} delayed {days} days ({reason})")


@safety_app.command("apply")
@domain_errors
def safety_apply_cmd(
    document: Annotated[Path, typer.Argument(help="Adverse-event document (JSON), as for `ae check`.")],
    trial: JTrialOpt,
    rule: Annotated[str, typer.Option("--rule", help="The triggered toxicity rule, e.g. NBNK-CLS-G4.")],
    confirmed_by: Annotated[str, typer.Option("--confirmed-by", help="The clinician who confirms.")],
    patient: Annotated[str | None, typer.Option(
        "--patient", help="Patient id (default: the document's patient_id).")] = None,
    accept_unconfirmed: Annotated[bool, typer.Option(
        "--accept-unconfirmed", help="Confirm a rule whose source is not confirmed.")] = False,
    days: Annotated[int | None, typer.Option("--days", help="Days to delay the course.")] = None,
    percent: Annotated[float | None, typer.Option(
        "--percent", help="Dose or rate percentage, when the rule sets none.")] = None,
    effective: Annotated[str | None, typer.Option(
        "--from", help="Day it takes effect (default: the triggering event's date, else the "
                       "confirmation day).")] = None,
    at: Annotated[str | None, typer.Option(
        "--at", help="When the clinician confirmed (ISO date-time; default now).")] = None,
    data: DataOpt = _DEFAULT_DATA,
    protocols: ProtocolsOpt = None,
) -> None:
    """Confirm a triggered toxicity rule's actions and apply them to the patient's calendar."""
    from trialdesk.enrolment.journey import journey_calendar
    from trialdesk.errors import SafetyError
    from trialdesk.safety.check import check_document
    from trialdesk.safety.rules import ActionKind
    from trialdesk.schedule.actions import rule_proposal

    p = _trial(_protocols(protocols), trial).protocol
    check = check_document(_safety_file(document), p, source=str(document))
    store = _store(data)
    journey = _journey_for(store, p.id, patient or check.patient_id)
    found = rule_proposal(check, p, rule)
    kinds = {a.kind for a in found.actions}
    if days is not None and ActionKind.DELAY_COURSE not in kinds:
        raise SafetyError(f"rule {rule} does not delay a course", where="days")
    if percent is not None and not kinds & {ActionKind.SLOW, ActionKind.REDUCE}:
        raise SafetyError(f"rule {rule} neither slows nor reduces", where="percent")
    now = datetime.now().replace(second=0, microsecond=0)
    when = _moment(at, "--at") if at else now
    start = _date(effective, "--from") if effective else (found.found_on or when.date())
    updated = journey
    for proposal in found.actions:
        if proposal.unconfirmed and not accept_unconfirmed:
            raise SafetyError(f"rule {rule} is not confirmed against its source "
                              f"({proposal.source}); give --accept-unconfirmed to confirm it "
                              "all the same", where="accept_unconfirmed")
        confirmed = proposal.confirm(confirmed_by, when, accept_unconfirmed=accept_unconfirmed)
        updated = updated.with_action(
            p, confirmed, trial_id=check.trial, patient_id=check.patient_id, effective=start,
            applied_at=now, days=days if proposal.kind is ActionKind.DELAY_COURSE else None,
            percent=percent if proposal.kind in (ActionKind.SLOW, ActionKind.REDUCE) else None,
            accept_unconfirmed=accept_unconfirmed)
    store.save_journey(updated)
    console = _console()
    cal = journey_calendar(p, updated)
    _say(console, f"{p.id} {updated.patient_id}: rule {rule} applied", "bold")
    for applied in updated.actions[len(journey.actions):]:
        _say(console, f"  {applied.shown()}")
        if applied.course_number is not None and applied.days is not None:
            moved = cal.event(f"c{applied.course_number}").date
            _say(console, f"    course {applied.course_number} now starts "
                          f"{moved.isoformat() if moved else '—'}; every later event moved")
        else:
            _say(console, f"    changed: {', '.join(applied.event_ids)}", "dim")
    for advice in found.advice:
        _say(console, f"  supportive care (advice, not on the calendar): {advice.advice}")
