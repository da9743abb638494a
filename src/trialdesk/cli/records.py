"""Safety and response on the trial record: adverse events (CTCAE v5.0, graded from the lab
when one is given) with the protocol's proposed actions, a clinician's confirmation that
applies an action to the calendar, response assessments and follow-up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from trialdesk.cli.common import _console, _say, domain_errors, read_patient_file
from trialdesk.cli.patients import StudyArg, iso_date, pairs
from trialdesk.cli.safety import ae_app, response_app, safety_app
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

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON document.")]


def _show_event(ae: dict[str, Any]) -> None:
    console = _console()
    course = f"course {ae['course_number']}" if ae["course_number"] else "outside any course"
    _say(console, f"adverse event {ae['id']}: {ae['term']} grade {ae['grade']}, onset "
                  f"{ae['onset']} ({course})", "bold")
    reporting = ae.get("reporting") or {}
    if reporting.get("expedited"):
        _say(console, f"  expedited report due {reporting.get('due')} "
                      f"({reporting.get('basis', '')})", "bold red")
    for a in ae["actions"]:
        mark = " [unconfirmed]" if a["unconfirmed"] else ""
        _say(console, f"  action {a['id']} ({a['status']}): {a['shown']}{mark}",
             "yellow" if a["status"] == "proposed" else None)


@ae_app.command("record")
@domain_errors
def ae_record(
    study_number: StudyArg,
    by: UserOpt,
    term: Annotated[str | None, typer.Option("--term", help="CTCAE v5.0 term.")] = None,
    grade: Annotated[int | None, typer.Option("--grade", help="CTCAE grade 1-5.")] = None,
    onset: Annotated[str | None, typer.Option("--onset", help="Onset date (ISO).")] = None,
    resolution: Annotated[str | None, typer.Option("--resolution", help="Resolved on (ISO).")] = None,
    serious: Annotated[list[str] | None, typer.Option(
        "--serious", help="Seriousness criterion (ICH E2A), e.g. hospitalisation (repeatable).")] = None,
    attribution: Annotated[list[str] | None, typer.Option(
        "--attribution", help="agent=relation, e.g. dinutuximab beta=probable (repeatable).")] = None,
    course: Annotated[int | None, typer.Option(
        "--course", help="Course number (default: the course whose dates hold the onset).")] = None,
    lab_value: Annotated[float | None, typer.Option("--lab-value", help="Lab value to grade.")] = None,
    lab_unit: Annotated[str | None, typer.Option("--lab-unit", help="Its unit.")] = None,
    lln: Annotated[float | None, typer.Option("--lln", help="The lab's lower limit of normal.")] = None,
    uln: Annotated[float | None, typer.Option("--uln", help="The lab's upper limit of normal.")] = None,
    baseline: Annotated[float | None, typer.Option("--baseline", help="Baseline value.")] = None,
    anticoagulation: Annotated[bool | None, typer.Option(
        "--anticoagulation/--no-anticoagulation", help="On anticoagulation (INR).")] = None,
    reason: ReasonOpt = "adverse event recorded",
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Record an adverse event; the protocol's toxicity rules propose their actions."""
    from trialdesk.services import safety

    if onset is None:
        raise typer.BadParameter("give the onset date", param_hint="--onset")
    event: dict[str, Any] = {
        "term": term, "grade": grade, "onset": iso_date(onset, "--onset").isoformat(),
        "resolution": iso_date(resolution, "--resolution").isoformat() if resolution else None,
        "seriousness": serious or [],
        "attributions": [{"agent": a, "attribution": r}
                         for a, r in pairs(attribution, "--attribution").items()]}
    lab = None
    if lab_value is not None:
        if not (term and lab_unit):
            raise typer.BadParameter("a lab value needs --term and --lab-unit",
                                     param_hint="--lab-value")
        lab = {"term": term, "value": lab_value, "unit": lab_unit, "lln": lln, "uln": uln,
               "baseline": baseline, "anticoagulation": anticoagulation}
    ctx = open_services(data_dir, database)
    ae = safety.record_adverse_event(ctx, acting(ctx, by), study_number, event=event, lab=lab,
                                     course_number=course, reason=reason_given(reason))
    if as_json:
        typer.echo(json.dumps(ae, indent=2, default=str))
        return
    _show_event(ae)


@ae_app.command("list")
@domain_errors
def ae_list(
    study_number: StudyArg,
    by: UserOpt,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """The patient's adverse events with their proposed and confirmed actions, and the
    actions proposed for cell products that were not released."""
    from trialdesk.services import safety

    ctx = open_services(data_dir, database)
    page = safety.adverse_events_page(ctx, acting(ctx, by), study_number)
    if as_json:
        typer.echo(json.dumps(page["items"], indent=2, default=str))
        return
    if not page["items"]:
        _say(_console(), f"{study_number}: no adverse events recorded")
    for ae in page["items"]:
        _show_event(ae)
    for a in page["product_actions"]:
        mark = " [unconfirmed]" if a["unconfirmed"] else ""
        _say(_console(), f"cell product {a['product']} not released: action {a['id']} "
                         f"({a['status']}): {a['shown']}{mark}",
             "yellow" if a["status"] == "proposed" else None)


@safety_app.command("apply")
@domain_errors
def safety_apply(
    study_number: StudyArg,
    action: Annotated[int, typer.Argument(help="The proposed action's number (`trialdesk ae list`).")],
    by: UserOpt,
    password: PasswordOpt,
    reason: ReasonOpt = "toxicity action confirmed",
    accept_unconfirmed: Annotated[bool, typer.Option(
        "--accept-unconfirmed", help="Confirm a rule whose source is not confirmed.")] = False,
    days: Annotated[int | None, typer.Option("--days", help="Days to delay the course.")] = None,
    percent: Annotated[float | None, typer.Option(
        "--percent", help="Dose or rate percentage, when the rule sets none.")] = None,
    condition_holds: Annotated[bool, typer.Option(
        "--condition-holds", help="The condition the proposal depends on holds (needed when "
        "it has one).")] = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Confirm a proposed toxicity action (your e-signature) and apply it to the calendar."""
    from trialdesk.services import safety

    ctx = open_services(data_dir, database)
    who = acting(ctx, by)
    _, row = ctx.store.toxicity_action(action)
    done = safety.confirm_action(ctx, who, study_number, action, version=row.version,
                                 password=password, accept_unconfirmed=accept_unconfirmed,
                                 days=days, percent=percent, reason=reason_given(reason),
                                 condition_holds=condition_holds or None)
    console = _console()
    _say(console, f"{study_number}: action {action} ({done['shown']}) confirmed and applied",
         "bold")
    applied = done.get("applied") or {}
    if applied.get("event_ids"):
        _say(console, f"  changed: {', '.join(applied['event_ids'])}", "dim")


@response_app.command("record")
@domain_errors
def response_record(
    study_number: StudyArg,
    criteria: Annotated[str, typer.Option("--criteria", help="INRC or RECIST.")],
    on: Annotated[str, typer.Option("--on", help="Date assessed (ISO).")],
    findings: Annotated[Path, typer.Option(
        "--findings", help="The findings (JSON), as for `trialdesk response inrc|recist`.")],
    by: UserOpt,
    kind: Annotated[str, typer.Option("--kind", help="time_point or baseline (RECIST).")] = "time_point",
    reason: ReasonOpt = "response assessed",
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Assess and store a response assessment (INRC 2017 or RECIST 1.1) with its reasoning."""
    from trialdesk.services import responses

    document = read_patient_file(findings)
    if not isinstance(document, dict):
        raise typer.BadParameter("the findings must be a JSON object", param_hint="--findings")
    ctx = open_services(data_dir, database)
    made = responses.record_response(ctx, acting(ctx, by), study_number,
                                     criteria=criteria.upper(), kind=kind,
                                     assessed_on=iso_date(on, "--on"), document=document,
                                     reason=reason_given(reason))
    if as_json:
        typer.echo(json.dumps(made, indent=2, default=str))
        return
    console = _console()
    _say(console, f"{study_number}: {made['criteria_name']} {made['kind'].replace('_', ' ')} "
                  f"on {made['assessed_on']}: {made['overall'] or '—'}", "bold")
    for line in made["result"].get("reasoning") or []:
        _say(console, f"  {line}")


@response_app.command("list")
@domain_errors
def response_list(
    study_number: StudyArg,
    by: UserOpt,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """The patient's response assessments and follow-up."""
    from trialdesk.services import responses

    ctx = open_services(data_dir, database)
    page = responses.responses_page(ctx, acting(ctx, by), study_number)
    if as_json:
        typer.echo(json.dumps({k: page[k] for k in ("items", "follow_ups") if k in page},
                              indent=2, default=str))
        return
    table = Table("date", "criteria", "kind", "overall")
    for r in page["items"]:
        table.add_row(str(r["assessed_on"]), str(r["criteria"]), str(r["kind"]),
                      str(r.get("overall") or "—"))
    _console().print(table)


@response_app.command("follow-up")
@domain_errors
def response_follow_up(
    study_number: StudyArg,
    kind: Annotated[str, typer.Option("--kind", help="last_contact, death or second_malignancy.")],
    on: Annotated[str, typer.Option("--on", help="Date (ISO).")],
    by: UserOpt,
    note: Annotated[str, typer.Option("--note", help="What was found.")] = "",
    reason: ReasonOpt = "follow-up recorded",
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Record follow-up: last contact, death, second malignancy (the outcomes read them)."""
    from trialdesk.services import responses

    ctx = open_services(data_dir, database)
    responses.record_follow_up(ctx, acting(ctx, by), study_number, kind=kind,
                               occurred_on=iso_date(on, "--on"), note=note,
                               reason=reason_given(reason))
    _say(_console(), f"{study_number}: {kind.replace('_', ' ')} on {on} recorded")
