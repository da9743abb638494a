"""A patient record as a readable table, and a screening beside the form's sections.

>>> state_words("exclusion", "not_met")
('does not apply', True)
>>> state_words("inclusion", "not_met")
('not met', False)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from trialdesk.facts.course import COURSE_FACTS, CourseRules, derive_course
from trialdesk.facts.dictionary import ANSWERED_AS, FACTS, FactKind
from trialdesk.facts.patient import PatientRecord
from trialdesk.forms.build import KIND_SECTION, SECTIONS, PatientForm, label_of
from trialdesk.forms.parse import unit_text


def state_words(kind: str, outcome: str) -> tuple[str, bool | None]:
    """The words for a criterion's outcome and whether it is good news (None: unknown).

    For an exclusion criterion "not met" is good news: the exclusion does not apply.
    """
    if outcome == "unknown":
        return "unknown", None
    if kind == "exclusion":
        return ("applies: excluded", False) if outcome == "met" else ("does not apply", True)
    if kind == "arm":
        return ("assigned", True) if outcome == "met" else ("not this arm", None)
    return ("met", True) if outcome == "met" else ("not met", False)


def section_states(form: PatientForm, result: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per section, the criteria its fields decide with their state in ``result``."""
    by_id = {c["id"]: c for c in result.get("criteria", [])}
    arms = {f"arm:{a['id']}": a for a in result.get("arms", [])}
    out: dict[str, list[dict[str, Any]]] = {}
    for s in form.sections:
        rows = []
        for cid in s.criteria:
            if cid in by_id:
                c = by_id[cid]
                words, good = state_words(c["kind"], c["outcome"])
                rows.append({"id": cid, "kind": c["kind"], "text": c["text"],
                             "outcome": c["outcome"], "words": words, "good": good})
            elif cid in arms and arms[cid]["outcome"] is not None:
                a = arms[cid]
                words, good = state_words("arm", a["outcome"])
                rows.append({"id": a["id"], "kind": "arm", "text": a["label"],
                             "outcome": a["outcome"], "words": words, "good": good})
        out[s.id] = rows
    return out


def _row(label: str, value: Any, unit: str | None = None, date: Any = None,
         detail: str = "") -> dict[str, str]:
    if isinstance(value, bool):
        shown = "yes" if value else "no"
    elif isinstance(value, float):
        shown = f"{value:g}"
    else:
        shown = str(value).replace("_", " ") if value is not None else "—"
    if unit:
        shown = f"{shown} {unit_text(unit)}"
    return {"label": label, "value": shown, "date": str(date) if date else "", "detail": detail}


def _label(name: str) -> str:
    fact = FACTS.get(name)
    return label_of(fact.description) if fact else name.replace("_", " ")


def course_table(record: PatientRecord, *, rules: CourseRules | None, on: dt.date
                 ) -> list[dict[str, str]]:
    """The disease course's events as rows, then the facts derived from them on ``on``
    with the derivation (or why a fact could not be derived)."""
    rows = [_row(f"Chemotherapy: {b.regimen}", f"{b.cycles} cycle{'s' if b.cycles > 1 else ''}",
                 date=b.start, detail=f"{b.phase.replace('_', ' ')}, "
                                      + (f"last day {b.end}" if b.end else "being given"))
            for b in sorted(record.chemotherapy, key=lambda b: b.start)]
    rows += [_row("Response assessment", a.category, date=a.date, detail=a.criteria)
             for a in sorted(record.response_assessments, key=lambda a: a.date)]
    rows += [_row("Relapse or progression", ", ".join(
                 s.replace("_", " ").replace("cns", "CNS") for s in p.sites) or "sites not recorded",
                 date=p.date, detail=p.note or "")
             for p in sorted(record.progressions, key=lambda p: p.date)]
    if not (record.chemotherapy or record.response_assessments or record.progressions):
        return rows
    derived = derive_course(record.chemotherapy, record.response_assessments,
                            record.progressions, on=on, rules=rules)
    for name in COURSE_FACTS:
        label = f"{_label(name)} (derived)"
        if name in derived.values:
            d = derived.values[name]
            rows.append(_row(label, d.value, date=d.observed, detail=d.evidence))
        elif name in derived.missing:
            rows.append(_row(label, "unknown", detail=derived.missing[name]))
    return rows


def record_table(record: PatientRecord, *, questions: dict[str, str] | None = None,
                 show_birth_date: bool = True, age_years: int | None = None,
                 course_rules: CourseRules | None = None, on: dt.date | None = None
                 ) -> list[dict[str, Any]]:
    """Every entry of ``record`` as rows (label, value with unit, date, detail), in the
    form's sections; ``questions`` gives attestation ids their question text. Without the
    birth date (a role that may not see identifiers) ``age_years`` is shown instead. The
    disease course's events come with the facts derived from them on ``on`` by the
    protocol's ``course_rules``."""
    rows: dict[str, list[dict[str, str]]] = {sid: [] for sid, _ in SECTIONS}
    ident = rows["identity"]
    if show_birth_date:
        ident.append(_row("Date of birth", record.birth_date))
    elif age_years is not None:
        ident.append(_row("Age", f"{age_years} years"))
    if record.sex:
        ident.append(_row("Sex recorded at birth", record.sex))
    if record.childbearing_potential is not None:
        ident.append(_row("Of childbearing potential", record.childbearing_potential))
    d = record.diagnosis
    if d is not None:
        for label, value in (("Primary diagnosis", d.primary), ("Confirmed", d.confirmation),
                             ("Risk group", d.risk_group), ("Risk classification", d.risk_system),
                             ("Stage", d.stage)):
            if value is not None:
                rows["diagnosis"].append(_row(label, value, date=d.date))
    for e in sorted(record.disease_status, key=lambda e: e.date):
        for name, value in e.model_dump(exclude_none=True).items():
            if name != "date":
                label = "Disease status" if name == "status" else _label(name)
                rows["disease"].append(_row(label, value, date=e.date))
    if on is not None:
        rows["disease"] += course_table(record, rules=course_rules, on=on)
    for o in sorted(record.observations, key=lambda o: (o.name, o.date)):
        fact = FACTS.get(o.name)
        section = "lab" if fact is None or fact.kind is FactKind.LAB else "findings"
        ref = (f"reference {o.ref_low:g}–{o.ref_high:g}" if o.ref_low is not None
               and o.ref_high is not None else "")
        rows[section].append(_row(_label(o.name), o.value, o.unit, o.date, ref))
    for p in sorted(record.performance, key=lambda p: (p.scale, p.date)):
        rows["performance"].append(_row(_label(p.scale), p.score, date=p.date))
    answers: list[dict[str, str]] = []  # the question findings, after the trial's own
    for f in sorted(record.findings, key=lambda f: (f.name, f.date)):
        fact = FACTS.get(f.name)
        if fact is not None and fact.question is not None:
            answers.append(_row(fact.question, f.value, date=f.date,
                                detail=f"answered by {f.by or 'the investigator'}"))
            continue
        section = KIND_SECTION.get(fact.kind, "findings") if fact else "findings"
        rows[section].append(_row(_label(f.name), f.value, f.unit, f.date))
    for pr in record.pregnancy:
        rows["findings"].append(_row("Pregnant", pr.pregnant, date=pr.date, detail=pr.method))
    if record.treatments is not None and not record.treatments:
        rows["treatment"].append(_row("Treatments", "none"))
    for t in record.treatments or []:
        rows["treatment"].append(_row(t.agent, t.category, date=t.start,
                                      detail=(f"until {t.end}" if t.end else "ongoing")
                                      + (", chronic" if t.chronic else "")))
    for c in record.consents:
        rows["consent"].append(_row(f"Consent for {c.trial_id}", c.signed, date=c.date,
                                    detail=f"version {c.version or '—'}, signed by the "
                                           f"{c.signed_by.replace('_', ' ')}"))
    for a in record.attestations:
        question = (questions or {}).get(a.id, f"{a.trial_id} {a.id.upper()}")
        if (a.trial_id, a.id) in ANSWERED_AS:  # asked before it became a finding
            names = [FACTS[n].description if n in FACTS else n.removeprefix("attest.")
                     .replace("_", " ") for n, _ in ANSWERED_AS[(a.trial_id, a.id)]]
            question = f"{a.trial_id} {a.id.upper()} ({'; '.join(names)})"
        rows["questions"].append(_row(question, a.value, date=a.date,
                                      detail=f"answered by {a.by or 'the investigator'}"))
    rows["questions"] += answers
    titles = dict(SECTIONS)
    return [{"id": sid, "title": titles[sid], "rows": r} for sid, r in rows.items() if r]
