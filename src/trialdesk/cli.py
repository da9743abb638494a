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


# --------------------------------------------------------------------------- grading, safety, response
# CTCAE v5.0 and ASTCT grading, adverse-event checks against a protocol's toxicity rules,
# DSMB stopping rules, and INRC 2017 / RECIST 1.1 response with the reasoning printed.

grade_app = typer.Typer(help="Grade toxicity: CTCAE v5.0 labs and fever, ASTCT CRS and ICANS.",
                        no_args_is_help=True)
ae_app = typer.Typer(help="Adverse events: validate, grade, reporting deadline, protocol actions.",
                     no_args_is_help=True)
safety_app = typer.Typer(help="Protocol toxicity rules and DSMB stopping rules.", no_args_is_help=True)
response_app = typer.Typer(help="Tumour response: INRC 2017 and RECIST 1.1.", no_args_is_help=True)
app.add_typer(grade_app, name="grade")
app.add_typer(ae_app, name="ae")
app.add_typer(safety_app, name="safety")
app.add_typer(response_app, name="response")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON document.")]
TrialOpt = Annotated[str, typer.Option("--trial", help="Trial id, e.g. NB-NK-2026.")]


def _say(console: Console, text: str, style: str | None = None) -> None:
    console.print(Text(text, style=style or ""), highlight=False, soft_wrap=True)


def _mark(unconfirmed: bool) -> str:
    return " [unconfirmed]" if unconfirmed else ""


def _grade_line(console: Console, term: str, grade: int | None, possible: tuple[int, ...],
                rule: str, source: str, missing: tuple[str, ...] = (), unconfirmed: bool = False) -> None:
    if grade is not None:
        _say(console, f"{term}: grade {grade}{_mark(unconfirmed)}", "bold")
    else:
        needs = f"; needs {', '.join(missing)}" if missing else ""
        _say(console, f"{term}: grade not decided, one of {', '.join(map(str, possible))}{needs}"
             f"{_mark(unconfirmed)}", "bold yellow")
    _say(console, f"  {rule}")
    _say(console, f"  source: {source}", "dim")


@grade_app.command("lab")
@domain_errors
def grade_lab_cmd(
    term: Annotated[str, typer.Option("--term", help="CTCAE term, e.g. 'Neutrophil count decreased'.")],
    value: Annotated[float, typer.Option("--value", help="The measured value.")],
    unit: Annotated[str, typer.Option("--unit", help="Its unit, e.g. /mm3, 10^9/L, g/dL, U/L.")],
    lln: Annotated[float | None, typer.Option("--lln", help="Lower limit of normal (same unit).")] = None,
    uln: Annotated[float | None, typer.Option("--uln", help="Upper limit of normal (same unit).")] = None,
    baseline: Annotated[float | None, typer.Option("--baseline", help="Baseline value (same unit).")] = None,
    symptomatic: Annotated[bool | None, typer.Option("--symptomatic/--asymptomatic",
                                                      help="Symptoms, where the term needs them.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Grade a lab value by CTCAE v5.0 (an undecided grade lists the possible ones)."""
    from trialdesk.clinical.ctcae import grade_lab

    g = grade_lab(term, value, unit, lln=lln, uln=uln, baseline=baseline, symptomatic=symptomatic)
    if as_json:
        typer.echo(json.dumps({"term": g.term, "value": g.value, "unit": g.unit, "grade": g.grade,
                               "possible_grades": list(g.possible_grades), "rule": g.rule,
                               "missing": list(g.missing), "ctcae_version": g.ctcae_version,
                               "source": g.source}, indent=2, ensure_ascii=False))
        return
    _grade_line(_console(), f"{g.term} {g.value:g} {g.unit} (CTCAE v{g.ctcae_version})", g.grade,
                g.possible_grades, g.rule, g.source, g.missing)


@grade_app.command("fever")
@domain_errors
def grade_fever_cmd(
    temperature: Annotated[float, typer.Option("--temperature", help="Body temperature, °C.")],
    hours_above_40: Annotated[float | None, typer.Option("--hours-above-40",
                                                         help="How long it stayed above 40 °C.")] = None,
) -> None:
    """Grade CTCAE v5.0 "Fever" from a temperature."""
    from trialdesk.clinical.ctcae import grade_fever

    g = grade_fever(temperature, hours_above_40)
    _grade_line(_console(), f"Fever {g.value:g} °C (CTCAE v{g.ctcae_version})", g.grade,
                g.possible_grades, g.rule, g.source, g.missing)


@grade_app.command("define")
@domain_errors
def grade_define_cmd(term: Annotated[str, typer.Argument(help="CTCAE term.")]) -> None:
    """Show a term's CTCAE v5.0 grade definitions (for grading by the clinician)."""
    from trialdesk.clinical.ctcae import term_definition

    d = term_definition(term)
    console = _console()
    _say(console, f"{d.term} (CTCAE v5.0)", "bold")
    for g in d.grades:
        _say(console, f"  grade {g.grade}: {g.text}{_mark(g.unconfirmed)}")
    if d.note:
        _say(console, f"  note: {d.note}", "dim")
    _say(console, f"  source: {d.source}", "dim")


@grade_app.command("crs")
@domain_errors
def grade_crs_cmd(
    hypotension: Annotated[str | None, typer.Option(
        "--hypotension",
        help="none, not_requiring_vasopressors, one_vasopressor, multiple_vasopressors.")] = None,
    hypoxia: Annotated[str | None, typer.Option(
        "--hypoxia", help="none, low_flow, high_flow, positive_pressure.")] = None,
    fever: Annotated[bool | None, typer.Option("--fever/--no-fever", help="Temperature ≥38.0 °C.")] = None,
    masked: Annotated[bool, typer.Option(
        "--masked", help="Antipyretics or anti-cytokine therapy given.")] = False,
) -> None:
    """Grade cytokine release syndrome (ASTCT consensus, Lee 2019); unassessed inputs are open."""
    from trialdesk.clinical.astct import grade_crs

    g = grade_crs(fever, hypotension, hypoxia, masked)
    _grade_line(_console(), "CRS (ASTCT)", g.grade, g.possible_grades, g.rule, g.source, g.missing)


@grade_app.command("icans")
@domain_errors
def grade_icans_cmd(
    age: Annotated[float, typer.Option("--age", help="Age in years (ICE above 12, CAPD at 12 or under).")],
    ice: Annotated[int | None, typer.Option("--ice", help="ICE score 0-10.")] = None,
    capd: Annotated[int | None, typer.Option("--capd", help="CAPD score 0-32.")] = None,
    capd_unable: Annotated[bool, typer.Option("--capd-unable", help="Unable to perform CAPD.")] = False,
    consciousness: Annotated[str | None, typer.Option(
        "--consciousness", help="alert, awakens_spontaneously, awakens_to_voice, "
        "awakens_to_tactile_stimulus, unarousable.")] = None,
    seizure: Annotated[str | None, typer.Option(
        "--seizure", help="none, resolves_rapidly, prolonged_or_repetitive.")] = None,
    motor_weakness: Annotated[bool | None, typer.Option("--motor-weakness/--no-motor-weakness")] = None,
    oedema: Annotated[str | None, typer.Option("--oedema", help="none, focal, diffuse.")] = None,
) -> None:
    """Grade ICANS (ASTCT consensus, Lee 2019): the worst domain; unassessed domains are open."""
    from trialdesk.clinical.astct import grade_icans

    g = grade_icans(age, ice_score=ice, capd_score=capd, capd_unable_to_perform=capd_unable,
                    consciousness=consciousness, seizure=seizure, motor_weakness=motor_weakness,
                    cerebral_oedema=oedema)
    _grade_line(_console(), f"ICANS (ASTCT, {g.instrument})", g.grade, g.possible_grades, g.rule,
                g.source, g.missing, g.unconfirmed)


def _safety_file(path: Path) -> Any:
    from trialdesk.errors import SafetyError

    return read_document(path, SafetyError, as_json=True)


@ae_app.command("check")
@domain_errors
def ae_check_cmd(
    document: Annotated[Path, typer.Argument(help="Adverse-event document (JSON).")],
    trial: TrialOpt,
    as_json: JsonOpt = False,
    protocols: ProtocolsOpt = None,
) -> None:
    """Validate and grade a patient's adverse events; reporting deadlines; proposed actions."""
    from trialdesk.safety.check import check_document
    from trialdesk.safety.rules import Status

    compiled = _trial(_protocols(protocols), trial)
    result = check_document(_safety_file(document), compiled.protocol, source=str(document))
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
        return
    console = _console()
    where = f", course {result.course}" if result.course else ""
    if result.course and result.course_number:
        where += f" ({result.course_number})"
    _say(console, f"{result.patient_id} on {result.trial}{where}", "bold")
    _say(console, "Adverse events (CTCAE v5.0)", "bold")
    if not result.events:
        _say(console, "  none recorded")
    for ae, rep in zip(result.events, result.reporting, strict=True):
        serious = f", serious ({', '.join(sorted(s.value for s in ae.seriousness))})" if ae.serious else ""
        _say(console, f"  {ae.term} grade {ae.grade}, onset {ae.onset.isoformat()}{serious}")
        d = rep.deadline
        if d is not None and rep.required is not False:
            due = d.due.isoformat() if d.due else "date not known (sponsor awareness not recorded)"
            extra = f", complete report by {d.follow_up_due.isoformat()}" if d.follow_up_due else ""
            prefix = "expedited report" if rep.required else "if a SUSAR, expedited report"
            _say(console, f"    {prefix} within {d.calendar_days} days: due {due}{extra} "
                 f"({rep.reason}; {d.source})", "red" if rep.required else "yellow")
        else:
            _say(console, f"    {rep.reason}", "dim")
    if result.labs:
        _say(console, "Labs graded (CTCAE v5.0)", "bold")
        for g in result.labs:
            grade = f"grade {g.grade.grade}" if g.grade.grade is not None else (
                f"grade one of {', '.join(map(str, g.grade.possible_grades))}")
            on = f" on {g.on.isoformat()}" if g.on else ""
            _say(console, f"  {g.grade.term} {g.grade.value:g} {g.grade.unit}{on}: {grade} — {g.grade.rule}")
    fired = [o for o in (*result.outcomes, *result.recovery) if o.status is not Status.NOT_TRIGGERED]
    quiet = len(result.outcomes) + len(result.recovery) - len(fired)
    _say(console, f"Protocol toxicity rules ({len(fired)} triggered or undecided, "
                  f"{quiet} not triggered)", "bold")
    for o in fired:
        style = "bold red" if o.status is Status.TRIGGERED else "yellow"
        _say(console, f"  {o.rule_id} {o.status.value}: {o.reason}{_mark(o.unconfirmed)}", style)
        if o.status is Status.UNKNOWN:
            for a in o.actions:
                _say(console, f"    would propose: {a.shown()}", "dim")
    _say(console, "Proposed actions (a clinician confirms each before the calendar changes)", "bold")
    if not result.actions:
        _say(console, "  none")
    for a in result.actions:
        sign = "clinician sign-off needed" if a.requires_confirmation else "advice, nothing to apply"
        _say(console, f"  - {a.shown()} [{a.rule_id}; {sign}]")
        _say(console, f"    source: {a.source}", "dim")


@safety_app.command("rules")
@domain_errors
def safety_rules_cmd(trial: TrialOpt, protocols: ProtocolsOpt = None) -> None:
    """List a trial's toxicity and stopping rules with their sources."""
    p = _trial(_protocols(protocols), trial).protocol
    console = _console()
    _say(console, f"{p.id}: {len(p.toxicity_rules)} toxicity rules, {len(p.stopping_rules)} stopping rules",
         "bold")
    for rule in p.toxicity_rules:
        courses = f" [courses {', '.join(rule.courses)}]" if rule.courses else ""
        _say(console, f"  {rule.id}: {rule.title}{courses}{_mark(rule.is_unconfirmed)}")
        _say(console, f"    when {rule.describe()}")
        for spec in rule.actions:
            what = spec.advice if spec.kind.value == "supportive_care" else spec.agent or "the course"
            pct = f" to {spec.percent:g}%" if spec.percent is not None else ""
            scope = f" ({spec.scope.value})" if spec.scope else ""
            _say(console, f"    → {spec.kind.value}: {what}{pct}{scope}")
        _say(console, f"    source: {rule.source}", "dim")
    for stop in p.stopping_rules:
        _say(console, f"  {stop.id}: {stop.title}{_mark(stop.is_unconfirmed)}")
        _say(console, f"    {stop.describe()}")
        _say(console, f"    source: {stop.source}", "dim")


@safety_app.command("stopping")
@domain_errors
def safety_stopping_cmd(
    document: Annotated[Path, typer.Argument(help="The trial's adverse events (JSON).")],
    trial: TrialOpt,
    as_json: JsonOpt = False,
    protocols: ProtocolsOpt = None,
) -> None:
    """Check the trial's stopping rules; a triggered rule is an alert for the DSMB."""
    from trialdesk.safety.check import check_trial_events
    from trialdesk.safety.rules import Status

    compiled = _trial(_protocols(protocols), trial)
    results = check_trial_events(_safety_file(document), compiled.protocol, source=str(document))
    if as_json:
        typer.echo(json.dumps({"schema": "trialdesk.stopping/1", "trial": compiled.id, "results": [
            {"rule_id": r.rule_id, "title": r.title, "status": r.status.value, "alert": r.alert,
             "count": r.count, "open_count": r.open_count, "threshold": r.threshold,
             "counted": list(r.counted), "open": list(r.open), "message": r.message,
             "unconfirmed": r.unconfirmed, "source": r.source} for r in results]},
            indent=2, ensure_ascii=False))
        return
    console = _console()
    if not results:
        _say(console, f"{compiled.id} declares no stopping rules")
    for r in results:
        style = {Status.TRIGGERED: "bold red", Status.UNKNOWN: "yellow"}.get(r.status)
        _say(console, f"{r.rule_id} ({r.title}): {r.message}", style)
        for label in r.counted:
            _say(console, f"  counted: {label}")
        for label in r.open:
            _say(console, f"  open (attribution or arm not recorded): {label}", "dim")
        _say(console, f"  source: {r.source}", "dim")


def _response_file(path: Path) -> Any:
    from trialdesk.errors import ResponseError

    return read_document(path, ResponseError, as_json=True)


@response_app.command("inrc")
@domain_errors
def response_inrc_cmd(
    document: Annotated[Path, typer.Argument(help="One INRC 2017 time point (JSON).")],
    as_json: JsonOpt = False,
) -> None:
    """INRC 2017 component and overall response at one time point, with the reasoning."""
    from trialdesk.response.documents import inrc_time_point
    from trialdesk.response.inrc import UNCONFIRMED_NOTES, assess

    result = assess(inrc_time_point(_response_file(document), source=str(document)))
    if as_json:
        typer.echo(json.dumps({
            "schema": "trialdesk.inrc/1", "overall": result.overall.value,
            "components": [{"component": c.component.value, "response": c.response.value,
                            "reasoning": list(c.reasoning), "missing": list(c.missing)}
                           for c in result.components],
            "reasoning": list(result.reasoning), "missing": list(result.missing),
            "unconfirmed": list(result.unconfirmed)}, indent=2, ensure_ascii=False))
        return
    console = _console()
    _say(console, f"INRC 2017 overall response: {result.overall.value}", "bold")
    for c in result.components:
        _say(console, f"  {c.component.value}: {c.response.value}")
    _say(console, "Reasoning", "bold")
    for sentence in result.reasoning:
        _say(console, f"  {sentence}")
    if result.unconfirmed:
        _say(console, "Thresholds not yet checked against Park 2017 [unconfirmed]", "bold")
        for name in result.unconfirmed:
            _say(console, f"  {name}: {UNCONFIRMED_NOTES[name]}", "dim")


@response_app.command("recist")
@domain_errors
def response_recist_cmd(
    document: Annotated[Path, typer.Argument(help="Baseline and time points (JSON).")],
    as_json: JsonOpt = False,
) -> None:
    """RECIST 1.1 response at every time point and, if the rule is given, best overall response."""
    from trialdesk.response.documents import recist_series
    from trialdesk.response.recist import assess_series, best_overall_response

    baseline, points, rule = recist_series(_response_file(document), source=str(document))
    results = assess_series(baseline, points)
    bor = best_overall_response(results, rule) if rule is not None else None
    if as_json:
        typer.echo(json.dumps({
            "schema": "trialdesk.recist/1",
            "time_points": [{"day": r.day, "overall": r.overall.value,
                             "target": r.target.value if r.target else None,
                             "non_target": r.non_target.value if r.non_target else None,
                             "sum_mm": r.sum_mm, "nadir_mm": r.nadir_mm,
                             "reasoning": list(r.reasoning)} for r in results],
            "best_overall_response": None if bor is None else {
                "response": bor.response.value, "day": bor.day, "reasoning": list(bor.reasoning)}},
            indent=2, ensure_ascii=False))
        return
    console = _console()
    for r in results:
        _say(console, f"Day {r.day}: {r.overall.value}", "bold")
        for sentence in r.reasoning:
            _say(console, f"  {sentence}")
    if bor is not None:
        _say(console, f"Best overall response: {bor.response.value}", "bold")
        for sentence in bor.reasoning:
            _say(console, f"  {sentence}")
    else:
        _say(console, "Best overall response: not derived (the document gives no "
             "'best_overall_response' rule; the protocol sets it)", "dim")


@response_app.command("schedule")
@domain_errors
def response_schedule_cmd(
    trial: TrialOpt,
    arm: Annotated[str | None, typer.Option("--arm", help="Only this arm.")] = None,
    protocols: ProtocolsOpt = None,
) -> None:
    """When each arm's response assessments fall, from the protocol's schedule."""
    from trialdesk.response.schedule import assessment_points

    p = _trial(_protocols(protocols), trial).protocol
    console = _console()
    for a in p.arms:
        if arm is not None and a.id != arm:
            continue
        _say(console, f"{p.id} arm {a.id}: {a.label}", "bold")
        points = assessment_points(p, a.id)
        if not points:
            _say(console, "  no response assessment declared")
        for pt in points:
            when = f"after course {pt.after_course} ({pt.course_id})" if pt.after_course else f"day {pt.day}"
            criteria = f" by {pt.criteria}" if pt.criteria else ""
            _say(console, f"  {when}: {pt.name}{criteria}{_mark(pt.unconfirmed)}")
    if arm is not None and arm not in {a.id for a in p.arms}:
        raise NotFoundError(f"{p.id} has no arm {arm!r}; arms: {', '.join(a.id for a in p.arms)}")


# --------------------------------------------------------------------------- outcomes, plots, reports
# Endpoints and survival from an event table; trial plots; the DSMB report; SDTM and FHIR
# export. Bad input files are refused with every bad row listed in one block (exit 1);
# output files are written to a temporary file first and renamed, so none is half-written.

report_app = typer.Typer(help="Reports: the DSMB report (PDF).", no_args_is_help=True)
app.add_typer(report_app, name="report")

EventsOpt = Annotated[Path, typer.Option("--events", help="Event table (CSV or Parquet).")]
AesOpt = Annotated[Path | None, typer.Option("--aes", help="Adverse events (JSON).")]
TumourOpt = Annotated[Path | None, typer.Option(
    "--tumour", "--responses", help="Tumour measurements and time-point responses (CSV).")]
ExposureOpt = Annotated[Path | None, typer.Option("--exposure", help="Agents given per course (CSV).")]
LabsOpt = Annotated[Path | None, typer.Option("--labs", help="Laboratory results (CSV).")]
TimeUnitOpt = Annotated[str, typer.Option("--time-unit", help="days, months or auto.")]
EndpointsOpt = Annotated[str | None, typer.Option(
    "--endpoints", help="e.g. ORR,OS,PFS,RFS or 28-day-mortality (default: the protocol's).")]


def outcome_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Like :func:`domain_errors`, but a refused input file prints every problem, one per line."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from rich.markup import escape

        from trialdesk.outcomes.events import EventTableError

        try:
            return fn(*args, **kwargs)
        except EventTableError as exc:
            count = len(exc.problems)
            lines = "\n".join(f"  {p}" for p in exc.problems)
            _err(escape(f"{exc.where}: {count} problem{'s' if count != 1 else ''}; nothing was written:"
                        f"\n{lines}"))
            raise typer.Exit(1) from None
        except TrialdeskError as exc:
            _err(escape(str(exc)))
            raise typer.Exit(1) from None

    return wrapper


def _read_table(path: Path) -> Any:
    """A CSV (every cell as text, empty = missing) or Parquet file as a DataFrame."""
    import pandas as pd

    from trialdesk.errors import OutcomeError

    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (OSError, ValueError, ImportError) as exc:
        raise OutcomeError(f"cannot read file: {exc}", where=str(path)) from None
    raise OutcomeError("expected a .csv or .parquet file", where=str(path))


def _read_json(path: Path) -> Any:
    from trialdesk.errors import OutcomeError

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OutcomeError(f"cannot read file: {exc.strerror}", where=str(path)) from None
    except json.JSONDecodeError as exc:
        raise OutcomeError(f"malformed JSON: {exc.msg}", where=f"{path}:{exc.lineno}:{exc.colno}") from None


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    import os
    import tempfile

    from trialdesk.errors import OutcomeError

    target = path.resolve()
    if not target.parent.is_dir():
        raise OutcomeError("the folder does not exist", where=str(path.parent))
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as an ordinary new file, not 0600
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class _OutcomeInputs:
    """The protocol and every given input file, validated (nothing is used half-read)."""

    def __init__(self, trial: str, events: Path, protocols: Path | None, *, aes: Path | None = None,
                 tumour: Path | None = None, exposure: Path | None = None,
                 labs: Path | None = None) -> None:
        from trialdesk.outcomes.events import EventTableError, validate_event_table
        from trialdesk.outcomes.inputs import (
            validate_adverse_events,
            validate_exposure,
            validate_labs,
            validate_measurements,
        )

        self.compiled = _trial(_protocols(protocols), trial)
        self.protocol = self.compiled.protocol
        arm_ids = [a.id for a in self.protocol.arms]
        try:
            self.events = validate_event_table(_read_table(events), arms=arm_ids)
        except EventTableError as exc:
            raise EventTableError(exc.problems, where=str(events)) from None
        self.aes = None if aes is None else validate_adverse_events(_read_json(aes), self.events,
                                                                    where=str(aes))
        self.measurements = None if tumour is None else validate_measurements(
            _read_table(tumour), self.events, where=str(tumour))
        self.exposure = None if exposure is None else validate_exposure(
            _read_table(exposure), self.events, where=str(exposure))
        self.labs = None if labs is None else validate_labs(_read_table(labs), self.events,
                                                            where=str(labs))
        self.sources = tuple(f"{kind}: {path}" for kind, path in (
            ("protocol", self.compiled.path or self.compiled.id), ("events", events), ("adverse events", aes),
            ("tumour measurements", tumour), ("exposure", exposure), ("labs", labs)) if path is not None)

    @property
    def arm_labels(self) -> dict[str, str]:
        return {a.id: a.label for a in self.protocol.arms}

    def summary(self, endpoints: str | None, time_unit: str, landmarks: str | None = None) -> Any:
        from trialdesk.outcomes.summary import choose_time_unit, endpoints_for, parse_endpoints, summarise

        registry = self.protocol.registry.outcomes
        measures = [o.measure for o in (*registry.primary, *registry.secondary)]
        measures += [self.protocol.registry.description.detailed_description or ""]
        choice = parse_endpoints(endpoints) if endpoints else endpoints_for(measures)
        unit = choose_time_unit(self.events, time_unit)
        times = None
        if landmarks:
            try:
                times = [float(t) for t in landmarks.split(",") if t.strip()]
            except ValueError:
                raise typer.BadParameter(f"{landmarks!r} is not a list of numbers",
                                         param_hint="--landmark") from None
        return summarise(self.events, choice, trial=self.compiled.id, time_unit=unit, landmarks=times)


def _fmt(value: Any, digits: int = 1) -> str:
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "not reached"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if hasattr(value, "date") and not isinstance(value, str):
        return value.date().isoformat()
    return str(value)


def _frame_table(frame: Any, title: str) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_lines=False)
    for column in frame.columns:
        table.add_column(str(column))
    for row in frame.itertuples(index=False):
        table.add_row(*[_fmt(v, 3 if isinstance(v, float) and abs(v) < 1 else 1) for v in row])
    return table


@app.command("outcomes")
@outcome_errors
def outcomes_cmd(
    trial: TrialOpt,
    events: EventsOpt,
    endpoints: EndpointsOpt = None,
    time_unit: TimeUnitOpt = "auto",
    landmark: Annotated[str | None, typer.Option(
        "--landmark", help="Landmark times in the time unit, e.g. 24,60 (default 2 and 5 years).")] = None,
    as_json: JsonOpt = False,
    protocols: ProtocolsOpt = None,
) -> None:
    """Endpoints patient by patient (ORR, OS, PFS, EFS, RFS, N-day mortality) with totals,
    Kaplan–Meier medians, landmark survival and the log-rank test between arms."""
    inputs = _OutcomeInputs(trial, events, protocols)
    summary = inputs.summary(endpoints, time_unit, landmark)
    if as_json:
        typer.echo(json.dumps(summary.to_json(), indent=2, ensure_ascii=False))
        return
    console = _console()
    unit = summary.time_unit
    for prop in summary.proportions.values():
        console.rule(f"[bold]{prop.name}")
        _say(console, prop.definition, "dim")
        console.print(_frame_table(prop.table.drop(columns=["response_criteria"], errors="ignore"),
                                   "Per patient"))
        console.print(_frame_table(prop.summary.reset_index(), "Totals"))
    for tte in summary.time_to_event.values():
        endpoint = tte.endpoint
        console.rule(f"[bold]{endpoint.name}")
        _say(console, endpoint.definition, "dim")
        columns = ["patient_id", "arm", "start_date", "end_date", "event", "reason", "time_days",
                   "time_months"]
        console.print(_frame_table(endpoint.table[columns], "Per patient"))
        if len(endpoint.excluded):
            console.print(_frame_table(endpoint.excluded, "Not in the population"))
        console.print(_frame_table(endpoint.summary.reset_index(), "Totals"))
        if tte.kaplan_meier is not None:
            km = tte.kaplan_meier.summary.reset_index()
            console.print(_frame_table(km, f"Kaplan–Meier median ({unit}, 95% CI)"))
        if len(tte.landmarks):
            console.print(_frame_table(tte.landmarks, f"Landmark survival (time in {unit})"))
        if tte.logrank is not None:
            lr = tte.logrank
            _say(console, f"log-rank {', '.join(lr.groups)}: χ² = {lr.test_statistic:.3f}, "
                 f"df = {lr.degrees_of_freedom}, p = {lr.p_value:.4f}")
        elif tte.note:
            _say(console, tte.note, "dim")


PLOT_KINDS = ("km", "swimmer", "waterfall", "ae-heatmap")


@app.command("plot")
@outcome_errors
def plot_cmd(
    kind: Annotated[str, typer.Argument(help="km, swimmer, waterfall or ae-heatmap.")],
    trial: TrialOpt,
    out: Annotated[Path, typer.Option("--out", help="Output file: .png, .svg or .pdf.")],
    events: Annotated[Path | None, typer.Option("--events", help="Event table (CSV or Parquet).")] = None,
    aes: AesOpt = None,
    tumour: TumourOpt = None,
    exposure: ExposureOpt = None,
    endpoint: Annotated[str, typer.Option("--endpoint", help="For km: OS, PFS, EFS or RFS.")] = "OS",
    time_unit: TimeUnitOpt = "auto",
    protocols: ProtocolsOpt = None,
) -> None:
    """Draw a Kaplan–Meier (with numbers at risk), swimmer, waterfall or AE heat-map plot."""
    from trialdesk.outcomes import plots

    if kind not in PLOT_KINDS:
        raise typer.BadParameter(f"choose one of {', '.join(PLOT_KINDS)}", param_hint="KIND")
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in plots.FORMATS:
        raise typer.BadParameter("the file must end in .png, .svg or .pdf", param_hint="--out")
    needs = {"km": ("--events", events), "swimmer": ("--events", events), "waterfall": ("--tumour", tumour),
             "ae-heatmap": ("--aes", aes)}
    option, given = needs[kind]
    if given is None:
        raise typer.BadParameter(f"{kind} needs {option}", param_hint=option)
    if events is None:
        # The AE heat-map and the waterfall can be drawn without an event table.
        from trialdesk.outcomes.inputs import validate_adverse_events, validate_measurements

        _trial(_protocols(protocols), trial)
        if kind == "ae-heatmap" and aes is not None:
            figure = plots.ae_heatmap_figure(validate_adverse_events(_read_json(aes), where=str(aes)),
                                             title=f"Adverse events by term, grade and course — {trial}")
        elif tumour is not None:
            figure = plots.waterfall_figure(validate_measurements(_read_table(tumour), where=str(tumour)),
                                            title=f"Best change in tumour size — {trial}")
        write_atomic(out, plots.render(figure, fmt))
        typer.echo(f"wrote {out}")
        return
    inputs = _OutcomeInputs(trial, events, protocols, aes=aes, tumour=tumour, exposure=exposure)
    name = inputs.compiled.id
    if kind == "km":
        wanted = endpoint.upper()
        if wanted not in ("OS", "PFS", "EFS", "RFS"):
            raise typer.BadParameter("choose OS, PFS, EFS or RFS", param_hint="--endpoint")
        summary = inputs.summary(wanted, time_unit)
        tte = summary.time_to_event[wanted]
        if tte.kaplan_meier is None:
            from trialdesk.errors import OutcomeError

            raise OutcomeError(tte.note or "nothing to draw", where=wanted)
        figure = plots.km_figure(tte.kaplan_meier, title=f"{tte.endpoint.name} — {name}",
                                 y_label=f"{tte.endpoint.name} probability", time_unit=summary.time_unit,
                                 logrank=tte.logrank)
    elif kind == "swimmer":
        from trialdesk.outcomes.summary import choose_time_unit

        figure = plots.swimmer_figure(inputs.events, exposure=inputs.exposure,
                                      measurements=inputs.measurements,
                                      time_unit=choose_time_unit(inputs.events, time_unit),
                                      title=f"Time on study — {name}")
    elif kind == "waterfall" and inputs.measurements is not None:
        figure = plots.waterfall_figure(inputs.measurements, inputs.events,
                                        title=f"Best change in tumour size — {name}")
    elif inputs.aes is not None:
        figure = plots.ae_heatmap_figure(inputs.aes,
                                         title=f"Adverse events by term, grade and course — {name}")
    write_atomic(out, plots.render(figure, fmt))
    typer.echo(f"wrote {out}")


@report_app.command("dsmb")
@outcome_errors
def report_dsmb_cmd(
    trial: TrialOpt,
    events: EventsOpt,
    out: Annotated[Path, typer.Option("--out", help="Output PDF file.")],
    aes: AesOpt = None,
    tumour: TumourOpt = None,
    exposure: ExposureOpt = None,
    stopping: Annotated[Path | None, typer.Option(
        "--stopping", help="Count-based stopping-rule status (JSON).")] = None,
    cutoff: Annotated[str | None, typer.Option("--cutoff", help="Data cut-off date (ISO).")] = None,
    endpoints: EndpointsOpt = None,
    time_unit: TimeUnitOpt = "auto",
    protocols: ProtocolsOpt = None,
) -> None:
    """Write the DSMB report (PDF): enrolment, exposure, AEs by term, grade and relation,
    SAEs, deaths, stopping rules, response, survival and the plots."""
    import pandas as pd

    from trialdesk.outcomes.report import (
        DsmbInputs,
        dsmb_pdf,
        parse_stopping_rules,
        protocol_stopping_status,
        stopping_status,
    )

    if out.suffix.lower() != ".pdf":
        raise typer.BadParameter("the report is a .pdf file", param_hint="--out")
    day = None
    if cutoff is not None:
        try:
            day = date.fromisoformat(cutoff)
        except ValueError:
            raise typer.BadParameter(f"'{cutoff}' is not an ISO date", param_hint="--cutoff") from None
    inputs = _OutcomeInputs(trial, events, protocols, aes=aes, tumour=tumour, exposure=exposure)
    tables = []
    rules = getattr(inputs.protocol, "stopping_rules", [])
    if rules and inputs.aes is not None:
        tables.append(protocol_stopping_status(rules, inputs.aes, inputs.events))
    if stopping is not None:
        count_rules = parse_stopping_rules(_read_json(stopping), where=str(stopping))
        tables.append(stopping_status(count_rules, inputs.events, inputs.aes))
    pdf = dsmb_pdf(DsmbInputs(
        trial=inputs.compiled.id, title=inputs.protocol.title, events=inputs.events,
        summary=inputs.summary(endpoints, time_unit), aes=inputs.aes, exposure=inputs.exposure,
        measurements=inputs.measurements, cutoff=day,
        stopping=pd.concat(tables, ignore_index=True) if tables else None,
        sources=inputs.sources + ((f"stopping rules: {stopping}",) if stopping else ()),
    ))
    write_atomic(out, pdf)
    typer.echo(f"wrote {out}")


@app.command("export")
@outcome_errors
def export_cmd(
    kind: Annotated[str, typer.Argument(help="sdtm (CSV datasets) or fhir (R5 Bundle).")],
    trial: TrialOpt,
    events: EventsOpt,
    out: Annotated[Path, typer.Option("--out", help="Output folder (created if missing).")],
    aes: AesOpt = None,
    tumour: TumourOpt = None,
    exposure: ExposureOpt = None,
    labs: LabsOpt = None,
    protocols: ProtocolsOpt = None,
) -> None:
    """Export CDISC SDTM datasets (DM, AE, SUPPAE, EX, RS, LB as CSV) or FHIR R5 resources,
    validated before anything is written."""
    if kind not in ("sdtm", "fhir"):
        raise typer.BadParameter("choose sdtm or fhir", param_hint="KIND")
    if out.exists() and not out.is_dir():
        raise typer.BadParameter(f"{out} is a file, not a folder", param_hint="--out")
    inputs = _OutcomeInputs(trial, events, protocols, aes=aes, tumour=tumour, exposure=exposure, labs=labs)
    files: dict[str, bytes] = {}
    if kind == "sdtm":
        from trialdesk.outcomes.export_sdtm import require_valid, sdtm_datasets, to_csv

        datasets = sdtm_datasets(inputs.compiled.id, inputs.events, arm_labels=inputs.arm_labels,
                                 aes=inputs.aes, exposure=inputs.exposure,
                                 measurements=inputs.measurements, labs=inputs.labs)
        require_valid(datasets)
        files = {f"{name.lower()}.csv": to_csv(frame) for name, frame in datasets.items()}
    else:
        from trialdesk.outcomes.export_fhir import bundle_json, fhir_bundle, parse_bundle

        ident = inputs.protocol.registry.identification
        bundle = fhir_bundle(inputs.compiled.id, inputs.events, title=inputs.protocol.title,
                             nct_id=ident.nct_id, conditions=tuple(inputs.protocol.registry.conditions),
                             arm_labels=inputs.arm_labels, aes=inputs.aes, measurements=inputs.measurements)
        data = bundle_json(bundle)
        parse_bundle(data)  # what is written must parse back
        files = {"bundle.json": data}
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        write_atomic(out / name, data)
        typer.echo(f"wrote {out / name}")


# --------------------------------------------------------------------------- patient journey
# Consent, enrolment, randomisation and the treatment calendar, on journey files
# (trialdesk.journal): one JSON file per patient and trial under --data.

record_app = typer.Typer(help="Record what happened: calendar start, weight/height, events, "
                              "course delays.", no_args_is_help=True)
randomisation_app = typer.Typer(help="Sealed allocation lists: generate and verify.",
                                no_args_is_help=True)
app.add_typer(record_app, name="record")
app.add_typer(randomisation_app, name="randomisation")

DataOpt = Annotated[Path, typer.Option("--data", envvar="TRIALDESK_DATA",
                                       help="Directory of journey and randomisation files.")]
JTrialOpt = Annotated[str, typer.Option("--trial", help="Trial id, e.g. NB-NK-2026.")]
ByOpt = Annotated[str, typer.Option("--by", help="Who records it (name or role).")]
_DEFAULT_DATA = Path("trialdesk-data")


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


# ---------------------------------------------------------------------------
# The web application and its database: serve, db, audit.

db_app = typer.Typer(help="The database: migrations, protocols, users.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")

WebDataOpt = Annotated[Path, typer.Option(
    "--data-dir", envvar="TRIALDESK_DATA_DIR",
    help="Data directory: the SQLite database and the secret key (default ./data).")]
DatabaseOpt = Annotated[str | None, typer.Option(
    "--database-url", envvar="TRIALDESK_DATABASE_URL",
    help="Database URL, e.g. postgresql://user@host/db (default: SQLite in the data directory).")]


def _web_settings(data_dir: Path, database_url: str | None, **kwargs: Any) -> Any:
    import os

    from trialdesk.web.settings import Settings

    return Settings.for_data_dir(data_dir, database_url=database_url,
                                 secret_key=os.environ.get("TRIALDESK_SECRET_KEY"), **kwargs)


def _open_store(data_dir: Path, database_url: str | None) -> Any:
    from trialdesk.store import Store, sqlite_url

    return Store.open(database_url or sqlite_url(data_dir))


@app.command()
@domain_errors
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8000,
    data_dir: WebDataOpt = Path("data"),
    database_url: DatabaseOpt = None,
    demo_data: Annotated[bool, typer.Option("--demo", help="Load the demo trials, log-ins and "
                                                           "patients (once).")] = False,
    protocols: ProtocolsOpt = None,
    check: Annotated[bool, typer.Option("--check", help="Prepare everything, print the address "
                                                        "and log-ins, but do not serve.")] = False,
) -> None:
    """Start the web application (registry, screening, patients, audit trail)."""
    from trialdesk.web.app import create_app
    from trialdesk.web.demo import import_protocols, seed_demo

    settings = _web_settings(data_dir, database_url)
    store = _open_store(data_dir, settings.database_url)
    protocol_dir = protocols or default_protocol_dir()
    if demo_data:
        logins = seed_demo(store, protocol_dir, protocol_dir.parent / "examples" / "patients")
    else:
        import_protocols(store, protocol_dir)
        logins = []
    application = create_app(settings, store)
    url = f"http://{host if host not in ('0.0.0.0', '::') else '127.0.0.1'}:{port}/"
    typer.echo(f"trialdesk web application: {url}")
    typer.echo(f"database: {store.backend} ({settings.database_url.split('@')[-1]})")
    if logins:
        typer.echo("demo log-ins (user name / password):")
        for login in logins:
            typer.echo(f"  {login.username:<14} {login.password}")
    elif not store.users():
        typer.echo("no users yet: add one with `trialdesk db add-user`")
    if check:
        return
    import uvicorn

    uvicorn.run(application, host=host, port=port, log_level="info")


@db_app.command("upgrade")
@domain_errors
def db_upgrade(data_dir: WebDataOpt = Path("data"), database_url: DatabaseOpt = None) -> None:
    """Create the database or bring its schema to the newest migration."""
    from trialdesk.store.db import current_revision

    store = _open_store(data_dir, database_url)
    typer.echo(f"database schema at revision {current_revision(store.engine)} ({store.backend})")


@db_app.command("import-protocols")
@domain_errors
def db_import_protocols(data_dir: WebDataOpt = Path("data"), database_url: DatabaseOpt = None,
                        protocols: ProtocolsOpt = None) -> None:
    """Store the protocol files; a changed file becomes the trial's next protocol version."""
    from trialdesk.web.demo import import_protocols

    store = _open_store(data_dir, database_url)
    for trial_id in import_protocols(store, protocols or default_protocol_dir()):
        v = store.protocol_version(trial_id)
        typer.echo(f"{trial_id}: version {v.number} ({v.label})")


@db_app.command("add-user")
@domain_errors
def db_add_user(
    username: Annotated[str, typer.Argument(help="Log-in name.")],
    name: Annotated[str, typer.Option("--name", help="Full name, shown with signatures.")],
    trial: Annotated[list[str], typer.Option("--trial", help="Trial id (repeatable).")],
    role: Annotated[str, typer.Option("--role", help="administrator, investigator, coordinator, "
                                                     "pharmacist, monitor or statistician.")],
    password: Annotated[str, typer.Option("--password", prompt=True, hide_input=True,
                                          confirmation_prompt=True,
                                          envvar="TRIALDESK_NEW_PASSWORD")],
    site: Annotated[str | None, typer.Option("--site", help="Only this site.")] = None,
    data_dir: WebDataOpt = Path("data"),
    database_url: DatabaseOpt = None,
) -> None:
    """Add a user with a role in one or more trials."""
    from trialdesk.web.roles import Role
    from trialdesk.web.security import hash_password

    if role not in {r.value for r in Role}:
        raise typer.BadParameter(f"unknown role '{role}'", param_hint="--role")
    if len(password) < 12:
        raise typer.BadParameter("use at least 12 characters", param_hint="--password")
    store = _open_store(data_dir, database_url)
    for trial_id in trial:
        store.protocol_version(trial_id)  # every trial exists before anything is written
    store.add_user(username, name, hash_password(password), actor="cli",
                   reason="user added from the command line")
    for trial_id in trial:
        store.add_membership(username, trial_id, role, site, actor="cli",
                             reason="membership granted from the command line")
    typer.echo(f"added {username} as {role} in {', '.join(trial)}")


@audit_app.command("verify")
@domain_errors
def audit_verify(data_dir: WebDataOpt = Path("data"), database_url: DatabaseOpt = None) -> None:
    """Recompute the audit chain; exit 1 if any entry was edited or deleted."""
    store = _open_store(data_dir, database_url)
    report = store.verify_audit()
    if report.ok:
        typer.echo(f"audit trail intact: {report.entries} entries, head {report.head_hash}")
        return
    for problem in report.problems:
        _err(problem)
    typer.echo(f"audit trail BROKEN: {len(report.problems)} problems in {report.entries} entries")
    raise typer.Exit(1)


# --------------------------------------------------------------------------- population
population_app = typer.Typer(
    help="Population screening: every patient of a data set against every open trial.",
    no_args_is_help=True)
app.add_typer(population_app, name="population")

_TRIALS_HELP = "Trials: 'open' (recruiting or available), 'all', or trial ids separated by commas."


@population_app.command("screen")
@domain_errors
def population_screen(
    data: Annotated[Path, typer.Option("--data", help="Directory of OMOP-shaped Parquet tables.")],
    out: Annotated[Path, typer.Option("--out", help="Output directory (replaced at the end).")],
    engine: Annotated[str, typer.Option("--engine", help="duckdb (embedded) or spark.")] = "duckdb",
    trials: Annotated[str, typer.Option("--trials", help=_TRIALS_HELP)] = "open",
    on: Annotated[str | None, typer.Option("--on", help="Screening date or date-time (ISO).")] = None,
    incremental: Annotated[bool, typer.Option(
        "--incremental", help="Re-screen only patients whose data or result may have changed, "
                              "and trials whose protocol changed; keep the rest.")] = False,
    threads: Annotated[int | None, typer.Option("--threads", help="Engine threads.")] = None,
    memory_limit: Annotated[str, typer.Option("--memory-limit",
                                              help="DuckDB memory limit.")] = "6GB",
    protocols: ProtocolsOpt = None,
) -> None:
    """Screen a population; write one compact row per patient × trial and a summary."""
    import time

    from trialdesk.screening.console import RichProgress, summary_tables
    from trialdesk.screening.engine import ENGINES, make_engine
    from trialdesk.screening.run import screen_population, select_trials

    if engine not in ENGINES:
        raise typer.BadParameter(f"choose one of: {', '.join(ENGINES)}", param_hint="--engine")
    moment = parse_moment(on)
    chosen = select_trials(_protocols(protocols), trials)
    started = time.perf_counter()
    with make_engine(engine, threads=threads, memory_limit=memory_limit) as runner, \
            RichProgress(Console(stderr=True)) as bar:
        report = screen_population(runner, data=data, out=out, protocols=chosen, as_of=moment,
                                   incremental=incremental, progress=bar, clock=time.perf_counter,
                                   protocols_dir=protocols or default_protocol_dir())
    console = _console()
    for table in summary_tables(report.summary, report.manifest):
        console.print(table)
    pairs = report.persons * len(chosen)
    seconds = time.perf_counter() - started
    again = "" if report.rescreened is None else (
        f"; re-screened {report.rescreened:,} patients, kept {len(report.reused_trials)} trials' "
        "other results")
    phases = ", ".join(f"{name} {value:.1f} s" for name, value in report.seconds.items())
    console.print(f"{pairs:,} patient × trial pairs in {seconds:.1f} s "
                  f"({pairs / max(seconds, 1e-9):,.0f} pairs/s) with {engine} ({phases}){again}; "
                  f"output in {report.out}", highlight=False)


@population_app.command("explain")
@domain_errors
def population_explain(
    out: Annotated[Path, typer.Option("--out", help="Output directory of a screening run.")],
    patient: Annotated[str, typer.Option("--patient", help="person_id.")],
    trial: Annotated[str, typer.Option("--trial", help="Trial id.")],
    data: Annotated[Path | None, typer.Option(
        "--data", help="Tables (default: those the run read).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stable JSON document.")] = False,
    protocols: ProtocolsOpt = None,
) -> None:
    """Expand one patient × trial into the per-criterion explanation `screen` gives."""
    from trialdesk.screening.engine import DuckDBEngine
    from trialdesk.screening.output import read_manifest
    from trialdesk.screening.run import explain_pair
    from trialdesk.views import screening_report

    manifest = read_manifest(out)
    directory = protocols or (Path(manifest["protocols"]) if manifest and manifest.get(
        "protocols") else None)
    with DuckDBEngine(memory_limit=None) as runner:
        found = explain_pair(runner, out=out, patient=patient, trial=trial,
                             protocols=_protocols(directory), data=data)
    if as_json:
        doc = {"patient_id": found.result.patient_id, "results": [found.result.to_json()],
               "stored": found.stored, "agrees": found.agrees}
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False, default=str))
        return
    console = _console()
    screening_report(console, found.result)
    if found.stored is None:
        console.print("[yellow]The run has no row for this patient (not in the data then, or "
                      "born after the screening date).[/]")
    elif found.agrees:
        console.print(f"The population run's compact row agrees: {found.stored['verdict']}.",
                      highlight=False)
    else:
        console.print(f"[yellow]The population run recorded {found.stored['verdict']}; the data "
                      "and protocol now give the result above (one of them changed since the "
                      "run).[/]")


@population_app.command("synth")
@domain_errors
def population_synth(
    patients: Annotated[int, typer.Option("--patients", min=1, help="Number of patients.")],
    out: Annotated[Path, typer.Option("--out", help="New directory for the tables.")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 1,
    on: Annotated[str | None, typer.Option("--on", help="Intended screening date (ISO).")] = None,
    protocols: ProtocolsOpt = None,
) -> None:
    """Write a synthetic population as OMOP-shaped Parquet tables."""
    from trialdesk.screening.run import write_tables
    from trialdesk.screening.synth import synthesise

    moment = parse_moment(on)
    trials_for_consent = list(_protocols(protocols).values())
    counts = write_tables(out, synthesise(patients, seed=seed, on=moment.date(),
                                          trials=trials_for_consent))
    typer.echo(", ".join(f"{name}: {n:,} rows" for name, n in counts.items()) + f" in {out}")


@population_app.command("trials")
@domain_errors
def population_trials(
    variants: Annotated[int, typer.Option("--variants", min=0, help="How many variants.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the protocol files.")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 1,
    protocols: ProtocolsOpt = None,
) -> None:
    """Write the seed protocols and N synthetic variants of them (for scale tests)."""
    import yaml

    from trialdesk.protocol.load import protocol_from_data, read_document
    from trialdesk.screening.variants import make_variants

    source = protocols or default_protocol_dir()
    paths = sorted(p for p in source.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    seeds = [read_document(p) for p in paths]
    docs = make_variants(seeds, variants, seed=seed)
    for doc in docs:
        protocol_from_data(doc, source=doc["id"])
    out.mkdir(parents=True, exist_ok=True)
    for path, doc in zip(paths, seeds, strict=True):
        (out / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        del doc
    for doc in docs:
        (out / f"{doc['id']}.yaml").write_text(
            yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    typer.echo(f"{len(seeds)} seed protocols and {len(docs)} variants in {out}")


@population_app.command("sql")
@domain_errors
def population_sql(
    data: Annotated[Path, typer.Option("--data", help="Directory of OMOP-shaped Parquet tables.")],
    engine: Annotated[str, typer.Option("--engine", help="duckdb or spark.")] = "duckdb",
    trials: Annotated[str, typer.Option("--trials", help=_TRIALS_HELP)] = "open",
    on: Annotated[str | None, typer.Option("--on", help="Screening date or date-time (ISO).")] = None,
    protocols: ProtocolsOpt = None,
) -> None:
    """Print the SQL a screening would run (input tables are checked first)."""
    from trialdesk.screening.engine import ENGINES, DuckDBEngine
    from trialdesk.screening.plan import Flavour, build_plan
    from trialdesk.screening.run import gather_stats, load_inputs, select_trials

    if engine not in ENGINES:
        raise typer.BadParameter(f"choose one of: {', '.join(ENGINES)}", param_hint="--engine")
    chosen = select_trials(_protocols(protocols), trials)
    with DuckDBEngine(memory_limit=None) as runner:
        stats = gather_stats(runner, load_inputs(runner, data))
    plan = build_plan(chosen, as_of=parse_moment(on), flavour=Flavour(engine), stats=stats)
    typer.echo(plan.show())


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
