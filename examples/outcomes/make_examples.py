"""Write the synthetic outcome examples in this folder (fixed seed: the same files every run).

    python examples/outcomes/make_examples.py

Every patient, date, response, measurement and adverse event here is invented to exercise
trialdesk; none of it is a result of NB-NK-2026 or RuMCeSS, and no arm is made better
than another on purpose. Clinical rules used to keep the data coherent come from
trialdesk itself (RECIST 1.1 thresholds, CTCAE v5.0 lab grades).

Files:

- ``nb-nk-2026-events.csv`` — event table, 12 patients in arms A and B
- ``nb-nk-2026-aes.json`` — adverse events with course, CTCAE v5.0 grade and attributions
- ``nb-nk-2026-tumour.csv`` — sums of target diameters every two courses
- ``nb-nk-2026-exposure.csv`` — agents given per course (doses left blank: not public)
- ``nb-nk-2026-labs.csv`` — neutrophil counts at each course start
- ``nb-nk-2026-stopping.json`` — a count-based stopping-rule status input
- ``rumcess-events.csv`` — event table, 30 patients randomised MSC vs SOC
"""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from trialdesk.clinical.ctcae import grade_lab
from trialdesk.response.recist import PD_INCREASE, PD_MIN_ABSOLUTE_MM, PR_DECREASE

HERE = Path(__file__).resolve().parent
SEED = 20260121
NB_CUTOFF = date(2028, 6, 30)
COURSE_DAYS = 21  # NB-NK-2026 registry record (seed 000): 21-day inter-cycle interval
NB_COURSES = {"A": 5, "B": 6}  # seed 000: 1 IT + 4 DIT (arm A), 1 IT + 5 DIT (arm B)
EVENT_COLUMNS = ["patient_id", "arm", "enrolment_date", "best_response", "response_criteria",
                 "first_cr_date", "progression_date", "relapse_date", "second_malignancy_date",
                 "death_date", "last_contact_date", "site_id", "country", "sex", "age_years"]

# Synthetic AE menu: (CTCAE v5.0 term, MedDRA preferred term, grades to draw from,
# agents and attribution, chance per DIT course).
AE_MENU = [
    ("Pain", "Pain", (1, 2, 3), {"dinutuximab beta": "probable"}, 0.7),
    ("Fever", "Pyrexia", (1, 2, 3), {"dinutuximab beta": "possible", "autologous NK cells": "possible"},
     0.5),
    ("Capillary leak syndrome", "Capillary leak syndrome", (2, 3, 4), {"dinutuximab beta": "probable"},
     0.2),
    ("Hypotension", "Hypotension", (1, 2, 3), {"dinutuximab beta": "possible"}, 0.25),
    ("Neutrophil count decreased", "Neutrophil count decreased", (3, 4),
     {"irinotecan": "possible", "temozolomide": "probable"}, 0.5),
    ("Diarrhea", "Diarrhoea", (1, 2, 3), {"irinotecan": "probable"}, 0.35),
    ("Infusion related reaction", "Infusion related reaction", (1, 2, 3),
     {"autologous NK cells": "possible"}, 0.15),
    ("Febrile neutropenia", "Febrile neutropenia", (3,), {"temozolomide": "possible",
                                                        "irinotecan": "possible"}, 0.15),
]


def _iso(day: date | None) -> str:
    return day.isoformat() if day else ""


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})


def _time_point(total: float, baseline: float, nadir: float) -> str:
    """RECIST 1.1 time-point response from sums alone (targets only, no new lesions)."""
    if total == 0:
        return "CR"
    if total - nadir >= max(float(PD_INCREASE) * nadir, float(PD_MIN_ABSOLUTE_MM)):
        return "PD"
    if (baseline - total) / baseline >= float(PR_DECREASE):
        return "PR"
    return "SD"


def nb_nk(rng: np.random.Generator, out: Path) -> None:
    events, tumour, exposure, labs, aes = [], [], [], [], []
    arms = ["A"] * 5 + ["B"] * 7
    start = date(2026, 2, 2)
    fatal_sepsis_done = False
    for index, arm in enumerate(arms, start=1):
        patient = f"NB-{index:02d}"
        enrolled = start + timedelta(days=int(index * 23 + rng.integers(0, 10)))
        courses = NB_COURSES[arm]
        # Tumour course: a per-patient trend of the sum per assessment.
        baseline = float(rng.integers(35, 90))
        trend = float(rng.choice([-0.45, -0.3, -0.15, 0.05, 0.3], p=[0.15, 0.25, 0.25, 0.2, 0.15]))
        tumour.append({"patient_id": patient, "assessment_date": _iso(enrolled - timedelta(days=3)),
                       "sum_diameters_mm": f"{baseline:.0f}", "overall_response": ""})
        nadir, total = baseline, baseline
        best, first_cr, progression, relapse = "NE", None, None, None
        escapes = rng.random() < 0.55  # disease regrows after treatment ends
        rank = {"NE": 0, "PD": 1, "SD": 2, "PR": 3, "CR": 4}
        # Assessments every two courses (seed 001), then every 3 months after treatment.
        days = [2 * COURSE_DAYS * k for k in range(1, courses // 2 + 1)]
        days += [days[-1] + 91 * k for k in range(1, 9)]
        for day in days:
            when = enrolled + timedelta(days=day)
            if when > NB_CUTOFF - timedelta(days=7):
                break
            total = max(0.0, round(total * (1 + trend + float(rng.normal(0, 0.08))), 0))
            if trend < 0 and total < 10:
                total = 0.0
            response = _time_point(total, baseline, nadir)
            if response == "PD" and best == "CR":
                relapse = when
            elif response == "PD":
                progression = when
            tumour.append({"patient_id": patient, "assessment_date": _iso(when),
                           "sum_diameters_mm": f"{total:.0f}", "overall_response": response})
            if response == "CR" and first_cr is None:
                first_cr = when
            if rank[response] > rank[best] and response != "PD":
                best = response
            if response == "PD":
                best = best if best != "NE" else "PD"
                break
            nadir = min(nadir, total)
            if day >= 2 * COURSE_DAYS * (courses // 2) and escapes:
                trend = 0.4
                if total == 0:
                    total = 8.0
        death = None
        event_day = relapse or progression
        if event_day is not None and rng.random() < 0.6:
            death = event_day + timedelta(days=int(rng.integers(60, 300)))
            if death > NB_CUTOFF:
                death = None
        last_contact = death - timedelta(days=int(rng.integers(3, 20))) if death else NB_CUTOFF
        if event_day is not None and last_contact < event_day:
            last_contact = event_day
        if death is not None and not fatal_sepsis_done and arm == "B":
            fatal_sepsis_done = True
            aes.append({"patient_id": patient, "course": None, "term": "Sepsis", "grade": 5,
                        "onset": _iso(death - timedelta(days=2)), "meddra_term": "Sepsis",
                        "seriousness": ["death"], "outcome": "fatal",
                        "attributions": [{"agent": "dinutuximab beta", "attribution": "unlikely"}],
                        "expectedness": "expected", "action_taken": "not_applicable",
                        "sponsor_aware_on": _iso(death - timedelta(days=1))})
        events.append({
            "patient_id": patient, "arm": arm, "enrolment_date": _iso(enrolled),
            "best_response": best, "response_criteria": "INRC", "first_cr_date": _iso(first_cr),
            "progression_date": _iso(progression), "relapse_date": _iso(relapse),
            "death_date": _iso(death), "last_contact_date": _iso(last_contact),
            "site_id": "01", "country": "RUS", "sex": str(rng.choice(["F", "M"])),
            "age_years": int(rng.integers(2, 15)),
        })
        # Exposure and AEs per course, stopping at progression or death.
        stop = min(d for d in (progression, relapse, death, NB_CUTOFF) if d is not None)
        for course in range(1, courses + 1):
            course_start = enrolled + timedelta(days=1 + COURSE_DAYS * (course - 1))
            if course_start >= stop:
                break
            kind = "IT" if course == 1 else "DIT"
            agents = [("irinotecan", "IV", 0, 4), ("temozolomide", "PO", 0, 4)]
            if kind == "DIT":
                agents += [("dinutuximab beta", "IV", 0, 4), ("autologous NK cells", "IV", 6, 6)]
            for agent, route, first, last in agents:
                exposure.append({"patient_id": patient, "course": course, "course_id": kind,
                                 "agent": agent, "route": route,
                                 "start_date": _iso(course_start + timedelta(days=first)),
                                 "end_date": _iso(course_start + timedelta(days=last))})
            anc = round(float(rng.choice([0.3, 0.7, 1.2, 2.5, 3.4], p=[0.15, 0.2, 0.2, 0.25, 0.2])), 1)
            lab = grade_lab("Neutrophil count decreased", anc, "10^9/L")
            labs.append({"patient_id": patient, "date": _iso(course_start), "test_code": "NEUT",
                         "test": "Neutrophils", "value": f"{anc}", "unit": "10^9/L",
                         "toxicity_grade": lab.grade if lab.grade is not None else ""})
            for term, meddra, grades, agents_related, chance in AE_MENU:
                if kind == "IT" and "dinutuximab beta" in agents_related:
                    continue
                if rng.random() >= 0.7 * chance:
                    continue
                grade = int(rng.choice(grades))
                onset = course_start + timedelta(days=int(rng.integers(0, 12)))
                if onset >= stop:
                    continue
                record: dict[str, object] = {
                    "patient_id": patient, "course": course, "term": term, "grade": grade,
                    "onset": _iso(onset), "meddra_term": meddra,
                    "resolution": _iso(onset + timedelta(days=int(rng.integers(1, 8)))),
                    "attributions": [{"agent": a, "attribution": r} for a, r in agents_related.items()],
                    "expectedness": "expected", "outcome": "recovered",
                    "action_taken": "dose_rate_reduced" if term == "Pain" and grade == 3
                    else "dose_not_changed",
                }
                if grade == 4:
                    record["seriousness"] = ["life_threatening", "hospitalisation"]
                    record["sponsor_aware_on"] = _iso(onset + timedelta(days=1))
                elif grade == 3 and term in ("Capillary leak syndrome", "Febrile neutropenia"):
                    record["seriousness"] = ["hospitalisation"]
                    record["sponsor_aware_on"] = _iso(onset + timedelta(days=1))
                aes.append(record)
    _write_csv(out / "nb-nk-2026-events.csv", EVENT_COLUMNS, events)
    _write_csv(out / "nb-nk-2026-tumour.csv",
               ["patient_id", "assessment_date", "sum_diameters_mm", "overall_response"], tumour)
    _write_csv(out / "nb-nk-2026-exposure.csv",
               ["patient_id", "course", "course_id", "agent", "route", "start_date", "end_date",
                "dose", "dose_unit"], exposure)
    _write_csv(out / "nb-nk-2026-labs.csv",
               ["patient_id", "date", "test_code", "test", "value", "unit", "lower_limit",
                "upper_limit", "toxicity_grade"], labs)
    aes.sort(key=lambda r: (str(r["patient_id"]), str(r["onset"])))
    document = {"trial": "NB-NK-2026", "note": "synthetic example data", "adverse_events": aes}
    (out / "nb-nk-2026-aes.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    stopping = {
        "note": "Count-based status input, shown next to the protocol's own stopping rules. The "
                "NB-NK-2026 stopping rules are not public: these thresholds are placeholders to "
                "show the report, not protocol numbers.",
        "rules": [
            {"name": "Grade 4 capillary leak syndrome", "count": "patients_with_ae",
             "terms": ["Capillary leak syndrome"], "min_grade": 4, "threshold": 2,
             "source": "placeholder (protocol rule not public)", "unconfirmed": True},
            {"name": "Grade >=3 related SAEs", "count": "patients_with_ae", "min_grade": 3,
             "serious_only": True, "related_only": True, "threshold": 4,
             "source": "placeholder (protocol rule not public)", "unconfirmed": True},
        ],
    }
    (out / "nb-nk-2026-stopping.json").write_text(json.dumps(stopping, indent=1) + "\n",
                                                   encoding="utf-8")


def rumcess(rng: np.random.Generator, out: Path) -> None:
    rows = []
    arms = ["MSC", "SOC"] * 15
    order = rng.permutation(len(arms))
    start = date(2026, 3, 1)
    for index, position in enumerate(order, start=1):
        arm = arms[int(position)]
        enrolled = start + timedelta(days=int(index * 9 + rng.integers(0, 5)))
        # The same hazard in both arms: the example shows the machinery, not an effect.
        death_day = int(rng.exponential(60))
        follow_up = 90
        lost = index in (7, 19)  # two patients lost to follow-up before day 28
        death = enrolled + timedelta(days=death_day) if death_day <= follow_up and not lost else None
        if lost:
            last_contact = enrolled + timedelta(days=int(rng.integers(10, 25)))
        else:
            last_contact = None if death else enrolled + timedelta(days=follow_up)
        rows.append({"patient_id": f"RU-{index:02d}", "arm": arm, "enrolment_date": _iso(enrolled),
                     "death_date": _iso(death), "last_contact_date": _iso(last_contact),
                     "site_id": "01", "country": "RUS", "sex": str(rng.choice(["F", "M"])),
                     "age_years": int(rng.integers(18, 75))})
    _write_csv(out / "rumcess-events.csv",
               ["patient_id", "arm", "enrolment_date", "death_date", "last_contact_date", "site_id",
                "country", "sex", "age_years"], rows)


def main(out: Path = HERE) -> None:
    """Write every example file into ``out`` (default: this folder)."""
    rng = np.random.default_rng(SEED)
    nb_nk(rng, out)
    rumcess(rng, out)


if __name__ == "__main__":
    main()
