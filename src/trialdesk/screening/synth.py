"""A synthetic patient population in OMOP-shaped tables, for tests and benchmarks.

The population is made so that the bundled trials find some candidates, neither none nor
everyone: children with neuroblastoma and other tumours, adults with solid tumours and
haematological malignancies, with laboratory panels in several units (some results
missing, some older than a look-back window), performance scores, disease histories,
findings, treatments, pregnancy tests, and — for patients whose diagnosis fits a trial —
consent and the investigator's attestations for that trial.

**Every number here describes synthetic data, not clinical knowledge.** The typical
values and the laboratories' upper limits of normal follow the illustrative table of
FACTS.md §9 and the usual adult ranges; no rule or verdict depends on them.

Generation is vectorised (numpy) and deterministic for a seed; it yields the tables in
chunks of patients so that a million patients never sit in memory at once.

>>> from datetime import date
>>> chunk = next(synthesise(50, seed=1, on=date(2026, 11, 21)))
>>> chunk["person"].num_rows, chunk["measurement"].num_rows > 50 * 20
(50, True)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from trialdesk.criteria.ast import facts_of
from trialdesk.criteria.evaluate import evaluate
from trialdesk.facts.dictionary import HAEMATOLOGICAL, ONCOHAEMATOLOGICAL
from trialdesk.facts.model import FactSet, FactValue
from trialdesk.protocol.load import CompiledProtocol
from trialdesk.screening.omop import loinc

DEFAULT_CHUNK = 100_000

# Cohorts: (name, share of the population, diagnoses, age range in years).
_COHORTS: tuple[tuple[str, float, tuple[str, ...], tuple[float, float]], ...] = (
    ("neuroblastoma", 0.05, ("neuroblastoma",) * 9 + ("ganglioneuroblastoma",), (1.0, 12.0)),
    ("child_solid", 0.03, ("bone_sarcoma", "soft_tissue_sarcoma", "other_solid_tumour"),
     (1.0, 18.0)),
    ("child_haem", 0.03, ("acute_lymphoblastic_leukaemia",) * 3 + ("acute_myeloid_leukaemia",
                                                                    "lymphoma"), (1.0, 18.0)),
    ("adult_solid", 0.55, ("breast_cancer", "colorectal_cancer", "lung_cancer",
                           "renal_cell_carcinoma", "gastric_cancer", "ovarian_cancer",
                           "prostate_cancer", "melanoma", "other_solid_tumour",
                           "soft_tissue_sarcoma", "bone_sarcoma"), (18.0, 90.0)),
    ("adult_haem", 0.19, ("acute_myeloid_leukaemia", "acute_lymphoblastic_leukaemia", "lymphoma",
                          "multiple_myeloma", "myelodysplastic_syndrome", "aplastic_anaemia",
                          "other_haematological"), (18.0, 90.0)),
    ("other", 0.15, ("other",), (18.0, 90.0)),
)

LABS = ("anc", "granulocytes", "platelets", "hemoglobin", "alt", "ast", "alp", "bilirubin",
        "creatinine", "sodium", "potassium", "pti", "aptt", "inr")


@dataclass
class _Table:
    """Column blocks of one table, concatenated at the end."""

    columns: tuple[str, ...]

    def __post_init__(self) -> None:
        self.blocks: dict[str, list[Any]] = {c: [] for c in self.columns}
        self.length = 0

    def add(self, n: int, **values: Any) -> None:
        if n == 0:
            return
        for c in self.columns:
            v = values.get(c)
            if v is None:
                v = np.full(n, None, dtype=object)
            elif np.isscalar(v) or isinstance(v, str):
                v = np.full(n, v, dtype=object if isinstance(v, str) else None)
            self.blocks[c].append(np.asarray(v))
        self.length += n

    def arrow(self, types: dict[str, pa.DataType]) -> pa.Table:
        arrays = {}
        for c in self.columns:
            blocks = self.blocks[c]
            t = types[c]
            if not blocks:
                arrays[c] = pa.array([], type=t)
                continue
            data = np.concatenate([b.astype(object) if b.dtype == object else b for b in blocks]) \
                if len({b.dtype for b in blocks}) == 1 else np.concatenate(
                    [b.astype(object) for b in blocks])
            if pa.types.is_string(t):
                arrays[c] = pa.array(data, type=pa.string()).dictionary_encode()
            elif data.dtype == object:
                arrays[c] = pa.array(list(data), type=t, from_pandas=True)
            else:
                arrays[c] = pa.array(data, type=t)
        return pa.table(arrays)


_TYPES: dict[str, dict[str, pa.DataType]] = {
    "person": {"person_id": pa.int64(), "gender_concept_id": pa.int64(),
               "year_of_birth": pa.int32(), "month_of_birth": pa.int32(),
               "day_of_birth": pa.int32()},
    "condition_occurrence": {"condition_occurrence_id": pa.int64(), "person_id": pa.int64(),
                             "condition_start_date": pa.date32(),
                             "condition_source_value": pa.string()},
    "measurement": {"measurement_id": pa.int64(), "person_id": pa.int64(),
                    "measurement_date": pa.date32(), "measurement_source_value": pa.string(),
                    "value_as_number": pa.float64(), "unit_source_value": pa.string(),
                    "range_low": pa.float64(), "range_high": pa.float64()},
    "observation": {"observation_id": pa.int64(), "person_id": pa.int64(),
                    "observation_date": pa.date32(), "observation_datetime": pa.timestamp("us"),
                    "observation_source_value": pa.string(), "value_as_number": pa.float64(),
                    "value_as_string": pa.string(), "unit_source_value": pa.string(),
                    "qualifier_source_value": pa.string()},
    "drug_exposure": {"drug_exposure_id": pa.int64(), "person_id": pa.int64(),
                      "drug_exposure_start_date": pa.date32(),
                      "drug_exposure_end_date": pa.date32(), "drug_source_value": pa.string(),
                      "therapy_category": pa.string(), "chronic": pa.bool_()},
}


def synthesise(
    patients: int,
    *,
    seed: int,
    on: date,
    trials: Sequence[CompiledProtocol] = (),
    chunk: int = DEFAULT_CHUNK,
) -> Iterator[dict[str, pa.Table]]:
    """Yield the five tables for ``patients`` patients, ``chunk`` patients at a time.

    Dates lie on or before ``on`` (the intended screening date); consent and attestation
    rows are made for ``trials``.
    """
    matchers = [_Matcher(t) for t in trials]
    ids = {"condition_occurrence": 0, "measurement": 0, "observation": 0, "drug_exposure": 0}
    for index, start in enumerate(range(0, patients, chunk)):
        n = min(chunk, patients - start)
        rng = np.random.default_rng([seed, index])
        gen = _Chunk(rng, start + 1, n, on, matchers, ids)
        yield gen.build()


class _Matcher:
    """Whether a patient's diagnosis fits a trial: its criteria on diagnosis facts alone."""

    def __init__(self, compiled: CompiledProtocol) -> None:
        self.compiled = compiled
        # Every criterion, on the diagnosis facts alone: the others are unknown, and
        # three-valued logic still rules a patient out when one known fact does.
        self.checks = [(kind, compiled.rules[c.id]) for kind, c in compiled.protocol.criteria]
        self.cache: dict[tuple[Any, ...], bool] = {}
        inclusion = [c for k, c in compiled.protocol.criteria if k == "inclusion"]
        exclusion = [c for k, c in compiled.protocol.criteria if k == "exclusion"]
        self.attest_true = [c.attestation.id for c in inclusion if c.attestation]
        self.attest_false = [c.attestation.id for c in exclusion if c.attestation]
        # A declared attestation a criterion's rule names (NB-NK-2026 E7's first half).
        for kind, ids in (("inclusion", self.attest_true), ("exclusion", self.attest_false)):
            ids += [name.removeprefix("attest.") for k, c in compiled.protocol.criteria
                    if k == kind and c.attestation is None
                    for name in facts_of(compiled.rules[c.id]) if name.startswith("attest.")]
        in_criteria = set(self.attest_true) | set(self.attest_false)
        self.attest_free = [a.id for a in compiled.protocol.eligibility.attestations
                            if a.id not in in_criteria]

    def fits(self, dx: str | None, septic: bool | None, metastatic: bool | None,
             risk: str | None) -> bool:
        key = (dx, septic, metastatic, risk)
        if key not in self.cache:
            values: dict[str, FactValue] = {}
            if dx is not None:
                category = ("haematological" if dx in HAEMATOLOGICAL
                            else "other" if dx == "other" else "solid_tumour")
                values["primary_diagnosis"] = FactValue("primary_diagnosis", dx)
                values["diagnosis_category"] = FactValue("diagnosis_category", category)
                values["oncohaematological"] = FactValue("oncohaematological",
                                                         dx in ONCOHAEMATOLOGICAL)
            for name, v in (("septic_shock", septic), ("metastatic", metastatic),
                            ("risk_group", risk)):
                if v is not None:
                    values[name] = FactValue(name, v)
            facts = FactSet(datetime(2000, 1, 1), values)
            outcomes = [(kind, evaluate(expr, facts)) for kind, expr in self.checks]
            self.cache[key] = not any(
                (k == "inclusion" and o is False) or (k == "exclusion" and o is True)
                for k, o in outcomes)
        return self.cache[key]


class _Chunk:
    def __init__(self, rng: np.random.Generator, first_id: int, n: int, on: date,
                 matchers: list[_Matcher], ids: dict[str, int]) -> None:
        self.rng, self.n, self.on, self.matchers, self.ids = rng, n, on, matchers, ids
        self.pid = np.arange(first_id, first_id + n, dtype=np.int64)
        self.on64 = np.datetime64(on, "D")
        self.tables = {name: _Table(tuple(types)) for name, types in _TYPES.items()}

    # -- helpers ---------------------------------------------------------------

    def _next_ids(self, table: str, n: int) -> np.ndarray:
        start = self.ids[table]
        self.ids[table] += n
        return np.arange(start + 1, start + n + 1, dtype=np.int64)

    def days_ago(self, days: np.ndarray) -> np.ndarray:
        return self.on64 - np.asarray(days, dtype=np.int64).astype("timedelta64[D]")

    def recent(self, mask: np.ndarray, mean_days: float, cap: int = 400) -> np.ndarray:
        """Days ago, mostly recent, some older than a look-back window; within the last
        week for a patient in work-up."""
        n = int(mask.sum())
        days = np.minimum(self.rng.exponential(mean_days, n).astype(np.int64), cap)
        return np.where(self.workup[mask], np.minimum(days, self.rng.integers(0, 7, n)), days)

    def pick(self, p: float, where: np.ndarray | None = None) -> np.ndarray:
        m = self.rng.random(self.n) < p
        return m if where is None else m & where

    def record(self, p: float, where: np.ndarray | None = None) -> np.ndarray:
        """Whether something is recorded: with probability ``p``, almost surely in work-up."""
        m = self.rng.random(self.n) < np.where(self.workup, max(p, 0.98), p)
        return m if where is None else m & where

    def choice(self, options: Sequence[Any], n: int, p: Sequence[float] | None = None
               ) -> np.ndarray:
        idx = self.rng.choice(len(options), size=n, p=p)
        return np.array(options, dtype=object)[idx]

    def observe(self, mask: np.ndarray, source: str, *, days: np.ndarray, number: Any = None,
                string: Any = None, unit: Any = None, qualifier: str | None = None,
                moment: Any = None) -> None:
        n = int(mask.sum())
        self.tables["observation"].add(
            n, observation_id=self._next_ids("observation", n), person_id=self.pid[mask],
            observation_date=self.days_ago(days), observation_datetime=moment,
            observation_source_value=source, value_as_number=number, value_as_string=string,
            unit_source_value=unit, qualifier_source_value=qualifier)

    def flag(self, mask: np.ndarray, source: str, p_true: float, mean_days: float = 10) -> None:
        n = int(mask.sum())
        values = np.where(self.rng.random(n) < p_true, "true", "false").astype(object)
        self.observe(mask, source, days=self.recent(mask, mean_days), string=values)

    # -- the population --------------------------------------------------------

    def build(self) -> dict[str, pa.Table]:
        rng, n = self.rng, self.n
        shares = np.array([c[1] for c in _COHORTS])
        cohort = rng.choice(len(_COHORTS), size=n, p=shares / shares.sum())
        self.cohort = cohort
        names = np.array([c[0] for c in _COHORTS], dtype=object)[cohort]
        self.child = np.isin(names, ("neuroblastoma", "child_solid", "child_haem"))
        self.nb = names == "neuroblastoma"
        self.haem = np.isin(names, ("child_haem", "adult_haem"))
        self.solid = np.isin(names, ("child_solid", "adult_solid"))
        dx = np.empty(n, dtype=object)
        age = np.empty(n)
        for k, (_, _, diagnoses, (lo, hi)) in enumerate(_COHORTS):
            m = cohort == k
            dx[m] = self.choice(diagnoses, int(m.sum()))
            if lo < 18:
                span = rng.gamma(2.2, 2.0, int(m.sum())) + lo if k == 0 else \
                    rng.uniform(lo, hi, int(m.sum()))
                age[m] = np.clip(span, lo, hi - 0.01)
            else:
                age[m] = np.clip(rng.normal(61, 14, int(m.sum())), lo, hi)
        self.dx, self.age = dx, age
        self._status()
        female = rng.random(n) < 0.5
        female[np.isin(dx, ("breast_cancer", "ovarian_cancer"))] = True
        female[dx == "prostate_cancer"] = False
        self.female = female
        self._person()
        self._diagnosis()
        self._disease()
        self._labs()
        self._performance()
        self._findings()
        self._pregnancy()
        self._treatments()
        self._trials()
        self._questions()
        return {name: t.arrow(_TYPES[name]) for name, t in self.tables.items()}

    def _person(self) -> None:
        birth = self.on64 - (self.age * 365.25).astype(np.int64).astype("timedelta64[D]")
        years = birth.astype("datetime64[Y]")
        months = birth.astype("datetime64[M]")
        gender = np.where(self.female, 8532, 8507)
        gender[self.rng.random(self.n) < 0.005] = 0
        self.birth = birth
        self.tables["person"].add(
            self.n, person_id=self.pid, gender_concept_id=gender,
            year_of_birth=years.astype(np.int64) + 1970,
            month_of_birth=(months - years.astype("datetime64[M]")).astype(np.int64) + 1,
            day_of_birth=(birth - months.astype("datetime64[D]")).astype(np.int64) + 1)

    def _condition(self, mask: np.ndarray, values: Any, days: np.ndarray) -> None:
        k = int(mask.sum())
        self.tables["condition_occurrence"].add(
            k, condition_occurrence_id=self._next_ids("condition_occurrence", k),
            person_id=self.pid[mask], condition_start_date=self.days_ago(days),
            condition_source_value=values)

    def _diagnosis(self) -> None:
        rng, n = self.rng, self.n
        has = self.has_dx
        # Not after the birth date: at most the patient's age in days.
        max_days = np.maximum((self.age * 365).astype(np.int64) - 1, 1)
        days = np.minimum(rng.integers(20, 1500, n), max_days)
        self._condition(has, self.dx[has], days[has])
        older = self.pick(0.02, has)
        self._condition(older, self.choice(("melanoma", "lymphoma", "other"), int(older.sum())),
                        np.minimum(days[older] + rng.integers(200, 2000, int(older.sum())),
                                   max_days[older]))
        unrelated = self.pick(0.2)
        self._condition(unrelated, self.choice(("hypertension", "type_2_diabetes", "asthma"),
                                               int(unrelated.sum())),
                        np.minimum(rng.integers(30, 3000, n)[unrelated], max_days[unrelated]))
        confirmed = self.record(0.9, has)
        self.observe(confirmed, "diagnosis_confirmation", days=days[confirmed],
                     string=self.choice(("histological", "cytological", "clinical"),
                                        int(confirmed.sum()), p=(0.85, 0.08, 0.07)))
        nb = self.nb & has
        risk = self.record(0.95, nb)
        self.risk = np.full(n, None, dtype=object)
        self.risk[risk] = self.choice(("high", "intermediate", "low"), int(risk.sum()),
                                      p=(0.6, 0.25, 0.15))
        # Refractory and relapsed neuroblastoma is mostly high-risk disease.
        active = risk & np.isin(self.status, ("refractory", "relapsed", "progressive"))
        self.risk[active] = self.choice(("high", "intermediate", "low"), int(active.sum()),
                                        p=(0.85, 0.1, 0.05))
        self.observe(risk, "risk_group", days=days[risk], string=self.risk[risk])
        system = self.record(0.95, nb)
        self.observe(system, "risk_system", days=days[system],
                     string=self.choice(("GPOH-NB2004", "COG", "SIOPEN", "INRG"),
                                        int(system.sum()), p=(0.7, 0.1, 0.1, 0.1)))
        staged = self.record(0.7, has)
        self.observe(staged, "stage", days=days[staged],
                     string=np.where(self.nb[staged], "INSS 4", "IV").astype(object))

    def _status(self) -> None:
        """Disease status, metastatic disease, septic shock — and who is in work-up for a
        trial (their data is complete and recent, as for a patient being evaluated)."""
        rng, n = self.rng, self.n
        self.has_dx = rng.random(n) > 0.03
        nb = self.nb
        status = np.full(n, None, dtype=object)
        status[nb] = self.choice(("refractory", "relapsed", "progressive", "on_first_line_therapy",
                                  "remission", "newly_diagnosed"), int(nb.sum()),
                                 p=(0.3, 0.2, 0.1, 0.2, 0.15, 0.05))
        other = ~nb
        status[other] = self.choice(("progressive", "relapsed", "remission",
                                     "on_first_line_therapy", "newly_diagnosed"), int(other.sum()),
                                    p=(0.3, 0.15, 0.2, 0.25, 0.1))
        self.status = status
        self.metastatic = self.solid & (rng.random(n) < 0.45)
        self.shock = self.haem & ~self.child & (rng.random(n) < 0.06)
        active = np.isin(status, ("refractory", "relapsed", "progressive"))
        self.workup = self.has_dx & (
            (nb & active & (rng.random(n) < 0.7))
            | (nb & (status == "remission") & (rng.random(n) < 0.5))
            | (self.solid & ~self.child & self.metastatic & (rng.random(n) < 0.25))
            | self.shock)

    def _disease(self) -> None:
        rng, n = self.rng, self.n
        days = np.minimum(rng.integers(0, 60, n), 400)
        nb = self.nb
        status = self.status
        recorded = self.record(0.92, self.has_dx)
        self.observe(recorded, "disease_status", days=days[recorded], string=status[recorded])
        earlier = self.pick(0.3, recorded)
        self.observe(earlier, "disease_status", days=days[earlier] + rng.integers(90, 400,
                                                                                int(earlier.sum())),
                     string="on_first_line_therapy")
        refractory = status == "refractory"
        nbr = self.record(0.95, nb)
        response = np.where(refractory, self.choice(("MR", "SD", "PR", "CR"), n,
                                                    p=(0.4, 0.4, 0.15, 0.05)),
                            self.choice(("CR", "VGPR", "PR", "MR", "SD", "PD"), n))
        self.observe(nbr, "end_induction_response", days=days[nbr] + 30, string=response[nbr])
        cycles = np.where(refractory, rng.integers(5, 9, n), rng.integers(2, 9, n)).astype(float)
        self.observe(nbr, "induction_cycles_completed", days=days[nbr] + 30, number=cycles[nbr])
        for source, p_rec, p_true, where in (
            ("cns_involvement", 0.9, 0.05, nb),
            ("staging_complete", 0.9, 0.9, nb),
            ("brain_metastases", 0.8, 0.06, self.solid),
            ("chemotherapy_resistant", 0.7, 0.2, self.haem),
        ):
            m = self.record(p_rec, where & self.has_dx)
            values = np.where(rng.random(int(m.sum())) < p_true, "true", "false").astype(object)
            self.observe(m, source, days=days[m], string=values)
        m = self.record(0.9, self.solid & self.has_dx)
        self.observe(m, "metastatic", days=days[m],
                     string=np.where(self.metastatic[m], "true", "false").astype(object))
        # Septic shock with severe neutropenia: a few haematology patients, hours ago.
        shock = self.shock
        hours = rng.uniform(0.5, 20.0, int(shock.sum()))
        moment = np.datetime64(datetime.combine(self.on, datetime.min.time()), "us") - (
            hours * 3600e6).astype("timedelta64[us]")
        self.observe(shock, "septic_shock", days=np.zeros(int(shock.sum())), string="true")
        self.observe(shock, "septic_shock_onset", days=(self.on64 - moment.astype("datetime64[D]")
                                                        ).astype(np.int64), moment=moment)
        no_shock = self.pick(0.3, self.haem & ~shock)
        self.observe(no_shock, "septic_shock", days=days[no_shock], string="false")

    def _labs(self) -> None:
        rng, n = self.rng, self.n
        has = self.record(0.97)
        latest = np.minimum(rng.exponential(9.0, n).astype(np.int64), 150)
        latest = np.where(self.workup, np.minimum(latest, rng.integers(0, 7, n)), latest)
        latest[self.shock] = 0
        earlier = latest + rng.integers(7, 180, n)
        adult_male = ~self.child & ~self.female
        for days in (latest, earlier):
            for lab in LABS:
                m = self.record(0.95, has)
                self._lab(lab, m, days[m], adult_male[m])
        # An older blood count and creatinine for some: history that is never the latest.
        oldest = earlier + rng.integers(30, 365, n)
        for lab in ("anc", "platelets", "hemoglobin", "creatinine"):
            m = has & (rng.random(n) < 0.4)
            self._lab(lab, m, oldest[m], adult_male[m])
        # Body size, heart, oxygen, measured GFR.
        size = self.record(0.95, has)
        sdays = self.recent(size, 8)
        a = self.age[size]
        height = np.where(a < 18, 75 + 6.0 * np.minimum(a, 17) + rng.normal(0, 6, a.size),
                          np.where(self.female[size], 162, 175) + rng.normal(0, 7, a.size))
        height = np.clip(np.round(height, 1), 60, 210)
        bmi = np.clip(rng.normal(np.where(a < 18, 17, 26), 3.5), 12, 45)
        weight = np.round(bmi * (height / 100) ** 2, 1)
        metres = rng.random(a.size) < 0.1
        self._measure(size, "height", sdays, np.where(metres, np.round(height / 100, 3), height),
                      np.where(metres, "m", "cm").astype(object), None)
        self._measure(size, "weight", sdays, weight, "kg", None)
        echo = self.record(0.15, has)
        echo |= self.pick(0.8, self.nb & has)
        self._measure(echo, "lvef", self.recent(echo, 20),
                      np.clip(np.round(rng.normal(64, 5, int(echo.sum()))), 20, 80), "%", None)
        ox = self.record(0.2, has)
        ox |= self.pick(0.8, self.nb & has)
        self._measure(ox, "spo2_room_air", self.recent(ox, 8),
                      np.clip(np.round(rng.normal(97.5, 1.6, int(ox.sum()))), 80, 100), "%", None)
        mgfr = self.pick(0.02, has)
        self._measure(mgfr, "measured_gfr", self.recent(mgfr, 20),
                      np.clip(np.round(rng.normal(90, 25, int(mgfr.sum()))), 10, 180),
                      "mL/min/1.73m2", None)

    def _measure(self, mask: np.ndarray, fact: str, days: np.ndarray, value: Any, unit: Any,
                 ref_high: Any, ref_low: Any = None) -> None:
        k = int(mask.sum())
        code = loinc(fact)
        source: Any = fact
        if code:
            source = np.where(self.rng.random(k) < 0.6, code, fact).astype(object)
        self.tables["measurement"].add(
            k, measurement_id=self._next_ids("measurement", k), person_id=self.pid[mask],
            measurement_date=self.days_ago(days), measurement_source_value=source,
            value_as_number=value, unit_source_value=unit, range_low=ref_low, range_high=ref_high)

    def _lab(self, lab: str, m: np.ndarray, days: np.ndarray, male: np.ndarray) -> None:
        rng = self.rng
        k = int(m.sum())
        child = self.child[m]
        haem = self.haem[m]
        shock = self.shock[m]

        def lognormal(median: Any, sigma: float) -> np.ndarray:
            return np.asarray(median) * np.exp(rng.normal(0, sigma, k))

        def abnormal(values: np.ndarray, p: float, lo: float, hi: float) -> np.ndarray:
            return np.where(rng.random(k) < p, values * rng.uniform(lo, hi, k), values)

        ref_high: Any = None
        ref_low: Any = None
        unit: Any
        if lab in ("anc", "granulocytes"):
            v = lognormal(np.where(child, 3000, 3800), 0.45)
            v = np.where(haem & (rng.random(k) < 0.3), lognormal(450, 0.7), v)
            v = np.where(shock, lognormal(300, 0.6), v)
            if lab == "granulocytes":
                v = v + 250
            v = np.clip(v, 0, 60000)
            per_l = rng.random(k) < 0.5
            value = np.where(per_l, np.round(v / 1000, 2), np.round(v, -1))
            unit = np.where(per_l, "10^9/L", "/mm3").astype(object)
        elif lab == "platelets":
            v = lognormal(np.where(haem, 110000, 250000), 0.4)
            per_l = rng.random(k) < 0.6
            value = np.where(per_l, np.round(v / 1000), np.round(v, -3))
            unit = np.where(per_l, "10^9/L", "/mm3").astype(object)
        elif lab == "hemoglobin":
            v = np.clip(rng.normal(np.where(haem, 10.0, 12.6), 1.7), 4, 19)
            per_l = rng.random(k) < 0.4
            value = np.where(per_l, np.round(v * 10), np.round(v, 1))
            unit = np.where(per_l, "g/L", "g/dL").astype(object)
        elif lab in ("alt", "ast", "alp"):
            # Synthetic laboratory limits after FACTS.md §9 (illustrative only).
            uln = {"alt": np.where(male, 41, 33), "ast": np.where(male, 40, 32),
                   "alp": np.where(child, 400, 130)}[lab].astype(float)
            median = {"alt": 24, "ast": 27, "alp": np.where(child, 220, 80)}[lab]
            value = np.round(np.clip(abnormal(lognormal(median, 0.35), 0.08, 2, 12), 1, 5000))
            unit = "U/L"
            ref_high = uln
            ref_low = np.full(k, 5.0)
        elif lab == "bilirubin":
            mg = np.clip(abnormal(lognormal(0.6, 0.4), 0.05, 2, 6), 0.05, 30)
            molar = rng.random(k) < 0.5
            value = np.where(molar, np.round(mg * 17.1), np.round(mg, 2))
            unit = np.where(molar, "umol/L", "mg/dL").astype(object)
            ref_high = np.where(molar, 21.0, 1.2)
        elif lab == "creatinine":
            mg = np.clip(abnormal(lognormal(np.where(child, 0.45, 0.9), 0.25), 0.05, 2, 4),
                         0.1, 15)
            molar = rng.random(k) < 0.6
            value = np.where(molar, np.round(mg * 88.4), np.round(mg, 2))
            unit = np.where(molar, "umol/L", "mg/dL").astype(object)
            uln_mg = np.where(child, 0.7, np.where(male, 1.2, 1.0))
            ref_high = np.where(molar, np.round(uln_mg * 88.4), uln_mg)
        elif lab == "sodium":
            value = np.round(rng.normal(139, 3, k))
            unit = "mmol/L"
        elif lab == "potassium":
            value = np.round(rng.normal(4.2, 0.45, k), 1)
            unit = "mmol/L"
        elif lab == "pti":
            value = np.round(np.clip(rng.normal(95, 14, k), 20, 150))
            unit = "%"
        elif lab == "aptt":
            value = np.round(np.clip(rng.normal(31, 4.5, k), 15, 120), 1)
            unit = "s"
        else:  # inr
            value = np.round(np.clip(rng.normal(1.05, 0.15, k), 0.7, 6), 2)
            unit = None
        self._measure(m, lab, days, value, unit, ref_high, ref_low)

    def _performance(self) -> None:
        lansky = self.record(0.85, self.child)
        self.observe(lansky, "lansky", days=self.recent(lansky, 10),
                     number=self.choice((100.0, 90.0, 80.0, 70.0, 60.0, 50.0), int(lansky.sum()),
                                        p=(0.25, 0.3, 0.2, 0.12, 0.08, 0.05)))
        adult = ~self.child
        karnofsky = self.record(0.7, adult | (self.age >= 15))
        self.observe(karnofsky, "karnofsky", days=self.recent(karnofsky, 12),
                     number=self.choice((100.0, 90.0, 80.0, 70.0, 60.0, 50.0, 40.0),
                                        int(karnofsky.sum()),
                                        p=(0.1, 0.25, 0.25, 0.18, 0.12, 0.06, 0.04)))
        ecog = self.record(0.75, adult)
        self.observe(ecog, "ecog", days=self.recent(ecog, 12),
                     number=self.choice((0.0, 1.0, 2.0, 3.0, 4.0), int(ecog.sum()),
                                        p=(0.3, 0.35, 0.2, 0.1, 0.05)))

    def _findings(self) -> None:
        rng, n = self.rng, self.n
        life = self.record(0.7, self.has_dx)
        k = int(life.sum())
        weeks = np.round(np.clip(rng.lognormal(np.log(40), 0.8, k), 2, 500))
        months = rng.random(k) < 0.3
        self.observe(life, "life_expectancy", days=self.recent(life, 10),
                     number=np.where(months, np.round(weeks / 4.35), weeks),
                     unit=np.where(months, "month", "week").astype(object))
        adult = ~self.child
        for source, p_rec, p_true, where in (
            ("drug_induced_neuropathy", 0.85, 0.08, self.nb),
            ("neuropathic_pain", 0.85, 0.08, self.nb),
            ("heart_failure_signs", 0.7, 0.03, None),
            ("dyspnoea_at_rest", 0.7, 0.04, None),
            ("chest_xray_abnormal", 0.6, 0.06, None),
            ("severe_cardiovascular_disease", 0.7, 0.08, adult),
            ("active_peptic_ulcer", 0.6, 0.02, adult),
            ("uncontrolled_diabetes", 0.6, 0.03, adult),
            ("significant_allergy", 0.6, 0.05, None),
        ):
            base = np.ones(n, dtype=bool) if where is None else where
            if source in ("heart_failure_signs", "dyspnoea_at_rest", "chest_xray_abnormal"):
                base = base | self.nb
            self.flag(self.record(p_rec, base), source, p_true)
        ckd = self.record(0.5)
        self.observe(ckd, "ckd_stage", days=self.recent(ckd, 15),
                     number=self.choice((0.0, 1.0, 2.0, 3.0, 4.0, 5.0), int(ckd.sum()),
                                        p=(0.85, 0.05, 0.05, 0.03, 0.015, 0.005)))
        rifle = self.record(0.4)
        self.observe(rifle, "rifle_class", days=self.recent(rifle, 10),
                     string=self.choice(("none", "risk", "injury", "failure"), int(rifle.sum()),
                                        p=(0.9, 0.05, 0.03, 0.02)))

    def _pregnancy(self) -> None:
        rng, n = self.rng, self.n
        fertile_age = (self.age >= 12) & (self.age < 55)
        recorded = self.record(0.9, self.female)
        potential = np.where(fertile_age, rng.random(n) < 0.8, rng.random(n) < 0.02)
        self.observe(recorded, "childbearing_potential", days=self.recent(recorded, 200, 3000),
                     string=np.where(potential[recorded], "true", "false").astype(object))
        tested = self.record(0.65, self.female & fertile_age)
        self.observe(tested, "pregnant", days=self.recent(tested, 10),
                     string=np.where(rng.random(int(tested.sum())) < 0.01, "true",
                                     "false").astype(object))

    def _drug(self, mask: np.ndarray, category: str, agent: str, start: np.ndarray,
              end: np.ndarray | None, chronic: bool = False) -> None:
        k = int(mask.sum())
        end_dates: Any = None
        if end is not None:
            end_dates = np.where(end[mask] >= 0, self.days_ago(np.maximum(end[mask], 0)),
                                 np.datetime64("NaT"))
        self.tables["drug_exposure"].add(
            k, drug_exposure_id=self._next_ids("drug_exposure", k), person_id=self.pid[mask],
            drug_exposure_start_date=self.days_ago(start[mask]), drug_exposure_end_date=end_dates,
            drug_source_value=agent, therapy_category=category, chronic=np.full(k, chronic))

    def _treatments(self) -> None:
        rng, n = self.rng, self.n
        recorded = self.record(0.92, self.has_dx)
        max_days = np.maximum((self.age * 365).astype(np.int64) - 2, 1)

        def start(lo: int, hi: int) -> np.ndarray:
            return np.minimum(rng.integers(lo, hi, n), max_days)

        def end_after(s: np.ndarray, lo: int, hi: int) -> np.ndarray:
            return np.maximum(s - rng.integers(lo, hi, n), -1)  # −1: ongoing

        chemo_s = start(120, 700)
        chemo = recorded & (self.nb | (rng.random(n) < np.where(self.haem, 0.9, 0.7)))
        chemo &= ~(self.dx == "other") | (rng.random(n) < 0.1)
        self._drug(chemo, "chemotherapy", "chemotherapy", chemo_s,
                   np.maximum(end_after(chemo_s, 60, 400), 1))
        # Neuroblastoma after first-line therapy: surgery, transplant and radiotherapy done.
        after_first_line = self.nb & ~np.isin(self.status, ("newly_diagnosed",
                                                            "on_first_line_therapy"))
        for category, p, who in (("surgery", 0.6, self.nb | self.solid),
                                 ("surgery", 0.8, after_first_line),
                                 ("radiotherapy", 0.35, self.nb | self.solid),
                                 ("radiotherapy", 0.8, after_first_line),
                                 ("stem_cell_transplant", 0.4, self.nb),
                                 ("stem_cell_transplant", 0.8, after_first_line),
                                 ("stem_cell_transplant", 0.15, self.haem),
                                 ("targeted_therapy", 0.2, self.solid)):
            m = recorded & who & (rng.random(n) < p)
            s = start(60, 600)
            self._drug(m, category, category, s, np.maximum(s - 1, 0))
        immuno = recorded & (self.nb | self.solid) & (rng.random(n) < 0.18)
        s = start(5, 500)
        self._drug(immuno, "immunotherapy", "immunotherapy", s, end_after(s, 0, 120))
        steroid = recorded & (rng.random(n) < np.where(self.haem, 0.2, 0.05))
        s = start(10, 300)
        self._drug(steroid, "corticosteroid", "prednisolone", s,
                   np.where(rng.random(n) < 0.5, -1, end_after(s, 0, 200)),
                   chronic=True)
        immunosupp = recorded & self.haem & (rng.random(n) < 0.1)
        s = start(30, 400)
        self._drug(immunosupp, "immunosuppressant", "ciclosporin", s, np.full(n, -1),
                   chronic=True)
        counted = np.zeros(n, dtype=bool)
        for m in (chemo, immuno, steroid, immunosupp):
            counted |= m
        # Recorded and empty: the record says so (otherwise absence means unknown).
        empty = recorded & ~counted & (rng.random(n) < 0.5)
        self.flag(empty, "treatment_history_recorded", 1.0, 100)

    def _trials(self) -> None:
        rng, n = self.rng, self.n
        self.approached = np.zeros(n, dtype=bool)
        if not self.matchers:
            return
        keys = list(zip(self.dx.tolist(), self.shock.tolist(), self.metastatic.tolist(),
                        self.risk.tolist(), strict=True))
        for matcher in self.matchers:
            fits = np.fromiter(
                (self.has_dx[i] and matcher.fits(dx, True if shock else None,
                                                 True if metastatic else None, risk)
                 for i, (dx, shock, metastatic, risk) in enumerate(keys)), dtype=bool, count=n)
            # Patients in work-up are the ones approached: most have consented.
            consent = (fits & (rng.random(n) < np.where(self.workup, 0.8, 0.1))) | (
                rng.random(n) < 0.002)
            trial = matcher.compiled.id
            k = int(consent.sum())
            cdays = rng.integers(0, 20, n)
            self.approached |= consent
            self.observe(consent, "consent", days=cdays[consent], qualifier=trial,
                         string=np.where(rng.random(k) < 0.97, "true", "false").astype(object))
            for ids, p_true in ((matcher.attest_true, 0.92), (matcher.attest_false, 0.08),
                                (matcher.attest_free, 0.5)):
                for attestation in ids:
                    answered = consent & (rng.random(n) < 0.95)
                    values = np.where(rng.random(int(answered.sum())) < p_true, "true",
                                      "false").astype(object)
                    self.observe(answered, f"attest.{attestation}", days=cdays[answered],
                                 qualifier=trial, string=values)


    def _questions(self) -> None:
        """The investigator's question findings (one answer per patient, read by every
        trial): answered at the work-up for a trial, seldom otherwise."""
        rng, n = self.rng, self.n
        asked = self.approached | (self.has_dx & (rng.random(n) < 0.05))
        for source, p_true in (("severe_type1_hypersensitivity_history", 0.03),
                               ("mental_illness_preventing_understanding", 0.02),
                               ("standard_treatment_exhausted", 0.6)):
            self.flag(asked & (rng.random(n) < 0.95), source, p_true)


__all__ = ["DEFAULT_CHUNK", "LABS", "synthesise"]
