"""Grading, adverse events, safety rules and tumour response: grade, ae, safety, response."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from trialdesk.cli.common import (
    JsonOpt,
    ProtocolsOpt,
    TrialOpt,
    _console,
    _mark,
    _protocols,
    _say,
    _trial,
    app,
    domain_errors,
)
from trialdesk.errors import NotFoundError

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
    anticoagulation: Annotated[bool | None, typer.Option(
        "--anticoagulation/--no-anticoagulation",
        help="On anticoagulation (INR is then graded x baseline); unset leaves it open.")] = None,
    physiologic: Annotated[bool | None, typer.Option(
        "--physiologic-consequences/--no-physiologic-consequences",
        help="Physiologic consequences, where the term needs them (hyperuricemia).")] = None,
    bleeding: Annotated[bool | None, typer.Option("--bleeding/--no-bleeding",
                                                   help="Bleeding (aPTT, INR grade 3).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Grade a lab value by CTCAE v5.0 (an undecided grade lists the possible ones)."""
    from trialdesk.clinical.ctcae import grade_lab

    g = grade_lab(term, value, unit, lln=lln, uln=uln, baseline=baseline, symptomatic=symptomatic,
                  anticoagulation=anticoagulation, physiologic_consequences=physiologic, bleeding=bleeding)
    if as_json:
        typer.echo(json.dumps({"term": g.term, "value": g.value, "unit": g.unit, "grade": g.grade,
                               "possible_grades": list(g.possible_grades), "rule": g.rule,
                               "missing": list(g.missing), "raised_if": list(g.raised_if),
                               "ctcae_version": g.ctcae_version, "source": g.source},
                              indent=2, ensure_ascii=False))
        return
    console = _console()
    _grade_line(console, f"{g.term} {g.value:g} {g.unit} (CTCAE v{g.ctcae_version})", g.grade,
                g.possible_grades, g.rule, g.source, g.missing)
    for criterion in g.raised_if:
        _say(console, f"  for the clinician: {criterion}", "yellow")


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
    from trialdesk.protocol.load import read_document

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
    from trialdesk.protocol.load import read_document

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
