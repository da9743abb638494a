"""Patients in the trial record: import and export patient files, list, screen, consent,
enrol (arm by rule or from the sealed randomisation list), and the randomisation list.

Every command works on the database `trialdesk serve` uses, as the user named by ``--by``,
through the same services (and so the same permission checks and audit trail) as the web.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from trialdesk.cli.common import (
    _console,
    _say,
    app,
    domain_errors,
    parse_moment,
    read_patient_file,
    write_atomic,
)
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

patients_app = typer.Typer(help="Patients of a trial: import and export patient files, list, "
                                "screen.", no_args_is_help=True)
randomisation_app = typer.Typer(help="Sealed allocation lists: generate and verify.",
                                no_args_is_help=True)
app.add_typer(patients_app, name="patients")
app.add_typer(randomisation_app, name="randomisation")

StudyArg = Annotated[str, typer.Argument(help="Study number, e.g. NBNK-0001.")]


def pairs(values: list[str] | None, option: str) -> dict[str, str]:
    """``name=value`` options as a dictionary."""
    out: dict[str, str] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise typer.BadParameter(f"'{item}' is not name=value", param_hint=option)
        out[name.strip()] = value.strip()
    return out


def iso_date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"'{text}' is not an ISO date (YYYY-MM-DD)",
                                 param_hint=option) from None


def iso_moment(text: str, option: str) -> datetime:
    """An ISO date (at 00:00) or date-time, without time zone."""
    try:
        return parse_moment(text)
    except typer.BadParameter:
        raise typer.BadParameter(f"'{text}' is not an ISO date or date-time",
                                 param_hint=option) from None


def _verdict_line(result: dict[str, Any]) -> str:
    text = f"{result.get('verdict', '?')}"
    if result.get("arm"):
        text += f", arm {result['arm']}"
    counts: dict[str, int] = {}
    for c in result.get("criteria", []):
        counts[c.get("outcome", "?")] = counts.get(c.get("outcome", "?"), 0) + 1
    shown = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    missing = result.get("missing_facts") or []
    return text + (f" ({shown})" if shown else "") + (
        f"; missing: {', '.join(missing)}" if missing else "")


# ---------------------------------------------------------------------------- patients


@patients_app.command("import")
@domain_errors
def patients_import(
    files: Annotated[list[Path], typer.Argument(help="Patient files (JSON).")],
    trial: Annotated[str, typer.Option("--trial", help="Trial id, e.g. NB-NK-2026.")],
    site: Annotated[str, typer.Option("--site", help="The patient's site, e.g. Moscow.")],
    by: UserOpt,
    reason: ReasonOpt = "imported from a patient file",
    name: Annotated[str | None, typer.Option(
        "--name", help="The patient's name (one file only).")] = None,
    hospital_number: Annotated[str | None, typer.Option(
        "--hospital-number", help="The hospital number (one file only).")] = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Register patients from patient files (validated first); prints each study number."""
    from trialdesk.facts.patient import patient_from_data
    from trialdesk.services import patients

    if (name or hospital_number) and len(files) != 1:
        raise typer.BadParameter("give --name and --hospital-number with one file only",
                                 param_hint="--name")
    ctx = open_services(data_dir, database)
    who = acting(ctx, by)
    today = ctx.store.now().date()
    records = [(f, patient_from_data(read_patient_file(f), today=today, source=str(f)))
               for f in files]  # every file is valid before anything is stored
    console = _console()
    for path, record in records:
        row = patients.create_patient(
            ctx, who, trial_id=trial, site=site, record=record,
            identifiers={"name": name or "", "hospital_number": hospital_number or ""},
            reason=reason_given(reason))
        _say(console, f"{path.name}: registered as {row.study_number} in {row.trial_id} "
                      f"({row.site})")


@patients_app.command("list")
@domain_errors
def patients_list(
    by: UserOpt,
    trial: Annotated[str | None, typer.Option("--trial", help="Only this trial.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON document.")] = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """The patients of your trials: study number, site, latest verdict, arm."""
    from rich.table import Table

    from trialdesk.services import patients

    ctx = open_services(data_dir, database)
    page = patients.list_patients(ctx, acting(ctx, by), trial_id=trial, offset=0,
                                  limit=1_000_000)
    if as_json:
        typer.echo(json.dumps(page, indent=2, default=str))
        return
    table = Table("study number", "trial", "site", "latest verdict", "arm", "name")
    for p in page["items"]:
        table.add_row(p["study_number"], p["trial_id"], p["site"], p["latest_verdict"] or "—",
                      p["enrolled_arm"] or ("enrolled" if p["enrolled"] else "—"),
                      (p.get("identifiers") or {}).get("name") or "")
    _console().print(table)


@patients_app.command("export")
@domain_errors
def patients_export(
    study_number: StudyArg,
    by: UserOpt,
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file.")] = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """The stored patient record as a patient file (JSON)."""
    from trialdesk.services import patients
    from trialdesk.services.masking import mask_for

    ctx = open_services(data_dir, database)
    who = acting(ctx, by)
    row = patients.load_patient(ctx, who, study_number)
    # The birth date only for the roles that see identifiers (the one masking rule).
    text = mask_for(ctx, who).text(json.dumps(row.record, indent=2, ensure_ascii=False) + "\n")
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_atomic(out, text.encode())
        _say(_console(), f"{study_number}: written to {out}")


@patients_app.command("screen")
@domain_errors
def patients_screen(
    study_number: StudyArg,
    by: UserOpt,
    reason: ReasonOpt = "screening",
    on: Annotated[str | None, typer.Option("--on", help="Screening moment (default now).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the screening document.")] = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Screen a stored patient against the trial's current protocol and keep the result."""
    from trialdesk.services import patients
    from trialdesk.services.masking import mask_for

    ctx = open_services(data_dir, database)
    who = acting(ctx, by)
    sc = patients.screen_patient(ctx, who, study_number,
                                 as_of=iso_moment(on, "--on") if on else None,
                                 reason=reason_given(reason))
    if as_json:
        typer.echo(mask_for(ctx, who).text(json.dumps(sc, indent=2, default=str)))
        return
    console = _console()
    _say(console, f"{study_number}: screening {sc['id']}: {_verdict_line(sc['result'])}")
    for hint in sc["hints"]:
        _say(console, f"  to resolve {hint['fact']}: record {hint['record']} ({hint['reason']})",
             "yellow")


# ---------------------------------------------------------------------------- consent, enrolment


@app.command()
@domain_errors
def consent(
    study_number: StudyArg,
    version: Annotated[str, typer.Option("--version", help="Consent form version.")],
    signed_on: Annotated[str, typer.Option("--signed-on", help="Date signed (ISO).")],
    signed_by: Annotated[str, typer.Option(
        "--signed-by", help="patient, parent, guardian or legal_representative.")],
    by: UserOpt,
    assent: Annotated[bool | None, typer.Option(
        "--assent/--no-assent", help="The child's assent (minors only).")] = None,
    reason: ReasonOpt = "signed consent recorded",
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Record a signed informed consent (version, date, who signed, the child's assent)."""
    from trialdesk.services import journeys

    ctx = open_services(data_dir, database)
    signed = journeys.record_consent(
        ctx, acting(ctx, by), study_number, version=version,
        signed_on=iso_date(signed_on, "--signed-on"), signed_by=signed_by, assent=assent,
        reason=reason_given(reason))
    console = _console()
    _say(console, f"{study_number}: consent v{signed['version']} signed {signed['signed_on']} by "
                  f"{signed['signed_by']} recorded (age {signed['age_years']})")
    for note in signed["notes"]:
        _say(console, f"  {note}", "yellow")


@app.command()
@domain_errors
def enrol(
    study_number: StudyArg,
    by: UserOpt,
    password: PasswordOpt,
    reason: ReasonOpt = "eligibility confirmed, enrolled",
    on: Annotated[str | None, typer.Option(
        "--on", help="Screening moment for the enrolment (default now).")] = None,
    start: Annotated[str | None, typer.Option("--start", help="Calendar day 1 (ISO date).")] = None,
    override_reason: Annotated[str | None, typer.Option(
        "--override-reason", help="Enrol despite the screening verdict: why (you sign it).")] = None,
    override_arm: Annotated[str | None, typer.Option(
        "--override-arm", help="Arm, only with an override when the rule cannot assign one.")] = None,
    variant: Annotated[list[str] | None, typer.Option(
        "--variant", help="A protocol variant, name=choice (e.g. infusion=STI).")] = None,
    with_agent: Annotated[list[str] | None, typer.Option(
        "--with", help="Include an optional agent (e.g. interleukin-2).")] = None,
    anchor: Annotated[list[str] | None, typer.Option(
        "--anchor", help="A clinical time, name=ISO date-time (default: the patient record).")] = None,
    factor: Annotated[list[str] | None, typer.Option(
        "--factor", help="Stratification factor, name=level (randomised trials).")] = None,
    screening: Annotated[int | None, typer.Option(
        "--screening", min=1, help="Confirm this stored screening (the one you reviewed) "
        "instead of screening now; refused when the record changed after it.")] = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Screen now (or take the reviewed ``--screening``), confirm eligibility with your
    e-signature, and enrol: the arm by the protocol's rule, or the next entry of the sealed
    randomisation list."""
    from trialdesk.services import journeys, patients

    ctx = open_services(data_dir, database)
    who = acting(ctx, by)
    why = reason_given(reason)
    console = _console()
    if screening is not None and on:
        from trialdesk.errors import EnrolmentError

        raise EnrolmentError("give --on (screen now at that moment) or --screening (a stored "
                             "screening), not both", where="--screening")
    if screening is None:
        sc = patients.screen_patient(ctx, who, study_number,
                                     as_of=iso_moment(on, "--on") if on else None, reason=why)
        _say(console, f"{study_number}: screening {sc['id']}: {_verdict_line(sc['result'])}")
        screening = int(sc["id"])
    journeys.enrol_patient(
        ctx, who, study_number, screening_id=screening, password=password, reason=why,
        start=iso_date(start, "--start") if start else None, override_reason=override_reason,
        override_arm=override_arm, variants=pairs(variant, "--variant"),
        optional=with_agent or [],
        anchors={k: iso_moment(v, "--anchor") for k, v in pairs(anchor, "--anchor").items()},
        factors=pairs(factor, "--factor"))
    summary = journeys.journey_summary(ctx, who, patients.load_patient(ctx, who, study_number))
    for line in summary["journey"]["header"]:
        _say(console, f"{study_number}: {line}",
             "bold magenta" if line.startswith("ENROLLED BY OVERRIDE") else None)


@app.command()
@domain_errors
def randomise(
    study_number: StudyArg,
    by: UserOpt,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """A randomised patient's allocation: arm, stratum, entry and the sealed list's digest.

    The allocation is made by `trialdesk enrol`, in the enrolment's own transaction, from the
    next entry of the sealed list; it is never made twice."""
    from trialdesk.errors import EnrolmentError
    from trialdesk.services import journeys, patients

    ctx = open_services(data_dir, database)
    who = acting(ctx, by)
    row = patients.load_patient(ctx, who, study_number)
    summary = journeys.journey_summary(ctx, who, row)
    journey = summary["journey"]
    if journey is None:
        raise EnrolmentError("is not enrolled; `trialdesk enrol` randomises a randomised trial's "
                             "patient", where=f"patient {study_number}")
    allocation = journey["allocation"]
    if allocation is None:
        raise EnrolmentError(f"was assigned arm {journey['arm']} by the protocol's rule, not by "
                             "randomisation", where=f"patient {study_number}")
    _say(_console(), f"{study_number}: randomised to arm {allocation['arm']} at "
                     f"{allocation['allocated_at']}; stratum {allocation['stratum']}, allocation "
                     f"{allocation['sequence']}, list sha256 {allocation['list_digest'][:12]}")


@randomisation_app.command("generate")
@domain_errors
def randomisation_generate(
    trial: Annotated[str, typer.Argument(help="Trial id, e.g. RuMCeSS.")],
    by: UserOpt,
    seed: Annotated[int | None, typer.Option(
        "--seed", help="The recorded seed (keep it secret; default a random one).")] = None,
    size: Annotated[int | None, typer.Option(
        "--size", help="Entries per stratum (default: the registry's enrolment count).")] = None,
    reason: ReasonOpt = "sealed allocation list generated",
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Generate and seal the allocation list; print its digest, never its entries."""
    from trialdesk.services import journeys

    ctx = open_services(data_dir, database)
    made = journeys.generate_allocation_list(ctx, acting(ctx, by), trial, seed=seed, size=size,
                                             reason=reason_given(reason))
    _say(_console(), f"{made['trial_id']} randomisation {made['randomisation_id']}: list sealed, "
                     f"{made['entries']} entries, sha256 {made['digest']} (its entries stay in "
                     "the database and are revealed one at a time at enrolment)")


@randomisation_app.command("verify")
@domain_errors
def randomisation_verify(
    trial: Annotated[str, typer.Argument(help="Trial id, e.g. RuMCeSS.")],
    by: UserOpt,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Check the list (digest, regenerated from its seed) and every allocation made; exit 1 on
    any problem."""
    from trialdesk.errors import NotFoundError
    from trialdesk.services import journeys

    ctx = open_services(data_dir, database)
    status = journeys.randomisation_status(ctx, acting(ctx, by), trial)
    if not status["randomised"]:
        raise NotFoundError(f"{trial} assigns arms by rule; it has no randomisation")
    if status["list"] is None:
        raise NotFoundError(f"{trial} has no sealed list yet; run `trialdesk randomisation "
                            "generate`")
    lst = status["list"]
    console = _console()
    _say(console, f"{trial} randomisation {status['randomisation_id']}: list sha256 "
                  f"{lst['digest']}; {lst['entries']} entries, {lst['allocated']} allocated")
    if status["verified"]:
        _say(console, "OK: the list is the one generated from its seed, and every allocation "
                      "matches it", "green")
        return
    for problem in status["problems"]:
        _say(console, f"problem: {problem}", "bold red")
    raise typer.Exit(1)
