"""Population screening benchmark: one run, one data set, every figure.

    python bench/population.py                      # 1 000 000 patients × 100 trials
    python bench/population.py --patients 20000 --no-spark

Prints, for the same synthetic data (``trialdesk population synth``) and the same trials
(the 4 seed protocols and 96 variants from ``trialdesk population trials``):

* patients × trials evaluated per second end to end (raw tables → outputs) with DuckDB
  and with Spark — each run as the command line runs it, in its own process — and with
  the per-patient Python evaluator (record → normalise → screen) on a sample of patients,
  extrapolated to the whole population;
* the ratio DuckDB / per-patient;
* the ratio of the compiled SQL to a hand-written DuckDB query for NB-NK-2026 (both from
  the raw tables to verdict and per-criterion bitmasks, results checked equal);
* the end-to-end ratio of the compiled plan to a hand-written multi-trial reference (facts
  derived once into one table, every trial evaluated on it, all rows written in one Parquet
  file) for 100 trials (NB-NK-2026 under 100 ids), results checked equal; and the ratio of
  the command's own end-to-end time (its 100 trials, checks and summary included) to that
  reference;
* peak memory of each engine's process tree;
* whether Spark's results equal DuckDB's (per-trial row count and checksum of all rows);
* the targets, met or missed and by how much.

This is a benchmark, not a test: nothing here is asserted except result equality.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

ON = "2026-11-21"
TARGET_SECONDS = 30.0
TARGET_MEMORY_GIB = 4.0
TARGET_SPEEDUP = 300.0
TARGET_SQL_RATIO = 1.0
#: The end-to-end target (30 s at 1M × 100) over the hand-written multi-trial reference's
#: 19 s at the same size, both measured on one quiet 2-core machine. (On the shared 2-core
#: machine of docs/population.md the reference took 117 to 205 s and the command 66 to
#: 149 s: the 30 s target not met; the one-trial ratio 0.95 to 1.26 from run to run, 0.96
#: in the last run, with the trials evaluated in groups.)
TARGET_END_TO_END_RATIO = 1.6


# --------------------------------------------------------------------------- data


def prepare(work: Path, patients: int, variants: int, seed: int) -> tuple[Path, Path, float]:
    """Synthetic tables and protocols in ``work`` (reused when already made)."""
    from trialdesk.protocol.load import default_protocol_dir, load_directory
    from trialdesk.screening.run import write_tables
    from trialdesk.screening.synth import synthesise
    from trialdesk.screening.variants import make_variants

    data = work / f"data-{patients}-{seed}"
    seconds = 0.0
    if not (data / "person").is_dir():
        started = time.perf_counter()
        trials = list(load_directory(default_protocol_dir()).values())
        write_tables(data, synthesise(patients, seed=seed, on=date.fromisoformat(ON),
                                      trials=trials))
        seconds = time.perf_counter() - started
    protocols = work / f"protocols-{variants}"
    if not protocols.is_dir():
        import yaml

        from trialdesk.protocol.load import read_document

        protocols.mkdir(parents=True)
        paths = sorted(default_protocol_dir().glob("*.yaml"))
        for path in paths:
            (protocols / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        for doc in make_variants([read_document(p) for p in paths], variants, seed=seed):
            (protocols / f"{doc['id']}.yaml").write_text(
                yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return data, protocols, seconds


# --------------------------------------------------------------------------- processes


def _tree_rss(pid: int) -> int:
    """Resident memory of a process and its descendants, in bytes (Linux /proc)."""
    total = 0
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            pass
        stack += children.get(p, [])
    return total


def run_command(command: list[str]) -> dict[str, Any]:
    """Run a command; wall time, sampled peak memory of its process tree, its output."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(process.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"failed ({process.returncode}): {' '.join(command)}\n{err[-3000:]}")
    return {"seconds": seconds, "peak_bytes": peak[0], "stdout": out, "stderr": err}


def screen_command(engine: str, data: Path, out: Path, protocols: Path) -> list[str]:
    return [sys.executable, "-m", "trialdesk.cli", "population", "screen", "--data", str(data),
            "--out", str(out), "--engine", engine, "--trials", "all", "--protocols",
            str(protocols), "--on", ON]


def _last_line(stdout: str) -> str:
    """The command's closing line (pairs, seconds, phases), unwrapped."""
    lines = stdout.strip().splitlines()
    start = max(i for i, line in enumerate(lines) if "pairs in" in line)
    return " ".join(line.strip() for line in lines[start:])


def checksums(out: Path) -> dict[str, tuple[int, int]]:
    import duckdb

    rows = duckdb.sql(
        f"SELECT trial_id, count(*), sum(hash(person_id, verdict, arm, met, unknown, "
        f"absent_facts)) FROM read_parquet('{out}/screening/*/*.parquet') GROUP BY trial_id"
    ).fetchall()
    return {t: (int(n), int(h)) for t, n, h in rows}


# --------------------------------------------------------------------------- per patient


def per_patient(data: Path, protocols: Path, sample: int) -> dict[str, float]:
    """The per-patient Python path on the first ``sample`` patients, every trial."""
    from trialdesk.criteria.verdict import screen_record
    from trialdesk.protocol.load import load_directory
    from trialdesk.screening.engine import DuckDBEngine
    from trialdesk.screening.run import load_inputs, load_records

    trials = list(load_directory(protocols).values())
    as_of = datetime.fromisoformat(ON)
    started = time.perf_counter()
    with DuckDBEngine(memory_limit="2GB") as engine:
        inputs = load_inputs(engine, data)
        ids = [r[0] for r in engine.rows(f"SELECT person_id FROM src_person ORDER BY person_id "
                                         f"LIMIT {sample}")]
        records = load_records(engine, ids, on=as_of.date(), inputs=inputs)
    loaded = time.perf_counter()
    verdicts = 0
    for record in records:
        for compiled in trials:
            verdicts += screen_record(compiled, record, as_of=as_of).verdict.value == "eligible"
    finished = time.perf_counter()
    pairs = len(records) * len(trials)
    return {"patients": len(records), "trials": len(trials), "pairs": pairs,
            "load_seconds": loaded - started, "screen_seconds": finished - loaded,
            "pairs_per_second": pairs / (finished - started)}


# --------------------------------------------------------------------------- compiled vs hand


def _round12(x: str) -> str:
    return f"CAST(format('{{:.12g}}', {x}) AS DOUBLE)"


HAND_WRITTEN_NBNK = """
-- NB-NK-2026 by hand: the facts it needs, its windows (labs and performance 14 days,
-- everything else 28), its 23 criteria; verdict and per-criterion bitmasks.
WITH
p AS (SELECT person_id, make_date(year_of_birth, month_of_birth, day_of_birth) AS b,
             CASE gender_concept_id WHEN 8507 THEN 'male' WHEN 8532 THEN 'female' END AS sex
      FROM src_person),
dx AS (SELECT person_id, arg_max(condition_source_value,
              (condition_start_date - DATE '1970-01-01')::BIGINT * 1099511627776
              + 1099511627775 - condition_occurrence_id) AS dx
       FROM src_condition_occurrence
       WHERE condition_start_date <= DATE '{on}'
         AND condition_source_value IN ({diagnoses})
       GROUP BY person_id),
m AS (SELECT person_id,
        CASE WHEN measurement_source_value IN ('alt', '1742-6') THEN 'alt'
             WHEN measurement_source_value IN ('ast', '1920-8') THEN 'ast'
             WHEN measurement_source_value IN ('creatinine', '2160-0') THEN 'creatinine'
             WHEN measurement_source_value IN ('pti', '5894-1') THEN 'pti'
             WHEN measurement_source_value IN ('aptt', '3173-2') THEN 'aptt'
             WHEN measurement_source_value IN ('height', '8302-2') THEN 'height'
             WHEN measurement_source_value IN ('lvef', '10230-1') THEN 'lvef'
             WHEN measurement_source_value IN ('spo2_room_air', '59408-5') THEN 'spo2'
             WHEN measurement_source_value = 'measured_gfr' THEN 'mgfr' END AS f,
        arg_max({{'v': value_as_number, 'u': unit_source_value, 'rh': range_high}},
                (measurement_date - DATE '1970-01-01')::BIGINT * 1099511627776
                + 1099511627775 - measurement_id) AS r,
        max(measurement_date) AS d
      FROM src_measurement
      WHERE measurement_date <= DATE '{on}' AND value_as_number IS NOT NULL
        AND measurement_source_value IN ('alt', '1742-6', 'ast', '1920-8', 'creatinine',
            '2160-0', 'pti', '5894-1', 'aptt', '3173-2', 'height', '8302-2', 'lvef', '10230-1',
            'spo2_room_air', '59408-5', 'measured_gfr')
      GROUP BY ALL),
mw AS (SELECT person_id,
        max(CASE WHEN f = 'alt' AND d >= DATE '{on}' - 14 AND r.rh > 0
                 THEN {alt_ratio} END) AS alt_x_uln,
        max(CASE WHEN f = 'ast' AND d >= DATE '{on}' - 14 AND r.rh > 0
                 THEN {ast_ratio} END) AS ast_x_uln,
        max(CASE WHEN f = 'creatinine' AND d >= DATE '{on}' - 14 THEN
                 CASE r.u WHEN 'umol/L' THEN {creatinine_molar} ELSE {creatinine_mass} END END)
            AS creatinine,
        max(CASE WHEN f = 'pti' AND d >= DATE '{on}' - 14 THEN {pti} END) AS pti,
        max(CASE WHEN f = 'aptt' AND d >= DATE '{on}' - 14 THEN {aptt} END) AS aptt,
        max(CASE WHEN f = 'height' AND d >= DATE '{on}' - 28 THEN
                 CASE r.u WHEN 'm' THEN {height_m} ELSE {height_cm} END END) AS height,
        max(CASE WHEN f = 'lvef' AND d >= DATE '{on}' - 28 THEN {lvef} END) AS lvef,
        max(CASE WHEN f = 'spo2' AND d >= DATE '{on}' - 28 THEN {spo2} END) AS spo2,
        max(CASE WHEN f = 'mgfr' AND d >= DATE '{on}' - 28 THEN {mgfr} END) AS mgfr
      FROM m GROUP BY person_id),
o AS (SELECT person_id,
        CASE WHEN observation_source_value IN ('consent', 'attest.e6',
                  'attest.comorbidity_precluding_treatment', 'attest.e8')
             THEN observation_source_value || '@'
                  || coalesce(qualifier_source_value, '')
             ELSE observation_source_value END AS s,
        arg_max({{'n': value_as_number, 's': value_as_string, 'u': unit_source_value}},
                (observation_date - DATE '1970-01-01')::BIGINT * 1099511627776
                + CASE WHEN observation_source_value IN ('disease_status',
                       'end_induction_response', 'induction_cycles_completed',
                       'cns_involvement', 'staging_complete')
                       THEN observation_id ELSE 1099511627775 - observation_id END) AS r,
        max(observation_date) AS d
      FROM src_observation
      WHERE observation_date <= DATE '{on}'
        AND (value_as_number IS NOT NULL OR value_as_string IS NOT NULL)
        AND observation_source_value IN ('diagnosis_confirmation', 'risk_group', 'risk_system',
            'disease_status', 'end_induction_response', 'induction_cycles_completed',
            'cns_involvement', 'staging_complete', 'lansky', 'karnofsky', 'life_expectancy',
            'drug_induced_neuropathy', 'neuropathic_pain', 'heart_failure_signs',
            'dyspnoea_at_rest', 'chest_xray_abnormal', 'ckd_stage', 'rifle_class',
            'childbearing_potential', 'pregnant', 'severe_type1_hypersensitivity_history',
            'mental_illness_preventing_understanding', 'consent', 'attest.e6',
            'attest.comorbidity_precluding_treatment', 'attest.e8')
      GROUP BY ALL),
ow AS (SELECT person_id,
        max(CASE WHEN s = 'diagnosis_confirmation' THEN r.s END) AS confirmation,
        max(CASE WHEN s = 'risk_group' THEN r.s END) AS risk_group,
        max(CASE WHEN s = 'risk_system' THEN r.s END) AS risk_system,
        max(CASE WHEN s = 'disease_status' THEN r.s END) AS status,
        max(CASE WHEN s = 'end_induction_response' THEN r.s END) AS response,
        max(CASE WHEN s = 'induction_cycles_completed' THEN r.n END) AS cycles,
        max(CASE WHEN s = 'cns_involvement' THEN r.s = 'true' END) AS cns,
        max(CASE WHEN s = 'staging_complete' THEN r.s = 'true' END) AS staged,
        max(CASE WHEN s = 'lansky' AND d >= DATE '{on}' - 14 THEN r.n END) AS lansky,
        max(CASE WHEN s = 'karnofsky' AND d >= DATE '{on}' - 14 THEN r.n END) AS karnofsky,
        max(CASE WHEN s = 'life_expectancy' AND d >= DATE '{on}' - 28 THEN
                 CASE r.u WHEN 'month' THEN {life_month} ELSE {life_week} END END) AS life,
        max(CASE WHEN s = 'drug_induced_neuropathy' AND d >= DATE '{on}' - 28
                 THEN r.s = 'true' END) AS neuropathy,
        max(CASE WHEN s = 'neuropathic_pain' AND d >= DATE '{on}' - 28
                 THEN r.s = 'true' END) AS pain,
        max(CASE WHEN s = 'heart_failure_signs' AND d >= DATE '{on}' - 28
                 THEN r.s = 'true' END) AS heart,
        max(CASE WHEN s = 'dyspnoea_at_rest' AND d >= DATE '{on}' - 28
                 THEN r.s = 'true' END) AS dyspnoea,
        max(CASE WHEN s = 'chest_xray_abnormal' AND d >= DATE '{on}' - 28
                 THEN r.s = 'true' END) AS xray,
        max(CASE WHEN s = 'ckd_stage' AND d >= DATE '{on}' - 28 THEN r.n END) AS ckd,
        max(CASE WHEN s = 'rifle_class' AND d >= DATE '{on}' - 28 THEN r.s END) AS rifle,
        max(CASE WHEN s = 'childbearing_potential' THEN r.s = 'true' END) AS cbp,
        max(CASE WHEN s = 'pregnant' AND d >= DATE '{on}' - 28 THEN r.s = 'true' END)
            AS pregnancy,
        max(CASE WHEN s = 'severe_type1_hypersensitivity_history' THEN r.s = 'true' END)
            AS hypersensitivity,
        max(CASE WHEN s = 'mental_illness_preventing_understanding' THEN r.s = 'true' END)
            AS mental_illness,
        max(CASE WHEN s = 'consent@NB-NK-2026' THEN r.s = 'true' END) AS consent,
        max(CASE WHEN s = 'attest.e6@NB-NK-2026' THEN r.s = 'true' END) AS e6,
        max(CASE WHEN s = 'attest.comorbidity_precluding_treatment@NB-NK-2026'
                 THEN r.s = 'true' END) AS comorbidity,
        max(CASE WHEN s = 'attest.e8@NB-NK-2026' THEN r.s = 'true' END) AS e8
      FROM o GROUP BY person_id),
f AS (SELECT p.person_id, p.sex,
        {y} - year(p.b) - CASE WHEN month(p.b) > {mo} OR (month(p.b) = {mo}
                                AND day(p.b) > {d}) THEN 1 ELSE 0 END AS age_years,
        ({y} - year(p.b)) * 12 + ({mo} - month(p.b)) - CASE WHEN {d} < day(p.b)
                                THEN 1 ELSE 0 END AS age_months,
        dx.dx, ow.*, mw.*
      FROM p LEFT JOIN dx USING (person_id) LEFT JOIN ow USING (person_id)
           LEFT JOIN mw USING (person_id)
      WHERE p.b <= DATE '{on}'),
c AS (SELECT person_id,
        consent AS c0,
        dx IN ('neuroblastoma', 'ganglioneuroblastoma')
          AND CASE WHEN dx IS NOT NULL THEN confirmation END = 'histological' AS c1,
        CASE WHEN dx IS NOT NULL THEN risk_group END = 'high'
          AND CASE WHEN dx IS NOT NULL THEN risk_system END = 'GPOH-NB2004'
          AND age_months >= 18 AND age_years <= 18
          AND ((status = 'refractory' AND cycles >= 6 AND response IN ('MR', 'SD'))
               OR status IN ('relapsed', 'progressive')) AS c2,
        CASE WHEN age_years < 16 THEN lansky ELSE karnofsky END >= 70 AS c3,
        life >= 12 AS c4,
        NOT neuropathy AND NOT pain AS c5,
        alt_x_uln < 5 AND ast_x_uln < 5 AS c6,
        CASE WHEN mgfr IS NOT NULL THEN mgfr
             WHEN age_years >= 1 AND age_years < 17 AND height IS NOT NULL
                  AND creatinine > 0 THEN {schwartz} END > 60 AS c7,
        pti BETWEEN 70 AND 120 AND aptt < 36 AS c8,
        NOT heart AND lvef >= 55 AS c9,
        spo2 > 94 AND NOT dyspnoea AND NOT xray AS c10,
        staged AS c11,
        NOT consent AS c12,
        NOT staged AS c13,
        CASE WHEN dx IS NOT NULL THEN risk_group END IN ('low', 'intermediate') AS c14,
        status = 'refractory' AND response IN ('CR', 'VGPR', 'PR', 'PD') AS c15,
        status IN ('relapsed', 'progressive') AND cns AS c16,
        e6 AS c17, comorbidity OR hypersensitivity AS c18, e8 AS c19,
        lvef <= 55 OR ckd >= 3 OR rifle IN ('injury', 'failure', 'loss') AS c20,
        CASE WHEN sex = 'male' THEN FALSE WHEN sex = 'female' AND cbp = FALSE THEN FALSE
             ELSE pregnancy END AS c21,
        mental_illness AS c22
      FROM f)
SELECT person_id,
  CASE WHEN NOT coalesce(c0 AND c1 AND c2 AND c3 AND c4 AND c5 AND c6 AND c7 AND c8 AND c9
                         AND c10 AND c11, TRUE)
         OR coalesce(c12 OR c13 OR c14 OR c15 OR c16 OR c17 OR c18 OR c19 OR c20 OR c21
                     OR c22, FALSE) THEN 'ineligible'
       WHEN coalesce(c0 AND c1 AND c2 AND c3 AND c4 AND c5 AND c6 AND c7 AND c8 AND c9
                     AND c10 AND c11, FALSE)
         AND NOT coalesce(c12 OR c13 OR c14 OR c15 OR c16 OR c17 OR c18 OR c19 OR c20 OR c21
                          OR c22, TRUE) THEN 'eligible'
       ELSE 'undetermined' END AS verdict,
  {met} AS met, {unknown} AS unknown
FROM c
"""


def hand_written(on: date) -> str:
    from trialdesk.facts.dictionary import DIAGNOSES
    from trialdesk.screening.plan import unit_factor

    def canonical(fact: str, unit: str) -> str:
        factor = unit_factor(fact, unit)
        return _round12(f"r.v * {factor!r}")

    bits = range(23)
    return HAND_WRITTEN_NBNK.format(
        on=on.isoformat(), y=on.year, mo=on.month, d=on.day,
        diagnoses=", ".join(f"'{x}'" for x in DIAGNOSES),
        alt_ratio=_round12("r.v / r.rh"), ast_ratio=_round12("r.v / r.rh"),
        creatinine_molar=canonical("creatinine", "umol/L"),
        creatinine_mass=canonical("creatinine", "mg/dL"),
        pti=canonical("pti", "%"), aptt=canonical("aptt", "s"),
        height_m=canonical("height", "m"), height_cm=canonical("height", "cm"),
        lvef=canonical("lvef", "%"), spo2=canonical("spo2_room_air", "%"),
        mgfr=canonical("measured_gfr", "mL/min/1.73m2"),
        life_month=_round12(f"r.n * {unit_factor('life_expectancy', 'month')!r}"),
        life_week=_round12("r.n * 1.0"),
        schwartz=_round12("0.413e0 * height / creatinine"),
        met="(" + " | ".join(f"(CASE WHEN c{i} THEN {1 << i} ELSE 0 END)" for i in bits) + ")",
        unknown="(" + " | ".join(f"(CASE WHEN c{i} IS NULL THEN {1 << i} ELSE 0 END)"
                                 for i in bits) + ")")


def compiled_vs_hand(data: Path, repeat: int = 3) -> dict[str, Any]:
    """NB-NK-2026 alone, from the raw tables: the compiled plan against the hand-written query."""
    from trialdesk.protocol.load import default_protocol_dir, load_protocol
    from trialdesk.screening.engine import DuckDBEngine
    from trialdesk.screening.plan import build_plan
    from trialdesk.screening.run import gather_stats, load_inputs

    on = date.fromisoformat(ON)
    nbnk = load_protocol(default_protocol_dir() / "nb-nk-2026.yaml")
    with DuckDBEngine() as engine:
        inputs = load_inputs(engine, data)
        stats = gather_stats(engine, inputs)
        plan = build_plan([nbnk], as_of=datetime.fromisoformat(ON), stats=stats)
        compiled_sql = (f"SELECT person_id, verdict, met, unknown FROM ({plan.trials[0].sql})")

        def compiled() -> None:
            for name, sql in plan.steps:
                engine.materialise(name, sql)
            engine.materialise("bench_compiled", compiled_sql)

        def hand() -> None:
            engine.materialise("bench_hand", hand_written(on))

        timings: dict[str, list[float]] = {"compiled": [], "hand": []}
        for _ in range(repeat):
            for name, fn in (("compiled", compiled), ("hand", hand)):
                started = time.perf_counter()
                fn()
                timings[name].append(time.perf_counter() - started)
        differ = engine.rows("SELECT count(*) FROM (SELECT * FROM bench_compiled EXCEPT ALL "
                             "SELECT * FROM bench_hand)")[0][0]
        rows = engine.rows("SELECT count(*) FROM bench_hand")[0][0]
    best = {k: min(v) for k, v in timings.items()}
    return {"compiled_seconds": best["compiled"], "hand_seconds": best["hand"],
            "ratio": best["compiled"] / best["hand"], "rows": rows, "rows_that_differ": differ}


def multi_trial(data: Path, copies: int = 100) -> dict[str, Any]:
    """``copies`` trials (NB-NK-2026 under ``copies`` ids), from the raw tables to one Parquet
    output per trial: the compiled plan (facts once, then the trials in groups that evaluate
    their shared criteria once, and one write per trial)
    against the hand-written multi-trial reference (the hand-written facts derived once into
    one table, then every trial's criteria evaluated on it and all trials' rows written in
    one Parquet file). Results checked equal."""
    import dataclasses
    import shutil
    import tempfile

    from trialdesk.protocol.load import default_protocol_dir, load_protocol
    from trialdesk.screening.engine import DuckDBEngine
    from trialdesk.screening.plan import build_plan
    from trialdesk.screening.run import gather_stats, load_inputs

    on = date.fromisoformat(ON)
    nbnk = load_protocol(default_protocol_dir() / "nb-nk-2026.yaml")
    trials = [dataclasses.replace(nbnk, protocol=nbnk.protocol.model_copy(
        update={"id": f"NBNK-{i:03d}"})) for i in range(copies)]
    head, tail = hand_written(on).split("\nc AS (", 1)
    facts_sql = head.rstrip().rstrip(",") + "\nSELECT * FROM f"
    per_trial = "WITH c AS (" + tail.replace("FROM f)", "FROM bench_f)", 1)
    # The synthetic data records consent and attestations for NB-NK-2026 itself: the copies
    # have none of their own, so both sides read them as unknown. The findings (E7's severe
    # type I hypersensitivity, E11) are the patient's, shared by every copy.
    unknown = "CAST(NULL AS BOOLEAN)"
    for per_trial_fact, replacement in (
            ("consent AS c0", f"{unknown} AS c0"), ("NOT consent AS c12", f"{unknown} AS c12"),
            ("e6 AS c17", f"{unknown} AS c17"),
            ("comorbidity OR hypersensitivity AS c18", f"{unknown} OR hypersensitivity AS c18"),
            ("e8 AS c19", f"{unknown} AS c19")):
        assert per_trial.count(per_trial_fact) == 1, per_trial_fact
        per_trial = per_trial.replace(per_trial_fact, replacement)
    root = Path(tempfile.mkdtemp(prefix="bench-multi-"))
    with DuckDBEngine() as engine:
        stats = gather_stats(engine, load_inputs(engine, data))
        plan = build_plan(trials, as_of=datetime.fromisoformat(ON), stats=stats)

        def compiled() -> None:  # as the command runs it: the trials in groups
            for name, sql in plan.steps:
                engine.materialise(name, sql)
            for group in plan.groups:
                engine.materialise(group.name, group.sql)
                engine.write_all([(f"SELECT person_id, trial_id, verdict, met, unknown FROM ({sql})",
                                   root / "compiled" / plan.trials[k].trial_id)
                                  for k, sql in zip(group.trials, group.writes, strict=True)])
                engine.execute(f"DROP TABLE {group.name}")

        def hand() -> None:
            # Each trial's criteria evaluated on the shared facts; one write for all trials.
            engine.materialise("bench_f", facts_sql)
            engine.write(" UNION ALL ".join(
                f"SELECT person_id, '{t.id}' AS trial_id, verdict, met, unknown FROM ({per_trial}) h{i}"
                for i, t in enumerate(trials)), root / "hand")

        timings = {}
        for name, fn in (("compiled", compiled), ("hand", hand)):
            started = time.perf_counter()
            fn()
            timings[name] = time.perf_counter() - started
        differ = engine.rows(
            f"SELECT count(*) FROM (SELECT * FROM read_parquet('{root}/compiled/*/*.parquet') "
            f"EXCEPT ALL SELECT * FROM read_parquet('{root}/hand/*.parquet'))")[0][0]
        rows = engine.rows(f"SELECT count(*) FROM read_parquet('{root}/hand/*.parquet')")[0][0]
    shutil.rmtree(root, ignore_errors=True)
    return {"trials": copies, "compiled_seconds": timings["compiled"],
            "hand_seconds": timings["hand"], "ratio": timings["compiled"] / timings["hand"],
            "rows": rows, "rows_that_differ": differ}


# --------------------------------------------------------------------------- report


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def _target(name: str, value: float, target: float, *, lower_is_better: bool,
            unit: str) -> str:
    ok = value <= target if lower_is_better else value >= target
    if ok:
        return f"  {name}: {value:,.2f}{unit} — target {target:g}{unit} met"
    off = value / target if lower_is_better else target / value
    return f"  {name}: {value:,.2f}{unit} — target {target:g}{unit} MISSED by ×{off:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--variants", type=int, default=96)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sample", type=int, default=1000,
                        help="patients for the per-patient evaluator (extrapolated)")
    parser.add_argument("--work", type=Path, default=Path("out/bench-population"))
    parser.add_argument("--no-spark", action="store_true")
    parser.add_argument("--copies", type=int, default=100,
                        help="trials in the multi-trial comparison")
    args = parser.parse_args()

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    data, protocols, generated = prepare(work, args.patients, args.variants, args.seed)
    trials = 4 + args.variants
    pairs = args.patients * trials
    print(f"data: {data} ({args.patients:,} patients"
          + (f", generated in {generated:.0f} s" if generated else ", reused") + ")")
    measurements = sum(__import__("pyarrow.parquet", fromlist=["x"]).read_metadata(p).num_rows
                       for p in (data / "measurement").glob("*.parquet"))
    print(f"      {measurements / args.patients:.1f} measurements per patient; "
          f"trials: {trials} (4 seed + {args.variants} variants) in {protocols}")
    print(f"machine: {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; "
          f"load average before the runs {os.getloadavg()[0]:.1f}")

    results: dict[str, Any] = {"patients": args.patients, "trials": trials, "pairs": pairs}
    command = screen_command("duckdb", data, work / "out-duckdb", protocols)
    print("\nDuckDB, end to end:\n  " + " ".join(command[1:]).replace("-m trialdesk.cli",
                                                                       "trialdesk"))
    duck = run_command(command)
    results["duckdb"] = {k: v for k, v in duck.items() if k != "stdout" and k != "stderr"}
    print(f"  {duck['seconds']:.1f} s, {pairs / duck['seconds']:,.0f} pairs/s, peak memory "
          f"{_gib(duck['peak_bytes'])}")
    print("  " + _last_line(duck["stdout"]))

    if not args.no_spark:
        command = screen_command("spark", data, work / "out-spark", protocols)
        print("\nSpark (local mode), end to end:\n  "
              + " ".join(command[1:]).replace("-m trialdesk.cli", "trialdesk"))
        spark = run_command(command)
        results["spark"] = {k: v for k, v in spark.items() if k != "stdout" and k != "stderr"}
        print(f"  {spark['seconds']:.1f} s, {pairs / spark['seconds']:,.0f} pairs/s, peak memory "
              f"{_gib(spark['peak_bytes'])} (JVM included)")
        same = checksums(work / "out-duckdb") == checksums(work / "out-spark")
        results["spark"]["identical"] = same
        print("  " + _last_line(spark["stdout"]))
        print(f"  results identical to DuckDB's (per trial: rows and checksum of every row): "
              f"{'yes' if same else 'NO'}")

    print(f"\nPer-patient Python evaluator, on the first {args.sample:,} patients × {trials} "
          "trials (record → normalise → screen), extrapolated:")
    python = per_patient(data, protocols, args.sample)
    results["per_patient"] = python
    estimate = pairs / python["pairs_per_second"]
    print(f"  {python['pairs_per_second']:,.0f} pairs/s (loading records "
          f"{python['load_seconds']:.1f} s, screening {python['screen_seconds']:.1f} s); "
          f"for all {pairs:,} pairs ≈ {estimate / 3600:.1f} h")
    speedup = (pairs / duck["seconds"]) / python["pairs_per_second"]
    print(f"  DuckDB / per-patient: ×{speedup:,.0f}")

    print("\nCompiled SQL vs a hand-written DuckDB query, NB-NK-2026, raw tables → bitmasks "
          "(best of 3):")
    versus = compiled_vs_hand(data)
    results["compiled_vs_hand"] = versus
    print(f"  compiled {versus['compiled_seconds']:.2f} s, hand-written "
          f"{versus['hand_seconds']:.2f} s: ratio {versus['ratio']:.2f}; rows that differ: "
          f"{versus['rows_that_differ']} of {versus['rows']:,}")

    print(f"\nCompiled plan vs the hand-written multi-trial reference, {args.copies} trials "
          "(NB-NK-2026 under as many ids), raw tables → one Parquet output per trial:")
    multi = multi_trial(data, args.copies)
    results["multi_trial"] = multi
    print(f"  compiled {multi['compiled_seconds']:.2f} s, hand-written {multi['hand_seconds']:.2f} s: "
          f"ratio {multi['ratio']:.2f}; rows that differ: {multi['rows_that_differ']} of "
          f"{multi['rows']:,}")
    end_to_end = duck["seconds"] / multi["hand_seconds"]
    results["end_to_end_vs_hand"] = end_to_end
    print(f"  end to end (the command above: {trials} trials, checks and summary included) / "
          f"hand-written multi-trial reference: {duck['seconds']:.1f} s / "
          f"{multi['hand_seconds']:.1f} s = ratio {end_to_end:.2f}")

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"\nPeak memory: DuckDB run {_gib(duck['peak_bytes'])}"
          + (f", Spark run {_gib(results['spark']['peak_bytes'])}" if "spark" in results else "")
          + f", this script (per-patient sample and SQL comparison) {_gib(own)}")
    print("\nTargets:")
    print(_target("DuckDB end to end", duck["seconds"], TARGET_SECONDS, lower_is_better=True,
                  unit=" s"))
    print(_target("DuckDB peak memory", duck["peak_bytes"] / 2**30, TARGET_MEMORY_GIB,
                  lower_is_better=True, unit=" GiB"))
    print(_target("DuckDB / per-patient", speedup, TARGET_SPEEDUP, lower_is_better=False,
                  unit="×"))
    print(_target("compiled / hand-written", versus["ratio"], TARGET_SQL_RATIO,
                  lower_is_better=True, unit="×"))
    print(_target("end to end / hand-written multi-trial", end_to_end, TARGET_END_TO_END_RATIO,
                  lower_is_better=True, unit="×"))
    if "spark" in results:
        print(f"  Spark identical to DuckDB: {'yes' if results['spark']['identical'] else 'NO'}")
    (work / "results.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
