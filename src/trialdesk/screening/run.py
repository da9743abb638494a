"""Population screening end to end: tables in, compact results and a summary out.

:func:`screen_population` reads the OMOP-shaped Parquet tables of a data directory,
checks them, compiles the trials into one plan, runs it on an engine and writes the
output directory (:mod:`trialdesk.screening.output`) in one move. :func:`explain_pair`
expands one patient × trial of a finished run into the per-criterion explanation
``trialdesk screen`` gives, from the same data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

from trialdesk.criteria.verdict import ScreeningResult, screen_record
from trialdesk.errors import FactError, NotFoundError, ScreeningError
from trialdesk.facts.patient import PatientRecord
from trialdesk.protocol.load import CompiledProtocol
from trialdesk.screening import checks, sources
from trialdesk.screening.cdm import (
    RANGE_COLUMNS,
    VOCABULARY,
    Translator,
    is_coded,
    range_overlap_query,
    ranged_measurement_sql,
    ranges_sql,
    text_number_query,
)
from trialdesk.screening.concepts import ConceptMap, concept_map, lab_facts
from trialdesk.screening.engine import Engine
from trialdesk.screening.incremental import change_sql, fingerprint_sql
from trialdesk.screening.omop import TABLES, records_from_rows
from trialdesk.screening.output import (
    MANIFEST,
    SCHEMA,
    SCREENING,
    STATE,
    SUMMARY,
    TrialIndex,
    read_manifest,
    staged,
    summarise,
    trial_dir,
    trial_index,
    write_json,
)
from trialdesk.screening.plan import XULN_LABS, InputStats, PopulationPlan, build_plan
from trialdesk.screening.postgres import redacted

OPEN_STATUSES = frozenset({"RECRUITING", "NOT_YET_RECRUITING", "ENROLLING_BY_INVITATION",
                           "AVAILABLE"})


class Progress(Protocol):
    """Where a run reports what it is doing (the CLI shows a progress bar)."""

    def phase(self, description: str, total: int | None = None) -> None: ...

    def advance(self, steps: int = 1) -> None: ...


class _Quiet:
    def phase(self, description: str, total: int | None = None) -> None:
        del description, total

    def advance(self, steps: int = 1) -> None:
        del steps


def select_trials(protocols: Mapping[str, CompiledProtocol], which: str = "open"
                  ) -> list[CompiledProtocol]:
    """``open`` (registry status recruiting, not yet recruiting, by invitation or
    available), ``all``, or a comma-separated list of trial ids."""
    if which == "open":
        return [c for c in protocols.values()
                if c.protocol.registry.status.overall_status in OPEN_STATUSES]
    if which == "all":
        return list(protocols.values())
    chosen = []
    for trial_id in (t.strip() for t in which.split(",") if t.strip()):
        if trial_id not in protocols:
            raise NotFoundError(f"no trial '{trial_id}'; known: {', '.join(sorted(protocols))}")
        chosen.append(protocols[trial_id])
    return chosen


# ---------------------------------------------------------------------------
# Input


def load_inputs(engine: Engine, data: Path | str, *, check_rows: bool = True,
                concepts: ConceptMap | None = None, ranges: Path | None = None
                ) -> dict[str, checks.TableInput]:
    """Register the tables of ``data`` on ``engine`` and check them; FactError on bad input.

    Tables coded with OMOP concept ids are translated first (:mod:`trialdesk.screening.cdm`)
    through ``concepts`` (default: the shipped concept map). ``check_rows=False`` checks the
    columns only (for looking up one patient). Reference ranges for results without one come
    from ``ranges`` (a CSV or Parquet file) or else a ``reference_range`` table in ``data``."""
    found = sources.register(engine, data)
    if ranges is not None:
        found["reference_range"] = sources.register_file(engine, "reference_range", ranges)
    vocabulary = {v: sources.has_rows(engine, f"omop_{v}") for v in VOCABULARY if v in found}
    translator = Translator(concepts or concept_map(), engine.flavour, vocabulary)
    coded = {name for name, src in found.items() if is_coded(name, src.families)}
    if coded or (("person" in found) and "birth_datetime" in found["person"].families):
        coded.add("person")
    inputs: dict[str, checks.TableInput] = {}
    for name, spec in TABLES.items():
        if name not in found:
            continue
        where = found[name].where
        view = f"raw_{name}_unranged" if name == "measurement" and "reference_range" in found \
            else f"raw_{name}"
        if name in coded:
            engine.view(view, translator.table(name, found[name].families))
        else:
            engine.view(view, f"SELECT * FROM omop_{name}")
        if view != f"raw_{name}":
            _add_ranges(engine, found["reference_range"], view)
        families = sources.families_of(engine, f"raw_{name}")

        def example(table: str = name) -> dict[str, Any]:
            rows = engine.dicts(f"SELECT * FROM raw_{table} LIMIT 1")
            return rows[0] if rows else {}

        table = checks.check_schema(spec, where, families, example)
        row_checks = checks.row_checks(table, engine.flavour) if check_rows else []
        if row_checks:
            *counts, low, high = engine.rows(
                checks.checks_query(table, row_checks, engine.flavour))[0]
            for check, count in zip(row_checks, counts, strict=True):
                if count:
                    row = engine.dicts(checks.example_query(name, check.bad))[0]
                    raise checks.failure(table, check, int(count), row)
            table = dataclasses.replace(table, id_range=(low, high))
        inputs[name] = table
        if name == "person" and check_rows:
            duplicate = engine.rows(checks.duplicate_query(table, engine.flavour))
            if duplicate:
                raise FactError(f"person_id {duplicate[0][0]!r} appears more than once",
                                where=f"{where}: person.person_id")
        if name == "measurement" and name in coded and check_rows:
            bad = engine.rows(text_number_query())
            if bad:
                concept, text, count, example_id = bad[0]
                raise FactError(f"value {text!r} is not a number (concept {concept}, {count} rows; "
                                f"e.g. measurement_id {example_id})",
                                where=f"{where}: measurement.value_as_number")
        engine.view(f"src_{name}", checks.typed_view(table, engine.flavour))
    return inputs


def _add_ranges(engine: Engine, ranges: sources.Source, unranged: str) -> None:
    """``raw_measurement`` over ``unranged`` with reference ranges from the range table where
    a result has none; FactError on a bad or overlapping range table."""
    missing = [c for c in RANGE_COLUMNS if c not in ranges.families]
    if missing:
        raise FactError(f"missing column(s) {', '.join(missing)}; a reference-range table has: "
                        f"{', '.join(RANGE_COLUMNS)}", where=ranges.where)
    engine.materialise("td_ranges", ranges_sql("omop_reference_range", engine.flavour))
    labs = ", ".join(f"'{f}'" for f in lab_facts())
    bad = engine.dicts(
        f"SELECT * FROM td_ranges WHERE fact IS NULL OR fact NOT IN ({labs}) OR high IS NULL "
        "OR high <= 0 OR (low IS NOT NULL AND low > high) OR source IS NULL OR trim(source) = '' "
        "OR (sex IS NOT NULL AND sex NOT IN ('male', 'female')) LIMIT 1")
    if bad:
        raise FactError("a range needs a laboratory fact, sex male/female or empty, a positive "
                        f"high above its low, and a source; example row: {checks.format_row(bad[0])}",
                        where=ranges.where)
    columns = list(sources.families_of(engine, unranged))
    engine.view("raw_measurement", ranged_measurement_sql(columns, engine.flavour))
    overlap = engine.rows(range_overlap_query())
    if overlap:
        measurement_id, fact, count = overlap[0]
        raise FactError(f"{count} ranges fit measurement_id {measurement_id} ({fact}); ranges "
                        "of one fact, unit and sex must not overlap in age", where=ranges.where)


def gather_stats(engine: Engine, inputs: Mapping[str, checks.TableInput]) -> InputStats:
    """Units, id ranges and per-trial observations; FactError on a unit or value problem."""
    units: dict[str, set[str | None]] = {}
    for table, sql in checks.unit_stats_queries(inputs).items():
        seen, problems = checks.check_units(table, engine.rows(sql), engine.flavour)
        for fact, spellings in seen.items():
            units.setdefault(fact, set()).update(spellings)
        if problems:
            problem = problems[0]
            row = engine.dicts(f"SELECT * FROM src_{table} WHERE {problem.condition} LIMIT 1")
            per_concept = ""
            if "concept_id" in engine.dicts(f"SELECT * FROM raw_{table} LIMIT 1")[0]:
                counted = engine.rows(f"SELECT concept_id, count(*) FROM raw_{table} WHERE "
                                      f"{problem.condition} GROUP BY concept_id ORDER BY 2 DESC")
                per_concept = " (" + ", ".join(f"concept {c}: {n} rows" for c, n in counted) + ")"
            raise FactError(f"{problem.reason}{per_concept}; example row: "
                            f"{checks.format_row(row[0] if row else {})}",
                            where=f"{inputs[table].where}: {table}.{problem.column}")
    id_ranges = {name: t.id_range or tuple(engine.rows(checks.id_query(t))[0])
                 for name, t in inputs.items()}
    per_trial = ([(str(s), str(q)) for s, q in engine.rows(checks.per_trial_query())]
                 if "observation" in inputs else [])
    return checks.build_stats(inputs, units,
                              {k: (v[0], v[1]) for k, v in id_ranges.items()}, per_trial)


# ---------------------------------------------------------------------------
# The run


@dataclass
class RunReport:
    """What a run did: where its output is, the summary, and how much was re-screened."""

    out: Path
    manifest: dict[str, Any]
    summary: dict[str, Any]
    persons: int
    rescreened: int | None = None  # persons screened again (incremental), None: all
    reused_trials: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def screen_population(
    engine: Engine,
    *,
    data: Path | str,
    out: Path,
    protocols: Sequence[CompiledProtocol],
    as_of: datetime,
    incremental: bool = False,
    progress: Progress | None = None,
    clock: Callable[[], float] | None = None,
    protocols_dir: Path | None = None,
    concepts: ConceptMap | None = None,
    ranges: Path | None = None,
) -> RunReport:
    """Screen every patient of ``data`` against ``protocols`` and write ``out``.

    With ``incremental``, the previous output in ``out`` (from the same engine) is reused
    for every patient whose data did not change and whose result cannot have changed with
    the date alone (:func:`trialdesk.screening.incremental.change_sql`), in every trial whose
    protocol did not change; everything else is screened again.
    """
    if not protocols:
        raise NotFoundError("no trial to screen (see --trials)")
    bar = progress or _Quiet()
    timer = _Timer(clock)
    out = out.resolve()
    shown = redacted(str(data)) if sources.is_url(data) else str(Path(data).resolve())
    data = data if sources.is_url(data) else Path(data).resolve()
    if incremental and engine.name == "postgres":
        raise ScreeningError("--incremental runs on duckdb or spark")
    bar.phase("Checking the input tables")
    inputs = load_inputs(engine, data, concepts=concepts, ranges=ranges)
    stats = gather_stats(engine, inputs)
    timer.lap("check")
    plan = build_plan(protocols, as_of=as_of, flavour=engine.flavour, stats=stats)
    previous = _previous(out, engine, plan) if incremental else None

    with staged(out) as stage:
        bar.phase("Deriving facts", total=len(plan.steps))
        for name, sql in plan.steps:
            engine.materialise(name, sql)
            bar.advance()
        persons = int(engine.rows("SELECT count(*) FROM td_facts")[0][0])
        timer.lap("facts")
        reuse = None
        if incremental:
            bar.phase("Comparing with the previous run")
            columns = {name: [c.name for c in t.spec.columns] for name, t in inputs.items()}
            engine.materialise("td_fingerprint", fingerprint_sql(engine.flavour, columns))
            for name, sql in change_sql(plan, protocols, inputs):
                engine.materialise(name, sql)
            engine.write("SELECT * FROM td_state", stage / STATE)
            if previous is not None:
                reuse = _reuse(engine, previous, plan)
            timer.lap("incremental")

        bar.phase("Screening trials", total=len(plan.trials))
        reused_trials: list[str] = []
        rescreened = persons
        if reuse is not None:
            rescreened = persons - reuse
            engine.materialise("td_facts_changed", "SELECT * FROM td_facts WHERE person_id NOT IN "
                                                   "(SELECT person_id FROM td_reuse)")
        counted: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]] | None = None
        if reuse is None and plan.groups:
            # DuckDB: the trials in groups that evaluate their shared criteria once; the
            # summary's counts are taken from each group's table before it is dropped (not
            # from the files written).
            counted = ([], [])
            for group in plan.groups:
                engine.materialise(group.name, group.sql)
                engine.write_all([(sql, trial_dir(stage, plan.trials[k].trial_id))
                                  for k, sql in zip(group.trials, group.writes, strict=True)],
                                 bar.advance)
                counted[0].extend(engine.rows(" UNION ALL ".join(_COUNTS.format(sql)
                                                                 for sql in group.writes)))
                counted[1].extend(engine.rows(" UNION ALL ".join(_UNDETERMINED.format(sql)
                                                                 for sql in group.writes)))
                engine.execute(f"DROP TABLE {group.name}")
        else:
            jobs: list[tuple[str, Path]] = []
            for trial in plan.trials:
                target = trial_dir(stage, trial.trial_id)
                old = previous["trials"].get(trial.trial_id) if previous else None
                if (reuse is not None and old is not None
                        and old["fingerprint"] == trial.fingerprint):
                    view = f"td_old_{len(reused_trials)}"
                    engine.register_files(view, old["files"])
                    sql = (f"SELECT * FROM {view} WHERE person_id IN "
                           f"(SELECT person_id FROM td_reuse) "
                           f"UNION ALL {trial.sql_from('td_facts_changed')}")
                    reused_trials.append(trial.trial_id)
                else:
                    sql = trial.sql
                jobs.append((sql, target))
            engine.write_all(jobs, bar.advance)
        timer.lap("trials")

        bar.phase("Summarising")
        indexes = [TrialIndex.of(t, c) for t, c in zip(plan.trials, protocols, strict=True)]
        summary = (_summary(engine, stage, indexes) if counted is None
                   else _summarise(indexes, *counted))
        write_json(stage / SUMMARY, summary)
        timer.lap("summary")
        manifest = {
            "schema": SCHEMA,
            "as_of": as_of.isoformat(),
            "engine": engine.name,
            "data": shown,
            "protocols": str(protocols_dir.resolve()) if protocols_dir else None,
            "concepts": concepts.site_file if concepts else None,
            "ranges": str(ranges.resolve()) if ranges else None,
            "persons": persons,
            "incremental": incremental,
            "rescreened_persons": rescreened if reuse is not None else None,
            "reused_trials": reused_trials,
            "trials": [i.to_json() for i in indexes],
            "totals": summary["totals"],
        }
        write_json(stage / MANIFEST, manifest)
    return RunReport(out, manifest, summary, persons,
                     rescreened if reuse is not None else None, reused_trials, timer.laps)


class _Timer:
    def __init__(self, clock: Callable[[], float] | None) -> None:
        self.clock = clock
        self.laps: dict[str, float] = {}
        self.last = clock() if clock else 0.0

    def lap(self, name: str) -> None:
        if self.clock:
            now = self.clock()
            self.laps[name] = round(now - self.last, 3)
            self.last = now


def _parts(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*.parquet") if not p.name.startswith("."))


def _summary(engine: Engine, root: Path, indexes: Sequence[TrialIndex]) -> dict[str, Any]:
    if engine.name == "postgres":  # the results are local Parquet files: read them here
        from trialdesk.screening.engine import DuckDBEngine

        with DuckDBEngine(memory_limit=None) as local:
            return _summary(local, root, indexes)
    files = _parts(root / SCREENING)
    engine.register_files("td_results", files)
    # The pairs per verdict and arm; then the masks, which matter only for undetermined
    # pairs, read only for those (the scan filters on the verdict first).
    counts = engine.rows(_COUNTS.format("SELECT * FROM td_results"))
    undetermined = engine.rows(_UNDETERMINED.format("SELECT * FROM td_results"))
    return _summarise(indexes, counts, undetermined)


_COUNTS = "SELECT trial_id, verdict, arm, count(*) FROM ({}) GROUP BY trial_id, verdict, arm"
_UNDETERMINED = ("SELECT trial_id, unknown, absent_facts, count(*) FROM ({}) "
                 "WHERE verdict = 'undetermined' GROUP BY trial_id, unknown, absent_facts")


def _summarise(indexes: Sequence[TrialIndex], counts: Iterable[tuple[Any, ...]],
               undetermined: Iterable[tuple[Any, ...]]) -> dict[str, Any]:
    return summarise(indexes, [(str(t), str(v), a, int(n)) for t, v, a, n in counts],
                     [(str(t), int(u), int(a), int(n)) for t, u, a, n in undetermined])


def _previous(out: Path, engine: Engine, plan: PopulationPlan) -> dict[str, Any] | None:
    """The previous run in ``out`` if it can be reused: same engine, not a later date."""
    manifest = read_manifest(out) if out.is_dir() else None
    if manifest is None or manifest.get("engine") != engine.name or not manifest.get(
            "incremental") or not (out / STATE).is_dir():
        return None
    before = datetime.fromisoformat(manifest["as_of"])
    if before > plan.as_of:
        return None
    trials = {}
    for doc in manifest["trials"]:
        files = _parts(trial_dir(out, doc["trial_id"]))
        if files:
            trials[doc["trial_id"]] = {"fingerprint": doc["fingerprint"], "files": files}
    return {"as_of": before, "state": _parts(out / STATE), "trials": trials}


def _reuse(engine: Engine, previous: Mapping[str, Any], plan: PopulationPlan) -> int:
    """Materialise ``td_reuse``: patients whose previous results still hold."""
    engine.register_files("td_old_state", previous["state"])
    before: datetime = previous["as_of"]
    if before == plan.as_of:
        holds = "TRUE"
    else:
        days = (plan.on - before.date()).days
        holds = f"o.change_days > {days}"
    engine.materialise("td_reuse", (
        "SELECT n.person_id FROM td_state n JOIN td_old_state o ON o.person_id = n.person_id "
        f"WHERE n.fingerprint = o.fingerprint AND {holds}"))
    return int(engine.rows("SELECT count(*) FROM td_reuse")[0][0])


def write_tables(out: Path, chunks: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Write chunks of tables (pyarrow) as ``<out>/<table>/part-NNNNN.parquet``; rows per table.

    Written into a staging directory and moved into place, like a screening output.
    """
    import pyarrow.parquet as pq

    counts: dict[str, int] = {}
    out = out.resolve()
    if out.exists() and any(out.iterdir()):
        raise ScreeningError("exists and is not empty; choose a new directory", where=str(out))
    stage = out.parent / f".{out.name}.partial"
    if stage.exists():
        import shutil

        shutil.rmtree(stage)
    for index, chunk in enumerate(chunks):
        for name, table in chunk.items():
            folder = stage / name
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, folder / f"part-{index:05d}.parquet", compression="zstd")
            counts[name] = counts.get(name, 0) + table.num_rows
    if out.exists():
        out.rmdir()
    stage.rename(out)
    return counts


# ---------------------------------------------------------------------------
# One patient: the per-patient path on the same data


def load_records(engine: Engine, person_ids: Sequence[int], *, on: date,
                 inputs: Mapping[str, checks.TableInput]) -> list[PatientRecord]:
    """The patient records of ``person_ids`` from the registered tables (after
    :func:`load_inputs`), for the per-patient screening."""
    if not person_ids:
        return []
    ids = ", ".join(str(int(i)) for i in person_ids)

    def rows(table: str) -> list[dict[str, Any]]:
        if table not in inputs:
            return []
        return engine.dicts(f"SELECT * FROM src_{table} WHERE person_id IN ({ids})")

    return records_from_rows(rows("person"), conditions=rows("condition_occurrence"),
                             measurements=rows("measurement"), observations=rows("observation"),
                             drugs=rows("drug_exposure"), on=on)


@dataclass(frozen=True)
class Explanation:
    """One pair expanded: the per-patient screening, and the stored compact row."""

    result: ScreeningResult
    stored: dict[str, Any] | None
    agrees: bool
    ranges: dict[str, str] = field(default_factory=dict)  # lab → where its ULN came from


def explain_pair(engine: Engine, *, out: Path, patient: str, trial: str,
                 protocols: Mapping[str, CompiledProtocol], data: Path | None = None
                 ) -> Explanation:
    """Expand one patient × trial of the run in ``out``."""
    manifest = read_manifest(out)
    if manifest is None:
        raise NotFoundError("no complete population screening here (manifest.json missing)",
                            where=str(out))
    index = trial_index(manifest, trial)
    if trial not in protocols:
        raise NotFoundError(f"trial '{trial}' is not among the protocols; give --protocols")
    try:
        person_id = int(patient)
    except ValueError:
        raise NotFoundError(f"patient '{patient}': person ids are whole numbers") from None
    as_of = datetime.fromisoformat(manifest["as_of"])
    files = _parts(trial_dir(out, trial))
    engine.register_files("td_pair", files)
    stored = engine.dicts(f"SELECT * FROM td_pair WHERE person_id = {person_id}")
    concepts = manifest.get("concepts")
    ranges = manifest.get("ranges")
    inputs = load_inputs(engine, data or Path(manifest["data"]), check_rows=False,
                         concepts=concept_map(Path(concepts)) if concepts else None,
                         ranges=Path(ranges) if ranges else None)
    records = load_records(engine, [person_id], on=as_of.date(), inputs=inputs)
    if not records:
        raise NotFoundError(f"no person {person_id} in the data")
    result = screen_record(protocols[trial], records[0], as_of=as_of)
    row = stored[0] if stored else None
    agrees = row is not None and _same(index, row, result)
    return Explanation(result, row, agrees, _range_sources(engine, person_id, as_of.date()))


def _range_sources(engine: Engine, person_id: int, on: date) -> dict[str, str]:
    """Where the reference range of each lab's latest result came from (with a range table)."""
    if "range_source" not in {name for name, _ in engine.columns("raw_measurement")}:
        return {}
    labs = ", ".join(f"'{lab}'" for lab in XULN_LABS)
    rows = engine.dicts(
        "SELECT measurement_source_value AS fact, measurement_id AS id, measurement_date AS day, "
        "range_source FROM raw_measurement WHERE value_as_number IS NOT NULL AND "
        f"CAST(person_id AS BIGINT) = {int(person_id)} AND measurement_source_value IN ({labs})")
    latest: dict[str, tuple[date, int, str]] = {}
    for r in rows:
        day = r["day"] if isinstance(r["day"], date) else date.fromisoformat(str(r["day"])[:10])
        if day > on:
            continue
        best = latest.get(r["fact"])
        if best is None or (day, -int(r["id"])) > (best[0], -best[1]):
            latest[r["fact"]] = (day, int(r["id"]), r["range_source"] or "none")
    return {fact: source for fact, (_, _, source) in sorted(latest.items())}


def _same(index: TrialIndex, row: Mapping[str, Any], result: ScreeningResult) -> bool:
    outcomes = index.outcomes(int(row["met"]), int(row["unknown"]))
    return (row["verdict"] == result.verdict.value and row["arm"] == result.arm
            and [o for _, _, o in outcomes] == [c.outcome for c in result.criteria])


__all__ = [
    "OPEN_STATUSES",
    "Explanation",
    "Progress",
    "RunReport",
    "explain_pair",
    "gather_stats",
    "load_inputs",
    "load_records",
    "screen_population",
    "select_trials",
    "write_tables",
]
