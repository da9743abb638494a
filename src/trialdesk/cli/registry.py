"""The registry commands: trials, show, screen, lint, schema, demo."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from trialdesk.cli.common import (
    ProtocolsOpt,
    _console,
    _protocols,
    _trial,
    app,
    domain_errors,
    parse_moment,
    read_patient_file,
)
from trialdesk.protocol.paths import default_protocol_dir

if TYPE_CHECKING:
    from trialdesk.protocol.load import CompiledProtocol


@app.command()
@domain_errors
def trials(protocols: ProtocolsOpt = None) -> None:
    """List the registered trials."""
    from trialdesk.views import trials_table

    _console().print(trials_table(list(_protocols(protocols).values())))


@app.command()
@domain_errors
def show(
    trial_id: Annotated[str, typer.Argument(help="Trial id, e.g. NB-NK-2026.")],
    protocols: ProtocolsOpt = None,
) -> None:
    """Show a trial as a registry page, with its arms and regimens."""
    from trialdesk.views import registry_page

    compiled = _trial(_protocols(protocols), trial_id)
    registry_page(_console(), compiled)


@app.command()
@domain_errors
def screen(
    patient: Annotated[Path, typer.Argument(help="Patient file (JSON).")],
    trial: Annotated[str | None, typer.Option("--trial", help="Only this trial.")] = None,
    on: Annotated[str | None, typer.Option("--on", help="Screening date or date-time (ISO).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stable JSON document.")] = False,
    all_trials: Annotated[bool, typer.Option(
        "--all-trials", help="Which trials could this patient enter: every reviewed trial, "
        "eligible and undetermined first with what would decide them.")] = False,
    near: Annotated[str | None, typer.Option(
        "--near", help="With --all-trials: a place (city or LAT,LON); nearest trial sites first.")] = None,
    protocols: ProtocolsOpt = None,
) -> None:
    """Screen a patient against every trial (or one): verdict, arm, every criterion explained."""
    from trialdesk.criteria.verdict import screen_record
    from trialdesk.facts.patient import patient_from_data
    from trialdesk.views import screening_report

    if all_trials and trial:
        raise typer.BadParameter("--all-trials screens every trial; leave out --trial",
                                 param_hint="--all-trials")
    if near is not None and not all_trials:
        raise typer.BadParameter("--near orders the trials of --all-trials; add --all-trials",
                                 param_hint="--near")
    moment = parse_moment(on)
    all_protocols = _protocols(protocols)
    if all_trials:
        _which_trials(patient, list(all_protocols.values()), moment, near, as_json)
        return
    # Every trial, or one: a draft protocol (imported criteria not yet reviewed) is left out of
    # "every trial" and named; asked for by --trial it is refused with the reason.
    chosen = [_trial(all_protocols, trial)] if trial else [
        c for c in all_protocols.values() if not c.protocol.unreviewed]
    drafts = [] if trial else sorted(c.id for c in all_protocols.values() if c.protocol.unreviewed)
    record = patient_from_data(read_patient_file(patient), today=date.today(),
                               source=str(patient))
    results = [screen_record(c, record, as_of=moment) for c in chosen]
    if drafts:
        typer.echo(f"not screened, drafts awaiting review: {', '.join(drafts)}", err=True)
    if as_json:
        doc = {"patient_id": record.patient_id, "results": [r.to_json() for r in results]}
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    console = _console()
    for r in results:
        screening_report(console, r)


def _which_trials(patient: Path, protocols: list[CompiledProtocol], moment: Any, near: str | None,
                  as_json: bool) -> None:
    """``screen --all-trials``: the ranked list of :mod:`trialdesk.services.trialfinder`."""
    from trialdesk.facts.patient import patient_from_data
    from trialdesk.services.trialfinder import place_of, trials_for_record

    place = place_of(near, protocols)
    record = patient_from_data(read_patient_file(patient), today=date.today(), source=str(patient))
    doc = trials_for_record(protocols, record, as_of=moment, place=place)
    if as_json:
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    console = _console()
    where = f", nearest sites to {place.name}" if place else ""
    console.print(Text(f"Trials for {record.patient_id} on {doc['as_of']}{where}", style="bold"))
    for i, row in enumerate(doc["trials"], 1):
        style = {"eligible": "green", "undetermined": "yellow"}.get(row["verdict"], "red")
        line = Text.assemble(f"{i}. {row['trial_id']} ", (row["verdict_label"], f"bold {style}"))
        if row["arm"]:
            line.append(f", arm {row['arm']}")
        line.append(f" ({row['status_label']})")
        if place is not None:
            site = row["nearest_site"]
            line.append(f" — nearest site: {site['city'] or site['facility']}, {site['km']:,.0f} km"
                        if site else " — no site location in the record")
        console.print(line, highlight=False, soft_wrap=True)
        for c in row["unknown_criteria"]:
            console.print(f"     would decide: {c['id']} {c['text']}", highlight=False, soft_wrap=True)
        if row["missing_facts"]:
            console.print("     to record: " + "; ".join(f"{h['description']} ({h['fact']})"
                                                        for h in row["missing_facts"]),
                          highlight=False, soft_wrap=True)
        for c in row["excluded_by"]:
            console.print(f"     {'not met' if c['kind'] == 'inclusion' else 'excluded by'}: "
                          f"{c['id']} {c['text']}", highlight=False, soft_wrap=True)
    for n in doc["not_screened"]:
        console.print(f"not screened: {n['trial_id']} ({n['reason']})", highlight=False)


@app.command("lint")
@domain_errors
def lint_cmd(
    paths: Annotated[list[Path] | None, typer.Argument(help="Protocol files or directories.")] = None,
) -> None:
    """Report protocol problems; exit 1 if any is an error."""
    from trialdesk.protocol.lint import lint
    from trialdesk.protocol.load import load_directory, load_protocol

    compiled: list[CompiledProtocol] = []
    for path in paths or [default_protocol_dir()]:
        compiled += list(load_directory(path).values()) if path.is_dir() else [load_protocol(path)]
    console = _console()
    errors = 0
    for c in compiled:
        findings = lint(c)
        errors += sum(f.level == "error" for f in findings)
        for f in findings:
            style = {"error": "bold red", "warning": "yellow", "info": "dim"}[f.level]
            console.print(Text.assemble((f.level, style), f": {f.where}: [{f.code}] {f.message}"),
                          highlight=False, soft_wrap=True)
    console.print(f"{len(compiled)} protocols checked, {errors} errors", highlight=False)
    if errors:
        raise typer.Exit(1)


@app.command()
@domain_errors
def schema(
    what: Annotated[str, typer.Argument(help="'patient' or 'protocol'.")],
) -> None:
    """Print the JSON Schema of a patient file or a protocol file."""
    from trialdesk.facts.patient import PatientRecord
    from trialdesk.protocol.model import Protocol

    models: dict[str, Any] = {"patient": PatientRecord, "protocol": Protocol}
    if what not in models:
        raise typer.BadParameter("choose 'patient' or 'protocol'", param_hint="WHAT")
    typer.echo(json.dumps(models[what].model_json_schema(), indent=2, ensure_ascii=False))


@app.command()
@domain_errors
def demo(
    on: Annotated[str | None, typer.Option("--on", help="Screening date or date-time (ISO).")] = None,
    protocols: ProtocolsOpt = None,
    patients: Annotated[Path | None, typer.Option("--patients",
                                                  help="Directory of patient files.")] = None,
) -> None:
    """The main job on embedded defaults: trials, NB-NK-2026, and the example patients screened."""
    from trialdesk.criteria.verdict import screen_record
    from trialdesk.facts.patient import patient_from_data
    from trialdesk.views import registry_page, screening_matrix, trials_table

    moment = parse_moment(on or "2026-11-21T12:00")
    console = _console()
    all_protocols = _protocols(protocols)
    console.rule("[bold]Registered trials")
    console.print(trials_table(list(all_protocols.values())))
    if "NB-NK-2026" in all_protocols:
        console.rule("[bold]NB-NK-2026")
        registry_page(console, all_protocols["NB-NK-2026"])
    directory = patients or default_protocol_dir().parent / "examples" / "patients"
    rows = []
    for path in sorted(directory.glob("*.json")):
        record = patient_from_data(read_patient_file(path), today=date.today(), source=str(path))
        rows.append((path.name, [screen_record(c, record, as_of=moment)
                                 for c in all_protocols.values()]))
    console.rule(f"[bold]Example patients screened on {moment.isoformat(timespec='minutes')}")
    console.print(screening_matrix(rows, list(all_protocols)))
