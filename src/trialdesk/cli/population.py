"""Population screening: population screen, explain, synth, trials, sql."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from trialdesk.cli.common import (
    ProtocolsOpt,
    _console,
    _protocols,
    app,
    domain_errors,
    parse_moment,
)
from trialdesk.protocol.paths import default_protocol_dir

if TYPE_CHECKING:
    from trialdesk.screening.concepts import ConceptMap
    from trialdesk.screening.engine import Engine

# --------------------------------------------------------------------------- population
population_app = typer.Typer(
    help="Population screening: every patient of a data set against every open trial.",
    no_args_is_help=True)
app.add_typer(population_app, name="population")

_TRIALS_HELP = "Trials: 'open' (recruiting or available), 'all', or trial ids separated by commas."
_DATA_HELP = ("OMOP CDM tables: a folder of Parquet or CSV files (one per table, or a folder per "
              "table), a DuckDB database file, or postgresql://user@host/db?schema=cdm "
              "(with --engine postgres).")


def _data(text: str) -> Path | str:
    return text if text.startswith(("postgresql://", "postgres://")) else Path(text)
_ON_HELP = ("Screening date or date-time (ISO), or 'data-end' for the data's latest "
            "observation_period_end_date.")
_RANGES_HELP = ("Reference ranges (CSV or Parquet: fact, sex, age_low_years, age_high_years, low, "
                "high, unit, source) for results without their own; default: the data's "
                "reference_range table.")
_CONCEPTS_HELP = "A concept map file extending the shipped one (same shape; see 'population concepts')."


def _reader(where: Path | str) -> Engine:
    """An engine to read ``where`` with: PostgreSQL for a database URL, else DuckDB."""
    from trialdesk.screening.engines import make_engine
    from trialdesk.screening.sources import is_url

    return make_engine("postgres" if is_url(where) else "duckdb", url=where, memory_limit=None)


def _moment(on: str | None, data: str) -> datetime:
    """``--on``: a date, a date-time, or ``data-end``."""
    if on != "data-end":
        return parse_moment(on)
    from trialdesk.screening.sources import data_end

    where = _data(data)
    with _reader(where) as runner:
        end = data_end(runner, where)
    return datetime.combine(end, datetime.min.time())


def _concept_map(path: Path | None) -> ConceptMap | None:
    if path is None:
        return None
    from trialdesk.screening.concepts import concept_map

    return concept_map(path)


@population_app.command("screen")
@domain_errors
def population_screen(
    data: Annotated[str, typer.Option("--data", help=_DATA_HELP)],
    out: Annotated[Path, typer.Option("--out", help="Output directory (replaced at the end).")],
    engine: Annotated[str, typer.Option("--engine",
                                        help="duckdb (embedded), spark or postgres.")] = "duckdb",
    trials: Annotated[str, typer.Option("--trials", help=_TRIALS_HELP)] = "open",
    on: Annotated[str | None, typer.Option("--on", help=_ON_HELP)] = None,
    incremental: Annotated[bool, typer.Option(
        "--incremental", help="Re-screen only patients whose data or result may have changed, "
                              "and trials whose protocol changed; keep the rest.")] = False,
    threads: Annotated[int | None, typer.Option("--threads", help="Engine threads.")] = None,
    memory_limit: Annotated[str, typer.Option("--memory-limit",
                                              help="DuckDB memory limit.")] = "6GB",
    concepts: Annotated[Path | None, typer.Option("--concepts", help=_CONCEPTS_HELP)] = None,
    ranges: Annotated[Path | None, typer.Option("--ranges", help=_RANGES_HELP)] = None,
    protocols: ProtocolsOpt = None,
) -> None:
    """Screen a population; write one compact row per patient × trial and a summary."""
    import time

    from trialdesk.screening.console import RichProgress, summary_tables
    from trialdesk.screening.engines import ENGINES, make_engine
    from trialdesk.screening.run import screen_population, select_trials

    if engine not in ENGINES:
        raise typer.BadParameter(f"choose one of: {', '.join(ENGINES)}", param_hint="--engine")
    moment = _moment(on, data)
    chosen = select_trials(_protocols(protocols), trials)
    started = time.perf_counter()
    with make_engine(engine, threads=threads, memory_limit=memory_limit, url=data) as runner, \
            RichProgress(Console(stderr=True)) as bar:
        report = screen_population(runner, data=_data(data), out=out, protocols=chosen, as_of=moment,
                                   incremental=incremental, progress=bar, clock=time.perf_counter,
                                   protocols_dir=protocols or default_protocol_dir(),
                                   concepts=_concept_map(concepts), ranges=ranges)
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
               "stored": found.stored, "agrees": found.agrees, "reference_ranges": found.ranges}
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False, default=str))
        return
    console = _console()
    screening_report(console, found.result)
    for lab, source in found.ranges.items():
        console.print(f"Reference range of the latest {lab} result: {source}.", highlight=False)
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
    data: Annotated[str, typer.Option("--data", help=_DATA_HELP)],
    engine: Annotated[str, typer.Option("--engine", help="duckdb, spark or postgres.")] = "duckdb",
    trials: Annotated[str, typer.Option("--trials", help=_TRIALS_HELP)] = "open",
    on: Annotated[str | None, typer.Option("--on", help=_ON_HELP)] = None,
    protocols: ProtocolsOpt = None,
) -> None:
    """Print the SQL a screening would run (input tables are checked first)."""
    from trialdesk.screening.engines import ENGINES
    from trialdesk.screening.plan import Flavour, build_plan
    from trialdesk.screening.run import gather_stats, load_inputs, select_trials

    if engine not in ENGINES:
        raise typer.BadParameter(f"choose one of: {', '.join(ENGINES)}", param_hint="--engine")
    chosen = select_trials(_protocols(protocols), trials)
    where = _data(data)
    with _reader(where) as runner:
        stats = gather_stats(runner, load_inputs(runner, where))
    plan = build_plan(chosen, as_of=_moment(on, data), flavour=Flavour(engine), stats=stats)
    typer.echo(plan.show())


@population_app.command("concepts")
@domain_errors
def population_concepts(
    concepts: Annotated[Path | None, typer.Option("--concepts", help=_CONCEPTS_HELP)] = None,
) -> None:
    """Print the concept map: which OMOP concepts carry which fact, and the source of each."""
    from rich.table import Table

    from trialdesk.screening.concepts import concept_map

    cmap = concept_map(concepts)
    table = Table("kind", "fact", "concept id", "meaning", "source", title=f"Concept map ({cmap.where})")
    for row in cmap.rows():
        table.add_row(*row)
    _console().print(table)


@population_app.command("coverage")
@domain_errors
def population_coverage(
    data: Annotated[str, typer.Option("--data", help=_DATA_HELP)],
    trials: Annotated[str, typer.Option("--trials", help=_TRIALS_HELP)] = "open",
    concepts: Annotated[Path | None, typer.Option("--concepts", help=_CONCEPTS_HELP)] = None,
    ranges: Annotated[Path | None, typer.Option("--ranges", help=_RANGES_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    protocols: ProtocolsOpt = None,
) -> None:
    """Per fact the trials need, how many persons have a value; unmapped concepts and units."""
    from rich.table import Table

    from trialdesk.screening.coverage import coverage
    from trialdesk.screening.run import load_inputs, select_trials

    chosen = select_trials(_protocols(protocols), trials)
    where = _data(data)
    with _reader(where) as runner:
        inputs = load_inputs(runner, where, concepts=_concept_map(concepts), ranges=ranges)
        report = coverage(runner, inputs, chosen)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2, default=str))
        return
    console = _console()
    facts = Table("fact", "persons with a value", title=f"Facts the trials need ({report.persons:,} persons)")
    for fact, n in report.facts.items():
        facts.add_row(fact, "derived, or per trial (not counted)" if n is None else f"{n:,}")
    console.print(facts)
    for name, rows in report.unmapped.items():
        unmapped = Table("concept id", "name", "rows", title=f"{name}: concepts mapped to no fact (top)")
        for concept, label, count in rows:
            unmapped.add_row(str(concept), label or "", f"{count:,}")
        console.print(unmapped)
    if report.ranges:
        used = Table("fact", "reference range", "results", title="Reference ranges of the results")
        for fact, source, count in report.ranges:
            used.add_row(fact, source or "none (× ULN unknown)", f"{count:,}")
        console.print(used)
    if report.units:
        units = Table("fact", "concept id", "unit", "rows", "reason", title="Units that cannot be converted")
        for fact, concept, unit, count, reason in report.units:
            units.add_row(fact, str(concept), str(unit), f"{count:,}", reason)
        console.print(units)
