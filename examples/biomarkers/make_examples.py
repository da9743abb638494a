"""Write the synthetic biomarker examples in this folder (fixed seed: the same files every run).

    python examples/biomarkers/make_examples.py

Every value here is invented to exercise ``trialdesk biomarkers``; none of it is a result
of NB-NK-2026 or RuMCeSS, and no arm or genotype is made better than another on purpose.
The patients are those of ``examples/outcomes`` (their event tables are read, not changed);
a patient has values only while alive and followed, and some samples are missed on purpose
so that the analyses must say what is missing.

Files:

- ``rumcess-biomarkers.csv`` — IL-6, IL-10, procalcitonin, CRP, creatinine, bilirubin and
  PaO₂/FiO₂ on RuMCeSS sampling days 1, 2, 3, 7, 14, 28
- ``rumcess-episodes.csv`` — ventilation (invasive / non-invasive) and RRT episodes
- ``nb-nk-2026-biomarkers.csv`` — FCGR3A and FCGR2A genotypes (undated), GD2 % by IHC
  (day −1), NK cells per µL and ADCC % lysis (day 1)
"""

from __future__ import annotations

import csv
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUTCOMES = HERE.parent / "outcomes"
SEED = 20261204
SAMPLING_DAYS = (1, 2, 3, 7, 14, 28)  # the RuMCeSS protocol file's sampling days
COLUMNS = ["patient_id", "biomarker", "day", "value", "unit"]
# Invented starting levels and daily drift (log scale) per marker: shapes only.
SEPSIS = {"il6": ("pg/mL", 250.0, -0.12), "il10": ("pg/mL", 40.0, -0.08),
          "procalcitonin": ("ng/mL", 12.0, -0.10), "crp": ("mg/L", 180.0, -0.06),
          "creatinine": ("mg/dL", 1.6, -0.02), "bilirubin": ("mg/dL", 1.3, -0.01),
          "pao2_fio2": ("mmHg", 190.0, 0.02)}


def _events(name: str) -> list[dict[str, str]]:
    with (OUTCOMES / name).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _last_day(row: dict[str, str]) -> int:
    """The last study day the patient was alive and followed."""
    start = date.fromisoformat(row["enrolment_date"])
    end = date.fromisoformat(row["death_date"] or row["last_contact_date"])
    return (end - start).days + 1


def _write(path: Path, columns: list[str], rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def rumcess(rng: np.random.Generator) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    markers: list[dict[str, object]] = []
    episodes: list[dict[str, object]] = []
    for row in _events("rumcess-events.csv"):
        pid, last = row["patient_id"], _last_day(row)
        start = date.fromisoformat(row["enrolment_date"])
        for name, (unit, level, drift) in SEPSIS.items():
            base = level * float(np.exp(rng.normal(0, 0.35)))
            for day in SAMPLING_DAYS:
                if day > last or rng.random() < 0.08:  # not alive / followed, or missed
                    continue
                value = base * float(np.exp(drift * (day - 1) + rng.normal(0, 0.15)))
                markers.append({"patient_id": pid, "biomarker": name, "day": day,
                                "value": f"{value:.3g}", "unit": unit})
        # Invasive ventilation from day 1 for some, non-invasive for others; RRT for a few.
        kind = rng.choice(["invasive_ventilation", "non_invasive_ventilation", "none"],
                          p=[0.5, 0.3, 0.2])
        if kind != "none":
            length = int(rng.integers(2, 16))
            end_day = min(length, last)
            ongoing = end_day >= last and row["death_date"] != ""  # on support until death
            episodes.append({"patient_id": pid, "kind": str(kind), "start_date": start,
                             "end_date": "" if ongoing else start + timedelta(days=end_day - 1)})
        if rng.random() < 0.3:
            first = int(rng.integers(1, 4))
            if first <= last:
                end_day = min(first + int(rng.integers(2, 8)), last)
                episodes.append({"patient_id": pid, "kind": "rrt",
                                 "start_date": start + timedelta(days=first - 1),
                                 "end_date": start + timedelta(days=end_day - 1)})
    return markers, episodes


def nbnk(rng: np.random.Generator) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for i, row in enumerate(_events("nb-nk-2026-events.csv")):
        pid = row["patient_id"]
        if i != 5:  # one patient without a genotype: the analyses must list them
            rows.append({"patient_id": pid, "biomarker": "fcgr3a_genotype", "day": "",
                         "value": str(rng.choice(["V/V", "V/F", "F/F"])), "unit": ""})
            rows.append({"patient_id": pid, "biomarker": "fcgr2a_genotype", "day": "",
                         "value": str(rng.choice(["H/H", "H/R", "R/R"])), "unit": ""})
        rows.append({"patient_id": pid, "biomarker": "gd2_ihc_percent", "day": -1,
                     "value": f"{rng.uniform(5, 100):.0f}", "unit": "%"})
        rows.append({"patient_id": pid, "biomarker": "nk_cells", "day": 1,
                     "value": f"{rng.lognormal(5, 0.6):.0f}", "unit": "/uL"})
        if i != 8:
            rows.append({"patient_id": pid, "biomarker": "adcc_lysis", "day": 1,
                         "value": f"{rng.uniform(5, 60):.1f}", "unit": "%"})
    return rows


def main(out: Path = HERE) -> None:
    rng = np.random.default_rng(SEED)
    markers, episodes = rumcess(rng)
    _write(out / "rumcess-biomarkers.csv", COLUMNS, markers)
    _write(out / "rumcess-episodes.csv", ["patient_id", "kind", "start_date", "end_date"],
           episodes)
    _write(out / "nb-nk-2026-biomarkers.csv", COLUMNS, nbnk(rng))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
