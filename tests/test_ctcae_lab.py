"""Every band edge of every CTCAE v5.0 lab term, from the v5.0 grade text.

Each EDGES row is written by hand from the term's grade text (quoted in the comment above
it), not from the code's tables: for each edge, the grade just below it, on it, and just
above it. "<LLN - 1.5" means [1.5, LLN): on 1.5 is the milder grade; ">ULN - 5.5" means
(ULN, 5.5]: on 5.5 is the milder grade; integer ranges ("125-129") are half-open.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from trialdesk.clinical.ctcae import CLINICIAN_GRADED, grade_definitions, grade_lab, lab_terms
from trialdesk.clinical.ctcae_codes import all_terms, term_codes
from trialdesk.clinical.ctcae_lab import LAB_TERMS

CSV = Path("/work/shared/domain/ctcae-v5/ctcae_v5.csv")
if not CSV.exists():  # the repository copy of the shared domain folder, when checked out beside it
    CSV = Path(__file__).resolve().parents[2] / "shared" / "domain" / "ctcae-v5" / "ctcae_v5.csv"

Edge = tuple[float, int, int, int]  # edge, grade just below, on, just above

# term, unit, inputs, edges
EDGES: list[tuple[str, str, dict[str, object], list[Edge]]] = [
    # "<LLN - 1500/mm3; <LLN - 1.5 x 10e9 /L" | "<1500 - 1000/mm3" | "<1000 - 500/mm3" | "<500/mm3"
    ("Neutrophil count decreased", "10^9/L", {"lln": 2.0},
     [(2.0, 1, 0, 0), (1.5, 2, 1, 1), (1.0, 3, 2, 2), (0.5, 4, 3, 3)]),
    ("Neutrophil count decreased", "/mm3", {"lln": 2000},
     [(2000, 1, 0, 0), (1500, 2, 1, 1), (1000, 3, 2, 2), (500, 4, 3, 3)]),
    # "<LLN - 75,000/mm3" | "<75,000 - 50,000/mm3" | "<50,000 - 25,000/mm3" | "<25,000/mm3"
    ("Platelet count decreased", "10^9/L", {"lln": 150},
     [(150, 1, 0, 0), (75, 2, 1, 1), (50, 3, 2, 2), (25, 4, 3, 3)]),
    # "<LLN - 3000/mm3" | "<3000 - 2000/mm3" | "<2000 - 1000/mm3" | "<1000/mm3"
    ("White blood cell decreased", "10^9/L", {"lln": 4.0},
     [(4.0, 1, 0, 0), (3.0, 2, 1, 1), (2.0, 3, 2, 2), (1.0, 4, 3, 3)]),
    # "<LLN - 800/mm3" | "<800 - 500/mm3" | "<500 - 200/mm3" | "<200/mm3"
    ("Lymphocyte count decreased", "/mm3", {"lln": 1000},
     [(1000, 1, 0, 0), (800, 2, 1, 1), (500, 3, 2, 2), (200, 4, 3, 3)]),
    # "<LLN - 500/mm3" | "<500 - 200/mm3" | "<200 - 50/mm3" | "<50/mm3"
    ("CD4 lymphocytes decreased", "/mm3", {"lln": 600},
     [(600, 1, 0, 0), (500, 2, 1, 1), (200, 3, 2, 2), (50, 4, 3, 3)]),
    # G2 ">4000/mm3 - 20,000/mm3" | G3 ">20,000/mm3"
    ("Lymphocyte count increased", "/mm3", {}, [(4000, 0, 0, 2), (20000, 2, 2, 3)]),
    # G3 ">100,000/mm3"
    ("Leukocytosis", "/mm3", {}, [(100000, 0, 0, 3)]),
    # G1 ">ULN and >Baseline"
    ("Eosinophilia", "10^9/L", {"uln": 0.5, "baseline": 0.3}, [(0.5, 0, 0, 1)]),
    ("Eosinophilia", "10^9/L", {"uln": 0.5, "baseline": 0.8}, [(0.8, 0, 0, 1)]),
    # "Hgb <LLN - 10.0 g/dL; <LLN - 6.2 mmol/L; <LLN - 100 g/L" | "<10.0 - 8.0 g/dL; <6.2 - 4.9
    # mmol/L; <100 - 80g/L" | "<8.0 g/dL; <4.9 mmol/L; <80 g/L"
    ("Anemia", "g/L", {"lln": 120}, [(120, 1, 0, 0), (100, 2, 1, 1), (80, 3, 2, 2)]),
    ("Anemia", "g/dL", {"lln": 12}, [(12, 1, 0, 0), (10, 2, 1, 1), (8, 3, 2, 2)]),
    ("Anemia", "mmol/L", {"lln": 7.5}, [(7.5, 1, 0, 0), (6.2, 2, 1, 1), (4.9, 3, 2, 2)]),
    # "Increase in >0 - 2 g/dL" | ">2 - 4 g/dL" | ">4 g/dL" (above ULN: "above normal")
    ("Hemoglobin increased", "g/dL", {"uln": 16}, [(16, 0, 0, 1), (18, 1, 1, 2), (20, 2, 2, 3)]),
    ("Hemoglobin increased", "g/L", {"uln": 160}, [(160, 0, 0, 1), (180, 1, 1, 2), (200, 2, 2, 3)]),
    # ">ULN - 3.0 x ULN if baseline was normal; 1.5 - 3.0 x baseline if baseline was abnormal"
    # | ">3.0 - 5.0" | ">5.0 - 20.0" | ">20.0" (both rules)
    ("Alanine aminotransferase increased", "U/L", {"uln": 40, "baseline": 30},
     [(40, 0, 0, 1), (120, 1, 1, 2), (200, 2, 2, 3), (800, 3, 3, 4)]),
    ("Alanine aminotransferase increased", "U/L", {"uln": 40, "baseline": 60},
     [(90, 0, 1, 1), (180, 1, 1, 2), (300, 2, 2, 3), (1200, 3, 3, 4)]),
    ("Aspartate aminotransferase increased", "U/L", {"uln": 40, "baseline": 30},
     [(40, 0, 0, 1), (120, 1, 1, 2), (200, 2, 2, 3), (800, 3, 3, 4)]),
    ("Aspartate aminotransferase increased", "U/L", {"uln": 40, "baseline": 60},
     [(90, 0, 1, 1), (180, 1, 1, 2), (300, 2, 2, 3), (1200, 3, 3, 4)]),
    # ">ULN - 2.5 x ULN if baseline was normal; 2.0 - 2.5 x baseline if baseline was abnormal"
    # | ">2.5 - 5.0" | ">5.0 - 20.0" | ">20.0" (ALP and GGT alike)
    ("Alkaline phosphatase increased", "U/L", {"uln": 100, "baseline": 80},
     [(100, 0, 0, 1), (250, 1, 1, 2), (500, 2, 2, 3), (2000, 3, 3, 4)]),
    ("Alkaline phosphatase increased", "U/L", {"uln": 100, "baseline": 150},
     [(300, 0, 1, 1), (375, 1, 1, 2), (750, 2, 2, 3), (3000, 3, 3, 4)]),
    ("GGT increased", "U/L", {"uln": 60, "baseline": 40},
     [(60, 0, 0, 1), (150, 1, 1, 2), (300, 2, 2, 3), (1200, 3, 3, 4)]),
    ("GGT increased", "U/L", {"uln": 60, "baseline": 100},
     [(200, 0, 1, 1), (250, 1, 1, 2), (500, 2, 2, 3), (2000, 3, 3, 4)]),
    # ">ULN - 1.5 x ULN if baseline was normal; > 1.0 - 1.5 x baseline if baseline was abnormal"
    # | ">1.5 - 3.0" | ">3.0 - 10.0" | ">10.0"
    ("Blood bilirubin increased", "mg/dL", {"uln": 1.2, "baseline": 0.8},
     [(1.2, 0, 0, 1), (1.8, 1, 1, 2), (3.6, 2, 2, 3), (12, 3, 3, 4)]),
    ("Blood bilirubin increased", "mg/dL", {"uln": 1.2, "baseline": 2.0},
     [(2.0, 0, 0, 1), (3.0, 1, 1, 2), (6.0, 2, 2, 3), (20, 3, 3, 4)]),
    # ">ULN - 1.5 x ULN" | ">1.5 - 2.0 x ULN; >2.0 - 5.0 x ULN and asymptomatic" | ">2.0 - 5.0 x
    # ULN with signs or symptoms; >5.0 x ULN and asymptomatic" | ">5.0 x ULN and with signs or symptoms"
    ("Lipase increased", "U/L", {"uln": 60, "symptomatic": False},
     [(60, 0, 0, 1), (90, 1, 1, 2), (120, 2, 2, 2), (300, 2, 2, 3)]),
    ("Lipase increased", "U/L", {"uln": 60, "symptomatic": True}, [(120, 2, 2, 3), (300, 3, 3, 4)]),
    ("Serum amylase increased", "U/L", {"uln": 100, "symptomatic": False},
     [(100, 0, 0, 1), (150, 1, 1, 2), (200, 2, 2, 2), (500, 2, 2, 3)]),
    ("Serum amylase increased", "U/L", {"uln": 100, "symptomatic": True}, [(200, 2, 2, 3), (500, 3, 3, 4)]),
    # ">ULN - 2.5 x ULN" | ">2.5 x ULN - 5 x ULN" | ">5 x ULN - 10 x ULN" | ">10 x ULN"
    ("CPK increased", "U/L", {"uln": 200},
     [(200, 0, 0, 1), (500, 1, 1, 2), (1000, 2, 2, 3), (2000, 3, 3, 4)]),
    # ">ULN"
    ("Blood lactate dehydrogenase increased", "U/L", {"uln": 250}, [(250, 0, 0, 1)]),
    # "<LLN"
    ("Haptoglobin decreased", "g/L", {"lln": 0.3}, [(0.3, 1, 0, 0)]),
    # G2 ">ULN"
    ("Methemoglobinemia", "%", {"uln": 1.5}, [(1.5, 0, 0, 2)]),
    # ">ULN without physiologic consequences" | G3 ">ULN with physiologic consequences"
    ("Hyperuricemia", "mg/dL", {"uln": 7.0, "physiologic_consequences": False}, [(7.0, 0, 0, 1)]),
    ("Hyperuricemia", "umol/L", {"uln": 420, "physiologic_consequences": True}, [(420, 0, 0, 3)]),
    # ">ULN - 1.5 x ULN" | ">1.5 - 3.0 x baseline; >1.5 - 3.0 x ULN" | ">3.0 x baseline; >3.0 - 6.0
    # x ULN" | ">6.0 x ULN"
    ("Creatinine increased", "mg/dL", {"uln": 1.0, "baseline": 1.0},
     [(1.0, 0, 0, 1), (1.5, 1, 1, 2), (3.0, 2, 2, 3), (6.0, 3, 3, 4)]),
    ("Creatinine increased", "mg/dL", {"uln": 2.0, "baseline": 0.5}, [(0.75, 0, 0, 2), (1.5, 2, 2, 3)]),
    # "eGFR or CrCl <LLN - 60 ml/min/1.73 m2" | "59 - 30" | "29 - 15" | "<15"
    ("Chronic kidney disease", "mL/min/1.73m2", {"lln": 90},
     [(90, 1, 0, 0), (60, 2, 1, 1), (30, 3, 2, 2), (15, 4, 3, 3)]),
    # "<LLN - 130 mmol/L" | "125-129 mmol/L and asymptomatic" | "125-129 mmol/L symptomatic;
    # 120-124 mmol/L regardless of symptoms" | "<120 mmol/L"
    ("Hyponatremia", "mmol/L", {"lln": 135, "symptomatic": False},
     [(135, 1, 0, 0), (130, 2, 1, 1), (125, 3, 2, 2), (120, 4, 3, 3)]),
    ("Hyponatremia", "mmol/L", {"lln": 135, "symptomatic": True}, [(130, 3, 1, 1), (125, 3, 3, 3)]),
    # ">ULN - 150 mmol/L" | ">150 - 155" | ">155 - 160" | ">160"
    ("Hypernatremia", "mmol/L", {"uln": 145},
     [(145, 0, 0, 1), (150, 1, 1, 2), (155, 2, 2, 3), (160, 3, 3, 4)]),
    # "<LLN - 3.0 mmol/L" | "Symptomatic with <LLN - 3.0 mmol/L" | "<3.0 - 2.5" | "<2.5"
    ("Hypokalemia", "mmol/L", {"lln": 3.5, "symptomatic": False},
     [(3.5, 1, 0, 0), (3.0, 3, 1, 1), (2.5, 4, 3, 3)]),
    ("Hypokalemia", "mEq/L", {"lln": 3.5, "symptomatic": True}, [(3.5, 2, 0, 0), (3.0, 3, 2, 2)]),
    # ">ULN - 5.5 mmol/L" | ">5.5 - 6.0" | ">6.0 - 7.0" | ">7.0"
    ("Hyperkalemia", "mmol/L", {"uln": 5.0},
     [(5.0, 0, 0, 1), (5.5, 1, 1, 2), (6.0, 2, 2, 3), (7.0, 3, 3, 4)]),
    # "Corrected serum calcium of >ULN - 11.5 mg/dL; >ULN - 2.9 mmol/L; Ionized calcium >ULN - 1.5
    # mmol/L" | ">11.5 - 12.5 mg/dL; >2.9 - 3.1 mmol/L; Ionized >1.5 - 1.6" | ">12.5 - 13.5; >3.1 -
    # 3.4; Ionized >1.6 - 1.8" | ">13.5 mg/dL; >3.4 mmol/L; Ionized >1.8"
    ("Hypercalcemia", "mg/dL", {"uln": 10.5, "symptomatic": False},
     [(10.5, 0, 0, 1), (11.5, 1, 1, 2), (12.5, 2, 2, 3), (13.5, 3, 3, 4)]),
    ("Hypercalcemia", "mmol/L", {"uln": 2.6, "symptomatic": False},
     [(2.6, 0, 0, 1), (2.9, 1, 1, 2), (3.1, 2, 2, 3), (3.4, 3, 3, 4)]),
    ("Hypercalcemia (ionized calcium)", "mmol/L", {"uln": 1.3, "symptomatic": False},
     [(1.3, 0, 0, 1), (1.5, 1, 1, 2), (1.6, 2, 2, 3), (1.8, 3, 3, 4)]),
    # "Corrected serum calcium of <LLN - 8.0 mg/dL; <LLN - 2.0 mmol/L; Ionized calcium <LLN - 1.0
    # mmol/L" | "<8.0 - 7.0; <2.0 - 1.75; Ionized <1.0 - 0.9" | "<7.0 - 6.0; <1.75 - 1.5; Ionized
    # <0.9 - 0.8" | "<6.0 mg/dL; <1.5 mmol/L; Ionized <0.8"
    ("Hypocalcemia", "mg/dL", {"lln": 8.5, "symptomatic": False},
     [(8.5, 1, 0, 0), (8.0, 2, 1, 1), (7.0, 3, 2, 2), (6.0, 4, 3, 3)]),
    ("Hypocalcemia", "mmol/L", {"lln": 2.1, "symptomatic": False},
     [(2.1, 1, 0, 0), (2.0, 2, 1, 1), (1.75, 3, 2, 2), (1.5, 4, 3, 3)]),
    ("Hypocalcemia (ionized calcium)", "mmol/L", {"lln": 1.1, "symptomatic": False},
     [(1.1, 1, 0, 0), (1.0, 2, 1, 1), (0.9, 3, 2, 2), (0.8, 4, 3, 3)]),
    # ">ULN - 3.0 mg/dL; >ULN - 1.23 mmol/L" | G3 ">3.0 - 8.0 mg/dL; >1.23 - 3.30 mmol/L" | G4 ">8.0
    # mg/dL; >3.30 mmol/L"
    ("Hypermagnesemia", "mg/dL", {"uln": 2.4}, [(2.4, 0, 0, 1), (3.0, 1, 1, 3), (8.0, 3, 3, 4)]),
    ("Hypermagnesemia", "mmol/L", {"uln": 1.0}, [(1.0, 0, 0, 1), (1.23, 1, 1, 3), (3.30, 3, 3, 4)]),
    # "<LLN - 1.2 mg/dL; <LLN - 0.5 mmol/L" | "<1.2 - 0.9; <0.5 - 0.4" | "<0.9 - 0.7; <0.4 - 0.3" |
    # "<0.7 mg/dL; <0.3 mmol/L"
    ("Hypomagnesemia", "mg/dL", {"lln": 1.7},
     [(1.7, 1, 0, 0), (1.2, 2, 1, 1), (0.9, 3, 2, 2), (0.7, 4, 3, 3)]),
    ("Hypomagnesemia", "mmol/L", {"lln": 0.7},
     [(0.7, 1, 0, 0), (0.5, 2, 1, 1), (0.4, 3, 2, 2), (0.3, 4, 3, 3)]),
    # "<LLN - 55 mg/dL; <LLN - 3.0 mmol/L" | "<55 - 40; <3.0 - 2.2" | "<40 - 30; <2.2 - 1.7" | "<30; <1.7"
    ("Hypoglycemia", "mg/dL", {"lln": 70}, [(70, 1, 0, 0), (55, 2, 1, 1), (40, 3, 2, 2), (30, 4, 3, 3)]),
    ("Hypoglycemia", "mmol/L", {"lln": 3.9},
     [(3.9, 1, 0, 0), (3.0, 2, 1, 1), (2.2, 3, 2, 2), (1.7, 4, 3, 3)]),
    # "<LLN - 3 g/dL; <LLN - 30 g/L" | "<3 - 2 g/dL; <30 - 20 g/L" | "<2 g/dL; <20 g/L"
    ("Hypoalbuminemia", "g/L", {"lln": 35}, [(35, 1, 0, 0), (30, 2, 1, 1), (20, 3, 2, 2)]),
    ("Hypoalbuminemia", "g/dL", {"lln": 3.5}, [(3.5, 1, 0, 0), (3, 2, 1, 1), (2, 3, 2, 2)]),
    # ">ULN - 300 mg/dL; >ULN - 7.75 mmol/L" | ">300 - 400; >7.75 - 10.34" | ">400 - 500; >10.34 -
    # 12.92" | ">500; >12.92"
    ("Cholesterol high", "mg/dL", {"uln": 200},
     [(200, 0, 0, 1), (300, 1, 1, 2), (400, 2, 2, 3), (500, 3, 3, 4)]),
    ("Cholesterol high", "mmol/L", {"uln": 5.2},
     [(5.2, 0, 0, 1), (7.75, 1, 1, 2), (10.34, 2, 2, 3), (12.92, 3, 3, 4)]),
    # "150 mg/dL - 300 mg/dL; 1.71 mmol/L - 3.42 mmol/L" | ">300 - 500; >3.42 - 5.7" | ">500 - 1000;
    # >5.7 - 11.4" | ">1000; >11.4"
    ("Hypertriglyceridemia", "mg/dL", {}, [(150, 0, 1, 1), (300, 1, 1, 2), (500, 2, 2, 3), (1000, 3, 3, 4)]),
    ("Hypertriglyceridemia", "mmol/L", {},
     [(1.71, 0, 1, 1), (3.42, 1, 1, 2), (5.7, 2, 2, 3), (11.4, 3, 3, 4)]),
    # ">ULN - 1.5 x ULN" | ">1.5 - 2.5 x ULN" | ">2.5 x ULN"
    ("Activated partial thromboplastin time prolonged", "s", {"uln": 35},
     [(35, 0, 0, 1), (52.5, 1, 1, 2), (87.5, 2, 2, 3)]),
    # ">1.2 - 1.5; >1 - 1.5 x baseline if on anticoagulation" | ">1.5 - 2.5; >1.5 - 2.5 x baseline
    # if on anticoagulation" | ">2.5; >2.5 x baseline if on anticoagulation"
    ("INR increased", "", {"anticoagulation": False}, [(1.2, 0, 0, 1), (1.5, 1, 1, 2), (2.5, 2, 2, 3)]),
    ("INR increased", "", {"anticoagulation": True, "baseline": 2.0},
     [(2.0, 0, 0, 1), (3.0, 1, 1, 2), (5.0, 2, 2, 3)]),
    # "<1.0 - 0.75 x LLN" | "<0.75 - 0.5 x LLN" | "<0.5 - 0.25 x LLN" | "<0.25 x LLN; ... absolute
    # value <50 mg/dL"
    ("Fibrinogen decreased", "mg/dL", {"lln": 400, "baseline": 450},
     [(400, 1, 0, 0), (300, 2, 1, 1), (200, 3, 2, 2), (100, 4, 3, 3), (50, 4, 4, 4)]),
    ("Fibrinogen decreased", "g/L", {"lln": 2.0, "baseline": 2.5}, [(2.0, 1, 0, 0), (0.5, 4, 3, 3)]),
    # baseline abnormal: "if abnormal, <25% decrease from baseline" | "25 - <50% decrease" | "50 -
    # <75% decrease" | "75% decrease from baseline; absolute value <50 mg/dL"
    ("Fibrinogen decreased", "mg/dL", {"lln": 200, "baseline": 160},
     [(160, 1, 0, 0), (120, 2, 2, 1), (80, 3, 3, 2), (50, 4, 3, 3), (40, 4, 4, 4)]),
    # "pH <normal, but >=7.3" | G3 "pH <7.3"
    ("Acidosis", "", {"lln": 7.35}, [(7.35, 1, 0, 0), (7.3, 3, 1, 1)]),
    # "pH >normal, but <=7.5" | G3 "pH >7.5"
    ("Alkalosis", "pH", {"uln": 7.45}, [(7.45, 0, 0, 1), (7.5, 1, 1, 3)]),
    # "urinary protein >=ULN - <1.0 g/24 hrs" | "Adult: ... 1.0 - <3.5 g/24 hrs" | ">=3.5 g/24 hrs"
    ("Proteinuria (24-hour urine protein)", "g/24h", {"uln": 0.15},
     [(0.15, 0, 1, 1), (1.0, 1, 2, 2), (3.5, 2, 3, 3)]),
    # "Pediatric: Urine P/C (Protein/Creatinine) ratio 0.5 - 1.9" | ">1.9"
    ("Proteinuria (urine protein/creatinine ratio)", "mg/mg", {}, [(1.9, 2, 2, 3)]),
]  # fmt: skip


def _edge_cases() -> list[tuple[str, str, dict[str, object], float, int]]:
    cases = []
    for term, unit, inputs, edges in EDGES:
        for edge, below, on, above in edges:
            step = abs(edge) * 1e-4 or 1e-4
            for value, grade in ((edge - step, below), (edge, on), (edge + step, above)):
                cases.append((term, unit, inputs, value, grade))
    return cases


@pytest.mark.parametrize(("term", "unit", "inputs", "value", "expected"), _edge_cases())
def test_every_band_edge(
    term: str, unit: str, inputs: dict[str, object], value: float, expected: int
) -> None:
    result = grade_lab(term, value, unit, **inputs)  # type: ignore[arg-type]
    assert result.grade == expected, result.rule
    assert result.possible_grades == (expected,)


def test_every_lab_table_has_edge_rows() -> None:
    # every term, and every unit system of a term with separate mg/dL and mmol/L edges
    assert {row[0] for row in EDGES} == set(lab_terms())
    tables = {(spec.key_name, spec.unit) for spec in LAB_TERMS}
    covered = {(term, grade_lab(term, edges[0][0], unit, **inputs).unit)  # type: ignore[arg-type]
               for term, unit, inputs, edges in EDGES}
    assert covered == tables
    # the abnormal-baseline, anticoagulation and x-baseline rules have rows of their own
    ruled = {spec.name for spec in LAB_TERMS
             if spec.abnormal_baseline or spec.alternative or spec.baseline_change}
    with_baseline = {term for term, _, inputs, _ in EDGES if "baseline" in inputs}
    assert ruled <= with_baseline


# --------------------------------------------------------------------------- undecided grades

UNKNOWN = [
    # INR: anticoagulation not asked; the x baseline rule (on anticoagulation) gives 1, absolute 2
    ("INR increased", 2.0, "", {"baseline": 1.5}, (1, 2), ("anticoagulation",)),
    ("INR increased", 1.3, "", {}, (0, 1, 2, 3), ("anticoagulation", "baseline")),
    ("INR increased", 3.0, "", {"anticoagulation": True}, (0, 1, 2, 3), ("baseline",)),
    # symptoms decide between two grades ("and asymptomatic" / "with signs or symptoms")
    ("Lipase increased", 150, "U/L", {"uln": 60}, (2, 3), ("symptomatic",)),
    ("Serum amylase increased", 600, "U/L", {"uln": 100}, (3, 4), ("symptomatic",)),
    ("Hyperuricemia", 9.0, "mg/dL", {"uln": 7.0}, (1, 3), ("physiologic_consequences",)),
    # a normal limit is missing
    ("Hyperkalemia", 5.3, "mmol/L", {}, (0, 1), ("uln",)),
    ("Hypoglycemia", 60, "mg/dL", {}, (0, 1), ("lln",)),
    ("Acidosis", 7.32, "", {}, (0, 1), ("lln",)),
    ("Eosinophilia", 0.9, "10^9/L", {"uln": 0.5}, (0, 1), ("baseline",)),
    ("Hemoglobin increased", 18, "g/dL", {}, (0, 1, 2, 3), ("uln",)),
    # below a ratio of 0.5 only the dipstick or a 24-hour collection can make it grade 1
    ("Proteinuria (urine protein/creatinine ratio)", 0.49, "ratio", {}, (0, 1),
     ("dipstick_or_24h_urine_protein",)),
    # fibrinogen: an abnormal (low) baseline could only lower the grade
    ("Fibrinogen decreased", 250, "mg/dL", {"lln": 400}, (0, 1, 2), ("baseline",)),
    ("Fibrinogen decreased", 100, "mg/dL", {"baseline": 150}, (0, 1, 2, 3, 4), ("lln",)),
]  # fmt: skip


@pytest.mark.parametrize(("term", "value", "unit", "inputs", "possible", "missing"), UNKNOWN)
def test_undecided_grades_list_what_is_missing(
    term: str,
    value: float,
    unit: str,
    inputs: dict[str, object],
    possible: tuple[int, ...],
    missing: tuple[str, ...],
) -> None:
    result = grade_lab(term, value, unit, **inputs)  # type: ignore[arg-type]
    assert result.grade is None
    assert result.possible_grades == possible
    assert result.missing == missing


def test_pediatric_protein_creatinine_ratio_lower_edge_is_inclusive() -> None:
    # "ratio 0.5 - 1.9": 0.5 itself is grade 2
    assert grade_lab("Proteinuria (urine protein/creatinine ratio)", 0.5, "ratio").grade == 2


def test_inr_baseline_is_used_on_anticoagulation_and_said_unused_otherwise() -> None:
    # 2.0 on a baseline of 1.0 is "2.0 x baseline" -> grade 2 ">1.5 - 2.5 x baseline"
    on = grade_lab("INR increased", 2.0, "", baseline=1.0, anticoagulation=True)
    assert on.grade == 2 and "x baseline" in on.rule
    # the same INR on a baseline of 1.6 is 1.25 x baseline -> grade 1
    assert grade_lab("INR increased", 2.0, "", baseline=1.6, anticoagulation=True).grade == 1
    off = grade_lab("INR increased", 2.0, "", baseline=1.6, anticoagulation=False)
    assert off.grade == 2 and "baseline not used" in off.rule


# --------------------------------------------------------------------------- clinical "or" criteria


def test_non_numeric_criteria_are_listed_never_assumed() -> None:
    # Hyperkalemia 5.7 mmol/L is grade 2 by ">5.5 - 6.0 mmol/L"; "hospitalization indicated"
    # (grade 3) and "life-threatening consequences" (grade 4) are for the clinician.
    result = grade_lab("Hyperkalemia", 5.7, "mmol/L", uln=5.0)
    assert result.grade == 2
    assert result.raised_if == (
        "grade 3 if hospitalization indicated",
        "grade 4 if life-threatening consequences",
        "grade 5 if Death",
    )
    # a normal value has no event and nothing to raise
    assert grade_lab("Hyperkalemia", 4.5, "mmol/L", uln=5.0).raised_if == ()


def test_a_known_symptom_raises_the_grade_where_the_text_says_so() -> None:
    # Hypercalcemia grade 2: "...; symptomatic" -> a symptomatic grade 1 value is grade 2
    assert grade_lab("Hypercalcemia", 11.0, "mg/dL", uln=10.5, symptomatic=True).grade == 2
    assert grade_lab("Hypercalcemia", 11.0, "mg/dL", uln=10.5, symptomatic=False).grade == 1
    assert "grade 2 if symptomatic" in grade_lab("Hypercalcemia", 11.0, "mg/dL", uln=10.5).raised_if
    # aPTT grade 3: ">2.5 x ULN; bleeding"
    assert grade_lab("aPTT prolonged", 40, "s", uln=35, bleeding=True).grade == 3


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("value", "unit", "canonical"),
    [
        # count units that convert through pint; 10^3/uL = K/uL = 10^9/L, and 10^3/mL = 1/uL
        (0.8, "10^3/uL", 0.8),
        (0.8, "x10E3/uL", 0.8),
        (0.8, "K/uL", 0.8),
        (0.8, "K/µL", 0.8),
        (0.8, "10*3/uL", 0.8),
        (0.8, "x10^3/mm3", 0.8),
        (800, "10^3/mL", 0.8),
        (800, "/mm3", 0.8),
        (0.8, "G/L", 0.8),
        (0.8, "/nL", 0.8),
        (0.0008, "10^6/uL", 0.8),
    ],
)
def test_count_units_convert(value: float, unit: str, canonical: float) -> None:
    for term in ("Neutrophil count decreased", "Platelet count decreased", "Lymphocyte count decreased"):
        result = grade_lab(term, value, unit, lln=2.0 * value / canonical)
        assert result.unit == "10^9/L"
        assert result.value == pytest.approx(canonical, rel=1e-12)
    # 0.8 x 10^9/L neutrophils is grade 3 ("<1.0 - 0.5 x 10e9 /L") in every spelling
    assert grade_lab("Neutrophil count decreased", value, unit).grade == 3


def test_mass_units_convert_within_their_own_edges() -> None:
    # glucose 540 mg/L = 54 mg/dL: grade 2 by "<55 - 40 mg/dL"
    assert grade_lab("Hypoglycemia", 540, "mg/L", lln=700).grade == 2
    # 2900 umol/L = 2.9 mmol/L: grade 2 by "<3.0 - 2.2 mmol/L"
    assert grade_lab("Hypoglycemia", 2900, "umol/L", lln=3900).grade == 2
    # the mg/dL and mmol/L edges are the text's own: 2.95 mmol/L calcium is grade 2 (>2.9)
    assert grade_lab("Hypercalcemia", 2.95, "mmol/L", uln=2.6, symptomatic=False).grade == 2


# --------------------------------------------------------------------------- the CTCAE text


def _csv_rows() -> dict[str, dict[str, str]]:
    if not CSV.exists():
        pytest.fail(f"the CTCAE v5.0 term list is needed for this test: {CSV}")
    with CSV.open(encoding="utf-8") as handle:
        return {row["term"]: row for row in csv.DictReader(handle)}


def _squash(text: str) -> str:
    return " ".join(text.split())


def test_definitions_are_the_ctcae_text_verbatim() -> None:
    rows = _csv_rows()
    for spec in LAB_TERMS:
        row = rows[spec.name]
        expected = {g: _squash(row[f"grade{g}"]) for g in range(1, 6) if row[f"grade{g}"] != "-"}
        assert {g: _squash(t) for g, t in grade_definitions(spec.name).items()} == expected, spec.name


# A grade text that names a lab value or a normal limit.
_LAB_TEXT = re.compile(
    r"\b(?:ULN|LLN)\b|mmol/L|mg/dL|g/dL|g/L\b|/mm3|10e9|\bpH\b|g/24 hrs|eGFR", re.IGNORECASE
)


def test_every_lab_threshold_term_is_graded_or_left_to_the_clinician() -> None:
    graded = {spec.name for spec in LAB_TERMS}
    for term, row in _csv_rows().items():
        text = " ".join(row[f"grade{g}"] for g in range(1, 6))
        if _LAB_TEXT.search(text):
            assert term in graded or term in CLINICIAN_GRADED, term
    assert not graded & set(CLINICIAN_GRADED)
    assert all(reason.strip() for reason in CLINICIAN_GRADED.values())


def test_term_codes_are_the_csv_codes() -> None:
    rows = _csv_rows()
    assert len(all_terms()) == len(rows) == 837
    for codes in all_terms():
        row = rows[codes.term]
        assert (codes.meddra_code, codes.soc, codes.soc_code, codes.nci_code) == (
            row["meddra_code"], row["soc"], row["soc_code"], row["nci_code"],
        )  # fmt: skip
    # README of the term list: Neutrophil count decreased = MedDRA 10029366, NCIt C143704
    neutrophils = term_codes("neutrophil count  decreased")
    assert neutrophils is not None and neutrophils.meddra_code == "10029366"
    assert term_codes("Thrombocytopenia") is None
    for spec in LAB_TERMS:
        assert term_codes(spec.name) is not None, spec.name
