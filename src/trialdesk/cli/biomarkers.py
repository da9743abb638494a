"""Biomarker analyses from files: biomarkers subgroup|cox|forest|longitudinal|free-days;
and samples and results on the record: sample record|list, biomarkers result record.

The analyses read the documented event table (``examples/outcomes/README.md``) and the
biomarker table or organ-support episodes of ``docs/biomarkers.md``, not the database.
Missing biomarker values are listed, never imputed. Samples and results are recorded on
the database through the services, acting as ``--by USER`` (:mod:`trialdesk.cli.session`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from trialdesk.cli.common import (
    JsonOpt,
    ProtocolsOpt,
    TrialOpt,
    _console,
    _protocols,
    _say,
    _trial,
    app,
    domain_errors,
    write_atomic,
)
from trialdesk.cli.outcomes import _frame_table, _read_table, outcome_errors
from trialdesk.cli.session import DEFAULT_DATA_DIR, DatabaseOpt, DataDirOpt, ReasonOpt, UserOpt, reason_given

biomarkers_app = typer.Typer(
    help="Biomarker analyses: subgroups, Cox, forest plots, longitudinal markers, free days.",
    no_args_is_help=True)
app.add_typer(biomarkers_app, name="biomarkers")

EventsOpt = Annotated[Path, typer.Option("--events", help="Event table (CSV or Parquet).")]
BiomarkersOpt = Annotated[Path, typer.Option(
    "--biomarkers", help="Biomarker table (CSV or Parquet; docs/biomarkers.md).")]
EndpointOpt = Annotated[str, typer.Option("--endpoint", help="OS, PFS, EFS or RFS.")]
CutOpt = Annotated[list[str] | None, typer.Option(
    "--cut", help="NAME=VALUE: split a numeric biomarker at VALUE (< and ≥); repeatable.")]
UnitOpt = Annotated[str, typer.Option("--time-unit", help="months or days.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Plot file: .png, .svg or .pdf.")]


def _events(trial: str, events: Path, protocols: Path | None) -> Any:
    from trialdesk.outcomes.events import EventTableError, validate_event_table

    compiled = _trial(_protocols(protocols), trial)
    try:
        table = validate_event_table(_read_table(events), arms=[a.id for a in compiled.protocol.arms])
    except EventTableError as exc:
        raise EventTableError(exc.problems, where=str(events)) from None
    return compiled, table


def _biomarker_table(path: Path) -> Any:
    from trialdesk.outcomes.biomarkers import validate_biomarkers

    return validate_biomarkers(_read_table(path), where=str(path))


def _endpoint(table: Any, name: str) -> Any:
    from trialdesk.outcomes import endpoints

    chosen = {"OS": endpoints.overall_survival, "PFS": endpoints.progression_free_survival,
              "EFS": endpoints.event_free_survival, "RFS": endpoints.relapse_free_survival}
    if name.upper() not in chosen:
        raise typer.BadParameter("choose OS, PFS, EFS or RFS", param_hint="--endpoint")
    return chosen[name.upper()](table)


def _duration(unit: str) -> str:
    if unit not in ("months", "days"):
        raise typer.BadParameter("choose months or days", param_hint="--time-unit")
    return f"time_{unit}"


def _cuts(values: list[str] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for text in values or []:
        name, _, number = text.partition("=")
        try:
            out[name.strip()] = float(number)
        except ValueError:
            raise typer.BadParameter(f"{text!r}: expected NAME=NUMBER", param_hint="--cut") from None
    return out


def _names(text: str, option: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise typer.BadParameter("name at least one biomarker", param_hint=option)
    return names


def _records(frame: Any) -> list[dict[str, Any]]:
    """A DataFrame as JSON-ready rows: NaN and <NA> become null."""
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in rows]


def _emit(document: dict[str, Any]) -> None:
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))


def _plot(figure: Any, out: Path) -> None:
    from trialdesk.outcomes.plots import FORMATS, render

    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise typer.BadParameter("the file must end in .png, .svg or .pdf", param_hint="--out")
    write_atomic(out, render(figure, fmt))
    typer.echo(f"wrote {out}")


def _missing(console: Any, lines: list[str]) -> None:
    for line in lines:
        _say(console, f"missing, not imputed — {line}", "yellow")


@biomarkers_app.command("subgroup")
@outcome_errors
def subgroup_cmd(
    trial: TrialOpt, events: EventsOpt, biomarkers: BiomarkersOpt,
    biomarker: Annotated[str, typer.Option("--biomarker", help="The biomarker defining the subgroups.")],
    cut: CutOpt = None, endpoint: EndpointOpt = "OS", time_unit: UnitOpt = "months",
    out: OutOpt = None, as_json: JsonOpt = False, protocols: ProtocolsOpt = None,
) -> None:
    """Kaplan–Meier by biomarker level and the log-rank test across levels."""
    from trialdesk.outcomes.biomarkers import join_baseline, subgroup_survival

    compiled, table = _events(trial, events, protocols)
    tte = _endpoint(table, endpoint)
    joined = join_baseline(tte, _biomarker_table(biomarkers), [biomarker], cuts=_cuts(cut))
    result = subgroup_survival(joined, biomarker, duration_col=_duration(time_unit))
    lr = result.logrank
    if as_json:
        _emit({"trial": compiled.id, "endpoint": tte.name, "biomarker": biomarker,
               "time_unit": time_unit, "km": _records(result.km.summary.reset_index()),
               "logrank": {"statistic": lr.test_statistic, "df": lr.degrees_of_freedom,
                           "p": lr.p_value}, "missing": list(result.missing)})
    else:
        console = _console()
        console.print(_frame_table(result.km.summary.reset_index(),
                                   f"{tte.name} by {biomarker} ({time_unit}, median and 95% CI)"))
        _say(console, f"log-rank across {', '.join(lr.groups)}: χ² = {lr.test_statistic:.3f}, "
                      f"df = {lr.degrees_of_freedom}, p = {lr.p_value:.4f}")
        _missing(console, joined.missing_text())
    if out is not None:
        from trialdesk.outcomes.plots import km_figure

        _plot(km_figure(result.km, title=f"{tte.name} by {biomarker} — {compiled.id}",
                        y_label=f"{tte.name} probability", time_unit=time_unit, logrank=lr), out)


@biomarkers_app.command("cox")
@outcome_errors
def cox_cmd(
    trial: TrialOpt, events: EventsOpt, biomarkers: BiomarkersOpt,
    covariates: Annotated[str, typer.Option("--covariates", help="Biomarkers, comma-separated.")],
    cut: CutOpt = None, endpoint: EndpointOpt = "OS", time_unit: UnitOpt = "months",
    as_json: JsonOpt = False, protocols: ProtocolsOpt = None,
) -> None:
    """Cox model of the arm and biomarker covariates, with the proportional-hazards test."""
    from trialdesk.outcomes.biomarkers import cox_with_biomarkers, join_baseline

    compiled, table = _events(trial, events, protocols)
    tte = _endpoint(table, endpoint)
    names = _names(covariates, "--covariates")
    joined = join_baseline(tte, _biomarker_table(biomarkers), names, cuts=_cuts(cut))
    result = cox_with_biomarkers(joined, names, duration_col=_duration(time_unit))
    hr = result.cox.hazard_ratios_.reset_index()
    ph = result.ph_test.reset_index()
    if as_json:
        _emit({"trial": compiled.id, "endpoint": tte.name, "n": result.cox.n,
               "events": result.cox.events, "hazard_ratios": _records(hr),
               "proportional_hazards": _records(ph), "violations": result.ph_violations,
               "missing": list(result.missing)})
        return
    console = _console()
    console.print(_frame_table(hr, f"Cox model, {tte.name}: {result.cox.n} patients, "
                                   f"{result.cox.events} events"))
    console.print(_frame_table(ph, "Proportional hazards (scaled Schoenfeld residuals, KM time)"))
    if result.ph_violations:
        _say(console, "proportional hazards doubtful (p < 0.05) for: "
             + ", ".join(result.ph_violations), "yellow")
    _missing(console, joined.missing_text())


@biomarkers_app.command("forest")
@outcome_errors
def forest_cmd(
    trial: TrialOpt, events: EventsOpt, biomarkers: BiomarkersOpt,
    subgroups: Annotated[str, typer.Option("--subgroups", help="Biomarkers, comma-separated.")],
    measure: Annotated[str, typer.Option("--measure", help="hr (hazard ratio) or response.")] = "hr",
    cut: CutOpt = None, endpoint: EndpointOpt = "OS", time_unit: UnitOpt = "months",
    out: OutOpt = None, as_json: JsonOpt = False, protocols: ProtocolsOpt = None,
) -> None:
    """Hazard ratios or response rates by subgroup, with CIs and the interaction test."""
    from trialdesk.outcomes.biomarkers import forest_hazard_ratios, forest_response_rates, join_baseline
    from trialdesk.outcomes.endpoints import objective_response_rate

    compiled, table = _events(trial, events, protocols)
    names = _names(subgroups, "--subgroups")
    data = _biomarker_table(biomarkers)
    if measure == "hr":
        tte = _endpoint(table, endpoint)
        joined = join_baseline(tte, data, names, cuts=_cuts(cut))
        forest = forest_hazard_ratios(joined, names, duration_col=_duration(time_unit))
        title = f"{tte.name} hazard ratio by subgroup — {compiled.id}"
    elif measure == "response":
        orr = objective_response_rate(table)
        population = orr.table[orr.table["in_denominator"]].rename(columns={"counted": "responder"})
        joined = join_baseline(population, data, names, cuts=_cuts(cut))
        forest = forest_response_rates(joined, names)
        title = f"Objective response rate by subgroup — {compiled.id}"
    else:
        raise typer.BadParameter("choose hr or response", param_hint="--measure")
    if as_json:
        _emit({"trial": compiled.id, "measure": forest.measure, "rows": _records(forest.rows),
               "interaction": _records(forest.interaction),
               "missing": {k: list(v) for k, v in forest.missing.items()}})
    else:
        console = _console()
        console.print(_frame_table(forest.rows, title))
        console.print(_frame_table(forest.interaction, "Interaction tests"))
        _missing(console, joined.missing_text())
    if out is not None:
        from trialdesk.outcomes.biomarker_plots import forest_figure

        _plot(forest_figure(forest, title=title), out)


@biomarkers_app.command("longitudinal")
@outcome_errors
def longitudinal_cmd(
    trial: TrialOpt, events: EventsOpt, biomarkers: BiomarkersOpt,
    biomarker: Annotated[str, typer.Option("--biomarker", help="The biomarker to follow.")],
    days: Annotated[str | None, typer.Option("--days", help="Study days, e.g. 1,2,3,7,14,28.")] = None,
    log10: Annotated[bool, typer.Option("--log10", help="Analyse log10 values.")] = False,
    spaghetti: Annotated[Path | None, typer.Option("--spaghetti", help="Spaghetti plot file.")] = None,
    mean_plot: Annotated[Path | None, typer.Option("--mean-plot", help="Mean ± CI plot file.")] = None,
    as_json: JsonOpt = False, protocols: ProtocolsOpt = None,
) -> None:
    """A biomarker over study days by arm: summaries, Mann–Whitney per day, mixed model."""
    from trialdesk.outcomes.biomarkers import longitudinal, mixed_model_formula

    compiled, table = _events(trial, events, protocols)
    try:
        wanted = [int(d) for d in days.split(",")] if days else None
    except ValueError:
        raise typer.BadParameter(f"{days!r} is not a list of whole days", param_hint="--days") from None
    arms = dict(zip(table.frame["patient_id"], table.frame["arm"], strict=True))
    result = longitudinal(_biomarker_table(biomarkers), arms, biomarker, days=wanted, log10=log10)
    mixed = None if result.mixed is None else _records(result.mixed.reset_index())
    if as_json:
        _emit({"trial": compiled.id, "biomarker": biomarker, "log10": log10,
               "summary": _records(result.summary), "mann_whitney": _records(result.comparison),
               "mixed_model": {"formula": mixed_model_formula(), "fixed_effects": mixed,
                               "note": result.mixed_note}})
    else:
        console = _console()
        scale = "log10 " if log10 else ""
        console.print(_frame_table(result.summary, f"{scale}{biomarker} by arm and day "
                                                   "(missing = patients without a value)"))
        if not result.comparison.empty:
            console.print(_frame_table(result.comparison, "Mann–Whitney U per day (two-sided)"))
        if result.mixed is not None:
            console.print(_frame_table(result.mixed.reset_index(),
                                       f"Linear mixed model {mixed_model_formula()}"))
        _say(console, result.mixed_note, "dim")
    for path, draw in ((spaghetti, "spaghetti_figure"), (mean_plot, "mean_ci_figure")):
        if path is not None:
            from trialdesk.outcomes import biomarker_plots

            _plot(getattr(biomarker_plots, draw)(result), path)


@biomarkers_app.command("free-days")
@outcome_errors
def free_days_cmd(
    trial: TrialOpt, events: EventsOpt,
    episodes: Annotated[Path, typer.Option("--episodes", help="Organ-support episodes (CSV).")],
    support: Annotated[str, typer.Option(
        "--support", help="ventilation, invasive_ventilation or rrt.")] = "ventilation",
    window: Annotated[int, typer.Option("--window", help="Days of the window.")] = 28,
    as_json: JsonOpt = False, protocols: ProtocolsOpt = None,
) -> None:
    """Ventilation- or RRT-free days to day 28 per patient (death = 0) and by arm."""
    from trialdesk.outcomes.biomarkers import compare_free_days, free_days_table

    compiled, table = _events(trial, events, protocols)
    frame = table.frame
    spans = _read_table(episodes)
    known = set(frame["patient_id"])
    strangers = sorted(set(spans.get("patient_id", [])) - known)
    if strangers:
        from trialdesk.errors import OutcomeError

        raise OutcomeError(f"patients not in the event table: {', '.join(strangers)}",
                           where=str(episodes))
    per_patient = free_days_table(frame, spans, support, window=window)
    summary = compare_free_days(per_patient)
    if as_json:
        _emit({"trial": compiled.id, "support": support, "window_days": window,
               "patients": _records(per_patient), "summary": summary})
        return
    console = _console()
    console.print(_frame_table(per_patient, f"{support.replace('_', ' ')}-free days to day {window}"))
    for arm, s in summary["arms"].items():
        _say(console, f"{arm}: n = {s['n']}, median {s['median']:g} (IQR {s['q1']:g}–{s['q3']:g})")
    if "mann_whitney" in summary:
        _say(console, f"Mann–Whitney U = {summary['mann_whitney']['U']:g}, "
                      f"p = {summary['mann_whitney']['p']:.4f}")
    if summary["unknown"]:
        _say(console, f"{summary['unknown']} patient(s) with unknown free days (alive, lost "
                      "before the window ended): left out, not imputed", "yellow")


# --- samples and results on the record (the database, acting as --by USER) ----------------

sample_app = typer.Typer(
    help="Biomarker samples on the record: record one for a sampling event, list them.",
    no_args_is_help=True)
app.add_typer(sample_app, name="sample")
result_app = typer.Typer(help="A sample's results on the record.", no_args_is_help=True)
biomarkers_app.add_typer(result_app, name="result")

_Detail = Annotated[str | None, typer.Option(help="Optional detail.")]


def _record_session(by: str, data_dir: Path, database: str | None) -> tuple[Any, Any]:
    from trialdesk.cli.session import acting, open_services

    ctx = open_services(data_dir, database)
    return ctx, acting(ctx, by)


def _sample_line(s: dict[str, Any]) -> str:
    results = "; ".join(f"{r['fact']} {r['value']}{' ' + r['unit'] if r.get('unit') else ''}"
                        f"{' (revision ' + str(r['revision']) + ')' if r['revision'] > 1 else ''}"
                        for r in s["results"]) or "no result yet"
    return (f"{s['sample_id']}  {s['event_id']}  collected {s['collected_at']}  "
            f"{s['specimen']}{', ' + s['tube'] if s.get('tube') else ''}  — {results}")


@sample_app.command("record")
@domain_errors
def sample_record_cmd(
    study_number: Annotated[str, typer.Argument(help="The patient's study number.")],
    event: Annotated[str, typer.Option("--event", help="The sampling event's id on the calendar.")],
    sample_id: Annotated[str, typer.Option("--sample-id", help="The identifier on the tube label.")],
    at: Annotated[str, typer.Option("--at", help="Collected at (ISO date-time, UTC).")],
    by: UserOpt,
    specimen: Annotated[str | None, typer.Option(
        "--specimen", help="Specimen (default: the protocol's for the event).")] = None,
    tube: Annotated[str | None, typer.Option("--tube", help="Tube (default: the protocol's).")] = None,
    processing: Annotated[str | None, typer.Option("--processing", help="How it was processed.")] = None,
    storage: Annotated[str | None, typer.Option("--storage", help="Where it is stored.")] = None,
    taken_by: Annotated[str | None, typer.Option("--taken-by", help="Who took it (default: you).")] = None,
    reason: ReasonOpt = "sample taken",
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Record a sample taken for a sampling event of the patient's calendar."""
    from trialdesk.cli.patients import iso_moment
    from trialdesk.services import biomarkers

    ctx, who = _record_session(by, data_dir, database)
    doc = biomarkers.record_sample(ctx, who, study_number, event_id=event, sample_id=sample_id,
                                   collected_at=iso_moment(at, "--at"), specimen=specimen,
                                   tube=tube, processing=processing, storage=storage,
                                   by=taken_by, reason=reason_given(reason))
    if as_json:
        _emit(doc)
        return
    _say(_console(), f"recorded sample {doc['sample_id']} for {doc['event']}", "bold")


@sample_app.command("list")
@domain_errors
def sample_list_cmd(
    study_number: Annotated[str, typer.Argument(help="The patient's study number.")],
    by: UserOpt,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """The patient's samples with their current results."""
    from trialdesk.services import biomarkers

    ctx, who = _record_session(by, data_dir, database)
    items = biomarkers.patient_samples(ctx, who, study_number)
    if as_json:
        _emit({"study_number": study_number, "items": items})
        return
    console = _console()
    if not items:
        _say(console, f"{study_number}: no sample recorded")
    for s in items:
        _say(console, _sample_line(s))


@result_app.command("record")
@domain_errors
def result_record_cmd(
    sample_id: Annotated[str, typer.Argument(help="The sample's identifier.")],
    fact: Annotated[str, typer.Option("--fact", help="The fact of the dictionary, e.g. il6.")],
    value: Annotated[str, typer.Option("--value", help="The result: a number or an allowed value.")],
    by: UserOpt,
    unit: Annotated[str | None, typer.Option("--unit", help="Unit (default: the fact's).")] = None,
    method: Annotated[str | None, typer.Option("--method", help="Method, e.g. ELISA.")] = None,
    site: Annotated[str | None, typer.Option("--site", help="GD2: the lesion or site.")] = None,
    ratio: Annotated[str | None, typer.Option(
        "--ratio", help="ADCC / NK lysis: the effector:target ratio, e.g. 10:1.")] = None,
    reported_at: Annotated[str | None, typer.Option(
        "--reported-at", help="Reported at (ISO date-time; default now).")] = None,
    corrects: Annotated[int | None, typer.Option(
        "--corrects", help="The revision this result corrects (give --reason).")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (a correction needs it).")] = None,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Record a result of a sample, or correct one (--corrects REVISION --reason ...)."""
    from trialdesk.cli.patients import iso_moment
    from trialdesk.services import biomarkers

    ctx, who = _record_session(by, data_dir, database)
    doc = biomarkers.record_result(
        ctx, who, sample_id, fact=fact, value=value, unit=unit, method=method, site=site,
        effector_target_ratio=ratio,
        reported_at=iso_moment(reported_at, "--reported-at") if reported_at else None,
        corrects=corrects, reason=reason)
    if as_json:
        _emit(doc)
        return
    _say(_console(), _sample_line(doc), "bold")


@biomarkers_app.command("stored")
@domain_errors
def stored_cmd(
    trial: Annotated[str, typer.Option("--trial", help="Trial id, e.g. RuMCeSS.")],
    by: UserOpt,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """The biomarker analyses of the stored record, as on the outcomes page (de-identified)."""
    import pandas as pd

    from trialdesk.services import biomarkers

    ctx, who = _record_session(by, data_dir, database)
    section = biomarkers.outcomes_section(ctx, who, trial)
    if as_json:
        _emit({"trial": trial, **section})
        return
    console = _console()
    for t in section["tables"]:
        console.print(_frame_table(pd.DataFrame(t["rows"], columns=t["columns"]), t["title"]))
        _say(console, t["note"], "dim")
    _missing(console, section["notes"])
