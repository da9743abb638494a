"""The trialdesk command line (typer + rich).

Exit codes: 0 success; 1 a domain error, printed as one clear line; 2 a usage error.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from trialdesk.errors import FactError, NotFoundError, TrialdeskError
from trialdesk.protocol.load import (
    CompiledProtocol,
    default_protocol_dir,
    load_directory,
    read_document,
)

app = typer.Typer(
    name="trialdesk",
    help="Run interventional clinical trials from a machine-readable protocol.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

P = ParamSpec("P")
R = TypeVar("R")

ProtocolsOpt = Annotated[
    Path | None,
    typer.Option("--protocols", help="Directory of protocol files (default: bundled protocols)."),
]


def _console() -> Console:
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 120)


def _err(message: str) -> None:
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {message}", highlight=False)


def domain_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a TrialdeskError into one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except TrialdeskError as exc:
            _err(str(exc).replace("\n", " "))
            raise typer.Exit(1) from None

    return wrapper


def _protocols(directory: Path | None) -> dict[str, CompiledProtocol]:
    return load_directory(directory or default_protocol_dir())


def _trial(protocols: dict[str, CompiledProtocol], trial_id: str) -> CompiledProtocol:
    if trial_id in protocols:
        return protocols[trial_id]
    lowered = {k.lower(): k for k in protocols}
    if trial_id.lower() in lowered:
        return protocols[lowered[trial_id.lower()]]
    import difflib

    close = difflib.get_close_matches(trial_id, list(protocols), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise NotFoundError(f"no trial '{trial_id}'{hint}; known: {', '.join(sorted(protocols))}")


def parse_moment(text: str | None) -> datetime:
    """``--on``: an ISO date (taken at 00:00) or date-time; default now, to the minute."""
    if text is None:
        return datetime.now().replace(second=0, microsecond=0)
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time())
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"'{text}' is not an ISO date or date-time",
                                 param_hint="--on") from None
    return moment.replace(tzinfo=None) if moment.tzinfo else moment


def read_patient_file(path: Path) -> Any:
    """A patient file is JSON whatever its name; errors are FactErrors naming the file."""
    return read_document(path, FactError, as_json=True)


# ---------------------------------------------------------------------------


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
    protocols: ProtocolsOpt = None,
) -> None:
    """Screen a patient against every trial (or one): verdict, arm, every criterion explained."""
    from trialdesk.criteria.verdict import screen_record
    from trialdesk.facts.patient import patient_from_data
    from trialdesk.views import screening_report

    moment = parse_moment(on)
    all_protocols = _protocols(protocols)
    chosen = [_trial(all_protocols, trial)] if trial else list(all_protocols.values())
    record = patient_from_data(read_patient_file(patient), today=date.today(),
                               source=str(patient))
    results = [screen_record(c, record, as_of=moment) for c in chosen]
    if as_json:
        doc = {"patient_id": record.patient_id, "results": [r.to_json() for r in results]}
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    console = _console()
    for r in results:
        screening_report(console, r)


@app.command("lint")
@domain_errors
def lint_cmd(
    paths: Annotated[list[Path] | None, typer.Argument(help="Protocol files or directories.")] = None,
) -> None:
    """Report protocol problems; exit 1 if any is an error."""
    from trialdesk.protocol.lint import lint
    from trialdesk.protocol.load import load_protocol

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


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
