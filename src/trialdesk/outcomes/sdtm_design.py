"""SDTM trial design (TS, TA, TE, TV, TI) from the protocol file, and the subject's path
through it (SE, SV, EPOCH, VISITNUM/VISIT) from what was given.

Follows SDTMIG v3.4 section 7 (Trial Design Model). Choices, stated once:

* Elements (TE): ``SCRN`` (enrolment to first dose), one element per protocol course
  (``ETCD`` = the course id, ``TEDUR`` = the course length of the protocol file) and ``FU``
  (after the last course). Their epochs are SCREENING, TREATMENT and FOLLOW-UP.
* Arms (TA): each arm's plan, course steps expanded by their repeats, between SCRN and FU.
* Planned visits (TV): visit 1 ``ENROLMENT``, then ``COURSE n`` (day 1 of the n-th course)
  for every course of the arm. ``VISITDY`` is left empty: the plan counts days from the first
  course, SDTM study days from RFSTDTC (the enrolment day).
* What happened (SE, SV) comes from the exposure records: a course's element starts on
  its first administration and ends when the next element starts; the last course ends
  ``TEDUR`` days after it started, or on RFENDTC when that is earlier. Nothing is taken
  from the plan as if it had happened.
* A finding on a course's first day is at that course's visit; any other date is an
  unscheduled visit numbered after the last planned one before it (SDTMIG v3.4 §4.4.5:
  ``VISITNUM`` 2.01, ``VISIT`` "UNSCHEDULED 2.01").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import pandas as pd

from trialdesk.outcomes.events import EventTable
from trialdesk.outcomes.inputs import Exposure
from trialdesk.protocol.model import CourseStep, Protocol, TimedStep

SCREENING, TREATMENT, FOLLOW_UP = "SCREENING", "TREATMENT", "FOLLOW-UP"
Core = Literal["Req", "Exp", "Perm"]


@dataclass(frozen=True)
class Variable:
    """One SDTM variable: name, label (≤40 characters), type, core, codelist."""

    name: str
    label: str
    type: Literal["Char", "Num"]
    core: Core
    codelist: str | None = None


@dataclass(frozen=True)
class Finding:
    """One way an SDTM dataset breaks the SDTMIG tables. ``row`` is 1-based or None."""

    dataset: str
    variable: str | None
    row: int | None
    message: str

    def __str__(self) -> str:
        where = self.dataset + (f".{self.variable}" if self.variable else "")
        where += f" row {self.row}" if self.row is not None else ""
        return f"{where}: {self.message}"

# CDISC SDTM Controlled Terminology: TPHASE (trial phase), TBLIND (trial blinding schema).
_PHASE = {"EARLY_PHASE1": "PHASE 0 TRIAL", "PHASE1": "PHASE I TRIAL", "PHASE2": "PHASE II TRIAL",
          "PHASE3": "PHASE III TRIAL", "PHASE4": "PHASE IV TRIAL"}
_BLIND = {"NONE": "OPEN LABEL", "SINGLE": "SINGLE BLIND", "DOUBLE": "DOUBLE BLIND",
          "TRIPLE": "DOUBLE BLIND", "QUADRUPLE": "DOUBLE BLIND"}
_AGE = re.compile(r"^\s*(\d+)\s*(year|month|week|day)s?\s*$", re.IGNORECASE)
_AGE_UNIT = {"year": "Y", "month": "M", "week": "W", "day": "D"}


@dataclass(frozen=True)
class Span:
    """One element a subject went through: ``[start, end]``, with its epoch."""

    element: str
    start: date
    end: date | None
    epoch: str


@dataclass(frozen=True)
class Visit:
    number: float
    name: str
    day: date


@dataclass(frozen=True)
class Path:
    """A subject's elements (SE) and visits (SV), and the lookups the other domains use."""

    spans: tuple[Span, ...]
    visits: tuple[Visit, ...]

    def epoch(self, when: Any) -> str | None:
        """The epoch a date falls in: the last element started on or before it; a date
        before enrolment (a baseline scan) is screening."""
        if when is None or pd.isna(when) or not self.spans:
            return None
        on = pd.Timestamp(when).date()
        found = SCREENING
        for span in self.spans:
            if span.start <= on:
                found = span.epoch
        return found

    def visit(self, when: Any) -> Visit | None:
        """The planned visit on that day, else an unscheduled one after the last before it."""
        if when is None or pd.isna(when):
            return None
        on = pd.Timestamp(when).date()
        before = [v for v in self.visits if v.day <= on and v.number == int(v.number)]
        same = [v for v in before if v.day == on]
        if same:
            return same[-1]
        if not before:
            return None
        unscheduled = [v for v in self.visits if v.day == on and v.number != int(v.number)]
        return unscheduled[0] if unscheduled else None


# SAS XPORT v5 carries ASCII (FDA Study Data Technical Conformance Guide): the symbols the
# protocol texts use are written out; accents are dropped (NFKD); anything else is refused
# when the XPT file is written.
_ASCII = str.maketrans({"≥": ">=", "≤": "<=", "×": "x", "–": "-", "—": "-", "’": "'", "‘": "'",
                        "“": '"', "”": '"', "µ": "u", "μ": "u", "…": "...", "±": "+/-", "°": " deg",
                        "\u00a0": " ",
                        **{sup: f"^{d}" for d, sup in enumerate("⁰¹²³⁴⁵⁶⁷⁸⁹")}})


def ascii_text(text: str) -> str:
    """``text`` in ASCII where a plain spelling exists.

    >>> ascii_text("ANC ≥ 0.75 × 10⁹/L, 50 mg/m²")
    'ANC >= 0.75 x 10^9/L, 50 mg/m^2'
    """
    if text.isascii():
        return text
    import unicodedata

    decomposed = unicodedata.normalize("NFKD", text.translate(_ASCII))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def course_length(protocol: Protocol, course_id: str) -> int | None:
    course = next((c for c in protocol.courses if c.id == course_id), None)
    if course is None or not isinstance(course.length_days.value, int | float):
        return None
    return int(course.length_days.value)


def trial_design(protocol: Protocol, study: str, *, subjects: int) -> dict[str, pd.DataFrame]:
    """TS, TA, TE, TV and TI of the protocol file."""
    return {"TS": _ts(protocol, study, subjects), "TA": _ta(protocol, study), "TE": _te(protocol, study),
            "TV": _tv(protocol, study), "TI": _ti(protocol, study)}


def _arm_courses(protocol: Protocol, arm_id: str) -> list[str]:
    arm = next(a for a in protocol.arms if a.id == arm_id)
    return [s.course for s in arm.plan if isinstance(s, CourseStep) for _ in range(s.repeats)]


def _timed_code(name: str) -> str:
    """ETCD of a timed treatment step: "T" and its name's letters, at most 8 characters."""
    return ("T" + re.sub(r"[^A-Z0-9]", "", name.upper()))[:8]


def _arm_elements(protocol: Protocol, arm_id: str) -> list[str]:
    """The treatment elements of an arm in plan order: its courses (by repeats) and its
    timed steps that give a study treatment."""
    arm = next(a for a in protocol.arms if a.id == arm_id)
    out: list[str] = []
    for step in arm.plan:
        if isinstance(step, CourseStep):
            out += [step.course] * step.repeats
        elif isinstance(step, TimedStep) and step.administration is not None:
            out.append(_timed_code(step.timed))
    return out


def _timed_names(protocol: Protocol) -> dict[str, str]:
    return {_timed_code(s.timed): s.timed for a in protocol.arms for s in a.plan
            if isinstance(s, TimedStep) and s.administration is not None}


def _ta(protocol: Protocol, study: str) -> pd.DataFrame:
    rows = []
    for arm in protocol.arms:
        order = ["SCRN", *_arm_elements(protocol, arm.id), "FU"]
        for i, element in enumerate(order, start=1):
            epoch = SCREENING if element == "SCRN" else FOLLOW_UP if element == "FU" else TREATMENT
            rows.append({"STUDYID": study, "DOMAIN": "TA", "ARMCD": arm.id, "ARM": arm.label,
                         "TAETORD": i, "ETCD": element, "ELEMENT": _element_name(protocol, element),
                         "TABRANCH": None, "TATRANS": None, "EPOCH": epoch})
    return pd.DataFrame(rows)


def _element_name(protocol: Protocol, etcd: str) -> str:
    if etcd == "SCRN":
        return "Enrolment to first dose"
    if etcd == "FU":
        return "Follow-up"
    timed = _timed_names(protocol)
    if etcd in timed:
        return timed[etcd]
    return next(c.name for c in protocol.courses if c.id == etcd)


def _te(protocol: Protocol, study: str) -> pd.DataFrame:
    used = dict.fromkeys(c for a in protocol.arms for c in _arm_elements(protocol, a.id))
    timed = _timed_names(protocol)
    rows = [{"STUDYID": study, "DOMAIN": "TE", "ETCD": "SCRN", "ELEMENT": _element_name(protocol, "SCRN"),
             "TESTRL": "Enrolment", "TEENRL": "First administration of study treatment", "TEDUR": None}]
    for course_id in used:
        if course_id in timed:
            rows.append({"STUDYID": study, "DOMAIN": "TE", "ETCD": course_id, "ELEMENT": timed[course_id],
                         "TESTRL": f"Start of {timed[course_id]}", "TEENRL": "Start of the next element",
                         "TEDUR": None})
            continue
        length = course_length(protocol, course_id)
        rows.append({"STUDYID": study, "DOMAIN": "TE", "ETCD": course_id,
                     "ELEMENT": _element_name(protocol, course_id),
                     "TESTRL": f"First administration of a {course_id} course",
                     "TEENRL": f"{length} days after the course start" if length
                     else "Start of the next element",
                     "TEDUR": f"P{length}D" if length else None})
    rows.append({"STUDYID": study, "DOMAIN": "TE", "ETCD": "FU", "ELEMENT": "Follow-up",
                 "TESTRL": "End of the last treatment element", "TEENRL": "Death or end of follow-up",
                 "TEDUR": None})
    return pd.DataFrame(rows)


def planned_visits(protocol: Protocol, arm_id: str) -> list[tuple[int, str, str]]:
    """(VISITNUM, VISIT, TVSTRL) of an arm: enrolment, then day 1 of every course."""
    visits = [(1, "ENROLMENT", "Enrolment")]
    for n, course_id in enumerate(_arm_courses(protocol, arm_id), start=1):
        visits.append((n + 1, f"COURSE {n}", f"Day 1 of course {n} ({course_id})"))
    return visits


def _tv(protocol: Protocol, study: str) -> pd.DataFrame:
    rows = [{"STUDYID": study, "DOMAIN": "TV", "VISITNUM": number, "VISIT": name, "VISITDY": None,
             "ARMCD": arm.id, "ARM": arm.label, "TVSTRL": start}
            for arm in protocol.arms for number, name, start in planned_visits(protocol, arm.id)]
    return pd.DataFrame(rows)


def _ti(protocol: Protocol, study: str) -> pd.DataFrame:
    rows = []
    for category, criteria in (("INCLUSION", protocol.eligibility.inclusion),
                               ("EXCLUSION", protocol.eligibility.exclusion)):
        for c in criteria:
            text = ascii_text(" ".join(c.text.split()))
            rows.append({"STUDYID": study, "DOMAIN": "TI", "IETESTCD": c.id.upper()[:8],
                         "IETEST": text if len(text) <= 200 else text[:197] + "...",
                         "IECAT": category, "TIRL": c.rule if c.rule and len(c.rule) <= 200 else None,
                         "TIVERS": protocol.version})
    return pd.DataFrame(rows)


def _iso_age(text: str | None) -> str | None:
    """ClinicalTrials.gov "18 Months" as an ISO 8601 duration (P18M)."""
    match = _AGE.match(text or "")
    return f"P{match.group(1)}{_AGE_UNIT[match.group(2).lower()]}" if match else None


def _ts(protocol: Protocol, study: str, subjects: int) -> pd.DataFrame:
    reg = protocol.registry
    params: list[tuple[str, str, str | None]] = [
        ("TITLE", "Trial Title", reg.identification.official_title or protocol.title),
        ("STYPE", "Study Type", reg.design.study_type),
        ("SPONSOR", "Clinical Study Sponsor", reg.sponsor.lead_sponsor.name),
        ("REGID", "Registry Identifier", reg.identification.nct_id),
        ("RANDOM", "Trial is Randomized", "Y" if reg.design.allocation == "RANDOMIZED" else "N"),
        ("TBLIND", "Trial Blinding Schema", _BLIND.get(reg.design.masking)),
        ("NARMS", "Planned Number of Arms", str(len(protocol.arms))),
        ("ACTSUB", "Actual Number of Subjects", str(subjects)),
        ("SSTDTC", "Study Start Date", reg.status.start_date),
        ("SEXPOP", "Sex of Participants", {"ALL": "BOTH", "FEMALE": "F", "MALE": "M"}[reg.eligibility.sex]),
        ("AGEMIN", "Planned Minimum Age of Subjects", _iso_age(reg.eligibility.minimum_age)),
        ("AGEMAX", "Planned Maximum Age of Subjects", _iso_age(reg.eligibility.maximum_age)),
        ("PROTVERS", "Protocol Version", protocol.version),
    ]
    if reg.design.enrollment is not None:
        params.append(("PLANSUB", "Planned Number of Subjects", str(reg.design.enrollment.count)))
    params += [("TPHASE", "Trial Phase Classification", _PHASE.get(p)) for p in reg.design.phases]
    params += [("INDIC", "Trial Disease/Condition Indication", c) for c in reg.conditions]
    rows = []
    seen: dict[str, int] = {}
    for code, name, value in params:
        seen[code] = seen.get(code, 0) + 1
        rows.append({"STUDYID": study, "DOMAIN": "TS", "TSSEQ": seen[code], "TSGRPID": None,
                     "TSPARMCD": code, "TSPARM": name, "TSVAL": value,
                     "TSVALNF": None if value else "UNK", "TSVALCD": None, "TSVCDREF": None,
                     "TSVCDVER": None})
    return pd.DataFrame(rows)


def subject_paths(protocol: Protocol, events: EventTable, exposure: Exposure | None) -> dict[str, Path]:
    """Every subject's elements and visits from the enrolment date and the exposure records.
    Without exposure records nobody's elements are known: no SE, no EPOCH (unknown is not
    guessed); the enrolment visit is."""
    starts: dict[str, list[tuple[int, str, date]]] = {}
    if exposure is not None:
        frame = exposure.frame
        firsts = frame.groupby(["patient_id", "course"], sort=True).agg(
            start=("start_date", "min"), course_id=("course_id", "first")).reset_index()
        for r in firsts.to_dict(orient="records"):
            starts.setdefault(r["patient_id"], []).append(
                (int(r["course"]), r["course_id"] or "", pd.Timestamp(r["start"]).date()))
    paths: dict[str, Path] = {}
    for r in events.frame.to_dict(orient="records"):
        patient = r["patient_id"]
        enrolled = pd.Timestamp(r["enrolment_date"]).date()
        ended = r["death_date"] if not pd.isna(r["death_date"]) else r["last_contact_date"]
        end = None if pd.isna(ended) else pd.Timestamp(ended).date()
        courses = starts.get(patient, [])
        spans: list[Span] = []
        visits = [Visit(1, "ENROLMENT", enrolled)]
        first = courses[0][2] if courses else end
        spans.append(Span("SCRN", enrolled, first, SCREENING))
        for i, (number, course_id, start) in enumerate(courses):
            nxt = courses[i + 1][2] if i + 1 < len(courses) else None
            if nxt is None:
                length = course_length(protocol, course_id)
                nxt = start + timedelta(days=length) if length else None
                if nxt is not None and end is not None and end < nxt:
                    nxt = end
            spans.append(Span(course_id, start, nxt, TREATMENT))
            visits.append(Visit(number + 1, f"COURSE {number}", start))
        if courses and spans[-1].end is not None and (end is None or spans[-1].end < end):
            spans.append(Span("FU", spans[-1].end, end, FOLLOW_UP))
        paths[patient] = Path(tuple(spans) if exposure is not None else (), tuple(visits))
    return paths


def with_unscheduled(paths: Mapping[str, Path], dated: Mapping[str, list[Any]]) -> dict[str, Path]:
    """Add an unscheduled visit for each date of a finding that is on no planned visit day."""
    out = {}
    for patient, path in paths.items():
        visits = list(path.visits)
        for when in sorted({pd.Timestamp(d).date() for d in dated.get(patient, []) if not pd.isna(d)}):
            if any(v.day == when for v in visits):
                continue
            before = [v for v in visits if v.day <= when and v.number == int(v.number)]
            if not before:
                continue
            base = before[-1].number
            n = 1 + sum(1 for v in visits if int(v.number) == base and v.number != base)
            number = round(base + n / 100, 2)
            visits.append(Visit(number, f"UNSCHEDULED {number:.2f}", when))
        out[patient] = Path(path.spans, tuple(sorted(visits, key=lambda v: (v.day, v.number))))
    return out


def se_sv(study: str, paths: Mapping[str, Path], usubjid: Any, day: Any,
          labels: Mapping[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """SE and SV rows from the subjects' paths."""
    se, sv = [], []
    for patient, path in paths.items():
        for seq, span in enumerate(path.spans, start=1):
            se.append({"STUDYID": study, "DOMAIN": "SE", "USUBJID": usubjid(patient), "SESEQ": seq,
                       "ETCD": span.element, "ELEMENT": labels.get(span.element, span.element),
                       "EPOCH": span.epoch, "SESTDTC": span.start.isoformat(),
                       "SEENDTC": span.end.isoformat() if span.end else None,
                       "SESTDY": day(patient, span.start), "SEENDY": day(patient, span.end)})
        for visit in path.visits:
            sv.append({"STUDYID": study, "DOMAIN": "SV", "USUBJID": usubjid(patient),
                       "VISITNUM": visit.number, "VISIT": visit.name,
                       "SVUPDES": "Finding outside a planned visit" if visit.number != int(visit.number)
                       else None, "EPOCH": path.epoch(visit.day),
                       "SVSTDTC": visit.day.isoformat(), "SVENDTC": visit.day.isoformat(),
                       "SVSTDY": day(patient, visit.day), "SVENDY": day(patient, visit.day)})
    return pd.DataFrame(se), pd.DataFrame(sv)
